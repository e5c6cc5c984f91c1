"""`culture serve` for real: a production WSGI server (waitress), and the dashboard under
a path prefix as a reverse proxy that passes /culture/... on unchanged would reach it.

Each test talks HTTP to a real `culture serve` process on 127.0.0.1, keeping cookies by
hand (the prefixed server sets Secure cookies, as behind a TLS proxy, which a client
library would not send back over plain HTTP).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import pytest

from dashboard.accounts import AccountBook
from tests.live import CookieClient, chromium, free_port, start_culture

pytestmark = pytest.mark.slow   # served processes

PASSWORD = "administrator password"
PREFIX = "/culture"
ROUTER = "..page.children...nav.children.."


class Client(CookieClient):
    """One browser: plain HTTP, no redirects followed, cookies kept by name."""

    request = CookieClient.send

    def get(self, path: str):
        status, headers, content = self.request("GET", path)
        return status, headers, content.decode("utf-8", "replace")

    def sign_in(self, login_path: str, next_path: str = "/"):
        """GET the form (its CSRF token and action), POST the credentials to its action."""
        status, _, page = self.get(login_path + "?" + urlencode({"next": next_path}))
        assert status == 200
        action = re.search(r'<form method="post" action="([^"]+)"', page).group(1)
        token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        form = urlencode({"csrf": token, "username": "boss", "password": PASSWORD,
                          "next": next_path})
        return action, self.request("POST", action, form.encode(),
                                    {"Content-Type": "application/x-www-form-urlencoded"})


def _serve(settings, tmp_path: Path, *options: str):
    """A running `culture serve`: (port, process, file holding its output)."""
    port = free_port()
    log = tmp_path / f"serve-{port}.log"
    with open(log, "wb") as sink:
        process = start_culture("serve", "--db", str(settings.db_path), "--port", str(port),
                                *options, port=port, output=sink)
    return port, process, log


@pytest.fixture(scope="module")
def servers(published_sample, tmp_path_factory):
    """One server at the root, one under /culture behind a (pretended) TLS proxy."""
    settings, _ = published_sample
    AccountBook(settings.accounts_path).add("boss", "admin", PASSWORD)
    tmp_path = tmp_path_factory.mktemp("serve")
    root = _serve(settings, tmp_path)
    prefixed = _serve(settings, tmp_path, "--url-prefix", PREFIX, "--trust-proxy",
                      "--secure-cookies")
    yield {"root": root, "prefixed": prefixed}
    for _, process, _ in (root, prefixed):
        process.kill()
        process.wait()


def test_served_by_waitress_without_the_development_server_warning(servers):
    port, _, log = servers["root"]
    client = Client(port)
    status, headers, page = client.get("/login")
    assert status == 200 and 'action="/login"' in page
    assert headers["Server"] == "waitress"
    _, (status, headers, _) = client.sign_in("/login")
    assert status == 302 and headers["Location"] == "/"
    status, headers, page = client.get("/")
    assert status == 200 and headers["Server"] == "waitress"
    assert json.loads(_dash_config(page))["requests_pathname_prefix"] == "/"
    output = log.read_text()
    assert f"dashboard: http://127.0.0.1:{port}/ " in output
    assert "development server" not in output.lower()
    assert "WARNING" not in output


def _dash_config(page: str) -> str:
    return re.search(r'<script id="_dash-config" type="application/json">(.*?)</script>',
                     page, re.S).group(1)


def test_under_a_prefix_sign_in_redirects_and_pages_stay_under_it(servers):
    port, _, log = servers["prefixed"]
    assert f"dashboard: http://127.0.0.1:{port}/culture/ " in log.read_text()
    client = Client(port)
    status, headers, _ = client.get("/culture/")
    assert status == 302 and headers["Location"] == "/culture/login?next=%2F%3F"
    status, headers, _ = client.get("/culture/benchmark?site=A")
    assert status == 302
    assert headers["Location"] == "/culture/login?" + urlencode(
        {"next": "/benchmark?site=A"})
    status, _, page = client.get(headers["Location"])
    assert status == 200
    assert '<form method="post" action="/culture/login">' in page
    assert 'href="/culture/assets/style.css"' in page
    status, headers, css = client.get("/culture/assets/style.css")
    assert status == 200 and headers["Content-Type"].startswith("text/css") and "{" in css

    action, (status, headers, _) = client.sign_in("/culture/login", "/benchmark?site=A")
    assert action == "/culture/login"
    assert status == 302 and headers["Location"] == "/culture/benchmark?site=A"
    cookies = {name: morsel for header in headers.get_all("Set-Cookie")
               for name, morsel in SimpleCookie(header).items()}
    # The cookies go to the dashboard's path only, and only over HTTPS (--secure-cookies).
    assert cookies["culture_session"]["path"] == "/culture"
    assert cookies["culture_device"]["path"] == "/culture/login"
    assert all(morsel["secure"] and morsel["httponly"] for morsel in cookies.values())

    status, _, page = client.get("/culture/")
    assert status == 200
    config = json.loads(_dash_config(page))
    assert config["requests_pathname_prefix"] == "/culture/"
    assert config["url_base_pathname"] is None or config["url_base_pathname"] == "/culture/"
    scripts = re.findall(r'<script src="([^"]+)"', page)
    assert scripts and all(src.startswith("/culture/") for src in scripts)
    assert client.get(scripts[0])[0] == 200

    status, _, layout = client.get("/culture/_dash-layout")
    assert status == 200
    assert "/culture/logout" in _hrefs(json.loads(layout))


def _hrefs(tree) -> list[str]:
    """Every href in a Dash component tree (as JSON)."""
    if isinstance(tree, list):
        return [href for node in tree for href in _hrefs(node)]
    if not isinstance(tree, dict):
        return []
    props = tree.get("props", {})
    own = [props["href"]] if isinstance(props.get("href"), str) else []
    return own + _hrefs(props.get("children"))


def test_under_a_prefix_the_router_links_and_download_work(servers):
    port, _, _ = servers["prefixed"]
    client = Client(port)
    client.sign_in("/culture/login")
    body = {"output": ROUTER,
            "outputs": [{"id": "page", "property": "children"},
                        {"id": "nav", "property": "children"}],
            "inputs": [{"id": "url", "property": "pathname", "value": "/culture/export"},
                       {"id": "url", "property": "search", "value": "?wave=2026"}],
            "changedPropIds": ["url.pathname"]}
    status, _, content = client.request("POST", "/culture/_dash-update-component",
                                        json.dumps(body).encode(),
                                        {"Content-Type": "application/json"})
    assert status == 200
    answer = json.loads(content)["response"]
    # The browser's path is mapped to the page (not the first page for an unknown path).
    assert "Export aggregates" in content.decode()
    hrefs = _hrefs(answer["page"]["children"]) + _hrefs(answer["nav"]["children"])
    nav = {href.split("?")[0] for href in hrefs if "download" not in href}
    assert {"/culture/", "/culture/benchmark", "/culture/export"} <= nav
    assert "/culture/benchmark?wave=2026" in hrefs
    downloads = [href for href in hrefs if "download" in href]
    assert downloads and all(href.startswith("/culture/download/aggregates?")
                             for href in downloads)
    status, headers, archive = client.request("GET", downloads[0])
    assert status == 200 and archive[:2] == b"PK"

    # A typed URL for a page is served under the prefix too, and a refusal page links
    # back under it.
    assert client.get("/culture/benchmark?site=A")[0] == 200
    status, _, refused = client.get("/culture/benchmark?wave=1999")
    assert status == 403 and 'href="/culture/logout"' in refused

    status, headers, _ = client.get("/culture/logout")
    assert status == 302 and headers["Location"] == "/culture/login"
    assert client.get("/culture/_dash-layout")[0] == 401


def test_under_a_prefix_nothing_outside_it_is_served(servers):
    port, _, _ = servers["prefixed"]
    client = Client(port)
    for path in ("/", "/login", "/assets/style.css", "/_dash-layout", "/culturex/login",
                 "/download/aggregates?level=site&format=csv"):
        status, headers, _ = client.get(path)
        assert status == 404, path
        assert headers["Server"] == "waitress"


def test_a_prefix_that_is_not_a_plain_path_is_one_line_error(published_sample):
    settings, _ = published_sample
    culture = Path(sys.executable).with_name("culture")
    result = subprocess.run([str(culture), "serve", "--db", str(settings.db_path),
                             "--url-prefix", "/culture?x=1"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "error: URL prefix '/culture?x=1' is not a path like /culture (a leading /, letters, "
        "digits, - _ . and / only)"]
    assert "Traceback" not in result.stdout + result.stderr


def test_under_a_prefix_trust_proxy_still_takes_the_client_from_the_proxy(servers):
    port, _, _ = servers["prefixed"]

    def sign_in(address: str, password: str) -> int:
        client = Client(port)
        status, _, page = client.get("/culture/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        form = urlencode({"csrf": token, "username": "boss", "password": password})
        return client.request("POST", "/culture/login", form.encode(), {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Forwarded-For": address})[0]

    # waitress passes X-Forwarded-For on (it strips it unless told the proxy is trusted):
    # guesses through the proxy for one client do not hold another.
    assert [sign_in("198.51.100.7", f"guess {i}") for i in range(5)] == [401] * 5
    assert sign_in("198.51.100.7", PASSWORD) == 429
    assert sign_in("203.0.113.9", PASSWORD) == 302


def test_under_a_prefix_a_browser_signs_in_and_moves_between_pages(servers):
    """The whole round in headless Chromium: the sign-in form, Dash's own requests for
    its layout, scripts and callbacks, and a click on a navigation link."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    port, _, _ = servers["prefixed"]
    browser = chromium()
    try:
        # Chromium keeps Secure cookies from http://127.0.0.1 (a potentially trustworthy
        # origin), so --secure-cookies does not stop this plain-HTTP round.
        base = f"http://127.0.0.1:{port}"
        browser.get(base + "/culture/benchmark?site=A")
        assert browser.current_url.startswith(base + "/culture/login?next=")
        browser.find_element(By.ID, "username").send_keys("boss")
        browser.find_element(By.ID, "password").send_keys(PASSWORD)
        browser.find_element(By.ID, "sign-in").click()
        # Dash redraws the page as it settles (the app adds the wave it chose to the
        # URL), so elements are found afresh until they say what is expected.
        wait = WebDriverWait(browser, 30, ignored_exceptions=(StaleElementReferenceException,))
        heading = lambda b: b.find_element(By.CSS_SELECTOR, "#page h1").text  # noqa: E731
        # The Benchmark page (the router knew the path under the prefix), not the Overview.
        wait.until(lambda b: heading(b).endswith("against all sites, 2026"))
        wait.until(lambda b: b.current_url == base + "/culture/benchmark?site=A&wave=2026")
        wait.until(lambda b: b.find_element(
            By.CSS_SELECTOR, "#nav a[href^='/culture/trends']").click() or True)
        wait.until(lambda b: "change across waves" in heading(b))
        assert browser.current_url.startswith(base + "/culture/trends?")
        # The browser's own guess at /favicon.ico (the sign-in page names none) is outside
        # the prefix: a proxy sends it elsewhere, here it is the 404 it should be.
        errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"
                  and not entry["message"].startswith(base + "/favicon.ico ")]
        assert errors == []
    finally:
        browser.quit()


def test_url_prefix_from_flag_then_environment():
    from survey.errors import SettingsError
    from survey.settings import resolve_settings

    assert resolve_settings(environ={}).url_prefix == ""
    assert resolve_settings(environ={"CULTURE_URL_PREFIX": "/culture/"}).url_prefix == "/culture"
    assert resolve_settings(url_prefix="/a/b", environ={"CULTURE_URL_PREFIX": "/c"}
                            ).url_prefix == "/a/b"
    assert resolve_settings(url_prefix="/", environ={}).url_prefix == ""
    for bad in ("culture", "/cul ture", "/../x", "//host", "/a?b", "/%2e"):
        with pytest.raises(SettingsError, match="is not a path like /culture"):
            resolve_settings(url_prefix=bad, environ={})
