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
   space of the equation matrix (found from an orthonormal basis of the row space of
   each connected block of equations, by pivoted QR, so any combination of
   subtractions counts, not only chains; blocks larger than MAX_EXACT_BLOCK unknowns
   are attacked by chains of substitution). No
   recoverable hidden cell may hold 1 to k-1 respondents, and no equation may leave
   a remainder (the sum of its unrecoverable hidden parts) of 1 to k-1.

Values (means, % favourable) are recoverable exactly when counts are, because they
add up through the same equations (as n x mean), so checking counts suffices. Trend
rows must compare two shown cells, which the threshold check covers (their n columns).

Two tables hold counts outside the cells, and are proved on their own terms:

3. **Headcounts.** `site_headcounts` (staff in post, from HR figures) shows each
   (site, staff group) at most once with a headcount of at least k; staff groups
   smaller than that appear only inside the site's one `pooled` row, itself at least k.
   Nothing else publishes a headcount, so a site's rows add up to its total and no
   subtraction isolates a small group.
4. **Flag counts.** In `data_quality` a site's respondents fall into eight kinds by
   which of the three flags they carry; every count shown (respondents, each flag, any
   flag, and the site's `responses` cell, which counts everyone or, when flagged
   respondents are excluded, the unflagged) is a sum of kinds. No way of counting the
   kinds that the shown numbers fix (each kind 0 to 3 times: a respondent carries at
   most three flags), such as "flagged but not speeding" = flagged - speeding, may
   come to 1 to k-1.

5. **Question benchmarks.** Every row of `item_benchmarks` is a shown site item cell
   with that cell's n and % favourable; last year's value is the site's shown cell of
   the previous wave; the peer group's best and worst are shown cells of other sites.
   Its other figures are computed from those shown cells only.

6. **Answer distributions.** `item_answers` has the rows of the item cells of `cells`
   and hides exactly what they hide: a hidden cell's rows have no count and no
   percentage, and a shown cell's answer counts add up to its n. Option counts then add
   up across units as the n do, so the hidden pattern that protects the n (property 2)
   protects them too: any option count worked out by subtraction is a sum over hidden
   cells whose n could be worked out the same way. The no-answer count is the unit's
   shown responses minus the item's shown n, and blank where either is hidden.

Once waves are frozen (issue 25, `pipeline.waves`), `verify_frozen_union` proves a new
layer safe beside everything published before, reading the store's held rows and the
cells of every version of a frozen wave ever published:

7. **Frozen waves hold.** A frozen wave's rows are exactly those held when it was frozen.
8. **No differencing across versions.** A wave corrected (unfrozen, rerun) changes no
   cell shown in both versions by 1 to k-1 respondents, nor a statistic at the same n;
   and the equations of both versions, with the cells an attacker can tell did not
   change taken as one unknown, recover no hidden cell of 1 to k-1 (property 2 on the
   union).
9. **Comparisons across waves** (trends, item benchmarks: any `previous_wave`) rest on
   cells shown in both waves, with their published values.
"""

from __future__ import annotations

import copy
import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from scipy.linalg import qr, solve_triangular
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from threadpoolctl import threadpool_limits

from pipeline.waves import cells_fingerprint
from survey.errors import CultureError

#: Blocks of hidden cells up to this size are solved exactly (any combination of
#: equations); larger ones, which only arise when most cells are hidden, are attacked by
#: chains of substitution, the same attack the suppression step defends against.
MAX_EXACT_BLOCK = 600

CELL_KEY = ["wave", "level", "unit", "breakdown", "grp", "measure_kind", "measure"]

#: The staff-group code of a site's row that pools its groups of fewer than k staff.
POOLED_STAFF_GROUPS = "pooled"

#: Each flag of data_quality as a bit of a respondent's kind (0 = no flag, 7 = all three).
FLAG_BITS = {"n_straight_lining": 1, "n_speeding": 2, "n_duplicate": 4}
#: data_quality's count columns, and the site's analysed count from the cells: which of
#: the eight kinds of respondent each counts.
FLAG_COUNTS = {
    "n_respondents": np.ones(8),
    **{column: np.array([float(kind & bit > 0) for kind in range(8)])
       for column, bit in FLAG_BITS.items()},
    "n_flagged": np.array([0.0] + [1.0] * 7),
    "analysed_everyone": np.ones(8),
    "analysed_unflagged": np.array([1.0] + [0.0] * 7),
}


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


def verify_published(path: Path | str, min_group_size: int,
                     cells_checked: VerificationReport | None = None) -> VerificationReport:
    """Check the published file at `path`; raise DisclosureError listing any breach.

    `cells_checked` is the result of `check_cells` on this file's `cells` table when
    that (the costly part) was run already, while the rest of the file was written.
    """
    con = duckdb.connect(str(path), read_only=True)
    try:
        # (A copy: the caller's report of the cells is not added to, so it can check a
        # file again.)
        report = (copy.deepcopy(cells_checked) if cells_checked is not None
                  else check_cells(con, min_group_size))
        check_counts(con, min_group_size, report)
        check_headcounts(con, min_group_size, report)
        check_flag_counts(con, min_group_size, report)
        check_item_benchmarks(con, report)
        check_item_answers(con, report)
    finally:
        con.close()
    if report.problems:
        raise DisclosureError(
            f"the published layer breaks disclosure control ({len(report.problems)} "
            f"problem(s)); first: " + "; ".join(report.problems[:5]))
    return report


def check_cells(con: duckdb.DuckDBPyConnection, min_group_size: int) -> VerificationReport:
    """Property 2 and the shown cells' n, on the `cells` table `con` reads; the breaches
    found are listed in the report (`verify_published` raises them)."""
    report = VerificationReport()
    # Arrow keeps the key columns as strings in C; the relations are built on integer
    # codes of them (pandas string columns cost seconds at national scale).
    cells = con.sql(
        "select wave, level, unit, peer_group, breakdown, grp, measure_kind, measure, n, "
        "suppressed from cells").to_arrow_table()
    report.cells = len(cells)
    hidden = cells["suppressed"].to_numpy()
    n = cells["n"].to_numpy().astype(float)       # NaN where a hidden cell's n is withheld
    report.hidden_cells = int(hidden.sum())
    shown_small = np.flatnonzero(~hidden & (n < min_group_size))
    for row in shown_small[:20]:
        report.problems.append(f"shown cell below {min_group_size}: {_describe(cells, row)} "
                               f"n={n[row]:.0f}")
    _check_recovery(cells, hidden, np.nan_to_num(n), min_group_size, report)
    return report


def check_counts(con: duckdb.DuckDBPyConnection, k: int, report: VerificationReport) -> None:
    """Property 1 over every table: each count column (n, n_*) at least k."""
    columns = con.execute(
        "select table_name, column_name from information_schema.columns "
        "where (column_name = 'n' or column_name like 'n\\_%' escape '\\') "
        "and data_type in ('BIGINT', 'INTEGER', 'HUGEINT', 'DOUBLE', 'UBIGINT')").fetchall()
    for table, column in columns:
        bad = con.execute(f'select count(*) from "{table}" where "{column}" < ?', [k]).fetchall()
        if bad[0][0]:
            report.problems.append(f"table {table}: {bad[0][0]} row(s) with {column} below {k}")


def _has_table(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(con.execute("select count(*) from information_schema.tables "
                            "where table_name = ?", [table]).fetchone()[0])


def check_headcounts(con: duckdb.DuckDBPyConnection, k: int, report: VerificationReport) -> None:
    """Property 3: every headcount shown is at least k, once per site and staff group."""
    if not _has_table(con, "site_headcounts"):
        return
    for site, group, headcount in con.execute(
            "select site_code, staff_group, headcount from site_headcounts "
            "where headcount is null or headcount < ? order by all limit 20", [k]).fetchall():
        report.problems.append(f"table site_headcounts: site {site} staff group {group} "
                               f"headcount {headcount} below {k}")
    for site, group, rows in con.execute(
            "select site_code, staff_group, count(*) from site_headcounts "
            "group by all having count(*) > 1 order by all limit 20").fetchall():
        report.problems.append(f"table site_headcounts: site {site} staff group {group} "
                               f"listed {rows} times")


@lru_cache(maxsize=1)
def _ways_of_counting() -> np.ndarray:
    """Every vector of 0-3 per kind of respondent but all zeros (4^8 - 1 rows)."""
    return np.array(list(itertools.product(range(4), repeat=8)), dtype=float)[1:]


@lru_cache(maxsize=None)
def determined_flag_combinations(columns: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(kinds, weights): every way of counting the eight kinds of respondent (each 0-3
    times; rows of `kinds`) that counts in `columns` (FLAG_COUNTS) fix, and the weights
    on those counts that give it (value = weights @ counts)."""
    if not columns:
        return np.zeros((0, 8)), np.zeros((0, 0))
    shown = np.array([FLAG_COUNTS[c] for c in columns])
    every = _ways_of_counting()
    # Fixed exactly when orthogonal to the null space of the shown counts' kinds.
    _, singular, vt = np.linalg.svd(shown)
    null = vt[int((singular > 1e-9).sum()):].T
    fixed = every[np.abs(every @ null).max(axis=1, initial=0.0) < 1e-9]
    return fixed, fixed @ np.linalg.pinv(shown)


def flag_count_leaks(columns: tuple[str, ...], counts: np.ndarray, k: int) -> np.ndarray:
    """For rows of `counts` (one column per name in `columns`), the smallest count of
    1 to k-1 that the shown counts fix (0 where none does)."""
    _, weights = determined_flag_combinations(columns)
    if not len(weights):
        return np.zeros(len(counts))
    values = np.round(counts @ weights.T)
    small = np.where((values >= 1) & (values < k), values, np.inf)
    smallest = small.min(axis=1)
    return np.where(np.isfinite(smallest), smallest, 0)


def check_flag_counts(con: duckdb.DuckDBPyConnection, k: int, report: VerificationReport) -> None:
    """Property 4 on `data_quality`, with each site's analysed count from `cells`."""
    if not _has_table(con, "data_quality"):
        return
    excluded = con.execute("select any_value(value) from meta where key = 'excluded_flagged'"
                           ).fetchone()[0] if _has_table(con, "meta") else None
    analysed = "analysed_unflagged" if excluded == "true" else "analysed_everyone"
    counted = list(FLAG_COUNTS)[:5]
    rows = con.execute(f"""
        select q.site_code, q.wave, {', '.join(f'q.{c}' for c in counted)}, c.n
        from data_quality q left join cells c
          on c.level = 'site' and c.unit = q.site_code and c.wave = q.wave
         and c.breakdown = 'all' and c.measure_kind = 'responses' and not c.suppressed
        order by all""").fetchall()
    for site, wave, *counts in rows:
        names = tuple(name for name, value in zip(counted + [analysed], counts)
                      if value is not None)
        values = np.array([[float(v) for v in counts if v is not None]])
        leak = flag_count_leaks(names, values, k)[0]
        if leak:
            report.problems.append(f"table data_quality: site {site} wave {wave}: the counts "
                                   f"shown ({', '.join(names)}) give away a group of "
                                   f"{leak:.0f} respondents")


def check_item_benchmarks(con: duckdb.DuckDBPyConnection, report: VerificationReport) -> None:
    """Property 5: `item_benchmarks` rests on shown cells only. Each row is a shown site
    item cell with its values; last year's value is the site's shown cell of that wave;
    the peer group's best and worst are shown cells of other sites of the group."""
    if not _has_table(con, "item_benchmarks"):
        return
    # One query, the shown cells read once; each check names the rows it finds.
    checks = [
        ("row is not a shown cell, or its n or % favourable differ", """
            select b.wave, b.site_code, b.measure from item_benchmarks b
            left join shown c on c.wave = b.wave and c.unit = b.site_code
              and c.measure = b.measure
            where c.n is distinct from b.n
               or c.pct_favourable is distinct from b.pct_favourable"""),
        ("last year's value is not the site's shown cell", """
            select b.wave, b.site_code, b.measure from item_benchmarks b
            left join shown c on c.wave = b.previous_wave and c.unit = b.site_code
              and c.measure = b.measure
            where b.pct_previous is not null
              and (c.pct_favourable is distinct from b.pct_previous
                   or c.n is distinct from b.n_previous)""")]
    for column in ("peer_best", "peer_worst"):
        # An equality join (hashed), not a scan of each row's peers.
        checks.append((f"{column} is no other shown site's value", f"""
            select b.wave, b.site_code, b.measure from item_benchmarks b
            where b.{column} is not null and not exists (
                select 1 from shown c where c.wave = b.wave and c.measure = b.measure
                  and c.peer_group = b.peer_group and c.unit <> b.site_code
                  and c.pct_favourable = b.{column})"""))
    found = con.execute(
        """with shown as materialized (
               select wave, unit, peer_group, measure, n, pct_favourable from cells
               where level = 'site' and breakdown = 'all' and measure_kind = 'item'
                 and not suppressed)
           select * from (""" + " union all ".join(
            f"(select {i} as problem, * from ({sql}) limit 20)"
            for i, (_, sql) in enumerate(checks)) + ") order by all").fetchall()
    for problem, wave, site, measure in found:
        report.problems.append(f"table item_benchmarks: wave {wave} site {site} item "
                               f"{measure}: {checks[problem][0]}")


def check_item_answers(con: duckdb.DuckDBPyConnection, report: VerificationReport) -> None:
    """Property 6: `item_answers` shows what the item cells show and nothing they hide."""
    if not _has_table(con, "item_answers"):
        return
    checks = [
        ("rows are not the item cell's, or its suppression differs", """
            select a.wave, a.level, a.unit, a.measure from item_answers a
            left join items c using (wave, level, unit, measure)
            where c.suppressed is distinct from a.suppressed
            union all
            select c.wave, c.level, c.unit, c.measure from items c
            anti join item_answers a using (wave, level, unit, measure)"""),
        ("a hidden cell's answers are shown", """
            select wave, level, unit, measure from item_answers
            where suppressed and (answers is not null or pct is not null)"""),
        ("the answers do not add up to the cell's n", """
            select a.wave, a.level, a.unit, a.measure from item_answers a
            join items c using (wave, level, unit, measure)
            where not a.suppressed
            group by a.wave, a.level, a.unit, a.measure, c.n
            having sum(a.answers) filter (where a.is_answer) is distinct from c.n"""),
        ("the no-answer count is not shown responses minus shown n", """
            select a.wave, a.level, a.unit, a.measure from item_answers a
            join items c using (wave, level, unit, measure)
            left join responses r using (wave, level, unit)
            where not a.is_answer and a.answers is distinct from
                case when c.suppressed or r.suppressed then null else r.n - c.n end""")]
    found = con.execute(
        """with items as materialized (
               select wave, level, unit, measure, n, suppressed from cells
               where breakdown = 'all' and measure_kind = 'item'),
           responses as (
               select wave, level, unit, n, suppressed from cells
               where breakdown = 'all' and measure_kind = 'responses')
           select * from (""" + " union all ".join(
            f"(select distinct {i} as problem, * from ({sql}) limit 20)"
            for i, (_, sql) in enumerate(checks)) + ") order by all").fetchall()
    for problem, wave, level, unit, measure in found:
        report.problems.append(f"table item_answers: wave {wave} {level} {unit} item "
                               f"{measure}: {checks[problem][0]}")


def _describe(cells, row: int) -> str:
    r = {column: cells[column][int(row)].as_py() for column in CELL_KEY}
    return (f"wave {r['wave']} {r['level']} {r['unit']} {r['breakdown']}={r['grp']} "
            f"{r['measure_kind']} {r['measure']}")


def _codes(column, dictionary=None) -> tuple[np.ndarray, object]:
    """Integer code of each value of an Arrow column (missing values get one of their
    own, as in a pandas index) and the values coded."""
    encoded = pc.dictionary_encode(column, null_encoding="encode").combine_chunks()
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64), encoded.dictionary


def _relations(cells) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(equation id, cell row, coefficient) triples: each parent -1, each part +1.

    A cell's key (CELL_KEY) is coded as one integer (mixed radix over the codes of its
    columns; `unit` and `peer_group` share codes, as a site's peer group is the unit of
    its parent) and a part finds its parent by hashing that integer.
    """
    codes, values = {}, {}
    for column in CELL_KEY:
        if column != "unit":
            codes[column], values[column] = _codes(cells[column])
    both, values["unit"] = _codes(pa.chunked_array(
        cells["unit"].chunks + cells["peer_group"].cast(cells["unit"].type).chunks,
        type=cells["unit"].type))
    codes["unit"], peer_group = both[:len(cells)], both[len(cells):]
    radix = [max(len(values[column]), 1) for column in CELL_KEY]
    if np.prod([float(r) for r in radix]) >= 2.0 ** 62:
        raise DisclosureError("too many distinct cells to check; the cell key does not fit "
                              "in 64 bits")

    def key(rows: np.ndarray, fixed: dict) -> np.ndarray:
        out = np.zeros(len(rows), dtype=np.int64)
        for column, size in zip(CELL_KEY, radix):
            out = out * size + (fixed[column] if column in fixed else codes[column][rows])
        return out

    def code_of(column: str, value: str) -> int:
        return pc.index(values[column], pa.scalar(value, values[column].type)).as_py()

    everything = np.arange(len(cells))
    position = pd.Index(key(everything, {}))
    if not position.is_unique:
        raise DisclosureError("the cells table holds the same cell twice")
    eq_rows, cell_rows, coefs = [], [], []
    next_eq = 0

    def add(parts: np.ndarray, fixed: dict, split: np.ndarray | None) -> None:
        nonlocal next_eq
        if any(np.ndim(value) == 0 and value < 0 for value in fixed.values()):
            return  # no cell has that parent's key (a file without national cells, say)
        parent = position.get_indexer(key(parts, fixed))
        keep = parent >= 0
        parts, parent = parts[keep], parent[keep]
        tag = np.zeros(len(parts), np.int64) if split is None else split[parts]
        # One equation per (parent, split), numbered in order of first appearance.
        ids, firsts = pd.factorize(parent * (int(tag.max(initial=0)) + 1) + tag)
        parents_of_eq = np.empty(len(firsts), dtype=np.int64)
        parents_of_eq[ids] = parent
        eq_rows.extend([ids + next_eq, np.arange(len(firsts)) + next_eq])
        cell_rows.extend([parts, parents_of_eq])
        coefs.extend([np.ones(len(ids)), -np.ones(len(firsts))])
        next_eq += len(firsts)

    level = codes["level"]
    all_ = {"breakdown": code_of("breakdown", "all"), "grp": code_of("grp", "all")}
    national = {"level": code_of("level", "national"), "unit": code_of("unit", "national")}
    groups = np.flatnonzero(codes["breakdown"] != all_["breakdown"])
    add(groups, all_, codes["breakdown"])
    sites = np.flatnonzero(level == code_of("level", "site"))
    add(sites, {"level": code_of("level", "peer"), "unit": peer_group[sites]}, None)
    add(sites, national, None)
    peers = np.flatnonzero(level == code_of("level", "peer"))
    add(peers, national, None)
    return (np.concatenate(eq_rows).astype(np.int64), np.concatenate(cell_rows).astype(np.int64),
            np.concatenate(coefs))


def _check_recovery(cells, hidden: np.ndarray, n: np.ndarray, k: int,
                    report: VerificationReport,
                    extra: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                    relations: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> None:
    """Property 2 on `cells`; `extra` adds (equation, cell row, coefficient) triples of
    equations of its own (numbered from 0) to the relations between the cells
    (`relations`: `_relations(cells)`, when the caller has them)."""
    eq, cell, coef = relations if relations is not None else _relations(cells)
    if extra is not None and len(extra[0]):
        offset = int(eq.max()) + 1 if len(eq) else 0
        eq = np.concatenate([eq, extra[0] + offset])
        cell = np.concatenate([cell, extra[1]])
        coef = np.concatenate([coef, extra[2]])
    report.equations = int(eq.max()) + 1 if len(eq) else 0
    # Move shown cells to the right-hand side: sum(coef * x_hidden) = -sum(coef * n_shown).
    rhs = -np.bincount(eq, weights=np.where(hidden[cell], 0.0, coef * n[cell]),
                       minlength=report.equations)
    unknown_index = np.full(len(hidden), -1)
    unknown_cells = np.flatnonzero(hidden)
    unknown_index[unknown_cells] = np.arange(len(unknown_cells))
    if not len(unknown_cells):
        return
    on_unknown = hidden[cell]
    a_row, a_col, a_val = eq[on_unknown], unknown_index[cell[on_unknown]], coef[on_unknown]
    # Blocks of unknowns tied together by equations are solved separately: connected
    # components of the graph joining each equation to its unknowns.
    graph = coo_matrix((np.ones(len(a_row)), (a_row, report.equations + a_col)),
                       shape=(report.equations + len(unknown_cells),) * 2)
    _, label = connected_components(graph, directed=False)
    block = label[report.equations:]
    values = np.full(len(unknown_cells), np.nan)
    # Group the nonzeros by block once, then solve block by block on small pieces.
    n_blocks = int(label.max()) + 1
    entry_block = block[a_col]
    by_block = np.argsort(entry_block, kind="stable")
    cuts = np.searchsorted(entry_block[by_block], np.arange(n_blocks + 1))
    members_of = np.argsort(block, kind="stable")
    member_cuts = np.searchsorted(block[members_of], np.arange(n_blocks + 1))
    sizes = np.diff(member_cuts)
    with_equations = np.flatnonzero(np.diff(cuts))
    if len(with_equations):
        report.largest_block = int(sizes[with_equations].max())
        report.blocks_by_chain = int((sizes[with_equations] > MAX_EXACT_BLOCK).sum())

    def solve(b: int) -> None:
        entries = by_block[cuts[b]:cuts[b + 1]]
        members = members_of[member_cuts[b]:member_cuts[b + 1]]
        rows_used, local_row = np.unique(a_row[entries], return_inverse=True)
        local_col = np.searchsorted(members, a_col[entries])
        sub = coo_matrix((a_val[entries], (local_row.ravel(), local_col)),
                         shape=(len(rows_used), len(members)))
        if len(members) <= MAX_EXACT_BLOCK:
            values[members] = _determined_values(sub.toarray(), rhs[rows_used])
        else:
            values[members] = _chain_values(sub.tocsr(), rhs[rows_used])

    # Blocks are independent and LAPACK lets go of the GIL, so blocks are solved on
    # as many threads as there are cores, each factorisation on one BLAS thread (at
    # these sizes BLAS threads only get in each other's way). Largest blocks first,
    # so that the last block to finish is a small one. Each block writes its own cells.
    largest_first = with_equations[np.argsort(-sizes[with_equations], kind="stable")]
    with threadpool_limits(1), ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1))) as pool:
        list(pool.map(solve, largest_first))
    recoverable = ~np.isnan(values)
    report.recoverable_hidden = int(recoverable.sum())
    leaked = recoverable & (np.round(values) >= 1) & (np.round(values) < k)
    for j in np.flatnonzero(leaked)[:20]:
        report.problems.append(f"hidden cell recoverable: {_describe(cells, unknown_cells[j])} "
                               f"n={values[j]:.0f}")
    # Remainders: in each equation, what the unrecoverable hidden parts add up to.
    entry_recoverable = recoverable[a_col]
    known_part = np.bincount(a_row, weights=np.where(entry_recoverable, a_val * values[a_col], 0.0),
                             minlength=report.equations)
    open_entry = ~entry_recoverable
    has_parent_unknown = np.bincount(a_row[open_entry & (a_val < 0)],
                                     minlength=report.equations) > 0
    open_parts = np.bincount(a_row[open_entry], minlength=report.equations)
    remainder = rhs - known_part
    small = (~has_parent_unknown & (np.round(remainder) >= 1) & (np.round(remainder) < k)
             & (open_parts > 0))
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
    """Values of the unknowns fixed by a x = b (NaN where the equations leave freedom).

    Unknown j is fixed exactly when the unit vector e_j lies in the row space of `a`.
    A QR factorisation of a^T with column pivoting (LAPACK geqp3) gives an orthonormal
    basis Q of that row space; e_j lies in it when row j of Q has length 1. This is
    the projection that the null space of an SVD measures from the other side, at a
    fraction of the cost (no n x n matrix of singular vectors is formed).

    Rank is where the pivoted diagonal |R_kk| falls below the SVD's tolerance divided
    by sqrt(N), N the larger side of `a`: pivoting makes |R_kk| the largest column of
    the part not yet factorised, so the first singular value dropped is at most
    sqrt(N) |R_kk|, and |R_00| is at most the largest singular value. The rank found
    is never below the rank an SVD would report, so a fixed unknown is never taken
    for a free one. A row of Q shorter than 1 - 1e-12 (a
    null-space component above 1e-6) counts as free.
    """
    if not a.size:
        return np.full(a.shape[1], np.nan)
    q, r, pivot = qr(a.T, mode="economic", pivoting=True)
    diagonal = np.abs(np.diag(r))
    tol = max(a.shape) * np.finfo(float).eps * diagonal[0] * 10 / np.sqrt(max(a.shape))
    rank = int((diagonal > tol).sum())
    basis = q[:, :rank]
    # Equations pivot[:rank] are independent and span the row space: a = P R^T Q^T, so
    # the solution in the row space is Q y with R_11^T y = b on those equations.
    y = solve_triangular(r[:rank, :rank], b[pivot[:rank]], trans="T")
    solution = basis @ y
    free = np.einsum("ij,ij->i", basis, basis) < 1 - 1e-12
    return np.where(free, np.nan, solution)


# --- The union of everything published: frozen waves (issue 25) ---------------------

#: Tables comparing a wave with an earlier one: how a row names its cells. Columns a
#: table lacks take the fixed value given (an item benchmark is a site's item cell).
CROSS_WAVE_KEYS = {
    "level": "site", "breakdown": "all", "grp": "all",
}
CROSS_WAVE_KINDS = {"item_benchmarks": "item"}
#: A cross-wave row's columns and the cell statistic each must equal: (this wave's,
#: the previous wave's).
CROSS_WAVE_VALUES = {"n": ("n", "n_previous"), "mean": ("mean", "mean_previous"),
                     "pct_favourable": ("pct_favourable", "pct_previous")}
#: Columns that exist only to compare with the previous wave: blank without one.
CROSS_WAVE_ONLY = ("n_previous", "mean_previous", "pct_previous", "change", "change_low",
                   "change_high", "change_p", "change_q", "change_verdict")
#: The statistics of a cell kept for every frozen version (pipeline.waves).
VERSION_VALUES = ("mean", "sd", "pct_favourable", "pct_unfavourable")
#: Two statistics of the same respondents differ by rounding at most (sums of fractional
#: scale scores may be added in another order).
SAME_VALUE = 1e-9

_PUB = "frozen_union_layer"


@dataclass
class FrozenUnionReport:
    """What `verify_frozen_union` compared and what it found."""

    frozen_waves: list[int] = field(default_factory=list)
    held_rows: int = 0
    #: (wave, version) of each earlier published version combined with the new layer.
    versions: list[tuple[int, int]] = field(default_factory=list)
    union_cells: int = 0
    union_hidden: int = 0
    #: Cells an attacker can tell are unchanged between a version and the new layer.
    unchanged_links: int = 0
    recoverable_hidden: int = 0
    cross_wave_rows: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_frozen_union(store_con: duckdb.DuckDBPyConnection, published_path: Path | str,
                        k: int) -> FrozenUnionReport:
    """Prove the new layer at `published_path` safe beside everything published before;
    raise DisclosureError naming wave, cell and why otherwise.

    7. **Frozen waves hold.** A frozen wave's rows of every table are exactly the rows
       held in the store when it was frozen (`held_<table>`): none changed, none missing,
       none added.
    8. **No differencing across versions.** A wave unfrozen and published again is
       combined with every version of it published before (`cell_versions`: an open
       wave's earlier layers too; versions with the very same cells are skipped). A
       cell shown in both may not change its n by 1 to k-1 (the difference is a group
       below k), nor keep its n and change a statistic (a small set swapped). Cells an
       attacker can tell are unchanged (same n shown in both, or a part of an unchanged
       total, or any measure of a group nobody joined) are one unknown in both versions,
       and the equations of both versions with those links are solved as in property 2:
       no hidden cell of either version may come out as 1 to k-1.
    9. **Comparisons across waves** (any table with `previous_wave`: trends, item
       benchmarks) rest on cells shown in both waves, with their published values.
    """
    report = FrozenUnionReport()
    store_con.execute(f"attach ? as {_PUB} (read_only)", [str(Path(published_path))])
    try:
        report.frozen_waves = [int(w) for (w,) in store_con.execute(
            "select wave from frozen_waves order by wave").fetchall()]
        _check_held(store_con, report)
        _check_versions(store_con, k, report)
        _check_cross_wave(store_con, report)
    finally:
        store_con.execute(f"detach {_PUB}")
    if report.problems:
        raise DisclosureError(
            f"the new layer breaks what was published before ({len(report.problems)} "
            f"problem(s)); first: " + "; ".join(report.problems[:5]))
    return report


def _columns(con, catalog: str, table: str) -> list[str]:
    return [c for (c,) in con.execute(
        "select column_name from information_schema.columns where table_catalog = ? "
        "and table_schema = 'main' and table_name = ? order by ordinal_position",
        [catalog, table]).fetchall()]


def _store_catalog(con) -> str:
    return con.execute("select current_database()").fetchone()[0]


def _quoted(columns) -> str:
    return ", ".join(f'"{c}"' for c in columns)


def _all_columns(con, catalog: str) -> dict[str, list[str]]:
    """{table: its columns in order} of one attached database (one query: the
    information schema costs milliseconds a query)."""
    tables: dict[str, list[str]] = {}
    for table, column in con.execute(
            "select table_name, column_name from information_schema.columns "
            "where table_catalog = ? and table_schema = 'main' "
            "order by table_name, ordinal_position", [catalog]).fetchall():
        tables.setdefault(table, []).append(column)
    return tables


def _check_held(con, report: FrozenUnionReport) -> None:
    """Property 7: the frozen waves' rows of the new layer are the held rows, exactly."""
    if not report.frozen_waves:
        return
    waves = ", ".join(map(str, report.frozen_waves))
    stored = _all_columns(con, _store_catalog(con))
    held = {name[len("held_"):]: columns for name, columns in stored.items()
            if name.startswith("held_")}
    layer = _all_columns(con, _PUB)
    with_wave = {t for t, columns in layer.items() if "wave" in columns}
    counts = []
    for table in sorted(with_wave - set(held)):
        counts.append(f"select 'new' as what, '{table}' as t, wave, count(*) as rows "
                      f'from {_PUB}."{table}" where wave in ({waves}) group by wave')
    for table, columns in sorted(held.items()):
        if table not in with_wave:
            counts.append(f"select 'missing', '{table}', wave, count(*) "
                          f'from "held_{table}" where wave in ({waves}) group by wave')
        elif layer[table] != columns:
            counts.append(f"select 'columns', '{table}', null, 1")
        else:
            cols = _quoted(columns)
            # Each side's rows as a multiset fingerprint: the count and the exact sum of
            # a 64-bit hash of every row (one scan a side, no sort, which matters for ten
            # frozen waves at national scale). A row changed, missing or added changes
            # the sum; only then are the rows compared one by one, to name them.
            fingerprint = f"row(count(*), sum(hash({cols})::hugeint))"
            counts.append(f"""
                select 'differ', '{table}', null,
                       ((select {fingerprint} from "held_{table}" where wave in ({waves}))
                        is distinct from
                        (select {fingerprint} from {_PUB}."{table}"
                         where wave in ({waves})))::int""")
            counts.append(f"select 'held', '{table}', null, count(*) from \"held_{table}\" "
                          f"where wave in ({waves})")
    if not counts:
        return
    for what, table, wave, rows in con.execute(" union all ".join(counts)).fetchall():
        if what == "held":
            report.held_rows += rows
        elif what == "new" and rows:
            report.problems.append(f"frozen wave {wave}: table {table} has {rows} row(s) "
                                   f"of it that were not published when it was frozen")
        elif what == "missing" and rows:
            report.problems.append(f"frozen wave {wave}: table {table} is missing from the "
                                   f"new layer (or has no wave column); {rows} row(s) held")
        elif what == "columns":
            report.problems.append(
                f"frozen waves {waves}: table {table} has columns {layer[table]} in the new "
                f"layer but {held[table]} when frozen; a frozen wave's rows are kept as "
                f"published")
        elif what == "differ" and rows:
            _describe_changed_rows(con, table, held[table], waves, report)


def _describe_changed_rows(con, table: str, columns: list[str], waves: str,
                           report: FrozenUnionReport) -> None:
    """Name the rows of a frozen wave the new layer changed, added or dropped."""
    if table == "cells":
        _describe_changed_cells(con, waves, report)
        return
    cols = _quoted(columns)
    new = f'select {cols} from {_PUB}."{table}" where wave in ({waves})'
    old = f'select {cols} from "held_{table}" where wave in ({waves})'
    for label, query in (("as frozen, not in the new layer", f"{old} except all {new}"),
                         ("in the new layer, not as frozen", f"{new} except all {old}")):
        for row in con.execute(f"select * from ({query}) order by all limit 3").fetchall():
            shown = dict(zip(columns, row))
            report.problems.append(
                f"frozen wave {shown.get('wave')}: table {table} row {label}: "
                + ", ".join(f"{c}={v}" for c, v in shown.items() if v is not None)[:300])


def _describe_changed_cells(con, waves: str, report: FrozenUnionReport) -> None:
    """Name the frozen cells whose numbers the new layer changed, and how."""
    key = ", ".join(CELL_KEY)
    values = ["n", "suppressed", *VERSION_VALUES]
    changed = con.execute(f"""
        select {key}, {', '.join(f'h.{v}, c.{v}' for v in values)}
        from held_cells h full join {_PUB}.cells c using ({key})
        where wave in ({waves}) and ({' or '.join(
            f'h.{v} is distinct from c.{v}' for v in values)})
        order by all limit 5""").fetchall()
    for row in changed:
        where = dict(zip(CELL_KEY, row))
        pairs = row[len(CELL_KEY):]
        was, now = dict(zip(values, pairs[0::2])), dict(zip(values, pairs[1::2]))
        if was["suppressed"] is None or now["suppressed"] is None:
            what = ["published when frozen, missing now" if now["suppressed"] is None
                    else "not published when frozen, added now"]
        elif was["suppressed"] != now["suppressed"]:
            what = ["hidden as frozen, shown now" if was["suppressed"]
                    else "shown as frozen, hidden now"]
        else:
            what = [f"{v} {_blank(was[v])} as frozen, {_blank(now[v])} now"
                    for v in values if was[v] != now[v]]
        report.problems.append(
            f"frozen wave {where['wave']}: cell {where['level']} {where['unit']} "
            f"{where['breakdown']}={where['grp']} {where['measure_kind']} {where['measure']} "
            f"changed ({'; '.join(what)}); a frozen wave's numbers never change: unfreeze "
            f"it (`culture waves unfreeze {where['wave']} --reason ...`) to correct it")


def _blank(value) -> str:
    return "blank" if value is None else str(value)


def _check_versions(con, k: int, report: FrozenUnionReport) -> None:
    """Property 8: the new layer combined with each earlier published version of a wave."""
    report.versions = [(int(w), int(v)) for w, v in con.execute(f"""
        select distinct v.wave, v.version from cell_version_marks v
        where not exists (select 1 from frozen_waves f
                          where f.wave = v.wave and f.version = v.version)
          and exists (select 1 from {_PUB}.cells c where c.wave = v.wave)
        order by all""").fetchall()]
    # A version showing the very cells of the new layer tells an attacker nothing more.
    marks = {}
    for wave, version in report.versions:
        if wave not in marks:
            marks[wave] = cells_fingerprint(con, _PUB, wave)
    same = {(int(w), int(v)) for w, v, mark in con.execute(
        "select wave, version, fingerprint from cell_version_marks").fetchall()
        if marks.get(w) == mark}
    report.versions = [pair for pair in report.versions if pair not in same]
    if not report.versions:
        return
    pairs = " or ".join(f"(v.wave = {w} and v.version = {v})" for w, v in report.versions)
    key = ", ".join(c for c in CELL_KEY)
    # Cells shown in both: a change of n below k, or a statistic changed at the same n.
    differs = " or ".join(f"abs(coalesce(c.{v}, 0) - coalesce(v.{v}, 0)) > "
                          f"{SAME_VALUE} * greatest(1, abs(coalesce(v.{v}, 0))) "
                          f"or (c.{v} is null) <> (v.{v} is null)" for v in VERSION_VALUES)
    found = con.execute(f"""
        select v.version, {key}, v.n, c.n, count(*) over (partition by v.wave, v.version)
        from cell_versions v join {_PUB}.cells c using ({key})
        where ({pairs}) and not v.suppressed and not c.suppressed
          and (abs(c.n - v.n) between 1 and {k - 1} or (c.n = v.n and ({differs})))
        order by v.wave, v.version, case v.level when 'site' then 0 when 'peer' then 1
                 else 2 end, v.breakdown <> 'all', v.measure_kind <> 'responses',
                 v.unit, v.breakdown, v.grp,
                 v.measure_kind, v.measure
        limit 20""").fetchall()
    summarised = set()
    for row in found:
        version, where, before, now, count = (row[0], dict(zip(CELL_KEY, row[1:-3])),
                                              *row[-3:])
        if (where["wave"], version) not in summarised:
            summarised.add((where["wave"], version))
            report.problems.append(
                f"wave {where['wave']}: {count} shown cell(s) differ from version {version} "
                f"as published by 1 to {k - 1} respondents, or by their statistics at the "
                f"same n; subtracting the two versions shows that small group. A new version "
                f"(a correction, or a wave published again while answers still came in) "
                f"may change each shown cell by none or at least {k} respondents; otherwise "
                f"keep the wave as published: `culture waves freeze {where['wave']} "
                f"--as-published` (the late answers stay out of its numbers)")
        cell = (f"wave {where['wave']} {where['level']} {where['unit']} "
                f"{where['breakdown']}={where['grp']} {where['measure_kind']} "
                f"{where['measure']}")
        if before != now:
            report.problems.append(
                f"{cell}: n {before} as published in version {version}, {now} now: the "
                f"{abs(now - before)} respondent(s) between them are a group below {k}, "
                f"recoverable by subtraction")
        else:
            report.problems.append(
                f"{cell}: same n ({now}) as published in version {version} but other "
                f"statistics: the respondents swapped in and out are a group of unknown, "
                f"possibly small, size")
    _check_union_recovery(con, k, report)


def _check_union_recovery(con, k: int, report: FrozenUnionReport) -> None:
    """The equations of each earlier version and of the new layer, with the cells an
    attacker can tell are unchanged as one unknown, solved as property 2 solves one layer."""
    waves = sorted({w for w, _ in report.versions})
    select = ("level, unit, peer_group, breakdown, grp, measure_kind, measure, n, "
              "suppressed")
    parts = [f"select wave::varchar as wave, {select} from {_PUB}.cells "
             f"where wave in ({', '.join(map(str, waves))})"]
    parts += [f"select '{w} (version {v})', {select} from cell_versions "
              f"where wave = {w} and version = {v}" for w, v in report.versions]
    cells = con.sql(" union all ".join(parts)).to_arrow_table()
    hidden = cells["suppressed"].to_numpy(zero_copy_only=False)
    n = np.nan_to_num(cells["n"].to_numpy(zero_copy_only=False).astype(float))
    report.union_cells, report.union_hidden = len(cells), int(hidden.sum())
    relations = _relations(cells)
    links = _unchanged_links(cells, hidden, n, report.versions, relations)
    report.unchanged_links = len(links[0]) // 2
    found = VerificationReport()
    _check_recovery(cells, hidden, n, k, found, links, relations)
    report.recoverable_hidden = found.recoverable_hidden
    report.problems += [f"{problem} (combining versions published of wave "
                        f"{', '.join(map(str, waves))} with the new layer)"
                        for problem in found.problems]


def _unchanged_links(cells, hidden: np.ndarray, n: np.ndarray,
                     versions: list[tuple[int, int]], relations):
    """Equations old - new = 0 for every cell an attacker can tell is the same in an
    earlier version and the new layer, as (equation, cell row, coefficient) triples.

    A cell's change is known where it is shown in both. Respondents are added (a late
    batch) or moved, so an attacker may take a part of a total that did not change, or
    whose known parts account for its whole change, as unchanged; and every measure of
    a group whose number of respondents did not change. That is generous to the
    attacker, as the verifier should be.
    """
    eq, cell, coef = relations
    # Integer codes of the key columns, mixed into one integer per cell (as in
    # _relations): pairing and grouping hash integers, not tuples of strings.
    codes = {column: _codes(cells[column]) for column in CELL_KEY}

    def mixed(columns) -> np.ndarray:
        out = np.zeros(len(cells), dtype=np.int64)
        for column in columns:
            code, values = codes[column]
            out = out * max(len(values), 1) + code
        return out

    wave_code, wave_values = codes["wave"]
    wave_of = {value: i for i, value in enumerate(wave_values.to_pylist())}
    keys = mixed([c for c in CELL_KEY if c != "wave"])
    # A group of a unit (all its measures): nobody joined it if its responses did not change.
    group = mixed(["level", "unit", "breakdown", "grp"])
    is_responses = cells["measure_kind"].to_numpy(zero_copy_only=False) == "responses"
    n_eq = int(eq.max()) + 1 if len(eq) else 0
    out_eq, out_cell, out_coef = [], [], []
    for w, v in versions:
        new_rows = np.flatnonzero(wave_code == wave_of.get(str(w), -1))
        old_rows = np.flatnonzero(wave_code == wave_of.get(f"{w} (version {v})", -1))
        # Pair the version's cells with the new layer's (a cell may be in one only).
        match = pd.Index(keys[new_rows]).get_indexer(keys[old_rows])
        paired_old, paired_new = old_rows[match >= 0], new_rows[match[match >= 0]]
        delta = np.full(len(cells), np.nan)   # the change, on the new layer's rows
        both = ~hidden[paired_old] & ~hidden[paired_new]
        delta[paired_new[both]] = n[paired_new[both]] - n[paired_old[both]]
        in_new = np.zeros(len(cells), bool)
        in_new[new_rows] = True
        use = in_new[cell]
        e, c, s = eq[use], cell[use], coef[use]
        for _ in range(20):                   # propagate until nothing new is learnt
            unknown_before = int(np.isnan(delta[new_rows]).sum())
            known = ~np.isnan(delta[c])
            part_sum = np.bincount(e, weights=np.where(known & (s > 0), delta[c], 0.0),
                                   minlength=n_eq)
            parent_change = np.full(n_eq, np.nan)
            parent_change[e[s < 0]] = delta[c[s < 0]]
            rest = parent_change - part_sum   # what the parts of unknown change share
            zero = (s > 0) & ~known & (np.abs(rest[e]) < 0.5)
            delta[c[zero]] = 0.0
            still = np.unique(group[new_rows[is_responses[new_rows]
                                             & (delta[new_rows] == 0)]])
            rows = new_rows[np.isin(group[new_rows], still) & np.isnan(delta[new_rows])]
            delta[rows] = 0.0
            if int(np.isnan(delta[new_rows]).sum()) == unknown_before:
                break
        link = (delta[paired_new] == 0) & (hidden[paired_old] | hidden[paired_new])
        start = sum(len(ids) for ids in out_eq[::2])
        ids = np.arange(int(link.sum())) + start
        out_eq += [ids, ids]
        out_cell += [paired_old[link], paired_new[link]]
        out_coef += [np.ones(len(ids)), -np.ones(len(ids))]
    if not out_eq:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return (np.concatenate(out_eq).astype(np.int64), np.concatenate(out_cell).astype(np.int64),
            np.concatenate(out_coef))


def _check_cross_wave(con, report: FrozenUnionReport) -> None:
    """Property 9: every row comparing two waves rests on cells shown in both, with the
    values published for them."""
    tables = [t for (t,) in con.execute(
        "select distinct table_name from information_schema.columns where table_catalog = ? "
        "and table_schema = 'main' and column_name = 'previous_wave' order by 1",
        [_PUB]).fetchall()]
    for table in tables:
        columns = set(_columns(con, _PUB, table))
        unit = "unit" if "unit" in columns else "site_code" if "site_code" in columns else None
        kind = ("measure_kind" if "measure_kind" in columns else
                f"'{CROSS_WAVE_KINDS[table]}'" if table in CROSS_WAVE_KINDS else None)
        if unit is None or kind is None or "measure" not in columns:
            report.problems.append(f"table {table} compares waves (previous_wave) but names "
                                   f"no cell the verifier knows; teach verify_frozen_union "
                                   f"its key")
            continue
        key = {"unit": unit, "measure_kind": kind, "measure": "measure"} | {
            c: (c if c in columns else f"'{fixed}'") for c, fixed in CROSS_WAVE_KEYS.items()}
        report.cross_wave_rows += con.execute(
            f'select count(*) from {_PUB}."{table}" where previous_wave is not null'
        ).fetchone()[0]
        only = [c for c in CROSS_WAVE_ONLY if c in columns]
        if only:
            for wave, rows in con.execute(
                    f'select wave, count(*) from {_PUB}."{table}" where previous_wave is null '
                    f'and ({" or ".join(f"{c} is not null" for c in only)}) '
                    f'group by wave order by wave').fetchall():
                report.problems.append(f"table {table}: {rows} row(s) of wave {wave} compare "
                                       f"with a previous wave they do not name")
        for side, wave_column in ((0, "wave"), (1, "previous_wave")):
            values = [(cell_column, pair[side]) for cell_column, pair in CROSS_WAVE_VALUES.items()
                      if pair[side] in columns]
            on = " and ".join(f"c.{c} = t.{v}" if not v.startswith("'") else f"c.{c} = {v}"
                              for c, v in key.items())
            # Counts exactly; statistics to rounding (a wave recomputed adds its
            # fractional scores in another order).
            mismatch = " or ".join(
                f"c.{c} is distinct from t.{v}" if c == "n" else
                f"(c.{c} is null) <> (t.{v} is null) or abs(c.{c} - t.{v}) > "
                f"{SAME_VALUE} * greatest(1, abs(c.{c}))" for c, v in values) or "false"
            for row in con.execute(f"""
                    select t.{wave_column}::bigint, {', '.join(
                        f't.{v}' if not v.startswith("'") else v for v in key.values())},
                        c.suppressed
                    from {_PUB}."{table}" t left join {_PUB}.cells c
                      on c.wave = t.{wave_column} and {on}
                    where t.previous_wave is not null
                      and (c.suppressed is null or c.suppressed or {mismatch})
                    order by all limit 10""").fetchall():
                wave, *names, suppressed = row
                where = dict(zip(key, names))
                why = ("is hidden" if suppressed else "is not in the cells table"
                       if suppressed is None else "has other values in the cells table")
                report.problems.append(
                    f"table {table}: wave {wave} {where['level']} {where['unit']} "
                    f"{where['breakdown']}={where['grp']} {where['measure_kind']} "
                    f"{where['measure']} {why}, but a comparison across waves "
                    f"{'uses it' if side else 'is shown for it'}")
