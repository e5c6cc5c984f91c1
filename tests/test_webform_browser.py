"""A respondent on a phone: headless Chromium fills in the real form served by
`culture collect`, sends it, and the pipeline finds the response."""

from __future__ import annotations

import pytest

from pipeline.ingest.inbox import ingest_inbox
from pipeline.store import open_store
from tests.live import chromium, free_port
from tests.test_dashboard_browser import SCREENSHOTS
from tests.test_webform import _start

pytestmark = pytest.mark.slow   # a real browser against a served form


def test_phone_respondent_fills_in_the_form_and_the_pipeline_finds_it(store_path, instrument,
                                                                        definition_yaml):
    from selenium.webdriver.common.by import By

    port = free_port()
    server = _start(store_path, port)
    browser = chromium(phone=True)
    try:
        browser.get(f"http://127.0.0.1:{port}/s/A/2025")
        sections = browser.find_elements(By.CSS_SELECTOR, "section.step")
        assert len(sections) >= 10
        SCREENSHOTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(SCREENSHOTS / "survey_phone_intro.png"))
        answered = 0
        for number, section in enumerate(sections):
            assert section.is_displayed() and all(
                not other.is_displayed() for other in sections if other != section)
            assert f"Section {number + 1} of {len(sections)}" in section.text
            for fieldset in section.find_elements(By.CSS_SELECTOR, "fieldset"):
                choices = fieldset.find_elements(By.CSS_SELECTOR, "label.option")
                # Agree (4th option) on agreement items, Yes on yes/no, first on attributes
                pick = choices[3] if len(choices) == 6 else choices[1] if len(choices) == 3 \
                    else choices[0]
                browser.execute_script("arguments[0].scrollIntoView()", pick)
                pick.click()
                answered += 1
            if number == 2:
                browser.save_screenshot(str(SCREENSHOTS / "survey_phone_section.png"))
            button = section.find_element(By.CSS_SELECTOR, "button.next, button#submit")
            browser.execute_script("arguments[0].scrollIntoView()", button)
            button.click()
        from selenium.webdriver.support.ui import WebDriverWait
        WebDriverWait(browser, 20).until(lambda b: b.title == "Thank you")
        assert "Your answers have been saved anonymously" in browser.find_element(
            By.TAG_NAME, "body").text
        assert answered == len(instrument.items) + len(instrument.attributes)
        widths = browser.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth]")
        assert widths == [390, 390]  # nothing wider than the phone
    finally:
        browser.quit()
        server.kill()
        server.wait()
    with open_store(store_path) as con:
        report = ingest_inbox(con, store_path.with_name("store.inbox.sqlite"), instrument,
                              definition_yaml)
        row = con.execute("select site_code, wave, hs01, ps01, oc_needed, staff_group, "
                          "duration_seconds from responses").fetchall()
    assert report.taken == 1 and report.ingest.rows_accepted == 1
    site, wave, hs01, ps01, oc_needed, staff_group, duration = row[0]
    assert (site, wave, hs01, ps01, oc_needed, staff_group) == ("A", 2025, 4, 4, 2,
                                                                 "foundation")
    assert duration is not None and 0 <= duration < 600


def test_without_javascript_a_phone_shows_every_section_and_one_send_button(
        store_path, instrument, definition_yaml):
    """A browser that runs no scripts gets one long page: every section shown, no Back or
    Next button that would do nothing, the send button at the end, and the group size the
    trust set (here 7) in the introduction and the note on the optional questions. The page it shows, posted as
    such a browser posts it (no duration), is thanked and stored."""
    import os
    import re
    import urllib.parse
    import urllib.request

    from selenium.webdriver.common.by import By

    from tests.live import start_culture, stop

    port = free_port()
    server = start_culture("collect", "--db", str(store_path), "--port", str(port), port=port,
                           env={**os.environ, "CULTURE_MIN_GROUP_SIZE": "7"})
    # (chromedriver's clicks wait on scripts of their own, so with scripts blocked the
    # browser is only looked at; the post is made from the page it was given.)
    browser = chromium(phone=True, scripts=False)
    try:
        browser.get(f"http://127.0.0.1:{port}/s/A/2025")
        assert browser.find_element(By.TAG_NAME, "html").get_attribute("class") == ""
        sections = browser.find_elements(By.CSS_SELECTOR, "section.step")
        assert len(sections) >= 10 and all(s.is_displayed() for s in sections)
        buttons = browser.find_elements(By.CSS_SELECTOR, "button")
        assert {b.get_attribute("textContent") for b in buttons} == {"Back", "Next",
                                                                 "Send my answers"}
        assert [b.text for b in buttons if b.is_displayed()] == ["Send my answers"]
        body = browser.find_element(By.TAG_NAME, "body").text
        assert "compare groups of seven or more people" in body
        assert "shown for groups of at least seven people" in body    # the introduction
        assert "groups of ten" not in body and "at least ten" not in body
        SCREENSHOTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(SCREENSHOTS / "survey_phone_no_script.png"))
        page = browser.page_source
    finally:
        browser.quit()
    try:
        token = re.search(r'name="form_token" value="([^"]+)"', page)[1]
        answers = {item.id: instrument.response_scale(item.response_scale).options[1].code
                   for item in instrument.items}
        post = urllib.parse.urlencode({"form_token": token, "t": "", "duration_seconds": "",
                                       **answers}).encode()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/s/A/2025", post) as answer:
            thanks = answer.read().decode()
        assert "saved anonymously" in thanks and "groups of seven or more people" in thanks
    finally:
        stop(server)
    with open_store(store_path) as con:
        report = ingest_inbox(con, store_path.with_name("store.inbox.sqlite"), instrument,
                              definition_yaml)
        row = con.execute("select hs01, duration_seconds from responses").fetchall()
    assert report.taken == 1 and row == [(int(answers["hs01"]), None)]
