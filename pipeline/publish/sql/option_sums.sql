-- option_sums: per wave x site, how many respondents chose each answer option of each
-- item, as the answer was given (before reverse-keying: the distribution a researcher
-- compares with the questionnaire). Like the item cells (item_sums.sql), site totals
-- only; wide_sums.sql adds the peer-group and all-sites rows.
--
-- Slots (filled by pipeline.publish.answers):
--   option_sums  per item and answer option: count(*) filter (where <item> = <code>)
--                as o__<item>__<code>

create or replace temp table option_sums as

with

respondents as (
    select * from analysis_responses
),

final as (
    select
        wave,
        site_code,
        'all' as breakdown,
        'all' as grp,
        {{option_sums}}
    from respondents
    group by wave, site_code
)

select * from final
