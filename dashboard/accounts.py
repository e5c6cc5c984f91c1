"""Dashboard accounts: who may log in, with which role, and their password hashes.

Accounts live in their own small DuckDB file beside the store
(`Settings.accounts_path`, e.g. ``culture.accounts.duckdb``), not in the respondent
store: the dashboard then never opens the file that holds respondents, and a pipeline
run (which holds the store's single write lock for minutes at national scale) never
locks people out of the dashboard. `culture users ...` writes the file; the dashboard
only reads it.

Passwords are hashed with scrypt (RFC 7914) from the standard library: N = 2^15,
r = 8, p = 1 (about 32 MB and tens of milliseconds per guess), a 16-byte random salt
per account, stored as ``scrypt$N$r$p$salt$hash`` (base64) so the cost can be raised
later without breaking old hashes.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from survey.errors import CultureError

#: Roles, from most to least seeing: admin (every site named), director (own site
#: named, other sites anonymous peers), researcher (aggregates and the export page).
ROLES = ("admin", "director", "researcher")
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,63}$")
MIN_PASSWORD_LENGTH = 10
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 15, 8, 1


class AccountError(CultureError):
    """An account cannot be added, changed or found; the message says why."""


@dataclass(frozen=True)
class Account:
    """One person who may log in."""

    username: str
    role: str
    site_code: str | None = None


def hash_password(password: str, salt: bytes | None = None) -> str:
    """scrypt hash of `password` in the self-describing ``scrypt$N$r$p$salt$hash`` form."""
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R,
                            p=SCRYPT_P, maxmem=64 * 1024 * 1024, dklen=32)
    encode = base64.b64encode
    return (f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}$"
            f"{encode(salt).decode()}${encode(digest).decode()}")


def check_password(password: str, stored: str) -> bool:
    """Whether `password` matches a stored hash (constant-time comparison)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt),
                                n=int(n), r=int(r), p=int(p), maxmem=64 * 1024 * 1024,
                                dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


#: Checked against when a username is unknown, so that a wrong username costs the same
#: time as a wrong password and response times do not reveal who has an account.
_DUMMY_HASH = hash_password("no such account", salt=b"\0" * 16)


_SCHEMA = """
create table if not exists accounts (
    username varchar primary key,
    role varchar not null,
    site_code varchar,
    password_hash varchar not null,
    created_on date not null
)"""


class AccountBook:
    """The accounts file: add, list, remove and authenticate accounts.

    Reads are cached until the file changes on disk, so checking a session on every
    request costs a stat call, not a database open.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._cache: tuple[tuple[int, int], dict[str, tuple[Account, str]]] | None = None
        self._lock = threading.Lock()

    # -- writing (culture users ...) -------------------------------------------------
    def _connect_for_writing(self) -> duckdb.DuckDBPyConnection:
        try:
            con = duckdb.connect(str(self.path))
        except duckdb.IOException as error:
            raise AccountError(f"{self.path}: cannot open the accounts file for writing "
                               f"({error}); is another `culture users` running?") from None
        con.execute(_SCHEMA)
        return con

    def add(self, username: str, role: str, password: str, site_code: str | None = None,
            known_sites: set[str] | None = None) -> Account:
        """Create an account; directors need the site they direct."""
        username = username.strip().lower()
        if not USERNAME.match(username):
            raise AccountError(f"username {username!r}: use 2-64 lower-case letters, digits "
                               "or . _ @ -, starting with a letter or digit")
        if role not in ROLES:
            raise AccountError(f"role {role!r} is not known; use one of {', '.join(ROLES)}")
        if role == "director" and not site_code:
            raise AccountError("a director needs --site: the site whose results they see")
        if role != "director" and site_code:
            raise AccountError(f"--site applies to directors only; a {role} sees "
                               + ("every site" if role == "admin" else "aggregates"))
        if site_code and known_sites is not None and site_code not in known_sites:
            raise AccountError(f"site {site_code!r} is not in the published results; known "
                               f"sites: {', '.join(sorted(known_sites)) or 'none yet'}")
        _check_password_strength(password)
        with self._connect_for_writing() as con:
            if con.execute("select 1 from accounts where username = ?", [username]).fetchall():
                raise AccountError(f"account {username!r} already exists; use "
                                   "`culture users set-password` to change its password")
            con.execute("insert into accounts values (?, ?, ?, ?, ?)",
                        [username, role, site_code, hash_password(password),
                         dt.date.today()])
        return Account(username, role, site_code)

    def set_password(self, username: str, password: str) -> None:
        """Replace an account's password."""
        _check_password_strength(password)
        with self._connect_for_writing() as con:
            self._require(con, username)
            con.execute("update accounts set password_hash = ? where username = ?",
                        [hash_password(password), username])

    def remove(self, username: str) -> None:
        """Delete an account; its sessions end at their next request."""
        with self._connect_for_writing() as con:
            self._require(con, username)
            con.execute("delete from accounts where username = ?", [username])

    @staticmethod
    def _require(con, username: str) -> None:
        if not con.execute("select 1 from accounts where username = ?", [username]).fetchall():
            raise AccountError(f"no account {username!r}; see `culture users list`")

    # -- reading (the dashboard) -----------------------------------------------------
    def _rows(self) -> dict[str, tuple[Account, str]]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return {}
        key = (stat.st_ino, stat.st_mtime_ns)
        with self._lock:
            if self._cache is None or self._cache[0] != key:
                with duckdb.connect(str(self.path), read_only=True) as con:
                    rows = con.execute("select username, role, site_code, password_hash "
                                       "from accounts").fetchall()
                self._cache = (key, {u: (Account(u, r, s), h) for u, r, s, h in rows})
            return self._cache[1]

    def accounts(self) -> list[Account]:
        """Every account, by username."""
        return sorted((a for a, _ in self._rows().values()), key=lambda a: a.username)

    def get(self, username: str) -> Account | None:
        """The account of `username`, or None if there is none (any more)."""
        found = self._rows().get(username)
        return found[0] if found else None

    def authenticate(self, username: str, password: str) -> Account | None:
        """The account if the password is right, else None (same cost either way)."""
        found = self._rows().get(username.strip().lower())
        ok = check_password(password, found[1] if found else _DUMMY_HASH)
        return found[0] if found and ok else None


def _check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"passwords need at least {MIN_PASSWORD_LENGTH} characters")


class LoginThrottle:
    """Slows repeated failed log-ins to one account: after `free` failures in a row,
    each further attempt must wait 2, 4, 8 ... seconds (at most `max_wait`).

    Kept in memory per server process, keyed by username only (no addresses are
    kept). A successful log-in clears the count.
    """

    def __init__(self, free: int = 5, max_wait: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.free, self.max_wait, self.clock = free, max_wait, clock
        self._failures: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def wait_seconds(self, username: str) -> float:
        """Seconds before `username` may try again (0 when allowed now)."""
        with self._lock:
            count, last = self._failures.get(username, (0, 0.0))
        if count < self.free:
            return 0.0
        wait = min(self.max_wait, 2.0 ** (count - self.free + 1))
        return max(0.0, last + wait - self.clock())

    def failed(self, username: str) -> None:
        with self._lock:
            count, _ = self._failures.get(username, (0, 0.0))
            self._failures[username] = (count + 1, self.clock())

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(username, None)
