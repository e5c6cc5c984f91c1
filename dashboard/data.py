"""Read-only access to the published layer: the only data the dashboard ever sees.

Everything here opens `Settings.published_path` read-only; nothing can reach the
respondent store from this module. Each method answers one question a page asks and
returns a small DataFrame (a site's principles, one funnel), filtered in DuckDB, so a
page costs milliseconds even on the national-scale file.

The pipeline replaces the published file by renaming a new one into place. A reader
keeps the file it opened (on POSIX the old inode lives while open), so a page never
mixes two runs; the next query after a run notices the new file and reopens.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import duckdb
import pandas as pd

from survey.errors import CultureError


class PublishedDataError(CultureError):
    """The published layer is missing or not one this dashboard can read."""


class PublishedData:
    """Queries over one published file (reopened when the pipeline replaces it)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._identity: tuple[int, int] | None = None
        self._con: duckdb.DuckDBPyConnection | None = None
        self._cache: dict = {}

    def _connection(self) -> duckdb.DuckDBPyConnection:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            raise PublishedDataError(
                f"{self.path}: no published results yet; run `culture run` (or "
                "`culture demo`) first") from None
        identity = (stat.st_ino, stat.st_mtime_ns)
        with self._lock:
            if identity != self._identity:
                if self._con is not None:
                    self._con.close()
                self._con = duckdb.connect(str(self.path), read_only=True)
                self._identity = identity
                self._cache = {}
            return self._con

    def query(self, sql: str, params: list | None = None) -> pd.DataFrame:
        """Run one parameterised query on its own cursor (safe across threads)."""
        cursor = self._connection().cursor()
        try:
            return cursor.execute(sql, params or []).df()
        finally:
            cursor.close()

    def _cached(self, key: str, sql: str) -> pd.DataFrame:
        self._connection()
        if key not in self._cache:
            self._cache[key] = self.query(sql)
        return self._cache[key]

    # -- reference tables (small; cached per published file) ---------------------------
    def meta(self) -> dict[str, str]:
        frame = self._cached("meta", "select key, value from meta")
        if "meta dict" not in self._cache:   # read on every peer of every figure
            self._cache["meta dict"] = dict(zip(frame["key"], frame["value"]))
        return self._cache["meta dict"]

    @property
    def min_group_size(self) -> int:
        return int(self.meta()["min_group_size"])

    def sites(self) -> pd.DataFrame:
        return self._cached("sites", "select site_code, name, site_type, region from sites "
                                     "order by site_code")

    def waves(self) -> list[int]:
        frame = self._cached("waves", "select distinct wave from cells order by wave")
        return [int(w) for w in frame["wave"]]

    def measures(self) -> pd.DataFrame:
        return self._cached("measures", "select * from measures")

    def measure_names(self) -> dict[str, str]:
        frame = self.measures()
        return dict(zip(frame["measure"], frame["name"]))

    def groups(self) -> pd.DataFrame:
        """Breakdown groups with their attribute's and their own readable names."""
        return self._cached("groups", "select * from groups order by breakdown, position")

    def actions(self) -> pd.DataFrame:
        return self._cached("actions", "select * from actions order by principle, position")

    def validation(self) -> pd.DataFrame:
        if "validation" not in self.tables():
            return pd.DataFrame(columns=["check", "scope", "value", "criterion", "source",
                                         "verdict"])
        return self._cached("validation", "select * from validation")

    def tables(self) -> set[str]:
        frame = self._cached("tables", "select table_name from information_schema.tables")
        return set(frame["table_name"])

    # -- one site ----------------------------------------------------------------------
    def site_cells(self, site: str, wave: int, kinds: tuple[str, ...],
                   breakdown: str = "all") -> pd.DataFrame:
        """A site's cells of some measure kinds in one wave (hidden cells included)."""
        return self.query(
            "select * from cells where level = 'site' and unit = ? and wave = ? "
            "and breakdown = ? and list_contains(?, measure_kind) order by measure",
            [site, wave, breakdown, list(kinds)])

    def responses(self, site: str, wave: int) -> dict:
        """Responses (None when hidden), staff headcount and response rate of a site."""
        cells = self.query("select n from cells where level = 'site' and unit = ? and wave = ? "
                           "and breakdown = 'all' and measure_kind = 'responses'", [site, wave])
        heads = self.query("select sum(headcount) as headcount from site_headcounts "
                           "where site_code = ?", [site])
        n = cells["n"].iloc[0] if len(cells) else None
        n = None if n is None or pd.isna(n) else int(n)
        headcount = heads["headcount"].iloc[0] if len(heads) else None
        headcount = None if headcount is None or pd.isna(headcount) else int(headcount)
        rate = 100 * n / headcount if n and headcount else None
        return {"n": n, "headcount": headcount, "rate": rate}

    def principle_gaps(self, site: str, wave: int) -> pd.DataFrame:
        return self.query("select * from principle_gaps where site_code = ? and wave = ? "
                          "order by priority", [site, wave])

    def weighted(self, site: str, wave: int, kind: str) -> pd.DataFrame:
        """Site means weighted to the staff-group headcount mix (empty if not published)."""
        if "weighted" not in self.tables():
            return pd.DataFrame()
        return self.query("select * from weighted where site_code = ? and wave = ? and "
                          "measure_kind = ? order by measure", [site, wave, kind])

    def equity(self, unit: str, wave: int, level: str = "site") -> pd.DataFrame:
        return self.query("select * from equity where level = ? and unit = ? and wave = ?",
                          [level, unit, wave])

    def group_cells(self, unit: str, wave: int, level: str = "site") -> pd.DataFrame:
        """Every breakdown group's scale and principle cells of a unit (hidden included)."""
        return self.query(
            "select breakdown, grp, measure_kind, measure, n, mean, suppressed from cells "
            "where level = ? and unit = ? and wave = ? and breakdown <> 'all' "
            "and measure_kind in ('scale', 'principle')", [level, unit, wave])

    def trends(self, level: str, unit: str) -> pd.DataFrame:
        return self.query("select * from trends where level = ? and unit = ? order by wave",
                          [level, unit])

    def unit_series(self, level: str, unit: str, kinds: tuple[str, ...]) -> pd.DataFrame:
        """A unit's whole-unit cells across every wave (for trend lines)."""
        return self.query(
            "select wave, measure_kind, measure, n, mean, ci_low, ci_high, pct_favourable, "
            "suppressed from cells where level = ? and unit = ? and breakdown = 'all' "
            "and list_contains(?, measure_kind) order by measure, wave",
            [level, unit, list(kinds)])

    def benchmarks(self, site: str, wave: int, kind: str) -> pd.DataFrame:
        return self.query("select * from benchmarks where site_code = ? and wave = ? "
                          "and measure_kind = ?", [site, wave, kind])

    def peer_distribution(self, peer_group: str, wave: int, kind: str) -> pd.DataFrame:
        """Best / quartiles / worst of site means in a peer group (one row per measure)."""
        return self.query(
            "select measure, any_value(peer_sites) as sites, any_value(peer_best) as best, "
            "any_value(peer_q3) as q3, any_value(peer_median) as median, "
            "any_value(peer_q1) as q1, any_value(peer_worst) as worst from benchmarks "
            "where peer_group = ? and wave = ? and measure_kind = ? group by measure "
            "order by measure", [peer_group, wave, kind])

    def reliability(self, site: str | None, wave: int | None) -> pd.DataFrame:
        if site is None:
            return self.query("select * from reliability where level = 'overall' "
                              "order by scale")
        return self.query("select * from reliability where level = 'site_wave' and "
                          "site_code = ? and wave = ? order by scale", [site, wave])

    def site_agreement(self, site: str, wave: int) -> pd.DataFrame:
        return self.query("select * from site_agreement where site_code = ? and wave = ? "
                          "order by scale", [site, wave])

    def icc(self, wave: int) -> pd.DataFrame:
        return self.query("select * from icc where wave = ? order by scale", [wave])

    def data_quality(self, site: str, wave: int) -> pd.DataFrame:
        return self.query("select * from data_quality where site_code = ? and wave = ?",
                          [site, wave])

    # -- all sites (anonymised by the caller) -------------------------------------------
    def funnel(self, wave: int, kind: str, measure: str) -> tuple[pd.DataFrame, dict | None]:
        rows = self.query("select site_code, peer_group, n, mean, band, flag, q from funnel "
                          "where wave = ? and measure_kind = ? and measure = ?",
                          [wave, kind, measure])
        params = self.query("select target, sigma, tau2, phi, sites from funnel_params "
                            "where wave = ? and measure_kind = ? and measure = ?",
                            [wave, kind, measure])
        return rows, (params.iloc[0].to_dict() if len(params) else None)

    def shrunken(self, wave: int, kind: str, measure: str) -> pd.DataFrame:
        return self.query("select site_code, peer_group, n, mean, eb_mean, eb_low, eb_high, "
                          "rank, sites_ranked from shrunken where wave = ? and "
                          "measure_kind = ? and measure = ? order by eb_mean",
                          [wave, kind, measure])

    def site_row(self, site: str) -> dict | None:
        sites = self.sites()
        found = sites[sites["site_code"] == site]
        return found.iloc[0].to_dict() if len(found) else None

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None
                self._identity = None
