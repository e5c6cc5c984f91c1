"""Is it fair to aggregate people to a site? ICC(1), ICC(2) and rwg(j).

Organisational-climate research justifies reporting a site mean when respondents of a
site agree with one another (rwg(j)) and when sites differ reliably (ICC(1), ICC(2)).
Functions take pandas objects and return small frozen results.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.reliability import StatisticsError


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
    sizes = data.groupby("g", observed=True).size()
    n, j = len(data), len(sizes)
    if j < 2 or n <= j:
        raise StatisticsError(f"ICC needs at least two groups and more respondents than "
                              f"groups (got {n} respondents in {j} groups)")
    means = data.groupby("g", observed=True)["y"].mean()
    grand = data["y"].mean()
    msb = float((sizes * (means - grand) ** 2).sum() / (j - 1))
    msw = float(((data["y"] - data["g"].map(means)) ** 2).sum() / (n - j))
    n0 = float((n - (sizes ** 2).sum() / n) / (j - 1))
    return IccResult(icc1=(msb - msw) / (msb + (n0 - 1) * msw), icc2=(msb - msw) / msb,
                     n=n, groups=j, n0=n0, msb=msb, msw=msw)


def rwg_j(items: pd.DataFrame, groups: pd.Series, options: int = 5) -> RwgResult:
    """rwg(j) per group against a uniform (rectangular) null distribution.

    rwg(j) = J (1 - s^2 / s_EU^2) / (J (1 - s^2 / s_EU^2) + s^2 / s_EU^2), with s^2 the
    mean of the J item variances within the group and s_EU^2 = (A^2 - 1) / 12 for A
    answer options (2 for a 5-point scale). Set to 0 when s^2 >= s_EU^2, the usual
    truncation. James, Demaree & Wolf (1984). In R: ``multilevel::rwg.j(x, grpid,
    ranvar = 2)`` (with the same truncation).
    """
    null_variance = (options ** 2 - 1) / 12
    k = items.shape[1]
    variances = items.astype(float).groupby(groups.to_numpy(), observed=True).var(ddof=1)
    by_group: dict[str, float] = {}
    for group, row in variances.iterrows():
        ratio = row.mean() / null_variance
        by_group[str(group)] = 0.0 if ratio >= 1 else float(
            k * (1 - ratio) / (k * (1 - ratio) + ratio))
    return RwgResult(by_group, float(np.median(list(by_group.values()))), null_variance)
