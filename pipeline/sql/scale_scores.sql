-- scale_scores: one row per stored respondent and scale, for survey leads' own analysis
-- (the pipeline's stages read respondent_scores directly).
--
-- A view, not a table: it can never be out of date with the responses it is computed
-- from, and the few queries that read it aggregate it at once.
--
-- Slots (pipeline.sql_templates):
--   respondent_scores  respondent_scores.sql over `responses`
--   per_scale          per scale, a select from `scored` renaming its a_, s_ and f_
--                      columns, joined by union all (pipeline.scoring.scale_scores_sql)
-- Columns: site_code, wave, response_id, scale_id, n_items, n_answered, score (1-5),
-- score_0_10 (NHS Staff Survey convention: 1..5 -> 0, 2.5, 5, 7.5, 10, averaged,
-- which is (score - low) * 10 / (high - low)), n_favourable.

with

scored as (
    {{respondent_scores}}
),

final as (
    {{per_scale}}
)

select * from final
