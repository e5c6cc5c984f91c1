-- <sums>_wide: a wide sums table (group_sums or item_sums) with its peer-group and
-- all-sites rows, which are sums of site sums.
--
-- They are summed while the sums are still wide (a row per site x wave x group, some
-- 50k rows at national scale) rather than over the long cells (800k rows, a string key
-- each).
--
-- Slots (filled by pipeline.publish.cells):
--   wide_table  the table made, sums  the table read
--   measures    the measure columns of `sums`; summed: sum(<column>) as <column> each
-- Parameters: $national (the unit name of the all-sites rows).

create or replace temp table {{wide_table}} as

with

sums as (
    select * from {{sums}}
),

sites as (
    select site_code, site_type from sites
),

site_sums as (
    select t.wave, t.site_code as unit, s.site_type as peer_group, breakdown, grp,
        {{measures}}
    from sums t
    join sites s using (site_code)
),

upper_sums as (
    select wave, peer_group, grouping(peer_group) as all_sites, breakdown, grp,
        {{summed}}
    from site_sums
    group by grouping sets ((wave, peer_group, breakdown, grp), (wave, breakdown, grp))
),

final as (
    select wave, 'site' as level, unit, peer_group, breakdown, grp,
        {{measures}}
    from site_sums
    union all
    select wave,
        case when all_sites = 1 then 'national' else 'peer' end,
        case when all_sites = 1 then $national else peer_group end,
        case when all_sites = 1 then null else peer_group end,
        breakdown, grp,
        {{measures}}
    from upper_sums
)

select * from final
