"""The DuckDB store: open (creating or migrating) the one database file, and reference data.

The store is a single DuckDB file. DuckDB lets one process write to a file at a time,
so every writer (ingest, the pipeline) opens it briefly, does its work in one
transaction and closes it; readers of published tables may open it read-only.

The schema is versioned: `MIGRATIONS` lists, in order, the SQL file that brings a store
from the previous version to each version. Opening an older file applies the missing
steps in one transaction; a file made by a newer program is refused.
"""

from __future__ import annotations

import csv
import json
import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterator

import duckdb
import pandas as pd

from survey.errors import ReferenceDataError, StoreError
from survey.instrument import Instrument
from survey.sites import SITE_TYPES

#: (version, SQL resource in pipeline/sql) applied in order to reach that version.
MIGRATIONS: tuple[tuple[int, str], ...] = ((1, "schema_v1.sql"), (2, "schema_v2.sql"),
                                            (3, "schema_v3.sql"))
SCHEMA_VERSION = MIGRATIONS[-1][0]
SQL_DIR = Path(__file__).resolve().parent / "sql"



def read_sql(name: str, folder: Path = SQL_DIR) -> str:
    """The text of one SQL file shipped with the pipeline (pipeline/sql by default)."""
    return (folder / name).read_text(encoding="utf-8")


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """The schema version of an open store (0 for an empty file)."""
    exists = con.execute(
        "select count(*) from information_schema.tables "
        "where table_schema = 'main' and table_name = 'schema_version'"
    ).fetchall()[0][0]
    if not exists:
        return 0
    # fetchall, not fetchone: a result left unfinished makes DuckDB refuse the caller's
    # next relation query (con.sql) on this connection.
    row = con.execute("select max(version) from schema_version").fetchall()[0]
    return int(row[0] or 0)


def migrate(con: duckdb.DuckDBPyConnection, path: Path,
            migrations: tuple[tuple[int, str], ...] = MIGRATIONS,
            sql_reader=read_sql) -> int:
    """Bring the store up to the last version in `migrations`, all or nothing."""
    current = schema_version(con)
    target = migrations[-1][0]
    if current > target:
        raise StoreError(
            f"{path}: the store has schema version {current}, newer than this program "
            f"understands ({target}); upgrade the program rather than the data"
        )
    pending = [(version, name) for version, name in migrations if version > current]
    if not pending:
        return current
    con.execute("begin transaction")
    try:
        con.execute("create table if not exists schema_version "
                    "(version integer primary key, applied_at timestamp not null)")
        for version, name in pending:
            con.execute(sql_reader(name))
            con.execute("insert into schema_version values (?, ?)", [version, datetime.now()])
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return target


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """All of the block's writes, or none of them (rolled back on any error)."""
    con.execute("begin transaction")
    try:
        yield con
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")


@contextmanager
def open_store(path: Path | str, read_only: bool = False,
               memory_limit: str | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """An open connection to the store at `path`, created and migrated as needed;
    `memory_limit` (a size checked by `Settings`, e.g. "3GB") caps DuckDB's memory, beyond
    which it spills to a folder beside the store."""
    path = Path(path)
    if read_only and not path.exists():
        raise StoreError(f"{path}: no store here yet; run `culture demo` or `culture ingest` "
                         f"first, or point --db / CULTURE_DB at an existing file")
    if not read_only and path.parent and not path.parent.exists():
        raise StoreError(f"{path}: the folder {path.parent} does not exist")
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        message = str(exc)
        if "lock" in message.lower():
            raise StoreError(
                f"{path}: the store is in use by another process (DuckDB allows one "
                f"writer at a time); wait for it to finish or stop it, then try again"
            ) from None
        raise StoreError(f"{path}: cannot open the store ({message.splitlines()[0]})") from None
    except duckdb.Error as exc:
        raise StoreError(f"{path}: not a DuckDB store or damaged "
                         f"({str(exc).splitlines()[0]})") from None
    try:
        if memory_limit:
            con.execute("set memory_limit = ?", [memory_limit.strip()])
        if read_only:
            version = schema_version(con)
            if version != SCHEMA_VERSION:
                raise StoreError(f"{path}: schema version {version}, expected "
                                 f"{SCHEMA_VERSION}; open it once for writing to migrate")
        else:
            migrate(con, path)
        yield con
    finally:
        con.close()


def register_instrument(con: duckdb.DuckDBPyConnection, instrument: Instrument,
                        definition_yaml: str) -> None:
    """Record the instrument version and give `responses` a column per item and attribute.

    Call inside the caller's transaction so that a failed ingest leaves no new columns.
    """
    existing = {row[0] for row in con.execute(
        "select column_name from information_schema.columns "
        "where table_schema = 'main' and table_name = 'responses'").fetchall()}
    # Identifiers are validated against survey.instrument.IDENTIFIER, so quoting is safe.
    for attribute in instrument.attributes:
        if attribute.id not in existing:
            con.execute(f'alter table responses add column "{attribute.id}" varchar')
    for item in instrument.items:
        if item.id not in existing:
            con.execute(f'alter table responses add column "{item.id}" utinyint')
    con.execute(
        "insert into instruments select ?, ?, ? "
        "where not exists (select 1 from instruments where instrument_version = ?)",
        [instrument.key, definition_yaml, datetime.now(), instrument.key],
    )


@dataclass(frozen=True)
class Site:
    site_code: str
    name: str
    site_type: str
    region: str | None = None
    #: Optional, for the survey form: who answers questions about the survey at this
    #: site, and where a respondent can get support now (a sentence and/or a web page).
    contact_email: str | None = None
    support_text: str | None = None
    support_url: str | None = None


#: The sites file's optional columns (old files without them still load).
SITE_OPTIONAL_COLUMNS = ("contact_email", "support_text", "support_url")
_EMAIL = re.compile(r"[^@\s<>\"']+@[^@\s<>\"']+\.[A-Za-z]{2,}")
_WEB_ADDRESS = re.compile(r"https?://[^\s<>\"']+")


def _read_rows(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in required if c not in header]
            if missing:
                raise ReferenceDataError(
                    f"{path}: missing column(s) {', '.join(missing)}; the header should be "
                    f"{','.join(required)}"
                )
            return [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    except FileNotFoundError:
        raise ReferenceDataError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise ReferenceDataError(f"{path}: not UTF-8 text; save it as CSV UTF-8") from None


def add_sites(con: duckdb.DuckDBPyConnection, sites: list[Site], source: str = "sites") -> int:
    """Insert or update sites; returns how many were given. Validates every row first."""
    for number, site in enumerate(sites, start=1):
        if not site.site_code or not site.name:
            raise ReferenceDataError(f"{source}: row {number}: site_code and name are required")
        if site.site_type not in SITE_TYPES:
            raise ReferenceDataError(
                f"{source}: row {number}, column site_type: '{site.site_type}' is not a site "
                f"type; accepted: {', '.join(SITE_TYPES)}"
            )
        # Shown to respondents as a mailto: and a link, so only plain addresses pass
        # (never a javascript: or data: link on the survey form).
        if site.contact_email and not _EMAIL.fullmatch(site.contact_email):
            raise ReferenceDataError(f"{source}: row {number}, column contact_email: "
                                     f"'{site.contact_email}' is not an email address")
        if site.support_url and not _WEB_ADDRESS.fullmatch(site.support_url):
            raise ReferenceDataError(f"{source}: row {number}, column support_url: "
                                     f"'{site.support_url}' is not a web address starting "
                                     "https:// or http://")
    insert_rows(con, "sites", ["site_code", "name", "site_type", "region",
                               *SITE_OPTIONAL_COLUMNS],
                [[s.site_code.upper(), s.name, s.site_type, s.region or None,
                  s.contact_email or None, s.support_text or None, s.support_url or None]
                 for s in sites],
                key=["site_code"])
    return len(sites)


def drop_relation(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Drop table or view `name` if there is one, whichever it is (a name that changed
    from one to the other between versions, or a scope that is one or the other)."""
    kind = con.execute("select table_type from information_schema.tables "
                       "where table_name = ?", [name]).fetchall()
    if kind:
        con.execute(f"drop {'view' if kind[0][0] == 'VIEW' else 'table'} \"{name}\"")


def insert_rows(con: duckdb.DuckDBPyConnection, table: str, columns: list[str],
                rows: list[list], key: list[str] | None = None) -> None:
    """Insert rows in one statement; with `key`, a row replaces the stored one with the
    same key (the last of several in `rows` wins, as one insert per row would do).

    One statement from a frame rather than `executemany`, which costs DuckDB a few
    milliseconds a row: 300 sites' headcounts took 12 s that way.
    """
    if not rows:
        return
    frame = pd.DataFrame(rows, columns=columns)
    if key:
        frame = frame.drop_duplicates(subset=key, keep="last")
    name = f"incoming_{table}"
    con.register(name, frame)
    try:
        con.execute(f"insert {'or replace ' if key else ''}into {table} "
                    f"({', '.join(columns)}) select {', '.join(columns)} from {name}")
    finally:
        con.unregister(name)


def load_sites_csv(con: duckdb.DuckDBPyConnection, path: Path) -> int:
    """Load a `site_code,name,site_type,region` CSV into the sites table; the columns
    contact_email, support_text and support_url are optional (the survey form shows them)."""
    rows = _read_rows(path, ("site_code", "name", "site_type", "region"))
    return add_sites(con, [Site(r["site_code"], r["name"], r["site_type"], r["region"],
                                *(r.get(c) or None for c in SITE_OPTIONAL_COLUMNS))
                           for r in rows], source=str(path))


def load_headcounts_csv(con: duckdb.DuckDBPyConnection, path: Path,
                        instrument: Instrument) -> int:
    """Load a `site_code,staff_group,headcount` CSV; staff groups are the instrument's codes."""
    rows = _read_rows(path, ("site_code", "staff_group", "headcount"))
    groups = {o.code for a in instrument.attributes if a.id == "staff_group" for o in a.options}
    known_sites = {r[0] for r in con.execute("select site_code from sites").fetchall()}
    values = []
    for number, row in enumerate(rows, start=2):
        code = row["site_code"].upper()
        if code not in known_sites:
            raise ReferenceDataError(f"{path}: row {number}, column site_code: '{code}' is not a "
                                     f"known site; load sites first")
        if row["staff_group"] not in groups:
            raise ReferenceDataError(f"{path}: row {number}, column staff_group: "
                                     f"'{row['staff_group']}' is not one of {sorted(groups)}")
        try:
            headcount = int(row["headcount"])
            if headcount < 0:
                raise ValueError
        except ValueError:
            raise ReferenceDataError(f"{path}: row {number}, column headcount: "
                                     f"'{row['headcount']}' is not a whole number >= 0") from None
        values.append([code, row["staff_group"], headcount])
    insert_rows(con, "site_headcounts", ["site_code", "staff_group", "headcount"], values,
                key=["site_code", "staff_group"])
    return len(values)


def add_wave(con: duckdb.DuckDBPyConnection, wave: int, label: str | None = None) -> None:
    """Register a survey wave (a year); adding an existing wave is harmless."""
    if not 1990 <= wave <= 2100:
        raise ReferenceDataError(f"wave {wave}: give the survey year, e.g. 2025")
    con.execute("insert or replace into waves values (?, ?)", [wave, label or f"{wave} survey"])


@dataclass(frozen=True)
class ReferenceData:
    """What `load_reference_data` put in the store."""

    sites: int
    headcounts: int
    waves: tuple[int, ...]


def load_reference_data(con: duckdb.DuckDBPyConnection, folder: Path,
                        instrument: Instrument | None = None) -> ReferenceData:
    """Sites, waves and (given the instrument whose staff groups they use) headcounts of a
    data folder, in one transaction: the folder as `culture generate` writes it, with
    sites.csv, headcounts.csv and the waves listed in manifest.json.
    """
    manifest_path = folder / "manifest.json"
    try:
        waves = tuple(int(w) for w in json.loads(manifest_path.read_text(encoding="utf-8"))["waves"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ReferenceDataError(f"{manifest_path}: cannot read its list of waves ({exc}); "
                                 f"write the folder again with `culture generate`") from None
    con.execute("begin transaction")
    try:
        sites = load_sites_csv(con, folder / "sites.csv")
        headcounts = (load_headcounts_csv(con, folder / "headcounts.csv", instrument)
                      if instrument is not None else 0)
        for wave in waves:
            add_wave(con, wave)
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")
    return ReferenceData(sites, headcounts, waves)


def survey_pairs(con: duckdb.DuckDBPyConnection) -> set[tuple[str, int]]:
    """Every (site, wave) pair the store knows: the surveys that can be answered."""
    sites = [r[0] for r in con.execute("select site_code from sites").fetchall()]
    waves = [int(r[0]) for r in con.execute("select wave from waves").fetchall()]
    return {(site, wave) for site in sites for wave in waves}


def list_waves(con: duckdb.DuckDBPyConnection) -> list[int]:
    """The waves in the store, in order."""
    return [int(r[0]) for r in con.execute("select wave from waves order by 1").fetchall()]


def list_sites(con: duckdb.DuckDBPyConnection) -> list[Site]:
    """The sites in the store, by code."""
    return [Site(*row) for row in con.execute(
        "select site_code, name, site_type, region, contact_email, support_text, support_url "
        "from sites order by site_code").fetchall()]


def store_summary(con: duckdb.DuckDBPyConnection) -> dict[str, object]:
    """Counts a person wants after loading: responses per site and wave, batches, quarantine."""
    per_site_wave = con.execute(
        "select r.site_code, s.site_type, r.wave, count(*) as n "
        "from responses r join sites s using (site_code) "
        "group by all order by r.site_code, r.wave").fetchall()
    quarantine = con.execute(
        "select reason_code, count(distinct (batch_id, source_row)) "
        "from quarantine group by 1 order by 1").fetchall()
    return {
        "responses": con.execute("select count(*) from responses").fetchone()[0],
        "sites": con.execute("select count(*) from sites").fetchone()[0],
        "waves": [r[0] for r in con.execute("select wave from waves order by wave").fetchall()],
        "batches": con.execute("select count(*) from ingest_batches").fetchone()[0],
        "per_site_wave": per_site_wave,
        "quarantined_rows_by_reason": quarantine,
    }
