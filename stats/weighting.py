"""Site means weighted to the site's staff-group mix (NHS Staff Survey style, capped).

Respondents rarely mirror a site's workforce: residents may answer in droves while
consultants do not. Weighting gives each staff group its share of the site's headcount
instead of its share of the respondents. It is computed here from published cells
only, which keeps it safe by construction:

    classes   every staff group whose cell is shown (and which has a headcount) is a
              weighting class; "not stated", when its cell is shown, is a class of its
              own; everyone else (hidden groups, groups with no headcount, and "not
              stated" when its cell is hidden) forms one pooled class. The pooled
              class's n, mean and SD are the site total minus the shown cells, which any
              reader of the published cells can work out already, and complementary
              suppression guarantees it is not a group below the threshold. So the
              weighted mean adds no equation that could expose a hidden group.
    targets   "Not stated" respondents belong to no headcount, so they keep their own
              share of the respondents (weight 1) and are never given another group's
              headcount share: t_ns = n_ns / N. The staff-group classes share the rest,
              1 - t_ns, in proportion to their headcounts; the pooled class takes the
              headcount not covered by shown groups when "not stated" is shown (so the
              pool holds stated groups only). When the "not stated" cell is hidden its
              respondents are somewhere in the pool, which then cannot be tied to a
              headcount either: the pool keeps its own share (weight 1) and the shown
              groups share the rest by their headcounts.
    cap       a class's weight factor w_c = t_c / (n_c / N) is capped at WEIGHT_CAP;
              the share a capped class gives up is spread over the uncapped classes
              (not those fixed at their own share) in proportion to their targets
              (repeated until no new class hits the cap).
    estimate  weighted mean = sum_c t'_c * mean_c; SE = sqrt(sum_c t'_c^2 * sd_c^2 / n_c)
              (classes treated as strata); 95% CI mean +/- 1.96 SE; Kish design effect
              sum_c p_c * w_c^2 with p_c = n_c / N.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Largest factor by which one respondent's answers may count (the NHS Staff Survey
#: caps weights too; 3 keeps the design effect of a lopsided response modest).
WEIGHT_CAP = 3.0
WEIGHTED_KINDS = ("scale", "principle")


def capped_shares(targets: np.ndarray, sample: np.ndarray, cap: float = WEIGHT_CAP,
                  fixed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(final shares t', capped mask): targets re-shared so no t'_c / p_c exceeds `cap`;
    classes in `fixed` keep their sample share p_c and the others share the rest."""
    shares, capped = capped_shares_by_row(
        np.asarray(targets, float)[None, :], np.asarray(sample, float)[None, :], cap,
        None if fixed is None else np.asarray(fixed, bool)[None, :])
    return shares[0], capped[0]


def capped_shares_by_row(targets: np.ndarray, sample: np.ndarray, cap: float = WEIGHT_CAP,
                         fixed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`capped_shares` for many sites at once: one row of classes per site x measure.

    A row may end in classes with target 0 and sample 0 (padding for sites with fewer
    classes): such a class is never capped and adds nothing to any sum. Classes in
    `fixed` (respondents who belong to no headcount) keep their sample share; the other
    classes' targets are scaled to the share left over. Each round caps, in every row at
    once, the classes whose share is over the cap and re-shares the rest; a row where no
    new class hits the cap keeps its shares, as the one-site loop stops.
    """
    sample = np.asarray(sample, float)
    fixed = np.zeros(sample.shape, bool) if fixed is None else np.asarray(fixed, bool)
    budget = 1.0 - np.sum(np.where(fixed, sample, 0.0), axis=1, keepdims=True)
    targets = np.where(fixed, 0.0, np.asarray(targets, float))
    targets = targets / np.sum(targets, axis=1, keepdims=True) * budget
    capped = np.zeros(targets.shape, bool)
    shares = targets.copy()
    limit = cap * sample
    for _ in range(targets.shape[1]):
        newly = ~capped & ~fixed & (shares > limit + 1e-12)
        changed = newly.any(axis=1)
        if not changed.any():
            break
        capped |= newly
        free = budget - np.sum(np.where(capped, limit, 0.0), axis=1, keepdims=True)
        uncapped_target = np.sum(np.where(capped, 0.0, targets), axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            reshared = np.where(uncapped_target > 0, targets / uncapped_target * free, 0.0)
        shares[changed] = np.where(capped, limit, reshared)[changed]
    return np.where(fixed, sample, shares), capped


def weighted_table(cells: pd.DataFrame, headcounts: pd.DataFrame, k: int,
                   cap: float = WEIGHT_CAP) -> pd.DataFrame:
    """Weighted site means per site x wave x scale / principle (see the module notes).

    Computed for all site x wave x measure rows at once: the classes of each row sit in
    one row of a small matrix (shown staff groups in the order of the cells, then the
    pooled class, then "not stated" when shown), so the arithmetic is array-wide rather
    than a Python loop per row.
    """
    if headcounts.empty:
        return pd.DataFrame()
    heads = headcounts.groupby(["site_code", "staff_group"], as_index=False)["headcount"].sum()
    head_total = heads.groupby("site_code")["headcount"].sum()
    key = ["wave", "unit", "measure_kind", "measure"]
    site_level = cells[(cells["level"] == "site") & cells["measure_kind"].isin(WEIGHTED_KINDS)
                       & ~cells["suppressed"]]
    totals = site_level[(site_level["breakdown"] == "all")
                        & site_level["unit"].isin(head_total.index)].reset_index(drop=True)
    groups = site_level[(site_level["breakdown"] == "staff_group")
                        & (site_level["grp"] != "not_stated")][key + ["grp", "n", "mean", "sd"]]
    groups = groups.assign(order=np.arange(len(groups))).merge(
        totals[key].assign(row=np.arange(len(totals))), on=key).merge(
        heads.rename(columns={"site_code": "unit", "staff_group": "grp"}), on=["unit", "grp"])
    # a staff group is a class of its own only when it is shown and has a headcount
    groups = groups[groups["headcount"] > 0].sort_values(["row", "order"])
    rows, slot = groups["row"].to_numpy(), groups.groupby("row").cumcount().to_numpy()
    # "not stated" where its cell is shown: a class of its own at its own share
    blank = site_level[(site_level["breakdown"] == "staff_group")
                       & (site_level["grp"] == "not_stated")][key + ["n", "mean", "sd"]]
    blank = totals[key].merge(blank, on=key, how="left")

    count = len(totals)
    n_total = totals["n"].to_numpy(float)
    mean_total, sd_total = totals["mean"].to_numpy(float), totals["sd"].to_numpy(float)
    g_n, g_mean = groups["n"].to_numpy(float), groups["mean"].to_numpy(float)
    g_sd = groups["sd"].to_numpy(float)
    g_target = groups["headcount"].to_numpy(float) / head_total.loc[groups["unit"]].to_numpy(
        float)
    shown = np.bincount(rows, minlength=count)
    n_ns = blank["n"].fillna(0).to_numpy(float)
    mean_ns = blank["mean"].fillna(0).to_numpy(float)
    sd_ns = blank["sd"].fillna(0).to_numpy(float)
    has_ns = n_ns > 0
    # the pooled class: the site total minus its shown cells, from the sums
    n_pool = n_total - np.bincount(rows, g_n, minlength=count) - n_ns
    s1 = n_total * mean_total - np.bincount(rows, g_n * g_mean, minlength=count) - n_ns * mean_ns
    s2 = ((n_total - 1) * sd_total ** 2 + n_total * mean_total ** 2
          - np.bincount(rows, (g_n - 1) * g_sd ** 2 + g_n * g_mean ** 2, minlength=count)
          - np.where(has_ns, (n_ns - 1) * sd_ns ** 2 + n_ns * mean_ns ** 2, 0.0))
    pool_target = np.maximum(0.0, 1.0 - np.bincount(rows, g_target, minlength=count))
    # With "not stated" hidden it is inside the pool, which then fits no headcount.
    pool_fixed = ~has_ns
    has_pool = n_pool > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        pool_mean = s1 / n_pool
        pool_var = np.where(n_pool > 1, (s2 - n_pool * pool_mean ** 2) / (n_pool - 1), 0.0)
    pool_sd = np.sqrt(np.maximum(pool_var, 0.0))
    target_sum = (np.bincount(rows, g_target, minlength=count)
                  + np.where(has_pool & ~pool_fixed, pool_target, 0))
    classes = shown + has_pool + has_ns
    # 0 < n_pool < k cannot happen after complementary suppression; never publish it
    keep = ~((n_pool > 0) & (n_pool < k)) & (classes > 0) & (target_sum > 0)

    width = int(classes.max()) if count else 0
    n_c, mean_c, sd_c, target_c = (np.zeros((count, width)) for _ in range(4))
    fixed_c = np.zeros((count, width), bool)
    for matrix, values in ((n_c, g_n), (mean_c, g_mean), (sd_c, g_sd), (target_c, g_target)):
        matrix[rows, slot] = values
    pooled = np.flatnonzero(has_pool)
    pool_slot = shown[pooled]
    for matrix, values in ((n_c, n_pool), (mean_c, pool_mean), (sd_c, pool_sd),
                           (target_c, pool_target), (fixed_c, pool_fixed)):
        matrix[pooled, pool_slot] = values[pooled]
    blanks = np.flatnonzero(has_ns)
    blank_slot = shown[blanks] + has_pool[blanks]
    for matrix, values in ((n_c, n_ns), (mean_c, mean_ns), (sd_c, sd_ns), (fixed_c, has_ns)):
        matrix[blanks, blank_slot] = values[blanks]

    n_c, mean_c, sd_c, target_c = n_c[keep], mean_c[keep], sd_c[keep], target_c[keep]
    present = n_c > 0
    sample = n_c / n_total[keep, None]
    shares, capped = capped_shares_by_row(target_c, sample, cap, fixed_c[keep])
    with np.errstate(divide="ignore", invalid="ignore"):
        weights = np.where(present, shares / sample, 0.0)
        variance = np.where(present, shares ** 2 * sd_c ** 2 / n_c, 0.0)
    mean = np.sum(shares * mean_c, axis=1)
    se = np.sqrt(np.sum(variance, axis=1))
    kept = totals[keep]
    if not len(kept):
        return pd.DataFrame()
    return pd.DataFrame({
        "wave": kept["wave"].astype("int64").to_numpy(), "site_code": kept["unit"].to_numpy(),
        "peer_group": kept["peer_group"].to_numpy(),
        "measure_kind": kept["measure_kind"].to_numpy(), "measure": kept["measure"].to_numpy(),
        "n": kept["n"].astype("int64").to_numpy(), "mean": kept["mean"].to_numpy(float),
        "weighted_mean": mean, "weighted_se": se,
        "weighted_ci_low": mean - 1.96 * se, "weighted_ci_high": mean + 1.96 * se,
        "classes": classes[keep].astype("int64"),
        "classes_capped": capped.sum(axis=1).astype("int64"),
        "respondents_pooled": n_pool[keep].astype("int64"),
        "design_effect": np.sum(np.where(present, sample * weights ** 2, 0.0), axis=1)})
