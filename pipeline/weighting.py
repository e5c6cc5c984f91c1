"""Site means weighted to the site's staff-group mix (NHS Staff Survey style, capped).

Respondents rarely mirror a site's workforce: residents may answer in droves while
consultants do not. Weighting gives each staff group its share of the site's headcount
instead of its share of the respondents. It is computed here from published cells
only, which keeps it safe by construction:

    classes   every staff group whose cell is shown (and which has a headcount) is a
              weighting class; everyone else (hidden groups, "not stated", groups with
              no headcount) forms one pooled class. The pooled class's n, mean and SD
              are the site total minus the shown groups, which any reader of the
              published cells can work out already, and complementary suppression
              guarantees it is not a group below the threshold. So the weighted mean
              adds no equation that could expose a hidden group.
    targets   t_c = headcount of the class / site headcount; the pooled class takes the
              headcount not covered by shown groups.
    cap       a class's weight factor w_c = t_c / (n_c / N) is capped at WEIGHT_CAP;
              the share a capped class gives up is spread over the uncapped classes in
              proportion to their targets (repeated until no new class hits the cap).
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


def capped_shares(targets: np.ndarray, sample: np.ndarray, cap: float = WEIGHT_CAP
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(final shares t', capped mask): targets re-shared so no t'_c / p_c exceeds `cap`."""
    targets = np.asarray(targets, float) / np.sum(targets)
    sample = np.asarray(sample, float)
    capped = np.zeros(len(targets), bool)
    shares = targets.copy()
    for _ in range(len(targets)):
        limit = cap * sample
        newly = ~capped & (shares > limit + 1e-12)
        if not newly.any():
            break
        capped |= newly
        free = 1.0 - np.sum(limit[capped])
        uncapped_target = np.sum(targets[~capped])
        shares = np.where(capped, limit, targets / uncapped_target * free
                          if uncapped_target > 0 else 0.0)
    return shares, capped


def weighted_table(cells: pd.DataFrame, headcounts: pd.DataFrame, k: int,
                   cap: float = WEIGHT_CAP) -> pd.DataFrame:
    """Weighted site means per site x wave x scale / principle (see the module notes)."""
    if headcounts.empty:
        return pd.DataFrame()
    heads = headcounts.groupby(["site_code", "staff_group"])["headcount"].sum()
    site_level = cells[(cells["level"] == "site") & cells["measure_kind"].isin(WEIGHTED_KINDS)]
    totals = site_level[(site_level["breakdown"] == "all") & ~site_level["suppressed"]]
    groups = site_level[(site_level["breakdown"] == "staff_group") & ~site_level["suppressed"]
                        & (site_level["grp"] != "not_stated")]
    groups_by = {key: frame for key, frame in groups.groupby(["wave", "unit", "measure_kind",
                                                              "measure"])}
    rows = []
    for total in totals.itertuples(index=False):
        if total.unit not in heads.index.get_level_values(0):
            continue
        site_heads = heads.loc[total.unit]
        head_total = float(site_heads.sum())
        shown = groups_by.get((total.wave, total.unit, total.measure_kind, total.measure))
        shown = shown[shown["grp"].map(site_heads).fillna(0) > 0] if shown is not None \
            else pd.DataFrame(columns=["grp", "n", "mean", "sd"])
        n_total, n_shown = float(total.n), float(shown["n"].sum())
        s1 = n_total * total.mean - float((shown["n"] * shown["mean"]).sum())
        s2 = ((n_total - 1) * total.sd ** 2 + n_total * total.mean ** 2
              - float(((shown["n"] - 1) * shown["sd"] ** 2 + shown["n"] * shown["mean"] ** 2
                       ).sum()))
        n_pool = n_total - n_shown
        if 0 < n_pool < k:
            continue  # cannot happen after complementary suppression; never publish it
        class_n = list(shown["n"].astype(float))
        class_mean = list(shown["mean"].astype(float))
        class_sd = list(shown["sd"].astype(float))
        targets = list(shown["grp"].map(site_heads).astype(float) / head_total)
        pool_target = max(0.0, 1.0 - sum(targets))
        if n_pool > 0:
            pool_mean = s1 / n_pool
            pool_var = (s2 - n_pool * pool_mean ** 2) / (n_pool - 1) if n_pool > 1 else 0.0
            class_n.append(n_pool)
            class_mean.append(pool_mean)
            class_sd.append(float(np.sqrt(max(pool_var, 0.0))))
            targets.append(pool_target)
        if not class_n or sum(targets) <= 0:
            continue
        n_c, mean_c, sd_c = map(np.array, (class_n, class_mean, class_sd))
        sample = n_c / n_total
        shares, capped = capped_shares(np.array(targets), sample, cap)
        weights = shares / sample
        mean = float(np.sum(shares * mean_c))
        se = float(np.sqrt(np.sum(shares ** 2 * sd_c ** 2 / n_c)))
        rows.append({"wave": total.wave, "site_code": total.unit,
                     "peer_group": total.peer_group, "measure_kind": total.measure_kind,
                     "measure": total.measure, "n": int(total.n), "mean": total.mean,
                     "weighted_mean": mean, "weighted_se": se,
                     "weighted_ci_low": mean - 1.96 * se, "weighted_ci_high": mean + 1.96 * se,
                     "classes": len(n_c), "classes_capped": int(capped.sum()),
                     "respondents_pooled": int(n_pool),
                     "design_effect": float(np.sum(sample * weights ** 2))})
    return pd.DataFrame(rows)
