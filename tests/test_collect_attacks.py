"""Attacks on the survey server and its inbox, mounted on a real `culture collect` on
127.0.0.1 with a real inbox file: linking invitations to answers by watching every write,
losing answers to a recreated inbox, and hostile posts."""

from __future__ import annotations

import csv
import http.client
import json
import re
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest

from pipeline.ingest.inbox import ingest_inbox
from pipeline.store import open_store
from collect.inbox import hash_token
from survey.instrument import load_instrument
from survey.settings import DEFAULT_INSTRUMENT
from tests.conftest import culture, full_answers
from tests.live import free_port, start_culture

#: The promise: a used mark is written among at least this many of its site and wave.
MARK_BATCH = 10

CULTURE = Path(sys.executable).with_name("culture")
FORM_TOKEN = re.compile(r"name='form_token' value='([^']+)'")


def _collect(db: Path, *options: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    return start_culture("collect", "--db", str(db), "--port", str(port), *options,
                         port=port), port


def _request(port: int, method: str, path: str, body: str | bytes | None = None,
             content_type: str = "application/x-www-form-urlencoded") -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": content_type} if body is not None else {}
    connection.request(method, path, body, headers)
    response = connection.getresponse()
    text = response.read().decode()
    connection.close()
    return response.status, text


def _answer(port: int, path: str, fields: dict[str, str]) -> tuple[int, str]:
    """Open the form at `path` as a browser would, then send it with `fields`; a link
    refused as the form opens (used, unknown) gives that refusal, nothing is sent."""
    status, page = _request(port, "GET", path)
    if status in (403, 409):
        return status, page
    assert status == 200, page
    query = dict(p.split("=", 1) for p in urlsplit(path).query.split("&") if p)
    return _request(port, "POST", urlsplit(path).path, urlencode(
        {"form_token": FORM_TOKEN.search(page).group(1), "t": query.get("t", ""), **fields}))


# -- linking invitations to answers ---------------------------------------------------------

def _states_from_wal(database: Path, wal: Path, scratch: Path) -> list[tuple[set, dict]]:
    """The inbox as it stood after every commit in its write-ahead log: the database file
    with the log's frames applied one transaction at a time (SQLite's WAL format:
    a 32-byte header, then frames of a 24-byte header and one page)."""
    data = wal.read_bytes()
    page_size = struct.unpack(">I", data[8:12])[0]
    salts = data[16:24]
    replica = scratch / "replica.sqlite"
    shutil.copyfile(database, replica)
    states, offset = [], 32
    with replica.open("r+b") as handle:
        while offset + 24 + page_size <= len(data):
            page_number, size_after_commit = struct.unpack(">II", data[offset:offset + 8])
            if data[offset + 8:offset + 16] != salts:
                break   # frames left over from before a checkpoint: not this log's
            handle.seek((page_number - 1) * page_size)
            handle.write(data[offset + 24:offset + 24 + page_size])
            offset += 24 + page_size
            if size_after_commit:
                handle.truncate(size_after_commit * page_size)
                handle.flush()
                states.append(_read_state(replica))
    return states


def _read_state(path: Path, uri: bool = False) -> tuple[set, dict]:
    """(hashes of tokens marked used, {response_id: answers}) of one inbox state."""
    con = sqlite3.connect(f"file:{path}?mode=ro" if uri else path, uri=uri, timeout=30,
                          isolation_level=None)
    try:
        con.execute("begin")   # one snapshot for both reads
        used = {r[0] for r in con.execute("select token_hash from tokens where used = 1")}
        answers = dict(con.execute("select response_id, answers from submissions"))
        con.execute("commit")
    finally:
        con.close()
    return used, answers


def _link(states: list[tuple[set, dict]], truth: dict[str, str]) -> tuple[int, int, int]:
    """The watcher's attack on a sequence of inbox states.

    For each token seen turning "used", the answers that could be its own are those that
    appeared since the previous batch of used marks and no later than its own mark. The
    watcher guesses the latest of them (what matched 20 of 20 when marks and answers
    shared a commit). Returns (correct guesses, the fewest candidates any token had,
    the number of distinct moments at which tokens turned used).
    """
    first_used, first_answer = {}, {}
    for moment, (used, answers) in enumerate(states):
        for token_hash in used:
            first_used.setdefault(token_hash, moment)
        for response_id in answers:
            first_answer.setdefault(response_id, moment)
    mark_moments = sorted(set(first_used.values()))
    correct, fewest = 0, len(first_answer)
    for token_hash, moment in first_used.items():
        earlier = [m for m in mark_moments if m < moment]
        start = earlier[-1] if earlier else -1
        # (an answer first seen with the previous marks may have come just after them)
        candidates = [r for r, seen in first_answer.items() if start <= seen <= moment]
        fewest = min(fewest, len(candidates))
        guess = max(candidates, key=lambda r: first_answer[r], default=None)
        correct += guess == truth[token_hash]
    return correct, fewest, len(mark_moments)


def test_a_watcher_of_every_inbox_write_links_invitations_to_answers_only_by_chance(
        store_path, tmp_path):
    """The invitation list (token -> person) and the inbox file, read live every moment and
    replayed commit by commit from its log afterwards, must not pair a token with its
    answers better than a guess among the answers of one batch of used marks."""
    links_file = tmp_path / "links.csv"
    invited = 4 * MARK_BATCH
    assert culture("invite", "--site", "A", "--wave", "2025", "--count", invited, "--out",
                   links_file, "--db", store_path).exit_code == 0
    links = [row["link"] for row in csv.DictReader(links_file.open())]
    inbox = store_path.with_name("store.inbox.sqlite")
    assert not inbox.with_name(inbox.name + "-wal").exists()  # all in the main file
    server, port = _collect(store_path, "--tokens")

    live_states, watching = [], threading.Event()
    watching.set()

    def watch():
        while watching.is_set():
            live_states.append(_read_state(inbox, uri=True))

    watcher = threading.Thread(target=watch)
    watcher.start()
    # Each answer carries its respondent's number, so the test knows the truth.
    truth, work, lock = {}, list(enumerate(links)), threading.Lock()

    def respondent():
        while True:
            with lock:
                if not work:
                    return
                number, link = work.pop()
            path = link.split("127.0.0.1:8060", 1)[1]
            status, text = _answer(port, path, {"hs01": "3",
                                                "duration_seconds": str(1000 + number)})
            assert status == 200, text
            token = dict(p.split("=", 1) for p in urlsplit(path).query.split("&"))["t"]
            with lock:
                truth[hash_token(token)] = 1000 + number

    respondents = [threading.Thread(target=respondent) for _ in range(8)]
    for thread in respondents:
        thread.start()
    for thread in respondents:
        thread.join()
    time.sleep(0.5)   # a batch of marks may follow the last answer
    watching.clear()
    watcher.join()
    server.send_signal(signal.SIGKILL)   # leaves the log as it was written
    server.wait()
    # Replay the log before anything opens the inbox again (a clean close checkpoints).
    wal = inbox.with_name(inbox.name + "-wal")
    scratch = tmp_path / "copy"
    scratch.mkdir()
    shutil.copyfile(inbox, scratch / "main.sqlite")
    shutil.copyfile(wal, scratch / "main.sqlite-wal.saved")
    wal_states = _states_from_wal(scratch / "main.sqlite", scratch / "main.sqlite-wal.saved",
                                  scratch)

    for states in (live_states, wal_states):
        used, answers = states[-1]
        # Marks are written once a batch is waiting: fewer than a batch may still wait.
        assert len(answers) == invited and invited - MARK_BATCH < len(used) <= invited
        by_response = {r: json.loads(a)["duration_seconds"] for r, a in answers.items()}
        to_response = {d: r for r, d in by_response.items()}
        truth_ids = {h: to_response[d] for h, d in truth.items()}
        correct, fewest, batches = _link(states, truth_ids)
        # Every token is consistent with at least a batch of answers, and guessing the
        # latest one is right at most once a batch: chance, not a link.
        assert fewest >= MARK_BATCH
        assert 1 <= batches <= invited // MARK_BATCH
        assert correct <= batches
    # The log held every commit from the empty inbox to the last state the watcher saw.
    assert wal_states[0] == (set(), {}) and wal_states[-1] == live_states[-1]


def test_a_used_invitation_is_refused_before_and_after_its_mark_is_written(store_path,
                                                                           tmp_path):
    links_file = tmp_path / "links.csv"
    assert culture("invite", "--site", "A", "--wave", "2025", "--count", 11, "--out",
                   links_file, "--db", store_path).exit_code == 0
    paths = [row["link"].split("127.0.0.1:8060", 1)[1]
             for row in csv.DictReader(links_file.open())]
    server, port = _collect(store_path, "--tokens")
    try:
        assert _answer(port, paths[0], {"hs01": "4"})[0] == 200
        again = _answer(port, paths[0], {"hs01": "1"})  # mark still waiting in memory
        assert again[0] == 409 and "already been used" in again[1]
        for path in paths[1:MARK_BATCH]:
            assert _answer(port, path, {"hs01": "2"})[0] == 200
        for _ in range(100):   # the marks are written just after the last answer
            with sqlite3.connect(store_path.with_name("store.inbox.sqlite")) as con:
                marked = con.execute("select count(*) from tokens where used = 1").fetchone()[0]
            if marked:
                break
            time.sleep(0.05)
        assert marked == MARK_BATCH
        again = _answer(port, paths[0], {"hs01": "1"})  # mark written
        assert again[0] == 409 and "already been used" in again[1]
    finally:
        server.send_signal(signal.SIGINT)
        said, _ = server.communicate(timeout=30)   # (stderr joins stdout)
    assert "Traceback" not in said.decode()


# -- no answer lost to a new inbox ----------------------------------------------------------

def _post_answers(db: Path, count: int, code: str) -> None:
    """`count` full answer sets, every item `code`, to a real server then killed."""
    fields = full_answers(load_instrument(DEFAULT_INSTRUMENT), code)
    server, port = _collect(db)
    try:
        for _ in range(count):
            assert _answer(port, "/s/A/2025", fields)[0] == 200
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()


def _run(db: Path) -> str:
    done = culture("run", "--db", db, "--reports", db.parent / "reports")
    assert done.exit_code == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.slow   # four servers started, answered and killed
def test_a_new_inbox_in_the_old_ones_place_loses_no_acknowledged_answer(store_path):
    inbox = store_path.with_name("store.inbox.sqlite")
    _post_answers(store_path, 12, "4")
    first = _run(store_path)
    assert re.search(r"web form inbox [0-9a-f]{16} \(.*store\.inbox\.sqlite\): 12 new "
                     r"answer\(s\)", first), first
    # The inbox is moved aside and the server starts a new one under the same name.
    inbox.rename(inbox.with_name("old.inbox.sqlite"))
    for suffix in ("-wal", "-shm"):
        inbox.with_name(inbox.name + suffix).unlink(missing_ok=True)
    _post_answers(store_path, 12, "2")
    second = _run(store_path)
    assert "12 new answer(s)" in second and "not read before" in second, second
    with open_store(store_path) as con:
        counts = con.execute("select hs01, count(*) from responses group by hs01 "
                             "order by hs01").fetchall()
    assert counts == [(2, 12), (4, 12)]
    # Nothing new: the run says so, and takes nothing twice.
    third = _run(store_path)
    assert re.search(r"web form inbox [0-9a-f]{16} .*: 0 new answer\(s\)", third), third
    # The server's inbox gone altogether: the run says where it looked.
    inbox.unlink()
    fourth = _run(store_path)
    assert "web form: no inbox at" in fourth and "has taken answers from inbox" in fourth


def test_an_inbox_and_store_from_before_inbox_ids_are_migrated_without_loss(
        store_path, instrument, definition_yaml):
    """A store whose cursor is keyed by the inbox's file name, beside an inbox without an
    id: the next run takes the rows it lacks, skips none, and keeps nothing twice."""
    inbox = store_path.with_name("store.inbox.sqlite")
    _post_answers(store_path, 3, "5")
    with open_store(store_path) as con:
        assert ingest_inbox(con, inbox, instrument, definition_yaml).taken == 3
        con.execute("drop table inbox_cursors")
        con.execute("create table inbox_cursor (inbox varchar primary key, last_row bigint)")
        con.execute("insert into inbox_cursor values ('store.inbox.sqlite', 3)")
    with sqlite3.connect(inbox) as con:
        con.execute("drop table inbox_identity")
    _post_answers(store_path, 2, "1")
    with open_store(store_path) as con:
        report = ingest_inbox(con, inbox, instrument, definition_yaml)
        legacy = con.execute("select count(*) from information_schema.tables "
                             "where table_name = 'inbox_cursor'").fetchone()[0]
        counts = con.execute("select hs01, count(*) from responses group by hs01 "
                             "order by hs01").fetchall()
    assert (report.taken, report.already_in_store) == (2, 3) and legacy == 0
    assert counts == [(1, 2), (5, 3)]


def test_a_restored_inbox_with_fewer_rows_is_read_again_not_skipped(
        store_path, instrument, definition_yaml, tmp_path):
    inbox = store_path.with_name("store.inbox.sqlite")
    _post_answers(store_path, 2, "3")
    backup = tmp_path / "backup.sqlite"
    with sqlite3.connect(inbox) as source, sqlite3.connect(backup) as target:
        source.backup(target)
    _post_answers(store_path, 3, "4")
    with open_store(store_path) as con:
        assert ingest_inbox(con, inbox, instrument, definition_yaml).taken == 5
    # Restored from the backup (same id, two rows); then three new answers reuse the
    # row numbers 3-5 that the store's cursor has already passed.
    for suffix in ("", "-wal", "-shm"):
        inbox.with_name(inbox.name + suffix).unlink(missing_ok=True)
    shutil.copyfile(backup, inbox)
    _post_answers(store_path, 3, "1")
    with open_store(store_path) as con:
        report = ingest_inbox(con, inbox, instrument, definition_yaml)
        total = con.execute("select count(*) from responses").fetchone()[0]
    assert (report.taken, report.already_in_store) == (3, 2)
    assert report.reread == "the inbox changed under the cursor (restored?): all of it read"
    assert total == 8


# -- hostile posts to the real server -------------------------------------------------------

@pytest.mark.parametrize("fields, content_type, status, reason", [
    ({"hs01": "\u00b2"}, None, 400, "is not one of 1, 2, 3, 4, 5, 9"),
    ({"duration_seconds": "\u00b9\u00b2"}, None, 400, "not a whole number of seconds"),
    ({"hs01": "4" * 4301}, None, 400, "is not one of 1, 2, 3, 4, 5, 9"),
    ({"duration_seconds": "1" * 4301}, None, 400, "not a whole number of seconds"),
    ({"hs01": "4"}, "text/plain; x=application/x-www-form-urlencoded", 415,
     "expected an HTML form post"),
    ({"hs01": "4"}, "application/x-www-form-urlencoded-but-not", 415,
     "expected an HTML form post"),
    ({"hs01": "4"}, "Application/X-WWW-Form-Urlencoded; charset=UTF-8", 200, "Thank you"),
])
def test_hostile_posts_get_a_4xx_and_no_traceback(store_path, fields, content_type, status,
                                                  reason):
    server, port = _collect(store_path)
    try:
        _, page = _request(port, "GET", "/s/A/2025")
        body = urlencode({"form_token": FORM_TOKEN.search(page).group(1), **fields})
        got, text = _request(port, "POST", "/s/A/2025", body,
                             content_type or "application/x-www-form-urlencoded")
        assert _request(port, "GET", "/s/A/2025")[0] == 200   # still serving
    finally:
        server.send_signal(signal.SIGINT)
        said, _ = server.communicate(timeout=30)   # (stderr joins stdout)
    assert (got, reason in text) == (status, True), text
    assert "Traceback" not in said.decode() and "Error" not in said.decode()
    with sqlite3.connect(store_path.with_name("store.inbox.sqlite")) as con:
        stored = con.execute("select count(*) from submissions").fetchone()[0]
    assert stored == (1 if status == 200 else 0)
