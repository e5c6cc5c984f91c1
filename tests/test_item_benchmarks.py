"""Question-level benchmarking (issue 21, point 4): the published `item_benchmarks` table
against a direct computation from the cells, a planted change found, the Principle page
and the board report giving the same words and numbers, and the anonymity rules."""

from __future__ import annotations

import json
import re
import shutil
from html import unescape

import duckdb
import numpy as np
import pandas as pd
import plotly.utils
import pytest
from scipy.stats import chi2_contingency

from dashboard.accounts import AccountBook, LoginThrottle
from dashboard.app import create_app, render_page
from outputs.site_report import load_site_data, render_html
from pipeline.ingest.files import ingest_file
from pipeline.psychometrics.stage import run_psychometrics
from pipeline.publish.verify import DisclosureError, verify_published
from pipeline.publish.writer import publish
from pipeline.store import load_reference_data, open_store
from published.layout import MIN_SITES_FOR_DISTRIBUTION, VERDICTS
from published.questions import (COLUMNS, PEER_COLUMNS, biggest_changes, change_sentence,
                                 of_principle, question_rows)
from published.reader import PublishedLayer
from stats.verdicts import site_verdicts
from survey.settings import SAMPLES_DIR, Settings
from tests.pages import as_text, figures, markdown_tables, signed_in

PASSWORD = "a long enough password"


def read(path, sql, params=()):
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql, list(params)).df()


@pytest.fixture(scope="module")
def layer_path(published_sample):
    settings, _ = published_sample
    return settings.published_path


@pytest.fixture(scope="module")
def site_items(layer_path):
    """Every whole-site item cell of the sample, shown or hidden."""
    return read(layer_path, "select wave, unit as site_code, peer_group, measure, n, "
                            "pct_favourable, suppressed from cells where level = 'site' and "
                            "breakdown = 'all' and measure_kind = 'item'")


@pytest.fixture(scope="module")
def table(layer_path):
    return read(layer_path, "select * from item_benchmarks")


def test_item_rows_are_the_shown_cells_with_peer_figures_and_last_year_from_them(
        table, site_items):
    shown = site_items[~site_items["suppressed"]]
    key = ["wave", "site_code", "measure"]
    assert len(table) == len(shown) > 900
    merged = table.merge(shown, on=key, suffixes=("", "_cell"), validate="one_to_one")
    assert len(merged) == len(table)
    np.testing.assert_array_equal(merged["n"], merged["n_cell"])
    np.testing.assert_allclose(merged["pct_favourable"], merged["pct_favourable_cell"])
    waves = sorted(site_items["wave"].unique())
    for row in merged.sample(120, random_state=3).itertuples():
        others = shown[(shown["wave"] == row.wave) & (shown["measure"] == row.measure)
                       & (shown["peer_group"] == row.peer_group)
                       & (shown["site_code"] != row.site_code)]["pct_favourable"]
        assert row.peer_sites == len(others) + 1
        if len(others):
            assert (row.peer_best, row.peer_worst) == (others.max(), others.min())
            assert row.peer_median == pytest.approx(others.median(), abs=1e-12)
        before = waves[waves.index(row.wave) - 1] if row.wave != waves[0] else None
        last = site_items[(site_items["wave"] == before)
                          & (site_items["site_code"] == row.site_code)
                          & (site_items["measure"] == row.measure)]
        if before is None or last.empty or last["suppressed"].iloc[0]:
            assert pd.isna(row.pct_previous) and pd.isna(row.change_verdict)
        else:
            assert row.pct_previous == pytest.approx(last["pct_favourable"].iloc[0])
            assert row.previous_wave == before
            assert row.change == pytest.approx(row.pct_favourable - row.pct_previous)


def test_the_change_test_is_the_chi_square_without_correction_and_bh_per_site_wave(table):
    """R: prop.test(c(x1, x0), c(n1, n0), correct = FALSE)$p.value; its interval is Wald."""
    compared = table[table["change"].notna()]
    for row in compared.sample(15, random_state=1).itertuples():
        x1 = round(row.pct_favourable * row.n / 100)
        x0 = round(row.pct_previous * row.n_previous / 100)
        _, p, _, _ = chi2_contingency([[x1, row.n - x1], [x0, row.n_previous - x0]],
                                      correction=False)
        assert row.change_p == pytest.approx(p, rel=1e-9)
        p1, p0 = row.pct_favourable / 100, row.pct_previous / 100
        half = 196 * np.sqrt(p1 * (1 - p1) / row.n + p0 * (1 - p0) / row.n_previous)
        assert row.change_high - row.change == pytest.approx(half, rel=1e-3)
    # Benjamini-Hochberg within one site and wave: q = min over ranks >= j of p m / rank.
    family = compared[(compared["site_code"] == "A")
                      & (compared["wave"] == compared["wave"].max())]
    p = np.sort(family["change_p"].to_numpy())
    m = len(p)
    expected = np.minimum.accumulate((p * m / np.arange(1, m + 1))[::-1])[::-1].clip(max=1)
    np.testing.assert_allclose(np.sort(family["change_q"].to_numpy()), expected)


def test_the_verdict_is_the_funnel_rule_on_the_favourable_proportion(table):
    wave = table["wave"].max()
    for measure in ("hs03", "cf01"):
        group = table[(table["wave"] == wave) & (table["measure"] == measure)]
        p, n = group["pct_favourable"].to_numpy() / 100, group["n"].to_numpy(float)
        # The proportion's variance at (x + 1/2) / (n + 1), never 0 for an all-or-none site.
        adjusted = (p * n + 0.5) / (n + 1)
        frame = pd.DataFrame({"n": n, "mean": 100 * p,
                              "sd": 100 * np.sqrt(adjusted * (1 - adjusted))})
        assert (frame["sd"] > 0).all() and len(frame) >= 4
        expected = site_verdicts(frame)
        assert list(group["verdict"]) == list(expected["verdict"])
        np.testing.assert_allclose(group["low"], expected["low"])
        assert set(group["verdict"]) <= set(VERDICTS)


def test_no_row_rests_on_a_hidden_cell(table, site_items):
    hidden = site_items[site_items["suppressed"]]
    key = ["wave", "site_code", "measure"]
    assert hidden[key].merge(table[key]).empty
    # Last year's value is never a hidden cell's.
    last = table.dropna(subset=["previous_wave"])[["previous_wave", "site_code", "measure"]]
    last = last.rename(columns={"previous_wave": "wave"}).astype({"wave": int})
    assert hidden[key].merge(last).empty
    assert table["n"].min() >= 10 and table["n_previous"].dropna().min() >= 10


# -- readers -------------------------------------------------------------------------------

def app_for(settings):
    """The dashboard over `settings`' published layer, with an admin and A's director."""
    book = AccountBook(settings.accounts_path)
    for username, role, site in (("q-admin", "admin", None), ("q-dir-a", "director", "A")):
        book.add(username, role, PASSWORD, site)
    return create_app(settings, secret_key=b"test secret", throttle=LoginThrottle(free=3))


@pytest.fixture(scope="module")
def app(published_sample):
    return app_for(published_sample[0])


def test_a_director_with_fewer_than_ten_peer_sites_sees_no_best_or_worst(app, layer_path):
    rows = read(layer_path, "select peer_sites, peer_best, peer_median, peer_worst, "
                            "pct_favourable from item_benchmarks where site_code = 'A' and "
                            "wave = 2026 and measure in (select measure from measures where "
                            "principles like '%P6%')")
    assert len(rows) and (rows["peer_sites"] < MIN_SITES_FOR_DISTRIBUTION).all()
    with signed_in(app, "q-dir-a"):
        director, _ = render_page("/principle", "?site=A&wave=2026&principle=P6")
    with signed_in(app, "q-admin"):
        admin, _ = render_page("/principle", "?site=A&wave=2026&principle=P6")
    shown = markdown_tables(director)["The principle's questions"]
    assert not {"Peer best", "Peer average (median)", "Peer worst"} & set(shown.columns)
    assert list(shown.columns) == [h for c, h in COLUMNS.items() if c not in PEER_COLUMNS]
    assert "difference from the other sites' average" in as_text(director)
    # No peer figure in the chart either: its traces are the site's and last year's.
    question_chart = [f for f in figures(director) if "questions" in str(
        f["layout"]["title"]["text"])]
    assert [t["name"] for t in question_chart[0]["data"]] == ["last year", "this site"]
    # An admin, who sees every site by name, is given them.
    full = markdown_tables(admin)["The principle's questions"]
    expected = sorted(f"{v:.1f}" for v in rows["peer_best"])
    assert sorted(full["Peer best"]) == expected


# -- planted data ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def planted(tmp_path_factory, instrument, definition_yaml):
    """The sample with two things planted, ingested and published for real (k = 10):
    at site A in 2026 everyone who disagreed or was neutral on hs03 agrees instead (a
    large improvement), and at site E in 2025 only 8 people answered hs05 (a hidden cell
    whose true % favourable is known here)."""
    folder = tmp_path_factory.mktemp("planted")
    answers = pd.read_csv(SAMPLES_DIR / "responses_clean.csv", dtype=str, keep_default_na=False)
    a_2026 = (answers["site"] == "A") & (answers["wave"] == "2026")
    answers.loc[a_2026 & answers["hs03"].isin(["2", "3"]), "hs03"] = "4"
    e_2025 = np.flatnonzero((answers["site"] == "E") & (answers["wave"] == "2025")
                            & answers["hs05"].isin(["1", "2", "3", "4", "5"]))
    answers.loc[answers.index[e_2025[8:]], "hs05"] = ""
    few = answers.loc[answers.index[e_2025[:8]], "hs05"]
    path = answers.to_csv(folder / "planted.csv", index=False) or folder / "planted.csv"
    store = folder / "store.duckdb"
    settings = Settings(db_path=store)
    with open_store(store) as con:
        load_reference_data(con, SAMPLES_DIR, instrument)
        ingest_file(con, path, instrument, definition_yaml)
        publish(con, instrument, settings, run_psychometrics(con, instrument, settings))
    # hs05 is worded positively: agree (4) and strongly agree (5) are favourable.
    hidden_pct = 100 * few.isin(["4", "5"]).mean()
    return settings, hidden_pct


def test_a_planted_improvement_is_found_and_leads_the_most_improved(planted):
    path = planted[0].published_path
    with PublishedLayer.open(path) as layer:
        row = layer.item_benchmarks("A", 2026).set_index("measure").loc["hs03"]
        assert row["change"] > 20 and row["change_low"] > 0
        assert row["change_verdict"] == "improved" and row["change_q"] < 0.05
        improved, declined = biggest_changes(question_rows(layer, "A", 2026))
    assert improved["measure"].iloc[0] == "hs03"
    assert (improved["change_verdict"] == "improved").all()
    assert improved["change_value"].is_monotonic_decreasing
    assert (declined["change_verdict"] == "declined").all()
    # In words: the item's own full stop does not end the sentence half-way.
    said = change_sentence(improved.iloc[0])
    assert said.startswith("hs03: ") and re.search(r"[a-z]: \d+\.\d% in 2025, \d+\.\d% now "
                                                    r"\(\+\d+\.\d points, ", said), said
    assert ".:" not in said


def test_a_hidden_item_cell_takes_no_part_anywhere(planted):
    path, hidden_pct = planted[0].published_path, planted[1]
    cell = read(path, "select n, pct_favourable, suppressed from cells where level = 'site' "
                      "and unit = 'E' and wave = 2025 and breakdown = 'all' and measure = 'hs05'")
    assert cell["suppressed"].iloc[0] and pd.isna(cell["pct_favourable"].iloc[0])
    table = read(path, "select * from item_benchmarks where measure = 'hs05'")
    assert table[(table["site_code"] == "E") & (table["wave"] == 2025)].empty
    e_2026 = table[(table["site_code"] == "E") & (table["wave"] == 2026)].iloc[0]
    assert pd.isna(e_2026["pct_previous"]) and pd.isna(e_2026["change"])
    # Suppression hid more than E (C's cell too: the peer group's total less C would
    # give E's); no hidden site has a row, and the shown ones' peer figures are theirs.
    hidden = set(read(path, "select unit from cells where level = 'site' and wave = 2025 "
                            "and breakdown = 'all' and measure = 'hs05' and suppressed")["unit"])
    shown_2025 = table[table["wave"] == 2025]
    assert "E" in hidden and not hidden & set(shown_2025["site_code"])
    assert len(shown_2025) == 7 - len(hidden)
    numbers = table.select_dtypes("number").to_numpy(float).ravel()
    assert not np.isclose(numbers, hidden_pct, rtol=0, atol=1e-9).any()


def report_questions(html: str) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """The report's question table (by item id) and its most improved / declined lists."""
    section = html[html.index('<section class="questions">'):]
    section = section[:section.index("</section>")]
    heads = [unescape(h) for h in re.findall(r"<th>(.*?)</th>", section)]
    rows = {item: [unescape(c) for c in re.findall(r"<td>(.*?)</td>", cells)]
            for item, cells in re.findall(r"<tr data-item='(\w+)'>(.*?)</tr>", section)}
    lists = {direction: [unescape(li) for li in re.findall(r"<li>(.*?)</li>", block)]
             for direction, block in re.findall(r"<ul class='questions-(\w+)'>(.*?)</ul>",
                                                section)}
    return pd.DataFrame.from_dict(rows, orient="index", columns=heads), lists


def page_lists(component) -> dict[str, list[str]]:
    """The Principle page's most improved / declined lists, by direction."""
    found = {}

    def walk(node):
        if isinstance(node, dict):
            props = node.get("props", {})
            name = str(props.get("className", ""))
            if name.startswith("questions-"):
                found[name.removeprefix("questions-")] = [
                    li["props"]["children"] for li in props["children"][1]["props"]["children"]]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(json.dumps(component, cls=plotly.utils.PlotlyJSONEncoder)))
    return found


def test_the_board_report_and_the_principle_page_give_the_same_numbers(planted):
    """Site A in 2026 of the planted layer, as its director sees the Principle page of the
    principle holding the least favourable question, and as the board report prints it."""
    settings = planted[0]
    with PublishedLayer.open(settings.published_path) as layer:
        html = render_html(load_site_data(layer, "A", 2026))
        every = question_rows(layer, "A", 2026)
    report, report_lists = report_questions(html)
    assert len(report) == 10
    assert list(report.index) == list(every.sort_values("pct_favourable")["measure"][:10])
    principle = every.set_index("measure").loc[report.index[0], "principles"].split(",")[0]
    app = app_for(settings)
    with signed_in(app, "q-dir-a"):
        page, _ = render_page("/principle", f"?site=A&wave=2026&principle={principle}")
    shown = markdown_tables(page)["The principle's questions"]
    shown.index = shown["Question"].str.split(":").str[0]
    both = report.index.intersection(shown.index)
    assert len(both) >= 1 and list(report.columns) == list(shown.columns)
    assert (report.loc[both].to_numpy().tolist()
            == shown.loc[both, report.columns].to_numpy().tolist())
    # The numbers are the published ones, rounded once.
    published = every.set_index("measure").loc[both]
    assert list(report.loc[both, "% favourable"]) == [
        f"{v:.1f}" for v in published["pct_favourable"]]
    # The same most improved and most declined questions, in the same words; hs03's
    # planted improvement leads.
    assert page_lists(page) == report_lists
    assert report_lists["improved"][0].startswith("hs03: ")
    # Each principle's summary names its least favourable question mid-sentence: "... wrong
    # (11.6%).", not "... wrong. (11.6%).".
    named = []
    with signed_in(app, "q-dir-a"):
        for each in set(every["principles"].str.split(",").explode()):
            page, _ = render_page("/principle", f"?site=A&wave=2026&principle={each}")
            found = re.search(r"questions shown; the least favourable is ([^\"]*?) "
                              r"\((\d+\.\d)%\)\. ", as_text(page))
            assert found, each
            named.append(found[1])
    assert len(named) == 6 and not [n for n in named if n.endswith(".")], named
    # Some are positively worded (the item's text last, not the note's bracket), so the
    # check has a full stop to catch.
    assert [n for n in named if not n.endswith(")")]
    assert "points" in report_lists["improved"][0]


def test_one_principles_questions_are_its_rows_of_all_the_questions(planted):
    """The Principle page reads every question once and takes its principle's from them:
    the same rows, in the same order, as reading that principle alone, for every principle
    and both ways of showing peers."""
    with PublishedLayer.open(planted[0].published_path) as layer:
        principles = list(layer.measures().query("measure_kind == 'principle'")["measure"])
        for hide in (True, False):
            every = question_rows(layer, "A", 2026, None, hide)
            seen = set()
            for principle in principles:
                alone = question_rows(layer, "A", 2026, principle, hide)
                assert len(alone) >= 1
                pd.testing.assert_frame_equal(of_principle(every, principle), alone)
                seen |= set(alone["measure"])
            assert seen == set(every["measure"])
    assert len(principles) == 6


def test_the_verifier_refuses_question_rows_that_rest_on_hidden_or_invented_cells(
        planted, tmp_path):
    """The independent verifier proves property 5 on the file: a row for E's hidden cell,
    or a peer best that is no shown site's value, fails publication."""
    source = planted[0].published_path
    assert verify_published(source, 10).problems == []
    for label, sql in (
            ("row is not a shown cell", "insert into item_benchmarks (wave, site_code, "
             "peer_group, measure, n, pct_favourable) values (2025, 'E', "
             "'professional_support_unit', 'hs05', 10, 25.0)"),
            ("peer_best is no other shown site's value", "update item_benchmarks set "
             "peer_best = peer_best + 0.5 where site_code = 'A' and wave = 2026 and "
             "measure = 'hs03'"),
            ("last year's value is not the site's shown cell", "update item_benchmarks set "
             "pct_previous = pct_previous + 1e-9 where site_code = 'A' and wave = 2026")):
        copy = tmp_path / f"{len(label)}.duckdb"
        shutil.copyfile(source, copy)
        with duckdb.connect(str(copy)) as con:
            con.execute(sql)
        with pytest.raises(DisclosureError, match=label):
            verify_published(copy, 10)
