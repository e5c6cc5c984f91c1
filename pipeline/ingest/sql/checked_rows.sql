-- checked rows: row_values.sql with the answers counted and every row's problems
-- totalled; rows with n_problems = 0 are accepted.
--
-- Reason ids (pipeline.ingest.row_checks.REASONS, from 1): 6 duplicate_response_id,
-- 7 too_few_answers.
--
-- Slots (filled by pipeline.ingest.row_checks.build_checked_sql):
--   row_values  row_values.sql for this file
--   answered    scale items with a scored answer, as a sum of (status is a code)
--   duplicate   the p__duplicate marker: from the temp table `duplicate_rows` for a
--               numbered file; NULL otherwise, filled in afterwards by
--               mark_duplicates.sql (a narrow pass, not a wide window)
--   problems    the markers of row_values that are set, as a sum
-- Parameters: those of row_values.sql, and $min_answered.

with

row_values as (
    {{row_values}}
),

counted as (
    select *, ({{answered}}) as answered
    from row_values
),

flagged as (
    select *,
        case when answered < $min_answered then 7 end::utinyint as p__answers,
        {{duplicate}} as p__duplicate
    from counted
),

final as (
    select *,
        ({{problems}} + (p__answers is not null)::integer
            + (p__duplicate is not null)::integer) as n_problems
    from flagged
)

select * from final
