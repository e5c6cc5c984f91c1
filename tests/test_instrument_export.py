"""Instrument exports read back as the other tools would: REDCap, XLSForm, CSV template, HTML, PDF."""

from __future__ import annotations

import csv
import html
import io
import re
import shutil
import subprocess
from datetime import date
from pathlib import Path

import pytest
from openpyxl import load_workbook

from pipeline.store import open_store
from pipeline.ingest.files import ingest_file
from survey.errors import CultureError
from survey.instrument_export import (REDCAP_COLUMNS, export_instrument, parse_site_codes,
                                      redcap_dictionary_csv, template_header)
from survey.printable import PAPER_ANONYMITY, printable_html
from tests.conftest import culture, full_answers


def parse_redcap_choices(text: str) -> list[tuple[str, str]]:
    """REDCap's 'code, label | code, label' as REDCap itself splits it (first comma only)."""
    pairs = []
    for part in text.split(" | "):
        code, label = part.split(",", 1)
        pairs.append((code.strip(), label.strip()))
    return pairs


def expected_choices(instrument, item) -> list[tuple[str, str]]:
    rs = instrument.response_scale(item.response_scale)
    return [(str(o.code), o.label) for o in (*rs.options, *rs.missing)]


@pytest.fixture(scope="module")
def dictionary(instrument) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(redcap_dictionary_csv(instrument, ("A", "C"))))
    return list(reader.fieldnames), list(reader)


# --- REDCap ----------------------------------------------------------------------------

def test_redcap_dictionary_has_exactly_the_18_columns_in_order(dictionary):
    header, _ = dictionary
    assert len(header) == 18
    assert header == list(REDCAP_COLUMNS)
    assert header[0] == "Variable / Field Name" and header[-1] == "Field Annotation"


def test_redcap_fields_come_in_order_record_id_first(instrument, dictionary):
    _, rows = dictionary
    names = [r["Variable / Field Name"] for r in rows]
    assert names[:4] == ["record_id", "intro", "site", "wave"]
    assert names[4:4 + len(instrument.items)] == list(instrument.item_ids)
    assert names[4 + len(instrument.items):] == [a.id for a in instrument.attributes]
    assert len(names) == len(set(names)) == 4 + len(instrument.items) + len(instrument.attributes)
    # REDCap accepts lower-case letters, digits and underscores, starting with a letter.
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", n) and len(n) <= 26 for n in names)
    assert {r["Form Name"] for r in rows} == {"support_culture"}


def test_redcap_items_are_radios_with_the_instruments_codes_and_labels(instrument, dictionary):
    _, rows = dictionary
    by_name = {r["Variable / Field Name"]: r for r in rows}
    for item in instrument.items:
        row = by_name[item.id]
        assert row["Field Type"] == "radio"
        assert row["Field Label"] == item.text
        assert parse_redcap_choices(row["Choices, Calculations, OR Slider Labels"]) == \
            expected_choices(instrument, item)
        assert row["Required Field?"] == ""        # every question is optional
    assert by_name["hs01"]["Choices, Calculations, OR Slider Labels"] == (
        "1, Strongly disagree | 2, Disagree | 3, Neither agree nor disagree | 4, Agree | "
        "5, Strongly agree | 9, Don't know / prefer not to say")
    assert by_name["oc_used"]["Choices, Calculations, OR Slider Labels"] == \
        "1, No | 2, Yes | 9, Prefer not to say"


def test_redcap_site_wave_and_attributes(instrument, dictionary):
    _, rows = dictionary
    by_name = {r["Variable / Field Name"]: r for r in rows}
    assert by_name["record_id"]["Field Type"] == "text"
    assert by_name["intro"]["Field Type"] == "descriptive"
    assert by_name["intro"]["Field Label"] == instrument.introduction
    # Codes alone are shown as themselves; names are tested in test_tool_exports.
    assert (by_name["site"]["Field Type"], by_name["site"]["Choices, Calculations, OR Slider Labels"],
            by_name["site"]["Required Field?"]) == ("dropdown", "A, A | C, C", "y")
    wave = by_name["wave"]
    # The project sets the year (this year by default), hidden from the respondent.
    assert (wave["Field Type"], wave["Text Validation Type OR Show Slider Number"],
            wave["Text Validation Min"], wave["Text Validation Max"]) == ("text", "integer",
                                                                          "2000", "2100")
    assert re.fullmatch(r"@DEFAULT='20\d\d' @HIDDEN @READONLY", wave["Field Annotation"])
    for attribute in instrument.attributes:
        row = by_name[attribute.id]
        assert row["Field Type"] == "dropdown"
        assert row["Field Label"] == attribute.question
        assert row["Required Field?"] == ""
        choices = parse_redcap_choices(row["Choices, Calculations, OR Slider Labels"])
        assert choices == [(o.code, o.label) for o in attribute.options]
        assert ("prefer_not_to_say", "Prefer not to say") in choices
    # Nothing is flagged as an identifier: the survey collects none.
    assert {r["Identifier?"] for r in rows} == {""}


def test_redcap_without_sites_asks_for_a_typed_site_code(instrument):
    rows = list(csv.DictReader(io.StringIO(redcap_dictionary_csv(instrument))))
    site = next(r for r in rows if r["Variable / Field Name"] == "site")
    assert (site["Field Type"], site["Choices, Calculations, OR Slider Labels"]) == ("text", "")


def test_redcap_sections_and_matrix_groups_follow_the_scales(instrument, dictionary):
    _, rows = dictionary
    headers = [(r["Variable / Field Name"], r["Section Header"]) for r in rows if r["Section Header"]]
    expected = [("intro", instrument.title)]
    # Neutral headings: a construct's name is never shown to respondents.
    expected += [(instrument.items_of(s.id)[0].id, f"Questions, part {n} of 9")
                 for n, s in enumerate(instrument.scales, start=1)]
    expected += [("oc_intend", "Questions, part 9 of 9"), ("staff_group", "About you (optional)")]
    assert headers == expected
    groups: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        if row["Matrix Group Name"]:
            groups.setdefault(row["Matrix Group Name"], []).append(index)
    assert set(groups) == {s.id for s in instrument.scales}
    for scale in instrument.scales:
        positions = groups[scale.id]
        # REDCap needs a matrix's fields consecutive and with identical choices.
        assert positions == list(range(positions[0], positions[0] + len(positions)))
        assert [rows[i]["Variable / Field Name"] for i in positions] == \
            [i.id for i in instrument.items_of(scale.id)]
        assert len({rows[i]["Choices, Calculations, OR Slider Labels"] for i in positions}) == 1


# --- XLSForm ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def xlsform(instrument, tmp_path_factory):
    path = tmp_path_factory.mktemp("xlsform") / "form.xlsx"
    export_instrument(instrument, "xlsform", path, ("A", "C"))
    book = load_workbook(path)
    sheets = {}
    for name in book.sheetnames:
        rows = [[("" if v is None else str(v)) for v in row]
                for row in book[name].iter_rows(values_only=True)]
        sheets[name] = [dict(zip(rows[0], row)) for row in rows[1:]]
    return book.sheetnames, sheets


def test_xlsform_has_survey_choices_and_settings_sheets(xlsform, instrument):
    names, sheets = xlsform
    assert names == ["survey", "choices", "settings"]
    assert sheets["settings"] == [{"form_title": instrument.title, "form_id": "support_culture",
                                   "version": "1.0", "default_language": "en-GB"}]


def test_xlsform_questions_types_and_groups(xlsform, instrument):
    _, sheets = xlsform
    survey = sheets["survey"]
    by_name = {r["name"]: r for r in survey if r["type"] not in ("begin_group", "end_group")}
    for item in instrument.items:
        row = by_name[item.id]
        assert row["type"] == f"select_one {item.response_scale}"
        assert row["label"] == item.text
        assert row["required"] == ""
    for attribute in instrument.attributes:
        assert by_name[attribute.id]["type"] == f"select_one {attribute.id}"
        assert by_name[attribute.id]["label"] == attribute.question
    assert (by_name["site"]["type"], by_name["site"]["required"]) == ("select_one sites", "yes")
    assert by_name["wave"]["type"] == "calculate"       # set by the project, not asked
    assert by_name["submitted_on"]["type"] == "today"     # the day only, never a time
    # Groups are balanced and each scale's items sit inside its own group.
    stack, group_of = [], {}
    for row in survey:
        if row["type"] == "begin_group":
            stack.append(row["name"])
        elif row["type"] == "end_group":
            assert stack and stack.pop() == row["name"]
        elif row["name"]:
            group_of[row["name"]] = stack[-1] if stack else None
    assert stack == []
    for item in instrument.items:
        assert group_of[item.id] == (item.scale or "outcomes")
    assert sum(r["type"] == "begin_group" for r in survey) == len(instrument.scales) + 2
    assert len(by_name) == len(set(by_name))


def test_xlsform_choice_lists_are_the_instruments_codes(xlsform, instrument):
    _, sheets = xlsform
    lists: dict[str, list[tuple[str, str]]] = {}
    for row in sheets["choices"]:
        lists.setdefault(row["list_name"], []).append((row["name"], row["label"]))
    assert lists["agree5"] == expected_choices(instrument, instrument.items[0])
    assert lists["yesno"] == [("1", "No"), ("2", "Yes"), ("9", "Prefer not to say")]
    assert lists["sites"] == [("A", "A"), ("C", "C")]
    for attribute in instrument.attributes:
        assert lists[attribute.id] == [(o.code, o.label) for o in attribute.options]
    # Every select_one points at a list that exists.
    used = {r["type"].split()[1] for r in sheets["survey"] if r["type"].startswith("select_one")}
    assert used == set(lists)


def test_xlsform_converts_to_an_xform_with_pyxform(instrument, tmp_path):
    """pyxform is what KoboToolbox and ODK Central run on upload: it must accept the form."""
    import xml.etree.ElementTree as ET

    from pyxform.xls2xform import convert

    path = export_instrument(instrument, "xlsform", tmp_path / "form.xlsx", ("A", "C"))
    warnings: list[str] = []
    result = convert(xlsform=str(path), warnings=warnings)
    assert warnings == []
    root = ET.fromstring(result.xform)
    ns = {"h": "http://www.w3.org/1999/xhtml", "x": "http://www.w3.org/2002/xforms"}
    assert root.find("h:head/h:title", ns).text == instrument.title
    binds = {b.get("nodeset").rsplit("/", 1)[-1]: b for b in root.iter(f"{{{ns['x']}}}bind")}
    for item in instrument.items:
        assert binds[item.id].get("type") == "string"    # select_one is stored as its code
        assert binds[item.id].get("required") is None
    assert binds["site"].get("required") == "true()"
    assert binds["wave"].get("calculate").isdigit()     # the year, set by the project
    assert binds["submitted_on"].get("type") == "date"
    # Every item's answers are the instrument's codes, "don't know" included.
    hs01 = next(e for e in root.iter() if e.tag.endswith("select1") and e.get("ref", "").endswith("/hs01"))
    itemset = hs01.find("x:itemset", ns)
    assert itemset is not None and "agree5" in itemset.get("nodeset")
    instance = next(i for i in root.iter(f"{{{ns['x']}}}instance") if i.get("id") == "agree5")
    assert [n.text for n in instance.iter(f"{{{ns['x']}}}name")] == ["1", "2", "3", "4", "5", "9"]


# --- CSV template ----------------------------------------------------------------------

def test_csv_template_header_is_accepted_by_ingest(instrument, definition_yaml, store_path,
                                                   tmp_path):
    path = export_instrument(instrument, "csv", tmp_path / "template.csv")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1   # header only: no example row to ingest by mistake
    header = lines[0].split(",")
    assert header == template_header(instrument)
    assert header[:5] == ["response_id", "site", "wave", "submitted_on", "duration_seconds"]
    assert len(header) == 5 + len(instrument.attributes) + len(instrument.items)
    # Filled in as a person would, the template ingests with every column recognised.
    row = {"response_id": "p1", "site": "A", "wave": "2025", "submitted_on": "2025-03-02",
           "duration_seconds": "300", "staff_group": "Consultant"} | full_answers(instrument)
    with path.open("a", encoding="utf-8", newline="") as handle:
        csv.DictWriter(handle, fieldnames=header, lineterminator="\n").writerow(row)
    with open_store(store_path) as con:
        report = ingest_file(con, path, instrument, definition_yaml)
    assert (report.rows_accepted, report.rows_rejected) == (1, 0)
    assert report.ignored_columns == [] and report.missing_item_columns == []


# --- printable HTML and PDF ---------------------------------------------------------------

def test_printable_html_has_every_item_and_explains_anonymity(instrument):
    page = printable_html(instrument)
    for item in instrument.items:
        assert html.escape(item.text, quote=True) in page
    for attribute in instrument.attributes:
        assert html.escape(attribute.question, quote=True) + ' <span class="optional">(optional)' in page
    assert html.escape(PAPER_ANONYMITY, quote=True) in page
    assert html.escape(instrument.introduction, quote=True) in page
    assert '<html lang="en-GB">' in page
    assert page.count("<section ") == len(instrument.scales) + 2
    # One tick box per answer of every question and attribute.
    boxes = sum(len(expected_choices(instrument, i)) for i in instrument.items)
    boxes += sum(len(a.options) for a in instrument.attributes)
    assert page.count('class="box"') == boxes
    # Self-contained: no scripts, stylesheets or images fetched from anywhere.
    assert not re.search(r"<script|<link|<img|https?://", page)


def _pgm_pages(pdf: Path, out_dir: Path) -> list[tuple[int, int, bytes]]:
    """Render with pdftoppm as 8-bit greyscale PGM; return (width, height, pixels) per page."""
    subprocess.run(["pdftoppm", "-r", "50", "-gray", str(pdf), str(out_dir / "page")],
                   check=True, capture_output=True, timeout=120)
    pages = []
    for path in sorted(out_dir.glob("page-*.pgm")):
        data = path.read_bytes()
        # Binary PGM: 'P5' width height maxval, single whitespace, then one byte a pixel.
        magic, width, height, maxval, pixels = re.match(
            rb"(P5)\s+(\d+)\s+(\d+)\s+(\d+)\s(.*)", data, re.S).groups()
        assert int(maxval) == 255
        pages.append((int(width), int(height), pixels))
    return pages


@pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("pdftoppm")),
                    reason="needs chromium and pdftoppm (poppler-utils), as CI installs them")
def test_pdf_renders_pages_that_are_not_blank(instrument, tmp_path):
    pdf = export_instrument(instrument, "pdf", tmp_path / "questionnaire.pdf")
    assert pdf.read_bytes()[:5] == b"%PDF-"
    pages = _pgm_pages(pdf, tmp_path)
    # 47 questions and 6 attributes on A4: a handful of pages, not one squeezed or 40 loose.
    assert 3 <= len(pages) <= 10
    for width, height, pixels in pages:
        # A4 at 50 dpi is 413 x 585 pixels.
        assert (abs(width - 413) <= 2, abs(height - 585) <= 2) == (True, True)
        assert len(pixels) == width * height
        ink = sum(1 for value in pixels if value < 200) / len(pixels)
        assert ink > 0.005, f"a page is almost blank ({ink:.4f} of pixels inked)"


def test_pdf_without_chromium_is_a_clear_error(instrument, tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(CultureError, match="needs Chromium.*--format html"):
        export_instrument(instrument, "pdf", tmp_path / "q.pdf")
    assert not (tmp_path / "q.pdf").exists()


# --- errors and the command line -----------------------------------------------------------

@pytest.mark.parametrize("fmt, out, message", [
    ("word", "q.docx", "--format 'word' is not known; use one of redcap, xlsform, html, pdf, csv"),
    ("redcap", "missing/dictionary.csv", "does not exist"),
])
def test_export_errors_say_what_is_accepted(instrument, tmp_path, fmt, out, message):
    with pytest.raises(CultureError, match=re.escape(message)):
        export_instrument(instrument, fmt, tmp_path / out)


@pytest.mark.parametrize("text, expected", [
    (None, ()), ("", ()), ("a, b,RX1", ("A", "B", "RX1")), ("A,A,c", ("A", "C")),
])
def test_site_codes(text, expected):
    assert parse_site_codes(text) == expected


def test_bad_site_code_is_refused():
    with pytest.raises(CultureError, match="'B C' is not a usable site code"):
        parse_site_codes("A,B C")


def test_cli_exports_and_reports_errors_without_traceback(tmp_path):
    good = culture("instrument", "export", "--format", "redcap", "--out", tmp_path / "dd.csv",
                   "--sites", "A,B", "--db", tmp_path / "none.duckdb")
    assert good.exit_code == 0, good.stderr
    assert good.stdout == (f"wrote {tmp_path / 'dd.csv'} (redcap)\nsurvey year recorded "
                           f"without asking: {date.today().year} (this year; set another "
                           f"with --wave)\n")
    # No store, so no names: the codes are shown, and the survey lead is told.
    assert "no name in" in good.stderr and "site(s) A, B" in good.stderr
    rows = list(csv.DictReader((tmp_path / "dd.csv").open(encoding="utf-8")))
    assert next(r for r in rows if r["Variable / Field Name"] == "site")[
        "Choices, Calculations, OR Slider Labels"] == "A, A | B, B"
    bad = culture("instrument", "export", "--format", "spss", "--out", tmp_path / "x")
    assert bad.exit_code == 1
    assert bad.stderr.startswith("error: --format 'spss' is not known")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("k, said", [(7, "seven"), (15, "fifteen"), (10, "ten")])
def test_every_export_promises_the_group_size_the_trust_shows(tmp_path, k, said):
    """The instruments' introduction says "at least ten"; a trust that shows groups of
    seven must not promise ten on its REDCap, XLSForm or paper form (nor ten when it
    shows only fifteen)."""
    env = {"CULTURE_MIN_GROUP_SIZE": str(k)}
    db = tmp_path / "none.duckdb"
    for fmt, name in (("redcap", "dd.csv"), ("xlsform", "form.xlsx"), ("html", "form.html")):
        done = culture("instrument", "export", "--format", fmt, "--out", tmp_path / name,
                       "--db", db, env=env)
        assert done.exit_code == 0, done.stderr
    rows = list(csv.DictReader((tmp_path / "dd.csv").open(encoding="utf-8")))
    intro = next(r for r in rows if r["Variable / Field Name"] == "intro")["Field Label"]
    sheet = load_workbook(tmp_path / "form.xlsx")["survey"]
    header = [cell.value for cell in sheet[1]]
    note = next(row for row in sheet.iter_rows(min_row=2, values_only=True)
                if row[header.index("name")] == "intro")[header.index("label")]
    page = html.unescape((tmp_path / "form.html").read_text(encoding="utf-8"))
    for text in (intro, note, page):
        assert f"groups of at least {said} people" in text
        assert said == "ten" or "at least ten" not in text
