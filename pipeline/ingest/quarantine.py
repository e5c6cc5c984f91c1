"""The quarantine read back: rows ingest refused, with the reason, to fix and ingest again.

Ingest writes one quarantine line per problem (`pipeline.ingest.files`); this module
reads them with the file each came from, numbers each row as a spreadsheet shows the
file (the header is row 1, so the first answer is row 2), summarises them by reason for
a screen, and writes them all out as a CSV that is safe to open in a spreadsheet, since
a refused value may be hostile (`=cmd|...`).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb

from survey.spreadsheet import safe_cell

#: The CSV's header: `spreadsheet_row` is the row a spreadsheet shows (header = row 1),
#: `data_row` the answer's position among the answers (header not counted).
CSV_HEADER = ("batch", "file", "spreadsheet_row", "data_row", "response_id", "column",
              "bad_value", "reason_code", "reason")

#: Formats a spreadsheet opens with the header as its row 1.
SPREADSHEET_FORMATS = ("csv", "xlsx")
#: The name `pipeline.ingest.tools` gives the file it rewrites from another tool's export
#: ('redcap-export-redcap.csv'): its rows are not the export's (Qualtrics' extra header
#: rows and previews are left out), so no spreadsheet row is claimed for them.
TOOL_IMPORT = re.compile(r"-(redcap|forms|qualtrics)\.csv$")
#: Rows shown for each reason on screen; --csv has them all.
SHOWN_PER_REASON = 3


@dataclass(frozen=True)
class QuarantinedRow:
    """One problem with one refused row."""

    batch_id: int
    source_name: str
    #: 1-based data row of the file: the header not counted, blank lines counted
    #: (`pipeline.ingest.readers`), so a spreadsheet shows it as row source_row + 1.
    source_row: int
    response_id: str | None
    column_name: str
    bad_value: str | None
    reason_code: str
    reason: str
    file_format: str = "csv"

    @property
    def spreadsheet_row(self) -> int | None:
        """The row a spreadsheet shows for it (header = row 1), or None when unknown
        (Parquet has no rows to look at; a tool's export was rewritten before ingest)."""
        if self.file_format not in SPREADSHEET_FORMATS or TOOL_IMPORT.search(self.source_name):
            return None
        return self.source_row + 1

    def where(self) -> str:
        """'row 297' (as a spreadsheet shows it) or 'answer 296' when no sheet row is known."""
        sheet = self.spreadsheet_row
        return f"row {sheet}" if sheet is not None else f"answer {self.source_row}"


def quarantined_rows(con: duckdb.DuckDBPyConnection,
                     batch: int | None = None) -> list[QuarantinedRow]:
    """Every quarantined problem (or those of one batch), by batch and row in the file."""
    rows = con.execute(
        "select q.batch_id, b.source_name, q.source_row, q.response_id, q.column_name, "
        "q.bad_value, q.reason_code, q.reason, b.file_format from quarantine q "
        "join ingest_batches b using (batch_id) "
        "where ? is null or q.batch_id = ? order by q.batch_id, q.source_row, q.column_name",
        [batch, batch]).fetchall()
    return [QuarantinedRow(*row) for row in rows]


@dataclass(frozen=True)
class ReasonSummary:
    """One reason in one batch: how many rows it refused and the first few problems."""

    batch_id: int
    source_name: str
    reason_code: str
    rows: int
    problems: int
    first: tuple[QuarantinedRow, ...]


def summarise(rows: list[QuarantinedRow],
              shown: int = SHOWN_PER_REASON) -> list[ReasonSummary]:
    """Problems grouped by batch and reason (most rows first): the count of distinct rows
    and the first `shown` problems, in file order."""
    groups: dict[tuple[int, str, str], list[QuarantinedRow]] = {}
    for row in rows:
        groups.setdefault((row.batch_id, row.source_name, row.reason_code), []).append(row)
    summaries = [ReasonSummary(batch, name, code, len({r.source_row for r in problems}),
                               len(problems), tuple(problems[:shown]))
                 for (batch, name, code), problems in groups.items()]
    return sorted(summaries, key=lambda s: (s.batch_id, -s.rows, s.reason_code))


def write_quarantine_csv(path: Path, rows: list[QuarantinedRow]) -> None:
    """Write the rows as CSV (UTF-8 with a byte-order mark, which Excel needs to read it)."""
    with path.open("w", newline="", encoding="utf-8-sig") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_HEADER)
        writer.writerows([safe_cell(value) for value in (
            row.batch_id, row.source_name, row.spreadsheet_row, row.source_row,
            row.response_id, row.column_name, row.bad_value, row.reason_code, row.reason)]
            for row in rows)
