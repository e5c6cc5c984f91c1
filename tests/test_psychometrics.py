"""The psychometrics stage on the real ingested sample, and its report."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError

import pandas as pd
import pytest

from stats.agreement import icc
from pipeline.psychometrics import stage as psychometrics
from pipeline.ingest.files import ingest_file
from pipeline.psychometrics.stage import (PsychometricsError, judge, run_psychometrics,
                                    structure_sample)
from pipeline.quality import analysis_view
from pipeline.scoring import keyed_items, scale_score
from pipeline.store import add_wave, load_sites_csv, open_store
from pipeline.psychometrics.report import write_report
from pipeline.psychometrics.results import Judgement
from survey.settings import PROJECT_ROOT, SAMPLES_DIR, resolve_settings
from tests.conftest import culture

GOLDEN = json.loads((PROJECT_ROOT / "tests" / "expected" / "reliability_samples.json")
                    .read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def result(sample_store, instrument):
    with open_store(sample_store) as con:
        return run_psychometrics(con, instrument, resolve_settings(environ={}))


def test_overall_reliability_is_psychs(result):
    overall = {r.scale: r for r in result.reliability if r.level == "overall"}
    assert set(overall) == set(GOLDEN)
    for scale, row in overall.items():
        expected = GOLDEN[scale]["pairwise"]
        assert row.n == expected["n"]
        assert row.alpha == pytest.approx(expected["raw_alpha"], abs=1e-9)
        assert row.ci_low == pytest.approx(expected["feldt_lower"], abs=1e-9)
        assert row.omega_total == pytest.approx(expected["omega_total"], abs=1e-6)
        assert row.alpha_verdict == "meets"


def test_every_site_and_wave_is_covered_and_small_groups_are_not_reported(result, instrument):
    site_wave = [r for r in result.reliability if r.level == "site_wave"]
    assert len(site_wave) == 7 * 3 * len(instrument.scales)
    assert all(r.reported == (r.n >= 10) for r in site_wave)
    assert all(r.alpha is None and r.note == "fewer than 10 responses: not reported"
               for r in site_wave if r.n < 10)


def test_icc_per_wave_equals_the_respondent_level_anova(result, instrument):
    answers = pd.read_csv(SAMPLES_DIR / "responses_clean.csv")
    wave = answers[answers.wave == 2025]
    expected = icc(scale_score(wave, instrument, "psysafety"), wave.site)
    got = next(r for r in result.icc if r.scale == "psysafety" and r.wave == 2025)
    assert got.icc1 == pytest.approx(expected.icc1, abs=1e-12)
    assert got.icc2 == pytest.approx(expected.icc2, abs=1e-12)


def test_item_distributions_count_every_stored_answer(result, instrument):
    answers = pd.read_csv(SAMPLES_DIR / "responses_clean.csv")
    rows = {r.item: r for r in result.item_distributions}
    assert set(rows) == {i.id for i in instrument.items}
    for item in instrument.items:
        codes = instrument.response_scale(item.response_scale).codes
        column = answers[item.id].where(answers[item.id].isin(codes))  # 9 is stored as missing
        expected = {str(c): int((column == c).sum()) for c in codes}
        assert rows[item.id].counts == expected, item.id
        assert rows[item.id].missing == int(column.isna().sum()), item.id


def test_excluding_flagged_respondents_leaves_them_out_of_every_statistic(sample_store,
                                                                            instrument):
    with open_store(sample_store) as con:
        kept = run_psychometrics(con, instrument,
                                 resolve_settings(environ={}, exclude_flagged=True))
    totals = kept.data_quality.totals
    analysed = totals["respondents"] - totals["flagged"]
    assert kept.scope.excluded_flagged is True and totals["flagged"] > 0
    assert {r.n for r in kept.reliability if r.level == "overall"} == {analysed}
    distribution = kept.item_distributions[0]
    assert sum(distribution.counts.values()) + distribution.missing == analysed


def test_site_verdicts_state_their_reason(result):
    assert {r.reason for r in result.sites} <= {
        "reportable", "fewer than 10 responses", "site mean not reliable enough (below .70)"}
    assert all(r.reportable == (r.reason == "reportable") for r in result.sites)
    assert all(0 <= r.rwg_j <= 1 for r in result.sites)


def test_structure_fits_the_planted_eight_factors(result):
    structure = result.structure
    assert structure.intended_factors == 8 and structure.note is None
    assert structure.cfa.cfi.verdict == "meets"
    assert structure.cfa.srmr.value < 0.08
    assert len(structure.htmt) == 8 * 7 // 2


def test_invariance_is_tested_for_core_scales_across_site_types_and_staff_groups(result):
    entries = {(e.scale, e.across): e for e in result.invariance}
    assert set(entries) == {(s, a) for s in ("stigma", "psysafety", "pathways")
                            for a in ("site_type", "staff_group")}
    site_types = entries[("psysafety", "site_type")]
    assert site_types.groups == ("acute_trust", "independent_support_org",
                                 "professional_support_unit")
    assert [s.step for s in site_types.steps] == ["configural", "metric", "scalar"]
    # Groups too small to fit are named, not silently dropped.
    staff = entries[("stigma", "staff_group")]
    answers = pd.read_csv(SAMPLES_DIR / "responses_clean.csv")
    present = set(answers.staff_group.dropna()) - {"prefer_not_to_say"}
    assert set(staff.groups) | set(staff.left_out) == present
    assert len(staff.groups) >= 4


def test_structural_sample_depends_on_who_answered_not_where_they_are_stored(
        tmp_path, instrument, definition_yaml, sample_manifest, monkeypatch):
    """Two stores holding the same respondents in a different physical order (here a
    reversed file; a parallel ingest reorders rows too) draw the same sample, so the
    published KMO, CFA and invariance results do not change from one load to the next."""
    monkeypatch.setattr(psychometrics, "STRUCTURE_SAMPLE", 300)
    answers = pd.read_csv(SAMPLES_DIR / "responses_clean.csv", dtype=str)
    samples = []
    for name, frame in (("forward", answers), ("reversed", answers.iloc[::-1])):
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
        with open_store(tmp_path / f"{name}.duckdb") as con:
            load_sites_csv(con, SAMPLES_DIR / "sites.csv")
            for wave in sample_manifest["waves"]:
                add_wave(con, wave)
            ingest_file(con, tmp_path / f"{name}.csv", instrument, definition_yaml)
            analysis_view(con, False)
            samples.append(structure_sample(con, instrument, source="analysis_responses"))
    forward, backward = samples
    assert len(forward) == 300 < len(answers)
    pd.testing.assert_frame_equal(forward, backward)


def test_judge_states_criterion_and_verdict():
    assert judge("rmsea", 0.07) == Judgement(0.07, "<= 0.06", "Hu & Bentler 1999",
                                             "does not meet")
    assert judge("alpha", float("nan")) == Judgement(None, ">= 0.7", "Nunnally 1978", "n/a")
    assert judge("htmt", 0.85).verdict == "does not meet"     # a strict bound: < .85


def test_the_result_is_complete_and_cannot_be_changed_afterwards(result):
    """Built once every part (the worker's structural models, the quality flags) is in:
    no part is a placeholder, and none can be filled in or replaced later."""
    assert result.data_quality.totals["respondents"] == 3570
    assert len(result.data_quality.by_site) == 7 * 3
    assert result.structure.n_complete > 500 and len(result.invariance) == 6
    with pytest.raises(FrozenInstanceError):
        result.structure = None


def test_one_wave_and_one_site_narrow_the_scope(sample_store, instrument):
    with open_store(sample_store) as con:
        wave = run_psychometrics(con, instrument, resolve_settings(environ={}), wave=2025)
        site = run_psychometrics(con, instrument, resolve_settings(environ={}), site="d")
    overall = next(r for r in wave.reliability if r.level == "overall")
    assert overall.n == 1190
    assert (wave.scope.wave, site.scope.site) == (2025, "d")
    assert {r.wave for r in wave.reliability if r.level == "wave"} == {2025}
    assert {r.site_code for r in site.reliability if r.level == "site_wave"} == {"D"}
    assert next(r for r in site.reliability if r.level == "overall").n == 660


def test_unknown_site_is_refused(sample_store, instrument):
    with open_store(sample_store) as con:
        with pytest.raises(PsychometricsError, match="site 'ZZ' is not in the store"):
            run_psychometrics(con, instrument, resolve_settings(environ={}), site="ZZ")


def test_report_holds_every_scale_the_caveat_and_matching_json(result, instrument, tmp_path):
    html_path, json_path = write_report(result, instrument, tmp_path)
    page = html_path.read_text(encoding="utf-8")
    for scale in instrument.scales:
        assert f"<td>{scale.id}</td>" in page
    assert "prove the machinery" in page
    assert "https://" not in page.split("<body>")[1].split("<script")[0]   # no remote assets
    assert page.count("plotly.js v") <= 2                                 # embedded once
    written = json.loads(json_path.read_text())
    assert list(written) == ["scope", "data_quality", "reliability", "items",
                             "item_distributions", "icc", "sites", "structure", "invariance",
                             "criteria", "caveat"]
    stigma = next(r for r in result.reliability
                  if r.level == "overall" and r.scale == "stigma")
    assert written["reliability"][0] == {
        "level": "overall", "scale": "stigma", "n": 3570, "k": 8, "alpha": stigma.alpha,
        "alpha_standardised": stigma.alpha_standardised, "ci_low": stigma.ci_low,
        "ci_high": stigma.ci_high, "omega_total": stigma.omega_total,
        "alpha_verdict": "meets"}
    site_row = next(r for r in written["reliability"] if r["level"] == "site_wave")
    assert list(site_row)[:6] == ["level", "scale", "site_code", "wave", "n", "k"]
    assert written["structure"]["parallel_analysis"]["intended_factors"] == 8
    assert written["criteria"]["rmsea"] == {"criterion": "<= 0.06",
                                            "source": "Hu & Bentler 1999"}


def test_demo_scores_and_writes_the_report(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)   # the demo writes ./reports
    run = culture("demo", "--db", tmp_path / "demo.duckdb")
    assert run.exit_code == 0, run.stderr
    assert "3570 accepted" in run.stdout
    assert "stigma             alpha 0.87" in run.stdout
    report = json.loads((tmp_path / "reports" / "validation_report.json").read_text())
    assert report["data_quality"]["totals"]["respondents"] == 3570
    assert "verified: no shown count below 10" in run.stdout
    assert (tmp_path / "demo.published.duckdb").exists()


def test_culture_run_fits_the_same_structural_models_as_the_stage_alone(
        tmp_path, instrument, sample_manifest):
    """`culture run` starts the structural fits early, while the cells are summed; they
    must be the ones the psychometrics stage fits when run on its own."""
    from pipeline.run import run_pipeline
    from survey.settings import Settings

    store = tmp_path / "store.duckdb"
    with open_store(store) as con:
        load_sites_csv(con, SAMPLES_DIR / "sites.csv")
        for wave in sample_manifest["waves"]:
            add_wave(con, wave)
    settings = Settings(db_path=store)
    report = run_pipeline(settings, instrument, [SAMPLES_DIR / "responses_clean.csv"])
    with open_store(store) as con:
        alone = run_psychometrics(con, instrument, settings)
    # The sample holds every respondent here (3,570 < 20,000): every complete one counts.
    answers = pd.read_csv(SAMPLES_DIR / "responses_clean.csv")
    complete = pd.concat([keyed_items(answers, instrument, s.id) for s in instrument.scales],
                         axis=1).dropna()
    assert report.psychometrics.structure.n_complete == len(complete) > 500
    assert report.psychometrics.structure == alone.structure
    assert report.psychometrics.invariance == alone.invariance
    assert len(alone.invariance) == 2 * sum(s.core for s in instrument.scales)
