-- cell_grid: every unit (site, peer group, all sites) with responses in a wave x every
-- breakdown group, so that a group nobody belongs to still gets its cell (a suppressed
-- cell must not reveal whether it was empty). The units come from group_sums_wide,
-- which has a total row for each, so the grid costs no scan of the respondents.
-- Reads the session's `breakdown_grid_frame` (breakdown, grp: 'all'/'all' and every
-- attribute's groups, from pipeline.publish.cells.breakdown_groups).

create or replace temp table cell_grid as

with

units as (
    select wave, level, unit, peer_group from group_sums_wide where breakdown = 'all'
),

breakdowns as (
    select breakdown, grp from breakdown_grid_frame
),

final as (
    select u.wave, u.level, u.unit, u.peer_group, b.breakdown, b.grp
    from units u
    cross join breakdowns b
)

select * from final
