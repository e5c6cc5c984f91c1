"""The web form honours version 2.0's routing (issue 22, point 2): pw07 ("support is mainly
for doctors in training, not for someone in my role") is asked only of doctors outside
training. The role question comes first; with JavaScript pw07 shows only once a role it
applies to is picked; without it a note says whom it is for, and the server stores an
answer from anyone else as missing rather than refusing the post. Real WSGI requests, a
real `culture collect` on 127.0.0.1 and headless Chromium at 390 and 1400 px."""

from __future__ import annotations

import http.client
import re
from urllib.parse import urlencode

import pytest

from collect.inbox import Inbox, read_submissions
from collect.webform import create_collect_app, render_form, route_answers, validate_answers
from pipeline.ingest.inbox import ingest_inbox
from pipeline.store import open_store
from survey.instrument import load_instrument
from survey.settings import INSTRUMENTS_DIR
from tests.conftest import full_answers
from tests.live import chromium, free_port, start_culture, stop

V2_PATH = INSTRUMENTS_DIR / "support-culture-v2.yaml"
TOKEN = re.compile(r"name='form_token' value='([^']+)'")
HEADINGS = re.compile(r"<h2 id='h-\d+' tabindex='-1'>([^<]*)</h2>")


@pytest.fixture(scope="module")
def v2():
    return load_instrument(V2_PATH)


@pytest.mark.parametrize("answers, kept", [
    ({"staff_group": "consultant", "pw07": "4"}, {"staff_group": "consultant", "pw07": 4}),
    ({"staff_group": "gp", "pw07": "9"}, {"staff_group": "gp", "pw07": 9}),
    ({"staff_group": "foundation", "pw07": "4", "hs01": "2"},
     {"staff_group": "foundation", "hs01": 2}),
    ({"staff_group": "prefer_not_to_say", "pw07": "1"}, {"staff_group": "prefer_not_to_say"}),
    ({"pw07": "5", "pw06": "3"}, {"pw06": 3}),             # no role given: not asked
    ({"staff_group": "resident"}, {"staff_group": "resident"}),  # unanswered: nothing to do
])
def test_an_answer_from_someone_not_asked_is_dropped_not_refused(v2, answers, kept):
    assert validate_answers(v2, answers) == kept


def test_route_answers_names_what_it_dropped(v2, instrument):
    answers = {"staff_group": "foundation", "pw07": 4}
    assert route_answers(v2, answers) == ["pw07"] and answers == {"staff_group": "foundation"}
    # Version 1.0 asks everyone.
    assert validate_answers(instrument, {"staff_group": "foundation", "pw07": "4"}) == {
        "staff_group": "foundation", "pw07": 4}


def test_the_role_question_comes_before_the_statement_that_depends_on_it(v2, instrument):
    page = render_form(v2, "A", 2025, "token")
    headings = HEADINGS.findall(page)
    assert headings[:3] == ["About this survey", "About your role (optional)",
                            "Questions, part 1 of 9"]
    assert headings[-1] == "About you (optional)"
    # Asked once, in the role section, before pw07; the closing section has the rest.
    assert page.count("name='staff_group'") == 9
    role = page.index("name='staff_group'")
    assert page.index("<h2 id='h-2'") < role < page.index("<h2 id='h-3'")
    assert role < page.index("name='pw07'")
    closing = page[page.index("About you (optional)</h2>"):]
    assert "name='staff_group'" not in closing and "name='contract'" in closing
    # pw07 carries its rule for the script, and a note for a browser without one.
    fieldset = re.search(r"<fieldset class='question'([^>]*)><legend>The support on offer "
                         r"here is mainly for doctors in training[^<]*</legend>"
                         r"<p class='routing-note'>([^<]*)</p>", page)
    assert fieldset, "pw07 has no routing note"
    assert fieldset[1] == (" data-asked-attribute='staff_group' "
                           "data-asked-in='sas consultant locally_employed gp'")
    assert fieldset[2] == ("Please answer only if your answer to \u201cWhich best describes "
                           "your current role or career stage?\u201d was: SAS doctor "
                           "(specialty, associate specialist, specialist); Consultant; "
                           "Locally employed doctor; General practitioner.")
    assert page.count("<fieldset class='question' data-asked-attribute") == 1
    # Version 1.0 routes nothing: no role section, every attribute at the end.
    plain = render_form(instrument, "A", 2025, "token")
    assert "About your role" not in plain and "routing-note'>" not in plain
    assert HEADINGS.findall(plain)[1].startswith("Questions, part 1 of ")
    assert "name='staff_group'" in plain[plain.index("About you (optional)</h2>"):]


def test_a_post_with_pw07_from_a_role_not_asked_is_thanked_and_stored_blank(v2, tmp_path):
    inbox_path = tmp_path / "store.inbox.sqlite"
    inbox = Inbox(inbox_path)
    try:
        client = create_collect_app(v2, inbox, {("A", 2025)}).test_client()
        token = TOKEN.search(client.get("/s/A/2025").text).group(1)
        sent = client.post("/s/A/2025", data={"form_token": token, "staff_group": "foundation",
                                              "pw07": "4", "pw06": "2"})
    finally:
        inbox.close()
    assert sent.status_code == 200 and "<h1>Thank you</h1>" in sent.text
    ((*_, answers),) = read_submissions(inbox_path)
    assert answers == {"staff_group": "foundation", "pw06": 2}


# -- a real server ----------------------------------------------------------------------

def _post(port: int, fields: dict) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/s/A/2025")
    token = TOKEN.search(connection.getresponse().read().decode()).group(1)
    connection.request("POST", "/s/A/2025", urlencode({"form_token": token, **fields}),
                       {"Content-Type": "application/x-www-form-urlencoded"})
    response = connection.getresponse()
    response.read()
    connection.close()
    return response.status


def test_culture_collect_stores_pw07_blank_for_a_role_not_asked(store_path, v2):
    port = free_port()
    server = start_culture("collect", "--db", str(store_path), "--port", str(port),
                           "--instrument", str(V2_PATH), port=port)
    every = full_answers(v2, "4")   # every statement answered, pw07 among them
    try:
        statuses = [_post(port, every | {"staff_group": "foundation", "hs01": "1"}),
                    _post(port, every | {"staff_group": "consultant", "hs01": "2"}),
                    _post(port, every | {"hs01": "3"})]
    finally:
        stop(server)
    assert statuses == [200, 200, 200]
    inbox_path = store_path.with_name("store.inbox.sqlite")
    stored = [answers for *_, answers in read_submissions(inbox_path)]
    assert [(a.get("staff_group"), a.get("pw07"), a["hs01"]) for a in stored] == [
        ("foundation", None, 1), ("consultant", 4, 2), (None, None, 3)]
    assert [len(a) for a in stored] == [len(every), len(every) + 1, len(every) - 1]
    # The pipeline takes them as they are: already routed, nothing more to blank.
    with open_store(store_path) as con:
        report = ingest_inbox(con, inbox_path, v2, V2_PATH.read_text(encoding="utf-8"))
        rows = con.execute("select staff_group, pw07, pw06 from responses order by hs01"
                           ).fetchall()
    assert report.ingest.rows_accepted == 3 and report.ingest.blanked_by_routing == {}
    assert rows == [("foundation", None, 4), ("consultant", 4, 4), (None, None, 4)]


# -- in a real browser ------------------------------------------------------------------

_PW07_STEP = ("return Array.from(document.querySelectorAll('.step')).indexOf("
              "document.querySelector(\"input[name='pw07']\").closest('.step'));")
_CURRENT_STEP = ("return Array.from(document.querySelectorAll('.step'))"
                 ".indexOf(document.querySelector('.step.current'));")


def _press(browser, which: str) -> None:
    from selenium.webdriver.common.by import By

    button = browser.find_element(By.CSS_SELECTOR, f".step.current button.{which}")
    browser.execute_script("arguments[0].scrollIntoView()", button)
    button.click()


def _go_to(browser, step: int) -> None:
    while (current := browser.execute_script(_CURRENT_STEP)) != step:
        _press(browser, "next" if current < step else "back")


def _pick(browser, name: str, value: str) -> None:
    from selenium.webdriver.common.by import By

    label = browser.find_element(
        By.XPATH, f"//input[@name='{name}'][@value='{value}']/parent::label")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", label)
    label.click()


def _pw07_shown(browser) -> bool:
    from selenium.webdriver.common.by import By

    fieldset = browser.find_element(By.XPATH, "//input[@name='pw07']/ancestor::fieldset")
    return fieldset.is_displayed()


@pytest.mark.slow
@pytest.mark.parametrize("viewport, final_role, stored_pw07", [
    ("phone", "foundation", None),       # answered as a consultant, then the role changed
    ("desktop", "consultant", 4),
])
def test_picking_a_role_shows_or_hides_pw07_and_the_right_answer_is_stored(
        store_path, viewport, final_role, stored_pw07):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    port = free_port()
    server = start_culture("collect", "--db", str(store_path), "--port", str(port),
                           "--instrument", str(V2_PATH), port=port)
    browser = chromium(phone=True) if viewport == "phone" else chromium(1400, 1000)
    width = 390 if viewport == "phone" else 1400
    try:
        browser.get(f"http://127.0.0.1:{port}/s/A/2025")
        pw07_step = browser.execute_script(_PW07_STEP)
        _press(browser, "next")
        role = browser.find_element(By.CSS_SELECTOR, ".step.current")
        assert "About your role (optional)" in role.text
        assert "Which best describes your current role or career stage?" in role.text
        _go_to(browser, pw07_step)
        assert not _pw07_shown(browser)               # no role picked: not asked
        _go_to(browser, 1)
        _pick(browser, "staff_group", "consultant")
        _go_to(browser, pw07_step)
        assert _pw07_shown(browser)
        # With the script the statement needs no note: it is there only when it applies.
        assert not browser.find_element(By.CSS_SELECTOR, ".routing-note").is_displayed()
        _pick(browser, "pw07", "4")
        assert browser.execute_script("return document.documentElement.scrollWidth") <= width
        _go_to(browser, 1)
        _pick(browser, "staff_group", "foundation")
        _go_to(browser, pw07_step)
        assert not _pw07_shown(browser)
        _go_to(browser, 1)
        _pick(browser, "staff_group", final_role)
        _go_to(browser, pw07_step)
        assert _pw07_shown(browser) == (final_role == "consultant")
        while browser.find_elements(By.CSS_SELECTOR, ".step.current button.next"):
            _press(browser, "next")
        submit = browser.find_element(By.ID, "submit")
        browser.execute_script("arguments[0].scrollIntoView()", submit)
        submit.click()
        WebDriverWait(browser, 20).until(lambda b: b.title == "Thank you")
        assert browser.execute_script("return document.documentElement.scrollWidth") <= width
    finally:
        browser.quit()
        stop(server)
    ((*_, answers),) = read_submissions(store_path.with_name("store.inbox.sqlite"))
    assert answers.get("staff_group") == final_role
    assert answers.get("pw07") == stored_pw07
