"""Every control on every page, moved in a real Chromium by each role.

An admin, a director (their own site) and a researcher sign in to one served dashboard
and open every page their role may open (`dashboard.access.PAGE_ROLES`, so a page added
there is covered without editing this file). On each page every selector is changed:
the site, the wave, the benchmark's measure, the principle pills. After each change the
heading names the new choice, the figures in the page change (its decimal numbers: the
data, not the heading or the selectors) and the URL's query carries the choice, so the
view can be bookmarked. No page may log a console error.
"""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlparse

import pytest

from dashboard.access import PAGE_ROLES
from dashboard.accounts import AccountBook
from dashboard.data import PublishedData
from dashboard.pages import PAGES
from tests.live import chromium, free_port, start_culture, stop, submit_sign_in

pytestmark = pytest.mark.slow   # a real browser against a served dashboard

#: username -> (role, site of a director, password)
ACCOUNTS = {"boss": ("admin", None, "administrator password"),
            "dir-a": ("director", "A", "director password"),
            "res": ("researcher", None, "researcher password")}


@pytest.fixture(scope="module")
def server(published_sample):
    """(base URL, settings) of one `culture serve` for the module, with the three accounts."""
    settings, _ = published_sample
    book = AccountBook(settings.accounts_path)
    for username, (role, site, password) in ACCOUNTS.items():
        book.add(username, role, password, site)
    port = free_port()
    process = start_culture("serve", "--db", str(settings.db_path), "--port", str(port),
                            port=port)
    yield f"http://127.0.0.1:{port}", settings
    stop(process)


#: Pages whose figures do not follow the wave, by design: Trends shows every wave; Quality
#: shows counts (this sample's are the same in every wave, so its Responses key figure is
#: checked against the published count instead) or, for a researcher, all sites and waves.
WAVE_FREE_FIGURES = {"/trends", "/quality"}
#: Pages with no figures at all: the Actions page is a site's plan (text and dates); its
#: heading and URL must still follow the site. Its forms are filled in and submitted by
#: tests/test_plans_browser.py.
FIGURE_FREE = {"/actions"}


#: URL query key -> the selector that sets it.
QUERY_KEYS = {"site": "site-select", "wave": "wave-select", "measure": "benchmark-measure"}


def pages_for(role: str) -> list[str]:
    return [path for path, roles in PAGE_ROLES.items() if role in roles]


def sign_in(browser, base: str, username: str) -> None:
    submit_sign_in(browser, base, username, ACCOUNTS[username][2])
    wait_for_page(browser)


def wait_for_page(browser, timeout: float = 60) -> None:
    """Until Dash has rendered a page heading and no callback is pending."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, timeout).until(
        lambda b: b.find_elements(By.CSS_SELECTOR, "#page h1, #page h2")
        and not b.find_elements(By.CSS_SELECTOR, "[data-dash-is-loading='true']"))
    time.sleep(0.2)   # plotly draws after the callback's answer has arrived


#: The page's heading and its body text, less the heading, the selectors and the pills.
_READ_PAGE = """
const page = document.getElementById('page');
const heading = page.querySelector('h1, h2');
const body = page.cloneNode(true);
body.querySelectorAll('h1, .controls, .control, nav.pills').forEach(e => e.remove());
const figures = {};
page.querySelectorAll('.key-figure').forEach(k => {
    figures[k.querySelector('.kf-label').textContent] = k.querySelector('.kf-value').textContent;
});
return [heading ? heading.textContent : '', body.textContent, figures];
"""


def read_page(browser) -> dict:
    """What a person reads: heading, the numbers of the body (sorted: the data shown,
    wherever it sits, tables inside closed "Table view"s included; years left out, since
    a wave named in a sentence is not a figure), key figures, query."""
    heading, body, figures = browser.execute_script(_READ_PAGE)
    query = {k: v[-1] for k, v in parse_qs(urlparse(browser.current_url).query).items()}
    numbers = [n for n in re.findall(r"-?\d[\d,]*(?:\.\d+)?%?", body)
               if not re.fullmatch(r"20\d\d", n)]
    return {"heading": heading, "numbers": sorted(numbers),
            "figures": figures, "query": query, "text": body}


def dropdowns(browser) -> list[str]:
    """Ids of the page's visible selectors (Dash renders a dropdown as a button with
    the component's id; a director's fixed site is a hidden input, not a selector)."""
    return browser.execute_script(
        "return [...document.querySelectorAll('#page .dash-dropdown-wrapper button[id]')]"
        ".map(b => b.id);")


def unknown_controls(browser) -> list[str]:
    """Controls on the page that this test does not know how to move (a new kind of
    selector must be taught here, not pass untested). Known: Dash dropdowns (a button
    and its focus proxy), hidden inputs, plotly's mode bar."""
    return browser.execute_script("""
        return [...document.querySelectorAll('#page input, #page select, #page textarea, '
            + '#page button, #page [role=radio], #page [role=tab], #page [role=switch], '
            + '#page [role=slider], #page [role=checkbox]')]
          .filter(e => !(e.matches('.dash-dropdown-wrapper button[id], '
                                   + '.dash-dropdown-focus-target, input[type=hidden], '
                                   + '.modebar-btn') || e.closest('form.action-form')))
          .map(e => e.outerHTML.slice(0, 120));""")


def options(browser, dropdown: str) -> tuple[str, list[str]]:
    """(the chosen option's text, every option's text) of a dropdown, left closed."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    button = browser.find_element(By.ID, dropdown)
    chosen = button.text.strip()
    button.click()
    texts = [o.text for o in browser.find_elements(By.CSS_SELECTOR, "[role='option']")]
    button.send_keys(Keys.ESCAPE)
    browser.execute_script("document.activeElement.blur();")
    return chosen, texts


def choose(browser, dropdown: str, text: str) -> None:
    """Open a dropdown and click the option that reads `text`, as a person would."""
    from selenium.webdriver.common.by import By

    browser.find_element(By.ID, dropdown).click()
    next(o for o in browser.find_elements(By.CSS_SELECTOR, "[role='option']")
         if o.text == text).click()


def console_errors(browser) -> list[str]:
    return [entry["message"] for entry in browser.get_log("browser")
            if entry["level"] == "SEVERE"]


def _until(browser, shown, timeout: float = 30) -> dict:
    """The page once `shown(page)` holds (the router answers a URL change a moment
    later: the old page stays until it does); what is on screen at the timeout if not."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    def settled(_):
        wait_for_page(browser)
        now = read_page(browser)
        return now if shown(now) else False

    try:
        return WebDriverWait(browser, timeout, poll_frequency=0.3).until(settled)
    except TimeoutException:
        return read_page(browser)


def _other(choices: list[str], chosen: str, prefer: str | None = None) -> str:
    others = [c for c in choices if c != chosen]
    assert others, f"a selector with one choice ({chosen}) cannot be tested"
    return next((c for c in others if prefer and prefer in c), others[0])


def _check_selector(browser, path: str, dropdown: str, published: PublishedData) -> None:
    """Move one dropdown to another choice and check what must follow."""
    chosen, choices = options(browser, dropdown)
    before = read_page(browser)
    target = _other(choices, chosen, prefer="2024" if dropdown == "wave-select" else "(B)")
    choose(browser, dropdown, target)
    if dropdown == "site-select":
        after = _until(browser, lambda now: target in now["heading"])
    elif dropdown == "wave-select" and chosen in before["heading"]:
        after = _until(browser, lambda now: target in now["heading"])
    elif dropdown == "wave-select":   # a page that names no wave: only the URL can move
        after = _until(browser, lambda now: now["query"].get("wave") == target)
        time.sleep(1)
        after = read_page(browser)
    else:
        after = _until(browser, lambda now: now["numbers"] != before["numbers"]
                       and now["query"].get("measure") != before["query"].get("measure"))
    where = f"{path}: {dropdown} {chosen!r} -> {target!r}"
    if dropdown == "site-select":
        code = re.search(r"\((\w+)\)$", target).group(1)
        assert after["query"].get("site") == code, (where, after["query"])
        assert target in after["heading"] and chosen not in after["heading"], (where, after)
    elif dropdown == "wave-select":
        assert after["query"].get("wave") == target, (where, after["query"])
        if chosen in before["heading"]:
            assert target in after["heading"] and chosen not in after["heading"], where
        else:
            # A page of every wave (Trends) names none; it must still carry the choice on.
            assert path == "/trends", (where, after["heading"])
            assert after["heading"] == before["heading"], where
            assert after["numbers"] == before["numbers"], where
            return
    else:
        assert after["heading"] == before["heading"], where   # the measure is not in it
        name = target.split(": ", 1)[-1]
        assert name in after["text"], (where, "the chosen measure is not named")
        measure = after["query"].get("measure", "")
        assert measure.partition(":")[2] in published.measure_names(), (where, measure)
        assert published.measure_names()[measure.partition(":")[2]] == name, where
        browser.get(browser.current_url)   # the URL is the view: bookmarked, it reopens
        wait_for_page(browser)
        assert read_page(browser)["numbers"] == after["numbers"], (where, "not bookmarkable")
    for kept, control in QUERY_KEYS.items():   # the other choices stay as they were
        if kept in before["query"] and dropdown != control:
            assert after["query"][kept] == before["query"][kept], (where, after["query"])
    if not (dropdown == "wave-select" and path in WAVE_FREE_FIGURES) and path not in FIGURE_FREE:
        assert after["numbers"] != before["numbers"], (where, "no figure changed")
    if "Responses" in after["figures"]:
        site, wave = after["query"].get("site", "A"), int(after["query"]["wave"])
        n = published.responses(site, wave)["n"]
        assert after["figures"]["Responses"] == f"{n:,}", (where, after["figures"])
        if dropdown == "site-select":
            assert after["figures"] != before["figures"], where


def _check_pills(browser, path: str) -> None:
    """Each principle pill opens its principle: heading, figures and the URL follow."""
    from selenium.webdriver.common.by import By

    count = len(browser.find_elements(By.CSS_SELECTOR, "#page nav.pills a"))
    for index in range(count):
        pill = browser.find_elements(By.CSS_SELECTOR, "#page nav.pills a")[index]
        if "active" in pill.get_attribute("class").split():
            continue
        name = pill.text
        principle = parse_qs(urlparse(pill.get_attribute("href")).query)["principle"][0]
        before = read_page(browser)
        pill.click()
        after = _until(browser, lambda now: now["heading"].startswith(name))
        where = f"{path}: pill {name!r}"
        assert after["query"].get("principle") == principle, (where, after["query"])
        assert after["heading"].startswith(name), (where, after["heading"])
        assert after["numbers"] != before["numbers"], (where, "no figure changed")
        active = browser.find_element(By.CSS_SELECTOR, "#page nav.pills a.active")
        assert active.text == name, where


@pytest.mark.parametrize("username", ACCOUNTS)
def test_every_control_on_every_page_moves_heading_figures_and_url(server, username):
    base, settings = server
    role, own_site, _ = ACCOUNTS[username]
    published = PublishedData(settings.published_path)
    browser = chromium(width=1400)
    try:
        sign_in(browser, base, username)
        console_errors(browser)   # the sign-in page's log is not a page's
        errors, moved = {}, []
        for path in pages_for(role):
            browser.get(base + path)
            wait_for_page(browser)
            if own_site:
                assert read_page(browser)["query"].get("site", own_site) == own_site
            assert unknown_controls(browser) == [], path
            for dropdown in dropdowns(browser):
                _check_selector(browser, path, dropdown, published)
                moved.append((path, dropdown))
            if browser.find_elements("css selector", "#page nav.pills a"):
                _check_pills(browser, path)
                moved.append((path, "pills"))
            if errors_here := console_errors(browser):
                errors[path] = errors_here
        assert errors == {}
        # Only an admin picks a site (on every site page); a director sees their own, a
        # researcher all sites.
        assert ("/benchmark", "benchmark-measure") in moved
        sites = {path for path, control in moved if control == "site-select"}
        assert sites == ({p for p in pages_for(role) if PAGES[p].NEEDS_SITE}
                         if role == "admin" else set()), sites
        if role != "researcher":
            assert ("/principle", "pills") in moved
    finally:
        browser.quit()
