"""Our statistics against R on two public datasets: Holzinger & Swineford (1939) and bfi.

tests/expected/generate_r_public.R wrote tests/expected/public_datasets.json with R 4.2
(psych 2.2.9, lavaan 0.6.14, semTools 0.5-6). The raw rows are not committed (this
repository holds synthetic data only); the JSON keeps the counts, means and covariance
matrices every statistic here is a function of. Each test rebuilds a data set with
exactly those moments (`matched`) and checks that our functions give R's numbers on it:
ML CFA and its fit, loadings, CR, AVE and HTMT; KMO and Bartlett; alpha, Feldt
interval, omega and item statistics (listwise and, from the pairwise matrices,
pairwise); measurement invariance across groups; ICC(1), ICC(2) and rwg(j) with
unequal groups.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from stats.agreement import icc, rwg_j
from stats.invariance import measurement_invariance
from stats.reliability import (alpha_from_covariance, cronbach_alpha, item_statistics,
                                  item_statistics_from_covariance, omega_total,
                                  omega_total_from_correlation)
from stats.structure import bartlett_sphericity, cfa, htmt, kmo
from survey.settings import PROJECT_ROOT

GOLDEN = json.loads((PROJECT_ROOT / "tests" / "expected" / "public_datasets.json")
                    .read_text(encoding="utf-8"))
HS, BFI = GOLDEN["holzinger_swineford"], GOLDEN["bfi"]
#: Closed-form statistics agree to rounding; optimised ones to the optimisers' tolerance.
EXACT, OPTIMISED = 1e-9, 1e-5


def matched(n: int, means, cov, columns, seed: int = 0) -> pd.DataFrame:
    """n rows whose means and sample covariance (divisor n - 1) are exactly these."""
    means, cov = np.asarray(means, float), np.asarray(cov, float)
    z = np.random.default_rng(seed).standard_normal((n, len(means)))
    z -= z.mean(axis=0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T
    return pd.DataFrame(z @ np.linalg.cholesky(cov).T + means, columns=columns)


def grouped(groups: dict, columns, name: str) -> pd.DataFrame:
    return pd.concat([matched(g["n"], g["means"], g["cov"], columns, seed=i).assign(**{name: key})
                      for i, (key, g) in enumerate(groups.items())], ignore_index=True)


@pytest.fixture(scope="module", params=["holzinger_swineford", "bfi"])
def case(request):
    golden = GOLDEN[request.param]
    m = golden["moments"]
    return golden, matched(m["n"], m["means"], m["cov"], m["columns"])


def test_the_rebuilt_data_has_exactly_the_published_moments(case):
    golden, data = case
    assert len(data) == golden["moments"]["n"]
    assert np.abs(data.cov().to_numpy() - np.array(golden["moments"]["cov"])).max() < 1e-12
    assert np.abs(data.mean().to_numpy() - golden["moments"]["means"]).max() < 1e-12


def test_cfa_fit_loadings_and_validity_match_lavaan_and_semtools(case):
    golden, data = case
    structure = golden["structure"]
    fitted = cfa(data, structure)
    expected = golden["fit"]
    assert fitted.df == expected["df"] and fitted.n == golden["moments"]["n"]
    assert fitted.chi_square == pytest.approx(expected["chisq"], abs=1e-4)
    for name, value in (("cfi", fitted.cfi), ("tli", fitted.tli), ("rmsea", fitted.rmsea),
                        ("rmsea.ci.lower", fitted.rmsea_ci[0]),
                        ("rmsea.ci.upper", fitted.rmsea_ci[1]), ("srmr", fitted.srmr)):
        assert value == pytest.approx(expected[name], abs=OPTIMISED), name
    for factor, loadings in golden["loadings"].items():
        for item, value in loadings.items():
            assert fitted.loadings[factor][item] == pytest.approx(value, abs=OPTIMISED)
        assert fitted.composite_reliability[factor] == pytest.approx(
            golden["composite_reliability"][factor], abs=OPTIMISED)
        assert fitted.ave[factor] == pytest.approx(golden["ave"][factor], abs=OPTIMISED)
    ratios = htmt(data, structure).to_numpy()
    assert np.abs(ratios - np.array(golden["htmt"])).max() < EXACT


def test_kmo_and_bartlett_match_psych(case):
    golden, data = case
    result = kmo(data)
    assert result.overall == pytest.approx(golden["kmo_overall"], abs=EXACT)
    assert np.abs(np.array(list(result.per_item.values())) - golden["kmo_items"]).max() < EXACT
    test = bartlett_sphericity(data)
    assert test.chi_square == pytest.approx(golden["bartlett_chisq"], rel=1e-10)
    assert test.df == golden["bartlett_df"]


def _check_reliability(alpha, omega, stats, expected):
    assert alpha.alpha == pytest.approx(expected["raw_alpha"], abs=EXACT)
    assert alpha.alpha_standardised == pytest.approx(expected["std_alpha"], abs=EXACT)
    assert alpha.ci_low == pytest.approx(expected["feldt_lower"], abs=EXACT)
    assert alpha.ci_high == pytest.approx(expected["feldt_upper"], abs=EXACT)
    assert omega == pytest.approx(expected["omega_total"], abs=1e-6)
    assert np.abs(np.array(stats.item_total_corrected)
                  - expected["item_total_corrected"]).max() < EXACT
    assert np.abs(np.array(stats.alpha_if_deleted) - expected["alpha_if_deleted"]).max() < EXACT


@pytest.mark.parametrize("factor", ["visual", "textual", "speed"])
def test_alpha_omega_and_item_statistics_match_psych_on_complete_data(factor):
    m = HS["moments"]
    data = matched(m["n"], m["means"], m["cov"], m["columns"])[HS["structure"][factor]]
    _check_reliability(cronbach_alpha(data), omega_total(data), item_statistics(data),
                       HS["reliability"][factor])


@pytest.mark.parametrize("trait", list(BFI["structure"]))
def test_pairwise_alpha_omega_and_item_statistics_match_psych_with_missing_answers(trait):
    # bfi has missing answers; psych uses pairwise covariances and every row's count for
    # alpha, and correlations of each pair on its own respondents for omega.
    pairwise = BFI["pairwise"][trait]
    cov = np.array(pairwise["cov"])
    _check_reliability(alpha_from_covariance(cov, pairwise["n"]),
                       omega_total_from_correlation(np.array(pairwise["cor"])),
                       item_statistics_from_covariance(cov, tuple(BFI["structure"][trait])),
                       pairwise["golden"])


@pytest.mark.parametrize("golden, group", [
    (HS["invariance_school"], "school"), (BFI["agreeableness_by_gender"]["steps"], "gender")])
def test_measurement_invariance_matches_lavaan(golden, group):
    if group == "school":
        items = HS["structure"]["visual"] + HS["structure"]["textual"] + HS["structure"]["speed"]
        data = grouped(HS["by_school"], items, group)
    else:
        items = BFI["structure"]["agreeableness"]
        data = grouped(BFI["agreeableness_by_gender"]["by_group"], items, group)
    steps = {s.step: s for s in measurement_invariance(data, items, group)}
    for name, expected in golden.items():
        assert steps[name].df == expected["df"], name
        assert steps[name].chi_square == pytest.approx(expected["chisq"], abs=1e-3), name
        assert steps[name].cfi == pytest.approx(expected["cfi"], abs=1e-5), name
        assert steps[name].rmsea == pytest.approx(expected["rmsea"], abs=1e-5), name


@pytest.mark.parametrize("trait", list(BFI["structure"]))
def test_icc_with_unequal_groups_and_rwg_match_r(trait):
    golden = BFI["aggregation"][trait]
    rng = np.random.default_rng(1)
    scores, groups, item_blocks = [], [], []
    items = BFI["structure"][trait]
    for g in golden["by_group"]:
        # Scores with the group's exact size, mean and variance.
        z = rng.standard_normal(g["n"])
        z = (z - z.mean()) / z.std(ddof=1)
        scores.append(g["score_mean"] + np.sqrt(g["score_var"]) * z)
        groups += [g["level"]] * g["n"]
        # Items with the group's exact variances (rwg depends on nothing else).
        block = matched(g["n"], np.zeros(len(items)), np.diag(g["item_variances"]), items)
        item_blocks.append(block)
    result = icc(pd.Series(np.concatenate(scores)), pd.Series(groups))
    assert (result.n, result.groups) == (golden["n"], golden["groups"])
    assert result.n0 == pytest.approx(golden["n0"], rel=1e-12)
    assert result.icc1 == pytest.approx(golden["icc1"], abs=EXACT)
    assert result.icc2 == pytest.approx(golden["icc2"], abs=EXACT)
    agreement = rwg_j(pd.concat(item_blocks, ignore_index=True), pd.Series(groups), options=6)
    for g in golden["by_group"]:
        assert agreement.by_group[g["level"]] == pytest.approx(g["rwg_j"], abs=EXACT)
