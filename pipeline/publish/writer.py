"""Publish: aggregates only, suppressed, benchmarked and verified, in their own file.

The published layer is a separate DuckDB file beside the store
(`Settings.published_path`). It holds no respondent rows, so the dashboard and the
exports, which open only this file, cannot read respondent-level data however they
are written; and a reader of the published file never holds the store's write lock.

The file is built under a temporary name, benchmarked from its own cells, checked by
the independent verifier (`pipeline.publish.verify`) and only then moved into place in one
rename, so readers see either the previous complete layer or the new one. If the
verifier finds a breach, the run fails loudly and the previous layer stays.

Frozen waves (issue 25, `pipeline.waves`) are held as published: every table with a
`wave` column gets the freshly computed rows of the run's open waves and, verbatim, the
held rows of the frozen waves (`RunScope`, `pipeline.scope`). Their cells are not
suppressed again (suppression's equations stay within a wave, so the open waves'
cells are decided alone) and the cells check runs on the open waves' cells; the held
cells were checked when first published, and the union of every version ever
published is checked by `verify_frozen_union` (`pipeline.publish.verify`) where it
exists. Rows pooled over waves (tables without a `wave` column such as `validation`,
and rows whose wave is NULL such as the overall reliability) describe the open waves;
a copy is kept in the store (`pooled_<table>`), and a run with no wave open publishes
them as last published.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from scipy import stats

from pipeline.publish.actions import action_rows, load_actions
from pipeline.publish.answers import item_answers
from pipeline.drivers import driver_inputs, driver_rows, of_shown_sites
from pipeline.benchmark import build_benchmarks
from pipeline.publish.cells import NOT_STATED, cell_sums, item_is_agreement
from pipeline.publish.disclosure import suppress_flag_counts, suppress_headcounts, suppress_small_cells
from pipeline.frames import with_columns, write_table
from pipeline.psychometrics.results import Judgement, PsychometricsResult
from pipeline.quality import analysis_view
from pipeline.store import drop_relation
from pipeline.publish.verify import (DisclosureError, VerificationReport, check_cells,
                                     verify_frozen_union, verify_published)
from pipeline.scope import RunScope, wave_list_sql
from pipeline.waves import (HELD_LAYER_STATE, held_layer, held_tables,
                            record_replaced_versions)
from published.layout import (CELL_COLUMNS, LAYOUT_KEY, PSYCHOMETRIC_COLUMNS, PUBLISHED_LAYOUT,
                              attribute_title)
from survey.instrument import Instrument
from survey.settings import Settings


Progress = Callable[[str], None]


@dataclass
class PublishReport:
    """What was published and what was hidden."""

    path: Path
    cells: int = 0
    hidden_primary: int = 0
    hidden_complementary: int = 0
    hidden_by_level: dict[str, int] = field(default_factory=dict)
    tables: dict[str, int] = field(default_factory=dict)
    #: Every site x measure x wave whose published verdict is not "in line".
    site_verdicts: list[dict] = field(default_factory=list)
    #: Funnels (measure x wave) with enough sites for each to be compared with the others.
    funnels_compared: int = 0
    verification: VerificationReport | None = None
    #: Waves whose rows this run computed, and waves held as published (frozen).
    waves_computed: tuple[int, ...] = ()
    waves_held: tuple[int, ...] = ()
    #: What the rows pooled over waves describe: the open waves computed now, or (no
    #: wave open) the rows as last published, kept (None: nothing pooled to keep).
    pooled_note: str | None = None


def published_cells(sums: pd.DataFrame, instrument: Instrument) -> pd.DataFrame:
    """Cell statistics from sums; every statistic of a hidden cell is NULL.

    mean, sd (n - 1 denominator), se = sd / sqrt(n), 95% CI mean +/- t(n-1) se;
    mean_0_10 = (mean - 1) * 2.5 for 1-5 measures (NHS Staff Survey convention);
    pct_favourable = 100 * favourable answers / answers; pct_unfavourable likewise for
    items (the rest of an item's answers chose the middle option).
    """
    out = sums.copy()
    n = out["n"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = out["s1"].to_numpy(float) / n
        var = (out["s2"].to_numpy(float) - n * mean ** 2) / (n - 1)
        sd = np.sqrt(np.clip(var, 0, None))
        se = sd / np.sqrt(n)
        # t quantiles for the few distinct n rather than for every cell: same values
        distinct_df, position = np.unique(n - 1, return_inverse=True)
        half = stats.t.ppf(0.975, distinct_df)[position.ravel()] * se
        pct = 100 * out["fav"].to_numpy(float) / out["fav_den"].to_numpy(float)
        pct_unf = 100 * out["unf"].to_numpy(float) / out["fav_den"].to_numpy(float)
    yes_no_items = [item for item, agreement in item_is_agreement(instrument).items()
                    if not agreement]
    kind, measure = out["measure_kind"], out["measure"]
    yes_no = (kind == "item") & measure.isin(yes_no_items)
    no_mean = (kind == "responses") | yes_no
    one_to_five = (kind == "scale") | ((kind == "item") & ~yes_no)
    hidden = out["suppressed"].to_numpy()
    blank = hidden | no_mean.to_numpy()
    out["mean"] = np.where(blank, np.nan, mean)
    out["sd"] = np.where(blank, np.nan, sd)
    out["se"] = np.where(blank, np.nan, se)
    out["ci_low"] = np.where(blank, np.nan, mean - half)
    out["ci_high"] = np.where(blank, np.nan, mean + half)
    out["mean_0_10"] = np.where(blank | ~one_to_five.to_numpy(), np.nan, (mean - 1) * 2.5)
    out["pct_favourable"] = np.where(hidden, np.nan, pct)
    out["pct_unfavourable"] = np.where(hidden, np.nan, pct_unf)
    out["n"] = out["n"].astype("Int64").mask(hidden)
    return out[list(CELL_COLUMNS)]


def _shown_site_waves(cells: pd.DataFrame, measure_kind: str) -> pd.DataFrame:
    return cells[(cells["level"] == "site") & (cells["breakdown"] == "all")
                 & (cells["measure_kind"] == measure_kind) & ~cells["suppressed"]]


def reliability_tables(psychometrics: PsychometricsResult, cells: pd.DataFrame, k: int,
                       exclude_flagged: bool = False) -> dict[str, pd.DataFrame]:
    """Reliability, ICC and data-quality rows safe to publish.

    Site-level rows appear only where the site's cell for that scale is shown, so no
    table gives away the n of a hidden cell; data-quality counts are NULL where they,
    or a difference between them and the site's shown responses (`exclude_flagged`
    says whether that counts flagged respondents), would be below k.
    """
    scales = _shown_site_waves(cells, "scale")[["wave", "unit", "measure"]].rename(
        columns={"unit": "site_code", "measure": "scale"})
    shown_scale = set(map(tuple, scales[["wave", "site_code", "scale"]].to_numpy()))
    reliability = pd.DataFrame([r.as_json() for r in psychometrics.reliability if r.reported])
    if len(reliability):
        site_rows = reliability["level"] == "site_wave"
        keep = ~site_rows | np.array([(w, s, sc) in shown_scale for w, s, sc in zip(
            reliability.get("wave", pd.Series(np.nan, index=reliability.index)),
            reliability.get("site_code", pd.Series(None, index=reliability.index)),
            reliability["scale"])])
        reliability = reliability[keep & (reliability["n"] >= k)]
    site_agreement = pd.DataFrame([r.as_json() for r in psychometrics.sites
                                   if (r.wave, r.site_code, r.scale) in shown_scale])
    icc = pd.DataFrame([r.as_json() for r in psychometrics.icc if r.note is None])
    responses = _shown_site_waves(cells, "responses")
    shown_sites = set(map(tuple, responses[["wave", "unit"]].to_numpy()))
    quality = pd.DataFrame([r.as_json() for r in psychometrics.data_quality.by_site
                            if (r.wave, r.site_code) in shown_sites])
    if len(quality):
        quality = quality.rename(columns={c: f"n_{c}" for c in (
            "respondents", "straight_lining", "speeding", "duplicate", "flagged")})
        analysed = quality.merge(
            responses[["wave", "unit", "n"]].rename(columns={"unit": "site_code"}),
            on=["wave", "site_code"], how="left")["n"].to_numpy(float)
        quality = suppress_flag_counts(quality, analysed, exclude_flagged, k)
    tables = {"reliability": reliability.drop(columns=["note"], errors="ignore"),
              "site_agreement": site_agreement, "icc": icc, "data_quality": quality}
    return ({name: with_columns(frame, PSYCHOMETRIC_COLUMNS[name])
             for name, frame in tables.items()} | {"validation": validation_rows(psychometrics)})


def validation_rows(psychometrics: PsychometricsResult) -> pd.DataFrame:
    """The pooled validity checks with their criteria and verdicts, one row per check.

    These come from all sites together (structure) or from groups the invariance step
    kept (each at least the minimum group size), so they describe no small group.
    """
    rows = []

    def add(check: str, scope: str, judged: Judgement) -> None:
        rows.append({"check": check, "scope": scope, "value": judged.value,
                     "criterion": judged.criterion, "source": judged.source,
                     "verdict": judged.verdict})

    structure = psychometrics.structure
    if structure.kmo is not None:
        add("KMO sampling adequacy", "all items", structure.kmo)
    if structure.cfa is not None:
        for judged, label in ((structure.cfa.cfi, "CFA: CFI"), (structure.cfa.tli, "CFA: TLI"),
                              (structure.cfa.rmsea, "CFA: RMSEA"),
                              (structure.cfa.srmr, "CFA: SRMR")):
            add(label, "intended structure", judged)
    for judgements, label in ((structure.composite_reliability, "Composite reliability"),
                              (structure.ave, "Average variance extracted"),
                              (structure.htmt, "HTMT discriminant validity")):
        for scope, judged in (judgements or {}).items():
            add(label, scope, judged)
    for test in psychometrics.invariance:
        if test.steps:
            rows.append({"check": "Measurement invariance", "scope":
                         f"{test.scale} across {test.across}", "value": None,
                         "criterion": "change in CFI >= -0.01 and RMSEA <= 0.015 per step",
                         "source": "Chen 2007", "verdict": test.steps[-1].verdict})
    return pd.DataFrame(rows, columns=["check", "scope", "value", "criterion", "source",
                                       "verdict"])


def aggregate_cells(con: duckdb.DuckDBPyConnection, instrument: Instrument,
                    settings: Settings, waves: tuple[int, ...] | None = None) -> pd.DataFrame:
    """The sums of every cell (the aggregate stage) of `waves` (None: every wave), in
    key order, for the suppression."""
    analysis_view(con, settings.exclude_flagged, waves)
    # Stores written before the cell sums became a frame keep a table of them (true
    # small counts included), which would otherwise stay behind, stale.
    drop_relation(con, "cell_sums")
    return cell_sums(con, instrument)


#: Tables describing the instrument, the sites and the run: every run writes them anew.
REFERENCE_TABLES = ("meta", "groups", "sites", "site_headcounts", "measures", "actions")
#: The benchmark stage's answer when it has nothing to compute (no wave open).
_NO_BENCHMARKS = {"rows": {}, "site_verdicts": [], "funnels_compared": 0}


def publish(con: duckdb.DuckDBPyConnection, instrument: Instrument, settings: Settings,
            psychometrics: PsychometricsResult | None = None, progress: Progress | None = None,
            decided: pd.DataFrame | None = None, scope: RunScope | None = None,
            drivers: Future | None = None) -> PublishReport:
    """Build, benchmark, verify and move into place the published layer of the store.

    `decided` is `suppress_small_cells(aggregate_cells(...))` when the caller has already
    run those two stages (`culture run` overlaps them with the psychometrics).
    `drivers` is `driver_rows(driver_inputs(...))` of the computed waves being fitted
    in a worker, when the caller started them (`culture run` does, after the quality
    flags); otherwise they are fitted here, beside the rest of the publishing.
    `scope` says which waves are computed and which held as published (default: the
    store's frozen waves held, the others computed); `decided` and `psychometrics`
    cover `scope.computed`. Every table with a `wave` column publishes the computed rows
    of the open waves and the held rows of the frozen ones.
    """
    step = progress or (lambda stage: None)
    k = settings.min_group_size
    final = settings.published_path
    scope = scope or RunScope.of_store(con)
    report = PublishReport(path=final, waves_computed=scope.fresh, waves_held=scope.frozen)
    # With every wave frozen there is nothing to compute: the layer is the held rows.
    computing = bool(scope.computed) or not scope.frozen
    computed_cells = None
    if computing:
        if decided is None:
            step("aggregate")
            sums = aggregate_cells(con, instrument, settings, scope.computed)
            step("suppress")
            decided = suppress_small_cells(sums, k)
        opened = decided[~decided["wave"].isin(scope.frozen)] if scope.frozen else decided
        report.cells = len(opened)
        report.hidden_primary = int((opened["suppression"] == "primary").sum())
        report.hidden_complementary = int((opened["suppression"] == "complementary").sum())
        report.hidden_by_level = {
            f"{level} {why}": int(count) for (level, why), count in
            opened[opened["suppressed"]].groupby(["level", "suppression"]).size().items()}
        _log_suppression(con, opened, scope)
        computed_cells = published_cells(decided, instrument)

    step("publish")
    tmp = final.with_name(final.name + ".tmp")
    tmp.unlink(missing_ok=True)
    # With waves held as published, the layer starts from a copy of the held layer file
    # (pipeline.waves.held_layer): ten years of held rows at national scale are
    # millions, copied as a file rather than written again. This run's tables go to a
    # file of their own, merged into the copy once complete.
    held = bool(held_tables(con)) if scope.frozen else False
    fresh = final.with_name(final.name + ".fresh.tmp") if held else tmp
    fresh.unlink(missing_ok=True)
    # Last year's values for the comparisons: the held cells of whole units.
    held_cells = _held_totals(con, scope) if held else None
    pub = duckdb.connect(str(fresh))
    writer = pub.cursor()
    drivers_pool = None
    try:
        tables: dict[str, pd.DataFrame | pa.Table] = {}
        if computed_cells is None:
            drivers = None
        else:
            tables["cells"] = _open_rows(computed_cells, scope)
            # Counted from the store (the respondents), shown only for the shown item cells.
            analysis_view(con, settings.exclude_flagged, scope.computed)
            if drivers is None:
                # What goes with seeking help early (issue 23), from the same
                # respondents: numpy work (most of it the logistic model's 255 fits a
                # group) on what DuckDB sums and fetches, so a worker fits the models
                # while this thread goes on with DuckDB's work.
                drivers_pool = ThreadPoolExecutor(max_workers=1)
                drivers = drivers_pool.submit(driver_rows, driver_inputs(con, instrument))
            tables["item_answers"] = _open_rows(item_answers(con, instrument, computed_cells),
                                                scope)
            if psychometrics is not None:
                tables |= {name: _open_rows(frame, scope) for name, frame in
                           reliability_tables(psychometrics, computed_cells, k,
                                              settings.exclude_flagged).items()}
        report.pooled_note, pooled_waves = _pooled(con, tables, scope, final)
        tables = _reference_tables(con, instrument, settings, scope, report.pooled_note,
                                   pooled_waves) | tables
        bench = _NO_BENCHMARKS
        if computed_cells is None:
            for name, frame in tables.items():
                write_table(pub, name, frame)
            cells_checked = VerificationReport()  # held cells: checked when published
        else:
            # The cells table is the largest (about a second of DuckDB's writing at
            # national scale, which leaves the GIL free): a worker writes the open
            # waves' cells, through its own cursor, and then runs the verifier's costly
            # part on them, which reads only the cells, while the comparisons are
            # computed in memory from those rows and the frozen waves' held cells (last
            # year's value of a new wave is the published one).
            rows = pa.Table.from_pandas(tables["cells"], preserve_index=False)
            pub.register("open_cells", rows)
            registered = ["open_cells"]
            if held_cells is not None:
                pub.register("held_cells", held_cells)
                registered.append("held_cells")
                pub.execute("create temp view published_cells as select * from open_cells "
                            "union all by name select * from held_cells")
            else:
                pub.execute("create temp view published_cells as select * from open_cells")
            with ThreadPoolExecutor(max_workers=1) as pool:
                checking = pool.submit(_write_and_check_cells, writer, rows, k)
                for name, frame in tables.items():
                    if name != "cells":
                        write_table(pub, name, frame)
                step("benchmark")
                if scope.fresh or not scope.frozen:
                    bench = build_benchmarks(pub, settings.target_rule, k,
                                             source="published_cells",
                                             waves=scope.fresh if scope.frozen else None)
                cells_checked = checking.result()
            pub.execute("drop view published_cells")
            for name in registered:
                pub.unregister(name)
        held_cells = None
        if drivers is not None:
            write_table(pub, "drivers", _open_rows(of_shown_sites(drivers.result(),
                                                                  computed_cells), scope))
        pub.execute("checkpoint")
    finally:
        if drivers_pool is not None:
            drivers_pool.shutdown(cancel_futures=True)
        writer.close()
        pub.close()
    report.site_verdicts = bench["site_verdicts"]
    report.funnels_compared = bench["funnels_compared"]
    step("verify")
    try:
        for attempt in (1, 2):
            if held:
                # (A second time from a held layer rebuilt from the store: see below.)
                _merge_into_held_layer(held_layer(con, settings.held_layer_path,
                                                  rebuild=attempt == 2), fresh, tmp)
            report.tables = _table_counts(tmp)
            try:
                report.verification = verify_published(tmp, k, cells_checked)
                # No cell of any wave may be recovered by combining this layer with any
                # version published before (the verifier's check over their union).
                # What readers of the layer being replaced saw of each wave this one
                # changes becomes a version this layer, and every later one, is checked
                # against.
                record_replaced_versions(con, final, tmp)
                verify_frozen_union(con, tmp, k)
                break
            except DisclosureError:
                # The held layer file is a copy kept for speed: one that no longer
                # matches the store's held rows (edited, or damaged yet readable) fails
                # the verifier, and is rebuilt once from the store.
                if not held or attempt == 2:
                    raise
    except Exception:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        if held:
            fresh.unlink(missing_ok=True)
    os.replace(tmp, final)
    return report


def _open_rows(frame: pd.DataFrame | pa.Table, scope: RunScope) -> pd.DataFrame | pa.Table:
    """`frame` without the rows of frozen waves (a full run computes them; the held rows
    take their place). Rows whose wave is NULL (pooled) are kept."""
    columns = frame.column_names if isinstance(frame, pa.Table) else frame.columns
    if not scope.frozen or "wave" not in columns:
        return frame
    if isinstance(frame, pa.Table):
        frozen = pc.fill_null(pc.is_in(frame["wave"], value_set=pa.array(
            scope.frozen, frame.schema.field("wave").type)), False)
        return frame.filter(pc.invert(frozen))
    return frame[~frame["wave"].isin(scope.frozen)].reset_index(drop=True)


def _held_totals(con: duckdb.DuckDBPyConnection, scope: RunScope) -> pa.Table:
    """The frozen waves' held cells of whole units (breakdown "all"), as stored when
    frozen: what the comparisons of a new wave read of earlier waves (last year's
    values, the waves published)."""
    return con.sql(f"select * from held_cells where breakdown = 'all' and "
                   f"{wave_list_sql(scope.frozen)}").to_arrow_table()


def _merge_into_held_layer(held: Path, fresh: Path, out: Path) -> None:
    """`out`: a copy of the held layer file `held` with this run's tables (the file
    `fresh`) added. A table both have gets the fresh rows after the held ones, in the
    held columns' order and types (a fresh value is cast to the held type; a held
    column typed NULL, all empty, takes the fresh type; a column only the fresh rows
    have is added at the end); a table only one has is taken as it is."""
    shutil.copyfile(held, out)
    layer = duckdb.connect(str(out))
    try:
        layer.execute(f"drop table {HELD_LAYER_STATE}")
        layer.execute("attach ? as fresh (read_only)", [str(fresh)])
        columns = ("select table_name, column_name, data_type from information_schema.columns "
                   "where table_catalog = {} and table_schema = 'main' "
                   "order by table_name, ordinal_position")
        held_types: dict[str, dict[str, str]] = {}
        for table, column, kind in layer.execute(columns.format("current_database()")
                                                 ).fetchall():
            held_types.setdefault(table, {})[column] = kind
        fresh_types: dict[str, dict[str, str]] = {}
        for table, column, kind in layer.execute(columns.format("'fresh'")).fetchall():
            fresh_types.setdefault(table, {})[column] = kind
        for name, types in fresh_types.items():
            if name not in held_types:
                layer.execute(f'create table "{name}" as select * from fresh."{name}"')
                continue
            for column, kind in types.items():
                if column not in held_types[name]:
                    layer.execute(f'alter table "{name}" add column "{column}" {kind}')
                elif held_types[name][column] == '"NULL"' and kind != '"NULL"':
                    layer.execute(f'alter table "{name}" alter column "{column}" '
                                  f'set data type {kind}')
            layer.execute(f'insert into "{name}" by name select * from fresh."{name}"')
        layer.execute("detach fresh")
        layer.execute("checkpoint")
    finally:
        layer.close()


def _table_counts(path: Path) -> dict[str, int]:
    """Rows of every table of the layer file at `path`."""
    layer = duckdb.connect(str(path), read_only=True)
    try:
        return {name: layer.execute(f'select count(*) from "{name}"').fetchall()[0][0]
                for (name,) in layer.execute(
                    "select table_name from information_schema.tables where "
                    "table_schema = 'main' and table_type = 'BASE TABLE' order by 1"
                ).fetchall()}
    finally:
        layer.close()


def _pooled(con: duckdb.DuckDBPyConnection, tables: dict, scope: RunScope,
            final: Path) -> tuple[str | None, tuple[int, ...]]:
    """Rows pooled over waves: kept in the store when this run computed them from open
    waves (`pooled_<table>`), put back as last published when no wave is open. Returns
    what the summary says of them (None: no frozen wave, nothing to say) and the waves
    they describe."""
    if scope.pooled:
        for name, frame in tables.items():
            if isinstance(frame, pa.Table):
                rows = (frame.filter(pc.is_null(frame["wave"]))
                        if "wave" in frame.column_names else frame)
            else:
                rows = pa.Table.from_pandas(
                    frame[frame["wave"].isna()] if "wave" in frame.columns else frame,
                    preserve_index=False)
            if "wave" in rows.column_names and not len(rows):
                con.execute(f'drop table if exists "pooled_{name}"')
                continue
            con.register("pooled_rows", rows)
            try:
                con.execute(f'create or replace table "pooled_{name}" as '
                            f'select * from pooled_rows')
            finally:
                con.unregister("pooled_rows")
        con.execute("create or replace table pooled_waves as select unnest(?::integer[]) "
                    "as wave", [list(scope.pooled)])
        if not scope.frozen:
            return None, scope.pooled
        return (f"rows pooled over waves (validation, overall reliability) describe the "
                f"open wave(s) {', '.join(map(str, scope.pooled))}", scope.pooled)
    if not scope.frozen:
        return None, ()
    kept = _last_pooled(con, final)
    for name, rows in kept.items():
        frame = rows.to_pandas()
        current = tables.get(name)
        if current is None or "wave" not in frame.columns:
            tables[name] = frame
            continue
        if isinstance(current, pa.Table):
            current = current.to_pandas()
        tables[name] = pd.concat([current[current["wave"].notna()], frame],
                                 ignore_index=True)
    described = [w for (w,) in con.execute("select wave from pooled_waves order by 1"
                                           ).fetchall()] if _store_has(con, "pooled_waves") \
        else []
    return ("no wave is open: rows pooled over waves (validation, overall reliability) "
            "are kept as last published"
            + (f" (from wave(s) {', '.join(map(str, described))})" if described else ""),
            tuple(described))


def _store_has(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(con.execute("select count(*) from information_schema.tables where "
                            "table_schema = 'main' and table_name = ?",
                            [table]).fetchall()[0][0])


def _last_pooled(con: duckdb.DuckDBPyConnection, final: Path) -> dict[str, pa.Table]:
    """The pooled rows last published: the store's copies, or (a store from before
    they were kept) the published file's own."""
    names = [row[0] for row in con.execute(
        "select table_name from information_schema.tables where table_schema = 'main' "
        "and table_name like 'pooled\\_%' escape '\\' and table_name <> 'pooled_waves' "
        "order by 1").fetchall()]
    if names:
        return {name[len("pooled_"):]: con.sql(f'select * from "{name}"').to_arrow_table()
                for name in names}
    if not final.exists():
        return {}
    old = duckdb.connect(str(final), read_only=True)
    try:
        kept = {}
        for (table,) in old.execute("select table_name from information_schema.tables "
                                    "order by 1").fetchall():
            if table in REFERENCE_TABLES:
                continue
            columns = [c for (c,) in old.execute(
                "select column_name from information_schema.columns where table_name = ?",
                [table]).fetchall()]
            where = " where wave is null" if "wave" in columns else ""
            rows = old.sql(f'select * from "{table}"{where}').to_arrow_table()
            if len(rows):
                kept[table] = rows
        return kept
    finally:
        old.close()


def _write_and_check_cells(cursor: duckdb.DuckDBPyConnection, rows: pa.Table,
                           k: int) -> VerificationReport:
    """Table `cells` of the published file from `rows`, then `check_cells` on it (none
    to check when every wave is held as published: a full run with every wave frozen)."""
    write_table(cursor, "cells", rows)
    return check_cells(cursor, k) if len(rows) else VerificationReport()


def _reference_tables(con, instrument: Instrument, settings: Settings,
                      scope: RunScope | None = None,
                      pooled_note: str | None = None,
                      pooled_waves: tuple[int, ...] = ()) -> dict[str, pd.DataFrame]:
    """Descriptions readers need beside the numbers: sites, measures, actions, settings
    (and, in `meta`, which waves were computed and which held as published)."""
    sites = con.execute("select site_code, name, site_type, region from sites "
                        "order by site_code").df()
    # Staff in post per group are HR figures, not answers, but a group of a few staff
    # named with its site is still small-group information: pooled below k.
    headcounts = suppress_headcounts(con.execute(
        "select site_code, staff_group, headcount from site_headcounts order by all").df(),
        settings.min_group_size)
    # scale: the item's scale (a codebook's "measures"); written in the questionnaire's
    # order, which exports code their value labels by.
    measures = [{"measure_kind": "responses", "measure": "responses", "name": "Responses",
                 "description": "Number of people who answered", "principles": "",
                 "scale": ""}]
    measures += [{"measure_kind": "scale", "measure": s.id, "name": s.name,
                  "description": s.high_score_means,
                  "principles": ",".join(p.id for p in instrument.principles if s.id in p.scales),
                  "scale": s.id}
                 for s in instrument.scales]
    measures += [{"measure_kind": "principle", "measure": p.id, "name": p.name,
                  "description": p.summary, "principles": p.id, "scale": ""}
                 for p in instrument.principles]
    measures += [{"measure_kind": "item", "measure": i.id, "name": i.text,
                  "description": ("reverse-keyed: agreeing is unfavourable; shown after "
                                  "reversal" if i.reverse else ""),
                  "principles": ",".join(i.principles), "scale": i.scale or ""}
                 for i in instrument.items]
    meta = {LAYOUT_KEY: PUBLISHED_LAYOUT, "instrument": instrument.key,
            "min_group_size": str(settings.min_group_size),
            "target_rule": settings.target_rule,
            "excluded_flagged": str(settings.exclude_flagged).lower(),
            "published_on": dt.date.today().isoformat()}
    if scope is not None:
        meta |= scope.describe()
        meta["waves_pooled"] = ",".join(map(str, pooled_waves))
        if pooled_note is not None:
            meta["pooled_rows"] = pooled_note
    groups = [{"breakdown": a.id, "attribute": attribute_title(a.id),
               "grp": o.code, "label": o.label, "position": position}
              for a in instrument.attributes
              for position, o in enumerate(a.options) if o.code != "prefer_not_to_say"]
    groups += [{"breakdown": a.id, "attribute": attribute_title(a.id), "grp": NOT_STATED,
        "label": "Not stated (blank or prefer not to say)", "position": 99}
        for a in instrument.attributes]
    return {"meta": pd.DataFrame(list(meta.items()), columns=["key", "value"]),
            "groups": pd.DataFrame(groups),
            "sites": sites, "site_headcounts": headcounts,
            "measures": pd.DataFrame(measures),
            "actions": pd.DataFrame(action_rows(load_actions(instrument)))}


def _log_suppression(con, decided: pd.DataFrame, scope: RunScope | None = None) -> None:
    """Keep why each cell was hidden in the store (not published): the survey lead's
    audit. The frozen waves' lines stay as logged when those waves were published."""
    hidden = decided.loc[decided["suppressed"], ["wave", "level", "unit", "breakdown", "grp",
                                                 "measure_kind", "measure", "n", "suppression"]]
    if scope is None or not scope.frozen or not _store_has(con, "suppression_log"):
        write_table(con, "suppression_log", hidden)
        return
    con.execute(f"delete from suppression_log where not ({wave_list_sql(scope.frozen)})")
    con.register("hidden_cells", pa.Table.from_pandas(hidden, preserve_index=False))
    try:
        con.execute("insert into suppression_log by name select * from hidden_cells")
    finally:
        con.unregister("hidden_cells")
