"""The benchmark stage (pipeline.benchmark) on small hand-made sets of published cells.

Each test builds the few cells the stage reads and checks its tables against values
computed another way: each site's verdict interval and its difference from the other
sites against a random-effects fit to the other sites alone (`stats.outliers.random_effects`,
held to metafor by tests/test_outliers.py), the principle gaps against quartiles worked
out by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pipeline.benchmark import benchmark_table, funnel_tables, principle_gap_table
from published.layout import NO_TARGET, NOT_COMPARED, VERDICTS
from stats.outliers import random_effects
from stats.verdicts import FEW_SITES_Z, RULES

EXAMPLE = json.loads((Path(__file__).parent / "expected" / "funnel_worked_example.json")
                     .read_text(encoding="utf-8"))
#: Both sides compute in double precision from the same numbers; the R example agrees
#: to ~1e-12, and 1e-9 leaves room only for the order of additions.
TOLERANCE = 1e-9
Z95 = stats.norm.ppf(0.975)


def cell(level: str, unit: str, n: int, mean: float, sd: float, *, peer_group: str = "acute",
         measure_kind: str = "scale", measure: str = "psysafety", wave: int = 2025,
         suppressed: bool = False, se: float | None = None) -> dict:
    """One whole-unit published cell (no breakdown) with the columns the stage reads."""
    se = sd / np.sqrt(n) if se is None else se
    return {"wave": wave, "level": level, "unit": unit, "peer_group": peer_group,
            "breakdown": "all", "grp": "all", "measure_kind": measure_kind,
            "measure": measure, "n": n, "mean": mean, "sd": sd, "se": se,
            "ci_low": mean - Z95 * se, "ci_high": mean + Z95 * se,
            "mean_0_10": (mean - 1) * 2.5, "pct_favourable": 50.0, "suppressed": suppressed}


def close(actual, expected):
    np.testing.assert_allclose(np.asarray(actual, float), np.asarray(expected, float),
                               rtol=0, atol=TOLERANCE)


@pytest.fixture(scope="module")
def funnel_cells() -> pd.DataFrame:
    """The worked example's twelve sites, their national cell, and a thirteenth site
    whose cell the suppression hid: far out, so it would move every number if used."""
    data = EXAMPLE["input"]
    sites = [cell("site", f"S{i:02d}", n, mean, sd) for i, (n, mean, sd)
             in enumerate(zip(data["n"], data["mean"], data["sd"]))]
    n = np.array(data["n"])
    national = cell("national", "national", int(n.sum()),
                    float((n * np.array(data["mean"])).sum() / n.sum()), 0.75)
    hidden = cell("site", "S99", 8, 1.2, 0.5, suppressed=True)
    return pd.DataFrame(sites + [national, hidden])


def others_interval(n, mean, sd, site: int) -> tuple[float, float, float]:
    """The other sites' REML random-effects mean and the few-site rule's limits
    (|z| > FEW_SITES_Z) for a site of `site`'s sampling variance, from a fit to the other
    sites alone (the full-model function on the remaining rows, not the leave-one-out
    pass the verdicts make)."""
    n, mean, sd = (np.asarray(a, float) for a in (n, mean, sd))
    v = sd ** 2 / n
    keep = np.arange(len(n)) != site
    model = random_effects(mean[keep], v[keep], "REML")
    half = FEW_SITES_Z * np.sqrt(model.tau2 + model.se ** 2 + v[site])
    return model.mu, model.mu - half, model.mu + half


def test_each_site_is_judged_by_the_other_sites_interval_and_hidden_cells_take_no_part(
        funnel_cells):
    params, rows = funnel_tables(funnel_cells)
    data = EXAMPLE["input"]
    assert len(params) == 1 and list(rows["site_code"]) == [f"S{i:02d}" for i in range(12)]
    (p,) = params.itertuples()
    assert (p.wave, p.measure_kind, p.measure, p.sites, p.method) == (
        2025, "scale", "psysafety", 12, "REML")
    close(p.sigma, EXAMPLE["sigma"])
    everyone = random_effects(data["mean"], np.array(data["sd"]) ** 2 / np.array(data["n"]))
    close([p.target, p.tau2], [everyone.mu, everyone.tau2])
    for i, row in rows.iterrows():
        centre, low, high = others_interval(data["n"], data["mean"], data["sd"], i)
        np.testing.assert_allclose([row["others_mean"], row["low"], row["high"]],
                                   [centre, low, high], rtol=0, atol=1e-8)
    assert set(rows["others"]) == {11} and set(rows["rule"]) == {RULES[0]}
    # One verdict, and "outside the interval" is exactly what flags it.
    outside = (rows["mean"] < rows["low"]) | (rows["mean"] > rows["high"])
    assert (rows["flagged"] == outside).all()
    assert (rows["verdict"].str.startswith("clearly") == outside).all()
    assert set(rows["verdict"]) <= set(VERDICTS)


def test_a_clear_outlier_reads_clearly_below_and_three_sites_are_not_compared():
    """Ten sites near 3.0 and one at 2.3 (200 respondents each): the low one is clearly
    below the others, the rest in line. With three sites each would be judged against
    two: not compared, and no tau^2 is published."""
    sites = [cell("site", f"S{i}", 200, 3.0 + 0.01 * (i % 3 - 1), 0.8) for i in range(10)]
    sites.append(cell("site", "LOW", 200, 2.3, 0.8))
    trio = [cell("site", u, 100, m, 0.8, measure="stigma")
            for u, m in (("A", 3.0), ("B", 3.2), ("C", 2.1))]
    params, rows = funnel_tables(pd.DataFrame(sites + trio))
    psysafety = rows[rows["measure"] == "psysafety"]
    verdicts = dict(zip(psysafety["site_code"], psysafety["verdict"]))
    assert verdicts.pop("LOW") == "clearly below" and set(verdicts.values()) == {"in line"}
    stigma = rows[rows["measure"] == "stigma"]
    assert set(stigma["verdict"]) == {NOT_COMPARED} and not stigma["flagged"].any()
    assert stigma["low"].isna().all() and set(stigma["others"]) == {2}
    stigma_params = params.set_index("measure").loc["stigma"]
    assert np.isnan(stigma_params["tau2"]) and stigma_params["sites"] == 3
    close(stigma_params["sigma"], 0.8)


@pytest.fixture(scope="module")
def respondents() -> pd.DataFrame:
    """Seeded answers of four sites in two peer groups (scores on a 1-5 scale)."""
    rng = np.random.default_rng(20261123)
    plan = {"A": ("acute", 60, 3.1), "B": ("acute", 45, 3.5), "C": ("acute", 80, 3.3),
            "D": ("psu", 30, 2.9)}
    return pd.DataFrame([{"site": site, "peer_group": peer, "score": score}
                         for site, (peer, n, centre) in plan.items()
                         for score in np.clip(rng.normal(centre, 0.7, n), 1, 5)])


def cells_of(respondents: pd.DataFrame) -> pd.DataFrame:
    """Site, peer and national cells summed from the respondents (sd with n - 1)."""
    def summary(level, unit, peer_group, scores):
        return cell(level, unit, len(scores), scores.mean(), scores.std(ddof=1),
                    peer_group=peer_group)
    rows = [summary("site", site, group.peer_group.iloc[0], group.score)
            for site, group in respondents.groupby("site")]
    rows += [summary("peer", peer, peer, group.score)
             for peer, group in respondents.groupby("peer_group")]
    rows.append(summary("national", "national", None, respondents.score))
    return pd.DataFrame(rows)


def test_the_difference_from_all_sites_carries_the_other_sites_spread(respondents):
    """Each site less the other three sites' random-effects mean, with the verdict rule's
    limits on them for a site of its size: between-site variation included."""
    cells = cells_of(respondents)
    table = benchmark_table(cells).set_index("site_code")
    sites = cells[cells["level"] == "site"].reset_index(drop=True)
    for i, row in sites.iterrows():
        centre, low, high = others_interval(sites["n"], sites["mean"], sites["sd"], i)
        got = table.loc[row["unit"]]
        assert got["others_in_national"] == 3 and pd.isna(got["diff_vs_national_note"])
        np.testing.assert_allclose(
            [got["diff_vs_national"], got["diff_vs_national_low"],
             got["diff_vs_national_high"]],
            [row["mean"] - centre, row["mean"] - high, row["mean"] - low], rtol=0, atol=1e-8)


def test_a_peer_group_with_fewer_than_three_other_sites_says_so_instead_of_testing(
        respondents):
    table = benchmark_table(cells_of(respondents)).set_index("site_code")
    # The acute group has three sites (two others each), D is alone in its group.
    for site, others in (("B", 2), ("D", 0)):
        row = table.loc[site]
        assert row["others_in_peer"] == others
        assert np.isnan(row["diff_vs_peer"]) and np.isnan(row["diff_vs_peer_low"])
        assert row["diff_vs_peer_note"] == (
            "fewer than 3 other sites in the peer group: not compared")


def test_the_distribution_of_site_means_uses_linear_quartiles(respondents):
    table = benchmark_table(cells_of(respondents)).set_index("site_code")
    means = respondents.groupby("site").score.mean()
    row = table.loc["A"]
    assert row["national_sites"] == 4 and row["peer_sites"] == 3
    close([row["national_worst"], row["national_q1"], row["national_median"],
           row["national_q3"], row["national_best"]],
          np.percentile(means, [0, 25, 50, 75, 100]))
    close(row["peer_median"], means[["A", "B", "C"]].median())


def principle(unit: str, mean: float, se: float, *, peer_group: str = "acute",
              measure: str = "p1", wave: int = 2025) -> dict:
    return cell("site", unit, 100, mean, se * 10, peer_group=peer_group,
                measure_kind="principle", measure=measure, wave=wave, se=se)


@pytest.fixture(scope="module")
def gap_cells() -> pd.DataFrame:
    """Two principles at four sites: three acute sites and one support unit alone in its
    peer group. A site's target leaves the site out; no peer group here has three other
    sites, so each takes the upper quartile of all the other sites (R's quantile type 7):
    for A on p1, of 3.4, 3.5, 3.8: 3.5 + 0.5 x 0.3 = 3.65."""
    return pd.DataFrame([
        principle("A", 3.0, 0.05), principle("B", 3.4, 0.05), principle("C", 3.8, 0.05),
        principle("D", 3.5, 0.10, peer_group="psu"),
        # p2: A's gap is larger (0.7 against 0.65) but far less certain (SE .30).
        principle("A", 3.1, 0.30, measure="p2"), principle("B", 3.8, 0.05, measure="p2"),
        principle("C", 3.8, 0.05, measure="p2"),
        principle("D", 3.0, 0.05, peer_group="psu", measure="p2")])


def test_principle_gaps_against_hand_worked_targets(gap_cells):
    """Targets worked by hand from the other sites; 'clear' exactly when the interval
    (a bootstrap over those sites plus the site's own SE, tests/test_gaps.py) is above 0."""
    table = principle_gap_table(gap_cells, "peer_q3").set_index(["site_code", "principle"])
    expected = {("A", "p1"): (3.65, 0.65, "clear gap"),       # of 3.4, 3.5, 3.8
                ("B", "p1"): (3.65, 0.25, "possible gap"),    # of 3.0, 3.5, 3.8
                ("C", "p1"): (3.45, -0.35, "meets target"),   # of 3.0, 3.4, 3.5
                ("D", "p1"): (3.6, 0.1, "possible gap"),      # of 3.0, 3.4, 3.8
                ("A", "p2"): (3.8, 0.7, "possible gap")}      # of 3.0, 3.8, 3.8; SE .30
    for key, (target, gap, certainty) in expected.items():
        row = table.loc[key]
        close([row["target"], row["gap"]], [target, gap])
        assert row["gap_low"] < row["gap"] < row["gap_high"], key
        assert row["certainty"] == certainty, key
        assert (row["gap_low"] > 0) == (certainty == "clear gap"), key
    assert table.loc[("A", "p1"), "target_basis"] == (
        "all sites upper quartile, site itself left out (peer group has fewer than 3 other "
        "reportable sites)")


def test_the_more_certain_gap_comes_first(gap_cells):
    """A's p2 gap (0.7, interval from -0.22) is larger than its p1 gap (0.65, from 0.39),
    but p1 is the surer: priority orders by the lower end of the interval."""
    table = principle_gap_table(gap_cells, "peer_q3")
    a = table[table.site_code == "A"]
    assert list(a["principle"]) == ["p1", "p2"] and list(a["priority"]) == [1, 2]


def test_national_median_rule(gap_cells):
    table = principle_gap_table(gap_cells, "national_median").set_index(
        ["site_code", "principle"])
    close(table.loc[("A", "p1"), "target"], 3.5)       # median of 3.4, 3.5, 3.8 (not A)
    assert table.loc[("A", "p1"), "target_basis"] == "all sites median, site itself left out"


def test_fewer_than_three_sites_give_no_target_and_priority_by_score():
    cells = pd.DataFrame([principle("A", 3.2, 0.05), principle("A", 2.9, 0.05, measure="p2"),
                          principle("B", 3.6, 0.05)])
    table = principle_gap_table(cells)
    assert set(table["certainty"]) == {NO_TARGET} and table["target"].isna().all()
    a = table[table.site_code == "A"]
    assert list(a["principle"]) == ["p2", "p1"] and list(a["priority"]) == [1, 2]


def test_an_unknown_target_rule_is_refused_with_the_choices(gap_cells):
    with pytest.raises(ValueError, match="use one of peer_q3, national_q3, peer_median"):
        principle_gap_table(gap_cells, "best_site")
