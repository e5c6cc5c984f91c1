-- quarantine_waves: the wave of every quarantined row (batch_id, source_row), where the
-- store can tell it; NULL where it cannot. Used by the retention purge
-- (pipeline.retention) to blank the answer values of a purged wave's rejected rows.
--
-- A rejected row's wave is stored nowhere of its own, so it is told from:
--   1. its own problem with the wave cell (unknown_wave): bad_value is the wave as
--      written, a year when it reads as one;
--   2. else its batch's --wave (ingest_batches.wave_flag), but only in a batch whose file
--      named no wave of its own: --wave fills blank cells only, so a file with a wave
--      column may hold rows of other waves. A batch has a wave column for sure when any
--      accepted row of it is of another wave or any row has a problem with a wave cell.
-- Anything else (a file whose rows carry their own wave, the web form's batches) cannot
-- be told, and the purge leaves it as it is.

with

quarantined as (
    select distinct batch_id, source_row from quarantine
),

wave_cells as (
    select batch_id, source_row,
        try_cast(try_cast(bad_value as double) as integer) as wave
    from quarantine
    where column_name = 'wave' and bad_value is not null
),

flag_batches as (
    select batch_id, wave_flag as wave
    from ingest_batches as batch
    where wave_flag is not null
        and not exists (select 1 from responses as r
                        where r.batch_id = batch.batch_id and r.wave <> batch.wave_flag)
        and not exists (select 1 from wave_cells where wave_cells.batch_id = batch.batch_id)
),

final as (
    select
        quarantined.batch_id,
        quarantined.source_row,
        -- A row with a wave problem is told by that cell alone (NULL if it is no year).
        case when wave_cells.batch_id is not null then wave_cells.wave
             else flag_batches.wave end as wave
    from quarantined
    left join wave_cells using (batch_id, source_row)
    left join flag_batches using (batch_id)
)

select * from final
