"""Commands about the survey itself: the instrument, sample data, the web form, invitations.

`culture instrument check|export`, `culture generate`, `culture collect`, `culture invite`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from cli.options import DbOption, InstrumentOption, err, instrument_of, out, settings_for
from survey.errors import CultureError
from survey.settings import SAMPLES_DIR, Settings


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
    for item in inst.items:
        if item.asked_if:
            out.print(f"{item.id}: {item.asked_if.describe(inst)}", highlight=False)
    _print_length(inst)


def _print_length(inst) -> None:
    """The estimated time to answer, against what the introduction promises."""
    from survey.questionnaire import claimed_minutes, estimated_seconds

    quick, slow = estimated_seconds(inst)
    said = f"{quick / 60:.1f} to {slow / 60:.1f} minutes to answer (6-8 s an agreement item)"
    claim = claimed_minutes(inst)
    if claim is None:
        out.print(f"{said}; the introduction names no time", highlight=False)
    elif claim[0] <= (quick + slow) / 120 <= claim[1]:
        out.print(f"{said}; the introduction's claim holds", highlight=False)
    else:
        least, most = claim
        promised = f"{least}" if least == most else f"{least} to {most}"
        err.print(f"warning: {said}, but the introduction promises {promised} minutes; "
                  f"change the claim", highlight=False)


def instrument_compare(
        old: Annotated[Path, typer.Argument(help="The earlier version's YAML file")],
        new: Annotated[Path, typer.Argument(help="The later version's YAML file")]) -> None:
    """Say which items and scale scores compare across two versions of the instrument.

    Example: culture instrument compare instruments/support-culture-v1.yaml instruments/support-culture-v2.yaml
    """
    from survey.instrument import load_instrument
    from survey.instrument_versions import compare_instruments

    result = compare_instruments(load_instrument(old), load_instrument(new))
    items = Table(f"{result.old.version}", f"{result.new.version}", "compares", "note")
    for row in result.items:
        if row.status != "same":
            items.add_row(row.old_id or "-", row.new_id or "-", row.status, row.note)
    same = sum(row.status == "same" for row in result.items)
    out.print(f"{result.old.key} -> {result.new.key}: {len(result.comparable_items())} items "
              f"compare item by item ({same} unchanged, listed by id in both; the rest below)")
    out.print(items)
    scales = Table("scale", "score compares", "why")
    for scale in result.scales:
        scales.add_row(result.new.scale(scale.scale_id).name,
                       "yes" if scale.comparable else "no", scale.note)
    out.print(scales)


def instrument_export(
        fmt: Annotated[str, typer.Option("--format", help=(
            "redcap (data dictionary CSV), xlsform (KoboToolbox / ODK .xlsx), html or pdf "
            "(printable), csv (empty template for ingest)"))],
        out_path: Annotated[Path, typer.Option("--out", help="File to write")],
        sites: Annotated[Optional[str], typer.Option(
            help="Sites offered as a list, by code, e.g. A,B,RX1, or 'all': respondents "
                 "see each site's name from the store (default: the code is typed in)")] = None,
        wave: Annotated[Optional[int], typer.Option(
            help="Survey year the form records without asking (redcap, xlsform; "
                 "default: this year)")] = None,
        db: DbOption = None,
        instrument: InstrumentOption = None) -> None:
    """Write the instrument for another survey tool, or on paper.

    Examples: culture instrument export --format redcap --out dictionary.csv --sites A,B --wave 2026
              culture instrument export --format pdf --out questionnaire.pdf
    """
    from survey.instrument_export import export_instrument, parse_site_codes, survey_year
    from survey.questionnaire import for_respondents

    settings = settings_for(db=db, instrument=instrument)
    fmt = fmt.strip().lower()
    choices = _named_sites(settings, sites)
    # Respondents read the group size this trust shows, not the wording's default.
    shown = for_respondents(instrument_of(settings), settings.min_group_size)
    written = export_instrument(shown, fmt, out_path, choices, wave)
    out.print(f"wrote {written} ({fmt})")
    if fmt in ("redcap", "xlsform"):
        out.print(f"survey year recorded without asking: {survey_year(wave)}"
                  + ("" if wave else " (this year; set another with --wave)"))


def _named_sites(settings: Settings, sites: str | None) -> list[tuple[str, str]]:
    """(code, name) of the sites a form offers: codes from --sites, names from the store."""
    from pipeline.store import list_sites, open_store
    from survey.instrument_export import parse_site_codes

    if not sites:
        return []
    names: dict[str, str] = {}
    if settings.db_path.exists():
        with open_store(settings.db_path, read_only=True) as con:
            names = {s.site_code.upper(): s.name for s in list_sites(con)}
    if sites.strip().lower() == "all":
        if not names:
            raise CultureError(f"--sites all: no sites in {settings.db_path}; load them with "
                               "`culture sites load sites.csv`, or list codes, e.g. --sites A,B")
        return sorted(names.items())
    codes = parse_site_codes(sites)
    unnamed = [code for code in codes if code not in names]
    if unnamed:
        err.print(f"no name in {settings.db_path} for site(s) {', '.join(unnamed)}: the form "
                  "shows the code; load names with `culture sites load sites.csv` and export "
                  "again", highlight=False)
    return [(code, names.get(code, code)) for code in codes]


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


def _surveys(settings: Settings) -> set[tuple[str, int]]:
    """(site, wave) pairs the store knows; read once, so a later pipeline run can write."""
    from pipeline.store import open_store, survey_pairs

    with open_store(settings.db_path, read_only=True) as con:
        return survey_pairs(con)


def _survey_sites(settings: Settings) -> dict:
    """What the form tells each site's respondents, from the store's sites table."""
    from collect.webform import SurveySite
    from pipeline.store import list_sites, open_store

    with open_store(settings.db_path, read_only=True) as con:
        return {s.site_code: SurveySite(s.site_code, s.name, s.contact_email, s.support_text,
                                        s.support_url) for s in list_sites(con)}


#: How often a running survey server rewrites the fieldwork counts (seconds).
FIELDWORK_EVERY = 60.0


def _keep_fieldwork_current(settings: Settings, instrument, stop, every: float) -> None:
    """Rewrite the fieldwork counts every `every` seconds until `stop` is set; a round is
    skipped while `culture run` holds the store (the next one catches up)."""
    from pipeline.fieldwork import write_fieldwork

    while not stop.wait(every):
        try:
            write_fieldwork(settings, instrument, "culture collect")
        except CultureError:
            continue


def collect(db: DbOption = None, instrument: InstrumentOption = None,
            host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
            port: Annotated[int, typer.Option(help="Port")] = 8060,
            tokens: Annotated[bool, typer.Option(
                "--tokens/--open", help="Require a single-use invitation token "
                "(see `culture invite`) or accept anyone with the link")] = False,
            run_by: Annotated[Optional[str], typer.Option(
                help="Who runs the survey, as the form says it, e.g. \"the Practitioner "
                     "Support research team\" (default: the survey team at the site)")] = None,
            contact: Annotated[Optional[str], typer.Option(
                help="Email for questions about the survey, for sites without a "
                     "contact_email of their own")] = None) -> None:
    """Serve the survey to respondents: one link per site and wave, /s/SITE/WAVE.

    Answers go to <store>.inbox.sqlite, which this server can keep writing while
    `culture run` uses the store; the next run ingests them.

    The form names the site's organisation, who runs the survey (--run-by) and how to
    reach them (the site's contact_email, else --contact), links a privacy notice
    (/privacy) and says where to get support (the site's support_text / support_url).
    A closed wave (`culture waves close`) refuses its links with a kind page. Every
    minute the fieldwork counts are rewritten for the dashboard's Fieldwork page.

    Example: culture collect --port 8060   (then share http://HOST:8060/s/A/2026)
    """
    settings = settings_for(db, instrument)
    serve_survey(settings, host, port, tokens, run_by, contact)


def serve_survey(settings: Settings, host: str, port: int, tokens: bool,
                 run_by: str | None = None, contact: str | None = None,
                 fieldwork_every: float = FIELDWORK_EVERY) -> None:
    import threading

    import waitress

    from collect.inbox import Inbox
    from collect.webform import MAX_POST_BYTES, create_collect_app
    from pipeline.fieldwork import write_fieldwork

    surveys = _surveys(settings)
    sites = _survey_sites(settings)
    instrument = instrument_of(settings)
    inbox = Inbox(settings.inbox_path)
    app = create_collect_app(instrument, inbox, surveys, require_tokens=tokens, sites=sites,
                             run_by=run_by, contact=contact,
                             min_group_size=settings.min_group_size)
    write_fieldwork(settings, instrument, "culture collect")
    stop = threading.Event()
    threading.Thread(target=_keep_fieldwork_current, name="fieldwork", daemon=True,
                     args=(settings, instrument, stop, fieldwork_every)).start()
    out.print(f"survey: http://{host}:{port}/s/SITE/WAVE for {len(surveys)} site x wave "
              f"link(s); answers to {settings.inbox_path}  (Ctrl+C to stop)", highlight=False)
    try:
        # waitress: a production WSGI server; its threads wait on the inbox's group
        # commit while the writer thread syncs, so a few dozen keep the disk busy.
        waitress.serve(app, host=host, port=port, threads=32, connection_limit=500,
                       max_request_body_size=MAX_POST_BYTES,
                       backlog=1024, channel_timeout=30, _quiet=True)
    finally:
        stop.set()
        waiting = inbox.close()
        if waiting:
            # Written only in batches, so that no one can pair a token with its answer.
            err.print(f"{waiting} used invitation(s) were waiting for their used mark and "
                      "can be used once more when the survey restarts", highlight=False)


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
    from collect.inbox import closed_waves, write_invitation_links

    settings = settings_for(db)
    surveys = _surveys(settings)
    if (site, wave) not in surveys:
        missing = []
        if site not in {s for s, _ in surveys}:
            missing.append(f"site {site!r} is not in the store: load the sites file with "
                           "`culture sites load sites.csv` (or add one site with "
                           "`culture sites add`)")
        if wave not in {w for _, w in surveys}:
            missing.append(f"wave {wave} is not in the store: add it with "
                           f"`culture waves add {wave}`")
        raise CultureError("; ".join(missing) or f"site {site!r} and wave {wave} are not "
                           "both in the store")
    if wave in closed_waves(settings.inbox_path):
        raise CultureError(f"wave {wave} is closed, so its invitations would not work; open "
                           f"it again with `culture waves open {wave}` first")
    write_invitation_links(settings.inbox_path, site, wave, count, out_file, base_url)
    out.print(f"{count} invitation links for site {site}, wave {wave}: {out_file}")
