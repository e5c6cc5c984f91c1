"""Did it move? (issue 24, points 4 and 5): a site's change in a principle against its
peers' change over the same waves, from R golden values, on a published layer of
generated data with planted changes, and in the board report.

The planted layer is the committed clean sample with two changes between the 2025 and
2026 waves, each of 10 points: site A's answers on principle P4's questions shift
towards the supportive end (its peers' do not), and every acute trust's (A and its
peers D, F, G) on P2's. Unplanted, A's P2 changed within 0.2 points of its peers' mean
from 2025 to 2026, so a shared rise should leave the difference near zero.
"""

from __future__ import annotations

import csv
import re
import json
from datetime import date
from html import unescape
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from published.layout import MOVED_CAVEAT, MOVED_NOT_COMPARED, MOVED_VERDICTS
from published.moved import FIELDWORK_OPENS, moved_rows, moved_sentence, waves_around
from published.reader import PublishedLayer
from stats import change
from stats.change import MIN_PEERS, moved_against_peers

GOLDEN = json.loads((Path(__file__).parent / "expected" / "did_it_move.json")
                    .read_text(encoding="utf-8"))
#: R's values are printed to 15 significant digits; ours agree to rounding.
TOLERANCE = 1e-9
#: Planted rise of a site's mean answer (1-5) on a principle's questions: 10 points.
PLANTED_STEP = 0.4


def _moved(case: dict):
    return moved_against_peers(case["before"][0], case["se_b"][0], case["after"][0],
                               case["se_a"][0], case["before"][1:], case["se_b"][1:],
                               case["after"][1:], case["se_a"][1:])


@pytest.mark.parametrize("name, verdict", [
    ("planted", "clearly did better than peers"),
    ("shared", "moved with peers"),
    ("floored", "did better than peers, not certain"),
])
def test_the_difference_and_its_interval_are_rs(name, verdict):
    golden = GOLDEN[name]
    moved = _moved(golden)
    for field in ("difference", "site_change", "peers_change", "peers_change_se", "df",
                  "low", "high"):
        np.testing.assert_allclose(getattr(moved, field), golden[field], rtol=0,
                                   atol=TOLERANCE, err_msg=field)
    assert moved.peers == len(golden["before"]) - 1
    assert moved.verdict == verdict and moved.reason == ""
    # "not certain" is the 90% interval excluding 0 while the 95% one does not.
    if "not certain" in verdict:
        assert golden["low90"] > 0 > golden["low"]


def test_a_fall_below_the_peers_reads_as_moved_less():
    golden = GOLDEN["planted"]
    moved = moved_against_peers(golden["after"][0], golden["se_a"][0], golden["before"][0],
                                golden["se_b"][0], golden["after"][1:], golden["se_a"][1:],
                                golden["before"][1:], golden["se_b"][1:])
    assert moved.difference == pytest.approx(-golden["difference"])
    assert moved.verdict == "clearly did worse than peers"


def test_fewer_than_three_peers_with_both_scores_are_not_compared():
    # Three peers given, but one has no score after: two remain.
    moved = moved_against_peers(50, 1, 60, 1, [50, 52, 49], [1, 1, 1], [50, np.nan, 49],
                                [1, np.nan, 1])
    assert moved.verdict == change.NOT_COMPARED and moved.peers == MIN_PEERS - 1
    assert moved.site_change == 10 and np.isnan(moved.difference)
    assert moved.reason == ("2 other sites of the peer group with a shown score in both "
                            "waves; 3 or more are needed")
    missing = moved_against_peers(50, 1, np.nan, np.nan, [50] * 4, [1] * 4, [51] * 4, [1] * 4)
    assert missing.verdict == change.NOT_COMPARED and "no shown score" in missing.reason


def test_the_readers_words_are_the_statistics():
    assert MOVED_VERDICTS == change.VERDICTS and MOVED_NOT_COMPARED == change.NOT_COMPARED


@pytest.mark.parametrize("start, before, after", [
    (date(2025, 3, 1), 2024, 2025),      # before the 2025 fieldwork opened
    (date(2025, 9, 30), 2024, 2025),
    (date(2025, 10, 1), 2025, 2026),     # the 2025 wave already under way
    (date(2025, 11, 15), 2025, 2026),
    (date(2026, 11, 1), 2026, None),     # no wave after yet
    (date(2023, 5, 1), None, 2024),
])
def test_the_waves_around_an_action(start, before, after):
    assert FIELDWORK_OPENS == (10, 1)
    assert waves_around(start, [2024, 2025, 2026]) == (before, after)


# -- a published layer of generated data with planted changes ---------------------------

def _plant(rows: list[dict], instrument, sites: set[str], principle: str, wave: str,
           rng: np.random.Generator) -> None:
    """Raise the mean answer of each of `sites` in `wave` on `principle`'s questions by
    PLANTED_STEP: answers move one step towards support (down for a negatively worded
    question, as answered) at a rate that makes up for the answers already at the end,
    so that a site with many at the top rises as much as one with few (a plain share
    would raise it less: the ceiling, not a difference in what happened)."""
    scales = next(p.scales for p in instrument.principles if p.id == principle)
    items = [i for i in instrument.items if i.scale in scales]
    for site in sites:
        chosen = [r for r in rows if r["site"] == site and r["wave"] == wave]
        answers = [(row, item) for row in chosen for item in items
                   if row[item.id] in ("1", "2", "3", "4", "5")]
        movable = [(row, item) for row, item in answers
                   if row[item.id] != ("1" if item.reverse else "5")]
        rate = PLANTED_STEP * len(answers) / len(movable)
        for row, item in movable:
            if rng.random() < rate:
                row[item.id] = str(int(row[item.id]) + (-1 if item.reverse else 1))


@pytest.fixture(scope="module")
def planted(tmp_path_factory, instrument, definition_yaml):
    """Settings of a store and published layer of the clean sample with P4 raised at A
    alone and P2 at every acute trust, from 2025 to 2026."""
    from pipeline.ingest.files import ingest_file
    from pipeline.psychometrics.stage import run_psychometrics
    from pipeline.publish.writer import publish
    from pipeline.store import load_reference_data, open_store
    from survey.settings import SAMPLES_DIR, Settings

    folder = tmp_path_factory.mktemp("did-it-move")
    with (SAMPLES_DIR / "responses_clean.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    rng = np.random.default_rng(24)
    _plant(rows, instrument, {"A"}, "P4", "2026", rng)
    _plant(rows, instrument, {"A", "D", "F", "G"}, "P2", "2026", rng)
    path = folder / "responses.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    settings = Settings(db_path=folder / "store.duckdb")
    with open_store(settings.db_path) as con:
        load_reference_data(con, SAMPLES_DIR, instrument)
        ingest_file(con, path, instrument, definition_yaml)
        publish(con, instrument, settings, run_psychometrics(con, instrument, settings))
    return settings


@pytest.fixture(scope="module")
def layer(planted):
    with PublishedLayer.open(planted.published_path) as opened:
        yield opened


def _action(id_: int, site: str, principle: str, start: str, review: str = "2026-12-31",
            status: str = "in progress", what: str = "An action") -> dict:
    return {"id": id_, "site_code": site, "principle": principle, "what": what,
            "owner_role": "Director of medical education", "start": start, "review": review,
            "status": status, "note": ""}


#: Started between the 2025 and 2026 fieldwork, so compared from 2025 to 2026.
ACTIONS = pd.DataFrame([
    _action(1, "A", "P4", "2026-02-01"),
    _action(2, "A", "P2", "2026-02-01"),
    _action(3, "A", "P1", "2026-11-01"),             # no wave after it yet
    _action(4, "C", "P2", "2026-02-01"),             # C has one other support unit
    _action(5, "D", "P2", "2026-02-01"),
])


def _cells(layer, principle: str) -> pd.DataFrame:
    return layer.query("select unit, wave, mean from cells where level = 'site' and "
                       "breakdown = 'all' and measure_kind = 'principle' and measure = ? "
                       "and unit in ('A', 'D', 'F', 'G')", [principle]
                       ).pivot(index="unit", columns="wave", values="mean")


def test_a_planted_rise_at_one_site_moved_more_than_its_peers(layer):
    rows = moved_rows(layer, "A", ACTIONS).set_index("action_id")
    assert list(rows.index) == [1, 2, 3]               # A's own actions, no other site's
    p4 = rows.loc[1]
    cells = _cells(layer, "P4")
    changes = cells[2026] - cells[2025]
    assert (p4["wave_before"], p4["wave_after"], p4["peers"]) == (2025, 2026, 3)
    assert p4["site_change"] == pytest.approx(changes["A"], abs=1e-9)
    assert p4["peers_change"] == pytest.approx(changes[["D", "F", "G"]].mean(), abs=1e-9)
    assert p4["difference"] == pytest.approx(changes["A"] - changes[["D", "F", "G"]].mean())
    assert p4["site_change"] > 8 and abs(p4["peers_change"]) < 3 and p4["low"] > 0
    assert p4["verdict"] == "clearly did better than peers"


def test_a_rise_shared_by_every_peer_moved_with_peers(layer):
    p2 = moved_rows(layer, "A", ACTIONS).set_index("action_id").loc[2]
    changes = _cells(layer, "P2")[2026] - _cells(layer, "P2")[2025]
    # Every acute trust rose by about the planted 10 points, A no more than the others.
    assert changes.min() > 8 and p2["site_change"] > 8 and p2["peers_change"] > 8
    assert abs(p2["difference"]) < 2
    assert p2["low"] < 0 < p2["high"] and p2["verdict"] == "moved with peers"


def test_actions_without_enough_peers_or_a_wave_after_are_not_compared(layer):
    a = moved_rows(layer, "A", ACTIONS).set_index("action_id").loc[3]
    assert a["verdict"] == MOVED_NOT_COMPARED
    assert a["reason"] == "no wave after the action yet (it started 2026-11-01)"
    c = moved_rows(layer, "C", ACTIONS)
    assert list(c["action_id"]) == [4] and c["verdict"].iloc[0] == MOVED_NOT_COMPARED
    assert c["reason"].iloc[0].startswith("1 other site of the peer group")
    assert c["peers"].iloc[0] == 1


def test_every_reading_says_it_is_not_proof(layer):
    rows = moved_rows(layer, "A", ACTIONS)
    assert rows.attrs["caveat"] == MOVED_CAVEAT
    sentence = moved_sentence(rows.iloc[0])
    assert sentence.startswith("P4 moved +") and "from 2025 to 2026" in sentence
    assert "clearly did better than peers" in sentence
    assert sentence.endswith("This is what happened alongside the action, not proof that "
                             "it caused it.")
    assert moved_sentence(rows.iloc[2]) == ("Not compared: no wave after the action yet "
                                            "(it started 2026-11-01).")





# -- the board report -------------------------------------------------------------------

#: The report's date: A's first action is due for review, its second not yet.
REPORT_DAY = date(2026, 12, 15)


def _plan_rows(html: str, table_class: str | None = None) -> dict[str, str]:
    """data-action id -> the row's text, in the report's Action plan section (the
    "did it move?" table when `table_class` is 'moved', else the plan's own)."""
    section = re.search(r"<section class=\"plan\">(.*?)</section>", html, re.S).group(1)
    tables = re.findall(r"<table( class='moved')?>(.*?)</table>", section, re.S)
    body = next(t for cls, t in tables if bool(cls) == (table_class == "moved"))
    return {m.group(1): unescape(re.sub(r"<[^>]+>", " ", m.group(2)))
            for m in re.finditer(r"<tr data-action='(\d+)'>(.*?)</tr>", body, re.S)}


def test_the_board_report_shows_the_sites_plan_and_whether_the_due_action_moved(
        planted, layer, tmp_path):
    from outputs.site_report import write_site_report
    from plans.store import ActionBook

    book = ActionBook(planted.plans_path)
    due = book.add("A", "P4", "Rota <b>huddles</b> & protected time", "Clinical director",
                   "2026-02-01", "2026-12-01", "director-a", status="in progress")
    later = book.add("A", "P2", "Publish the route into support", "Guardian of safe working",
                     "2026-02-01", "2027-06-30", "director-a")
    other = book.add("D", "P4", "Trent's own plan for P4", "Medical director",
                     "2026-02-01", "2026-06-30", "director-d", status="done")
    files = write_site_report(planted.published_path, "A", 2026, tmp_path, pdf=False,
                              plans_path=planted.plans_path, on=REPORT_DAY)
    html = files.html.read_text(encoding="utf-8")

    plan = _plan_rows(html)
    assert set(plan) == {str(due["id"]), str(later["id"])}
    assert "Rota <b>huddles</b> & protected time" in plan[str(due["id"])]
    assert "Clinical director" in plan[str(due["id"])] and "2026-12-01" in plan[str(due["id"])]
    assert "in progress" in plan[str(due["id"])] and "planned" in plan[str(later["id"])]
    # The user's text is escaped: no tag of theirs reaches the page.
    assert "Rota &lt;b&gt;huddles&lt;/b&gt; &amp; protected time" in html
    assert "<b>huddles</b>" not in html

    moved = _plan_rows(html, "moved")
    assert list(moved) == [str(due["id"])]           # the later review is not due yet
    expected = moved_rows(layer, "A", book.list(site="A")).set_index("action_id").loc[
        due["id"]]
    row = moved[str(due["id"])]
    assert "2025 to 2026" in row and "clearly did better than peers" in row
    assert f"{expected['difference']:.1f}" in row and f"{expected['low']:.1f}" in row
    assert MOVED_CAVEAT in unescape(html)

    # Another site's actions never appear, not even its done one.
    assert "own plan for P4" not in html and f"data-action='{other['id']}'" not in html


def test_a_report_without_actions_says_how_to_record_them(layer):
    from outputs.site_report import load_site_data, render_html

    html = render_html(load_site_data(layer, "A", 2026, None, REPORT_DAY))
    assert "No actions are recorded for this site yet" in html


def test_the_display_rows_read_as_the_numbers(layer):
    from published.moved import DISPLAY_COLUMNS, moved_display

    rows = moved_rows(layer, "A", ACTIONS)
    shown = moved_display(rows, layer.measure_names(("principle",)))
    assert list(shown.columns) == list(DISPLAY_COLUMNS)
    first, later = rows.iloc[0], shown.iloc[0]
    assert later["principle"].startswith("P4 ") and later["waves"] == "2025 to 2026"
    assert later["difference"] == (f"+{first['difference']:.1f} (+{first['low']:.1f} to "
                                   f"+{first['high']:.1f})")
    assert later["peers_change"].endswith("(3 other sites)")
    assert later["verdict"] == "clearly did better than peers"
    assert shown.iloc[2]["waves"] == ("not compared: no wave after the action yet (it "
                                      "started 2026-11-01)")
    assert shown.iloc[2]["difference"] == "–"


def test_the_actions_page_shows_whether_each_action_moved(layer):
    from dashboard.pages.actions import moved_section
    from tests.pages import markdown_tables

    plan = pd.concat([ACTIONS, pd.DataFrame([_action(6, "A", "P5", "2026-02-01",
                                                     status="dropped")])])
    section = moved_section(layer, "A", plan)
    shown = markdown_tables(section)["Did it move? Each action against the peer group"]
    rows = moved_rows(layer, "A", ACTIONS)
    # A's three actions (not D's or C's, not the dropped one), as the report reads them.
    assert list(shown["Did it move?"]) == list(rows["verdict"])
    assert shown["Did it move?"].iloc[0] == "clearly did better than peers"
    assert shown["Difference (95% interval)"].iloc[0].startswith(
        f"+{rows['difference'].iloc[0]:.1f} (")
    assert MOVED_CAVEAT in str(section[2].children)
    assert moved_section(layer, "A", plan[plan["status"] == "dropped"]) == []
