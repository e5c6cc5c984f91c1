"""The survey inbox: where the web form puts answers until the pipeline ingests them.

Why SQLite, not the DuckDB store. DuckDB lets one process write a file and, while it
does, no other process may even read it. The survey server must accept answers all
year, including while `culture run` holds the store for minutes. So the form writes to
its own file, ``<store stem>.inbox.sqlite``, in SQLite's write-ahead-log mode, where
one writer and any number of readers in other processes coexist; the pipeline reads
new submissions from it (`pipeline.inbox_ingest`) and ingests them into the store.

Durability. A respondent's "thank you" is sent only after their answers are committed
with ``synchronous=FULL`` (fsync of the log). To reach hundreds of submissions a second
on one disk, submissions are group-committed: one writer thread takes every submission
waiting, writes them in one transaction, syncs once, then releases all their waiting
requests. A killed server therefore loses only submissions it never acknowledged.

Exactly once. Each form carries a random submission id (the `form token`); the inbox
key is that id, so a retried or replayed post is recognised and stored once.

Anonymity. A stored submission holds its answers, site, wave and the day it was
submitted: no address, no user agent, no time of day. Its response id is random, not a
sequence. Invitation tokens are kept only as hashes with a "used" mark and nothing
that links them to a submission (no time, no order: the used mark is a boolean on a
row created when the token was issued).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import queue
import secrets
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path

from survey.errors import CultureError

_SCHEMA = """
create table if not exists submissions (
    submission_id text primary key,
    response_id text not null unique,
    site text not null,
    wave integer not null,
    submitted_on text not null,
    answers text not null
);
create table if not exists form_secret (
    value blob not null
);
create table if not exists tokens (
    token_hash text primary key,
    site text not null,
    wave integer not null,
    used integer not null default 0
);
"""


class InboxError(CultureError):
    """The inbox file cannot be opened or used."""


class TokenRefused(Exception):
    """An invitation token is unknown, for another survey, or already used."""


@dataclass
class _Pending:
    submission_id: str
    site: str
    wave: int
    answers: dict
    token_hash: str | None
    done: threading.Event = field(default_factory=threading.Event)
    outcome: str = ""          # "stored", "duplicate", or an error message
    error: Exception | None = None


def connect(path: Path | str, timeout: float = 30.0) -> sqlite3.Connection:
    """A connection in WAL mode with full sync (each commit reaches the disk)."""
    con = sqlite3.connect(str(path), timeout=timeout, isolation_level=None,
                          check_same_thread=False)
    con.execute("pragma journal_mode=wal")
    con.execute("pragma synchronous=full")
    con.executescript(_SCHEMA)
    return con


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_tokens(path: Path | str, site: str, wave: int, count: int) -> list[str]:
    """Make `count` single-use invitation tokens for a site and wave; only hashes are kept."""
    tokens = [secrets.token_urlsafe(16) for _ in range(count)]
    con = connect(path)
    try:
        con.execute("begin immediate")
        con.executemany("insert into tokens (token_hash, site, wave) values (?, ?, ?)",
                        [(hash_token(t), site, wave) for t in tokens])
        con.execute("commit")
    finally:
        con.close()
    return tokens


class Inbox:
    """Durable, exactly-once storage of submissions, group-committed by one thread."""

    def __init__(self, path: Path | str, max_batch: int = 500) -> None:
        self.path = Path(path)
        self.max_batch = max_batch
        try:
            self._con = connect(self.path)
        except sqlite3.Error as error:
            raise InboxError(f"{self.path}: cannot open the survey inbox ({error})") from None
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._writer = threading.Thread(target=self._write_loop, name="inbox-writer",
                                        daemon=True)
        self._writer.start()

    def form_secret(self) -> bytes:
        """The key that signs form tokens, made once and kept in the inbox, so forms
        handed out before a restart can still be sent after it."""
        con = connect(self.path)  # not the writer thread's connection
        try:
            con.execute("begin immediate")
            row = con.execute("select value from form_secret").fetchone()
            if row is None:
                row = (secrets.token_bytes(32),)
                con.execute("insert into form_secret values (?)", row)
            con.execute("commit")
        finally:
            con.close()
        return bytes(row[0])

    def submit(self, submission_id: str, site: str, wave: int, answers: dict,
               token: str | None = None, timeout: float = 30.0) -> str:
        """Store one submission durably; returns 'stored' or 'duplicate' once committed.

        Raises TokenRefused for an unknown or used invitation token (nothing stored).
        """
        pending = _Pending(submission_id, site, wave, answers,
                           hash_token(token) if token else None)
        self._queue.put(pending)
        if not pending.done.wait(timeout):
            raise InboxError("the inbox did not confirm the submission in time")
        if pending.error:
            raise pending.error
        return pending.outcome

    def _write_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                batch.append(item)
            self._write(batch)

    def _write(self, batch: list[_Pending]) -> None:
        today = dt.date.today().isoformat()
        con = self._con
        try:
            con.execute("begin immediate")
            for pending in batch:
                self._write_one(con, pending, today)
            con.execute("commit")  # synchronous=full: on disk before anyone is told
        except sqlite3.Error as error:
            con.execute("rollback")
            for pending in batch:
                pending.error = InboxError(f"could not store the submission ({error})")
        for pending in batch:
            pending.done.set()

    @staticmethod
    def _write_one(con: sqlite3.Connection, pending: _Pending, today: str) -> None:
        con.execute("savepoint one")
        try:
            if con.execute("select 1 from submissions where submission_id = ?",
                           [pending.submission_id]).fetchone():
                pending.outcome = "duplicate"
                con.execute("release one")
                return
            if pending.token_hash is not None:
                claimed = con.execute(
                    "update tokens set used = 1 where token_hash = ? and site = ? and wave = ? "
                    "and used = 0", [pending.token_hash, pending.site, pending.wave]).rowcount
                if claimed != 1:
                    pending.error = TokenRefused("this invitation link is not valid or has "
                                                 "already been used")
                    con.execute("rollback to one")
                    con.execute("release one")
                    return
            con.execute("insert into submissions values (?, ?, ?, ?, ?, ?)",
                        [pending.submission_id, secrets.token_hex(12), pending.site,
                         pending.wave, today, json.dumps(pending.answers, sort_keys=True)])
            pending.outcome = "stored"
            con.execute("release one")
        except sqlite3.Error:
            con.execute("rollback to one")
            con.execute("release one")
            raise

    def close(self) -> None:
        self._queue.put(None)
        self._writer.join(timeout=10)
        self._con.close()


def read_submissions(path: Path | str, after: int = 0) -> list[tuple]:
    """(rowid, response_id, site, wave, submitted_on, answers dict) of submissions with
    rowid > `after`, oldest first: what the pipeline has not yet picked up."""
    con = connect(path)
    try:
        rows = con.execute("select rowid, response_id, site, wave, submitted_on, answers "
                           "from submissions where rowid > ? order by rowid",
                           [after]).fetchall()
    finally:
        con.close()
    return [(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]
