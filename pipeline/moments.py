"""Item covariance and correlation matrices per group, from sufficient statistics in DuckDB.

Reliability for every scale x site x wave at national scale must not pull respondents
into Python. One SQL statement per scale returns, for each group, the counts, sums and
cross-products of every item pair; Python turns those into small k x k matrices that
`pipeline.reliability` works on.

With ``nan_policy="pairwise"`` each pair uses the respondents who answered both items
(R: ``cov(x, use = "pairwise")`` / ``cor(x, use = "pairwise")``); the diagonal uses every
answer to the item. With ``"listwise"`` only respondents who answered every item count.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np

from pipeline.reliability import NAN_POLICIES, StatisticsError
from pipeline.validation_sql import quote
from survey.instrument import Instrument

#: Columns a caller may group by.
GROUPABLE = ("site_code", "wave", "instrument_version", "staff_group", "contract", "pmq",
             "gender", "age_band", "ethnicity")


@dataclass(frozen=True)
class GroupMoments:
    """The item matrices of one scale in one group."""

    key: tuple
    items: tuple[str, ...]
    n_rows: int            # respondents in the group (psych's n.obs for pairwise alpha)
    n_complete: int        # respondents who answered every item
    pair_n: np.ndarray     # respondents behind each covariance
    cov: np.ndarray
    corr: np.ndarray
    #: The scale score (mean of answered keyed items, when at least the scale's
    #: min_items are answered): respondents with one, their sum and sum of squares
    #: (listwise: of the complete respondents only).
    score_n: int = 0
    score_sum: float = 0.0
    score_sumsq: float = 0.0


def _keyed(instrument: Instrument, scale_id: str) -> list[str]:
    members = instrument.items_of(scale_id)
    rs = instrument.response_scale(members[0].response_scale)
    low, high = min(rs.codes), max(rs.codes)
    return [f"({low + high} - {quote(i.id)})::double" if i.reverse else f"{quote(i.id)}::double"
            for i in members]


def _moment_sums(con: duckdb.DuckDBPyConnection, instrument: Instrument, scale_id: str,
                 by: tuple[str, ...], nan_policy: str, source: str) -> tuple[dict, tuple]:
    """Per group: counts, sums and cross-products of every item pair (one SQL pass)."""
    if nan_policy not in NAN_POLICIES:
        raise StatisticsError(f"nan_policy {nan_policy!r} is not one of {NAN_POLICIES}")
    unknown = [b for b in by if b not in GROUPABLE]
    if unknown:
        raise StatisticsError(f"cannot group by {unknown}; choose from {GROUPABLE}")
    items = tuple(i.id for i in instrument.items_of(scale_id))
    keyed = _keyed(instrument, scale_id)
    k = len(items)
    x = [f"x{i}" for i in range(k)]
    # Per item: m = answered (0/1), z = answer or 0 and q = z^2, so that every pairwise
    # sum is a plain product sum (no FILTER clauses): n_ij = sum(m_i m_j), sum of x_i
    # over the pair = sum(z_i m_j), sum of x_i^2 over the pair = sum(q_i m_j), sum
    # x_i x_j = sum(z_i z_j). On the diagonal these are just sum(m_i), sum(z_i) and
    # sum(q_i), computed once and copied to the pair names below (about 40% fewer
    # products per row than six sums for every pair).
    prepared = []
    for expr, name in zip(keyed, x):
        prepared += [f"({expr} is not null)::double as m_{name}",
                     f"coalesce({expr}, 0) as z_{name}"]
    squared = [f"z_{v} * z_{v} as q_{v}" for v in x]
    # The scale score rides along (the same rule as `scale_score_sql`), so the ICC's
    # per-group score statistics need no scan of their own.
    answered = " + ".join(f"m_{v}" for v in x)
    score = (f"case when {answered} >= {instrument.scale(scale_id).min_items} "
             f"then ({' + '.join(f'z_{v}' for v in x)}) / ({answered}) end as score")
    complete = " and ".join(f"m_{v} = 1" for v in x)
    aggregates = ["count(*) as n_rows", f"count(*) filter (where {complete}) as n_complete",
                  "count(score)::double as score_n", "coalesce(sum(score), 0) as score_sum",
                  "coalesce(sum(score * score), 0) as score_sumsq"]
    for i in range(k):
        aggregates += [f"sum(m_{x[i]}) as n_{i}_{i}", f"sum(z_{x[i]}) as si_{i}_{i}",
                       f"sum(q_{x[i]}) as sii_{i}_{i}"]
        for j in range(i + 1, k):
            zi, zj, mi, mj, qi, qj = (f"z_{x[i]}", f"z_{x[j]}", f"m_{x[i]}", f"m_{x[j]}",
                                      f"q_{x[i]}", f"q_{x[j]}")
            aggregates += [
                f"sum({mi} * {mj}) as n_{i}_{j}",
                f"sum({zi} * {mj}) as si_{i}_{j}",
                f"sum({zj} * {mi}) as sj_{i}_{j}",
                f"sum({qi} * {mj}) as sii_{i}_{j}",
                f"sum({qj} * {mi}) as sjj_{i}_{j}",
                f"sum({zi} * {zj}) as sij_{i}_{j}",
            ]
    group_columns = ", ".join(quote(b) for b in by)
    where = f"where {complete}" if nan_policy == "listwise" else ""
    sql = f"""
        with keyed as (
            select *, {', '.join(squared)}, {score} from (
                select {group_columns + ', ' if by else ''}{', '.join(prepared)}
                from {quote(source)})
        )
        select {group_columns + ', ' if by else ''}{', '.join(aggregates)}
        from keyed {where}
        {'group by ' + group_columns if by else ''}
        {'order by ' + group_columns if by else ''}
    """
    sums = con.execute(sql).fetchnumpy()
    for i in range(k):
        sums[f"sj_{i}_{i}"] = sums[f"si_{i}_{i}"]
        sums[f"sjj_{i}_{i}"] = sums[f"sij_{i}_{i}"] = sums[f"sii_{i}_{i}"]
    return sums, items


def scale_moments(con: duckdb.DuckDBPyConnection, instrument: Instrument, scale_id: str,
                  by: tuple[str, ...] = ("site_code", "wave"), nan_policy: str = "pairwise",
                  source: str = "responses") -> list[GroupMoments]:
    """Covariance and correlation matrices of a scale's (reverse-keyed) items per group.

    `source` is a table or view of respondents with item columns (e.g. responses
    restricted to those not flagged by the data-quality step).
    """
    sums, items = _moment_sums(con, instrument, scale_id, by, nan_policy, source)
    return _matrices(sums, by, items, nan_policy)


def moments_at_levels(con: duckdb.DuckDBPyConnection, instrument: Instrument, scale_id: str,
                      levels: tuple[tuple[str, ...], ...],
                      source: str = "responses") -> dict[tuple[str, ...], list[GroupMoments]]:
    """Pairwise matrices at several nested levels from one scan at the finest level.

    Counts and sums add up across groups, so e.g. site x wave statistics summed over
    sites give the wave's, and over everything the overall ones: one SQL statement
    serves every level. Each level must be a subset of the finest (the longest).
    """
    finest = max(levels, key=len)
    if any(not set(level) <= set(finest) for level in levels):
        raise StatisticsError(f"levels {levels} must nest inside {finest}")
    sums, items = _moment_sums(con, instrument, scale_id, finest, "pairwise", source)
    rows = len(sums["n_rows"])
    keys = [tuple(sums[b][r] for b in finest) for r in range(rows)]
    result = {}
    for level in levels:
        coarse = [tuple(key[finest.index(b)] for b in level) for key in keys]
        order = sorted(set(coarse))
        position = {key: i for i, key in enumerate(order)}
        index = np.array([position[key] for key in coarse], dtype=int)
        summed = {name: np.bincount(index, weights=np.asarray(values, dtype=float),
                                    minlength=len(order))
                  for name, values in sums.items() if name not in finest}
        for i, b in enumerate(level):
            summed[b] = np.array([key[i] for key in order], dtype=object)
        result[level] = _matrices(summed, level, items, "pairwise")
    return result


def _matrices(columns: dict, by: tuple[str, ...], items: tuple[str, ...],
              nan_policy: str) -> list[GroupMoments]:
    k = len(items)
    groups = len(columns["n_rows"])

    def col(name: str) -> np.ndarray:
        return np.asarray(columns[name], dtype=float)

    n = np.zeros((groups, k, k))
    cov = np.full((groups, k, k), np.nan)
    corr = np.full((groups, k, k), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(k):
            for j in range(i, k):
                n_ij = col(f"n_{i}_{j}")
                si, sj = col(f"si_{i}_{j}"), col(f"sj_{i}_{j}")
                centred_ij = col(f"sij_{i}_{j}") - si * sj / n_ij
                centred_ii = col(f"sii_{i}_{j}") - si * si / n_ij
                centred_jj = col(f"sjj_{i}_{j}") - sj * sj / n_ij
                n[:, i, j] = n[:, j, i] = n_ij
                cov[:, i, j] = cov[:, j, i] = centred_ij / (n_ij - 1)
                # Pearson r on the pair's respondents, with their own means and variances.
                corr[:, i, j] = corr[:, j, i] = centred_ij / np.sqrt(centred_ii * centred_jj)
    result = []
    for g in range(groups):
        key = tuple(columns[b][g].item() if hasattr(columns[b][g], "item") else columns[b][g]
                    for b in by)
        result.append(GroupMoments(key, items, int(columns["n_rows"][g]),
                                   int(columns["n_complete"][g]), n[g], cov[g], corr[g],
                                   int(columns["score_n"][g]),
                                   float(columns["score_sum"][g]),
                                   float(columns["score_sumsq"][g])))
    return result
