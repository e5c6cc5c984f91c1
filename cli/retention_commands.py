"""`culture purge`: delete frozen waves' respondent-level answers after the retention
period (`pipeline.retention`), and give the space back."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from cli.options import DbOption, err, out, settings_for


def purge(before: Annotated[int, typer.Option(
              "--before", metavar="YEAR",
              help="Purge frozen waves EARLIER than this year (exclusive: --before 2024 "
                   "purges 2023 and older, keeps 2024)")],
          dry_run: Annotated[bool, typer.Option(
              "--dry-run", help="Say what would go, wave by wave and table by table; "
                                "change nothing")] = False,
          reason: Annotated[Optional[str], typer.Option(
              help="Why the answers go, logged with the purge \\[default: 'retention "
                   "period: answers before YEAR deleted']")] = None,
          compact: Annotated[bool, typer.Option(
              "--compact/--no-compact",
              help="After purging, rewrite the store so the file shrinks (needs free "
                   "space for a second copy while it runs)")] = True,
          db: DbOption = None) -> None:
    """Delete the respondent-level answers of frozen waves older than a year.

    Goes: each purged wave's responses, its rows of every respondent-level table (the
    quality flags), its web form submissions in the inbox, and the answer values and
    response ids of its quarantined rows. Stays: the published layer and the rows later
    runs publish for frozen waves, the per-wave aggregates, the ingest log, the reasons
    rows were quarantined, the suppression log, and a logged record of the purge. Only
    frozen waves are purged (`culture waves freeze YEAR` first); a purged wave stays
    frozen for good. The store's deletions are all or nothing.

    Examples: culture purge --before 2024 --dry-run
              culture purge --before 2024 --reason "trust retention policy: 2 years"
    """
    from pipeline.retention import compact_store, plan_purge
    from pipeline.retention import purge as purge_waves
    from pipeline.store import open_store

    settings = settings_for(db)
    why = reason if reason is not None else f"retention period: answers before {before} deleted"
    if dry_run:
        with open_store(settings.db_path, read_only=True) as con:
            plan = plan_purge(con, before, settings.inbox_path)
    else:
        with open_store(settings.db_path) as con:
            plan = purge_waves(con, before, why, settings.inbox_path)
    _print_plan(plan, dry_run)
    if dry_run:
        if plan.waves:
            out.print("dry run: nothing was changed; run without --dry-run to purge")
        return
    if not compact:
        out.print("the store file keeps its size (DuckDB reuses the space for new rows); "
                  f"to shrink it, run `culture purge --before {before}` again without "
                  "--no-compact")
        return
    err.print("rewriting the store to give the space back ...")
    done = compact_store(settings.db_path)
    out.print(f"store rewritten: {_size(done.bytes_before)} -> {_size(done.bytes_after)} "
              f"({done.path})")


def _print_plan(plan, dry_run: bool) -> None:
    from rich.table import Table

    if not plan.waves:
        out.print(f"no frozen wave before {plan.before}: nothing to purge")
    elif not plan.total:
        out.print(f"wave(s) {', '.join(map(str, plan.waves))}: no answers left to purge "
                  "(purged before)")
    else:
        verb = "would go" if dry_run else "went"
        table = Table(title=f"{'would be purged' if dry_run else 'purged'}: wave(s) "
                            f"{', '.join(map(str, plan.waves))} (before {plan.before})",
                      title_justify="left")
        table.add_column("rows")
        for wave in plan.waves:
            table.add_column(str(wave), justify="right")
        names = [*plan.rows, "quarantine (blanked)", "inbox"]
        for name in names:
            table.add_row(name, *(f"{plan.wave_counts(wave)[name]:,}" for wave in plan.waves))
        out.print(table)
        out.print(f"{plan.total:,} row(s) {verb}: answers deleted; the quarantine keeps "
                  "each row's reason with its value blanked")
        for wave, count in plan.inbox_not_ingested.items():
            if count:
                out.print(f"wave {wave}: {count:,} web form submission(s) in the inbox "
                          "were never taken into the store (sent after the wave was "
                          "frozen, so no published number counts them); they go too")
    if plan.quarantine_unknown:
        out.print(f"quarantine: {plan.quarantine_unknown:,} line(s) whose wave cannot be "
                  "told (their file gave each row's wave, and the row was rejected) keep "
                  "their values; see `culture quarantine`")
    for wave, count in plan.quarantine_other_waves.items():
        out.print(f"quarantine: {count:,} line(s) name wave {wave}, which is not a frozen "
                  "wave: kept as they are")


def _size(size: int) -> str:
    return f"{size / 1_000_000:,.1f} MB"
