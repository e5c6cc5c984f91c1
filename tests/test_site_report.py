"""The site report: contents against the published layer, nothing hidden shown, a PDF
whose pages are not blank, and the errors a user sees."""

from __future__ import annotations

import re
import shutil
import subprocess
from html import unescape
from pathlib import Path

import duckdb
import pytest
from PIL import Image

from pipeline.psychometrics.stage import run_psychometrics
from pipeline.publish.writer import publish
from outputs.site_report import write_site_report
from pipeline.store import load_headcounts_csv, open_store
from survey.pdf import PdfError
from survey.settings import SAMPLES_DIR, Settings
from tests.conftest import culture

K = 10
SITE, WAVE = "D", 2026
#: Share of a page's pixels that must be non-white (text and figures cover far more).
MIN_INK = 0.004

needs_pdf_tools = pytest.mark.skipif(
    not (shutil.which("pdftoppm") and shutil.which("chromium")),
    reason="needs poppler-utils (pdftoppm) and chromium; .ci/run installs them")


@pytest.fixture(scope="module")
def published_with_headcounts(sample_store, instrument):
    """The sample with its headcounts published (k = 10), so response rates are known."""
    settings = Settings(db_path=sample_store)
    with open_store(sample_store) as con:
        load_headcounts_csv(con, SAMPLES_DIR / "headcounts.csv", instrument)
        psychometrics = run_psychometrics(con, instrument, settings)
        publish(con, instrument, settings, psychometrics)
    return settings


@pytest.fixture(scope="module")
def report(published_with_headcounts, tmp_path_factory):
    has_pdf = bool(shutil.which("chromium"))
    files = write_site_report(published_with_headcounts.published_path, SITE.lower(), WAVE,
                              tmp_path_factory.mktemp("report"), pdf=has_pdf)
    return published_with_headcounts, files, files.html.read_text(encoding="utf-8")


def published(settings, sql, params=()):
    with duckdb.connect(str(settings.published_path), read_only=True) as con:
        return con.execute(sql, list(params)).df()


def text_of(html: str) -> str:
    """The visible text of some HTML, whitespace collapsed."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def section(html: str, heading: str) -> str:
    return html.split(f"<h2>{heading}", 1)[1].split("<h2>", 1)[0]


def test_report_names_the_site_every_principle_and_its_response_rate(report):
    settings, files, html = report
    assert files.html.name == "site-report-D-2026.html"
    sites = published(settings, "select * from sites").set_index("site_code")
    text = text_of(html)
    assert sites.loc[SITE, "name"] in text
    for other in sites.index.drop(SITE):
        assert sites.loc[other, "name"] not in text, "other sites must stay anonymous"
    names = published(settings, "select measure, name from measures where measure_kind = "
                                "'principle' order by measure")
    assert len(names) == 6
    for principle, name in zip(names["measure"], names["name"]):
        assert f"{principle} {name}" in text_of(section(html, "The six principles"))
    n = published(settings, "select n from cells where level = 'site' and unit = ? and wave = ? "
                            "and measure_kind = 'responses' and breakdown = 'all'",
                  [SITE, WAVE])["n"].iloc[0]
    headcount = published(settings, "select sum(headcount) as h from site_headcounts where "
                                    "site_code = ?", [SITE])["h"].iloc[0]
    assert n == 220 and headcount == 465
    assert f"{n} responses in {WAVE}" in text
    assert f"response rate: {n / headcount:.0%} of {int(headcount)} staff in post" in text


def test_principles_are_ordered_by_priority_with_scores_targets_and_actions(report):
    settings, _, html = report
    gaps = published(settings, "select * from principle_gaps where site_code = ? and wave = ? "
                               "order by priority", [SITE, WAVE])
    table = section(html, "The six principles").split("<tbody>", 1)[1]
    rows = [text_of(r) for r in table.split("</tr>")[:-1]]
    assert len(rows) == 6
    for row, gap in zip(rows, gaps.itertuples()):
        assert row.startswith(f"{gap.priority} {gap.principle} ")
        assert f"{gap.score:.1f}" in row and f"{gap.target:.1f}" in row
        assert gap.certainty in row
    actions = published(settings, "select * from actions")
    guide = text_of(section(html, "What the guide suggests"))
    for gap in gaps.itertuples():
        titles = actions.loc[actions["principle"] == gap.principle, "title"]
        shown = [t in guide for t in titles]
        assert all(shown) if gap.certainty != "meets target" else not any(shown), gap.principle
    assert (gaps["certainty"] == "clear gap").sum() >= 1


def test_benchmark_section_gives_the_site_its_verdict_and_no_single_peers_score(report):
    """The demo's peer groups hold 4 sites or fewer: their worst, median and best would be
    single peers' scores, so the report shows dashes there (published.layout's rule of
    10 sites), and never any of those numbers."""
    settings, _, html = report
    row = published(settings, "select * from benchmarks where site_code = ? and wave = ? and "
                              "measure = 'P2'", [SITE, WAVE]).iloc[0]
    funnel = published(settings, "select * from funnel where site_code = ? and wave = ? and "
                                 "measure = 'P2'", [SITE, WAVE]).iloc[0]
    bench = section(html, "Benchmark position")
    line = next(text_of(r) for r in bench.split("</tr>") if "P2 Trust" in r)
    assert row["peer_sites"] < 10 and f"{row['mean']:.1f}" in line
    assert line.count("–") >= 4
    for value in (row["peer_worst"], row["peer_median"], row["peer_best"],
                  row["national_median"]):
        if round(value, 1) != round(row["mean"], 1):    # (this site may be the worst)
            assert f"{value:.1f}" not in line
    assert funnel["verdict"] in line
    assert f"{funnel['low']:.1f} to {funnel['high']:.1f}" in line.replace("−", "-")
    # Scales read on the same 0-100 as principles: (1-5 mean - 1) x 25, never the 1-5 mean.
    scale = published(settings, "select mean from benchmarks where site_code = ? and wave = ? "
                                "and measure = 'psysafety'", [SITE, WAVE]).iloc[0]["mean"]
    scale_line = next(text_of(r) for r in bench.split("</tr>") if "data-measure='psysafety'" in r)
    assert f"{(scale - 1) * 25:.1f}" in scale_line and f"{scale:.2f}" not in scale_line
    assert bench.count("<svg") == 1 and "this site" in bench
    trends = text_of(section(html, "Trends"))
    change = published(settings, "select change, flag from trends where level = 'site' and "
                                 "unit = ? and wave = ? and measure = 'P6'", [SITE, WAVE]).iloc[0]
    assert f"{change['change']:.1f}" in trends.replace("−", "-")


def test_suppressed_groups_read_fewer_than_k_and_never_show_a_number(report):
    settings, _, html = report
    cells = published(settings, "select breakdown, grp, n, suppressed from cells where level = "
                                "'site' and unit = ? and wave = ? and measure_kind = 'responses' "
                                "and breakdown <> 'all' and grp <> 'not_stated'", [SITE, WAVE])
    with open_store(settings.db_path, read_only=True) as con:
        true_n = con.execute(
            "unpivot (select staff_group, contract, pmq, gender, age_band, ethnicity from "
            "responses where site_code = ? and wave = ?) on staff_group, contract, pmq, "
            "gender, age_band, ethnicity into name breakdown value grp", [SITE, WAVE]
        ).df().groupby(["breakdown", "grp"]).size().to_dict()
    equity = section(html, "Equity")
    hidden = cells[cells["suppressed"]]
    assert len(hidden) >= 3, "the sample must have hidden groups at this site to test"
    assert any(true_n.get((b, g), 0) < K for b, g in zip(hidden.breakdown, hidden.grp))
    for cell in cells.itertuples():
        row = re.search(rf"<tr data-group='{cell.breakdown}:{cell.grp}'>(.*?)</tr>", equity,
                        flags=re.S)
        assert row, (cell.breakdown, cell.grp)
        cells_text = [text_of(td) for td in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1),
                                                        flags=re.S)]
        if cell.suppressed:
            assert f"fewer than {K} responses" in cells_text[2]
            assert not any(re.fullmatch(r"[\d,.]+", t) for t in cells_text), cells_text
            assert str(true_n.get((cell.breakdown, cell.grp), "none")) not in cells_text
        else:
            assert cells_text[2] == f"{cell.n:,}"
    assert f"fewer than {K} responses" in text_of(section(html, "Methods note"))


def test_report_is_self_contained_and_has_the_reliability_of_the_site(report):
    settings, _, html = report
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", html)
    assert html.count("<svg") == 3
    reliability = published(settings, "select * from reliability where level = 'site_wave' "
                                      "and site_code = ? and wave = ?", [SITE, WAVE])
    text = text_of(section(html, "Response and reliability"))
    assert len(reliability) == 8
    for r in reliability.itertuples():
        assert f"{r.alpha:.2f} ({r.ci_low:.2f} to {r.ci_high:.2f}) {r.omega_total:.2f}" in text


@needs_pdf_tools
def test_pdf_pages_are_not_blank_and_carry_the_report(report, tmp_path):
    _, files, _ = report
    assert files.pdf is not None and files.pdf.stat().st_size > 10_000
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(files.pdf), str(tmp_path / "page")],
                   check=True, timeout=120)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 3
    for page in pages:
        image = Image.open(page).convert("L")
        ink = sum(count for value, count in enumerate(image.histogram()) if value < 230)
        assert ink / (image.width * image.height) > MIN_INK, page.name
    text = subprocess.run(["pdftotext", str(files.pdf), "-"], capture_output=True, text=True,
                          check=True, timeout=60).stdout
    assert "Trent Meadows University Hospitals NHS Trust" in text
    assert "P6 Organisational culture" in " ".join(text.split())


def test_missing_chromium_is_a_clear_error_and_writes_nothing(published_with_headcounts,
                                                             tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(PdfError, match="printing a PDF needs Chromium.*pass --no-pdf"):
        write_site_report(published_with_headcounts.published_path, SITE, WAVE, tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, message", [
    (["--site", "Q", "--wave", "2026"],
     "site 'Q' is not in the published layer; published sites: A, B, C, D, E, F, G"),
    (["--site", "A", "--wave", "2020"],
     "wave 2020 is not published; published waves: 2024, 2025, 2026"),
])
def test_cli_names_what_would_be_accepted(published_with_headcounts, tmp_path, args, message):
    run = culture("report", "--db", published_with_headcounts.db_path, "--out", tmp_path,
                  "--no-pdf", *args)
    assert run.exit_code == 1
    assert run.stderr.startswith("error: ") and message in run.stderr
    assert list(tmp_path.iterdir()) == []


def test_cli_without_a_published_layer_says_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = culture("report", "--db", tmp_path / "none.duckdb", "--site", "A", "--wave", "2026")
    assert run.exit_code == 1 and run.stdout == ""
    assert "no published layer at" in run.stderr and "culture run" in run.stderr
    assert not any(tmp_path.iterdir())


def test_a_missing_omega_is_explained_not_dashed():
    from outputs.site_report import _omega

    assert _omega(0.8123) == "0.81"
    assert _omega(None) == _omega(float("nan")) == "not estimable"
