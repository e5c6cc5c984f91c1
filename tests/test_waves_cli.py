"""`culture waves freeze / unfreeze / log`, `waves close --freeze` and `status`, run as a
person runs them: real `culture` processes on a real store and published layer (issue 25).

A freeze holds a wave as published, so it is refused, kindly and without a traceback,
whenever the published layer does not show the wave as the store has it.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import duckdb
import pytest

from collect.inbox import Inbox, closed_waves
from pipeline.ingest.files import ingest_file
from pipeline.store import open_store
from survey.settings import Settings
from tests.conftest import full_answers, response_row, write_csv
from tests.live import CULTURE


def culture(*args: object) -> subprocess.CompletedProcess:
    """`culture ARGS...` as a process in a clean environment (no CULTURE_* variables)."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("CULTURE_")} | {"COLUMNS": "200"}
    return subprocess.run([str(CULTURE), *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)


def refused(result: subprocess.CompletedProcess) -> str:
    """The one-line error of a refused command (exit 1, no traceback), as one line."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")
    return " ".join(result.stderr.split())


@pytest.fixture
def published(tmp_path, _published_template) -> Settings:
    """A fresh copy of the sample store (waves 2024-2026) and its published layer."""
    template, _ = _published_template
    settings = Settings(db_path=tmp_path / "store.duckdb")
    shutil.copyfile(template.db_path, settings.db_path)
    shutil.copyfile(template.published_path, settings.published_path)
    return settings


def _frozen(settings: Settings) -> list[tuple]:
    with open_store(settings.db_path, read_only=True) as con:
        return con.execute("select wave, version from frozen_waves order by wave").fetchall()


def test_freeze_needs_a_closed_wave_then_holds_it_and_says_so(published):
    db = published.db_path
    message = refused(culture("waves", "freeze", 2025, "--db", db))
    assert "wave 2025 is still open for answers in the web form" in message
    assert "culture waves close 2025 --freeze" in message
    assert _frozen(published) == [] and 2025 not in closed_waves(published.inbox_path)

    done = culture("waves", "freeze", 2025, "--close", "--reason", "board report signed off",
                   "--db", db)
    assert done.returncode == 0, done.stderr
    assert "wave 2025 closed" in done.stdout
    assert "wave 2025 frozen (version 1)" in done.stdout
    assert _frozen(published) == [(2025, 1)] and 2025 in closed_waves(published.inbox_path)
    with open_store(db, read_only=True) as con, \
            duckdb.connect(str(published.published_path), read_only=True) as layer:
        held = con.execute("select count(*) from held_cells where wave = 2025").fetchone()[0]
        shown = layer.execute("select count(*) from cells where wave = 2025").fetchone()[0]
    assert held == shown > 0

    again = refused(culture("waves", "freeze", 2025, "--close", "--db", db))
    assert "wave 2025 is already frozen" in again

    log = culture("waves", "log", "--db", db)
    assert log.returncode == 0
    assert "freeze" in log.stdout and "board report signed off" in log.stdout

    status = culture("status", "--db", db)
    assert status.returncode == 0, status.stderr
    assert "wave 2025: frozen (version 1)" in status.stdout
    assert "board report signed off; runs publish it unchanged" in status.stdout


def test_close_freeze_is_one_step(published):
    done = culture("waves", "close", 2024, "--freeze", "--db", published.db_path)
    assert done.returncode == 0, done.stderr
    assert "wave 2024 frozen (version 1)" in done.stdout
    assert _frozen(published) == [(2024, 1)]
    assert 2024 in closed_waves(published.inbox_path)


def test_no_layer_or_a_wave_it_lacks_is_refused(published, tmp_path):
    published.published_path.unlink()
    message = refused(culture("waves", "freeze", 2025, "--close", "--db", published.db_path))
    assert "wave 2025 cannot be frozen: no published layer yet" in message
    assert "culture run" in message
    # Refused before closing: a freeze that cannot happen leaves the form as it was.
    assert _frozen(published) == [] and 2025 not in closed_waves(published.inbox_path)
    unknown = refused(culture("waves", "freeze", 2031, "--db", published.db_path))
    assert "wave 2031 is not in the store" in unknown


def test_answers_ingested_after_the_layer_are_refused(published, tmp_path, instrument,
                                                      definition_yaml):
    late = write_csv(tmp_path / "late.csv",
                     [response_row(instrument, f"LATE-{i}", site="C", wave="2025")
                      for i in range(3)])
    with open_store(published.db_path) as con:
        ingest_file(con, late, instrument, definition_yaml)
    message = refused(culture("waves", "freeze", 2025, "--close", "--db", published.db_path))
    assert "3 of its responses were ingested after the published layer was written" in message
    assert "late.csv" in message and "Run `culture run`" in message
    assert _frozen(published) == []
    # Another wave's layer is still current: 2024 freezes.
    assert culture("waves", "freeze", 2024, "--close", "--db",
                   published.db_path).returncode == 0


def test_a_layer_counting_other_responses_is_refused(published, tmp_path, instrument,
                                                     definition_yaml):
    """A layer copied in later (its file time says nothing) is caught by its count."""
    late = write_csv(tmp_path / "late.csv",
                     [response_row(instrument, f"LATE-{i}", site="C", wave="2025")
                      for i in range(2)])
    with open_store(published.db_path) as con:
        ingest_file(con, late, instrument, definition_yaml)
        stored = con.execute("select count(*) from responses where wave = 2025").fetchone()[0]
    layer = published.published_path.read_bytes()
    published.published_path.unlink()
    published.published_path.write_bytes(layer)          # written after the ingest
    message = refused(culture("waves", "freeze", 2025, "--close", "--db", published.db_path))
    assert f"the store holds {stored} of its responses but the published layer counts " \
           f"{stored - 2}" in message


def test_answers_waiting_in_the_inbox_are_refused(published, instrument):
    inbox = Inbox(published.inbox_path)
    try:
        answers = full_answers(instrument) | {"staff_group": "consultant", "pmq": "uk"}
        for number in range(2):
            assert inbox.submit(f"web-{number}", "C", 2025, answers) == "stored"
    finally:
        inbox.close()
    message = refused(culture("waves", "freeze", 2025, "--close", "--db", published.db_path))
    assert "2 web answer(s) of it are waiting in the form's inbox" in message
    assert _frozen(published) == [] and 2025 not in closed_waves(published.inbox_path)


def test_unfreeze_needs_a_reason_and_is_logged(published):
    db = published.db_path
    assert culture("waves", "close", 2025, "--freeze", "--db", db).returncode == 0
    message = refused(culture("waves", "unfreeze", 2025, "--db", db))
    assert "say why wave 2025 is unfrozen" in message and "--reason" in message
    assert refused(culture("waves", "unfreeze", 2025, "--reason", "  ", "--db", db))
    assert _frozen(published) == [(2025, 1)]
    not_frozen = refused(culture("waves", "unfreeze", 2024, "--reason", "x", "--db", db))
    assert "wave 2024 is not frozen (frozen: 2025)" in not_frozen

    done = culture("waves", "unfreeze", 2025, "--reason", "late batch from site C", "--db", db)
    assert done.returncode == 0, done.stderr
    assert "wave 2025 unfrozen" in done.stdout and "culture run" in done.stdout
    assert _frozen(published) == []
    log = culture("waves", "log", "--db", db)
    lines = [line for line in log.stdout.splitlines() if "2025" in line]
    assert "freeze" in lines[0] and "unfreeze" in lines[-1]
    assert "late batch from site C" in log.stdout
    status = culture("status", "--db", db)
    assert "wave 2025: unfrozen on" in status.stdout
    assert "late batch from site C" in status.stdout
    # Frozen again with nothing changed, it is version 1 again: a version is kept once
    # per distinct set of cells (a changed wave would be version 2, checked against 1).
    assert culture("waves", "freeze", 2025, "--db", db).returncode == 0
    assert _frozen(published) == [(2025, 1)]


def test_log_and_status_with_nothing_frozen(published):
    log = culture("waves", "log", "--db", published.db_path)
    assert log.returncode == 0
    assert "no wave has been frozen, unfrozen or purged yet" in log.stdout
    status = culture("status", "--db", published.db_path)
    assert "no wave is frozen" in status.stdout


def test_freezing_from_a_damaged_layer_is_one_kind_line(published):
    published.published_path.write_bytes(b"not a database" * 200)
    message = refused(culture("waves", "freeze", 2025, "--close", "--db",
                              published.db_path))
    assert "not a published layer this program can read" in message
    assert "culture run" in message
