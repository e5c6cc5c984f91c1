"""Ingest survey exports into the store: every row accepted or quarantined with a reason.

One file is one batch and one transaction: if the process dies half-way the store is
exactly as before, and running the same command again completes the work. A file
whose bytes (and --site / --wave) match an earlier batch is not ingested twice.

Validation is one SQL query over the file (`pipeline.ingest.readers`), built from the
instrument (`pipeline.ingest.row_checks`): each answer may be a code or a label in any
case and spacing; the "don't know / prefer not to say" option is stored as missing.
Rows with any problem go to the quarantine table, one line per problem, with the reason
codes in `REASONS`. A Parquet file's accepted rows are written straight from that query;
CSV and Excel rows pass through a validated table first, which numbers them.

An item asked of some respondents only (`asked_if`) is stored as missing for everyone
else, whatever the file holds: a file from another tool may not have routed it. Such a
row is not refused; the report counts the answers set aside, naming the item and its rule.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

import duckdb

from pipeline.ingest.readers import (Progress, SourceFile, check_header, create_raw_view,
                                     describe_read_error, drop_raw_views, has_row_numbers,
                                     inspect_file, number_past_blank_lines)
from pipeline.store import read_sql, register_instrument
from pipeline.ingest.row_checks import (CREATE_CHECKED_SQL, REASONS, CheckedSql,
                                        build_checked_sql, duplicate_rows_sql,
                                        mark_duplicates_sql, quote)
from survey.errors import IngestError
from survey.instrument import Instrument

SQL_DIR = Path(__file__).resolve().parent / "sql"

__all__ = ["REASONS", "IngestReport", "ingest_file", "map_columns"]

#: Called inside a batch's open transaction just before it commits; None in normal use.
#: A test sets it to hold the transaction open and kill the process there, to show
#: that a crash leaves the store as it was.
before_commit: Callable[[], None] | None = None

#: Header spellings other tools use for the fixed columns (compared after normalising).
COLUMN_ALIASES = {
    "response_id": ("response_id", "responseid", "response", "id", "record_id",
                    "respondent_id"),
    "site": ("site", "site_code", "sitecode", "organisation", "organisation_code",
             "trust_code"),
    "wave": ("wave", "year", "survey_year"),
    "submitted_on": ("submitted_on", "submitted", "date", "completed_on", "submitdate",
                     "completion_date"),
    "duration_seconds": ("duration_seconds", "duration", "duration_s",
                         "duration_in_seconds", "time_taken_seconds"),
}


@dataclass
class IngestReport:
    """What happened to one file."""

    source: str
    sha256: str
    batch_id: int | None = None
    rows_read: int = 0
    rows_accepted: int = 0
    rows_rejected: int = 0
    already_ingested: bool = False
    previous_batch: tuple[int, datetime] | None = None
    ignored_columns: list[str] = field(default_factory=list)
    missing_item_columns: list[str] = field(default_factory=list)
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    #: Answers stored as missing because the respondent was not asked the item (its
    #: `asked_if`), by item: the rows are kept; `warnings` says so in words.
    blanked_by_routing: dict[str, int] = field(default_factory=dict)
    #: Things the person running ingest should know though nothing failed (a --site or
    #: --wave that the file's own column overrode).
    warnings: list[str] = field(default_factory=list)


def _normal_header(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.lstrip("\ufeff").strip().lower())


def map_columns(columns: list[str], instrument: Instrument, path: Path,
                site: str | None, wave: int | None) -> tuple[dict[str, str], list[str]]:
    """Match the file's header to canonical names; return (canonical -> source, ignored)."""
    wanted: dict[str, str] = {}
    for canonical, aliases in COLUMN_ALIASES.items():
        for alias in aliases:
            wanted.setdefault(alias, canonical)
    for ident in (*instrument.item_ids, *(a.id for a in instrument.attributes)):
        wanted[ident] = ident
    mapping: dict[str, str] = {}
    ignored: list[str] = []
    for column in columns:
        canonical = wanted.get(_normal_header(column))
        if canonical is None:
            ignored.append(column)
        elif canonical in mapping:
            raise IngestError(f"{path}: columns '{mapping[canonical]}' and '{column}' both "
                              f"mean {canonical}; keep one of them")
        else:
            mapping[canonical] = column
    required = [("response_id", None), ("site", site), ("wave", wave)]
    for canonical, flag in required:
        if canonical not in mapping and flag is None:
            hint = {"site": " or give --site CODE", "wave": " or give --wave YEAR"}.get(canonical, "")
            raise IngestError(f"{path}: missing required column '{canonical}'; add a column "
                              f"named {canonical}{hint} (the first row must be the header)")
    if not any(i in mapping for i in instrument.item_ids):
        raise IngestError(f"{path}: no column matches a question of {instrument.key}; expected "
                          f"columns named like {', '.join(instrument.item_ids[:3])}, ...")
    return mapping, ignored


def find_previous_batch(con: duckdb.DuckDBPyConnection, sha256: str, site: str | None,
                        wave: int | None) -> tuple[int, datetime] | None:
    """The earlier batch with the same bytes and flags, if any."""
    return con.execute(
        "select batch_id, ingested_at from ingest_batches where sha256 = ? "
        "and site_flag is not distinct from ? and wave_flag is not distinct from ? "
        "order by batch_id limit 1", [sha256, site, wave]).fetchone()


def ingest_file(con: duckdb.DuckDBPyConnection, path: Path | str, instrument: Instrument,
                definition_yaml: str, site: str | None = None, wave: int | None = None,
                progress: Progress | None = None) -> IngestReport:
    """Ingest one file as one batch, all or nothing; returns what was accepted and rejected."""
    path = Path(path)
    site = site.strip().upper() if site else None
    source: SourceFile = inspect_file(path, progress)
    report = IngestReport(source=str(path), sha256=source.sha256)
    previous = find_previous_batch(con, source.sha256, site, wave)
    if previous:
        report.already_ingested = True
        report.previous_batch = (int(previous[0]), previous[1])
        return report

    with tempfile.TemporaryDirectory(prefix="culture-ingest-") as scratch:
        try:
            columns = create_raw_view(con, source, Path(scratch))
            check_header(path, list(columns))
            mapping, report.ignored_columns = map_columns(list(columns), instrument, path,
                                                          site, wave)
            report.warnings = flags_overridden(con, mapping, site, wave)
            report.missing_item_columns = [i for i in instrument.item_ids if i not in mapping]
            if progress:
                progress("validating", 0, 0)
            numbered = has_row_numbers(source, columns)
            checks = _validate(con, path, instrument, mapping, columns, site, wave, numbered)
            report.rows_read = con.execute(
                f"select count(*) from {'raw_numbered' if numbered else 'checked'}").fetchone()[0]
            if report.rows_read == 0:
                raise IngestError(f"{path}: has a header but no data rows; nothing to ingest")
            report.blanked_by_routing = _blanked_by_routing(con, path, checks)
            report.warnings += routing_warnings(instrument, report.blanked_by_routing)
            if progress:
                progress("writing", 0, 0)
            batch_id, accepted = _write_batch(con, path, source, instrument, definition_yaml,
                                              site, wave, report.rows_read, checks)
        finally:
            drop_raw_views(con)
            con.execute("drop table if exists checked; drop table if exists duplicate_rows")
    report.batch_id = batch_id
    report.rows_accepted = accepted
    report.rows_rejected = report.rows_read - accepted
    report.rejected_by_reason = dict(con.execute(
        "select reason_code, count(distinct source_row) from quarantine where batch_id = ? "
        "group by 1 order by 1", [batch_id]).fetchall())
    return report


def _blanked_by_routing(con: duckdb.DuckDBPyConnection, path: Path,
                        checks: CheckedSql) -> dict[str, int]:
    """{item: answers blanked because the row was not asked it}, items with any only.

    Counted over every row read (a row refused for another reason had its answer set
    aside too). A numbered file has no `checked` table: its validation query is read
    again, for the markers only.
    """
    if not checks.blanked:
        return {}
    counts = ", ".join(f"count(*) filter (where {quote('b__' + item)})"
                       for item in checks.blanked)
    source = f"({checks.rows})" if checks.numbered else "checked"
    (row,) = _run_validation(con, path, f"select {counts} from {source}", checks)
    return {item: int(n) for item, n in zip(checks.blanked, row) if n}


def routing_warnings(instrument: Instrument, blanked: dict[str, int]) -> list[str]:
    """One line per routed item with answers blanked: how many, the item and its rule."""
    lines = []
    for item in instrument.items:
        if blanked.get(item.id):
            rule = item.asked_if
            lines.append(
                f"{item.id}: {blanked[item.id]:,} answer(s) stored as missing by routing: "
                f"{item.id} is {rule.describe(instrument)} ({rule.attribute} = "
                f"{' / '.join(rule.codes)}), and these rows' {rule.attribute} is another "
                f"answer or blank; the rows and their other answers are kept")
    return lines


def flags_overridden(con: duckdb.DuckDBPyConnection, mapping: dict[str, str],
                     site: str | None, wave: int | None) -> list[str]:
    """Warnings for a --site / --wave that the file's own column contradicts.

    The flags fill only blank cells: a file that names its site or wave keeps its own
    values, since a survey lead who passes a flag for a whole folder of exports should
    not silently relabel the file that says otherwise. Reads `raw_typed`.
    """
    warnings = []
    for canonical, flag, option in (("site", site, "--site"), ("wave", wave, "--wave")):
        if flag is None or canonical not in mapping:
            continue
        cell = f"nullif(trim({quote(mapping[canonical])}::varchar), '')"
        # The cell as validation reads it: site codes in capitals, waves as whole years.
        value = (f"upper({cell})" if canonical == "site" else
                 f"coalesce(try_cast(try_cast({cell} as double) as integer)::varchar, {cell})")
        rows = con.execute(
            f"select left(value, 40), count(*) as rows from (select {value} as value "
            f"from raw_typed) where value is not null and value <> $flag "
            f"group by value order by rows desc, value", {"flag": str(flag)}).fetchall()
        if rows:
            total = sum(count for _, count in rows)
            shown = ", ".join(f"{value} ({count:,})" for value, count in rows[:5])
            more = f" and {len(rows) - 5:,} other value(s)" if len(rows) > 5 else ""
            warnings.append(
                f"{option} {flag} was not used for {total:,} row(s): the file's column "
                f"'{mapping[canonical][:40]}' gives their {canonical}: {shown}{more}; "
                f"{option} only fills rows whose {canonical} is blank")
    return warnings


def _validate(con: duckdb.DuckDBPyConnection, path: Path, instrument: Instrument,
              mapping: dict[str, str], types: dict[str, str], site: str | None,
              wave: int | None, numbered: bool) -> CheckedSql:
    """Mark duplicates and build the temp table `problem_map`; returns the file's queries.

    A file without row numbers is validated here into the temp table `checked`; a
    numbered file only has its key columns read here (into `duplicate_rows`), and is
    validated as its rows are written (`_insert_accepted`).
    """
    checks = build_checked_sql(instrument, mapping, types, numbered)
    checks.params.update({
        "site_flag": site, "wave_flag": None if wave is None else str(wave),
        # Small reference lists as parameters keep the wide statement free of subqueries.
        "known_sites": [r[0] for r in con.execute("select site_code from sites").fetchall()],
        "known_waves": [r[0] for r in con.execute("select wave from waves").fetchall()],
    })
    if numbered:
        _run_validation(con, path, "create or replace temp table duplicate_rows as "
                        + duplicate_rows_sql(f"({checks.keys})"), checks)
    else:
        _run_validation(con, path, CREATE_CHECKED_SQL.format(rows=checks.rows), checks)
        con.execute(mark_duplicates_sql())
        number_past_blank_lines(con)
    con.execute("create or replace temp table problem_map (marker varchar, "
                "column_name varchar, source_column varchar, accepts varchar)")
    con.executemany("insert into problem_map values (?, ?, ?, ?)",
                    [[p.marker, p.column_name, p.source_column, p.accepts]
                     for p in checks.problems])
    return checks


def _run_validation(con: duckdb.DuckDBPyConnection, path: Path, sql: str,
                    checks: CheckedSql) -> list[tuple]:
    """Run a statement that scans the file through the validation query; its result rows."""
    try:
        # DuckDB's expression rewriter spends seconds planning this wide statement and
        # gains nothing at run time; it is switched off for these statements.
        con.execute("set disabled_optimizers = 'expression_rewriter'")
        return con.execute(sql, checks.bound(sql)).fetchall()
    except (duckdb.InvalidInputException, duckdb.IOException,
            duckdb.ConversionException) as exc:
        # Raised while DuckDB scans the file (ragged rows, bad quoting); a bug in the
        # generated SQL would be a BinderException and is left to surface as one.
        raise IngestError(f"{path}: cannot be read: {describe_read_error(exc)}; check the file "
                          f"is a complete export with one header row and the same number of "
                          f"columns on every line") from None
    finally:
        con.execute("reset disabled_optimizers")


def _write_batch(con: duckdb.DuckDBPyConnection, path: Path, source: SourceFile,
                 instrument: Instrument, definition_yaml: str, site: str | None,
                 wave: int | None, rows_read: int, checks: CheckedSql) -> tuple[int, int]:
    """One transaction: new columns if any, accepted rows, quarantine, the batch record."""
    con.execute("begin transaction")
    try:
        register_instrument(con, instrument, definition_yaml)
        batch_id = int(con.execute("select nextval('ingest_batch_id')").fetchone()[0])
        accepted = _insert_accepted(con, path, instrument, batch_id, checks)
        if accepted < rows_read:
            if checks.numbered:
                # Only now is the wide table needed: the quarantine shows every problem.
                _run_validation(con, path, CREATE_CHECKED_SQL.format(rows=checks.rows), checks)
            # Re-reads the file for the rejected rows' exact text; skipped for a clean file.
            con.execute("insert into quarantine " + read_sql("ingest_quarantine.sql", SQL_DIR),
                        {"batch_id": batch_id, "min_answered": checks.params["min_answered"]})
        con.execute("insert into ingest_batches values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [batch_id, path.name, source.sha256, source.file_format, site, wave,
                     instrument.key, rows_read, accepted, rows_read - accepted,
                     datetime.now()])
        if before_commit is not None:
            before_commit()
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return batch_id, accepted


def _insert_accepted(con: duckdb.DuckDBPyConnection, path: Path, instrument: Instrument,
                     batch_id: int, checks: CheckedSql) -> int:
    """Append the rows without problems to `responses`; returns how many."""
    columns = ["response_id", "site_code", "wave", "instrument_version", "batch_id",
               "source_row", "submitted_on", "duration_seconds",
               *(a.id for a in instrument.attributes), *instrument.item_ids]
    # Accepted rows have only answer statuses 0 (blank / don't know) or a scored code.
    values = ["response_id", "site_code", "wave", "$version", "$batch_id", "source_row",
              "submitted_on", "duration_seconds", *(quote(a.id) for a in instrument.attributes),
              *(f"nullif({quote('s__' + i)}, 0)" for i in instrument.item_ids)]
    rows = f"({checks.rows})" if checks.numbered else "checked"
    sql = (f"insert into responses ({', '.join(quote(c) for c in columns)}) "
           f"select {', '.join(values)} from {rows} where n_problems = 0")
    # Rows carry their source_row, so their physical order does not matter: letting
    # DuckDB append in any order makes the insert parallel.
    con.execute("set preserve_insertion_order = false")
    try:
        checks.params.update(version=instrument.key, batch_id=batch_id)
        return int(_run_validation(con, path, sql, checks)[0][0])
    finally:
        con.execute("reset preserve_insertion_order")
