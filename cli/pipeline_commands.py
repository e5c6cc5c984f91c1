"""Commands that run the pipeline: run (ingest to publish), psychometrics, demo.

Also how a run's results are printed: reliability per scale, what was published and
hidden, and each site's verdict against the other sites where it is not "in line".
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.table import Table

from cli.dashboard_commands import serve_dashboard
from cli.options import DbOption, InstrumentOption, err, instrument_of, out, settings_for
from cli.store_commands import print_import, print_ingest, print_summary
from published.layout import MIN_OTHER_SITES
from survey.settings import SAMPLES_DIR, Settings, resolve_settings

if TYPE_CHECKING:
    from pipeline.psychometrics.results import PsychometricsResult


def psychometrics(wave: Annotated[Optional[int], typer.Option(help="Only this wave")] = None,
                  site: Annotated[Optional[str], typer.Option(help="Only this site")] = None,
                  out_dir: Annotated[Path, typer.Option(
                      "--out", help="Folder for the HTML and JSON report")] = Path("reports"),
                  db: DbOption = None, instrument: InstrumentOption = None) -> None:
    """Score responses and write the validation report (HTML and JSON).

    Example: culture psychometrics --wave 2026 --out reports
    """
    from pipeline.psychometrics.stage import run_psychometrics
    from pipeline.store import open_store
    from pipeline.psychometrics.report import write_report

    settings = settings_for(db, instrument)
    inst = instrument_of(settings)
    with open_store(settings.db_path) as con:
        result = run_psychometrics(con, inst, settings, wave, site)
    html_path, json_path = write_report(result, inst, out_dir)
    _print_reliability(result)
    out.print(f"validation report: {html_path} and {json_path}")


def _print_reliability(result: PsychometricsResult) -> None:
    def two(value) -> str:
        return "n/a" if value is None or not math.isfinite(value) else f"{value:.2f}"

    for row in (r for r in result.reliability if r.level == "overall"):
        if not row.reported:
            out.print(f"  {row.scale:<18} {row.note}")
            continue
        omega = row.omega_total
        out.print(f"  {row.scale:<18} alpha {two(row.alpha)} "
                  f"({two(row.ci_low)}-{two(row.ci_high)}), omega "
                  f"{'not estimable' if omega is None else two(omega)}: {row.alpha_verdict}")


def run(files: Annotated[Optional[list[Path]], typer.Argument(
            help="Response files to ingest first (CSV, XLSX or Parquet); none: use the store")] = None,
        site: Annotated[Optional[str], typer.Option(help="Site of every row, if the files have no site column")] = None,
        wave: Annotated[Optional[int], typer.Option(help="Wave of every row, if the files have no wave column")] = None,
        report_dir: Annotated[Path, typer.Option(
            "--reports", help="Folder for the validation report")] = Path("reports"),
        target: Annotated[Optional[str], typer.Option(
            help="Principle target: peer_q3, national_q3, peer_median or national_median "
                 "\\[env: CULTURE_TARGET; default: peer_q3]")] = None,
        min_group_size: Annotated[Optional[int], typer.Option(
            "--min-group-size", help="Smallest group shown \\[env: CULTURE_MIN_GROUP_SIZE; "
                                     "default: 10; never below 5]")] = None,
        tool: Annotated[str, typer.Option(
            "--from", help="Where the files come from: culture (our columns), redcap, forms "
                           "or qualtrics (as for `culture ingest --from`)")] = "culture",
        column_map: Annotated[Optional[Path], typer.Option(
            "--map", help="CSV 'column,field' mapping export columns to item ids (with "
                          "--from)")] = None,
        full: Annotated[bool, typer.Option(
            "--full", help="Recompute every wave with responses, frozen ones too (their "
                           "published rows are still held as published)")] = False,
        db: DbOption = None, instrument: InstrumentOption = None) -> None:
    """Ingest, score, check, benchmark, suppress and publish: the whole pipeline.

    The published layer (aggregates only) is written beside the store as
    <store>.published.duckdb; the dashboard and exports read only that file.
    Frozen waves (`culture waves freeze`) stay as published: a run computes the open
    waves only and reads only their responses; --full recomputes them all.

    Examples: culture run responses-2026.csv
              culture run qualtrics-2026.csv --from qualtrics --site RX1 --wave 2026
              culture run --target national_q3
    """
    settings = resolve_settings(db=db, instrument=instrument, target_rule=target,
                                min_group_size=min_group_size)
    run_and_summarise(settings, files or [], site, wave, report_dir, tool.strip().lower(),
                      column_map, full)


def run_and_summarise(settings: Settings, files: list[Path], site: str | None,
                      wave: int | None, report_dir: Path, tool: str = "culture",
                      column_map: Path | None = None, full: bool = False) -> None:
    """Run the pipeline with a progress bar per stage, then print what was published."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from pipeline.ingest.tools import import_options
    from pipeline.psychometrics.report import write_report
    from pipeline.run import run_pipeline

    mapping = import_options(tool, column_map)
    inst = instrument_of(settings)
    bar = Progress(SpinnerColumn(), TextColumn("{task.description:<24}"), TimeElapsedColumn(),
                   console=err, transient=False, disable=not err.is_terminal)
    tasks: dict[str, int] = {}

    def stage(name: str) -> None:
        for task in tasks.values():
            bar.update(task, total=1, completed=1)
        tasks[name] = bar.add_task(name, total=None)

    with bar:
        result = run_pipeline(settings, inst, files, site, wave, stage, tool, mapping,
                              full=full)
        for task in tasks.values():
            bar.update(task, total=1, completed=1)
    imported = {id(i.ingest): i for i in result.imports}
    for report in result.ingests:
        if id(report) in imported:    # what the adapter made of the file, then its ingest
            print_import(imported[id(report)])
        print_ingest(report)
    if result.inbox is not None:
        out.print(result.inbox.summary(), highlight=False)
    _print_waves(result.published)
    if result.psychometrics is None:    # every wave frozen: nothing was computed
        _print_published(result.published, settings)
    else:
        html_path, _ = write_report(result.psychometrics, inst, report_dir)
        _print_reliability(result.psychometrics)
        _print_published(result.published, settings)
        out.print(f"validation report: {html_path}")
    # The dashboard's Fieldwork page reads these counts, never the store (pipeline.fieldwork).
    from pipeline.fieldwork import write_fieldwork

    write_fieldwork(settings, inst, "culture run")


#: Most verdict rows `culture run` prints before it keeps to the latest wave.
MAX_VERDICT_ROWS = 100


def calm_funnel_line(pub) -> str:
    """What `culture run` says when every site reads "in line" with the other sites, and
    whether any funnel had enough sites to compare each with the others at all."""
    if pub.funnels_compared == 0:
        return (f"no site compared with the others: that needs {MIN_OTHER_SITES} other sites "
                f"with the threshold met in a wave")
    return ("every site is in line with the other sites (each against what the other "
            "sites give a site of its size)")


def verdict_rows(pub) -> list[tuple[int, str, str, str]]:
    """(wave, site, measure, verdict) of every cell `culture run` prints: each cell whose
    published verdict is not "in line", every wave when they are few, else the latest."""
    rows = sorted((int(v["wave"]), v["site_code"], f"{v['measure_kind']} {v['measure']}",
                   v["verdict"]) for v in pub.site_verdicts)
    if len(rows) > MAX_VERDICT_ROWS:
        latest = rows[-1][0]
        rows = [row for row in rows if row[0] == latest]
    return rows


def _score(value, kind: str) -> str:
    """A published level as the dashboard shows it: out of 100 (published.scores)."""
    from published.scores import to_score

    return "" if value is None or value != value else f"{to_score(value, kind):.1f}"


def _print_waves(pub) -> None:
    """Which waves the run computed and which it held as published (frozen)."""
    if not pub.waves_held:
        return
    computed = ", ".join(map(str, pub.waves_computed)) or "none (every wave is frozen)"
    out.print(f"waves computed: {computed}; held as published (frozen): "
              f"{', '.join(map(str, pub.waves_held))}", highlight=False)
    if pub.pooled_note:
        out.print(f"  {pub.pooled_note}", highlight=False)


def _print_published(pub, settings: Settings) -> None:
    k = settings.min_group_size
    shown = pub.cells - pub.hidden_primary - pub.hidden_complementary
    out.print(f"published: {pub.path.resolve()}")
    if pub.waves_held and not pub.waves_computed:
        out.print("  every wave is frozen: the layer holds their rows as published, "
                  "nothing was recomputed or suppressed again", highlight=False)
        return
    out.print(f"  {pub.cells:,} cells: {shown:,} shown; {pub.hidden_primary:,} hidden because "
              f"fewer than {k} people answered; {pub.hidden_complementary:,} hidden so that "
              f"those cannot be worked out by subtraction")
    for level_reason, count in sorted(pub.hidden_by_level.items()):
        out.print(f"    {level_reason}: {count:,}")
    check = pub.verification
    out.print(f"  verified: no shown count below {k}; none of {check.hidden_cells:,} hidden "
              f"cells recoverable from {check.equations:,} equations")
    if not pub.tables.get("funnel_params"):
        out.print(f"  no funnel plots: comparing sites needs at least two with {k} or more "
                  f"responses in a wave")
        return
    if not pub.site_verdicts:
        out.print(f"  {calm_funnel_line(pub)}")
        return
    rows = verdict_rows(pub)
    waves = sorted({row[0] for row in rows})
    table = Table(title=f"Sites not in line with the other sites ("
                        f"{', '.join(map(str, waves))}; the same words and scores out of 100 "
                        f"as the dashboard and the site report)")
    # "others": the other sites' mean, the centre the verdict was judged from.
    for column in ("wave", "site", "measure", "score", "others", "verdict"):
        table.add_column(column, no_wrap=True, min_width=len(column),
                         justify="right" if column in ("score", "others") else "left")
    scores = {(int(v["wave"]), v["site_code"], f"{v['measure_kind']} {v['measure']}"):
              (_score(v.get("mean"), v["measure_kind"]),
               _score(v.get("others_mean"), v["measure_kind"])) for v in pub.site_verdicts}
    for wave, site, measure, verdict in rows:
        score, others = scores.get((wave, site, measure), ("", ""))
        table.add_row(str(wave), site, measure, score, others, verdict)
    out.print(table)
    flagged = sum(v["verdict"].startswith("clearly") for v in pub.site_verdicts)
    out.print(f"  {flagged} cell(s) clearly below or above the other sites across all "
              f"waves; the dashboard's Benchmark page shows every one")


def demo(db: DbOption = None, instrument: InstrumentOption = None,
         dirty: Annotated[bool, typer.Option(
             "--dirty", help="Load the messy export (every kind of bad row) instead")] = False,
         serve: Annotated[Optional[bool], typer.Option(
             "--serve/--no-serve", help="End by serving the dashboard \\[default: when run "
             "in a terminal, and not under CI]")] = None,
         port: Annotated[int, typer.Option(help="Dashboard port")] = 8050,
         ) -> None:
    """Load the committed sample sites and responses, run the whole pipeline on them, and
    serve the dashboard with a demo admin and director.

    Examples: culture demo
              culture demo --no-serve
              culture demo --dirty --db dirty.duckdb && culture quarantine --db dirty.duckdb
    """
    from pipeline.store import load_reference_data, open_store, store_summary

    settings = settings_for(db, instrument)
    with open_store(settings.db_path) as con:
        load_reference_data(con, SAMPLES_DIR, instrument_of(settings))
    out.print(f"store: {settings.db_path.resolve()}")
    sample = "responses_dirty.csv" if dirty else "responses_clean.csv"
    run_and_summarise(settings, [SAMPLES_DIR / sample], None, None, Path("reports"))
    with open_store(settings.db_path, read_only=True) as con:
        print_summary(store_summary(con))
    if not dirty:
        out.print("Try the messy export too: culture demo --dirty --db dirty.duckdb, then "
                  "culture quarantine --db dirty.duckdb")
    if not settings.published_path.exists():
        return
    from dashboard.accounts import reset_demo_accounts

    credentials = reset_demo_accounts(settings.accounts_path)
    out.print("dashboard accounts (new passwords each demo run):")
    for username, (role, password) in credentials.items():
        out.print(f"  {role:<9} {username:<14} password: {password}")
    if serve is None:
        serve = sys.stdin.isatty() and sys.stdout.isatty() and not os.environ.get("CI")
    if serve:
        serve_dashboard(settings, "127.0.0.1", port)
    else:
        out.print(f"see the dashboard: culture serve{' --db ' + str(db) if db else ''} "
                  "(then open http://127.0.0.1:8050/ and sign in as above)")
