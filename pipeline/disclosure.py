"""Which cells may be published: primary and complementary suppression.

Rule 1 (primary): a cell with fewer than `min_group_size` respondents is not shown.

Rule 2 (complementary): a reader who knows how cells add up must not be able to work
out a hidden cell, or a union of hidden cells, of fewer than `min_group_size`
respondents. Cells add up along *equations* (see `pipeline.cells`):

    unit total        = sum of its groups, for each attribute        (per site, peer, all)
    peer group cell   = sum of its sites' cells                      (per breakdown group)
    all-sites cell    = sum of the peer groups' cells = sum of the sites' cells

The reader's attack is repeated subtraction: in an equation whose total is known,
subtract every known part; what is left is the sum of the unknown parts. If one part
is unknown it is recovered, becomes known, and may open further equations (a chain).
This module plays that attack with the true counts and, wherever the remainder would
describe between 1 and `min_group_size - 1` respondents, hides one more cell: the
smallest shown part with anyone in it (or the total, if every part is hidden). It
repeats until no equation gives anything away. Waves are never summed in the
published layer, so there are no equations across waves.

Hiding only ever grows, so the loop ends. The independent check of the result,
including recovery by any linear combination of equations (not just chains), is
`pipeline.verify`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.cells import ALL

#: Reluctance to hide a unit's total (added to 0 site, 1 peer group, 2 all sites).
TOTAL = 4

KEY = ["wave", "level", "unit", "breakdown", "grp", "measure_kind", "measure"]


@dataclass(frozen=True)
class Equations:
    """Parent-equals-sum-of-children relations between rows of a cell frame."""

    parent: np.ndarray        # parent row index of each equation
    eq_of: np.ndarray         # equation of each membership
    child: np.ndarray         # child row index of each membership

    @property
    def count(self) -> int:
        return len(self.parent)


def cell_equations(cells: pd.DataFrame) -> Equations:
    """Every additive relation among the cells (rows indexed 0..len-1)."""
    rows = cells.reset_index(drop=True)
    index = pd.Series(np.arange(len(rows)), index=pd.MultiIndex.from_frame(rows[KEY]))

    def parents_of(children: pd.DataFrame, **fixed) -> tuple[np.ndarray, np.ndarray]:
        keys = children[KEY].copy()
        for column, value in fixed.items():
            keys[column] = value
        found = index.reindex(pd.MultiIndex.from_frame(keys)).to_numpy()
        ok = ~np.isnan(found)
        return children.index.to_numpy()[ok], found[ok].astype(np.int64)

    # Each relation: (children, their parents, a tag splitting one parent's equations:
    # a unit total has one equation per attribute).
    relations = []
    grouped = rows[rows["breakdown"] != ALL]
    children, parents = parents_of(grouped, breakdown=ALL, grp=ALL)
    tags = pd.factorize(rows["breakdown"])[0]
    relations.append((children, parents, tags[children]))
    sites = rows[rows["level"] == "site"]
    relations.append((*parents_of(sites, level="peer", unit=sites["peer_group"].to_numpy()), None))
    relations.append((*parents_of(sites, level="national", unit="national"), None))
    peers = rows[rows["level"] == "peer"]
    relations.append((*parents_of(peers, level="national", unit="national"), None))

    parent_list, child_list, eq_list = [], [], []
    next_eq = 0
    for children, parents, tag in relations:
        tag = np.zeros_like(parents) if tag is None else tag
        pairs, eq_local = np.unique(np.stack([parents, tag], axis=1), axis=0, return_inverse=True)
        parent_list.append(pairs[:, 0])
        eq_list.append(eq_local.ravel() + next_eq)
        child_list.append(children)
        next_eq += len(pairs)
    return Equations(parent=np.concatenate(parent_list), eq_of=np.concatenate(eq_list),
                     child=np.concatenate(child_list))


def _known_by_subtraction(eqs: Equations, shown: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cells a reader knows (shown, or recovered by chains of subtraction), and for each
    recovered cell the equation that gave it away (-1 for shown or unknown cells)."""
    known = shown.copy()
    revealed_by = np.full(len(shown), -1, dtype=np.int64)
    while True:
        unknown_child = ~known[eqs.child]
        unknown_children = np.bincount(eqs.eq_of, weights=unknown_child, minlength=eqs.count)
        parent_known = known[eqs.parent]
        # A total with exactly one unknown part reveals that part.
        solvable = parent_known & (unknown_children == 1)
        reveal_child = unknown_child & solvable[eqs.eq_of]
        # A total whose parts are all known is revealed too.
        reveal_parent = ~parent_known & (unknown_children == 0)
        if not reveal_child.any() and not reveal_parent.any():
            return known, revealed_by
        known[eqs.child[reveal_child]] = True
        revealed_by[eqs.child[reveal_child]] = eqs.eq_of[reveal_child]
        known[eqs.parent[reveal_parent]] = True
        revealed_by[eqs.parent[reveal_parent]] = np.flatnonzero(reveal_parent)


def suppress_small_cells(cells: pd.DataFrame, min_group_size: int,
                         max_rounds: int = 500) -> pd.DataFrame:
    """`cells` with `suppressed` (bool) and `suppression` ('' | 'primary' | 'complementary').

    `cells` needs the KEY columns, `peer_group` and the true `n` of every cell.
    """
    cells = cells.reset_index(drop=True)
    n = cells["n"].to_numpy(dtype=np.int64)
    small = (n > 0) & (n < min_group_size)
    primary = n < min_group_size
    hidden = primary.copy()
    eqs = cell_equations(cells)
    # Hide group cells before unit totals and sites before peer groups and all sites:
    # a total hidden takes a whole row of results away from a reader.
    reluctance = (TOTAL * (cells["breakdown"] == ALL).to_numpy()
                  + cells["level"].map({"site": 0, "peer": 1, "national": 2}).to_numpy())
    for _ in range(max_rounds):
        known, revealed_by = _known_by_subtraction(eqs, ~hidden)
        # A small hidden cell recovered by a chain of subtractions...
        recovered = np.flatnonzero(hidden & known & small)
        # ...or a remainder (the sum of an equation's unknown parts) that is small.
        remainder = np.bincount(eqs.eq_of, weights=np.where(~known[eqs.child], n[eqs.child], 0),
                                minlength=eqs.count)
        small_union = known[eqs.parent] & (remainder > 0) & (remainder < min_group_size)
        leaking = small_union.copy()
        leaking[revealed_by[recovered]] = True
        if not leaking.any():
            break
        grown = _hide_one_more(eqs, leaking, hidden, n, revealed_by, reluctance, totals=False)
        if grown.sum() == hidden.sum():
            grown = _hide_one_more(eqs, leaking, hidden, n, revealed_by, reluctance, totals=True)
        if grown.sum() == hidden.sum():
            raise RuntimeError("complementary suppression found no cell left to hide")
        hidden = grown
    else:  # pragma: no cover - the number of cells bounds the rounds
        raise RuntimeError("complementary suppression did not settle")
    out = cells.copy()
    out["suppressed"] = hidden
    out["suppression"] = np.where(primary, "primary", np.where(hidden, "complementary", ""))
    return out


def _hide_one_more(eqs: Equations, leaking: np.ndarray, hidden: np.ndarray,
                   n: np.ndarray, revealed_by: np.ndarray,
                   reluctance: np.ndarray, totals: bool) -> np.ndarray:
    """For each leaking equation hide one more shown cell with anyone in it: the least
    reluctant (a group before a total, a site before a peer group), then the smallest.
    An equation with
    no such cell leaks only because some of its hidden cells were recovered elsewhere:
    the equations that recovered them are treated as leaking instead. Unit totals are
    candidates only when `totals` is true (when nothing else would stop the leak)."""
    hidden = hidden.copy()
    members = pd.concat([
        pd.DataFrame({"eq": eqs.eq_of, "cell": eqs.child}),
        pd.DataFrame({"eq": np.arange(eqs.count), "cell": eqs.parent}),
    ])
    eq_all, cell_all = members["eq"].to_numpy(), members["cell"].to_numpy()
    todo, seen = np.flatnonzero(leaking), set()
    while len(todo):
        seen.update(todo.tolist())
        in_todo = np.isin(eq_all, todo)
        eq, cell = eq_all[in_todo], cell_all[in_todo]
        open_cells = ~hidden[cell] & (n[cell] > 0) & (totals | (reluctance[cell] < TOTAL))
        chosen = (pd.DataFrame({"eq": eq[open_cells], "cell": cell[open_cells],
                                "reluctance": reluctance[cell[open_cells]],
                                "n": n[cell[open_cells]]})
                  .sort_values(["eq", "reluctance", "n", "cell"]).drop_duplicates("eq"))
        hidden[chosen["cell"].to_numpy()] = True
        stuck = np.setdiff1d(todo, chosen["eq"].to_numpy())
        upstream = revealed_by[cell_all[np.isin(eq_all, stuck)]]
        todo = np.setdiff1d(np.unique(upstream[upstream >= 0]), np.fromiter(seen, np.int64))
    return hidden
