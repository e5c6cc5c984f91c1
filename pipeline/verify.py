"""The independent check of a published layer: nothing small is shown or recoverable.

It reads the published file only, knows nothing of the respondents or of how
suppression chose its cells, and proves two properties, raising `DisclosureError`
with the offending cells if either fails:

1. **Threshold.** Every count shown anywhere in the published tables (any column
   named ``n`` or starting ``n_``) is at least the minimum group size, and every shown
   cell's n is.
2. **No recovery.** Treat each hidden cell's n as an unknown. Every additive relation
   between published cells (a unit's total is the sum of its groups for each
   attribute; a peer group is the sum of its sites; all sites are the sum of the peer
   groups and of the sites) is a linear equation. A hidden cell is *recoverable* when
   its unknown is fixed by the equations, i.e. when its unit vector lies in the row
   space of the equation matrix (found from the null space of each connected block
   of equations, so any combination of subtractions counts, not only chains; blocks
   larger than MAX_EXACT_BLOCK unknowns are attacked by chains of substitution). No
   recoverable hidden cell may hold 1 to k-1 respondents, and no equation may leave
   a remainder (the sum of its unrecoverable hidden parts) of 1 to k-1.

Values (means, % favourable) are recoverable exactly when counts are, because they
add up through the same equations (as n x mean), so checking counts suffices. Trend
rows must compare two shown cells, which the threshold check covers (their n columns).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from survey.errors import CultureError

#: Blocks of hidden cells up to this size are solved exactly (any combination of
#: equations); larger ones, which only arise when most cells are hidden, are attacked by
#: chains of substitution, the same attack the suppression step defends against.
MAX_EXACT_BLOCK = 600

CELL_KEY = ["wave", "level", "unit", "breakdown", "grp", "measure_kind", "measure"]


class DisclosureError(CultureError):
    """The published layer would show or give away a group below the threshold."""


@dataclass
class VerificationReport:
    """What the verifier looked at and what it found."""

    cells: int = 0
    hidden_cells: int = 0
    equations: int = 0
    largest_block: int = 0
    recoverable_hidden: int = 0
    blocks_by_chain: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_published(path: Path | str, min_group_size: int) -> VerificationReport:
    """Check the published file at `path`; raise DisclosureError listing any breach."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        report = VerificationReport()
        _check_counts(con, min_group_size, report)
        cells = con.execute(
            "select wave, level, unit, peer_group, breakdown, grp, measure_kind, measure, n, "
            "suppressed from cells").df()
    finally:
        con.close()
    report.cells = len(cells)
    report.hidden_cells = int(cells["suppressed"].sum())
    shown_small = cells[~cells["suppressed"] & (cells["n"] < min_group_size)]
    for row in shown_small.head(20).itertuples():
        report.problems.append(f"shown cell below {min_group_size}: {_describe(row)} n={row.n}")
    _check_recovery(cells, min_group_size, report)
    if report.problems:
        raise DisclosureError(
            f"the published layer breaks disclosure control ({len(report.problems)} "
            f"problem(s)); first: " + "; ".join(report.problems[:5]))
    return report


def _check_counts(con, k: int, report: VerificationReport) -> None:
    columns = con.execute(
        "select table_name, column_name from information_schema.columns "
        "where (column_name = 'n' or column_name like 'n\\_%' escape '\\') "
        "and data_type in ('BIGINT', 'INTEGER', 'HUGEINT', 'DOUBLE', 'UBIGINT')").fetchall()
    for table, column in columns:
        bad = con.execute(f'select count(*) from "{table}" where "{column}" < ?', [k]).fetchall()
        if bad[0][0]:
            report.problems.append(f"table {table}: {bad[0][0]} row(s) with {column} below {k}")


def _describe(row) -> str:
    return (f"wave {row.wave} {row.level} {row.unit} {row.breakdown}={row.grp} "
            f"{row.measure_kind} {row.measure}")


def _relations(cells: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(equation id, cell row, coefficient) triples: each parent -1, each part +1."""
    position = pd.Series(np.arange(len(cells)), index=pd.MultiIndex.from_frame(cells[CELL_KEY]))
    eq_rows, cell_rows, coefs = [], [], []
    next_eq = 0

    def add(parts: pd.DataFrame, parent_keys: pd.DataFrame, split: list[str]) -> None:
        nonlocal next_eq
        parent = position.reindex(pd.MultiIndex.from_frame(parent_keys[CELL_KEY])).to_numpy()
        keep = ~np.isnan(parent)
        parts, parent = parts[keep], parent[keep].astype(np.int64)
        ids = pd.DataFrame({"parent": parent}).join(
            parts[split].reset_index(drop=True)).pipe(
            lambda f: f.groupby(list(f.columns), sort=False).ngroup()).to_numpy()
        eq_rows.extend([ids + next_eq, np.unique(ids) + next_eq])
        parents_of_eq = pd.Series(parent).groupby(ids).first()
        cell_rows.extend([parts["row"].to_numpy(), parents_of_eq.to_numpy()])
        coefs.extend([np.ones(len(ids)), -np.ones(len(parents_of_eq))])
        next_eq += int(ids.max()) + 1 if len(ids) else 0

    rows = cells.assign(row=np.arange(len(cells)))
    groups = rows[rows["breakdown"] != "all"]
    add(groups, groups.assign(breakdown="all", grp="all"), ["breakdown"])
    sites = rows[rows["level"] == "site"]
    add(sites, sites.assign(level="peer", unit=sites["peer_group"]), [])
    add(sites, sites.assign(level="national", unit="national"), [])
    peers = rows[rows["level"] == "peer"]
    add(peers, peers.assign(level="national", unit="national"), [])
    return (np.concatenate(eq_rows).astype(np.int64), np.concatenate(cell_rows).astype(np.int64),
            np.concatenate(coefs))


def _check_recovery(cells: pd.DataFrame, k: int, report: VerificationReport) -> None:
    eq, cell, coef = _relations(cells)
    report.equations = int(eq.max()) + 1 if len(eq) else 0
    hidden = cells["suppressed"].to_numpy()
    n = np.nan_to_num(cells["n"].to_numpy(dtype=float))
    # Move shown cells to the right-hand side: sum(coef * x_hidden) = -sum(coef * n_shown).
    rhs = -np.bincount(eq, weights=np.where(hidden[cell], 0.0, coef * n[cell]),
                       minlength=report.equations)
    unknown_index = np.full(len(cells), -1)
    unknown_cells = np.flatnonzero(hidden)
    unknown_index[unknown_cells] = np.arange(len(unknown_cells))
    on_unknown = hidden[cell]
    a = coo_matrix((coef[on_unknown], (eq[on_unknown], unknown_index[cell[on_unknown]])),
                   shape=(report.equations, len(unknown_cells))).tocsr()
    if not len(unknown_cells):
        return
    # Blocks of unknowns tied together by equations are solved separately.
    n_blocks, block = connected_components((a.T @ a).tocsr(), directed=False)
    values = np.full(len(unknown_cells), np.nan)
    # Group the nonzeros by block once, then solve block by block on small pieces.
    coo = a.tocoo()
    entry_block = block[coo.col]
    by_block = np.argsort(entry_block, kind="stable")
    cuts = np.searchsorted(entry_block[by_block], np.arange(n_blocks + 1))
    members_of = np.argsort(block, kind="stable")
    member_cuts = np.searchsorted(block[members_of], np.arange(n_blocks + 1))
    for b in range(n_blocks):
        entries = by_block[cuts[b]:cuts[b + 1]]
        if not len(entries):
            continue
        members = members_of[member_cuts[b]:member_cuts[b + 1]]
        rows_used, local_row = np.unique(coo.row[entries], return_inverse=True)
        local_col = np.searchsorted(members, coo.col[entries])
        sub = coo_matrix((coo.data[entries], (local_row.ravel(), local_col)),
                         shape=(len(rows_used), len(members)))
        report.largest_block = max(report.largest_block, len(members))
        if len(members) <= MAX_EXACT_BLOCK:
            values[members] = _determined_values(sub.toarray(), rhs[rows_used])
        else:
            report.blocks_by_chain += 1
            values[members] = _chain_values(sub.tocsr(), rhs[rows_used])
    recoverable = ~np.isnan(values)
    report.recoverable_hidden = int(recoverable.sum())
    leaked = recoverable & (np.round(values) >= 1) & (np.round(values) < k)
    for j in np.flatnonzero(leaked)[:20]:
        row = cells.iloc[unknown_cells[j]]
        report.problems.append(f"hidden cell recoverable: {_describe(row)} n={values[j]:.0f}")
    # Remainders: in each equation, what the unrecoverable hidden parts add up to.
    known_part = a @ np.where(recoverable, values, 0.0)
    unrecoverable = a.multiply((~recoverable).astype(float)[None, :]).tocsr()
    has_parent_unknown = np.asarray((unrecoverable.minimum(0)).sum(axis=1)).ravel() < 0
    remainder = rhs - known_part
    small = (~has_parent_unknown & (np.round(remainder) >= 1) & (np.round(remainder) < k)
             & (unrecoverable.getnnz(axis=1) > 0))
    for e in np.flatnonzero(small)[:20]:
        report.problems.append(f"equation {e}: hidden parts add up to {remainder[e]:.0f}")


def _chain_values(a, b: np.ndarray) -> np.ndarray:
    """Values fixed by repeated substitution (an equation with one unknown left gives it),
    NaN for the rest: the attack a reader makes by hand, for blocks too large to solve."""
    values = np.full(a.shape[1], np.nan)
    known = np.zeros(a.shape[1], bool)
    pattern = (a != 0).astype(np.int64)
    while True:
        unknown_left = pattern @ (~known).astype(np.int64)
        rows = np.flatnonzero(unknown_left == 1)
        if not len(rows):
            return values
        partial = a[rows] @ np.where(known, values, 0.0)
        sub = a[rows].multiply((~known).astype(float)[None, :]).tocoo()
        values[sub.col] = (b[rows][sub.row] - partial[sub.row]) / sub.data
        known[sub.col] = True


def _determined_values(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Values of the unknowns fixed by a x = b (NaN where the equations leave freedom)."""
    u, s, vt = np.linalg.svd(a, full_matrices=True)
    tol = max(a.shape) * np.finfo(float).eps * (s[0] if len(s) else 0.0) * 10
    rank = int((s > tol).sum())
    null = vt[rank:].T                       # columns span the null space
    solution = vt[:rank].T @ ((u[:, :rank].T @ b) / s[:rank])
    free = np.linalg.norm(null, axis=1) > 1e-8 if null.size else np.zeros(a.shape[1], bool)
    return np.where(free, np.nan, solution)
