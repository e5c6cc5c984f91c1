"""Plain language: the glossary explains every term the pages use, a director's pages carry
no unexplained jargon, and the psychometric and statistical detail lives on the Methods
page, which a director is refused (403) over real HTTP."""

from __future__ import annotations

import json
import re
import threading
from urllib.parse import urlencode

import duckdb
import plotly.utils
import pytest
from werkzeug.serving import make_server

from dashboard.accounts import AccountBook, LoginThrottle
from dashboard.app import create_app, render_page
from dashboard.pages.benchmark import benchmark_body
from dashboard.pages.glossary import TERMS, VERDICT_MEANINGS
from dashboard.view import view_from_request
from published.layout import NOT_COMPARED, VERDICTS
from published.scores import SCORE_DEFINITION
from tests.live import CookieClient
from tests.pages import markdown_tables, signed_in

PASSWORD = "a long enough password"
#: The pages a director sees (the glossary aside).
DIRECTOR_PAGES = ["/", "/principle", "/benchmark", "/trends", "/equity", "/quality",
                  "/drivers"]
#: Words a director must never meet on those pages: each is explained in the glossary and
#: stated exactly on the Methods page.
JARGON = ("ICC", "rwg", "KMO", "HTMT", "RMSEA", "CFI", "|z|", "Benjamini", "Welch",
          "overdispersion", "random effects", "q (BH)", "Cronbach", "alpha", "McFadden",
          "R2", "R^2", "dominance", "logistic", "bootstrap")
#: Every term the pages rest on, by its glossary anchor, section by section.
GLOSSARY_TERMS = {
    "Scores and measures": ["score", "principle", "scale", "favourable", "drivers",
                            "confidence-interval", "target", "gap", "weighted",
                            "response-rate"],
    "Comparing with other sites": ["verdict", "funnel", "prediction-interval",
                                   "between-site-variation", "caterpillar", "shrunken-mean",
                                   "peer-group", "quartiles"],
    "Change over time": ["significant-change", "false-discovery-rate", "adjusted-p", "welch"],
    "Groups within a site": ["equity", "not-stated"],
    "Reliability and validity": ["reliability", "read-as-whole", "agreement", "icc",
                                 "validation", "data-quality"],
    "Privacy rules": ["minimum-group", "hidden-cells", "peer-bands", "peer-spread"],
}


@pytest.fixture(scope="module")
def app(published_sample):
    settings, _ = published_sample
    book = AccountBook(settings.accounts_path)
    for username, role, site in (("admin", "admin", None), ("dir-a", "director", "A"),
                                 ("res", "researcher", None)):
        book.add(username, role, PASSWORD, site)
    return create_app(settings, secret_key=b"test secret", throttle=LoginThrottle(free=3))


@pytest.fixture(scope="module")
def published(published_sample):
    settings, _ = published_sample
    con = duckdb.connect(str(settings.published_path), read_only=True)
    yield con
    con.close()


def _tree(component):
    return json.loads(json.dumps(component, cls=plotly.utils.PlotlyJSONEncoder))


def visible_text(component) -> str:
    """Every string a reader can see in a rendered page (text, tables, figure titles and
    hover text), Markdown escapes dropped; links' targets and ids are not text."""
    found: list[str] = []

    def walk(node, key=None):
        if isinstance(node, dict):
            for k, value in node.items():
                if k not in ("href", "id", "className", "type", "namespace"):
                    walk(value, k)
        elif isinstance(node, list):
            for value in node:
                walk(value, key)
        elif isinstance(node, str):
            found.append(node)

    walk(_tree(component))
    return re.sub(r"\\(.)", r"\1", "\n".join(found))


def links(component) -> list[str]:
    hrefs: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("props"), dict) and "href" in node["props"]:
                hrefs.append(node["props"]["href"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(_tree(component))
    return hrefs


def count_type(component, kind: str) -> int:
    return json.dumps(_tree(component)).count(f'"type": "{kind}"')


# -- the glossary ------------------------------------------------------------------------

def test_the_glossary_has_an_anchored_entry_for_every_term(app):
    listed = [term for terms in GLOSSARY_TERMS.values() for term in terms]
    assert sorted(TERMS) == sorted(listed)
    with signed_in(app, "dir-a"):
        page, nav = render_page("/glossary", "")
    tree = json.dumps(_tree(page))
    text = visible_text(page)
    for section, terms in GLOSSARY_TERMS.items():
        assert section in text
        for term in terms:
            assert f'"id": "{term}"' in tree, term
            assert TERMS[term].name in text
    assert "Glossary" in visible_text(nav) and "Methods" not in visible_text(nav)


def test_the_glossary_states_the_score_the_verdicts_and_the_privacy_rules(app):
    assert set(VERDICT_MEANINGS) == {*VERDICTS, NOT_COMPARED}
    with signed_in(app, "dir-a"):
        page, _ = render_page("/glossary", "")
    text = visible_text(page)
    assert SCORE_DEFINITION in text
    for word, meaning in VERDICT_MEANINGS.items():
        assert f"{word}\n{meaning}" in text, word
    # k of the published sample is 10; peers' spread from 10 sites.
    assert "No result is shown for a group of fewer than 10 people" in text
    assert "worked out by subtraction" in text
    assert "only when it has at least 10 sites" in text
    assert "{k}" not in text


# -- a director's pages ------------------------------------------------------------------

@pytest.mark.parametrize("path", DIRECTOR_PAGES)
def test_a_directors_pages_carry_no_jargon_and_explain_each_chart(app, path):
    with signed_in(app, "dir-a"):
        page, _ = render_page(path, "?site=A&wave=2026")
        pages = [page]
        if path == "/benchmark":
            view = view_from_request("/benchmark", "?site=A&wave=2026", True)
            pages += [benchmark_body(view, "principle:P1"),
                      benchmark_body(view, "scale:stigma")]
    for shown in pages:
        text = visible_text(shown)
        for word in JARGON:
            assert word not in text, (path, word)
        # One "What this means" for every chart, and each links to the glossary.
        charts = count_type(shown, "Figure")
        assert text.count("What this means: ") >= max(charts, 1), path
        glossary = [h for h in links(shown) if h.startswith("/glossary#")]
        assert glossary and all(h.split("#")[1] in TERMS for h in glossary), path
    assert "/methods" not in links(page)


def test_the_quality_page_for_a_director_is_plain_and_has_no_psychometric_table(
        app, published):
    with signed_in(app, "dir-a"):
        page, _ = render_page("/quality", "?site=A&wave=2026")
    text = visible_text(page)
    assert markdown_tables(page) == {}
    n, flagged = published.execute(
        "select n_respondents, n_flagged from data_quality where site_code = 'A' "
        "and wave = 2026").fetchone()
    assert f"{flagged:,} of {n:,} people gave answers that look careless" in text
    agreement = published.execute(
        "select m.name, a.reportable from site_agreement a join measures m "
        "on m.measure = a.scale and m.measure_kind = 'scale' "
        "where site_code = 'A' and wave = 2026").fetchall()
    assert "Can this site's results be read as a whole?" in text
    for name, reportable in agreement:
        assert (f"{name}: yes." if reportable else f"{name}: read with care.") in text
    assert (f"{sum(r for _, r in agreement)} of {len(agreement)} scales give a result that "
            "stands for the site as a whole") in text
    assert "/glossary#read-as-whole" in links(page) and "/methods" not in links(page)
    with signed_in(app, "admin"):
        admin, _ = render_page("/quality", "?site=A&wave=2026")
    assert "/methods" in links(admin) and markdown_tables(admin) == {}


# -- the Methods page --------------------------------------------------------------------

def test_methods_holds_the_psychometric_tables_and_the_rules(app, published):
    with signed_in(app, "admin"):
        page, nav = render_page("/methods", "?site=A&wave=2026")
    assert "Methods" in visible_text(nav)
    tables = markdown_tables(page)
    reliability = tables["Reliability per scale"]
    alpha = dict(published.execute(
        "select m.name, r.alpha from reliability r join measures m on m.measure = r.scale "
        "and m.measure_kind = 'scale' where level = 'site_wave' and site_code = 'A' "
        "and wave = 2026").fetchall())
    assert dict(zip(reliability["Scale"], reliability["Alpha"].astype(float))) == \
        pytest.approx(alpha, abs=0.005)
    agreement = tables["Agreement within the site (reportable when the reliability of the "
                       "site mean is at least .70)"]
    assert len(agreement) == len(alpha) and "Agreement rwg(j)" in agreement.columns
    icc = tables["Share of variance between sites (ICC(1)) and reliability of site means "
                 "(ICC(2))"]
    assert {"ICC(1)", "ICC(2)"} <= set(icc.columns)
    validation = tables["Structure and validity checks against stated criteria"]
    kmo_value = published.execute("select value from validation where "
                                  "\"check\" = 'KMO sampling adequacy'").fetchone()[0]
    shown = validation.loc[validation["Check"] == "KMO sampling adequacy", "Value"].iloc[0]
    assert float(shown) == pytest.approx(kmo_value, abs=0.0005)
    assert {"CFA: CFI", "CFA: RMSEA"} <= set(validation["Check"])
    text = visible_text(page)
    assert "outside the others' prediction interval, |z| > 2.15" in text
    assert "Benjamini-Hochberg" in text and "Welch" in text and "empirical-Bayes" in text


def test_methods_for_a_researcher_covers_all_sites_without_names(app, published):
    sites = published.execute("select name, site_type, region from sites").fetchall()
    # Nothing that would single a site out: names, site types, regions.
    names = {value for row in sites for value in row} | {t.replace("_", " ")
                                                          for _, t, _ in sites}
    with signed_in(app, "res"):
        page, _ = render_page("/methods", "?wave=2026")
    tables = markdown_tables(page)
    overall = published.execute("select count(*) from reliability "
                                "where level = 'overall'").fetchone()[0]
    assert len(tables["Reliability per scale"]) == overall
    assert not any(caption.startswith("Agreement within the site") for caption in tables)
    assert not any(name in visible_text(page) for name in names)


class _Server:
    """create_app on 127.0.0.1 in a thread of this process (werkzeug's threaded server)."""

    def __init__(self, app):
        self.http = make_server("127.0.0.1", 0, app.server, threaded=True)
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()

    def signed_in(self, username: str) -> CookieClient:
        client = CookieClient(self.http.server_port)
        _, _, page = client.send("GET", "/login")
        token = re.search(rb'name="csrf" value="([^"]+)"', page).group(1).decode()
        form = urlencode({"csrf": token, "username": username, "password": PASSWORD,
                          "next": "/"})
        status, _, _ = client.send("POST", "/login", form.encode(), {
            "Content-Type": "application/x-www-form-urlencoded"})
        assert status == 302
        return client

    def stop(self):
        self.http.shutdown()
        self.thread.join()


def _router(pathname: str, search: str) -> bytes:
    """The request Dash's renderer sends to draw a page (the router callback)."""
    return json.dumps({
        "output": "..page.children...nav.children..",
        "outputs": [{"id": "page", "property": "children"},
                    {"id": "nav", "property": "children"}],
        "inputs": [{"id": "url", "property": "pathname", "value": pathname},
                   {"id": "url", "property": "search", "value": search}],
        "changedPropIds": ["url.pathname"]}).encode()


def test_methods_is_refused_to_a_director_over_http_and_shown_to_the_others(app):
    server = _Server(app)
    try:
        director = server.signed_in("dir-a")
        status, headers, page = director.send("GET", "/methods?site=A&wave=2026")
        assert status == 403 and b"not available to the director role" in page
        status, _, text = director.send("POST", "/_dash-update-component",
                                        _router("/methods", "?site=A&wave=2026"),
                                        {"Content-Type": "application/json"})
        assert status == 403 and text == b"the page /methods is not available to the " \
                                         b"director role"
        assert director.send("GET", "/glossary")[0] == 200
        for username, search in (("admin", "?site=A&wave=2026"), ("res", "?wave=2026")):
            client = server.signed_in(username)
            assert client.send("GET", "/methods" + search)[0] == 200, username
            status, _, body = client.send("POST", "/_dash-update-component",
                                          _router("/methods", search),
                                          {"Content-Type": "application/json"})
            assert status == 200 and b"Structure and validity checks" in body, username
    finally:
        server.stop()


def test_a_glossary_link_lands_on_its_entry_in_a_browser(app):
    # Dash draws the page after the document loads, so the browser's own jump to the
    # anchor finds nothing: assets/glossary_anchor.js scrolls once the entry is drawn.
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.live import chromium

    browser = chromium(1280, 800)
    server = _Server(app)
    base = f"http://127.0.0.1:{server.http.server_port}"
    try:
        browser.get(base + "/login")
        browser.find_element(By.NAME, "username").send_keys("dir-a")
        browser.find_element(By.NAME, "password").send_keys(PASSWORD)
        browser.find_element(By.CSS_SELECTOR, "form button").click()
        WebDriverWait(browser, 20).until(lambda b: "/login" not in b.current_url)
        browser.get(base + "/glossary#equity")
        top = "return document.getElementById('equity').getBoundingClientRect().top"
        WebDriverWait(browser, 20).until(
            lambda b: b.find_elements(By.ID, "equity") and -5 < b.execute_script(top) < 200)
        assert browser.execute_script("return window.scrollY") > 1000  # far down the page
    finally:
        browser.quit()
        server.stop()
