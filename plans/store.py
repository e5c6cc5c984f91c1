"""The action plan file: each site's actions against the principles, with an audit trail.

`ActionBook(path)` is the one read and write API over ``<store>.plans.duckdb``
(`Settings.plans_path`), used by the dashboard's server, the board report and
`culture actions ...`. An action belongs to a site, not a wave: it carries over from
wave to wave until it is closed (done or dropped). Every change is written, in the same
transaction, to the audit table: who (a username), when (UTC), which field, the old and
the new value. A new action is audited as one row per field with no old value.

Why a file of its own: the respondent store is held by a pipeline run for minutes and
the published layer is replaced whole by every run; actions must survive both.

Concurrency. DuckDB lets one process at a time open a file for writing (and a
read-only open is refused while another process writes). The book therefore holds the
file only for the milliseconds of one question or one change, opening it each time,
retrying for `RETRY_SECONDS`; if another process still holds it the caller gets
`PlanInUse` ("the action plan is in use by another process; try again"), never a
traceback or a half-written change. Threads of one process take turns on a lock, since
DuckDB shares one database instance per file within a process.

Validation raises `PlanError` with a message that says what is accepted: lengths of
the text fields, ISO dates with the review on or after the start, the four statuses,
principle ids and site codes (checked against `known_principles` and `known_sites`
when the caller passes them, e.g. from the published layer).
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import duckdb
import pandas as pd

from survey.errors import CultureError

#: An action's statuses, in the order it moves through them; the last two close it.
STATUSES = ("planned", "in progress", "done", "dropped")
OPEN_STATUSES = ("planned", "in progress")
CLOSED_STATUSES = ("done", "dropped")
#: The longest text each field takes (characters); the note is a line or two, not a report.
MAX_WHAT, MAX_OWNER_ROLE, MAX_NOTE = 200, 80, 500
MIN_WHAT, MIN_OWNER_ROLE = 3, 2
#: Fields `ActionBook.update` may change; the site and the id never change.
EDITABLE = ("principle", "what", "owner_role", "start", "review", "status", "note")
#: Columns of `ActionBook.list`, in order.
COLUMNS = ("id", "site_code", "principle", "what", "owner_role", "start", "review", "status",
           "note", "created_at", "created_by", "updated_at", "updated_by")
AUDIT_COLUMNS = ("seq", "action_id", "site_code", "changed_at", "who", "field", "old", "new")
#: How long a write waits for another process to let go of the file (seconds).
RETRY_SECONDS = 2.0
IN_USE = "the action plan is in use by another process; try again"

_PRINCIPLE = re.compile(r"P[0-9]{1,2}")
_SITE_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
# Control characters other than the note's line breaks and tabs.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

_SCHEMA = """
create sequence if not exists action_ids start 1;
create sequence if not exists audit_seq start 1;
create table if not exists actions (
    id integer primary key,
    site_code varchar not null,
    principle varchar not null,
    what varchar not null,
    owner_role varchar not null,
    start date not null,
    review date not null,
    status varchar not null,
    note varchar not null,
    created_at timestamp not null,
    created_by varchar not null,
    updated_at timestamp not null,
    updated_by varchar not null
);
create table if not exists audit (
    seq bigint primary key,
    action_id integer not null,
    changed_at timestamp not null,
    who varchar not null,
    field varchar not null,
    old varchar,
    new varchar
);
"""

# One lock per file for the threads of this process (DuckDB shares the instance).
_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


class PlanError(CultureError):
    """An action cannot be recorded, changed or found; the message says why."""


class PlanInUse(PlanError):
    """Another process holds the action plan file; trying again shortly will work."""


class ActionNotFound(PlanError):
    """No action with this id (or none at the site the caller is allowed)."""


def _lock_for(path: Path) -> threading.Lock:
    key = str(path.resolve())
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(key, threading.Lock())


class ActionBook:
    """Read and change the action plans in one file.

    Parameters
    ----------
    path : the plans file (`Settings.plans_path`); made on the first write.
    known_sites, known_principles : when given, an action's site and principle must be
        among them (the published layer's sites and principles); when None only their
        form is checked.
    """

    def __init__(self, path: Path | str, known_sites: Iterable[str] | None = None,
                 known_principles: Iterable[str] | None = None) -> None:
        self.path = Path(path)
        self.known_sites = set(known_sites) if known_sites is not None else None
        self.known_principles = (set(known_principles) if known_principles is not None
                                 else None)

    # -- the file ---------------------------------------------------------------------
    def _run(self, work, write: bool):
        """`work(con)` on a fresh connection, inside a transaction when writing."""
        if not write and not self.path.exists():
            return work(None)
        with _lock_for(self.path):
            con = self._connect()
            try:
                con.execute(_SCHEMA)
                if not write:
                    return work(con)
                con.execute("begin transaction")
                try:
                    result = work(con)
                except BaseException:
                    con.execute("rollback")
                    raise
                con.execute("commit")
                return result
            finally:
                con.close()

    def _connect(self) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + RETRY_SECONDS
        while True:
            try:
                return duckdb.connect(str(self.path))
            except duckdb.IOException as error:
                if "lock" not in str(error).lower():
                    raise PlanError(f"{self.path}: cannot open the action plan file "
                                    f"({error})") from None
                if time.monotonic() >= deadline:
                    raise PlanInUse(IN_USE) from None
                time.sleep(0.1)
            except duckdb.Error as error:
                raise PlanError(f"{self.path} is not an action plan file ({error}); move it "
                                "aside and the plan starts empty") from None

    # -- reading ----------------------------------------------------------------------
    def list(self, site: str | None = None,
             status: str | Iterable[str] | None = None) -> pd.DataFrame:
        """Actions, newest review last: all sites, or one; any status, or the ones given
        (e.g. `OPEN_STATUSES`). Columns `COLUMNS`; start and review are `datetime.date`."""
        statuses = [status] if isinstance(status, str) else (
            list(status) if status is not None else None)
        for value in statuses or ():
            _check_status(value)

        def read(con):
            if con is None:
                return _empty(COLUMNS)
            sql = f"select {', '.join(COLUMNS)} from actions where true"
            params: list = []
            if site is not None:
                sql += " and site_code = ?"
                params.append(site)
            if statuses is not None:
                sql += f" and status in ({', '.join('?' * len(statuses))})"
                params.extend(statuses)
            return _dates(con.execute(sql + " order by site_code, principle, review, id",
                                      params).df())
        return self._run(read, write=False)

    def get(self, action_id: int, site: str | None = None) -> dict:
        """One action as a dict; ActionNotFound if there is none (or none at `site`)."""
        frame = self.list(site=site)
        found = frame[frame["id"] == _action_id(action_id)]
        if found.empty:
            raise ActionNotFound(f"no action {action_id}"
                                 + (f" at site {site}" if site is not None else ""))
        return found.iloc[0].to_dict()

    def audit(self, action_id: int | None = None, site: str | None = None) -> pd.DataFrame:
        """The audit trail, oldest first: every change to one action, one site's actions,
        or all. Columns `AUDIT_COLUMNS`."""
        def read(con):
            if con is None:
                return _empty(AUDIT_COLUMNS)
            sql = ("select u.seq, u.action_id, a.site_code, u.changed_at, u.who, u.field, u.old, "
                   "u.new from audit u join actions a on a.id = u.action_id where true")
            params: list = []
            if action_id is not None:
                sql += " and u.action_id = ?"
                params.append(_action_id(action_id))
            if site is not None:
                sql += " and a.site_code = ?"
                params.append(site)
            return con.execute(sql + " order by u.seq", params).df()
        return self._run(read, write=False)

    def counts_by_principle_status(self) -> pd.DataFrame:
        """How many actions each principle has in each status, across every site: counts
        only (no text, no site), for researchers. Columns principle, status, actions."""
        def read(con):
            if con is None:
                return _empty(("principle", "status", "actions"))
            frame = con.execute("select principle, status, count(*)::integer as actions "
                                "from actions group by principle, status").df()
            frame["order"] = frame["status"].map(STATUSES.index)
            return (frame.sort_values(["principle", "order"]).drop(columns="order")
                    .reset_index(drop=True))
        return self._run(read, write=False)

    # -- writing ----------------------------------------------------------------------
    def add(self, site_code: str, principle: str, what: str, owner_role: str,
            start: dt.date | str, review: dt.date | str, user: str,
            status: str = "planned", note: str = "") -> dict:
        """Record a new action at a site and audit it; the action as `get` gives it."""
        record = self._validated({
            "site_code": site_code, "principle": principle, "what": what,
            "owner_role": owner_role, "start": start, "review": review, "status": status,
            "note": note})
        who = _user(user)

        def write(con):
            now = _now()
            action_id = con.execute("select nextval('action_ids')").fetchone()[0]
            con.execute(f"insert into actions ({', '.join(COLUMNS)}) values "
                        f"({', '.join('?' * len(COLUMNS))})",
                        [action_id, *(record[c] for c in COLUMNS[1:9]), now, who, now, who])
            for field in ("site_code", *EDITABLE):
                _audit(con, action_id, now, who, field, None, record[field])
            return action_id
        return self.get(self._run(write, write=True))

    def update(self, action_id: int, user: str, *, site: str | None = None,
               **changes) -> dict:
        """Change fields of an action (`EDITABLE`) and audit each field that changed.

        `site`, when given, must be the action's site (the caller's right to it checked
        on the server); otherwise ActionNotFound, as for an unknown id.
        """
        unknown = sorted(set(changes) - set(EDITABLE))
        if unknown:
            raise PlanError(f"cannot change {', '.join(unknown)}; an action's changeable "
                            f"fields are {', '.join(EDITABLE)}")
        action_id, who = _action_id(action_id), _user(user)

        def write(con):
            row = con.execute(f"select {', '.join(COLUMNS)} from actions where id = ?"
                              + (" and site_code = ?" if site is not None else ""),
                              [action_id] + ([site] if site is not None else [])).fetchone()
            if row is None:
                raise ActionNotFound(f"no action {action_id}"
                                     + (f" at site {site}" if site is not None else ""))
            old = dict(zip(COLUMNS, row))
            new = self._validated({**{k: old[k] for k in ("site_code", *EDITABLE)},
                                   **changes}, known_site_checked=True)
            changed = [f for f in EDITABLE if new[f] != old[f]]
            if not changed:
                return
            now = _now()
            con.execute(f"update actions set {', '.join(f'{f} = ?' for f in changed)}, "
                        "updated_at = ?, updated_by = ? where id = ?",
                        [new[f] for f in changed] + [now, who, action_id])
            for field in changed:
                _audit(con, action_id, now, who, field, old[field], new[field])
        self._run(write, write=True)
        return self.get(action_id)

    def close(self, action_id: int, user: str, status: str = "done",
              site: str | None = None) -> dict:
        """Close an action as done or dropped (it stops carrying over to the next wave)."""
        if status not in CLOSED_STATUSES:
            raise PlanError(f"an action is closed as {' or '.join(CLOSED_STATUSES)}, "
                            f"not {status!r}")
        return self.update(action_id, user, site=site, status=status)

    # -- validation -------------------------------------------------------------------
    def _validated(self, record: dict, known_site_checked: bool = False) -> dict:
        site = str(record["site_code"] or "").strip()
        if not _SITE_CODE.fullmatch(site):
            raise PlanError(f"site code {site!r}: use the site's code, e.g. A or RX1 "
                            "(letters, digits, . _ -)")
        if (not known_site_checked and self.known_sites is not None
                and site not in self.known_sites):
            raise PlanError(f"site {site!r} is not in the published results; known sites: "
                            f"{', '.join(sorted(self.known_sites)) or 'none yet'}")
        principle = str(record["principle"] or "").strip().upper()
        known = self.known_principles
        if not _PRINCIPLE.fullmatch(principle) or (known is not None and principle not in known):
            raise PlanError(f"principle {record['principle']!r} is not known; use one of "
                            + (", ".join(sorted(known)) if known else "P1-P6"))
        start = _date(record["start"], "start")
        review = _date(record["review"], "review")
        if review < start:
            raise PlanError(f"the review date {review.isoformat()} is before the start "
                            f"{start.isoformat()}; review on or after the start")
        status = str(record["status"] or "").strip().lower()
        _check_status(status)
        return {"site_code": site, "principle": principle,
                "what": _text(record["what"], "what", MIN_WHAT, MAX_WHAT),
                "owner_role": _text(record["owner_role"], "owner role", MIN_OWNER_ROLE,
                                    MAX_OWNER_ROLE,
                                    hint=" (a role such as Medical director, not a name)"),
                "start": start, "review": review, "status": status,
                "note": _text(record["note"] or "", "note", 0, MAX_NOTE, lines=True)}


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise PlanError(f"status {status!r} is not known; use one of {', '.join(STATUSES)}")


def _text(value, name: str, shortest: int, longest: int, hint: str = "",
          lines: bool = False) -> str:
    if not isinstance(value, str):
        raise PlanError(f"{name}: expected text{hint}")
    text = value.strip()
    if not lines and ("\n" in text or "\r" in text):
        raise PlanError(f"{name}: one line, please{hint}")
    if _CONTROL.search(text):
        raise PlanError(f"{name}: contains control characters; use plain text")
    if not shortest <= len(text) <= longest:
        raise PlanError(f"{name}: {len(text)} characters; use {shortest} to {longest}{hint}")
    return text


def _date(value, name: str) -> dt.date:
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, pd.Timestamp):
        value = value.date()
    if isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value.strip())
        except ValueError:
            raise PlanError(f"{name} date {value!r}: use a date like 2026-04-01") from None
    if not isinstance(value, dt.date):
        raise PlanError(f"{name} date: use a date like 2026-04-01")
    if not 2000 <= value.year <= 2100:
        raise PlanError(f"{name} date {value.isoformat()}: use a year from 2000 to 2100")
    return value


def _user(user: str) -> str:
    if not isinstance(user, str) or not 1 <= len(user.strip()) <= 64:
        raise PlanError("every change names who made it: give a username (1-64 characters)")
    return user.strip()


def _action_id(action_id) -> int:
    try:
        value = int(action_id)
    except (TypeError, ValueError):
        raise ActionNotFound(f"no action {action_id!r}: an action id is a number") from None
    if isinstance(action_id, float) and action_id != value:
        raise ActionNotFound(f"no action {action_id!r}: an action id is a whole number")
    return value


def _audit(con, action_id: int, at: dt.datetime, who: str, field: str, old, new) -> None:
    con.execute("insert into audit values (nextval('audit_seq'), ?, ?, ?, ?, ?, ?)",
                [action_id, at, who, field, _plain(old), _plain(new)])


def _plain(value) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, dt.date) else str(value)


def _now() -> dt.datetime:
    """UTC, without a zone (DuckDB's plain timestamp), to the second."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)


def _dates(frame: pd.DataFrame) -> pd.DataFrame:
    for column in ("start", "review"):
        frame[column] = [pd.Timestamp(v).date() for v in frame[column]]
    return frame


def _empty(columns: Iterable[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
