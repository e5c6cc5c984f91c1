"""The `culture` command line: a thin shell over the library.

Every command resolves `Settings` once (flag > environment > default) and calls library
functions. Library errors (`CultureError`) become one line on stderr and exit code 1
here and nowhere else; a user never sees a traceback for a problem they can fix.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from survey.errors import CultureError
from survey.settings import SAMPLES_DIR, Settings, resolve_settings

app = typer.Typer(help="Measure and benchmark the culture of support for doctors.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
instrument_app = typer.Typer(help="Check instrument files and export them to other tools.",
                              no_args_is_help=True)
sites_app = typer.Typer(help="Set up the sites (trusts, support units) in the store.",
                        no_args_is_help=True)
waves_app = typer.Typer(help="Set up survey waves (one per year).", no_args_is_help=True)
app.add_typer(instrument_app, name="instrument")
app.add_typer(sites_app, name="sites")
users_app = typer.Typer(help="Dashboard accounts (admin, director, researcher).",
                        no_args_is_help=True)
app.add_typer(waves_app, name="waves")
app.add_typer(users_app, name="users")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

DbOption = Annotated[Optional[Path], typer.Option(
    "--db", help="DuckDB store file [env: CULTURE_DB; default: ./culture.duckdb]")]
InstrumentOption = Annotated[Optional[Path], typer.Option(
    "--instrument", help="Instrument YAML [env: CULTURE_INSTRUMENT; default: "
                         "instruments/support-culture-v1.yaml]")]


def _settings(db: Path | None = None, instrument: Path | None = None) -> Settings:
    return resolve_settings(db=db, instrument=instrument)


def _load_instrument(settings: Settings):
    from survey.instrument import load_instrument

    return load_instrument(settings.instrument_path)


@instrument_app.command("check")
def instrument_check(file: Annotated[Path, typer.Argument(help="Instrument YAML file")]) -> None:
    """Validate an instrument file and summarise it.

    Example: culture instrument check instruments/support-culture-v1.yaml
    """
    from survey.instrument import load_instrument

    inst = load_instrument(file)
    out.print(f"[green]OK[/green] {file}: {inst.key}, {len(inst.items)} items in "
              f"{len(inst.scales)} scales, {len(inst.attributes)} optional attributes")
    table = Table("scale", "items", "reverse-keyed", "min answered", "principles")
    for scale in inst.scales:
        members = inst.items_of(scale.id)
        principles = ", ".join(p.id for p in inst.principles if scale.id in p.scales)
        table.add_row(scale.name + (" (core)" if scale.core else ""), str(len(members)),
                      str(sum(i.reverse for i in members)), str(scale.min_items), principles)
    out.print(table)


@instrument_app.command("export")
def instrument_export(
        fmt: Annotated[str, typer.Option("--format", help=(
            "redcap (data dictionary CSV), xlsform (KoboToolbox / ODK .xlsx), html or pdf "
            "(printable), csv (empty template for ingest)"))],
        out_path: Annotated[Path, typer.Option("--out", help="File to write")],
        sites: Annotated[Optional[str], typer.Option(
            help="Site codes offered as a list, e.g. A,B,RX1 (default: typed in)")] = None,
        instrument: InstrumentOption = None) -> None:
    """Write the instrument for another survey tool, or on paper.

    Examples: culture instrument export --format redcap --out dictionary.csv --sites A,B
              culture instrument export --format pdf --out questionnaire.pdf
    """
    from survey.instrument_export import export_instrument, parse_site_codes

    settings = _settings(instrument=instrument)
    written = export_instrument(_load_instrument(settings), fmt.strip().lower(), out_path,
                                parse_site_codes(sites))
    out.print(f"wrote {written} ({fmt})")


@sites_app.command("add")
def sites_add(code: str, name: Annotated[str, typer.Option(help="Organisation name")],
              site_type: Annotated[str, typer.Option("--type", help=(
                  "acute_trust, professional_support_unit, independent_support_org or "
                  "primary_care"))],
              region: Annotated[Optional[str], typer.Option(help="Region of England")] = None,
              db: DbOption = None) -> None:
    """Add or update one site.

    Example: culture sites add RX1 --name "Tamar Valley Hospitals" --type acute_trust --region "South West"
    """
    from pipeline.store import Site, add_sites, open_store

    with open_store(_settings(db).db_path) as con:
        add_sites(con, [Site(code, name, site_type, region)])
    out.print(f"site {code.upper()} saved")


@sites_app.command("load")
def sites_load(file: Path, headcounts: Annotated[Optional[Path], typer.Option(
        help="Optional CSV site_code,staff_group,headcount")] = None,
        db: DbOption = None, instrument: InstrumentOption = None) -> None:
    """Load sites from a CSV with columns site_code,name,site_type,region.

    Example: culture sites load data_samples/sites.csv --headcounts data_samples/headcounts.csv
    """
    from pipeline.store import load_headcounts_csv, load_sites_csv, open_store

    settings = _settings(db, instrument)
    with open_store(settings.db_path) as con:
        con.execute("begin transaction")
        n_sites = load_sites_csv(con, file)
        n_heads = load_headcounts_csv(con, headcounts, _load_instrument(settings)) if headcounts else 0
        con.execute("commit")
    out.print(f"{n_sites} sites loaded" + (f", {n_heads} headcounts" if headcounts else ""))


@sites_app.command("list")
def sites_list(db: DbOption = None) -> None:
    """List the sites in the store."""
    from pipeline.store import open_store

    with open_store(_settings(db).db_path) as con:
        rows = con.execute("select site_code, name, site_type, region from sites "
                           "order by site_code").fetchall()
    table = Table("code", "name", "type", "region")
    for row in rows:
        table.add_row(*[str(v or "") for v in row])
    out.print(table)


@waves_app.command("add")
def waves_add(year: int, label: Annotated[Optional[str], typer.Option()] = None,
              db: DbOption = None) -> None:
    """Set up a survey wave.

    Example: culture waves add 2026
    """
    from pipeline.store import add_wave, open_store

    with open_store(_settings(db).db_path) as con:
        add_wave(con, year, label)
    out.print(f"wave {year} saved")


def _progress_bar():
    """A stage-by-stage progress bar for large files (drawn on stderr only)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                   console=err, transient=True)
    tasks: dict[str, int] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            for task in tasks.values():
                bar.update(task, total=1, completed=1)
            # A total of 0 means "no measure of progress": rich then shows a pulsing bar.
            tasks[stage] = bar.add_task(stage, total=total or None)
        bar.update(tasks[stage], completed=done)

    return bar, update


def run_ingest(settings: Settings, files: list[Path], site: str | None,
               wave: int | None, tool: str = "culture", column_map: Path | None = None) -> list:
    """Ingest files one by one (each all-or-nothing) and print what happened to each.

    `tool` other than "culture" sends each file through its import adapter first
    (pipeline.ingest.tools), which maps the tool's columns and answers onto ours.
    """
    from functools import partial

    from pipeline.ingest.files import ingest_file
    from pipeline.store import open_store
    from pipeline.ingest.tools import import_export

    mapping = _import_options(tool, column_map)
    inst = _load_instrument(settings)
    definition = settings.instrument_path.read_text(encoding="utf-8")
    reports = []
    with open_store(settings.db_path) as con:
        for file in files:
            large = file.exists() and file.stat().st_size > 5_000_000
            bar, update = _progress_bar()
            ingest_one = (ingest_file if tool == "culture"
                          else partial(import_export, tool=tool, column_map=mapping))
            if large:
                with bar:
                    report = ingest_one(con, file, inst, definition, site=site, wave=wave,
                                        progress=update)
            else:
                report = ingest_one(con, file, inst, definition, site=site, wave=wave)
            if tool != "culture":
                _print_import(report)
                report = report.ingest
            reports.append(report)
            _print_ingest(report)
    return reports


def _print_import(report) -> None:
    """What an adapter matched, dropped and could not place (before ingest's own summary)."""
    out.print(f"{report.source}: read as a {report.tool} export; "
              f"{len(report.columns)} column(s) matched")
    if report.dropped_columns:
        out.print(f"  identifying or tool columns, not stored: {', '.join(report.dropped_columns)}")
    if report.unmapped_columns:
        out.print(f"  columns matching no question, not stored: "
                  f"{', '.join(report.unmapped_columns)}")
    for note in report.notes:
        out.print(f"  note: {note}")


def _print_ingest(report) -> None:
    if report.already_ingested:
        batch, when = report.previous_batch
        out.print(f"{report.source}: already ingested as batch {batch} on "
                  f"{when:%Y-%m-%d}; nothing to do")
        return
    out.print(f"{report.source}: batch {report.batch_id}: {report.rows_read} rows read, "
              f"[green]{report.rows_accepted} accepted[/green], "
              f"[{'red' if report.rows_rejected else 'green'}]{report.rows_rejected} "
              f"quarantined[/]")
    for reason, count in report.rejected_by_reason.items():
        out.print(f"  {count} row(s): {reason}")
    if report.rows_rejected:
        out.print(f"  see them with: culture quarantine --batch {report.batch_id}")
    if report.missing_item_columns:
        out.print(f"  questions not in this file (stored as unanswered): "
                  f"{', '.join(report.missing_item_columns)}")
    if report.ignored_columns:
        out.print(f"  columns not in the instrument, ignored: {', '.join(report.ignored_columns)}")
    for warning in report.warnings:
        err.print(f"warning: {warning}", markup=False, highlight=False)


@app.command()
def ingest(files: Annotated[list[Path], typer.Argument(help="CSV, XLSX or Parquet files")],
           site: Annotated[Optional[str], typer.Option(
               help="Site code for rows without a site column/value")] = None,
           wave: Annotated[Optional[int], typer.Option(
               help="Survey year for rows without a wave column/value")] = None,
           tool: Annotated[str, typer.Option(
               "--from", help="Where the file comes from: culture (our columns), redcap "
                              "(raw or label export), forms (Microsoft Forms, or any "
                              "export headed by question text) or qualtrics")] = "culture",
           column_map: Annotated[Optional[Path], typer.Option(
               "--map", help="CSV 'column,field' mapping export columns (or Qualtrics "
                             "QIDs) to item ids, for columns not matched by wording")] = None,
           db: DbOption = None, instrument: InstrumentOption = None) -> None:
    """Ingest survey exports; every row is accepted or quarantined with a reason.

    Each file is all-or-nothing. Ingesting the same file again does nothing.

    Other tools' exports (--from) are matched by column name or question wording.

    Examples: culture ingest export.csv --site RX1 --wave 2026
              culture ingest redcap-export.csv --from redcap --wave 2026
              culture ingest responses.xlsx --from forms --site RX1 --wave 2026
    """
    run_ingest(_settings(db, instrument), files, site, wave, tool.strip().lower(), column_map)


@app.command()
def quarantine(batch: Annotated[Optional[int], typer.Option(help="Only this batch")] = None,
               csv_out: Annotated[Optional[Path], typer.Option(
                   "--csv", help="Write the rows to this CSV instead of the screen")] = None,
               db: DbOption = None) -> None:
    """Show rejected rows with the reason for each, to fix and ingest again.

    Example: culture quarantine --batch 2 --csv rejected.csv
    """
    from pipeline.store import open_store

    with open_store(_settings(db).db_path) as con:
        query = ("select q.batch_id, b.source_name, q.source_row, q.response_id, q.column_name, "
                 "q.bad_value, q.reason_code, q.reason from quarantine q "
                 "join ingest_batches b using (batch_id) "
                 "where ? is null or q.batch_id = ? order by q.batch_id, q.source_row")
        rows = con.execute(query, [batch, batch]).fetchall()
    if csv_out:
        write_quarantine_csv(csv_out, rows)
        out.print(f"{len(rows)} rejected row problem(s) written to {csv_out}")
        return
    table = Table("batch", "file", "row", "response", "column", "value", "reason")
    for row in rows[:200]:
        table.add_row(str(row[0]), row[1], str(row[2]), str(row[3] or ""), row[4],
                      str(row[5] if row[5] is not None else ""), row[7])
    out.print(table)
    if len(rows) > 200:
        out.print(f"... {len(rows) - 200} more; use --csv FILE to get them all")


def write_quarantine_csv(path: Path, rows: list[tuple]) -> None:
    """Rejected rows as CSV, safe to open in a spreadsheet (bad values may be hostile)."""
    import csv

    from survey.spreadsheet import safe_cell

    with path.open("w", newline="", encoding="utf-8-sig") as handle:
        writer = csv.writer(handle)
        writer.writerow(["batch", "file", "row", "response_id", "column", "bad_value",
                         "reason_code", "reason"])
        writer.writerows([safe_cell(v) for v in row] for row in rows)


@app.command()
def status(db: DbOption = None) -> None:
    """Summarise the store: responses per site and wave, batches, quarantined rows."""
    from pipeline.store import open_store, store_summary

    with open_store(_settings(db).db_path) as con:
        summary = store_summary(con)
    _print_summary(summary)


def _print_summary(summary: dict) -> None:
    waves = summary["waves"]
    per = {(s, w): n for s, _, w, n in summary["per_site_wave"]}
    types = {s: t for s, t, _, _ in summary["per_site_wave"]}
    answered = (f"{len(types)} of the {summary['sites']} sites in the store"
                if len(types) < summary["sites"] else f"{summary['sites']} sites")
    out.print(f"{summary['responses']} responses from {answered}, waves "
              f"{', '.join(map(str, waves)) or 'none'}, in "
              f"{summary['batches']} ingest batch(es)")
    table = Table("site", "type", *map(str, waves))
    for site in sorted(types):
        table.add_row(site, types[site], *[str(per.get((site, w), 0)) for w in waves])
    out.print(table)
    if summary["quarantined_rows_by_reason"]:
        out.print("quarantined rows: " + ", ".join(
            f"{reason} {n}" for reason, n in summary["quarantined_rows_by_reason"]))


@app.command()
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

    settings = _settings(db, instrument)
    inst = _load_instrument(settings)
    with open_store(settings.db_path) as con:
        result = run_psychometrics(con, inst, settings, wave, site)
    html_path, json_path = write_report(result, inst, out_dir)
    _print_reliability(result)
    out.print(f"validation report: {html_path} and {json_path}")


def _print_reliability(result: dict) -> None:
    def two(value) -> str:
        return "n/a" if value is None or not math.isfinite(value) else f"{value:.2f}"

    for row in (r for r in result["reliability"] if r["level"] == "overall"):
        if "alpha" not in row:
            out.print(f"  {row['scale']:<18} {row['note']}")
            continue
        omega = row["omega_total"]
        out.print(f"  {row['scale']:<18} alpha {two(row['alpha'])} "
                  f"({two(row['ci_low'])}-{two(row['ci_high'])}), omega "
                  f"{'not estimable' if omega is None else two(omega)}: {row['alpha_verdict']}")


@app.command()
def generate(out_dir: Annotated[Path, typer.Option("--out", help="Folder to write into")] = SAMPLES_DIR,
             seed: Annotated[int, typer.Option(help="Random seed (same seed, same files)")] = 20261123,
             national: Annotated[bool, typer.Option(
                 "--national", help="Write the national-scale set instead of the samples")] = False,
             rows: Annotated[int, typer.Option(help="Responses in the national set")] = 1_000_000,
             sites: Annotated[int, typer.Option(help="Sites in the national set")] = 300,
             waves: Annotated[int, typer.Option(help="Waves in the national set")] = 5,
             csv: Annotated[bool, typer.Option(help="Also write the national set as CSV")] = False) -> None:
    """Write synthetic responses with planted truth (and a manifest saying what is planted).

    Examples: culture generate --out /tmp/samples
              culture generate --national --out /tmp/national --csv
    """
    from survey.synthetic import write_national, write_samples

    out_dir.mkdir(parents=True, exist_ok=True)
    if national:
        write_national(out_dir, seed=seed, n_responses=rows, n_sites=sites, n_waves=waves,
                       formats=("parquet", "csv") if csv else ("parquet",))
    else:
        write_samples(out_dir, seed=seed)
    manifest = json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))
    for entry in manifest["files"]:
        out.print(f"wrote {out_dir / entry['name']} ({entry['rows']:,} rows)")




@app.command()
def run(files: Annotated[Optional[list[Path]], typer.Argument(
            help="Response files to ingest first (CSV, XLSX or Parquet); none: use the store")] = None,
        site: Annotated[Optional[str], typer.Option(help="Site of every row, if the files have no site column")] = None,
        wave: Annotated[Optional[int], typer.Option(help="Wave of every row, if the files have no wave column")] = None,
        report_dir: Annotated[Path, typer.Option(
            "--reports", help="Folder for the validation report")] = Path("reports"),
        target: Annotated[Optional[str], typer.Option(
            help="Principle target: peer_q3, national_q3, peer_median or national_median "
                 "[env: CULTURE_TARGET; default: peer_q3]")] = None,
        min_group_size: Annotated[Optional[int], typer.Option(
            "--min-group-size", help="Smallest group shown [env: CULTURE_MIN_GROUP_SIZE; "
                                     "default: 10; never below 5]")] = None,
        tool: Annotated[str, typer.Option(
            "--from", help="Where the files come from: culture (our columns), redcap, forms "
                           "or qualtrics (as for `culture ingest --from`)")] = "culture",
        column_map: Annotated[Optional[Path], typer.Option(
            "--map", help="CSV 'column,field' mapping export columns to item ids (with "
                          "--from)")] = None,
        db: DbOption = None, instrument: InstrumentOption = None) -> None:
    """Ingest, score, check, benchmark, suppress and publish: the whole pipeline.

    The published layer (aggregates only) is written beside the store as
    <store>.published.duckdb; the dashboard and exports read only that file.

    Examples: culture run responses-2026.csv
              culture run qualtrics-2026.csv --from qualtrics --site RX1 --wave 2026
              culture run --target national_q3
    """
    settings = resolve_settings(db=db, instrument=instrument, target_rule=target,
                                min_group_size=min_group_size)
    run_and_summarise(settings, files or [], site, wave, report_dir, tool.strip().lower(),
                      column_map)


def _import_options(tool: str, column_map: Path | None) -> dict[str, str] | None:
    """The --from / --map pair checked, and the map read (None without one)."""
    from pipeline.ingest.tools import TOOLS, load_column_map

    if tool not in TOOLS:
        raise CultureError(f"--from {tool!r} is not known; use one of {', '.join(TOOLS)}")
    if tool == "culture" and column_map:
        raise CultureError("--map is for other tools' exports; give --from redcap, forms or "
                           "qualtrics, or rename the columns of your file")
    return load_column_map(column_map) if column_map else None


def run_and_summarise(settings: Settings, files: list[Path], site: str | None,
                      wave: int | None, report_dir: Path, tool: str = "culture",
                      column_map: Path | None = None) -> None:
    """Run the pipeline with a progress bar per stage, then print what was published."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from pipeline.run import run_pipeline
    from pipeline.psychometrics.report import write_report

    mapping = _import_options(tool, column_map)
    inst = _load_instrument(settings)
    bar = Progress(SpinnerColumn(), TextColumn("{task.description:<24}"), TimeElapsedColumn(),
                   console=err, transient=False, disable=not err.is_terminal)
    tasks: dict[str, int] = {}

    def stage(name: str) -> None:
        for task in tasks.values():
            bar.update(task, total=1, completed=1)
        tasks[name] = bar.add_task(name, total=None)

    with bar:
        result = run_pipeline(settings, inst, files, site, wave, stage, tool, mapping)
        for task in tasks.values():
            bar.update(task, total=1, completed=1)
    imported = {id(i.ingest): i for i in result.imports}
    for report in result.ingests:
        if id(report) in imported:    # what the adapter made of the file, then its ingest
            _print_import(imported[id(report)])
        _print_ingest(report)
    if result.inbox is not None:
        out.print(result.inbox.summary(), highlight=False)
    html_path, _ = write_report(result.psychometrics, inst, report_dir)
    _print_reliability(result.psychometrics)
    _print_published(result.published, settings)
    out.print(f"validation report: {html_path}")


def calm_funnel_line(pub) -> str:
    """What `culture run` says when no site is outside its funnel, claiming an allowance
    for overdispersion only where one was estimated (three or more sites)."""
    funnels, allowed = pub.tables.get("funnel_params", 0), pub.funnels_with_overdispersion
    if allowed == 0:
        return ("no site stands out from its funnel (too few sites to estimate "
                "overdispersion: the limits are sampling error only; 5% false discovery rate)")
    if allowed < funnels:
        return ("no site stands out from its funnel after allowing for overdispersion where "
                "three or more sites allow it (elsewhere the limits are sampling error only; "
                "5% false discovery rate)")
    return ("no site stands out from its funnel after allowing for overdispersion "
            "(5% false discovery rate)")


def _print_published(pub, settings: Settings) -> None:
    k = settings.min_group_size
    shown = pub.cells - pub.hidden_primary - pub.hidden_complementary
    out.print(f"published: {pub.path.resolve()}")
    out.print(f"  {pub.cells:,} cells: {shown:,} shown; {pub.hidden_primary:,} hidden because "
              f"fewer than {k} people answered; {pub.hidden_complementary:,} hidden so that "
              f"those cannot be worked out by subtraction")
    for level_reason, count in sorted(pub.hidden_by_level.items()):
        out.print(f"    {level_reason}: {count:,}")
    check = pub.verification
    out.print(f"  verified: no shown count below {k}; none of {check.hidden_cells:,} hidden "
              f"cells recoverable from {check.equations:,} equations")
    flags = pub.funnel_flags
    if not pub.tables.get("funnel_params"):
        out.print(f"  no funnel plots: comparing sites needs at least two with {k} or more "
                  f"responses in a wave")
        return
    if not flags:
        out.print(f"  {calm_funnel_line(pub)}")
        return
    latest = max(f["wave"] for f in flags)
    table = Table(title=f"Sites outside their funnel in {latest} (5% false discovery rate)")
    for column in ("site", "measure", "flag", "q"):
        table.add_column(column)
    for f in sorted((f for f in flags if f["wave"] == latest),
                    key=lambda f: (f["site_code"], f["measure"])):
        table.add_row(f["site_code"], f"{f['measure_kind']} {f['measure']}", f["flag"],
                      f"{f['q']:.3g}")
    out.print(table)
    out.print(f"  {len(flags)} flag(s) across all waves; the dashboard shows every one")


#: Read by `culture export` when --pseudonymise-key is not given (outputs.export names it too).
ENV_PSEUDONYMISE_KEY = "CULTURE_PSEUDONYMISE_KEY"


@app.command("export")
def export_aggregates_command(
        out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the files into")],
        fmt: Annotated[Optional[list[str]], typer.Option(
            "--format", help="csv, parquet, sav (SPSS) or dta (Stata); repeat for several "
                             "(default: csv)")] = None,
        level: Annotated[Optional[list[str]], typer.Option(
            "--level", help="site, principle, item or group; repeat for several "
                            "(default: all four)")] = None,
        pseudonymise_key: Annotated[Optional[str], typer.Option(
            "--pseudonymise-key", envvar=ENV_PSEUDONYMISE_KEY, show_envvar=True,
            help="Replace site codes by keyed pseudonyms (HMAC-SHA256) and leave site names "
                 "out; at least 16 characters; the same key gives the same pseudonyms")] = None,
        pseudonymise: Annotated[bool, typer.Option(
            "--pseudonymise", help="Pseudonymise with the deployment's key (the one "
                                   "researchers' dashboard pages and downloads use; made "
                                   "beside the store the first time)")] = False,
        min_sites: Annotated[Optional[int], typer.Option(
            "--min-sites", help="When pseudonymising, coarsen site type and region until "
                                "each combination covers this many sites [default: "
                                "CULTURE_MIN_SITES_PER_COMBINATION or 3]")] = None,
        db: DbOption = None) -> None:
    """Export the published aggregates for researchers, with a datapackage.json codebook.

    Only published, suppressed aggregates are exported: cells below the reporting
    threshold have blank statistics and suppressed = 1.

    Examples: culture export --out exports
              culture export --out exports --format sav --format dta --level site
              culture export --out exports --pseudonymise --format parquet
    """
    from outputs.export import deployment_pseudonym_key, export_aggregates

    settings = resolve_settings(db=db, min_sites_per_combination=min_sites)
    if pseudonymise and not pseudonymise_key:
        pseudonymise_key = deployment_pseudonym_key(settings.published_path)
    report = export_aggregates(settings.published_path, out_dir, fmt or "csv", level,
                               pseudonymise_key, settings.min_sites_per_combination)
    for file in report.files:
        out.print(f"wrote {file.path} ({file.rows:,} rows)")
    out.print(f"wrote {report.datapackage} (describes every file and field)")
    out.print(f"cells with fewer than {report.min_group_size} respondents are blank with "
              f"suppressed = 1" + ("; sites are pseudonymised, names left out"
                                   if report.pseudonymised else ""))
    if report.coarsening is not None:
        out.print(f"so that each site type x region shown covers {report.coarsening.min_sites} or more "
                  f"sites (see coarsening.txt):", highlight=False)
        for note in report.coarsening.notes:
            out.print(f"  {note}", highlight=False)


@app.command("report")
def site_report_command(
        site: Annotated[str, typer.Option("--site", help="Site code, e.g. A")],
        wave: Annotated[int, typer.Option("--wave", help="Survey wave (year), e.g. 2026")],
        out_dir: Annotated[Path, typer.Option("--out", help="Folder for the report")] = Path("reports"),
        pdf: Annotated[bool, typer.Option(
            "--pdf/--no-pdf", help="Also print a PDF with headless Chromium")] = True,
        db: DbOption = None) -> None:
    """Write a board-ready report for one site and wave: HTML, and a PDF made from it.

    The six principles and their gaps with the guide's actions, benchmark position,
    trends, equity, response rate and reliability, from the published layer only.

    Examples: culture report --site A --wave 2026
              culture report --site D --wave 2026 --out board-papers --no-pdf
    """
    from outputs.site_report import write_site_report

    files = write_site_report(_settings(db).published_path, site, wave, out_dir, pdf)
    out.print(f"wrote {files.html}")
    if files.pdf:
        out.print(f"wrote {files.pdf}")


@app.command()
def demo(db: DbOption = None, instrument: InstrumentOption = None,
         dirty: Annotated[bool, typer.Option(
             "--dirty", help="Load the messy export (every kind of bad row) instead")] = False,
         serve: Annotated[Optional[bool], typer.Option(
             "--serve/--no-serve", help="End by serving the dashboard [default: when run "
             "in a terminal, and not under CI]")] = None,
         port: Annotated[int, typer.Option(help="Dashboard port")] = 8050,
         ) -> None:
    """Load the committed sample sites and responses, run the whole pipeline on them, and
    serve the dashboard with a demo admin and director.

    Examples: culture demo
              culture demo --no-serve
              culture demo --dirty --db dirty.duckdb && culture quarantine --db dirty.duckdb
    """
    from pipeline.store import add_wave, load_headcounts_csv, load_sites_csv, open_store, store_summary

    settings = _settings(db, instrument)
    manifest = json.loads((SAMPLES_DIR / "manifest.json").read_text(encoding="utf-8"))
    inst = _load_instrument(settings)
    with open_store(settings.db_path) as con:
        con.execute("begin transaction")
        load_sites_csv(con, SAMPLES_DIR / "sites.csv")
        load_headcounts_csv(con, SAMPLES_DIR / "headcounts.csv", inst)
        for year in manifest["waves"]:
            add_wave(con, int(year))
        con.execute("commit")
    out.print(f"store: {settings.db_path.resolve()}")
    sample = "responses_dirty.csv" if dirty else "responses_clean.csv"
    run_and_summarise(settings, [SAMPLES_DIR / sample], None, None, Path("reports"))
    with open_store(settings.db_path, read_only=True) as con:
        _print_summary(store_summary(con))
    if not dirty:
        out.print("Try the messy export too: culture demo --dirty --db dirty.duckdb, then "
                  "culture quarantine --db dirty.duckdb")
    if not settings.published_path.exists():
        return
    credentials = demo_accounts(settings)
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


def demo_accounts(settings: Settings) -> dict[str, tuple[str, str]]:
    """(Re)create the demo admin and the director of sample site A with fresh passwords."""
    import secrets

    from dashboard.accounts import AccountBook

    book = AccountBook(settings.accounts_path)
    existing = {a.username for a in book.accounts()}
    made = {}
    for username, role, site in (("demo-admin", "admin", None),
                                 ("demo-director", "director", "A")):
        password = secrets.token_urlsafe(9)
        if username in existing:
            book.set_password(username, password)
        else:
            book.add(username, role, password, site)
        made[username] = (role, password)
    return made


@users_app.command("add")
def users_add(username: str,
              role: Annotated[str, typer.Option(help="admin, director or researcher")],
              site: Annotated[Optional[str], typer.Option(
                  help="A director's own site code")] = None,
              password: Annotated[str, typer.Option(
                  prompt=True, hide_input=True, confirmation_prompt=True,
                  envvar="CULTURE_PASSWORD", help="At least 10 characters [env: "
                  "CULTURE_PASSWORD; asked for when not given]")] = "",
              db: DbOption = None) -> None:
    """Add a dashboard account.

    Example: culture users add jsmith --role director --site A
    """
    from dashboard.accounts import AccountBook

    settings = _settings(db)
    account = AccountBook(settings.accounts_path).add(username, role, password, site,
                                                      known_sites=_published_sites(settings))
    out.print(f"added {account.username} ({account.role}"
              + (f", site {account.site_code}" if account.site_code else "") + ")")


def _published_sites(settings: Settings) -> set[str] | None:
    """Site codes of the published layer (None when nothing is published yet)."""
    import duckdb

    if not settings.published_path.exists():
        return None
    with duckdb.connect(str(settings.published_path), read_only=True) as con:
        return {row[0] for row in con.execute("select site_code from sites").fetchall()}


@users_app.command("list")
def users_list(db: DbOption = None) -> None:
    """List dashboard accounts (never their passwords).

    Example: culture users list
    """
    from dashboard.accounts import AccountBook

    table = Table("username", "role", "site")
    for account in AccountBook(_settings(db).accounts_path).accounts():
        table.add_row(account.username, account.role, account.site_code or "")
    out.print(table)


@users_app.command("remove")
def users_remove(username: str, db: DbOption = None) -> None:
    """Remove an account and end its open dashboard sessions.

    Example: culture users remove jsmith
    """
    from dashboard.accounts import AccountBook

    ended = AccountBook(_settings(db).accounts_path).remove(username)
    out.print(f"removed {username}; {ended} open session(s) ended")


@users_app.command("set-password")
def users_set_password(username: str, password: Annotated[str, typer.Option(
        prompt=True, hide_input=True, confirmation_prompt=True, envvar="CULTURE_PASSWORD",
        help="At least 10 characters [env: CULTURE_PASSWORD]")] = "",
        db: DbOption = None) -> None:
    """Set a new password for an account and end its open dashboard sessions.

    Example: culture users set-password jsmith
    """
    from dashboard.accounts import AccountBook

    ended = AccountBook(_settings(db).accounts_path).set_password(username, password)
    out.print(f"password of {username} changed; {ended} open session(s) ended")


@app.command()
def serve(db: DbOption = None,
          host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="Port")] = 8050,
          trust_proxy: Annotated[Optional[bool], typer.Option(
              "--trust-proxy/--no-trust-proxy", help="Behind one reverse proxy: take the "
              "client address from its X-Forwarded-For [env: CULTURE_TRUST_PROXY; "
              "default: no]")] = None,
          secure_cookies: Annotated[Optional[bool], typer.Option(
              "--secure-cookies/--no-secure-cookies", help="Reached over HTTPS (a TLS "
              "proxy): send cookies only over HTTPS [env: CULTURE_SECURE_COOKIES; "
              "default: no]")] = None) -> None:
    """Serve the dashboard over the published results (sign-in required).

    Examples: culture serve --port 8050
              culture serve --host 127.0.0.1 --trust-proxy --secure-cookies  (behind nginx)
    """
    settings = resolve_settings(db=db, trust_proxy=trust_proxy, secure_cookies=secure_cookies)
    serve_dashboard(settings, host, port)


def serve_dashboard(settings: Settings, host: str, port: int) -> None:
    from werkzeug.serving import run_simple

    from dashboard.accounts import AccountBook
    from dashboard.app import create_app
    from dashboard.data import PublishedData

    PublishedData(settings.published_path).waves()  # a clear error now, not per page
    if not AccountBook(settings.accounts_path).accounts():
        err.print("no dashboard accounts yet: add one with `culture users add NAME --role "
                  "admin`")
    app = create_app(settings)
    out.print(f"dashboard: http://{host}:{port}/  (Ctrl+C to stop)")
    run_simple(host, port, app.server, threaded=True, use_reloader=False)


def _surveys(settings: Settings) -> set[tuple[str, int]]:
    """(site, wave) pairs the store knows; read once, so a later pipeline run can write."""
    from pipeline.store import open_store

    with open_store(settings.db_path, read_only=True) as con:
        sites = [r[0] for r in con.execute("select site_code from sites").fetchall()]
        waves = [int(r[0]) for r in con.execute("select wave from waves").fetchall()]
    return {(site, wave) for site in sites for wave in waves}


@app.command()
def collect(db: DbOption = None, instrument: InstrumentOption = None,
            host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
            port: Annotated[int, typer.Option(help="Port")] = 8060,
            tokens: Annotated[bool, typer.Option(
                "--tokens/--open", help="Require a single-use invitation token "
                "(see `culture invite`) or accept anyone with the link")] = False) -> None:
    """Serve the survey to respondents: one link per site and wave, /s/SITE/WAVE.

    Answers go to <store>.inbox.sqlite, which this server can keep writing while
    `culture run` uses the store; the next run ingests them.

    Example: culture collect --port 8060   (then share http://HOST:8060/s/A/2026)
    """
    settings = _settings(db, instrument)
    serve_survey(settings, host, port, tokens)


def serve_survey(settings: Settings, host: str, port: int, tokens: bool) -> None:
    import waitress

    from collect.inbox import Inbox
    from collect.webform import MAX_POST_BYTES, create_collect_app

    surveys = _surveys(settings)
    inbox = Inbox(settings.inbox_path)
    app = create_collect_app(_load_instrument(settings), inbox, surveys, require_tokens=tokens)
    out.print(f"survey: http://{host}:{port}/s/SITE/WAVE for {len(surveys)} site x wave "
              f"link(s); answers to {settings.inbox_path}  (Ctrl+C to stop)", highlight=False)
    try:
        # waitress: a production WSGI server; its threads wait on the inbox's group
        # commit while the writer thread syncs, so a few dozen keep the disk busy.
        waitress.serve(app, host=host, port=port, threads=32, connection_limit=500,
                       max_request_body_size=MAX_POST_BYTES,
                       backlog=1024, channel_timeout=30, _quiet=True)
    finally:
        waiting = inbox.close()
        if waiting:
            # Written only in batches, so that no one can pair a token with its answer.
            err.print(f"{waiting} used invitation(s) were waiting for their used mark and "
                      "can be used once more when the survey restarts", highlight=False)


@app.command()
def invite(site: Annotated[str, typer.Option(help="Site code")],
           wave: Annotated[int, typer.Option(help="Survey wave (year)")],
           count: Annotated[int, typer.Option(help="How many invitations")],
           out_file: Annotated[Path, typer.Option("--out", help="CSV of links to send")],
           base_url: Annotated[str, typer.Option(help="Address respondents will use")] =
           "http://127.0.0.1:8060",
           db: DbOption = None) -> None:
    """Make single-use invitation links for `culture collect --tokens`.

    Only a hash of each token is kept, with a used mark written for at least ten
    invitations at once and nothing linking it to an answer, so no one, even watching
    the inbox file, can tell which invitation produced which response.

    Example: culture invite --site A --wave 2026 --count 300 --out links-A.csv
    """
    import csv

    from collect.inbox import issue_tokens

    settings = _settings(db)
    if (site, wave) not in _surveys(settings):
        raise CultureError(f"site {site!r} and wave {wave} are not both in the store; add them "
                           "with `culture sites add` / `culture waves add`")
    if not 1 <= count <= 100_000:
        raise CultureError(f"--count {count}: use 1 to 100000")
    tokens = issue_tokens(settings.inbox_path, site, wave, count)
    with out_file.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["link"])
        writer.writerows([[f"{base_url.rstrip('/')}/s/{site}/{wave}?t={t}"] for t in tokens])
    out.print(f"{count} invitation links for site {site}, wave {wave}: {out_file}")


def main() -> None:
    """Entry point: run the app, turning user errors into one line and exit code 1."""
    try:
        app()
    except CultureError as exc:
        from rich.text import Text

        err.print(Text("error: ", style="bold red") + Text(str(exc)), soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted; the file being ingested was not written (each file is all or "
                  "nothing)")
        sys.exit(130)


if __name__ == "__main__":
    main()
