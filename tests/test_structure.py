"""Structure and validity against R (psych 2.2.9, lavaan 0.6.14, semTools).

tests/expected/generate_r_structure.R made tests/expected/structure_samples.json from the
committed sample (three core scales, listwise).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from stats.reliability import StatisticsError
from pipeline.scoring import keyed_items
from stats.structure import (bartlett_sphericity, cfa, efa, htmt, kmo, parallel_analysis,
                                rmsea_interval)
from survey.settings import PROJECT_ROOT, SAMPLES_DIR

#: Closed-form statistics agree with R to rounding.
EXACT = 1e-9
#: Model-based ones go through an optimiser; ours stops within ~3e-7 of lavaan's solution
#: (chi-square within 1e-9, loadings within 3e-7).
OPTIMISER = 1e-6

GOLDEN = json.loads((PROJECT_ROOT / "tests" / "expected" / "structure_samples.json")
                    .read_text(encoding="utf-8"))
CORE = ("stigma", "psysafety", "pathways")


@pytest.fixture(scope="module")
def core_items(instrument) -> pd.DataFrame:
    answers = pd.read_csv(SAMPLES_DIR / "responses_clean.csv")
    return pd.concat([keyed_items(answers, instrument, s) for s in CORE], axis=1).dropna()


@pytest.fixture(scope="module")
def structure(instrument) -> dict[str, list[str]]:
    return {s: [i.id for i in instrument.items_of(s)] for s in CORE}


@pytest.fixture(scope="module")
def fitted(core_items, structure):
    return cfa(core_items, structure)


def test_kmo_and_bartlett_match_psych(core_items):
    assert len(core_items) == GOLDEN["n"]
    result = kmo(core_items)
    assert result.overall == pytest.approx(GOLDEN["kmo_overall"], abs=EXACT)
    for item, value in GOLDEN["kmo_items"].items():
        assert result.per_item[item] == pytest.approx(value, abs=EXACT)
    test = bartlett_sphericity(core_items)
    assert test.chi_square == pytest.approx(GOLDEN["bartlett_chisq"], abs=1e-6)
    assert test.df == GOLDEN["bartlett_df"] and test.p_value < 1e-300


def test_cfa_fit_matches_lavaan(fitted):
    expected = GOLDEN["fit"]
    assert fitted.n == GOLDEN["n"] and fitted.df == expected["df"]
    assert fitted.chi_square == pytest.approx(expected["chisq"], abs=OPTIMISER)
    for name, value in (("cfi", fitted.cfi), ("tli", fitted.tli), ("rmsea", fitted.rmsea),
                        ("rmsea.ci.lower", fitted.rmsea_ci[0]),
                        ("rmsea.ci.upper", fitted.rmsea_ci[1]), ("srmr", fitted.srmr)):
        assert value == pytest.approx(expected[name], abs=OPTIMISER), name


def test_loadings_reliability_and_validity_match_lavaan_and_semtools(fitted, core_items,
                                                                      structure):
    for factor, items in GOLDEN["loadings"].items():
        for item, value in items.items():
            assert fitted.loadings[factor][item] == pytest.approx(value, abs=OPTIMISER)
    for factor in CORE:
        assert fitted.composite_reliability[factor] == pytest.approx(
            GOLDEN["composite_reliability"][factor], abs=OPTIMISER)
        assert fitted.ave[factor] == pytest.approx(GOLDEN["ave"][factor], abs=OPTIMISER)
    ratios = htmt(core_items, structure)
    for a in CORE:
        for b in CORE:
            assert ratios.loc[a, b] == pytest.approx(GOLDEN["htmt"][a][b], abs=EXACT)


def test_rmsea_interval_uses_n_as_lavaan_does():
    # lavaan's values for the sample model: chi2 478.9676, df 227, N 1334.
    # lavaan's own root finder stops within ~1e-9 of the bound.
    low, high = rmsea_interval(478.967573099003, 227, 1334)
    assert low == pytest.approx(GOLDEN["fit"]["rmsea.ci.lower"], abs=1e-8)
    assert high == pytest.approx(GOLDEN["fit"]["rmsea.ci.upper"], abs=1e-8)
    # A model fitting better than chance has an interval starting at zero.
    assert rmsea_interval(200.0, 227, 1334)[0] == 0.0


def test_parallel_analysis_finds_the_three_planted_constructs(core_items):
    result = parallel_analysis(core_items, iterations=50, seed=1)
    assert result.suggested_factors == 3
    assert result == parallel_analysis(core_items, iterations=50, seed=1)


def test_efa_separates_the_scales_and_checks_its_options(core_items, structure):
    loadings = efa(core_items, 3, rotation="oblimin")
    primary = loadings.abs().idxmax(axis=1)
    for items in structure.values():
        assert primary[items].nunique() == 1           # every scale on its own factor
    assert primary.nunique() == 3
    with pytest.raises(StatisticsError, match="rotation 'spin'"):
        efa(core_items, 2, rotation="spin")


def test_random_eigenvalues_from_wishart_draws_match_simulating_the_data():
    # The shortcut must have the distribution of eigenvalues of np.corrcoef of normal
    # data: compare mean eigenvalues of both over many draws (Monte Carlo SE ~0.005).
    from stats.structure import wishart_identity

    rng, n, p, draws = np.random.default_rng(3), 200, 8, 1500
    direct = np.array([np.sort(np.linalg.eigvalsh(np.corrcoef(
        rng.standard_normal((n, p)), rowvar=False)))[::-1] for _ in range(draws)])
    shortcut = []
    for _ in range(draws):
        scatter = wishart_identity(rng, n - 1, p)
        scale = 1 / np.sqrt(np.diag(scatter))
        shortcut.append(np.sort(np.linalg.eigvalsh(scatter * np.outer(scale, scale)))[::-1])
    shortcut = np.array(shortcut)
    assert np.abs(direct.mean(axis=0) - shortcut.mean(axis=0)).max() < 0.01
    assert np.abs(np.percentile(direct, 95, axis=0)
                  - np.percentile(shortcut, 95, axis=0)).max() < 0.03
    assert direct.mean(axis=0)[0] > 1.3  # the test has power: eigenvalues are spread


def test_cfa_gradient_is_the_derivative_of_the_discrepancy(core_items, structure):
    from stats.structure import _ml_problem

    columns = [item for items in structure.values() for item in items]
    sample = np.cov(core_items[columns].to_numpy(float), rowvar=False, bias=True)
    objective, start, _, _, _ = _ml_problem(sample, structure, columns)
    theta = start + np.random.default_rng(0).uniform(0.0, 0.2, len(start))
    _, analytic = objective(theta)
    step = 1e-6
    numeric = np.array([(objective(theta + step * e)[0] - objective(theta - step * e)[0])
                        / (2 * step) for e in np.eye(len(theta))])
    assert np.abs(analytic - numeric).max() < 1e-6
    assert np.abs(analytic).max() > 1e-2          # away from the optimum: not trivially 0


def test_cfa_recovers_a_model_that_fits_exactly():
    # Population covariance of a two-factor model handed over as data with that exact
    # covariance: chi-square 0, CFI 1, SRMR 0 and the true standardised loadings.
    lam = np.array([[1.0, 0], [0.8, 0], [1.2, 0], [0, 1.0], [0, 0.7], [0, 0.9]])
    phi = np.array([[0.5, 0.2], [0.2, 0.8]])
    theta = np.array([0.4, 0.5, 0.3, 0.6, 0.5, 0.4])
    sigma = lam @ phi @ lam.T + np.diag(theta)
    rng = np.random.default_rng(1)
    raw = rng.standard_normal((400, 6))
    raw = (raw - raw.mean(0)) @ np.linalg.inv(np.linalg.cholesky(np.cov(raw.T, bias=True))).T
    data = pd.DataFrame(raw @ np.linalg.cholesky(sigma).T + 3, columns=list("abcdef"))
    fitted = cfa(data, {"f": ["a", "b", "c"], "g": ["d", "e", "f"]})
    assert fitted.df == 8 and fitted.chi_square == pytest.approx(0, abs=1e-6)
    assert fitted.cfi == pytest.approx(1) and fitted.srmr == pytest.approx(0, abs=1e-6)
    true_std = lam.max(axis=1) * np.sqrt(np.diag(phi)[lam.argmax(axis=1)]) / np.sqrt(np.diag(sigma))
    got = [fitted.loadings["f"][c] for c in "abc"] + [fitted.loadings["g"][c] for c in "def"]
    assert np.abs(np.array(got) - true_std).max() < 1e-5


def test_cfa_agrees_with_semopy_on_every_scale(instrument):
    # An independent fitter on eight one-factor models: chi-square, CFI and TLI agree.
    semopy = pytest.importorskip("semopy")
    answers = pd.read_csv(SAMPLES_DIR / "responses_clean.csv")
    for scale in instrument.scales:
        items = keyed_items(answers, instrument, scale.id).dropna()
        ours = cfa(items, {"f": list(items.columns)})
        model = semopy.Model("f =~ " + " + ".join(items.columns))
        model.fit(items)
        theirs = semopy.calc_stats(model).T["Value"]
        assert ours.df == int(theirs["DoF"]), scale.id
        assert ours.chi_square == pytest.approx(float(theirs["chi2"]), rel=1e-3), scale.id
        # semopy does not cap CFI at 1 where lavaan (and we) do.
        assert ours.cfi == pytest.approx(min(float(theirs["CFI"]), 1.0), abs=1e-4), scale.id
        assert ours.tli == pytest.approx(float(theirs["TLI"]), abs=1e-4), scale.id


def test_cfa_refuses_what_it_cannot_fit(core_items, structure):
    with pytest.raises(StatisticsError, match="at least two items"):
        cfa(core_items, {"f": [structure["stigma"][0]], "g": structure["psysafety"]})
    with pytest.raises(StatisticsError, match="one factor only"):
        cfa(core_items, {"f": structure["stigma"], "g": structure["stigma"][:2]})
    with pytest.raises(StatisticsError, match="more complete responses"):
        cfa(core_items.head(5), structure)
    constant = core_items.assign(**{structure["stigma"][0]: 3.0})
    with pytest.raises(StatisticsError, match="singular"):
        cfa(constant, structure)
