"""Server-side sign-in sessions: what a session cookie opens, and how to end it.

The cookie carries only a random session id. The server keeps, in a small SQLite file
beside the accounts file (``culture.accounts.sessions.sqlite``), a SHA-256 hash of each
id with its username, a fingerprint of the password hash it was opened with, when it
was opened and when it was last used. Every request looks its id up here, so a session
ends for good when a row goes: at sign-out, when `culture users set-password` or
`culture users remove` ends every session of that account, after `idle` seconds
unused, or `absolute` seconds after sign-in. A replayed cookie then opens nothing.

Why SQLite and not the accounts file: DuckDB lets one process write a file, and
`culture users ...` must be able to write the accounts file while the dashboard runs
(which would otherwise hold it to record sign-ins). SQLite in WAL mode lets the
dashboard's threads and the CLI write the same small file, each for milliseconds.
Only hashes of ids are stored, so reading this file gives no usable cookie.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from survey.errors import CultureError

#: A session unused this long ends (seconds).
IDLE_LIFETIME = 30 * 60
#: A session ends this long after sign-in however much it is used (seconds).
ABSOLUTE_LIFETIME = 12 * 60 * 60
#: last_seen is written at most this often per session, so page callbacks (a dozen a
#: page) do not each write the file.
TOUCH_INTERVAL = 60

_SCHEMA = """
create table if not exists sessions (
    id_hash text primary key,
    username text not null,
    credential text not null,
    created real not null,
    last_seen real not null
) without rowid;
create index if not exists sessions_by_user on sessions (username);
"""


class SessionStoreError(CultureError):
    """The sessions file cannot be opened or written; the message says what to check."""


@dataclass(frozen=True)
class OpenSession:
    """A live session: whose it is and the password fingerprint it was opened with."""

    username: str
    credential: str


def sessions_path_for(accounts_path: Path) -> Path:
    """Where the sessions of an accounts file live: beside it, named after it."""
    return accounts_path.with_suffix(".sessions.sqlite")


def _id_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


class SessionStore:
    """Open, look up and end sessions in the SQLite sessions file."""

    def __init__(self, path: Path | str, idle: float = IDLE_LIFETIME,
                 absolute: float = ABSOLUTE_LIFETIME,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.idle, self.absolute, self.clock = idle, absolute, clock
        self._ready = False

    def _connect(self) -> sqlite3.Connection:
        try:
            if not self.path.exists():
                # Owner-only from the start: the file says who is signed in and when.
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            con = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            if not self._ready:
                con.execute("pragma journal_mode=wal")
                con.executescript(_SCHEMA)
                self._ready = True
        except (OSError, sqlite3.Error) as error:
            raise SessionStoreError(f"{self.path}: cannot open the dashboard sessions file "
                                    f"({error}); check that its folder is writable by the "
                                    "dashboard and by `culture users`") from None
        return con

    def begin(self, username: str, credential: str) -> str:
        """A new session id for `username` (its cookie value); expired rows are cleared."""
        session_id = secrets.token_urlsafe(32)
        now = self.clock()
        con = self._connect()
        try:
            with con:
                con.execute("delete from sessions where last_seen < ? or created < ?",
                            [now - self.idle, now - self.absolute])
                con.execute("insert into sessions values (?, ?, ?, ?, ?)",
                            [_id_hash(session_id), username, credential, now, now])
        finally:
            con.close()
        return session_id

    def find(self, session_id: str) -> OpenSession | None:
        """The live session of `session_id`, or None if it never existed or has ended."""
        now = self.clock()
        key = _id_hash(session_id)
        con = self._connect()
        try:
            row = con.execute("select username, credential, created, last_seen from sessions "
                              "where id_hash = ?", [key]).fetchone()
            if row is None:
                return None
            username, credential, created, last_seen = row
            if now - last_seen > self.idle or now - created > self.absolute:
                with con:
                    con.execute("delete from sessions where id_hash = ?", [key])
                return None
            if now - last_seen > TOUCH_INTERVAL:
                with con:
                    con.execute("update sessions set last_seen = ? where id_hash = ?",
                                [now, key])
        finally:
            con.close()
        return OpenSession(username, credential)

    def end(self, session_id: str) -> None:
        """End one session (sign-out)."""
        con = self._connect()
        try:
            with con:
                con.execute("delete from sessions where id_hash = ?", [_id_hash(session_id)])
        finally:
            con.close()

    def end_all(self, username: str) -> int:
        """End every session of `username`; how many there were."""
        con = self._connect()
        try:
            with con:
                return con.execute("delete from sessions where username = ?",
                                   [username]).rowcount
        finally:
            con.close()

    def count(self, username: str) -> int:
        """How many sessions of `username` are stored (ended-by-time ones included)."""
        con = self._connect()
        try:
            return con.execute("select count(*) from sessions where username = ?",
                               [username]).fetchone()[0]
        finally:
            con.close()
