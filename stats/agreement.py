"""Is it fair to aggregate people to a site? ICC(1), ICC(2) and rwg(j).

Organisational-climate research justifies reporting a site mean when respondents of a
site agree with one another (rwg(j)) and when sites differ reliably (ICC(1), ICC(2)).
Functions take pandas objects and return small frozen results.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from stats.reliability import StatisticsError


@dataclass(frozen=True)
class IccResult:
    """Intraclass correlations of a score across groups, from a one-way ANOVA."""

    icc1: float     # share of variance between groups
    icc2: float     # reliability of a group mean
    n: int
    groups: int
    n0: float       # the "average" group size that handles unequal groups
    msb: float
    msw: float


@dataclass(frozen=True)
class RwgResult:
    """Within-group agreement rwg(j) of each group, and its median across groups."""

    by_group: dict[str, float]
    median: float
    null_variance: float


def icc(scores: pd.Series, groups: pd.Series) -> IccResult:
    """ICC(1) and ICC(2) of `scores` across `groups`, with unequal group sizes.

    From the one-way ANOVA mean squares MSB and MSW:
    ICC(1) = (MSB - MSW) / (MSB + (n0 - 1) MSW), ICC(2) = (MSB - MSW) / MSB, where
    n0 = (N - sum n_j^2 / N) / (J - 1) replaces the mean group size so that unequal
    groups are weighted correctly (Snijders & Bosker 2012; Bliese 2000).
    In R: ``m <- summary(aov(y ~ factor(g)))[[1]]`` and the formulas above
    (``multilevel::ICC1`` uses the plain mean group size instead of n0).
    """
    data = pd.DataFrame({"y": scores.astype(float), "g": groups}).dropna()
    grouped = data.groupby("g", observed=True)["y"]
    sizes, means = grouped.size(), grouped.mean()
    within = ((data["y"] - data["g"].map(means)) ** 2).groupby(data["g"], observed=True).sum()
    return icc_from_group_stats(sizes.to_numpy(), means.to_numpy(), within.to_numpy())


def icc_from_group_stats(sizes: np.ndarray, means: np.ndarray,
                         within_squares: np.ndarray) -> IccResult:
    """ICC(1) and ICC(2) from per-group counts, means and within-group sums of squares.

    The form used at national scale, where DuckDB returns one row per site.
    """
    sizes, means = np.asarray(sizes, dtype=float), np.asarray(means, dtype=float)
    n, j = sizes.sum(), len(sizes)
    if j < 2 or n <= j:
        raise StatisticsError(f"ICC needs at least two groups and more respondents than "
                              f"groups (got {int(n)} respondents in {j} groups)")
    grand = (sizes * means).sum() / n
    msb = float((sizes * (means - grand) ** 2).sum() / (j - 1))
    msw = float(np.sum(within_squares) / (n - j))
    n0 = float((n - (sizes ** 2).sum() / n) / (j - 1))
    return IccResult(icc1=(msb - msw) / (msb + (n0 - 1) * msw), icc2=(msb - msw) / msb,
                     n=int(n), groups=j, n0=n0, msb=msb, msw=msw)


def group_mean_reliability(icc1: float, size: np.ndarray) -> np.ndarray:
    """Reliability of each group's mean from ICC(1) and its size (Spearman-Brown).

    lambda_j = n_j ICC(1) / (1 + (n_j - 1) ICC(1)) (Bliese 2000); ICC(2) is this at n0.
    """
    size = np.asarray(size, dtype=float)
    return size * icc1 / (1 + (size - 1) * icc1)


def rwg_j(items: pd.DataFrame, groups: pd.Series, options: int = 5) -> RwgResult:
    """rwg(j) per group against a uniform (rectangular) null distribution.

    rwg(j) = J (1 - s^2 / s_EU^2) / (J (1 - s^2 / s_EU^2) + s^2 / s_EU^2), with s^2 the
    mean of the J item variances within the group and s_EU^2 = (A^2 - 1) / 12 for A
    answer options (2 for a 5-point scale). Set to 0 when s^2 >= s_EU^2, the usual
    truncation. James, Demaree & Wolf (1984). In R: ``multilevel::rwg.j(x, grpid,
    ranvar = 2)`` (with the same truncation).
    """
    null_variance = (options ** 2 - 1) / 12
    variances = items.astype(float).groupby(groups.to_numpy(), observed=True).var(ddof=1)
    values = rwg_from_variances(variances.to_numpy(), options)
    by_group = {str(group): float(v) for group, v in zip(variances.index, values)}
    return RwgResult(by_group, float(np.median(values)), null_variance)


def rwg_from_variances(item_variances: np.ndarray, options: int = 5) -> np.ndarray:
    """rwg(j) of each group from its item variances (groups x items), see `rwg_j`."""
    variances = np.atleast_2d(np.asarray(item_variances, dtype=float))
    n_items = variances.shape[1]
    ratio = variances.mean(axis=1) / ((options ** 2 - 1) / 12)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = n_items * (1 - ratio) / (n_items * (1 - ratio) + ratio)
    return np.where(ratio >= 1, 0.0, value)
