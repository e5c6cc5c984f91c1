"""Structure and validity: KMO, Bartlett, parallel analysis, EFA, CFA with fit, CR, AVE, HTMT.

Functions take a DataFrame of (reverse-keyed) item responses and return frozen results.
The CFA is our own maximum-likelihood fit with lavaan's parameterisation and fit
measures (chi-square with N, CFI, TLI, RMSEA with N and its 90% interval, SRMR,
standardised loadings), then composite reliability, AVE and HTMT to the published
formulas. (semopy matched lavaan's chi-square, CFI and TLI but not its RMSEA, had no SRMR
and was slow to import; it is kept only as a cross-check in the tests.)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats

from stats.reliability import StatisticsError

EFA_ROTATIONS = ("varimax", "promax", "oblimin", "quartimax", None)
EFA_METHODS = ("minres", "ml", "principal")


@dataclass(frozen=True)
class KmoResult:
    overall: float
    per_item: dict[str, float]


@dataclass(frozen=True)
class BartlettResult:
    chi_square: float
    df: int
    p_value: float


@dataclass(frozen=True)
class ParallelAnalysis:
    observed: tuple[float, ...]          # eigenvalues of the correlation matrix
    random_mean: tuple[float, ...]
    random_95th: tuple[float, ...]
    suggested_factors: int               # observed above the random 95th percentile


@dataclass(frozen=True)
class CfaResult:
    n: int
    chi_square: float
    df: int
    p_value: float
    cfi: float
    tli: float
    rmsea: float
    rmsea_ci: tuple[float, float]        # 90% interval
    srmr: float
    loadings: dict[str, dict[str, float]]  # standardised, factor -> item -> loading
    composite_reliability: dict[str, float]
    ave: dict[str, float]


def kmo(items: pd.DataFrame) -> KmoResult:
    """Kaiser-Meyer-Olkin sampling adequacy, overall and per item.

    KMO = sum r_ij^2 / (sum r_ij^2 + sum p_ij^2) over i != j, with p the partial
    correlations from the inverse correlation matrix (Kaiser 1970). Uses pairwise
    correlations, so missing values are allowed. In R: ``psych::KMO(cor(x))``.
    """
    corr = items.astype(float).corr().to_numpy()
    inverse = np.linalg.inv(corr)
    partial = -inverse / np.sqrt(np.outer(np.diag(inverse), np.diag(inverse)))
    np.fill_diagonal(partial, 0)
    r2 = corr ** 2
    np.fill_diagonal(r2, 0)
    p2 = partial ** 2
    per_item = r2.sum(axis=0) / (r2.sum(axis=0) + p2.sum(axis=0))
    overall = r2.sum() / (r2.sum() + p2.sum())
    return KmoResult(float(overall), dict(zip(items.columns, map(float, per_item))))


def bartlett_sphericity(items: pd.DataFrame, n: int | None = None) -> BartlettResult:
    """Bartlett's test that the correlation matrix is an identity matrix.

    chi2 = -(n - 1 - (2p + 5) / 6) ln|R|, df = p(p - 1) / 2 (Bartlett 1951).
    In R: ``psych::cortest.bartlett(cor(x), n)``.
    """
    corr = items.astype(float).corr().to_numpy()
    n = len(items) if n is None else n
    p = corr.shape[0]
    chi = -(n - 1 - (2 * p + 5) / 6) * np.linalg.slogdet(corr)[1]
    df = p * (p - 1) // 2
    return BartlettResult(float(chi), df, float(stats.chi2.sf(chi, df)))


def wishart_identity(rng: np.random.Generator, df: int, p: int) -> np.ndarray:
    """A draw from Wishart(df, I_p) by Bartlett's decomposition: L L' with L lower
    triangular, L_ii = sqrt(chi-square(df - i)) (i = 0..p-1), L_ij ~ N(0, 1) below."""
    lower = np.tril(rng.standard_normal((p, p)), -1)
    lower[np.diag_indices(p)] = np.sqrt(rng.chisquare(df - np.arange(p)))
    return lower @ lower.T


def parallel_analysis(items: pd.DataFrame, iterations: int = 100, seed: int = 0,
                      percentile: float = 95) -> ParallelAnalysis:
    """Horn's parallel analysis on principal-component eigenvalues.

    Eigenvalues of the observed correlation matrix are compared with those of normal
    random data of the same size; factors are retained while the observed eigenvalue
    exceeds the random `percentile` (Horn 1965; Glorfeld 1995). Seeded, so repeatable.
    Uses complete rows only (listwise). In R: ``psych::fa.parallel(na.omit(x), fa =
    "pc")`` (random, so equal in distribution only; on psych's bfi both suggest 5, while
    psych's default pairwise correlations suggest 6).

    The random correlation matrices are drawn without drawing the data: the scatter
    matrix of n independent standard normal rows is Wishart(n - 1, I), sampled directly
    by Bartlett's (1933) decomposition, and its correlation matrix has exactly the
    distribution of ``np.corrcoef`` of such rows. That costs O(p^3) a draw instead of
    O(n p^2), which matters when the rows (n, up to the structural sample) far outnumber
    the items (p).
    """
    data = items.astype(float).dropna()
    n, p = data.shape
    observed = np.sort(np.linalg.eigvalsh(data.corr().to_numpy()))[::-1]
    rng = np.random.default_rng(seed)
    simulated = np.empty((iterations, p))
    for run in range(iterations):
        scatter = wishart_identity(rng, n - 1, p)
        scale = 1 / np.sqrt(np.diag(scatter))
        corr = scatter * scale[:, None] * scale[None, :]
        simulated[run] = np.sort(np.linalg.eigvalsh(corr))[::-1]
    threshold = np.percentile(simulated, percentile, axis=0)
    above = observed > threshold
    suggested = int(np.argmin(above)) if not above.all() else p
    return ParallelAnalysis(tuple(observed), tuple(simulated.mean(axis=0)), tuple(threshold),
                            suggested)


def efa(items: pd.DataFrame, n_factors: int, rotation: str | None = "oblimin",
        method: str = "minres") -> pd.DataFrame:
    """Exploratory factor loadings (items x factors) from factor_analyzer.

    Rotations: varimax, promax, oblimin, quartimax or None; methods: minres, ml,
    principal. In R: ``psych::fa(x, nfactors, rotate, fm)``.
    """
    from factor_analyzer import FactorAnalyzer

    if rotation not in EFA_ROTATIONS:
        raise StatisticsError(f"rotation {rotation!r} is not one of {EFA_ROTATIONS}")
    if method not in EFA_METHODS:
        raise StatisticsError(f"method {method!r} is not one of {EFA_METHODS}")
    corr = items.astype(float).corr()
    model = FactorAnalyzer(n_factors=n_factors, rotation=rotation if n_factors > 1 else None,
                           method=method, is_corr_matrix=True)
    model.fit(corr.to_numpy())
    return pd.DataFrame(model.loadings_, index=items.columns,
                        columns=[f"factor{i + 1}" for i in range(n_factors)])


def rmsea_interval(chi_square: float, df: int, n: int, level: float = 0.90) -> tuple[float, float]:
    """RMSEA confidence interval from the noncentral chi-square (Browne & Cudeck 1993).

    The bounds solve P(X <= chi2 | df, lambda) = (1 + level) / 2 and (1 - level) / 2 for
    the noncentrality lambda; RMSEA = sqrt(lambda / (n df)), with n as lavaan uses it.
    """
    def bound(target: float) -> float:
        def gap(ncp: float) -> float:
            return stats.ncx2.cdf(chi_square, df, ncp) - target if ncp > 0 else \
                stats.chi2.cdf(chi_square, df) - target
        if gap(0) < 0:
            return 0.0
        upper = max(chi_square, 1.0)
        while gap(upper) > 0:
            upper *= 2
        return optimize.brentq(gap, 0, upper, xtol=1e-12)

    low = bound((1 + level) / 2)
    high = bound((1 - level) / 2)
    return float(np.sqrt(low / (n * df))), float(np.sqrt(high / (n * df)))


def _ml_problem(sample: np.ndarray, structure: dict[str, list[str]], columns: list[str]):
    """The ML discrepancy of a simple-structure CFA and its analytic gradient.

    Parameters (lavaan's defaults): each factor's first loading fixed to 1 (marker), the
    other loadings, the factor covariance matrix Phi (lower triangle) and the residual
    variances Theta free. Sigma = L Phi L' + Theta and
    F = log|Sigma| + tr(S Sigma^-1) - log|S| - p. With G = Sigma^-1 - Sigma^-1 S Sigma^-1:
    dF/dL = 2 G L Phi, dF/dPhi = L' G L (off-diagonals counted twice), dF/dTheta = diag G.
    """
    p, n_factors = len(columns), len(structure)
    rows, cols = [], []                      # positions of the free loadings in L
    marker = np.zeros((p, n_factors))
    for f, items in enumerate(structure.values()):
        marker[columns.index(items[0]), f] = 1.0
        for item in items[1:]:
            rows.append(columns.index(item))
            cols.append(f)
    rows, cols = np.array(rows, int), np.array(cols, int)
    low_r, low_c = np.tril_indices(n_factors)
    n_load, n_phi = len(rows), len(low_r)
    log_det_s = np.linalg.slogdet(sample)[1]
    diagonal = np.arange(p)

    def unpack(theta: np.ndarray):
        loadings = marker.copy()
        loadings[rows, cols] = theta[:n_load]
        phi = np.zeros((n_factors, n_factors))
        phi[low_r, low_c] = theta[n_load:n_load + n_phi]
        phi[low_c, low_r] = theta[n_load:n_load + n_phi]
        return loadings, phi, theta[n_load + n_phi:]

    def implied(theta: np.ndarray) -> np.ndarray:
        loadings, phi, unique = unpack(theta)
        sigma = loadings @ phi @ loadings.T
        sigma[diagonal, diagonal] += unique
        return sigma

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        loadings, phi, unique = unpack(theta)
        sigma = implied(theta)
        sign, log_det = np.linalg.slogdet(sigma)
        if sign <= 0:
            return 1e12, np.zeros_like(theta)
        inverse = np.linalg.inv(sigma)
        value = log_det + np.trace(sample @ inverse) - log_det_s - p
        g = inverse - inverse @ sample @ inverse
        d_load = 2 * g @ loadings @ phi
        d_phi = loadings.T @ g @ loadings
        d_phi = 2 * d_phi - np.diag(np.diag(d_phi))
        gradient = np.concatenate([d_load[rows, cols], d_phi[low_r, low_c], np.diag(g)])
        return float(value), gradient

    variances = np.diag(sample)
    start_phi = np.zeros((n_factors, n_factors))
    for f, items in enumerate(structure.values()):
        start_phi[f, f] = 0.5 * variances[columns.index(items[0])]
    start = np.concatenate([np.ones(n_load), start_phi[low_r, low_c], 0.5 * variances])
    bounds = ([(None, None)] * n_load
              + [(1e-6, None) if r == c else (None, None) for r, c in zip(low_r, low_c)]
              + [(1e-8, None)] * p)
    return objective, start, bounds, unpack, implied


def _baseline_chi_square(sample: np.ndarray, n: int) -> tuple[float, int]:
    """Independence model (variances only): N (sum log s_ii - log|S|) on p(p-1)/2 df."""
    p = len(sample)
    return (float(n * (np.log(np.diag(sample)).sum() - np.linalg.slogdet(sample)[1])),
            p * (p - 1) // 2)


def cfa(data: pd.DataFrame, structure: dict[str, list[str]]) -> CfaResult:
    """Confirmatory factor analysis of `structure` (factor -> items), ML, listwise.

    Fitted here by maximum likelihood on the ML covariance S (divisor N) with lavaan's
    parameterisation (see `_ml_problem`): chi2 = N F_min on p(p+1)/2 - q df;
    CFI = 1 - max(chi2 - df, 0) / max(chi2_b - df_b, chi2 - df, 0) and
    TLI = (chi2_b/df_b - chi2/df) / (chi2_b/df_b - 1) against the independence model;
    RMSEA = sqrt(max(chi2 - df, 0) / (df N)) with its 90% interval; SRMR = sqrt(mean over
    i <= j of ((s_ij - sigma_ij) / sqrt(s_ii s_jj))^2). Standardised loadings
    l_ij sqrt(phi_jj) / sqrt(sigma_ii) (lavaan's std.all). Composite reliability
    CR = (sum l)^2 phi / (1' S_f 1) and AVE = sum(l^2) phi / trace(S_f), with l the raw
    loadings, phi the factor variance and S_f the observed covariance of the factor's
    items (Fornell & Larcker 1981; semTools' obs.var = TRUE). In R:
    ``lavaan::cfa(model, x)``, ``fitMeasures(...)``, ``standardizedSolution(...)``,
    ``semTools::compRelSEM(fit)``, ``semTools::AVE(fit)``.
    """
    columns = [item for items in structure.values() for item in items]
    if len(set(columns)) != len(columns):
        raise StatisticsError("each item may belong to one factor only")
    if any(len(items) < 2 for items in structure.values()):
        raise StatisticsError("each factor needs at least two items")
    x = data[columns].astype(float).dropna().to_numpy()
    n, p = x.shape
    if n <= p:
        raise StatisticsError(f"CFA needs more complete responses ({n}) than items ({p})")
    sample = np.cov(x, rowvar=False, bias=True)
    if np.linalg.eigvalsh(sample)[0] <= 1e-12 * np.trace(sample):
        raise StatisticsError("the item covariance matrix is singular (an item is constant "
                              "or a linear combination of others)")
    objective, start, bounds, unpack, implied_of = _ml_problem(sample, structure, columns)
    result = optimize.minimize(objective, start, jac=True, method="L-BFGS-B", bounds=bounds,
                               options={"maxiter": 20_000, "maxfun": 100_000,
                                        "ftol": 1e-15, "gtol": 1e-10})
    value, gradient = objective(result.x)
    free = np.array([low is None or result.x[i] > low * 10
                     for i, (low, _) in enumerate(bounds)])
    if np.abs(gradient[free]).max(initial=0) > 1e-5:
        warnings.warn(f"CFA optimiser stopped with gradient {np.abs(gradient[free]).max():.1e}"
                      f" ({result.message})", RuntimeWarning, stacklevel=2)
    df = p * (p + 1) // 2 - len(start)
    chi_square = n * value
    base_chi, base_df = _baseline_chi_square(sample, n)
    excess = max(chi_square - df, 0.0)
    cfi = 1 - excess / max(base_chi - base_df, excess, 1e-300)
    tli = (base_chi / base_df - chi_square / df) / (base_chi / base_df - 1)

    loadings_raw, phi, _ = unpack(result.x)
    implied = implied_of(result.x)
    scale = np.sqrt(np.outer(np.diag(sample), np.diag(sample)))
    lower = np.tril_indices(p)
    srmr = float(np.sqrt(np.mean(((sample - implied) / scale)[lower] ** 2)))
    implied_sd = np.sqrt(np.diag(implied))
    loadings: dict[str, dict[str, float]] = {}
    cr, ave = {}, {}
    for f, (factor, items) in enumerate(structure.items()):
        block = [columns.index(i) for i in items]
        lam = loadings_raw[block, f]
        loadings[factor] = {item: float(lam[j] * np.sqrt(phi[f, f]) / implied_sd[block[j]])
                            for j, item in enumerate(items)}
        observed = sample[np.ix_(block, block)]
        # semTools' defaults (obs.var = TRUE): the denominators are observed variances.
        cr[factor] = float(lam.sum() ** 2 * phi[f, f] / observed.sum())
        ave[factor] = float((lam ** 2).sum() * phi[f, f] / np.trace(observed))
    return CfaResult(
        n=n, chi_square=float(chi_square), df=df, p_value=float(stats.chi2.sf(chi_square, df)),
        cfi=float(cfi), tli=float(tli),
        rmsea=float(np.sqrt(excess / (df * n))),
        rmsea_ci=rmsea_interval(chi_square, df, n), srmr=srmr,
        loadings=loadings, composite_reliability=cr, ave=ave)


def htmt(data: pd.DataFrame, structure: dict[str, list[str]],
         geometric: bool = True) -> pd.DataFrame:
    """Heterotrait-monotrait ratio of correlations between the factors of `structure`.

    HTMT_ab = mean |r| between items of a and b / sqrt(mean |r| within a x mean |r|
    within b), on listwise correlations (Henseler, Ringle & Sarstedt 2015). With
    `geometric` (the default, as semTools >= 0.5-6) the means are geometric: HTMT2
    (Roemer, Schuberth & Henseler 2021). In R: ``semTools::htmt(model, data)``.
    """
    columns = [item for items in structure.values() for item in items]
    corr = np.abs(np.corrcoef(data[columns].astype(float).dropna().to_numpy(), rowvar=False))
    factors = list(structure)
    blocks = {f: [columns.index(i) for i in items] for f, items in structure.items()}

    def mean(values: np.ndarray) -> float:
        return float(np.exp(np.log(values).mean()) if geometric else values.mean())

    within = {f: mean(corr[np.ix_(b, b)][np.triu_indices(len(b), 1)])
              for f, b in blocks.items()}
    result = pd.DataFrame(1.0, index=factors, columns=factors)
    for a in factors:
        for b in factors:
            if a != b:
                between = mean(corr[np.ix_(blocks[a], blocks[b])].ravel())
                result.loc[a, b] = between / np.sqrt(within[a] * within[b])
    return result
