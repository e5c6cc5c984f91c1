"""Is it fair to aggregate people to a site? ICC(1), ICC(2), rwg(j) and r*wg(j).

Organisational-climate research justifies reporting a site mean when respondents of a
site agree with one another (rwg(j), r*wg(j)) and when sites differ reliably (ICC(1),
ICC(2)). The pipeline gates reportability on the reliability of the site mean from
ICC(1), not on rwg(j): rwg(j) grows with the number of items (every demo site x scale
came out .71-.93 while ICC(1) ran .03-.31), so it is published to describe agreement,
beside r*wg(j), which does not grow with the items, and beside rwg(j) against a
slightly skewed null, which does not assume answers would spread evenly over 1-5.
Functions take pandas objects and return small frozen results.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from stats.reliability import StatisticsError


@dataclass(frozen=True)
class IccResult:
    """Intraclass correlations of a score across groups, from a one-way ANOVA.

    Two conventions for the group size k in ICC(1) = (MSB - MSW) / (MSB + (k - 1) MSW):
    `icc1` uses n0 (the one published), `icc1_mean_size` the mean group size N / J, as
    R ``multilevel::ICC1`` does. They agree when groups are equal; with unequal groups n0
    is the k for which E(MSB) = MSW + k tau^2 holds in the one-way ANOVA, so `icc1` is the
    consistent ANOVA estimator. On multilevel::bh1996 (99 groups of 15-226) well-being
    gives .04351 (n0 = 74.31) against .04337 (N / J = 74.57).
    """

    icc1: float     # share of variance between groups (group size n0; published)
    icc2: float     # reliability of a group mean
    n: int
    groups: int
    n0: float       # the "average" group size that handles unequal groups
    msb: float
    msw: float
    icc1_mean_size: float = float("nan")   # ICC(1) with k = N / J (multilevel::ICC1)


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
    `icc1_mean_size` is ICC(1) with the mean group size N / J instead.
    In R: ``m <- summary(aov(y ~ factor(g)))[[1]]`` and the formulas above;
    ``multilevel::ICC1(aov(y ~ factor(g)))`` for `icc1_mean_size`, and
    ``multilevel::ICC2`` for ICC(2) (tests/expected/generate_r_agreement.R, bh1996).
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
    mean_size = n / j
    return IccResult(icc1=(msb - msw) / (msb + (n0 - 1) * msw), icc2=(msb - msw) / msb,
                     n=int(n), groups=j, n0=n0, msb=msb, msw=msw,
                     icc1_mean_size=(msb - msw) / (msb + (mean_size - 1) * msw))


def group_mean_reliability(icc1: float, size: np.ndarray) -> np.ndarray:
    """Reliability of each group's mean from ICC(1) and its size (Spearman-Brown).

    lambda_j = n_j ICC(1) / (1 + (n_j - 1) ICC(1)) (Bliese 2000); ICC(2) is this at n0.
    """
    size = np.asarray(size, dtype=float)
    return size * icc1 / (1 + (size - 1) * icc1)


#: Null ("no agreement") answer distributions of a 5-point item, as proportions of
#: answers 1..5. James, Demaree & Wolf (1984) tabulate the slightly skewed one (variance
#: 1.34; 0.90 is their *moderately* skewed null, .00 .10 .15 .40 .35). Staff surveys lean
#: favourable, so a uniform null overstates the variance to expect without agreement.
NULL_DISTRIBUTIONS = {"slight_skew": (0.05, 0.15, 0.20, 0.35, 0.25)}
#: The nulls an agreement index can be computed against.
NULLS = ("uniform", "slight_skew")


def null_variance(options: int = 5, null: str = "uniform") -> float:
    """Variance of answers expected with no agreement, sigma_E^2.

    uniform: (A^2 - 1) / 12 for A options (2 for 5 points); slight_skew: the variance of
    the proportions in NULL_DISTRIBUTIONS (1.34; 5-point items only).
    """
    if null == "uniform":
        return (options ** 2 - 1) / 12
    if null not in NULL_DISTRIBUTIONS:
        raise StatisticsError(f"null {null!r} is not known; use one of {', '.join(NULLS)}")
    share = np.asarray(NULL_DISTRIBUTIONS[null])
    if options != len(share):
        raise StatisticsError(f"the {null} null is tabulated for {len(share)}-point items "
                              f"only (got {options} options); use 'uniform'")
    value = np.arange(1, len(share) + 1)
    return float((share * value ** 2).sum() - (share * value).sum() ** 2)


def rwg_j(items: pd.DataFrame, groups: pd.Series, options: int = 5,
          null: str = "uniform") -> RwgResult:
    """rwg(j) per group against a uniform (rectangular) or slightly skewed null.

    rwg(j) = J (1 - s^2 / s_E^2) / (J (1 - s^2 / s_E^2) + s^2 / s_E^2), with s^2 the
    mean of the J item variances within the group and s_E^2 the null variance
    (`null_variance`: (A^2 - 1) / 12 = 2 for a uniform 5-point null, 1.34 slightly
    skewed). Set to 0 when s^2 >= s_E^2, the usual truncation. James, Demaree & Wolf
    (1984). In R: ``multilevel::rwg.j(x, grpid, ranvar = 2)`` (or ``ranvar = 1.34``),
    checked on multilevel::lq2002.
    """
    variances = items.astype(float).groupby(groups.to_numpy(), observed=True).var(ddof=1)
    values = rwg_from_variances(variances.to_numpy(), options, null)
    by_group = {str(group): float(v) for group, v in zip(variances.index, values)}
    return RwgResult(by_group, float(np.median(values)), null_variance(options, null))


def rwg_from_variances(item_variances: np.ndarray, options: int = 5,
                       null: str = "uniform") -> np.ndarray:
    """rwg(j) of each group from its item variances (groups x items), see `rwg_j`."""
    variances = np.atleast_2d(np.asarray(item_variances, dtype=float))
    n_items = variances.shape[1]
    ratio = variances.mean(axis=1) / null_variance(options, null)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = n_items * (1 - ratio) / (n_items * (1 - ratio) + ratio)
    return np.where(ratio >= 1, 0.0, value)


def rwg_star_from_variances(item_variances: np.ndarray, options: int = 5,
                            null: str = "uniform") -> np.ndarray:
    """r*wg(j) of each group from its item variances (groups x items).

    r*wg(j) = 1 - s^2 / s_E^2 with s^2 the mean item variance (Lindell, Brandt & Whitney
    1999): the single-item index applied to the mean variance, so it does not rise with
    the number of items as rwg(j)'s Spearman-Brown step does, and it is not truncated
    (below 0: answers spread more than the null). In R:
    ``multilevel::rwg.j.lindell(x, grpid, ranvar = 2)``, checked on multilevel::lq2002.
    """
    variances = np.atleast_2d(np.asarray(item_variances, dtype=float))
    return 1 - variances.mean(axis=1) / null_variance(options, null)
