-- respondent_scores: the respondents of a relation, each with their scale scores.
--
-- The one definition of a scale score: every stage that scores respondents in SQL
-- reads it (the cell sums, pipeline/publish/sql/respondent_values.sql; the store's
-- `scale_scores` view, pipeline/sql/scale_scores.sql). pipeline.scoring.scale_score
-- is the same rule on a pandas frame, for small matrices and tests.
--
-- Slots (pipeline.sql_templates):
--   source         a relation of respondents with one column per item
--   scale_columns  per scale, from pipeline.scoring.scale_columns:
--       a_<scale>  items answered (blank and "don't know" are stored as NULL)
--       f_<scale>  answers in the favourable codes after reverse-keying
--       s_<scale>  the score, 1-5 after reverse-keying (low + high - code, 6 - x on a
--                  1-5 scale): the mean of the answered items when at least the scale's
--                  min_items are answered, else NULL
-- Columns: every column of the source, then the scale columns.

with

respondents as (
    select * from {{source}}
),

final as (
    select
        *,
        {{scale_columns}}
    from respondents
)

select * from final
