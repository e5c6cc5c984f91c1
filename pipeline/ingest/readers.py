"""Expose an input file to DuckDB as temporary views: `raw_typed` to validate, `raw` to quote.

CSV (UTF-8, UTF-8 with BOM, or Windows-1252 as Excel writes it; comma, semicolon or
tab), XLSX (first sheet) and Parquet are read by DuckDB's own readers, or for XLSX by
the calamine reader, never row by row through pandas. Every column arrives as
VARCHAR in `raw` so that a rejected value is shown exactly as the file holds it;
`source_row` is the 1-based data row of the file (the header row is not counted).

Blank lines. DuckDB's CSV reader skips an empty line, and a blank row of a sheet is no
respondent either, so neither is read as a row; but a spreadsheet shows them, and the
quarantine names a row as the spreadsheet shows it. So the blank records are found
(`blank_records`, `_xlsx_table`), kept in the temp table `skipped_lines`, and every row
after one is numbered past it (`raw`, `number_past_blank_lines`).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import stat
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Callable

import duckdb
import pyarrow as pa

from survey.errors import IngestError

FORMATS = {".csv": "csv", ".txt": "csv", ".tsv": "csv", ".xlsx": "xlsx", ".parquet": "parquet",
           ".pq": "parquet"}
CHUNK = 1 << 20

#: The most columns a file may have. The questionnaire has under a hundred columns and
#: survey tools add a few dozen of their own; beyond this the file is not a survey export
#: (and the validation statement, one expression per column, would grow without need).
MAX_COLUMNS = 2_000
#: The longest column name accepted, in characters: a question's full wording, as some
#: tools write it into the header, fits many times over.
MAX_HEADER_NAME = 5_000
#: How much of a CSV's first line is read to find its header.
MAX_HEADER_BYTES = 1 << 20

#: Called with (stage, done, total) as ingest goes; total 0 means the stage has no
#: measure of progress. Lets the CLI draw a bar.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class SourceFile:
    """What was learnt about an input file before reading it."""

    path: Path
    file_format: str
    sha256: str
    size: int
    encoding: str | None = None      # 'utf-8' or 'cp1252' for CSV
    delimiter: str | None = None
    header: tuple[str, ...] = ()     # CSV column names, read by us, not guessed by a sniffer
    #: The CSV has two line breaks in a row somewhere: perhaps a blank line (or one inside
    #: a quoted answer), which `blank_records` then tells apart.
    may_have_blank_lines: bool = False


#: Bytes of an empty line (LF, CRLF or CR line ends) somewhere in a CSV.
_EMPTY_LINE = (b"\n\n", b"\n\r\n", b"\r\r")


def file_format(path: Path) -> str:
    """'csv', 'xlsx' or 'parquet' from the file name, or an `IngestError` saying what is accepted."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise IngestError(f"{path}: cannot read '{path.suffix or 'no extension'}' files; give a "
                          f"CSV (.csv), Excel workbook (.xlsx) or Parquet (.parquet) file")
    return fmt


def inspect_file(path: Path, progress: Progress | None = None) -> SourceFile:
    """Hash the file and, for CSV, find its encoding and delimiter, in one pass."""
    check_regular_file(path)
    fmt = file_format(path)
    size = path.stat().st_size
    if size == 0:
        raise IngestError(f"{path}: the file is empty; export the survey responses again")
    digest = hashlib.sha256()
    utf8 = codecs.getincrementaldecoder("utf-8")()
    is_utf8 = fmt == "csv"
    head = b""
    done = 0
    tail, empty_line = b"", False
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
                if fmt == "csv" and not empty_line:
                    # A pair may straddle two chunks: the seam is looked at on its own.
                    seam = tail + chunk[:2]
                    empty_line = any(pair in chunk or pair in seam for pair in _EMPTY_LINE)
                    tail = chunk[-2:]
                # The head holds the whole header line (up to a limit), however long.
                if len(head) < MAX_HEADER_BYTES:
                    head += chunk[: MAX_HEADER_BYTES - len(head)]
                if is_utf8:
                    try:
                        utf8.decode(chunk)
                    except UnicodeDecodeError:
                        is_utf8 = False
                done += len(chunk)
                if progress:
                    progress("checking file", done, size)
    except OSError as exc:
        raise IngestError(f"{path}: cannot be read ({exc.strerror}); check the path and "
                          f"permissions") from None
    if fmt != "csv":
        return SourceFile(path, fmt, digest.hexdigest(), size)
    encoding = "utf-8" if is_utf8 else "cp1252"
    if encoding == "cp1252":
        try:
            head.decode("cp1252")
        except UnicodeDecodeError:
            raise IngestError(f"{path}: the text is neither UTF-8 nor Windows-1252; save it from "
                              f"Excel as 'CSV UTF-8 (Comma delimited)'") from None
    text = head.decode(encoding, errors="ignore").lstrip("\ufeff")
    lines = text.splitlines()
    first_line = lines[0] if lines else ""
    complete = len(lines) > 1 or len(head) < MAX_HEADER_BYTES
    delimiter = max((",", ";", "\t"), key=first_line.count)
    if first_line.count(delimiter) == 0:
        raise IngestError(f"{path}: the first line has no commas, semicolons or tabs; the file "
                          f"should start with a header row such as response_id,site,wave,hs01,...")
    names = next(csv.reader([first_line], delimiter=delimiter))
    check_header(path, names, complete)
    if not complete:
        raise IngestError(f"{path}: the header row (the first line) is longer than "
                          f"{MAX_HEADER_BYTES // (1 << 20)} MiB; a header names each column "
                          f"once, such as response_id,site,wave,hs01,...")
    header = tuple(name.strip() or f"column_{i + 1}" for i, name in enumerate(names))
    repeated = sorted(name for name, count in Counter(header).items() if count > 1)
    if repeated:
        raise IngestError(f"{path}: the header repeats column(s) {', '.join(repeated)}; each "
                          f"column needs its own name")
    return SourceFile(path, fmt, digest.hexdigest(), size, encoding, delimiter, header,
                      empty_line)


def blank_records(source: SourceFile) -> list[int]:
    """The data rows (1-based, header not counted, as a spreadsheet shows the file) that
    are empty lines, which DuckDB's reader skips; [] when there are none.

    Read record by record, so a line break inside a quoted answer is not taken for one.
    Only a file that `inspect_file` saw two line breaks in a row in is read again.
    """
    if not source.may_have_blank_lines:
        return []
    with source.path.open(encoding=source.encoding, newline="") as handle:
        reader = csv.reader(handle, delimiter=source.delimiter or ",", quotechar='"',
                            doublequote=True)
        try:
            next(reader, None)   # the header
            return [row for row, record in enumerate(reader, start=1) if not record]
        except csv.Error:
            # A record the csv module refuses (an answer over its size limit): DuckDB
            # reads or refuses the file on its own terms, numbered as it counts.
            return []


def skipped_line_shifts(blank_rows: list[int]) -> list[tuple[int, int]]:
    """(first reader row after, rows to add) for blank rows given as file data rows.

    The reader numbers rows without the blanks: reader row k is file row k + the shift
    of the last entry whose first row is at most k.
    """
    shifts: dict[int, int] = {}
    for before, row in enumerate(sorted(blank_rows)):
        shifts[row - before] = before + 1
    return sorted(shifts.items())


def check_regular_file(path: Path) -> None:
    """Raise an `IngestError` unless `path` is an existing regular file.

    Uses stat only: opening a named pipe (FIFO) to look at it would wait for a writer,
    and a device such as /dev/zero never ends.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise IngestError(f"{path}: no such file") from None
    except OSError as exc:
        raise IngestError(f"{path}: cannot be read ({exc.strerror}); check the path and "
                          f"permissions") from None
    if stat.S_ISDIR(mode):
        raise IngestError(f"{path}: is a folder, not a file; give the file(s) inside it")
    if not stat.S_ISREG(mode):
        kind = ("a named pipe" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode)
                or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "special")
        raise IngestError(f"{path}: is not a regular file ({kind}); save the export as a "
                          f"file and give its path")


def check_header(path: Path, names: list[str], complete: bool = True) -> None:
    """Raise an `IngestError` if a file has more than MAX_COLUMNS columns or a column
    name longer than MAX_HEADER_NAME characters. `complete` is false when `names` come
    from the start of a header cut short (the last name may be cut, the count is a floor).
    """
    if len(names) > MAX_COLUMNS:
        count = f"{len(names):,}" if complete else f"more than {len(names) - 1:,}"
        raise IngestError(f"{path}: the header has {count} columns; at most {MAX_COLUMNS:,} "
                          f"are accepted (a survey export has one column per question and a "
                          f"few of the tool's own); remove the columns that are not answers")
    checked = names if complete else names[:-1]
    for number, name in enumerate(checked, start=1):
        if len(name) > MAX_HEADER_NAME:
            raise IngestError(f"{path}: column {number}'s name is {len(name):,} characters "
                              f"long; names of up to {MAX_HEADER_NAME:,} characters are "
                              f"accepted (a question id such as hs01, or the question's "
                              f"wording); check the first line is the header row")
    if not complete and len(names[-1]) > MAX_HEADER_NAME:
        raise IngestError(f"{path}: column {len(names)}'s name is over "
                          f"{MAX_HEADER_NAME:,} characters long; names of up to "
                          f"{MAX_HEADER_NAME:,} characters are accepted (a question id such "
                          f"as hs01, or the question's wording)")


def _transcode_to_utf8(source: Path, target: Path) -> None:
    """Rewrite a Windows-1252 file as UTF-8 so DuckDB's reader sees the right characters."""
    decoder = codecs.getincrementaldecoder("cp1252")()
    try:
        with source.open("rb") as src, target.open("wb") as dst:
            while chunk := src.read(CHUNK):
                dst.write(decoder.decode(chunk).encode("utf-8"))
            dst.write(decoder.decode(b"", final=True).encode("utf-8"))
    except UnicodeDecodeError as exc:
        raise IngestError(f"{source}: byte {exc.start} is neither UTF-8 nor Windows-1252 text; "
                          f"save it from Excel as 'CSV UTF-8 (Comma delimited)'") from None


def cell_text(value: object) -> str | None:
    """A spreadsheet cell as the text a person sees in it, None when empty.

    Whole numbers lose the '.0' a reader gives them (5.0 -> '5'), dates and times are
    in ISO form, booleans read TRUE / FALSE as a spreadsheet shows them, and text is kept
    exactly (spaces included) so that a rejected value is quoted as the file holds it.
    The one conversion for every Excel reader of ingest (`pipeline.ingest.tools` too).
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return str(value).upper()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    return str(value)


def _xlsx_table(path: Path) -> tuple[pa.Table, list[int]]:
    """The first sheet as text columns, without its blank rows; and the data rows (1-based,
    header not counted) of those blank rows."""
    from python_calamine import CalamineError, CalamineWorkbook

    try:
        workbook = CalamineWorkbook.from_path(str(path))
        rows = workbook.get_sheet_by_index(0).to_python(skip_empty_area=False)
    except (CalamineError, OSError, ValueError) as exc:
        raise IngestError(f"{path}: not a readable Excel workbook ({exc}); save it again "
                          f"as .xlsx") from None
    if not rows:
        raise IngestError(f"{path}: the first sheet is empty; responses should be on the "
                          f"first sheet with a header row")
    header = [(cell_text(h) or f"column_{i + 1}") for i, h in enumerate(rows[0])]
    cells = [[cell_text(v) for v in row] for row in rows[1:]]
    blank = [row for row, values in enumerate(cells, start=1)
             if all(v is None for v in values)]
    if blank:
        cells = [values for values in cells if any(v is not None for v in values)]
    columns = list(zip(*cells)) or [()] * len(header)
    table = pa.table({name: pa.array(col, type=pa.string()) for name, col in zip(header, columns)})
    return table, blank


def describe_read_error(exc: Exception) -> str:
    """The useful part of a DuckDB reader error: where, and what was expected."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    first = lines[0].split("Error: ", 1)[-1]
    details = [ln for ln in lines[1:] if ln.startswith(("Expected Number", "Original Line"))]
    return first + (f" ({'; '.join(details)})" if details else "")


def has_row_numbers(source: SourceFile, columns: dict[str, str]) -> bool:
    """Whether `create_raw_view` gives the file the view `raw_numbered`.

    Parquet files are numbered by DuckDB's reader, unless a column of the file is
    itself named file_row_number; CSV and Excel are numbered by their order in `checked`.
    """
    return source.file_format == "parquet" and "file_row_number" not in columns


def create_raw_view(con: duckdb.DuckDBPyConnection, source: SourceFile,
                    scratch: Path) -> dict[str, str]:
    """Create temp views over the file and return its columns with their DuckDB types.

    `raw_typed` has the file's columns as the file types them (all text for CSV and
    Excel; numbers stay numbers in Parquet), in file order, for a parallel scan;
    `raw` adds `source_row` and makes every column text, for showing a rejected value
    exactly; for Parquet, `raw_numbered` is `raw_typed` plus DuckDB's 0-based
    `file_row_number`. `scratch` is a private folder that must outlive the views (a transcoded
    copy of a Windows-1252 file goes there).
    """
    path = source.path
    blank: list[int] = []
    try:
        if source.file_format == "csv":
            blank = blank_records(source)
            readable = path
            if source.encoding == "cp1252":
                readable = scratch / "utf8.csv"
                _transcode_to_utf8(path, readable)
            # Columns come from our own reading of the header: DuckDB's sniffer would
            # take the widest row as the header when one row has extra fields.
            relation = con.read_csv(str(readable), header=True, auto_detect=False,
                                    columns={name: "VARCHAR" for name in source.header},
                                    sep=source.delimiter, quotechar='"', escapechar='"',
                                    normalize_names=False)
        elif source.file_format == "parquet":
            relation = con.read_parquet(str(path))
        else:
            table, blank = _xlsx_table(path)
            relation = con.from_arrow(table)
        # register() makes a temporary view; create_view() would persist in the store.
        con.register("raw_typed", relation)
        con.execute("create or replace temp table skipped_lines "
                    "(first_after bigint, shift bigint)")
        if blank:
            con.executemany("insert into skipped_lines values (?, ?)",
                            skipped_line_shifts(blank))
        # row_number() over () follows the file's order (DuckDB preserves insertion
        # order) but makes the scan single-threaded: only the quarantine step uses it.
        numbered = "select row_number() over () as source_row, columns(*)::varchar from raw_typed"
        if blank:
            numbered = ("select n.source_row + coalesce(k.shift, 0) as source_row, "
                        "n.* exclude (source_row) "
                        f"from ({numbered}) n asof left join skipped_lines k "
                        "on n.source_row >= k.first_after")
        con.execute(f"create or replace temp view raw as {numbered}")
        columns = {row[0]: row[1] for row in con.execute("describe raw_typed").fetchall()}
        if has_row_numbers(source, columns):
            # The same file with DuckDB's file_row_number: rows numbered in a parallel scan.
            con.register("raw_numbered", con.read_parquet(str(path), file_row_number=True))
    except IngestError:
        raise
    except duckdb.Error as exc:
        kind = {"csv": "CSV", "parquet": "Parquet", "xlsx": "Excel"}[source.file_format]
        raise IngestError(f"{path}: cannot be read as {kind}: {describe_read_error(exc)}") from None
    return columns


def number_past_blank_lines(con: duckdb.DuckDBPyConnection, table: str = "checked") -> None:
    """Renumber `table`'s source_row, counted as the reader read the file (blank lines
    left out), as the file's data rows, which count them: a spreadsheet shows them."""
    if not con.execute("select count(*) from skipped_lines").fetchone()[0]:
        return
    con.execute(f"update {table} set source_row = {table}.source_row + moved.shift "
                f"from (select t.source_row as read_as, k.shift from {table} t "
                f"asof join skipped_lines k on t.source_row >= k.first_after) moved "
                f"where {table}.source_row = moved.read_as")


def drop_raw_views(con: duckdb.DuckDBPyConnection) -> None:
    """Remove the views `create_raw_view` made (they must not outlive the file)."""
    con.execute("drop view if exists raw")
    con.execute("drop table if exists skipped_lines")
    con.unregister("raw_typed")
    con.unregister("raw_numbered")
