"""Ingest: formats and encodings, every rejection reason, all-or-nothing, idempotence."""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.ingest.files import REASONS, ingest_file
from pipeline.ingest.readers import cell_text
from pipeline.ingest.tools import read_rows
from pipeline.store import open_store
from survey.errors import IngestError
from tests.conftest import culture, response_row, write_csv


def ingest(store_path, path, instrument, definition_yaml, **flags):
    with open_store(store_path) as con:
        return ingest_file(con, path, instrument, definition_yaml, **flags)


def fetch(store_path, sql, params=()):
    with duckdb.connect(str(store_path), read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


def table_counts(store_path) -> tuple[int, int, int]:
    return fetch(store_path, "select (select count(*) from responses), "
                             "(select count(*) from quarantine), "
                             "(select count(*) from ingest_batches)")[0]


# --- formats and encodings -------------------------------------------------------------

LABELLED = {"hs01": "  strongly AGREE ", "hs02": "Neither agree nor disagree",
            "hs03": "Don\u2019t know / prefer not to say", "hs04": "disagree",
            "staff_group": "Consultant", "pmq": "Rest of the world"}
EXPECTED_LABELLED = {"hs01": 5, "hs02": 3, "hs03": None, "hs04": 2,
                     "staff_group": "consultant", "pmq": "rest_of_world"}


def _labelled_rows(instrument):
    return [response_row(instrument, "r1"),
            response_row(instrument, "r2", **LABELLED)]


def _write_xlsx(path: Path, rows: list[dict[str, str]]) -> Path:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    header = list(rows[0])
    sheet.append(header)
    for row in rows:
        # Codes as numbers, as Excel stores them; labels as text.
        sheet.append([int(v) if v.strip().isdigit() else v for v in (row[h] for h in header)])
    book.save(path)
    return path


@pytest.mark.parametrize("value, expected", [
    (None, None), ("", None), (5.0, "5"), (2.5, "2.5"), (7, "7"),
    (datetime.datetime(2025, 10, 14, 9, 30), "2025-10-14T09:30:00"),
    (datetime.date(2025, 10, 14), "2025-10-14"), (datetime.time(9, 5), "09:05:00"),
    # Where ingest's reader and the adapters' reader used to differ: booleans read as
    # a spreadsheet shows them (the adapters gave 'True'), and text keeps its spaces so
    # a rejected value is quoted exactly (the adapters trimmed it in the conversion).
    (True, "TRUE"), (False, "FALSE"), ("  Agree ", "  Agree "),
])
def test_a_spreadsheet_cell_reads_as_the_text_a_person_sees(value, expected):
    assert cell_text(value) == expected


def test_the_adapters_read_excel_cells_as_ingest_does_then_trim(tmp_path):
    from openpyxl import Workbook

    book = Workbook()
    book.active.append(["response_id", "hs01", "consent", "note", "blank"])
    book.active.append(["r1", 4, True, "  Agree ", None])
    book.save(tmp_path / "export.xlsx")
    rows = list(read_rows(tmp_path / "export.xlsx"))
    assert rows == [["response_id", "hs01", "consent", "note", "blank"],
                    ["r1", "4", "TRUE", "Agree", ""]]


def _write_parquet(path: Path, rows: list[dict[str, str]]) -> Path:
    columns = {}
    for key in rows[0]:
        values = [row[key] for row in rows]
        if all(v.strip().isdigit() for v in values):
            columns[key] = pa.array([int(v) for v in values], type=pa.int16())
        else:
            columns[key] = pa.array(values, type=pa.string())
    pq.write_table(pa.table(columns), path)
    return path


WRITERS = {
    "csv-utf8": lambda p, rows: write_csv(p.with_suffix(".csv"), rows),
    "csv-utf8-bom": lambda p, rows: write_csv(p.with_suffix(".csv"), rows, encoding="utf-8-sig"),
    "csv-windows-1252-semicolon": lambda p, rows: write_csv(
        p.with_suffix(".csv"), rows, encoding="cp1252", delimiter=";"),
    "csv-tab": lambda p, rows: write_csv(p.with_suffix(".tsv"), rows, delimiter="\t"),
    "xlsx": lambda p, rows: _write_xlsx(p.with_suffix(".xlsx"), rows),
    "parquet": lambda p, rows: _write_parquet(p.with_suffix(".parquet"), rows),
}


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_every_format_and_encoding_reads_codes_and_labels(fmt, tmp_path, store_path,
                                                          instrument, definition_yaml):
    path = WRITERS[fmt](tmp_path / "export", _labelled_rows(instrument))
    report = ingest(store_path, path, instrument, definition_yaml)
    assert (report.rows_read, report.rows_accepted, report.rows_rejected) == (2, 2, 0)
    columns = list(EXPECTED_LABELLED)
    got = fetch(store_path, f"select {', '.join(columns)} from responses "
                            f"where response_id = 'r2'")[0]
    assert dict(zip(columns, got)) == EXPECTED_LABELLED
    plain = fetch(store_path, "select hs01, oc_used, site_code, wave from responses "
                              "where response_id = 'r1'")[0]
    assert plain == (4, 2, "A", 2025)


def test_windows_1252_text_is_decoded_not_mangled(tmp_path, store_path, instrument,
                                                  definition_yaml):
    # 0x92 is the right single quote in Windows-1252 and invalid on its own in UTF-8.
    path = write_csv(tmp_path / "excel.csv",
                     [response_row(instrument, "caf\u00e9-1", hs05="Don\u2019t know")],
                     encoding="cp1252")
    assert b"\x92" in path.read_bytes()
    report = ingest(store_path, path, instrument, definition_yaml)
    assert report.rows_accepted == 1
    assert fetch(store_path, "select response_id, hs05 from responses") == [("caf\u00e9-1", None)]


# --- every rejection reason ----------------------------------------------------------------

BAD_ROWS = {
    # reason: (row overrides, column reported, bad value reported, words in the reason)
    "out_of_range": ({"ps02": "7"}, "ps02", "7", "7 is not an answer code"),
    "unknown_label": ({"ps03": "Agree strongly"}, "ps03", "Agree strongly",
                      "is not a recognised answer"),
    "missing_required": ({"response_id": ""}, "response_id", None,
                         "response_id is blank"),
    "unknown_site": ({"site": "ZZ"}, "site", "ZZ", "site 'ZZ' is not set up"),
    "unknown_wave": ({"wave": "1999"}, "wave", "1999", "wave '1999' is not set up"),
    "duplicate_response_id": ({"response_id": "ok-1"}, "response_id", "ok-1",
                              "already used for this site and wave"),
    # Overrides are built in _bad_row: all but three scale items left blank.
    "too_few_answers": ({}, "(answers)", "3", "only 3 questions answered"),
    "invalid_value": ({"duration_seconds": "-5"}, "duration_seconds", "-5", "is not valid"),
}


def _bad_row(instrument, reason):
    overrides, *_ = BAD_ROWS[reason]
    row = response_row(instrument, f"bad-{reason}", duration_seconds="300")
    if reason == "too_few_answers":
        kept = instrument.scale_item_ids[:3]
        overrides = {i: "" for i in instrument.item_ids if i not in kept}
    row |= overrides
    return row


#: CSV is validated into a table first; Parquet, numbered by DuckDB, is written as it is
#: validated and only a file with problems builds the table (pipeline.ingest.row_checks).
TWO_PATHS = {"csv": lambda p, rows: write_csv(p.with_suffix(".csv"), rows),
             "parquet": lambda p, rows: _write_parquet(p.with_suffix(".parquet"), rows)}


@pytest.mark.parametrize("fmt", list(TWO_PATHS))
@pytest.mark.parametrize("reason", list(BAD_ROWS))
def test_each_rejection_reason_is_recorded_exactly(reason, fmt, tmp_path, store_path,
                                                   instrument, definition_yaml):
    rows = [response_row(instrument, "ok-1", duration_seconds="300"),
            _bad_row(instrument, reason),
            response_row(instrument, "ok-2", duration_seconds="300")]
    report = ingest(store_path, TWO_PATHS[fmt](tmp_path / "x", rows), instrument,
                    definition_yaml)
    assert (report.rows_accepted, report.rows_rejected) == (2, 1)
    assert report.rejected_by_reason == {reason: 1}
    _, column, value, words = BAD_ROWS[reason]
    quarantined = fetch(store_path, "select source_row, column_name, bad_value, reason_code, "
                                    "reason from quarantine")
    assert len(quarantined) == 1
    source_row, got_column, got_value, code, text = quarantined[0]
    if fmt == "parquet" and value is None:
        value = ""   # the file holds an empty string, where CSV's reader sees no value
    assert (source_row, got_column, got_value, code) == (2, column, value, reason)
    assert words in text
    assert fetch(store_path, "select list(response_id order by response_id) from responses") \
        == [(["ok-1", "ok-2"],)]


def test_reason_codes_are_the_documented_set():
    assert set(REASONS) == set(BAD_ROWS)


def test_a_row_with_two_problems_is_quarantined_once_with_both(tmp_path, store_path,
                                                               instrument, definition_yaml):
    row = response_row(instrument, "two", site="ZZ", hs01="0")
    report = ingest(store_path, write_csv(tmp_path / "x.csv", [row]), instrument,
                    definition_yaml)
    assert (report.rows_read, report.rows_rejected) == (1, 1)
    assert fetch(store_path, "select column_name, reason_code from quarantine order by 1") == [
        ("hs01", "out_of_range"), ("site", "unknown_site")]


@pytest.mark.parametrize("fmt", list(TWO_PATHS))
def test_duplicate_against_an_earlier_file(fmt, tmp_path, store_path, instrument,
                                           definition_yaml):
    ingest(store_path, write_csv(tmp_path / "one.csv", [response_row(instrument, "r1")]),
           instrument, definition_yaml)
    second = TWO_PATHS[fmt](tmp_path / "two", [response_row(instrument, "r1"),
                                               response_row(instrument, "r1", site="C"),
                                               response_row(instrument, "r2"),
                                               response_row(instrument, "r2")])
    report = ingest(store_path, second, instrument, definition_yaml)
    # Same id at another site is a different response; of two r2 rows the first is kept.
    assert (report.rows_accepted, report.rejected_by_reason) == (2, {"duplicate_response_id": 2})
    assert fetch(store_path, "select source_row from quarantine order by 1") == [(1,), (4,)]
    assert fetch(store_path, "select response_id, site_code, source_row from responses "
                             "where batch_id = 2 order by 3") == [("r1", "C", 2), ("r2", "A", 3)]


def test_flags_supply_site_and_wave_and_dates_keep_only_the_day(tmp_path, store_path,
                                                               instrument, definition_yaml):
    row = response_row(instrument, "r1", submitted_on="2025-10-14 09:31:12")
    del row["site"], row["wave"]
    report = ingest(store_path, write_csv(tmp_path / "x.csv", [row]), instrument,
                    definition_yaml, site="c", wave=2024)
    assert report.rows_accepted == 1
    got = fetch(store_path, "select site_code, wave, submitted_on::varchar, "
                            "typeof(submitted_on) from responses")
    assert got == [("C", 2024, "2025-10-14", "DATE")]


def test_unknown_columns_are_ignored_and_named(tmp_path, store_path, instrument,
                                               definition_yaml):
    row = response_row(instrument, "r1", **{"Free text comments": "my name is ..."})
    report = ingest(store_path, write_csv(tmp_path / "x.csv", [row]), instrument,
                    definition_yaml)
    assert report.ignored_columns == ["Free text comments"]
    columns = [r[0] for r in fetch(store_path, "select column_name from "
                                               "information_schema.columns where "
                                               "table_name = 'responses'")]
    assert not any("free" in c.lower() for c in columns)


# --- whole-file problems: one clear message, nothing written ---------------------------------

def _file_problems(instrument):
    no_site = response_row(instrument, "r1")
    del no_site["site"]
    return {
        "missing required column 'site'": ("x.csv", lambda p: write_csv(p, [no_site])),
        "cannot read '.json' files": ("x.json", lambda p: p.write_text("{}")),
        "the file is empty": ("x.csv", lambda p: p.write_bytes(b"")),
        "has a header but no data rows": (
            "x.csv", lambda p: p.write_text("response_id,site,wave,hs01\n")),
        "no column matches a question": (
            "x.csv", lambda p: p.write_text("response_id,site,wave\nr1,A,2025\n")),
        "not a readable Excel workbook": ("x.xlsx", lambda p: p.write_bytes(b"not a zip")),
        "cannot be read": ("x.csv", lambda p: p.write_text(
            "response_id,site,wave,hs01\nr1,A,2025,4\nr2,A,2025,4,5,6,7\n")),
        "cannot be read as Parquet": ("x.parquet", lambda p: p.write_bytes(b"PAR1garbage")),
    }


@pytest.mark.parametrize("expected", [
    "missing required column 'site'", "cannot read '.json' files", "the file is empty",
    "has a header but no data rows", "no column matches a question",
    "not a readable Excel workbook", "cannot be read", "cannot be read as Parquet"])
def test_unusable_files_raise_one_clear_error_and_write_nothing(expected, tmp_path, store_path,
                                                               instrument, definition_yaml):
    name, make = _file_problems(instrument)[expected]
    path = tmp_path / name
    make(path)
    with pytest.raises(IngestError) as caught:
        ingest(store_path, path, instrument, definition_yaml)
    message = str(caught.value)
    assert message.startswith(str(path)) and expected in message
    assert "\n" not in message
    assert table_counts(store_path) == (0, 0, 0)


def test_cli_reports_an_unreadable_file_in_one_line_without_traceback(tmp_path, store_path):
    result = culture("ingest", tmp_path / "missing.csv", "--db", store_path)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"error: {tmp_path / 'missing.csv'}: no such file\n"


# --- idempotence and crash safety ----------------------------------------------------------

def test_same_content_again_is_a_no_op_that_says_so(tmp_path, store_path, instrument,
                                                    definition_yaml):
    rows = [response_row(instrument, "r1"), response_row(instrument, "r2", hs01="9")]
    first = ingest(store_path, write_csv(tmp_path / "a.csv", rows), instrument, definition_yaml)
    before = table_counts(store_path)
    # Same bytes under another name are still the same content.
    again = ingest(store_path, write_csv(tmp_path / "copy.csv", rows), instrument,
                   definition_yaml)
    assert again.already_ingested and again.previous_batch[0] == first.batch_id
    assert table_counts(store_path) == before == (2, 0, 1)


#: `culture ingest` (argv: marker file, then the command's arguments) pausing before
#: each batch commits, after writing the marker file.
PAUSED_INGEST = """
import runpy, sys, time
from pathlib import Path
import pipeline.ingest.files

marker = Path(sys.argv.pop(1))

def pause():
    marker.write_text("paused")
    time.sleep(60)

pipeline.ingest.files.before_commit = pause
runpy.run_module("cli.main", run_name="__main__")
"""


def test_killed_ingest_leaves_the_store_unchanged_and_a_rerun_completes(
        tmp_path, store_path, instrument, definition_yaml):
    ingest(store_path, write_csv(tmp_path / "first.csv", [response_row(instrument, "r0")]),
           instrument, definition_yaml)
    before = table_counts(store_path)
    columns_before = fetch(store_path, "select count(*) from information_schema.columns")
    rows = [response_row(instrument, f"r{i}") for i in range(1, 501)]
    rows.append(response_row(instrument, "bad", hs01="7"))
    big = write_csv(tmp_path / "big.csv", rows)
    marker = tmp_path / "paused"
    command = [sys.executable, "-m", "cli.main", "ingest", str(big), "--db", str(store_path)]
    # The same command with ingest's before_commit hook set: it holds the transaction
    # open, after the rows are written, until the test kills the process.
    paused = [sys.executable, "-c", PAUSED_INGEST, str(marker), *command[3:]]
    process = subprocess.Popen(paused, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "ingest never reached the commit"
        time.sleep(0.05)
    # The rows are written inside the open transaction; kill before it commits.
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert table_counts(store_path) == before
    assert fetch(store_path, "select count(*) from information_schema.columns") == columns_before

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert table_counts(store_path) == (501, 1, 2)


def _numbered_answers(instrument, bad_rows: tuple[int, ...], sql_type: str) -> str:
    """Item columns for a generated file over range() rows `i`: answer (i mod the scale's
    size) + 1, except ps03, which is the out-of-range 7 on `bad_rows`."""
    return ", ".join(
        f"(case when i in {bad_rows} and '{item.id}' = 'ps03' then 7 "
        f"else (i % {2 if item.response_scale == 'yesno' else 5}) + 1 end)::{sql_type} "
        f"as {item.id}" for item in instrument.items)


def test_row_numbers_follow_the_file_when_a_large_csv_is_read_in_parallel(
        tmp_path, store_path, instrument, definition_yaml):
    """source_row must be the file's row even though DuckDB splits the scan across threads."""
    rows = 300_000
    bad_rows = (1, 123_457, 299_999)
    answers = _numbered_answers(instrument, bad_rows, "varchar")
    path = tmp_path / "large.csv"
    with duckdb.connect() as con:
        con.execute(f"copy (select 'id-' || i as response_id, 'A' as site, '2025' as wave, "
                    f"{answers} from range(1, {rows + 1}) t(i) order by i) "
                    f"to '{path}' (header, delimiter ',')")
    assert path.stat().st_size > 20_000_000
    report = ingest(store_path, path, instrument, definition_yaml)
    assert (report.rows_read, report.rows_rejected) == (rows, len(bad_rows))
    assert fetch(store_path, "select source_row, response_id from quarantine order by 1") == [
        (n, f"id-{n}") for n in bad_rows]
    misplaced = fetch(store_path, "select count(*) from responses "
                                  "where response_id <> 'id-' || source_row")
    assert misplaced == [(0,)]


def test_row_numbers_follow_a_parquet_file_of_many_row_groups(tmp_path, store_path,
                                                               instrument, definition_yaml):
    """Parquet rows are numbered by DuckDB's file_row_number and written in parallel."""
    rows = 200_000
    bad_rows = (1, 65_537, 123_457, 199_999)
    answers = _numbered_answers(instrument, bad_rows, "smallint")
    path = tmp_path / "large.parquet"
    with duckdb.connect() as con:
        # A repeated id at row 150,001 (of row 42's) is the second duplicate kind.
        con.execute(f"copy (select 'id-' || case when i = 150001 then 42 else i end "
                    f"as response_id, 'A' as site, 2025 as wave, {answers} "
                    f"from range(1, {rows + 1}) t(i) order by i) "
                    f"to '{path}' (format parquet, row_group_size 10000)")
        assert con.execute(f"select count(*) from parquet_metadata('{path}') "
                           f"where column_id = 0").fetchone()[0] == 20
    report = ingest(store_path, path, instrument, definition_yaml)
    assert (report.rows_read, report.rows_accepted) == (rows, rows - len(bad_rows) - 1)
    assert report.rejected_by_reason == {"out_of_range": 4, "duplicate_response_id": 1}
    assert fetch(store_path, "select source_row, response_id, column_name, bad_value "
                             "from quarantine order by 1") == [
        *((n, f"id-{n}", "ps03", "7") for n in bad_rows[:3]),
        (150_001, "id-42", "response_id", "id-42"),
        (199_999, "id-199999", "ps03", "7")]
    misplaced = fetch(store_path, "select count(*) from responses "
                                  "where response_id <> 'id-' || source_row")
    assert misplaced == [(0,)]
    assert fetch(store_path, "select sum(ps02), count(ps03) from responses") == [
        (sum(i % 5 + 1 for i in range(1, rows + 1) if i not in (*bad_rows, 150_001)),
         rows - len(bad_rows) - 1)]


def test_a_parquet_column_named_file_row_number_is_ignored_not_taken_for_the_row(
        tmp_path, store_path, instrument, definition_yaml):
    rows = [response_row(instrument, f"r{n}") for n in (1, 2, 3)]
    rows[1]["ps02"] = "9"   # "don't know": stored as missing
    rows[2]["ps02"] = "6"
    path = _write_parquet(tmp_path / "odd.parquet",
                          [row | {"file_row_number": str(n)} for n, row in zip((9, 8, 7), rows)])
    report = ingest(store_path, path, instrument, definition_yaml)
    assert report.ignored_columns == ["file_row_number"]
    assert (report.rows_accepted, report.rejected_by_reason) == (2, {"out_of_range": 1})
    assert fetch(store_path, "select source_row, bad_value from quarantine") == [(3, "6")]
    assert fetch(store_path, "select response_id, source_row, ps02 from responses "
                             "order by 2") == [("r1", 1, int(rows[0]["ps02"])), ("r2", 2, None)]


def test_questions_missing_from_the_file_are_named_and_stored_as_unanswered(
        tmp_path, store_path, instrument, definition_yaml):
    row = response_row(instrument, "r1")
    del row["oc_used"], row["lm04"]
    report = ingest(store_path, write_csv(tmp_path / "x.csv", [row]), instrument,
                    definition_yaml)
    assert report.rows_accepted == 1
    assert report.missing_item_columns == ["lm04", "oc_used"]
    assert fetch(store_path, "select lm04, oc_used, lm03 from responses") == [(None, None, 4)]


# --- hostile files (issue 18): each refused or quarantined with the right reason ------------

def culture_ingest(store_path, *args: str):
    """`culture ingest` on the store, as a survey lead runs it (in-process)."""
    return culture("ingest", *args, "--db", store_path)


def test_an_absurdly_long_header_name_is_refused_naming_its_column(tmp_path, store_path,
                                                                   instrument):
    row = response_row(instrument, "r1") | {"x" * 100_000: "v"}
    path = write_csv(tmp_path / "long.csv", [row])
    column = list(row).index("x" * 100_000) + 1
    result = culture_ingest(store_path, str(path))
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"error: {path}: column {column}'s name is 100,000 characters long; names of up to "
        f"5,000 characters are accepted (a question id such as hs01, or the question's "
        f"wording); check the first line is the header row")
    assert table_counts(store_path) == (0, 0, 0)


def test_a_long_header_name_in_parquet_is_refused_too(tmp_path, store_path, instrument,
                                                      definition_yaml):
    row = response_row(instrument, "r1") | {"q" * 6_000: "v"}
    with pytest.raises(IngestError, match=r"column \d+'s name is 6,000 characters long; "
                                          r"names of up to 5,000 characters are accepted"):
        ingest(store_path, _write_parquet(tmp_path / "long.parquet", [row]), instrument,
               definition_yaml)
    assert table_counts(store_path) == (0, 0, 0)


def test_question_wording_full_of_unclosed_tags_is_matched_without_blowing_up(
        tmp_path, store_path, instrument):
    # Question wording passes through normalise_wording, whose tag-stripping pattern
    # once rescanned to the end of the text from every '<' (quadratic in the length).
    from pipeline.ingest.tools import normalise_wording

    wording = "<" * 100_000 + instrument.items[0].text
    assert normalise_wording(wording) == normalise_wording(instrument.items[0].text)
    assert normalise_wording("<p>I feel <b>safe</b></p> << >") == "i feel safe"
    texts = {item.id: item.text for item in instrument.items}
    asked = instrument.scale_item_ids[:instrument.scoring.min_answered_items]
    header = ["ID", "Completion time", "<" * 4_000 + texts[asked[0]],
              *(texts[i] for i in asked[1:])]
    path = tmp_path / "forms.csv"
    path.write_text(",".join(f'"{h}"' for h in header) + "\n1,2025-10-14 10:00,"
                    + ",".join("4" for _ in asked) + "\n", encoding="utf-8")
    result = culture_ingest(store_path, str(path), "--from", "forms", "--site", "A",
                            "--wave", "2025")
    assert result.exit_code == 0, result.stderr
    assert fetch(store_path, f"select response_id, {asked[0]} from responses") == [("1", 4)]


TODAY = datetime.date.today()
LATEST = (TODAY + datetime.timedelta(days=7)).isoformat()


@pytest.mark.parametrize("fmt", list(TWO_PATHS))
@pytest.mark.parametrize("column, value", [
    ("submitted_on", "-2026-01-01"), ("submitted_on", "9999-12-31"),
    ("submitted_on", "1999-12-31"),
    ("submitted_on", (TODAY + datetime.timedelta(days=8)).isoformat()),
    ("duration_seconds", "1e20"), ("duration_seconds", "86401")])
def test_implausible_dates_and_durations_are_quarantined_with_the_range(
        fmt, column, value, tmp_path, store_path, instrument, definition_yaml):
    rows = [response_row(instrument, "first-day", submitted_on="2000-01-01",
                         duration_seconds="86400.0"),
            response_row(instrument, "bad", submitted_on="2025-10-14", duration_seconds="300")
            | {column: value},
            response_row(instrument, "last-day", submitted_on=LATEST, duration_seconds="0")]
    report = ingest(store_path, TWO_PATHS[fmt](tmp_path / "x", rows), instrument,
                    definition_yaml)
    assert (report.rows_accepted, report.rejected_by_reason) == (2, {"invalid_value": 1})
    (source_row, got_column, bad_value, reason), = fetch(
        store_path, "select source_row, column_name, bad_value, reason from quarantine")
    assert (source_row, got_column, bad_value) == (2, column, value)
    accepted = (f"accepted: a date from 2000-01-01 to {LATEST}" if column == "submitted_on"
                else "accepted: a number of seconds from 0 to 86400")
    assert accepted in reason
    assert fetch(store_path, "select response_id, submitted_on::varchar, duration_seconds "
                             "from responses order by 1") == [
        ("first-day", "2000-01-01", 86400.0), ("last-day", LATEST, 0.0)]


@pytest.mark.parametrize("kind", ["fifo", "device"])
@pytest.mark.parametrize("tool", ["culture", "forms"])
def test_a_pipe_or_device_is_refused_as_not_a_regular_file(kind, tool, tmp_path, store_path):
    if kind == "fifo":
        path = tmp_path / "export.csv"
        os.mkfifo(path)   # no writer: opening it to read would wait for ever
    else:
        path = Path("/dev/zero")
    # A real process, so that a regression that opens the pipe (and waits for ever) fails
    # at the timeout instead of hanging the suite; the refusal is the assertion.
    result = subprocess.run([sys.executable, "-m", "cli.main", "ingest", str(path), "--from",
                             tool, "--db", str(store_path)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    what = "a named pipe" if kind == "fifo" else "a device"
    assert result.stderr.strip() == (f"error: {path}: is not a regular file ({what}); save the "
                                     f"export as a file and give its path")
    assert table_counts(store_path) == (0, 0, 0)


def test_a_folder_is_still_called_a_folder(tmp_path, store_path):
    result = culture_ingest(store_path, str(tmp_path))
    assert result.stderr.strip() == (f"error: {tmp_path}: is a folder, not a file; give the "
                                     f"file(s) inside it")


def test_a_header_of_twenty_thousand_columns_is_refused_as_too_many(tmp_path, store_path,
                                                                    instrument):
    header = list(response_row(instrument, "r1")) + [f"x{i}" for i in range(1, 20_001)]
    path = tmp_path / "wide.csv"
    path.write_text(",".join(header) + "\n" + ",".join(["r1", "A", "2025"]
                                                       + ["4"] * (len(header) - 3)) + "\n")
    result = culture_ingest(store_path, str(path))
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"error: {path}: the header has {len(header):,} columns; at most 2,000 are accepted "
        f"(a survey export has one column per question and a few of the tool's own); remove "
        f"the columns that are not answers")
    assert table_counts(store_path) == (0, 0, 0)


def test_site_and_wave_options_the_file_contradicts_are_reported(tmp_path, store_path,
                                                                  instrument):
    rows = [response_row(instrument, "r1", site="A", wave="2025"),
            response_row(instrument, "r2", site="c", wave="2024"),
            response_row(instrument, "r3", site="", wave=""),
            response_row(instrument, "r4", site="C", wave="2025.0")]
    path = write_csv(tmp_path / "x.csv", rows)
    result = culture_ingest(store_path, str(path), "--site", "A", "--wave", "2025")
    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: --site A was not used for 2 row(s): the file's column 'site' gives their "
        "site: C (2); --site only fills rows whose site is blank",
        "warning: --wave 2025 was not used for 1 row(s): the file's column 'wave' gives "
        "their wave: 2024 (1); --wave only fills rows whose wave is blank"]
    # The file's own values were used; the options filled the blank row only.
    assert fetch(store_path, "select response_id, site_code, wave from responses "
                             "order by 1") == [("r1", "A", 2025), ("r2", "C", 2024),
                                               ("r3", "A", 2025), ("r4", "C", 2025)]
    agreeing = write_csv(tmp_path / "y.csv", [response_row(instrument, "r9", site="A")])
    quiet = culture_ingest(store_path, str(agreeing), "--site", "A", "--wave", "2025")
    assert quiet.exit_code == 0 and "warning" not in quiet.stderr
