"""Exports that fit the tools (issue 22, point 3), re-read as the tools would: sites by
name, the survey year set by the project, no construct name shown to respondents, routing
for an item asked of some groups, and a printed table that keeps its header with its rows."""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from openpyxl import load_workbook

from pipeline.store import Site, add_sites, open_store
from survey.instrument import load_instrument
from survey.instrument_export import export_instrument, redcap_dictionary_csv
from survey.printable import printable_html
from survey.questionnaire import ROUTING_SECTION
from survey.settings import DEFAULT_INSTRUMENT, INSTRUMENTS_DIR
from tests.conftest import culture

V2 = INSTRUMENTS_DIR / "support-culture-v2.yaml"
SITES = (("A", "Tamar Valley Hospitals NHS Trust"),
         ("C", "Weald and Downs Professional Support Unit"))
BOTH = pytest.mark.parametrize("path", [DEFAULT_INSTRUMENT, V2], ids=["v1", "v2"])


def redcap(instrument, sites=SITES, wave=2027) -> dict[str, dict[str, str]]:
    """The data dictionary re-read as CSV, by field name (in file order)."""
    rows = csv.DictReader(io.StringIO(redcap_dictionary_csv(instrument, sites, wave)))
    return {r["Variable / Field Name"]: r for r in rows}


def xlsform(instrument, tmp_path: Path, sites=SITES, wave=2027) -> dict[str, list[dict]]:
    """The XLSForm written to disk and re-read with openpyxl, sheet -> rows as dicts."""
    path = export_instrument(instrument, "xlsform", tmp_path / "form.xlsx", sites, wave)
    book = load_workbook(path)
    sheets = {}
    for name in book.sheetnames:
        rows = [["" if v is None else str(v) for v in row]
                for row in book[name].iter_rows(values_only=True)]
        sheets[name] = [dict(zip(rows[0], row)) for row in rows[1:]]
    return sheets


def redcap_choices(text: str) -> list[tuple[str, str]]:
    return [tuple(part.strip() for part in chunk.split(",", 1)) for chunk in text.split(" | ")]


# --- sites by name, year set by the project ------------------------------------------------

def test_redcap_offers_sites_by_name_and_sets_the_year_hidden():
    fields = redcap(load_instrument(DEFAULT_INSTRUMENT))
    site = fields["site"]
    assert site["Field Type"] == "dropdown"
    # REDCap stores the code (before the first comma) and shows the name.
    assert redcap_choices(site["Choices, Calculations, OR Slider Labels"]) == list(SITES)
    wave = fields["wave"]
    assert wave["Field Annotation"] == "@DEFAULT='2027' @HIDDEN @READONLY"
    assert wave["Required Field?"] == ""      # nothing for the respondent to do
    # The year is the only hidden field besides the record id, and nothing asks for it.
    hidden = [n for n, r in fields.items() if "@HIDDEN" in r["Field Annotation"]]
    assert hidden == ["record_id", "wave"]
    assert not any("year" in r["Field Label"].lower() for n, r in fields.items() if n != "wave")


def test_xlsform_offers_sites_by_name_and_calculates_the_year(tmp_path):
    sheets = xlsform(load_instrument(DEFAULT_INSTRUMENT), tmp_path)
    survey = {r["name"]: r for r in sheets["survey"] if r["name"]}
    assert [(r["name"], r["label"]) for r in sheets["choices"] if r["list_name"] == "sites"] == \
        list(SITES)
    assert survey["site"]["type"] == "select_one sites"
    wave = survey["wave"]
    assert (wave["type"], wave["calculation"], wave["label"]) == ("calculate", "2027", "")


def test_pyxform_accepts_the_v2_form_with_its_year_and_routing(tmp_path):
    """pyxform is what KoboToolbox and ODK Central run on upload."""
    import xml.etree.ElementTree as ET

    from pyxform.xls2xform import convert

    path = export_instrument(load_instrument(V2), "xlsform", tmp_path / "v2.xlsx", SITES, 2027)
    warnings: list[str] = []
    root = ET.fromstring(convert(xlsform=str(path), warnings=warnings).xform)
    assert warnings == []
    binds = {b.get("nodeset").rsplit("/", 1)[-1]: b
             for b in root.iter("{http://www.w3.org/2002/xforms}bind")}
    assert binds["wave"].get("calculate") == "2027"
    relevant = binds["pw07"].get("relevant")
    assert relevant.count("staff_group") == 4
    for code in ("sas", "consultant", "locally_employed", "gp"):
        assert f"= '{code}'" in relevant
    assert "foundation" not in relevant and "resident" not in relevant
    assert binds["hs01"].get("relevant") is None


def test_cli_takes_site_names_from_the_store(tmp_path):
    store = tmp_path / "store.duckdb"
    with open_store(store) as con:
        add_sites(con, [Site(code, name, "acute_trust", "South West") for code, name in SITES])
    out = tmp_path / "dd.csv"
    result = culture("instrument", "export", "--format", "redcap", "--out", out, "--sites",
                     "all", "--wave", "2026", "--db", store)
    assert result.exit_code == 0, result.stderr
    assert "survey year recorded without asking: 2026\n" in result.stdout
    site = next(r for r in csv.DictReader(out.open(encoding="utf-8"))
                if r["Variable / Field Name"] == "site")
    assert redcap_choices(site["Choices, Calculations, OR Slider Labels"]) == list(SITES)
    one = culture("instrument", "export", "--format", "xlsform", "--out", tmp_path / "f.xlsx",
                  "--sites", "c", "--db", store)
    assert one.exit_code == 0 and one.stderr == ""
    choices = load_workbook(tmp_path / "f.xlsx")["choices"]
    assert [(r[1], r[2]) for r in choices.iter_rows(values_only=True) if r[0] == "sites"] == \
        [SITES[1]]
    bad = culture("instrument", "export", "--format", "redcap", "--out", out, "--wave", "26")
    assert bad.exit_code == 1 and "give a survey year from 2000 to 2100" in bad.stderr


# --- construct names never shown ------------------------------------------------------------

def shown_text_redcap(fields) -> str:
    columns = ("Section Header", "Field Label", "Field Note",
               "Choices, Calculations, OR Slider Labels")
    return "\n".join(r[c] for r in fields.values() for c in columns)


@BOTH
def test_no_export_shows_a_construct_name(path, tmp_path):
    instrument = load_instrument(path)
    names = [s.name for s in instrument.scales]
    assert "Help-seeking stigma" in names
    fields = redcap(instrument)
    sheets = xlsform(instrument, tmp_path)
    xls_text = "\n".join(r[c] for r in sheets["survey"] for c in ("label", "hint"))
    page = printable_html(instrument)
    for name in names:
        assert name not in shown_text_redcap(fields)
        assert name not in xls_text
        assert name not in page
    # Headings are neutral and numbered as the web form numbers them.
    headers = [r["Section Header"] for r in fields.values() if r["Section Header"]]
    parts = [h for h in headers if h.startswith("Questions, part")]
    assert parts == [f"Questions, part {n} of 9" for n in range(1, 10)]
    assert re.findall(r"<h2 [^>]*>(Questions, part \d of 9)</h2>", page) == parts
    groups = [r["label"] for r in sheets["survey"]
              if r["type"] == "begin_group" and r["label"].startswith("Questions")]
    assert groups == parts


# --- routing (v2's pw07) ------------------------------------------------------------------

def test_v2_routing_asks_staff_group_first_and_branches_pw07():
    instrument = load_instrument(V2)
    fields = redcap(instrument)
    names = list(fields)
    assert names.index("staff_group") < names.index("hs01")
    assert fields["staff_group"]["Section Header"] == ROUTING_SECTION
    assert fields["pw07"]["Branching Logic (Show field ONLY if...)"] == (
        "[staff_group] = 'sas' or [staff_group] = 'consultant' or "
        "[staff_group] = 'locally_employed' or [staff_group] = 'gp'")
    routed = [n for n, r in fields.items() if r["Branching Logic (Show field ONLY if...)"]]
    assert routed == ["pw07"]
    # Every attribute asked exactly once; the rest still at the end.
    assert [n for n in names if n in {a.id for a in instrument.attributes}] == \
        ["staff_group", "contract", "pmq", "gender", "age_band", "ethnicity"]
    assert names[-1] == "ethnicity"
    page = printable_html(instrument)
    assert page.index("[staff_group]") < page.index("[hs01]")
    assert page.count("[staff_group]") == 1
    assert ('Answer only if your answer to "Which best describes your current role or career '
            'stage?" was: SAS doctor') in page


# --- the printed table keeps its header with its rows -------------------------------------

@pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("pdftotext")),
                    reason="needs chromium and pdftotext (poppler-utils)")
@BOTH
def test_pdf_pages_show_each_tables_header_above_its_rows(path, tmp_path):
    instrument = load_instrument(path)
    pdf = export_instrument(instrument, "pdf", tmp_path / "q.pdf")
    pages = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True,
                           capture_output=True, text=True, timeout=60).stdout.split("\f")
    agree = {i.id for i in instrument.items if i.response_scale == "agree5"}
    page_of: dict[str, int] = {}
    for number, page in enumerate(pages, start=1):
        lines = page.splitlines()
        ids = [(at, found) for at, line in enumerate(lines)
               for found in re.findall(r"\[([a-z]{2}\d\d|oc_[a-z]+)\]", line)]
        page_of |= {i: number for _, i in ids}
        statements = [at for at, i in ids if i in agree]
        headers = [at for at, line in enumerate(lines) if "Disagree" in line]
        # Each answer header ("Strongly disagree ... Strongly agree") has a statement under
        # it on its own page (none left alone at the foot of a page), and no statement
        # starts a page above its header.
        for at in headers:
            assert any(s > at for s in statements), f"page {number}: a header without rows"
        if statements:
            assert headers and headers[0] < statements[0], \
                f"page {number}: statements without the answer header above them"
    assert agree <= set(page_of)
    # Each grid (at most eight statements) is printed whole on one page.
    for scale in instrument.scales:
        pages_used = {page_of[i.id] for i in instrument.items_of(scale.id)}
        assert len(pages_used) == 1, f"{scale.id} is split over pages {sorted(pages_used)}"


def test_a_label_export_with_site_names_ingests_under_the_codes(tmp_path, store_path,
                                                                 instrument, definition_yaml):
    """REDCap's "labels" export holds what the form showed: the site's name, not its code."""
    from pipeline.ingest.tools import import_export

    sites = (("A", "Tamar Valley Hospitals"), ("C", "South East Professional Support Unit"))
    fields = [r for r in redcap(instrument, sites, 2025).values()
              if r["Field Type"] != "descriptive"]
    labels = {r["Variable / Field Name"]: dict(redcap_choices(
        r["Choices, Calculations, OR Slider Labels"])) for r in fields
        if r["Choices, Calculations, OR Slider Labels"]}
    header = ["Record ID", "Survey Timestamp", *(r["Field Label"] for r in fields[1:]),
              "Complete?"]
    path = tmp_path / "labels.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for number, site in enumerate(("A", "C", "A"), start=1):
            row = [f"{number}", "2025-10-02 10:00"]
            for field in fields[1:]:
                name = field["Variable / Field Name"]
                code = {"site": site, "wave": "2025", "staff_group": "consultant"}.get(
                    name, "2" if name.startswith("oc_") and name != "oc_intend" else "4")
                if name in {a.id for a in instrument.attributes} - {"staff_group"}:
                    code = ""
                row.append(labels[name].get(code, code) if name in labels else code)
            writer.writerow([*row, "Complete"])
    assert "South East Professional Support Unit" in path.read_text(encoding="utf-8")
    with open_store(store_path) as con:
        report = import_export(con, path, instrument, definition_yaml, "redcap")
        assert report.ingest.rows_accepted == 3, report.ingest.rejected_by_reason
        assert con.execute("select site_code, count(*) from responses group by 1 "
                           "order by 1").fetchall() == [("A", 2), ("C", 1)]
