"""The store: schema versions and migration, reference data, the one-writer rule, settings."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from pipeline.store import (SCHEMA_VERSION, Site, add_sites, add_wave, load_headcounts_csv,
                            load_sites_csv, migrate, open_store, read_sql, schema_version)
from survey.errors import ReferenceDataError, SettingsError, StoreError
from survey.settings import resolve_settings


def test_new_store_has_every_table_at_the_current_version(tmp_path):
    with open_store(tmp_path / "s.duckdb") as con:
        tables = {r[0] for r in con.execute("select table_name from information_schema.tables")
                  .fetchall()}
        assert schema_version(con) == SCHEMA_VERSION == 3
    assert {"sites", "site_headcounts", "waves", "instruments", "ingest_batches", "responses",
            "quarantine", "schema_version", "frozen_waves", "wave_events",
            "cell_versions", "cell_version_marks"} <= tables


def test_reopening_does_not_migrate_again(tmp_path):
    path = tmp_path / "s.duckdb"
    with open_store(path) as con:
        add_wave(con, 2025)
    with open_store(path) as con:
        assert con.execute("select count(*) from schema_version").fetchone()[0] == 3
        assert con.execute("select wave from waves").fetchall() == [(2025,)]


def test_a_later_migration_upgrades_an_old_file_and_keeps_its_data(tmp_path):
    path = tmp_path / "old.duckdb"
    with open_store(path) as con:
        add_wave(con, 2024)
    extra = {"v4.sql": "alter table waves add column closes date;"}
    con = duckdb.connect(str(path))
    try:
        version = migrate(con, path, migrations=((1, "schema_v1.sql"), (2, "schema_v2.sql"),
                                                 (3, "schema_v3.sql"), (4, "v4.sql")),
                          sql_reader=lambda name: extra.get(name) or read_sql(name))
        assert version == 4
        assert con.execute("select wave, closes from waves").fetchall() == [(2024, None)]
    finally:
        con.close()


def test_a_failed_migration_leaves_the_old_version(tmp_path):
    path = tmp_path / "old.duckdb"
    with open_store(path):
        pass
    con = duckdb.connect(str(path))
    try:
        with pytest.raises(duckdb.Error):
            migrate(con, path, migrations=((1, "schema_v1.sql"), (2, "schema_v2.sql"),
                                           (3, "schema_v3.sql"), (4, "bad.sql")),
                    sql_reader=lambda name: "alter table nope add column x int;"
                    if name == "bad.sql" else read_sql(name))
        assert schema_version(con) == 3
    finally:
        con.close()


def test_a_store_from_a_newer_program_is_refused(tmp_path):
    path = tmp_path / "new.duckdb"
    with open_store(path) as con:
        con.execute("insert into schema_version values (99, now())")
    with pytest.raises(StoreError, match="schema version 99, newer than this program"):
        with open_store(path):
            pass


def test_a_second_writer_gets_a_clear_message(tmp_path):
    path = tmp_path / "s.duckdb"
    with open_store(path):
        pass
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import duckdb, sys, time
        con = duckdb.connect({str(path)!r})
        print("holding", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(StoreError, match="in use by another process"):
            with open_store(path):
                pass
    finally:
        holder.kill()
        holder.wait()


def test_sites_and_headcounts_load_and_bad_rows_are_named(tmp_path, instrument):
    sites = tmp_path / "sites.csv"
    sites.write_text("site_code,name,site_type,region\na,Alpha Trust,acute_trust,South West\n"
                     "B,Beta Support,independent_support_org,National\n", encoding="utf-8")
    heads = tmp_path / "heads.csv"
    heads.write_text("site_code,staff_group,headcount\nA,consultant,120\nA,foundation,40\n")
    with open_store(tmp_path / "s.duckdb") as con:
        assert load_sites_csv(con, sites) == 2
        assert load_headcounts_csv(con, heads, instrument) == 2
        assert con.execute("select site_code, site_type from sites order by 1").fetchall() == [
            ("A", "acute_trust"), ("B", "independent_support_org")]
        with pytest.raises(ReferenceDataError, match="column site_type: 'hospital' is not a site"):
            add_sites(con, [Site("C", "Gamma", "hospital")])
        bad = tmp_path / "bad_heads.csv"
        bad.write_text("site_code,staff_group,headcount\nA,surgeon,3\n")
        with pytest.raises(ReferenceDataError, match="row 2, column staff_group: 'surgeon'"):
            load_headcounts_csv(con, bad, instrument)
        # A corrected file replaces what was stored; within one file the last row wins.
        heads.write_text("site_code,staff_group,headcount\nA,consultant,125\n"
                         "B,consultant,7\nB,consultant,9\n")
        assert load_headcounts_csv(con, heads, instrument) == 3
        assert con.execute("select * from site_headcounts order by all").fetchall() == [
            ("A", "consultant", 125), ("A", "foundation", 40), ("B", "consultant", 9)]
        add_sites(con, [Site("b", "Beta Renamed", "primary_care")])
        assert con.execute("select name, site_type, region from sites where site_code = 'B'"
                           ).fetchall() == [("Beta Renamed", "primary_care", None)]


@pytest.mark.parametrize("flag, env, expected", [
    ("flag.duckdb", {"CULTURE_DB": "env.duckdb"}, "flag.duckdb"),
    (None, {"CULTURE_DB": "env.duckdb"}, "env.duckdb"),
    (None, {}, "culture.duckdb"),
])
def test_settings_precedence_is_flag_then_environment_then_default(flag, env, expected):
    assert resolve_settings(db=flag, environ=env).db_path == Path(expected)


def test_minimum_group_size_can_never_go_below_five():
    assert resolve_settings(environ={"CULTURE_MIN_GROUP_SIZE": "12"}).min_group_size == 12
    with pytest.raises(SettingsError, match="below the floor of 5"):
        resolve_settings(min_group_size=3, environ={})
    with pytest.raises(SettingsError, match="is not a whole number"):
        resolve_settings(environ={"CULTURE_MIN_GROUP_SIZE": "ten"})


def test_excluding_flagged_respondents_is_an_explicit_setting():
    assert resolve_settings(environ={}).exclude_flagged is False
    assert resolve_settings(environ={"CULTURE_EXCLUDE_FLAGGED": "yes"}).exclude_flagged is True
    assert resolve_settings(exclude_flagged=False,
                            environ={"CULTURE_EXCLUDE_FLAGGED": "yes"}).exclude_flagged is False
    with pytest.raises(SettingsError, match="use yes or no"):
        resolve_settings(environ={"CULTURE_EXCLUDE_FLAGGED": "maybe"})


def test_factor_analyzer_works_with_the_pinned_scikit_learn():
    """factor_analyzer 0.5.1 breaks on scikit-learn >= 1.8; the pin must keep it working."""
    import numpy as np
    import sklearn
    from factor_analyzer import FactorAnalyzer

    major, minor = (int(p) for p in sklearn.__version__.split(".")[:2])
    assert (major, minor) < (1, 8)
    rng = np.random.default_rng(7)
    factor = rng.normal(size=(400, 1))
    data = factor @ np.full((1, 5), 0.8) + rng.normal(scale=0.6, size=(400, 5))
    fitted = FactorAnalyzer(n_factors=1, rotation=None).fit(data)
    assert np.all(np.abs(fitted.loadings_) > 0.6)


def test_a_run_caps_duckdbs_memory_as_set(tmp_path):
    """The run's connection holds DuckDB to the setting (default 3GB; CULTURE_MEMORY_LIMIT),
    and a setting that is not a size is refused before anything is opened."""
    from survey.errors import SettingsError
    from survey.settings import resolve_settings

    assert resolve_settings(environ={}).memory_limit == "3GB"
    chosen = resolve_settings(db=tmp_path / "s.duckdb",
                              environ={"CULTURE_MEMORY_LIMIT": "512MB"})
    with open_store(chosen.db_path, memory_limit=chosen.memory_limit) as con:
        limit = con.execute("select current_setting('memory_limit')").fetchone()[0]
    assert limit == "488.2 MiB"                       # DuckDB shows 512 MB in MiB
    with pytest.raises(SettingsError, match="'plenty' is not a size like 3GB"):
        resolve_settings(environ={"CULTURE_MEMORY_LIMIT": "plenty"})


def test_freezing_from_a_damaged_layer_says_so_without_a_traceback(tmp_path):
    from pipeline.waves import WaveStateError, freeze_wave

    layer = tmp_path / "s.published.duckdb"
    layer.write_bytes(b"not a database at all" * 100)
    with open_store(tmp_path / "s.duckdb") as con:
        with pytest.raises(WaveStateError, match="not a published layer this program can "
                                                 "read .*run `culture run` to write it again"):
            freeze_wave(con, 2025, layer)
        assert con.execute("select count(*) from frozen_waves").fetchone()[0] == 0
