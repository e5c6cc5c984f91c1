"""Headcount weighting: the cap, and weighted means equal to weighting each respondent."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.store import open_store
from stats.weighting import capped_shares, weighted_table
from tests.test_publish import read


def test_cap_reshares_what_a_capped_class_gives_up_by_target():
    shares, capped = capped_shares(np.array([0.5, 0.3, 0.2]), np.array([0.1, 0.45, 0.45]),
                                   cap=3.0)
    # class 0 would count 5x; capped at 3 x 0.1, the other 0.7 split 3:2
    assert shares == pytest.approx([0.3, 0.42, 0.28], abs=1e-12)
    assert capped.tolist() == [True, False, False]
    same, none = capped_shares(np.array([2, 3, 5]), np.array([0.2, 0.3, 0.5]))
    assert same == pytest.approx([0.2, 0.3, 0.5]) and not none.any()


def test_weighted_mean_equals_weighting_every_respondent(published_sample):
    settings, _ = published_sample
    site, wave, scale = "A", 2026, "psysafety"
    with open_store(settings.db_path, read_only=True) as con:
        people = con.execute(
            "select s.score, coalesce(nullif(r.staff_group, 'prefer_not_to_say'), "
            "'not_stated') as grp from scale_scores s join responses r using (site_code, wave, "
            "response_id) where s.site_code = ? and s.wave = ? and s.scale_id = ? and "
            "s.score is not null", [site, wave, scale]).df()
        heads = dict(con.execute("select staff_group, headcount from site_headcounts where "
                                 "site_code = ?", [site]).fetchall())
    shown = read(settings, "select grp from cells where level = 'site' and unit = 'A' and "
                           "wave = 2026 and measure = 'psysafety' and breakdown = 'staff_group' "
                           "and not suppressed and grp <> 'not_stated'")["grp"].tolist()
    row = read(settings, "select * from weighted where site_code = 'A' and wave = 2026 and "
                         "measure = 'psysafety'").iloc[0]
    # classes: each shown group with a headcount; "not stated" (shown at A) on its own at
    # its own share; everyone else pooled, with the headcount the shown groups leave
    assert "not_stated" in set(read(settings, "select grp from cells where level = 'site' "
                                    "and unit = 'A' and wave = 2026 and measure = 'psysafety' "
                                    "and not suppressed")["grp"])
    people["cls"] = people["grp"].where(people["grp"].isin(
        [g for g in shown if heads.get(g, 0) > 0] + ["not_stated"]), "pool")
    sample = people["cls"].value_counts(normalize=True)
    total_heads = sum(heads.values())
    stated = 1 - sample["not_stated"]
    target = {g: stated * heads[g] / total_heads for g in people["cls"].unique()
              if g not in ("pool", "not_stated")}
    target["pool"] = stated - sum(target.values())
    target["not_stated"] = sample["not_stated"]
    largest_factor = max(target[c] / sample[c] for c in sample.index)
    assert largest_factor <= 3  # so the cap does not bind and plain weights apply
    people["w"] = people["cls"].map(lambda c: target[c] / sample[c])
    expected = float((people["w"] * people["score"]).sum() / people["w"].sum())
    assert row["weighted_mean"] == pytest.approx(expected, abs=1e-9)
    assert row["n"] == len(people) and row["classes"] == len(target)
    assert row["respondents_pooled"] == int((people["cls"] == "pool").sum())
    assert row["respondents_pooled"] == 0 or row["respondents_pooled"] >= 10
    kish = len(people) * (people["w"] ** 2).sum() / people["w"].sum() ** 2
    assert row["design_effect"] == pytest.approx(kish, abs=1e-9)
    assert row["weighted_mean"] != pytest.approx(row["mean"], abs=1e-6)


def _weighted_one_site(total, shown, site_heads, k, cap=3.0, blank=None):
    """The method for one site x wave x measure, written out plainly as the reference.

    `blank`: the shown "not stated" cell, or None when it is hidden."""
    shown = shown[shown["grp"].map(site_heads).fillna(0) > 0]
    visible = shown if blank is None else pd.concat([shown, blank.to_frame().T])
    n_total = float(total["n"])
    n_pool = n_total - visible["n"].sum()
    if 0 < n_pool < k:
        return None
    s1 = n_total * total["mean"] - (visible["n"] * visible["mean"]).sum()
    s2 = ((n_total - 1) * total["sd"] ** 2 + n_total * total["mean"] ** 2
          - ((visible["n"] - 1) * visible["sd"] ** 2 + visible["n"] * visible["mean"] ** 2
             ).sum())
    n_c, mean_c, sd_c = (list(shown[c].astype(float)) for c in ("n", "mean", "sd"))
    targets = list(shown["grp"].map(site_heads) / sum(site_heads.values()))
    fixed = [False] * len(targets)
    pool_target = max(0.0, 1.0 - sum(targets))
    if n_pool > 0:
        pool_mean = s1 / n_pool
        n_c.append(n_pool)
        mean_c.append(pool_mean)
        sd_c.append(np.sqrt(max((s2 - n_pool * pool_mean ** 2) / (n_pool - 1), 0.0)))
        targets.append(pool_target)
        fixed.append(blank is None)      # holds the hidden "not stated": no headcount fits
    if blank is not None:
        n_c.append(float(blank["n"]))
        mean_c.append(float(blank["mean"]))
        sd_c.append(float(blank["sd"]))
        targets.append(0.0)
        fixed.append(True)
    n_c, mean_c, sd_c = map(np.array, (n_c, mean_c, sd_c))
    sample = n_c / n_total
    shares, capped = capped_shares(np.array(targets), sample, cap, np.array(fixed))
    se = np.sqrt(np.sum(shares ** 2 * sd_c ** 2 / n_c))
    return {"weighted_mean": np.sum(shares * mean_c), "weighted_se": se,
            "classes": len(n_c), "classes_capped": int(capped.sum()),
            "respondents_pooled": int(n_pool),
            "design_effect": np.sum(sample * (shares / sample) ** 2)}


def _simulated_cells(seed: int, k: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Site cells from simulated respondents: totals, staff groups (hidden below k)."""
    rng = np.random.default_rng(seed)
    staff = ["consultant", "resident", "foundation", "sas", "not_stated"]
    rows, heads = [], []
    for site in ["S1", "S2", "S3", "S4", "S5"]:
        mix = rng.dirichlet(np.ones(len(staff)) * (0.4 if site == "S2" else 3))
        for wave in (2025, 2026):
            for measure in ("psysafety", "workload"):
                size = int(rng.integers(40, 400))
                grp = rng.choice(staff, size, p=mix)
                score = rng.normal(3 + 0.3 * (grp == "consultant"), 0.8)
                cell = {"wave": wave, "level": "site", "unit": site, "peer_group": "acute",
                        "measure_kind": "scale", "measure": measure}
                rows.append(cell | {"breakdown": "all", "grp": "all", "n": size,
                                    "mean": score.mean(), "sd": score.std(ddof=1),
                                    "suppressed": False})
                for g in staff:
                    mine = score[grp == g]
                    rows.append(cell | {"breakdown": "staff_group", "grp": g, "n": len(mine),
                                        "mean": mine.mean() if len(mine) else np.nan,
                                        "sd": mine.std(ddof=1) if len(mine) > 1 else np.nan,
                                        "suppressed": len(mine) < k})
        if site != "S5":  # S5 has no headcounts, so it gets no weighted row
            # S2: consultants far more numerous than they answer, so the cap binds;
            # S3: no foundation doctors on the books, so they join the pooled class
            heads += [{"site_code": site, "staff_group": g,
                       "headcount": 0 if (site, g) == ("S3", "foundation") else
                       int(rng.integers(5, 60)) * (20 if (site, g) == ("S2", "consultant")
                                                   else 1)} for g in staff[:-1]]
    return pd.DataFrame(rows), pd.DataFrame(heads)


@pytest.mark.parametrize("seed", range(4))
def test_weighted_table_matches_the_method_site_by_site(seed):
    k = 10
    cells, headcounts = _simulated_cells(seed, k)
    table = weighted_table(cells, headcounts, k)
    expected, blanks_shown = [], 0
    for (wave, site, measure), cell in cells.groupby(["wave", "unit", "measure"], sort=False):
        if site not in set(headcounts["site_code"]):
            continue
        total = cell[cell["breakdown"] == "all"].iloc[0]
        shown = cell[(cell["breakdown"] == "staff_group") & ~cell["suppressed"]
                     & (cell["grp"] != "not_stated")]
        blank = cell[(cell["breakdown"] == "staff_group") & ~cell["suppressed"]
                     & (cell["grp"] == "not_stated")]
        heads = dict(headcounts.loc[headcounts["site_code"] == site,
                                    ["staff_group", "headcount"]].to_numpy())
        row = _weighted_one_site(total, shown, heads, k,
                                 blank=blank.iloc[0] if len(blank) else None)
        if row is not None:
            blanks_shown += len(blank) > 0
        if row is not None:
            expected.append({"wave": wave, "site_code": site, "measure": measure} | row)
    expected = pd.DataFrame(expected)
    assert len(table) == len(expected) > 0
    assert table[["wave", "site_code", "measure"]].values.tolist() == \
        expected[["wave", "site_code", "measure"]].values.tolist()
    assert table["classes_capped"].sum() > 0  # the cap is exercised
    assert 0 < blanks_shown < len(expected)    # "not stated" both shown and hidden
    for column in ("classes", "classes_capped", "respondents_pooled"):
        assert table[column].tolist() == expected[column].tolist()
    for column in ("weighted_mean", "weighted_se", "design_effect"):
        # the same sums in a different order: agreement to rounding
        np.testing.assert_allclose(table[column], expected[column], rtol=1e-12)


def _hand_cells(blank_shown: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One site, 100 respondents: consultants 30 (mean 4.0), residents 30 (3.0), not
    stated 20 (2.0), SAS 20 (3.0, hidden). Headcounts: consultants 40, residents 40,
    SAS 20."""
    groups = {"consultant": (30, 4.0), "resident": (30, 3.0), "not_stated": (20, 2.0),
              "sas": (20, 3.0)}
    n = sum(size for size, _ in groups.values())
    mean = sum(size * m for size, m in groups.values()) / n
    var = (sum(size - 1 for size, _ in groups.values())
           + sum(size * (m - mean) ** 2 for size, m in groups.values())) / (n - 1)
    cell = {"wave": 2026, "level": "site", "unit": "S1", "peer_group": "acute",
            "measure_kind": "scale", "measure": "psysafety"}
    rows = [cell | {"breakdown": "all", "grp": "all", "n": n, "mean": mean,
                    "sd": np.sqrt(var), "suppressed": False}]
    for grp, (size, m) in groups.items():
        hidden = grp == "sas" or (grp == "not_stated" and not blank_shown)
        rows.append(cell | {"breakdown": "staff_group", "grp": grp, "n": size, "mean": m,
                            "sd": 1.0, "suppressed": hidden})
    heads = pd.DataFrame({"site_code": "S1", "staff_group": ["consultant", "resident", "sas"],
                          "headcount": [40, 40, 20]})
    return pd.DataFrame(rows), heads


@pytest.mark.parametrize("blank_shown, expected, pooled, classes", [
    # "not stated" keeps its own 20%; the stated 80% go 40:40:20 to consultants,
    # residents and the pooled SAS: .32 x 4 + .32 x 3 + .16 x 3 + .2 x 2 = 3.12.
    # (Pooling "not stated" with SAS and giving the pool SAS's 20% made it 3.30.)
    (True, 3.12, 20, 4),
    # Hidden "not stated" is inside the pool (40, mean 2.5), which keeps its 40%; the
    # shown groups share 60% by headcount: .3 x 4 + .3 x 3 + .4 x 2.5 = 3.10.
    (False, 3.10, 40, 3),
])
def test_not_stated_keeps_its_own_share_and_takes_no_group_s_headcount(
        blank_shown, expected, pooled, classes):
    cells, heads = _hand_cells(blank_shown)
    row = weighted_table(cells, heads, k=10).iloc[0]
    assert row["weighted_mean"] == pytest.approx(expected, abs=1e-12)
    assert (row["respondents_pooled"], row["classes"], row["classes_capped"]) == (
        pooled, classes, 0)
