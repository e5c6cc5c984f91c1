"""The published driver analysis (pipeline.drivers -> table `drivers`) and its readers.

A generated store of seven acute trusts, six with 150 respondents and one (S06) with 40,
is ingested and published for real. The published national and peer-group shares and
intervals must be what stats.drivers gives on moments summed here from the respondents
with pandas (the scale-score rule of pipeline.scoring); no model rests on fewer than
MIN_SITE_RESPONDENTS; the small site's director is shown the peer group's drivers,
labelled as such. The Drivers page (as director and researcher) and the board report's
section are checked in a real browser and in the report's text on the committed sample.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests.live import submit_sign_in

from dashboard.access import Viewer
from dashboard.accounts import Account
from dashboard.pages import drivers as drivers_page
from dashboard.view import View
from pipeline.drivers import LINEAR_OUTCOMES, USED_IF_NEEDED, bootstrap_seed
from pipeline.ingest.files import ingest_file
from pipeline.psychometrics.stage import run_psychometrics
from pipeline.publish.writer import publish
from pipeline.scoring import scale_score
from pipeline.store import Site, add_sites, add_wave, open_store
from published.drivers import ASSOCIATION, driver_sentence, site_drivers, used_sentence
from published.reader import PublishedLayer
from stats.drivers import (MIN_SITE_RESPONDENTS, SiteMoments, dominance_from_site_moments,
                           logistic_site_bootstrap, site_bootstrap)
from survey.settings import Settings
from survey.synthetic import SiteSpec, generate_responses

WAVE = 2026
SMALL = "S06"


@pytest.fixture(scope="module")
def generated(tmp_path_factory, instrument, definition_yaml):
    """(settings, publish report) of seven acute trusts, one of them (S06) small."""
    folder = tmp_path_factory.mktemp("drivers")
    sites = [SiteSpec(f"S{i:02d}", f"Site {i:02d}", "acute_trust", "London",
                      40 if i == 6 else 150) for i in range(7)]
    table, _ = generate_responses(instrument, sites, [WAVE], 23, [])
    pq.write_table(table, folder / "responses.parquet")
    settings = Settings(db_path=folder / "store.duckdb")
    with open_store(settings.db_path) as con:
        add_sites(con, [Site(s.code, s.name, s.site_type, s.region) for s in sites])
        add_wave(con, WAVE)
        ingest_file(con, folder / "responses.parquet", instrument, definition_yaml)
        psychometrics = run_psychometrics(con, instrument, settings)
        report = publish(con, instrument, settings, psychometrics)
    return settings, report


def moments_by_hand(settings, instrument) -> SiteMoments:
    """The drivers' moments from the respondents with pandas, not the stage's SQL."""
    with open_store(settings.db_path, read_only=True) as con:
        answers = con.execute("select * from responses where wave = ?", [WAVE]).df()
    scales = [s.id for s in instrument.scales]
    frame = pd.DataFrame({s: scale_score(answers, instrument, s) for s in scales})
    frame["site_code"] = answers["site_code"]
    intend = answers["oc_intend"].astype(float)
    frame["oc_intend"] = intend
    frame["oc_intend_favourable"] = intend.isin([4, 5]).astype(float).where(intend.notna())
    return SiteMoments.from_frame(frame, "site_code", [*LINEAR_OUTCOMES, *scales])


def test_published_shares_and_intervals_are_stats_drivers_on_the_same_moments(
        generated, instrument):
    settings, report = generated
    scales = [s.id for s in instrument.scales]
    moments = moments_by_hand(settings, instrument)
    with PublishedLayer.open(settings.published_path) as layer:
        for outcome in LINEAR_OUTCOMES:
            published = layer.drivers("national", "national", WAVE, outcome).set_index("scale")
            expected = dominance_from_site_moments(moments, outcome, scales)
            boot = site_bootstrap(moments, outcome, scales, draws=200,
                                  seed=bootstrap_seed(WAVE, "national", "national", outcome))
            np.testing.assert_allclose(published.loc[scales, "share"], expected.general_share,
                                       rtol=1e-9)
            np.testing.assert_allclose(published.loc[scales, "share_low"], boot.share_low,
                                       rtol=1e-9)
            np.testing.assert_allclose(published.loc[scales, "share_high"], boot.share_high,
                                       rtol=1e-9)
            weights = expected.relative_weights / expected.relative_weights.sum()
            np.testing.assert_allclose(published.loc[scales, "relative_weight"], weights,
                                       rtol=1e-9)
            assert published["r2"].iloc[0] == pytest.approx(expected.total, rel=1e-9)
            assert published["n"].iloc[0] == int(moments.n.sum()) == expected.n
            assert published["share"].sum() == pytest.approx(1)
            # the seven acute trusts are also the peer group: the same model
            peer = layer.drivers("peer", "acute_trust", WAVE, outcome).set_index("scale")
            np.testing.assert_allclose(peer.loc[scales, "share"], expected.general_share,
                                       rtol=1e-9)
        # the generator plants stigma first in oc_intend (survey.synthetic)
        national = layer.drivers("national", "national", WAVE, "oc_intend")
        assert national["scale"].iloc[0] == "stigma"
    assert report.verification.ok


def test_used_support_models_are_published_with_one_step_intervals(generated, instrument):
    settings, _ = generated
    scales = [s.id for s in instrument.scales]
    with open_store(settings.db_path, read_only=True) as con:
        answers = con.execute("select * from responses where wave = ?", [WAVE]).df()
    frame = pd.DataFrame({s: scale_score(answers, instrument, s) for s in scales})
    # yes is code 2 of the yesno scale: those who needed support and said whether they used it
    keep = (answers["oc_needed"] == 2) & answers["oc_used"].notna() & frame.notna().all(axis=1)
    x, y = frame[keep].to_numpy(float), (answers.loc[keep, "oc_used"] == 2).to_numpy(float)
    site = answers.loc[keep, "site_code"].to_numpy()
    assert len(y) >= MIN_SITE_RESPONDENTS
    with PublishedLayer.open(settings.published_path) as layer:
        for scope, unit in (("national", "national"), ("peer", "acute_trust")):
            published = layer.drivers(scope, unit, WAVE, USED_IF_NEEDED).set_index("scale")
            boot = logistic_site_bootstrap(x, y, site, USED_IF_NEEDED, scales,
                                           seed=bootstrap_seed(WAVE, scope, unit,
                                                               USED_IF_NEEDED))
            for column, expected in (("share", boot.share), ("share_low", boot.share_low),
                                     ("share_high", boot.share_high)):
                np.testing.assert_allclose(published.loc[scales, column], expected, rtol=1e-9)
            assert published["r2"].iloc[0] == pytest.approx(boot.total, rel=1e-9)
            assert published["r2_low"].iloc[0] == pytest.approx(boot.total_low, rel=1e-9)
            assert (published["n"] == len(y)).all() and (published["sites"] == 7).all()
            assert (published["model"] == "logistic").all()
            assert (published["fit_measure"] == "McFadden R2").all()
            assert "one Newton step" in published["note"].iloc[0]
            assert published["relative_weight"].isna().all()
        # the small site is shown its peer group's used-support model, with the interval
        shown = site_drivers(layer, SMALL, WAVE, "Site 06").support
        assert shown.scope == "peer" and shown.n == len(y)
        assert "95% range" in used_sentence(shown)
        assert used_sentence(shown).startswith("Among doctors in acute trusts who needed "
                                               "support, ")


def test_no_model_rests_on_fewer_than_the_minimum(generated):
    settings, report = generated
    with PublishedLayer.open(settings.published_path) as layer:
        rows = layer.query("select * from drivers")
    # every model rests on at least the minimum, itself above the group size k
    assert (rows["n"] >= MIN_SITE_RESPONDENTS).all() and MIN_SITE_RESPONDENTS >= settings.min_group_size
    assert report.verification.ok
    sites = rows[rows["scope"] == "site"]
    assert set(sites["unit"]) == {f"S{i:02d}" for i in range(6)}   # not S06 (40)
    assert (sites["sites"] == 1).all() and sites["share_low"].isna().all()
    # a site's model only where its response count is shown (never a hidden n back)
    with PublishedLayer.open(settings.published_path) as layer:
        shown = layer.query("select wave, unit from cells where level = 'site' and "
                            "breakdown = 'all' and measure_kind = 'responses' and not "
                            "suppressed")
    assert set(zip(sites["wave"], sites["unit"])) <= set(zip(shown["wave"], shown["unit"]))
    # each published model has one row a scale and shares summing to 1
    per_model = rows.groupby(["wave", "scope", "unit", "outcome"])
    assert (per_model.size() == 8).all()
    np.testing.assert_allclose(per_model["share"].sum(), 1, rtol=1e-9)


def _director_view(settings, site: str) -> View:
    data = PublishedLayer.open(settings.published_path)
    return View(Viewer(Account("dir", "director", site)), data, "/drivers", site, WAVE)


def _text(component) -> str:
    """Every string in a Dash component tree (what a person reads, tables included)."""
    if isinstance(component, str):
        return component
    if isinstance(component, (list, tuple)):
        return " ".join(_text(c) for c in component)
    children = getattr(component, "children", None)
    found = [_text(children)] if children is not None else []
    if hasattr(component, "to_plotly_json") and component.to_plotly_json().get(
            "type") == "Markdown":
        found.append(str(children))
    return " ".join(found)


def test_a_small_site_sees_its_peer_groups_drivers_labelled_as_such(generated):
    settings, _ = generated
    view = _director_view(settings, SMALL)
    shown = site_drivers(view.data, SMALL, WAVE, view.site_label)
    assert shown.scope == "peer" and shown.unit == "acute_trust"
    assert shown.label.startswith("your peer group, acute trusts (n = ")
    assert "has too few answers for a model of its own" in shown.label
    peer = view.data.drivers("peer", "acute_trust", WAVE, "oc_intend")
    assert shown.rows["share"].tolist() == peer["share"].tolist()
    text = _text(drivers_page.layout(view))
    assert "Importance here is from your peer group, acute trusts" in text
    assert driver_sentence(shown) in text and driver_sentence(shown).startswith(
        "Among doctors in acute trusts, ")
    assert ASSOCIATION in text
    # a site with its own model is shown its own
    own = site_drivers(view.data, "S01", WAVE, "Site 01")
    assert own.scope == "site" and own.n >= MIN_SITE_RESPONDENTS
    view.data.close()


def test_priority_is_high_importance_and_below_other_sites(generated):
    settings, _ = generated
    with PublishedLayer.open(settings.published_path) as layer:
        for site in [f"S{i:02d}" for i in range(7)]:
            rows = site_drivers(layer, site, WAVE, site).rows
            expected = (rows["share"] > 1 / 8) & rows["verdict"].isin(
                ["clearly below", "below, not certain"])
            assert (rows["quadrant"].str.startswith("Priority") == expected).all()
            # the guide's actions follow the scale's principles
            stigma = rows.set_index("scale").loc["stigma"]
            assert "Tackle stigma directly" in stigma["actions"]


# -- in a real browser, on the committed sample ------------------------------------------

ACCOUNTS = {"dir-a": ("director", "A", "director password"),
            "res": ("researcher", None, "researcher password")}


@pytest.fixture(scope="module")
def server(published_sample):
    from dashboard.accounts import AccountBook
    from tests.live import free_port, start_culture, stop

    settings, _ = published_sample
    book = AccountBook(settings.accounts_path)
    for username, (role, site, password) in ACCOUNTS.items():
        book.add(username, role, password, site)
    port = free_port()
    process = start_culture("serve", "--db", str(settings.db_path), "--port", str(port),
                            port=port)
    yield f"http://127.0.0.1:{port}", settings
    stop(process)


def _open_as(browser, base: str, username: str, path: str) -> str:
    from tests.test_dashboard_controls import wait_for_page

    submit_sign_in(browser, base, username, ACCOUNTS[username][2])
    wait_for_page(browser)
    browser.get(base + path)
    wait_for_page(browser)
    # textContent, not .text: the table view sits in a closed <details>
    return browser.execute_script("return document.getElementById('page').textContent")


@pytest.mark.slow
def test_the_drivers_page_as_director_and_researcher(server):
    from selenium.webdriver.common.by import By

    from tests.live import chromium

    base, settings = server
    with PublishedLayer.open(settings.published_path) as layer:
        wave = layer.waves()[-1]
        site_name = layer.site_row("A")["name"]
        shown = site_drivers(layer, "A", wave, f"{site_name} (A)")
        national = layer.drivers("national", "national", wave, "oc_intend")
    browser = chromium()
    try:
        text = _open_as(browser, base, "dir-a", "/drivers")
        assert f"{site_name} (A): what goes with seeking help early, {wave}" in text
        assert browser.find_element(By.ID, "drivers-sentence").text == driver_sentence(shown)
        assert browser.find_element(By.ID, "drivers-association").text == ASSOCIATION
        assert browser.find_elements(By.CSS_SELECTOR, "#drivers-chart .main-svg")
        top = shown.rows.iloc[0]
        assert f"{100 * top['share']:.0f}%" in driver_sentence(shown)
        assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        browser.save_screenshot(str(settings.db_path.with_name("drivers-director.png")))
        browser.delete_all_cookies()
        text = _open_as(browser, base, "res", "/drivers")
        assert f"What goes with seeking help early, {wave}" in text
        assert "National and peer-group driver models" in text
        assert "logistic models (95% ranges from a one-step site bootstrap)" in text
        # national shares as published; no site named, no site model listed
        first = national.iloc[0]
        assert f"Nationally {first['name'].lower()} ranks first ({100 * first['share']:.0f}%" \
            in text
        assert site_name not in text and "own answers" not in text
        assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        browser.quit()


def test_the_board_report_section_carries_the_pages_numbers(published_sample):
    import re
    from html import unescape

    from dashboard.components import fmt
    from outputs.site_report import load_site_data, render_html

    settings, _ = published_sample
    with PublishedLayer.open(settings.published_path) as layer:
        wave = layer.waves()[-1]
        data = load_site_data(layer, "A", wave)
        view = View(Viewer(Account("dir", "director", "A")), layer, "/drivers", "A", wave)
        page = _text(drivers_page.layout(view))
        shown = site_drivers(layer, "A", wave, view.site_label)
    html = render_html(data)
    section = unescape(html[html.index('<section class="drivers">'):])
    section = section[:section.index("</section>")]
    assert "What goes with asking for help early" in section
    sentence = driver_sentence(shown)
    assert sentence in section and sentence in page and ASSOCIATION in section
    assert f"Importance is from {shown.label}" in section
    # the used-support model, with its one-step site-bootstrap range, on both
    used = used_sentence(shown.support)
    assert "95% range" in used and used in section and used in page
    assert f"Importance is from {shown.support.label}" in section
    page_rows = drivers_page.as_percent(shown.rows)
    for row in page_rows.itertuples():
        cells = re.search(rf"<tr data-scale='{row.scale}'>(.*?)</tr>", section).group(1)
        values = re.findall(r"<td>(.*?)</td>", cells)
        assert values[0] == row.name and values[1] == fmt(row.share_pct, 0) + "%"
        assert values[3] == row.verdict and values[4] == row.quadrant
        # and the page's table shows the same whole percentage for the scale
        assert f"| {fmt(row.share_pct, 0)} |" in page


def test_export_level_drivers_writes_the_published_models(published_sample, tmp_path):
    import json

    from tests.conftest import culture

    settings, _ = published_sample
    done = culture("export", "--db", settings.db_path, "--level", "drivers", "--out", tmp_path)
    assert done.exit_code == 0, done.stderr
    exported = pd.read_csv(tmp_path / "culture_drivers.csv")
    with PublishedLayer.open(settings.published_path) as layer:
        published = layer.query("select * from drivers")
    assert len(exported) == len(published) > 0
    assert (exported["n"] >= MIN_SITE_RESPONDENTS).all() and (exported["suppressed"] == 0).all()
    key = ["wave", "level", "unit", "outcome", "measure"]
    merged = exported.merge(published.rename(columns={"scope": "level", "scale": "measure"}),
                            on=key, suffixes=("", "_published"))
    assert len(merged) == len(published)
    np.testing.assert_allclose(merged["share"], merged["share_published"], rtol=1e-12)
    package = json.loads((tmp_path / "datapackage.json").read_text())
    resource = next(r for r in package["resources"] if r["name"] == "drivers-csv")
    assert resource["title"].startswith("What goes with seeking help early")
    share = next(f for f in resource["schema"]["fields"] if f["name"] == "share")
    assert "general dominance" in share["description"] and "not a cause" in share["description"]
    # the default export leaves the driver models out (they are not cells)
    default = culture("export", "--db", settings.db_path, "--out", tmp_path / "all")
    assert default.exit_code == 0 and not (tmp_path / "all" / "culture_drivers.csv").exists()


@pytest.mark.slow
@pytest.mark.parametrize("username", ACCOUNTS)
def test_the_drivers_page_has_no_serious_accessibility_violation(server, username):
    from tests.live import chromium
    from tests.test_accessibility import WIDTHS, _at_width, serious_violations

    base, _ = server
    browser = chromium(width=1400)
    browser.set_script_timeout(120)
    found = {}
    try:
        _open_as(browser, base, username, "/drivers")
        for width, metrics in WIDTHS.items():
            _at_width(browser, metrics)
            if lines := serious_violations(browser):
                found[width] = lines
    finally:
        browser.quit()
    assert found == {}


def test_a_site_whose_count_is_hidden_gets_no_model_of_its_own(generated, instrument):
    from pipeline.drivers import driver_table
    from pipeline.quality import analysis_view

    settings, _ = generated
    with PublishedLayer.open(settings.published_path) as layer:
        cells = layer.query("select * from cells")
    hidden = cells.copy()
    hidden.loc[(hidden["unit"] == "S01") & (hidden["measure_kind"] == "responses"),
               "suppressed"] = True   # as if hidden to protect a smaller group
    with open_store(settings.db_path, read_only=True) as con:
        analysis_view(con, settings.exclude_flagged)
        shown, without = driver_table(con, instrument, cells), driver_table(con, instrument,
                                                                            hidden)
    assert "S01" in set(shown["unit"]) and "S01" not in set(without["unit"])
    assert len(shown) - len(without) == 2 * 8   # its two linear models, eight scales each
