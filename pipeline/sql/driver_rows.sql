-- driver_rows: the respondents a logistic driver model is fitted on, for one wave.
--
-- Using support among those who needed it: the analysed respondents who said they had
-- needed support (oc_needed in the yes codes), answered whether they used it, and have
-- every scale score. A logistic model has no sufficient statistics to sum, so these rows
-- (y 0/1 and the scale scores) go to the pipeline's Python, never further.
--
-- Slots (pipeline.sql_templates, filled by pipeline.drivers):
--   respondent_scores  pipeline/sql/respondent_scores.sql over `analysis_responses`
--   used               1 when oc_used is a yes code, else 0
--   scores             each scale's score s_<scale>
--   answered           oc_needed a yes code, oc_used answered, every scale score present
-- Parameters: $wave.

with

scored as (
    {{respondent_scores}}
),

final as (
    select
        site_code,
        {{used}} as y,
        {{scores}}
    from scored
    where wave = $wave and {{answered}}
)

select * from final
