"""The dashboard in a real headless Chromium, served by a real `culture serve` process.

A director sees their own site and anonymous peers on every page, is refused another
site by URL and by a crafted callback request; an admin sees names. Each page's
screenshot is saved under tests/screenshots/ for review.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dashboard.accounts import AccountBook
from tests.live import chromium, free_port, start_culture, stop, submit_sign_in

pytestmark = pytest.mark.slow   # a real browser against a served dashboard

SCREENSHOTS = Path(__file__).parent / "screenshots"
PAGES = ["/", "/principle", "/benchmark", "/trends", "/equity", "/quality"]
PASSWORDS = {"dir-a": "director password", "boss": "administrator password"}


@pytest.fixture(scope="module")
def server(published_sample):
    settings, _ = published_sample
    book = AccountBook(settings.accounts_path)
    book.add("dir-a", "director", PASSWORDS["dir-a"], "A")
    book.add("boss", "admin", PASSWORDS["boss"])
    port = free_port()
    process = start_culture("serve", "--db", str(settings.db_path), "--port", str(port),
                            port=port)
    yield f"http://127.0.0.1:{port}", settings
    stop(process)


@pytest.fixture
def browser():
    browser = chromium()
    yield browser
    browser.quit()


def _sign_in(browser, base: str, username: str) -> None:
    submit_sign_in(browser, base, username, PASSWORDS[username])
    _wait_for_heading(browser)


def _wait_for_heading(browser, timeout: float = 30) -> str:
    """Text of the page once Dash has rendered its heading (and no graph is pending)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, timeout).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "#page h1, #page h2")))
    WebDriverWait(browser, timeout).until(lambda b: not b.find_elements(
        By.CSS_SELECTOR, "[data-dash-is-loading='true']"))
    time.sleep(0.5)  # let plotly finish drawing before a screenshot
    return browser.find_element(By.ID, "page").text


def _site_names(settings) -> dict[str, str]:
    import duckdb

    with duckdb.connect(str(settings.published_path), read_only=True) as con:
        return dict(con.execute("select site_code, name from sites").fetchall())


def test_director_sees_own_site_and_anonymous_peers_on_every_page(server, browser):
    base, settings = server
    names = _site_names(settings)
    _sign_in(browser, base, "dir-a")
    SCREENSHOTS.mkdir(exist_ok=True)
    for path in PAGES:
        browser.get(f"{base}{path}?site=A")
        text = _wait_for_heading(browser)
        assert names["A"] in text, path
        for code, name in names.items():
            if code != "A":
                assert name not in browser.page_source, (path, name)
        browser.save_screenshot(str(SCREENSHOTS / f"director{path.replace('/', '_') or '_'}"
                                                  ".png"))
    browser.get(f"{base}/benchmark?site=A")
    _wait_for_heading(browser)
    source = browser.page_source
    assert "Peer 1" in source and "Peer 6" in source and "Peer 7" not in source


def test_director_changes_the_wave_and_every_page_follows(server, browser):
    """The wave selector moves a director's view (their site is fixed, so the page has no
    site selector): the URL, the heading and the figures follow, with no console error."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base, _ = server
    _sign_in(browser, base, "dir-a")
    for path in ("/", "/benchmark"):  # (Trends shows every wave whichever is chosen)
        browser.get(f"{base}{path}?site=A&wave=2026")
        before = _wait_for_heading(browser)
        browser.find_element(By.ID, "wave-select").click()
        next(o for o in browser.find_elements(By.CSS_SELECTOR, "[role='option']")
             if o.text == "2024").click()
        WebDriverWait(browser, 30).until(lambda b: "wave=2024" in b.current_url)
        after = _wait_for_heading(browser)
        assert "site=A" in browser.current_url, path
        assert after != before and "2024" in after.splitlines()[0], (path, after[:200])
    errors = [entry["message"] for entry in browser.get_log("browser")
              if entry["level"] == "SEVERE"]
    assert errors == []


def test_director_is_refused_another_site_by_url_and_by_crafted_callback(server, browser):
    base, settings = server
    names = _site_names(settings)
    _sign_in(browser, base, "dir-a")
    browser.get(f"{base}/benchmark?site=B")
    text = _wait_for_heading(browser)
    assert "Not available" in text and "you do not have access to site 'B'" in text
    assert names["B"] not in browser.page_source
    # The same session cookie, a hand-made request to Dash's callback endpoint.
    status, body = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch('/_dash-update-component', {method: 'POST',
              headers: {'Content-Type': 'application/json'},
              body: JSON.stringify({output: 'benchmark-body.children',
                    outputs: {id: 'benchmark-body', property: 'children'},
                    inputs: [{id: 'benchmark-measure', property: 'value',
                              value: 'scale:psysafety'}],
                    state: [{id: 'url', property: 'search', value: '?site=B&wave=2026'}],
                    changedPropIds: ['benchmark-measure.value']})})
          .then(r => r.text().then(t => done([r.status, t])));""")
    assert status == 403 and "site 'B'" in body and "psysafety" not in body
    browser.set_window_size(820, 1180)  # a tablet, portrait
    browser.get(f"{base}/?site=A")
    _wait_for_heading(browser)
    browser.save_screenshot(str(SCREENSHOTS / "director_tablet_overview.png"))


def test_admin_sees_site_names(server, browser):
    base, settings = server
    names = _site_names(settings)
    _sign_in(browser, base, "boss")
    browser.get(f"{base}/benchmark?site=D")
    text = _wait_for_heading(browser)
    assert names["D"] in text
    source = browser.page_source
    assert sum(name in source for name in names.values()) >= 6
    assert "Peer 1" not in source
    browser.save_screenshot(str(SCREENSHOTS / "admin_benchmark.png"))


def test_signed_out_browser_is_sent_to_sign_in(server, browser):
    base, _ = server
    browser.get(base + "/equity?site=A")
    assert "/login" in browser.current_url
    from selenium.webdriver.common.by import By
    assert browser.find_element(By.ID, "password").get_attribute("type") == "password"
