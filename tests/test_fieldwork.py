"""Fieldwork tracking: a real `culture collect` takes answers; `culture status` and the
dashboard's Fieldwork page count them, with no staff group under k shown; a closed wave
refuses its links and answers with a clear 4xx page; the dashboard never reads the store."""

from __future__ import annotations

import http.client
import json
import re
import subprocess
from urllib.parse import urlencode

import pytest

from dashboard.access import AccessDenied
from dashboard.accounts import AccountBook, LoginThrottle
from dashboard.app import create_app, render_page
from pipeline.store import add_wave, open_store
from survey.fieldwork import (beside_published, fieldwork_path, read_summary, withhold_small,
                              write_summary)
from tests.conftest import culture
from tests.live import free_port, start_culture
from tests.pages import as_text, markdown_tables, signed_in
from tests.test_dashboard import PASSWORD

FORM_TOKEN = re.compile(r"name='form_token' value='([^']+)'")
WAVE = 2027   # a wave the sample store does not have: every answer in it comes from the form


def test_small_groups_are_withheld_and_cannot_be_worked_out_from_the_total():
    # 3 is below k; alone it could be had as total - shown, so the smallest shown goes too.
    assert withhold_small({"a": 12, "b": 3, "c": 0, "d": 15}, 10) == {
        "a": None, "b": None, "c": 0, "d": 15}
    # Hidden counts adding up to k or more need nothing more withheld.
    assert withhold_small({"a": 12, "b": 6, "c": 5}, 10) == {"a": 12, "b": None, "c": None}
    assert withhold_small({"a": 30, "b": 0}, 10) == {"a": 30, "b": 0}


def test_the_reader_withholds_small_groups_an_edited_file_shows(tmp_path):
    path = write_summary(tmp_path / "x.fieldwork.json", {
        "written_at": "2027-01-01T00:00:00", "written_by": "hand", "min_group_size": 10,
        "waves": [{"wave": WAVE, "open": True, "sites": [{
            "site": "A", "responses": 25, "groups": [
                {"group": "consultant", "responses": 13},
                {"group": "resident", "responses": 4},
                {"group": "sas", "responses": 8}]}]}]})
    groups = read_summary(path)["waves"][0]["sites"][0]["groups"]
    assert [g["responses"] for g in groups] == [13, None, None]
    assert beside_published(tmp_path / "c.published.duckdb") == tmp_path / "c.fieldwork.json"
    assert fieldwork_path(tmp_path / "c.duckdb") == tmp_path / "c.fieldwork.json"


def _open(port: int, path: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read().decode()
    connection.close()
    return response.status, body


def _send(port: int, site: str, token: str, fields: dict) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("POST", f"/s/{site}/{WAVE}", urlencode({"form_token": token, **fields}),
                       {"Content-Type": "application/x-www-form-urlencoded"})
    response = connection.getresponse()
    body = response.read().decode()
    connection.close()
    return response.status, body


def _answer(port: int, site: str, fields: dict) -> int:
    status, page = _open(port, f"/s/{site}/{WAVE}")
    assert status == 200, page
    return _send(port, site, FORM_TOKEN.search(page).group(1), fields)[0]


@pytest.fixture(scope="module")
def season(published_sample):
    """The sample store with an open wave 2027 answered through a real `culture collect`:
    site A 11 foundation doctors, 10 consultants, 3 residents; site C 1 unstated."""
    settings, _ = published_sample
    with open_store(settings.db_path) as con:
        add_wave(con, WAVE)
    port = free_port()
    server = start_culture("collect", "--db", str(settings.db_path), "--port", str(port),
                           port=port)
    try:
        sent = [_answer(port, "A", {"hs01": "4", "staff_group": group})
                for group, n in (("foundation", 11), ("consultant", 10), ("resident", 3))
                for _ in range(n)]
        sent.append(_answer(port, "C", {"hs01": "2"}))
        assert sent == [200] * 25
        yield settings, port, server
    finally:
        server.kill()
        server.wait()


def test_status_counts_the_answers_by_site_and_shows_no_small_group(season):
    settings, _, _ = season
    done = culture("status", "--db", settings.db_path, "--wave", WAVE)
    assert done.exit_code == 0, done.stdout + done.stderr
    said = done.stdout
    assert f"fieldwork, wave {WAVE} (open): 25 responses so far, 25 of them waiting" in said
    row_a = re.search(r"│ A +│ Tamar Valley[^│]*│ +(\d+) │ +(\d+) │ +(\d+)% │ +(\d+) │", said)
    assert row_a and row_a.groups() == ("24", "600", "4", "24")
    assert re.search(r"│ A +│ Foundation doctor +│ +11 │ +66 │ +17% │", said)
    # 3 residents are under k = 10; the 10 consultants go too, or 24 - 11 - 10 = 3.
    assert not re.search(r"│ A +│ (Consultant|Specialty trainee)", said)
    assert re.search(r"│ A +│ 2 more, fewer than 10 each +│ +- │", said)
    assert re.search(r"│ C +│ 1 more, fewer than 10 each", said)
    fieldwork = json.loads(fieldwork_path(settings.db_path).read_text())
    wave = next(w for w in fieldwork["waves"] if w["wave"] == WAVE)
    site_a = next(s for s in wave["sites"] if s["site"] == "A")
    assert (site_a["responses"], site_a["waiting"], site_a["in_store"]) == (24, 24, 0)
    # Nothing in the file is a staff group under k, in any wave.
    for any_wave in fieldwork["waves"]:
        for site in any_wave["sites"]:
            assert all(g["responses"] is None or g["responses"] == 0 or g["responses"] >= 10
                       for g in site["groups"])
    assert {g["group"]: g["responses"] for g in site_a["groups"]}["consultant"] is None
    assert wave["days"] and sum(n for _, n in wave["days"]) == 25


def test_the_dashboard_fieldwork_page_counts_them_for_admins_only(season):
    settings, _, _ = season
    assert culture("status", "--db", settings.db_path).exit_code == 0
    book = AccountBook(settings.accounts_path)
    book.add("lead", "admin", PASSWORD)
    book.add("dir-f", "director", PASSWORD, "A")
    book.add("res-f", "researcher", PASSWORD)
    app = create_app(settings, secret_key=b"test secret", throttle=LoginThrottle(free=3))
    with signed_in(app, "lead"):
        page, nav = render_page("/fieldwork", "")
    assert "Fieldwork" in as_text(nav)
    tables = markdown_tables(page)
    sites = tables[f"Wave {WAVE}: responses by site"].set_index("Site")
    tamar = sites.loc["Tamar Valley Hospitals NHS Trust (A)"]
    assert (tamar["Responses so far"], tamar["Headcount"], tamar["Response rate"],
            tamar["Waiting in the inbox"]) == ("24", "600", "4%", "24")
    groups = tables[f"Wave {WAVE}: responses by staff group"]
    shown = groups[groups["Site"] == "Tamar Valley Hospitals NHS Trust (A)"]
    # Groups nobody has answered for yet read 0 against their headcount (zeros show no one).
    nobody = shown[shown["Responses so far"] == "0"]
    assert len(nobody) == 5 and set(nobody["Response rate"]) == {"0%"}
    assert shown[shown["Responses so far"] != "0"].values.tolist() == [
        ["Tamar Valley Hospitals NHS Trust (A)", "Foundation doctor", "11", "66", "17%"],
        ["Tamar Valley Hospitals NHS Trust (A)", "2 more group(s)",
         "not shown: fewer than 10 each", "-", "-"]]
    # No staff group anywhere on the page shows a count from 1 to k - 1.
    counts = [c for c in groups["Responses so far"] if not c.startswith("not shown")]
    assert counts and all(int(c) == 0 or int(c) >= 10 for c in counts)
    for user in ("dir-f", "res-f"):
        with signed_in(app, user), pytest.raises(AccessDenied):
            render_page("/fieldwork", "")


def test_the_fieldwork_page_reads_no_store(season, tmp_path):
    """The page's only source is the counts file: with the store gone it still shows them."""
    settings, _, _ = season
    assert culture("status", "--db", settings.db_path).exit_code == 0
    import dataclasses
    import shutil

    moved = dataclasses.replace(settings, db_path=tmp_path / "elsewhere.duckdb")
    shutil.copyfile(settings.published_path, moved.published_path)
    shutil.copyfile(fieldwork_path(settings.db_path), fieldwork_path(moved.db_path))
    AccountBook(moved.accounts_path).add("lead", "admin", PASSWORD)
    assert not moved.db_path.exists() and not moved.inbox_path.exists()
    app = create_app(moved, secret_key=b"test secret", throttle=LoginThrottle(free=3))
    with signed_in(app, "lead"):
        page, _ = render_page("/fieldwork", "")
    assert f"Wave {WAVE}: responses by site" in markdown_tables(page)
    # With no counts written yet, the page says which commands write them.
    fieldwork_path(moved.db_path).unlink()
    with signed_in(app, "lead"):
        page, _ = render_page("/fieldwork", "")
    assert "No fieldwork counts yet" in as_text(page) and not markdown_tables(page)


def test_a_closed_wave_refuses_links_and_answers_with_a_clear_page(season):
    settings, port, server = season
    status, page = _open(port, f"/s/A/{WAVE}")
    token = FORM_TOKEN.search(page).group(1)      # a form opened before the close
    closed = culture("waves", "close", WAVE, "--db", settings.db_path)
    assert closed.exit_code == 0 and f"wave {WAVE} closed" in closed.stdout
    import time
    time.sleep(1.2)   # the server reads the closed waves at most once a second
    status, page = _open(port, f"/s/A/{WAVE}")
    assert status == 410
    assert f"The {WAVE} survey for Tamar Valley Hospitals NHS Trust has closed" in page
    assert "Traceback" not in page and "<form" not in page
    status, page = _send(port, "A", token, {"hs01": "3"})
    assert status == 410 and "has closed" in page
    assert _open(port, f"/s/A/{WAVE - 1}")[0] == 200      # other waves stay open
    # Nothing was stored after the close, and status says the wave is closed.
    done = culture("status", "--db", settings.db_path)
    assert re.search(rf"Wave {WAVE}: closed on \d{{4}}-\d\d-\d\d, 25 responses", done.stdout)
    # Invitations for a closed wave are refused with the way to open it again.
    refused = culture("invite", "--site", "A", "--wave", WAVE, "--count", 3, "--out",
                      settings.db_path.with_name("links.csv"), "--db", settings.db_path)
    assert refused.exit_code == 1 and f"culture waves open {WAVE}" in refused.stderr
    reopened = culture("waves", "open", WAVE, "--db", settings.db_path)
    assert reopened.exit_code == 0 and "opened again" in reopened.stdout
    time.sleep(1.2)
    assert _open(port, f"/s/A/{WAVE}")[0] == 200
    assert server.poll() is None


def test_closing_an_unknown_wave_says_how_to_add_it(season):
    settings, _, _ = season
    done = culture("waves", "close", 2031, "--db", settings.db_path)
    assert done.exit_code == 1 and "culture waves add 2031" in done.stderr
    assert "Traceback" not in done.stderr


def test_invite_names_the_command_the_readme_documents(store_path, tmp_path):
    done = culture("invite", "--site", "Q", "--wave", 2025, "--count", 3, "--out",
                   tmp_path / "links.csv", "--db", store_path)
    assert done.exit_code == 1
    assert "culture sites load sites.csv" in done.stderr and "waves add" not in done.stderr
    done = culture("invite", "--site", "A", "--wave", 2031, "--count", 3, "--out",
                   tmp_path / "links.csv", "--db", store_path)
    assert done.exit_code == 1 and "culture waves add 2031" in done.stderr
    assert "sites load" not in done.stderr
    readme = (__import__("survey.settings").settings.PROJECT_ROOT / "README.md").read_text()
    assert "culture sites load" in readme
