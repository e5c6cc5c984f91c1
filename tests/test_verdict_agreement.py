"""One verdict, everywhere (issue 20, item 3): on the demo, every published site x
measure x wave verdict is what its interval says, and `culture run`'s summary, the
dashboard's Benchmark page and the board report give the same words for every cell.

The demo's planted truth (data_samples/manifest.json) says what the words should be
where it is sure: D's psychological safety is low in every wave, and C's pathways is
outside the other sites where the manifest marks it so.
"""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from html import unescape
from types import SimpleNamespace

import flask
import numpy as np
import pandas as pd
import plotly
import pytest

from cli.options import out
from cli.pipeline_commands import MAX_VERDICT_ROWS, _print_published, verdict_rows
from dashboard.accounts import AccountBook, LoginThrottle
from dashboard.app import create_app
from dashboard.pages.benchmark import benchmark_body
from dashboard.view import view_from_request
from outputs.site_report import load_site_data, render_html
from published.layout import NOT_COMPARED, VERDICTS
from published.reader import PublishedLayer
from published.scores import headline
from stats import verdicts as verdict_rule
from tests.pages import markdown_tables

IN_LINE = VERDICTS[2]


@pytest.fixture(scope="module")
def layer(published_sample):
    settings, _ = published_sample
    with PublishedLayer.open(settings.published_path) as opened:
        yield opened


@pytest.fixture(scope="module")
def verdicts(layer) -> pd.DataFrame:
    """Every published verdict, by (wave, site, measure)."""
    rows = layer.query("select wave, site_code, measure_kind, measure, n, mean, others, "
                       "others_mean, low, high, z, flagged, verdict, rule from funnel")
    return rows.set_index(["wave", "site_code", "measure"]).sort_index()


def test_every_published_verdict_is_what_its_interval_says(verdicts):
    assert len(verdicts) == 3 * 7 * 14            # waves x sites x (8 scales + 6 principles)
    outside_low, outside_high = verdicts["mean"] < verdicts["low"], \
        verdicts["mean"] > verdicts["high"]
    assert (verdicts["flagged"] == (outside_low | outside_high)).all()
    assert (verdicts.loc[outside_low, "verdict"] == "clearly below").all()
    assert (verdicts.loc[outside_high, "verdict"] == "clearly above").all()
    inside = verdicts[~verdicts["flagged"]]
    assert not inside["verdict"].str.startswith("clearly").any()
    # "not certain" leans the way the site lies from the others.
    leaning = inside[inside["verdict"].str.contains("not certain")]
    assert (leaning["verdict"].str.startswith("below") == (leaning["z"] < 0)).all()
    assert set(verdicts["verdict"]) <= set(VERDICTS) and NOT_COMPARED not in set(
        verdicts["verdict"])
    assert set(verdicts["others"]) == {6}


def test_the_layout_publishes_the_words_and_rules_of_stats_verdicts(verdicts):
    assert VERDICTS == verdict_rule.VERDICTS
    # Seven sites: the few-site rule everywhere, its limits at |z| = FEW_SITES_Z.
    assert set(verdicts["rule"]) == {verdict_rule.RULES[0]}
    half = (verdicts["high"] - verdicts["low"]) / 2
    centre = (verdicts["high"] + verdicts["low"]) / 2
    np.testing.assert_allclose((verdicts["mean"] - centre) / half * verdict_rule.FEW_SITES_Z,
                               verdicts["z"], rtol=0, atol=1e-9)


def summary_verdicts(report, settings, scores: dict | None = None) -> dict:
    """(wave, site, measure) -> verdict, as `culture run` prints them (the rest in line);
    the score and the other sites' score it prints beside each go into `scores`."""
    with out.capture() as captured:
        _print_published(report, settings)
    found = {}
    for line in captured.get().splitlines():
        match = re.match(r"\W*(\d{4})\W+([A-Z])\W+(scale|principle) (\w+)\W+([\d.]+)\W+"
                         r"([\d.]+)\W+([a-z, ]+?)\s*\W*$", line)
        if match:
            wave, site, _, measure, score, others, verdict = match.groups()
            found[(int(wave), site, measure)] = verdict
            if scores is not None:
                scores[(int(wave), site, measure)] = (float(score), float(others))
    return found


@contextmanager
def admin(settings):
    """A request signed in as an admin of the demo's app (the account made once)."""
    book = AccountBook(settings.accounts_path)
    if book.get("agree-admin") is None:
        book.add("agree-admin", "admin", "a long enough password", None)
    app = create_app(settings, secret_key=b"test secret", throttle=LoginThrottle(free=3))
    with app.server.test_request_context("/_dash-update-component", method="POST"):
        book = app.server.config["CULTURE_ACCOUNTS"]
        flask.session["sid"] = book.open_session(book.get("agree-admin"))
        yield


def page_table(body, caption: str) -> pd.DataFrame:
    """The Markdown table under `caption` in a rendered page body."""
    return markdown_tables(body)[caption]


def dashboard_verdicts(settings, layer, waves, measures) -> dict:
    """(wave, site, measure) -> the verdict the Benchmark page's table gives (an admin
    sees sites by name), checked against the page's own sentence for the site viewed."""
    found = {}
    with admin(settings):
        for wave in waves:
            for kind, measure in measures:
                view = view_from_request("/benchmark", f"?site=D&wave={wave}", True)
                body = benchmark_body(view, f"{kind}:{measure}")
                table = page_table(body, "Funnel plot points")
                for label, verdict in zip(table["Site"], table["Against the other sites"]):
                    # An admin's label is 'Name (CODE)'.
                    code = re.fullmatch(r".* \((\w+)\)", label).group(1)
                    found[(wave, code, measure)] = verdict
                sentence = json.dumps(body, cls=plotly.utils.PlotlyJSONEncoder)
                assert f"{view.site_label}: {found[(wave, 'D', measure)]} (score" in sentence
    return found


def report_verdicts(layer, waves, sites) -> dict:
    """(wave, site, measure) -> the verdict in the board report's benchmark table."""
    found = {}
    for wave in waves:
        for site in sites:
            html = render_html(load_site_data(layer, site, wave))
            for measure, verdict in re.findall(
                    r"<tr data-measure='(\w+)'>.*?<td class='verdict'>(.*?)</td>", html):
                found[(wave, site, measure)] = unescape(verdict)
    return found


@pytest.fixture(scope="module")
def three_readers(published_sample, layer, verdicts):
    settings, report = published_sample
    waves = sorted(verdicts.index.get_level_values("wave").unique())
    sites = sorted(verdicts.index.get_level_values("site_code").unique())
    measures = sorted(set(zip(verdicts["measure_kind"],
                              verdicts.index.get_level_values("measure"))))
    scores = {}
    return {"summary": summary_verdicts(report, settings, scores), "summary scores": scores,
            "dashboard": dashboard_verdicts(settings, layer, waves, measures),
            "report": report_verdicts(layer, waves, sites)}


def test_summary_dashboard_and_report_give_the_published_words_cell_by_cell(
        verdicts, three_readers):
    published = verdicts["verdict"].to_dict()
    assert three_readers["dashboard"] == published
    assert three_readers["report"] == published
    # The summary lists every cell not in line (few on the demo, so every wave).
    summary = three_readers["summary"]
    assert summary == {cell: verdict for cell, verdict in published.items()
                       if verdict != IN_LINE}
    assert len(summary) >= 3
    # Beside each, the site's and the other sites' scores out of 100, as the dashboard.
    levels = headline(verdicts.reset_index()).set_index(["wave", "site_code", "measure"])
    for cell, (score, others) in three_readers["summary scores"].items():
        assert score == pytest.approx(levels.loc[cell, "mean"], abs=0.051), cell
        assert others == pytest.approx(levels.loc[cell, "others_mean"], abs=0.051), cell
    assert any(cell[2] in ("psysafety", "stigma", "pathways", "voice_peer")
               for cell in three_readers["summary scores"])


def truth(manifest: dict, site: str, scale: str) -> dict[int, str | None]:
    """Wave -> 'below' / 'above' / None: where the manifest says the cell is outside."""
    entry = next(t for t in manifest["site_truth"] if (t["site"], t["scale"]) == (site, scale))
    return {w["wave"]: w["outside"] for w in entry["waves"]}


def test_the_planted_low_site_reads_clearly_below_in_every_wave_everywhere(
        three_readers, sample_manifest):
    assert set(truth(sample_manifest, "D", "psysafety").values()) == {"below"}
    for reader in ("summary", "dashboard", "report"):
        found = three_readers[reader]
        assert [found[(wave, "D", "psysafety")] for wave in (2024, 2025, 2026)] == [
            "clearly below"] * 3, reader


def test_the_planted_high_site_reads_above_where_the_truth_says_so(verdicts,
                                                                   sample_manifest):
    for wave, side in truth(sample_manifest, "C", "pathways").items():
        verdict = verdicts.loc[(wave, "C", "pathways"), "verdict"]
        if side == "above":
            assert verdict == "clearly above", wave
        else:
            assert not verdict.startswith("clearly"), wave


def quiet_cells(manifest: dict) -> dict:
    """(wave, site, scale) -> true gap to the other sites, of cells the manifest does not
    call outside (their true gap is under its margin of 1.96 between-site SDs)."""
    return {(w["wave"], t["site"], t["scale"]): t["gap_to_others"]
            for t in manifest["site_truth"] for w in t["waves"] if w["outside"] is None}


def test_no_flag_points_the_wrong_way(verdicts, sample_manifest):
    """A site read clearly below (above) where the truth is in line is at least truly
    below (above) the others: an alarm may come early, never backwards."""
    quiet = quiet_cells(sample_manifest)
    flagged = verdicts[verdicts["flagged"]]
    for cell, row in flagged.iterrows():
        if cell in quiet:
            assert (quiet[cell] < 0) == (row["verdict"] == "clearly below"), cell


def test_no_site_without_a_true_effect_reads_clearly_outside(verdicts, sample_manifest):
    """A flag needs a real difference: every cell read clearly below or above has a true
    gap to the other sites of at least one between-site SD, in the flagged direction.

    Cells between one SD and the manifest's margin (1.96 SDs) may be flagged: a rule
    that finds 70% of planted outliers at a 5% false-alarm rate (bench/calibration.py)
    reads some sites early, and on the demo 7 of 147 such cells are."""
    quiet = quiet_cells(sample_manifest)
    one_sd = sample_manifest["site_effect_sd"]
    # (the truth is kept per scale; principles are averages of scales)
    flagged = verdicts[verdicts["flagged"] & (verdicts["measure_kind"] == "scale")]
    early = {}
    for cell, row in flagged.iterrows():
        gap = quiet.get(cell)
        if gap is None:     # truly outside: a right alarm
            continue
        assert abs(gap) >= one_sd and (gap < 0) == (row["verdict"] == "clearly below"), \
            (cell, gap, row["verdict"])
        early[cell] = gap
    assert len(early) <= 7, sorted(early)


def test_a_long_summary_keeps_to_the_latest_wave():
    """More cells not in line than the summary prints (national scale): the latest
    wave's alone, every one of them, in site and measure order."""
    cells = [{"wave": wave, "site_code": f"S{site:03d}", "measure_kind": "scale",
              "measure": "psysafety", "verdict": "clearly below", "z": -3.0}
             for wave in (2025, 2026) for site in range(MAX_VERDICT_ROWS)]
    rows = verdict_rows(SimpleNamespace(site_verdicts=cells[::-1]))
    assert [row[0] for row in rows] == [2026] * MAX_VERDICT_ROWS
    assert rows[0] == (2026, "S000", "scale psysafety", "clearly below")
    few = verdict_rows(SimpleNamespace(site_verdicts=cells[:3] + cells[-2:]))
    assert [(row[0], row[1]) for row in few] == [
        (2025, "S000"), (2025, "S001"), (2025, "S002"),
        (2026, f"S{MAX_VERDICT_ROWS - 2:03d}"), (2026, f"S{MAX_VERDICT_ROWS - 1:03d}")]


def test_the_difference_from_all_sites_excludes_zero_exactly_where_the_verdict_is_clear(
        layer, verdicts):
    """The benchmarks' difference from the other sites carries the verdict's limits, so
    the two tables cannot disagree about a cell."""
    bench = layer.query("select wave, site_code, measure, diff_vs_national, "
                        "diff_vs_national_low, diff_vs_national_high from benchmarks "
                        "where measure_kind in ('scale', 'principle')")
    bench = bench.set_index(["wave", "site_code", "measure"]).sort_index()
    assert bench.index.equals(verdicts.index)
    clear = (bench["diff_vs_national_low"] > 0) | (bench["diff_vs_national_high"] < 0)
    assert (clear == verdicts["flagged"]).all()
    assert (bench["diff_vs_national"] < 0).equals(verdicts["z"] < 0)


def test_the_peer_table_gives_the_difference_from_the_other_acute_trusts(
        published_sample, layer):
    settings, _ = published_sample
    row = layer.benchmarks("D", 2026, "scale").set_index("measure").loc["psysafety"]
    with admin(settings):
        body = benchmark_body(view_from_request("/benchmark", "?site=D&wave=2026", True),
                              "scale:psysafety")
    peers = page_table(body, "Site means in the peer group (each site's mean; sites shown "
                             "only with 10 or more responses)")
    shown = peers.set_index("Measure").loc["Team psychological safety"]
    # On the headline 0-100 scale a 1-5 difference is 25 times as many points.
    assert shown.iloc[-1] == (f"{25 * row['diff_vs_peer']:+.1f} "
                              f"({25 * row['diff_vs_peer_low']:+.1f} "
                              f"to {25 * row['diff_vs_peer_high']:+.1f})")
    assert row["others_in_peer"] == 3 and row["diff_vs_peer_high"] < 0
