"""The validation report is small and readable (issue 22, point 10): static SVG charts,
no script, reliability drawn as one panel a scale under the scale's name, in the
dashboard's palette."""

from __future__ import annotations

import re

import pytest

from pipeline.psychometrics.report import write_report
from pipeline.psychometrics.report_svg import ANSWER_COLOURS, SERIES, reliability_panels
from pipeline.psychometrics.stage import run_psychometrics
from pipeline.store import open_store
from survey.settings import resolve_settings

#: Colours a chart may use beside the palettes: grid, criterion line and text.
NEUTRAL = {"#E5E5E5", "#777777", "#222222"}


@pytest.fixture(scope="module")
def page(sample_store, instrument, tmp_path_factory):
    with open_store(sample_store) as con:
        result = run_psychometrics(con, instrument, resolve_settings(environ={}))
    html_path, _ = write_report(result, instrument, tmp_path_factory.mktemp("report"))
    return result, html_path


def _section(text: str, title: str) -> str:
    return text.split(f"<h2>{title}</h2>")[1].split("<h2>")[0]


def test_report_is_small_self_contained_and_scriptless(page):
    _, path = page
    text = path.read_text(encoding="utf-8")
    assert path.stat().st_size < 300_000        # was 4.8 MB with plotly.js inlined
    assert "<script" not in text and "plotly" not in text.lower()
    assert text.count("<svg") == 3              # reliability, loadings, answers
    assert sorted(p.name for p in path.parent.iterdir()) == ["validation_report.html",
                                                             "validation_report.json"]


def test_reliability_panels_are_named_scales_with_one_dot_per_site_wave(page, instrument):
    result, path = page
    chart = _section(path.read_text(encoding="utf-8"), "Reliability by site and wave")
    titles = re.findall(r"font-weight='600' font-size='12'>([^<]+)</text>", chart)
    assert " ".join(titles) == " ".join(s.name for s in instrument.scales)
    assert not any(s.id in titles for s in instrument.scales)
    rows = [r for r in result.reliability if r.level == "site_wave" and r.reported]
    assert chart.count("<circle") == len(rows) > 0
    colours = set(re.findall(r"#[0-9A-F]{6}", chart))
    assert colours <= set(SERIES) | NEUTRAL, colours
    stigma_a = next(r for r in rows if (r.scale, r.site_code, r.wave) == ("stigma", "A", 2024))
    assert (f"Help-seeking stigma, A 2024: alpha {stigma_a.alpha:.2f} "
            f"({stigma_a.ci_low:.2f} to {stigma_a.ci_high:.2f})") in chart


def test_answer_chart_uses_the_answer_palette_in_option_order(page):
    _, path = page
    chart = _section(path.read_text(encoding="utf-8"), "How people answered each item")
    legend = re.findall(r"<rect x='[\d.]+' y='8' width='10' height='10' fill='(#\w+)'/>"
                        r"<text[^>]*>([^<]+)</text>", chart)
    assert legend == list(zip(ANSWER_COLOURS, ["Strongly disagree", "Disagree",
                                               "Neither agree nor disagree", "Agree",
                                               "Strongly agree"]))


def test_many_site_waves_become_a_sorted_caterpillar_without_names():
    rows = [(f"S{i:03d} 2026", 0.5 + i / 1000, 0.4, 0.95) for i in range(300)]
    svg = reliability_panels([("Help-seeking stigma", rows)])
    assert svg.count("<circle") == 300
    assert "S000 2026</text>" not in svg        # no 300 unreadable row names
    assert len(svg) < 200_000
