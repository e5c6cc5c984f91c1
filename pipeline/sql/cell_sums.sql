-- cell_sums: every site cell, and peer-group and all-sites cells as sums of site cells.
--
-- Reads `site_cells` (one row per wave x site x breakdown group x measure, built by
-- pipeline.cells from respondents) and `sites` (for each site's peer group, its type).
-- Parameter 1: the unit name of the all-sites level.
--
-- Rows come out in a fixed order (by their key). Complementary suppression breaks
-- ties between equally good cells to hide by their position, so without an order
-- the same data could be published with a different (equally safe) choice of hidden
-- cells from one run to the next.

with

site_cells as (
    select * from site_cells
),

sites as (
    select site_code, site_type from sites
),

site_level as (
    select c.wave, 'site' as level, c.site_code as unit, s.site_type as peer_group,
           c.breakdown, c.grp, c.measure_kind, c.measure,
           c.n, c.s1, c.s2, c.fav, c.fav_den, c.unf
    from site_cells c
    join sites s using (site_code)
),

-- One aggregation gives both upper levels: grouped by peer group, and by nothing.
upper_sums as (
    select wave, peer_group, grouping(peer_group) as all_sites, breakdown, grp,
           measure_kind, measure,
           sum(n)::bigint as n, sum(s1) as s1, sum(s2) as s2, sum(fav)::bigint as fav,
           sum(fav_den)::bigint as fav_den, sum(unf)::bigint as unf
    from site_level
    group by grouping sets ((wave, peer_group, breakdown, grp, measure_kind, measure),
                            (wave, breakdown, grp, measure_kind, measure))
),

upper_levels as (
    select wave,
           case when all_sites = 1 then 'national' else 'peer' end as level,
           case when all_sites = 1 then $1 else peer_group end as unit,
           case when all_sites = 1 then null else peer_group end as peer_group,
           breakdown, grp, measure_kind, measure, n, s1, s2, fav, fav_den, unf
    from upper_sums
),

final as (
    select * from site_level
    union all
    select * from upper_levels
)

select * from final
order by wave, level, unit, breakdown, grp, measure_kind, measure
