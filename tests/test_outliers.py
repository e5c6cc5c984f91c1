"""Random effects and deleted residuals against metafor on multilevel::bh1996 group
summaries (tests/expected/generate_r_outliers.R), by hand, and on simulated units."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import optimize

from stats.outliers import (ComparisonError, DeletedResiduals, RandomEffects,
                            deleted_residuals, random_effects, unit_comparisons)
from survey.errors import CultureError

GOLDEN = json.loads((Path(__file__).parent / "expected" / "outliers.json")
                    .read_text(encoding="utf-8"))
CASES = ("all99", "seven", "homogeneous", "three", "boundary")
METHODS = ("REML", "DL")
#: REML tau^2 is an optimum found iteratively on both sides; the goldens were made with
#: metafor's convergence threshold tightened to 1e-12, so 1e-6 leaves room for the
#: optimisers stopping at different points (observed agreement is ~1e-13).
TOLERANCE = 1e-6
#: metafor's default control stops Fisher scoring once tau^2 moves less than 1e-5; a
#: user running rma() with defaults sees a tau^2 within that of ours.
METAFOR_DEFAULT_THRESHOLD = 1e-5


def case_input(case):
    data = GOLDEN[case]
    n, mean, sd = (np.array(data[k], float) for k in ("n", "mean", "sd"))
    return mean, sd ** 2 / n


def close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", CASES)
def test_random_effects_matches_metafor_rma(case, method):
    expected = GOLDEN[case][method]
    fit = random_effects(*case_input(case), method=method)
    assert isinstance(fit, RandomEffects)
    assert (fit.k, fit.method) == (len(GOLDEN[case]["n"]), method)
    for field in ("tau2", "mu", "se", "ci_low", "ci_high", "pi_low", "pi_high"):
        close(getattr(fit, field), expected[field])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", CASES)
def test_deleted_residuals_match_metafor_rstudent(case, method):
    expected = GOLDEN[case][method]
    result = deleted_residuals(*case_input(case), method=method)
    assert isinstance(result, DeletedResiduals)
    close(result.z, expected["rstudent_z"])
    close(result.tau2_without, expected["tau2_without"])
    y, v = case_input(case)
    # rstudent's resid and se are y_i - mu_(-i) and sqrt(v_i + tau2_(-i) + se_(-i)^2).
    close(y - result.mu_without, expected["rstudent_resid"])
    close(np.sqrt(v + result.tau2_without + result.se_without ** 2), expected["rstudent_se"])


@pytest.mark.parametrize("case", CASES)
def test_reml_is_within_metafor_default_threshold(case):
    fit = random_effects(*case_input(case), method="REML")
    assert abs(fit.tau2 - GOLDEN[case]["REML"]["tau2_default_control"]) < \
        METAFOR_DEFAULT_THRESHOLD


def test_the_golden_cases_cover_what_they_claim():
    assert len(GOLDEN["all99"]["n"]) == 99 and len(GOLDEN["three"]["n"]) == 3
    assert GOLDEN["homogeneous"]["REML"]["tau2"] == 0 == GOLDEN["homogeneous"]["DL"]["tau2"]
    assert GOLDEN["seven"]["REML"]["tau2"] > 0.05, "seven companies differ beyond chance"
    assert GOLDEN["versions"]["metafor"].startswith("3.8")
    assert 0 < GOLDEN["boundary"]["REML"]["tau2"] < 1e-12, "metafor creeps to the boundary"


def test_a_maximum_at_the_boundary_is_exactly_zero():
    # Fisher scoring approaches tau^2 = 0 from a positive start by halved steps and
    # never lands on it (metafor stops at 5e-13 here); the maximum is zero itself, and a
    # reader should see 0, not a number that looks like a small estimate.
    fit = random_effects(*case_input("boundary"))
    assert fit.tau2 == 0.0
    assert fit.pi_low == fit.ci_low and fit.pi_high == fit.ci_high


def test_the_outlying_company_among_seven_is_the_only_one_outside():
    # Company 57 has the lowest well-being of all 99; among seven it is the one whose
    # mean falls outside the others' 95% prediction interval, and no other does.
    y, v = case_input("seven")
    result = deleted_residuals(y, v)
    outside = (y < result.low) | (y > result.high)
    assert GOLDEN["seven"]["group"][0] == 57
    assert outside.tolist() == [True] + [False] * 6
    assert result.z[0] == pytest.approx(-2.92, abs=0.01)
    assert result.p[0] == pytest.approx(0.0035, abs=0.0002)
    assert np.array_equal(outside, np.abs(result.z) > 1.959963984540054)


def test_by_hand_three_units_of_equal_variance():
    # y = 0, 2, 4 with v = 1: the fixed-effect mean is 2, Q = 4 + 0 + 4 = 8, and DL gives
    # (8 - 2) / (3 - 3/3) = 3; with equal variances REML is the sample variance (4)
    # minus v, also 3. mu = 2 with se = sqrt((1 + 3) / 3).
    y, v = np.array([0.0, 2.0, 4.0]), np.ones(3)
    for method in METHODS:
        fit = random_effects(y, v, method)
        assert fit.tau2 == pytest.approx(3.0, abs=1e-12)
        assert fit.mu == pytest.approx(2.0, abs=1e-12)
        assert fit.se == pytest.approx(np.sqrt(4 / 3), abs=1e-12)
        assert fit.pi_high - fit.mu == pytest.approx(1.959963984540054 * np.sqrt(3 + 4 / 3))
        # Without the first unit: 2 and 4 give tau^2 = 2 - 1 = 1 (both estimators),
        # mu = 3, se^2 = (1 + 1) / 2 = 1, so z = (0 - 3) / sqrt(1 + 1 + 1) = -sqrt(3).
        result = deleted_residuals(y, v, method)
        assert result.tau2_without[0] == pytest.approx(1.0, abs=1e-12)
        assert result.mu_without[0] == pytest.approx(3.0, abs=1e-12)
        assert result.z == pytest.approx([-np.sqrt(3), 0.0, np.sqrt(3)], abs=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_equal_means_give_no_heterogeneity(method):
    y, v = np.full(6, 3.2), np.array([0.01, 0.02, 0.015, 0.05, 0.01, 0.03])
    fit = random_effects(y, v, method)
    assert fit.tau2 == 0.0
    assert fit.mu == pytest.approx(3.2, abs=1e-12)
    assert fit.se == pytest.approx(1 / np.sqrt((1 / v).sum()), abs=1e-12)
    result = deleted_residuals(y, v, method)
    assert np.all(result.tau2_without == 0.0) and np.all(result.z == 0.0)
    assert np.all(result.p == 1.0)


def restricted_loglik(tau2, y, v):
    w = 1 / (v + tau2)
    mu = (w * y).sum() / w.sum()
    return -0.5 * (np.log(v + tau2).sum() + np.log(w.sum()) + (w * (y - mu) ** 2).sum())


@pytest.mark.parametrize("seed", range(8))
def test_reml_is_the_maximum_of_the_restricted_likelihood(seed):
    # An independent route to the same optimum: a bounded 1-d search on the restricted
    # log-likelihood itself (not its score). Seeds alternate heterogeneous units and
    # homogeneous ones, where the maximum is at or near tau^2 = 0.
    rng = np.random.default_rng(seed)
    k = int(rng.integers(4, 40))
    v = rng.uniform(0.005, 0.05, k)
    tau = 0.15 if seed % 2 else 0.0
    y = 3 + rng.normal(0, tau, k) + rng.normal(0, np.sqrt(v))
    search = optimize.minimize_scalar(lambda t: -restricted_loglik(t, y, v),
                                      bounds=(0, 1), method="bounded",
                                      options={"xatol": 1e-12})
    fit = random_effects(y, v)
    assert fit.tau2 == pytest.approx(search.x, abs=1e-6)
    assert restricted_loglik(fit.tau2, y, v) >= -search.fun - 1e-12


def test_deleted_residuals_are_calibrated_when_no_unit_stands_out():
    # 20 simulated sets of 100 units drawn from one random-effects model: about 5% of
    # units should fall outside the others' 95% prediction interval. 2000 cells give a
    # Monte Carlo SE of 0.5 points; judging each unit against a fixed mean (no tau^2)
    # would put 45% outside here.
    rng = np.random.default_rng(20)
    outside = []
    for _ in range(20):
        v = 0.8 ** 2 / rng.integers(20, 200, 100)
        y = 3 + rng.normal(0, 0.2, 100) + rng.normal(0, np.sqrt(v))
        result = deleted_residuals(y, v)
        outside.append((y < result.low) | (y > result.high))
    rate = np.mean(outside)
    assert abs(rate - 0.05) < 3 * np.sqrt(0.05 * 0.95 / 2000)


def test_unit_comparisons_on_a_frame_equal_the_array_functions():
    data = GOLDEN["seven"]
    frame = pd.DataFrame({"site": list("ABCDEFG"), "n": data["n"], "mean": data["mean"],
                          "sd": data["sd"]}, index=range(10, 17))
    before = frame.copy()
    out = unit_comparisons(frame, method="DL")
    pd.testing.assert_frame_equal(frame, before)
    assert list(out.index) == list(range(10, 17))
    assert list(out.columns) == ["site", "n", "mean", "sd", "z", "p", "mu_without",
                                 "tau2_without", "low", "high"]
    expected = deleted_residuals(*case_input("seven"), method="DL")
    for column in ("z", "p", "mu_without", "tau2_without", "low", "high"):
        np.testing.assert_array_equal(out[column].to_numpy(), getattr(expected, column))
    close(out["z"], data["DL"]["rstudent_z"])


@pytest.mark.parametrize("y, v, message", [
    ([3.0, 3.1], [0.01, 0.01], "at least 3 units"),
    ([3.0, 3.1, 3.2], [0.01, -0.01, 0.01], r"units \[1\] have sampling variance <= 0"),
    ([3.0, 3.1, 3.2], [0.01, 0.01, 0.0], r"units \[2\] have sampling variance <= 0"),
    ([3.0, np.nan, 3.2], [0.01, 0.01, 0.01], r"units \[1\] have a missing"),
    ([3.0, 3.1, 3.2], [0.01, np.inf, 0.01], r"units \[1\] have a missing"),
    ([3.0, 3.1, 3.2], [0.01, 0.01], "same length"),
])
def test_unusable_units_are_refused_with_a_reason(y, v, message):
    for function in (random_effects, deleted_residuals):
        with pytest.raises(ComparisonError, match=message):
            function(y, v)
    assert issubclass(ComparisonError, CultureError)


def test_unknown_method_lists_the_allowed_ones():
    with pytest.raises(ComparisonError, match="allowed: REML, DL"):
        random_effects([3.0, 3.1, 3.2], [0.01] * 3, method="ML")


def test_frame_without_the_needed_columns_or_with_zero_n_is_refused():
    with pytest.raises(ComparisonError, match="missing: sd"):
        unit_comparisons(pd.DataFrame({"n": [10, 20, 30], "mean": [3.0, 3.1, 3.2]}))
    with pytest.raises(ComparisonError, match="positive number of respondents"):
        unit_comparisons(pd.DataFrame({"n": [10, 0, 30], "mean": [3.0, 3.1, 3.2],
                                       "sd": [0.8, 0.8, 0.8]}))


def test_reml_finds_the_maximum_where_fisher_scoring_swings_about_it():
    """Seventeen small sites' % favourable on one question (a national bench wave): with
    the third site left out, Fisher scoring swung about tau^2 = 17.47 with growing steps
    and the benchmark stage failed. The fit must land on the REML maximum, checked here
    by maximising the REML log-likelihood directly."""
    from scipy import optimize

    n = np.array([12, 10, 12, 16, 10, 38, 11, 14, 18, 10, 20, 12, 16, 21, 11, 16, 19], float)
    pct = np.array([16.666667, 20.0, 33.333333, 6.25, 10.0, 10.526316, 18.181818, 21.428571,
                    5.555556, 10.0, 0.0, 8.333333, 12.5, 14.285714, 9.090909, 18.75,
                    26.315789])
    adjusted = (pct / 100 * n + 0.5) / (n + 1)
    y, v = np.delete(pct, 2), np.delete(10_000 * adjusted * (1 - adjusted) / n, 2)

    def minus_loglik(tau2: float) -> float:
        w = 1 / (v + tau2)
        mu = (w * y).sum() / w.sum()
        return 0.5 * (np.log(v + tau2).sum() + np.log(w.sum()) + (w * (y - mu) ** 2).sum())

    best = optimize.minimize_scalar(minus_loglik, bounds=(0, 200), method="bounded",
                                    options={"xatol": 1e-10})
    fit = random_effects(y, v, "REML")
    assert fit.tau2 == pytest.approx(best.x, abs=1e-5)
    assert 17 < fit.tau2 < 18
    # And the leave-one-out fits of the whole group complete.
    assert np.isfinite(deleted_residuals(pct, 10_000 * adjusted * (1 - adjusted) / n,
                                         "REML").z).all()
