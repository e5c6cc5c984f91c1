"""Synthetic data: deterministic, the committed samples are the generator's, the truth is planted."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from pipeline.ingest.files import ingest_file
from pipeline.store import add_wave, load_headcounts_csv, load_sites_csv, open_store
from survey.errors import CultureError
from survey.settings import SAMPLES_DIR
from survey.synthetic import (SAMPLE_OUTLIERS, SAMPLE_SITES, SAMPLE_WAVES, generate_responses,
                              write_national, write_samples)


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


def test_same_seed_same_bytes_and_another_seed_differs(tmp_path):
    write_samples(tmp_path / "one", seed=11)
    write_samples(tmp_path / "two", seed=11)
    write_samples(tmp_path / "three", seed=12)
    assert _digests(tmp_path / "one") == _digests(tmp_path / "two")
    differs = _digests(tmp_path / "three")
    assert differs["responses_clean.csv"] != _digests(tmp_path / "one")["responses_clean.csv"]


def test_committed_samples_are_exactly_what_the_generator_writes(tmp_path):
    write_samples(tmp_path)
    assert _digests(tmp_path) == _digests(SAMPLES_DIR)


def scale_scores(instrument, frame: pd.DataFrame, scale: str) -> pd.Series:
    """Mean of answered items after reverse-keying (9 = don't know is missing)."""
    items = instrument.items_of(scale)
    values = frame[[i.id for i in items]].astype(float).where(lambda x: x != 9)
    for item in items:
        if item.reverse:
            values[item.id] = 6 - values[item.id]
    return values.mean(axis=1, skipna=True)


def icc1(scores: pd.Series, groups: pd.Series) -> float:
    """ICC(1) from a one-way ANOVA with the unequal-group-size n0."""
    data = pd.DataFrame({"y": scores, "g": groups}).dropna()
    sizes = data.groupby("g").size()
    big_n, j = len(data), len(sizes)
    grand = data.y.mean()
    means = data.groupby("g").y.mean()
    msb = (sizes * (means - grand) ** 2).sum() / (j - 1)
    msw = ((data.y - data.g.map(means)) ** 2).sum() / (big_n - j)
    n0 = (big_n - (sizes ** 2).sum() / big_n) / (j - 1)
    return (msb - msw) / (msb + (n0 - 1) * msw)


@pytest.fixture(scope="module")
def larger_set(instrument):
    """40 sites x 2 waves x 150 responses, with one planted low and one high site."""
    from survey.synthetic import SiteSpec

    sites = [SiteSpec(f"S{i:02d}", f"Site {i}", "acute_trust", "London", 150) for i in range(40)]
    table, truth = generate_responses(instrument, sites, [2025, 2026], seed=5,
                                      outliers=[("S03", "psysafety", -1), ("S07", "pathways", 1)])
    return table.to_pandas(), truth


def test_site_icc_of_core_scales_is_in_the_planted_range(instrument, larger_set):
    frame, truth = larger_set
    assert truth["intended_site_icc"] == pytest.approx(0.098, abs=1e-3)
    for scale in ("stigma", "psysafety", "pathways"):
        value = icc1(scale_scores(instrument, frame, scale), frame.site)
        assert 0.03 <= value <= 0.25, (scale, value)


def test_outlier_sites_sit_where_the_manifest_says(instrument, larger_set):
    frame, truth = larger_set
    for outlier in truth["outliers"]:
        scores = scale_scores(instrument, frame, outlier["scale"])
        by_site = scores.groupby(frame.site).mean()
        others = by_site.drop(outlier["site"])
        gap = by_site[outlier["site"]] - others.mean()
        assert abs(gap) > 0.3 and np.sign(gap) == (1 if outlier["direction"] == "high" else -1)
        # ... and among the two most extreme of 40 sites (random effects alone rarely are).
        ranked = by_site.sort_values(ascending=outlier["direction"] == "low")
        assert outlier["site"] in ranked.index[:2]


def test_international_graduates_know_the_pathways_less_well(instrument, larger_set):
    frame, _ = larger_set
    pathways = scale_scores(instrument, frame, "pathways")
    by_pmq = pathways.groupby(frame.pmq).mean()
    assert by_pmq["uk"] - by_pmq["rest_of_world"] > 0.2
    by_group = pathways.groupby(frame.staff_group).mean()
    assert by_group["consultant"] - by_group["locally_employed"] > 0.3


def test_straight_liners_match_the_manifest(instrument, larger_set):
    frame, truth = larger_set
    agree = [i.id for i in instrument.items if i.response_scale == "agree5"]
    answers = frame[agree]
    one_code = answers.nunique(axis=1, dropna=True) == 1
    several_answers = answers.notna().sum(axis=1) >= 10
    # Straight-liners answer every agree item alike (some stop part-way); by chance no
    # one else does.
    assert int((one_code & several_answers).sum()) == truth["straight_liners"] > 0


def test_sample_manifest_describes_the_files(instrument):
    manifest = json.loads((SAMPLES_DIR / "manifest.json").read_text())
    assert manifest["instrument"] == instrument.key
    assert manifest["waves"] == list(SAMPLE_WAVES)
    assert [s["code"] for s in manifest["sites"]] == [s.code for s in SAMPLE_SITES]
    assert [(o["site"], o["scale"]) for o in manifest["outliers"]] == \
        [(s, scale) for s, scale, _ in SAMPLE_OUTLIERS]
    rows = {f["name"]: f["rows"] for f in manifest["files"]}
    assert rows["responses_clean.csv"] == manifest["n_responses"]
    assert 2000 <= manifest["n_responses"] <= 6000
    assert rows["responses_dirty.csv"] == manifest["n_responses"] + len(manifest["dirty"]["bad_rows"])
    assert {r["reason"] for r in manifest["dirty"]["bad_rows"]} == {
        "out_of_range", "unknown_label", "unknown_site", "unknown_wave",
        "duplicate_response_id", "missing_required", "too_few_answers"}


def test_ingest_finds_exactly_the_planted_bad_rows(tmp_path, instrument, definition_yaml):
    """The dirty sample through the real ingest: every planted row, at its row, for its reason."""
    manifest = json.loads((SAMPLES_DIR / "manifest.json").read_text())
    with open_store(tmp_path / "dirty.duckdb") as con:
        load_sites_csv(con, SAMPLES_DIR / "sites.csv")
        load_headcounts_csv(con, SAMPLES_DIR / "headcounts.csv", instrument)
        for wave in manifest["waves"]:
            add_wave(con, wave)
        report = ingest_file(con, SAMPLES_DIR / "responses_dirty.csv", instrument,
                             definition_yaml)
        found = con.execute("select source_row, coalesce(response_id, ''), reason_code "
                            "from quarantine order by source_row").fetchall()
        labelled = con.execute("select count(*) from responses where batch_id = ?",
                               [report.batch_id]).fetchone()[0]
    expected = [(r["row"], r["response_id"], r["reason"]) for r in manifest["dirty"]["bad_rows"]]
    assert found == expected
    assert report.rows_accepted == manifest["dirty"]["expected_accepted"] == labelled
    assert report.rows_rejected == manifest["dirty"]["expected_rejected"]


def test_clean_sample_is_accepted_whole_with_the_same_answers(tmp_path, instrument,
                                                             definition_yaml):
    manifest = json.loads((SAMPLES_DIR / "manifest.json").read_text())
    with open_store(tmp_path / "clean.duckdb") as con:
        load_sites_csv(con, SAMPLES_DIR / "sites.csv")
        for wave in manifest["waves"]:
            add_wave(con, wave)
        report = ingest_file(con, SAMPLES_DIR / "responses_clean.csv", instrument,
                             definition_yaml)
        stored = con.execute("select sum(hs01), count(hs01), count(*) from responses").fetchone()
    assert report.rows_rejected == 0
    raw = pd.read_csv(SAMPLES_DIR / "responses_clean.csv")
    answered = raw.hs01[raw.hs01 != 9]
    assert stored == (answered.sum(), answered.count(), len(raw))


def test_national_writer_gives_typed_parquet_with_planted_outliers(tmp_path):
    manifest = write_national(tmp_path, seed=3, n_responses=20_000, n_sites=30, n_waves=3,
                              formats=("parquet", "csv"))
    with duckdb.connect() as con:
        count, sites, waves = con.execute(
            "select count(*), count(distinct site), count(distinct wave) from read_parquet(?)",
            [str(tmp_path / "responses.parquet")]).fetchone()
        types = dict(con.execute("select column_name, column_type from (describe select * "
                                 "from read_parquet(?))",
                                 [str(tmp_path / "responses.parquet")]).fetchall())
        csv_rows = con.execute("select count(*) from read_csv(?)",
                               [str(tmp_path / "responses.csv")]).fetchone()[0]
    assert (count, sites, waves, csv_rows) == (20_000, 30, 3, 20_000)
    assert types["hs01"] == "SMALLINT" and types["wave"] == "INTEGER"
    assert types["submitted_on"] == "DATE"
    assert manifest["waves"] == [2024, 2025, 2026] and len(manifest["outliers"]) == 1


def test_impossible_sizes_are_refused(tmp_path):
    with pytest.raises(CultureError, match="at least one response per site and wave"):
        write_national(tmp_path, n_responses=10, n_sites=30, n_waves=3)


def _truth_table(truth: dict) -> pd.DataFrame:
    return pd.DataFrame([{"site": r["site"], "scale": r["scale"], "wave": w["wave"],
                          "random_effect": r["random_effect"], "planted": r["planted_shift"],
                          "composition": r["composition"], "gap": r["gap_to_others"],
                          "latent_mean": w["latent_mean"], "outside": w["outside"]}
                         for r in truth["site_truth"] for w in r["waves"]])


def test_sample_truth_covers_every_site_scale_and_wave_and_adds_up(instrument):
    from survey.synthetic import SITE_EFFECT_SD, WAVE_TREND

    manifest = json.loads((SAMPLES_DIR / "manifest.json").read_text())
    truth = _truth_table(manifest)
    scales = [s.id for s in instrument.scales]
    assert len(truth) == len(SAMPLE_SITES) * len(scales) * len(SAMPLE_WAVES) == 168
    assert set(truth.site) == {s.code for s in SAMPLE_SITES} and set(truth.scale) == set(scales)
    step = truth.wave.map({w: t for t, w in enumerate(SAMPLE_WAVES)})
    rebuilt = truth.random_effect + truth.planted + truth.composition + WAVE_TREND * step
    assert np.abs(rebuilt - truth.latent_mean).max() < 1e-5
    # The gap is to the mean of the other six sites, and "outside" is the stated margin.
    others = (truth.groupby(["scale", "wave"]).latent_mean.transform("sum")
              - truth.latent_mean) / 6
    assert np.abs(truth.latent_mean - others - truth.gap).max() < 1e-5
    margin = manifest["outside_margin"]["between_site_sds"] * SITE_EFFECT_SD
    expected = np.where(truth.gap > margin, "above", np.where(truth.gap < -margin, "below", ""))
    assert list(truth.outside.fillna("")) == list(expected)
    planted = truth[truth.planted != 0].groupby(["site", "scale"]).planted.first()
    assert planted.to_dict() == {("C", "pathways"): 1.0, ("D", "psysafety"): -1.0}
    # The two planted cells, and five that chance put outside (A's psychological safety
    # among them), in every wave.
    outside = truth.dropna(subset=["outside"]).groupby(["site", "scale"]).outside.agg(set)
    assert outside.to_dict() == {
        ("A", "psysafety"): {"above"}, ("C", "pathways"): {"above"},
        ("C", "leader_modelling"): {"below"}, ("D", "psysafety"): {"below"},
        ("D", "pathways"): {"below"}, ("E", "voice_peer"): {"below"},
        ("F", "pathways"): {"below"}}
    assert (truth.groupby(["site", "scale"]).outside.nunique(dropna=False) == 1).all()


def test_sample_site_means_track_their_recorded_latent_means(instrument):
    manifest = json.loads((SAMPLES_DIR / "manifest.json").read_text())
    truth = _truth_table(manifest).set_index(["scale", "site", "wave"]).latent_mean
    frame = pd.read_csv(SAMPLES_DIR / "responses_clean.csv")
    rows = []
    for scale in instrument.scales:
        means = scale_scores(instrument, frame, scale.id).groupby([frame.site, frame.wave]).mean()
        rows += [(scale.id, site, wave, value, truth[(scale.id, site, wave)])
                 for (site, wave), value in means.items()]
    cells = pd.DataFrame(rows, columns=["scale", "site", "wave", "observed", "latent"])
    centred = cells[["observed", "latent"]] - cells.groupby(["scale", "wave"])[
        ["observed", "latent"]].transform("mean")
    # 168 site x scale x wave means: the truth explains almost all of their spread, at
    # about two thirds of a scale point per latent SD (loadings .6-.8, ordinal cuts).
    assert np.corrcoef(centred.observed, centred.latent)[0, 1] > 0.95
    slope = np.polyfit(centred.latent, centred.observed, 1)[0]
    assert 0.55 < slope < 0.75


def test_larger_set_truth_matches_its_sites_and_its_drawn_composition(instrument, larger_set):
    from survey.synthetic import GROUP_EFFECTS, expected_group_effects

    frame, truth = larger_set
    table = _truth_table(truth)
    assert len(table) == 40 * len(instrument.scales) * 2
    latent = table.set_index(["scale", "site", "wave"]).latent_mean
    for scale in ("stigma", "psysafety", "pathways"):
        means = scale_scores(instrument, frame, scale).groupby([frame.site, frame.wave]).mean()
        recorded = np.array([latent[(scale, site, wave)] for site, wave in means.index])
        assert np.corrcoef(means.values, recorded)[0, 1] > 0.9, scale
    # The composition term is the expectation of the attribute effects actually drawn.
    scales = tuple(s.id for s in instrument.scales)
    drawn = np.zeros((len(frame), len(scales)))
    for attribute, groups in GROUP_EFFECTS.items():
        for group, effects in groups.items():
            rows = (frame[attribute] == group).to_numpy()
            for scale, value in effects.items():
                drawn[rows, scales.index(scale)] += value
    assert np.abs(drawn.mean(axis=0) - expected_group_effects("acute_trust", scales)).max() < 0.01
    outside = table[table.outside.notna()]
    assert {("S03", "psysafety", "below"), ("S07", "pathways", "above")} <= set(
        zip(outside.site, outside.scale, outside.outside))


def test_national_manifest_records_the_truth_of_every_site(tmp_path):
    manifest = write_national(tmp_path, seed=3, n_responses=6_000, n_sites=30, n_waves=2)
    table = _truth_table(manifest)
    assert len(table) == 30 * 8 * 2 and table.site.nunique() == 30
    assert set(table.wave) == set(manifest["waves"])
    planted = table[table.planted != 0].groupby(["site", "scale"]).planted.first()
    assert [(o["site"], o["scale"]) for o in manifest["outliers"]] == list(planted.index)
    # Types differ in their staff mix, so composition differs between types on pathways.
    assert table[table.scale == "pathways"].composition.nunique() > 1
