"""Pick up the web form's new submissions from the inbox and ingest them into the store.

The inbox (`survey.inbox`) is a SQLite file the survey server keeps writing while this
runs. The store remembers the last inbox row it took (`inbox_cursor`); each run writes
the newer rows to a temporary CSV in the ingest's own format and ingests that file,
so every guarantee of ingest holds (all or nothing, every row stored or quarantined
with a reason). Stored nothing twice: a crash after the store's commit but before the
cursor moved makes the next run offer the same rows again, and ingest refuses a
response id already stored for that site and wave (`duplicate_response_id`).
"""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path

import duckdb

from pipeline.ingest import IngestReport, ingest_file
from survey.inbox import read_submissions
from survey.instrument import Instrument


def _cursor(con: duckdb.DuckDBPyConnection, inbox: Path) -> int:
    con.execute("create table if not exists inbox_cursor (inbox varchar primary key, "
                "last_row bigint not null)")
    rows = con.execute("select last_row from inbox_cursor where inbox = ?",
                       [inbox.name]).fetchall()
    return int(rows[0][0]) if rows else 0


def ingest_inbox(con: duckdb.DuckDBPyConnection, inbox: Path, instrument: Instrument,
                 definition_yaml: str) -> IngestReport | None:
    """Ingest submissions newer than the store's cursor; None when there are none."""
    if not inbox.exists():
        return None
    after = _cursor(con, inbox)
    rows = read_submissions(inbox, after)
    if not rows:
        return None
    columns = (["response_id", "site", "wave", "submitted_on", "duration_seconds"]
               + [a.id for a in instrument.attributes] + list(instrument.item_ids))
    with tempfile.TemporaryDirectory(prefix="culture-inbox-") as scratch:
        path = Path(scratch) / f"web-form-{after + 1}-{rows[-1][0]}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            for _rowid, response_id, site, wave, submitted_on, answers in rows:
                writer.writerow({"response_id": response_id, "site": site, "wave": wave,
                                 "submitted_on": submitted_on, **answers})
        report = ingest_file(con, path, instrument, definition_yaml)
    # The CSV was a stepping stone in a folder that is gone: name what a reader knows.
    report.source = f"web form ({inbox}), submissions {after + 1}-{rows[-1][0]}"
    con.execute("insert or replace into inbox_cursor values (?, ?)", [inbox.name, rows[-1][0]])
    return report
