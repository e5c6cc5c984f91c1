"""The dashboard attacked over real HTTP: a server on 127.0.0.1 (in a thread, or a real
`culture serve`), clients from several loopback addresses, the real `culture users`
commands run beside it, and a real headless Chromium for what a person sees.

Sign-in guessing (throttle races, locking the real user out, forged client addresses),
replayed session cookies (after sign-out, set-password, remove), refusals (403) and
malformed callback bodies (400), and the security headers and their CSP in a browser.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlencode

import duckdb
import pytest
from werkzeug.serving import make_server

from dashboard.accounts import AccountBook, LoginThrottle
from dashboard.app import create_app
from survey.settings import Settings
from tests.live import (CookieClient, chromium, free_port, start_culture, stop,
                        submit_sign_in)

PASSWORD = "a long enough password"
CULTURE = str(Path(sys.executable).with_name("culture"))
ROUTER = "..page.children...nav.children.."
SITE_PAGES = ["/", "/principle", "/benchmark", "/trends", "/equity", "/quality"]


@pytest.fixture(scope="module")
def settings(published_sample) -> Settings:
    settings, _ = published_sample
    book = AccountBook(settings.accounts_path)
    for username, role, site in (("dir-a", "director", "A"), ("res", "researcher", None),
                                 ("admin", "admin", None)):
        book.add(username, role, PASSWORD, site)
    return settings


@pytest.fixture(scope="module")
def site_names(settings) -> dict[str, str]:
    with duckdb.connect(str(settings.published_path), read_only=True) as con:
        return dict(con.execute("select site_code, name from sites").fetchall())


class Server:
    """create_app served by werkzeug's threaded server on 127.0.0.1 (a thread of this
    process, so a test can hold the throttle's clock)."""

    def __init__(self, settings: Settings, throttle: LoginThrottle | None = None):
        self.app = create_app(settings, throttle=throttle)
        self.http = make_server("127.0.0.1", 0, self.app.server, threaded=True)
        self.port = self.http.server_port
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()

    def client(self, address: str = "127.0.0.1") -> "Client":
        return Client(self.port, address)

    def stop(self) -> None:
        self.http.shutdown()
        self.thread.join()


@pytest.fixture
def serve(settings):
    started = []

    def start(throttle=None, **changes) -> Server:
        server = Server(replace(settings, **changes), throttle)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


class Client(CookieClient):
    """A browser-like HTTP client (tests.live.CookieClient) that reads pages as text."""

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict | None = None):
        status, response_headers, content = self.send(method, path, body, headers)
        return status, response_headers, content.decode("utf-8", "replace")

    def get(self, path: str, headers: dict | None = None):
        return self.request("GET", path, headers=headers)

    def post_json(self, path: str, body) -> tuple:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.request("POST", path, data, {"Content-Type": "application/json"})

    def csrf(self, headers: dict | None = None) -> str:
        _, _, page = self.get("/login", headers)
        return re.search(r'name="csrf" value="([^"]+)"', page).group(1)

    def sign_in(self, username: str, password: str = PASSWORD, token: str | None = None,
                headers: dict | None = None):
        form = urlencode({"csrf": token or self.csrf(headers), "username": username,
                          "password": password, "next": "/"})
        return self.request("POST", "/login", form.encode(), {
            "Content-Type": "application/x-www-form-urlencoded", **(headers or {})})


def router_body(pathname: str, search: str) -> dict:
    """The request Dash's renderer sends to draw a page (the router callback)."""
    return {"output": ROUTER,
            "outputs": [{"id": "page", "property": "children"},
                        {"id": "nav", "property": "children"}],
            "inputs": [{"id": "url", "property": "pathname", "value": pathname},
                       {"id": "url", "property": "search", "value": search}],
            "changedPropIds": ["url.pathname"]}


def statuses(results) -> list[int]:
    return sorted(status for status, _, _ in results)


# -- item 5: sign-in throttling ------------------------------------------------------

def test_concurrent_guesses_after_the_free_ones_are_checked_one_at_a_time(serve):
    now = [1000.0]
    server = serve(LoginThrottle(free=3, clock=lambda: now[0]))
    attacker = server.client("127.0.0.2")
    assert [attacker.sign_in("dir-a", f"guess {i}")[0] for i in range(3)] == [401] * 3
    now[0] += 2.5  # the 2-second wait after the free failures is over
    # Ten guesses at once, each with its own form token, released together.
    clients = [server.client("127.0.0.2") for _ in range(10)]
    tokens = [c.csrf() for c in clients]
    start, results = threading.Barrier(10), [None] * 10

    def guess(i):
        start.wait()
        results[i] = clients[i].sign_in("dir-a", f"concurrent guess {i}", tokens[i])

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # One guess was let through to the password check; nine were refused unchecked.
    assert statuses(results) == [401] + [429] * 9
    assert all("try again in" in text for status, _, text in results if status == 429)


def test_a_guesser_at_another_address_cannot_lock_the_real_user_out(serve):
    server = serve(LoginThrottle(free=3, clock=lambda: 1000.0))
    attacker = server.client("127.0.0.2")
    guesses = [attacker.sign_in("dir-a", f"guess {i}") for i in range(8)]
    assert [g[0] for g in guesses] == [401] * 3 + [429] * 5
    # The attacker stays held even with the right password ...
    assert attacker.sign_in("dir-a")[0] == 429
    # ... while the real user, elsewhere, signs in and opens their pages.
    user = server.client("127.0.0.3")
    status, headers, _ = user.sign_in("dir-a")
    assert status == 302 and headers["Location"] == "/"
    assert user.post_json("/_dash-update-component", router_body("/", "?site=A"))[0] == 200
    assert all(1 <= int(g[1]["Retry-After"]) <= 60 for g in guesses[3:])


def test_guessing_from_many_addresses_hits_a_ceiling_a_known_browser_is_exempt_from(serve):
    server = serve(LoginThrottle(free=3, account_free=6, clock=lambda: 1000.0))
    laptop = server.client("127.0.0.3")
    assert laptop.sign_in("dir-a")[0] == 302  # the real user's usual browser
    laptop.get("/logout")
    for address in ("127.0.0.10", "127.0.0.11"):
        bot = server.client(address)
        assert [bot.sign_in("dir-a", f"guess {i}")[0] for i in range(3)] == [401] * 3
    # Six failures over every address: a seventh address is held at once ...
    assert server.client("127.0.0.12").sign_in("dir-a", "another guess")[0] == 429
    # ... and so is the real user on a new device, for at most the bounded wait,
    status, headers, _ = server.client("127.0.0.4").sign_in("dir-a")
    assert status == 429 and int(headers["Retry-After"]) <= 60
    # but their usual browser, even from a new address, gets in.
    laptop.address = "127.0.0.5"
    assert laptop.sign_in("dir-a")[0] == 302


def test_x_forwarded_for_is_ignored_unless_the_proxy_is_trusted(serve):
    direct = serve(LoginThrottle(free=3, clock=lambda: 1000.0))
    attacker = direct.client()
    forged = [attacker.sign_in("dir-a", f"guess {i}", headers={"X-Forwarded-For": f"10.0.0.{i}"})
              for i in range(5)]
    # A made-up address per guess does not make each guess free.
    assert [f[0] for f in forged] == [401] * 3 + [429] * 2
    proxied = serve(LoginThrottle(free=3, clock=lambda: 1000.0), trust_proxy=True)
    through_proxy = proxied.client()
    guessing = {"X-Forwarded-For": "198.51.100.7"}
    assert [through_proxy.sign_in("dir-a", f"guess {i}", headers=guessing)[0]
            for i in range(4)] == [401] * 3 + [429]
    # Behind the proxy, the real user's own address is what counts.
    user = proxied.client()
    assert user.sign_in("dir-a", headers={"X-Forwarded-For": "203.0.113.5"})[0] == 302


# -- item 6: revocable sessions ------------------------------------------------------

def _opens_pages(client: Client) -> list[int]:
    """Statuses of a page load, the router callback, and the layout request."""
    return [client.get("/benchmark?site=A")[0],
            client.post_json("/_dash-update-component", router_body("/benchmark", "?site=A"))[0],
            client.get("/_dash-layout")[0]]


def _users(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CULTURE, "users", *args, "--db", str(settings.db_path)],
                          env={"CULTURE_PASSWORD": "a new long password", "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120)


def test_a_cookie_replayed_after_sign_out_opens_nothing(serve):
    server = serve()
    user = server.client()
    assert user.sign_in("dir-a")[0] == 302
    stolen = dict(user.cookies)
    assert _opens_pages(user) == [200, 200, 200]
    assert user.get("/logout")[0] == 302
    replay = server.client("127.0.0.9")
    replay.cookies = stolen
    status, headers, _ = replay.get("/benchmark?site=A")
    assert status == 302 and headers["Location"].startswith("/login?")
    assert _opens_pages(replay)[1:] == [401, 401]


def test_set_password_and_remove_end_every_session_of_the_account(serve, settings):
    server = serve()
    phone, desk = server.client(), server.client("127.0.0.7")
    assert phone.sign_in("dir-a")[0] == 302 and desk.sign_in("dir-a")[0] == 302
    researcher = server.client()
    assert researcher.sign_in("res")[0] == 302
    assert researcher.get("/download/aggregates?level=site&format=csv")[0] == 200
    changed = _users(settings, "set-password", "dir-a")
    assert changed.returncode == 0, changed.stderr
    assert _opens_pages(phone) == [302, 401, 401] and _opens_pages(desk) == [302, 401, 401]
    # These two sessions and any earlier test's were ended, and said so.
    ended = re.search(r"(\d+) open session\(s\) ended", changed.stdout)
    assert ended and int(ended.group(1)) >= 2
    sessions = AccountBook(settings.accounts_path).sessions
    assert sessions.count("dir-a") == 0
    assert phone.sign_in("dir-a")[0] == 401  # the old password is gone too
    assert phone.sign_in("dir-a", "a new long password")[0] == 302
    assert _opens_pages(phone) == [200, 200, 200]
    removed = _users(settings, "remove", "res")
    assert removed.returncode == 0 and "open session(s) ended" in removed.stdout
    assert sessions.count("res") == 0
    status, headers, _ = researcher.get("/download/aggregates?level=site&format=csv")
    assert status == 302 and headers["Location"].startswith("/login?")
    assert researcher.post_json("/_dash-update-component", router_body("/export", ""))[0] == 401
    AccountBook(settings.accounts_path).add("res", "researcher", PASSWORD)
    AccountBook(settings.accounts_path).set_password("dir-a", PASSWORD)


def test_a_password_changed_without_ending_sessions_still_ends_them(serve, settings):
    # An accounts file written by an older `culture users` (no sessions file to clear):
    # the session was opened with the old password's fingerprint, so it ends anyway.
    server = serve()
    user = server.client()
    assert user.sign_in("dir-a")[0] == 302
    from dashboard.accounts import hash_password
    with duckdb.connect(str(settings.accounts_path)) as con:
        con.execute("update accounts set password_hash = ? where username = 'dir-a'",
                    [hash_password(PASSWORD)])
    assert _opens_pages(user) == [302, 401, 401]


def test_sessions_file_holds_no_cookie_and_ends_idle_and_old_sessions(tmp_path, settings,
                                                                      serve):
    server = serve()
    user = server.client()
    user.sign_in("dir-a")
    session = server.app.server.session_interface.get_signing_serializer(
        server.app.server).loads(user.cookies["culture_session"])
    assert set(session) == {"sid"}  # no username, nothing else in the cookie
    path = settings.accounts_path.with_suffix(".sessions.sqlite")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with sqlite3.connect(path) as con:
        stored = con.execute("select * from sessions").fetchall()
    assert stored and all(session["sid"] not in map(str, row) for row in stored)
    from dashboard.sessions import SessionStore

    now = [0.0]
    store = SessionStore(tmp_path / "s.sqlite", idle=600, absolute=3600, clock=lambda: now[0])
    idle, busy = store.begin("jo", "c"), store.begin("jo", "c")
    for _ in range(6):
        now[0] += 500
        assert store.find(busy) is not None
    assert store.find(idle) is None  # unused for 3,000 s > 600
    now[0] += 700
    assert store.find(busy) is None  # 3,700 s after sign-in > 3,600


# -- item 8: 403 for refusals, 400 for malformed callbacks, headers -----------------

def test_refusals_are_403_for_a_typed_url_and_a_crafted_callback(serve, site_names):
    server = serve()
    director = server.client()
    director.sign_in("dir-a")
    for path in SITE_PAGES:
        status, headers, page = director.get(f"{path}?site=B&wave=2026")
        assert status == 403 and headers["Content-Type"].startswith("text/html"), path
        assert "Not available" in page and "you do not have access to site &#x27;B&#x27;" in page
        assert site_names["B"] not in page and "_dash-config" not in page
        status, _, text = director.post_json("/_dash-update-component",
                                             router_body(path, "?site=B&wave=2026"))
        assert status == 403 and text == "you do not have access to site 'B'", path
        assert director.get(f"{path}?site=A&wave=2026")[0] == 200
    status, _, page = director.get("/trends?site=A&wave=1999")
    assert status == 403 and "wave &#x27;1999&#x27; has no published results" in page
    assert director.get("/export")[0] == 403
    researcher = server.client()
    researcher.sign_in("res")
    status, _, page = researcher.get("/equity?site=A")
    assert status == 403 and "not available to the researcher role" in page
    assert researcher.post_json("/_dash-update-component",
                                router_body("/equity", "?site=A"))[0] == 403


MALFORMED = {
    "not JSON": b"{'output': ",
    "a JSON list": [],
    "no output": {"inputs": []},
    "an unknown callback": {"output": "secret.children", "inputs": []},
    "output not a string": {"output": ["page.children"], "inputs": []},
    "inputs missing": {"output": ROUTER, "outputs": router_body("/", "")["outputs"]},
    "inputs not a list": {**router_body("/", ""), "inputs": "url"},
    "an input not an object": {**router_body("/", ""), "inputs": [1, 2]},
    "search a number": {**router_body("/", ""), "inputs": [
        {"id": "url", "property": "pathname", "value": "/"},
        {"id": "url", "property": "search", "value": 5}]},
    "pathname an object": {**router_body("/", ""), "inputs": [
        {"id": "url", "property": "pathname", "value": {"a": 1}},
        {"id": "url", "property": "search", "value": ""}]},
    "outputs not objects": {**router_body("/", ""), "outputs": ["page"]},
    "changed ids not strings": {**router_body("/", ""), "changedPropIds": [1]},
    "measure a list": {"output": "benchmark-body.children",
                       "outputs": {"id": "benchmark-body", "property": "children"},
                       "inputs": [{"id": "benchmark-measure", "property": "value",
                                   "value": ["scale:psysafety"]}],
                       "state": [{"id": "url", "property": "search", "value": "?site=A"}],
                       "changedPropIds": ["benchmark-measure.value"]},
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_callback_bodies_get_400_not_500(serve, case):
    server = serve()
    director = server.client()
    director.sign_in("dir-a")
    status, _, text = director.post_json("/_dash-update-component", MALFORMED[case])
    assert status == 400, (case, text[:300])
    assert "Traceback" not in text and "File \"" not in text
    # The well-formed request still works.
    assert director.post_json("/_dash-update-component", router_body("/", "?site=A"))[0] == 200


def test_every_response_carries_the_security_headers(serve):
    server = serve()
    anonymous = server.client()
    director = server.client()
    director.sign_in("dir-a")
    responses = {"login": anonymous.get("/login"), "redirect": anonymous.get("/equity"),
                 "unsigned callback": anonymous.post_json("/_dash-update-component", {}),
                 "asset": anonymous.get("/assets/style.css"),
                 "page": director.get("/?site=A"),
                 "callback": director.post_json("/_dash-update-component",
                                                router_body("/", "?site=A")),
                 "refusal": director.get("/?site=B"),
                 "malformed": director.post_json("/_dash-update-component", [])}
    for name, (status, headers, _) in responses.items():
        policy = headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy, name
        assert re.search(r"script-src 'self' 'sha256-[A-Za-z0-9+/=]{44}';", policy), name
        assert "unsafe-eval" not in policy and "script-src 'self' 'unsafe-inline'" not in policy
        assert headers["X-Frame-Options"] == "DENY", name
        assert headers["Referrer-Policy"] == "no-referrer", name
        assert headers["X-Content-Type-Options"] == "nosniff", name


def _set_cookies(headers) -> dict[str, str]:
    return {h.split("=", 1)[0]: h for h in headers.get_all("Set-Cookie")}


def test_cookies_are_secure_only_when_served_behind_tls(serve):
    plain = serve().client()
    status, headers, _ = plain.sign_in("dir-a")
    assert status == 302
    cookies = _set_cookies(headers)
    assert "Secure" not in cookies["culture_session"]
    assert "Secure" not in cookies["culture_device"]
    tls = serve(secure_cookies=True).client()
    status, headers, _ = tls.sign_in("dir-a")
    cookies = _set_cookies(headers)
    for name in ("culture_session", "culture_device"):
        assert "; Secure" in cookies[name] and "HttpOnly" in cookies[name], name
        assert "SameSite=Strict" in cookies[name], name


@pytest.fixture(scope="module")
def culture_serve(settings):
    """A real `culture serve`, with the TLS-proxy settings given by flag and variable."""
    port = free_port()
    process = start_culture("serve", "--db", str(settings.db_path), "--port", str(port),
                            "--trust-proxy", port=port,
                            env={**os.environ, "CULTURE_SECURE_COOKIES": "yes"})
    yield f"http://127.0.0.1:{port}", port
    stop(process)


def test_culture_serve_flags_set_secure_cookies_and_trust_the_proxy(culture_serve):
    _, port = culture_serve
    status, headers, _ = Client(port).get("/login")
    assert status == 200 and "; Secure" in headers["Set-Cookie"]
    # --trust-proxy: guesses through the proxy for one client do not hold another.
    guesser = Client(port)
    for i in range(5):
        guesser.sign_in("admin", f"guess {i}", headers={"X-Forwarded-For": "198.51.100.7"})
    assert guesser.sign_in("admin", headers={"X-Forwarded-For": "198.51.100.7"})[0] == 429
    assert Client(port).sign_in("admin", headers={"X-Forwarded-For": "203.0.113.9"})[0] == 302


# -- in a real browser: pages still work under the CSP; what a refusal looks like ----

@pytest.fixture
def browser():
    browser = chromium()
    yield browser
    browser.quit()


def _browser_sign_in(browser, base: str, username: str) -> None:
    submit_sign_in(browser, base, username, PASSWORD)
    _rendered(browser)


def _rendered(browser, timeout: float = 60) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, timeout).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "#page h1, #page h2")))
    WebDriverWait(browser, timeout).until(lambda b: not b.find_elements(
        By.CSS_SELECTOR, "[data-dash-is-loading='true']"))
    return browser.find_element(By.ID, "page").text


def _violations(browser) -> list[str]:
    """CSP messages in the browser console since the last call."""
    return [entry["message"] for entry in browser.get_log("browser")
            if "Content Security Policy" in entry["message"] or "Refused to" in entry["message"]]


@pytest.mark.slow   # a real browser
def test_pages_work_in_a_browser_under_the_policy_and_a_refusal_reads_well(culture_serve,
                                                                           browser, site_names):
    from selenium.webdriver.common.by import By

    base, _ = culture_serve
    # Listen for violations from the first byte of every page, not only the console.
    browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": (
        "window.__csp = []; document.addEventListener('securitypolicyviolation', "
        "e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));")})
    _browser_sign_in(browser, base, "dir-a")
    for path in SITE_PAGES:
        browser.get(f"{base}{path}?site=A")
        text = _rendered(browser)
        assert site_names["A"] in text and "Not available" not in text, path
        if path in ("/benchmark", "/trends", "/principle"):
            # plotly drew its charts (it needs inline styles; scripts stay locked)
            assert browser.find_elements(By.CSS_SELECTOR, "#page .main-svg"), path
        assert browser.execute_script("return window.__csp") == [], path
        assert _violations(browser) == [], path
    # A typed URL for another site: a readable refusal page (HTTP 403), not a blank app.
    browser.get(f"{base}/benchmark?site=B")
    text = _rendered(browser)
    assert "Not available" in text and "you do not have access to site 'B'" in text
    assert site_names["B"] not in browser.page_source
    link = browser.find_element(By.LINK_TEXT, "Go to the results you can see")
    link.click()
    assert site_names["A"] in _rendered(browser)
    assert browser.execute_script("return window.__csp") == []
    # The export page, the one page a director cannot open, as a researcher.
    browser.get(base + "/logout")
    _browser_sign_in(browser, base, "res")
    browser.get(base + "/export")
    assert "Export" in _rendered(browser)
    assert browser.execute_script("return window.__csp") == [] and _violations(browser) == []
