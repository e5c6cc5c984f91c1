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

from pathlib import Path

import duckdb
import pandas as pd

from pipeline.frames import query_frame
from pipeline.scoring import keyed_item_sql, respondent_scores_sql
from pipeline.sql_templates import columns, quote, render
from published.layout import NOT_STATED
from survey.instrument import Instrument

SQL_DIR = Path(__file__).resolve().parent / "sql"

#: Breakdown and group names of a unit's total (written as 'all' in sql/*.sql).
ALL = "all"
#: Unit name of the national level.
NATIONAL = "national"
#: The units a cell can sum over (the `level` column): one site, a peer group, all sites.
CELL_LEVELS = ("site", "peer", "national")
MEASURE_KINDS = ("responses", "scale", "principle", "item")
#: The order cells come in (sql/long_cells.sql). Complementary suppression breaks ties
#: between equally good cells to hide by their position, and DuckDB's parallel
#: aggregation hands rows back in a different order from run to run: unordered, the
#: same data could be published with different cells hidden on each run, and two such
#: publications together could give a cell away.
KEY_ORDER = ("wave", "level", "unit", "breakdown", "grp", "measure_kind", "measure")


def breakdown_groups(instrument: Instrument) -> dict[str, list[str]]:
    """Every attribute's published groups: its options, with "prefer not to say" folded
    into ``not_stated`` (blank and declined answers are one group)."""
    groups = {}
    for attribute in instrument.attributes:
        codes = [o.code for o in attribute.options if o.code != "prefer_not_to_say"]
        groups[attribute.id] = codes + [NOT_STATED]
    return groups


def unfavourable_codes(rs) -> tuple[int, ...]:
    """Codes that are neither favourable nor the middle option of an odd-length scale."""
    codes = list(rs.codes)
    middle = codes[len(codes) // 2] if len(codes) % 2 else None
    return tuple(c for c in codes if c not in rs.favourable and c != middle)


def respondent_values_sql(instrument: Instrument) -> str:
    """The query behind `respondent_values` (sql/respondent_values.sql): one row per
    analysed respondent with groups, scale scores, keyed items and principle scores."""
    measures = [f"coalesce(nullif({quote(a.id)}, 'prefer_not_to_say'), '{NOT_STATED}') "
                f"as {quote('g_' + a.id)}" for a in instrument.attributes]
    for scale in instrument.scales:
        measures += [quote(prefix + scale.id) for prefix in ("a_", "f_", "s_")]
    for item in instrument.items:
        rs = instrument.response_scale(item.response_scale)
        value = keyed_item_sql(instrument, item)
        fav = ", ".join(str(c) for c in rs.favourable)
        unf = ", ".join(str(c) for c in unfavourable_codes(rs))
        measures += [f"{value}::double as {quote('i_' + item.id)}",
                     f"({value} in ({fav}))::integer as {quote('if_' + item.id)}",
                     f"({value} in ({unf}))::integer as {quote('iu_' + item.id)}"]
    principles = ["*"]
    for principle in instrument.principles:
        scores = [quote("s_" + s) for s in principle.scales]
        present = " + ".join(f"({s} is not null)::integer" for s in scores)
        total = " + ".join(f"coalesce({s}, 0)" for s in scores)
        principles.append(f"case when ({present}) > 0 then (({total}) / ({present}) - 1) * 25 "
                          f"end as {quote('p_' + principle.id)}")
    return render(SQL_DIR, "respondent_values.sql",
                  respondent_scores=respondent_scores_sql(instrument, "analysis_responses"),
                  measures=columns(measures), with_principles=columns(principles))


def _is_agreement(instrument: Instrument, item) -> bool:
    return len(instrument.response_scale(item.response_scale).codes) > 2


def _measure_sums(instrument: Instrument) -> list[str]:
    """The select list of sql/group_sums.sql: counts and sums per scale and principle."""
    sums = ["count(*)::bigint as n__responses"]
    for scale in instrument.scales:
        s = quote("s_" + scale.id)
        sums += [f"count({s})::bigint as {quote('n__scale__' + scale.id)}",
                 f"sum({s}) as {quote('s1__scale__' + scale.id)}",
                 f"sum({s} * {s}) as {quote('s2__scale__' + scale.id)}",
                 f"sum(case when {s} is not null then {quote('f_' + scale.id)} end)"
                 f"::bigint as {quote('fav__scale__' + scale.id)}",
                 f"sum(case when {s} is not null then {quote('a_' + scale.id)} end)"
                 f"::bigint as {quote('den__scale__' + scale.id)}"]
    for principle in instrument.principles:
        p = quote("p_" + principle.id)
        sums += [f"count({p})::bigint as {quote('n__principle__' + principle.id)}",
                 f"sum({p}) as {quote('s1__principle__' + principle.id)}",
                 f"sum({p} * {p}) as {quote('s2__principle__' + principle.id)}"]
    return sums


def _item_sums(instrument: Instrument) -> list[str]:
    """The select list of sql/item_sums.sql."""
    sums = []
    for item in instrument.items:
        v = quote("i_" + item.id)
        sums += [f"count({v})::bigint as {quote('n__item__' + item.id)}",
                 f"sum({v}) as {quote('s1__item__' + item.id)}",
                 f"sum({v} * {v}) as {quote('s2__item__' + item.id)}",
                 f"sum({quote('if_' + item.id)})::bigint as {quote('fav__item__' + item.id)}",
                 f"sum({quote('iu_' + item.id)})::bigint as {quote('unf__item__' + item.id)}",
                 f"count({v})::bigint as {quote('den__item__' + item.id)}"]
    return sums


def cell_sums(con: duckdb.DuckDBPyConnection, instrument: Instrument) -> pd.DataFrame:
    """Every cell's sums from `analysis_responses`, in key order (see `KEY_ORDER`).

    One scan groups respondents by wave x site for every attribute at once (grouping
    sets); peer-group and national cells are sums of site cells, so they cost nothing
    more. Items are counted for site totals only.
    """
    attributes = [quote("g_" + a.id) for a in instrument.attributes]
    con.execute("create or replace temp view respondent_values as "
                + respondent_values_sql(instrument))
    try:
        if attributes:
            grouping = "grouping sets (" + ", ".join(
                f"(wave, site_code, {g})" for g in attributes) + ")"
            breakdown = "case " + " ".join(
                f"when grouping({g}) = 0 then '{a.id}'"
                for g, a in zip(attributes, instrument.attributes)) + " end"
            grp = "coalesce(" + ", ".join(attributes) + ")"
        else:       # (an instrument asking nothing about the respondent)
            grouping, breakdown, grp = "wave, site_code", f"'{ALL}'", f"'{ALL}'"
        con.execute(render(SQL_DIR, "group_sums.sql", breakdown=breakdown, grp=grp,
                           measure_sums=columns(_measure_sums(instrument)),
                           grouping=grouping))
        if attributes:
            con.execute(render(SQL_DIR, "site_totals.sql"),
                        {"breakdown": instrument.attributes[0].id})
        con.execute(render(SQL_DIR, "item_sums.sql",
                           item_sums=columns(_item_sums(instrument))))
        for table in ("group_sums", "item_sums"):
            measures = [quote(c) for c in _sum_columns(con, table)]
            con.execute(render(SQL_DIR, "wide_sums.sql", wide_table=table + "_wide",
                               sums=table, measures=columns(measures),
                               summed=columns(f"sum({c}) as {c}" for c in measures)),
                        {"national": NATIONAL})
        _register_grid(con, instrument)
        cells = {"group_sums": [], "item_sums": []}
        for kind, measure, table in _measures(instrument):
            cells[table].append(_cell_struct(kind, measure))
        return query_frame(con, render(SQL_DIR, "long_cells.sql",
                                       group_cells=", ".join(cells["group_sums"]),
                                       item_cells=", ".join(cells["item_sums"])))
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
    con.execute(render(SQL_DIR, "cell_grid.sql"))
    con.unregister("breakdown_grid_frame")


def item_is_agreement(instrument: Instrument) -> dict[str, bool]:
    """Whether each item is answered on an agreement scale (a mean makes sense) or yes/no."""
    return {item.id: _is_agreement(instrument, item) for item in instrument.items}
