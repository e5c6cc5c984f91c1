"""Commands that write outputs from the published layer: researcher exports, site reports."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from cli.options import DbOption, out, settings_for
from survey.settings import resolve_settings


def export_aggregates_command(
        out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the files into")],
        fmt: Annotated[Optional[list[str]], typer.Option(
            "--format", help="csv, parquet, sav (SPSS) or dta (Stata); repeat for several "
                             "(default: csv)")] = None,
        level: Annotated[Optional[list[str]], typer.Option(
            "--level", help="site, principle, item, group, answers (every item's answers "
                            "by option), or drivers (what goes with seeking help early: only when "
                            "named); repeat for several (default: all but drivers)")] = None,
        pseudonymise_key: Annotated[Optional[str], typer.Option(
            "--pseudonymise-key",
            help="Replace site codes by keyed pseudonyms (HMAC-SHA256) and leave site names "
                 "out; at least 16 characters; the same key gives the same pseudonyms "
                 r"\[env var: CULTURE_PSEUDONYMISE_KEY]")] = None,
        pseudonymise: Annotated[bool, typer.Option(
            "--pseudonymise", help="Pseudonymise with the deployment's key (the one "
                                   "researchers' dashboard pages and downloads use; made "
                                   "beside the store the first time)")] = False,
        min_sites: Annotated[Optional[int], typer.Option(
            "--min-sites", help="When pseudonymising, coarsen site type and region until "
                                "each combination covers this many sites \\[default: "
                                "CULTURE_MIN_SITES_PER_COMBINATION or 3]")] = None,
        db: DbOption = None) -> None:
    """Export the published aggregates for researchers, with a datapackage.json codebook.

    Only published, suppressed aggregates are exported: cells below the reporting
    threshold have blank statistics and suppressed = 1.

    Examples: culture export --out exports
              culture export --out exports --format sav --format dta --level site
              culture export --out exports --pseudonymise --format parquet
    """
    from outputs.export import ENV_PSEUDONYM_KEY, deployment_pseudonym_key, export_aggregates

    settings = resolve_settings(db=db, min_sites_per_combination=min_sites)
    if pseudonymise_key is None:
        # Read here, not as the option's envvar, so that the name is outputs.export's and
        # every other command starts without importing the export writers.
        pseudonymise_key = os.environ.get(ENV_PSEUDONYM_KEY) or None
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


def site_report_command(
        site: Annotated[str, typer.Option("--site", help="Site code, e.g. A")],
        wave: Annotated[int, typer.Option("--wave", help="Survey wave (year), e.g. 2026")],
        out_dir: Annotated[Path, typer.Option("--out", help="Folder for the report")] = Path("reports"),
        pdf: Annotated[bool, typer.Option(
            "--pdf/--no-pdf", help="Also print a PDF with headless Chromium")] = True,
        db: DbOption = None) -> None:
    """Write a board-ready report for one site and wave: HTML, and a PDF made from it.

    The six principles and their gaps with the guide's actions, the site's action plan
    (with "did it move?" for each action due for review), benchmark position, trends,
    equity, response rate and reliability, from the published layer and the plan only.

    Examples: culture report --site A --wave 2026
              culture report --site D --wave 2026 --out board-papers --no-pdf
    """
    from outputs.site_report import write_site_report

    settings = settings_for(db)
    files = write_site_report(settings.published_path, site, wave, out_dir, pdf,
                              plans_path=settings.plans_path)
    out.print(f"wrote {files.html}")
    if files.pdf:
        out.print(f"wrote {files.pdf}")
