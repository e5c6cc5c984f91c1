-- The cell sums: one row per cell (wave x unit x breakdown group x measure), from the
-- wide sums, in key order (pipeline.publish.cells.KEY_ORDER).
--
-- Wide sums to long cells in one pass: every grid row carries a list with one struct
-- per measure, which unnest turns into rows. A query, not a table: the frame is the
-- only copy the pipeline needs.
--
-- Slots (filled by pipeline.publish.cells):
--   group_cells, item_cells  per measure of group_sums_wide / item_sums_wide, a struct
--                            {measure_kind, measure, n, s1, s2, fav, fav_den, unf};
--                            n is 0 for a grid group nobody belongs to

-- cell_grid is read twice without an import CTE: DuckDB would materialise a CTE
-- that is referenced twice.

with

long_cells as (
    select g.wave, g.level, g.unit, g.peer_group, g.breakdown, g.grp,
        unnest([{{group_cells}}]) as cell
    from cell_grid g
    left join group_sums_wide t using (wave, level, unit, breakdown, grp)
    union all
    -- Items are counted for unit totals only (item_sums.sql).
    select g.wave, g.level, g.unit, g.peer_group, g.breakdown, g.grp,
        unnest([{{item_cells}}]) as cell
    from cell_grid g
    left join item_sums_wide t using (wave, level, unit, breakdown, grp)
    where g.breakdown = 'all'
),

final as (
    select wave, level, unit, peer_group, breakdown, grp,
        cell.measure_kind as measure_kind,
        cell.measure as measure,
        cell.n as n,
        cell.s1 as s1,
        cell.s2 as s2,
        cell.fav as fav,
        cell.fav_den as fav_den,
        cell.unf as unf
    from long_cells
)

select * from final
-- Unordered, DuckDB's parallel aggregation hands rows back in a different order from
-- run to run, and complementary suppression breaks ties by position.
order by wave, level, unit, breakdown, grp, measure_kind, measure
