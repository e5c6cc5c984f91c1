"""Dominance analysis and relative weights (stats.drivers) against R, and on planted truth.

tests/expected/generate_r_drivers.R wrote tests/expected/drivers.json with R 4.2: every
subset of predictors fitted with lm() (R^2) and glm() (McFadden's R^2), and general,
conditional and complete dominance and Johnson's relative weights computed by hand, on
psych::sat.act and mtcars (their rows are in the JSON). A simulation with planted driver
weights and site effects checks that the order is recovered and that the site-bootstrap
intervals cover the population shares at about their nominal rate.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from stats.drivers import (MIN_SITE_RESPONDENTS, DriversError, SiteMoments,
                           dominance_from_fits, dominance_from_moments,
                           dominance_from_site_moments,
                           dominance_table, logistic_subset_fit, relative_weights,
                           site_bootstrap, site_dominance)
from survey.settings import PROJECT_ROOT

GOLDEN = json.loads((PROJECT_ROOT / "tests" / "expected" / "drivers.json")
                    .read_text(encoding="utf-8"))
#: Linear fits are closed-form (ours from the covariance matrix, R's by QR): rounding.
#: Logistic fits are iterative on both sides (glm at epsilon 1e-14, ours to 1e-12).
LINEAR, LOGISTIC = 1e-6, 1e-4
CASES = {"linear_sat_act": ("linear", LINEAR), "linear_mtcars": ("linear", LINEAR),
         "logistic_sat_act": ("logistic", LOGISTIC)}


def golden_data(case: dict) -> pd.DataFrame:
    return pd.DataFrame(GOLDEN["data"][case["data"]])


def r_complete(case: dict) -> np.ndarray:
    return np.array([[np.nan if v == "NA" else v for v in row] for row in case["complete"]],
                    float)


@pytest.mark.parametrize("name", CASES)
def test_dominance_matches_r_all_subsets_by_hand(name):
    kind, tolerance = CASES[name]
    case = GOLDEN[name]
    result = dominance_table(golden_data(case), case["outcome"], case["predictors"], kind)
    assert result.n == case["n"] and result.predictors == tuple(case["predictors"])
    assert result.total == pytest.approx(case["total"], abs=tolerance)
    np.testing.assert_allclose(result.subset_fit, case["subset_fit"], atol=tolerance)
    np.testing.assert_allclose(result.general, case["general"], atol=tolerance)
    np.testing.assert_allclose(result.general_share, case["general_share"], atol=tolerance)
    np.testing.assert_allclose(result.conditional, case["conditional"], atol=tolerance)
    np.testing.assert_array_equal(result.complete, r_complete(case))
    # general dominance shares out the whole model's fit
    assert result.general.sum() == pytest.approx(result.total, abs=1e-12)


@pytest.mark.parametrize("name", ["linear_sat_act", "linear_mtcars"])
def test_relative_weights_match_johnson_in_r(name):
    case = GOLDEN[name]
    data = golden_data(case)
    weights = relative_weights(data.corr(), case["outcome"], case["predictors"])
    np.testing.assert_allclose(weights.to_numpy(), case["relative_weights"]["raw"], atol=LINEAR)
    assert weights.sum() == pytest.approx(case["total"], abs=LINEAR)
    table = dominance_table(data, case["outcome"], case["predictors"]).table()
    np.testing.assert_allclose(table.loc[case["predictors"], "relative_weight_share"],
                               case["relative_weights"]["share"], atol=LINEAR)


def test_the_table_orders_predictors_by_general_dominance():
    case = GOLDEN["linear_mtcars"]
    result = dominance_table(golden_data(case), "mpg", case["predictors"])
    table = result.table()
    # mtcars: weight, then cylinders and displacement (R: 0.2156, 0.1694, 0.1665 of 0.86)
    assert list(table.index[:3]) == ["wt", "cyl", "disp"]
    assert list(table["rank"]) == list(range(1, 9))
    assert list(table.columns[:3]) == ["general", "share", "rank"]
    assert table["share"].sum() == pytest.approx(1)
    complete = result.complete_table()
    assert complete.loc["wt", "drat"] == 1 and complete.loc["drat", "wt"] == 0
    assert complete.loc["cyl", "disp"] == 0.5


def test_moments_give_the_same_answer_as_rows_whatever_their_scale():
    case = GOLDEN["linear_sat_act"]
    data = golden_data(case)[["ACT", *case["predictors"]]]
    rows = dominance_table(data, "ACT", case["predictors"])
    from_corr = dominance_from_moments(data.corr(), "ACT", case["predictors"])
    # an array by position, with the outcome last and an unused variable in between
    shuffled = data[["SATQ", "age", "gender", "education", "SATV", "ACT"]]
    from_array = dominance_from_moments(shuffled.cov().to_numpy(), 5, [2, 3, 1, 4, 0])
    np.testing.assert_allclose(from_corr.general, rows.general, atol=1e-12)
    np.testing.assert_allclose(from_array.general, rows.general, atol=1e-12)
    np.testing.assert_allclose(from_corr.relative_weights, rows.relative_weights, atol=1e-12)


def test_logistic_on_a_table_of_patterns_equals_the_rows():
    rng = np.random.default_rng(3)
    x = rng.integers(1, 6, size=(3000, 3)).astype(float)
    y = (rng.random(3000) < 1 / (1 + np.exp(2.5 - 0.6 * x[:, 0] - 0.2 * x[:, 1]))).astype(float)
    rows = logistic_subset_fit(x, y)
    patterns = pd.DataFrame(np.column_stack([x, y])).value_counts().reset_index()
    table = patterns.to_numpy(float)
    weighted = logistic_subset_fit(table[:, :3], table[:, 3], weights=table[:, 4])
    assert len(table) < 251
    np.testing.assert_allclose(weighted, rows, atol=1e-10)
    # McFadden's R^2 never falls when a predictor is added
    assert rows[0] == 0 and rows[0b011] >= max(rows[0b001], rows[0b010])
    assert np.argmax(dominance_table(pd.DataFrame(np.column_stack([x, y]),
                                                  columns=["a", "b", "c", "y"]),
                                     "y", ["a", "b", "c"], "logistic").general) == 0


@pytest.mark.parametrize("change, message", [
    (lambda f: (f, "ACT", ["SATV"], "probit"), "not one of"),
    (lambda f: (f, "ACT", ["SATV", "SATQ"], "logistic"), "coded 0/1"),
    (lambda f: (f, "ACT", ["SATV", "nope"], "linear"), "not in the data"),
    (lambda f: (f, "ACT", ["ACT", "SATV"], "linear"), "must all be different"),
    (lambda f: (f.head(3), "ACT", ["SATV", "SATQ", "age"], "linear"), "cannot support"),
    (lambda f: (f.assign(age=20), "ACT", ["SATV", "age"], "linear"), "no variance"),
    (lambda f: (f.assign(female=0), "female", ["SATV"], "logistic"), "both yes"),
    (lambda f: (f.assign(female=(f["SATV"] > 600).astype(int)), "female", ["SATV"],
                "logistic"), "separate"),
])
def test_unusable_requests_say_what_to_do(change, message):
    with pytest.raises(DriversError, match=message):
        dominance_table(*change(golden_data(GOLDEN["linear_sat_act"])))


# ------------------------------------------------------------- site moments and bootstrap

WEIGHTS = np.array([0.45, 0.30, 0.20, 0.10, 0.0])   # planted: x0 matters most, x4 not at all
P = len(WEIGHTS)
NAMES = [f"x{i}" for i in range(P)]
PERSON = 0.35 + 0.65 * np.eye(P)            # scales correlate within a person
SITE = 0.045 + 0.045 * np.eye(P)            # and sites differ on them, together
SITE_EFFECT, NOISE = 0.3, 0.8               # on the outcome, beyond the scales


def population() -> np.ndarray:
    """The covariance of [y, x] over respondents of all sites: what the pooled
    ("total"-centred) analysis estimates."""
    sxx = PERSON + SITE
    cov = np.empty((P + 1, P + 1))
    cov[1:, 1:] = sxx
    cov[1:, 0] = cov[0, 1:] = sxx @ WEIGHTS
    cov[0, 0] = WEIGHTS @ sxx @ WEIGHTS + SITE_EFFECT ** 2 + NOISE ** 2
    return cov


def respondents(seed: int, n_sites: int = 40, per_site: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    site = np.repeat(np.arange(n_sites), rng.poisson(per_site, n_sites) + 5)
    x = (rng.multivariate_normal(np.zeros(P), PERSON, len(site))
         + rng.multivariate_normal(np.zeros(P), SITE, n_sites)[site])
    y = (x @ WEIGHTS + SITE_EFFECT * rng.standard_normal(n_sites)[site]
         + NOISE * rng.standard_normal(len(site)))
    return pd.DataFrame(x, columns=NAMES).assign(y=y, site=[f"S{s:02d}" for s in site])


def test_site_moments_rebuild_the_covariance_of_the_rows():
    frame = respondents(0, n_sites=6)
    frame.loc[3, "x1"] = np.nan                 # listwise, like the SQL sums
    moments = SiteMoments.from_frame(frame, "site", ["y", *NAMES])
    complete = frame.dropna()
    assert moments.n.sum() == len(complete) and moments.sites[0] == "S00"
    np.testing.assert_allclose(moments.pooled_covariance(),
                               complete[["y", *NAMES]].cov().to_numpy(), atol=1e-12)
    centred = complete[["y", *NAMES]] - complete.groupby("site")[["y", *NAMES]].transform("mean")
    np.testing.assert_allclose(moments.pooled_covariance(centring="within_site"),
                               centred.T @ centred / (len(complete) - 6), atol=1e-12)
    np.testing.assert_allclose(
        moments.of_sites(["S02"]).pooled_covariance(),
        complete.loc[complete.site == "S02", ["y", *NAMES]].cov().to_numpy(), atol=1e-12)
    pooled = dominance_from_site_moments(moments, "y", NAMES[::-1])
    rows = dominance_table(complete, "y", NAMES[::-1])
    np.testing.assert_allclose(pooled.general, rows.general, atol=1e-12)
    assert pooled.predictors == tuple(NAMES[::-1]) and pooled.n == len(complete)


def test_sites_get_their_own_model_only_from_the_minimum():
    frame = respondents(1, n_sites=8, per_site=90)
    moments = SiteMoments.from_frame(frame, "site", ["y", *NAMES])
    sites = site_dominance(moments, "y", NAMES)
    counts = frame["site"].value_counts()
    assert MIN_SITE_RESPONDENTS == 100
    assert set(sites.index) == set(counts[counts >= 100].index) and 0 < len(sites) < 8
    first = sites.index[0]
    own = dominance_table(frame[frame.site == first], "y", NAMES)
    np.testing.assert_allclose(sites.loc[first, NAMES].to_numpy(float), own.general_share,
                               atol=1e-12)
    assert sites.loc[first, "r2"] == pytest.approx(own.total)
    assert sites.loc[first, "n"] == counts[first]
    assert site_dominance(moments, "y", NAMES, min_respondents=10_000).empty


def test_the_bootstrap_needs_enough_sites():
    moments = SiteMoments.from_frame(respondents(2, n_sites=4), "site", ["y", *NAMES])
    with pytest.raises(DriversError, match="at least 5 sites"):
        site_bootstrap(moments, "y", NAMES)


def test_planted_driver_order_is_recovered_and_intervals_cover_the_truth():
    truth = dominance_from_moments(population(), 0, range(1, P + 1)).general_share
    # correlated scales share the credit: x4 has no weight of its own but a share
    assert list(np.argsort(-truth)) == [0, 1, 2, 3, 4] and truth[4] > 0.03
    covered, recovered, widths = [], [], []
    for seed in range(40):
        moments = SiteMoments.from_frame(respondents(seed), "site", ["y", *NAMES])
        boot = site_bootstrap(moments, "y", NAMES, draws=300, seed=seed)
        covered.append((boot.share_low <= truth) & (truth <= boot.share_high))
        recovered.append(list(np.argsort(-boot.share)) == [0, 1, 2, 3, 4])
        widths.append(boot.share_high - boot.share_low)
        assert boot.n_sites == 40 and boot.share_draws.shape == (300, P)
    assert np.mean(recovered) >= 0.9
    # 200 intervals at 95%: 0.955 with these seeds; below 0.88 would be a real shortfall
    assert 0.88 <= np.mean(covered) <= 0.99
    # resampling respondents instead of sites would be narrower than this
    assert np.mean(widths) > 0.05


def test_bootstrap_is_reproducible_and_its_table_is_ordered():
    moments = SiteMoments.from_frame(respondents(5), "site", ["y", *NAMES])
    first = site_bootstrap(moments, "y", NAMES, draws=50, seed=9)
    again = site_bootstrap(moments, "y", NAMES, draws=50, seed=9)
    np.testing.assert_array_equal(first.share_draws, again.share_draws)
    table = first.table()
    assert list(table.index) == list(np.array(NAMES)[np.argsort(-first.share)])
    assert (table["share_low"] <= table["share"]).all()
    assert (table["share"] <= table["share_high"]).all()
    assert first.total_low <= first.total <= first.total_high


def test_one_predictor_takes_the_whole_fit_and_fits_must_cover_every_subset():
    case = GOLDEN["linear_sat_act"]
    single = dominance_table(golden_data(case), "ACT", ["SATV"])
    assert single.general[0] == pytest.approx(single.total)
    assert single.total == pytest.approx(case["subset_fit"][8], abs=LINEAR)   # SATV alone
    with pytest.raises(DriversError, match="need 8 subset fits"):
        dominance_from_fits([0, .1, .2], "y", ["a", "b", "c"])
