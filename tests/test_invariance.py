"""Measurement invariance across site types against lavaan 0.6.14 (multi-group CFA)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from stats.invariance import measurement_invariance
from stats.reliability import StatisticsError
from pipeline.scoring import keyed_items
from survey.settings import PROJECT_ROOT, SAMPLES_DIR

GOLDEN = json.loads((PROJECT_ROOT / "tests" / "expected" / "invariance_samples.json")
                    .read_text(encoding="utf-8"))
#: Both optimisers converge to the same minimum; chi-square agrees to ~1e-7 in practice.
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def answers() -> pd.DataFrame:
    frame = pd.read_csv(SAMPLES_DIR / "responses_clean.csv")
    sites = pd.read_csv(SAMPLES_DIR / "sites.csv")
    frame["site_type"] = frame.site.map(dict(zip(sites.site_code, sites.site_type)))
    return frame


@pytest.mark.parametrize("scale", list(GOLDEN))
def test_configural_metric_scalar_match_lavaan(scale, answers, instrument):
    items = keyed_items(answers, instrument, scale)
    data = items.assign(site_type=answers.site_type)
    steps = measurement_invariance(data, list(items.columns), "site_type")
    assert [s.step for s in steps] == ["configural", "metric", "scalar"]
    for step in steps:
        expected = GOLDEN[scale][step.step]
        assert step.df == expected["df"]
        assert step.chi_square == pytest.approx(expected["chisq"], abs=TOLERANCE)
        assert step.cfi == pytest.approx(expected["cfi"], abs=TOLERANCE)
        assert step.rmsea == pytest.approx(expected["rmsea"], abs=TOLERANCE)
    # The generator gives every site type the same measurement model: invariance holds.
    assert steps[2].verdict == "scalar invariance holds"
    assert steps[1].delta_cfi == pytest.approx(steps[1].cfi - steps[0].cfi)


def test_shifted_intercepts_break_scalar_but_not_metric_invariance(answers, instrument):
    items = keyed_items(answers, instrument, "psysafety")
    data = items.assign(site_type=answers.site_type)
    # Support-unit respondents read two items more favourably at the same level of safety.
    units = data.site_type == "professional_support_unit"
    data.loc[units, ["ps01", "ps03"]] = data.loc[units, ["ps01", "ps03"]] + 0.8
    steps = {s.step: s for s in measurement_invariance(data, list(items.columns), "site_type")}
    assert steps["metric"].verdict == "metric invariance holds"
    assert steps["scalar"].verdict.startswith("scalar invariance does not hold")
    assert steps["scalar"].delta_cfi < -0.01 or steps["scalar"].delta_rmsea > 0.015


def test_one_group_is_refused(answers, instrument):
    items = keyed_items(answers, instrument, "stigma").assign(g="all")
    with pytest.raises(StatisticsError, match="at least two groups"):
        measurement_invariance(items, [c for c in items.columns if c != "g"], "g")


THREE_ITEMS = json.loads((PROJECT_ROOT / "tests" / "expected" / "invariance_three_items.json")
                         .read_text(encoding="utf-8"))


def test_a_saturated_configural_model_is_reported_as_lavaan_does():
    """Three items: the configural model has df 0 (9 moments, 9 parameters per group).
    lavaan reports chi-square 0, CFI 1 and RMSEA 0; metric and scalar are tested as usual
    (tests/expected/generate_r_invariance_three_items.R, HolzingerSwineford1939 by school)."""
    data = pd.DataFrame(THREE_ITEMS["data"])
    steps = {s.step: s for s in measurement_invariance(data, ["x1", "x2", "x3"], "school")}
    configural = steps["configural"]
    assert (configural.df, configural.cfi, configural.rmsea) == (0, 1.0, 0.0)
    assert configural.chi_square == pytest.approx(0, abs=TOLERANCE)
    assert configural.verdict == "baseline model (saturated: df 0, its fit cannot be tested)"
    for name in ("metric", "scalar"):
        expected = THREE_ITEMS[name]
        assert steps[name].df == expected["df"]
        assert steps[name].chi_square == pytest.approx(expected["chisq"], abs=TOLERANCE)
        assert steps[name].cfi == pytest.approx(expected["cfi"], abs=TOLERANCE)
        assert steps[name].rmsea == pytest.approx(expected["rmsea"], abs=TOLERANCE)
    assert steps["metric"].verdict == "metric invariance holds"
    assert steps["scalar"].verdict.startswith("scalar invariance does not hold")
