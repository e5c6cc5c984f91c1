-- group_sums: per wave x site x attribute group, every scale's and principle's count
-- and sums, and the response count.
--
-- One scan groups respondents for every attribute at once (grouping sets); the site
-- totals are added by site_totals.sql, peer-group and national sums by wide_sums.sql.
--
-- Slots (filled by pipeline.publish.cells):
--   breakdown, grp  the attribute that grouped the row and its group ('all' and 'all'
--                   for an instrument asking nothing about the respondent)
--   measure_sums    per measure: n__<kind>__<measure> (count), s1__ and s2__ (sum and
--                   sum of squares), for scales fav__ and den__ (favourable answers and
--                   answers counted, of respondents with a score)
--   grouping        `grouping sets ((wave, site_code, g_<attribute>), ...)`, or
--                   `wave, site_code` without attributes

create or replace temp table group_sums as

with

respondents as (
    select * from respondent_values
),

final as (
    select
        wave,
        site_code,
        {{breakdown}} as breakdown,
        {{grp}} as grp,
        {{measure_sums}}
    from respondents
    group by {{grouping}}
)

select * from final
