"""Reliability and aggregation statistics against R (psych 2.2.9) golden values.

tests/expected/generate_r_reliability.R made tests/expected/reliability_samples.json
from the committed sample; these tests recompute every number in Python.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from stats.agreement import (icc, icc_from_group_stats, null_variance, rwg_from_variances,
                             rwg_j, rwg_star_from_variances)
from stats.reliability import (StatisticsError, cronbach_alpha, feldt_interval,
                                  omega_total_from_correlation,
                                  item_statistics, omega_total, one_factor_loadings)
from pipeline.scoring import keyed_items, scale_score
from survey.settings import PROJECT_ROOT, SAMPLES_DIR

#: Agreement with R: closed-form statistics agree to rounding; omega goes through an
#: iterative minres fit, which psych stops at its own tolerance (we iterate to 1e-13 and
#: land within ~1e-7 of psych's answer).
EXACT = 1e-9
ITERATIVE = 1e-6

GOLDEN = json.loads((PROJECT_ROOT / "tests" / "expected" / "reliability_samples.json")
                    .read_text(encoding="utf-8"))
#: multilevel (Bliese) on its own public data: tests/expected/generate_r_agreement.R.
PUBLIC = json.loads((PROJECT_ROOT / "tests" / "expected" / "agreement_public.json")
                    .read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def answers() -> pd.DataFrame:
    return pd.read_csv(SAMPLES_DIR / "responses_clean.csv")


def close(actual, expected, tolerance):
    assert np.allclose(actual, expected, atol=tolerance, rtol=0), (actual, expected)


@pytest.mark.parametrize("policy", ["pairwise", "listwise"])
@pytest.mark.parametrize("scale", list(GOLDEN))
def test_alpha_interval_omega_and_item_statistics_match_psych(scale, policy, answers,
                                                              instrument):
    expected = GOLDEN[scale][policy]
    items = keyed_items(answers, instrument, scale)
    alpha = cronbach_alpha(items, nan_policy=policy)
    assert (alpha.n, alpha.n_items) == (expected["n"], expected["k"])
    close(alpha.alpha, expected["raw_alpha"], EXACT)
    close(alpha.alpha_standardised, expected["std_alpha"], EXACT)
    close([alpha.ci_low, alpha.ci_high], [expected["feldt_lower"], expected["feldt_upper"]],
          EXACT)
    stats = item_statistics(items, nan_policy=policy)
    assert list(stats.items) == expected["items"]
    close(stats.item_total_corrected, expected["item_total_corrected"], EXACT)
    close(stats.alpha_if_deleted, expected["alpha_if_deleted"], EXACT)
    close(omega_total(items, nan_policy=policy), expected["omega_total"], ITERATIVE)


@pytest.mark.parametrize("scale", list(GOLDEN))
def test_icc_and_rwg_by_site_match_r(scale, answers, instrument):
    expected = GOLDEN[scale]["by_site"]
    result = icc(scale_score(answers, instrument, scale), answers["site"])
    assert (result.n, result.groups) == (expected["n"], expected["groups"])
    close([result.n0, result.msb, result.msw, result.icc1, result.icc2],
          [expected["n0"], expected["msb"], expected["msw"], expected["icc1"],
           expected["icc2"]], EXACT)
    agreement = rwg_j(keyed_items(answers, instrument, scale), answers["site"])
    assert set(agreement.by_group) == set(expected["rwg_j"])
    for site, value in expected["rwg_j"].items():
        close(agreement.by_group[site], value, EXACT)
    close(agreement.median, expected["rwg_j_median"], EXACT)


@pytest.mark.parametrize("variable", list(PUBLIC["bh1996"]))
def test_icc1_with_both_group_size_conventions_matches_multilevel(variable):
    """bh1996: 99 groups of 15 to 226, so n0 (74.31) and N / J (74.57) differ."""
    expected = PUBLIC["bh1996"][variable]
    result = icc_from_group_stats(np.array(expected["sizes"]), np.array(expected["means"]),
                                  np.array(expected["within"]))
    close([result.msb, result.msw, result.n0], [expected["msb"], expected["msw"],
                                                expected["n0"]], EXACT)
    close(result.icc1, expected["icc1_n0"], EXACT)
    close(result.icc1_mean_size, expected["icc1_mean_size"], EXACT)   # multilevel::ICC1
    close(result.icc2, expected["icc2"], EXACT)                       # multilevel::ICC2
    # The conventions differ here by more than the tolerance: the test tells them apart.
    assert abs(result.icc1 - result.icc1_mean_size) > 1e-4


@pytest.mark.parametrize("items", list(PUBLIC["lq2002"]))
def test_rwg_j_and_r_star_wg_j_against_both_nulls_match_multilevel(items):
    expected = PUBLIC["lq2002"][items]
    variances = np.array(expected["item_variances"])
    close(null_variance(5, "slight_skew"), PUBLIC["slight_skew_variance"], EXACT)
    close(null_variance(5, "slight_skew"), 1.34, EXACT)
    for null in ("uniform", "slight_skew"):
        close(rwg_from_variances(variances, 5, null), expected[f"rwg_j_{null}"], EXACT)
        close(rwg_star_from_variances(variances, 5, null), expected[f"rwg_j_star_{null}"],
              EXACT)
    # r*wg(j) is not stepped up by the items: below rwg(j) for every company here.
    assert (rwg_star_from_variances(variances) < rwg_from_variances(variances)).all()


def test_a_null_that_is_not_tabulated_is_refused():
    with pytest.raises(StatisticsError, match="5-point items only"):
        null_variance(7, "slight_skew")
    with pytest.raises(StatisticsError, match="use one of uniform, slight_skew"):
        null_variance(5, "heavy")


def test_planted_outliers_make_sites_differ_most_on_their_scales(answers, instrument,
                                                                 sample_manifest):
    """The generator shifted one site on each of two scales (the manifest's outliers):
    our ICC(1) ranks exactly those scales highest, and the shifted site's mean lies on
    the planted side of every other site's."""
    icc1 = {scale.id: icc(scale_score(answers, instrument, scale.id), answers["site"]).icc1
            for scale in instrument.scales}
    planted = {o["scale"]: o for o in sample_manifest["outliers"]}
    assert set(sorted(icc1, key=icc1.get)[-2:]) == set(planted) == {"pathways", "psysafety"}
    for scale, outlier in planted.items():
        means = scale_score(answers, instrument, scale).groupby(answers["site"]).mean()
        extreme = means.idxmin() if outlier["direction"] == "low" else means.idxmax()
        assert extreme == outlier["site"], scale


def test_feldt_interval_worked_example():
    # Feldt, Woodruff & Salih (1987): alpha .80 from 101 respondents and 10 items. In R:
    # 1 - (1 - .8) * qf(c(.975, .025), 100, 900) -> 0.736395564, 0.8534473825
    # (psych::alpha.ci(.8, 101, 10) prints 0.74 and 0.85).
    low, high = feldt_interval(0.80, 101, 10)
    assert low == pytest.approx(0.736395564, abs=1e-9)
    assert high == pytest.approx(0.8534473825, abs=1e-9)


def test_scale_score_needs_the_minimum_answered(instrument):
    row = {i.id: np.nan for i in instrument.items}
    row |= {"cf01": 5, "cf02": 1}                     # cf02 is reverse-keyed -> 5
    frame = pd.DataFrame([row, {**row, "cf02": np.nan}, {**row, "cf02": 9}])
    scores = scale_score(frame, instrument, "confidentiality")
    assert scores.iloc[0] == 5.0
    assert np.isnan(scores.iloc[1]) and np.isnan(scores.iloc[2])


def test_bad_inputs_are_refused_with_the_reason():
    with pytest.raises(StatisticsError, match="nan_policy 'everything'"):
        cronbach_alpha(pd.DataFrame({"a": [1, 2, 3], "b": [1, 2, 3]}), nan_policy="everything")
    with pytest.raises(StatisticsError, match="at least 2 items"):
        cronbach_alpha(pd.DataFrame({"a": [1, 2, 3]}))
    with pytest.raises(StatisticsError, match="at least two groups"):
        icc(pd.Series([1.0, 2.0]), pd.Series(["a", "a"]))


def test_one_factor_loadings_recover_a_known_structure_and_match_factor_analyzer():
    from factor_analyzer import FactorAnalyzer

    true = np.array([0.8, 0.7, 0.6, 0.5, 0.75])
    corr = np.outer(true, true)
    np.fill_diagonal(corr, 1.0)
    # An exact one-factor matrix: minres returns the generating loadings.
    assert np.allclose(one_factor_loadings(corr), true, atol=1e-10)
    noisy = corr + np.array([[0, .02, -.01, 0, .01], [.02, 0, 0, -.02, 0],
                             [-.01, 0, 0, .01, 0], [0, -.02, .01, 0, 0], [.01, 0, 0, 0, 0]])
    fitted = FactorAnalyzer(n_factors=1, rotation=None, method="minres",
                            is_corr_matrix=True).fit(noisy)
    assert np.allclose(one_factor_loadings(noisy), np.abs(fitted.loadings_[:, 0]), atol=1e-5)
    batch = one_factor_loadings(np.stack([corr, noisy]))
    assert np.allclose(batch[0], true, atol=1e-10)


def test_power_steps_land_on_the_same_fixed_point_as_exact_decompositions():
    # Noisy correlation matrices of small one-factor samples, 4 to 8 items: the batched
    # fit (power steps, then eigen decompositions) equals principal-axis iteration done
    # with eigen decompositions throughout, for every matrix that converges.
    from stats.reliability import _eigen_phase, one_factor_loadings

    rng = np.random.default_rng(5)
    for k in (4, 6, 8):
        matrices = []
        for _ in range(300):
            n = int(rng.integers(40, 600))
            lam = rng.uniform(0.3, 0.85, k)
            x = rng.standard_normal((n, 1)) * lam + rng.standard_normal((n, k)) * np.sqrt(1 - lam ** 2)
            matrices.append(np.corrcoef(np.clip(np.round(1.1 * x + 3), 1, 5), rowvar=False))
        matrices = np.array(matrices)
        fast = one_factor_loadings(matrices)
        smc = 1 - 1 / np.diagonal(np.linalg.pinv(matrices), axis1=1, axis2=2)
        exact = _eigen_phase(matrices, smc, 1e-11, 10_000)
        proper = (exact ** 2 < 1).all(axis=1)       # leave out Heywood cases
        assert proper.mean() > 0.9
        assert np.abs(fast - exact)[proper].max() < 1e-9, k


def test_a_heywood_case_has_no_omega_rather_than_a_made_up_one():
    # r12 = r13 = .9 and r23 = .5 force l1^2 = r12 r13 / r23 = 1.62: no proper
    # one-factor solution. The fit gives up (NaN) instead of iterating to the cap.
    from stats.reliability import one_factor_loadings

    heywood = np.array([[1, .9, .9], [.9, 1, .5], [.9, .5, 1]])
    proper = np.array([[1, .5, .4], [.5, 1, .3], [.4, .3, 1]])
    loadings = one_factor_loadings(np.stack([heywood, proper]))
    assert np.isnan(loadings[0]).all()
    assert np.isfinite(loadings[1]).all()
    # Three items: the proper solution is exact, l1^2 = r12 r13 / r23.
    assert loadings[1][0] ** 2 == pytest.approx(.5 * .4 / .3, abs=1e-9)
    assert np.isnan(omega_total_from_correlation(heywood))


def test_the_stage_publishes_both_icc1_conventions_and_three_agreement_indices(
        sample_store, instrument, answers):
    """The psychometrics stage (moment scans in DuckDB) against the respondent-level
    functions on the same sample: ICC(1) both ways per wave, and per site x wave rwg(j),
    r*wg(j) and rwg(j) with the slight-skew null, from pandas' own item variances."""
    from pipeline.psychometrics.stage import run_psychometrics
    from pipeline.store import open_store
    from survey.settings import resolve_settings

    with open_store(sample_store) as con:
        result = run_psychometrics(con, instrument, resolve_settings(environ={}))
    wave = answers[answers.wave == 2025]
    expected = icc(scale_score(wave, instrument, "psysafety"), wave.site)
    got = next(r for r in result.icc if r.scale == "psysafety" and r.wave == 2025)
    close([got.icc1, got.icc1_mean_size], [expected.icc1, expected.icc1_mean_size], EXACT)
    assert abs(got.icc1 - got.icc1_mean_size) > 1e-6      # unequal sites: they differ
    items = keyed_items(wave, instrument, "psysafety")
    variances = items.groupby(wave.site.to_numpy()).var(ddof=1)
    rows = {r.site_code: r for r in result.sites if r.scale == "psysafety" and r.wave == 2025}
    assert set(rows) == set(variances.index)
    for site, row in rows.items():
        v = variances.loc[[site]].to_numpy()
        close([row.rwg_j, row.rwg_j_star, row.rwg_j_slight_skew],
              [rwg_from_variances(v)[0], rwg_star_from_variances(v)[0],
               rwg_from_variances(v, null="slight_skew")[0]], EXACT)
        assert row.rwg_j_star < row.rwg_j and row.rwg_j_slight_skew < row.rwg_j
