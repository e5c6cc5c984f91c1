"""Trusts surveying one or two sites: too few for a funnel, a target, an ICC.

The published layer must still hold every table with its columns, and the dashboard,
the site report and the export must say what cannot be shown instead of failing.
"""

from __future__ import annotations

import csv
import json
import math

import duckdb
import flask
import plotly.utils
import pytest

from dashboard.accounts import AccountBook, LoginThrottle
from dashboard.app import create_app, render_page
from dashboard.pages.benchmark import benchmark_body
from dashboard.app import view_from_request
from outputs.export import export_aggregates
from pipeline.ingest.files import ingest_file
from pipeline.psychometrics.stage import run_psychometrics
from pipeline.publish.writer import publish
from outputs.site_report import write_site_report
from pipeline.psychometrics.report import write_report
from pipeline.store import add_wave, load_sites_csv, open_store
from cli.pipeline_commands import calm_funnel_line
from published.layout import NOT_COMPARED
from survey.settings import SAMPLES_DIR, Settings

PAGES = ["/", "/principle", "/benchmark", "/trends", "/equity", "/quality"]


def published_for(sites: set[str], folder, instrument, definition_yaml, waves,
                  limit: int | None = None) -> Settings:
    """A store of the clean sample's rows of `sites` only (the first `limit` of them),
    run through publish."""
    with (SAMPLES_DIR / "responses_clean.csv").open(encoding="utf-8", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["site"] in sites][:limit]
    path = folder / "responses.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    settings = Settings(db_path=folder / "store.duckdb")
    with open_store(settings.db_path) as con:
        load_sites_csv(con, SAMPLES_DIR / "sites.csv")
        for wave in waves:
            add_wave(con, wave)
        ingest_file(con, path, instrument, definition_yaml)
        publish(con, instrument, settings, run_psychometrics(con, instrument, settings))
    return settings


@pytest.fixture(scope="module")
def one_site(tmp_path_factory, instrument, definition_yaml, sample_manifest):
    return published_for({"A"}, tmp_path_factory.mktemp("one-site"), instrument,
                         definition_yaml, sample_manifest["waves"])


def test_every_table_is_published_with_its_columns_even_when_empty(one_site):
    with duckdb.connect(str(one_site.published_path), read_only=True) as con:
        count = {t: con.execute(f'select count(*) from "{t}"').fetchone()[0]
                 for t in ("funnel", "funnel_params", "shrunken", "icc", "site_agreement",
                           "weighted")}
        funnel_columns = [r[0] for r in con.execute("describe funnel").fetchall()]
        kinds = dict(con.execute("select column_name, column_type from (describe icc)").fetchall())
    # One site: nothing to compare it with, no between-site variance, no headcounts.
    assert count == dict.fromkeys(count, 0)
    assert {"site_code", "measure_kind", "measure", "low", "high", "flagged", "verdict"} <= set(
        funnel_columns)
    assert kinds["scale"] == "VARCHAR" and kinds["wave"] == "BIGINT" and kinds["icc1"] == "DOUBLE"


def test_a_site_alone_has_no_target_rather_than_meeting_its_own(one_site):
    with duckdb.connect(str(one_site.published_path), read_only=True) as con:
        gaps = con.execute("select principle, score, target, gap, certainty, target_basis, "
                           "priority from principle_gaps where site_code = 'A' and wave = 2026 "
                           "order by priority").df()
    assert len(gaps) == 6
    assert set(gaps["certainty"]) == {"no target"}
    assert gaps["target"].isna().all() and gaps["gap"].isna().all()
    assert set(gaps["target_basis"]) == {"no target: fewer than 3 other sites reported this wave"}
    # Without gaps, the lowest score comes first.
    assert list(gaps["priority"]) == [1, 2, 3, 4, 5, 6]
    assert list(gaps["score"]) == sorted(gaps["score"])


def test_dashboard_pages_render_and_say_there_is_no_funnel(one_site):
    book = AccountBook(one_site.accounts_path)
    book.add("admin", "admin", "a long enough password", None)
    app = create_app(one_site, secret_key=b"test secret", throttle=LoginThrottle(free=3))
    with app.server.test_request_context("/_dash-update-component", method="POST"):
        book = app.server.config["CULTURE_ACCOUNTS"]
        flask.session["sid"] = book.open_session(book.get("admin"))
        for path in PAGES:
            page, _ = render_page(path, "?site=A&wave=2026")
            text = json.dumps(page, cls=plotly.utils.PlotlyJSONEncoder)
            assert "Not available" not in text and "Error" not in text, path
            if path == "/":
                assert "Lowest score: " in text and "so no gaps are shown" in text
                assert "meets its target" not in text
        body = benchmark_body(view_from_request("/benchmark", "?site=A&wave=2026", True),
                              "scale:psysafety")
    text = json.dumps(body, cls=plotly.utils.PlotlyJSONEncoder)
    assert "No funnel for" in text and "too few sites" in text


def test_site_report_and_export_work_for_one_site(one_site, tmp_path):
    files = write_site_report(one_site.published_path, "A", 2026, tmp_path, pdf=False)
    html = files.html.read_text(encoding="utf-8")
    assert "Too few sites for a funnel plot." in html
    assert "there is no target: fewer than 3 other sites reported this wave" in html
    assert "the guide's actions for every principle follow, lowest score first" in html
    assert "meets target" not in html and "0 of 6" not in html
    export = export_aggregates(one_site.published_path, tmp_path / "export", fmt="csv")
    site_file = next(f.path for f in export.files if f.path.name == "culture_site.csv")
    with site_file.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["unit"] for r in rows if r["level"] == "site"} == {"A"}
    assert min(int(r["n"]) for r in rows if r["n"]) >= 10


def test_two_sites_are_not_compared_and_every_reader_says_so(tmp_path, instrument,
                                                              definition_yaml,
                                                              sample_manifest):
    settings = published_for({"A", "D"}, tmp_path, instrument, definition_yaml,
                             sample_manifest["waves"])
    with duckdb.connect(str(settings.published_path), read_only=True) as con:
        tau2, sites = con.execute("select tau2, sites from funnel_params where "
                                  "wave = 2026 and measure = 'psysafety'").fetchone()
        verdicts = {v for (v,) in con.execute("select distinct verdict from funnel")
                    .fetchall()}
    # One other site is no distribution to stand outside of: no tau^2, no verdict.
    assert sites == 2 and (tau2 is None or math.isnan(tau2))
    assert verdicts == {NOT_COMPARED}
    AccountBook(settings.accounts_path).add("admin", "admin", "a long enough password", None)
    app = create_app(settings, secret_key=b"test secret", throttle=LoginThrottle(free=3))
    with app.server.test_request_context("/_dash-update-component", method="POST"):
        book = app.server.config["CULTURE_ACCOUNTS"]
        flask.session["sid"] = book.open_session(book.get("admin"))
        body = benchmark_body(view_from_request("/benchmark", "?site=D&wave=2026", True),
                              "scale:psysafety")
    text = json.dumps(body, cls=plotly.utils.PlotlyJSONEncoder)
    assert "2 sites, each judged against the other sites" in text
    assert f"{NOT_COMPARED} (score" in text and "fewer than 3 other sites: not compared" in text
    assert "0 site(s) outside" in text
    # culture run's summary makes no comparison claim either.
    with open_store(settings.db_path) as con:
        report = publish(con, instrument, settings)
    assert report.tables["funnel_params"] > 0 and report.funnels_compared == 0
    assert calm_funnel_line(report) == ("no site compared with the others: that needs 3 "
                                        "other sites with the threshold met in a wave")


def test_a_first_test_survey_with_every_cell_hidden_publishes_and_reports(
        tmp_path, instrument, definition_yaml, sample_manifest):
    """Eight answers: nothing can be shown, and every step says so instead of failing."""
    settings = published_for({"A"}, tmp_path, instrument, definition_yaml,
                             sample_manifest["waves"], limit=8)
    with duckdb.connect(str(settings.published_path), read_only=True) as con:
        shown = con.execute("select count(*) from cells where not suppressed").fetchone()[0]
        tables = {t: con.execute(f'select count(*) from "{t}"').fetchone()[0]
                  for t in ("benchmarks", "principle_gaps", "trends", "equity")}
    assert shown == 0 and tables == dict.fromkeys(tables, 0)
    with open_store(settings.db_path) as con:
        result = run_psychometrics(con, instrument, settings)
    html, _ = write_report(result, instrument, tmp_path / "reports")
    text = html.read_text(encoding="utf-8")
    assert text.count("fewer than 10 responses: not reported") == len(instrument.scales)
