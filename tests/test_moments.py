"""Matrices from DuckDB sufficient statistics equal the respondent-level computation."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from pipeline.psychometrics.moments import moments_at_levels, scale_moments
from stats.reliability import (StatisticsError, alpha_batch, alpha_from_covariance,
                                  cronbach_alpha,
                                  omega_total, omega_total_from_correlation)
from pipeline.scoring import keyed_items, scale_score
from survey.settings import SAMPLES_DIR

#: Sums of small integers are exact; only the final divisions round.
TOLERANCE = 1e-12


@pytest.fixture(scope="module")
def sample_db(instrument):
    """The clean sample in DuckDB the way ingest stores it (9 = don't know -> NULL)."""
    frame = pd.read_csv(SAMPLES_DIR / "responses_clean.csv")
    item_ids = [i.id for i in instrument.items]
    frame[item_ids] = frame[item_ids].where(frame[item_ids] != 9)
    con = duckdb.connect()
    con.register("frame", frame)
    con.execute("create table responses as select site as site_code, * from frame")
    yield con, frame
    con.close()


@pytest.mark.parametrize("policy", ["pairwise", "listwise"])
@pytest.mark.parametrize("scale", ["stigma", "psysafety", "pathways", "voice_peer",
                                   "confidentiality"])
def test_moments_give_the_same_alpha_and_omega_as_respondent_data(scale, policy, sample_db,
                                                                  instrument):
    con, frame = sample_db
    groups = scale_moments(con, instrument, scale, by=("site_code", "wave"), nan_policy=policy)
    assert len(groups) == 7 * 3
    for group in groups:
        site, wave = group.key
        rows = frame[(frame.site == site) & (frame.wave == wave)]
        items = keyed_items(rows, instrument, scale)
        expected = cronbach_alpha(items, nan_policy=policy)
        n = group.n_rows if policy == "pairwise" else group.n_complete
        got = alpha_from_covariance(group.cov, n, policy)
        assert got.n == expected.n
        assert abs(got.alpha - expected.alpha) < TOLERANCE
        assert abs(got.alpha_standardised - expected.alpha_standardised) < TOLERANCE
        used = items.dropna() if policy == "listwise" else items
        assert np.allclose(group.corr, used.corr().to_numpy(), atol=TOLERANCE, rtol=0)
        assert abs(omega_total_from_correlation(group.corr) -
                   omega_total(items, nan_policy=policy)) < 1e-9


@pytest.mark.parametrize("scale", ["stigma", "pathways"])
def test_score_sums_ride_along_with_the_scale_score_rule(scale, sample_db, instrument):
    con, frame = sample_db
    summed = moments_at_levels(con, instrument, scale, (("site_code", "wave"), ("wave",)))
    for level, groups in summed.items():
        for group in groups:
            mask = np.ones(len(frame), dtype=bool)
            for column, value in zip(level, group.key):
                mask &= (frame.site if column == "site_code" else frame[column]).to_numpy() == value
            scores = scale_score(frame[mask], instrument, scale).dropna()
            assert group.score_n == len(scores) > 0
            assert abs(group.score_sum - scores.sum()) < TOLERANCE
            assert abs(group.score_sumsq - (scores ** 2).sum()) < 1e-9


def test_an_unstated_group_is_a_group_of_its_own(sample_db, instrument):
    con, frame = sample_db
    con.execute("create or replace temp view blanked as select * replace ("
                "case when hash(response_id) % 7 = 0 then null else staff_group end "
                "as staff_group) from responses")
    blank = con.execute("select count(*) from blanked where staff_group is null").fetchall()[0][0]
    summed = moments_at_levels(con, instrument, "stigma",
                               (("site_code", "staff_group"), ("staff_group",)),
                               source="blanked")
    direct = scale_moments(con, instrument, "stigma", by=("staff_group",), source="blanked")
    assert [g.key for g in summed[("staff_group",)]] == [g.key for g in direct]
    unstated = [g for g in direct if g.key == (None,)]
    assert len(unstated) == 1 and unstated[0].n_rows == blank > 0
    for a, b in zip(summed[("staff_group",)], direct):
        assert np.allclose(a.cov, b.cov, atol=TOLERANCE, rtol=0, equal_nan=True)


def test_batched_alpha_equals_one_group_at_a_time(sample_db, instrument):
    con, _ = sample_db
    groups = scale_moments(con, instrument, "pathways")
    batch = alpha_batch(np.stack([g.cov for g in groups]), [g.n_rows for g in groups])
    for index, group in enumerate(groups):
        single = alpha_from_covariance(group.cov, group.n_rows)
        for field in ("alpha", "alpha_standardised", "ci_low", "ci_high"):
            assert abs(batch[field][index] - getattr(single, field)) < TOLERANCE


def test_grouping_is_limited_to_known_columns(sample_db, instrument):
    con, _ = sample_db
    with pytest.raises(StatisticsError, match="cannot group by"):
        scale_moments(con, instrument, "stigma", by=("response_id",))


def test_coarser_levels_summed_from_the_finest_equal_a_direct_query(sample_db, instrument):
    con, _ = sample_db
    levels = ((), ("wave",), ("site_code", "wave"))
    summed = moments_at_levels(con, instrument, "stigma", levels)
    for level in levels:
        direct = scale_moments(con, instrument, "stigma", by=level)
        assert [g.key for g in summed[level]] == [g.key for g in direct]
        for got, expected in zip(summed[level], direct):
            assert got.n_rows == expected.n_rows and got.n_complete == expected.n_complete
            assert np.allclose(got.cov, expected.cov, atol=1e-10, rtol=0)
            assert np.allclose(got.corr, expected.corr, atol=1e-10, rtol=0)
