"""The verifier's exact solver against an SVD, on equation systems like the published ones.

`pipeline.verify._determined_values` says which unknowns of a x = b are fixed. Here it
is checked against the null space of a full SVD (numpy), on random systems of 0/+-1
coefficients built to be rank-deficient, so that some unknowns are fixed and some free.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.verify import _determined_values


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
