-- respondent_values: one row per analysed respondent with every value a cell counts.
--
-- Defined as a temp view, not a table: each scan of pipeline/publish/sql/*_sums.sql
-- computes only the columns it uses, instead of writing some 150 derived columns for
-- every respondent first.
--
-- Slots (pipeline.sql_templates, filled by pipeline.publish.cells):
--   respondent_scores  pipeline/sql/respondent_scores.sql over `analysis_responses`
--                      (the one definition of a scale score: a_, f_, s_ per scale)
--   measures           per attribute g_<attribute>: the option, with blank and
--                      "prefer not to say" folded into the group 'not_stated';
--                      per scale its a_, f_, s_ columns; per item i_<item>: the answer
--                      after reverse-keying, if_<item> / iu_<item>: 1 when favourable /
--                      unfavourable, else 0
--   with_principles    *, then per principle p_<principle>, 0-100: the mean of the
--                      principle's scale scores the respondent has, rescaled from 1-5
--                      as (mean - 1) * 25

with

scored as (
    {{respondent_scores}}
),

measured as (
    select
        site_code,
        wave,
        {{measures}}
    from scored
),

final as (
    select
        {{with_principles}}
    from measured
)

select * from final
