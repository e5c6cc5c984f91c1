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
