"""Full-page screenshots of every dashboard page, as each role, on a laptop and a phone.

    .venv/bin/python bench/screenshots.py --out /tmp/shots21 [--db culture.duckdb]

Without --db a demo store is built in a temporary directory (`culture demo --no-serve`).
Accounts with known passwords are added for an admin, a director of --site and a
researcher; `culture serve` is started on a free port; headless Chromium visits each page
at 1400 px and at 390 px (phone emulation), sets the window to the document's height and
saves ROLE_PAGE_WIDTH.png. It also prints any page wider than its viewport, which is a
layout fault (a table or chart pushing the page sideways).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dashboard.pages import PAGES as APP_PAGES  # noqa: E402
from tests.live import CULTURE, chromium, free_port, start_culture, stop  # noqa: E402

#: Every page of the app (a role's refused pages are still shot: the refusal is a page too).
PAGES = list(APP_PAGES)
PASSWORD = "screenshot password"
WIDTHS = {"1400": (1400, 1000, False), "390": (390, 844, True)}


def add_accounts(db: Path, site: str) -> dict[str, str]:
    """username -> role for the accounts the screenshots sign in as."""
    accounts = {"shot-admin": ("admin", None), f"shot-director-{site.lower()}":
                ("director", site), "shot-researcher": ("researcher", None)}
    env = dict(os.environ, CULTURE_PASSWORD=PASSWORD)
    for name, (role, code) in accounts.items():
        args = [str(CULTURE), "users", "add", name, "--role", role, "--db", str(db)]
        subprocess.run(args + (["--site", code] if code else []), env=env,
                       capture_output=True)   # already there from an earlier run: fine
    return {name: role for name, (role, _) in accounts.items()}


def settle(browser, timeout: float = 40) -> None:
    """Wait until Dash has rendered the page and no callback is pending."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, timeout).until(lambda b: b.find_elements(
        By.CSS_SELECTOR, "#page h1, #page h2, .refused"))
    WebDriverWait(browser, timeout).until(lambda b: not b.find_elements(
        By.CSS_SELECTOR, "[data-dash-is-loading='true']"))
    time.sleep(0.8)   # plotly draws after Dash says it is done


def sign_in(browser, base: str, username: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(base + "/login")
    browser.find_element(By.ID, "username").send_keys(username)
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "sign-in").click()
    settle(browser)


def full_page(browser, path: Path, width: int, phone: bool) -> None:
    """The whole document in one PNG: the window (or emulated screen) as tall as it."""
    height = browser.execute_script("return document.documentElement.scrollHeight")
    if phone:
        browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": True})
    else:
        browser.set_window_size(width, height + 140)
    time.sleep(0.8)   # plotly redraws responsive graphs on resize
    browser.save_screenshot(str(path))


def shoot(base: str, out: Path, accounts: dict[str, str], site: str,
          widths: list[str], pages: list[str]) -> list[str]:
    faults = []
    for label, (width, height, phone) in WIDTHS.items():
        if label not in widths:
            continue
        for username, role in accounts.items():
            browser = chromium(width, height, phone)
            try:
                sign_in(browser, base, username)
                for page in pages:
                    query = f"?site={site}" if role != "researcher" else ""
                    browser.get(base + page + query)
                    try:
                        settle(browser)
                    except Exception:   # noqa: BLE001 - a page that does not exist yet
                        continue
                    if browser.find_elements("css selector", ".refused"):
                        continue
                    wide = browser.execute_script(
                        "return document.documentElement.scrollWidth")
                    if wide > width:
                        faults.append(f"{role} {page} at {width}: page is {wide} px wide")
                    name = f"{role}_{page.strip('/') or 'overview'}_{label}.png"
                    full_page(browser, out / name, width, phone)
                    if phone:   # back to a phone's screen for the next page's layout
                        browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                            "width": width, "height": height, "deviceScaleFactor": 2,
                            "mobile": True})
                    else:
                        browser.set_window_size(width, height)
            finally:
                browser.quit()
    return faults


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNGs")
    parser.add_argument("--db", type=Path, help="store (default: a fresh demo)")
    parser.add_argument("--site", default="D", help="the director's site code")
    parser.add_argument("--role", action="append", choices=["admin", "director",
                                                            "researcher"],
                        help="only these roles (repeatable; default all)")
    parser.add_argument("--width", action="append", choices=list(WIDTHS),
                        help="only these widths (repeatable; default both)")
    parser.add_argument("--page", action="append", help="only these paths (repeatable)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        db = args.db
        if db is None:
            subprocess.run([str(CULTURE), "demo", "--no-serve"], cwd=scratch, check=True,
                           capture_output=True)
            db = Path(scratch) / "culture.duckdb"
        accounts = add_accounts(db, args.site)
        port = free_port()
        try:
            server = start_culture("serve", "--db", str(db), "--port", str(port), port=port,
                                   output=open(Path(scratch) / "serve.log", "w"))
        except BaseException as failed:   # tests.live reports through pytest.fail
            print(f"error: {str(failed).splitlines()[0]}", file=sys.stderr)
            return 2
        try:
            accounts = {name: role for name, role in accounts.items()
                        if not args.role or role in args.role}
            faults = shoot(f"http://127.0.0.1:{port}", args.out, accounts, args.site,
                           args.width or list(WIDTHS), args.page or PAGES)
        finally:
            stop(server)
    for fault in faults:
        print(fault)
    print(f"screenshots in {args.out}")
    return 1 if faults else 0


if __name__ == "__main__":
    sys.exit(main())
