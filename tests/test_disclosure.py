"""Differencing attacks on the published tables, and the verifier's own teeth.

The attacker here sees only the published file. Its findings are checked against the
truth kept in the store, so a recovered number is a real recovery, not a guess.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from pipeline.publish.disclosure import KEY
from pipeline.publish.writer import aggregate_cells
from pipeline.store import open_store
from pipeline.publish.verify import DisclosureError, verify_published
from survey.instrument import load_instrument

K = 10


def published(settings) -> pd.DataFrame:
    with duckdb.connect(str(settings.published_path), read_only=True) as con:
        return con.execute("select * from cells").df()


def truth(settings) -> pd.DataFrame:
    """Every cell's true sums, computed again from the store's respondents."""
    with open_store(settings.db_path, read_only=True) as con:
        return aggregate_cells(con, load_instrument(settings.instrument_path), settings)


def attacker_equations(cells: pd.DataFrame) -> list[tuple[int, list[int]]]:
    """(total row, part rows) for every additive relation a reader can see."""
    index = {key: i for i, key in enumerate(map(tuple, cells[KEY].to_numpy()))}
    eqs: dict[tuple, list[int]] = {}
    for i, row in enumerate(cells[KEY + ["peer_group"]].itertuples(index=False)):
        wave, level, unit, breakdown, grp, kind, measure, peer = row
        parents = []
        if breakdown != "all":
            parents.append(((wave, level, unit, "all", "all", kind, measure), breakdown))
        if level == "site":
            parents.append(((wave, "peer", peer, breakdown, grp, kind, measure), "sites"))
            parents.append(((wave, "national", "national", breakdown, grp, kind, measure),
                            "sites"))
        if level == "peer":
            parents.append(((wave, "national", "national", breakdown, grp, kind, measure),
                            "peers"))
        for key, tag in parents:
            eqs.setdefault((index[key], tag), []).append(i)
    return [(parent, parts) for (parent, _tag), parts in eqs.items()]


def chain_attack(cells: pd.DataFrame) -> dict[int, tuple[float, float]]:
    """Repeated subtraction until nothing new falls out: {row: (n, n * mean)} recovered
    for hidden rows (counts and sums of scale values)."""
    n = np.array(cells["n"], dtype=float)
    total = np.array(cells["n"].astype(float) * cells["mean"], dtype=float)
    known = ~np.array(cells["suppressed"], dtype=bool)
    recovered = {}
    eqs = attacker_equations(cells)
    changed = True
    while changed:
        changed = False
        for parent, parts in eqs:
            unknown = [p for p in parts if not known[p]]
            if known[parent] and len(unknown) == 1:
                (p,) = unknown
                n[p] = n[parent] - sum(n[q] for q in parts if q != p)
                total[p] = total[parent] - sum(total[q] for q in parts if q != p)
            elif not known[parent] and not unknown:
                p = parent
                n[p], total[p] = sum(n[q] for q in parts), sum(total[q] for q in parts)
            else:
                continue
            known[p] = changed = True
            recovered[p] = (n[p], total[p])
    return recovered


def remainders(cells: pd.DataFrame) -> list[tuple[int, int, float]]:
    """(total row, hidden parts, what they add up to) for every equation with a shown total."""
    n = cells["n"].astype(float).to_numpy()
    hidden = cells["suppressed"].to_numpy()
    out = []
    for parent, parts in attacker_equations(cells):
        if hidden[parent]:
            continue
        hidden_parts = [p for p in parts if hidden[p]]
        if hidden_parts:
            out.append((parent, len(hidden_parts),
                        n[parent] - sum(n[p] for p in parts if not hidden[p])))
    return out


def test_site_total_minus_the_other_groups_reveals_no_small_group(published_sample):
    settings, _ = published_sample
    cells = published(settings)
    found = remainders(cells)
    assert len(found) > 500, "the sample must have hidden groups for this attack to bite"
    small = [(cells.iloc[p][KEY].tolist(), h, r) for p, h, r in found if 0 < r < K]
    assert small == []


def test_chained_attack_across_sites_breakdowns_and_peer_groups(published_sample):
    settings, _ = published_sample
    cells = published(settings)
    recovered = chain_attack(cells)
    true = truth(settings).set_index(KEY)
    # The attack does recover some hidden cells (ones hidden to protect others)...
    assert len(recovered) > 50
    for row, (n, _total) in recovered.items():
        key = tuple(cells.iloc[row][KEY])
        assert n == true.loc[key, "n"], "the attacker's arithmetic must be right"
        # ...but never one of fewer than K people.
        assert n == 0 or n >= K, f"recovered a group of {n}: {key}"


def test_the_store_keeps_no_cell_sums_table(published_sample, instrument):
    """The true sums of every cell (small ones included) live only in the run's memory;
    a table of them left by an older version is removed, not left stale."""
    settings, _ = published_sample
    with open_store(settings.db_path) as con:
        con.execute("create table cell_sums as select 1 as n")
        sums = aggregate_cells(con, instrument, settings)
        tables = {r[0] for r in con.execute("select table_name from information_schema.tables")
                  .fetchall()}
    assert "cell_sums" not in tables
    assert len(sums) == len(published(settings)) > 0     # every cell is published


def test_the_same_attacks_break_primary_only_suppression(published_sample):
    """Control: hiding only the small cells leaks, and the attack above finds it."""
    settings, _ = published_sample
    true = truth(settings)
    naive = true.assign(suppressed=true["n"] < K, mean=true["s1"] / true["n"])
    naive["n"] = naive["n"].astype(float).mask(naive["suppressed"])
    naive["mean"] = naive["mean"].mask(naive["suppressed"])
    recovered = chain_attack(naive)
    small = {row: v for row, v in recovered.items() if 0 < v[0] < K}
    assert len(small) > 100
    row, (n, total) = next((r, v) for r, v in small.items()
                           if true.iloc[r]["measure_kind"] == "scale")
    assert n == true.iloc[row]["n"]
    assert total / n == pytest.approx(true.iloc[row]["s1"] / true.iloc[row]["n"], abs=1e-9)


def test_no_published_figure_spans_waves_or_exposes_a_hidden_cell(published_sample):
    """Across waves: there are no cumulative totals to subtract, and every trend row
    compares two shown cells, so 'this year minus last year' reveals nothing hidden."""
    settings, _ = published_sample
    with duckdb.connect(str(settings.published_path), read_only=True) as con:
        tables = [t for (t,) in con.execute("show tables").fetchall()]
        with_n = {t for (t,) in con.execute(
            "select distinct table_name from information_schema.columns where column_name = 'n'"
        ).fetchall()}
        for table in with_n:
            columns = {c for (c,) in con.execute(
                "select column_name from information_schema.columns where table_name = ?",
                [table]).fetchall()}
            assert "wave" in columns, table
        trends = con.execute("select * from trends").df()
        equity = con.execute("select * from equity").df()
    assert "trends" in tables and len(trends) > 100
    cells = published(settings).set_index(["level", "unit", "breakdown", "grp",
                                           "measure_kind", "measure", "wave"])
    for row in trends.itertuples():
        for wave in (row.wave, row.previous_wave):
            cell = cells.loc[(row.level, row.unit, "all", "all", row.measure_kind,
                              row.measure, wave)]
            assert not cell["suppressed"]
    shown_groups = cells[~cells["suppressed"]].index
    keys = list(zip(equity.level, equity.unit, equity.breakdown, equity.grp,
                    equity.measure_kind, equity.measure, equity.wave))
    assert set(keys) <= set(shown_groups)
    assert (equity["n_rest"] >= K).all()


def test_store_keeps_why_each_cell_was_hidden(published_sample):
    settings, report = published_sample
    with open_store(settings.db_path, read_only=True) as con:
        log = con.execute("select suppression, count(*), max(n) from suppression_log "
                          "group by 1 order by 1").fetchall()
    assert [(r[0], r[1]) for r in log] == [("complementary", report.hidden_complementary),
                                           ("primary", report.hidden_primary)]
    assert log[1][2] == K - 1


# --- the verifier on hand-made published files -----------------------------------

def one_site_file(path, groups: dict[str, tuple[int, bool]], total: int = 40,
                  extra_sql: str | None = None):
    rows = [(2026, "site", "A", "acute_trust", "all", "all", "scale", "stigma", total, False)]
    rows += [(2026, "site", "A", "acute_trust", "gender", g, "scale", "stigma",
              None if hidden else n, hidden) for g, (n, hidden) in groups.items()]
    frame = pd.DataFrame(rows, columns=["wave", "level", "unit", "peer_group", "breakdown",
                                        "grp", "measure_kind", "measure", "n", "suppressed"])
    frame["n"] = frame["n"].astype("Int64")
    with duckdb.connect(str(path)) as con:
        con.register("frame", frame)
        con.execute("create table cells as select * from frame")
        if extra_sql:
            con.execute(extra_sql)
    return path


def test_verifier_passes_a_safe_file(tmp_path):
    path = one_site_file(tmp_path / "ok.duckdb",
                         {"woman": (20, False), "man": (12, True), "another": (3, True),
                          "not_stated": (5, True)})
    report = verify_published(path, K)
    assert report.hidden_cells == 3 and report.recoverable_hidden == 0


def test_verifier_rejects_a_shown_small_cell(tmp_path):
    path = one_site_file(tmp_path / "small.duckdb",
                         {"woman": (31, False), "man": (9, False)})
    with pytest.raises(DisclosureError, match="shown cell below 10.*gender=man"):
        verify_published(path, K)


def test_verifier_rejects_a_cell_recoverable_by_subtraction(tmp_path):
    path = one_site_file(tmp_path / "one.duckdb",
                         {"woman": (20, False), "man": (16, False), "another": (4, True)})
    with pytest.raises(DisclosureError, match="hidden cell recoverable.*gender=another.* n=4"):
        verify_published(path, K)


def test_verifier_rejects_a_small_union_of_hidden_cells(tmp_path):
    path = one_site_file(tmp_path / "union.duckdb",
                         {"woman": (20, False), "man": (14, False), "another": (2, True),
                          "not_stated": (4, True)})
    with pytest.raises(DisclosureError, match="hidden parts add up to 6"):
        verify_published(path, K)


def test_verifier_rejects_a_small_count_in_any_table(tmp_path):
    path = one_site_file(tmp_path / "rest.duckdb", {"woman": (30, False), "man": (10, False)},
                         extra_sql="create table equity as select 4::bigint as n_rest")
    with pytest.raises(DisclosureError, match="table equity: 1 row.*n_rest below 10"):
        verify_published(path, K)


def test_failed_verification_keeps_the_previous_layer(published_sample, instrument,
                                                      monkeypatch):
    """If suppression were broken, the run fails loudly and readers keep the last layer."""
    import pipeline.publish.writer as publish_module

    settings, _ = published_sample
    before = settings.published_path.read_bytes()

    def primary_only(cells, k):
        return cells.assign(suppressed=cells["n"] < k,
                            suppression=np.where(cells["n"] < k, "primary", ""))

    monkeypatch.setattr(publish_module, "suppress_small_cells", primary_only)
    with open_store(settings.db_path) as con, pytest.raises(DisclosureError,
                                                            match="hidden cell recoverable"):
        publish_module.publish(con, instrument, settings)
    assert settings.published_path.read_bytes() == before
    assert not settings.published_path.with_name(
        settings.published_path.name + ".tmp").exists()


# --- counts outside the cells: headcounts and data-quality flags --------------------------

def test_flag_counts_hide_the_fewest_so_no_difference_is_small():
    from pipeline.publish.disclosure import suppress_flag_counts

    quality = pd.DataFrame({"site_code": ["A", "B", "C"], "wave": [2026] * 3,
                            "n_respondents": [300, 120, 100], "n_straight_lining": [12, 40, 30],
                            "n_speeding": [13, 30, 10], "n_duplicate": [0, 20, 0],
                            "n_flagged": [15, 60, 95]})
    # Everyone analysed (flagged respondents not excluded): the cells show the respondents.
    out = suppress_flag_counts(quality, np.array([300.0, 120.0, 100.0]), False, 10)
    shown = out[["n_respondents", "n_straight_lining", "n_speeding", "n_duplicate",
                 "n_flagged"]].astype("float64").fillna(-1).to_numpy().tolist()
    # A: duplicates 0 (below k); flagged 15 - speeding 13 = 2 and - straight-lining 12 = 3,
    # so flagged goes (speeding and straight-lining are kept: no difference is small).
    # B: nothing small anywhere. C: 100 - 95 flagged = 5 unflagged, so flagged goes; then
    # 100 - speeding 10 = 90 is fine.
    assert shown == [[300, 12, 13, -1, -1], [120, 40, 30, 20, 60], [100, 30, 10, -1, -1]]


def test_flag_counts_when_flagged_respondents_are_excluded():
    from pipeline.publish.disclosure import suppress_flag_counts

    quality = pd.DataFrame({"site_code": ["A"], "wave": [2026], "n_respondents": [105],
                            "n_straight_lining": [20], "n_speeding": [20], "n_duplicate": [0],
                            "n_flagged": [30]})
    # The cells show the 75 unflagged, so flagged (105 - 75 = 30) is known anyway; no
    # difference comes below 10 (flagged - speeding = 10), so all but the 0 are shown.
    out = suppress_flag_counts(quality, np.array([75.0]), True, 10)
    assert out.loc[0, ["n_respondents", "n_speeding", "n_flagged"]].tolist() == [105, 20, 30]
    # Were 8 flagged, respondents minus the analysed 75 would tell: respondents goes too.
    quality.loc[0, ["n_respondents", "n_flagged", "n_straight_lining", "n_speeding"]] = [
        83, 8, 8, 0]
    out = suppress_flag_counts(quality, np.array([75.0]), True, 10)
    assert out.iloc[0, 2:].isna().all()


def test_headcounts_pool_small_groups_with_the_next_smallest():
    from pipeline.publish.disclosure import suppress_headcounts

    heads = pd.DataFrame({
        "site_code": ["A"] * 4 + ["B"] * 3 + ["C"] * 2 + ["D"] * 2,
        "staff_group": ["gp", "sas", "resident", "consultant", "gp", "sas", "resident",
                        "gp", "sas", "gp", "sas"],
        "headcount": [5, 11, 40, 12, 4, 6, 30, 3, 4, 0, 25]})
    out = suppress_headcounts(heads, 10)
    assert sorted(out.itertuples(index=False, name=None)) == [
        ("A", "consultant", 12), ("A", "pooled", 16), ("A", "resident", 40),  # 5 + 11
        ("B", "pooled", 10), ("B", "resident", 30),                            # 4 + 6
        ("D", "sas", 25)]     # C's 7 staff in all are below k; D's 0 adds nothing
    assert out["headcount"].min() >= 10
