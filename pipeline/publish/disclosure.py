"""Which cells may be published: primary and complementary suppression.

Rule 1 (primary): a cell with fewer than `min_group_size` respondents is not shown.

Rule 2 (complementary): a reader who knows how cells add up must not be able to work
out a hidden cell, or a union of hidden cells, of fewer than `min_group_size`
respondents. Cells add up along *equations* (see `pipeline.publish.cells`):

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
`pipeline.publish.verify`.

Two smaller tables carry counts of their own, with the same rule:

- staff headcounts (`suppress_headcounts`): groups of 1 to k-1 staff are pooled into
  one row per site, with the smallest other groups while the pool is below k, so that
  a site's rows still add up to its headcount (response rates stay right) and no
  group below k is named;
- data-quality flag counts (`suppress_flag_counts`): the fewest counts are hidden such
  that no difference of shown counts (flagged - speeding, ...) comes to 1 to k-1.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from pipeline.publish.cells import ALL, KEY_ORDER
from pipeline.publish.verify import POOLED_STAFF_GROUPS, flag_count_leaks

#: Reluctance to hide a unit's total (added to 0 site, 1 peer group, 2 all sites).
TOTAL = 4

KEY = list(KEY_ORDER)


@dataclass(frozen=True)
class Equations:
    """Parent-equals-sum-of-children relations between rows of a cell frame."""

    parent: np.ndarray        # parent row index of each equation
    eq_of: np.ndarray         # equation of each membership
    child: np.ndarray         # child row index of each membership

    @property
    def count(self) -> int:
        return len(self.parent)

    def restricted_to(self, cells: np.ndarray) -> tuple[Equations, np.ndarray]:
        """The equations among `cells` (a boolean mask that takes whole blocks), renumbered
        0.. in their original order, and the original row of each renumbered cell."""
        rows = np.flatnonzero(cells)
        if len(rows) == len(cells):
            return self, rows
        local = np.full(len(cells), -1, dtype=np.int64)
        local[rows] = np.arange(len(rows))
        keep = cells[self.parent]
        local_eq = np.full(self.count, -1, dtype=np.int64)
        local_eq[keep] = np.arange(int(keep.sum()))
        member = keep[self.eq_of]
        return Equations(parent=local[self.parent[keep]], eq_of=local_eq[self.eq_of[member]],
                         child=local[self.child[member]]), rows

    @cached_property
    def parts_by_cell(self) -> tuple[np.ndarray, np.ndarray]:
        """(memberships in which each cell is a part, grouped by cell; group offsets)."""
        order = np.argsort(self.child, kind="stable")
        cells = max(int(self.child.max(initial=-1)), int(self.parent.max(initial=-1))) + 1
        offsets = np.concatenate([[0], np.cumsum(np.bincount(self.child, minlength=cells))])
        return order, offsets.astype(np.int64)

    @cached_property
    def members_by_equation(self) -> tuple[np.ndarray, np.ndarray]:
        """(cells of each equation, parts then total, grouped by equation; group offsets)."""
        eq_all = np.concatenate([self.eq_of, np.arange(self.count)])
        cell_all = np.concatenate([self.child, self.parent])
        order = np.argsort(eq_all, kind="stable")
        offsets = np.concatenate([[0], np.cumsum(np.bincount(eq_all, minlength=self.count))])
        return cell_all[order], offsets.astype(np.int64)


class _KeyCodes:
    """Cell keys as single integers, so that finding a cell's parent is a sorted search.

    Each KEY column is numbered (`pd.factorize`, missing values get a number of their
    own as in a pandas index) and a key is the mixed-radix number of its column codes.
    `unit` and `peer_group` share one numbering because a site's peer group is the
    `unit` of its parent. This replaces pandas MultiIndex look-ups, which cost seconds
    on strings at national scale.
    """

    def __init__(self, rows: pd.DataFrame):
        unit_and_peer, units = pd.factorize(
            pd.concat([rows["unit"], rows["peer_group"]], ignore_index=True),
            use_na_sentinel=False)
        self.codes = {column: pd.factorize(rows[column], use_na_sentinel=False)
                      for column in KEY if column != "unit"}
        self.codes["unit"] = (unit_and_peer[:len(rows)], units)
        self.peer_group = unit_and_peer[len(rows):]
        self.radix = [max(len(self.codes[column][1]), 1) for column in KEY]
        if np.prod([float(r) for r in self.radix]) >= 2.0 ** 62:
            raise ValueError("too many distinct cell keys to number them in 64 bits")
        self.keys = self.combine({column: self.codes[column][0] for column in KEY})
        self.order = np.argsort(self.keys, kind="stable")
        self.sorted_keys = self.keys[self.order]
        if (np.diff(self.sorted_keys) == 0).any():
            raise ValueError("cells must be unique by " + ", ".join(KEY))

    def code(self, column: str, value) -> int:
        """Code of a value in a column's numbering, -1 if no cell has it."""
        found = np.flatnonzero(pd.Index(self.codes[column][1]) == value)
        return int(found[0]) if len(found) else -1

    def combine(self, codes: dict[str, np.ndarray]) -> np.ndarray:
        key = np.zeros(len(next(iter(codes.values()))), dtype=np.int64)
        for column, radix in zip(KEY, self.radix):
            key = key * radix + codes[column]
        return key

    def find(self, rows: np.ndarray, **fixed) -> tuple[np.ndarray, np.ndarray]:
        """(rows, found) for the given rows whose key, with `fixed` columns replaced
        (a code per row or one code for all), is the key of a cell `found`."""
        codes = {column: self.codes[column][0][rows] for column in KEY}
        ok = np.ones(len(rows), bool)
        for column, value in fixed.items():
            codes[column] = np.broadcast_to(value, len(rows))
            ok &= codes[column] >= 0
        wanted = self.combine(codes)
        at = np.minimum(np.searchsorted(self.sorted_keys, wanted), len(self.keys) - 1)
        found = self.order[at]
        ok &= self.keys[found] == wanted
        return rows[ok], found[ok]


def cell_equations(cells: pd.DataFrame) -> Equations:
    """Every additive relation among the cells (rows indexed 0..len-1)."""
    rows = cells.reset_index(drop=True)
    codes = _KeyCodes(rows)
    all_ = {"breakdown": codes.code("breakdown", ALL), "grp": codes.code("grp", ALL)}
    level = codes.codes["level"][0]
    national = {"level": codes.code("level", "national"), "unit": codes.code("unit", "national")}

    # Each relation: (children, their parents, a tag splitting one parent's equations:
    # a unit total has one equation per attribute).
    relations = []
    children, parents = codes.find(
        np.flatnonzero(codes.codes["breakdown"][0] != all_["breakdown"]), **all_)
    relations.append((children, parents, codes.codes["breakdown"][0][children]))
    sites = np.flatnonzero(level == codes.code("level", "site"))
    relations.append((*codes.find(sites, level=codes.code("level", "peer"),
                                  unit=codes.peer_group[sites]), None))
    relations.append((*codes.find(sites, **national), None))
    peers = np.flatnonzero(level == codes.code("level", "peer"))
    relations.append((*codes.find(peers, **national), None))

    parent_list, child_list, eq_list = [], [], []
    next_eq = 0
    for children, parents, tag in relations:
        tag = np.zeros_like(parents) if tag is None else tag.astype(np.int64)
        # Equations numbered in (parent, tag) order: one per distinct pair.
        pair = parents * (int(tag.max(initial=0)) + 1) + tag
        pairs, eq_local = np.unique(pair, return_inverse=True)
        first = np.zeros(len(pairs), dtype=np.int64)
        first[eq_local] = parents
        parent_list.append(first)
        eq_list.append(eq_local.ravel() + next_eq)
        child_list.append(children)
        next_eq += len(pairs)
    return Equations(parent=np.concatenate(parent_list), eq_of=np.concatenate(eq_list),
                     child=np.concatenate(child_list))


def _blocks(eqs: Equations, cell_count: int) -> np.ndarray:
    """Block number of each cell: cells tied together by equations share a block."""
    tie = coo_matrix((np.ones(len(eqs.child)), (eqs.child, eqs.parent[eqs.eq_of])),
                     shape=(cell_count, cell_count))
    return connected_components(tie, directed=False)[1]


def _known_by_subtraction(eqs: Equations, shown: np.ndarray, hidden_parts: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cells a reader knows (shown, or recovered by chains of subtraction), for each
    recovered cell the equation that gave it away (-1 for shown or unknown cells), and
    the memberships (positions in `eqs.child`) whose part is still unknown.

    Each step works on the memberships with an unknown part only (a few percent of all
    at national scale), which shrink as parts become known; `hidden_parts` lists, in
    order, the memberships whose part is not shown.
    """
    known = shown.copy()
    revealed_by = np.full(len(shown), -1, dtype=np.int64)
    unknown = hidden_parts
    while True:
        unknown = unknown[~known[eqs.child[unknown]]]
        unknown_eq = eqs.eq_of[unknown]
        unknown_children = np.bincount(unknown_eq, minlength=eqs.count)
        parent_known = known[eqs.parent]
        # A total with exactly one unknown part reveals that part.
        solvable = parent_known & (unknown_children == 1)
        reveal_child = unknown[solvable[unknown_eq]]
        # A total whose parts are all known is revealed too.
        reveal_parent = np.flatnonzero(~parent_known & (unknown_children == 0))
        if not len(reveal_child) and not len(reveal_parent):
            return known, revealed_by, unknown
        known[eqs.child[reveal_child]] = True
        revealed_by[eqs.child[reveal_child]] = eqs.eq_of[reveal_child]
        known[eqs.parent[reveal_parent]] = True
        revealed_by[eqs.parent[reveal_parent]] = reveal_parent


def suppress_small_cells(cells: pd.DataFrame, min_group_size: int,
                         max_rounds: int = 500) -> pd.DataFrame:
    """`cells` with `suppressed` (bool) and `suppression` ('' | 'primary' | 'complementary').

    `cells` needs the KEY columns, `peer_group` and the true `n` of every cell. Ties
    (equally reluctant, equally small candidates) go to the earlier row, so the result
    depends on row order: pass the cells in a fixed order (`publish` sorts by KEY).
    """
    cells = cells.reset_index(drop=True)
    n = cells["n"].to_numpy(dtype=np.int64)
    small = (n > 0) & (n < min_group_size)
    primary = n < min_group_size
    hidden = primary.copy()
    eqs = cell_equations(cells)
    # Hide group cells before unit totals and sites before peer groups and all sites:
    # a total hidden takes a whole row of results away from a reader.
    level = cells["level"].to_numpy()
    reluctance = (TOTAL * (cells["breakdown"].to_numpy() == ALL)
                  + np.select([level == "peer", level == "national"], [1, 2], 0))
    # Equations never join different blocks of cells (waves and measures are never
    # summed together), so a block whose hidden cells did not change in a round gives
    # away nothing new in the next: a round need only replay the blocks that changed.
    # A block still leaking stays in play even if it did not change (see below), so
    # every block goes through exactly the rounds it would in a replay of all cells.
    block = _blocks(eqs, len(cells))
    active = np.ones(len(cells), bool)
    sub, ids = eqs, np.arange(len(cells))
    sub_hidden, sub_n, sub_small, sub_reluctance = hidden.copy(), n, small, reluctance
    hidden_part = None      # whether each membership's part is hidden, kept up to date
    for _ in range(max_rounds):
        if active.sum() <= len(ids) // 2:
            # Renumbering costs about a round; worth it once the blocks in play halve.
            sub, ids = eqs.restricted_to(active)
            sub_hidden, sub_n = hidden[ids], n[ids]
            sub_small, sub_reluctance = small[ids], reluctance[ids]
            hidden_part = None
        if hidden_part is None:
            hidden_part = sub_hidden[sub.child]
        known, revealed_by, unknown = _known_by_subtraction(sub, ~sub_hidden,
                                                            np.flatnonzero(hidden_part))
        # A small hidden cell recovered by a chain of subtractions...
        recovered = np.flatnonzero(sub_hidden & known & sub_small)
        # ...or a remainder (the sum of an equation's unknown parts) that is small.
        remainder = np.bincount(sub.eq_of[unknown], weights=sub_n[sub.child[unknown]],
                                minlength=sub.count)
        small_union = known[sub.parent] & (remainder > 0) & (remainder < min_group_size)
        leaking = small_union.copy()
        leaking[revealed_by[recovered]] = True
        if not leaking.any():
            break
        newly = _hide_one_more(sub, leaking, sub_hidden, sub_n, revealed_by, sub_reluctance,
                               totals=False)
        if not len(newly):
            newly = _hide_one_more(sub, leaking, sub_hidden, sub_n, revealed_by,
                                   sub_reluctance, totals=True)
        if not len(newly):
            raise RuntimeError("complementary suppression found no cell left to hide")
        newly = np.unique(newly)
        sub_hidden[newly] = True
        hidden[ids[newly]] = True
        parts_of_cell, offsets = sub.parts_by_cell
        lengths = offsets[newly + 1] - offsets[newly]
        hidden_part[parts_of_cell[np.repeat(offsets[newly] - np.cumsum(lengths) + lengths,
                                            lengths) + np.arange(lengths.sum())]] = True
        # Replay blocks that changed, and blocks still leaking that could not change
        # without hiding a total: they get totals in the round that nothing else grows.
        again = np.zeros(block.max() + 1, bool)
        again[block[ids[newly]]] = True
        again[block[ids[sub.parent[leaking]]]] = True
        active = again[block]
    else:  # pragma: no cover - the number of cells bounds the rounds
        raise RuntimeError("complementary suppression did not settle")
    out = cells.copy()
    out["suppressed"] = hidden
    out["suppression"] = np.where(primary, "primary", np.where(hidden, "complementary", ""))
    return out


def _hide_one_more(eqs: Equations, leaking: np.ndarray, hidden: np.ndarray,
                   n: np.ndarray, revealed_by: np.ndarray,
                   reluctance: np.ndarray, totals: bool) -> np.ndarray:
    """The cells to hide next (rows, possibly repeated; `hidden` is left alone): for each
    leaking equation one more shown cell with anyone in it, the least reluctant (a group
    before a total, a site before a peer group), then the smallest. An equation with
    no such cell leaks only because some of its hidden cells were recovered elsewhere:
    the equations that recovered them are treated as leaking instead. Unit totals are
    candidates only when `totals` is true (when nothing else would stop the leak)."""
    hidden = hidden.copy()
    chosen_all = []
    members, offsets = eqs.members_by_equation
    todo = np.flatnonzero(leaking)
    seen = np.zeros(eqs.count, bool)
    while len(todo):
        seen[todo] = True
        lengths = offsets[todo + 1] - offsets[todo]
        eq = np.repeat(todo, lengths)
        cell = members[np.repeat(offsets[todo] - np.cumsum(lengths) + lengths, lengths)
                       + np.arange(lengths.sum())]
        open_cells = ~hidden[cell] & (n[cell] > 0) & (totals | (reluctance[cell] < TOTAL))
        open_eq, open_cell = eq[open_cells], cell[open_cells]
        # Per equation the first cell in (reluctance, n, row) order; (eq, cell) pairs are
        # unique, so the order is total and the choice does not depend on the sort.
        order = np.lexsort((open_cell, n[open_cell], reluctance[open_cell], open_eq))
        open_eq, open_cell = open_eq[order], open_cell[order]
        first = np.ones(len(open_eq), bool)
        first[1:] = open_eq[1:] != open_eq[:-1]
        hidden[open_cell[first]] = True
        chosen_all.append(open_cell[first])
        stuck = np.ones(eqs.count, bool)
        stuck[open_eq[first]] = False
        upstream = revealed_by[cell[stuck[eq]]]
        todo = np.unique(upstream[upstream >= 0])
        todo = todo[~seen[todo]]
    return np.concatenate(chosen_all) if chosen_all else np.zeros(0, np.int64)


def suppress_headcounts(headcounts: pd.DataFrame, min_group_size: int) -> pd.DataFrame:
    """Headcounts safe to publish: site_code, staff_group, headcount, every one >= k.

    Per site, staff groups of 1 to k-1 are summed into one row, staff group
    POOLED_STAFF_GROUPS; while that pool is below k the smallest remaining group joins
    it (complementary: a lone small group would otherwise be the site's total minus the
    rest, were the total known). A site whose whole headcount is below k is left out.
    Groups of 0 are left out (they add nothing to the total).
    """
    out = []
    for site, rows in headcounts[headcounts["headcount"] > 0].groupby("site_code", sort=True):
        rows = rows.sort_values(["headcount", "staff_group"])
        pooled = rows["headcount"] < min_group_size
        while pooled.any() and not pooled.all() and (
                rows.loc[pooled, "headcount"].sum() < min_group_size):
            pooled[(~pooled).idxmax()] = True      # the smallest group not yet pooled
        pool = int(rows.loc[pooled, "headcount"].sum())
        if pool and pool < min_group_size:
            continue
        shown = rows.loc[~pooled, ["site_code", "staff_group", "headcount"]]
        out.append(shown.sort_values("staff_group"))
        if pool:
            out.append(pd.DataFrame({"site_code": [site], "staff_group": [POOLED_STAFF_GROUPS],
                                     "headcount": [pool]}))
    columns = {"site_code": "string", "staff_group": "string", "headcount": "int64"}
    if not out:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})
    return pd.concat(out, ignore_index=True).astype(columns)


#: data_quality's counts, the most wanted first: hiding prefers to keep these in order.
FLAG_COUNT_COLUMNS = ("n_respondents", "n_flagged", "n_speeding", "n_straight_lining",
                      "n_duplicate")


def suppress_flag_counts(quality: pd.DataFrame, analysed: np.ndarray, exclude_flagged: bool,
                         min_group_size: int) -> pd.DataFrame:
    """`quality` with flag counts set to NULL where showing them would give away fewer
    than k respondents (primary: the count itself; complementary: any difference of
    shown counts, with the site's `analysed` count of the cells, which a reader has).

    Each row keeps the largest set of counts that is safe, preferring counts earlier in
    FLAG_COUNT_COLUMNS; `pipeline.publish.verify.flag_count_leaks` judges what is safe.
    """
    out = quality.copy()
    if not len(out):
        return out
    analysed_name = "analysed_unflagged" if exclude_flagged else "analysed_everyone"
    counts = out[list(FLAG_COUNT_COLUMNS)].to_numpy(float)
    subsets = sorted((subset for size in range(len(FLAG_COUNT_COLUMNS), -1, -1)
                      for subset in itertools.combinations(range(len(FLAG_COUNT_COLUMNS)), size)),
                     key=lambda subset: (-len(subset), [i not in subset for i in
                                                        range(len(FLAG_COUNT_COLUMNS))]))
    chosen = np.full(len(out), -1)
    for number, subset in enumerate(subsets):
        todo = np.flatnonzero(chosen < 0)
        if not len(todo):
            break
        shown = counts[np.ix_(todo, list(subset))]
        safe = (shown >= min_group_size).all(axis=1)
        names = tuple(FLAG_COUNT_COLUMNS[i] for i in subset) + (analysed_name,)
        values = np.column_stack([shown, analysed[todo]])
        safe &= flag_count_leaks(names, values, min_group_size) == 0
        chosen[todo[safe]] = number
    for position, column in enumerate(FLAG_COUNT_COLUMNS):
        keep = np.array([position in subsets[c] if c >= 0 else False for c in chosen])
        out[column] = out[column].astype("Int64").mask(~keep)
    return out
