"""Cell sums (pipeline.publish.cells) on a small hand-made store, against numpy.

Forty respondents at two sites of different types, with blanks, "don't know", declined
and missing attributes, are ingested for real; every statistic checked here is
recomputed in numpy from the rows as written, not from the store or pipeline.scoring.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.ingest.files import ingest_file
from pipeline.publish.cells import KEY_ORDER, NATIONAL, NOT_STATED, breakdown_groups, cell_sums
from pipeline.quality import analysis_view
from pipeline.store import Site, add_sites, add_wave, open_store
from tests.conftest import write_csv

#: sums of small integers and their means: exact up to float rounding
TOLERANCE = 1e-12
STAFF_GROUPS = ["consultant", "resident", "prefer_not_to_say", ""]


def _rows(instrument) -> list[dict[str, str]]:
    """40 respondents: sites A (acute trust) and C (support unit), waves 2024 and 2025,
    random answers with about one blank and one "don't know" in ten."""
    rng = np.random.default_rng(19)
    rows = []
    for number in range(40):
        row = {"response_id": f"r{number}", "site": "AC"[number % 2],
               "wave": "2025" if number < 30 else "2024",
               "staff_group": STAFF_GROUPS[number // 2 % 4], "pmq": "uk"}
        for item in instrument.items:
            top = 2 if item.response_scale == "yesno" else 5
            draw = rng.random()
            row[item.id] = "" if draw < 0.1 else "9" if draw < 0.2 else str(rng.integers(1, top + 1))
        rows.append(row)
    # One respondent answers only two items of each scale: no scale scores, still counted.
    for item in instrument.items:
        if item.kind == "scale" and item.id[-2:] not in ("01", "02"):
            rows[0][item.id] = ""
    return rows


@pytest.fixture(scope="module")
def store(tmp_path_factory, instrument, definition_yaml):
    """(cells, the rows as a frame with numbers, NaN for blank and "don't know")."""
    folder = tmp_path_factory.mktemp("cells")
    rows = _rows(instrument)
    with open_store(folder / "store.duckdb") as con:
        add_sites(con, [Site("A", "Tamar Valley Hospitals", "acute_trust", "South West"),
                        Site("C", "South East Professional Support Unit",
                             "professional_support_unit", "South East")])
        add_wave(con, 2024)
        add_wave(con, 2025)
        report = ingest_file(con, write_csv(folder / "rows.csv", rows), instrument,
                             definition_yaml)
        assert report.rows_accepted == 40
        analysis_view(con, exclude_flagged=False)
        cells = cell_sums(con, instrument)
    frame = pd.DataFrame(rows)
    items = [i.id for i in instrument.items]
    frame[items] = frame[items].replace({"": np.nan, "9": np.nan}).astype(float)
    return cells, frame


def _cell(cells, level, unit, measure, wave=2025, breakdown="all", grp="all"):
    found = cells[(cells.wave == wave) & (cells.level == level) & (cells.unit == unit)
                  & (cells.breakdown == breakdown) & (cells.grp == grp)
                  & (cells.measure == measure)]
    assert len(found) == 1
    return found.iloc[0]


def _scores(frame, instrument, scale_id) -> pd.Series:
    """Scale scores by hand: reverse-keyed items (6 - x), their mean when at least
    min_items are answered."""
    keyed = pd.DataFrame({i.id: 6 - frame[i.id] if i.reverse else frame[i.id]
                          for i in instrument.items_of(scale_id)})
    enough = keyed.notna().sum(axis=1) >= instrument.scale(scale_id).min_items
    return keyed.mean(axis=1).where(enough), keyed


def _check_scale_cell(cell, scores: pd.Series, keyed: pd.DataFrame):
    values = scores.dropna().to_numpy()
    assert cell.n == len(values)
    assert cell.s1 == pytest.approx(values.sum(), rel=TOLERANCE)
    assert cell.s2 == pytest.approx((values ** 2).sum(), rel=TOLERANCE)
    mean = cell.s1 / cell.n
    sd = np.sqrt((cell.s2 - cell.n * mean ** 2) / (cell.n - 1))
    assert mean == pytest.approx(values.mean(), rel=TOLERANCE)
    assert sd == pytest.approx(values.std(ddof=1), rel=1e-9)
    # % favourable counts every answered item of respondents with a score.
    scored = keyed[scores.notna()]
    assert cell.fav == int((scored >= 4).sum().sum())
    assert cell.fav_den == int(scored.notna().sum().sum())


@pytest.mark.parametrize("scale", ["stigma", "psysafety", "pathways"])
def test_a_site_scale_cell_holds_the_scores_sums(store, instrument, scale):
    cells, frame = store
    rows = frame[(frame.site == "A") & (frame.wave == "2025")]
    scores, keyed = _scores(rows, instrument, scale)
    _check_scale_cell(_cell(cells, "site", "A", scale), scores, keyed)
    assert _cell(cells, "site", "A", "responses").n == len(rows) == 15


def test_a_respondent_below_min_items_counts_as_a_response_but_not_in_a_scale(store,
                                                                               instrument):
    cells, frame = store
    scores, _ = _scores(frame[(frame.site == "A") & (frame.wave == "2025")], instrument,
                        "stigma")
    assert np.isnan(scores.loc[0])
    assert _cell(cells, "site", "A", "stigma").n == scores.notna().sum() < 15


def test_national_and_peer_cells_sum_the_sites(store, instrument):
    cells, frame = store
    rows = frame[frame.wave == "2025"]
    scores, keyed = _scores(rows, instrument, "pathways")
    _check_scale_cell(_cell(cells, "national", NATIONAL, "pathways"), scores, keyed)
    # Each site is the only one of its type: its peer group holds the same sums.
    site, peer = _cell(cells, "site", "C", "pathways"), _cell(cells, "peer",
                                                           "professional_support_unit",
                                                           "pathways")
    assert (peer.n, peer.s1, peer.s2, peer.fav) == (site.n, site.s1, site.s2, site.fav)


def test_declined_and_blank_attributes_form_not_stated_and_groups_add_up(store, instrument):
    cells, frame = store
    rows = frame[(frame.site == "C") & (frame.wave == "2025")]
    scores, keyed = _scores(rows, instrument, "psysafety")
    stated = rows.staff_group.replace({"prefer_not_to_say": NOT_STATED, "": NOT_STATED})
    for group in ("consultant", "resident", NOT_STATED):
        mask = stated == group
        _check_scale_cell(_cell(cells, "site", "C", "psysafety", breakdown="staff_group",
                                grp=group), scores[mask], keyed[mask])
    groups = cells[(cells.wave == 2025) & (cells.level == "site") & (cells.unit == "C")
                   & (cells.breakdown == "staff_group") & (cells.measure == "psysafety")]
    total = _cell(cells, "site", "C", "psysafety")
    assert groups.n.sum() == total.n and groups.s1.sum() == pytest.approx(total.s1)
    # Every option has its cell, chosen or not; nobody is a GP.
    assert sorted(groups.grp) == sorted(breakdown_groups(instrument)["staff_group"])
    assert _cell(cells, "site", "C", "psysafety", breakdown="staff_group", grp="gp").n == 0


def test_an_item_cell_is_keyed_and_splits_favourable_and_unfavourable(store, instrument):
    cells, frame = store
    rows = frame[(frame.site == "A") & (frame.wave == "2024")]
    reversed_item = next(i for i in instrument.items_of("stigma") if i.reverse)
    answers = (6 - rows[reversed_item.id]).dropna()
    cell = _cell(cells, "site", "A", reversed_item.id, wave=2024)
    assert (cell.n, cell.fav_den) == (len(answers), len(answers))
    assert cell.s1 == answers.sum() and cell.s2 == (answers ** 2).sum()
    assert (cell.fav, cell.unf) == ((answers >= 4).sum(), (answers <= 2).sum())
    yes_no = frame.loc[(frame.site == "A") & (frame.wave == "2024"), "oc_needed"].dropna()
    cell = _cell(cells, "site", "A", "oc_needed", wave=2024)
    assert (cell.n, cell.fav, cell.unf) == (len(yes_no), (yes_no == 2).sum(),
                                            (yes_no == 1).sum())
    # Items are counted for unit totals only.
    assert cells[(cells.measure_kind == "item") & (cells.breakdown != "all")].empty


def test_a_principle_is_the_mean_of_its_scale_scores_on_0_100(store, instrument):
    cells, frame = store
    rows = frame[frame.wave == "2025"]
    principle = next(p for p in instrument.principles if len(p.scales) > 1)
    scores = pd.concat([_scores(rows, instrument, s)[0] for s in principle.scales], axis=1)
    values = ((scores.mean(axis=1) - 1) * 25).dropna()
    cell = _cell(cells, "national", NATIONAL, principle.id)
    assert cell.n == len(values)
    assert cell.s1 == pytest.approx(values.sum(), rel=TOLERANCE)
    assert cell.s2 == pytest.approx((values ** 2).sum(), rel=TOLERANCE)
    assert pd.isna(cell.fav)


def test_cells_come_in_key_order(store):
    cells, _ = store
    keys = cells[list(KEY_ORDER)]
    assert keys.equals(keys.sort_values(list(KEY_ORDER)).reset_index(drop=True))
    assert not keys.duplicated().any()
