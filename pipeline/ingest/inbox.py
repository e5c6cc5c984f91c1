"""Pick up the web form's new submissions from the inbox and ingest them into the store.

The inbox (`collect.inbox`) is a SQLite file the survey server keeps writing while this
runs. Each run writes the submissions the store has not yet taken to a temporary CSV in
the ingest's own format and ingests that file, so every guarantee of ingest holds (all
or nothing, every row stored or quarantined with a reason).

Nothing is skipped unless it is already in the store. The store keeps a cursor per
inbox, keyed by the random id the inbox carries (not its file name, which a new or
restored inbox shares), with the response id of the last row it took. When the inbox is
one the store has not read (a new file, a new server, an inbox from before ids) or the
row under the cursor no longer holds that response (restored from a backup), the whole
inbox is read again. Either way a submission whose response id the store already holds
(accepted or quarantined) is left out and counted, never ingested twice.
"""

from __future__ import annotations

import csv
import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb

from pipeline.ingest.files import IngestReport, ingest_file
from collect.inbox import last_kept_submission, read_inbox
from survey.instrument import Instrument

_CURSORS = """
create table if not exists inbox_cursors (
    inbox_id varchar primary key,
    last_row bigint not null,
    last_response_id varchar not null,
    inbox_path varchar not null
)"""
#: Past any rowid SQLite hands out: reads the inbox's id and no submissions.
_NO_ROWS = 2 ** 62


@dataclass
class InboxReport:
    """What a run took from the web form's inbox."""

    path: Path
    inbox_id: str | None = None
    #: Submissions handed to ingest (each then accepted or quarantined).
    taken: int = 0
    #: Submissions left out because the store already holds their response id.
    already_in_store: int = 0
    #: Why the whole inbox was read again, if it was.
    reread: str | None = None
    #: What to tell the user when there is no inbox where one is expected.
    note: str | None = None
    ingest: IngestReport | None = None

    def summary(self) -> str:
        """One line for `culture run`."""
        if self.inbox_id is None:
            return f"web form: {self.note}"
        line = f"web form inbox {self.inbox_id} ({self.path}): {self.taken} new answer(s)"
        if self.already_in_store:
            line += f"; {self.already_in_store} already in the store, left out"
        if self.reread:
            line += f" ({self.reread})"
        return line


def _cursor(con: duckdb.DuckDBPyConnection, inbox_id: str) -> tuple[int, str] | None:
    con.execute(_CURSORS)
    rows = con.execute("select last_row, last_response_id from inbox_cursors "
                       "where inbox_id = ?", [inbox_id]).fetchall()
    return (int(rows[0][0]), rows[0][1]) if rows else None


def _already_stored(con: duckdb.DuckDBPyConnection, response_ids: list[str]) -> set[str]:
    if not response_ids:
        return set()
    found = con.execute(
        "select r from unnest(?::varchar[]) as t(r) where r in (select response_id from "
        "responses) or r in (select response_id from quarantine where response_id is not "
        "null)", [response_ids]).fetchall()
    return {r[0] for r in found}


def ingest_inbox(con: duckdb.DuckDBPyConnection, inbox: Path, instrument: Instrument,
                 definition_yaml: str) -> InboxReport | None:
    """Ingest the submissions the store does not yet hold. None when there is no inbox
    and the store never took answers from one."""
    report = InboxReport(path=inbox)
    if not inbox.exists():
        con.execute(_CURSORS)
        known = con.execute("select inbox_id, inbox_path from inbox_cursors "
                            "order by inbox_id").fetchall()
        if not known:
            return None
        report.note = (f"no inbox at {inbox}; this store has taken answers from "
                       + ", ".join(f"inbox {i} ({p})" for i, p in known)
                       + ". If the survey server writes elsewhere, run with the --db that "
                       "sits beside its inbox")
        return report
    identity = read_inbox(inbox, after=_NO_ROWS).inbox_id
    report.inbox_id = identity
    cursor = _cursor(con, identity)
    if cursor is None:
        rows = read_inbox(inbox).rows
        report.reread = "an inbox this store has not read before: all of it read"
    elif cursor[0] == 0:
        # Set so by a purge that deleted every submission up to the cursor.
        rows = read_inbox(inbox).rows
    else:
        current = read_inbox(inbox, cursor[0], check_row=cursor[0])
        if current.response_at_check == cursor[1]:
            rows = current.rows
        else:
            rows = read_inbox(inbox).rows
            report.reread = "the inbox changed under the cursor (restored?): all of it read"
    stored = _already_stored(con, [r[1] for r in rows])
    new = [r for r in rows if r[1] not in stored]
    report.taken, report.already_in_store = len(new), len(rows) - len(new)
    if new:
        report.ingest = _ingest_rows(con, inbox, new, instrument, definition_yaml)
    if rows:
        con.execute("insert or replace into inbox_cursors values (?, ?, ?, ?)",
                    [identity, rows[-1][0], rows[-1][1], str(inbox)])
    # Cursors keyed by file name (before inboxes had ids) are replaced by the above.
    con.execute("drop table if exists inbox_cursor")
    return report


def move_cursor_before_purge(con: duckdb.DuckDBPyConnection, inbox: Path,
                             waves: list[int]) -> None:
    """Before a retention purge deletes the submissions of `waves` from `inbox`: move
    this store's cursor on it back to the last submission that stays (to the start if
    none does). Left where it was, the cursor's row would be gone and the next run would
    read the whole inbox again, saying it may have been restored from a backup."""
    if not inbox.exists():
        return
    identity = read_inbox(inbox, after=_NO_ROWS).inbox_id
    cursor = _cursor(con, identity)
    if cursor is None or cursor[0] == 0:
        return
    at_cursor, kept = last_kept_submission(inbox, cursor[0], waves)
    if at_cursor != cursor[1]:
        return   # the inbox is not the one the cursor was set on: the next run reads it all
    last_row, last_response = kept or (0, "")
    con.execute("update inbox_cursors set last_row = ?, last_response_id = ? "
                "where inbox_id = ?", [last_row, last_response, identity])


def _ingest_rows(con: duckdb.DuckDBPyConnection, inbox: Path, rows: list[tuple],
                 instrument: Instrument, definition_yaml: str) -> IngestReport:
    columns = (["response_id", "site", "wave", "submitted_on", "duration_seconds"]
               + [a.id for a in instrument.attributes] + list(instrument.item_ids))
    with tempfile.TemporaryDirectory(prefix="culture-inbox-") as scratch:
        path = Path(scratch) / f"web-form-{rows[0][0]}-{rows[-1][0]}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            for _rowid, response_id, site, wave, submitted_on, answers in rows:
                writer.writerow({"response_id": response_id, "site": site, "wave": wave,
                                 "submitted_on": submitted_on, **answers})
        report = ingest_file(con, path, instrument, definition_yaml)
    # The CSV was a stepping stone in a folder that is gone: name what a reader knows.
    report.source = f"web form ({inbox}), {len(rows)} submission(s)"
    return report
