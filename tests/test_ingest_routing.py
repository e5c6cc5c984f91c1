"""Routing at ingest (issue 22, point 2): an answer to pw07, which version 2.0 asks only of
doctors outside training, is stored as missing for anyone else, whatever file it comes in
(another tool may not have routed it); the respondent is kept, and the report counts the
answers set aside, naming the item and its rule."""

from __future__ import annotations

import csv

import duckdb
import pytest

from pipeline.ingest.files import ingest_file
from pipeline.store import open_store
from survey.instrument import load_instrument
from survey.settings import INSTRUMENTS_DIR
from tests.conftest import culture, full_answers, write_csv

V2_PATH = INSTRUMENTS_DIR / "support-culture-v2.yaml"
ASKED = ("sas", "consultant", "locally_employed", "gp")


@pytest.fixture(scope="module")
def v2():
    return load_instrument(V2_PATH)


def row(v2, response_id: str, staff_group: str, pw07: str, **overrides: str) -> dict:
    answers = {"response_id": response_id, "site": "A", "wave": "2025",
               "staff_group": staff_group} | full_answers(v2)
    return answers | {"pw07": pw07} | overrides


#: (response id, staff group as the file writes it, pw07 as the file writes it, pw07 stored)
CASES = [
    ("r1", "consultant", "4", 4),            # asked: kept
    ("r2", "Consultant", "Agree", 4),        # labels, asked: kept
    ("r3", "foundation", "4", None),         # in training: blanked
    ("r4", "Foundation doctor", "Agree", None),
    ("r5", "", "5", None),                   # no role given: not asked
    ("r6", "resident", "", None),            # not asked and not answered: nothing to count
    ("r7", "gp_resident", "9", None),        # "don't know" from someone not asked
    ("r8", "prefer_not_to_say", "2", None),
    ("r9", "gp", "2", 2),
]
BLANKED = 4   # r3, r4, r5, r8 gave an answer (not "don't know") they were not asked for


def _ingest(store_path, v2, path):
    with open_store(store_path) as con:
        report = ingest_file(con, path, v2, V2_PATH.read_text(encoding="utf-8"))
        stored = dict(con.execute("select response_id, pw07 from responses").fetchall())
        others = con.execute("select count(*) from responses where pw06 = 4 and ps01 = 4"
                             ).fetchone()[0]
    return report, stored, others


def _to_xlsx(source, target):
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    with source.open(encoding="utf-8", newline="") as handle:
        for record in csv.reader(handle):
            sheet.append(record)
    book.save(target)
    return target


def _to_parquet(source, target):
    with duckdb.connect() as con:
        con.execute(f"copy (select * from read_csv('{source}', all_varchar=true)) "
                    f"to '{target}' (format parquet)")
    return target


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "parquet"])
def test_answers_from_those_not_asked_are_blanked_and_counted(store_path, tmp_path, v2, fmt):
    source = write_csv(tmp_path / "export.csv",
                       [row(v2, rid, group, pw07) for rid, group, pw07, _ in CASES])
    path = {"csv": lambda: source,
            "xlsx": lambda: _to_xlsx(source, tmp_path / "export.xlsx"),
            "parquet": lambda: _to_parquet(source, tmp_path / "export.parquet")}[fmt]()
    report, stored, others = _ingest(store_path, v2, path)
    # Nobody refused: every respondent kept, with every other answer.
    assert (report.rows_read, report.rows_accepted, report.rows_rejected) == (9, 9, 0)
    assert others == 9
    assert stored == {rid: kept for rid, _, _, kept in CASES}
    assert report.blanked_by_routing == {"pw07": BLANKED}
    (said,) = [w for w in report.warnings if w.startswith("pw07:")]
    assert said.startswith(f"pw07: {BLANKED} answer(s) stored as missing by routing: pw07 is "
                           "asked only of: SAS doctor")
    assert "(staff_group = sas / consultant / locally_employed / gp)" in said
    assert "the rows and their other answers are kept" in said


def test_a_bad_answer_from_someone_asked_is_still_refused(store_path, tmp_path, v2):
    path = write_csv(tmp_path / "x.csv", [row(v2, "r1", "consultant", "7"),
                                          row(v2, "r2", "foundation", "7")])
    report, stored, _ = _ingest(store_path, v2, path)
    # The consultant's 7 is a wrong answer; the foundation doctor's was never asked for.
    assert report.rejected_by_reason == {"out_of_range": 1}
    assert stored == {"r2": None}
    assert report.blanked_by_routing == {"pw07": 1}
    with open_store(store_path) as con:
        assert con.execute("select response_id, column_name from quarantine").fetchall() == [
            ("r1", "pw07")]


def test_a_file_without_the_role_column_is_blanked_whole(store_path, tmp_path, v2):
    """Without the question the item depends on, nobody in the file was asked it."""
    rows = [row(v2, f"r{i}", "consultant", "4") for i in range(3)]
    for answers in rows:
        del answers["staff_group"]
    report, stored, others = _ingest(store_path, v2, write_csv(tmp_path / "x.csv", rows))
    assert stored == {"r0": None, "r1": None, "r2": None} and others == 3
    assert report.blanked_by_routing == {"pw07": 3}


def test_a_file_routed_by_its_tool_says_nothing(store_path, tmp_path, v2):
    rows = [row(v2, "r1", "consultant", "4"), row(v2, "r2", "foundation", "")]
    report, stored, _ = _ingest(store_path, v2, write_csv(tmp_path / "x.csv", rows))
    assert stored == {"r1": 4, "r2": None}
    assert report.blanked_by_routing == {} and report.warnings == []


def test_version_1_asks_everyone(store_path, tmp_path, instrument, definition_yaml):
    path = write_csv(tmp_path / "x.csv", [row(instrument, "r1", "foundation", "4")])
    with open_store(store_path) as con:
        report = ingest_file(con, path, instrument, definition_yaml)
        assert con.execute("select pw07 from responses").fetchone() == (4,)
    assert report.blanked_by_routing == {}


def test_the_command_says_what_routing_blanked(store_path, tmp_path, v2):
    path = write_csv(tmp_path / "x.csv", [row(v2, "r1", "foundation", "4"),
                                          row(v2, "r2", "consultant", "4")])
    result = culture("ingest", path, "--db", store_path, "--instrument", V2_PATH)
    assert result.exit_code == 0, result.stderr
    assert "2 rows read, 2 accepted, 0 quarantined" in result.stdout
    assert "pw07: 1 answer(s) stored as missing by routing" in " ".join(result.stderr.split())
