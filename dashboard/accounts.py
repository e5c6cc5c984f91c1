"""Dashboard accounts: who may log in, with which role, and their password hashes.

Accounts live in their own small DuckDB file beside the store
(`Settings.accounts_path`, e.g. ``culture.accounts.duckdb``), not in the respondent
store: the dashboard then never opens the file that holds respondents, and a pipeline
run (which holds the store's single write lock for minutes at national scale) never
locks people out of the dashboard. `culture users ...` writes the file; the dashboard
only reads it. Sessions are kept in a SQLite file beside it (`dashboard.sessions`), which
both write: a password change or a removal here ends every session of that account.

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

from dashboard.sessions import SessionStore, sessions_path_for
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
    request costs a stat call and one SQLite lookup, not a DuckDB open.
    """

    def __init__(self, path: Path | str, sessions: SessionStore | None = None) -> None:
        self.path = Path(path)
        self.sessions = sessions or SessionStore(sessions_path_for(self.path))
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

    def set_password(self, username: str, password: str) -> int:
        """Replace an account's password and end its sessions; how many were ended."""
        _check_password_strength(password)
        with self._connect_for_writing() as con:
            self._require(con, username)
            con.execute("update accounts set password_hash = ? where username = ?",
                        [hash_password(password), username])
        # After the commit: a session opened in between still fails the credential check.
        return self.sessions.end_all(username)

    def remove(self, username: str) -> int:
        """Delete an account and end its sessions; how many were ended."""
        with self._connect_for_writing() as con:
            self._require(con, username)
            con.execute("delete from accounts where username = ?", [username])
        return self.sessions.end_all(username)

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

    def open_session(self, account: Account) -> str:
        """A new session id for a just-authenticated account (the cookie's only content)."""
        return self.sessions.begin(account.username, self._credential(account.username))

    def session_account(self, session_id: str) -> Account | None:
        """The account a session id opens, or None: ended, expired, account removed, or
        its password changed since sign-in (even by a tool that left the session)."""
        session = self.sessions.find(session_id)
        if session is None:
            return None
        credential = self._credential(session.username)
        if credential is None or not hmac.compare_digest(credential, session.credential):
            return None
        return self.get(session.username)

    def _credential(self, username: str) -> str | None:
        """A fingerprint of the account's password hash (not the hash itself)."""
        found = self._rows().get(username)
        if found is None:
            return None
        return hashlib.sha256(b"culture session\0" + found[1].encode()).hexdigest()


def _check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"passwords need at least {MIN_PASSWORD_LENGTH} characters")


class LoginThrottle:
    """Slows guessing at sign-in without letting a guesser lock the real user out.

    Two counts of failures, each allowing `free` attempts and then one attempt per 2, 4,
    8 ... seconds, never more than `max_wait` apart:

    * per account and client address (`free`): a guesser slows only themselves; the
      real user, from another address, is not held up by them at all;
    * per account, over every address (`account_free`, higher): a ceiling on guessing
      from many addresses at once. A browser that has signed in to the account before
      (it holds a signed device cookie, see `dashboard.login`) is exempt, so a
      distributed guesser can delay the real user only on a new device, and then by
      at most `max_wait` per attempt.

    `reserve` checks and records in one step under a lock, before the slow password
    hash: an attempt counts as a failure from the moment it is let through, so
    concurrent guesses cannot all pass one check. `succeeded` takes a good attempt back
    off both counts. Counts are kept in memory per server process, and forgotten after
    `forget_after` seconds without a failure.
    """

    def __init__(self, free: int = 5, max_wait: float = 60.0, account_free: int = 50,
                 forget_after: float = 3600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.free, self.max_wait, self.account_free = free, max_wait, account_free
        self.forget_after, self.clock = forget_after, clock
        self._failures: dict[tuple, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def _keys(self, username: str, address: str,
              trusted_device: bool) -> list[tuple[tuple, int]]:
        keys = [(("pair", username, address), self.free)]
        if not trusted_device:
            keys.append((("account", username), self.account_free))
        return keys

    def _wait(self, key: tuple, free: int, now: float) -> float:
        count, last = self._failures.get(key, (0, 0.0))
        if now - last > self.forget_after:
            self._failures.pop(key, None)
            return 0.0
        if count < free:
            return 0.0
        return max(0.0, last + min(self.max_wait, 2.0 ** (count - free + 1)) - now)

    def reserve(self, username: str, address: str, trusted_device: bool = False) -> float:
        """0 if this attempt may be checked now (it then counts as a failure until
        `succeeded`), else the seconds to wait (nothing recorded)."""
        with self._lock:
            now = self.clock()
            keys = self._keys(username, address, trusted_device)
            wait = max(self._wait(key, free, now) for key, free in keys)
            if wait > 0:
                return wait
            if len(self._failures) > 100_000:  # bound memory under a spray of names
                self._failures = {k: v for k, v in self._failures.items()
                                  if now - v[1] <= self.forget_after}
            for key, _ in keys:
                count, _last = self._failures.get(key, (0, 0.0))
                self._failures[key] = (count + 1, now)
            return 0.0

    def succeeded(self, username: str, address: str) -> None:
        """A right password: clear this account's counts (its own address and overall)."""
        with self._lock:
            self._failures.pop(("pair", username, address), None)
            self._failures.pop(("account", username), None)


#: The demo's accounts: (username, role, site directed).
DEMO_ACCOUNTS = (("demo-admin", "admin", None), ("demo-director", "director", "A"))


def reset_demo_accounts(path: Path | str) -> dict[str, tuple[str, str]]:
    """(Re)create the demo admin and the director of sample site A with fresh passwords;
    {username: (role, password)} to print once."""
    import secrets

    book = AccountBook(path)
    existing = {a.username for a in book.accounts()}
    made = {}
    for username, role, site in DEMO_ACCOUNTS:
        password = secrets.token_urlsafe(9)
        if username in existing:
            book.set_password(username, password)
        else:
            book.add(username, role, password, site)
        made[username] = (role, password)
    return made
