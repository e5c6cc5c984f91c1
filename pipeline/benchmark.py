"""Benchmarks, funnel flags, shrunken means, trends, principle gaps and equity.

Everything here is computed from the published cells alone (table `cells` of the
published file): the stage sits downstream of suppression, so no number it adds can
rest on a group the suppression step hid. A hidden cell simply takes no part.

Tables written (all into the published file):

    benchmarks      site x wave x measure: the site against all sites and its peer group
                    (median, quartiles, best / worst site mean; difference from what the
                    other sites of the peer group and of all sites achieve, with the
                    others' limits of the verdict rule: between-site variation included)
    funnel_params   wave x measure: random-effects mean of all sites, tau^2, pooled SD
    funnel          site x wave x measure: the site against the other sites (leave-one-out
                    random effects, stats.verdicts): z, p, the rule's limits for a site of
                    its size, flagged, and the one verdict every reader shows
    shrunken        site x wave x measure: empirical-Bayes mean, 95% interval, rank
    trends          unit x wave x measure: change from the unit's previous wave, test, flag
    item_benchmarks site x wave x item: % favourable against the peer group, all sites and
                    the previous wave (pipeline.item_benchmarks)
    principle_gaps  site x wave x principle: score, target, gap with 95% CI, certainty,
                    priority (1 = act first)
    equity          unit x wave x attribute group x measure: group vs the rest of the unit
    weighted        site x wave x measure: mean weighted to the staff-group headcount mix
                    (stats.weighting)
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from pipeline.publish.cells import KEY_ORDER
from published.layout import (FDR, FUNNEL_COLUMNS, FUNNEL_PARAM_COLUMNS,
                              ITEM_BENCHMARK_COLUMNS, MIN_OTHER_SITES, NO_TARGET, NOT_COMPARED,
                              VERDICTS)
from stats.comparison import benjamini_hochberg_by_group, pooled_sd, shrink, welch
from stats.outliers import random_effects
from stats.verdicts import judge_sites
from pipeline.frames import query_frame, with_columns, write_table
from pipeline.item_benchmarks import item_benchmark_table
from pipeline.scope import wave_list_sql
from stats.gaps import leave_one_out_gaps, pool_seed
from stats.weighting import weighted_table
from survey.settings import TARGET_RULES

#: Decimals a shrunken mean is ranked on: far below any real difference, far above the
#: noise of summing in another order.
RANK_DECIMALS = 9
#: Other sites (the site itself left out) a pool needs before its quartile is a target.
MIN_PEER_SITES_FOR_TARGET = 3
COMPARED_KINDS = ("scale", "principle")
#: diff_vs_*_note of an item's `benchmarks` row: items are compared on % favourable.
ITEMS_COMPARED_ELSEWHERE = "items are compared on % favourable: see item_benchmarks"
#: tau^2 estimator of every comparison of a site with the other sites.
VERDICT_METHOD = "REML"
#: Columns of the published cells the comparisons read.
BENCHMARKED_COLUMNS = ("wave", "level", "unit", "peer_group", "breakdown", "grp", "measure_kind",
                       "measure", "n", "mean", "sd", "se", "ci_low", "ci_high", "mean_0_10",
                       "pct_favourable", "suppressed")

_SITE_MEASURE = {"wave": "Int64", "site_code": "string", "peer_group": "string",
                 "measure_kind": "string", "measure": "string", "n": "Int64", "mean": "float64"}
#: Tables that have no rows when there is nothing to compare (a funnel needs two sites;
#: weighting needs headcounts), with the columns they are written with all the same.
MAY_BE_EMPTY = {
    "funnel_params": FUNNEL_PARAM_COLUMNS,
    "funnel": FUNNEL_COLUMNS,
    "shrunken": _SITE_MEASURE | {"eb_mean": "float64", "eb_low": "float64",
                                 "eb_high": "float64", "shrinkage": "float64",
                                 "rank": "Int64", "sites_ranked": "Int64"},
    "item_benchmarks": ITEM_BENCHMARK_COLUMNS,
    "weighted": _SITE_MEASURE | {name: "float64" for name in (
        "weighted_mean", "weighted_se", "weighted_ci_low", "weighted_ci_high")}
    | {"classes": "Int64", "classes_capped": "Int64", "respondents_pooled": "Int64",
       "design_effect": "float64"},
}


def _site_totals(cells: pd.DataFrame) -> pd.DataFrame:
    """Shown whole-site cells (no breakdown) of scales, principles and items."""
    return cells[(cells["level"] == "site") & (cells["breakdown"] == "all")
                 & ~cells["suppressed"] & cells["measure_kind"].isin(
                     ["scale", "principle", "item"]) & cells["mean"].notna()].copy()


def benchmark_table(cells: pd.DataFrame, compare=None) -> pd.DataFrame:
    """Each shown site cell against the distribution of shown site means.

    diff_vs_peer / diff_vs_national (scales and principles; items are compared on %
    favourable in `item_benchmarks`): the site's mean less the random-effects mean of
    the other sites (of its peer group / of all sites), with the limits the verdict rule
    puts on the other sites for a site of its size (`stats.verdicts`) turned into an
    interval for the difference, so "different" means different from what peers
    achieve, between-site variation included, not from a fixed number; the interval
    excludes zero exactly when the rule would call the site clearly different. With fewer than MIN_OTHER_SITES other sites the
    difference is not computed and diff_vs_*_note says why. `compare`: the comparison
    to use (`compare_with_others`, or a `SiteComparisons` shared with the funnel).
    """
    compare = compare or compare_with_others
    sites = _site_totals(cells)
    by = ["wave", "measure_kind", "measure"]
    national = _distribution(sites, by, "national")
    peer = _distribution(sites, by + ["peer_group"], "peer")
    out = _attach(_attach(sites, national, by), peer, by + ["peer_group"])
    # Items are compared with the other sites on % favourable, the measure readers show
    # for a question (`item_benchmarks`); their leave-one-out fits on the 1-5 mean, which
    # no reader showed, were half the stage's cost.
    item = (out["measure_kind"] == "item").to_numpy()
    for label, key, whom in (("peer", by + ["peer_group"], "in the peer group"),
                             ("national", by, "")):
        compared = _compared_by_group(out, key, compare, skip=item)
        out[f"others_in_{label}"] = compared["others"].astype("Int64")
        out[f"diff_vs_{label}"] = out["mean"] - compared["others_mean"]
        out[f"diff_vs_{label}_low"] = out["mean"] - compared["high"]
        out[f"diff_vs_{label}_high"] = out["mean"] - compared["low"]
        out[f"diff_vs_{label}_p"] = compared["p"]
        out[f"diff_vs_{label}_note"] = np.where(
            item, ITEMS_COMPARED_ELSEWHERE, np.where(
                compared["others"] < MIN_OTHER_SITES,
                f"fewer than {MIN_OTHER_SITES} other sites{' ' + whom if whom else ''}: "
                "not compared", None))
    keep = ["wave", "unit", "peer_group", "measure_kind", "measure", "n", "mean", "sd", "se",
            "ci_low", "ci_high", "mean_0_10", "pct_favourable"]
    rest_cols = [c for c in out.columns if c.startswith(("national_", "peer_", "diff_vs_",
                                                         "others_in_")) and c != "peer_group"]
    return out[keep + rest_cols].rename(columns={"unit": "site_code"}).reset_index(drop=True)


def _compared_by_group(frame: pd.DataFrame, key: list[str], compare,
                       skip: np.ndarray | None = None) -> pd.DataFrame:
    """`compare_with_others` within each group of `frame` by `key`, rows in frame order;
    rows where `skip` is true are left out (NaN)."""
    columns = {name: np.full(len(frame), np.nan) for name in (
        "others", "others_mean", "z", "p", "low", "high")}
    n, mean, sd = (frame[c].to_numpy(float) for c in ("n", "mean", "sd"))
    for rows in frame.groupby(key, sort=False).indices.values():
        if skip is not None and skip[rows[0]]:    # a group is of one measure kind
            continue
        got = compare(n[rows], mean[rows], sd[rows])
        for name in columns:
            columns[name][rows] = got[name]
    return pd.DataFrame(columns, index=frame.index)


def _attach(frame: pd.DataFrame, per_group: pd.DataFrame, on: list[str]) -> pd.DataFrame:
    """`frame` with the columns of `per_group` (indexed by `on`), row order kept.

    A merge on columns rather than `frame.join(per_group, on=...)`: pandas' join on a
    MultiIndex fails when no site is shown (empty Arrow string levels), e.g. a first
    test survey whose every cell is below the threshold.
    """
    return frame.merge(per_group.reset_index(), on=on, how="left")


def _distribution(sites: pd.DataFrame, by: list[str], prefix: str) -> pd.DataFrame:
    """Count, worst, quartiles, median and best of site means per group (linear quantiles)."""
    grouped = sites.groupby(by)["mean"]
    out = grouped.agg(["count", "min", "median", "max"])
    out["q1"], out["q3"] = grouped.quantile(0.25), grouped.quantile(0.75)
    names = {"count": "sites", "min": "worst", "max": "best"}
    out = out[["count", "min", "q1", "median", "q3", "max"]]
    return out.rename(columns=lambda c: f"{prefix}_{names.get(c, c)}")


def _rest_of(total_n, total_mean, total_sd, part_n, part_mean, part_sd):
    """(mean, sd, n) of a total's respondents outside one part, from their sums."""
    total_n, part_n = np.asarray(total_n, float), np.asarray(part_n, float)
    total_s1 = total_n * total_mean
    total_s2 = (total_n - 1) * total_sd ** 2 + total_n * total_mean ** 2
    part_s1 = part_n * part_mean
    part_s2 = (part_n - 1) * part_sd ** 2 + part_n * part_mean ** 2
    n = total_n - part_n
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = (total_s1 - part_s1) / n
        var = ((total_s2 - part_s2) - n * mean ** 2) / (n - 1)
    return np.asarray(mean, float), np.sqrt(np.clip(np.asarray(var, float), 0, None)), n


def compare_with_others(n: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> dict:
    """`stats.verdicts.judge_sites` for a group of sites (arrays of n, mean, sd), with the
    others' mean and count, as arrays by name; with fewer than MIN_OTHER_SITES others
    every row reads NOT_COMPARED and has no interval (the spread of one or two sites is
    no distribution to stand outside of). low / high are the limits the verdict's rule
    uses: outside them is "clearly" below or above."""
    n, mean, sd = (np.asarray(a, float) for a in (n, mean, sd))
    # A mean whose answers do not vary (sd 0: every respondent chose the same option,
    # seen on single items of small sites) has no sampling variance to weigh it by.
    usable = sd > 0
    others = int(usable.sum()) - 1
    # Arrays throughout: a thousand groups at national scale, where per-group pandas
    # frames cost more than the model fits.
    out = {name: np.full(len(n), np.nan) for name in ("others_mean", "z", "p", "low",
                                                      "high")}
    out |= {"others": np.where(usable, others, 0), "flagged": np.zeros(len(n), bool),
            "verdict": np.full(len(n), NOT_COMPARED, dtype=object),
            "rule": np.full(len(n), None, dtype=object)}
    if others >= MIN_OTHER_SITES:
        judged = judge_sites(n[usable], mean[usable], sd[usable], VERDICT_METHOD)
        for name, values in (("others_mean", judged.mu_without), ("z", judged.z),
                             ("p", judged.p), ("low", judged.low), ("high", judged.high),
                             ("flagged", judged.flagged), ("verdict", judged.verdict)):
            out[name][usable] = values
        out["rule"][usable] = judged.rule
    return out


class SiteComparisons:
    """`compare_with_others`, remembered by its inputs for one build: the benchmarks'
    comparisons with all sites and the funnel's verdicts judge the same groups of sites,
    and each group's leave-one-out fits are the stage's largest cost."""

    def __init__(self) -> None:
        self._seen: dict[tuple[bytes, bytes, bytes], dict] = {}

    def __call__(self, n, mean, sd) -> dict:
        n, mean, sd = (np.asarray(a, float) for a in (n, mean, sd))
        key = (n.tobytes(), mean.tobytes(), sd.tobytes())
        if key not in self._seen:
            self._seen[key] = compare_with_others(n, mean, sd)
        return self._seen[key]


def funnel_tables(cells: pd.DataFrame, compare=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per wave x measure the random-effects model of all sites, and each site's one
    verdict against the other sites with the interval it was judged by (`compare` as in
    `benchmark_table`)."""
    compare = compare or compare_with_others
    sites = _site_totals(cells)
    sites = sites[sites["measure_kind"].isin(COMPARED_KINDS)]
    params, rows = [], []
    for (wave, kind, measure), group in sites.groupby(["wave", "measure_kind", "measure"]):
        if len(group) < 2:
            continue
        y, v = group["mean"].to_numpy(float), (group["sd"] ** 2 / group["n"]).to_numpy(float)
        if len(group) >= MIN_OTHER_SITES + 1:
            model = random_effects(y, v, VERDICT_METHOD)
            target, target_se, tau2 = model.mu, model.se, model.tau2
        else:   # no between-site spread is estimated from two or three sites
            w = 1 / v
            target, target_se, tau2 = float((w * y).sum() / w.sum()), float(
                1 / np.sqrt(w.sum())), float("nan")
        params.append({"wave": wave, "measure_kind": kind, "measure": measure,
                       "method": VERDICT_METHOD, "target": target, "target_se": target_se,
                       "tau2": tau2, "sigma": pooled_sd(group["n"], group["sd"]),
                       "sites": len(group)})
        verdicts = compare(group["n"], y, group["sd"])
        rows.append((len(group), {
            "wave": wave, "site_code": group["unit"].to_numpy(),
            "peer_group": group["peer_group"].to_numpy(), "measure_kind": kind,
            "measure": measure, "n": group["n"].to_numpy(), "mean": y,
            "sd": group["sd"].to_numpy(float)}
            | {name: verdicts[name] for name in (
                "others", "others_mean", "z", "p", "low", "high", "flagged", "verdict",
                "rule")}))
    return pd.DataFrame(params), _stack(rows)


def shrunken_table(cells: pd.DataFrame, params: pd.DataFrame) -> pd.DataFrame:
    """Empirical-Bayes site means (tau^2 from the funnel) with intervals and ranks."""
    sites = _site_totals(cells)
    sites = sites[sites["measure_kind"].isin(COMPARED_KINDS)]
    by_measure = dict(iter(sites.groupby(["wave", "measure_kind", "measure"], sort=False)))
    rows = []
    for p in params.itertuples():
        group = by_measure[(p.wave, p.measure_kind, p.measure)]
        # Each mean's own sampling variance and the all-sites tau^2, as in the verdicts'
        # model; with too few sites for a tau^2 every site is shrunk to the mean.
        s2 = (group["sd"] ** 2 / group["n"]).to_numpy(float)
        est = shrink(group["mean"].to_numpy(), s2, 0.0 if pd.isna(p.tau2) else p.tau2)
        low, high = est.interval()
        rows.append((len(group), {
            "wave": p.wave, "site_code": group["unit"].to_numpy(),
            "peer_group": group["peer_group"].to_numpy(), "measure_kind": p.measure_kind,
            "measure": p.measure, "n": group["n"].to_numpy(), "mean": group["mean"].to_numpy(),
            "eb_mean": est.mean, "eb_low": low, "eb_high": high, "shrinkage": est.shrinkage,
            # Means equal but for the last bits (sums added in another order by a parallel
            # scan) are a tie, not a rank that changes from run to run.
            "rank": pd.Series(-est.mean).round(RANK_DECIMALS).rank(method="min")
                      .astype(int).to_numpy(),
            "sites_ranked": len(group)}))
    return _stack(rows)


def trend_table(cells: pd.DataFrame, only: list[int] | None = None) -> pd.DataFrame:
    """Change from each unit's previous wave (both cells shown), Welch test, BH per family
    (a wave's measure at one level). `only`: rows of these waves only (None: every wave);
    the earlier waves' cells still serve as the previous values."""
    shown = cells[(cells["breakdown"] == "all") & ~cells["suppressed"]
                  & cells["measure_kind"].isin(COMPARED_KINDS)]
    shown = shown[["wave", "level", "unit", "peer_group", "measure_kind", "measure", "n",
                   "mean", "sd"]]
    by = ["level", "unit", "measure_kind", "measure"]
    shown = shown.sort_values(by + ["wave"])
    prev = shown.groupby(by)[["wave", "n", "mean", "sd"]].shift(1)
    pairs = shown.assign(previous_wave=prev["wave"], n_previous=prev["n"],
                         mean_previous=prev["mean"], sd_previous=prev["sd"]).dropna(
        subset=["previous_wave"])
    if only is not None:
        pairs = pairs[pairs["wave"].isin(list(only)).to_numpy()]
    diff, _se, low, high, p = welch(pairs["mean"], pairs["sd"], pairs["n"],
                                    pairs["mean_previous"], pairs["sd_previous"],
                                    pairs["n_previous"])
    pairs = pairs.assign(change=diff, change_low=low, change_high=high, p=p)
    pairs["q"] = benjamini_hochberg_by_group(pairs["p"].to_numpy(), pairs.groupby(
        ["wave", "level", "measure_kind", "measure"], sort=False).ngroup().to_numpy())
    pairs["flag"] = _three_way(pairs["q"] < FDR, pairs["change"] > 0,
                               ("improved", "declined", "no clear change"))
    pairs["previous_wave"] = pairs["previous_wave"].astype(int)
    pairs["n_previous"] = pairs["n_previous"].astype(int)
    return pairs.drop(columns=["sd", "sd_previous"]).reset_index(drop=True)


def principle_gap_table(cells: pd.DataFrame, target_rule: str = "peer_q3") -> pd.DataFrame:
    """Each site's principle scores against a target set by the other sites, gaps ordered
    by size and certainty.

    target: the upper quartile (or median) of the *other* sites' scores in the site's
    peer group, or of all other sites when the peer group has fewer than three other
    reportable sites (`stats.gaps.leave_one_out_gaps`). gap = target - score (positive:
    short of the target), with a 95% percentile bootstrap interval over the other sites
    that also carries the site's own SE. certainty: 'clear gap' when the whole interval
    is short of the target, 'possible gap' when the score is short but the interval
    reaches it, 'meets target' otherwise. priority orders a site's principles by the
    lower end of the gap interval, so a large, certain gap comes before a large,
    uncertain one. With fewer than three other reportable sites in the wave there is
    no target (a quartile of one or two sites is those sites): target and gap are
    missing, certainty is 'no target', and priority follows the score, lowest first.
    """
    if target_rule not in TARGET_RULES:
        raise ValueError(f"target rule {target_rule!r}; use one of {', '.join(TARGET_RULES)}")
    sites = _site_totals(cells)
    sites = sites[sites["measure_kind"] == "principle"].reset_index(drop=True)
    level = 0.5 if target_rule.endswith("median") else 0.75
    by = ["wave", "measure"]
    others_national = sites.groupby(by)["mean"].transform("count") - 1
    others_peer = sites.groupby(by + ["peer_group"])["mean"].transform("count") - 1
    use_peer = (target_rule.startswith("peer")
                & (others_peer >= MIN_PEER_SITES_FOR_TARGET)).to_numpy()
    # A quartile of one or two other sites is those sites themselves. With fewer than
    # three other reportable sites there is no target.
    use_national = ~use_peer & (others_national >= MIN_PEER_SITES_FOR_TARGET).to_numpy()
    for name in ("target", "gap", "gap_low", "gap_high"):
        sites[name] = np.nan
    for use, pool_by in ((use_peer, by + ["peer_group"]), (use_national, by)):
        if not use.any():
            continue
        for key, pool in sites.groupby(pool_by, sort=False):
            # In site order, so each site's draws do not depend on the rows' order.
            pool = pool.sort_values("unit", kind="stable")
            wanted = use[pool.index]
            if not wanted.any():
                continue
            key = key if isinstance(key, tuple) else (key,)
            got = leave_one_out_gaps(pool["mean"].to_numpy(), pool["se"].to_numpy(),
                                     np.flatnonzero(wanted), level,
                                     seed=pool_seed(target_rule, *key))
            rows = pool.index[wanted]
            sites.loc[rows, "target"], sites.loc[rows, "gap"] = got.target, got.gap
            sites.loc[rows, "gap_low"], sites.loc[rows, "gap_high"] = got.low, got.high
    what = "upper quartile" if target_rule.endswith("q3") else "median"
    sites["target_basis"] = np.where(
        # "peer group ..." first: the pseudonymised export hides targets by that prefix
        # (outputs/sql/export_cells.sql), as a peer target can link sites of one type.
        use_peer, f"peer group {what}, site itself left out", np.where(
            use_national, f"all sites {what}, site itself left out" + (
                f" (peer group has fewer than {MIN_PEER_SITES_FOR_TARGET} other reportable "
                "sites)" if target_rule.startswith("peer") else ""),
            f"no target: fewer than {MIN_PEER_SITES_FOR_TARGET} other sites reported this "
            "wave"))
    sites["certainty"] = np.where(
        sites["target"].isna(), NO_TARGET, np.where(
            sites["gap_low"] > 0, "clear gap",
            np.where(sites["gap"] > 0, "possible gap", "meets target")))
    # Largest certain gap first; principles without a target after, lowest score first.
    ordered = sites.assign(has_target=sites["target"].notna()).sort_values(
        ["wave", "unit", "has_target", "gap_low", "mean"],
        ascending=[True, True, False, False, True], kind="stable")
    sites["priority"] = ordered.groupby(["wave", "unit"]).cumcount().reindex(sites.index) + 1
    out = sites.rename(columns={"unit": "site_code", "measure": "principle", "mean": "score"})
    return out[["wave", "site_code", "peer_group", "principle", "n", "score", "se", "ci_low",
                "ci_high", "target", "target_basis", "gap", "gap_low", "gap_high", "certainty",
                "priority"]].sort_values(["wave", "site_code", "priority"]).reset_index(drop=True)


#: The comparison families of the equity table: a unit's groups on one measure in one wave.
EQUITY_FAMILY = ("wave", "level", "unit", "measure_kind", "measure")


def write_equity_table(pub: duckdb.DuckDBPyConnection, source: str = "cells",
                       waves: list[int] | None = None) -> int:
    """Table `equity`: each shown group against the rest of its unit (site, peer group or
    all sites), from the published cells in relation `source`, of `waves` (None: every
    wave); returns its row count.

    The pairing of groups with their unit's total is a join in DuckDB; the rows come back
    as Arrow columns and numpy computes the tests from the numeric ones. Pandas is left
    out: at national scale the table has some 470k rows, whose string keys it took
    seconds to carry.
    """
    kinds = ", ".join(f"'{kind}'" for kind in COMPARED_KINDS)
    scoped = "true" if waves is None else wave_list_sql(waves)
    # `family` numbers each unit total, and with it the family of tests its groups form.
    pairs = pub.sql(f"""
        with totals as (
            select row_number() over () as family, {', '.join(EQUITY_FAMILY)},
                   n as unit_n, mean as unit_mean, sd as unit_sd
            from {source}
            where not suppressed and measure_kind in ({kinds}) and breakdown = 'all'
              and {scoped}
        ),
        groups as (
            select wave, level, unit, peer_group, breakdown, grp, measure_kind, measure, n,
                   mean, sd, ci_low, ci_high
            from {source}
            where not suppressed and measure_kind in ({kinds}) and breakdown <> 'all'
              and grp <> 'not_stated' and {scoped}
        )
        select * from groups join totals using ({', '.join(EQUITY_FAMILY)})
        order by {', '.join(KEY_ORDER)}""").to_arrow_table()
    column = {name: pairs[name].to_numpy() for name in (
        "unit_n", "unit_mean", "unit_sd", "n", "mean", "sd", "family")}
    rest_mean, rest_sd, rest_n = _rest_of(column["unit_n"], column["unit_mean"],
                                          column["unit_sd"], column["n"], column["mean"],
                                          column["sd"])
    keep = rest_n >= 2
    mean, sd, n = (np.asarray(column[c], float)[keep] for c in ("mean", "sd", "n"))
    rest_mean, rest_sd, rest_n = rest_mean[keep], rest_sd[keep], rest_n[keep]
    diff, _se, low, high, p = welch(mean, sd, n, rest_mean, rest_sd, rest_n)
    q = benjamini_hochberg_by_group(p, column["family"][keep])
    flag = _three_way(q < FDR, diff < 0, ("lower", "higher", "no clear difference"))
    shown = pairs.filter(pa.array(keep)).select(
        ["wave", "level", "unit", "peer_group", "breakdown", "grp", "measure_kind", "measure",
         "n", "mean", "ci_low", "ci_high"])
    table = shown.append_column("n_rest", pa.array(rest_n.astype(np.int64)))
    for name, values in (("mean_rest", rest_mean), ("diff", diff), ("diff_low", low),
                         ("diff_high", high), ("p", p), ("q", q)):
        table = table.append_column(name, pa.array(values, pa.float64()))
    table = table.append_column("flag", pa.array(flag, pa.string()))
    write_table(pub, "equity", table)
    return len(table)


def _three_way(flagged, first, labels: tuple[str, str, str]) -> np.ndarray:
    """labels[0] where flagged and first, labels[1] where flagged and not first,
    labels[2] where not flagged; as Python strings, which become a pandas string column
    far faster than the fixed-width array np.where builds from string literals."""
    codes = np.where(np.asarray(flagged), np.where(np.asarray(first), 0, 1), 2)
    return np.array(labels, dtype=object)[codes]


def _stack(parts: list[tuple[int, dict]]) -> pd.DataFrame:
    """One frame from per-group columns: (rows, {column: array or one value for every
    row}) for each group, in order. Built once: a frame per group cost more than the
    group's arithmetic."""
    if not parts:
        return pd.DataFrame()

    def repeated(value, rows: int) -> np.ndarray:
        if np.ndim(value):
            return np.asarray(value)
        # (Strings as Python objects: a fixed-width numpy string column is slow in pandas.)
        return np.repeat(np.asarray(value, dtype=object if isinstance(value, str) else None),
                         rows)

    return pd.DataFrame({name: np.concatenate([repeated(values[name], rows)
                                               for rows, values in parts])
                         for name in parts[0][1]})


def build_benchmarks(pub: duckdb.DuckDBPyConnection, target_rule: str = "peer_q3",
                     k: int = 10, source: str = "cells",
                     waves: list[int] | None = None) -> dict:
    """Write every comparison table into the published file; return every site x
    measure x wave whose verdict is not "in line", and how many funnels compared sites.

    `source` names the relation holding the published cells: the file's table, or the
    same rows registered on `pub` (Arrow) while the table is still being written.
    `waves`: write the rows of these waves only (a run's open waves; None: every wave).
    The other waves' cells in `source` (frozen waves, held as published) serve only as
    the previous wave of trends and question benchmarks; their own comparison rows are
    held as published, not written here. Every comparison but those two is within a
    wave, so each row written is the one a run of every wave would write.
    """
    # The tables built in pandas use shown cells of compared kinds only (items for
    # `benchmarks`): unit totals, and the sites' staff groups for the weighting. DuckDB
    # filters the 800k-row layer and hands pandas only those, and only the columns used.
    # Earlier waves give only their unit totals (last year's values).
    scoped = "true" if waves is None else wave_list_sql(waves)
    cells = query_frame(pub, f"""
        select {', '.join(BENCHMARKED_COLUMNS)} from {source}
        where not suppressed and measure_kind in (?, ?, ?)
          and (breakdown = 'all' or ({scoped} and level = 'site'
                                     and breakdown = 'staff_group'))""",
                        [*COMPARED_KINDS, "item"])
    headcounts = query_frame(pub, "select * from site_headcounts")
    # The rest filter unit totals out of the cells again and again, which is quicker
    # from the totals alone.
    every_total = cells[(cells["breakdown"] == "all").to_numpy()]
    if waves is not None:
        current = cells["wave"].isin(list(waves)).to_numpy()
        cells, totals = cells[current], every_total[every_total["wave"].isin(list(waves))]
    else:
        totals = every_total
    compare = SiteComparisons()
    tables = {"benchmarks": benchmark_table(totals, compare)}
    params, funnel_rows = funnel_tables(totals, compare)
    published_waves = [int(w) for (w,) in pub.sql(
        f"select distinct wave from {source} order by wave").fetchall()]
    tables["item_benchmarks"] = item_benchmark_table(every_total, published_waves,
                                                     compare_with_others, waves)
    tables |= {"funnel_params": params, "funnel": funnel_rows,
               "shrunken": shrunken_table(totals, params) if len(params) else pd.DataFrame(),
               "trends": trend_table(every_total, waves),
               "principle_gaps": principle_gap_table(totals, target_rule),
               "weighted": weighted_table(cells, headcounts, k)}
    for name, frame in tables.items():
        write_table(pub, name, with_columns(frame, MAY_BE_EMPTY.get(name, {})))
    rows = {name: len(frame) for name, frame in tables.items()}
    rows["equity"] = write_equity_table(pub, source, waves)
    noted = (funnel_rows[funnel_rows["verdict"] != VERDICTS[2]] if len(funnel_rows)
             else funnel_rows)
    return {"site_verdicts": noted[["wave", "site_code", "measure_kind", "measure", "verdict",
                                    "z", "mean", "others_mean"]].to_dict("records")
            if len(noted) else [],
            "funnels_compared": int((params["sites"] > MIN_OTHER_SITES).sum()) if len(params)
            else 0,
            "rows": rows}
