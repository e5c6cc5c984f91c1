"""Driver analysis for the published layer: what goes most with seeking help early.

For each wave, the share of what the eight scales explain together of an outcome that
each scale carries (general dominance, `stats.drivers`), published as table `drivers`
(`published.layout.DRIVER_COLUMNS`):

- `oc_intend` ("I would seek help early rather than wait"), a linear model on the
  answer (1-5), and on whether it is favourable (agree / strongly agree) as a check
  that the order does not hang on treating the answer as a number;
- nationally and per peer group (site type) with a 200-draw bootstrap that resamples
  whole sites (respondents at a site share its culture), only for groups of at least
  `MIN_BOOTSTRAP_SITES` sites; per site, each site's own model, only for sites with at
  least `MIN_SITE_RESPONDENTS` respondents answering (the reason is with the constant);
- using support among those who needed it (`oc_used` given `oc_needed` = yes), a
  logistic model (McFadden's R^2) nationally and per peer group, under the same minimums
  (MIN_SITE_RESPONDENTS such respondents, MIN_BOOTSTRAP_SITES sites), in the latest
  wave only: it is fitted on the respondent rows, 255 models a group, and every wave
  would multiply that. Its 200-draw site bootstrap is the one-step approximation of
  `stats.drivers.logistic_site_bootstrap` (each model's score and information summed
  per site once, one Newton step a replicate), not 200 refits; each row's note says so.

The linear models are fitted from sums DuckDB makes per wave and site
(sql/driver_moments.sql): no respondent row reaches Python for them. Every model rests
on at least `MIN_SITE_RESPONDENTS` respondents, above any minimum group size k, and
publishes only shares of explained variance, from which no answer can be worked out.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from pipeline.frames import with_columns
from pipeline.scoring import respondent_scores_sql
from pipeline.sql_templates import columns, quote, render
from published.layout import DRIVER_COLUMNS
from stats.drivers import (MIN_BOOTSTRAP_SITES, MIN_SITE_RESPONDENTS, DriversError,
                           SiteMoments, dominance_from_fits, dominance_from_site_moments,
                           logistic_site_bootstrap, logistic_subset_fit, site_bootstrap,
                           site_dominance, stacked_relative_weights)
from survey.instrument import Instrument

SQL_DIR = Path(__file__).resolve().parent / "sql"
#: The outcome question, and the two that define the logistic model's outcome.
INTEND, NEEDED, USED = "oc_intend", "oc_needed", "oc_used"
#: Published outcome ids (published.layout.DRIVER_OUTCOMES) of the moments' columns.
LINEAR_OUTCOMES = ("oc_intend", "oc_intend_favourable")
USED_IF_NEEDED = "oc_used_if_needed"
#: What every row of the logistic model says about it.
USED_NOTE = ("logistic model (McFadden's R2) on the respondents who needed support, "
             "latest wave only")
DRAWS = 200
LEVEL = 0.95
#: Whether to fit the logistic model (latest wave only). At national scale (a million
#: responses a wave) that wave has over a quarter of a million respondents who needed
#: support: 255 fits on them nationally and again across the peer groups, plus the
#: one-step bootstraps' per-site sums; every wave would multiply that. Set False to
#: leave it out.
FIT_USED_IF_NEEDED = True


def bootstrap_seed(*parts: object) -> int:
    """A fixed bootstrap seed per model, so a re-run publishes the same intervals."""
    return zlib.crc32(":".join(map(str, parts)).encode())


def _yes_codes(instrument: Instrument, item_id: str) -> str:
    item = next(i for i in instrument.items if i.id == item_id)
    return ", ".join(str(int(c)) for c in
                     instrument.response_scale(item.response_scale).favourable)


def driver_moments(con: duckdb.DuckDBPyConnection, instrument: Instrument,
                   scales: list[str]) -> dict[int, SiteMoments]:
    """Per wave, the moments of [oc_intend, favourable, *scales] per site, from
    `analysis_responses` on the store connection."""
    intend = quote(INTEND)
    values = [f"{intend}::double - 3 as v0",
              f"({intend} in ({_yes_codes(instrument, INTEND)}))::double as v1"]
    values += [f"{quote('s_' + s)} - 3 as v{i + 2}" for i, s in enumerate(scales)]
    m = len(values)
    pairs = [(i, j) for i in range(m) for j in range(i, m)]
    moments = [f"sum(v{i}) as s{i}" for i in range(m)]
    moments += [f"sum(v{i} * v{j}) as p{i}_{j}" for i, j in pairs]
    answered = " and ".join(f"{c} is not null" for c in
                            [intend, *(quote("s_" + s) for s in scales)])
    sql = render(SQL_DIR, "driver_moments.sql",
                 respondent_scores=respondent_scores_sql(instrument, "analysis_responses"),
                 driver_values=columns(values), answered=answered, moments=columns(moments))
    table = con.sql(sql).fetchnumpy()
    names = (*LINEAR_OUTCOMES, *scales)
    out = {}
    for wave in np.unique(table["wave"]):
        rows = table["wave"] == wave
        products = np.empty((int(rows.sum()), m, m))
        for i, j in pairs:
            products[:, i, j] = products[:, j, i] = table[f"p{i}_{j}"][rows]
        out[int(wave)] = SiteMoments(
            names, tuple(str(s) for s in table["site_code"][rows]),
            table["n"][rows].astype(float),
            np.stack([table[f"s{i}"][rows] for i in range(m)], axis=1).astype(float),
            products)
    return out


def _rows(scales, share: np.ndarray, r2: float, base: dict, low=None, high=None,
          r2_low=None, r2_high=None, weights=None) -> list[dict]:
    """One row a scale of one model; rank 1 is the largest share."""
    order = (-share).argsort(kind="stable")
    rank = np.empty(len(share), int)
    rank[order] = np.arange(1, len(share) + 1)
    rows = []
    for j, scale in enumerate(scales):
        rows.append(base | {
            "scale": scale, "share": float(share[j]),
            "share_low": None if low is None else float(low[j]),
            "share_high": None if high is None else float(high[j]),
            "relative_weight": None if weights is None else float(weights[j]),
            "r2": float(r2), "r2_low": r2_low, "r2_high": r2_high,
            "rank": int(rank[j])})
    return rows


def _group_rows(moments: SiteMoments, wave: int, scope: str, unit: str,
                peer_group: str | None, scales: list[str]) -> list[dict]:
    """The linear models of a group of sites (all, or a peer group), with intervals."""
    answering = moments.n > 0
    n, sites = int(moments.n.sum()), int(answering.sum())
    if n < MIN_SITE_RESPONDENTS or sites < MIN_BOOTSTRAP_SITES:
        return []
    rows = []
    for outcome in LINEAR_OUTCOMES:
        base = {"wave": wave, "scope": scope, "unit": unit, "peer_group": peer_group,
                "outcome": outcome, "model": "linear", "fit_measure": "R2", "n": n,
                "sites": sites}
        try:
            estimate = dominance_from_site_moments(moments, outcome, scales)
        except DriversError:
            continue   # the outcome does not vary in this group: nothing to share out
        weights = estimate.relative_weights / estimate.relative_weights.sum()
        try:
            boot = site_bootstrap(moments, outcome, scales, draws=DRAWS, level=LEVEL,
                                  seed=bootstrap_seed(wave, scope, unit, outcome))
        except DriversError:
            rows += _rows(scales, estimate.general_share, estimate.total,
                          base | {"note": "no interval: a resampled set of sites gave the "
                                          "outcome no variation"}, weights=weights)
            continue
        note = (f"{LEVEL:.0%} interval from {DRAWS} resamples of the {sites} sites"
                + ("" if sites >= 20 else "; with fewer than 20 sites it is likely too "
                                          "narrow"))
        rows += _rows(scales, estimate.general_share, estimate.total, base | {"note": note},
                      boot.share_low, boot.share_high, boot.total_low, boot.total_high,
                      weights)
    return rows


def _site_rows(moments: SiteMoments, wave: int, peer_of: dict[str, str],
               scales: list[str]) -> list[dict]:
    """Each site's own linear models, for sites with at least MIN_SITE_RESPONDENTS."""
    rows = []
    covariances = moments.site_covariances()
    for outcome in LINEAR_OUTCOMES:
        fitted = site_dominance(moments, outcome, scales, MIN_SITE_RESPONDENTS)
        share = fitted[scales].to_numpy(float)
        r2 = fitted["r2"].to_numpy(float)
        # A site whose answers do not vary enough to fit has no model.
        fits = np.isfinite(share).all(axis=1) & (r2 > 0)
        if not fits.any():
            continue
        chosen = [moments.columns.index(c) for c in (outcome, *scales)]
        at = [moments.sites.index(site) for site in fitted.index[fits]]
        # Every site's relative weights in one batch (a site a call cost most of the stage).
        weights = stacked_relative_weights(covariances[at][:, chosen][:, :, chosen])
        weights = weights / weights.sum(axis=1, keepdims=True)
        for site, n, site_share, site_r2, site_weights in zip(
                fitted.index[fits], fitted["n"].to_numpy()[fits], share[fits], r2[fits],
                weights):
            base = {"wave": wave, "scope": "site", "unit": site, "peer_group": peer_of.get(site),
                    "outcome": outcome, "model": "linear", "fit_measure": "R2",
                    "n": int(n), "sites": 1,
                    "note": "the site's own model: no interval (one site cannot be "
                            "resampled by site)"}
            rows += _rows(scales, site_share, site_r2, base, weights=site_weights)
    return rows


def _used_rows(con: duckdb.DuckDBPyConnection, instrument: Instrument, scales: list[str],
               wave: int) -> dict[str, np.ndarray]:
    """The rows the logistic model of wave `wave` is fitted on (sql/driver_rows.sql)."""
    scores = [quote("s_" + s) for s in scales]
    answered = " and ".join([f"{quote(NEEDED)} in ({_yes_codes(instrument, NEEDED)})",
                             f"{quote(USED)} is not null", *(f"{s} is not null" for s in scores)])
    sql = render(SQL_DIR, "driver_rows.sql",
                 respondent_scores=respondent_scores_sql(instrument, "analysis_responses"),
                 used=f"({quote(USED)} in ({_yes_codes(instrument, USED)}))::double",
                 scores=columns(scores), answered=answered)
    return con.sql(sql, params={"wave": wave}).fetchnumpy()


def _used_if_needed_rows(data: dict[str, np.ndarray], scales: list[str], wave: int,
                         peer_of: dict[str, str]) -> list[dict]:
    """The logistic model of using support among those who needed it, nationally and
    per peer group, with one-step site-bootstrap intervals (stats.drivers
    .logistic_site_bootstrap), for groups of at least MIN_SITE_RESPONDENTS such
    respondents at MIN_BOOTSTRAP_SITES sites or more, as for the linear models."""
    site = np.asarray(data["site_code"]).astype(str)
    x = np.column_stack([data["s_" + s] for s in scales]).astype(float)
    y = np.asarray(data["y"], float)
    peer = np.array([peer_of.get(s) or "" for s in site], dtype=object)
    groups = [("national", "national", None, np.ones(len(y), bool))]
    groups += [("peer", g, g, peer == g) for g in sorted(set(peer_of.values()))]

    def group_rows(scope: str, unit: str, peer_group: str | None, chosen: np.ndarray
                   ) -> list[dict]:
        n, sites = int(chosen.sum()), len(np.unique(site[chosen]))
        if n < MIN_SITE_RESPONDENTS or (scope == "peer" and sites < MIN_BOOTSTRAP_SITES):
            return []
        base = {"wave": wave, "scope": scope, "unit": unit, "peer_group": peer_group,
                "outcome": USED_IF_NEEDED, "model": "logistic",
                "fit_measure": "McFadden R2", "n": n, "sites": sites}
        try:
            boot = logistic_site_bootstrap(x[chosen], y[chosen], site[chosen], USED_IF_NEEDED,
                                           scales, draws=DRAWS, level=LEVEL,
                                           seed=bootstrap_seed(wave, scope, unit, USED_IF_NEEDED))
        except DriversError:
            # too few sites to resample (nationally), or no model at all
            try:
                fit = logistic_subset_fit(x[chosen], y[chosen])
            except DriversError:
                return []   # everyone (or no one) who needed support used it
            result = dominance_from_fits(fit, USED_IF_NEEDED, scales, "logistic",
                                         "McFadden R2", n)
            return _rows(scales, result.general_share, result.total, base | {
                "note": f"{USED_NOTE}; no interval: fewer than {MIN_BOOTSTRAP_SITES} sites "
                        "to resample"})
        note = (f"{USED_NOTE}; {LEVEL:.0%} interval from {DRAWS} resamples of the {sites} "
                "sites, each one Newton step from the fit on all of them (a one-step "
                "approximation, not a refit)"
                + ("" if sites >= 20 else "; with fewer than 20 sites it is likely too narrow"))
        return _rows(scales, boot.share, boot.total, base | {"note": note}, boot.share_low,
                     boot.share_high, boot.total_low, boot.total_high)

    return [row for group in groups for row in group_rows(*group)]


@dataclass
class DriverInputs:
    """What the driver models need from the store, read on its connection; the models
    themselves (`driver_rows`) are numpy work that needs no connection, so the
    publish stage runs them beside its DuckDB work."""

    scales: list[str]
    peer_of: dict[str, str]
    #: per wave, the per-site moments of the linear models
    moments: dict[int, SiteMoments]
    #: the latest wave and its rows for the logistic model (None: not fitted)
    used: tuple[int, dict[str, np.ndarray]] | None


def driver_inputs(con: duckdb.DuckDBPyConnection, instrument: Instrument
                  ) -> DriverInputs | None:
    """The moments and rows the driver models need, from `analysis_responses` (None
    when the instrument has no outcome question)."""
    item_ids = {i.id for i in instrument.items}
    if INTEND not in item_ids:
        return None
    scales = [s.id for s in instrument.scales]
    peer_of = dict(con.execute("select site_code, site_type from sites").fetchall())
    moments = driver_moments(con, instrument, scales)
    used = None
    if FIT_USED_IF_NEEDED and {NEEDED, USED} <= item_ids and moments:
        latest = max(moments)
        used = latest, _used_rows(con, instrument, scales, latest)
    return DriverInputs(scales, peer_of, moments, used)


def driver_rows(inputs: DriverInputs | None, cells: pd.DataFrame | None = None
                ) -> pd.DataFrame:
    """The published `drivers` rows from `driver_inputs` (empty, with its columns, when
    the instrument has no outcome question).

    With the published `cells`, a site's own model is kept only where the site's
    response count for the wave is shown: a count hidden to protect a smaller group
    must not come back as a model's n.
    """
    if inputs is None:
        return with_columns(pd.DataFrame(), DRIVER_COLUMNS)
    scales, peer_of = inputs.scales, inputs.peer_of
    rows: list[dict] = []
    for wave, moments in inputs.moments.items():
        rows += _group_rows(moments, wave, "national", "national", None, scales)
        for group in sorted(set(peer_of.values())):
            members = [s for s in moments.sites if peer_of.get(s) == group]
            rows += _group_rows(moments.of_sites(members), wave, "peer", group, group, scales)
        rows += _site_rows(moments, wave, peer_of, scales)
        if inputs.used is not None and inputs.used[0] == wave:
            rows += _used_if_needed_rows(inputs.used[1], scales, wave, peer_of)
    frame = pd.DataFrame(rows, columns=list(DRIVER_COLUMNS)).astype(DRIVER_COLUMNS)
    return frame if cells is None else of_shown_sites(frame, cells)


def of_shown_sites(frame: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """`driver_rows` without the site models of sites whose response count for the wave
    the published `cells` hide."""
    if not len(frame):
        return frame
    shown = cells[(cells["level"] == "site") & (cells["breakdown"] == "all")
                  & (cells["measure_kind"] == "responses") & ~cells["suppressed"]]
    shown = set(zip(shown["wave"].astype(int), shown["unit"]))
    keep = [scope != "site" or (int(wave), unit) in shown
            for scope, wave, unit in zip(frame["scope"], frame["wave"], frame["unit"])]
    return frame[keep].reset_index(drop=True)


def driver_table(con: duckdb.DuckDBPyConnection, instrument: Instrument,
                 cells: pd.DataFrame | None = None) -> pd.DataFrame:
    """`driver_rows(driver_inputs(con, instrument), cells)`: the published `drivers`
    rows from `analysis_responses`."""
    return driver_rows(driver_inputs(con, instrument), cells)
