"""Reliability of a scale: Cronbach's alpha with a Feldt interval, omega total, item statistics.

Every function takes a pandas DataFrame of item responses (rows respondents, columns
items, already reverse-keyed, NaN for missing) and returns a small frozen result.

Missing data is a named policy, `nan_policy`:

- ``"pairwise"`` (default): each covariance / correlation uses every respondent who
  answered both items. Matches ``psych::alpha(x)`` (which uses
  ``cor(x, use = "pairwise")``), with ``n`` = all rows.
- ``"listwise"``: respondents with any missing item are dropped first. Matches
  ``psych::alpha(na.omit(x))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from survey.errors import CultureError

NAN_POLICIES = ("pairwise", "listwise")


class StatisticsError(CultureError):
    """The data cannot support the statistic asked for (too few items or respondents)."""


@dataclass(frozen=True)
class AlphaResult:
    """Cronbach's alpha of one scale, with its Feldt confidence interval.

    `n` respondents answered the scale's `n_items` items; `ci_low` and `ci_high` bound
    the interval at the confidence asked for (95% by default).
    """

    alpha: float                 # raw alpha, from covariances
    alpha_standardised: float    # from correlations
    ci_low: float
    ci_high: float
    n: int
    n_items: int
    nan_policy: str


@dataclass(frozen=True)
class ItemStatistics:
    """Per item: corrected item-total correlation and alpha if the item is deleted."""

    items: tuple[str, ...]
    item_total_corrected: tuple[float, ...]
    alpha_if_deleted: tuple[float, ...]


def _prepared(items: pd.DataFrame, nan_policy: str, min_items: int = 2) -> pd.DataFrame:
    if nan_policy not in NAN_POLICIES:
        raise StatisticsError(f"nan_policy {nan_policy!r} is not one of {NAN_POLICIES}")
    data = items.astype(float)
    if nan_policy == "listwise":
        data = data.dropna()
    if data.shape[1] < min_items:
        raise StatisticsError(f"reliability needs at least {min_items} items, got "
                              f"{data.shape[1]}")
    if len(data) < 3:
        raise StatisticsError(f"reliability needs at least 3 respondents, got {len(data)}")
    return data


def _alpha_from_matrix(matrix: np.ndarray) -> float:
    n_items = matrix.shape[0]
    with np.errstate(divide="ignore", invalid="ignore"):  # no variance: NaN
        return n_items / (n_items - 1) * (1 - np.trace(matrix) / matrix.sum())


def feldt_interval(alpha: float, n: int, n_items: int,
                   confidence: float = 0.95) -> tuple[float, float]:
    """The Feldt confidence interval for alpha (Feldt, Woodruff & Salih 1987).

    lower = 1 - (1 - alpha) F(1 - p/2; n-1, (n-1)(n_items-1)), upper with F(p/2; ...),
    p = 1 - confidence: the F interval pingouin's ``cronbach_alpha`` and psych compute.
    In R: ``psych::alpha.ci(alpha, n.obs, n.var)``.
    """
    p = 1 - confidence
    df1, df2 = n - 1, (n - 1) * (n_items - 1)
    lower = 1 - (1 - alpha) * stats.f.ppf(1 - p / 2, df1, df2)
    upper = 1 - (1 - alpha) * stats.f.ppf(p / 2, df1, df2)
    return float(lower), float(upper)


def cronbach_alpha(items: pd.DataFrame, nan_policy: str = "pairwise",
                   confidence: float = 0.95) -> AlphaResult:
    """Cronbach's alpha (raw and standardised) with the Feldt interval.

    alpha = n_items / (n_items - 1) * (1 - trace(C) / sum(C)), C the item covariance
    matrix (the correlation matrix for the standardised alpha). Cronbach (1951); the
    interval as in `feldt_interval` (Feldt, Woodruff & Salih 1987).
    In R: ``psych::alpha(x)$total[c("raw_alpha", "std.alpha")]``.
    """
    data = _prepared(items, nan_policy)
    return alpha_from_covariance(data.cov().to_numpy(), len(data), nan_policy, confidence)


def alpha_from_covariance(cov: np.ndarray, n: int, nan_policy: str = "pairwise",
                          confidence: float = 0.95) -> AlphaResult:
    """Alpha from an item covariance matrix and the number of respondents behind it.

    The entry point for covariances built from sufficient statistics in DuckDB
    (`pipeline.psychometrics.moments`); `cronbach_alpha` calls it with pandas' covariance.
    """
    n_items = cov.shape[0]
    alpha = _alpha_from_matrix(cov)
    # psych standardises the (pairwise) covariance matrix with its own diagonal
    # (cov2cor), not with pair-specific variances as pandas' corr() would.
    scale = 1 / np.sqrt(np.diag(cov))
    standardised = _alpha_from_matrix(cov * np.outer(scale, scale))
    low, high = feldt_interval(alpha, n, n_items, confidence)
    return AlphaResult(float(alpha), float(standardised), low, high, int(n), n_items,
                       nan_policy)


def alpha_batch(cov: np.ndarray, n: np.ndarray, confidence: float = 0.95) -> dict[str, np.ndarray]:
    """Alpha, standardised alpha and the Feldt interval for many groups at once.

    `cov` is (groups, n_items, n_items), `n` the respondents behind each. The same
    formulas as `alpha_from_covariance`, vectorised for every site x wave of a national wave. A
    group whose answers do not vary (every item the same for everyone) gets NaN.
    """
    cov = np.asarray(cov, dtype=float)
    n = np.asarray(n, dtype=float)
    n_items = cov.shape[-1]
    p = 1 - confidence
    df1, df2 = n - 1, (n - 1) * (n_items - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        trace = np.trace(cov, axis1=1, axis2=2)
        alpha = n_items / (n_items - 1) * (1 - trace / cov.sum(axis=(1, 2)))
        scale = 1 / np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
        corr = cov * scale[:, :, None] * scale[:, None, :]
        standardised = n_items / (n_items - 1) * (1 - n_items / corr.sum(axis=(1, 2)))
        low = 1 - (1 - alpha) * stats.f.ppf(1 - p / 2, df1, df2)
        high = 1 - (1 - alpha) * stats.f.ppf(p / 2, df1, df2)
    return {"alpha": alpha, "alpha_standardised": standardised, "ci_low": low, "ci_high": high}


def item_statistics(items: pd.DataFrame, nan_policy: str = "pairwise") -> ItemStatistics:
    """Corrected item-total correlation and alpha if deleted, for each item.

    The corrected item-total correlation is the correlation of an item with the sum of
    the other items, computed from the covariance matrix so that the pairwise policy
    matches psych. In R: ``psych::alpha(x)$item.stats$r.drop`` and
    ``psych::alpha(x)$alpha.drop$raw_alpha``.
    """
    data = _prepared(items, nan_policy, min_items=3)
    return item_statistics_from_covariance(data.cov().to_numpy(), tuple(data.columns))


def item_statistics_from_covariance(cov: np.ndarray, items: tuple[str, ...]) -> ItemStatistics:
    """Item statistics from a covariance matrix (see `item_statistics`)."""
    n_items = cov.shape[0]
    item_total, if_deleted = [], []
    for i in range(n_items):
        rest = [j for j in range(n_items) if j != i]
        rest_cov = cov[np.ix_(rest, rest)]
        covariance_with_rest = cov[i, rest].sum()
        with np.errstate(divide="ignore", invalid="ignore"):  # no variance: NaN
            item_total.append(covariance_with_rest / np.sqrt(cov[i, i] * rest_cov.sum()))
        if_deleted.append(_alpha_from_matrix(rest_cov))
    return ItemStatistics(tuple(items), tuple(map(float, item_total)),
                          tuple(map(float, if_deleted)))


def omega_total(items: pd.DataFrame, nan_policy: str = "pairwise") -> float:
    """McDonald's omega total from a one-factor minimum-residual model.

    omega_t = 1 - sum(u_i^2) / sum(R), u_i^2 = 1 - h_i^2 the uniquenesses of a
    one-factor minres solution (`one_factor_loadings`) of the pairwise correlation
    matrix R (McDonald 1999).
    In R: ``psych::omega(x, nfactors = 1, fm = "minres")$omega.tot``.
    """
    data = _prepared(items, nan_policy, min_items=3)
    return omega_total_from_correlation(data.corr().to_numpy())


def omega_total_from_correlation(corr: np.ndarray) -> float:
    """Omega total from an item correlation matrix (see `omega_total`)."""
    return float(omega_total_batch(np.asarray(corr)[None])[0])


def one_factor_loadings(corr: np.ndarray, tolerance: float = 1e-11,
                        max_iterations: int = 10_000) -> np.ndarray:
    """Minimum-residual one-factor loadings of one or many correlation matrices at once.

    `corr` is (n_items, n_items) or (groups, n_items, n_items). Iterated principal axis
    factoring, started from squared multiple correlations: its fixed point is the minres
    (unweighted least squares) solution, since both satisfy
    sum_j!=i (r_ij - l_i l_j) l_j = 0. Iterating until no communality moves by `tolerance` (1e-11) puts omega within ~1e-11 of the
    exact fixed point. Vectorised across groups: thousands of site x wave matrices are
    solved together, first with Newton steps (power steps for any that do not settle)
    and then confirmed with batched eigen decompositions. Matches
    ``psych::fa(r, 1, fm = "minres")`` for proper solutions. A matrix with no proper
    one-factor solution (a Heywood case: some communality of 1 or more) gets NaN
    loadings, and so no omega, where psych reports a boundary solution with a warning.
    """
    matrices = np.asarray(corr, dtype=float)
    single = matrices.ndim == 2
    if single:
        matrices = matrices[None]
    # Matrices with undefined entries (a group too small or an item nobody answered)
    # get NaN loadings instead of stopping the batch.
    valid = np.isfinite(matrices).all(axis=(1, 2))
    result = np.full(matrices.shape[:2], np.nan)
    if valid.any():
        result[valid] = _principal_axis(matrices[valid], tolerance, max_iterations)
    return result[0] if single else result


def _principal_axis(matrices: np.ndarray, tolerance: float, max_iterations: int) -> np.ndarray:
    start = 1 - 1 / np.diagonal(_inverse(matrices), axis1=1, axis2=2)
    communality, solved = _newton_phase(matrices, start)
    if not solved.all():
        communality[~solved] = _power_phase(matrices[~solved], start[~solved], tolerance,
                                            POWER_STEPS)
    return _eigen_phase(matrices, communality, tolerance, max_iterations)


def _newton_phase(matrices: np.ndarray, communality: np.ndarray, steps: int = 12,
                  tolerance: float = 1e-13) -> tuple[np.ndarray, np.ndarray]:
    """Newton's method on the fixed-point equations, batched: (communalities, solved).

    The one-factor minres loadings solve f_i(l) = sum_j!=i (r_ij - l_i l_j) l_j = 0, whose
    Jacobian is r_ik - 2 l_i l_k off the diagonal and -sum_j!=i l_j^2 on it. Started from
    the squared multiple correlations, a few Newton steps converge quadratically where
    the power steps converge linearly (hundreds of them for some groups), which matters
    for the thousands of site x wave matrices of a national run. A group is solved when its
    step is below `tolerance` with every communality in [0, 1); the others (Heywood
    cases, mostly) go to the power steps. `_eigen_phase` confirms every group either way,
    so the answer is the principal-axis fixed point whichever way it was reached.
    """
    n_items = matrices.shape[-1]
    diagonal = np.arange(n_items)
    off = matrices.copy()
    off[:, diagonal, diagonal] = 0
    loadings = np.sqrt(np.clip(communality, 0, None))
    # Square roots of communalities are all positive; take the signs of one product with
    # the matrix, as the leading eigenvector has them.
    signs = np.sign(np.einsum("gij,gj->gi", off, loadings) + loadings * communality)
    loadings *= np.where(signs == 0, 1, signs)
    solved = np.zeros(len(matrices), dtype=bool)
    with np.errstate(all="ignore"):
        for _ in range(steps):
            squares = loadings ** 2
            others = squares.sum(axis=1, keepdims=True) - squares
            residual = np.einsum("gij,gj->gi", off, loadings) - loadings * others
            jacobian = off - 2 * loadings[:, :, None] * loadings[:, None, :]
            jacobian[:, diagonal, diagonal] = -others
            try:
                step = np.linalg.solve(jacobian, residual[..., None])[..., 0]
            except np.linalg.LinAlgError:
                break
            loadings = loadings - step
            solved = np.isfinite(step).all(axis=1) & (np.abs(step).max(axis=1) < tolerance)
            if solved.all():
                break
    updated = loadings ** 2
    solved &= np.isfinite(updated).all(axis=1) & (updated < 1).all(axis=1)
    return np.where(solved[:, None], updated, communality), solved


def _inverse(matrices: np.ndarray) -> np.ndarray:
    """Batched inverse for the squared multiple correlations that start the iteration;
    the pseudo-inverse (an SVD, several times slower) only when a matrix is singular."""
    try:
        inverse = np.linalg.inv(matrices)
    except np.linalg.LinAlgError:
        return np.linalg.pinv(matrices)
    return inverse if np.isfinite(inverse).all() else np.linalg.pinv(matrices)


#: Power-iteration steps before the exact eigen decompositions take over.
POWER_STEPS = 300


def _power_phase(matrices: np.ndarray, communality: np.ndarray, tolerance: float,
                 steps: int) -> np.ndarray:
    """Communalities brought near the principal-axis fixed point cheaply.

    Each step multiplies the reduced matrix (R with the communalities on its diagonal)
    by the current direction once, instead of decomposing it: v <- R_h v / |R_h v|,
    lambda = v' R_h v, h = lambda v^2. Its fixed point is the principal-axis one (v the
    leading eigenvector of R_h); a batched matrix-vector product costs a fraction of a
    batched eigh, so this does most of the iterations. `_eigen_phase` then confirms each
    group with exact decompositions (and finishes any this did not settle).
    """
    n_items = matrices.shape[-1]
    diagonal = np.arange(n_items)
    reduced = matrices.copy()
    reduced[:, diagonal, diagonal] = communality
    direction = np.full(communality.shape, 1 / np.sqrt(n_items))
    improper_run = np.zeros(len(matrices), dtype=np.int64)
    active = np.arange(len(matrices))
    for _ in range(steps):
        product = np.einsum("gij,gj->gi", reduced[active], direction[active])
        value = np.einsum("gi,gi->g", direction[active], product)
        moved_direction = product / np.linalg.norm(product, axis=1, keepdims=True)
        updated = np.clip(value, 0, None)[:, None] * moved_direction ** 2
        moved = np.abs(updated - communality[active]).max(axis=1)
        direction[active] = moved_direction
        communality[active] = updated
        reduced[active[:, None], diagonal, diagonal] = updated
        # Groups improper for a while are left to the exact phase, which gives them up.
        improper_run[active] = np.where((updated >= 1).any(axis=1), improper_run[active] + 1, 0)
        active = active[(moved >= tolerance) & (improper_run[active] < IMPROPER_STEPS)]
        if not len(active):
            break
    return communality


#: Iterations a group may stay improper (a communality of 1 or more) before it is given up.
IMPROPER_STEPS = 100


def _eigen_phase(matrices: np.ndarray, communality: np.ndarray, tolerance: float,
                 max_iterations: int) -> np.ndarray:
    """Iterated principal axis with exact eigen decompositions, from `communality`.

    Groups that settle on a proper solution get their loadings; the others get NaN:
    those whose solution is improper (a communality of 1 or more, a Heywood case,
    common in small noisy groups), given up once improper for `IMPROPER_STEPS`
    iterations in a row (they otherwise wander until `max_iterations`, and a national
    run has many small sites), and any not settled by `max_iterations`.
    """
    n_items = matrices.shape[-1]
    diagonal = np.arange(n_items)
    loadings = np.zeros(matrices.shape[:2])
    settled = np.zeros(len(matrices), bool)
    improper_run = np.zeros(len(matrices), dtype=np.int64)
    active = np.arange(len(matrices))       # matrices still moving
    for _ in range(max_iterations):
        reduced = matrices[active].copy()
        reduced[:, diagonal, diagonal] = communality[active]
        values, vectors = np.linalg.eigh(reduced)
        loadings[active] = vectors[:, :, -1] * np.sqrt(np.clip(values[:, -1], 0, None))[:, None]
        updated = loadings[active] ** 2
        moved = np.abs(updated - communality[active]).max(axis=1)
        communality[active] = updated
        improper_run[active] = np.where((updated >= 1).any(axis=1), improper_run[active] + 1, 0)
        done = moved < tolerance
        settled[active[done]] = True
        active = active[~done & (improper_run[active] < IMPROPER_STEPS)]
        if not len(active):
            break
    loadings[~settled | (loadings ** 2 >= 1).any(axis=1)] = np.nan
    # Eigenvectors have an arbitrary sign: report loadings mostly positive.
    return loadings * np.where(loadings.sum(axis=1, keepdims=True) < 0, -1.0, 1.0)


def omega_total_batch(corr: np.ndarray) -> np.ndarray:
    """Omega total of many correlation matrices (groups, n_items, n_items) at once."""
    loadings = one_factor_loadings(corr)
    uniquenesses = 1 - loadings ** 2
    total = np.asarray(corr).sum(axis=(1, 2))
    # A group whose items do not vary has no correlations (a zero sum): no omega, not a
    # division warning on the user's screen.
    with np.errstate(divide="ignore", invalid="ignore"):
        omega = 1 - uniquenesses.sum(axis=1) / total
    return np.where(total == 0, np.nan, omega)
