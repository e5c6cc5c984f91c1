"""Commands that fill the store and look into it: sites, waves, ingest, quarantine, status.

Also how an ingest and the store are printed, which `culture run` and `culture demo`
print the same way.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table
from rich.text import Text

from cli.options import DbOption, InstrumentOption, err, instrument_of, out, settings_for
from survey.errors import CultureError
from survey.fieldwork import closed_wave_line
from survey.settings import Settings


def sites_add(code: str, name: Annotated[str, typer.Option(help="Organisation name")],
              site_type: Annotated[str, typer.Option("--type", help=(
                  "acute_trust, professional_support_unit, independent_support_org or "
                  "primary_care"))],
              region: Annotated[Optional[str], typer.Option(help="Region of England")] = None,
              contact_email: Annotated[Optional[str], typer.Option(
                  help="Who respondents may ask about the survey (shown on the form)")] = None,
              support_text: Annotated[Optional[str], typer.Option(
                  help="Where to get support now, in a sentence (form and thank-you page)")
              ] = None,
              support_url: Annotated[Optional[str], typer.Option(
                  help="A web page with the site's support (https://...)")] = None,
              db: DbOption = None) -> None:
    """Add or update one site (a whole site file: `culture sites load`).

    Example: culture sites add RX1 --name "Tamar Valley Hospitals" --type acute_trust --region "South West"
    """
    from pipeline.store import Site, add_sites, open_store

    with open_store(settings_for(db).db_path) as con:
        add_sites(con, [Site(code, name, site_type, region, contact_email, support_text,
                             support_url)])
    out.print(f"site {code.upper()} saved")


def sites_load(file: Path, headcounts: Annotated[Optional[Path], typer.Option(
        help="Optional CSV site_code,staff_group,headcount")] = None,
        db: DbOption = None, instrument: InstrumentOption = None) -> None:
    """Load sites from a CSV with columns site_code,name,site_type,region.

    Optional columns contact_email, support_text and support_url give what the survey
    form tells each site's respondents: who to ask, and where to get support now.

    Example: culture sites load data_samples/sites.csv --headcounts data_samples/headcounts.csv
    """
    from pipeline.store import load_headcounts_csv, load_sites_csv, open_store

    settings = settings_for(db, instrument)
    with open_store(settings.db_path) as con:
        con.execute("begin transaction")
        n_sites = load_sites_csv(con, file)
        n_heads = load_headcounts_csv(con, headcounts, instrument_of(settings)) if headcounts else 0
        con.execute("commit")
    out.print(f"{n_sites} sites loaded" + (f", {n_heads} headcounts" if headcounts else ""))


def sites_list(db: DbOption = None) -> None:
    """List the sites in the store.

    Example: culture sites list --db culture.duckdb
    """
    from pipeline.store import list_sites, open_store

    with open_store(settings_for(db).db_path) as con:
        sites = list_sites(con)
    table = Table("code", "name", "type", "region")
    for site in sites:
        table.add_row(site.site_code, site.name, site.site_type, site.region or "")
    out.print(table)
    told = [s for s in sites if s.contact_email or s.support_text or s.support_url]
    if not told:
        out.print("no site has a contact or support details for the survey form yet (it "
                  "then names general services): add the columns contact_email, "
                  "support_text, support_url to the sites file", highlight=False)
        return
    out.print("what the survey form tells each site's respondents (contact; support):")
    for site in told:
        support = " ".join(x for x in (site.support_text, site.support_url) if x)
        out.print(f"  {site.site_code}: {site.contact_email or 'no contact'}; "
                  f"{support or 'general services only'}", markup=False, highlight=False)


def waves_add(year: int, label: Annotated[Optional[str], typer.Option()] = None,
              db: DbOption = None) -> None:
    """Set up a survey wave.

    Example: culture waves add 2026
    """
    from pipeline.store import add_wave, open_store

    with open_store(settings_for(db).db_path) as con:
        add_wave(con, year, label)
    out.print(f"wave {year} saved")


def _wave_in_store(settings: Settings, year: int) -> None:
    """Refuse a wave the store does not know (skipped while a run holds the store: the
    survey lead must be able to close a wave on time)."""
    from pipeline.store import list_waves, open_store
    from survey.errors import StoreError

    try:
        with open_store(settings.db_path, read_only=True) as con:
            known = list_waves(con)
    except StoreError:
        return
    if year not in known:
        raise CultureError(f"wave {year} is not in the store (waves: "
                           f"{', '.join(map(str, known)) or 'none'}); add it with "
                           f"`culture waves add {year}`")


def waves_close(year: int, freeze: Annotated[bool, typer.Option(
                    "--freeze", help="Also freeze the wave as the published layer shows "
                                     "it (see `culture waves freeze`)")] = False,
                reason: Annotated[str, typer.Option(
                    help="Why it is frozen (with --freeze; logged)")] = "published for good",
                db: DbOption = None) -> None:
    """Close a wave: its survey links and invitations stop working, with a kind page.

    Takes effect at once, also on a `culture collect` already running. With --freeze,
    the wave is also frozen as the published layer shows it, in one step: the layer
    must already hold every answer of the wave (it is refused otherwise, before closing).

    Example: culture waves close 2025
             culture waves close 2025 --freeze
    """
    if freeze:
        _freeze(settings_for(db), year, reason, close=True)
        return
    from collect.inbox import set_wave_closed

    settings = settings_for(db)
    _wave_in_store(settings, year)
    changed = set_wave_closed(settings.inbox_path, year, closed=True)
    out.print(f"wave {year} {'closed' if changed else 'was already closed'}: the form "
              f"refuses new answers; run `culture run` to take in the last of them")


def waves_freeze(year: int, reason: Annotated[str, typer.Option(
                     help="Why it is frozen (logged)")] = "published for good",
                 close: Annotated[bool, typer.Option(
                     "--close", help="Close the wave for answers first, if it is open")
                 ] = False,
                 as_published: Annotated[bool, typer.Option(
                     "--as-published", help="Freeze it as the published layer shows it even "
                     "though answers came since (they stay out of its numbers), e.g. after "
                     "a correction the verifier refused")] = False,
                 db: DbOption = None) -> None:
    """Freeze a published wave: later runs publish its numbers exactly as now.

    The published layer must hold the wave as the store has it (no answers ingested
    since, none waiting in the web form's inbox), and the wave must be closed for
    answers (--close closes it first). Correcting a frozen wave is an explicit, logged
    `culture waves unfreeze`, a run, and a freeze again. If the run refuses the
    correction (it would let a small group be worked out by subtraction),
    --as-published freezes the wave again as it was published, without the late answers.

    Examples: culture waves freeze 2025 --reason "board report signed off"
              culture waves freeze 2025 --as-published --reason "late batch too small"
    """
    _freeze(settings_for(db), year, reason, close, as_published)


def _freeze(settings: Settings, year: int, reason: str, close: bool,
            as_published: bool = False) -> None:
    from collect.inbox import closed_waves, set_wave_closed
    from pipeline.store import open_store
    from pipeline.waves import check_freezable, freeze_wave, frozen_state

    if not reason.strip():
        raise CultureError("say why the wave is frozen (--reason), e.g. 'board report "
                           "signed off'; it is logged")
    _wave_in_store(settings, year)
    published, inbox = settings.published_path, settings.inbox_path
    with open_store(settings.db_path) as con:
        left_out = check_freezable(con, year, published, inbox, as_published)
        if year not in closed_waves(inbox):
            if not close:
                raise CultureError(
                    f"wave {year} is still open for answers in the web form, so answers "
                    f"could arrive after it is frozen. Close it first: `culture waves close "
                    f"{year} --freeze` (or `culture waves freeze {year} --close`)")
            set_wave_closed(inbox, year, closed=True)
            out.print(f"wave {year} closed: the form refuses new answers")
            # An answer may have arrived between the check and the close.
            left_out = check_freezable(con, year, published, inbox, as_published)
        if left_out:
            reason = f"{reason} (as published, leaving out {left_out} later answer(s))"
        held = freeze_wave(con, year, published, reason)
        version = {wave: v for wave, v, *_ in frozen_state(con)["frozen"]}[year]
    out.print(f"wave {year} frozen (version {version}): {held} published rows held; later "
              f"runs publish them unchanged. To correct it: culture waves unfreeze {year} "
              f"--reason \"...\"", highlight=False)
    if left_out:
        out.print(f"{left_out} answer(s) of wave {year} that came after it was published "
                  f"stay in the store and out of its published numbers", highlight=False)


def waves_unfreeze(year: int, reason: Annotated[str, typer.Option(
                       help="Why it is unfrozen, e.g. 'late batch from site C' (required; "
                            "logged)")] = "",
                   db: DbOption = None) -> None:
    """Release a frozen wave for a correction (a late batch, a wrong site code).

    The next `culture run` recomputes it; the verifier then checks the corrected wave
    against every version published before, so that the two cannot be subtracted to
    show a small group. Freeze it again once checked.

    Example: culture waves unfreeze 2025 --reason "late batch from site C"
    """
    from pipeline.store import open_store
    from pipeline.waves import unfreeze_wave

    settings = settings_for(db)
    if not reason.strip():
        raise CultureError(f"say why wave {year} is unfrozen: culture waves unfreeze {year} "
                           f"--reason \"late batch from site C\" (the reason is logged)")
    _wave_in_store(settings, year)
    with open_store(settings.db_path) as con:
        released = unfreeze_wave(con, year, reason)
    out.print(f"wave {year} unfrozen ({released} held rows released): the next `culture "
              f"run` recomputes it and checks it against what was published before; "
              f"freeze it again with `culture waves freeze {year}`", highlight=False)


def waves_log(db: DbOption = None) -> None:
    """Show every freeze, unfreeze and purge of a wave: when, who, why.

    Example: culture waves log
    """
    from pipeline.store import open_store
    from pipeline.waves import wave_events

    with open_store(settings_for(db).db_path) as con:
        events = wave_events(con)
    if not len(events):
        out.print("no wave has been frozen, unfrozen or purged yet")
        return
    table = Table("when", "wave", "action", "by", "reason", "detail")
    for row in events.itertuples(index=False):
        # Reasons are people's words: never read as markup.
        table.add_row(f"{row.happened_at:%Y-%m-%d %H:%M}", str(row.wave), row.action,
                      Text(row.done_by), Text(row.reason), Text(row.detail or ""))
    out.print(table)


def waves_open(year: int, db: DbOption = None) -> None:
    """Open a closed wave again: its survey links and invitations work again.

    Example: culture waves open 2025
    """
    from collect.inbox import set_wave_closed

    settings = settings_for(db)
    _wave_in_store(settings, year)
    changed = set_wave_closed(settings.inbox_path, year, closed=False)
    out.print(f"wave {year} {'opened again' if changed else 'is open'}: the form takes "
              "answers")


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
    from pipeline.ingest.tools import import_options, ingest_from_tool
    from pipeline.store import open_store

    mapping = import_options(tool, column_map)
    inst = instrument_of(settings)
    definition = settings.instrument_path.read_text(encoding="utf-8")
    reports = []
    with open_store(settings.db_path) as con:
        for file in files:
            # Only a large file gets a bar: a small one is done before a bar would draw.
            large = file.exists() and file.stat().st_size > 5_000_000
            bar, update = _progress_bar()
            with bar if large else nullcontext():
                report, imported = ingest_from_tool(con, file, inst, definition, tool, site,
                                                    wave, mapping, update if large else None)
            if imported is not None:
                print_import(imported)
            reports.append(report)
            print_ingest(report)
    return reports


def print_import(report) -> None:
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


def print_ingest(report) -> None:
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
    run_ingest(settings_for(db, instrument), files, site, wave, tool.strip().lower(), column_map)


def quarantine(batch: Annotated[Optional[int], typer.Option(help="Only this batch")] = None,
               csv_out: Annotated[Optional[Path], typer.Option(
                   "--csv", help="Write the rows to this CSV instead of the screen")] = None,
               db: DbOption = None) -> None:
    """Summarise rejected rows by reason, to fix and ingest again; --csv lists them all.

    Rows are numbered as a spreadsheet shows the file: the header is row 1.

    Example: culture quarantine --batch 2 --csv rejected.csv
    """
    from pipeline.ingest.quarantine import quarantined_rows, write_quarantine_csv
    from pipeline.store import open_store

    with open_store(settings_for(db).db_path) as con:
        rows = quarantined_rows(con, batch)
    if csv_out:
        write_quarantine_csv(csv_out, rows)
        out.print(f"{len(rows)} rejected row problem(s) written to {csv_out} (spreadsheet_row "
                  f"is the row a spreadsheet shows, with the header as row 1)", highlight=False)
        return
    print_quarantine(rows, batch)


#: Longest refused value shown on screen (a hostile file may hold pages in one cell).
SHOWN_VALUE_CHARS = 40


def print_quarantine(rows, batch: int | None) -> None:
    """Reasons with their counts and first rows; the full list is for --csv."""
    from pipeline.ingest.quarantine import summarise

    def say(text: str = "") -> None:
        # Refused values are the file's text: never read as markup.
        out.print(text, markup=False, highlight=False)

    if not rows:
        say("no rows are quarantined" + (f" in batch {batch}" if batch is not None else ""))
        return
    refused = len({(r.batch_id, r.source_row) for r in rows})
    say(f"{refused} row(s) refused ({len(rows)} problem(s)). Row numbers are the rows a "
        f"spreadsheet shows when you open the file: the header is row 1.")
    shown_file = None
    for summary in summarise(rows):
        if (summary.batch_id, summary.source_name) != shown_file:
            shown_file = (summary.batch_id, summary.source_name)
            say()
            say(f"{summary.source_name} (batch {summary.batch_id})")
        say(f"  {summary.reason_code}: {summary.rows} row(s)")
        for row in summary.first:
            value, reason = row.bad_value, row.reason
            if value is not None and len(value) > SHOWN_VALUE_CHARS:
                # The reason quotes the value too: both are cut to the same length.
                short = value[:SHOWN_VALUE_CHARS] + "..."
                value, reason = short, reason.replace(row.bad_value, short)
            said = f" = {value!r}" if value is not None else ""
            answer = f" ({row.response_id})" if row.response_id else ""
            say(f"    {row.where()}{answer}, {row.column_name}{said}: {reason}")
        if summary.problems > len(summary.first):
            say(f"    ... and {summary.problems - len(summary.first)} more")
    if any(row.spreadsheet_row is None for row in rows):
        say()
        say("'answer N' is the Nth answer row: the file was Parquet, or another tool's "
            "export rewritten before ingest, so no spreadsheet row is known.")
    say()
    batch_flag = f" --batch {batch}" if batch is not None else ""
    say(f"every problem, one line each: culture quarantine{batch_flag} --csv rejected.csv")


def status(db: DbOption = None, instrument: InstrumentOption = None,
           wave: Annotated[Optional[int], typer.Option(
               help="Show the fieldwork of this wave (default: every open wave)")] = None
           ) -> None:
    """Summarise the store and how fieldwork is going.

    The store: responses per site and wave, batches, quarantined rows. Fieldwork, for each
    open wave: responses so far by site (with those waiting in the web form's inbox), by
    staff group against headcount (groups under the minimum group size withheld),
    invitations issued and used, and web answers by day. The fieldwork counts are also
    written beside the store for the dashboard's Fieldwork page.

    Example: culture status --db dirty.duckdb
    """
    from pipeline.fieldwork import write_fieldwork
    from pipeline.store import open_store, store_summary
    from pipeline.waves import frozen_state

    settings = settings_for(db, instrument)
    with open_store(settings.db_path) as con:
        summary = store_summary(con)
        frozen = frozen_state(con)
    print_summary(summary)
    print_frozen(frozen)
    path, fieldwork = write_fieldwork(settings, instrument_of(settings), "culture status")
    print_fieldwork(fieldwork, wave)
    out.print(f"fieldwork counts written to {path} (the dashboard's Fieldwork page)",
              highlight=False)


def print_frozen(state: dict) -> None:
    """Which waves are frozen (their published numbers never change) and which are
    being corrected."""
    say = lambda text: out.print(text, markup=False, highlight=False)  # noqa: E731
    if not state["frozen"] and not state["unfrozen"]:
        say("no wave is frozen: every `culture run` recomputes every wave (freeze a "
            "published wave with `culture waves freeze YEAR`)")
        return
    for wave, version, when, by, reason in state["frozen"]:
        say(f"wave {wave}: frozen (version {version}) on {when:%Y-%m-%d} by {by}: "
            f"{reason}; runs publish it unchanged")
    for wave, when, reason in state["unfrozen"]:
        say(f"wave {wave}: unfrozen on {when:%Y-%m-%d} for a correction ({reason}); freeze "
            f"it again after `culture run` with `culture waves freeze {wave}`")


def _rate(n: int | None, headcount: int | None) -> str:
    return f"{n / headcount:.0%}" if n is not None and headcount else ""


def print_fieldwork(fieldwork: dict, wave: int | None = None) -> None:
    """Each open wave (or `wave`): sites, staff groups shown from k, arrivals by day."""
    k = fieldwork["min_group_size"]
    waves = [w for w in fieldwork["waves"] if (w["wave"] == wave if wave else w["open"])]
    if wave and not waves:
        raise CultureError(f"wave {wave} is not in the store")
    for closed in (w for w in fieldwork["waves"] if not w["open"] and not wave):
        out.print(closed_wave_line(closed), highlight=False)
    if not waves:
        out.print("no wave is open for answers (`culture waves open YEAR`)")
    if len(waves) > 1:   # the latest open one; earlier ones are usually finished
        out.print(f"also open: {', '.join(str(w['wave']) for w in waves[:-1])} (see one "
                  "with --wave YEAR; close a finished wave with `culture waves close YEAR`)")
        waves = waves[-1:]
    for w in waves:
        state = "open" if w["open"] else f"closed on {w['closed_on']}"
        out.print(f"\n[bold]fieldwork, wave {w['wave']}[/bold] ({state}): {w['responses']} "
                  f"responses so far, {w['waiting']} of them waiting in the web form's inbox "
                  "for `culture run`")
        sites = Table(title="by site")
        sites.add_column("site", no_wrap=True, min_width=4)
        sites.add_column("name", no_wrap=True, max_width=28, overflow="ellipsis")
        for heading in ("responses", "headcount", "rate", "in inbox", "invited", "used"):
            sites.add_column(heading, justify="right", no_wrap=True, min_width=len(heading))
        for site in w["sites"]:
            invited = site["invitations_issued"]
            sites.add_row(site["site"], site["name"], str(site["responses"]),
                          str(site["headcount"] or ""),
                          _rate(site["responses"], site["headcount"]), str(site["waiting"]),
                          str(invited or ""), str(site["invitations_used"]) if invited else "")
        out.print(sites)
        out.print("in inbox: web answers not yet taken in by `culture run`; used: marked in "
                  "tens, so up to nine recent uses may not show yet", style="dim")
        groups = Table(title=f"by staff group (fewer than {k} responses: not shown)")
        groups.add_column("site", no_wrap=True, min_width=4)
        groups.add_column("staff group", no_wrap=True, max_width=40, overflow="ellipsis")
        for heading in ("responses", "headcount", "rate"):
            groups.add_column(heading, justify="right", no_wrap=True, min_width=len(heading))
        for site in w["sites"]:
            withheld = 0
            for group in site["groups"]:
                n, heads = group["responses"], group["headcount"]
                if n is None:
                    withheld += 1
                elif n or heads:
                    groups.add_row(site["site"], group["label"], str(n), str(heads or ""),
                                   _rate(n, heads))
            if withheld:
                groups.add_row(site["site"], f"{withheld} more, fewer than {k} each", "-",
                               "", "", style="dim")
        out.print(groups)
        if w["days"]:
            out.print("web answers by day: " + ", ".join(f"{day} {n}" for day, n in w["days"]),
                      highlight=False)


def print_summary(summary: dict) -> None:
    """The store in a sentence and a table of responses per site and wave."""
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
