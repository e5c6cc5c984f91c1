"""The one read API of the published layer: `PublishedLayer`, used by the dashboard, the
site report, the exports and the command line.

It opens `Settings.published_path` read-only (so it never takes the store's write lock
and cannot change what was verified) and refuses a missing file, a file that is not a
published layer and a layer of another layout, each with a message that names the
file and says what to do. Each method answers one question a reader asks with a small
DataFrame filtered in DuckDB, so a question costs milliseconds even at national scale;
the small reference tables (sites, measures, groups, ...) are read once per file.

The pipeline replaces the published file by renaming a new one into place. A layer
keeps the file it opened (on POSIX the old inode lives while open), so an answer never
mixes two runs; the next question after a run notices the new file, checks it and
reopens. Questions may come from several threads: each runs on its own cursor.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import duckdb
import pandas as pd

from published.layout import LAYOUT_KEY, PUBLISHED_LAYOUT
from survey.errors import CultureError


class PublishedLayerError(CultureError):
    """The published layer is missing, unreadable or of a layout this program does not read."""


def open_published(path: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the published file at `path`, checked for its layout.

    For a reader that runs its own SQL model over the layer's tables (the researcher
    export); every other question is a `PublishedLayer` method.
    """
    path = Path(path)
    if not path.exists():
        raise _missing(path)
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise PublishedLayerError(
            f"{path} cannot be opened as a published layer ({exc}); pass --db with the store "
            f"whose <store>.published.duckdb you want, or publish again with `culture run`"
        ) from None
    try:
        check_layout(con, path)
    except PublishedLayerError:
        con.close()
        raise
    return con


def _missing(path: Path) -> PublishedLayerError:
    return PublishedLayerError(
        f"no published layer at {path}: no published results yet; run `culture run` (or "
        f"`culture demo`) first, or pass --db with the store whose <store>.published.duckdb "
        f"you want")


def check_layout(con: duckdb.DuckDBPyConnection, path: Path | str) -> None:
    """Nothing if `con` holds a published layer of `PUBLISHED_LAYOUT`; else why not."""
    try:
        found = con.execute("select value from meta where key = ?", [LAYOUT_KEY]).fetchall()
    except duckdb.Error:
        found = None
    if not found:
        raise PublishedLayerError(
            f"{path} is not a published layer (it has no meta table naming its layout); "
            f"pass --db with the store whose <store>.published.duckdb you want, or publish "
            f"with `culture run`")
    if found[0][0] != PUBLISHED_LAYOUT:
        raise PublishedLayerError(
            f"{path} is a published layer of layout {found[0][0]}, and this program reads "
            f"layout {PUBLISHED_LAYOUT}; publish it again with `culture run`, or read it with "
            f"the version of this program that wrote it")


class PublishedLayer:
    """Questions over one published file (checked on open, reopened when replaced).

    `PublishedLayer(path)` opens the file at its first question; `PublishedLayer.open`
    opens and checks it at once. Close it when done (or use it in a `with` block).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._identity: tuple[int, int] | None = None
        self._con: duckdb.DuckDBPyConnection | None = None
        self._cache: dict = {}
        self._owned = True

    @classmethod
    def open(cls, path: Path | str) -> PublishedLayer:
        """The layer at `path`, opened and checked now (a `PublishedLayerError` if not one)."""
        layer = cls(path)
        layer._connection()
        return layer

    @classmethod
    def over(cls, con: duckdb.DuckDBPyConnection, path: Path | str = "the connection"
             ) -> PublishedLayer:
        """Questions over a connection the caller holds (checked, never closed or reopened)."""
        check_layout(con, path)
        layer = cls(path)
        layer._con, layer._owned = con, False
        return layer

    def __enter__(self) -> PublishedLayer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _connection(self) -> duckdb.DuckDBPyConnection:
        if not self._owned:
            return self._con
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            raise _missing(self.path) from None
        with self._lock:
            identity = (stat.st_ino, stat.st_mtime_ns)
            if identity != self._identity:
                # Closed first: DuckDB hands a second connect to a path it holds open the
                # database it already has, which would be the replaced file.
                if self._con is not None:
                    self._con.close()
                self._con, self._identity, self._cache = None, None, {}
                self._con = open_published(self.path)
                self._identity = identity
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

    def close(self) -> None:
        """Close the file (a layer made `over` a connection leaves it to its owner)."""
        with self._lock:
            if self._con is not None and self._owned:
                self._con.close()
            if self._owned:
                self._con = None
                self._identity = None

    # -- reference tables (small; read once per published file) ------------------------
    def meta(self) -> dict[str, str]:
        """The meta table (layout, instrument, min_group_size, published_on, ...) as a dict."""
        frame = self._cached("meta", "select key, value from meta")
        if "meta dict" not in self._cache:   # read on every peer of every figure
            self._cache["meta dict"] = dict(zip(frame["key"], frame["value"]))
        return self._cache["meta dict"]

    @property
    def min_group_size(self) -> int:
        """The reporting threshold k the layer was suppressed with."""
        return int(self.meta()["min_group_size"])

    def tables(self) -> set[str]:
        """Names of the tables the file holds."""
        frame = self._cached("tables", "select table_name from information_schema.tables")
        return set(frame["table_name"])

    def sites(self) -> pd.DataFrame:
        """Every published site: site_code, name, site_type, region (by code)."""
        return self._cached("sites", "select site_code, name, site_type, region from sites "
                                     "order by site_code")

    def site_row(self, site: str) -> dict | None:
        """One site's row of `sites` as a dict (None if the site is not published)."""
        sites = self.sites()
        found = sites[sites["site_code"] == site]
        return found.iloc[0].to_dict() if len(found) else None

    def waves(self) -> list[int]:
        """The published waves, oldest first."""
        frame = self._cached("waves", "select distinct wave from cells order by wave")
        return [int(w) for w in frame["wave"]]

    def peer_groups(self) -> list[str]:
        """The peer groups (site types) that have cells of their own, sorted."""
        frame = self._cached("peer groups", "select distinct unit from cells where "
                                            "level = 'peer' order by unit")
        return list(frame["unit"])

    def measures(self) -> pd.DataFrame:
        """Every measure: measure_kind, measure, name, description, principles, scale
        (an item's scale; layers published before it was added lack the column)."""
        return self._cached("measures", "select * from measures")

    def measure_names(self, kinds: tuple[str, ...] | None = None) -> dict[str, str]:
        """Measure id -> name, of every measure or of the measure kinds given."""
        frame = self.measures()
        if kinds is not None:
            frame = frame[frame["measure_kind"].isin(kinds)]
        return dict(zip(frame["measure"], frame["name"]))

    def groups(self) -> pd.DataFrame:
        """Breakdown groups with their attribute's and their own readable names."""
        return self._cached("groups", "select * from groups order by breakdown, position")

    def attribute_titles(self) -> dict[str, str]:
        """Breakdown (attribute id) -> the title the layer gives it."""
        groups = self.groups()
        return dict(zip(groups["breakdown"], groups["attribute"]))

    def actions(self) -> pd.DataFrame:
        """The guide's actions, by principle and position."""
        return self._cached("actions", "select * from actions order by principle, position")

    def validation(self) -> pd.DataFrame:
        """The pooled validity checks (no rows from a layer published without them)."""
        if "validation" not in self.tables():
            return pd.DataFrame(columns=["check", "scope", "value", "criterion", "source",
                                         "verdict"])
        return self._cached("validation", "select * from validation")

    # -- one site -----------------------------------------------------------------------
    def site_cells(self, site: str, wave: int, kinds: tuple[str, ...],
                   breakdown: str = "all") -> pd.DataFrame:
        """A site's cells of some measure kinds in one wave (hidden cells included)."""
        return self.query(
            "select * from cells where level = 'site' and unit = ? and wave = ? "
            "and breakdown = ? and list_contains(?, measure_kind) order by measure",
            [site, wave, breakdown, list(kinds)])

    def headcount(self, site: str) -> int | None:
        """Staff in post at a site (None when no headcount is published)."""
        heads = self.query("select sum(headcount) as headcount from site_headcounts "
                           "where site_code = ?", [site])
        headcount = heads["headcount"].iloc[0] if len(heads) else None
        return None if headcount is None or pd.isna(headcount) else int(headcount)

    def responses(self, site: str, wave: int) -> dict:
        """Responses (None when hidden), staff headcount and response rate of a site."""
        cells = self.query("select n from cells where level = 'site' and unit = ? and wave = ? "
                           "and breakdown = 'all' and measure_kind = 'responses'", [site, wave])
        n = cells["n"].iloc[0] if len(cells) else None
        n = None if n is None or pd.isna(n) else int(n)
        headcount = self.headcount(site)
        rate = 100 * n / headcount if n and headcount else None
        return {"n": n, "headcount": headcount, "rate": rate}

    def peer_response_rate(self, site: str, wave: int) -> dict:
        """The response rate of the other sites of a site's peer group, pooled (their
        responses over their headcount), and how many sites it pools.

        Pooled rather than a median: a median of a few peers is one peer's own rate. None
        when fewer than three other sites with a shown count and a headcount are pooled.
        """
        row = self.site_row(site)
        if row is None:
            return {"rate": None, "sites": 0}
        frame = self.query(
            "select c.unit, c.n, h.headcount from cells c join sites s on s.site_code = c.unit "
            "join (select site_code, sum(headcount) as headcount from site_headcounts "
            "group by site_code) h on h.site_code = c.unit where c.level = 'site' and "
            "c.wave = ? and c.breakdown = 'all' and c.measure_kind = 'responses' and not "
            "c.suppressed and s.site_type = ? and c.unit <> ? and h.headcount > 0",
            [wave, row["site_type"], site])
        if len(frame) < 3:
            return {"rate": None, "sites": len(frame)}
        return {"rate": 100 * frame["n"].sum() / frame["headcount"].sum(), "sites": len(frame)}

    def shown_responses(self, site: str) -> dict[int, int]:
        """Wave -> responses of a site, for the waves whose count is shown."""
        frame = self.query("select wave, n from cells where level = 'site' and unit = ? and "
                           "breakdown = 'all' and measure_kind = 'responses' and "
                           "not suppressed order by wave", [site])
        return {int(w): int(n) for w, n in zip(frame["wave"], frame["n"])}

    def principle_gaps(self, site: str, wave: int) -> pd.DataFrame:
        """A site's principle gaps in one wave, in order of priority."""
        return self.query("select * from principle_gaps where site_code = ? and wave = ? "
                          "order by priority", [site, wave])

    def weighted(self, site: str, wave: int, kind: str) -> pd.DataFrame:
        """Site means weighted to the staff-group headcount mix (empty if not published)."""
        if "weighted" not in self.tables():
            return pd.DataFrame()
        return self.query("select * from weighted where site_code = ? and wave = ? and "
                          "measure_kind = ? order by measure", [site, wave, kind])

    def equity(self, unit: str, wave: int, level: str = "site") -> pd.DataFrame:
        """A unit's groups against the rest of the unit, every measure kind."""
        return self.query("select * from equity where level = ? and unit = ? and wave = ?",
                          [level, unit, wave])

    def group_cells(self, unit: str, wave: int, level: str = "site",
                    kinds: tuple[str, ...] = ("scale", "principle")) -> pd.DataFrame:
        """Every breakdown group's cells of some measure kinds in a unit (hidden included)."""
        return self.query(
            "select breakdown, grp, measure_kind, measure, n, mean, suppressed from cells "
            "where level = ? and unit = ? and wave = ? and breakdown <> 'all' "
            "and list_contains(?, measure_kind)", [level, unit, wave, list(kinds)])

    def trends(self, level: str, unit: str) -> pd.DataFrame:
        """A unit's changes from each previous wave, every measure."""
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
        """A site's measures of one kind against its peer group and all sites."""
        return self.query("select * from benchmarks where site_code = ? and wave = ? "
                          "and measure_kind = ? order by measure", [site, wave, kind])

    def item_benchmarks(self, site: str, wave: int) -> pd.DataFrame:
        """A site's questions (items) in one wave, one row per shown item: % favourable
        against its peer group, all sites and the previous wave (`item_benchmarks`),
        with the question's text (`name`), its `description` (which says when it is
        reverse-keyed) and its `principles` (comma-separated), by item id. The peer
        group's best / median / worst are single sites' values: a reader for people
        shows them only when `published.layout.distribution_shown(peer_sites)`."""
        return self.query("select b.*, m.name, m.description, m.principles "
                          "from item_benchmarks b join measures m on m.measure_kind = 'item' "
                          "and m.measure = b.measure where b.site_code = ? and b.wave = ? "
                          "order by b.measure", [site, wave])

    def peer_distribution(self, peer_group: str, wave: int, kind: str) -> pd.DataFrame:
        """Best / quartiles / worst of site means in a peer group (one row per measure)."""
        return self.query(
            "select measure, any_value(peer_sites) as sites, any_value(peer_best) as best, "
            "any_value(peer_q3) as q3, any_value(peer_median) as median, "
            "any_value(peer_q1) as q1, any_value(peer_worst) as worst from benchmarks "
            "where peer_group = ? and wave = ? and measure_kind = ? group by measure "
            "order by measure", [peer_group, wave, kind])

    def reliability(self, site: str | None, wave: int | None) -> pd.DataFrame:
        """Reliability of every scale at a site in a wave, or overall when `site` is None."""
        if site is None:
            return self.query("select * from reliability where level = 'overall' "
                              "order by scale")
        return self.query("select * from reliability where level = 'site_wave' and "
                          "site_code = ? and wave = ? order by scale", [site, wave])

    def wave_reliability(self, wave: int) -> pd.DataFrame:
        """Reliability of every scale over all sites in one wave (in the instrument's order)."""
        return self.query("select * from reliability where level = 'wave' and wave = ?",
                          [wave])

    def site_agreement(self, site: str, wave: int) -> pd.DataFrame:
        """Within-site agreement (rwg_j) of every scale at a site in a wave."""
        return self.query("select * from site_agreement where site_code = ? and wave = ? "
                          "order by scale", [site, wave])

    def icc(self, wave: int) -> pd.DataFrame:
        """Intraclass correlations of every scale in a wave."""
        return self.query("select * from icc where wave = ? order by scale", [wave])

    def data_quality(self, site: str, wave: int) -> pd.DataFrame:
        """Respondents flagged at a site in a wave (counts NULL where below k)."""
        return self.query("select * from data_quality where site_code = ? and wave = ?",
                          [site, wave])

    # -- all sites (anonymised by the caller) -------------------------------------------
    def funnel(self, wave: int, kind: str, measure: str) -> tuple[pd.DataFrame, dict | None]:
        """One funnel's points (each site's verdict and the limits on the other sites it
        was judged by) and its parameters (None if there is none)."""
        rows = self.query("select site_code, peer_group, n, mean, sd, others, others_mean, "
                          "low, high, flagged, verdict, rule from funnel where wave = ? and "
                          "measure_kind = ? and measure = ?", [wave, kind, measure])
        params = self.query("select target, target_se, tau2, sigma, sites, method from "
                            "funnel_params where wave = ? and measure_kind = ? and measure = ?",
                            [wave, kind, measure])
        return rows, (params.iloc[0].to_dict() if len(params) else None)

    def funnels(self, wave: int, kind: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Every funnel of a measure kind in a wave: all points' columns, by measure and
        site, and the funnels' parameters."""
        rows = self.query("select * from funnel where wave = ? and measure_kind = ? "
                          "order by measure, site_code", [wave, kind])
        params = self.query("select * from funnel_params where wave = ? and measure_kind = ?",
                            [wave, kind])
        return rows, params

    def site_verdicts(self, site: str, wave: int) -> pd.DataFrame:
        """A site's one verdict per measure (scales and principles) in a wave, against the
        other sites, with the limits it was judged by and the rule that set them."""
        return self.query("select measure_kind, measure, n, mean, others, others_mean, low, "
                          "high, flagged, verdict, rule from funnel where site_code = ? and "
                          "wave = ? "
                          "order by measure_kind, measure", [site, wave])

    def all_verdicts(self) -> pd.DataFrame:
        """Every site x measure x wave verdict (wave, site_code, measure_kind, measure,
        verdict), for a summary or a check that every reader agrees."""
        return self.query("select wave, site_code, measure_kind, measure, flagged, verdict "
                          "from funnel order by wave, site_code, measure_kind, measure")

    def shrunken(self, wave: int, kind: str, measure: str) -> pd.DataFrame:
        """Empirical-Bayes means and ranks of every site for one measure, lowest first."""
        return self.query("select site_code, peer_group, n, mean, eb_mean, eb_low, eb_high, "
                          "rank, sites_ranked from shrunken where wave = ? and "
                          "measure_kind = ? and measure = ? order by eb_mean",
                          [wave, kind, measure])

    def drivers(self, scope: str, unit: str, wave: int, outcome: str = "oc_intend"
                ) -> pd.DataFrame:
        """One driver model's rows (`drivers`: a scope of `published.layout.DRIVER_SCOPES`,
        its unit, e.g. "national", a peer group or a site code), one row a scale with the
        scale's name, largest share first; empty when no model was published for it (a
        site under the minimum, a peer group of too few sites)."""
        return self.query("select d.*, m.name, m.principles from drivers d left join "
                          "measures m on m.measure_kind = 'scale' and m.measure = d.scale "
                          "where d.scope = ? and d.unit = ? and d.wave = ? and d.outcome = ? "
                          "order by d.rank", [scope, unit, wave, outcome])
