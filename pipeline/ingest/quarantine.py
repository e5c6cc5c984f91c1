"""The quarantine read back: rows ingest refused, with the reason, to fix and ingest again.

Ingest writes one quarantine line per problem (`pipeline.ingest.files`); this module
reads them with the file each came from and writes them out as a CSV that is safe to
open in a spreadsheet, since a refused value may be hostile (`=cmd|...`).
"""

from __future__ import annotations

import csv
from dataclasses import astuple, dataclass
from pathlib import Path

import duckdb

from survey.spreadsheet import safe_cell

#: The CSV's header, in the order of `QuarantinedRow`'s fields.
CSV_HEADER = ("batch", "file", "row", "response_id", "column", "bad_value", "reason_code",
              "reason")


@dataclass(frozen=True)
class QuarantinedRow:
    """One problem with one refused row."""

    batch_id: int
    source_name: str
    source_row: int
    response_id: str | None
    column_name: str
    bad_value: str | None
    reason_code: str
    reason: str


def quarantined_rows(con: duckdb.DuckDBPyConnection,
                     batch: int | None = None) -> list[QuarantinedRow]:
    """Every quarantined problem (or those of one batch), by batch and row in the file."""
    rows = con.execute(
        "select q.batch_id, b.source_name, q.source_row, q.response_id, q.column_name, "
        "q.bad_value, q.reason_code, q.reason from quarantine q "
        "join ingest_batches b using (batch_id) "
        "where ? is null or q.batch_id = ? order by q.batch_id, q.source_row",
        [batch, batch]).fetchall()
    return [QuarantinedRow(*row) for row in rows]


def write_quarantine_csv(path: Path, rows: list[QuarantinedRow]) -> None:
    """Write the rows as CSV (UTF-8 with a byte-order mark, which Excel needs to read it)."""
    with path.open("w", newline="", encoding="utf-8-sig") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_HEADER)
        writer.writerows([safe_cell(value) for value in astuple(row)] for row in rows)

