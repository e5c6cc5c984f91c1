"""Retention: `culture purge` (pipeline.retention, issue 25 point 3).

One real store per module: the committed sample's three waves run through the whole
pipeline, plus three small files whose rejected rows test how a quarantined row's wave
is told, and web form submissions in a real inbox; waves 2024 and 2025 frozen. Each test
works on its own copy of the files.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from collect.inbox import Inbox, closed_waves, read_submissions
from pipeline.ingest.files import ingest_file
from pipeline.retention import PAUSE_VARIABLE, compact_store, plan_purge, purge
from pipeline.run import run_pipeline
from pipeline.store import load_reference_data, open_store
from pipeline.waves import WaveStateError, freeze_wave, unfreeze_wave
from survey.fieldwork import closed_wave_line
from survey.settings import SAMPLES_DIR, Settings
from tests.conftest import culture, full_answers, response_row, write_csv

FROZEN = (2024, 2025)
OPEN = 2026
#: Relative tolerance for a statistic whose float sums may run in another order.
FLOAT_ORDER = 1e-12
CULTURE = str(Path(sys.executable).with_name("culture"))


def _files(folder: Path, instrument) -> dict[str, Path]:
    """Three files with rejected rows, each telling (or not) the rows' wave its own way."""
    no_wave = [{k: v for k, v in response_row(instrument, f"FLAG-{i}").items() if k != "wave"}
               for i in range(3)]
    no_wave[1]["hs03"] = "7"                       # out_of_range, wave from --wave 2024
    no_wave[2]["ps05"] = "Agree strongly"          # unknown_label, wave from --wave 2024
    own_wave = [response_row(instrument, "OWN-1", wave="2024"),
                response_row(instrument, "OWN-2", wave="2024", hs03="0")]
    # --wave 2024 fills the blank wave of MIX-2, but MIX-1 says 2026: the batch's file has
    # a wave column of its own, so --wave cannot tell MIX-2's wave for sure.
    mixed = [response_row(instrument, "MIX-1", wave="2026"),
             response_row(instrument, "MIX-2", wave="", hs04="8")]
    return {"no_wave": write_csv(folder / "no_wave.csv", no_wave),
            "own_wave": write_csv(folder / "own_wave.csv", own_wave),
            "mixed": write_csv(folder / "mixed.csv", mixed)}


def _submit(inbox_path: Path, instrument, waves: list[int]) -> None:
    inbox = Inbox(inbox_path)
    try:
        for number, wave in enumerate(waves):
            answers = full_answers(instrument) | {"staff_group": "consultant", "pmq": "uk"}
            assert inbox.submit(f"form-{wave}-{number}-{len(waves)}", "A", wave,
                                answers) == "stored"
    finally:
        inbox.close()


@pytest.fixture(scope="module")
def _frozen_template(tmp_path_factory, instrument, definition_yaml) -> Settings:
    folder = tmp_path_factory.mktemp("purge-template")
    settings = Settings(db_path=folder / "store.duckdb")
    files = _files(folder, instrument)
    with open_store(settings.db_path) as con:
        load_reference_data(con, SAMPLES_DIR, instrument)
        ingest_file(con, files["no_wave"], instrument, definition_yaml, wave=2024)
        ingest_file(con, files["own_wave"], instrument, definition_yaml)
        ingest_file(con, files["mixed"], instrument, definition_yaml, wave=2024)
    _submit(settings.inbox_path, instrument, [2024, 2024, 2025, OPEN])
    run_pipeline(settings, instrument, [SAMPLES_DIR / "responses_clean.csv"])
    with open_store(settings.db_path) as con:
        for wave in FROZEN:
            freeze_wave(con, wave, settings.published_path, "published for good", "tester")
    # Sent after its wave was frozen: never taken into the store.
    _submit(settings.inbox_path, instrument, [2024])
    return settings


@pytest.fixture
def frozen(_frozen_template, tmp_path) -> Settings:
    """A copy of the module's store, its published layer and its inbox."""
    settings = Settings(db_path=tmp_path / "store.duckdb")
    for source, target in ((_frozen_template.db_path, settings.db_path),
                           (_frozen_template.published_path, settings.published_path),
                           (_frozen_template.inbox_path, settings.inbox_path)):
        shutil.copyfile(source, target)
    return settings


def _count(path: Path, sql: str, params=()) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def _snapshot(path: Path) -> dict[str, str]:
    """{table: digest of its rows, in order}: the store's content, not its bytes."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema = 'main' "
            "and table_type = 'BASE TABLE' order by 1").fetchall()]
        return {table: hashlib.sha256(repr(con.execute(
            f'select * from "{table}" order by all').fetchall()).encode()).hexdigest()
            for table in tables}
    finally:
        con.close()


def _digest(path: Path, sql: str) -> str:
    return hashlib.sha256(repr(_count(path, sql)).encode()).hexdigest()


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_purge_removes_exactly_what_the_dry_run_said(frozen):
    store = frozen.db_path
    per_wave = dict(_count(store, "select wave, count(*) from responses group by wave"))
    flags = dict(_count(store, "select wave, count(*) from response_flags group by wave"))
    kept_responses = _digest(store, f"select * from responses where wave = {OPEN} order by all")
    kept_flags = _digest(store, f"select * from response_flags where wave = {OPEN} "
                                "order by all")
    before_bytes = _file_hash(store)
    with open_store(store, read_only=True) as con:
        said = plan_purge(con, 2026, frozen.inbox_path)
    assert _file_hash(store) == before_bytes          # a dry run changes nothing
    # 1190 sample rows a wave, plus 2024's: FLAG-0, OWN-1 and two web form answers.
    assert per_wave == {2024: 1194, 2025: 1191, 2026: 1192}
    assert said.waves == FROZEN
    assert said.rows == {"response_flags": {2024: flags[2024], 2025: flags[2025]},
                         "responses": {2024: 1194, 2025: 1191}}
    assert said.inbox == {2024: 3, 2025: 1} and said.inbox_not_ingested == {2024: 1}

    with open_store(store) as con:
        done = purge(con, 2026, "retention period of one year", frozen.inbox_path,
                     by="tester")
    assert done == said
    assert _count(store, "select wave, count(*) from responses group by wave") == [(OPEN, 1192)]
    assert _count(store, "select distinct wave from response_flags") == [(OPEN,)]
    assert _digest(store, f"select * from responses where wave = {OPEN} order by all") \
        == kept_responses
    assert _digest(store, f"select * from response_flags where wave = {OPEN} order by all") \
        == kept_flags
    # The inbox: the purged waves' submissions gone, and those waves closed to the form.
    assert sorted(r[3] for r in read_submissions(frozen.inbox_path)) == [OPEN]
    assert set(closed_waves(frozen.inbox_path)) == set(FROZEN)
    events = _count(store, "select wave, action, done_by, reason, detail from wave_events "
                           "where action = 'purge' order by wave")
    assert events == [
        (2024, "purge", "tester", "retention period of one year",
         f"before 2026: response_flags {flags[2024]}, responses 1194, "
         f"quarantine (blanked) 2, inbox 3"),
        (2025, "purge", "tester", "retention period of one year",
         f"before 2026: response_flags {flags[2025]}, responses 1191, "
         f"quarantine (blanked) 0, inbox 1")]


def test_purge_keeps_the_published_layer_held_rows_aggregates_and_logs(frozen):
    # Every table but the respondents', the quarantine (blanked) and the log (one line
    # more) is kept as it was: held rows, frozen versions, the ingest log, per-wave
    # aggregates (quality medians, suppression log, whatever a stage pools by wave).
    changed = {"responses", "response_flags", "quarantine", "wave_events"}
    before = _snapshot(frozen.db_path)
    assert {"held_cells", "held_trends", "cell_versions", "ingest_batches",
            "suppression_log", "response_quality_waves"} <= set(before)
    published = _file_hash(frozen.published_path)
    with open_store(frozen.db_path) as con:
        purge(con, 2026, "retention", frozen.inbox_path)
    after = _snapshot(frozen.db_path)
    assert {t: d for t, d in after.items() if t not in changed} \
        == {t: d for t, d in before.items() if t not in changed}
    assert {t for t in changed if after[t] != before[t]} == changed
    assert _file_hash(frozen.published_path) == published
    # A purged wave cannot be recomputed, so it stays frozen.
    with open_store(frozen.db_path) as con, pytest.raises(WaveStateError, match="purged"):
        unfreeze_wave(con, 2024, "late batch")


def test_quarantine_keeps_reasons_with_values_blanked(frozen):
    lines = ("select b.source_name, q.source_row, q.response_id, q.column_name, q.bad_value, "
             "q.reason_code, q.reason from quarantine q join ingest_batches b using (batch_id) "
             "where b.source_name not like '%responses_clean%' order by all")
    before = {(r[0].rsplit("/", 1)[-1], r[3]): r for r in _count(frozen.db_path, lines)}
    with open_store(frozen.db_path, read_only=True) as con:
        said = plan_purge(con, 2026, frozen.inbox_path)
    # Told by --wave 2024: the two no_wave.csv lines. Not told: own_wave.csv's row (its
    # file gives each row's wave) and mixed.csv's (its file has a wave column too).
    assert said.quarantine_blanked == {2024: 2}
    assert said.quarantine_unknown == 2 and said.quarantine_other_waves == {}
    with open_store(frozen.db_path) as con:
        purge(con, 2026, "retention", frozen.inbox_path)
    after = {(r[0].rsplit("/", 1)[-1], r[3]): r for r in _count(frozen.db_path, lines)}
    assert set(after) == set(before)                       # no line deleted
    hs03 = after[("no_wave.csv", "hs03")]
    assert hs03[2:6] == (None, "hs03", None, "out_of_range")
    assert hs03[6].startswith("hs03: (value purged) is not an answer code; accepted: 1 = ")
    ps05 = after[("no_wave.csv", "ps05")]
    assert ps05[2:6] == (None, "ps05", None, "unknown_label")
    assert ps05[6].startswith("ps05: (value purged) is not a recognised answer; accepted:")
    assert "Agree strongly" not in ps05[6] and "FLAG-" not in repr(after)
    assert before[("no_wave.csv", "ps05")][4] == "Agree strongly"
    # The lines whose wave cannot be told keep their values.
    assert after[("own_wave.csv", "hs03")] == before[("own_wave.csv", "hs03")]
    assert after[("own_wave.csv", "hs03")][2:5] == ("OWN-2", "hs03", "0")
    assert after[("mixed.csv", "hs04")] == before[("mixed.csv", "hs04")]
    assert after[("mixed.csv", "hs04")][2:5] == ("MIX-2", "hs04", "8")


def test_the_dry_run_prints_per_wave_and_table_and_changes_nothing(frozen):
    before = _file_hash(frozen.db_path), _file_hash(frozen.inbox_path)
    shown = subprocess.run([CULTURE, "purge", "--before", "2026", "--dry-run", "--db",
                            str(frozen.db_path)], capture_output=True, text=True,
                           timeout=120, env=_clean_env())
    assert shown.returncode == 0, shown.stderr
    assert (_file_hash(frozen.db_path), _file_hash(frozen.inbox_path)) == before
    text = shown.stdout
    assert "would be purged: wave(s) 2024, 2025 (before 2026)" in text
    assert [line.split() for line in text.splitlines() if "│ responses " in line] == \
        [["│", "responses", "│", "1,194", "│", "1,191", "│"]]
    assert [line.split() for line in text.splitlines() if "│ inbox " in line] == \
        [["│", "inbox", "│", "3", "│", "1", "│"]]
    assert "wave 2024: 1 web form submission(s) in the inbox were never taken" in text
    assert "quarantine: 2 line(s) whose wave cannot be told" in text
    assert "dry run: nothing was changed" in text


def test_purging_a_wave_that_is_not_frozen_is_refused(frozen):
    before = _snapshot(frozen.db_path), _file_hash(frozen.inbox_path)
    for dry in ([], ["--dry-run"]):
        refused = subprocess.run([CULTURE, "purge", "--before", "2027", *dry, "--db",
                                  str(frozen.db_path)], capture_output=True, text=True,
                                 timeout=120, env=_clean_env())
        assert refused.returncode == 1 and refused.stdout == ""
        assert refused.stderr == (
            "error: wave 2026 before 2027 is not frozen: its answers are kept until its "
            "numbers are published for good. Freeze it first (`culture waves freeze "
            "2026`), or purge only earlier waves (--before 2026)\n")
    assert (_snapshot(frozen.db_path), _file_hash(frozen.inbox_path)) == before


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CULTURE_")}
    return env | {"COLUMNS": "120"} | extra


@pytest.mark.parametrize("point, purged", [("store-deleted", False),
                                           ("inbox-deleted", False),
                                           ("committed", True),
                                           ("compacted-copy", True)])
def test_a_purge_killed_midway_leaves_the_store_as_before_or_fully_purged(frozen, point,
                                                                          purged):
    store = frozen.db_path
    untouched = _snapshot(store)
    with open_store(store, read_only=True) as con:
        said = plan_purge(con, 2026, frozen.inbox_path)
    process = subprocess.Popen([CULTURE, "purge", "--before", "2026", "--db", str(store)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env=_clean_env(**{PAUSE_VARIABLE: point}))
    try:
        for line in process.stderr:        # waits for the purge to reach the point
            if line.startswith(f"purge paused at {point}"):
                break
        else:
            pytest.fail(f"the purge ended without reaching {point}")
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    now = _snapshot(store)
    if not purged:
        assert now == untouched
    else:
        assert _count(store, "select distinct wave from responses") == [(OPEN,)]
        assert _count(store, "select count(*) from wave_events where action = 'purge'") \
            == [(2,)]
    # Run again, it finishes the work (or finds it done), and it is what was said.
    with open_store(store) as con:
        again = purge(con, 2026, "retention", frozen.inbox_path)
    assert again.rows == (said.rows if not purged else
                          {table: {} for table in said.rows})
    assert _count(store, "select wave, count(*) from responses group by wave") == [(OPEN, 1192)]
    assert _count(store, "select count(*) from wave_events where action = 'purge'") == [(2,)]
    assert sorted(r[3] for r in read_submissions(frozen.inbox_path)) == [OPEN]
    compact_store(store)                   # a stale half-written copy is no obstacle
    assert not store.with_name(store.name + ".compacting").exists()
    assert _count(store, "select wave, count(*) from responses group by wave") == [(OPEN, 1192)]


def test_compacting_gives_the_space_back_and_keeps_every_row(frozen):
    with open_store(frozen.db_path) as con:
        purge(con, 2026, "retention", frozen.inbox_path)
    before = _snapshot(frozen.db_path)
    done = compact_store(frozen.db_path)
    assert _snapshot(frozen.db_path) == before
    assert done.bytes_after < done.bytes_before
    with open_store(frozen.db_path) as con:     # its sequence goes on where it was
        batches = con.execute("select max(batch_id) from ingest_batches").fetchall()[0][0]
        assert con.execute("select nextval('ingest_batch_id')").fetchall()[0][0] == batches + 1


def test_a_later_run_still_publishes_the_same_trends(frozen, instrument):
    """Needs incremental runs (point 2): a run computes only the open waves and publishes
    the frozen waves' held rows, so it never needs their purged respondents."""
    run_pipeline(frozen, instrument)
    query = "select * from {table} where wave in (2024, 2025) order by all"
    published = {table: _count(frozen.published_path, query.format(table=table))
                 for table in ("trends", "cells")}
    trends = _frame(frozen.published_path, "trends")
    assert len(published["cells"]) > 1000 and len(published["trends"]) > 50
    with open_store(frozen.db_path) as con:
        purge(con, 2026, "retention", frozen.inbox_path)
    run_pipeline(frozen, instrument)
    assert {table: _count(frozen.published_path, query.format(table=table))
            for table in ("trends", "cells")} == published
    # The open wave's trends too, compared with last year's held numbers: equal but for
    # the last bits of a float summed in another order.
    pd.testing.assert_frame_equal(_frame(frozen.published_path, "trends"), trends,
                                  check_exact=False, rtol=FLOAT_ORDER, atol=0)


def _frame(path: Path, table: str) -> pd.DataFrame:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(f"select * from {table} order by all").df()
    finally:
        con.close()


def test_every_respondent_level_table_is_purged_and_an_unknown_shape_refused(frozen):
    """Tables a stage adds later are found by their columns: by wave, or through
    `responses` by (batch_id, source_row); one whose rows' waves cannot be told is
    refused, with nothing deleted."""
    with open_store(frozen.db_path) as con:
        con.execute("create table respondent_notes as select batch_id, source_row, "
                    "'note' as note from responses")
        con.execute("create table respondent_scores as select wave, response_id, 1.0 as "
                    "score from responses")
    result = culture("purge", "--before", "2026", "--db", frozen.db_path)
    assert result.exit_code == 0, result.stderr
    assert [line.split() for line in result.stdout.splitlines()
            if "│ respondent_notes " in line] == \
        [["│", "respondent_notes", "│", "1,194", "│", "1,191", "│"]]
    assert "store rewritten: " in result.stdout
    assert _count(frozen.db_path, "select distinct wave from respondent_scores") == [(OPEN,)]
    assert _count(frozen.db_path, "select count(*) from respondent_notes") == [(1192,)]

    with open_store(frozen.db_path) as con:
        con.execute("create table loose_answers as select response_id, 4 as hs01 "
                    "from responses")
    before = _snapshot(frozen.db_path)
    refused = culture("purge", "--before", "2026", "--db", frozen.db_path)
    assert refused.exit_code == 1
    assert refused.stderr.startswith("error: table loose_answers holds rows per respondent "
                                     "(response_id) but no wave, nor batch_id and source_row")
    assert _snapshot(frozen.db_path) == before


def test_fieldwork_says_a_purged_waves_answers_were_deleted_not_that_it_has_none(
        frozen, instrument):
    from pipeline.fieldwork import fieldwork_summary

    before = {w["wave"]: w for w in fieldwork_summary(frozen, instrument)["waves"]}
    assert before[2024]["purged_on"] is None and before[2024]["responses"] > 0
    with open_store(frozen.db_path) as con:
        purge(con, 2025, "two-year retention", frozen.inbox_path, by="tester")
    # Without the inbox (no web form), the purge is still what closes the wave here.
    frozen.inbox_path.unlink()
    after = {w["wave"]: w for w in fieldwork_summary(frozen, instrument)["waves"]}
    purged = after[2024]
    today = str(pd.Timestamp.now().date())
    assert purged["purged_on"] == today and purged["open"] is False
    assert purged["responses"] == 0      # the store holds none: hence the words below
    line = closed_wave_line(purged)
    assert line.startswith("Wave 2024: closed;") and f"deleted on {today}" in line
    assert "0 responses" not in line and "published results are kept" in line
    assert after[2025]["purged_on"] is None and after[2025]["responses"] > 0
    assert after[OPEN]["open"] is True and after[OPEN]["purged_on"] is None


def test_after_a_purge_the_web_form_inbox_is_read_on_from_where_it_was(frozen, instrument):
    """The store's cursor on the inbox sits on the last submission it took; when that
    one is purged, the next run must read on from the last one kept, not take the
    inbox for a restored backup and read all of it again."""
    first = run_pipeline(frozen, instrument)   # takes the late 2024 submission: the cursor's
    assert first.inbox.taken == 1 and first.inbox.reread is None
    with open_store(frozen.db_path) as con:
        purge(con, 2026, "retention", frozen.inbox_path)
        before = con.execute(f"select count(*) from responses where wave = {OPEN}"
                             ).fetchall()[0][0]
    # SQLite gives a new row the number after the highest left: the purged cursor's own.
    # (Twelve: the open wave is published already, and a new version may change a shown
    # cell by no fewer respondents than the minimum group size.)
    _submit(frozen.inbox_path, instrument, [OPEN] * 12)
    after = run_pipeline(frozen, instrument)
    assert after.inbox.reread is None, after.inbox.summary()
    assert (after.inbox.taken, after.inbox.already_in_store) == (12, 0)
    assert "restored" not in after.inbox.summary()
    with open_store(frozen.db_path, read_only=True) as con:
        assert con.execute(f"select count(*) from responses where wave = {OPEN}"
                           ).fetchall()[0][0] == before + 12
    # And a run with nothing new reads nothing.
    again = run_pipeline(frozen, instrument)
    assert (again.inbox.taken, again.inbox.already_in_store, again.inbox.reread) == (0, 0, None)
