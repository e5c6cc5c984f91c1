"""Measurement invariance of a one-factor scale across groups: configural, metric, scalar.

A small multi-group maximum-likelihood CFA with a mean structure and the equality
constraints that metric and scalar invariance need, fitted with scipy (the same approach
as the single-group CFA in `stats.structure`).

Per group g the model is x = nu_g + lambda_g f + e, f ~ (kappa_g, phi_g), e ~ (0, Theta_g)
with the first loading fixed to 1 (marker). Configural: everything free per group;
metric: loadings equal; scalar: loadings and intercepts equal, with the factor mean
fixed to 0 in the first group and free in the others (lavaan's defaults).

The fit function is lavaan's: chi2 = sum_g N_g [log|Sigma_g| + tr(S_g Sigma_g^-1) -
log|S_g| - p + (m_g - mu_g)' Sigma_g^-1 (m_g - mu_g)], S_g the ML covariance. CFI uses
the independence baseline with free means and variances per group; RMSEA =
sqrt(max(chi2 - df, 0) / (df N)) sqrt(G) as lavaan reports it for several groups. A step
is accepted when CFI drops by no more than .01 and RMSEA rises by no more than .015
(Chen 2007). In R: ``lavaan::cfa(model, data, group = "g", group.equal = ...)``.

A model with df 0 is saturated (a 3-item scale's configural model: 9 moments, 9
parameters per group): it reproduces the data exactly, chi-square is 0 and its fit
cannot be tested. As lavaan does, it reports CFI 1 and RMSEA 0 (rather than dividing by
df), and its verdict says it is saturated; the metric step is then judged against a
perfect fit, which is what lavaan's comparison does too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize

from stats.reliability import StatisticsError

STEPS = ("configural", "metric", "scalar")
DELTA_CFI = -0.01
DELTA_RMSEA = 0.015


@dataclass(frozen=True)
class InvarianceStep:
    step: str
    chi_square: float
    df: int
    cfi: float
    rmsea: float
    delta_cfi: float | None
    delta_rmsea: float | None
    verdict: str


def _moments(data: pd.DataFrame, items: list[str], group: str):
    groups = []
    for name, block in data.groupby(group, observed=True, sort=True):
        x = block[items].to_numpy(dtype=float)
        groups.append((str(name), len(x), x.mean(axis=0), np.cov(x, rowvar=False, bias=True)))
    return groups


def _fit(groups, p: int, step: str) -> tuple[float, int]:
    """Minimised chi-square and degrees of freedom of one invariance step."""
    g = len(groups)
    shared_loadings = step in ("metric", "scalar")
    shared_intercepts = step == "scalar"
    n_load = (p - 1) * (1 if shared_loadings else g)
    n_int = p * (1 if shared_intercepts else g)
    n_mean = g - 1 if shared_intercepts else 0
    sizes = (n_load, n_int, n_mean, p * g, g)           # loadings, nu, kappa, theta, phi
    cuts = np.cumsum(sizes)[:-1]

    def unpack(theta: np.ndarray):
        load, nu, kappa, uniq, phi = np.split(theta, cuts)
        return (load.reshape(-1, p - 1), nu.reshape(-1, p), kappa, uniq.reshape(g, p), phi)

    sizes_n = np.array([n for _, n, _, _ in groups], dtype=float)
    means_g = np.array([m for _, _, m, _ in groups])
    covs = np.array([c for _, _, _, c in groups])
    log_det_s = np.linalg.slogdet(covs)[1]
    load_of = np.zeros(g, int) if shared_loadings else np.arange(g)
    nu_of = np.zeros(g, int) if shared_intercepts else np.arange(g)
    diagonal = np.arange(p)

    def chi_square(theta: np.ndarray) -> tuple[float, np.ndarray]:
        """The fit function and its analytic gradient, all groups at once.

        With G = N (Sigma^-1 - Sigma^-1 (S + r r') Sigma^-1) and r = m - mu:
        d/dSigma = G, d/dmu = -2 N Sigma^-1 r; Sigma = phi l l' + Theta, mu = nu + l kappa.
        (Batched over groups: the optimiser calls this thousands of times, and a
        Python loop over groups was most of the invariance step's time.)
        """
        load, nu, kappa, uniq, phi = unpack(theta)
        lam = np.concatenate([np.ones((g, 1)), load[load_of]], axis=1)        # g x p
        factor_mean = np.concatenate([[0.0], kappa]) if shared_intercepts else np.zeros(g)
        sigma = phi[:, None, None] * lam[:, :, None] * lam[:, None, :]
        sigma[:, diagonal, diagonal] += uniq
        sign, logdet = np.linalg.slogdet(sigma)
        if np.any(sign <= 0):
            return 1e12, np.zeros_like(theta)
        inverse = np.linalg.inv(sigma)
        residual = means_g - (nu[nu_of] + lam * factor_mean[:, None])
        weighted = np.einsum("gij,gj->gi", inverse, residual)
        total = np.sum(sizes_n * (logdet + np.einsum("gij,gji->g", covs, inverse) - log_det_s
                                  - p + np.einsum("gi,gi->g", residual, weighted)))
        outer = covs + residual[:, :, None] * residual[:, None, :]
        grad_sigma = sizes_n[:, None, None] * (inverse - inverse @ outer @ inverse)
        grad_mu = -2 * sizes_n[:, None] * weighted
        grad_lam = (2 * phi[:, None] * np.einsum("gij,gj->gi", grad_sigma, lam)
                    + factor_mean[:, None] * grad_mu)
        d_load = grad_lam[:, 1:].sum(axis=0, keepdims=True) if shared_loadings \
            else grad_lam[:, 1:]
        d_nu = grad_mu.sum(axis=0, keepdims=True) if shared_intercepts else grad_mu
        d_kappa = np.einsum("gi,gi->g", lam, grad_mu)[1:] if shared_intercepts \
            else np.zeros(0)
        d_uniq = grad_sigma[:, diagonal, diagonal]
        d_phi = np.einsum("gi,gij,gj->g", lam, grad_sigma, lam)
        gradient = np.concatenate([d_load.ravel(), d_nu.ravel(), d_kappa, d_uniq.ravel(), d_phi])
        return float(total), gradient

    means = np.array([m for _, _, m, _ in groups])
    variances = np.array([np.diag(c) for _, _, _, c in groups])
    start = np.concatenate([
        np.ones(n_load), (means[:1] if shared_intercepts else means).ravel(), np.zeros(n_mean),
        (0.5 * variances).ravel(), 0.5 * variances[:, 0]])
    bounds = [(None, None)] * (n_load + n_int + n_mean) + [(1e-6, None)] * (p * g + g)
    # ftol 1e-13 / gtol 1e-9: chi-square, CFI and RMSEA within 5e-10 of a fit run to
    # 1e-15 / 1e-10, in half the evaluations (lavaan agrees to ~1e-7 either way).
    result = optimize.minimize(chi_square, start, jac=True, method="L-BFGS-B", bounds=bounds,
                               options={"maxiter": 20_000, "maxfun": 200_000, "ftol": 1e-13,
                                        "gtol": 1e-9})
    moments = g * (p * (p + 1) // 2 + p)
    return chi_square(result.x)[0], moments - len(start)


def _baseline(groups, p: int) -> tuple[float, int]:
    """Independence model: free means and variances per group, no covariances."""
    chi = 0.0
    for _, n, _, cov in groups:
        chi += n * (np.log(np.diag(cov)).sum() - np.linalg.slogdet(cov)[1])
    return float(chi), len(groups) * p * (p - 1) // 2


def measurement_invariance(data: pd.DataFrame, items: list[str], group: str) -> list[InvarianceStep]:
    """Configural, metric and scalar models of one scale across `group`, with verdicts.

    `data` holds reverse-keyed item responses and the group column; rows with a missing
    item or group are dropped (listwise, as lavaan's default).
    """
    complete = data[items + [group]].dropna()
    groups = _moments(complete, items, group)
    if len(groups) < 2:
        raise StatisticsError(f"invariance needs at least two groups of {group}")
    small = [name for name, n, _, _ in groups if n <= len(items)]
    if small:
        raise StatisticsError(f"groups {small} have too few complete responses for "
                              f"{len(items)} items")
    p, n_total, g = len(items), len(complete), len(groups)
    base_chi, base_df = _baseline(groups, p)
    steps, previous = [], None
    for step in STEPS:
        chi, df = _fit(groups, p, step)
        saturated = df == 0
        if saturated:
            # chi-square is 0 up to the optimiser's tolerance; lavaan's CFI 1, RMSEA 0
            chi, cfi, rmsea = max(chi, 0.0), 1.0, 0.0
        else:
            misfit = max(chi - df, 0)
            worst = max(base_chi - base_df, chi - df, 0)
            cfi = 1 - misfit / worst if worst > 0 else 1.0
            rmsea = float(np.sqrt(misfit / (df * n_total)) * np.sqrt(g))
        if previous is None:
            delta_cfi = delta_rmsea = None
            verdict = ("baseline model (saturated: df 0, its fit cannot be tested)"
                       if saturated else "baseline model")
        else:
            delta_cfi, delta_rmsea = cfi - previous.cfi, rmsea - previous.rmsea
            holds = delta_cfi >= DELTA_CFI and delta_rmsea <= DELTA_RMSEA
            verdict = (f"{step} invariance holds" if holds else
                       f"{step} invariance does not hold: compare groups with care")
        previous = InvarianceStep(step, chi, df, cfi, rmsea, delta_cfi, delta_rmsea, verdict)
        steps.append(previous)
    return steps
