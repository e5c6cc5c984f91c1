"""Question-level benchmarks: each shown item of each site on % favourable, against its
peer group, all sites and its previous wave (published table `item_benchmarks`).

Computed from the published cells alone, like the rest of the benchmark stage: a row
exists only where the site's item cell is shown, and every other number on it comes
from shown cells (the peer group's best / median / worst are shown sites' own cells;
last year's value is the site's shown cell of the previous wave). A hidden cell takes
no part, so nothing here rests on a group the suppression step hid.

Per site x wave x item (columns `published.layout.ITEM_BENCHMARK_COLUMNS`):

* **Peer group.** peer_sites counts the shown sites of the group (this one included);
  peer_best / peer_median / peer_worst are the highest, median and lowest % favourable
  of the *other* shown sites. diff_vs_peer is the site's % favourable less the other
  sites' random-effects mean, with the limits of the verdict rule (`stats.verdicts`)
  turned into an interval, as `benchmarks.diff_vs_peer` is for means; not computed with
  fewer than MIN_OTHER_SITES other sites (diff_vs_peer_note says so).
* **All sites.** verdict: the funnel's rule (`stats.verdicts.judge_sites`, leave-one-out
  random effects, REML) applied to the favourable proportion in points, each site's
  n with mean p and SD sqrt(p (1 - p)) (x 100): the variance of a proportion. A site whose
  answers were all favourable or all not (SD 0) carries no sampling variance to weigh it
  by and is not compared, as on the funnel.
* **Last year.** The site's shown cell in the previous published wave (none when that
  cell is hidden or the site did not take part; an older wave is not "last year").
  change in points with a 95% Wald interval (unpooled); its test is the pooled
  two-proportion z test, i.e. the chi-square test without continuity correction
  (R: ``prop.test(c(x1, x0), c(n1, n0), correct = FALSE)``, whose interval is the same
  Wald one). q: Benjamini-Hochberg across the site's items in that wave, at the
  layout's FDR; change_verdict "improved" / "declined" when q < FDR, else
  "no clear change".
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from published.layout import FDR, ITEM_BENCHMARK_COLUMNS, MIN_OTHER_SITES
from stats.comparison import benjamini_hochberg_by_group

CHANGE_VERDICTS = ("improved", "declined", "no clear change")
_Z95 = float(stats.norm.ppf(0.975))


def item_benchmark_table(cells: pd.DataFrame, waves: list[int], compare,
                         only: list[int] | None = None) -> pd.DataFrame:
    """The `item_benchmarks` rows from the shown whole-unit cells (`cells`: the benchmark
    stage's totals) and the layer's published waves, oldest first. `compare` judges one
    group of sites (`pipeline.benchmark.compare_with_others`). `only`: rows of these
    waves only (a run's open waves; None: every wave), the other waves' cells serving as
    last year's values (every comparison is within a wave, so each row is the same
    either way)."""
    sites = cells[(cells["level"] == "site").to_numpy() & (cells["breakdown"] == "all").to_numpy()
                  & (cells["measure_kind"] == "item").to_numpy()
                  & ~cells["suppressed"].to_numpy().astype(bool)
                  & cells["pct_favourable"].notna().to_numpy()]
    out = pd.DataFrame({
        "wave": sites["wave"].to_numpy(), "site_code": sites["unit"].to_numpy(),
        "peer_group": sites["peer_group"].to_numpy(), "measure": sites["measure"].to_numpy(),
        "n": sites["n"].to_numpy(), "pct_favourable": sites["pct_favourable"].to_numpy(float)})
    out = out.sort_values(["wave", "site_code", "measure"], kind="stable").reset_index(drop=True)
    earlier = out
    if only is not None:
        out = out[out["wave"].isin(list(only)).to_numpy()].reset_index(drop=True)
    if out.empty:
        return out
    pct, n = out["pct_favourable"].to_numpy(float), out["n"].to_numpy(float)
    # The SD of one answer's being favourable, in points: the proportion's own variance,
    # taken at (x + 1/2) / (n + 1) so that a site where every answer (or none) was
    # favourable still has a sampling variance; at 0 its weight would be infinite and the
    # REML fit of its group would not converge.
    adjusted = (pct / 100 * n + 0.5) / (n + 1)
    sd = 100 * np.sqrt(adjusted * (1 - adjusted))
    peer_key = ["wave", "measure", "peer_group"]
    out = pd.concat([out, _peer_distribution(out, peer_key)], axis=1)
    peer = _judged(out, peer_key, n, pct, sd, compare)
    out["others_in_peer"] = peer["others"].astype("int64")
    out["diff_vs_peer"] = pct - peer["others_mean"]
    out["diff_vs_peer_low"] = pct - peer["high"]
    out["diff_vs_peer_high"] = pct - peer["low"]
    out["diff_vs_peer_note"] = np.where(
        peer["others"] < MIN_OTHER_SITES,
        f"fewer than {MIN_OTHER_SITES} other sites in the peer group: not compared", None)
    national = _judged(out, ["wave", "measure"], n, pct, sd, compare)
    out["others"] = national["others"].astype("int64")
    for name in ("others_mean", "low", "high"):
        out[name] = national[name]
    out["verdict"], out["rule"] = national["verdict"], national["rule"]
    out = pd.concat([out, _changes(out, waves, earlier)], axis=1)
    return out[list(ITEM_BENCHMARK_COLUMNS)]


def _judged(frame: pd.DataFrame, key: list[str], n, pct, sd, compare) -> dict:
    """`compare` within each group of `frame` by `key`, as arrays in frame order."""
    out = {name: np.full(len(frame), np.nan) for name in ("others", "others_mean", "low",
                                                          "high")}
    out |= {"verdict": np.full(len(frame), None, dtype=object),
            "rule": np.full(len(frame), None, dtype=object)}
    for rows in frame.groupby(key, sort=False).indices.values():
        got = compare(n[rows], pct[rows], sd[rows])
        for name in out:
            out[name][rows] = got[name]
    return out


def _peer_distribution(frame: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """peer_sites (shown sites of the group) and the best, median and worst % favourable
    of the other sites of the group, for each row (NaN when the site is alone)."""
    pct = frame["pct_favourable"].to_numpy(float)
    columns = {"peer_sites": np.zeros(len(frame), np.int64)} | {
        name: np.full(len(frame), np.nan) for name in ("peer_best", "peer_median",
                                                       "peer_worst")}
    for rows in frame.groupby(key, sort=False).indices.values():
        columns["peer_sites"][rows] = len(rows)
        if len(rows) < 2:
            continue
        # Row i: the group's values with site i left out (the diagonal).
        others = np.tile(pct[rows], (len(rows), 1))
        np.fill_diagonal(others, np.nan)
        columns["peer_best"][rows] = np.nanmax(others, axis=1)
        columns["peer_median"][rows] = np.nanmedian(others, axis=1)
        columns["peer_worst"][rows] = np.nanmin(others, axis=1)
    return pd.DataFrame(columns, index=frame.index)


def _changes(frame: pd.DataFrame, waves: list[int],
             earlier: pd.DataFrame | None = None) -> pd.DataFrame:
    """Last year's shown value of each row and the change from it, tested and judged;
    last year's rows are looked up in `earlier` (default: `frame` itself)."""
    previous_of = dict(zip(waves[1:], waves[:-1]))
    previous_wave = frame["wave"].map(previous_of).astype("Int64")
    last = (frame if earlier is None else earlier)[
        ["wave", "site_code", "measure", "n", "pct_favourable"]].rename(columns={
        "wave": "previous_wave", "n": "n_previous", "pct_favourable": "pct_previous"})
    paired = pd.DataFrame({"previous_wave": previous_wave, "site_code": frame["site_code"],
                           "measure": frame["measure"]}).merge(
        last.astype({"previous_wave": "Int64"}), on=["previous_wave", "site_code", "measure"],
        how="left")
    has = paired["pct_previous"].notna().to_numpy()
    p1 = frame["pct_favourable"].to_numpy(float) / 100
    p0 = paired["pct_previous"].to_numpy(float) / 100
    n1 = frame["n"].to_numpy(float)
    n0 = paired["n_previous"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        change = 100 * (p1 - p0)
        half = 100 * _Z95 * np.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
        pooled = (p1 * n1 + p0 * n0) / (n1 + n0)
        se0 = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
        z = np.where(se0 > 0, (p1 - p0) / se0, 0.0)
    p = np.where(has, 2 * stats.norm.sf(np.abs(z)), np.nan)
    family = frame.groupby(["wave", "site_code"], sort=False).ngroup().to_numpy()
    q = benjamini_hochberg_by_group(p, family)
    codes = np.where(q < FDR, np.where(change > 0, 0, 1), 2)
    verdict = np.array(CHANGE_VERDICTS, dtype=object)[codes]
    return pd.DataFrame({
        "previous_wave": paired["previous_wave"].where(has).astype("Int64").to_numpy(),
        "n_previous": paired["n_previous"].where(has).astype("Int64").to_numpy(),
        # The published cell's own value (p0 * 100 can differ from it in the last bit).
        "pct_previous": paired["pct_previous"].to_numpy(float),
        "change": np.where(has, change, np.nan),
        "change_low": np.where(has, change - half, np.nan),
        "change_high": np.where(has, change + half, np.nan),
        "change_p": p, "change_q": q,
        "change_verdict": np.where(has, verdict, None)}, index=frame.index)
