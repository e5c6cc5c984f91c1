-- response_quality: what a survey lead reads, every respondent's measures and flags
-- beside their ids and completion time.
--
-- A view over the stored flags, which keep only the integer row key and the measures
-- rather than a second copy of the ids and times.

create view response_quality as

with

flags as (
    select * from response_flags
),

stored as (
    select batch_id, source_row, response_id, duration_seconds from responses
),

waves as (
    select wave, wave_median_seconds from response_quality_waves
),

final as (
    select f.site_code, f.wave, r.response_id, f.batch_id, f.source_row, f.n_answered,
        f.longstring, r.duration_seconds, w.wave_median_seconds, f.straight_lining,
        f.speeding, f.duplicate, f.flagged
    from flags f
    join stored r using (batch_id, source_row)
    join waves w on w.wave = f.wave
)

select * from final
