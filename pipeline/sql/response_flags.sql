-- response_flags: every respondent's quality measures and flags (pipeline.quality),
-- keyed by the batch and source row the response was ingested from.
--
-- Slots (filled by pipeline.quality.quality_sql):
--   answered      scale items answered, as a sum of (item is not null)
--   code_bits     per scale item (1::bigint << coalesce(item, blank)): one bit per
--                 answer code used. A blank sets bit `blank`, no answer code, which is
--                 set anyway and not counted (coalescing the small code before the
--                 shift is cheaper than coalescing the shifted bigint). The
--                 instrument's scored codes are at most MAX_SCORED_CODE, so the mask
--                 fits 64 bits.
--   blank         that bit
--   every_answer  every item and attribute, for the duplicate hash
--   items         the scale items in questionnaire order
--   run_steps     one CTE per scale item after the first, each carrying the current
--                 run of identical answers and the longest so far, and dropping the
--                 previous item. (Written as a chain of aliases in one select list,
--                 DuckDB expands every alias into the expressions behind it, and the
--                 work grows with the square of the item count.)
--   last_step, last_item  the last CTE of that chain and the item it keeps
--   target        the table built (response_flags, or a fresh table of some waves' flags)
--   source        the responses flagged (`responses`, or a subquery of some waves)
-- Parameters: $min_answers, $longest (the longstring that marks straight-lining),
-- $speed_fraction (of the wave's median completion time).

create or replace table {{target}} as

with

answers as (
    select site_code, wave, response_id, batch_id, source_row, duration_seconds,
        ({{answered}}) as n_answered,
        -- A single bit set means every answer was the same (cheaper than least/greatest).
        bit_count({{code_bits}} | (1::bigint << {{blank}})) - 1 as codes_used,
        -- A 64-bit hash stands in for the answers: grouping wide structs is slow, and
        -- two different answer sets colliding among a million respondents is about a
        -- 1 in 10^7 chance.
        hash(row({{every_answer}})) as answers_hash,
        {{items}},
        1 as run,
        1 as longstring
    from {{source}}
),

{{run_steps}}

runs as (
    select * exclude (run, {{last_item}}) from {{last_step}}
),

waves as (
    select wave, wave_median_seconds from response_quality_waves
),

repeated as (
    select site_code, wave, answers_hash, min(response_id) as first_id
    from runs
    where n_answered >= $min_answers
    group by all
    having count(*) > 1
),

measured as (
    select batch_id, source_row, site_code, wave, n_answered, longstring,
        (n_answered >= $min_answers and codes_used = 1)
            or longstring >= $longest as straight_lining,
        coalesce(duration_seconds < $speed_fraction * wave_median_seconds, false)
            as speeding,
        -- The respondent with the smallest response id of a repeated set is kept.
        coalesce(response_id <> repeated.first_id, false) as duplicate
    from runs
    join waves using (wave)
    left join repeated using (site_code, wave, answers_hash)
),

final as (
    select *, straight_lining or speeding or duplicate as flagged
    from measured
)

select * from final
