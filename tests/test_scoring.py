"""Scale scores in the store equal the documented rule, on the real ingested sample."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipeline.scoring import (keyed_items, respondent_scores_sql, scale_score,
                             scale_scores_sql, score_responses)
from pipeline.sql_templates import fill
from pipeline.store import open_store
from survey.settings import SAMPLES_DIR


@pytest.fixture(scope="module")
def scored(sample_store, instrument):
    with open_store(sample_store) as con:
        rows = score_responses(con, instrument)
        table = con.execute("select * from scale_scores").df()
    return rows, table


def test_one_row_per_respondent_and_scale(scored, instrument):
    rows, table = scored
    manifest = json.loads((SAMPLES_DIR / "manifest.json").read_text())
    assert rows == manifest["n_responses"] * len(instrument.scales) == len(table)


@pytest.mark.parametrize("scale", ["stigma", "pathways", "confidentiality", "voice_peer"])
def test_scores_follow_the_rule_on_every_respondent(scored, instrument, scale):
    _, table = scored
    raw = pd.read_csv(SAMPLES_DIR / "responses_clean.csv").set_index("response_id")
    expected = scale_score(raw, instrument, scale)
    got = table[table.scale_id == scale].set_index("response_id")
    got = got.loc[expected.index]
    assert np.allclose(got.score, expected, equal_nan=True, atol=1e-12)
    assert np.allclose(got.score_0_10, (expected - 1) * 2.5, equal_nan=True, atol=1e-12)
    keyed = keyed_items(raw, instrument, scale)
    assert (got.n_favourable.to_numpy() == (keyed >= 4).sum(axis=1).to_numpy()).all()
    assert (got.n_answered.to_numpy() == keyed.notna().sum(axis=1).to_numpy()).all()
    # Respondents below the scale's minimum get no score; those who stopped part-way
    # (after item 20) are below it on the later scales.
    too_few = got.n_answered < instrument.scale(scale).min_items
    assert got.score[too_few].isna().all()
    if scale in ("confidentiality", "voice_peer"):
        assert too_few.sum() > 0


def test_scale_scores_view_is_built_from_the_one_definition(instrument):
    sql = scale_scores_sql(instrument)
    assert respondent_scores_sql(instrument, "responses") in sql
    assert "{{" not in sql


def test_a_template_slot_left_unfilled_or_unknown_is_an_error():
    assert fill("select {{ a }}, {{b}} from t", a="x", b='"y"') == 'select x, "y" from t'
    with pytest.raises(KeyError, match="'b'"):
        fill("select {{a}}, {{b}}", a="x")
    with pytest.raises(ValueError, match="'c'"):
        fill("select {{a}}", a="x", c="y")
