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

    settings = settings_for(instrument=instrument)
    written = export_instrument(instrument_of(settings), fmt.strip().lower(), out_path,
                                parse_site_codes(sites))
    out.print(f"wrote {written} ({fmt})")


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
    settings = settings_for(db, instrument)
    serve_survey(settings, host, port, tokens)


def serve_survey(settings: Settings, host: str, port: int, tokens: bool) -> None:
    import waitress

    from collect.inbox import Inbox
    from collect.webform import MAX_POST_BYTES, create_collect_app

    surveys = _surveys(settings)
    inbox = Inbox(settings.inbox_path)
    app = create_collect_app(instrument_of(settings), inbox, surveys, require_tokens=tokens)
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
    from collect.inbox import write_invitation_links

    settings = settings_for(db)
    if (site, wave) not in _surveys(settings):
        raise CultureError(f"site {site!r} and wave {wave} are not both in the store; add them "
                           "with `culture sites add` / `culture waves add`")
    write_invitation_links(settings.inbox_path, site, wave, count, out_file, base_url)
    out.print(f"{count} invitation links for site {site}, wave {wave}: {out_file}")
