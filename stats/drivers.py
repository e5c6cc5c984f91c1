"""Relative importance of predictors (the culture scales) for an outcome: dominance analysis.

What goes most with an outcome such as seeking help early, when the predictors are
correlated with each other? Plain correlations count shared variance once for every
predictor that shares it; regression weights hand it to whichever predictor happens to
win. Dominance analysis (Budescu 1993; Azen & Budescu 2003) fits the outcome on every
subset of the p predictors (2^p models: 256 for the eight scales) and asks what each
predictor adds to each model:

- **conditional dominance** at model size k: the mean gain in fit from adding the
  predictor to the models of k - 1 other predictors;
- **general dominance** (the LMG measure of Lindeman, Merenda & Gold 1980, the Shapley
  value of R^2): the mean of the conditional dominances over k = 1..p. The general
  dominances sum to the full model's fit, so each one's *share* reads as "the part of
  what the scales explain together that goes with this scale";
- **complete dominance**: predictor i completely dominates j when it adds more than j to
  every model that holds neither (1); 0 when j dominates i; 0.5 when neither does.

**Johnson's relative weights** (Johnson 2000) approximate general dominance from one
eigendecomposition of the predictors' correlation matrix: a fast cross-check.

Linear models need no respondent rows. R^2 of the subset S is
``c_yS' C_SS^-1 c_yS / c_yy`` for any covariance or correlation matrix C, so the caller
sums cross-products in SQL and hands this module a small matrix. For one site (or any
group) sum, over the respondents who answered the outcome and every predictor (listwise):

    n = count(*),  sums[i] = sum(x_i),  crossproducts[i, j] = sum(x_i * x_j)

for x = [outcome, predictor_1, ..., predictor_p], and pass them to `SiteMoments`. Centring
the scores at a fixed value (e.g. subtracting 3 from a 1-5 score) before summing keeps the
cross-products small at national scale; it changes no result here.

Logistic models (a yes/no outcome) are fitted on respondent rows, or on a table of unique
answer patterns with frequency weights; see `logistic_subset_fit` for the pseudo-R^2
(McFadden's). Their site bootstrap, `logistic_site_bootstrap`, does not refit: it sums
each model's score and information per site once and takes one Newton step a replicate
(a one-step approximation, checked against refitting in
tests/test_drivers_logistic_bootstrap.py).

Checked against R: tests/expected/generate_r_drivers.R fits every subset with lm() and
glm() and computes all of the above by hand (no dominance package is installed here).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from math import comb

import numpy as np
import pandas as pd

from stats.reliability import StatisticsError

KINDS = ("linear", "logistic")
CENTRINGS = ("total", "within_site")
#: Beyond this all-subsets fitting (2^p models) stops being a few milliseconds.
MAX_PREDICTORS = 12
#: A site gets its own driver model only from this many respondents with the outcome and
#: every scale answered. Eight predictors on fewer answers is under about 12 answers a
#: predictor, below the usual 10-15; and the R^2 that eight unrelated predictors reach by
#: chance, p / (n - 1), is then 0.08 or more, the size of the associations being shared
#: out. Smaller sites are shown their peer group's drivers instead.
MIN_SITE_RESPONDENTS = 100
#: A site bootstrap draws from the sites; with fewer it has too few distinct replicates.
MIN_BOOTSTRAP_SITES = 5


class DriversError(StatisticsError):
    """The data cannot support the dominance analysis asked for."""


@dataclass(frozen=True)
class _SubsetPlan:
    """Index arrays for p predictors, built once per p (the bootstrap reuses them)."""

    p: int
    by_size: tuple[tuple[np.ndarray, np.ndarray], ...]  # per k: masks, member positions
    without: np.ndarray      # (p, 2^(p-1)) masks of models not holding predictor j
    size_weight: np.ndarray  # (p, 2^(p-1), p) averages gains by model size
    pair_rows: np.ndarray    # (pairs,) predictor i of each pair i < j
    pair_cols: np.ndarray
    pair_rest: np.ndarray    # (pairs, 2^(p-2)) masks of models holding neither


@lru_cache(maxsize=None)
def _plan(p: int) -> _SubsetPlan:
    masks = np.arange(2 ** p)
    members = (masks[:, None] >> np.arange(p)) & 1
    size = members.sum(axis=1)
    by_size = tuple((masks[size == k], np.nonzero(members[size == k])[1].reshape(-1, k))
                    for k in range(1, p + 1))
    without = np.stack([masks[members[:, j] == 0] for j in range(p)])
    size_weight = np.zeros((p, without.shape[1], p))
    for j in range(p):
        k = size[without[j]]
        size_weight[j, np.arange(without.shape[1]), k] = 1 / np.array(
            [comb(p - 1, int(i)) for i in k])
    rows, cols = np.triu_indices(p, 1)
    rest = [masks[(members[:, i] == 0) & (members[:, j] == 0)] for i, j in zip(rows, cols)]
    pair_rest = np.stack(rest) if rest else np.zeros((0, 1), dtype=int)
    return _SubsetPlan(p, by_size, without, size_weight, rows, cols, pair_rest)


def _subset_r2(cov: np.ndarray) -> np.ndarray:
    """R^2 of every subset model, indexed by bitmask, from (..., m, m) matrices whose
    first row and column are the outcome: (..., 2^p).

    By Schur complements (the sweep operator): a model's residual covariance of the
    variables not in it is its parent's (the model without its highest predictor i)
    updated on i, C - C[:, i] C[i, :] / C[i, i], and its residual variance of the
    outcome gives R^2 = 1 - C[0, 0] / var(y). A model only ever gains higher predictors,
    so only the outcome and predictors above i are carried: some 1,400 numbers for the
    255 models of eight predictors instead of 255 solves.
    """
    m = cov.shape[-1]
    p = m - 1
    r2 = [np.zeros((1,) + cov.shape[:-2])]
    # (variables kept, residual covariances of the models whose highest predictor is i)
    levels = [(np.arange(m), cov[None])]
    for i in range(p):
        pivot = i + 1
        need = np.r_[0, pivot:m]
        # every model whose predictors are below i, in mask order (0, 1, 2-3, 4-7, ...)
        parents = np.concatenate([residual[..., at[:, None], at] for kept, residual in levels
                                  for at in [np.searchsorted(kept, need)]])
        keep = np.r_[0, 2:len(need)]
        column = parents[..., keep, 1]
        diagonal = parents[..., 1, 1]
        # a predictor with no variance left (constant, or a combination of the others)
        # adds nothing, as the pseudo-inverse would have it
        usable = diagonal > 1e-12 * cov[..., pivot, pivot]
        inverse = np.where(usable, 1 / np.where(usable, diagonal, 1), 0)
        block = parents[..., keep[:, None], keep] - (column[..., :, None] * column[..., None, :]
                                                    * inverse[..., None, None])
        levels.append((need[keep], block))
        r2.append(1 - block[..., 0, 0] / cov[..., 0, 0])
    return np.moveaxis(np.concatenate(r2), 0, -1)


def _decompose(fit: np.ndarray, with_complete: bool = True
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(conditional (..., p, p), general (..., p), complete (..., p, p)) from subset fits;
    complete None unless `with_complete` (a bootstrap needs only the general)."""
    plan = _plan(int(np.log2(fit.shape[-1])))
    p = plan.p
    gain = fit[..., plan.without + (1 << np.arange(p))[:, None]] - fit[..., plan.without]
    # per predictor j, its gains (models without j) times their model-size weights
    conditional = np.matmul(gain[..., :, None, :], plan.size_weight)[..., 0, :]
    if not with_complete:
        return conditional, conditional.mean(axis=-1), None
    a = fit[..., plan.pair_rest + (1 << plan.pair_rows)[:, None]]
    b = fit[..., plan.pair_rest + (1 << plan.pair_cols)[:, None]]
    verdict = np.where((a > b).all(axis=-1), 1.0, np.where((b > a).all(axis=-1), 0.0, 0.5))
    complete = np.full(fit.shape[:-1] + (p, p), np.nan)
    complete[..., plan.pair_rows, plan.pair_cols] = verdict
    complete[..., plan.pair_cols, plan.pair_rows] = 1 - verdict
    return conditional, conditional.mean(axis=-1), complete


def _correlation(cov: np.ndarray) -> np.ndarray:
    sd = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
    return cov / sd[..., :, None] / sd[..., None, :]


def _relative_weights(cov: np.ndarray) -> np.ndarray:
    """Johnson's raw relative weights (..., p) from outcome-first (..., m, m) matrices."""
    corr = _correlation(cov)
    rxx, rxy = corr[..., 1:, 1:], corr[..., 1:, 0]
    values, vectors = np.linalg.eigh(rxx)
    # Lambda = R_xx^(1/2): how each predictor loads on its nearest orthogonal variable.
    lam = (vectors * np.sqrt(np.clip(values, 0, None))[..., None, :]) @ np.swapaxes(
        vectors, -1, -2)
    beta = np.linalg.solve(lam, rxy[..., None])[..., 0]
    return ((lam ** 2) @ (beta ** 2)[..., None])[..., 0]


@dataclass(frozen=True)
class DominanceResult:
    """Dominance analysis of one outcome on its predictors.

    `subset_fit[mask]` is the fit (R^2, or McFadden's R^2 for logistic) of the model
    holding predictor j when bit j of `mask` is set. `conditional[j, k - 1]` is predictor
    j's conditional dominance at model size k; `complete[i, j]` is 1 when i completely
    dominates j, 0 when j dominates i, 0.5 when neither does (NaN on the diagonal).
    `relative_weights` are Johnson's raw weights (summing to R^2; linear models only).
    """

    outcome: str
    predictors: tuple[str, ...]
    kind: str
    fit_measure: str
    n: int | None
    total: float
    general: np.ndarray
    conditional: np.ndarray
    complete: np.ndarray
    subset_fit: np.ndarray
    relative_weights: np.ndarray | None

    @property
    def general_share(self) -> np.ndarray:
        """General dominance as a share of the full model's fit (sums to 1)."""
        return self.general / self.total

    def table(self) -> pd.DataFrame:
        """One row a predictor, most important first: general dominance, its share and
        rank, conditional dominance at each model size, and the relative weights."""
        frame = pd.DataFrame({"general": self.general, "share": self.general_share},
                             index=pd.Index(self.predictors, name="predictor"))
        frame["rank"] = frame["general"].rank(ascending=False, method="min").astype(int)
        for k in range(len(self.predictors)):
            frame[f"conditional_k{k + 1}"] = self.conditional[:, k]
        if self.relative_weights is not None:
            frame["relative_weight"] = self.relative_weights
            frame["relative_weight_share"] = self.relative_weights / self.relative_weights.sum()
        return frame.sort_values("rank", kind="stable")

    def complete_table(self) -> pd.DataFrame:
        """Complete dominance: row predictor over column predictor (1, 0 or 0.5)."""
        return pd.DataFrame(self.complete, index=list(self.predictors),
                            columns=list(self.predictors))


def _checked_names(outcome, predictors) -> tuple:
    predictors = tuple(predictors)
    if not 1 <= len(predictors) <= MAX_PREDICTORS:
        raise DriversError(f"dominance analysis needs 1 to {MAX_PREDICTORS} predictors "
                           f"(got {len(predictors)})")
    if outcome in predictors or len(set(predictors)) < len(predictors):
        raise DriversError(f"the outcome {outcome!r} and predictors {list(predictors)} "
                           "must all be different")
    return predictors


def _outcome_first(matrix, outcome, predictors) -> tuple[np.ndarray, str, tuple[str, ...]]:
    """The matrix reordered to [outcome, *predictors]; labels if it is a DataFrame,
    positions if it is an array."""
    predictors = _checked_names(outcome, predictors)
    if isinstance(matrix, pd.DataFrame):
        missing = [c for c in (outcome, *predictors) if c not in matrix.columns]
        if missing:
            raise DriversError(f"not in the matrix: {missing}; it has {list(matrix.columns)}")
        order = [outcome, *predictors]
        values = matrix.loc[order, order].to_numpy(float)
        return values, str(outcome), tuple(str(p) for p in predictors)
    values = np.asarray(matrix, float)
    order = [int(outcome), *(int(p) for p in predictors)]
    return values[np.ix_(order, order)], str(outcome), tuple(str(p) for p in predictors)


def _check_matrix(cov: np.ndarray) -> None:
    if not np.isfinite(cov).all():
        raise DriversError("the covariance matrix has missing values: every variable needs "
                           "at least two different answers")
    if (np.diagonal(cov, axis1=-2, axis2=-1) <= 0).any():
        raise DriversError("a variable has no variance (everyone gave the same answer); "
                           "drop it or widen the group")


def dominance_from_moments(matrix, outcome, predictors, n: int | None = None
                           ) -> DominanceResult:
    """Dominance analysis of a linear model from a covariance or correlation matrix.

    Parameters
    ----------
    matrix : DataFrame or (m, m) array
        Covariances or correlations of the outcome and predictors (and perhaps more
        variables). With a DataFrame, `outcome` and `predictors` are labels; with an
        array, they are positions.
    n : int, optional
        Respondents behind the matrix, only recorded on the result.

    In R (by hand, tests/expected/generate_r_drivers.R): ``summary(lm(y ~ S))$r.squared``
    for every subset S, then the means of the gains.
    """
    cov, outcome, predictors = _outcome_first(matrix, outcome, predictors)
    _check_matrix(cov)
    fit = _subset_r2(cov)
    conditional, general, complete = _decompose(fit)
    return DominanceResult(outcome, predictors, "linear", "R2", n, float(fit[-1]), general,
                           conditional, complete, fit, _relative_weights(cov))


def dominance_from_fits(subset_fit, outcome: str, predictors, kind: str = "linear",
                        fit_measure: str = "R2", n: int | None = None) -> DominanceResult:
    """Dominance analysis from the fits of all 2^p subset models made elsewhere (any fit
    measure that does not fall when a predictor is added); `subset_fit[mask]` is the fit
    of the model holding predictor j when bit j of `mask` is set, 0 for the empty one."""
    predictors = _checked_names(outcome, predictors)
    fit = np.asarray(subset_fit, float)
    if fit.shape != (2 ** len(predictors),):
        raise DriversError(f"{len(predictors)} predictors need {2 ** len(predictors)} subset "
                           f"fits (got {fit.shape})")
    conditional, general, complete = _decompose(fit)
    return DominanceResult(str(outcome), tuple(map(str, predictors)), kind, fit_measure, n,
                           float(fit[-1]), general, conditional, complete, fit, None)


def relative_weights(matrix, outcome, predictors) -> pd.Series:
    """Johnson's (2000) raw relative weights (summing to R^2) from a covariance or
    correlation matrix: the predictors are replaced by their closest orthogonal
    counterparts Z = X R_xx^(-1/2), y is regressed on Z, and each squared weight is
    shared back by the squared loadings of R_xx^(1/2)."""
    cov, _, names = _outcome_first(matrix, outcome, predictors)
    _check_matrix(cov)
    return pd.Series(_relative_weights(cov), index=list(names), name="relative_weight")


def stacked_relative_weights(covariances) -> np.ndarray:
    """Johnson's raw relative weights of many models at once: (..., m, m) outcome-first
    covariance matrices in, (..., m - 1) weights out (each row summing to its R^2)."""
    return _relative_weights(np.asarray(covariances, float))


# ---------------------------------------------------------------- logistic


#: Rows a block when summing the information matrix: a block of the design stays in the
#: processor's cache, which whole rows at national scale (a few MB each) do not.
_BLOCK = 8192


def _information_and_score(xt: np.ndarray, h: np.ndarray, r: np.ndarray
                           ) -> tuple[np.ndarray, np.ndarray]:
    """X' diag(h) X and X' r for X stored one row a variable, (k, n), a block of rows at
    a time."""
    k, n = xt.shape
    information, score = np.zeros((k, k)), np.zeros(k)
    for start in range(0, n, _BLOCK):
        block = xt[:, start:start + _BLOCK]
        information += (block * h[start:start + _BLOCK]) @ block.T
        score += block @ r[start:start + _BLOCK]
    return information, score


def _probability_and_log_t(eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mu, log t) with t = 1 + e^-eta: the fitted probability 1 / t, and log t, from
    which log(1 + e^eta) = eta + log t; an overflowing e^-eta gives mu 0, log t inf."""
    t = np.negative(eta)
    with np.errstate(over="ignore"):
        np.exp(t, out=t)
    t += 1
    mu = np.reciprocal(t)
    np.log(t, out=t)
    return mu, t


def _logistic_state(eta: np.ndarray, y1: np.ndarray, w: np.ndarray | None
                    ) -> tuple[float, np.ndarray]:
    """(log-likelihood, fitted probabilities) at the linear predictor `eta`; `y1` is
    y - 1. With t = 1 + e^-eta: mu = 1 / t and log(1 + e^eta) = eta + log t, so
    y eta - log(1 + e^eta) = (y - 1) eta - log t: one exponential and one logarithm a
    row (an eta so negative that e^-eta overflows gives -inf, a rejected step)."""
    mu, t = _probability_and_log_t(eta)
    # (einsum's own loop, not a 1-D BLAS dot: a threaded OpenBLAS can run that far
    # slower on a busy machine)
    if w is None:
        return float(np.einsum("i,i->", y1, eta) - t.sum()), mu
    return float(np.einsum("i,i,i->", w, y1, eta) - np.einsum("i,i->", w, t)), mu


def _irls(xt: np.ndarray, y: np.ndarray, w: np.ndarray | None, beta: np.ndarray,
          eta: np.ndarray, mu: np.ndarray, current: float, tol: float = 1e-12,
          max_iter: int = 100, step_tol: float = 1e-3
          ) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """Maximum-likelihood logistic coefficients by Newton-Raphson (= IRLS), with step
    halving, for the design `xt` stored one row a variable (k, n), from `beta` whose
    linear predictor, fitted probabilities and log-likelihood are `eta`, `mu` and
    `current` (a parent model's, at its solution); returns (coefficients,
    log-likelihood, eta, mu) at the solution. `w` None means every row weighs 1."""
    y1 = y - 1
    for _ in range(max_iter):
        h = mu * (1 - mu)
        r = y - mu
        if w is not None:
            h *= w
            r *= w
        information, score = _information_and_score(xt, h, r)
        step = np.linalg.lstsq(information, score, rcond=None)[0]
        for halvings in range(30):
            trial = (beta + step) @ xt
            candidate, trial_mu = _logistic_state(trial, y1, w)
            if candidate >= current - 1e-12 * abs(current):
                break
            step = step / 2
        beta, eta, mu = beta + step, trial, trial_mu
        change, current = candidate - current, candidate
        size = np.abs(step).max()
        # Newton converges quadratically: after a full step under `step_tol` the next
        # would be about its square (under 1e-6), moving the log-likelihood by some
        # 1e-12 of itself, so stop without spending an iteration to see it.
        if (abs(change) <= tol * (abs(current) + 0.1) and size < 1e-6) or (
                halvings == 0 and size < step_tol
                and abs(change) <= 1e-6 * (abs(current) + 0.1)):
            break
    else:
        beta = None
    # Fitted probabilities within e^-30 of 0 or 1 mean the maximum is at infinity.
    if beta is not None and np.abs(eta).max() < 30:
        return beta, current, eta, mu
    raise DriversError("the logistic model did not converge: a predictor (or a "
                       "combination) may separate the yes and no answers perfectly; use "
                       "fewer predictors or a larger group")


def logistic_subset_fit(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None
                        ) -> np.ndarray:
    """McFadden's R^2 of the logistic model of every subset of the columns of `x`,
    indexed by bitmask (bit j set: column j in the model): (2^p,).

    McFadden's R^2_M = 1 - log L(model) / log L(intercept only) is the pseudo-R^2 used
    here because it is the one Azen & Traxel (2009) found to meet what dominance needs
    of a fit measure: it never falls when a predictor is added (nested maximum
    likelihoods), it runs from 0 to 1 whatever the base rate (Cox & Snell's cannot reach
    1, so its shares depend on how common "yes" is), and it reads like R^2, as the
    proportional reduction in deviance. Nagelkerke's and Estrada's measures rescale
    Cox & Snell's and give similar orderings; McFadden's is the simplest to check (R:
    ``1 - logLik(m) / logLik(m0)``).

    `y` holds 0/1; `weights` are frequency weights (a table of unique answer patterns
    with their counts gives the same result as the rows). Each of the 2^p - 1 models
    starts Newton's method from its parent's solution (the model without its last
    predictor), so most converge in three or four steps.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, float)
    _, loglik = _logistic_fits(np.vstack([np.ones(len(y)), x.T]), y, w)
    return 1 - loglik / loglik[0]


def _logistic_fits(design: np.ndarray, y: np.ndarray, w: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Every subset model's coefficients, (2^p, p + 1) with 0 for a predictor not in the
    model (column 0 the intercept), and log-likelihood (2^p,), for the design stored one
    row a variable with the intercept first, (p + 1, n).

    The models are visited depth first, each child adding a predictor above its parent's
    highest (the parent is the model without the child's highest predictor): the
    child's design is then the parent's rows plus one, in one buffer (no copy of the
    design a model), and its Newton start is the parent's solution with the new
    coefficient at 0, whose linear predictor and probabilities are the parent's."""
    p = len(design) - 1
    rate = float((w * y).sum() / w.sum())
    if not 0 < rate < 1:
        raise DriversError("the outcome needs both yes (1) and no (0) answers")
    coefficients = np.zeros((2 ** p, p + 1))
    loglik = np.empty(2 ** p)
    coefficients[0, 0] = np.log(rate / (1 - rate))
    loglik[0] = float(w.sum() * (rate * np.log(rate) + (1 - rate) * np.log(1 - rate)))
    unit = None if (w == 1).all() else w
    # One row a variable, each row contiguous: the callers' vstack of x.T is laid out a
    # respondent at a time, from which a row is a strided gather.
    design = np.ascontiguousarray(design, dtype=float)
    buffer = np.empty(design.shape)
    buffer[0] = design[0]

    def children(parent: int, depth: int, eta: np.ndarray, mu: np.ndarray) -> None:
        # buffer[:depth + 1] holds the parent's design; a child's subtree writes only
        # the rows after its own
        columns = [0] + [j + 1 for j in range(p) if parent >> j & 1]
        for j in range(parent.bit_length(), p):
            mask = parent | 1 << j
            buffer[depth + 1] = design[j + 1]
            start = np.append(coefficients[parent, columns], 0.0)
            beta, loglik[mask], child_eta, child_mu = _irls(
                buffer[:depth + 2], y, unit, start, eta, mu, loglik[parent])
            coefficients[mask, columns + [j + 1]] = beta
            children(mask, depth + 1, child_eta, child_mu)

    children(0, 0, np.full(len(y), coefficients[0, 0]), np.full(len(y), rate))
    return coefficients, loglik


def dominance_table(frame: pd.DataFrame, outcome: str, predictors, kind: str = "linear"
                    ) -> DominanceResult:
    """Dominance analysis (general, conditional, complete) of `outcome` on `predictors`
    in a DataFrame, with Johnson's relative weights for a linear model.

    Respondents missing the outcome or any predictor are dropped (listwise), as the
    pipeline's summed moments do. ``kind="linear"`` decomposes R^2 of an OLS model;
    ``kind="logistic"`` decomposes McFadden's R^2 of a logistic model, for an outcome
    coded 0/1 or True/False (relative weights are then None: Johnson's method is for
    linear models). ``result.table()`` gives the table, ``result.complete_table()``
    the pairwise complete dominance, e.g.
    ``dominance_table(answers, "oc_intend", ["stigma", "psysafety", "pathways"]).table()``.
    """
    if kind not in KINDS:
        raise DriversError(f"kind {kind!r} is not one of {KINDS}")
    predictors = _checked_names(outcome, predictors)
    missing = [c for c in (outcome, *predictors) if c not in frame.columns]
    if missing:
        raise DriversError(f"not in the data: {missing}")
    data = frame[[outcome, *predictors]].dropna()
    try:
        data = data.astype(float)
    except (TypeError, ValueError) as error:
        raise DriversError(f"outcome and predictors must be numeric: {error}") from None
    if len(data) < len(predictors) + 2:
        raise DriversError(f"{len(data)} complete rows cannot support {len(predictors)} "
                           "predictors")
    if kind == "linear":
        return dominance_from_moments(data.cov(), outcome, predictors, n=len(data))
    y = data[outcome].to_numpy()
    if not np.isin(y, (0, 1)).all():
        raise DriversError(f"a logistic outcome must be coded 0/1 (or False/True); "
                           f"{outcome!r} has {sorted(set(y.tolist()))[:6]}")
    fit = logistic_subset_fit(data[list(predictors)].to_numpy(), y)
    return dominance_from_fits(fit, outcome, predictors, "logistic", "McFadden R2", len(data))


# ------------------------------------------------- site moments and the site bootstrap


@dataclass(frozen=True)
class SiteMoments:
    """Per-site sufficient statistics of some variables (an outcome and its predictors).

    For site s, over its respondents who answered every variable: `n[s]` respondents,
    `sums[s, i]` = sum of variable i, `crossproducts[s, i, j]` = sum of variable i times
    variable j (not centred). In SQL, one ``group by site`` with ``count(*)``,
    ``sum(x_i)`` and ``sum(x_i * x_j)`` for i <= j.
    """

    columns: tuple[str, ...]
    sites: tuple[str, ...]
    n: np.ndarray              # (S,)
    sums: np.ndarray           # (S, m)
    crossproducts: np.ndarray  # (S, m, m)

    def __post_init__(self) -> None:
        s, m = len(self.sites), len(self.columns)
        if (np.shape(self.n) != (s,) or np.shape(self.sums) != (s, m)
                or np.shape(self.crossproducts) != (s, m, m)):
            raise DriversError(f"site moments for {s} sites and {m} variables need n of "
                               f"shape ({s},), sums ({s}, {m}) and crossproducts ({s}, {m}, "
                               f"{m}); got {np.shape(self.n)}, {np.shape(self.sums)}, "
                               f"{np.shape(self.crossproducts)}")

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, site: str, columns) -> SiteMoments:
        """The moments of `columns` per value of `site`, listwise over those columns
        (what the pipeline sums in DuckDB; for tests and researchers)."""
        columns = list(columns)
        data = frame[[site, *columns]].dropna()
        codes, sites = pd.factorize(data[site], sort=True)
        x = data[columns].to_numpy(float)
        s, m = len(sites), len(columns)
        sums = np.stack([np.bincount(codes, x[:, i], minlength=s) for i in range(m)], axis=1)
        crossproducts = np.empty((s, m, m))
        for i in range(m):
            for j in range(i, m):
                crossproducts[:, i, j] = crossproducts[:, j, i] = np.bincount(
                    codes, x[:, i] * x[:, j], minlength=s)
        return cls(tuple(columns), tuple(map(str, sites)),
                   np.bincount(codes, minlength=s).astype(float), sums, crossproducts)

    def select(self, variables) -> SiteMoments:
        """These moments for `variables` only, in that order."""
        variables = list(variables)
        unknown = [v for v in variables if v not in self.columns]
        if unknown:
            raise DriversError(f"no moments for {unknown}; have {list(self.columns)}")
        idx = [self.columns.index(v) for v in variables]
        return SiteMoments(tuple(variables), self.sites, self.n, self.sums[:, idx],
                           self.crossproducts[:, idx][:, :, idx])

    def of_sites(self, sites) -> SiteMoments:
        """These moments for a group of sites (a peer group)."""
        keep = np.isin(np.array(self.sites, dtype=object), list(sites))
        return SiteMoments(self.columns, tuple(np.array(self.sites, dtype=object)[keep]),
                           self.n[keep], self.sums[keep], self.crossproducts[keep])

    def pooled_covariance(self, counts: np.ndarray | None = None,
                          centring: str = "total") -> np.ndarray:
        """Covariance matrix of all respondents, (m, m); or (..., m, m) for `counts`
        (..., S) saying how often each site is taken (the bootstrap's draws).

        ``centring="total"`` centres at the overall mean, so differences between sites
        count too; ``"within_site"`` centres each site at its own mean, so only
        differences among colleagues at the same site count.
        """
        if centring not in CENTRINGS:
            raise DriversError(f"centring {centring!r} is not one of {CENTRINGS}")
        counts = np.ones(len(self.sites)) if counts is None else np.asarray(counts, float)
        m = len(self.columns)
        total_n = counts @ self.n
        if centring == "total":
            sums = counts @ self.sums
            products = (counts @ self.crossproducts.reshape(len(self.sites), -1)).reshape(
                counts.shape[:-1] + (m, m))
            centred = products - sums[..., :, None] * sums[..., None, :] / total_n[..., None,
                                                                                    None]
            return centred / (total_n - 1)[..., None, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            own = self.crossproducts - (self.sums[:, :, None] * self.sums[:, None, :]
                                        / self.n[:, None, None])
        own = np.nan_to_num(own)   # a site with no respondents adds nothing
        within = (counts @ own.reshape(len(self.sites), -1)).reshape(counts.shape[:-1] + (m, m))
        drawn_sites = counts @ (self.n > 0)
        return within / (total_n - drawn_sites)[..., None, None]

    def site_covariances(self) -> np.ndarray:
        """Each site's own covariance matrix (divisor n - 1), (S, m, m)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            centred = self.crossproducts - (self.sums[:, :, None] * self.sums[:, None, :]
                                            / self.n[:, None, None])
            return centred / (self.n - 1)[:, None, None]


def dominance_from_site_moments(moments: SiteMoments, outcome: str, predictors,
                                centring: str = "total") -> DominanceResult:
    """Dominance analysis of the linear model on all the sites' respondents pooled."""
    predictors = _checked_names(outcome, predictors)
    chosen = moments.select([outcome, *predictors])
    result = dominance_from_moments(chosen.pooled_covariance(centring=centring), 0,
                                    range(1, len(chosen.columns)), n=int(chosen.n.sum()))
    return replace(result, outcome=str(outcome), predictors=tuple(map(str, predictors)))


@dataclass(frozen=True)
class BootstrapResult:
    """Percentile intervals of each predictor's share of R^2 (general dominance / R^2)
    from resampling whole sites; `share_draws` is (draws, p)."""

    outcome: str
    predictors: tuple[str, ...]
    n: int
    n_sites: int
    level: float
    share: np.ndarray
    share_low: np.ndarray
    share_high: np.ndarray
    total: float
    total_low: float
    total_high: float
    share_draws: np.ndarray

    def table(self) -> pd.DataFrame:
        """One row a predictor: share of R^2 with its interval, largest first."""
        return pd.DataFrame({"share": self.share, "share_low": self.share_low,
                             "share_high": self.share_high},
                            index=pd.Index(self.predictors, name="predictor")
                            ).sort_values("share", ascending=False, kind="stable")


def site_bootstrap(moments: SiteMoments, outcome: str, predictors, draws: int = 200,
                   level: float = 0.95, seed: int = 0, centring: str = "total"
                   ) -> BootstrapResult:
    """Intervals for the general-dominance shares that respect clustering in sites.

    Respondents at one site share a culture, so they are not independent: resampling
    respondents would make the intervals too narrow. Instead each of `draws` replicates
    takes as many sites as there are, with replacement (Davison & Hinkley 1997, sec.
    3.8, the cluster bootstrap), pools their summed moments into one covariance matrix
    and redoes the dominance analysis; the interval is the percentile interval of the
    replicates. All replicates run as one batch of small matrix solves.

    Few sites make few distinct replicates and intervals that are too narrow; the
    bootstrap refuses fewer than `MIN_BOOTSTRAP_SITES` (5), and its intervals are best
    read from about 20 sites.
    """
    predictors = _checked_names(outcome, predictors)
    chosen = moments.select([outcome, *predictors])
    n_sites = int((chosen.n > 0).sum())
    if n_sites < MIN_BOOTSTRAP_SITES:
        raise DriversError(f"a site bootstrap needs at least {MIN_BOOTSTRAP_SITES} sites with "
                           f"answers (got {n_sites}); report the national or peer-group intervals")
    if not 0 < level < 1 or draws < 1:
        raise DriversError(f"level must be between 0 and 1 and draws at least 1 (got "
                           f"{level}, {draws})")
    estimate = dominance_from_site_moments(chosen, outcome, predictors, centring)
    rng = np.random.default_rng(seed)
    s = len(chosen.sites)
    counts = rng.multinomial(s, np.full(s, 1 / s), size=draws)
    cov = chosen.pooled_covariance(counts, centring)
    _check_matrix(cov)
    fit = _subset_r2(cov)
    _, general, _ = _decompose(fit, with_complete=False)
    share = general / fit[:, -1:]
    tails = 100 * np.array([(1 - level) / 2, (1 + level) / 2])
    share_low, share_high = np.percentile(share, tails, axis=0)
    total_low, total_high = np.percentile(fit[:, -1], tails)
    return BootstrapResult(str(outcome), tuple(map(str, predictors)), int(chosen.n.sum()),
                           n_sites, level, estimate.general_share, share_low, share_high,
                           estimate.total, float(total_low), float(total_high), share)


def site_dominance(moments: SiteMoments, outcome: str, predictors,
                   min_respondents: int = MIN_SITE_RESPONDENTS) -> pd.DataFrame:
    """Each site's own linear driver model, for sites with at least `min_respondents`
    answering the outcome and every predictor (smaller sites are left out: they read
    their peer group's drivers). One row a site: n, R^2 and each predictor's share of
    it; NaN where a site's answers do not vary enough to fit.
    """
    predictors = _checked_names(outcome, predictors)
    chosen = moments.select([outcome, *predictors])
    keep = chosen.n >= min_respondents
    columns = ["n", "r2", *map(str, predictors)]
    if not keep.any():
        return pd.DataFrame(columns=columns, index=pd.Index([], name="site"))
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = chosen.site_covariances()[keep]
        fit = _subset_r2(cov)
        _, general, _ = _decompose(fit, with_complete=False)
        share = general / fit[:, -1:]
    frame = pd.DataFrame(share, columns=list(map(str, predictors)),
                         index=pd.Index(np.array(chosen.sites, dtype=object)[keep], name="site"))
    frame.insert(0, "r2", fit[:, -1])
    frame.insert(0, "n", chosen.n[keep].astype(int))
    return frame


# ------------------------------------------- the site bootstrap of the logistic model

BOOTSTRAP_METHODS = ("one_step", "refit")


def _site_draws(n_sites: int, draws: int, seed: int) -> np.ndarray:
    """How often each site is taken in each replicate, (draws, n_sites): as many sites
    as there are, with replacement (the same draws for a seed whatever the model)."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_sites, np.full(n_sites, 1 / n_sites), size=draws)


def _percentiles(share: np.ndarray, total: np.ndarray, level: float):
    tails = 100 * np.array([(1 - level) / 2, (1 + level) / 2])
    share_low, share_high = np.percentile(share, tails, axis=0)
    total_low, total_high = np.percentile(total, tails)
    return share_low, share_high, float(total_low), float(total_high)


def _logistic_site_sums(design: np.ndarray, y: np.ndarray, w: np.ndarray,
                        bounds: np.ndarray, coefficients: np.ndarray):
    """Per site, each subset model's log-likelihood (S, M), score (S, M, k) and
    information (S, M, k, k) at the coefficients (M, k) fitted on all the sites; rows
    sorted by site, site s in rows bounds[s]:bounds[s + 1]. Each site is a few matrix
    products over its own rows: all M models at once."""
    k, m, s = len(design), len(coefficients), len(bounds) - 1
    rows, cols = np.triu_indices(k)
    loglik, score = np.empty((s, m)), np.empty((s, m, k))
    packed = np.empty((s, m, len(rows)))
    for site in range(s):
        part = slice(bounds[site], bounds[site + 1])
        xt, ys, ws = design[:, part], y[part], w[part]
        eta = coefficients @ xt
        mu, t = _probability_and_log_t(eta)   # log(1 + e^eta) = eta + t
        loglik[site] = eta @ (ws * (ys - 1)) - t @ ws
        # sum w (y - mu) x: the y part is the same for every model
        score[site] = xt @ (ws * ys) - (mu * ws) @ xt.T
        mu *= 1 - mu
        packed[site] = (mu * ws) @ (xt[rows] * xt[cols]).T
    information = np.empty((s, m, k, k))
    information[..., rows, cols] = packed
    information[..., cols, rows] = packed
    return loglik, score, information


def _one_step_loglik(loglik: np.ndarray, score: np.ndarray, information: np.ndarray,
                     counts: np.ndarray) -> np.ndarray:
    """Each replicate's log-likelihood of each subset model after one Newton step from
    the full-sample coefficients, with the sites' sums weighted by how often each site
    was drawn: (draws, M). At beta_hat + d, d = H*^-1 g*, the quadratic expansion of the
    replicate's log-likelihood is L*(beta_hat) + g*' d / 2."""
    s, m, k = score.shape
    draws = len(counts)
    total = counts @ loglik
    g = (counts @ score.reshape(s, -1)).reshape(draws, m, k)
    h = (counts @ information.reshape(s, -1)).reshape(draws, m, k, k)
    p = k - 1
    groups = [(np.array([0]), np.zeros((1, 0), dtype=int))]
    groups += list(_plan(p).by_size) if p else []
    for masks, members in groups:
        idx = np.concatenate([np.zeros((len(masks), 1), dtype=int), members + 1], axis=1)
        hs = h[:, masks[:, None, None], idx[:, :, None], idx[:, None, :]]
        gs = g[:, masks[:, None], idx]
        try:
            step = np.linalg.solve(hs, gs[..., None])[..., 0]
        except np.linalg.LinAlgError:   # a replicate where a predictor does not vary
            step = (np.linalg.pinv(hs, hermitian=True) @ gs[..., None])[..., 0]
        total[:, masks] += (gs * step).sum(axis=-1) / 2
    return total


def logistic_site_bootstrap(x, y, sites, outcome: str, predictors, draws: int = 200,
                            level: float = 0.95, seed: int = 0, method: str = "one_step",
                            weights=None) -> BootstrapResult:
    """Site-bootstrap intervals for the shares of McFadden's R^2 of a logistic model.

    As `site_bootstrap` for the linear model, each of `draws` replicates takes as many
    sites as there are, with replacement, and redoes the dominance analysis over all
    2^p subset models; the interval is the percentile interval of the replicates. The
    fit measure is McFadden's R^2_M = 1 - log L(model) / log L(intercept only) (see
    `logistic_subset_fit`), the null model resampled like the others.

    ``method="one_step"`` (the default) does not refit: each subset model's score and
    information are summed per site once, at the coefficients fitted on all the sites;
    a replicate weights those sums by how often it drew each site and takes one Newton
    step from the full-sample coefficients, whose log-likelihood is read from the
    quadratic expansion (the one-step bootstrap of Moulton & Zeger 1991, "Bootstrapping
    generalized linear models", with sites as the units). One step from a consistent
    start is as accurate as the refit to first order; it is an approximation, which is
    why ``method="refit"`` (every replicate's 2^p - 1 models fitted to convergence on
    the rows) is kept to check it: tests/test_drivers_logistic_bootstrap.py puts the two
    within 0.005 of each other on a small design, and the intervals' coverage of
    planted shares near 95%.

    `x` (n, p) predictors, `y` 0/1, `sites` a site label a row, `weights` optional
    frequency weights; rows missing anything must be dropped first.
    """
    predictors = _checked_names(outcome, predictors)
    if method not in BOOTSTRAP_METHODS:
        raise DriversError(f"method {method!r} is not one of {BOOTSTRAP_METHODS}")
    if not 0 < level < 1 or draws < 1:
        raise DriversError(f"level must be between 0 and 1 and draws at least 1 (got "
                           f"{level}, {draws})")
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.ndim != 2 or x.shape != (len(y), len(predictors)):
        raise DriversError(f"x must be (rows, {len(predictors)} predictors) with a row for "
                           f"each of the {len(y)} outcomes; got {x.shape}")
    codes, labels = pd.factorize(pd.Series(sites), sort=True)
    if len(labels) < MIN_BOOTSTRAP_SITES:
        raise DriversError(f"a site bootstrap needs at least {MIN_BOOTSTRAP_SITES} sites with "
                           f"answers (got {len(labels)}); report the national or peer-group "
                           "intervals")
    order = np.argsort(codes, kind="stable")
    codes, x, y = codes[order], x[order], y[order]
    w = np.ones(len(y)) if weights is None else np.asarray(weights, float)[order]
    bounds = np.searchsorted(codes, np.arange(len(labels) + 1))
    design = np.ascontiguousarray(np.vstack([np.ones(len(y)), x.T]))
    coefficients, loglik = _logistic_fits(design, y, w)
    fit = 1 - loglik / loglik[0]
    _, general, _ = _decompose(fit, with_complete=False)
    counts = _site_draws(len(labels), draws, seed)
    if method == "one_step":
        replicate = _one_step_loglik(*_logistic_site_sums(design, y, w, bounds, coefficients),
                                     counts)
    else:
        replicate = np.stack([_logistic_fits(design, y, w * np.repeat(c, np.diff(bounds)))[1]
                              for c in counts])
    fits = 1 - replicate / replicate[:, :1]
    _, draw_general, _ = _decompose(fits, with_complete=False)
    share = draw_general / fits[:, -1:]
    share_low, share_high, total_low, total_high = _percentiles(share, fits[:, -1], level)
    return BootstrapResult(str(outcome), tuple(map(str, predictors)), int(w.sum()),
                           len(labels), level, general / fit[-1], share_low, share_high,
                           float(fit[-1]), total_low, total_high, share)
