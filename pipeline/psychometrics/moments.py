"""Item covariance and correlation matrices per group, from sufficient statistics in DuckDB.

Reliability for every scale x site x wave at national scale must not pull respondents
into Python. One SQL statement per scale returns, for each group, the counts, sums and
cross-products of every item pair; Python turns those into small k x k matrices that
`stats.reliability` works on.

With ``nan_policy="pairwise"`` each pair uses the respondents who answered both items
(R: ``cov(x, use = "pairwise")`` / ``cor(x, use = "pairwise")``); the diagonal uses every
answer to the item. With ``"listwise"`` only respondents who answered every item count.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import repeat

import duckdb
import numpy as np
import pandas as pd

from stats.reliability import NAN_POLICIES, StatisticsError
from pipeline.scoring import keyed_item_sql
from pipeline.sql_templates import quote
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
    """The scale's answers after reverse-keying, as scoring defines it, one SQL each."""
    return [f"{keyed_item_sql(instrument, i)}::double" for i in instrument.items_of(scale_id)]


@dataclass(frozen=True)
class PatternSums:
    """What one scan of a scale returns (`pattern_sums`): per group and missingness
    pattern, the count, item sums and cross-products. Plain arrays: turning them into
    matrices (`levels_from_patterns`) needs no store, so it can run in another thread."""

    rows: dict
    by: tuple[str, ...]
    items: tuple[str, ...]
    min_items: int


def _moment_sums(con: duckdb.DuckDBPyConnection, instrument: Instrument, scale_id: str,
                 by: tuple[str, ...], nan_policy: str, source: str) -> tuple[dict, tuple]:
    """Per group: counts, sums and cross-products of every item pair (one SQL pass)."""
    raw = pattern_sums(con, instrument, scale_id, by, nan_policy, source)
    return _expand_patterns(raw.rows, by, len(raw.items), raw.min_items), raw.items


def pattern_sums(con: duckdb.DuckDBPyConnection, instrument: Instrument, scale_id: str,
                 by: tuple[str, ...], nan_policy: str = "pairwise",
                 source: str = "responses") -> PatternSums:
    """The one SQL pass behind a scale's matrices.

    The scan groups respondents by group *and by which items they answered* (their
    missingness pattern, a small integer). Within one pattern every respondent answered
    the same items, so the count, the k item sums and the k(k+1)/2 cross-products say
    everything: the pairwise counts and pair-restricted sums follow from the pattern's
    bits, in numpy over some thousands of rows (`_expand_patterns`), rather than six
    pair-restricted products per item pair for every respondent in SQL. Sums of small
    integers are exact, so the matrices are the same either way.
    """
    if nan_policy not in NAN_POLICIES:
        raise StatisticsError(f"nan_policy {nan_policy!r} is not one of {NAN_POLICIES}")
    unknown = [b for b in by if b not in GROUPABLE]
    if unknown:
        raise StatisticsError(f"cannot group by {unknown}; choose from {GROUPABLE}")
    items = tuple(i.id for i in instrument.items_of(scale_id))
    keyed = _keyed(instrument, scale_id)
    k = len(items)
    pattern = " + ".join(f"({expr} is not null)::integer * {1 << i}"
                         for i, expr in enumerate(keyed))
    values = [f"coalesce({expr}, 0) as z{i}" for i, expr in enumerate(keyed)]
    aggregates = ["count(*)::double as n"] + [f"sum(z{i}) as s{i}" for i in range(k)]
    aggregates += [f"sum(z{i} * z{j}) as p{i}_{j}" for i in range(k) for j in range(i, k)]
    keys = [quote(b) for b in by]
    where = f"where pattern = {(1 << k) - 1}" if nan_policy == "listwise" else ""
    sql = f"""
        select {', '.join(keys + ['pattern'] + aggregates)}
        from (select {', '.join(keys + [f'({pattern}) as pattern'] + values)}
              from {quote(source)}) {where}
        group by {', '.join(keys + ['pattern'])}
        order by {', '.join(keys + ['pattern'])}
    """
    return PatternSums(con.execute(sql).fetchnumpy(), tuple(by), items,
                       instrument.scale(scale_id).min_items)


def _plain(column) -> np.ndarray:
    """A fetched column with NULL as None (DuckDB hands back masked arrays)."""
    if isinstance(column, np.ma.MaskedArray):
        plain = np.asarray(column.data, dtype=object).copy()
        plain[np.ma.getmaskarray(column)] = None
        return plain
    return np.asarray(column)


def _expand_patterns(rows: dict, by: tuple[str, ...], k: int, min_items: int) -> dict:
    """Per-group pairwise sums from per-(group, pattern) sums (see `_moment_sums`).

    For items i, j and the respondents who answered both (m = 1 where answered, z the
    answer or 0): n_ij = sum(m_i m_j); si / sj = the sums of x_i / x_j over the pair;
    sii / sjj their sums of squares; sij = sum(x_i x_j). The scale score (the mean of
    answered items when at least `min_items` are) is constant in its formula within a
    pattern, so its count, sum and sum of squares follow from the same sums.
    """
    size = len(rows["n"])
    pattern = np.asarray(rows["pattern"], dtype=np.int64)
    count = np.asarray(rows["n"], dtype=float)
    m = ((pattern[:, None] >> np.arange(k)) & 1).astype(float)
    s = np.column_stack([np.asarray(rows[f"s{i}"], dtype=float) for i in range(k)]) \
        if size else np.zeros((0, k))

    def p(i: int, j: int) -> np.ndarray:
        return np.asarray(rows[f"p{min(i, j)}_{max(i, j)}"], dtype=float)

    # Rows come ordered by group, so each group is a run of rows.
    new_group = np.zeros(size, dtype=bool)
    new_group[:1] = True
    keys = {b: _plain(rows[b]) for b in by}
    for column in keys.values():
        new_group[1:] |= column[1:] != column[:-1]
    starts = np.flatnonzero(new_group)

    def total(values: np.ndarray) -> np.ndarray:
        return np.add.reduceat(values, starts) if size else np.zeros(0)

    answered = m.sum(axis=1)
    scored = answered >= min_items
    with np.errstate(divide="ignore", invalid="ignore"):
        row_sum = s.sum(axis=1)
        cross = sum(p(i, j) * (1 if i == j else 2) for i in range(k) for j in range(i, k))
        sums = {b: column[starts] for b, column in keys.items()}
        sums |= {"n_rows": total(count), "n_complete": total(count * (answered == k)),
                 "score_n": total(count * scored),
                 "score_sum": total(np.where(scored, row_sum / answered, 0.0)),
                 "score_sumsq": total(np.where(scored, cross / answered ** 2, 0.0))}
    for i in range(k):
        for j in range(i, k):
            sums[f"n_{i}_{j}"] = total(count * m[:, i] * m[:, j])
            sums[f"si_{i}_{j}"] = total(s[:, i] * m[:, j])
            sums[f"sj_{i}_{j}"] = total(s[:, j] * m[:, i])
            sums[f"sii_{i}_{j}"] = total(p(i, i) * m[:, j])
            sums[f"sjj_{i}_{j}"] = total(p(j, j) * m[:, i])
            sums[f"sij_{i}_{j}"] = total(p(i, j))
    return sums


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
    return levels_from_patterns(pattern_sums(con, instrument, scale_id, finest, "pairwise",
                                             source), levels)


def levels_from_patterns(raw: PatternSums, levels: tuple[tuple[str, ...], ...]
                         ) -> dict[tuple[str, ...], list[GroupMoments]]:
    """`moments_at_levels` from a scan already made (pairwise, grouped by the finest
    level); no store access."""
    finest = raw.by
    if any(not set(level) <= set(finest) for level in levels):
        raise StatisticsError(f"levels {levels} must nest inside {finest}")
    items = raw.items
    sums = _expand_patterns(raw.rows, finest, len(items), raw.min_items)
    # Each level's groups in key order, with every finest group's position among them.
    finest_keys = pd.DataFrame({b: sums[b] for b in finest})
    result = {}
    for level in levels:
        if level:
            index, order = pd.MultiIndex.from_frame(finest_keys[list(level)]).factorize(
                sort=True, use_na_sentinel=False)
        else:
            index, order = np.zeros(len(finest_keys), dtype=int), [()]
        summed = {name: np.bincount(index, weights=np.asarray(values, dtype=float),
                                    minlength=len(order))
                  for name, values in sums.items() if name not in finest}
        for i, b in enumerate(level):
            # (pandas turns a NULL key into NaN; a group of unstated answers is None.)
            summed[b] = np.array([None if pd.isna(key[i]) else key[i] for key in order],
                                 dtype=object)
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
    # Plain Python values for the keys and counts (tolist), read once per column.
    keys = zip(*(np.asarray(columns[b]).tolist() for b in by)) if by else repeat(())
    counts = zip(*(np.asarray(columns[name]).tolist() for name in (
        "n_rows", "n_complete", "score_n", "score_sum", "score_sumsq")))
    return [GroupMoments(tuple(key), items, int(n_rows), int(n_complete), n[g], cov[g],
                         corr[g], int(score_n), float(score_sum), float(score_sumsq))
            for g, key, (n_rows, n_complete, score_n, score_sum, score_sumsq)
            in zip(range(groups), keys, counts)]
