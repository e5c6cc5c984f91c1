"""A kinder survey form: it names the organisation, who runs the survey and how to reach
them, links a privacy notice and says where to get support now (the site's own details);
an invitation link is checked as the form opens; the thank-you page reads well; the
answer options sit on one row on a desktop and stack on a phone (real Chromium)."""

from __future__ import annotations

import re
import sqlite3

import duckdb
import pytest

from collect.inbox import Inbox, issue_tokens, read_submissions
from collect.webform import GENERAL_SUPPORT, SurveySite, create_collect_app
from pipeline.store import Site, add_sites, list_sites, load_sites_csv, open_store, read_sql
from survey.errors import ReferenceDataError
from tests.live import chromium, free_port, start_culture

TOKEN = re.compile(r"name='form_token' value='([^']+)'")
TAMAR = SurveySite("A", "Tamar Valley Hospitals", "survey@tamar.example",
                   "Talk to the Staff Wellbeing Hub, open 8am to 8pm, or call 01752 000 000.",
                   "https://tamar.example/wellbeing")


@pytest.fixture
def inbox_path(tmp_path):
    return tmp_path / "store.inbox.sqlite"


@pytest.fixture
def client(instrument, inbox_path):
    inbox = Inbox(inbox_path, mark_batch=2)
    app = create_collect_app(instrument, inbox, {("A", 2025), ("C", 2025)},
                             sites={"A": TAMAR, "C": SurveySite("C", "Weald Support Unit")},
                             run_by="the Practitioner Support research team",
                             contact="team@research.example")
    yield app.test_client()
    inbox.close()


def test_the_form_names_the_organisation_who_runs_it_the_privacy_notice_and_support(client):
    page = client.get("/s/A/2025").text
    assert "For staff of <strong>Tamar Valley Hospitals</strong>: the 2025 survey." in page
    assert "Run by the Practitioner Support research team (<a href='mailto:survey@tamar" \
           ".example'>survey@tamar.example</a>)" in page   # the site's own contact first
    assert "<a href='/privacy?site=A'>How your answers are used (privacy notice)</a>" in page
    assert "If you need support now" in page and "Staff Wellbeing Hub" in page
    assert "href='https://tamar.example/wellbeing'" in page
    other = client.get("/s/C/2025").text   # no details of its own: the survey's contact
    assert "<strong>Weald Support Unit</strong>" in other
    assert "mailto:team@research.example" in other
    assert "Practitioner Health" in other and "Samaritans" in other


def test_the_privacy_notice_is_a_plain_page_in_the_projects_words(client):
    notice = client.get("/privacy?site=A")
    assert notice.status_code == 200
    text = notice.text
    for promise in ("What is kept", "not your name, email or network address",
                    "nobody, not even the survey team, can tell which answers came from which "
                    "link", "groups of at least ten people", "This survey is run by the "
                    "Practitioner Support research team for Tamar Valley Hospitals."):
        assert promise in text
    assert "<script" not in text
    assert client.get("/privacy").status_code == 200           # without a site, too
    assert "run by" not in client.get("/privacy?site=ZZ").text  # no unknown site named


def test_a_bogus_or_used_invitation_is_refused_as_the_form_opens(client, inbox_path):
    [link, spare] = issue_tokens(inbox_path, "A", 2025, 2)
    bogus = client.get("/s/A/2025?t=not-a-real-link")
    assert bogus.status_code == 403
    assert "This invitation link is not recognised" in bogus.text
    assert "<form" not in bogus.text and "Staff Wellbeing Hub" in bogus.text
    page = client.get(f"/s/A/2025?t={link}")
    assert page.status_code == 200 and "<form" in page.text
    sent = client.post("/s/A/2025", data={"form_token": TOKEN.search(page.text).group(1),
                                          "t": link, "hs01": "4"})
    assert sent.status_code == 200
    # Its used mark still waits in memory (written ten at a time), and it is refused.
    with sqlite3.connect(inbox_path) as con:
        assert con.execute("select count(*) from tokens where used = 1").fetchone() == (0,)
    used = client.get(f"/s/A/2025?t={link}")
    assert used.status_code == 409 and "<form" not in used.text
    assert "This invitation has already been used" in used.text
    assert "If that was you, thank you: your answers are saved." in used.text
    # A link for another site is not one of this site's invitations.
    assert client.get(f"/s/C/2025?t={spare}").status_code == 403
    assert len(read_submissions(inbox_path)) == 1


def test_the_thank_you_page_reads_well_and_says_where_support_is(client, inbox_path):
    token = TOKEN.search(client.get("/s/A/2025").text).group(1)
    thanks = client.post("/s/A/2025", data={"form_token": token, "hs01": "4"})
    again = client.post("/s/A/2025", data={"form_token": token, "hs01": "4"})
    assert thanks.status_code == 200
    text = thanks.text
    assert "<title>Thank you</title>" in text and "<h1>Thank you</h1>" in text
    assert text.count("Thank you") == 2 and "Thank you. Thank you" not in text
    assert "Your answers have been saved anonymously.</p>" in text
    assert "If anything in this survey has been hard to think about" in text
    assert "Staff Wellbeing Hub" in text and "https://tamar.example/wellbeing" in text
    assert "they had already been received, so nothing more is needed" in again.text
    assert len(read_submissions(inbox_path)) == 1


def test_a_site_without_details_gets_the_general_services(instrument, inbox_path):
    inbox = Inbox(inbox_path)
    try:
        client = create_collect_app(instrument, inbox, {("A", 2025)}).test_client()
        page = client.get("/s/A/2025").text
        token = TOKEN.search(page).group(1)
        thanks = client.post("/s/A/2025", data={"form_token": token}).text
    finally:
        inbox.close()
    assert "the survey team at site A" in page
    assert "please ask the person who sent you the link" in thanks
    assert GENERAL_SUPPORT.replace("'", "&#x27;") in thanks


def test_old_site_files_load_and_the_new_columns_are_kept_and_checked(tmp_path):
    old = tmp_path / "old.csv"
    old.write_text("site_code,name,site_type,region\nA,Alpha,acute_trust,South West\n")
    new = tmp_path / "new.csv"
    new.write_text("site_code,name,site_type,region,contact_email,support_text,support_url\n"
                   "B,Beta,primary_care,,lead@beta.example,Call the hub,https://beta.example/help\n")
    with open_store(tmp_path / "s.duckdb") as con:
        assert load_sites_csv(con, old) == 1 and load_sites_csv(con, new) == 1
        sites = {s.site_code: s for s in list_sites(con)}
        assert sites["A"].contact_email is None and sites["A"].support_url is None
        assert (sites["B"].contact_email, sites["B"].support_text, sites["B"].support_url) == (
            "lead@beta.example", "Call the hub", "https://beta.example/help")
        # What the form shows as a link must be a web address, never a script.
        with pytest.raises(ReferenceDataError, match="support_url: 'javascript:alert"):
            add_sites(con, [Site("C", "Gamma", "acute_trust", support_url="javascript:alert(1)")])
        with pytest.raises(ReferenceDataError, match="contact_email: 'nobody' is not an email"):
            add_sites(con, [Site("C", "Gamma", "acute_trust", contact_email="nobody")])


def test_a_version_1_store_gains_the_site_columns_and_keeps_its_sites(tmp_path):
    path = tmp_path / "v1.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create table schema_version (version integer primary key, "
                "applied_at timestamp not null)")
    con.execute(read_sql("schema_v1.sql"))
    con.execute("insert into schema_version values (1, now())")
    con.execute("insert into sites values ('A', 'Alpha', 'acute_trust', 'South West')")
    con.close()
    with open_store(path) as con:
        assert [(s.site_code, s.name, s.contact_email) for s in list_sites(con)] == [
            ("A", "Alpha", None)]


# -- in a real browser -------------------------------------------------------------------

@pytest.fixture
def served(store_path):
    with open_store(store_path) as con:
        add_sites(con, [Site("A", "Tamar Valley Hospitals", "acute_trust", "South West",
                             TAMAR.contact_email, TAMAR.support_text, TAMAR.support_url)])
    port = free_port()
    server = start_culture("collect", "--db", str(store_path), "--port", str(port),
                           "--run-by", "the Practitioner Support research team", port=port)
    yield port
    server.kill()
    server.wait()


_OPTION_BOXES = """
return Array.from(document.querySelectorAll('.step.current fieldset')).map(function (f) {
  var card = f.getBoundingClientRect();
  var legend = f.querySelector('legend').getBoundingClientRect();
  return {scale: !!f.querySelector('.options.scale'), card: [card.left, card.right],
          legend: [legend.left, legend.right, legend.bottom],
          options: Array.from(f.querySelectorAll('label.option')).map(function (o) {
            var r = o.getBoundingClientRect();
            return [Math.round(r.left), Math.round(r.top), Math.round(r.width),
                    Math.round(r.height)]; })};
});"""


def _next_section(browser):
    from selenium.webdriver.common.by import By

    button = browser.find_element(By.CSS_SELECTOR, ".step.current button.next")
    browser.execute_script("arguments[0].scrollIntoView()", button)
    button.click()


@pytest.mark.slow
def test_on_a_desktop_the_options_sit_on_one_row_inside_the_card(served):
    browser = chromium(width=1400, height=1000)
    try:
        browser.get(f"http://127.0.0.1:{served}/s/A/2025")
        _next_section(browser)
        # Long question text (a long unbroken word too) must stay inside its card.
        browser.execute_script(
            "document.querySelector('.step.current legend').textContent = "
            "'A statement much longer than any in the instrument ' + 'x'.repeat(300);")
        questions = browser.execute_script(_OPTION_BOXES)
        assert questions and all(q["scale"] for q in questions)
        for q in questions:
            tops = {top for _, top, _, _ in q["options"]}
            lefts = [left for left, _, _, _ in q["options"]]
            assert len(q["options"]) >= 3 and len(tops) == 1, q   # one row ...
            assert lefts == sorted(lefts) and len(set(lefts)) == len(lefts)  # left to right
            assert q["card"][0] <= q["legend"][0] and q["legend"][1] <= q["card"][1], q
            assert all(top >= q["legend"][2] for top in tops)    # under the question
        width = browser.execute_script("return document.documentElement.scrollWidth")
        assert width <= 1400
    finally:
        browser.quit()


@pytest.mark.slow
def test_on_a_phone_the_options_stack_and_the_thank_you_page_names_the_sites_support(served):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser = chromium(phone=True)
    try:
        browser.get(f"http://127.0.0.1:{served}/s/A/2025")
        intro = browser.find_element(By.CSS_SELECTOR, ".step.current").text
        assert "Staff Wellbeing Hub" in intro
        header = browser.find_element(By.CSS_SELECTOR, "header.about").text
        assert "For staff of Tamar Valley Hospitals" in header and "privacy notice" in header
        _next_section(browser)
        for q in browser.execute_script(_OPTION_BOXES):
            lefts = {left for left, _, _, _ in q["options"]}
            tops = [top for _, top, _, _ in q["options"]]
            assert len(lefts) == 1 and tops == sorted(tops) and len(set(tops)) == len(tops), q
            assert all(height >= 44 and width >= 300 for _, _, width, height in q["options"])
        assert browser.execute_script("return document.documentElement.scrollWidth") == 390
        while browser.find_elements(By.CSS_SELECTOR, ".step.current button.next"):
            _next_section(browser)
        submit = browser.find_element(By.ID, "submit")
        browser.execute_script("arguments[0].scrollIntoView()", submit)
        submit.click()
        WebDriverWait(browser, 20).until(lambda b: b.title == "Thank you")
        text = browser.find_element(By.TAG_NAME, "body").text
        assert "Your answers have been saved anonymously." in text
        assert "Talk to the Staff Wellbeing Hub, open 8am to 8pm" in text
        link = browser.find_element(By.LINK_TEXT, "Support at Tamar Valley Hospitals")
        assert link.get_attribute("href") == "https://tamar.example/wellbeing"
        assert "survey@tamar.example" in text
        assert browser.execute_script("return document.documentElement.scrollWidth") == 390
    finally:
        browser.quit()
