"""The held layer file (issue 25): each run's published layer starts from a copy of it.

`pipeline.waves.held_layer` keeps the frozen waves' held rows as a DuckDB file beside
the store, so a run copies ten years of them as a file instead of writing them again.
It is only a copy: these tests attack it. Whatever happens to the file (a wave frozen
or unfrozen since, the file deleted, edited or replaced by garbage), the frozen waves'
published rows must be exactly the store's held rows, and the layer the same as one
built with no file at all.
"""

from __future__ import annotations

import dataclasses
import shutil

import duckdb
import pytest

from pipeline.run import run_pipeline
from pipeline.store import load_reference_data, open_store
from pipeline.waves import HELD_LAYER_STATE, freeze_wave, unfreeze_wave
from survey.settings import SAMPLES_DIR, Settings
from tests.test_incremental_runs import (FROZEN, NEW, RUN_KEYS, _same, _split_sample,
                                         _tables, _wave_bytes)


def _held_layer_rows(settings: Settings) -> dict[str, list[tuple]]:
    """Every table of the held layer file, rows sorted (the state table apart)."""
    con = duckdb.connect(str(settings.held_layer_path), read_only=True)
    try:
        names = [r[0] for r in con.execute(
            "select table_name from information_schema.tables order by 1").fetchall()]
        return {name: con.execute(f'select * from "{name}" order by all').fetchall()
                for name in names}
    finally:
        con.close()


def _held_cell_waves(settings: Settings) -> set[int]:
    con = duckdb.connect(str(settings.held_layer_path), read_only=True)
    try:
        return {w for (w,) in con.execute("select distinct wave from cells").fetchall()}
    finally:
        con.close()


def _store_held_rows(settings: Settings) -> dict[str, list[tuple]]:
    with open_store(settings.db_path, read_only=True) as con:
        names = [r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_name like "
            "'held\\_%' escape '\\' order by 1").fetchall()]
        return {name[len("held_"):]: con.execute(f'select * from "{name}" order by all'
                                                 ).fetchall() for name in names}


def _frozen_state(settings: Settings) -> list[tuple]:
    with open_store(settings.db_path, read_only=True) as con:
        return con.execute("select wave, fingerprint from frozen_waves order by wave"
                           ).fetchall()


def _layers_agree(a, b) -> None:
    """Two published layers agree table by table (meta apart from when it ran)."""
    a, b = _tables(a), _tables(b)
    assert sorted(a) == sorted(b)
    for name in a:
        x, y = a[name], b[name]
        if name == "meta":
            x, y = (m[~m["key"].isin(list(RUN_KEYS))].reset_index(drop=True) for m in (x, y))
        _same(x, y, name)


@pytest.fixture(scope="module")
def store(tmp_path_factory, instrument):
    """Waves 2024-2025 run and frozen, 2026 ingested and run (incremental)."""
    folder = tmp_path_factory.mktemp("held_layer")
    early, new = _split_sample(folder)
    settings = Settings(db_path=folder / "store.duckdb")
    with open_store(settings.db_path) as con:
        load_reference_data(con, SAMPLES_DIR, instrument)
    run_pipeline(settings, instrument, [early])
    with open_store(settings.db_path) as con:
        for wave in FROZEN:
            freeze_wave(con, wave, settings.published_path, "test", "tester")
    before = _wave_bytes(settings.published_path, FROZEN)
    run_pipeline(settings, instrument, [new])
    return settings, before


def _copy(settings: Settings, folder) -> Settings:
    """The store, its published layer and its held layer file, copied into `folder`."""
    copied = dataclasses.replace(settings, db_path=folder / "store.duckdb")
    for source, target in ((settings.db_path, copied.db_path),
                           (settings.published_path, copied.published_path),
                           (settings.held_layer_path, copied.held_layer_path)):
        if source.exists():
            shutil.copyfile(source, target)
    return copied


def test_the_file_holds_exactly_the_frozen_waves_held_rows(store):
    settings, before = store
    rows = _held_layer_rows(settings)
    state = rows.pop(HELD_LAYER_STATE)
    assert state == _frozen_state(settings) and [w for w, _ in state] == list(FROZEN)
    assert rows == _store_held_rows(settings)
    assert {"cells", "trends", "drivers"} <= set(rows) and len(rows["cells"]) > 1000
    # The published layer the copy started from: frozen rows as published before 2026.
    assert _wave_bytes(settings.published_path, FROZEN) == before


def test_a_wave_frozen_later_is_added_and_an_unfrozen_one_taken_out(store, tmp_path,
                                                                   instrument):
    settings = _copy(store[0], tmp_path)
    with open_store(settings.db_path) as con:
        freeze_wave(con, NEW, settings.published_path, "test", "tester")
    run_pipeline(settings, instrument)        # every wave frozen: the layer is held rows
    rows = _held_layer_rows(settings)
    assert [w for w, _ in rows.pop(HELD_LAYER_STATE)] == [*FROZEN, NEW]
    assert rows == _store_held_rows(settings)
    assert _held_cell_waves(settings) == {*FROZEN, NEW}

    with open_store(settings.db_path) as con:
        unfreeze_wave(con, 2025, "late batch from a site", "tester")
    run_pipeline(settings, instrument)
    rows = _held_layer_rows(settings)
    assert [w for w, _ in rows.pop(HELD_LAYER_STATE)] == [2024, NEW]
    assert rows == _store_held_rows(settings)
    assert _held_cell_waves(settings) == {2024, NEW}
    # The layer equals one built with no held layer file at all.
    kept = tmp_path / "kept.duckdb"
    shutil.copyfile(settings.published_path, kept)
    settings.held_layer_path.unlink()
    run_pipeline(settings, instrument)
    _layers_agree(kept, settings.published_path)


@pytest.mark.parametrize("damage", ["edited", "garbage", "deleted", "state lies"])
def test_a_damaged_held_layer_never_reaches_the_published_layer(store, tmp_path,
                                                                instrument, damage):
    settings, before = store
    settings = _copy(settings, tmp_path)
    reference = tmp_path / "reference.duckdb"
    shutil.copyfile(settings.published_path, reference)
    path = settings.held_layer_path
    if damage == "edited":
        # A held mean moved, the state left saying the file is up to date.
        con = duckdb.connect(str(path))
        changed = con.execute("update cells set mean = mean + 1 where wave = 2024 and "
                              "mean is not null and level = 'site'").fetchall()[0][0]
        con.close()
        assert changed > 0
    elif damage == "garbage":
        path.write_bytes(b"not a database" * 100)
    elif damage == "deleted":
        path.unlink()
    else:
        # The state claims a wave the file does not hold.
        con = duckdb.connect(str(path))
        con.execute("delete from cells where wave = 2025")
        con.close()
    run_pipeline(settings, instrument)
    # The frozen waves are published exactly as before, and the file is sound again.
    assert _wave_bytes(settings.published_path, FROZEN) == before
    _layers_agree(reference, settings.published_path)
    rows = _held_layer_rows(settings)
    assert rows.pop(HELD_LAYER_STATE) == _frozen_state(settings)
    assert rows == _store_held_rows(settings)
