"""Quarantine rows that match the spreadsheet (issue 22, point 4): a refused row is named
by the row a spreadsheet shows (header = row 1), even after blank lines, the screen gets a
summary by reason that reads at 80 columns, and --csv keeps every problem."""

from __future__ import annotations

import csv
import json
import re

import duckdb
import pytest

from pipeline.ingest.quarantine import CSV_HEADER, SHOWN_PER_REASON
from survey.settings import SAMPLES_DIR
from tests.conftest import culture, response_row, write_csv

DIRTY = SAMPLES_DIR / "responses_dirty.csv"


@pytest.fixture(scope="module")
def dirty_store(tmp_path_factory):
    """`culture demo --dirty --db dirty.duckdb`, as the README has a survey lead run it."""
    path = tmp_path_factory.mktemp("dirty") / "dirty.duckdb"
    result = culture("demo", "--dirty", "--db", path, "--no-serve")
    assert result.exit_code == 0, result.stderr
    return path


def line_of(marker: str) -> int:
    """The line of the dirty CSV holding `marker`, counted as a spreadsheet counts rows."""
    lines = DIRTY.read_text(encoding="utf-8").splitlines()
    found = [number for number, line in enumerate(lines, start=1) if marker in line]
    assert len(found) == 1, (marker, found)
    return found[0]


def test_the_sample_has_no_quoted_line_breaks():
    """So that its lines are its spreadsheet rows, and line_of() counts what a person sees."""
    with DIRTY.open(encoding="utf-8", newline="") as handle:
        records = sum(1 for _ in csv.reader(handle))
    assert records == len(DIRTY.read_text(encoding="utf-8").splitlines())


def test_rows_are_numbered_as_the_spreadsheet_shows_them(dirty_store):
    shown = culture("quarantine", "--db", dirty_store)
    assert shown.exit_code == 0, shown.stderr
    text = shown.stdout
    assert ("Row numbers are the rows a spreadsheet shows when you open the file: the "
            "header is row 1.") in text
    # Each known bad row, found in the file by its own content.
    expected = {
        "ps02 = '0'": line_of("D-2025-90001,"),
        "site = 'ZZ'": line_of(",ZZ,"),
        "ps05 = 'Agree strongly'": line_of("Agree strongly"),
        "wave = '1999'": line_of(",1999,"),
    }
    for problem, line in expected.items():
        # "row 635 (D-2025-90001), ps02 = '0': ..." (the response id when there is one)
        assert re.search(rf"^    row {line}( \([^)]*\))?, {re.escape(problem)}: ", text, re.M), \
            (problem, line)
    assert f"    row {line_of('D-2025-90001,')} (D-2025-90001), ps02 = '0': " in text
    # The README's example: the blank response id on data row 296 is row 297 on screen.
    manifest = json.loads((SAMPLES_DIR / "manifest.json").read_text(encoding="utf-8"))
    blank = [r["row"] for r in manifest["dirty"]["bad_rows"] if r["response_id"] == ""]
    assert blank == [296]
    assert "    row 297, response_id: response_id is blank" in text
    assert "row 296" not in text


def test_the_screen_summary_reads_at_80_columns(dirty_store):
    text = culture("quarantine", "--db", dirty_store).stdout
    # No table borders to wrap into columns of single words.
    assert not re.search("[┏┃│━]", text)
    with duckdb.connect(str(dirty_store), read_only=True) as con:
        counts = dict(con.execute("select reason_code, count(distinct source_row) "
                                  "from quarantine group by 1").fetchall())
    assert counts["out_of_range"] == 2 and len(counts) == 7
    for reason, n in counts.items():
        assert f"  {reason}: {n} row(s)\n" in text
    assert text.startswith("8 row(s) refused (8 problem(s)).")
    assert "responses_dirty.csv (batch 1)" in text
    assert text.rstrip().endswith("every problem, one line each: culture quarantine --csv "
                                  "rejected.csv")
    # Reasons with the most rows first.
    order = [line.split(":")[0].strip() for line in text.splitlines()
             if re.match(r"  [a-z_]+: \d+ row", line)]
    assert order[0] == "out_of_range"


def test_csv_keeps_every_problem_with_both_row_numbers(dirty_store, tmp_path):
    out = tmp_path / "rejected.csv"
    written = culture("quarantine", "--csv", out, "--db", dirty_store)
    assert written.stdout.startswith(f"8 rejected row problem(s) written to {out}")
    assert "header as row 1" in written.stdout
    with out.open(encoding="utf-8-sig", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0]) == list(CSV_HEADER)
    assert len(table) == 8
    for row in table:
        assert int(row["spreadsheet_row"]) == int(row["data_row"]) + 1
    by_column = {row["column"]: int(row["spreadsheet_row"]) for row in table}
    assert by_column["site"] == line_of(",ZZ,")
    assert by_column["ps05"] == line_of("Agree strongly")


def test_a_reason_with_many_rows_shows_the_first_few(tmp_path, store_path, instrument):
    rows = [response_row(instrument, f"r{i}", hs02="7" if i > 1 else "4")
            for i in range(1, 7)]                     # r2..r6 refused: rows 3-7
    culture("ingest", write_csv(tmp_path / "x.csv", rows), "--db", store_path)
    text = culture("quarantine", "--batch", "1", "--db", store_path).stdout
    assert "  out_of_range: 5 row(s)\n" in text
    shown = re.findall(r"    row (\d+) \((r\d)\), hs02 = '7'", text)
    assert shown == [("3", "r2"), ("4", "r3"), ("5", "r4")][:SHOWN_PER_REASON]
    assert f"    ... and {5 - SHOWN_PER_REASON} more\n" in text
    assert "culture quarantine --batch 1 --csv rejected.csv" in text


def test_parquet_rows_are_answers_not_spreadsheet_rows(tmp_path, store_path, instrument):
    source = write_csv(tmp_path / "x.csv", [response_row(instrument, "r1"),
                                           response_row(instrument, "r2", hs02="7")])
    parquet = tmp_path / "x.parquet"
    with duckdb.connect() as con:
        con.execute(f"copy (select * from read_csv('{source}', all_varchar=true)) "
                    f"to '{parquet}' (format parquet)")
    assert culture("ingest", parquet, "--db", store_path).exit_code == 0
    text = culture("quarantine", "--db", store_path).stdout
    assert "    answer 2 (r2), hs02 = '7'" in text
    assert "no spreadsheet row is known" in text
    out = tmp_path / "q.csv"
    culture("quarantine", "--csv", out, "--db", store_path)
    (row,) = list(csv.DictReader(out.open(encoding="utf-8-sig", newline="")))
    assert (row["spreadsheet_row"], row["data_row"]) == ("", "2")


def test_hostile_values_are_shown_as_text_and_cut_short(tmp_path, store_path, instrument):
    rows = [response_row(instrument, "r1", hs01="[bold]=1+2" + "x" * 100)]
    culture("ingest", write_csv(tmp_path / "x.csv", rows), "--db", store_path)
    text = culture("quarantine", "--db", store_path).stdout
    assert "hs01 = '[bold]=1+2" in text and "x" * 41 not in text


def _lines_with_blanks(instrument, line_end: str) -> str:
    """A CSV whose bad rows come after blank lines and an answer holding a line break:
    r3 and r6 have hs02 = 7. As a spreadsheet shows it: header row 1, r1 row 2, a blank
    row 3, r2 row 4 (its 'x' cell spans two lines but is one row), r3 row 5, two blank
    rows 6-7, r4 row 8, r5 row 9, r6 row 10."""
    rows = [response_row(instrument, f"r{i}", hs02="7" if i in (3, 6) else "4")
            for i in range(1, 7)]
    header = list(rows[0]) + ["note"]
    lines = [",".join(header)]
    for number, answers in enumerate(rows, start=1):
        note = f'"two{line_end}{line_end}lines"' if number == 2 else ""
        lines.append(",".join(answers.values()) + "," + note)
        lines += {1: [""], 3: ["", ""]}.get(number, [])
    return line_end.join(lines) + line_end


@pytest.mark.parametrize("line_end", ["\n", "\r\n"])
def test_rows_after_blank_lines_keep_the_spreadsheets_numbers(tmp_path, store_path,
                                                              instrument, line_end):
    path = tmp_path / "blanks.csv"
    path.write_bytes(_lines_with_blanks(instrument, line_end).encode())
    result = culture("ingest", path, "--db", store_path)
    assert "6 rows read, 4 accepted, 2 quarantined" in result.stdout, result.stdout
    text = culture("quarantine", "--db", store_path).stdout
    assert "    row 5 (r3), hs02 = '7'" in text and "    row 10 (r6), hs02 = '7'" in text
    out = tmp_path / "q.csv"
    culture("quarantine", "--csv", out, "--db", store_path)
    table = list(csv.DictReader(out.open(encoding="utf-8-sig", newline="")))
    assert [(r["response_id"], r["spreadsheet_row"], r["data_row"]) for r in table] == [
        ("r3", "5", "4"), ("r6", "10", "9")]
    with duckdb.connect(str(store_path), read_only=True) as con:
        assert con.execute("select response_id, source_row from responses order by 2"
                           ).fetchall() == [("r1", 1), ("r2", 3), ("r4", 7), ("r5", 8)]


def test_a_blank_line_inside_a_quoted_answer_is_no_row(tmp_path, store_path, instrument):
    """Two line breaks in a row inside quotes: one cell, so the numbers do not move."""
    rows = [response_row(instrument, "r1"), response_row(instrument, "r2", hs02="7")]
    path = tmp_path / "quoted.csv"
    header = list(rows[0]) + ["note"]
    path.write_text(",".join(header) + "\n" + ",".join(rows[0].values()) + ',"a\n\nb"\n'
                    + ",".join(rows[1].values()) + ",\n", encoding="utf-8")
    culture("ingest", path, "--db", store_path)
    assert "    row 3 (r2), hs02 = '7'" in culture("quarantine", "--db", store_path).stdout


def test_blank_rows_of_a_sheet_are_skipped_and_counted(tmp_path, store_path, instrument):
    from openpyxl import Workbook

    rows = [response_row(instrument, f"r{i}", hs02="7" if i == 3 else "4")
            for i in range(1, 4)]
    book = Workbook()
    sheet = book.active
    sheet.append(list(rows[0]))
    sheet.append(list(rows[0].values()))     # row 2
    sheet.append([])                         # row 3: blank
    sheet.append([None, None])               # row 4: blank cells
    sheet.append(list(rows[1].values()))     # row 5
    sheet.append(list(rows[2].values()))     # row 6
    sheet.append([])                         # row 7: blank, and the sheet's area runs
    sheet.cell(row=9, column=1).value = None  # on to row 9 (a touched cell): no one there
    book.save(tmp_path / "x.xlsx")
    result = culture("ingest", tmp_path / "x.xlsx", "--db", store_path)
    assert "3 rows read, 2 accepted, 1 quarantined" in result.stdout, result.stdout
    text = culture("quarantine", "--db", store_path).stdout
    assert "    row 6 (r3), hs02 = '7'" in text
    assert "response_id is blank" not in text
