"""Each unit against the distribution of the others: random effects and deleted residuals.

A site is compared with what its peers achieve, not with a fixed number: the other
sites' means are summarised by a random-effects model (a mean mu and a between-site
variance tau^2), and the site's own mean is judged against the prediction interval
that model gives for a new site of the same size. Leaving the site out of the model
it is judged against keeps a real outlier from widening its own yardstick (the
externally studentised deleted residual of Viechtbauer & Cheung 2010).

Pure functions on small arrays, one value per unit; checked against metafor 3.8
(`rma`, `predict`, `rstudent`) by `tests/expected/generate_r_outliers.R`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats

from survey.errors import CultureError

#: Estimators of tau^2 offered, as metafor::rma spells them.
RANDOM_EFFECTS_METHODS = ("REML", "DL")
#: Deleting one unit must leave two, the fewest a between-unit variance can come from.
MINIMUM_UNITS = 3
#: Two-sided level of the confidence and prediction intervals (metafor's default).
INTERVAL_LEVEL = 0.95
#: Fisher scoring stops when tau^2 moves less than this. metafor's default (1e-5) stops
#: short of the optimum (by 7e-8 and 1.5e-7 in tau^2 on two of the goldens); this is
#: close to double precision for variances of the size a 1-5 scale gives (1e-4 to 1).
REML_THRESHOLD = 1e-12
#: Fisher scoring for one variance converges in tens of steps (metafor gives up at 100
#: with its looser threshold); a fit still moving after this many is solved by
#: bracketing the root of its score (`_reml_root`), which also caps that search.
REML_MAX_ITERATIONS = 200
#: metafor's ll0check: a converged tau^2 > 0 whose REML log-likelihood is lower than at
#: tau^2 = 0 by more than this is a local maximum, and tau^2 = 0 is taken instead
#: (`control$tol`, .Machine$double.eps^0.25).
LOCAL_MAXIMUM_TOLERANCE = np.finfo(float).eps ** 0.25
#: metafor sets residuals smaller than 100 machine epsilons to exactly zero.
ZERO_RESIDUAL = 100 * np.finfo(float).eps


class ComparisonError(CultureError):
    """The units cannot support a random-effects comparison (too few, bad variances)."""


@dataclass(frozen=True)
class RandomEffects:
    """The random-effects model y_i ~ N(mu, v_i + tau^2) fitted to k units.

    mu               inverse-variance weighted mean, weights 1 / (v_i + tau^2)
    se               its standard error, 1 / sqrt(sum of the weights)
    tau2             between-unit variance (REML or DerSimonian-Laird, truncated at 0)
    ci_low, ci_high  95% confidence interval of mu, mu -/+ 1.96 se
    pi_low, pi_high  95% prediction interval for the true mean of a new unit,
                     mu -/+ 1.96 sqrt(tau^2 + se^2) (metafor's predict.rma)
    k                number of units
    method           "REML" or "DL"
    """

    mu: float
    se: float
    tau2: float
    ci_low: float
    ci_high: float
    pi_low: float
    pi_high: float
    k: int
    method: str


@dataclass(frozen=True)
class DeletedResiduals:
    """Each unit against the random-effects model fitted to all the others.

    z             externally studentised deleted residual,
                  (y_i - mu_(-i)) / sqrt(v_i + tau2_(-i) + se_(-i)^2)
    p             two-sided normal p-value of z
    mu_without    mu of the model without unit i
    tau2_without  tau^2 of the model without unit i
    se_without    SE of mu without unit i
    low, high     95% prediction interval of the other units for a unit with unit i's
                  sampling variance: mu_(-i) -/+ 1.96 sqrt(tau2_(-i) + se_(-i)^2 + v_i);
                  y_i falls outside it exactly when |z| > 1.96
    """

    z: np.ndarray
    p: np.ndarray
    mu_without: np.ndarray
    tau2_without: np.ndarray
    se_without: np.ndarray
    low: np.ndarray
    high: np.ndarray


def random_effects(y, v, method: str = "REML") -> RandomEffects:
    """Fit the random-effects model to unit means `y` with sampling variances `v`.

    The model is y_i = mu + u_i + e_i with u_i ~ N(0, tau^2) and e_i ~ N(0, v_i), v_i
    taken as known (for a mean of n respondents with SD s, v_i = s^2 / n).

    tau^2 is estimated by restricted maximum likelihood ("REML", the default) or by
    the DerSimonian-Laird moment estimator ("DL", DerSimonian & Laird 1986):
    tau^2 = max(0, (Q - (k - 1)) / (sum w - sum w^2 / sum w)) with w_i = 1 / v_i and Q
    the fixed-effect heterogeneity statistic. REML is found as metafor finds it: Fisher
    scoring from the Hedges (HE) estimate, steps halved so tau^2 stays >= 0, then
    tau^2 = 0 if the REML log-likelihood there is higher (Viechtbauer 2005).

    mu is the inverse-variance weighted mean with weights 1 / (v_i + tau^2); its 95%
    confidence interval is normal (metafor's default test = "z"), and the 95%
    prediction interval is mu -/+ 1.96 sqrt(tau^2 + se^2), which ignores the
    uncertainty in tau^2, as predict.rma does.

    In R: ``metafor::rma(yi, vi, method = "REML")`` and ``predict(fit)``; agrees with
    metafor 3.8 (control threshold 1e-12) to 1e-13 on the bh1996 goldens.
    """
    y, v = _checked(y, v, method)
    tau2, mu, se = _fit(y, v, np.ones((1, len(y)), bool), method)
    z = _two_sided_z()
    half_ci = z * se[0]
    half_pi = z * np.sqrt(tau2[0] + se[0] ** 2)
    return RandomEffects(mu=float(mu[0]), se=float(se[0]), tau2=float(tau2[0]),
                         ci_low=float(mu[0] - half_ci), ci_high=float(mu[0] + half_ci),
                         pi_low=float(mu[0] - half_pi), pi_high=float(mu[0] + half_pi),
                         k=len(y), method=method)


def deleted_residuals(y, v, method: str = "REML") -> DeletedResiduals:
    """Externally studentised deleted residuals: each unit against the others' model.

    For each unit i the random-effects model is refitted without it (same estimator),
    giving mu_(-i), tau2_(-i) and se_(-i); then
    z_i = (y_i - mu_(-i)) / sqrt(v_i + tau2_(-i) + se_(-i)^2), which is N(0, 1) when
    unit i comes from the same distribution as the others (Viechtbauer & Cheung 2010,
    "Outlier and influence diagnostics for meta-analysis", Res Synth Methods 1:112-125).
    p is two-sided from the normal. The k refits run side by side as one array
    computation (k x k weights), so 300 units cost a few dozen vector steps.

    In R: ``metafor::rstudent(metafor::rma(yi, vi, method = "REML"))``, columns
    resid / se and z.
    """
    y, v = _checked(y, v, method)
    others = ~np.eye(len(y), dtype=bool)
    tau2, mu, se = _fit(y, v, others, method)
    residual = y - mu
    residual[np.abs(residual) < ZERO_RESIDUAL] = 0.0
    spread = np.sqrt(v + tau2 + se ** 2)
    z = residual / spread
    half = _two_sided_z() * spread
    return DeletedResiduals(z=z, p=2 * stats.norm.sf(np.abs(z)), mu_without=mu,
                            tau2_without=tau2, se_without=se, low=mu - half,
                            high=mu + half)


def unit_comparisons(frame: pd.DataFrame, method: str = "REML") -> pd.DataFrame:
    """`frame` (one row per unit: n, mean, sd) with each unit's deleted-residual verdict.

    Adds z, p, mu_without, tau2_without, low and high from `deleted_residuals`, with
    the sampling variance of each mean taken as sd^2 / n. Rows keep their order and
    index; the input is not modified.
    """
    missing = [c for c in ("n", "mean", "sd") if c not in frame.columns]
    if missing:
        raise ComparisonError(f"unit_comparisons needs columns n, mean and sd; missing: "
                              f"{', '.join(missing)}")
    n = frame["n"].to_numpy(float)
    sd = frame["sd"].to_numpy(float)
    if np.any(~np.isfinite(n) | (n <= 0)):
        raise ComparisonError("every unit needs a positive number of respondents n; "
                              f"got {frame['n'].tolist()}")
    result = deleted_residuals(frame["mean"].to_numpy(float), sd ** 2 / n, method)
    out = frame.copy()
    for column in ("z", "p", "mu_without", "tau2_without", "low", "high"):
        out[column] = getattr(result, column)
    return out


def _checked(y, v, method: str) -> tuple[np.ndarray, np.ndarray]:
    if method not in RANDOM_EFFECTS_METHODS:
        raise ComparisonError(f"tau^2 method {method!r} is not offered; allowed: "
                              f"{', '.join(RANDOM_EFFECTS_METHODS)}")
    y, v = np.asarray(y, float), np.asarray(v, float)
    if y.ndim != 1 or v.shape != y.shape:
        raise ComparisonError(f"unit means and sampling variances must be two lists of "
                              f"the same length; got shapes {y.shape} and {v.shape}")
    if len(y) < MINIMUM_UNITS:
        raise ComparisonError(f"a random-effects comparison needs at least "
                              f"{MINIMUM_UNITS} units (one left out leaves two to "
                              f"estimate tau^2 from); got {len(y)}")
    bad = np.flatnonzero(~np.isfinite(y) | ~np.isfinite(v))
    if bad.size:
        raise ComparisonError(f"units {bad.tolist()} have a missing or infinite mean or "
                              "variance; drop them before comparing")
    bad = np.flatnonzero(v <= 0)
    if bad.size:
        raise ComparisonError(f"units {bad.tolist()} have sampling variance <= 0 "
                              f"({v[bad].tolist()}); a mean of n respondents with SD s "
                              "has variance s^2 / n > 0, so check n and sd")
    return y, v


def _two_sided_z() -> float:
    return float(stats.norm.ppf(0.5 + INTERVAL_LEVEL / 2))


def _fit(y: np.ndarray, v: np.ndarray, included: np.ndarray,
         method: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """tau^2, mu and se of one random-effects fit per row of the boolean mask
    `included` (rows: fits, columns: units), so leave-one-out is a single pass."""
    tau2 = (_reml_tau2 if method == "REML" else _dersimonian_laird_tau2)(y, v, included)
    w = included / (v + tau2[:, None])
    total = w.sum(axis=1)
    return tau2, (w @ y) / total, 1 / np.sqrt(total)


def _dersimonian_laird_tau2(y, v, included) -> np.ndarray:
    w = included / v
    s1, s2 = w.sum(axis=1), (w ** 2).sum(axis=1)
    fixed = (w @ y) / s1
    q = (w * (y - fixed[:, None]) ** 2).sum(axis=1)
    k = included.sum(axis=1)
    return np.maximum(0.0, (q - (k - 1)) / (s1 - s2 / s1))


def _reml_tau2(y, v, included) -> np.ndarray:
    # Fisher scoring on the REML log-likelihood, as metafor's rma.uni does it. With
    # P = W - w w' / sum(w), the score is y'PPy - tr(P) and the information tr(PP);
    # for an intercept-only model these reduce to sums of powers of the weights.
    k = included.sum(axis=1)
    mean = (included @ y) / k
    spread = (included * (y - mean[:, None]) ** 2).sum(axis=1)
    # Start from the Hedges (HE) estimate, metafor's default starting value.
    tau2 = np.maximum(0.0, (spread - (1 - 1 / k) * (included @ v)) / (k - 1))
    active = np.ones(len(tau2), bool)
    for _ in range(REML_MAX_ITERATIONS):
        if not active.any():
            break
        t = tau2[active]
        score, information = _reml_score(y, v, included[active], t)
        step = score / information
        # Halve a step that would take tau^2 below zero until it does not; at zero
        # itself no step down is possible and the fit has converged there.
        step[(t == 0) & (step < 0)] = 0.0
        below = t + step < 0
        while below.any():
            step[below] /= 2
            below = t + step < 0
        tau2[active] = t + step
        active[np.flatnonzero(active)[np.abs(step) < REML_THRESHOLD]] = False
    if active.any():
        # Fisher scoring can swing about the maximum with growing steps (seen on
        # proportions of small sites, tau^2 17.4686 +- 1e-4, 2e-4, ...); there the
        # root of the score is found by bracketing instead, to the same tolerance.
        for row in np.flatnonzero(active):
            tau2[row] = _reml_root(y, v, included[row])
    # A tau^2 that creeps down to the boundary ends within a threshold of zero: the
    # maximum is at zero itself. A tau^2 > 0 that is only a local maximum is replaced
    # by zero when the log-likelihood is higher there (metafor's ll0check).
    zero = np.zeros_like(tau2)
    at_boundary = (tau2 < 10 * REML_THRESHOLD) & (_reml_score(y, v, included, zero)[0] <= 0)
    stuck = (_reml_loglik(y, v, included, zero) - _reml_loglik(y, v, included, tau2)
             > LOCAL_MAXIMUM_TOLERANCE) & (tau2 > REML_THRESHOLD)
    tau2[at_boundary | stuck] = 0.0
    return tau2


def _reml_root(y, v, included) -> float:
    """tau^2 where the REML score of one fit is zero (0 when it is negative there)."""
    def score(t: float) -> float:
        return float(_reml_score(y, v, included[None, :], np.array([t]))[0][0])

    if score(0.0) <= 0:
        return 0.0
    high = max(1.0, float(np.var(y[included.astype(bool)])))
    for _ in range(200):
        if score(high) < 0:
            break
        high *= 2
    else:
        raise ComparisonError("REML estimation of tau^2 did not converge; try method='DL'")
    return float(optimize.brentq(score, 0.0, high, xtol=REML_THRESHOLD, rtol=1e-14,
                                 maxiter=REML_MAX_ITERATIONS))


def _reml_score(y, v, included, tau2) -> tuple[np.ndarray, np.ndarray]:
    w = included / (v + tau2[:, None])
    s1, s2, s3 = w.sum(axis=1), (w ** 2).sum(axis=1), (w ** 3).sum(axis=1)
    mu = (w @ y) / s1
    py = w * (y - mu[:, None])  # P y
    score = (py ** 2).sum(axis=1) - (s1 - s2 / s1)
    information = s2 - 2 * s3 / s1 + (s2 / s1) ** 2
    return score, information


def _reml_loglik(y, v, included, tau2) -> np.ndarray:
    # Up to a constant: -1/2 [sum log(v + tau^2) + log(sum w) + sum w (y - mu)^2].
    total_variance = np.where(included, v + tau2[:, None], 1.0)
    w = included / total_variance
    s1 = w.sum(axis=1)
    mu = (w @ y) / s1
    rss = (w * (y - mu[:, None]) ** 2).sum(axis=1)
    return -0.5 * (np.log(total_variance).sum(axis=1) + np.log(s1) + rss)
