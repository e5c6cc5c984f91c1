"""Structure and validity: KMO, Bartlett, parallel analysis, EFA, CFA with fit, CR, AVE, HTMT.

Functions take a DataFrame of (reverse-keyed) item responses and return frozen results.
The CFA is fitted by semopy (maximum likelihood, its chi-square, CFI and TLI match
lavaan's); what semopy lacks or computes differently is done here to the published
formulas: RMSEA with N (as lavaan) and its 90% interval, SRMR, standardised loadings,
composite reliability, AVE and HTMT.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats

from pipeline.reliability import StatisticsError

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
    In R: ``psych::fa.parallel(x, fa = "pc")`` (random, so equal in distribution only).

    The random correlation matrices are drawn without drawing the data: the scatter
    matrix of n independent standard normal rows is Wishart(n - 1, I), sampled directly
    by Bartlett's (1933) decomposition, and its correlation matrix has exactly the
    distribution of ``np.corrcoef`` of such rows. That costs O(p^3) a draw instead of
    O(n p^2): at 20,000 rows and 44 items, seconds become milliseconds.
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


def _model_description(structure: dict[str, list[str]]) -> str:
    return "\n".join(f"{factor} =~ {' + '.join(items)}" for factor, items in structure.items())


def cfa(data: pd.DataFrame, structure: dict[str, list[str]]) -> CfaResult:
    """Confirmatory factor analysis of `structure` (factor -> items), ML, listwise.

    chi2, CFI and TLI from semopy (equal to lavaan's); RMSEA = sqrt(max(chi2 - df, 0) /
    (df N)) with its 90% interval; SRMR = sqrt(mean over i <= j of
    ((s_ij - sigma_ij) / sqrt(s_ii s_jj))^2) with S the ML covariance. Composite
    reliability CR = (sum l)^2 phi / (1' S_f 1) and AVE = sum(l^2) phi / trace(S_f), with
    l the loadings, phi the factor variance and S_f the observed covariance of the
    factor's items (Fornell & Larcker 1981; semTools' obs.var = TRUE). In R:
    ``lavaan::cfa(model, x)``, ``fitMeasures(...)``, ``standardizedSolution(...)``,
    ``semTools::compRelSEM(fit)``, ``semTools::AVE(fit)``.
    """
    import semopy

    columns = [item for items in structure.values() for item in items]
    x = data[columns].astype(float).dropna()
    n = len(x)
    model = semopy.Model(_model_description(structure))
    model.fit(x)
    fit = semopy.calc_stats(model).T["Value"]
    chi_square, df = float(fit["chi2"]), int(fit["DoF"])
    sample = np.cov(x.to_numpy(), rowvar=False, bias=True)
    implied_all, names = model.calc_sigma()[0], model.vars["observed"]
    order = [names.index(c) for c in columns]
    implied = implied_all[np.ix_(order, order)]
    scale = np.sqrt(np.outer(np.diag(sample), np.diag(sample)))
    lower = np.tril_indices(len(columns))
    srmr = float(np.sqrt(np.mean(((sample - implied) / scale)[lower] ** 2)))

    estimates = model.inspect(std_est=True)
    loadings: dict[str, dict[str, float]] = {}
    for factor, items in structure.items():
        rows = estimates[(estimates["op"] == "~") & (estimates["rval"] == factor)]
        by_item = dict(zip(rows["lval"], rows["Est. Std"].astype(float)))
        loadings[factor] = {item: float(by_item[item]) for item in items}
    raw = model.inspect()
    cr, ave = {}, {}
    for factor, items in structure.items():
        rows = raw[(raw["op"] == "~") & (raw["rval"] == factor)]
        lam = np.array([float(dict(zip(rows["lval"], rows["Estimate"]))[i]) for i in items])
        phi = float(raw[(raw["op"] == "~~") & (raw["lval"] == factor) &
                        (raw["rval"] == factor)]["Estimate"].iloc[0])
        block = [columns.index(i) for i in items]
        observed = sample[np.ix_(block, block)]
        # semTools' defaults (obs.var = TRUE): the denominators are observed variances.
        cr[factor] = float(lam.sum() ** 2 * phi / observed.sum())
        ave[factor] = float((lam ** 2).sum() * phi / np.trace(observed))
    return CfaResult(
        n=n, chi_square=chi_square, df=df, p_value=float(stats.chi2.sf(chi_square, df)),
        cfi=float(fit["CFI"]), tli=float(fit["TLI"]),
        rmsea=float(np.sqrt(max(chi_square - df, 0) / (df * n))),
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
    corr = data[columns].astype(float).dropna().corr().abs()
    factors = list(structure)

    def mean(values: np.ndarray) -> float:
        return float(np.exp(np.log(values).mean()) if geometric else values.mean())

    def within(items: list[str]) -> float:
        block = corr.loc[items, items].to_numpy()
        return mean(block[np.triu_indices(len(items), 1)])

    result = pd.DataFrame(1.0, index=factors, columns=factors)
    for a in factors:
        for b in factors:
            if a != b:
                between = mean(corr.loc[structure[a], structure[b]].to_numpy().ravel())
                result.loc[a, b] = between / np.sqrt(within(structure[a]) * within(structure[b]))
    return result
