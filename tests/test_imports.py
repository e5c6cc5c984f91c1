"""Import adapters: REDCap, Qualtrics and Microsoft Forms exports round-trip into the store."""

from __future__ import annotations

import csv
import io
import json
import random
import warnings
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from openpyxl import Workbook, load_workbook

from pipeline.store import open_store
from survey.errors import IngestError
from pipeline.ingest.tools import (import_export, load_column_map, normalise_export, parse_moment,
                            slash_order)
from survey.instrument_export import export_instrument, redcap_dictionary_csv
from tests.conftest import culture

#: Things a person might be identified by; none of them may reach the store.
EMAILS = ("jo.bloggs@trust.example", "sam.patel@trust.example")
NAMES = ("Jo Bloggs", "Sam Patel")
FREE_TEXT = "My rota is awful, ask me (Jo) about it"


def run_import(store_path, path, instrument, definition_yaml, tool, **flags):
    with open_store(store_path) as con:
        return import_export(con, path, instrument, definition_yaml, tool, **flags)


def stored(store_path, instrument) -> dict[str, dict]:
    columns = ["response_id", "site_code", "wave", "submitted_on", "duration_seconds",
               *(a.id for a in instrument.attributes), *instrument.item_ids]
    with duckdb.connect(str(store_path), read_only=True) as con:
        rows = con.execute(f"select {', '.join(columns)} from responses").fetchall()
    return {row[0]: dict(zip(columns, row)) for row in rows}


def quarantined(store_path) -> list[tuple]:
    with duckdb.connect(str(store_path), read_only=True) as con:
        return con.execute("select response_id, column_name, bad_value, reason_code "
                           "from quarantine order by source_row, column_name").fetchall()


def synthetic_answers(instrument, n: int, seed: int) -> list[dict]:
    """Seeded answers as codes: every option (including "don't know") and blanks occur."""
    rng = random.Random(seed)
    people = []
    for number in range(n):
        answers = {}
        for item in instrument.items:
            rs = instrument.response_scale(item.response_scale)
            codes = [o.code for o in (*rs.options, *rs.missing)] + [None]
            answers[item.id] = rng.choice(codes)
        for attribute in instrument.attributes:
            answers[attribute.id] = rng.choice([o.code for o in attribute.options] + [None])
        answers["id"] = f"{number + 1}"
        answers["when"] = datetime(2025, 3, 1, 8, 0) + timedelta(hours=7 * number,
                                                                 seconds=rng.randint(0, 3599))
        answers["took"] = rng.randint(120, 900)
        people.append(answers)
    return people


def expected_store_value(instrument, ident: str, code):
    """What the store holds for an answer: scored codes as is, "don't know" and blank as NULL."""
    if ident in instrument.item_ids:
        rs = instrument.response_scale(next(i for i in instrument.items if i.id == ident).response_scale)
        return code if code in rs.codes else None
    return code


def label_of(instrument, ident: str, code) -> str:
    if code is None:
        return ""
    for item in instrument.items:
        if item.id == ident:
            rs = instrument.response_scale(item.response_scale)
            return next(o.label for o in (*rs.options, *rs.missing) if o.code == code)
    attribute = next(a for a in instrument.attributes if a.id == ident)
    return next(o.label for o in attribute.options if o.code == code)


def assert_round_trip(store_path, instrument, people, response_id, with_dates=True):
    rows = stored(store_path, instrument)
    assert len(rows) == len(people)
    for person in people:
        row = rows[response_id(person)]
        for ident in (*instrument.item_ids, *(a.id for a in instrument.attributes)):
            assert row[ident] == expected_store_value(instrument, ident, person[ident]), \
                (person["id"], ident)
        if with_dates:
            assert row["submitted_on"] == person["when"].date()


# --- REDCap ----------------------------------------------------------------------------

def redcap_field_names(instrument) -> list[str]:
    """The fields REDCap exports for our dictionary (descriptive fields hold no data)."""
    rows = csv.DictReader(io.StringIO(redcap_dictionary_csv(instrument, ("A", "C"))))
    return [r["Variable / Field Name"] for r in rows if r["Field Type"] != "descriptive"]


def write_redcap_export(path: Path, instrument, people) -> Path:
    fields = redcap_field_names(instrument)
    header = ["record_id", "redcap_survey_identifier", "support_culture_timestamp",
              *fields[1:], "support_culture_complete"]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for person in people:
            values = {"record_id": person["id"], "redcap_survey_identifier": "",
                      "support_culture_timestamp": person["when"].strftime("%Y-%m-%d %H:%M:%S"),
                      "site": "A", "wave": "2025", "support_culture_complete": "2"}
            values |= {k: ("" if person[k] is None else person[k])
                       for k in fields if k not in values and k != "record_id"}
            writer.writerow([values[h] for h in header])
    return path


def test_redcap_raw_export_round_trips(instrument, definition_yaml, store_path, tmp_path):
    people = synthetic_answers(instrument, 40, seed=6)
    path = write_redcap_export(tmp_path / "redcap.csv", instrument, people)
    report = run_import(store_path, path, instrument, definition_yaml, "redcap")
    assert report.ingest.rows_read == 40
    accepted = report.ingest.rows_accepted
    # Random blanks leave some respondents with fewer than 6 scale answers: those, and
    # only those, are rejected, and for that reason.
    too_few = [p for p in people if sum(p[i] in (1, 2, 3, 4, 5) for i in instrument.scale_item_ids) < 6]
    assert accepted == 40 - len(too_few)
    assert set(report.ingest.rejected_by_reason) <= {"too_few_answers"}
    kept = [p for p in people if p not in too_few]
    assert_round_trip(store_path, instrument, kept, lambda p: p["id"])
    assert report.dropped_columns == ["redcap_survey_identifier", "support_culture_complete"]
    assert report.unmapped_columns == []
    assert report.columns["response_id"] == "record_id"
    assert report.columns["submitted_on"] == "support_culture_timestamp"
    with duckdb.connect(str(store_path), read_only=True) as con:
        assert con.execute("select source_name from ingest_batches").fetchall() == \
            [("redcap-redcap.csv",)]


def test_redcap_label_export_round_trips(instrument, definition_yaml, store_path, tmp_path):
    """REDCap's "labels" export: headers are the field labels, answers the choice labels."""
    dictionary = [r for r in csv.DictReader(io.StringIO(redcap_dictionary_csv(instrument)))
                  if r["Field Type"] != "descriptive"]
    people = synthetic_answers(instrument, 8, seed=16)
    for person in people:
        for ident in instrument.scale_item_ids[:6]:
            person[ident] = 5
    header = ["Record ID", "Survey Identifier", "Survey Timestamp",
              *(r["Field Label"] for r in dictionary[1:]), "Complete?"]
    path = tmp_path / "labels.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for person in people:
            row = [person["id"], "", person["when"].strftime("%Y-%m-%d %H:%M"), "A", "2025"]
            for field in dictionary[3:]:
                choices = dict(part.split(", ", 1) for part in
                               field["Choices, Calculations, OR Slider Labels"].split(" | "))
                code = person[field["Variable / Field Name"]]
                row.append("" if code is None else choices[str(code)])
            writer.writerow([*row, "Complete"])
    report = run_import(store_path, path, instrument, definition_yaml, "redcap")
    assert report.ingest.rows_accepted == 8
    assert report.dropped_columns == ["Survey Identifier", "Complete?"]
    assert report.columns["wave"] == "Survey year"
    assert_round_trip(store_path, instrument, people, lambda p: p["id"])


def test_same_export_twice_is_a_no_op(instrument, definition_yaml, store_path, tmp_path):
    people = synthetic_answers(instrument, 5, seed=1)
    path = write_redcap_export(tmp_path / "again.csv", instrument, people)
    first = run_import(store_path, path, instrument, definition_yaml, "redcap")
    second = run_import(store_path, path, instrument, definition_yaml, "redcap")
    assert first.ingest.batch_id is not None and not first.ingest.already_ingested
    assert second.ingest.already_ingested
    assert second.ingest.previous_batch[0] == first.ingest.batch_id
    assert second.ingest.source == str(path)


def test_redcap_unfinished_survey_has_no_date(instrument, definition_yaml, store_path, tmp_path):
    people = synthetic_answers(instrument, 2, seed=2)
    for person in people:
        for ident in instrument.scale_item_ids:
            person[ident] = 4
    path = write_redcap_export(tmp_path / "r.csv", instrument, people)
    text = path.read_text(encoding="utf-8").replace(
        people[1]["when"].strftime("%Y-%m-%d %H:%M:%S"), "[not completed]")
    path.write_text(text, encoding="utf-8")
    run_import(store_path, path, instrument, definition_yaml, "redcap")
    rows = stored(store_path, instrument)
    assert rows["1"]["submitted_on"] == people[0]["when"].date()
    assert rows["2"]["submitted_on"] is None


# --- Qualtrics -------------------------------------------------------------------------

def xlsform_labels(instrument, tmp_path) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """(name -> question label, list name -> {code: label}) read back from our XLSForm."""
    path = export_instrument(instrument, "xlsform", tmp_path / "form.xlsx")
    book = load_workbook(path)
    survey = list(book["survey"].iter_rows(values_only=True))
    head = survey[0]
    questions = {row[head.index("name")]: row[head.index("label")] for row in survey[1:]
                 if str(row[0]).startswith("select_one")}
    lists: dict[str, dict[str, str]] = {}
    for list_name, name, label in list(book["choices"].iter_rows(values_only=True))[1:]:
        lists.setdefault(list_name, {})[str(name)] = label
    return questions, lists


QUALTRICS_META = ["StartDate", "EndDate", "Status", "IPAddress", "Progress",
                  "Duration (in seconds)", "Finished", "RecordedDate", "ResponseId",
                  "RecipientLastName", "RecipientFirstName", "RecipientEmail",
                  "ExternalReference", "LocationLatitude", "LocationLongitude",
                  "DistributionChannel", "UserLanguage"]


def write_qualtrics_export(path: Path, instrument, people, tmp_path, question_text: bool = True,
                           override: dict | None = None) -> tuple[Path, list[str]]:
    """A Qualtrics CSV: export tags, then question text, then ImportId rows; answers as labels."""
    questions, _ = xlsform_labels(instrument, tmp_path)
    idents = [*instrument.item_ids, *(a.id for a in instrument.attributes)]
    tags = [f"Q{n}" for n in range(1, len(idents) + 1)]
    qids = [f"QID{n}" for n in range(1, len(idents) + 1)]
    texts = []
    for ident in idents:
        # Matrix statements come prefixed by the matrix question, which may span lines.
        prefix = "How far do you agree?\nWhere you work - " if ident in instrument.item_ids else ""
        texts.append(prefix + questions[ident])
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*QUALTRICS_META, *tags, "Q99_TEXT"])
        writer.writerow([*QUALTRICS_META, *(texts if question_text else tags),
                         "Anything else you would like to tell us?"])
        writer.writerow([json.dumps({"ImportId": m}) for m in QUALTRICS_META]
                        + [json.dumps({"ImportId": q}) for q in qids]
                        + [json.dumps({"ImportId": "QID99_TEXT"})])
        for number, person in enumerate(people):
            start = person["when"] - timedelta(seconds=person["took"])
            meta = [start.isoformat(sep=" "), person["when"].isoformat(sep=" "), "IP Address",
                    "203.0.113.7", "100", str(person["took"]), "True",
                    person["when"].isoformat(sep=" "), f"R_{person['id']}", NAMES[number % 2],
                    "", EMAILS[number % 2], "", "51.5", "-0.1", "anonymous", "EN-GB"]
            answers = []
            for ident in idents:
                label = label_of(instrument, ident, person[ident])
                label = (override or {}).get((person["id"], ident), label)
                # Tools change case and spacing; ingest ignores both.
                answers.append(label.upper() if number % 3 == 0 else label)
            writer.writerow([*meta, *answers, FREE_TEXT])
    return path, qids[:len(instrument.item_ids)]


def test_qualtrics_label_export_round_trips(instrument, definition_yaml, store_path, tmp_path):
    people = synthetic_answers(instrument, 24, seed=7)
    for person in people:   # enough answers that no row is rejected for being thin
        for ident in instrument.scale_item_ids[:8]:
            person[ident] = 2
    path, _ = write_qualtrics_export(tmp_path / "qualtrics.csv", instrument, people, tmp_path)
    report = run_import(store_path, path, instrument, definition_yaml, "qualtrics",
                        site="C", wave=2024)
    assert (report.ingest.rows_read, report.ingest.rows_accepted) == (24, 24)
    assert_round_trip(store_path, instrument, people, lambda p: f"R_{p['id']}")
    rows = stored(store_path, instrument)
    assert {(r["site_code"], r["wave"]) for r in rows.values()} == {("C", 2024)}
    assert [rows[f"R_{p['id']}"]["duration_seconds"] for p in people] == [p["took"] for p in people]
    assert "RecipientEmail" in report.dropped_columns and "IPAddress" in report.dropped_columns
    assert report.unmapped_columns == ["Q99_TEXT"]
    assert report.columns["hs01"] == "Q1"


def test_qualtrics_previews_tests_and_spam_are_skipped_and_counted(instrument, definition_yaml,
                                                                   store_path, tmp_path):
    people = synthetic_answers(instrument, 6, seed=11)
    for person in people:
        for ident in instrument.scale_item_ids[:8]:
            person[ident] = 3
    path, _ = write_qualtrics_export(tmp_path / "q.csv", instrument, people, tmp_path)
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    status = rows[0].index("Status")
    # Data rows start after the header, question-text and ImportId rows; the survey team's
    # preview (label export), a test (numeric export) and a spam response.
    for person, value in ((1, "Survey Preview"), (2, "2"), (4, "spam")):
        rows[3 + person][status] = value
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        csv.writer(handle).writerows(rows)
    report = run_import(store_path, path, instrument, definition_yaml, "qualtrics", site="A",
                        wave=2025)
    assert (report.ingest.rows_read, report.ingest.rows_accepted) == (3, 3)
    assert set(stored(store_path, instrument)) == {f"R_{p['id']}" for n, p in enumerate(people)
                                                   if n not in (1, 2, 4)}
    assert sorted(report.notes) == sorted(
        f"1 row(s) with Status '{kind}' skipped: Qualtrics marks them as previews, tests or "
        f"spam, not staff's answers" for kind in ("Survey Preview", "Survey Test", "Spam"))


def test_qualtrics_ids_mapped_by_a_column_map(instrument, definition_yaml, store_path, tmp_path):
    people = synthetic_answers(instrument, 6, seed=8)
    for person in people:
        for ident in instrument.scale_item_ids:
            person[ident] = 5
    path, qids = write_qualtrics_export(tmp_path / "q.csv", instrument, people, tmp_path,
                                        question_text=False)
    with pytest.raises(IngestError, match="no column matches a question.*--map FILE"):
        run_import(store_path, path, instrument, definition_yaml, "qualtrics", site="A", wave=2025)
    mapping = tmp_path / "map.csv"
    mapping.write_text("column,field\n" + "".join(
        f"{qid},{ident}\n" for qid, ident in zip(qids, instrument.item_ids)), encoding="utf-8")
    report = run_import(store_path, path, instrument, definition_yaml, "qualtrics", site="A",
                        wave=2025, column_map=load_column_map(mapping))
    assert report.ingest.rows_accepted == 6
    # Attributes were not in the map and their headers were not question text.
    assert set(report.unmapped_columns) == {f"Q{n}" for n in range(48, 54)} | {"Q99_TEXT"}
    assert {r["hs01"] for r in stored(store_path, instrument).values()} == {5}


def test_unknown_answer_text_is_quarantined_and_the_rest_stored(instrument, definition_yaml,
                                                               store_path, tmp_path):
    people = synthetic_answers(instrument, 3, seed=9)
    for person in people:
        for ident in instrument.scale_item_ids:
            person[ident] = 4
    # Respondent 2 answered hs03 on a scale the instrument does not have.
    path, _ = write_qualtrics_export(tmp_path / "q.csv", instrument, people, tmp_path,
                                     override={("2", "hs03"): "Somewhat agree"})
    report = run_import(store_path, path, instrument, definition_yaml, "qualtrics", site="A",
                        wave=2025)
    assert (report.ingest.rows_accepted, report.ingest.rows_rejected) == (2, 1)
    assert report.ingest.rejected_by_reason == {"unknown_label": 1}
    assert quarantined(store_path) == [("R_2", "hs03", "Somewhat agree", "unknown_label")]
    assert set(stored(store_path, instrument)) == {"R_1", "R_3"}


def test_kobo_export_named_by_the_xlsform_round_trips(instrument, definition_yaml, store_path,
                                                     tmp_path):
    """KoboToolbox's CSV: ';'-separated, XLSForm names with their group path, codes as values."""
    path = export_instrument(instrument, "xlsform", tmp_path / "form.xlsx", ("A", "C"))
    survey = list(load_workbook(path)["survey"].iter_rows(values_only=True))
    group, columns = [], []
    for kind, name, *_ in survey[1:]:
        if kind == "begin_group":
            group.append(name)
        elif kind == "end_group":
            group.pop()
        elif kind != "note":
            columns.append("/".join([*group, name]))
    assert "stigma/hs01" in columns and "about_you/pmq" in columns
    people = synthetic_answers(instrument, 10, seed=15)
    for person in people:
        for ident in instrument.scale_item_ids[:6]:
            person[ident] = 1
    header = ["start", "end", *columns, "_id", "_uuid", "_submission_time", "_submitted_by"]
    export = tmp_path / "kobo.csv"
    with export.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(header)
        for person in people:
            values = {"submitted_on": person["when"].date().isoformat(), "site": "C",
                      "wave": "2024", "_id": person["id"], "_uuid": f"uuid-{person['id']}",
                      "start": person["when"].isoformat(), "end": person["when"].isoformat(),
                      "_submission_time": person["when"].isoformat(), "_submitted_by": NAMES[0]}
            values |= {k: ("" if v is None else str(v)) for k, v in person.items()
                       if k in instrument.item_ids or k in {a.id for a in instrument.attributes}}
            writer.writerow([values[h.rsplit("/", 1)[-1]] for h in header])
    report = run_import(store_path, export, instrument, definition_yaml, "forms")
    assert report.ingest.rows_accepted == 10
    assert_round_trip(store_path, instrument, people, lambda p: p["id"])
    assert {(r["site_code"], r["wave"]) for r in stored(store_path, instrument).values()} == \
        {("C", 2024)}
    assert report.unmapped_columns == ["start", "end", "_uuid", "_submission_time",
                                       "_submitted_by"]
    assert_nothing_identifying_stored(store_path)


# --- Microsoft Forms -------------------------------------------------------------------

def forms_rows(instrument, people, tmp_path, moment) -> list[list]:
    questions, _ = xlsform_labels(instrument, tmp_path)
    idents = [*instrument.item_ids, *(a.id for a in instrument.attributes)]
    rows = [["ID", "Start time", "Completion time", "Email", "Name",
             *(questions[i] for i in idents), "Any other comments?"]]
    for number, person in enumerate(people):
        start = person["when"] - timedelta(seconds=person["took"])
        rows.append([int(person["id"]), moment(start), moment(person["when"]),
                     EMAILS[number % 2], NAMES[number % 2],
                     *(label_of(instrument, i, person[i]) for i in idents), FREE_TEXT])
    return rows


def _forms_people(instrument, n, seed):
    people = synthetic_answers(instrument, n, seed)
    for person in people:
        for ident in instrument.scale_item_ids[-6:]:
            person[ident] = 3
    return people


def assert_nothing_identifying_stored(store_path):
    """Search every text cell of every table for the e-mails, names and free text."""
    with duckdb.connect(str(store_path), read_only=True) as con:
        tables = [r[0] for r in con.execute("select table_name from information_schema.tables "
                                            "where table_schema = 'main'").fetchall()]
        assert "responses" in tables and "quarantine" in tables
        for table in tables:
            columns = [r[0] for r in con.execute(
                "select column_name from information_schema.columns where table_name = ?",
                [table]).fetchall()]
            assert not {"email", "start_time", "completion_time"} & {c.lower() for c in columns}
            if table != "sites":   # a site's name is the organisation's, not a person's
                assert "name" not in {c.lower() for c in columns}
            dump = " ".join(str(v) for row in con.execute(f'select * from "{table}"').fetchall()
                            for v in row)
            for secret in (*EMAILS, *NAMES, FREE_TEXT, "203.0.113.7"):
                assert secret not in dump, (table, secret)


def test_microsoft_forms_xlsx_round_trips_without_email_or_name(instrument, definition_yaml,
                                                                 store_path, tmp_path):
    people = _forms_people(instrument, 20, seed=10)
    book = Workbook()
    for row in forms_rows(instrument, people, tmp_path, lambda t: t):   # real Excel datetimes
        book.active.append(row)
    path = tmp_path / "Staff survey(1-20).xlsx"
    book.save(path)
    report = run_import(store_path, path, instrument, definition_yaml, "forms", site="A",
                        wave=2025)
    assert (report.ingest.rows_read, report.ingest.rows_accepted) == (20, 20)
    assert_round_trip(store_path, instrument, people, lambda p: p["id"])
    rows = stored(store_path, instrument)
    assert [rows[p["id"]]["duration_seconds"] for p in people] == [p["took"] for p in people]
    assert report.dropped_columns == ["Email", "Name"]
    assert report.unmapped_columns == ["Any other comments?"]
    assert_nothing_identifying_stored(store_path)


def test_normalised_file_holds_only_our_columns_and_days(instrument, tmp_path):
    """What reaches ingest: our column names, dates without a time, no e-mail, name or comment."""
    people = _forms_people(instrument, 4, seed=14)
    book = Workbook()
    for row in forms_rows(instrument, people, tmp_path, lambda t: t):
        book.active.append(row)
    book.save(tmp_path / "forms.xlsx")
    out = tmp_path / "normalised.csv"
    normalise_export(tmp_path / "forms.xlsx", instrument, "forms", out)
    rows = list(csv.reader(out.open(encoding="utf-8")))
    assert rows[0] == ["response_id", "submitted_on", "duration_seconds",
                       *(a.id for a in instrument.attributes), *instrument.item_ids]
    assert [r[:3] for r in rows[1:]] == [[p["id"], p["when"].date().isoformat(), str(p["took"])]
                                         for p in people]
    text = out.read_text(encoding="utf-8")
    for secret in (*EMAILS, *NAMES, FREE_TEXT, ":"):   # ':' would mean a time of day
        assert secret not in text


@pytest.mark.parametrize("fmt, order", [("%m/%d/%Y %I:%M:%S %p", "month/day/year"),
                                        ("%d/%m/%Y %H:%M", "day/month/year")])
def test_microsoft_forms_csv_dates_in_either_order(instrument, definition_yaml, store_path,
                                                   tmp_path, fmt, order):
    people = _forms_people(instrument, 12, seed=11)
    for number, person in enumerate(people):   # 10 to 21 March: days above 12 settle the order
        person["when"] = datetime(2025, 3, 10 + number, 9 + number, 30, 15)
    path = tmp_path / "forms.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        csv.writer(handle).writerows(forms_rows(instrument, people, tmp_path,
                                                lambda t: t.strftime(fmt)))
    report = run_import(store_path, path, instrument, definition_yaml, "forms", site="A",
                        wave=2025)
    assert report.notes == [f"dates read as {order}"]
    assert report.ingest.rows_accepted == 12
    assert_round_trip(store_path, instrument, people, lambda p: p["id"])
    rows = stored(store_path, instrument)
    if "%M" in fmt and "%S" not in fmt:   # minutes only: seconds are lost, both ends alike
        assert all(abs(rows[p["id"]]["duration_seconds"] - p["took"]) <= 60 for p in people)
    else:
        assert [rows[p["id"]]["duration_seconds"] for p in people] == [p["took"] for p in people]
    assert_nothing_identifying_stored(store_path)


# --- matching rules and errors ---------------------------------------------------------

@pytest.mark.parametrize("text, order, expected", [
    ("2026-11-23", "dmy", datetime(2026, 11, 23)),
    ("2026-11-23T14:05:09.123Z", "dmy", datetime(2026, 11, 23, 14, 5, 9)),
    ("23/11/2026 14:05", "dmy", datetime(2026, 11, 23, 14, 5)),
    ("11/23/2026 2:05:09 PM", "mdy", datetime(2026, 11, 23, 14, 5, 9)),
    ("11/23/26 12:05:00 AM", "mdy", datetime(2026, 11, 23, 0, 5)),
    ("03/04/2026", "dmy", datetime(2026, 4, 3)),
    ("31/02/2026", "dmy", None),
    ("next Tuesday", "dmy", None),
])
def test_parse_moment(text, order, expected):
    assert parse_moment(text, order) == expected


@pytest.mark.parametrize("values, expected", [
    (["23/11/2026", "01/02/2026"], "dmy"), (["11/23/2026", "01/02/2026"], "mdy"),
    (["01/02/2026"], "dmy"), (["2026-11-23"], "dmy"),
])
def test_slash_order(values, expected):
    assert slash_order(values) == expected


def test_unreadable_date_is_left_for_ingest_to_quarantine(instrument, definition_yaml,
                                                          store_path, tmp_path):
    people = _forms_people(instrument, 2, seed=12)
    rows = forms_rows(instrument, people, tmp_path, lambda t: t.isoformat(sep=" "))
    rows[2][2] = "sometime"
    path = tmp_path / "f.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)
    report = run_import(store_path, path, instrument, definition_yaml, "forms", site="A",
                        wave=2025)
    assert report.ingest.rejected_by_reason == {"invalid_value": 1}
    assert quarantined(store_path) == [("2", "submitted_on", "sometime", "invalid_value")]


def test_errors_name_the_file_and_what_is_accepted(instrument, definition_yaml, store_path,
                                                  tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("ID,Colour\n1,blue\n", encoding="utf-8")
    with pytest.raises(IngestError, match=r"other.csv: no column matches a question of "
                                          r"support-culture@1.0.*--from forms"):
        run_import(store_path, path, instrument, definition_yaml, "forms")
    with pytest.raises(IngestError, match="--from 'spss' is not known"):
        run_import(store_path, path, instrument, definition_yaml, "spss")
    bad_map = tmp_path / "map.csv"
    bad_map.write_text("column,field\nQ1,hs99\n", encoding="utf-8")
    with pytest.raises(IngestError, match="'hs99', which is not a column of"):
        run_import(store_path, path, instrument, definition_yaml, "forms",
                   column_map=load_column_map(bad_map))
    no_id = tmp_path / "no-id.csv"
    no_id.write_text("hs01,hs02\n4,4\n", encoding="utf-8")
    with pytest.raises(IngestError, match=r"no response id column found \(expected ID\)"):
        run_import(store_path, no_id, instrument, definition_yaml, "forms")
    # Nothing was written by any of the failures.
    with duckdb.connect(str(store_path), read_only=True) as con:
        assert con.execute("select count(*) from ingest_batches").fetchone() == (0,)


def test_cli_ingest_from_forms(instrument, store_path, tmp_path):
    people = _forms_people(instrument, 3, seed=13)
    path = tmp_path / "forms.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(forms_rows(instrument, people, tmp_path,
                                                lambda t: t.isoformat(sep=" ")))
    command = ["ingest", path, "--from", "forms", "--site", "A", "--wave", "2025",
               "--db", store_path]
    result = culture(*command)
    assert result.exit_code == 0, result.stderr
    assert "read as a forms export" in result.stdout
    assert "identifying or tool columns, not stored: Email, Name" in result.stdout
    assert "columns matching no question, not stored: Any other comments?" in result.stdout
    assert "3 accepted" in result.stdout
    bad = culture(*command[:3], "qualtrix", *command[4:])
    assert bad.exit_code == 1
    assert bad.stderr == ("error: --from 'qualtrix' is not known; use one of culture, redcap, "
                          "forms, qualtrics\n")


def test_cli_run_from_qualtrics_ingests_through_the_adapter_and_publishes(
        instrument, store_path, tmp_path):
    people = synthetic_answers(instrument, 12, seed=14)
    for person in people:
        for ident in instrument.scale_item_ids:
            person[ident] = 4
    path, _ = write_qualtrics_export(tmp_path / "qualtrics.csv", instrument, people, tmp_path)
    command = ["run", path, "--from", "qualtrics", "--site", "A", "--wave", "2025",
               "--db", store_path, "--reports", tmp_path / "reports"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = culture(*command)
    assert result.exit_code == 0, result.stderr
    # What a shell would have shown: numpy's and pandas' warnings, not deprecations.
    assert [str(w.message) for w in caught if not issubclass(
        w.category, (DeprecationWarning, PendingDeprecationWarning, ImportWarning,
                     ResourceWarning))] == []
    assert "read as a qualtrics export" in result.stdout
    assert "12 accepted" in result.stdout
    # Every scale answer is the same: no variance, so no reliability, said as much.
    assert "stigma             alpha n/a (n/a-n/a), omega not estimable" in result.stdout
    assert "no funnel plots: comparing sites needs at least two with 10 or more" in result.stdout
    status = culture("status", "--db", store_path)
    assert "12 responses from 1 of the 2 sites in the store" in status.stdout
    assert len(stored(store_path, instrument)) == 12
    published = store_path.with_name(store_path.stem + ".published.duckdb")
    with duckdb.connect(str(published), read_only=True) as con:
        # 12 answers at one site: the site's overall cells are published (k = 10).
        assert con.execute("select max(n) from cells where level = 'site' and unit = 'A' and wave = 2025"
                           ).fetchone() == (12,)
    with_map_only = culture(*command[:2], "--map", path, *command[4:])
    assert with_map_only.exit_code == 1
    assert with_map_only.stderr.startswith("error: --map is for other tools' exports")
