"""Retention: delete the respondent-level answers of frozen waves past their retention
period (`culture purge --before 2024`), keeping everything later runs and readers need.

What goes, for every frozen wave before the given year: its rows of `responses` and of
every other respondent-level table of the store (any table with a `response_id` or
`source_row` column: the quality flags, and whatever a stage adds later), its web form
submissions in the inbox beside the store, and the answer values and response ids of
its quarantined rows. What stays: the published layer and the held rows that later runs
publish verbatim (`held_<table>`), every published version's cells (`cell_versions`), the per-wave
aggregates (`response_quality_waves`, the `suppression_log`), the ingest log
(`ingest_batches`), each quarantined row's reason (its value blanked) and the
`wave_events` log, where the purge is recorded with its counts.

Only frozen waves are purged: an open wave could still be recomputed, so its answers
are needed. A wave once purged stays frozen (`pipeline.waves.unfreeze_wave` refuses it).

The store's part is one transaction: a purge killed at any point leaves the store as it
was. The inbox is a separate SQLite file; its submissions are deleted after the store's
deletions succeed and just before the store commits, so a purge that dies in between has
removed answers only from the inbox, of waves the store still holds and that are
already frozen; running the purge again completes it.

DuckDB does not give a file's space back when rows are deleted: `compact_store` rewrites
the store into a new file and puts it in the old one's place.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from collect.inbox import delete_wave_submissions, submission_ids_by_wave
from pipeline.ingest.inbox import move_cursor_before_purge
from pipeline.sql_templates import quote, render
from pipeline.store import SQL_DIR, open_store, read_sql
from pipeline.waves import WaveStateError, _log, frozen_waves

#: Respondent-level tables: any table with one of these columns ...
RESPONDENT_KEYS = ("response_id", "source_row")
#: ... except these, which are kept: the quarantine (its values are blanked instead).
NOT_PURGED = ("quarantine",)
#: Test hook: the name of a point in `purge` at which to stop and wait to be killed
#: (tests/test_purge.py kills a real purge there, to show it is all or nothing).
PAUSE_VARIABLE = "CULTURE_TEST_PURGE_PAUSE"


class RetentionError(WaveStateError):
    """A purge the store's state or shape does not allow."""


@dataclass(frozen=True)
class PurgePlan:
    """What a purge deletes (or, from a dry run, would delete), wave by wave."""

    before: int
    #: The frozen waves purged, oldest first.
    waves: tuple[int, ...]
    #: {table: {wave: rows deleted}}, `responses` first.
    rows: dict[str, dict[int, int]] = field(default_factory=dict)
    #: {wave: quarantine lines whose value and response id are blanked}.
    quarantine_blanked: dict[int, int] = field(default_factory=dict)
    #: Quarantine lines still holding a value whose wave cannot be told: kept as they are.
    quarantine_unknown: int = 0
    #: {wave: lines} of quarantined rows naming a wave before `before` that is not frozen
    #: (a year never set up, say): kept as they are.
    quarantine_other_waves: dict[int, int] = field(default_factory=dict)
    #: {wave: web form submissions deleted from the inbox}.
    inbox: dict[int, int] = field(default_factory=dict)
    #: {wave: of those, submissions the store never took in (they came after the wave
    #: was frozen, so no published number counts them)}.
    inbox_not_ingested: dict[int, int] = field(default_factory=dict)

    def wave_counts(self, wave: int) -> dict[str, int]:
        """{what: count} of one wave: every table, 'quarantine (blanked)', 'inbox'."""
        counts = {table: by_wave.get(wave, 0) for table, by_wave in self.rows.items()}
        counts["quarantine (blanked)"] = self.quarantine_blanked.get(wave, 0)
        counts["inbox"] = self.inbox.get(wave, 0)
        return counts

    @property
    def total(self) -> int:
        """Rows deleted or blanked, over every wave, table, the quarantine and the inbox."""
        return (sum(sum(w.values()) for w in self.rows.values())
                + sum(self.quarantine_blanked.values()) + sum(self.inbox.values()))


@dataclass(frozen=True)
class RespondentTable:
    """A store table holding rows per respondent, and how its rows' waves are known."""

    name: str
    #: "wave": its own wave column; "source_row": its (batch_id, source_row) in responses.
    by: str


def respondent_tables(con: duckdb.DuckDBPyConnection) -> list[RespondentTable]:
    """The store's respondent-level tables, `responses` last (the others may be told
    their waves through it). A table whose rows' waves cannot be told is refused, rather
    than leave answers behind or delete another wave's."""
    shapes: dict[str, set[str]] = {}
    for table, column in con.execute(
            "select c.table_name, c.column_name from information_schema.columns c "
            "join information_schema.tables t using (table_catalog, table_schema, table_name) "
            "where c.table_catalog = current_database() and c.table_schema = 'main' "
            "and t.table_type = 'BASE TABLE'").fetchall():
        shapes.setdefault(table, set()).add(column)
    found = []
    for table in sorted(shapes):
        columns = shapes[table]
        if table in NOT_PURGED or table == "responses" or not columns & set(RESPONDENT_KEYS):
            continue
        if "wave" in columns:
            found.append(RespondentTable(table, "wave"))
        elif {"batch_id", "source_row"} <= columns:
            found.append(RespondentTable(table, "source_row"))
        else:
            keys = ", ".join(sorted(columns & set(RESPONDENT_KEYS)))
            raise RetentionError(
                f"table {table} holds rows per respondent ({keys}) but no wave, nor "
                f"batch_id and source_row to find it by; purge cannot tell "
                f"which rows belong to a purged wave, so it deletes nothing. Drop or "
                f"rebuild that table, or teach pipeline.retention its shape")
    return [*found, RespondentTable("responses", "wave")]


def plan_purge(con: duckdb.DuckDBPyConnection, before: int,
               inbox_path: Path | None = None) -> PurgePlan:
    """What `purge(con, before, ...)` would delete: every frozen wave earlier than
    `before` (exclusive: 2024 purges 2023 and older). Changes nothing.

    Raises RetentionError if a wave earlier than `before` that is not frozen holds
    answers (in the store or the inbox): freeze it first, or purge an earlier year.
    """
    tables = respondent_tables(con)
    inbox = submission_ids_by_wave(inbox_path, list(range(1990, before))) \
        if inbox_path is not None else {}
    frozen = set(frozen_waves(con))
    holding = set(inbox)
    for table in tables:
        if table.by == "wave":
            holding |= {row[0] for row in con.execute(
                f"select distinct wave from {quote(table.name)} where wave < ?",
                [before]).fetchall()}
    unfrozen = sorted(holding - frozen)
    if unfrozen:
        many = len(unfrozen) > 1
        raise RetentionError(
            f"wave{'s' if many else ''} {', '.join(map(str, unfrozen))} before {before} "
            f"{'are' if many else 'is'} not frozen: {'their' if many else 'its'} answers "
            f"are kept until {'their' if many else 'its'} numbers are published for good. "
            f"Freeze {'them' if many else 'it'} first (`culture waves freeze "
            f"{unfrozen[0]}`), or purge only earlier waves (--before {unfrozen[0]})")
    waves = tuple(sorted(w for w in frozen if w < before))
    if not waves:
        return PurgePlan(before=before, waves=waves)
    params = {"waves": list(waves)}
    rows = {table.name: dict(con.execute(
        f"select r.wave, count(*) from {_rows_of(table)} group by r.wave", params).fetchall())
        for table in tables}
    told = read_sql("quarantine_waves.sql")
    holding_value = "(q.bad_value is not null or q.response_id is not null)"
    blanked, other_waves = {}, {}
    for wave, lines in con.execute(
            f"select told.wave, count(*) from quarantine q join ({told}) told "
            f"using (batch_id, source_row) where {holding_value} and told.wave < $before "
            f"group by told.wave", {"before": before}).fetchall():
        (blanked if wave in waves else other_waves)[wave] = lines
    unknown = con.execute(
        f"select count(*) from quarantine q join ({told}) told using (batch_id, source_row) "
        f"where {holding_value} and told.wave is null").fetchall()[0][0]
    in_inbox, not_ingested = {}, {}
    for wave in waves:
        ids = inbox.get(wave, [])
        if ids:
            in_inbox[wave] = len(ids)
            missing = con.execute(
                "select count(*) from unnest(?::varchar[]) as t(r) where r not in "
                "(select response_id from responses) and r not in "
                "(select response_id from quarantine where response_id is not null)",
                [ids]).fetchall()[0][0]
            if missing:
                not_ingested[wave] = missing
    return PurgePlan(before, waves, rows, blanked, unknown, other_waves, in_inbox,
                     not_ingested)


def _rows_of(table: RespondentTable) -> str:
    """A FROM clause of `table`'s rows of the purged waves ($waves), their wave as r.wave."""
    if table.by == "wave":
        return f"{quote(table.name)} r where list_contains($waves, r.wave)"
    return (f"{quote(table.name)} t join responses r using (batch_id, source_row) "
            f"where list_contains($waves, r.wave)")


def purge(con: duckdb.DuckDBPyConnection, before: int, reason: str,
          inbox_path: Path | None = None, by: str | None = None) -> PurgePlan:
    """Delete the respondent-level answers of every frozen wave earlier than `before`
    (see the module note for what goes and what stays); returns what went, which is what
    `plan_purge` said. All or nothing in the store; logged in `wave_events`."""
    if not reason.strip():
        raise RetentionError("say why the answers are deleted (--reason), e.g. 'retention "
                             "period of 2 years'; it is logged")
    con.execute("begin transaction")
    try:
        plan = plan_purge(con, before, inbox_path)
        if plan.waves:
            _delete(con, plan)
            _pause("store-deleted")
            if inbox_path is not None:
                # (In the store's transaction: a purge that dies after the inbox's
                # deletions but before the store commits leaves the cursor where it was,
                # and the next run reads the whole inbox again, taking nothing twice.)
                move_cursor_before_purge(con, inbox_path, list(plan.waves))
                # Its own transaction, committed here: see the module note.
                delete_wave_submissions(inbox_path, list(plan.waves))
            _pause("inbox-deleted")
            earlier = {row[0] for row in con.execute(
                "select distinct wave from wave_events where action = 'purge'").fetchall()}
            for wave in plan.waves:
                counts = plan.wave_counts(wave)
                if any(counts.values()) or wave not in earlier:
                    detail = f"before {before}: " + ", ".join(
                        f"{name} {count}" for name, count in counts.items())
                    _log(con, wave, "purge", reason, detail, by)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    _pause("committed")
    return plan


def _delete(con: duckdb.DuckDBPyConnection, plan: PurgePlan) -> None:
    """The store's deletions, each checked against the plan (the quarantine first: its
    rows' waves are told through `responses`, which goes last)."""
    params = {"waves": list(plan.waves)}
    blanked = con.execute(render(SQL_DIR, "purge_quarantine.sql",
                                 quarantine_waves=read_sql("quarantine_waves.sql")),
                          params).fetchall()[0][0]
    _check("quarantine", blanked, sum(plan.quarantine_blanked.values()))
    for table in respondent_tables(con):
        if table.by == "wave":
            sql = f"delete from {quote(table.name)} where list_contains($waves, wave)"
        else:
            sql = (f"delete from {quote(table.name)} t using responses r where "
                   f"t.batch_id = r.batch_id and t.source_row = r.source_row "
                   f"and list_contains($waves, r.wave)")
        deleted = con.execute(sql, params).fetchall()[0][0]
        _check(table.name, deleted, sum(plan.rows.get(table.name, {}).values()))


def _check(table: str, done: int, planned: int) -> None:
    if done != planned:
        raise RetentionError(f"table {table}: {done} row(s) would change, {planned} "
                             f"counted; nothing was deleted")


def _pause(point: str) -> None:
    if os.environ.get(PAUSE_VARIABLE) == point:
        print(f"purge paused at {point}", file=sys.stderr, flush=True)
        time.sleep(600)


@dataclass(frozen=True)
class Compaction:
    """A store rewritten without the space deleted rows left."""

    path: Path
    bytes_before: int
    bytes_after: int


def compact_store(path: Path | str) -> Compaction:
    """Rewrite the store at `path` into a new file (DuckDB's COPY FROM DATABASE) and put
    it in the old one's place: deleted rows' space comes back only so.

    The old file stays open for writing until the new one has replaced it, so no other
    writer can slip in between (one writer at a time): a writer waiting for the lock
    opens the new file. Every table's row count and every sequence are compared before
    the swap; a failure or a kill leaves the old file as it was (and at most a
    `<store>.compacting` file, removed by the next compaction). Needs free disk space
    for a second copy of the store.
    """
    path = Path(path)
    scratch = path.with_name(path.name + ".compacting")
    for leftover in (scratch, scratch.with_name(scratch.name + ".wal")):
        leftover.unlink(missing_ok=True)
    with open_store(path) as con:
        con.execute("set enable_progress_bar = false")
        con.execute("checkpoint")
        before = path.stat().st_size
        source = con.execute("select current_database()").fetchall()[0][0]
        con.execute("attach ? as compacted", [str(scratch)])
        try:
            con.execute(f"copy from database {quote(source)} to compacted")
            _same_content(con, source, "compacted")
        finally:
            con.execute("detach compacted")
        _pause("compacted-copy")
        with scratch.open("rb") as handle:   # on disk before it takes the store's name
            os.fsync(handle.fileno())
        os.replace(scratch, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    return Compaction(path, before, path.stat().st_size)


def _same_content(con: duckdb.DuckDBPyConnection, source: str, copy: str) -> None:
    tables = [row[0] for row in con.execute(
        "select table_name from duckdb_tables() where database_name = ? and not temporary "
        "order by 1", [source]).fetchall()]
    copied = [row[0] for row in con.execute(
        "select table_name from duckdb_tables() where database_name = ? order by 1",
        [copy]).fetchall()]
    if tables != copied:
        missing = ", ".join(sorted(set(tables) - set(copied)))
        raise RetentionError(f"the rewritten store lacks table(s) {missing}; the store was "
                             "left as it was")
    for table in tables:
        counts = [con.execute(f"select count(*) from {quote(db)}.main.{quote(table)}")
                  .fetchall()[0][0] for db in (source, copy)]
        if counts[0] != counts[1]:
            raise RetentionError(f"table {table}: {counts[1]} rows in the rewritten store, "
                                 f"{counts[0]} in the store; the store was left as it was")
    sequences = [con.execute("select sequence_name, start_value, last_value from "
                             "duckdb_sequences() where database_name = ? order by 1",
                             [db]).fetchall() for db in (source, copy)]
    if sequences[0] != sequences[1]:
        raise RetentionError("the rewritten store's sequences differ; the store was left as "
                             "it was")
