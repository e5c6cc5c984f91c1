"""Charts and tables that fit a laptop and a phone (issue 21): full item text, the viewer's
site marked "You", readable colours, table text shown as written, CSV downloads equal to
the tables, and no page, chart or table wider than a 390 px phone."""

from __future__ import annotations

import base64
import csv
import io
import re
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.live import submit_sign_in

from dashboard.pages import PAGES as APP_PAGES

from dashboard import figures
from dashboard.components import chart, table

LONG_ITEM = ("cf01: I trust that what I told the support service would be kept confidential "
             "and would not reach my supervisors without my consent")


def _unwrapped(text: str) -> str:
    return text.replace("<br>", " ")


def _longest_line(text: str) -> int:
    return max(len(line) for line in text.split("<br>"))


def test_item_text_is_shown_in_full_wrapped_never_cut():
    rows = pd.DataFrame({"label": [LONG_ITEM, "ps02: short"], "pct_unfavourable": [20.0, 30.0],
                         "pct_favourable": [50.0, 40.0], "n": [120, 90],
                         "suppressed": [False, False]})
    fig = figures.response_bars(rows, k=10)
    labels = [a["text"] for a in fig["layout"]["annotations"]]
    assert _unwrapped(labels[-1]) == LONG_ITEM    # first item drawn last (top of the chart)
    assert "<br>" in labels[-1] and _longest_line(labels[-1]) <= figures.LINE
    assert [_unwrapped(t) for t in labels] == [rows["label"][1], LONG_ITEM]
    # Each label sits above its own bar, and the next label up clears the bar below it.
    bars = fig["data"][0]["y"]
    top_label = fig["layout"]["annotations"][1]
    assert top_label["y"] > bars[1] + 11 and top_label["yanchor"] == "bottom"
    assert fig["layout"]["annotations"][0]["y"] < bars[1] - 11


def test_titles_axes_and_names_are_wrapped_whole():
    long_name = "Systems view of performance difficulties and what the site does about them"
    matrix = pd.DataFrame([[2.5, -1.0]], index=["Staff group / career stage: SAS doctor "
                                               "(specialty, associate specialist)"],
                          columns=[long_name, "Voice and peer support"])
    fig = figures.equity_heatmap(matrix, matrix.isna(), k=10)
    assert [_unwrapped(c) for c in fig["data"][0]["x"]] == list(matrix.columns)
    assert _unwrapped(fig["data"][0]["y"][0]) == matrix.index[0]
    assert _unwrapped(fig["layout"]["title"]["text"]) == (
        "Equity: groups against the rest of the site (grey: fewer than 10 responses)")
    assert _longest_line(fig["layout"]["title"]["text"]) <= figures.TITLE_LINE
    assert "points out of 100" in _unwrapped(fig["layout"]["title"]["subtitle"]["text"])
    assert list(fig["data"][0]["text"][0]) == ["+2.5", "-1.0"]
    # The title starts below the mode bar, and the plot below the title.
    layout = fig["layout"]
    assert (1 - layout["title"]["y"]) * layout["height"] >= figures.MODEBAR - 1e-6
    assert layout["margin"]["t"] >= figures.MODEBAR + 20 * 2


def _funnel_points() -> pd.DataFrame:
    return pd.DataFrame({"label": ["Site A", "Peer 1", "Peer 2", "Peer 3"],
                         "n": [220, 90, 210, 150], "mean": [55.6, 64.0, 57.0, 61.0],
                         "highlight": [True, False, False, False],
                         "verdict": ["in line", "in line", "clearly above", "in line"],
                         "low": [52.5, 50.0, 52.0, 51.0], "high": [69.6, 70.0, 68.0, 69.0]})


def _you_marks(fig: dict) -> tuple[list[dict], list[dict]]:
    notes = [a for a in fig["layout"].get("annotations", []) if figures.YOU in a["text"]]
    traces = [t for t in fig["data"] if str(t.get("name", "")).startswith(figures.YOU)]
    return notes, traces


def test_funnel_and_caterpillar_mark_the_viewer_you_by_shape_and_words():
    funnel = figures.funnel_figure(_funnel_points(), {"target": 60.0}, "Help-seeking stigma")
    notes, traces = _you_marks(funnel)
    assert len(notes) == 1 and len(traces) == 1
    assert (notes[0]["x"], notes[0]["y"]) == (220.0, 55.6) and notes[0]["showarrow"]
    assert traces[0]["x"] == [220.0] and traces[0]["y"] == [55.6]
    assert traces[0]["marker"]["symbol"] == "diamond"        # a shape, not colour alone
    assert _unwrapped(traces[0]["name"]) == "You: Site A"
    # The rightmost point's label points in from the left, staying inside the chart.
    assert notes[0]["ax"] < 0 and notes[0]["xanchor"] == "right"

    rows = pd.DataFrame({"label": ["Peer 1", "Site A", "Peer 2"], "eb_mean": [61.0, 56.0, 66.0],
                         "eb_low": [55.0, 53.0, 60.0], "eb_high": [67.0, 59.0, 72.0],
                         "highlight": [False, True, False]})
    caterpillar = figures.caterpillar_figure(rows, "Help-seeking stigma")
    notes, traces = _you_marks(caterpillar)
    assert len(notes) == 1 and (notes[0]["x"], notes[0]["y"]) == (1, 56.0)   # lowest
    assert traces[0]["x"] == [1] and traces[0]["marker"]["symbol"] == "diamond"
    assert _unwrapped(traces[0]["name"]) == "You: Site A"
    assert "out of 100" in _unwrapped(caterpillar["layout"]["yaxis"]["title"]["text"])

    # Nobody highlighted (a researcher's view): no "You" anywhere.
    nobody = figures.funnel_figure(_funnel_points().assign(highlight=False), {"target": 60.0},
                                   "Help-seeking stigma")
    assert _you_marks(nobody) == ([], [])


def _contrast(colour: str) -> float:
    """WCAG contrast ratio of a #RRGGBB colour against white."""
    channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return 1.05 / (luminance + 0.05)


def _trend_rows(labels: list[str]) -> pd.DataFrame:
    waves = [2024, 2025, 2026]
    return pd.DataFrame([{"label": label, "wave": wave, "mean": 50.0 + i + j,
                          "ci_low": 46.0 + i + j, "ci_high": 54.0 + i + j, "n": 100}
                         for i, label in enumerate(labels) for j, wave in enumerate(waves)])


def test_trends_draw_small_multiples_in_readable_colours_without_yellow():
    labels = [f"Scale number {i} with a longer name" for i in range(8)]
    changes = pd.DataFrame({"label": [labels[3]], "wave": [2026], "flag": ["higher"]})
    fig = figures.trend_figure(_trend_rows(labels), changes, "Scales by wave")
    assert figures.YELLOW not in figures.SERIES
    lines = [t for t in fig["data"] if t.get("mode") == "lines+markers"]
    assert len(lines) == 8
    # One panel (axis pair) per measure, each titled with the measure's whole name.
    assert len({(t["xaxis"], t["yaxis"]) for t in lines}) == 8
    titles = [_unwrapped(a["text"]) for a in fig["layout"]["annotations"]]
    assert titles == labels
    # The panels share one score range, so their levels compare at a glance.
    ranges = {tuple(v["range"]) for k, v in fig["layout"].items() if k.startswith("yaxis")}
    assert len(ranges) == 1
    for trace in fig["data"]:
        for colour in (trace.get("line", {}).get("color"), trace.get("marker", {}).get("color")):
            if isinstance(colour, str):
                assert colour != figures.YELLOW and _contrast(colour) >= 4.5, colour
    stars = [t for t in fig["data"] if t.get("marker", {}).get("symbol") == "star"
             and t.get("x") != [None]]
    assert len(stars) == 1 and stars[0]["yaxis"] == lines[3]["yaxis"]


HOSTILE = ["criterion <= .70 and < 1 > 0", "A & B <b>bold</b> <script>alert(1)</script>",
           "[click](https://evil.example) *em* _u_ `code` # | ~~x~~",
           "back\\slash &lt;not an entity&gt; <img src=x onerror=alert(1)>",
           "https://autolink.example www.evil.example mail@evil.example"]


@pytest.fixture(scope="module")
def table_page():
    """A Dash app serving one components.table of hostile text, in headless Chromium."""
    from dash import Dash, html
    from werkzeug.serving import make_server

    from tests.live import chromium, free_port

    frame = pd.DataFrame({"text": HOSTILE, "value": np.arange(len(HOSTILE)) + 0.25})
    app = Dash(__name__)
    app.layout = html.Div(table(frame, {"text": "Text <= as written", "value": "Value"},
                                "Hostile cells"), id="root")
    port = free_port()
    server = make_server("127.0.0.1", port, app.server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    browser = chromium()
    try:
        browser.get(f"http://127.0.0.1:{port}/")
        deadline = time.time() + 30
        while not browser.find_elements("css selector", "#root td") and time.time() < deadline:
            time.sleep(0.2)
        yield browser
    finally:
        browser.quit()
        server.shutdown()


@pytest.mark.slow
def test_table_text_shows_exactly_as_written_and_injects_nothing(table_page):
    cells = [td.text for td in table_page.find_elements("css selector", "#root td")]
    assert cells[0::2] == HOSTILE
    assert cells[1::2] == ["0.25", "1.25", "2.25", "3.25", "4.25"]
    headers = [th.text for th in table_page.find_elements("css selector", "#root th")]
    assert headers == ["Text <= as written", "Value"]
    for tag in ("a", "b", "em", "code", "del", "script", "img"):
        assert table_page.find_elements("css selector", f".data-table {tag}") == [], tag


def _csv_rows(href: str) -> list[list[str]]:
    prefix = "data:text/csv;charset=utf-8;base64,"
    assert href.startswith(prefix)
    return list(csv.reader(io.StringIO(base64.b64decode(href[len(prefix):]).decode(
        "utf-8-sig"))))


def test_csv_download_holds_the_tables_cells():
    frame = pd.DataFrame({"label": ["Site A, \"north\"", "Peer 1"], "n": [220, None],
                          "mean": [55.6123, 61.0]})
    component = table(frame, {"label": "Site", "n": "Respondents", "mean": "Score"},
                      "Funnel plot points", {"n": 0, "mean": 1})
    link = component.children[1]
    assert link.download == "funnel-plot-points.csv"
    assert _csv_rows(link.href) == [["Site", "Respondents", "Score"],
                                    ["Site A, \"north\"", "220", "55.6"],
                                    ["Peer 1", "not shown", "61.0"]]
    # A chart repeats its table's download where it is seen without opening the table.
    figure = chart("g", figures.trend_figure(_trend_rows(["A"]), pd.DataFrame(
        columns=["label", "wave", "flag"]), "A across waves"), component, "summary")
    links = [n for n in figure._traverse() if getattr(n, "className", "") == "csv-download"]
    assert {n.href for n in links} == {link.href}
    graph = next(n for n in figure._traverse() if getattr(n, "id", None) == "g")
    assert graph.config["toImageButtonOptions"]["filename"] == "a-across-waves"


# --- the served dashboard in a phone's browser ---------------------------------------

PASSWORD = "charts fit password"
#: Every page of the app (a page a role may not open is skipped where it is refused).
PAGES = list(APP_PAGES)


@pytest.fixture(scope="module")
def served(published_sample):
    from dashboard.accounts import AccountBook
    from tests.live import free_port, start_culture, stop

    settings, _ = published_sample
    book = AccountBook(settings.accounts_path)
    book.add("fit-dir", "director", PASSWORD, "A")
    book.add("fit-admin", "admin", PASSWORD)
    book.add("fit-res", "researcher", PASSWORD)
    port = free_port()
    process = start_culture("serve", "--db", str(settings.db_path), "--port", str(port),
                            port=port)
    yield f"http://127.0.0.1:{port}"
    stop(process)


def _sign_in(browser, base: str, username: str) -> None:
    submit_sign_in(browser, base, username, PASSWORD)
    _settle(browser)


def _settle(browser, timeout: float = 40) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, timeout).until(lambda b: b.find_elements(
        By.CSS_SELECTOR, "#page h1, .refused"))
    WebDriverWait(browser, timeout).until(lambda b: not b.find_elements(
        By.CSS_SELECTOR, "[data-dash-is-loading='true']"))
    time.sleep(1.0)   # plotly draws after Dash says it is done


#: Everything on the page that is too wide or overlaps, as sentences (empty: it fits).
_FAULTS = """
// The phone's own width: under mobile emulation a page wider than the screen widens the
// layout viewport (window.innerWidth) with it, so that alone would never see the overflow.
const faults = [], width = Math.min(window.innerWidth, screen.width);
const box = e => e.getBoundingClientRect();
const meets = (a, b) => a.width > 0 && b.width > 0 && a.left < b.right - 1
    && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1;
if (document.documentElement.scrollWidth > width)
  faults.push(`page is ${document.documentElement.scrollWidth} px wide`);
document.querySelectorAll('.table-wrap').forEach(t => {
  if (t.scrollWidth > t.clientWidth + 1)
    faults.push(`table "${t.querySelector('.table-caption').textContent}" is cut`
                + ` (${t.scrollWidth} px in ${t.clientWidth})`);
});
document.querySelectorAll('.js-plotly-plot').forEach(plot => {
  const name = plot.parentElement.id || plot.id;
  const scrolls = plot.closest('.graph-scroll'), frame = box(plot);
  if (!scrolls && box(plot).right > width + 1) faults.push(`${name} is wider than the screen`);
  plot.querySelectorAll('text').forEach(t => {
    const r = box(t);
    if (r.width && (r.left < frame.left - 1 || r.right > frame.right + 1))
      faults.push(`${name}: "${t.textContent.slice(0, 40)}" is cut at the side`);
    if (r.height && (r.top < frame.top - 1 || r.bottom > frame.bottom + 1))
      faults.push(`${name}: "${t.textContent.slice(0, 40)}" is cut at the top or bottom`);
  });
  const title = plot.querySelector('.gtitle'), bar = plot.querySelector('.modebar');
  if (title && bar && meets(box(title), box(bar))) faults.push(`${name}: title under mode bar`);
  // Names written beside points and notes on the plot: none may cover another.
  const marks = [...plot.querySelectorAll('.textpoint text, .annotation-text-g')]
      .filter(t => t.textContent.trim()).map(t => [t.textContent.trim(), box(t)]);
  marks.forEach(([a, ra], i) => marks.slice(i + 1).forEach(([b, rb]) => {
    if (meets(ra, rb)) faults.push(`${name}: "${a.slice(0, 30)}" overlaps "${b.slice(0, 30)}"`);
  }));
  const legend = plot.querySelector('.legend');
  plot.querySelectorAll('.xtitle, .ytitle, .x2title').forEach(axis => {
    if (title && meets(box(title), box(axis))) faults.push(`${name}: title meets an axis title`);
    if (legend && meets(box(legend), box(axis))) faults.push(`${name}: legend meets an axis title`);
  });
});
return faults;
"""


@pytest.mark.slow
@pytest.mark.parametrize("username", ["fit-dir", "fit-admin", "fit-res"])
def test_every_page_fits_a_390_px_phone(served, username):
    """No page, chart or table is wider than a phone held upright, nothing in a chart is
    cut at its sides, and no title sits under the mode bar or meets an axis title or the
    legend (a chart wider than a phone may scroll sideways inside its card: the equity
    grid)."""
    from tests.live import chromium

    browser = chromium(phone=True)
    try:
        _sign_in(browser, served, username)
        faults = {}
        for path in PAGES:
            browser.get(f"{served}{path}?site=A")
            _settle(browser)
            if browser.find_elements("css selector", ".refused"):
                continue   # a page this role does not have (Methods for a director)
            # Open every table view, so hidden tables are measured too.
            browser.execute_script("document.querySelectorAll('details')"
                                   ".forEach(d => d.open = true)")
            time.sleep(0.3)
            if found := browser.execute_script(_FAULTS):
                faults[path] = found
        assert faults == {}
    finally:
        browser.quit()


@pytest.mark.slow
def test_a_tables_csv_downloads_under_the_apps_policy_and_equals_the_table(served, tmp_path):
    """The download link works in Chromium under the app's Content-Security-Policy, and
    the file holds the table's rows exactly as the page shows them."""
    from selenium.webdriver.common.by import By

    from tests.live import chromium

    browser = chromium()
    try:
        browser.execute_cdp_cmd("Browser.setDownloadBehavior", {
            "behavior": "allow", "downloadPath": str(tmp_path)})
        _sign_in(browser, served, "fit-dir")
        browser.get(f"{served}/benchmark?site=A")
        _settle(browser)
        wrap = browser.find_elements(By.CSS_SELECTOR, ".chart .table-wrap")[0]
        browser.execute_script("arguments[0].closest('details').open = true", wrap)
        shown = [[cell.text for cell in row.find_elements(By.CSS_SELECTOR, "th, td")]
                 for row in wrap.find_elements(By.CSS_SELECTOR, "tr")]
        link = wrap.find_element(By.CSS_SELECTOR, "a.csv-download")
        name = link.get_attribute("download")
        link.click()
        target = Path(tmp_path) / name
        for _ in range(100):
            if target.exists() and target.stat().st_size:
                break
            time.sleep(0.1)
        rows = list(csv.reader(io.StringIO(target.read_text(encoding="utf-8-sig"))))
        assert len(rows) > 2 and rows == shown
        assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"
                and "Content Security Policy" in e["message"]] == []
    finally:
        browser.quit()


def test_headline_axes_read_out_of_100():
    assert figures.PRINCIPLE_AXIS == figures.SCALE_AXIS == figures.SCORE_AXIS
    assert re.search(r"out of 100", figures.SCORE_AXIS)
    assert figures.DEFINITIONS == figures.SCORE_DEFINITION


def _driver_view(shares: list[float], differences: list[float]):
    from published.drivers import DriverView

    names = ["Help-seeking stigma", "Leaders modelling vulnerability",
             "Awareness of support pathways", "Team psychological safety",
             "Trust in confidentiality", "Support framed as development",
             "Voice and peer support", "Systems view of performance difficulties"]
    rows = pd.DataFrame({"name": names, "share": shares, "share_low": np.nan,
                         "share_high": np.nan, "relative_weight": shares,
                         "difference": differences,
                         "below": [d < -3 for d in differences],
                         "verdict": ["clearly below" if d < -3 else "in line"
                                     for d in differences],
                         "score": 60.0})
    return DriverView("site", "A", "Site A's own answers", "doctors at Site A", 204, rows)


def test_driver_points_are_numbered_by_rank_and_the_legend_names_them():
    """A director on a phone must be able to tell which point is which scale: names
    written beside points a few pixels apart cover each other, so each point carries its
    rank (1: the largest share) and the legend names every scale with its verdict, in
    words as well as by shape."""
    from dashboard.pages.drivers import importance_figure

    view = _driver_view([0.24, 0.25, 0.18, 0.15, 0.06, 0.05, 0.03, 0.03],
                        [-1.3, -5.4, -15.7, -25.3, 1.0, -5.8, 10.8, 4.3])
    fig = importance_figure(view, "Site A")
    assert [_unwrapped(t["name"]) for t in fig["data"]] == [
        "1 Leaders modelling vulnerability: below other sites",
        "2 Help-seeking stigma: not below other sites",
        "3 Awareness of support pathways: below other sites",
        "4 Team psychological safety: below other sites",
        "5 Trust in confidentiality: not below other sites",
        "6 Support framed as development: below other sites",
        "7 Voice and peer support: not below other sites",
        "8 Systems view of performance difficulties: not below other sites"]
    assert [t["texttemplate"] for t in fig["data"]] == [str(i) for i in range(1, 9)]
    assert [t["marker"]["symbol"] for t in fig["data"]] == [
        "diamond", "circle", "diamond", "diamond", "circle", "diamond", "circle", "circle"]
    assert [(t["x"], t["y"]) for t in fig["data"]][:2] == [([25.0], [-5.4]), ([24.0], [-1.3])]
    # Hovering still names the scale; nothing else is written on the plot but its notes.
    assert fig["data"][0]["text"] == ["Leaders modelling vulnerability"]
    assert [a["text"] for a in fig["layout"]["annotations"]] == ["Priority corner",
                                                                 "equal share"]
