"""Attacks on the union of everything published once waves are frozen (issue 25).

A real store (the committed sample: seven sites, waves 2024-2026, k = 10) is published,
wave 2025 frozen with the real `culture` command; then:

(i)   a copy of the layer with a frozen number changed (or a comparison across waves
      resting on a hidden cell) is refused by `verify_frozen_union`;
(ii)  the wave is unfrozen and a late batch added at one site: fewer than k changes
      some shown cells by fewer than k, and `culture run` refuses to publish (the
      verifier catches it; the pipeline does not hide those cells itself); a batch of k
      or more that changes every cell it touches by k or more is published;
(iii) an attacker holding the old and the new layers subtracts everything it can (site
      totals and groups, peer groups and all sites, one version against the other,
      year-on-year changes and trends) and recovers no hidden cell below k, while the
      same attack on a layer that shows another complementary cell of an unchanged site
      does recover one, which the verifier refuses.
"""

from __future__ import annotations

import csv
import hashlib
import shutil
from collections import defaultdict
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from pipeline.publish.verify import DisclosureError, check_cells, verify_frozen_union
from pipeline.store import open_store
from survey.settings import SAMPLES_DIR, Settings
from tests.test_waves_cli import culture, refused

K = 10
KEY = ["wave", "level", "unit", "breakdown", "grp", "measure_kind", "measure"]
ATTRIBUTES = ("staff_group", "contract", "pmq", "gender", "age_band", "ethnicity")


def _copy(template: Settings, folder: Path) -> Settings:
    folder.mkdir(parents=True, exist_ok=True)
    settings = Settings(db_path=folder / "store.duckdb")
    shutil.copyfile(template.db_path, settings.db_path)
    shutil.copyfile(template.published_path, settings.published_path)
    if template.inbox_path.exists():
        shutil.copyfile(template.inbox_path, settings.inbox_path)
    return settings


def _late_batch(path: Path, size: int, same_groups: bool, wave: int = 2025) -> Path:
    """`size` late answers of `wave` at site C, copied from C's own (complete) rows;
    with `same_groups`, all in one group of every breakdown (they then change only the
    cells of those groups, each by `size`)."""
    with (SAMPLES_DIR / "responses_clean.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    complete = [r for r in rows if r["site"] == "C" and r["wave"] == str(wave)
                and all(value != "" for value in r.values())]
    assert len(complete) >= size
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for number, row in enumerate(complete[:size]):
            late = dict(row, response_id=f"C-{wave}-LATE-{size}-{number:03d}")
            if same_groups:
                late |= {a: complete[0][a] for a in ATTRIBUTES}
            writer.writerow(late)
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def frozen(tmp_path_factory, _published_template) -> Settings:
    """The sample published, wave 2025 frozen by `culture waves freeze`; the layer as
    published then is kept beside it as `v1.published.duckdb`."""
    template, _ = _published_template
    settings = _copy(template, tmp_path_factory.mktemp("frozen"))
    done = culture("waves", "freeze", 2025, "--close", "--reason", "signed off", "--db",
                   settings.db_path)
    assert done.returncode == 0, done.stderr
    shutil.copyfile(settings.published_path, settings.db_path.with_name("v1.published.duckdb"))
    return settings


@pytest.fixture(scope="module")
def corrected(tmp_path_factory, frozen) -> Settings:
    """Wave 2025 unfrozen, a late batch of 12 at site C in one group of every breakdown,
    `culture run`: the layer with the corrected wave (version 1 kept beside it)."""
    folder = tmp_path_factory.mktemp("corrected")
    settings = _copy(frozen, folder)
    shutil.copyfile(frozen.db_path.with_name("v1.published.duckdb"),
                    folder / "v1.published.duckdb")
    late = _late_batch(folder / "late-site-c.csv", 12, same_groups=True)
    assert culture("ingest", late, "--db", settings.db_path).returncode == 0
    assert culture("waves", "unfreeze", 2025, "--reason", "late batch from site C", "--db",
                   settings.db_path).returncode == 0
    run = culture("run", "--db", settings.db_path, "--reports", folder / "reports")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr
    return settings


def _tampered(frozen: Settings, tmp_path: Path, sql: str) -> Path:
    path = tmp_path / "tampered.published.duckdb"
    shutil.copyfile(frozen.published_path, path)
    with duckdb.connect(str(path)) as con:
        changed = con.execute(sql).fetchall()
    assert changed and changed[0][0] >= 1, "the tampering changed nothing"
    return path


def _union_error(frozen: Settings, path: Path) -> str:
    with open_store(frozen.db_path) as con, pytest.raises(DisclosureError) as caught:
        verify_frozen_union(con, path, K)
    return str(caught.value)


# (i) -------------------------------------------------------------------------------

def test_the_layer_as_frozen_passes(frozen):
    with open_store(frozen.db_path) as con:
        report = verify_frozen_union(con, frozen.published_path, K)
        held = sum(con.execute(f'select count(*) from "{t}" where wave = 2025').fetchone()[0]
                   for (t,) in con.execute("select table_name from information_schema.tables "
                                           "where table_name like 'held_%'").fetchall())
    assert report.ok and report.frozen_waves == [2025]
    assert report.held_rows == held > 10_000
    assert report.versions == []              # version 1 is the layer itself
    assert report.cross_wave_rows > 0


def test_a_run_beside_the_frozen_wave_publishes_it_unchanged(frozen, tmp_path):
    """`culture run` with 2025 frozen: the verifier inside the run compares its held rows
    and passes; the new layer's 2025 cells are the frozen ones."""
    settings = _copy(frozen, tmp_path / "rerun")
    run = culture("run", "--db", settings.db_path, "--reports", tmp_path / "reports")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr
    with open_store(settings.db_path) as con:
        report = verify_frozen_union(con, settings.published_path, K)
        changed = con.execute(f"""
            attach '{settings.published_path}' as layer (read_only);
            select count(*) from (select * from held_cells except all
                                  select * from layer.cells where wave = 2025)""").fetchone()
    assert report.ok and report.held_rows > 10_000
    assert changed == (0,)


def test_a_changed_frozen_statistic_is_refused(frozen, tmp_path):
    path = _tampered(frozen, tmp_path, """
        update cells set mean = mean + 0.01 where wave = 2025 and level = 'site'
          and unit = 'A' and breakdown = 'all' and measure_kind = 'scale'
          and measure = 'confidentiality'""")
    message = _union_error(frozen, path)
    assert "frozen wave 2025: cell site A all=all scale confidentiality changed (mean " in message
    assert "a frozen wave's numbers never change" in message
    # The trend rows built on that cell no longer match it either.
    assert "table trends: wave 2025 site A all=all scale confidentiality has other values" \
           in message


def test_a_frozen_count_shown_or_a_row_dropped_is_refused(frozen, tmp_path):
    path = _tampered(frozen, tmp_path, """
        update cells set n = 9, suppressed = false where wave = 2025 and suppressed
          and level = 'site' and unit = 'B' and breakdown = 'staff_group'
          and measure_kind = 'responses' and grp = (
              select min(grp) from cells where wave = 2025 and suppressed and level = 'site'
                and unit = 'B' and breakdown = 'staff_group' and measure_kind = 'responses')""")
    message = _union_error(frozen, path)
    assert "frozen wave 2025: cell site B staff_group=" in message
    assert "hidden as frozen, shown now" in message

    dropped = _tampered(frozen, tmp_path, "delete from item_answers where wave = 2025 "
                                          "and unit = 'D' and measure = 'cf01'")
    message = _union_error(frozen, dropped)
    assert "frozen wave 2025: table item_answers row as frozen, not in the new layer" in message
    assert "unit=D" in message and "measure=cf01" in message


def test_a_comparison_resting_on_a_hidden_cell_is_refused(frozen, tmp_path):
    """A change from last year shown for a cell that is hidden (here a 2026 cell hidden
    after the trends were built) gives the hidden mean away; a previous value that is not
    the previous wave's published one is refused too."""
    path = _tampered(frozen, tmp_path, """
        update cells set suppressed = true, n = null, mean = null, sd = null, se = null,
               ci_low = null, ci_high = null, mean_0_10 = null, pct_favourable = null,
               pct_unfavourable = null
        where wave = 2026 and level = 'site' and unit = 'B' and breakdown = 'all'
          and measure_kind = 'scale' and measure = 'confidentiality';
        update item_benchmarks set pct_previous = pct_previous + 1
        where wave = 2026 and site_code = 'D' and measure = 'cf01';
        select 1""")
    message = _union_error(frozen, path)
    assert "frozen wave" not in message                  # 2025's own rows are as frozen
    assert ("table trends: wave 2026 site B all=all scale confidentiality is hidden, but a "
            "comparison across waves is shown for it") in message
    assert ("table item_benchmarks: wave 2025 site D all=all item cf01 has other values in "
            "the cells table, but a comparison across waves uses it") in message


def test_rows_added_for_a_frozen_wave_are_refused(frozen, tmp_path):
    path = _tampered(frozen, tmp_path, """
        create table extra_wave_table as select 2025 as wave, 'A' as site_code, 3 as x;
        select 1""")
    message = _union_error(frozen, path)
    assert "frozen wave 2025: table extra_wave_table has 1 row(s) of it that were not " \
           "published when it was frozen" in message


# (ii) ------------------------------------------------------------------------------

def test_an_open_wave_published_again_with_a_few_more_answers_is_refused(frozen, tmp_path):
    """Never frozen, wave 2026 was still published: readers of that layer could subtract
    it from one with four more answers, so the run refuses, naming the earlier version."""
    settings = _copy(frozen, tmp_path / "open")
    before = _sha(settings.published_path)
    late = _late_batch(tmp_path / "late-2026.csv", 4, same_groups=False, wave=2026)
    assert culture("ingest", late, "--db", settings.db_path).returncode == 0
    message = refused(culture("run", "--db", settings.db_path, "--reports",
                              tmp_path / "reports"))
    assert "wave 2026: " in message and "differ from version 1 as published by 1 to 9 " \
        "respondents" in message
    assert "wave 2026 site C all=all responses responses: n " in message
    assert _sha(settings.published_path) == before      # the previous layer stays
    with open_store(settings.db_path) as con:
        kept = con.execute("select count(distinct version) from cell_versions "
                           "where wave = 2026").fetchone()[0]
    assert kept == 1          # what readers of the layer saw of 2026, kept for good


def test_republishing_the_same_numbers_keeps_one_version(frozen, tmp_path):
    settings = _copy(frozen, tmp_path / "same")
    run = culture("run", "--db", settings.db_path, "--reports", tmp_path / "reports")
    assert run.returncode == 0, run.stderr
    with open_store(settings.db_path) as con:
        versions = con.execute("select wave, count(*) from cell_version_marks "
                               "group by wave order by wave").fetchall()
    assert versions == [(2025, 1)]   # the frozen one; unchanged waves cost no copy


def test_a_late_batch_below_k_is_refused_and_the_layer_stays(frozen, tmp_path):
    settings = _copy(frozen, tmp_path / "small")
    before = _sha(settings.published_path)
    late = _late_batch(tmp_path / "late-4.csv", 4, same_groups=False)
    assert culture("ingest", late, "--db", settings.db_path).returncode == 0
    assert culture("waves", "unfreeze", 2025, "--reason", "late batch from site C", "--db",
                   settings.db_path).returncode == 0
    run = culture("run", "--db", settings.db_path, "--reports", tmp_path / "reports")
    message = refused(run)
    assert "the new layer breaks what was published before" in message
    assert "differ from version 1 as published by 1 to 9 respondents" in message
    assert "wave 2025 site C all=all responses responses: n 140 as published in version 1, " \
           "144 now: the 4 respondent(s) between them are a group below 10" in message
    assert _sha(settings.published_path) == before      # the previous layer stays
    assert "culture waves freeze 2025 --as-published" in message

    # The way out: the wave frozen again exactly as it was published, without the batch.
    kept = refused(culture("waves", "freeze", 2025, "--db", settings.db_path))
    assert "4 of its responses were ingested after the published layer was written" in kept
    assert "--as-published" in kept
    done = culture("waves", "freeze", 2025, "--as-published", "--reason", "batch too small",
                   "--db", settings.db_path)
    assert done.returncode == 0, done.stderr
    # The very cells first published: the same version (1), not a new one.
    assert "wave 2025 frozen (version 1)" in done.stdout
    assert "4 answer(s) of wave 2025 that came after it was published stay in the store" \
           in done.stdout
    rerun = culture("run", "--db", settings.db_path, "--reports", tmp_path / "reports")
    assert rerun.returncode == 0, rerun.stderr
    with open_store(settings.db_path) as con:
        versions = con.execute("select count(distinct version) from cell_versions "
                               "where wave = 2025").fetchone()[0]
        log = con.execute("select reason from wave_events where action = 'freeze' "
                          "order by happened_at").fetchall()
    assert versions == 1                      # the same numbers as first published
    assert log[-1][0] == "batch too small (as published, leaving out 4 later answer(s))"


def test_a_late_batch_of_k_or_more_in_one_group_is_published(corrected):
    with duckdb.connect(str(corrected.published_path), read_only=True) as layer:
        meta = dict(layer.execute("select key, value from meta").fetchall())
        n = layer.execute("select n from cells where wave = 2025 and level = 'site' "
                          "and unit = 'C' and breakdown = 'all' and measure_kind = 'responses'"
                          ).fetchone()[0]
    assert n == 140 + 12
    assert "2025" in meta.get("waves_computed", "2025")
    with open_store(corrected.db_path) as con:
        report = verify_frozen_union(con, corrected.published_path, K)
    assert report.versions == [(2025, 1)]
    assert report.union_hidden > 0 and report.unchanged_links > 0
    # Frozen again: version 2, and version 1 is still what later layers are checked against.
    done = culture("waves", "freeze", 2025, "--reason", "late batch taken in", "--db",
                   corrected.db_path)
    assert done.returncode == 0 and "version 2" in done.stdout


# (iii) -----------------------------------------------------------------------------

def _cells(path: Path) -> pd.DataFrame:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(f"select {', '.join(KEY)}, peer_group, n, suppressed "
                           f"from cells").df()


def _year_on_year(path: Path) -> list[tuple[tuple, float]]:
    """(cell key, n) of every earlier-wave cell a comparison across waves shows."""
    with duckdb.connect(str(path), read_only=True) as con:
        trends = con.execute("select previous_wave, level, unit, measure_kind, measure, "
                             "n_previous from trends where previous_wave is not null").fetchall()
        items = con.execute("select previous_wave, site_code, measure, n_previous from "
                            "item_benchmarks where previous_wave is not null").fetchall()
    shown = [((int(w), level, unit, "all", "all", kind, measure), n)
             for w, level, unit, kind, measure, n in trends]
    shown += [((int(w), "site", site, "all", "all", "item", measure), n)
              for w, site, measure, n in items]
    return shown


def attack(layers: dict[str, Path]) -> dict:
    """Everything an attacker holding these layers can work out by subtraction.

    Returns {"recovered": {(layer, key): n} of hidden cells worked out, "differences":
    [(key, old n, new n)] of cells shown in two layers whose n differ by less than K}.
    """
    frames = {name: _cells(path) for name, path in layers.items()}
    known, hidden = {}, set()
    peers = {}
    for name, frame in frames.items():
        for row in frame.itertuples(index=False):
            key = tuple(getattr(row, c) for c in KEY)
            if row.suppressed:
                hidden.add((name, key))
            else:
                known[(name, key)] = float(row.n)
            if row.level == "site":
                peers[(row.wave, row.unit)] = row.peer_group
    recovered = {}

    def learn(cell, value) -> bool:
        if cell in known:
            return False
        known[cell] = value
        if cell in hidden:
            recovered[cell] = value
        return True

    # Year on year: an earlier wave's n shown beside a later wave.
    for name, path in layers.items():
        for key, n in _year_on_year(path):
            learn((name, key), float(n))
    # The additive relations of one layer: (total, parts).
    relations = defaultdict(list)
    for name, key in list(known) + sorted(hidden):
        wave, level, unit, breakdown, grp, kind, measure = key
        if breakdown != "all":
            relations[(name, (wave, level, unit, "all", "all", kind, measure), breakdown)
                      ].append((name, key))
        if level == "site":
            relations[(name, (wave, "peer", peers[(wave, unit)], breakdown, grp, kind,
                              measure), "sites")].append((name, key))
        if level in ("site", "peer"):
            relations[(name, (wave, "national", "national", breakdown, grp, kind, measure),
                       level)].append((name, key))
    names = list(layers)
    changed = True
    while changed:
        changed = False
        # One version against another: a unit whose respondents did not change (same
        # total in both) has the same cells in both.
        for name in names:
            for other in names:
                if other == name:
                    continue
                for (layer, key) in sorted(hidden):
                    if layer != name or (name, key) in known or (other, key) not in known:
                        continue
                    total = (key[0], key[1], key[2], "all", "all", "responses", "responses")
                    a, b = known.get((name, total)), known.get((other, total))
                    if a is not None and a == b:
                        changed |= learn((name, key), known[(other, key)])
        # Subtraction: a total less its known parts; parts summed to a total.
        for (name, total, _), parts in relations.items():
            unknown = [p for p in parts if p not in known]
            if (name, total) in known and len(unknown) == 1:
                changed |= learn(unknown[0], known[(name, total)]
                                 - sum(known[p] for p in parts if p in known))
            elif (name, total) not in known and not unknown:
                changed |= learn((name, total), sum(known[p] for p in parts))
    differences = []
    for (name, key), n in known.items():
        for other in names:
            if other != name and (other, key) in known and name < other:
                if 1 <= abs(known[(other, key)] - n) < K:
                    differences.append((key, n, known[(other, key)]))
    return {"recovered": recovered, "differences": differences}


def _small(recovered: dict) -> dict:
    return {cell: n for cell, n in recovered.items() if 1 <= round(n) < K}


def test_differencing_the_old_and_new_layers_recovers_nothing(corrected):
    layers = {"v1": corrected.db_path.with_name("v1.published.duckdb"),
              "v2": corrected.published_path}
    found = attack(layers)
    assert found["differences"] == []
    assert _small(found["recovered"]) == {}
    # The attack is real: it works out hidden cells that are not small (complementary
    # ones of k or more, hidden so that the small ones stay hidden), and their true n.
    assert found["recovered"]
    with open_store(corrected.db_path, read_only=True) as con:
        truth = {tuple(r[:-1]): r[-1] for r in con.execute(
            f"select {', '.join(KEY)}, n from suppression_log").fetchall()}
    checked = [(cell, n) for cell, n in found["recovered"].items()
               if cell[0] == "v2" and cell[1] in truth]
    assert checked and all(round(n) == truth[cell[1]] for cell, n in checked)


def _plain(value):
    """A numpy scalar as the Python value DuckDB takes as a parameter."""
    return value.item() if hasattr(value, "item") else value


def _flip(old: Path, truth: dict, out: Path) -> tuple[tuple, int] | None:
    """A layer like `old` but for one breakdown of two unchanged sites X and Y of a peer
    group: X's complementary hidden group is shown (its true n), and instead a group g is
    hidden at X and at Y, so that in this layer alone the small group stays hidden (the
    single-layer check finds nothing). Together with `old`, which shows Y's g, Y's g is
    known (Y did not change), so X's g follows from the peer group's g, and X's small
    group from X's total. Returns (the small cell's key, its true n)."""
    cells = _cells(old)
    wave = cells[(cells["wave"] == 2025) & (cells["level"] == "site")
                 & (cells["unit"] != "C")]
    where = " and ".join(f"{c} = ?" for c in KEY)
    site = wave[(wave["breakdown"] != "all") & (wave["measure_kind"] == "scale")]
    for _, group in site.groupby(["unit", "breakdown", "measure"]):
        gone = group[group["suppressed"]]
        if len(gone) != 2:
            continue
        sizes = [truth.get(tuple(r[c] for c in KEY)) for _, r in gone.iterrows()]
        if None in sizes or sorted(s >= K for s in sizes) != [False, True]:
            continue
        small = gone.iloc[[s < K for s in sizes].index(True)]
        large = gone.iloc[[s >= K for s in sizes].index(True)]
        for _, g in group[~group["suppressed"]].iterrows():
            same_peer = wave[(wave["peer_group"] == g["peer_group"]) & (wave["unit"] != g["unit"])
                             & (wave["breakdown"] == g["breakdown"]) & (wave["grp"] == g["grp"])
                             & (wave["measure_kind"] == g["measure_kind"])
                             & (wave["measure"] == g["measure"]) & ~wave["suppressed"]]
            for _, y in same_peer.iterrows():
                shutil.copyfile(old, out)
                with duckdb.connect(str(out)) as con:
                    con.execute(f"update cells set suppressed = false, n = ? where {where}",
                                [int(max(sizes)), *[_plain(large[c]) for c in KEY]])
                    for cell in (g, y):
                        con.execute(
                            f"update cells set suppressed = true, n = null, mean = null, "
                            f"sd = null, se = null, ci_low = null, ci_high = null, "
                            f"mean_0_10 = null, pct_favourable = null, "
                            f"pct_unfavourable = null where {where}",
                            [_plain(cell[c]) for c in KEY])
                    alone = check_cells(con, K)
                if not alone.problems:
                    return tuple(_plain(small[c]) for c in KEY), int(min(sizes))
    return None


def test_the_attack_finds_a_flipped_complementary_cell_and_the_verifier_refuses_it(
        frozen, tmp_path):
    """Showing, in the new layer, the complementary cell that hid a small group in the
    old one (and hiding another): each layer alone is safe, together they are not."""
    settings = _copy(frozen, tmp_path / "flip")
    old = frozen.db_path.with_name("v1.published.duckdb")
    assert culture("waves", "unfreeze", 2025, "--reason", "site code corrected", "--db",
                   settings.db_path).returncode == 0
    with open_store(settings.db_path, read_only=True) as con:
        truth = {tuple(r[:-1]): r[-1] for r in con.execute(
            f"select {', '.join(KEY)}, n from suppression_log").fetchall()}
    planted = tmp_path / "flipped.published.duckdb"
    flipped = _flip(old, truth, planted)
    assert flipped is not None, "no site breakdown of the sample to flip"
    key, n = flipped
    alone = attack({"v2": planted})
    assert ("v2", key) not in alone["recovered"]       # safe on its own
    found = attack({"v1": old, "v2": planted})
    assert _small(found["recovered"]).get(("v1", key)) == n or \
        _small(found["recovered"]).get(("v2", key)) == n
    message = _union_error(settings, planted)
    assert "hidden cell recoverable: wave 2025" in message
    assert f"site {key[2]} {key[3]}={key[4]} scale {key[6]} n={n}" in message
    assert "combining versions published of wave 2025 with the new layer" in message
