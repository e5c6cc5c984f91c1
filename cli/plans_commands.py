"""`culture actions list|add|export`: sites' action plans (`plans.store`) from the shell.

The dashboard's Actions page is where directors keep their plan; these commands are for
an admin: seeing every site's plan, recording an action for a site, and writing the plan
as CSV or XLSX for a board.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.text import Text

from cli.options import DbOption, out, settings_for
from survey.settings import Settings

SiteOption = Annotated[Optional[str], typer.Option("--site", help="One site's code")]
StatusOption = Annotated[Optional[str], typer.Option(
    "--status", help="planned, in progress, done, dropped, or open (planned and in progress)")]


def _book(settings: Settings):
    """The plans file, checking sites and principles against the published layer if any."""
    from plans.store import ActionBook
    from published.reader import PublishedLayer

    if not settings.published_path.exists():
        return ActionBook(settings.plans_path)
    with PublishedLayer.open(settings.published_path) as layer:
        measures = layer.measures()
        principles = measures.loc[measures["measure_kind"] == "principle", "measure"]
        return ActionBook(settings.plans_path, known_sites=layer.sites()["site_code"],
                          known_principles=principles)


def _statuses(status: str | None):
    from plans.store import OPEN_STATUSES

    return OPEN_STATUSES if status == "open" else status


def actions_list(site: SiteOption = None, status: StatusOption = None,
                 db: DbOption = None) -> None:
    """List recorded actions (all sites, or one).

    Example: culture actions list --site A --status open
    """
    from plans.store import ActionBook

    frame = ActionBook(settings_for(db).plans_path).list(site=site, status=_statuses(status))
    if frame.empty:
        out.print("no actions recorded" + (f" for site {site}" if site else ""))
        return
    # One block per action (a nine-column table is unreadable in a terminal); Text, not
    # markup, so a user's "[b]" is shown as typed.
    for row in frame.itertuples(index=False):
        out.print(Text(f"{row.id}  site {row.site_code}  {row.principle}  {row.status}  "
                       f"{row.start.isoformat()} to review {row.review.isoformat()}"))
        out.print(Text(f"    {row.what} (owner: {row.owner_role})"))
        if row.note:
            out.print(Text(f"    note: {row.note}"))


def actions_add(
        site: Annotated[str, typer.Option("--site", help="The site's code")],
        principle: Annotated[str, typer.Option("--principle", help="P1 to P6")],
        what: Annotated[str, typer.Option(
            "--what", help="The action: one of the guide's for the principle, or your words")],
        owner_role: Annotated[str, typer.Option(
            "--owner-role", help="The role that owns it (e.g. Medical director), not a name")],
        start: Annotated[str, typer.Option("--start", help="Start date, e.g. 2026-04-01")],
        review: Annotated[str, typer.Option("--review", help="Review date, on or after start")],
        status: Annotated[str, typer.Option(help="planned, in progress, done or dropped")
                          ] = "planned",
        note: Annotated[str, typer.Option(help="A short note (500 characters at most)")] = "",
        user: Annotated[Optional[str], typer.Option(
            "--user", help="Who is recording it, for the audit trail \\[default: your login]")
        ] = None,
        db: DbOption = None) -> None:
    """Record an action in a site's plan (it carries over to later waves until closed).

    Example: culture actions add --site A --principle P1 --what "Publish one clear route
    in" --owner-role "Medical director" --start 2026-04-01 --review 2026-10-01
    """
    action = _book(settings_for(db)).add(site, principle, what, owner_role, start, review,
                                         user or getpass.getuser(), status=status, note=note)
    out.print(f"added action {action['id']} for site {action['site_code']}, "
              f"{action['principle']}: {action['what']} ({action['status']})")


def actions_export(
        path: Annotated[Path, typer.Argument(help="The file to write: .csv or .xlsx")],
        site: SiteOption = None, status: StatusOption = None, db: DbOption = None) -> None:
    """Write the action plan as CSV or XLSX for a board (the format follows the name).

    Example: culture actions export board-plan.xlsx --site A
    """
    from plans.board import write_plan
    from plans.store import ActionBook

    frame = ActionBook(settings_for(db).plans_path).list(site=site, status=_statuses(status))
    written = write_plan(frame, path)
    out.print(f"wrote {len(frame)} action(s) to {written}")
