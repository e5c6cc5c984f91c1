-- driver_moments: per wave and site, the sums a linear driver model is fitted from.
--
-- Over the analysed respondents who answered the outcome question and have every scale
-- score (listwise, as stats.drivers.SiteMoments expects): n, the sum of each value and
-- the sum of each product of two values. Values are centred at 3, the middle of the
-- 1-5 answers, so the national sums stay small (centring changes no R^2). No respondent
-- row leaves DuckDB: Python gets (values + 1)^2 / 2 numbers a site and wave.
--
-- Slots (pipeline.sql_templates, filled by pipeline.drivers):
--   respondent_scores  pipeline/sql/respondent_scores.sql over `analysis_responses`
--                      (the one definition of a scale score; s_<scale> after reverse-keying)
--   driver_values      v0, v1, ...: the outcome's answer - 3, whether it is favourable
--                      (0/1), then each scale's score - 3
--   answered           the outcome and every scale score present
--   moments            sum(v_i) as s<i>, then sum(v_i * v_j) as p<i>_<j> for i <= j

with

scored as (
    {{respondent_scores}}
),

answered as (
    select
        wave,
        site_code,
        {{driver_values}}
    from scored
    where {{answered}}
),

final as (
    select
        wave,
        site_code,
        count(*) as n,
        {{moments}}
    from answered
    group by wave, site_code
)

select * from final
order by wave, site_code
