"""Frozen waves held as published and incremental runs (issue 25, points 1 and 2).

A real store of the committed sample's three waves: waves 2024-2025 are run and
frozen, wave 2026's answers arrive, and an incremental run (reading only 2026's
respondents) must publish, table by table and row by row, what a full run publishes;
the frozen waves' rows must be byte-for-byte those published before 2026 arrived.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from pipeline.run import run_pipeline
from pipeline.store import load_reference_data, open_store
from pipeline.waves import freeze_wave, frozen_waves, unfreeze_wave
from survey.settings import SAMPLES_DIR, Settings

FROZEN = (2024, 2025)
NEW = 2026
#: Published tables describing the run rather than the waves (meta says when it ran).
RUN_KEYS = ("published_on",)
#: Two runs over the same respondents agree to the last bits only: DuckDB's parallel
#: sums of doubles (scale scores are fractions) add in a different order each run. Text,
#: integers and flags are compared exactly; floats to this relative tolerance.
RTOL = 1e-9


def _same(a: pd.DataFrame, b: pd.DataFrame, name: str) -> None:
    assert list(a.columns) == list(b.columns), name
    assert len(a) == len(b), (name, len(a), len(b))
    floats = [c for c in a.columns if pd.api.types.is_float_dtype(a[c])]
    rest = [c for c in a.columns if c not in floats]
    pd.testing.assert_frame_equal(a[rest], b[rest], check_exact=True, obj=name)
    if floats:
        pd.testing.assert_frame_equal(a[floats], b[floats], check_exact=False, rtol=RTOL,
                                      atol=1e-12, obj=name)


def _split_sample(folder: Path, sample: str = "responses_clean.csv") -> tuple[Path, Path]:
    """A committed sample as two files: waves 2024-2025, and wave 2026."""
    with (SAMPLES_DIR / sample).open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    header = list(rows[0])
    paths = []
    for name, keep in (("early.csv", lambda w: int(w) in FROZEN),
                       ("new.csv", lambda w: int(w) == NEW)):
        path = folder / name
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=header)
            writer.writeheader()
            writer.writerows(r for r in rows if keep(r["wave"]))
        paths.append(path)
    return paths[0], paths[1]


def _tables(path: Path) -> dict[str, pd.DataFrame]:
    """Every table of a published file, rows sorted by every column."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        names = [r[0] for r in con.execute(
            "select table_name from information_schema.tables order by 1").fetchall()]
        return {name: con.execute(f'select * from "{name}" order by all').df()
                for name in names}
    finally:
        con.close()


def _wave_bytes(path: Path, waves) -> dict[str, str]:
    """Per table with a wave column: a hash of its rows of `waves`, sorted, as CSV bytes
    with every value's exact digits (floats written with repr, no rounding)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [r[0] for r in con.execute(
            "select distinct table_name from information_schema.columns "
            "where column_name = 'wave' order by 1").fetchall()]
        listed = ", ".join(map(str, waves))
        out = {}
        for table in tables:
            frame = con.execute(f'select * from "{table}" where wave in ({listed}) '
                                f'order by all').df()
            buffer = io.StringIO()
            frame.to_csv(buffer, index=False, float_format="%r")
            types = con.execute(f'describe "{table}"').fetchall()
            out[table] = hashlib.sha256((repr(types) + buffer.getvalue()).encode()).hexdigest()
        return out
    finally:
        con.close()


@pytest.fixture(scope="module")
def frozen_then_new(tmp_path_factory, instrument):
    """(settings, before, incremental, full): the frozen waves' bytes before wave 2026
    arrived, and the tables of the incremental run and of the full run after."""
    folder = tmp_path_factory.mktemp("incremental")
    early, new = _split_sample(folder)
    settings = Settings(db_path=folder / "store.duckdb")
    with open_store(settings.db_path) as con:
        load_reference_data(con, SAMPLES_DIR, instrument)
    first = run_pipeline(settings, instrument, [early])
    assert first.published.waves_computed == FROZEN and first.published.waves_held == ()
    with open_store(settings.db_path) as con:
        for wave in FROZEN:
            assert freeze_wave(con, wave, settings.published_path, "test", "tester") > 0
        assert frozen_waves(con) == list(FROZEN)
    before = _wave_bytes(settings.published_path, FROZEN)
    before_tables = _tables(settings.published_path)

    incremental = run_pipeline(settings, instrument, [new])
    incremental_copy = folder / "incremental.published.duckdb"
    incremental_copy.write_bytes(settings.published_path.read_bytes())
    full = run_pipeline(settings, instrument, full=True)
    return dataclasses.make_dataclass("Runs", ["settings", "before", "before_tables",
                                               "incremental", "incremental_path", "full"])(
        settings, before, before_tables, incremental, incremental_copy, full)


def test_incremental_run_computes_only_the_new_wave(frozen_then_new):
    report = frozen_then_new.incremental
    assert report.scope.computed == (NEW,) and report.scope.frozen == FROZEN
    assert report.published.waves_computed == (NEW,)
    assert report.published.waves_held == FROZEN
    # The psychometrics read 2026's respondents only: every per-wave row is of 2026.
    waves = {r.wave for r in report.psychometrics.reliability if r.wave is not None}
    assert waves == {NEW}
    assert {row.wave for row in report.psychometrics.data_quality.by_site} == {NEW}
    assert report.psychometrics.data_quality.totals["respondents"] == 1190
    full = frozen_then_new.full
    assert full.scope.computed == (*FROZEN, NEW) and full.scope.pooled == (NEW,)


def test_meta_says_which_waves_were_computed_and_which_held(frozen_then_new):
    meta = dict(map(tuple, _tables(frozen_then_new.incremental_path)["meta"][
        ["key", "value"]].to_numpy()))
    assert meta["waves_computed"] == "2026"
    assert meta["waves_held"] == "2024,2025"
    assert meta["run_mode"] == "incremental"
    assert meta["waves_pooled"] == "2026"
    assert "open wave(s) 2026" in meta["pooled_rows"]
    full_meta = dict(map(tuple, _tables(frozen_then_new.settings.published_path)["meta"][
        ["key", "value"]].to_numpy()))
    assert full_meta["run_mode"] == "full" and full_meta["waves_held"] == "2024,2025"


def test_incremental_layer_equals_the_full_runs(frozen_then_new):
    incremental = _tables(frozen_then_new.incremental_path)
    full = _tables(frozen_then_new.settings.published_path)
    assert sorted(incremental) == sorted(full)
    for name in incremental:
        a, b = incremental[name], full[name]
        if name == "meta":      # which mode ran, and when: the rest must agree
            a, b = (m[~m["key"].isin(["run_mode", *RUN_KEYS])].reset_index(drop=True)
                    for m in (a, b))
        _same(a, b, name)
    # ... and the layer is not trivially empty: 2026 has comparisons with 2025.
    trends = incremental["trends"]
    assert set(trends["wave"]) == {2025, 2026}
    assert (trends[trends["wave"] == NEW]["previous_wave"] == 2025).all()
    assert len(incremental["cells"][incremental["cells"]["wave"] == NEW]) > 1000


def test_frozen_waves_published_rows_are_byte_for_byte_unchanged(frozen_then_new):
    before = frozen_then_new.before
    assert {"cells", "benchmarks", "trends", "item_benchmarks", "item_answers",
            "reliability", "data_quality", "funnel", "equity"} <= set(before)
    for path in (frozen_then_new.incremental_path, frozen_then_new.settings.published_path):
        after = _wave_bytes(path, FROZEN)
        changed = sorted(t for t in before if after.get(t) != before[t])
        assert not changed, f"{path.name}: frozen rows changed in {changed}"
    # Not vacuous: the hashes see a changed value.
    old = frozen_then_new.before_tables["cells"]
    assert len(old[old["wave"].isin(FROZEN)]) > 1000


def test_new_wave_benchmarks_use_last_years_published_cells(frozen_then_new):
    tables = _tables(frozen_then_new.incremental_path)
    cells = tables["cells"]
    last = cells[(cells["wave"] == 2025) & (cells["level"] == "site")
                 & (cells["breakdown"] == "all") & (cells["measure_kind"] == "item")]
    rows = tables["item_benchmarks"]
    rows = rows[(rows["wave"] == NEW) & rows["previous_wave"].notna()]
    assert len(rows)
    paired = rows.merge(last, left_on=["site_code", "measure"], right_on=["unit", "measure"])
    assert len(paired) == len(rows)
    assert (paired["pct_previous"] == paired["pct_favourable_y"]).all()


def test_a_run_with_every_wave_frozen_keeps_the_layer(frozen_then_new, tmp_path, instrument):
    settings = dataclasses.replace(frozen_then_new.settings,
                                   db_path=tmp_path / "store.duckdb")
    settings.db_path.write_bytes(frozen_then_new.settings.db_path.read_bytes())
    settings.published_path.write_bytes(frozen_then_new.incremental_path.read_bytes())
    before = _tables(settings.published_path)
    with open_store(settings.db_path) as con:
        freeze_wave(con, NEW, settings.published_path, "test", "tester")
    report = run_pipeline(settings, instrument)
    assert report.psychometrics is None
    assert report.published.waves_computed == () and report.published.waves_held == (
        *FROZEN, NEW)
    assert "kept as last published (from wave(s) 2026)" in report.published.pooled_note
    meta = dict(map(tuple, _tables(settings.published_path)["meta"][["key", "value"]]
                    .to_numpy()))
    assert meta["waves_computed"] == "" and meta["waves_pooled"] == "2026"
    after = _tables(settings.published_path)
    assert sorted(after) == sorted(before)
    for name in before:
        if name == "meta":
            continue
        # Nothing recomputed: held and pooled rows exactly as they were.
        pd.testing.assert_frame_equal(after[name], before[name], check_exact=True, obj=name)
    # The pooled rows (validation, overall reliability) are as last published.
    assert len(after["validation"]) > 0
    assert after["reliability"]["wave"].isna().sum() > 0
    # A full run with every wave frozen recomputes them all and still publishes the held
    # rows, and the pooled rows as last published.
    full = run_pipeline(settings, instrument, full=True)
    assert full.scope.computed == (*FROZEN, NEW) and full.scope.pooled == ()
    assert "kept as last published" in full.published.pooled_note
    recomputed = _tables(settings.published_path)
    for name in before:
        if name != "meta":
            pd.testing.assert_frame_equal(recomputed[name], before[name], check_exact=True,
                                          obj=name)
    # Unfreezing 2026 brings it back into the next run's computation.
    with open_store(settings.db_path) as con:
        unfreeze_wave(con, NEW, "late batch", "tester")
    again = run_pipeline(settings, instrument)
    assert again.published.waves_computed == (NEW,)
    rerun = _tables(settings.published_path)
    for name in before:
        if name != "meta":
            _same(rerun[name], before[name], name)


def test_culture_run_full_says_what_it_computed_and_held(frozen_then_new, tmp_path):
    from tests.conftest import culture

    db = tmp_path / "store.duckdb"
    db.write_bytes(frozen_then_new.settings.db_path.read_bytes())
    settings = dataclasses.replace(frozen_then_new.settings, db_path=db)
    settings.published_path.write_bytes(frozen_then_new.incremental_path.read_bytes())
    done = culture("run", "--full", "--db", db, "--reports", tmp_path / "reports")
    assert done.exit_code == 0, done.stdout + done.stderr
    text = " ".join(done.stdout.split())
    assert "waves computed: 2026; held as published (frozen): 2024, 2025" in text
    assert "describe the open wave(s) 2026" in text
    meta = dict(map(tuple, _tables(settings.published_path)["meta"][
        ["key", "value"]].to_numpy()))
    assert meta["run_mode"] == "full"
    # The frozen waves' rows are still those published before 2026 arrived.
    assert _wave_bytes(settings.published_path, FROZEN) == frozen_then_new.before


def test_with_flagged_respondents_left_out_incremental_equals_full(tmp_path, instrument):
    """The dirty sample (speeders and straight-liners in every wave), flagged
    respondents excluded: the incremental run flags and leaves out 2026's alone."""
    early, new = _split_sample(tmp_path, "responses_dirty.csv")
    settings = Settings(db_path=tmp_path / "store.duckdb", exclude_flagged=True)
    with open_store(settings.db_path) as con:
        load_reference_data(con, SAMPLES_DIR, instrument)
    run_pipeline(settings, instrument, [early])
    with open_store(settings.db_path) as con:
        for wave in FROZEN:
            freeze_wave(con, wave, settings.published_path, "test", "tester")
        flagged_before = con.execute("select wave, count(*) filter (where flagged) "
                                     "from response_flags group by 1 order by 1").fetchall()
    before = _wave_bytes(settings.published_path, FROZEN)
    incremental = run_pipeline(settings, instrument, [new])
    flags = incremental.psychometrics.data_quality.totals
    assert flags["respondents"] == 1190 and flags["flagged"] == 47
    with open_store(settings.db_path) as con:
        # 2024-2025's flags stay as decided when they were published; 2026's are added.
        assert con.execute("select wave, count(*) filter (where flagged) from response_flags "
                           "group by 1 order by 1").fetchall() == flagged_before + [(NEW, 47)]
    copy = tmp_path / "incremental.duckdb"
    copy.write_bytes(settings.published_path.read_bytes())
    run_pipeline(settings, instrument, full=True)
    incremental_tables, full_tables = _tables(copy), _tables(settings.published_path)
    for name in incremental_tables:
        a, b = incremental_tables[name], full_tables[name]
        if name == "meta":
            a, b = (m[~m["key"].isin(["run_mode", *RUN_KEYS])].reset_index(drop=True)
                    for m in (a, b))
        _same(a, b, name)
    cells = incremental_tables["cells"]
    national = cells[(cells["wave"] == NEW) & (cells["level"] == "national")
                     & (cells["breakdown"] == "all") & (cells["measure_kind"] == "responses")]
    assert national["n"].tolist() == [1190 - 47]
    for path in (copy, settings.published_path):
        assert _wave_bytes(path, FROZEN) == before


def test_a_late_batch_for_a_frozen_wave_changes_nothing_published(frozen_then_new, tmp_path,
                                                                   instrument):
    """Answers arriving for a frozen wave are stored but not published, nor suppressed
    again: correcting a frozen wave is an explicit unfreeze, never a side effect."""
    settings = dataclasses.replace(frozen_then_new.settings, db_path=tmp_path / "s.duckdb")
    settings.db_path.write_bytes(frozen_then_new.settings.db_path.read_bytes())
    settings.published_path.write_bytes(frozen_then_new.incremental_path.read_bytes())
    with (SAMPLES_DIR / "responses_clean.csv").open(encoding="utf-8", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["wave"] == "2024" and r["site"] == "A"]
    late = [r | {"response_id": r["response_id"] + "-late"} for r in rows[:15]]
    path = tmp_path / "late.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(late[0]))
        writer.writeheader()
        writer.writerows(late)
    report = run_pipeline(settings, instrument, [path])
    assert report.ingests[0].rows_accepted == 15
    assert report.published.waves_computed == (NEW,)
    with open_store(settings.db_path) as con:
        stored = con.execute("select count(*) from responses where wave = 2024 "
                             "and site_code = 'A'").fetchall()[0][0]
    assert stored == len(rows) + 15
    assert _wave_bytes(settings.published_path, FROZEN) == frozen_then_new.before
    cells = _tables(settings.published_path)["cells"]
    site_a = cells[(cells["wave"] == 2024) & (cells["unit"] == "A")
                   & (cells["breakdown"] == "all") & (cells["measure_kind"] == "responses")]
    assert site_a["n"].tolist() == [len(rows)]
