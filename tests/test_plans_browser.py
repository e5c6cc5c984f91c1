"""The Actions page against a real `culture serve`: a director keeps their plan in headless
Chromium; hand-made HTTP requests try another site's plan, a forged form and a
researcher's view; the plan outlives a `culture run` and a restart of the server."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from urllib.parse import urlencode

import duckdb
import pytest

from dashboard.accounts import AccountBook
from plans.store import IN_USE, ActionBook
from tests.live import (CULTURE, CookieClient, chromium, free_port, start_culture, stop,
                        submit_sign_in)

pytestmark = pytest.mark.slow   # a real browser against a served dashboard

PASSWORD = "a long enough password"
ROUTER = "..page.children...nav.children.."
NOTE = '<b id="injected">bold</b> & "quoted"'


@pytest.fixture(scope="module")
def settings(published_sample):
    settings, _ = published_sample
    book = AccountBook(settings.accounts_path)
    for username, role, site in (("dir-a", "director", "A"), ("dir-b", "director", "B"),
                                 ("res", "researcher", None), ("boss", "admin", None)):
        book.add(username, role, PASSWORD, site)
    return settings


@pytest.fixture(scope="module")
def server(settings):
    port = free_port()
    process = start_culture("serve", "--db", str(settings.db_path), "--port", str(port),
                            port=port)
    yield port
    stop(process)


@pytest.fixture
def browser():
    browser = chromium()
    yield browser
    browser.quit()


def _book(settings) -> ActionBook:
    return ActionBook(settings.plans_path)


# -- a person in a browser ----------------------------------------------------------------

def _wait(browser, css: str, timeout: float = 30):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, timeout).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, css)))
    WebDriverWait(browser, timeout).until(lambda b: not b.find_elements(
        By.CSS_SELECTOR, "[data-dash-is-loading='true']"))
    return browser.find_element(By.CSS_SELECTOR, css)


def _message(browser, expected: str, timeout: float = 30) -> str:
    """What the Actions page's message says once it says `expected`, or after `timeout`:
    a click's answer arrives after the click returns, and until then the page shows the
    message before it (no request is loading yet), which an immediate read would take."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        WebDriverWait(browser, timeout).until(
            lambda b: _wait(b, "#actions-message").text == expected)
    except TimeoutException:
        pass
    return _wait(browser, "#actions-message").text


def test_a_director_adds_edits_and_closes_an_action_in_a_browser(server, settings, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    base = f"http://127.0.0.1:{server}"
    submit_sign_in(browser, base, "dir-a", PASSWORD)
    _wait(browser, "#page h1")
    browser.get(base + "/actions?site=A")
    assert "action plan" in _wait(browser, "#actions-page h1").text

    # Add: one of the guide's actions for P2, owned by a role.
    Select(browser.find_element(By.ID, "actions-new-principle")).select_by_value("P2")
    Select(browser.find_element(By.ID, "actions-new-guide")).select_by_value(
        "Say what stays confidential")
    browser.find_element(By.ID, "actions-new-owner").send_keys("Guardian of safe working")
    browser.find_element(By.ID, "actions-new-note").send_keys(NOTE)
    browser.find_element(By.ID, "actions-new-add").click()
    added = "Action added: Say what stays confidential."
    assert _message(browser, added) == added
    [action] = _book(settings).list(site="A").to_dict("records")
    assert (action["principle"], action["owner_role"], action["status"], action["note"]) == (
        "P2", "Guardian of safe working", "planned", NOTE)
    prefix = f"#actions-{action['id']}"
    assert "Say what stays confidential" in browser.find_element(
        By.CSS_SELECTOR, prefix + "-title").text
    # The note is shown as typed, never as markup.
    assert browser.find_element(By.CSS_SELECTOR, prefix + "-note").get_attribute(
        "value") == NOTE
    assert not browser.find_elements(By.ID, "injected")

    # Edit: status and note.
    Select(browser.find_element(By.CSS_SELECTOR, prefix + "-status")).select_by_value(
        "in progress")
    note = browser.find_element(By.CSS_SELECTOR, prefix + "-note")
    note.send_keys(Keys.CONTROL, "a")
    note.send_keys("Agreed at the March board")
    browser.find_element(By.CSS_SELECTOR, prefix + "-save").click()
    assert _message(browser, "Changes saved.") == "Changes saved."
    assert _book(settings).get(action["id"])["status"] == "in progress"

    # The Overview lists it under its principle; Trends marks its start.
    browser.get(base + "/?site=A")
    section = _wait(browser, ".open-actions")
    assert "Say what stays confidential (in progress; owner: Guardian of safe working" in \
        section.text
    browser.get(base + "/trends?site=A")
    _wait(browser, "#trends-principle")
    assert ("Actions started: Say what stays confidential (Trust and psychological safety, "
            f"{action['start'].isoformat()})") in browser.find_element(By.ID, "page").text

    # Close it as done: it leaves the open list for the closed table.
    browser.get(base + "/actions?site=A")
    _wait(browser, prefix + "-done").click()
    assert _message(browser, "Action closed as done.") == "Action closed as done."
    assert not browser.find_elements(By.CSS_SELECTOR, prefix + "-form")
    assert "Closed actions (1)" in browser.find_element(By.ID, "page").text

    # Every change is in the audit trail, with who made it.
    trail = _book(settings).audit(action["id"])
    changes = trail[trail["old"].notna()][["who", "field", "old", "new"]].values.tolist()
    assert changes == [["dir-a", "status", "planned", "in progress"],
                       ["dir-a", "note", NOTE, "Agreed at the March board"],
                       ["dir-a", "status", "in progress", "done"]]
    assert set(trail["who"]) == {"dir-a"}


# -- hand-made requests -------------------------------------------------------------------

class Client(CookieClient):
    def sign_in(self, username: str) -> None:
        _, _, page = self.send("GET", "/login")
        token = re.search(rb'name="csrf" value="([^"]+)"', page).group(1).decode()
        status, _, _ = self.form("/login", {"csrf": token, "username": username,
                                            "password": PASSWORD, "next": "/"})
        assert status == 302

    def form(self, path: str, fields: dict):
        return self.send("POST", path, urlencode(fields).encode(),
                         {"Content-Type": "application/x-www-form-urlencoded"})

    def page(self, path: str, search: str = "") -> tuple[int, str]:
        body = {"output": ROUTER, "outputs": [{"id": "page", "property": "children"},
                                              {"id": "nav", "property": "children"}],
                "inputs": [{"id": "url", "property": "pathname", "value": path},
                           {"id": "url", "property": "search", "value": search}],
                "changedPropIds": ["url.pathname"]}
        status, _, content = self.send("POST", "/_dash-update-component",
                                       json.dumps(body).encode(),
                                       {"Content-Type": "application/json"})
        return status, content.decode()

    def token(self, site: str) -> str:
        """The CSRF token the Actions page puts in its forms."""
        status, content = self.page("/actions", f"?site={site}")
        assert status == 200
        return _csrf_value(json.loads(content))


def _csrf_value(node):
    """The value of the component named csrf in a Dash layout (JSON)."""
    if isinstance(node, dict):
        if node.get("props", {}).get("name") == "csrf":
            return node["props"]["value"]
        node = list(node.values())
    if isinstance(node, list):
        for child in node:
            if (found := _csrf_value(child)) is not None:
                return found
    return None


def _new(site: str, **extra) -> dict:
    return {"site": site, "principle": "P1", "what": "Brief the appraisers",
            "owner_role": "Appraisal lead", "start": "2026-01-10", "review": "2026-07-10",
            "status": "planned", "note": "", **extra}


def test_a_director_cannot_read_or_write_another_sites_plan(server, settings):
    theirs = _book(settings).add("B", "P3", "Site B's private words", "Clinical director",
                                 "2026-02-01", "2026-08-01", "dir-b", note="B's note")
    director = Client(server)
    director.sign_in("dir-a")
    token = director.token("A")
    # Reading: the page by URL, the page's callback, the board's download.
    assert director.send("GET", "/actions?site=B")[0] == 403
    status, content = director.page("/actions", "?site=B")
    assert status == 403 and "private words" not in content
    for query in ("site=B&format=csv", "site=B&format=xlsx"):
        status, _, body = director.send("GET", "/download/actions?" + query)
        assert status == 403 and b"private words" not in body
    # Writing: a new action for B, and B's action changed or closed through site A's form.
    assert director.form("/actions/save", {"csrf": token, **_new("B")})[0] == 403
    assert director.form("/actions/save", {"csrf": token, "site": "A", "id": theirs["id"],
                                           "status": "dropped", "note": "gone"})[0] == 403
    assert director.form("/actions/save", {"csrf": token, "site": "A", "id": theirs["id"],
                                           "close": "done"})[0] == 403
    after = _book(settings).get(theirs["id"])
    assert (after["status"], after["note"]) == ("planned", "B's note")
    assert list(_book(settings).audit(theirs["id"])["who"].unique()) == ["dir-b"]
    # The director's own download holds their site only.
    status, _, body = director.send("GET", "/download/actions?site=A&format=csv")
    assert status == 200 and b"private words" not in body


def test_a_forged_form_without_the_token_is_refused(server, settings):
    director = Client(server)
    director.sign_in("dir-a")
    director.token("A")   # the session has a token; the forger does not know it
    before = len(_book(settings).audit())
    for fields in (_new("A", what="Forged action"), {"csrf": "guessed", **_new("A")},
                   {"csrf": "", **_new("A")}):
        status, _, body = director.form("/actions/save", fields)
        assert status == 403 and b"Refused" in body
    assert len(_book(settings).audit()) == before
    assert "Forged action" not in set(_book(settings).list()["what"])


def test_a_bad_form_is_refused_with_the_stores_message(server, settings):
    director = Client(server)
    director.sign_in("dir-a")
    token = director.token("A")
    status, headers, _ = director.form("/actions/save", {
        "csrf": token, **_new("A", start="2026-05-01", review="2026-04-01")})
    assert status == 303 and headers["Location"].endswith("/actions?site=A")
    _, content = director.page("/actions", "?site=A")
    assert ("Not saved: the review date 2026-04-01 is before the start 2026-05-01; review on "
            "or after the start") in content
    status, _, _ = director.form("/actions/save", {
        "csrf": token, **_new("A", what="", guide="Say what stays confidential")})
    _, content = director.page("/actions", "?site=A")
    assert "is not one of the guide's actions for P1" in content


def test_a_researcher_sees_counts_and_no_free_text(server, settings):
    book = _book(settings)
    book.add("A", "P4", "Secret plan words", "Medical director", "2026-03-01",
             "2026-09-01", "boss", note="Secret note words")
    counts = book.counts_by_principle_status()
    researcher = Client(server)
    researcher.sign_in("res")
    status, content = researcher.page("/actions")
    assert status == 200
    assert "Actions by principle and status, all sites" in content
    assert "Secret" not in content and "Medical director" not in content
    p4 = int(counts.loc[(counts["principle"] == "P4") & (counts["status"] == "planned"),
                        "actions"].iloc[0])
    assert re.search(rf"P4 \| [^|]+ \| {p4} \|", content)
    with duckdb.connect(str(settings.published_path), read_only=True) as con:
        names = [name for (name,) in con.execute("select name from sites").fetchall()]
    assert not [name for name in names if name in content]
    assert researcher.send("GET", "/download/actions?format=csv")[0] == 403
    assert researcher.form("/actions/save", _new("A"))[0] == 403
    status, content = researcher.page("/trends")
    assert "Secret" not in content and "Actions started" not in content


_HOLDER = textwrap.dedent("""
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])
    print("holding", flush=True)
    time.sleep(30)
""")


def test_a_write_while_another_process_holds_the_plan_says_in_use(server, settings):
    director = Client(server)
    director.sign_in("dir-a")
    token = director.token("A")
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(settings.plans_path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        status, _, _ = director.form("/actions/save", {
            "csrf": token, **_new("A", what="Written while held")})
        assert status == 303
    finally:
        holder.kill()
        holder.wait()
    _, content = director.page("/actions", "?site=A")
    assert f"Not saved: {IN_USE}" in content
    assert "Written while held" not in set(_book(settings).list()["what"])


def test_actions_survive_a_pipeline_run_and_a_server_restart(settings, tmp_path):
    book = _book(settings)
    kept = book.add("A", "P5", "Run peer support groups", "Director of medical education",
                    "2026-01-15", "2026-06-15", "boss")
    before = book.list()
    published = settings.published_path.stat().st_ino
    run = subprocess.run([CULTURE, "run", "--db", str(settings.db_path), "--reports",
                          str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert settings.published_path.stat().st_ino != published   # the layer was replaced
    assert book.list().equals(before)

    for _ in range(2):   # served, stopped, served again
        port = free_port()
        process = start_culture("serve", "--db", str(settings.db_path), "--port", str(port),
                                port=port)
        try:
            director = Client(port)
            director.sign_in("dir-a")
            status, content = director.page("/", "?site=A")
            assert status == 200 and "Run peer support groups" in content
            status, content = director.page("/actions", "?site=A")
            assert f'"actions-{kept["id"]}-form"' in content
        finally:
            stop(process)
