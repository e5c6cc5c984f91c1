"""Gaps to a target set by other sites: the target leaves the site out, and the gap's
interval carries the target's uncertainty as well as the site's own.

A site's target is a quantile (upper quartile or median) of the scores of the *other*
sites in its pool (its peer group, or all sites). Counting the site in its own target
pulls the target towards it, and treating a quartile of a handful of sites as a fixed
number made most gaps look certain: on the demo (7 sites, 3 waves) 60 of 126 gaps were
"clear" from the site's own standard error alone.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

#: Bootstrap resamples of the other sites per pool. A 2.5% point of 2000 draws has a
#: Monte Carlo SE of about 0.06 SD of the gap's distribution (sqrt(p (1 - p) / B) / f),
#: small beside the width of the interval (about 4 SD).
GAP_BOOTSTRAP_DRAWS = 2000
#: Base of every pool's seed; a pool's own seed also hashes its name (`pool_seed`), so
#: its interval does not depend on which other pools were computed before it.
GAP_BOOTSTRAP_SEED = 20


@dataclass(frozen=True)
class GapIntervals:
    """Gaps (target - score, positive = short of the target) of some sites of a pool.

    target    the quantile of the other sites' scores (R ``quantile(type = 7)``)
    gap       target - score
    low/high  percentile bootstrap interval of the gap (see `leave_one_out_gaps`)
    others    how many other sites the target was taken from
    """

    target: np.ndarray
    gap: np.ndarray
    low: np.ndarray
    high: np.ndarray
    others: int


def pool_seed(*key: object) -> int:
    """A seed for one pool from its name (e.g. wave, principle, peer group): the same
    pool gets the same draws in every run and whatever else is computed with it."""
    text = "|".join(str(part) for part in key)
    return GAP_BOOTSTRAP_SEED * 2 ** 32 + zlib.crc32(text.encode("utf-8"))


def leave_one_out_gaps(scores: np.ndarray, se: np.ndarray, which: np.ndarray,
                       level: float, seed: int, draws: int = GAP_BOOTSTRAP_DRAWS,
                       confidence: float = 0.95) -> GapIntervals:
    """Each site `which` (positions in `scores`) against the `level` quantile of the
    other sites of the pool, with an interval that carries the target's uncertainty.

    Parameters
    ----------
    scores, se : the pool's site scores and their standard errors (K sites).
    which : positions of the sites whose gaps are wanted.
    level : the target's quantile, 0.75 (upper quartile) or 0.5 (median).
    seed : seed of the pool's draws (`pool_seed`); the same seed gives the same limits.
    draws, confidence : bootstrap resamples, and the interval's two-sided coverage.

    Notes
    -----
    Target: the type-7 quantile (R ``quantile(x[-i], level)``) of the K - 1 other sites.

    Interval: a nonparametric bootstrap over sites (Efron & Tibshirani 1993, ch. 13,
    percentile interval). Each draw resamples K - 1 of the other sites with replacement
    and takes the quantile of their scores, and adds to the site's own score a normal
    error with its SE; the gap's limits are the 2.5% and 97.5% points of
    target* - score*. The two parts are independent because the site is not in its
    target. The other sites' scores are resampled as observed: each already carries its
    own sampling error, so drawing another error for them would count it twice.

    Why a bootstrap rather than the asymptotic variance of a quantile,
    p (1 - p) / (m f(q)^2): that needs the density f of site scores at the quartile,
    which three to six peer sites cannot estimate. With so few sites the bootstrap is
    itself narrow (a resample of three sites cannot go beyond them), so a "clear" gap
    remains a statement about these peers, not about all possible peers.

    Every site of a pool shares the same resampled positions: the order statistics of
    a resample of the others are those of the positions drawn, mapped past the site
    left out, so the cost is one sort of draws x (K - 1) positions per pool rather than
    one per site (300 sites nationally). The result is the naive per-site bootstrap on
    those same positions.
    """
    scores, se = np.asarray(scores, float), np.asarray(se, float)
    which = np.asarray(which, int)
    others = len(scores) - 1
    if others < 1:
        raise ValueError("a target left-one-out needs at least two sites in the pool")
    rng = np.random.default_rng(seed)
    order = np.argsort(scores, kind="stable")
    ordered = scores[order]
    rank = np.empty(len(scores), int)
    rank[order] = np.arange(len(scores))
    # R's type 7: h = (m - 1) p, between order statistics floor(h) and floor(h) + 1.
    h = (others - 1) * level
    low_pos = int(np.floor(h))
    high_pos = min(low_pos + 1, others - 1)
    frac = h - low_pos
    drawn = rng.integers(0, others, size=(draws, others), dtype=np.int32)
    drawn = np.partition(drawn, sorted({low_pos, high_pos}), axis=1)
    lower, upper = drawn[:, low_pos], drawn[:, high_pos]
    site_rank = rank[which][:, None]
    # Position j among the others is position j (or j + 1 past the site left out) of all.
    lower_value = ordered[lower[None, :] + (lower[None, :] >= site_rank)]
    upper_value = ordered[upper[None, :] + (upper[None, :] >= site_rank)]
    target_draws = lower_value + frac * (upper_value - lower_value)
    own = scores[which][:, None] + se[which][:, None] * rng.standard_normal((len(which), draws))
    gap_draws = target_draws - own
    tail = (1 - confidence) / 2
    low, high = np.quantile(gap_draws, [tail, 1 - tail], axis=1)
    target_low = ordered[low_pos + (low_pos >= rank[which])]
    target = target_low + frac * (ordered[high_pos + (high_pos >= rank[which])] - target_low)
    return GapIntervals(target=target, gap=target - scores[which], low=low, high=high,
                        others=others)
