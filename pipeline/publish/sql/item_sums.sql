-- item_sums: per wave x site, every item's count, sums, favourable and unfavourable
-- answers. Items are counted for site totals only: item results by group would multiply
-- small cells without telling a director anything the scales do not.
--
-- Slots (filled by pipeline.publish.cells):
--   item_sums  per item: n__item__<item>, s1__, s2__, fav__, unf__, den__

create or replace temp table item_sums as

with

respondents as (
    select * from respondent_values
),

final as (
    select
        wave,
        site_code,
        'all' as breakdown,
        'all' as grp,
        {{item_sums}}
    from respondents
    group by wave, site_code
)

select * from final
