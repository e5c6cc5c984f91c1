"""The verifier: its exact solver against an SVD, and the tables outside the cells.

`pipeline.publish.verify._determined_values` says which unknowns of a x = b are fixed. Here it
is checked against the null space of a full SVD (numpy), on random systems of 0/+-1
coefficients built to be rank-deficient, so that some unknowns are fixed and some free.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import numpy as np
import pytest

from pipeline.publish.verify import (DisclosureError, _determined_values, flag_count_leaks,
                             verify_published)


def svd_determined(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    u, s, vt = np.linalg.svd(a, full_matrices=True)
    rank = int((s > max(a.shape) * np.finfo(float).eps * s[0] * 10).sum())
    null = vt[rank:].T
    solution = np.linalg.lstsq(a, b, rcond=None)[0]
    free = np.linalg.norm(null, axis=1) > 1e-8 if null.size else np.zeros(a.shape[1], bool)
    return np.where(free, np.nan, solution)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("shape", [(5, 8), (30, 20), (60, 120), (200, 150)])
def test_fixed_unknowns_match_an_svd(seed, shape):
    rng = np.random.default_rng(seed)
    rows, cols = shape
    a = rng.choice([-1.0, 0.0, 0.0, 0.0, 1.0], size=shape)
    # Repeat some equations as sums of others (rank deficiency, as totals that add up
    # both ways do) and give some unknowns an equation of their own (fixed for sure).
    a[rows // 2:] = a[: rows - rows // 2] + np.roll(a[: rows - rows // 2], 1, axis=0)
    a[0] = 0.0
    a[0, seed % cols] = 1.0
    x = rng.integers(0, 50, size=cols).astype(float)
    b = a @ x
    expected = svd_determined(a, b)
    found = _determined_values(a, b)
    assert np.array_equal(np.isnan(found), np.isnan(expected))
    fixed = ~np.isnan(expected)
    assert fixed.any()
    np.testing.assert_allclose(found[fixed], x[fixed], atol=1e-6)


def _tampered(published_sample, tmp_path, *statements: str) -> Path:
    """A copy of the published sample with `statements` run on it."""
    settings, _ = published_sample
    copy = tmp_path / "published.duckdb"
    shutil.copy(settings.published_path, copy)
    with duckdb.connect(str(copy)) as con:
        for statement in statements:
            con.execute(statement)
    return copy


def test_verifier_refuses_a_headcount_below_k(published_sample, tmp_path):
    path = _tampered(published_sample, tmp_path,
                     "insert into site_headcounts values ('A', 'gp', 5)")
    with pytest.raises(DisclosureError) as caught:
        verify_published(path, 10)
    assert "table site_headcounts: site A staff group gp headcount 5 below 10" in str(caught.value)


def test_verifier_refuses_flag_counts_whose_difference_is_small(published_sample, tmp_path):
    # What the layer showed before: site A 2026 flagged 15, speeding 13 (15 - 13 = 2).
    path = _tampered(published_sample, tmp_path,
                     "update data_quality set n_flagged = 15, n_speeding = 13, "
                     "n_straight_lining = null, n_duplicate = null "
                     "where site_code = 'A' and wave = 2026")
    with pytest.raises(DisclosureError) as caught:
        verify_published(path, 10)
    assert ("table data_quality: site A wave 2026: the counts shown (n_respondents, "
            "n_speeding, n_flagged, analysed_everyone) give away a group of 2 respondents"
            in str(caught.value))


def test_verifier_finds_differences_that_are_not_plain_subtractions():
    # Straight-lining 12 + speeding 13 + duplicate 10 - any flag 33: two people carry two
    # flags (or one carries three), a group of 1-2 that no single subtraction shows.
    columns = ("n_respondents", "n_straight_lining", "n_speeding", "n_duplicate", "n_flagged",
               "analysed_everyone")
    leaks = flag_count_leaks(columns, np.array([[200, 12, 13, 10, 33, 200],
                                                [200, 12, 13, 10, 35, 200],
                                                [200, 12, 13, 10, 23, 200]]), 10)
    # 35 flag marks on 35 people: no overlap; on 23 people: overlaps count 12, not small
    assert leaks.tolist() == [2, 0, 0]
    # 195 of 200 flagged, everyone analysed: the 5 unflagged are a small group
    assert flag_count_leaks(columns[:1] + columns[4:], np.array([[200, 195, 200]]), 10
                            ).tolist() == [5]
