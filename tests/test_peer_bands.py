"""Peers' respondent counts as bands: every band holds three or more peers, a point is
drawn inside its band, and the board report draws other sites at their band, never at
their count."""

from __future__ import annotations

from contextlib import closing

import numpy as np
import pytest

from outputs.peer_bands import MIN_PEERS_PER_BAND, band_of, count_bands, plotted_count
from published.reader import open_published
from outputs.site_report import load_site_data


@pytest.mark.parametrize("counts, labels", [
    ([90, 140, 220, 120, 200, 180], {90: "50-149", 120: "50-149", 140: "50-149",
                                     180: "150 or more", 200: "150 or more",
                                     220: "150 or more"}),
    ([12, 15, 3000], {12: "10 or more", 15: "10 or more", 3000: "10 or more"}),
    ([40, 45, 48, 400, 410, 420, 430], {40: "20-49", 48: "20-49", 400: "300 or more"}),
])
def test_bands_hold_three_peers_each_and_read_the_same_for_all_of_them(counts, labels):
    bands = count_bands(counts)
    for n, label in labels.items():
        assert band_of(n, bands).label(k=10) == label
    for band in bands:
        assert sum(band.holds(n) for n in counts) >= MIN_PEERS_PER_BAND


@pytest.mark.parametrize("seed", range(30))
def test_random_counts_never_leave_a_band_with_fewer_than_three(seed):
    rng = np.random.default_rng(seed)
    counts = list(rng.integers(10, 5000, size=int(rng.integers(3, 40))))
    bands = count_bands(counts)
    assert all(sum(b.holds(n) for n in counts) >= 3 for b in bands)
    assert all(sum(b.holds(n) for b in bands) == 1 for n in counts)


@pytest.mark.parametrize("counts", [[60, 80, 95, 110, 130, 160, 180, 240, 260, 280],
                                    [12, 15, 3000], [40, 45, 48, 400, 410, 420, 430]])
def test_a_peer_is_drawn_inside_its_band_never_below_k(counts):
    bands = count_bands(counts)
    for n in counts:
        band = band_of(n, bands)
        x = plotted_count(band, k=10)
        assert max(band.shown_low, 10) <= x < band.shown_high
        assert x == pytest.approx(min(max(band.middle(10), 10), band.shown_high - 1))


def test_board_report_draws_other_sites_at_their_band_not_their_count(published_sample):
    settings, _ = published_sample
    with closing(open_published(settings.published_path)) as con:
        exact = con.execute("select measure, site_code, n from funnel where wave = 2026 and "
                            "measure_kind = 'principle'").df()
        data = load_site_data(con, "A", 2026)
    others = data.funnel[data.funnel["site_code"] == "other"]
    own = data.funnel[data.funnel["site_code"] == "A"]
    assert len(others) == 6 * 6 and len(own) == 6
    assert set(own["n"]) == set(exact.loc[exact["site_code"] == "A", "n"])
    peers = exact[exact["site_code"] != "A"]
    for measure, block in others.groupby("measure"):
        true = set(peers.loc[peers["measure"] == measure, "n"].astype(float))
        assert not set(block["n"]) & true, measure
        # Counts drawn are shared: the six others sit at two or fewer distinct x.
        assert block["n"].round(6).value_counts().min() >= 3, block["n"].tolist()
    # Grey points come in order of their mean, not of their site code, so the i-th
    # point is not the same site in every panel.
    for _, block in others.groupby("measure"):
        assert list(block["mean"]) == sorted(block["mean"])
    codes = exact[exact["site_code"] != "A"].sort_values(["measure", "site_code"])
    assert not all((data.funnel[data.funnel["site_code"] == "other"]["mean"].to_numpy()
                    == published_means(settings, codes).to_numpy()))
    # Nothing the page could carry works back to an exact n (interval, z, p, SD dropped),
    # and each other site keeps its published verdict.
    assert others[["low", "high", "z", "p", "sd"]].isna().all().all()
    verdicts = exact_verdicts(settings)
    assert sorted(others["verdict"]) == sorted(verdicts.loc[verdicts["site_code"] != "A",
                                                            "verdict"])


def exact_verdicts(settings):
    with closing(open_published(settings.published_path)) as con:
        return con.execute("select site_code, verdict from funnel where wave = 2026 and "
                           "measure_kind = 'principle'").df()


def published_means(settings, codes):
    with closing(open_published(settings.published_path)) as con:
        means = con.execute("select measure, site_code, mean from funnel where wave = 2026 "
                            "and measure_kind = 'principle'").df()
    return codes.merge(means, on=["measure", "site_code"])["mean"]
