"""The survey inbox: where the web form puts answers until the pipeline ingests them.

Why SQLite, not the DuckDB store. DuckDB lets one process write a file and, while it
does, no other process may even read it. The survey server must accept answers all
year, including while `culture run` holds the store for minutes. So the form writes to
its own file, ``<store stem>.inbox.sqlite``, in SQLite's write-ahead-log mode, where
one writer and any number of readers in other processes coexist; the pipeline reads
new submissions from it (`pipeline.ingest.inbox`) and ingests them into the store.

Durability. A respondent's "thank you" is sent only after their answers are committed
with ``synchronous=FULL`` (fsync of the log). To reach hundreds of submissions a second
on one disk, submissions are group-committed: one writer thread takes every submission
waiting, writes them in one transaction, syncs once, then releases all their waiting
requests. A killed server therefore loses only submissions it never acknowledged.

Exactly once. Each form carries a random submission id (the `form token`); the inbox
key is that id, so a retried or replayed post is recognised and stored once.

Anonymity. A stored submission holds its answers, site, wave and the day it was
submitted: no address, no user agent, no time of day. Its response id is random, not a
sequence.

Invitations cannot be linked to answers, even by someone who holds the invitation list
(token -> person) and watches every write to this file as it happens. Only hashes of the
tokens are kept, on rows made when they were issued. An answer is written at once (so it
is durable before the respondent is thanked), but its token's "used" mark is not: the
writer keeps the marks of a site and wave in memory and writes them all in one separate
transaction once `mark_batch` (default 10) of them are waiting. A watcher then sees ten
answers arrive one by one and, later, ten tokens turn "used" together, with nothing that
pairs one with another: the best guess is right one time in ten. The price is stated
plainly: marks still waiting when the server stops (fewer than `mark_batch` per site and
wave) are lost, so those invitations could be used once more after a restart.

Open and closed waves. `culture waves close 2025` writes the wave here, not (only) in
the store: the survey server must see it at once, while it runs and while `culture run`
may hold the store, and this file is the one both processes share. The server checks it
when a form is opened (at most a second old) and the writer checks it again in the
transaction that would store an answer, so after the close has committed no answer
for that wave is stored.

Identity. Each inbox file carries a random id written when it is created, so the store
can tell a new or restored inbox from the one it has read before (`pipeline.ingest.inbox`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import queue
import secrets
import sqlite3
import threading
import time
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
create table if not exists inbox_identity (
    inbox_id text not null
);
create table if not exists closed_waves (
    wave integer primary key,
    closed_on text not null
);
"""

#: Used marks are written for at least this many invitations of one site and wave at
#: once: a watcher of the file can then pair a token with its answer only by chance.
MARK_BATCH = 10


class InboxError(CultureError):
    """The inbox file cannot be opened or used."""


class TokenRefused(Exception):
    """An invitation token is unknown, for another survey, or already used."""


class WaveClosed(Exception):
    """The survey wave has been closed (`culture waves close`): no answers are taken."""


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
    if con.execute("select count(*) from inbox_identity").fetchone()[0] == 0:
        # Made once, with the file (or on first opening an inbox from before ids).
        con.execute("begin immediate")
        con.execute("insert into inbox_identity select ? where not exists "
                    "(select 1 from inbox_identity)", [secrets.token_hex(8)])
        con.execute("commit")
    return con


def inbox_id(con: sqlite3.Connection) -> str:
    """The random id of the inbox file behind `con`."""
    return con.execute("select inbox_id from inbox_identity").fetchone()[0]


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


def set_wave_closed(path: Path | str, wave: int, closed: bool) -> bool:
    """Close (or reopen) a wave for the survey server; True if that changed anything."""
    con = connect(path)
    try:
        con.execute("begin immediate")
        if closed:
            changed = con.execute("insert or ignore into closed_waves values (?, ?)",
                                  [wave, dt.date.today().isoformat()]).rowcount
        else:
            changed = con.execute("delete from closed_waves where wave = ?", [wave]).rowcount
        con.execute("commit")
    finally:
        con.close()
    return bool(changed)


def closed_waves(path: Path | str) -> dict[int, str]:
    """{wave: day it was closed} of the waves closed in this inbox (none if no file)."""
    if not Path(path).exists():
        return {}
    con = connect(path)
    try:
        return {int(w): day for w, day in con.execute("select wave, closed_on from closed_waves")}
    finally:
        con.close()


def invitation_counts(path: Path | str) -> list[tuple[str, int, int, int]]:
    """(site, wave, issued, marked used) per survey with invitations. Used marks are
    written ten at a time (see the module note), so up to nine recent uses may not show."""
    if not Path(path).exists():
        return []
    con = connect(path)
    try:
        return con.execute("select site, wave, count(*), sum(used) from tokens "
                           "group by site, wave order by site, wave").fetchall()
    finally:
        con.close()


#: Most invitations one call makes (a typo guard: the largest trust has a few thousand).
MAX_INVITATIONS = 100_000


def write_invitation_links(path: Path | str, site: str, wave: int, count: int, out: Path,
                           base_url: str) -> int:
    """Issue `count` invitations and write their links, one a row under `link`, to the CSV
    `out` (the list the survey lead sends; the inbox keeps only the tokens' hashes)."""
    import csv

    if not 1 <= count <= MAX_INVITATIONS:
        raise InboxError(f"--count {count}: use 1 to {MAX_INVITATIONS}")
    tokens = issue_tokens(path, site, wave, count)
    with Path(out).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["link"])
        writer.writerows([[f"{base_url.rstrip('/')}/s/{site}/{wave}?t={t}"] for t in tokens])
    return len(tokens)


class Inbox:
    """Durable, exactly-once storage of submissions, group-committed by one thread."""

    def __init__(self, path: Path | str, max_batch: int = 500,
                 mark_batch: int = MARK_BATCH) -> None:
        self.path = Path(path)
        self.max_batch, self.mark_batch = max_batch, mark_batch
        try:
            self._con = connect(self.path)
        except sqlite3.Error as error:
            raise InboxError(f"{self.path}: cannot open the survey inbox ({error})") from None
        # Tokens whose answers are stored but whose used marks are not yet written, by
        # (site, wave). Only the writer thread touches them.
        self._unmarked: dict[tuple[str, int], set[str]] = {}
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._writer = threading.Thread(target=self._write_loop, name="inbox-writer",
                                        daemon=True)
        self._writer.start()
        # The request threads' own connection, for the checks made when a form opens.
        self._reader = connect(self.path)
        self._reader_lock = threading.Lock()
        self._closed: tuple[float, frozenset[int]] = (0.0, frozenset())

    def wave_closed(self, wave: int) -> bool:
        """Whether `culture waves close` closed this wave (read at most once a second)."""
        checked, closed = self._closed
        if time.monotonic() - checked > 1.0:
            with self._reader_lock:
                closed = frozenset(r[0] for r in self._reader.execute(
                    "select wave from closed_waves"))
            self._closed = (time.monotonic(), closed)
        return wave in closed

    def invitation_state(self, token: str, site: str, wave: int) -> str:
        """'unused', 'used' or 'unknown' (never issued, or for another site or wave): the
        check made when an invitation link is opened, so that nobody types answers that
        would then be refused. Reads nothing that pairs a token with an answer."""
        token_hash = hash_token(token)
        with self._reader_lock:
            row = self._reader.execute("select used from tokens where token_hash = ? and "
                                       "site = ? and wave = ?",
                                       [token_hash, site, wave]).fetchone()
        if row is None:
            return "unknown"
        # A mark being written as this reads may be missed for that instant: this check
        # only spares typing; the writer's own check refuses the answer regardless.
        waiting = self._unmarked.get((site, wave), ())
        return "used" if row[0] or token_hash in waiting else "unused"

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

    def unmarked(self) -> int:
        """How many used invitations are waiting for their used marks."""
        return sum(len(hashes) for hashes in self._unmarked.values())

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
            self._write_used_marks()

    def _write(self, batch: list[_Pending]) -> None:
        today = dt.date.today().isoformat()
        con = self._con
        claimed: list[tuple[tuple[str, int], str]] = []
        try:
            con.execute("begin immediate")
            # Read in the storing transaction: once a close commits, nothing gets past.
            closed = {r[0] for r in con.execute("select wave from closed_waves")}
            for pending in batch:
                if pending.wave in closed:
                    pending.error = WaveClosed(f"the {pending.wave} survey has closed")
                    continue
                self._write_one(con, pending, today, claimed)
            con.execute("commit")  # synchronous=full: on disk before anyone is told
        except sqlite3.Error as error:
            con.execute("rollback")
            for survey, token_hash in claimed:
                self._unmarked[survey].discard(token_hash)
            for pending in batch:
                pending.error = InboxError(f"could not store the submission ({error})")
        for pending in batch:
            pending.done.set()

    def _write_one(self, con: sqlite3.Connection, pending: _Pending, today: str,
                   claimed: list) -> None:
        con.execute("savepoint one")
        try:
            if con.execute("select 1 from submissions where submission_id = ?",
                           [pending.submission_id]).fetchone():
                pending.outcome = "duplicate"
                con.execute("release one")
                return
            survey = (pending.site, pending.wave)
            if pending.token_hash is not None:
                waiting = self._unmarked.setdefault(survey, set())
                unused = con.execute(
                    "select 1 from tokens where token_hash = ? and site = ? and wave = ? "
                    "and used = 0", [pending.token_hash, *survey]).fetchone()
                if not unused or pending.token_hash in waiting:
                    pending.error = TokenRefused("this invitation link is not valid or has "
                                                 "already been used")
                    con.execute("release one")
                    return
            con.execute("insert into submissions values (?, ?, ?, ?, ?, ?)",
                        [pending.submission_id, secrets.token_hex(12), pending.site,
                         pending.wave, today, json.dumps(pending.answers, sort_keys=True)])
            if pending.token_hash is not None:
                waiting.add(pending.token_hash)
                claimed.append((survey, pending.token_hash))
            pending.outcome = "stored"
            con.execute("release one")
        except sqlite3.Error:
            con.execute("rollback to one")
            con.execute("release one")
            raise

    def _write_used_marks(self) -> None:
        """Mark used, in a transaction of their own, the tokens of every site and wave
        with at least `mark_batch` waiting; the rest keep waiting."""
        ready = [survey for survey, hashes in self._unmarked.items()
                 if len(hashes) >= self.mark_batch]
        if not ready:
            return
        marks = [(token_hash, *survey) for survey in ready
                 for token_hash in self._unmarked[survey]]
        secrets.SystemRandom().shuffle(marks)  # no order carried over from arrival
        con = self._con
        try:
            con.execute("begin immediate")
            con.executemany("update tokens set used = 1 where token_hash = ? and site = ? "
                            "and wave = ?", marks)
            con.execute("commit")
        except sqlite3.Error:
            con.execute("rollback")  # still refused while this server runs; retried later
            return
        for survey in ready:
            del self._unmarked[survey]

    def close(self) -> int:
        """Stop the writer; returns how many used marks were still waiting (those
        invitations could be used once more by a later server)."""
        self._queue.put(None)
        self._writer.join(timeout=10)
        self._con.close()
        self._reader.close()
        return self.unmarked()


def read_submissions(path: Path | str, after: int = 0) -> list[tuple]:
    """(rowid, response_id, site, wave, submitted_on, answers dict) of submissions with
    rowid > `after`, oldest first: what the pipeline has not yet picked up."""
    return read_inbox(path, after).rows


@dataclass(frozen=True)
class InboxRead:
    """One consistent read of an inbox: its id, the submissions after a row, and the
    response id now at a row the reader took before (None if it is gone)."""

    inbox_id: str
    rows: list[tuple]
    response_at_check: str | None = None


def read_inbox(path: Path | str, after: int = 0, check_row: int | None = None) -> InboxRead:
    """The inbox's id and its submissions with rowid > `after` (see read_submissions);
    with `check_row`, also the response id stored at that row, so a reader can tell
    whether the file is still the one it read before."""
    con = connect(path)
    try:
        con.execute("begin")  # one snapshot for all three reads
        identity = inbox_id(con)
        rows = con.execute("select rowid, response_id, site, wave, submitted_on, answers "
                           "from submissions where rowid > ? order by rowid",
                           [after]).fetchall()
        check = None
        if check_row is not None:
            found = con.execute("select response_id from submissions where rowid = ?",
                                [check_row]).fetchone()
            check = found[0] if found else None
        con.execute("commit")
    finally:
        con.close()
    return InboxRead(identity, [(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]))
                                for r in rows], check)


def submission_ids_by_wave(path: Path | str, waves: list[int]) -> dict[int, list[str]]:
    """{wave: response ids} of the inbox's submissions of `waves` (empty if no file):
    what a retention purge (`pipeline.retention`) would delete here."""
    if not Path(path).exists() or not waves:
        return {}
    con = connect(path)
    try:
        found: dict[int, list[str]] = {}
        for wave, response_id in con.execute(
                f"select wave, response_id from submissions where wave in "
                f"({', '.join('?' * len(waves))}) order by rowid", list(waves)):
            found.setdefault(int(wave), []).append(response_id)
        return found
    finally:
        con.close()


def last_kept_submission(path: Path | str, row: int, waves: list[int]
                         ) -> tuple[str | None, tuple[int, str] | None]:
    """For a reader whose cursor is at `row`, before `waves`' submissions are deleted:
    the response id now at `row` (None if none), and the rowid and response id of the
    last submission at or before `row` of another wave (None if none), from one
    snapshot."""
    con = connect(path)
    try:
        con.execute("begin")
        found = con.execute("select response_id from submissions where rowid = ?",
                            [row]).fetchone()
        kept = con.execute(
            f"select rowid, response_id from submissions where rowid <= ? and wave not in "
            f"({', '.join('?' * len(waves))}) order by rowid desc limit 1",
            [row, *waves]).fetchone()
        con.execute("commit")
    finally:
        con.close()
    return (found[0] if found else None), (tuple(kept) if kept else None)


def delete_wave_submissions(path: Path | str, waves: list[int]) -> int:
    """Delete the submissions of `waves` and close those waves, in one transaction (a
    retention purge); returns how many submissions went. Closed too, so that the form
    stores no answer of a purged wave after this commits."""
    if not Path(path).exists() or not waves:
        return 0
    con = connect(path)
    try:
        con.execute("begin immediate")
        con.executemany("insert or ignore into closed_waves values (?, ?)",
                        [(wave, dt.date.today().isoformat()) for wave in waves])
        deleted = con.execute(f"delete from submissions where wave in "
                              f"({', '.join('?' * len(waves))})", list(waves)).rowcount
        con.execute("commit")
        return deleted
    finally:
        con.close()
