"""Funnel limits, overdispersion, shrinkage and FDR against an independent R worked
example (tests/expected/generate_r_funnel.R), and their behaviour on simulated sites."""

import json
from pathlib import Path

import numpy as np
import pytest

from stats.comparison import (benjamini_hochberg, benjamini_hochberg_by_group, funnel,
                                 funnel_band, pooled_sd, shrink, welch, winsorise)

EXPECTED = json.loads((Path(__file__).parent / "expected" / "funnel_worked_example.json")
                      .read_text(encoding="utf-8"))
#: Both sides compute in double precision from the same twelve sites; 1e-6 is the
#: tolerance the issue sets, and the agreement is in fact ~1e-12.
TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def example():
    data = EXPECTED["input"]
    n, y, sd = (np.array(data[k], float) for k in ("n", "mean", "sd"))
    target = float((n * y).sum() / n.sum())
    return n, y, sd, funnel(y, n, target, pooled_sd(n, sd))


def close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=0, atol=TOLERANCE)


def test_funnel_matches_r_worked_example(example):
    n, y, sd, fun = example
    close(fun.target, EXPECTED["target"])
    close(fun.sigma, EXPECTED["sigma"])
    close(fun.z, EXPECTED["z"])
    close(winsorise(fun.z), EXPECTED["z_winsorised"])
    close(fun.phi, EXPECTED["phi"])
    close(fun.tau2, EXPECTED["tau2"])
    assert fun.tau2 > 0.005, "the example is overdispersed: the random-effects term matters"
    close(fun.z_adjusted, EXPECTED["z_adjusted"])
    close(fun.p, EXPECTED["p"])


def test_paper_estimate_without_the_consistency_factor(example):
    n, y, sd, fun = example
    paper = funnel(y, n, fun.target, fun.sigma, consistent=False)
    close(paper.phi, EXPECTED["phi_paper"])
    close(paper.tau2, EXPECTED["tau2_paper"])
    close(EXPECTED["phi_paper"] / EXPECTED["phi"], EXPECTED["winsorised_normal_second_moment"])


def test_limits_match_r_at_every_n(example):
    *_, fun = example
    sizes = np.array(EXPECTED["limits_n"], float)
    for level, key in ((0.95, "limits95"), (0.998, "limits998")):
        low, high = fun.limits(sizes, level)
        close(low, EXPECTED[key]["low"])
        close(high, EXPECTED[key]["high"])


def test_benjamini_hochberg_matches_p_adjust(example):
    *_, fun = example
    close(benjamini_hochberg(fun.p), EXPECTED["q_bh"])


def test_bh_by_hand_and_missing_values():
    q = benjamini_hochberg(np.array([0.01, np.nan, 0.04, 0.03, 0.5]))
    # m = 4; sorted p .01 .03 .04 .5 give p*m/rank .04 .06 .0533 .5; the running minimum
    # from the top makes .03 take .0533 too.
    np.testing.assert_allclose(q[[0, 2, 3, 4]], [0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.5])
    assert np.isnan(q[1])


@pytest.mark.parametrize("seed", range(5))
def test_bh_by_group_is_bh_within_each_family(seed):
    rng = np.random.default_rng(seed)
    families = rng.choice(["a", "b", "c", "d"], 400)
    p = rng.random(400)
    p[rng.random(400) < 0.1] = np.nan
    p[rng.random(400) < 0.2] = 0.03 if seed else 1.0  # ties
    q = benjamini_hochberg_by_group(p, families)
    for family in np.unique(families):
        mine = families == family
        # the same operations in the same order: equal to the last bit, NaN where p is
        np.testing.assert_array_equal(q[mine], benjamini_hochberg(p[mine]))
    by_hand = benjamini_hochberg_by_group(np.array([0.01, np.nan, 0.04, 0.03, 0.5, 0.2]),
                                          np.array([1, 1, 1, 1, 1, 2]))
    np.testing.assert_allclose(by_hand[[0, 2, 3, 4, 5]],
                               [0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.5, 0.2])


def test_shrinkage_matches_r(example):
    n, y, sd, fun = example
    est = shrink(y, fun.sigma ** 2 / n, fun.tau2)
    close(est.grand_mean, EXPECTED["eb_grand_mean"])
    close(est.mean, EXPECTED["eb_mean"])
    close(est.se, EXPECTED["eb_se"])
    # Small sites move further towards the grand mean than large ones.
    moved = np.abs(est.mean - y) / np.abs(y - est.grand_mean)
    assert moved[0] > moved[-1]


def test_no_overdispersion_means_full_shrinkage():
    est = shrink(np.array([3.0, 3.5, 4.0]), np.array([0.01, 0.02, 0.04]), 0.0)
    np.testing.assert_allclose(est.mean, est.grand_mean)


def test_bands_follow_the_limits(example):
    n, y, sd, fun = example
    bands = funnel_band(fun, y, n)
    lo95, hi95 = fun.limits(n, 0.95)
    outside = (y < lo95) | (y > hi95)
    assert list(bands == "inside 95%") == list(~outside)


def test_welch_against_scipy():
    from scipy import stats

    rng = np.random.default_rng(5)
    a, b = rng.normal(3.2, 0.7, 40), rng.normal(3.0, 0.9, 25)
    diff, se, low, high, p = welch(a.mean(), a.std(ddof=1), 40, b.mean(), b.std(ddof=1), 25)
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert p == pytest.approx(ref.pvalue, abs=1e-12)
    ci = ref.confidence_interval()
    assert (low, high) == pytest.approx((ci.low, ci.high), abs=1e-12)


def simulate_null(rng, sites=50, tau=0.15, sigma=0.75):
    n = rng.integers(30, 400, sites).astype(float)
    theta = 3.2 + rng.normal(0, tau, sites)
    y = rng.normal(theta, sigma / np.sqrt(n))
    target = float((n * y).sum() / n.sum())
    return n, y, funnel(y, n, target, sigma)


def test_false_flags_stay_at_the_nominal_level():
    """Sites that differ only by the usual between-site variation: over 400 simulated
    funnels of 50 sites, a site falls outside its 95% limits about 5% of the time, and
    with BH at 5% a funnel raises any flag at all in about 5% of runs (measured 6.0%;
    sampling error of the rate is 1.2 points), and any one site is flagged far less
    often than 5%."""
    rng = np.random.default_rng(20261123)
    outside95 = outside998 = families_flagged = sites_flagged = total = 0
    for _ in range(400):
        n, y, fun = simulate_null(rng)
        lo, hi = fun.limits(n, 0.95)
        outside95 += int(((y < lo) | (y > hi)).sum())
        lo, hi = fun.limits(n, 0.998)
        outside998 += int(((y < lo) | (y > hi)).sum())
        flagged = benjamini_hochberg(fun.p) < 0.05
        families_flagged += int(flagged.any())
        sites_flagged += int(flagged.sum())
        total += len(y)
    assert 0.035 < outside95 / total < 0.075
    assert outside998 / total < 0.006
    assert families_flagged / 400 <= 0.08
    assert sites_flagged / total < 0.01


def test_a_planted_outlier_is_flagged_among_null_sites():
    rng = np.random.default_rng(7)
    hits = 0
    for _ in range(50):
        n = rng.integers(100, 300, 40).astype(float)
        theta = 3.2 + rng.normal(0, 0.15, 40)
        theta[0] -= 6 * 0.15      # six between-site SDs below
        y = rng.normal(theta, 0.75 / np.sqrt(n))
        fun = funnel(y, n, float((n * y).sum() / n.sum()), 0.75)
        q = benjamini_hochberg(fun.p)
        hits += int(q[0] < 0.05)
    assert hits >= 45
