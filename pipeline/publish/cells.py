"""Sufficient statistics for every reportable cell, computed from respondents in DuckDB.

A *cell* is one number a reader could be shown: a measure (the response count, a
scale, a principle or an item) for one unit (a site, a peer group of sites of one
type, or all sites) in one wave, for everyone or for one group of an attribute
(staff group, contract, ...). This module turns respondent rows into the cell sums
(`cell_sums`: a frame with one row per cell, which the store does not keep), holding
for each cell its n and the sums the published layer is built from:

    n        respondents counted (with a score for a scale or principle, an answer
             for an item)
    s1, s2   sum and sum of squares of their values (scales 1-5 after reverse-keying;
             principles 0-100; agreement items 1-5 after reverse-keying)
    fav      favourable answers, fav_den answers counted ("% favourable" =
             fav / fav_den; for a scale every answered item counts, the AHRQ SOPS
             composite convention)
    unf      unfavourable answers of an item (the options below the middle one after
             reverse-keying; "No" of a yes/no item), so that an item's answers split
             into favourable / neither / unfavourable for stacked bars

Cells form *partitions*: a site's total is the sum of its groups for each attribute
(respondents who left an attribute blank or preferred not to say form the group
``not_stated``, so each breakdown adds up exactly); a peer group is the sum of its
sites; all sites are the sum of the peer groups. Every option of every attribute gets
a row, even when nobody chose it, so that a suppressed cell never reveals whether it
was empty. The disclosure step (`pipeline.publish.disclosure`) relies on all of this.

Only this module and the psychometrics stage read respondents; what leaves the store
is decided by `pipeline.publish.writer`.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from pipeline.frames import query_frame
from pipeline.scoring import scale_score_sql, scale_sql_terms
from pipeline.ingest.row_checks import quote
from survey.instrument import Instrument

#: Group of respondents who did not state an attribute (blank or "prefer not to say").
NOT_STATED = "not_stated"
#: Breakdown and group names of a unit's total.
ALL = "all"
#: Unit name of the national level.
NATIONAL = "national"
LEVELS = ("site", "peer", "national")
MEASURE_KINDS = ("responses", "scale", "principle", "item")
#: The order cells come in. Complementary suppression breaks ties between equally good
#: cells to hide by their position, and DuckDB's parallel aggregation hands rows back
#: in a different order from run to run: unordered, the same data could be published
#: with different cells hidden on each run, and two such publications together could
#: give a cell away.
KEY_ORDER = ("wave", "level", "unit", "breakdown", "grp", "measure_kind", "measure")


def breakdown_groups(instrument: Instrument) -> dict[str, list[str]]:
    """Every attribute's published groups: its options, with "prefer not to say" folded
    into ``not_stated`` (blank and declined answers are one group)."""
    groups = {}
    for attribute in instrument.attributes:
        codes = [o.code for o in attribute.options if o.code != "prefer_not_to_say"]
        groups[attribute.id] = codes + [NOT_STATED]
    return groups


def _group_expr(attribute: str) -> str:
    column = quote(attribute)
    return (f"coalesce(nullif({column}, 'prefer_not_to_say'), '{NOT_STATED}')")


def _respondent_sql(instrument: Instrument) -> str:
    """One row per analysed respondent: groups, scale scores, principle scores, keyed items."""
    columns = ["site_code", "wave"]
    columns += [f"{_group_expr(a.id)} as {quote('g_' + a.id)}" for a in instrument.attributes]
    for scale in instrument.scales:
        answered, _, favourable = scale_sql_terms(instrument, scale.id)
        columns += [
            f"({answered}) as {quote('a_' + scale.id)}",
            f"({favourable}) as {quote('f_' + scale.id)}",
            f"{scale_score_sql(instrument, scale.id)} as {quote('s_' + scale.id)}",
        ]
    for item in instrument.items:
        rs = instrument.response_scale(item.response_scale)
        low, high = min(rs.codes), max(rs.codes)
        value = f"({low + high} - {quote(item.id)})" if item.reverse else quote(item.id)
        fav = ", ".join(str(c) for c in rs.favourable)
        unf = ", ".join(str(c) for c in unfavourable_codes(rs))
        columns += [f"{value}::double as {quote('i_' + item.id)}",
                    f"({value} in ({fav}))::integer as {quote('if_' + item.id)}",
                    f"({value} in ({unf}))::integer as {quote('iu_' + item.id)}"]
    return "select " + ",\n       ".join(columns) + "\nfrom analysis_responses"


def unfavourable_codes(rs) -> tuple[int, ...]:
    """Codes that are neither favourable nor the middle option of an odd-length scale."""
    codes = list(rs.codes)
    middle = codes[len(codes) // 2] if len(codes) % 2 else None
    return tuple(c for c in codes if c not in rs.favourable and c != middle)


def _principle_exprs(instrument: Instrument) -> list[str]:
    """Respondent principle score, 0-100: the mean of the principle's scale scores that
    the respondent has, rescaled from 1-5 ((mean - 1) * 25)."""
    exprs = []
    for principle in instrument.principles:
        scores = [quote("s_" + s) for s in principle.scales]
        present = " + ".join(f"({s} is not null)::integer" for s in scores)
        total = " + ".join(f"coalesce({s}, 0)" for s in scores)
        exprs.append(f"case when ({present}) > 0 then (({total}) / ({present}) - 1) * 25 end "
                     f"as {quote('p_' + principle.id)}")
    return exprs


def _is_agreement(instrument: Instrument, item) -> bool:
    return len(instrument.response_scale(item.response_scale).codes) > 2


def cell_sums(con: duckdb.DuckDBPyConnection, instrument: Instrument) -> pd.DataFrame:
    """Every cell's sums from `analysis_responses`, in key order (see `KEY_ORDER`).

    One scan groups respondents by wave x site for every attribute at once (grouping
    sets); peer-group and national cells are sums of site cells, so they cost nothing
    more. Items are counted for site totals only: item-level results by group would
    multiply small cells without telling a director anything the scales do not.
    """
    attributes = [a.id for a in instrument.attributes]
    # A view, not a table: each scan below computes only the columns it uses, instead of
    # writing ~150 derived columns for every respondent first.
    con.execute("create or replace temp view respondent_values as select *, "
                + ", ".join(_principle_exprs(instrument))
                + f" from ({_respondent_sql(instrument)})")
    measure_aggs = ["count(*)::bigint as n__responses"]
    for scale in instrument.scales:
        s = quote("s_" + scale.id)
        measure_aggs += [f"count({s})::bigint as {quote('n__scale__' + scale.id)}",
                         f"sum({s}) as {quote('s1__scale__' + scale.id)}",
                         f"sum({s} * {s}) as {quote('s2__scale__' + scale.id)}",
                         f"sum(case when {s} is not null then {quote('f_' + scale.id)} end)"
                         f"::bigint as {quote('fav__scale__' + scale.id)}",
                         f"sum(case when {s} is not null then {quote('a_' + scale.id)} end)"
                         f"::bigint as {quote('den__scale__' + scale.id)}"]
    for principle in instrument.principles:
        p = quote("p_" + principle.id)
        measure_aggs += [f"count({p})::bigint as {quote('n__principle__' + principle.id)}",
                         f"sum({p}) as {quote('s1__principle__' + principle.id)}",
                         f"sum({p} * {p}) as {quote('s2__principle__' + principle.id)}"]
    if not attributes:      # (an instrument asking nothing about the respondent)
        con.execute(f"""
            create or replace temp table group_sums as
            select wave, site_code, '{ALL}' as breakdown, '{ALL}' as grp,
                   {', '.join(measure_aggs)}
            from respondent_values group by wave, site_code""")
        return _finish_cell_sums(con, instrument)
    grouping_sets = ", ".join(f"(wave, site_code, {quote('g_' + a)})" for a in attributes)
    breakdown_case = "case " + " ".join(
        f"when grouping({quote('g_' + a)}) = 0 then '{a}'" for a in attributes) + " end"
    group_case = "coalesce(" + ", ".join(quote("g_" + a) for a in attributes) + ")"
    con.execute(f"""
        create or replace temp table group_sums as
        select wave, site_code, {breakdown_case} as breakdown, {group_case} as grp,
               {', '.join(measure_aggs)}
        from respondent_values
        group by grouping sets ({grouping_sets})""")
    # Every attribute's groups partition the site (not_stated included), so each site
    # total is the sum of the first attribute's groups: one grouping set fewer over the
    # respondents (every measure column is a count or a sum; the insert casts each sum
    # back to its column's type).
    con.execute(f"""
        insert into group_sums
        select wave, site_code, '{ALL}', '{ALL}',
               sum(columns(* exclude (wave, site_code, breakdown, grp)))
        from group_sums where breakdown = '{attributes[0]}' group by wave, site_code""")
    return _finish_cell_sums(con, instrument)


def _finish_cell_sums(con: duckdb.DuckDBPyConnection, instrument: Instrument) -> pd.DataFrame:
    """Item sums, the upper levels, the grid and the long cells, from `group_sums`."""
    item_aggs = []
    for item in instrument.items:
        v = quote("i_" + item.id)
        item_aggs += [f"count({v})::bigint as {quote('n__item__' + item.id)}",
                      f"sum({v}) as {quote('s1__item__' + item.id)}",
                      f"sum({v} * {v}) as {quote('s2__item__' + item.id)}",
                      f"sum({quote('if_' + item.id)})::bigint as {quote('fav__item__' + item.id)}",
                      f"sum({quote('iu_' + item.id)})::bigint as {quote('unf__item__' + item.id)}",
                      f"count({v})::bigint as {quote('den__item__' + item.id)}"]
    con.execute(f"""
        create or replace temp table item_sums as
        select wave, site_code, '{ALL}' as breakdown, '{ALL}' as grp, {', '.join(item_aggs)}
        from respondent_values group by wave, site_code""")

    # Peer-group and all-sites sums are sums of site sums. They are taken while the sums
    # are still wide (a row per site x wave x group, some 50k rows at national scale)
    # rather than over the long cells (800k rows, a string key each).
    for table in ("group_sums", "item_sums"):
        columns = [quote(c) for c in _sum_columns(con, table)]
        measures = ", ".join(columns)
        summed = ", ".join(f"sum({c}) as {c}" for c in columns)
        con.execute(f"""
            create or replace temp table {table}_wide as
            with site_sums as (
                select t.wave, t.site_code as unit, s.site_type as peer_group, breakdown, grp,
                       {measures}
                from {table} t join sites s using (site_code)
            ),
            upper_sums as (
                select wave, peer_group, grouping(peer_group) as all_sites, breakdown, grp,
                       {summed}
                from site_sums
                group by grouping sets ((wave, peer_group, breakdown, grp),
                                        (wave, breakdown, grp))
            )
            select wave, 'site' as level, unit, peer_group, breakdown, grp, {measures}
            from site_sums
            union all
            select wave,
                   case when all_sites = 1 then 'national' else 'peer' end,
                   case when all_sites = 1 then $national else peer_group end,
                   case when all_sites = 1 then null else peer_group end,
                   breakdown, grp, {measures}
            from upper_sums""", {"national": NATIONAL})

    _register_grid(con, instrument)
    # Wide sums to long cells in one pass: every grid row carries a list with one struct
    # per measure, which unnest turns into rows.
    group_cells = [_cell_struct(kind, measure) for kind, measure, table in _measures(instrument)
                   if table == "group_sums"]
    item_cells = [_cell_struct(kind, measure) for kind, measure, table in _measures(instrument)
                  if table == "item_sums"]
    # A query, not a table: the frame is the only copy the pipeline needs (writing 800k
    # long rows into the store cost more than computing them).
    try:
        return query_frame(con, f"""
            with long_cells as (
                select g.wave, g.level, g.unit, g.peer_group, g.breakdown, g.grp,
                       unnest([{', '.join(group_cells)}]) as cell
                from cell_grid g left join group_sums_wide t
                using (wave, level, unit, breakdown, grp)
                union all
                select g.wave, g.level, g.unit, g.peer_group, g.breakdown, g.grp,
                       unnest([{', '.join(item_cells)}]) as cell
                from cell_grid g left join item_sums_wide t
                using (wave, level, unit, breakdown, grp)
                where g.breakdown = '{ALL}'
            )
            select wave, level, unit, peer_group, breakdown, grp,
                   cell.measure_kind as measure_kind, cell.measure as measure, cell.n as n,
                   cell.s1 as s1, cell.s2 as s2, cell.fav as fav, cell.fav_den as fav_den,
                   cell.unf as unf
            from long_cells
            order by {', '.join(KEY_ORDER)}""")
    finally:
        for table in ("group_sums", "item_sums", "group_sums_wide", "item_sums_wide",
                      "cell_grid"):
            con.execute(f"drop table if exists {table}")
        con.execute("drop view if exists respondent_values")


def _sum_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    """The measure columns (counts and sums) of a wide sums table."""
    return [row[0] for row in con.execute(f"describe {table}").fetchall()
            if row[0] not in ("wave", "site_code", "breakdown", "grp")]


def _cell_struct(kind: str, measure: str) -> str:
    """One long cell from a wide sums row: the measure's columns, NULL where a kind has
    no such statistic (responses have only n; principles no favourable counts; only
    items count unfavourable answers); n is 0 for a grid group nobody belongs to."""
    prefix = f"{kind}__{measure}" if kind != "responses" else "responses"
    has_sums, has_fav = kind != "responses", kind in ("scale", "item")
    s1 = quote(f"s1__{prefix}") if has_sums else "null"
    s2 = quote(f"s2__{prefix}") if has_sums else "null"
    fav = quote(f"fav__{prefix}") if has_fav else "null"
    den = quote(f"den__{prefix}") if has_fav else "null"
    unf = quote(f"unf__{prefix}") if kind == "item" else "null"
    return (f"{{'measure_kind': '{kind}', 'measure': '{measure}', "
            f"'n': coalesce({quote(f'n__{prefix}')}, 0)::bigint, 's1': {s1}::double, "
            f"'s2': {s2}::double, 'fav': {fav}::bigint, 'fav_den': {den}::bigint, "
            f"'unf': {unf}::bigint}}")


def _measures(instrument: Instrument):
    yield "responses", "responses", "group_sums"
    for scale in instrument.scales:
        yield "scale", scale.id, "group_sums"
    for principle in instrument.principles:
        yield "principle", principle.id, "group_sums"
    for item in instrument.items:
        yield "item", item.id, "item_sums"


def _register_grid(con: duckdb.DuckDBPyConnection, instrument: Instrument) -> None:
    """`cell_grid`: every unit (site, peer group, all sites) with responses in a wave x
    every breakdown group; the units come from `group_sums_wide`, which has a total row for
    each, so the grid costs no scan of the respondents."""
    groups = [(ALL, ALL)] + [(b, g) for b, gs in breakdown_groups(instrument).items() for g in gs]
    frame = pd.DataFrame(groups, columns=["breakdown", "grp"])
    con.register("breakdown_grid_frame", frame)
    con.execute(f"""
        create or replace temp table cell_grid as
        select u.wave, u.level, u.unit, u.peer_group, b.breakdown, b.grp
        from (select wave, level, unit, peer_group from group_sums_wide
              where breakdown = '{ALL}') u
        cross join breakdown_grid_frame b""")
    con.unregister("breakdown_grid_frame")


def item_is_agreement(instrument: Instrument) -> dict[str, bool]:
    """Whether each item is answered on an agreement scale (a mean makes sense) or yes/no."""
    return {item.id: _is_agreement(instrument, item) for item in instrument.items}
