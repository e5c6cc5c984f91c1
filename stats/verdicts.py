"""One verdict per site: is its mean in line with what its peers achieve, or not?

Every site (one row per site: n, mean, SD of one measure in one wave) is judged
against a random-effects model of the *other* sites (stats.outliers.deleted_residuals,
Viechtbauer & Cheung 2010; R ``metafor::rstudent``), so a real outlier cannot widen its
own yardstick. Which sites are called "clearly" different depends on how many sites
are compared, because what goes wrong differs (bench/calibration.py measured both on
the generator's model; see its output for the numbers):

* **Fewer than MANY_SITES sites** (a group of seven, say): flagged when the site's mean
  lies outside the others' prediction interval for a site of its size,
  |z| > FEW_SITES_Z = 2.15, not the textbook 1.96. With six peers tau^2 is often
  estimated too small, so at 1.96 6.7% of ordinary sites were flagged on measures with
  no planted outlier (10.7% of all sites); 2.15 is the smallest cut that brought that
  to 5%, and it still finds 70% of planted shifts. FDR control, a stricter margin or
  t limits with k - 2 df (2.57) leave too little power with six peers (about half the
  planted outliers or fewer), and each flag is read one site at a time.
* **MANY_SITES sites or more** (the national 300): flagged when the data show, with
  Benjamini-Hochberg false discovery control at FDR, that the site's true mean lies
  beyond the range where 95% of the peers' true means lie, mu_(-i) -/+ 1.96 tau_(-i).
  Per site the test is one-sided on the excess,
  z_beyond = (|y_i - mu_(-i)| - 1.96 tau_(-i)) / sqrt(v_i + se_(-i)^2). With hundreds
  of sites a 5% per-site rule flags a dozen ordinary sites per measure, and a list of
  flags is read as a list, so the share of flags that are wrong is what must be small;
  a plain FDR test against "drawn like the others" would instead miss most outliers,
  since ordinary sites 3 between-site SDs out are then merely rare, not impossible.

Verdicts, from the site's side of the peers' mean mu_(-i):

    clearly below / clearly above            flagged by the rule above
    below, not certain / above, not certain  not flagged, but outside the others' 90%
                                             prediction interval (|z| > 1.645): worth a
                                             look, not a finding
    in line                                  neither

`low` and `high` are the limits the flag uses, in the measure's units: a site's mean
outside them (with many sites: at or outside) is "clearly" below or above. With few
sites they are the others' prediction interval
mu_(-i) -/+ 2.15 sqrt(v_i + tau2_(-i) + se_(-i)^2); with many,
mu_(-i) -/+ (1.96 tau_(-i) + c sqrt(v_i + se_(-i)^2)), c the one-sided normal quantile
of the Benjamini-Hochberg cut-off (if nothing is flagged, the cut-off a single flag
would need). Sampling variances are sd^2 / n.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from stats.comparison import benjamini_hochberg
from stats.outliers import ComparisonError, deleted_residuals

#: From this many sites on, flags are controlled for false discoveries (see above);
#: bench/calibration.py's sweep over 7-300 sites is the evidence for the switch.
MANY_SITES = 20
#: Share of the peers' true means that "the peers' range" covers (many-site rule).
PEER_RANGE = 0.95
#: Critical |z| of the few-site rule: measured, not textbook (see above; the bench
#: prints the rule's power and false alarms on the sample design).
FEW_SITES_Z = 2.15
#: False discovery rate of the many-site rule.
FDR = 0.05
#: Two-sided level of the interval outside which a site is "not certain".
NOT_CERTAIN_LEVEL = 0.90

VERDICTS = ("clearly below", "below, not certain", "in line", "above, not certain",
            "clearly above")
RULES = ("outside the others' prediction interval, |z| > 2.15",
         "beyond the peers' 95% range, FDR 5%")


@dataclass(frozen=True)
class SiteJudgement:
    """The verdicts of one group of sites, as arrays in the sites' order (see
    `site_verdicts` for what each holds)."""

    z: np.ndarray
    p: np.ndarray
    p_beyond: np.ndarray
    flagged: np.ndarray
    verdict: np.ndarray
    low: np.ndarray
    high: np.ndarray
    mu_without: np.ndarray
    tau2_without: np.ndarray
    rule: str


#: Normal quantiles the rules use, worked out once (scipy's ppf costs more than a fit).
_RANGE_Z = float(stats.norm.ppf(0.5 + PEER_RANGE / 2))
_NOT_CERTAIN_Z = float(stats.norm.ppf(0.5 + NOT_CERTAIN_LEVEL / 2))


def judge_sites(n: np.ndarray, mean: np.ndarray, sd: np.ndarray, method: str = "REML",
                many_sites: int = MANY_SITES) -> SiteJudgement:
    """The verdict of each site of one measure and wave from arrays of n, mean and sd
    (what `site_verdicts` adds to a frame; the pipeline calls this once per group)."""
    n, y, sd = (np.asarray(a, float) for a in (n, mean, sd))
    if np.any(~np.isfinite(n) | (n <= 0)):
        raise ComparisonError(f"every site needs a positive number of respondents n; got "
                              f"{n.tolist()}")
    v = sd ** 2 / n
    loo = deleted_residuals(y, v, method)
    spread = np.sqrt(v + loo.se_without ** 2)
    tau = np.sqrt(loo.tau2_without)
    z_beyond = (np.abs(y - loo.mu_without) - _RANGE_Z * tau) / spread
    p_beyond = stats.norm.sf(z_beyond)
    if len(y) >= many_sites:
        flagged = benjamini_hochberg(p_beyond) < FDR
        cut = _bh_cutoff(p_beyond, FDR)
        half = _RANGE_Z * tau + stats.norm.isf(cut) * spread
        rule = RULES[1]
    else:
        flagged = np.abs(loo.z) > FEW_SITES_Z
        half = FEW_SITES_Z * np.sqrt(v + loo.tau2_without + loo.se_without ** 2)
        rule = RULES[0]
    uncertain = ~flagged & (np.abs(loo.z) > _NOT_CERTAIN_Z)
    above = loo.z > 0
    verdict = np.select(
        [flagged & ~above, uncertain & ~above, flagged & above, uncertain & above],
        [VERDICTS[0], VERDICTS[1], VERDICTS[4], VERDICTS[3]], default=VERDICTS[2])
    return SiteJudgement(z=loo.z, p=loo.p, p_beyond=p_beyond, flagged=flagged,
                         verdict=verdict, low=loo.mu_without - half,
                         high=loo.mu_without + half, mu_without=loo.mu_without,
                         tau2_without=loo.tau2_without, rule=rule)


def site_verdicts(frame: pd.DataFrame, method: str = "REML",
                  many_sites: int = MANY_SITES) -> pd.DataFrame:
    """`frame` (one row per site of one measure and wave: n, mean, sd) with its verdict.

    Adds: z (externally studentised deleted residual), p (its two-sided normal
    p-value), p_beyond (one-sided p that the site lies beyond the peers' 95% range;
    used by the many-site rule), flagged, verdict (one of VERDICTS), low, high (the
    limits of "clearly"), mu_without and tau2_without (the other sites' model), and
    rule (which of RULES applied). Rows keep their order and index. Needs at least 3
    sites (raises ComparisonError otherwise, as stats.outliers does).
    """
    missing = [c for c in ("n", "mean", "sd") if c not in frame.columns]
    if missing:
        raise ComparisonError(f"site_verdicts needs columns n, mean and sd; missing: "
                              f"{', '.join(missing)}")
    judged = judge_sites(frame["n"], frame["mean"], frame["sd"], method, many_sites)
    out = frame.copy()
    out["z"], out["p"], out["p_beyond"] = judged.z, judged.p, judged.p_beyond
    out["flagged"], out["verdict"] = judged.flagged, judged.verdict
    out["low"], out["high"] = judged.low, judged.high
    out["mu_without"], out["tau2_without"] = judged.mu_without, judged.tau2_without
    out["rule"] = judged.rule
    return out


def _bh_cutoff(p: np.ndarray, fdr: float) -> float:
    """The largest p-value Benjamini-Hochberg rejects at `fdr`; when it rejects none,
    the cut-off the smallest p-value would have had to pass (fdr / m)."""
    ranked = np.sort(p)
    m = len(ranked)
    passing = np.flatnonzero(ranked <= fdr * np.arange(1, m + 1) / m)
    return float(ranked[passing[-1]]) if passing.size else fdr / m
