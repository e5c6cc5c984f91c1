"""Headcount weighting: the cap, and weighted means equal to weighting each respondent."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.store import open_store
from pipeline.weighting import capped_shares
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
    # classes: each shown group with a headcount; everyone else pooled
    people["cls"] = people["grp"].where(people["grp"].isin(
        [g for g in shown if heads.get(g, 0) > 0]), "pool")
    total_heads = sum(heads.values())
    target = {g: heads[g] / total_heads for g in people["cls"].unique() if g != "pool"}
    target["pool"] = 1 - sum(target.values())
    sample = people["cls"].value_counts(normalize=True)
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
