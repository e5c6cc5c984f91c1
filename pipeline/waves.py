"""Frozen waves: a wave published for good, held verbatim by every later run (issue 25).

Freezing copies the wave's rows of every published table that has a `wave` column into
the store (`held_<table>`), records a fingerprint of them, and logs who froze it and why.
Later runs compute only the waves that are not frozen and publish the held rows beside
them, so a number a board saw last year stays as published. Unfreezing (to correct a
late batch or a wrong site code) is explicit and logged; the cells of every frozen
version stay in `cell_versions` (with every other version of a wave's cells a run
published), so the verifier can check a corrected wave, or an open wave published again,
against what was published before.
"""

from __future__ import annotations

import getpass
import hashlib
import os
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd

from pipeline.store import transaction
from survey.errors import CultureError

#: Columns of the cells table kept for every published version (the differencing check).
VERSION_COLUMNS = ("level", "unit", "breakdown", "grp", "measure_kind", "measure", "n",
                   "suppressed", "peer_group", "mean", "sd", "pct_favourable",
                   "pct_unfavourable")


class WaveStateError(CultureError):
    """A freeze, unfreeze or purge the store's state does not allow."""


def frozen_waves(con: duckdb.DuckDBPyConnection) -> list[int]:
    """The frozen waves, oldest first."""
    return [row[0] for row in con.execute(
        "select wave from frozen_waves order by wave").fetchall()]


def open_waves(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Waves holding responses that are not frozen: what a run computes."""
    return [row[0] for row in con.execute(
        "select distinct wave from responses where wave not in "
        "(select wave from frozen_waves) order by wave").fetchall()]


def held_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Published tables with held rows in the store (without the `held_` prefix)."""
    return [row[0][len("held_"):] for row in con.execute(
        "select table_name from information_schema.tables where table_schema = 'main' "
        "and table_name like 'held\\_%' escape '\\' order by table_name").fetchall()]


def held_rows(con: duckdb.DuckDBPyConnection, table: str) -> pd.DataFrame | None:
    """The held rows of every frozen wave for published table `table` (None: none held)."""
    if table not in held_tables(con):
        return None
    return con.execute(f'select * from "held_{table}" order by all').df()


def _fingerprint(con: duckdb.DuckDBPyConnection, wave: int, tables: list[str]) -> str:
    digest = hashlib.sha256()
    for table in tables:
        frame = con.execute(f'select * from "held_{table}" where wave = ? order by all',
                            [wave]).df()
        digest.update(table.encode())
        digest.update(pd.util.hash_pandas_object(frame, index=False).values.tobytes())
    return digest.hexdigest()


def _log(con, wave: int, action: str, reason: str, detail: str | None = None,
         by: str | None = None) -> None:
    con.execute("insert into wave_events values (?, ?, ?, ?, ?, ?)",
                [datetime.now(), wave, action, by or _who(), reason, detail])


def _who() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (a container): still log the action
        return "unknown"


#: The table of a held layer file saying which frozen waves (and fingerprints) it holds.
HELD_LAYER_STATE = "held_layer_state"


def held_layer(con: duckdb.DuckDBPyConnection, path: Path | str, rebuild: bool = False
               ) -> Path:
    """A DuckDB file at `path` holding every frozen wave's held rows, a table a published
    table (named as the layer names it), and table HELD_LAYER_STATE: what each run's
    published layer starts from, copied, so ten years of held rows are not written
    again every run. It is derived from the store's `held_<table>` tables: brought up
    to date when the frozen waves changed (newly frozen ones appended; anything else,
    an unfreeze or a column's type widened, rebuilt), and rebuilt if missing or
    unreadable, or when `rebuild` says so."""
    path = Path(path)
    wanted = con.execute("select wave, fingerprint from frozen_waves order by wave").fetchall()
    have = None if rebuild else _held_layer_state(path)
    if have == wanted:
        return path
    tables = held_tables(con)
    if have is not None and set(have) <= set(wanted) and _held_layer_fits(con, path, tables):
        added = [wave for wave, _ in wanted if (wave, _) not in set(have)]
        _fill_held_layer(con, path, tables, added, wanted)
        return path
    building = path.with_name(path.name + ".tmp")
    building.unlink(missing_ok=True)
    _fill_held_layer(con, building, tables, [wave for wave, _ in wanted], wanted)
    os.replace(building, path)
    return path


def _held_layer_state(path: Path) -> list[tuple] | None:
    """What the held layer at `path` says it holds (None: no usable file)."""
    if not path.exists():
        return None
    try:
        layer = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:
        return None
    try:
        return layer.execute(f"select wave, fingerprint from {HELD_LAYER_STATE} "
                             "order by wave").fetchall()
    except duckdb.Error:
        return None
    finally:
        layer.close()


def _held_layer_fits(con: duckdb.DuckDBPyConnection, path: Path, tables: list[str]) -> bool:
    """Whether the held layer's tables have the store's held tables' columns, in order,
    and types (a freeze can widen a column typed NULL, which the file would not take)."""
    columns = ("select table_name, ordinal_position, column_name, data_type "
               "from information_schema.columns where table_schema = 'main' and ")
    store = [(table[len("held_"):], *rest) for table, *rest in con.execute(
        columns + "table_catalog = current_database() and table_name like 'held\\_%' "
                  "escape '\\' order by 1, 2").fetchall()]
    con.execute("attach ? as held_layer_check (read_only)", [str(path)])
    try:
        layer = con.execute(columns + "table_catalog = 'held_layer_check' and "
                                      "table_name <> ? order by 1, 2",
                            [HELD_LAYER_STATE]).fetchall()
    finally:
        con.execute("detach held_layer_check")
    return [tuple(row) for row in store] == [tuple(row) for row in layer] and \
        sorted({row[0] for row in layer}) == sorted(tables)


def _fill_held_layer(con: duckdb.DuckDBPyConnection, path: Path, tables: list[str],
                     waves: list[int], state: list[tuple]) -> None:
    """Append `waves`' held rows of every held table to the file at `path` (created if
    need be) and record `state` as what it holds; one transaction."""
    con.execute("attach ? as held_layer_file", [str(path)])
    try:
        with transaction(con):
            for table in tables:
                con.execute(f'create table if not exists held_layer_file."{table}" as '
                            f'select * from "held_{table}" limit 0')
                if waves:
                    con.execute(f'insert into held_layer_file."{table}" select * from '
                                f'"held_{table}" where wave in ({", ".join(map(str, waves))})')
            con.execute(f"create or replace table held_layer_file.{HELD_LAYER_STATE} "
                        "(wave integer, fingerprint varchar)")
            if state:
                con.executemany(f"insert into held_layer_file.{HELD_LAYER_STATE} values (?, ?)",
                                [list(row) for row in state])
    finally:
        con.execute("detach held_layer_file")


def freeze_wave(con: duckdb.DuckDBPyConnection, wave: int, published: Path | str,
                reason: str = "published for good", by: str | None = None) -> int:
    """Hold `wave`'s rows of the published layer at `published` in the store; return the
    number of rows held. All or nothing."""
    published = Path(published)
    if wave in frozen_waves(con):
        raise WaveStateError(f"wave {wave} is already frozen; unfreeze it first "
                             f"(`culture waves unfreeze {wave} --reason ...`) to correct it")
    if not published.exists():
        raise WaveStateError(f"{published}: no published layer to freeze; run `culture run` "
                             f"first")
    try:
        con.execute("attach ? as pub (read_only)", [str(published)])
    except duckdb.Error as exc:
        raise _unreadable(published, exc) from None
    try:
        tables = [row[0] for row in con.execute(
                "select distinct table_name from information_schema.columns "
            "where table_catalog = 'pub' and table_schema = 'main' "
            "and column_name = 'wave' order by 1").fetchall()]
        shown = con.execute("select count(*) from pub.cells where wave = ?",
                            [wave]).fetchall()[0][0]
        if not shown:
            raise WaveStateError(f"{published} holds no cells of wave {wave}; run "
                                 f"`culture run` to publish it, then freeze it")
        held = 0
        with transaction(con):
            for table in tables:
                con.execute(f'create table if not exists "held_{table}" as '
                            f'select * from pub."{table}" limit 0')
                _widen_null_columns(con, table)
                held += con.execute(f'insert into "held_{table}" select * from pub."{table}" '
                                    f'where wave = ?', [wave]).fetchall()[0][0]
            version = record_version(con, wave, "pub")
            con.execute("insert into frozen_waves values (?, ?, ?, ?, ?)",
                        [wave, datetime.now(), by or _who(), version,
                         _fingerprint(con, wave, tables)])
            _log(con, wave, "freeze", reason, f"version {version}, {held} rows held", by)
    finally:
        con.execute("detach pub")
    return held


def cells_fingerprint(con: duckdb.DuckDBPyConnection, catalog: str, wave: int) -> str:
    """A fingerprint of `wave`'s cells in the database attached as `catalog`: equal for
    two layers showing the same cells with the same numbers (statistics to 8 decimals,
    since sums added in another order differ in the last bits)."""
    rounded = ", ".join(f"round({v}, 8)" for v in VERSION_COLUMNS[8:] if v != "peer_group")
    return str(con.execute(
        f"select coalesce(bit_xor(hash(level, unit, breakdown, grp, measure_kind, measure, "
        f"n, suppressed, peer_group, {rounded})), 0) || '/' || count(*) "
        f'from "{catalog}".main.cells where wave = ?', [wave]).fetchall()[0][0])


def record_version(con: duckdb.DuckDBPyConnection, wave: int, catalog: str) -> int:
    """Keep `wave`'s cells of the layer attached as `catalog` as a published version,
    unless a version with the same cells is kept already; return its number."""
    mark = cells_fingerprint(con, catalog, wave)
    known = con.execute("select version from cell_version_marks where wave = ? and "
                        "fingerprint = ?", [wave, mark]).fetchall()
    if known:
        return int(known[0][0])
    version = 1 + con.execute("select coalesce(max(version), 0) from cell_version_marks "
                              "where wave = ?", [wave]).fetchall()[0][0]
    columns = ", ".join(VERSION_COLUMNS)
    con.execute(f'insert into cell_versions select wave, ?, {columns} '
                f'from "{catalog}".main.cells where wave = ?', [version, wave])
    con.execute("insert into cell_version_marks values (?, ?, ?, ?)",
                [wave, version, mark, datetime.now()])
    return version


def record_replaced_versions(con: duckdb.DuckDBPyConnection, current: Path | str,
                             new: Path | str) -> dict[int, int]:
    """Before a new layer replaces the current one: keep, as a version, each wave of the
    current layer whose cells the new one changes (or drops), so the new layer, and every
    later one, is checked against what readers of the current one saw. A wave published
    again unchanged costs a fingerprint, not a copy. Returns {wave: version kept}."""
    current = Path(current)
    if not current.exists():
        return {}
    con.execute("attach ? as replaced_layer (read_only)", [str(current)])
    con.execute("attach ? as replacing_layer (read_only)", [str(Path(new))])
    try:
        waves = [w for (w,) in con.execute(
            "select distinct wave from replaced_layer.main.cells order by 1").fetchall()]
        changed = [w for w in waves if cells_fingerprint(con, "replaced_layer", w)
                   != cells_fingerprint(con, "replacing_layer", w)]
        if not changed:
            return {}
        with transaction(con):
            versions = {w: record_version(con, w, "replaced_layer") for w in changed}
    finally:
        con.execute("detach replaced_layer")
        con.execute("detach replacing_layer")
    return versions


def _widen_null_columns(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Give a held column typed NULL (all empty in the waves frozen so far, e.g. a first
    wave's change from the previous one) the type the layer now has, so this wave's
    values fit; NULL casts to any type, so no held value changes."""
    held = dict(con.execute("select column_name, data_type from information_schema.columns "
                            "where table_catalog = current_database() and table_name = ?",
                            [f"held_{table}"]).fetchall())
    for column, kind in con.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_catalog = 'pub' and table_name = ?", [table]).fetchall():
        if held.get(column) == '"NULL"' and kind != '"NULL"':
            con.execute(f'alter table "held_{table}" alter column "{column}" '
                        f'set data type {kind}')


def unfreeze_wave(con: duckdb.DuckDBPyConnection, wave: int, reason: str,
                  by: str | None = None) -> int:
    """Release `wave` for a correction: its held rows go (its cells' versions stay, for the
    verifier), the next run recomputes it. Needs a reason, which is logged."""
    if wave not in frozen_waves(con):
        raise WaveStateError(f"wave {wave} is not frozen (frozen: "
                             f"{', '.join(map(str, frozen_waves(con))) or 'none'})")
    if not reason.strip():
        raise WaveStateError("say why the wave is unfrozen (--reason), e.g. 'late batch "
                             "from site C'; it is logged")
    purged = con.execute("select count(*) from wave_events where wave = ? and action = 'purge'",
                         [wave]).fetchall()[0][0]
    if purged:
        raise WaveStateError(f"wave {wave}'s respondents were purged; it cannot be recomputed, "
                             f"so it stays frozen as published")
    removed = 0
    with transaction(con):
        for table in held_tables(con):
            removed += con.execute(f'delete from "held_{table}" where wave = ?',
                                   [wave]).fetchall()[0][0]
        con.execute("delete from frozen_waves where wave = ?", [wave])
        _log(con, wave, "unfreeze", reason, f"{removed} held rows released", by)
    return removed


def wave_events(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The log of freezes, unfreezes and purges, oldest first."""
    return con.execute("select * from wave_events order by happened_at").df()


def _unreadable(published: Path | str, exc: Exception) -> WaveStateError:
    return WaveStateError(f"{published}: not a published layer this program can read "
                          f"({str(exc).splitlines()[0]}); run `culture run` to write it "
                          f"again, then freeze")


def _open_layer(published: Path | str) -> duckdb.DuckDBPyConnection:
    """The published layer, read-only; a damaged file is a WaveStateError, not a traceback."""
    try:
        return duckdb.connect(str(published), read_only=True)
    except duckdb.Error as exc:
        raise _unreadable(published, exc) from None


def published_waves(published: Path | str) -> list[int]:
    """The waves with cells in the published layer at `published` (none: no layer)."""
    published = Path(published)
    if not published.exists():
        return []
    con = _open_layer(published)
    try:
        return [row[0] for row in con.execute(
            "select distinct wave from cells order by wave").fetchall()]
    finally:
        con.close()


def check_freezable(con: duckdb.DuckDBPyConnection, wave: int, published: Path | str,
                    inbox: Path | str | None = None, as_published: bool = False) -> int:
    """Refuse (WaveStateError) to freeze `wave` unless the layer at `published` holds
    it as the store now has it: no response of it ingested after the layer was written,
    none left waiting in the web form's inbox at `inbox`.

    With `as_published` the wave may be frozen as the layer shows it although answers
    came since (after a correction the verifier refused): returns how many answers its
    numbers then leave out (0 when none)."""
    published = Path(published)
    if wave in frozen_waves(con):
        raise WaveStateError(f"wave {wave} is already frozen; unfreeze it first "
                             f"(`culture waves unfreeze {wave} --reason ...`) to correct it")
    if wave not in published_waves(published):
        where = "no published layer yet" if not published.exists() else \
            f"the published layer {published} holds no cells of it"
        raise WaveStateError(f"wave {wave} cannot be frozen: {where}. Run `culture run` to "
                             f"publish it, check it, then freeze it")
    keep = (f"; or, to keep the wave exactly as published and leave those answers out of "
            f"its numbers: `culture waves freeze {wave} --as-published`")
    left_out = 0
    written = datetime.fromtimestamp(published.stat().st_mtime)
    late = con.execute(
        "select count(*), min(b.batch_id), any_value(b.source_name), max(b.ingested_at) "
        "from responses r join ingest_batches b using (batch_id) "
        "where r.wave = ? and b.ingested_at > ?", [wave, written]).fetchall()[0]
    if late[0] and not as_published:
        raise WaveStateError(
            f"wave {wave} cannot be frozen yet: {late[0]} of its responses were ingested "
            f"after the published layer was written (from batch {late[1]}, {late[2]}, on "
            f"{late[3]:%Y-%m-%d %H:%M}), so the layer does not show them. Run `culture run` "
            f"to publish them, check the results, then freeze the wave" + keep)
    left_out = max(left_out, late[0])
    stored, shown = _published_count(con, wave, published)
    if shown is not None and stored != shown:
        if not as_published:
            raise WaveStateError(
                f"wave {wave} cannot be frozen yet: the store holds {stored} of its "
                f"responses but the published layer counts {shown}. Run `culture run` to "
                f"publish the store as it is, check the results, then freeze the wave" + keep)
        left_out = max(left_out, abs(stored - shown))
    if inbox is not None and Path(inbox).exists():
        from collect.inbox import read_submissions

        ids = [row[1] for row in read_submissions(inbox) if int(row[3]) == wave]
        if ids:
            con.execute("create or replace temporary table inbox_ids (response_id varchar)")
            con.executemany("insert into inbox_ids values (?)", [[i] for i in ids])
            waiting = con.execute(
                "select count(*) from inbox_ids where response_id not in "
                "(select response_id from responses where wave = ?)", [wave]).fetchall()[0][0]
            con.execute("drop table inbox_ids")
            if waiting and not as_published:
                raise WaveStateError(
                    f"wave {wave} cannot be frozen yet: {waiting} web answer(s) of it are "
                    f"waiting in the form's inbox ({inbox}). Run `culture run` to take them "
                    f"in and publish them, check the results, then freeze the wave" + keep)
            left_out += waiting
    return left_out


def _published_count(con: duckdb.DuckDBPyConnection, wave: int,
                     published: Path) -> tuple[int, int | None]:
    """(responses of `wave` in the store, the published layer's count of them), the
    latter None where the layer does not show it (hidden, or flagged respondents left
    out of the count)."""
    stored = con.execute("select count(*) from responses where wave = ?",
                         [wave]).fetchall()[0][0]
    layer = _open_layer(published)
    try:
        excluded = layer.execute("select any_value(value) from meta "
                                 "where key = 'excluded_flagged'").fetchall()[0][0]
        row = layer.execute("select n from cells where wave = ? and level = 'national' "
                            "and breakdown = 'all' and measure_kind = 'responses' "
                            "and not suppressed", [wave]).fetchall()
    except duckdb.Error:
        return stored, None
    finally:
        layer.close()
    if excluded == "true" or not row:
        return stored, None
    return stored, int(row[0][0])


def frozen_state(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    """{"frozen": (wave, version, frozen at, by, why) of each frozen wave, "unfrozen":
    (wave, when, why) of each wave unfrozen for a correction and not frozen again}."""
    frozen = con.execute("""
        select f.wave, f.version, f.frozen_at, f.frozen_by,
               (select arg_max(reason, happened_at) from wave_events e
                where e.wave = f.wave and e.action = 'freeze')
        from frozen_waves f order by f.wave""").fetchall()
    unfrozen = con.execute("""
        select wave, max(happened_at), arg_max(reason, happened_at) from wave_events
        where action = 'unfreeze' and wave not in (select wave from frozen_waves)
        group by wave order by wave""").fetchall()
    return {"frozen": frozen, "unfrozen": unfrozen}
