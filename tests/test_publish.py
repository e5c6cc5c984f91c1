"""The published layer of the sample: contents, statistics, comparisons and actions."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipeline.ingest.files import ingest_file
from pipeline.psychometrics.stage import run_psychometrics
from pipeline.publish.writer import publish
from pipeline.store import add_wave, open_store
from stats.outliers import random_effects
from stats.verdicts import FEW_SITES_Z
from survey.settings import Settings
from survey.synthetic import SiteSpec, generate_responses
from tests.conftest import culture

K = 10
EXPECTED_TABLES = {"actions", "benchmarks", "cells", "data_quality", "equity", "funnel",
                   "funnel_params", "groups", "icc", "item_benchmarks", "measures", "meta",
                   "principle_gaps",
                   "reliability", "shrunken", "site_agreement", "site_headcounts", "sites",
                   "trends", "validation", "weighted", "item_answers", "drivers"}


def read(settings, sql, params=()):
    with duckdb.connect(str(settings.published_path), read_only=True) as con:
        return con.execute(sql, list(params)).df()


def test_published_file_holds_aggregates_only(published_sample):
    settings, report = published_sample
    tables = set(read(settings, "show tables")["name"])
    assert tables == EXPECTED_TABLES
    columns = read(settings, "select table_name, column_name from information_schema.columns")
    assert not columns["column_name"].isin(["response_id", "source_row", "duration_seconds",
                                            "submitted_on", "batch_id"]).any()
    assert report.verification.problems == []
    validation = read(settings, "select * from validation")
    assert {"CFA: CFI", "CFA: RMSEA", "KMO sampling adequacy", "Measurement invariance"} <= set(
        validation["check"]) and validation["verdict"].ne("").all()
    items = read(settings, "select pct_favourable, pct_unfavourable from cells "
                                            "where measure_kind = 'item' and not suppressed")
    assert ((items["pct_favourable"] + items["pct_unfavourable"]) <= 100 + 1e-9).all()
    assert items["pct_unfavourable"].gt(0).any()
    cells = read(settings, "select * from cells")
    hidden = cells[cells["suppressed"]]
    assert hidden[["n", "mean", "sd", "pct_favourable"]].isna().all().all()
    assert (cells.loc[~cells["suppressed"], "n"] >= K).all()


def test_cell_statistics_equal_a_direct_computation(published_sample):
    settings, _ = published_sample
    with open_store(settings.db_path, read_only=True) as con:
        scores = con.execute("select score, n_favourable, n_answered from scale_scores "
                             "where site_code = 'A' and wave = 2026 and scale_id = 'psysafety' "
                             "and score is not null").df()
    cell = read(settings, "select * from cells where level = 'site' and unit = 'A' and "
                          "wave = 2026 and measure = 'psysafety' and breakdown = 'all'").iloc[0]
    from scipy import stats
    n = len(scores)
    assert cell["n"] == n
    assert cell["mean"] == pytest.approx(scores["score"].mean(), abs=1e-12)
    assert cell["sd"] == pytest.approx(scores["score"].std(ddof=1), abs=1e-12)
    half = stats.t.ppf(0.975, n - 1) * scores["score"].std(ddof=1) / np.sqrt(n)
    assert cell["ci_high"] == pytest.approx(scores["score"].mean() + half, abs=1e-12)
    assert cell["mean_0_10"] == pytest.approx((scores["score"].mean() - 1) * 2.5, abs=1e-12)
    assert cell["pct_favourable"] == pytest.approx(
        100 * scores["n_favourable"].sum() / scores["n_answered"].sum(), abs=1e-12)


def test_the_difference_from_the_peer_group_is_from_what_the_other_sites_achieve(
        published_sample):
    """D against the other acute trusts (A, F, G): its mean less their random-effects
    mean, with the few-site rule's limits on them for a site of D's size, all recomputed
    from the respondents' scale scores."""
    settings, _ = published_sample
    row = read(settings, "select * from benchmarks where site_code = 'D' and wave = 2026 "
                         "and measure = 'psysafety'").iloc[0]
    with open_store(settings.db_path, read_only=True) as con:
        peers = con.execute("""
            select s.site_code, count(*) as n, avg(score) as mean, stddev_samp(score) as sd
            from scale_scores s join sites using (site_code)
            where site_type = 'acute_trust' and wave = 2026 and scale_id = 'psysafety'
              and score is not null group by s.site_code order by s.site_code""").df()
    others, own = peers[peers.site_code != "D"], peers[peers.site_code == "D"].iloc[0]
    model = random_effects(others["mean"], others["sd"] ** 2 / others["n"], "REML")
    half = FEW_SITES_Z * np.sqrt(model.tau2 + model.se ** 2 + own["sd"] ** 2 / own["n"])
    assert row["others_in_peer"] == 3 and pd.isna(row["diff_vs_peer_note"])
    assert [row["diff_vs_peer"], row["diff_vs_peer_low"], row["diff_vs_peer_high"]] == \
        pytest.approx([own["mean"] - model.mu, own["mean"] - model.mu - half,
                       own["mean"] - model.mu + half], abs=1e-9)
    means = read(settings, "select mean from cells where level = 'site' and wave = 2026 and "
                           "measure = 'psysafety' and breakdown = 'all' and peer_group = "
                           "'acute_trust' and not suppressed")["mean"]
    assert row["peer_median"] == pytest.approx(means.median())
    assert row["peer_worst"] == pytest.approx(means.min()) == pytest.approx(row["mean"])


def test_planted_low_site_reads_clearly_below_and_ranks_last_in_the_sample(published_sample):
    """D, planted low on psychological safety, has the lowest mean, the last shrunken
    rank and the verdict 'clearly below' the other sites in every wave."""
    settings, _ = published_sample
    funnel = read(settings, "select * from funnel where measure = 'psysafety'")
    shrunken = read(settings, "select * from shrunken where measure = 'psysafety'")
    for wave, block in funnel.groupby("wave"):
        assert block.loc[block["mean"].idxmin(), "site_code"] == "D"
        ranks = shrunken[shrunken.wave == wave].set_index("site_code")["rank"]
        assert ranks["D"] == ranks.max() == len(ranks)
    assert list(funnel[funnel.site_code == "D"].sort_values("wave")["verdict"]) == [
        "clearly below"] * 3


def test_principle_gaps_are_ordered_and_carry_actions(published_sample):
    settings, _ = published_sample
    gaps = read(settings, "select * from principle_gaps")
    for (_wave, _site), block in gaps.groupby(["wave", "site_code"]):
        assert sorted(block["priority"]) == list(range(1, len(block) + 1))
        ordered = block.sort_values("priority")["gap_low"].to_numpy()
        assert (np.diff(ordered) <= 1e-12).all()
    np.testing.assert_allclose(gaps["gap"], gaps["target"] - gaps["score"])
    acute = gaps[(gaps.peer_group == "acute_trust") & (gaps.wave == 2026)
                 & (gaps.principle == "P2")]
    # Four acute trusts: each one's target is the upper quartile of the other three.
    assert len(acute) == 4
    for site, row in acute.set_index("site_code").iterrows():
        others = acute[acute.site_code != site]["score"]
        assert row["target"] == pytest.approx(others.quantile(0.75)), site
    assert set(acute["target_basis"]) == {"peer group upper quartile, site itself left out"}
    # Two support units only: their target falls back to all sites, and says so.
    psu = gaps[gaps.peer_group == "professional_support_unit"]
    assert psu["target_basis"].str.startswith("all sites upper quartile").all()
    certain = gaps[gaps.certainty == "clear gap"]
    assert (certain["gap_low"] > 0).all() and len(certain) > 0
    actions = read(settings, "select * from actions")
    assert set(actions["principle"]) == {f"P{i}" for i in range(1, 7)}
    assert actions.groupby("principle").size().min() >= 3


def test_equity_finds_the_planted_gaps_nationally(published_sample):
    settings, _ = published_sample
    equity = read(settings, "select * from equity where level = 'national' and "
                            "measure = 'pathways'")
    led = equity[(equity.breakdown == "staff_group") & (equity.grp == "locally_employed")]
    assert len(led) == 3 and set(led["flag"]) == {"lower"}
    img = equity[(equity.breakdown == "pmq") & (equity.grp == "rest_of_world")]
    assert set(img["flag"]) == {"lower"} and (img["diff_high"] < 0).all()
    assert (equity["n_rest"] >= K).all()


def test_trends_compare_consecutive_shown_waves(published_sample):
    settings, _ = published_sample
    trends = read(settings, "select * from trends where level = 'site'")
    assert set(trends["wave"]) == {2025, 2026}
    np.testing.assert_allclose(trends["change"], trends["mean"] - trends["mean_previous"])
    assert set(trends["flag"]) <= {"improved", "declined", "no clear change"}


def test_reliability_published_only_for_shown_site_cells(published_sample):
    settings, _ = published_sample
    rel = read(settings, "select * from reliability where level = 'site_wave'")
    cells = read(settings, "select unit, wave, measure from cells where level = 'site' and "
                           "breakdown = 'all' and measure_kind = 'scale' and not suppressed")
    shown = set(zip(cells.unit, cells.wave, cells.measure))
    assert set(zip(rel.site_code, rel.wave, rel.scale)) <= shown
    assert (rel["n"] >= K).all() and rel["alpha"].between(0, 1).all()


def test_planted_outliers_flagged_among_many_generated_sites(tmp_path, instrument,
                                                             definition_yaml):
    """36 sites, one wave; two planted outliers (latent shift of 2 respondent SDs, about
    six site-effect SDs) read 'clearly' below / above; the other 34 sites no more often
    than the nominal 5%."""
    sites = [SiteSpec(f"S{i:02d}", f"Site {i:02d}", "acute_trust", "London", 150)
             for i in range(36)]
    outliers = [("S03", "psysafety", -1), ("S17", "pathways", +1)]
    table, _ = generate_responses(instrument, sites, [2026], 99, outliers, outlier_shift=2.0)
    pq.write_table(table, tmp_path / "responses.parquet")
    store = tmp_path / "store.duckdb"
    settings = Settings(db_path=store)
    with open_store(store) as con:
        con.executemany("insert into sites (site_code, name, site_type, region) "
                        "values (?, ?, ?, ?)",
                        [(s.code, s.name, s.site_type, s.region) for s in sites])
        add_wave(con, 2026)
        ingest_file(con, tmp_path / "responses.parquet", instrument, definition_yaml)
        psychometrics = run_psychometrics(con, instrument, settings)
        report = publish(con, instrument, settings, psychometrics)
    verdicts = pd.DataFrame(report.site_verdicts)
    scales = verdicts[(verdicts.measure_kind == "scale")
                      & verdicts.verdict.str.startswith("clearly")]
    assert {("S03", "psysafety", "clearly below"), ("S17", "pathways", "clearly above")} <= set(
        zip(scales.site_code, scales.measure, scales.verdict))
    # 34 sites x 8 scales = 272 in-control comparisons; the many-site rule keeps the
    # share of wrong flags near 5%, so a handful at most (three SDs above 5% of 272).
    false_flags = scales[~scales.site_code.isin(["S03", "S17"])]
    assert len(false_flags) <= 272 * 0.05 + 3 * np.sqrt(272 * 0.05 * 0.95)


def test_run_command_rejects_an_unknown_target(tmp_path):
    run = culture("run", "--db", tmp_path / "x.duckdb", "--target", "best")
    assert run.exit_code == 1
    assert run.stderr.startswith("error: target rule 'best' is not known; use one of peer_q3")
    assert not (tmp_path / "x.duckdb").exists()


def test_item_answer_shares_equal_a_direct_count(published_sample, instrument):
    settings, _ = published_sample
    item = next(i for i in instrument.items if i.reverse and i.response_scale == "agree5")
    with open_store(settings.db_path, read_only=True) as con:
        answers = con.execute(f"select {item.id} from responses where site_code = 'A' and "
                              f"wave = 2026 and {item.id} between 1 and 5").df()[item.id]
    keyed = 6 - answers  # reverse-keyed: agreeing is unfavourable
    cell = read(settings, "select * from cells where level = 'site' and unit = 'A' and wave = "
                          "2026 and measure = ? and breakdown = 'all'", [item.id]).iloc[0]
    assert cell["n"] == len(answers)
    assert cell["pct_favourable"] == pytest.approx(100 * (keyed >= 4).mean(), abs=1e-12)
    assert cell["pct_unfavourable"] == pytest.approx(100 * (keyed <= 2).mean(), abs=1e-12)


# --- counts outside the cells (issue 18): headcounts and data-quality flags ------------------

def test_headcounts_name_no_group_below_k_and_still_add_up(published_sample):
    settings, _ = published_sample
    with open_store(settings.db_path, read_only=True) as con:
        true = con.execute("select site_code, staff_group, headcount from site_headcounts"
                           ).df()
    shown = read(settings, "select site_code, staff_group, headcount from site_headcounts")
    # The sample has 15 groups of 2-9 staff; none is named, no row is below K.
    small = true[(true["headcount"] > 0) & (true["headcount"] < K)]
    assert len(small) == 15
    assert shown["headcount"].min() >= K
    named = set(zip(shown["site_code"], shown["staff_group"]))
    assert not named & set(zip(small["site_code"], small["staff_group"]))
    assert not shown.duplicated(["site_code", "staff_group"]).any()
    # Site A: gp (5) alone is below K, so the next smallest group (gp_resident, 11) joins
    # the pool; site C pools consultant 7, locally employed 8, gp 3 and non-medical 3.
    pools = dict(shown.loc[shown["staff_group"] == "pooled", ["site_code", "headcount"]]
                 .itertuples(index=False))
    assert pools["A"] == 5 + 11 and pools["C"] == 7 + 8 + 3 + 3
    assert ("A", "gp_resident") not in named and ("A", "resident") in named
    # Every site's rows still add up to its staff in post: response rates stay right.
    assert (shown.groupby("site_code")["headcount"].sum().to_dict()
            == true.groupby("site_code")["headcount"].sum().to_dict())


def test_response_rates_shown_use_the_true_headcount(published_sample):
    from dashboard.data import PublishedData

    settings, _ = published_sample
    with open_store(settings.db_path, read_only=True) as con:
        total = con.execute("select sum(headcount) from site_headcounts where site_code = 'C'"
                            ).fetchone()[0]
    shown = PublishedData(settings.published_path).responses("C", 2026)
    assert shown["headcount"] == total
    assert shown["rate"] == pytest.approx(100 * shown["n"] / total)


#: Which count is a subset of which: the attacker's differences in data_quality.
CONTAINS = {"n_respondents": ["n_flagged", "n_straight_lining", "n_speeding", "n_duplicate"],
            "n_flagged": ["n_straight_lining", "n_speeding", "n_duplicate"]}


def test_no_difference_of_shown_flag_counts_reveals_a_small_group(published_sample):
    settings, _ = published_sample
    quality = read(settings, """
        select q.*, c.n as analysed from data_quality q join cells c
          on c.level = 'site' and c.unit = q.site_code and c.wave = q.wave
         and c.breakdown = 'all' and c.measure_kind = 'responses'""")
    assert len(quality) > 10
    with open_store(settings.db_path, read_only=True) as con:
        true = {(s, w): counts for s, w, *counts in con.execute(
            "select site_code, wave, count(*), count(*) filter (where straight_lining), "
            "count(*) filter (where speeding), count(*) filter (where duplicate), "
            "count(*) filter (where flagged) from response_flags group by all").fetchall()}
    # Site A 2026 had 15 flagged and 13 speeding shown: 2 flagged for something else.
    assert (true[("A", 2026)][4], true[("A", 2026)][2]) == (15, 13)
    columns = ["n_respondents", "n_straight_lining", "n_speeding", "n_duplicate", "n_flagged"]
    differences = 0
    for row in quality.itertuples(index=False):
        row = row._asdict()
        for column, value in zip(columns, true[(row["site_code"], row["wave"])]):
            assert pd.isna(row[column]) or (row[column] == value and value >= K)
        # The analysed count (cells) includes everyone: it is the respondents.
        known = {c: row[c] for c in columns if not pd.isna(row[c])} | {
            "n_respondents": row["analysed"]}
        for whole, parts in CONTAINS.items():
            for part in parts:
                if whole in known and part in known:
                    differences += 1
                    assert not 0 < known[whole] - known[part] < K, (row, whole, part)
    assert differences > 0
    a_2026 = quality[(quality["site_code"] == "A") & (quality["wave"] == 2026)].iloc[0]
    assert pd.isna(a_2026["n_flagged"]) or pd.isna(a_2026["n_speeding"])
