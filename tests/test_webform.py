"""The respondent's web form, its inbox and the pipeline's pick-up: real WSGI requests, a
real SQLite inbox, a real `culture collect` process killed with SIGKILL under load."""

from __future__ import annotations

import http.client
import io
import re
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import duckdb
import pytest

from pipeline.ingest.inbox import ingest_inbox
from pipeline.store import open_store
from collect.inbox import Inbox, issue_tokens, read_submissions
from collect.webform import create_collect_app, parse_form, validate_answers, SubmissionError
from tests.live import free_port, start_culture

TOKEN = re.compile(r"name='form_token' value='([^']+)'")


@pytest.fixture
def inbox_path(tmp_path) -> Path:
    return tmp_path / "store.inbox.sqlite"


@pytest.fixture
def client(instrument, inbox_path):
    inbox = Inbox(inbox_path)
    app = create_collect_app(instrument, inbox, {("A", 2025), ("C", 2025)})
    yield app.test_client()
    inbox.close()


def form_token(client, path: str = "/s/A/2025") -> str:
    return TOKEN.search(client.get(path).text).group(1)


def stored(inbox_path: Path) -> list[tuple]:
    return read_submissions(inbox_path) if inbox_path.exists() else []


def test_form_page_is_accessible_and_complete(client, instrument):
    page = client.get("/s/A/2025")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    html = page.text
    assert "<html lang='en-GB'>" in html and "width=device-width" in html
    assert html.count("<fieldset class='question'>") == len(instrument.items) + len(
        instrument.attributes)
    assert html.count("Don&#x27;t know / prefer not to say") >= 40
    for item in instrument.items:
        assert item.text.replace("'", "&#x27;") in html
    assert html.count("(optional)") == len(instrument.attributes) + 1
    assert "we do not record your name, email, IP address" in html
    assert " required" not in html
    assert len(re.findall(r"<label class='option'><input type='radio'", html)) > 200
    assert client.get("/s/Z/2025").status_code == 404
    assert client.get("/s/A/1999").status_code == 404


def test_the_form_is_compressed_for_browsers_that_accept_it(client):
    import gzip

    plain = client.get("/s/A/2025")
    packed = client.get("/s/A/2025", headers={"Accept-Encoding": "gzip, deflate, br"})
    assert "Content-Encoding" not in plain.headers
    assert packed.headers["Content-Encoding"] == "gzip"
    assert plain.headers["Vary"] == packed.headers["Vary"] == "Accept-Encoding"
    assert len(packed.data) < len(plain.data) / 4
    page = gzip.decompress(packed.data).decode()
    # The same page but its one-time form token.
    assert TOKEN.sub("", page) == TOKEN.sub("", plain.text)


def test_a_submission_is_stored_once_with_the_day_only(client, inbox_path):
    token = form_token(client)
    fields = {"form_token": token, "hs01": "4", "ps01": "9", "oc_needed": "2",
              "staff_group": "consultant", "duration_seconds": "312"}
    first = client.post("/s/A/2025", data=fields)
    again = client.post("/s/A/2025", data=fields)
    assert first.status_code == 200 and "saved anonymously" in first.text
    assert again.status_code == 200 and "already been received" in again.text
    rows = stored(inbox_path)
    assert len(rows) == 1
    _, response_id, site, wave, day, answers = rows[0]
    assert (site, wave) == ("A", 2025) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", day)
    assert answers == {"hs01": 4, "ps01": 9, "oc_needed": 2, "staff_group": "consultant",
                       "duration_seconds": 312}
    assert re.fullmatch(r"[0-9a-f]{24}", response_id)
    with sqlite3.connect(inbox_path) as con:
        columns = [r[1] for r in con.execute("pragma table_info(submissions)")]
    assert columns == ["submission_id", "response_id", "site", "wave", "submitted_on",
                       "answers"]


@pytest.mark.parametrize("change, status, message", [
    ({"hs01": "7"}, 400, "hs01: &#x27;7&#x27; is not one of 1, 2, 3, 4, 5, 9"),
    ({"oc_needed": "3"}, 400, "oc_needed: &#x27;3&#x27; is not one of 1, 2, 9"),
    ({"q99": "1"}, 400, "unknown field &#x27;q99&#x27;"),
    ({"staff_group": "astronaut"}, 400, "staff_group: &#x27;astronaut&#x27; is not one of"),
    ({"duration_seconds": "-5"}, 400, "not a whole number of seconds"),
    # str.isdigit() accepts superscripts and int() refuses them: bad input, not a crash
    ({"hs01": "\u00b2"}, 400, "hs01: &#x27;\u00b2&#x27; is not one of 1, 2, 3, 4, 5, 9"),
    ({"duration_seconds": "\u00b9\u00b2"}, 400, "not a whole number of seconds"),
    ({"hs02": "4" * 5000}, 400, "hs02: &#x27;44444444444444444444&#x27; is not one of"),
    ({"duration_seconds": "9" * 5000}, 400, "not a whole number of seconds up to 86400"),
    ({"form_token": "forged.0123456789abcdef0123456789abcdef"}, 403, "did not come from"),
    ({"form_token": ""}, 403, "did not come from"),
])
def test_bad_posts_get_a_clear_4xx_and_store_nothing(client, inbox_path, change, status,
                                                     message):
    fields = {"form_token": form_token(client), "hs01": "4", "staff_group": "sas"} | change
    response = client.post("/s/A/2025", data=fields)
    assert response.status_code == status and message in response.text
    assert stored(inbox_path) == []
    assert client.get("/s/A/2025").status_code == 200  # still serving


def test_cross_site_posts_oversized_posts_and_other_sites_tokens_are_refused(client,
                                                                            inbox_path):
    token = form_token(client)
    forged = client.post("/s/A/2025", data={"form_token": token, "hs01": "4"},
                         headers={"Origin": "https://evil.example"})
    assert forged.status_code == 403
    huge = client.post("/s/A/2025", data={"form_token": token, "hs01": "4" * 40_000})
    assert huge.status_code == 413
    wrong_site = client.post("/s/C/2025", data={"form_token": token, "hs01": "4"})
    assert wrong_site.status_code == 403
    twice = client.post("/s/A/2025", data=f"form_token={token}&hs01=4&hs01=5",
                        content_type="application/x-www-form-urlencoded")
    assert twice.status_code == 400
    assert stored(inbox_path) == []
    assert client.post("/s/A/2025", data={"form_token": token, "hs01": "4"}).status_code == 200


@pytest.mark.parametrize("body", [
    b"form_token=abc.def&hs01=4&staff_group=", b"a=1&&b=2&c", b"x=%C3%A9t%C3%A9+r%26d&y=a%3Db",
    b"=1&q=+", b"", b"only",
])
def test_form_bodies_parse_as_the_standard_library_parses_them(body):
    assert parse_form(body) == parse_qsl(body.decode(), keep_blank_values=True)


def test_posts_that_are_not_a_form_or_not_utf8_and_other_methods_are_refused(client,
                                                                             inbox_path):
    token = form_token(client)
    as_json = client.post("/s/A/2025", data=f'{{"form_token": "{token}", "hs01": 4}}',
                          content_type="application/json")
    assert as_json.status_code == 415 and "expected an HTML form post" in as_json.text
    latin1 = client.post("/s/A/2025", data=f"form_token={token}&hs01=%E9".encode(),
                         content_type="application/x-www-form-urlencoded")
    assert latin1.status_code == 400 and "not understood" in latin1.text
    put = client.put("/s/A/2025", data={"form_token": token, "hs01": "4"})
    assert put.status_code == 405 and put.headers["Allow"] == "GET, HEAD, POST"
    head = client.head("/s/A/2025")
    assert head.status_code == 200 and head.data == b"" and int(head.headers["Content-Length"]) > 10_000
    assert client.get("/s/A/2025/extra").status_code == 404
    assert stored(inbox_path) == []


def test_a_negative_content_length_is_refused_without_reading_the_stream(instrument,
                                                                         inbox_path):
    inbox = Inbox(inbox_path)
    try:
        app = create_collect_app(instrument, inbox, {("A", 2025)})
        body = io.BytesIO(b"form_token=x&hs01=4")
        status, _, page = app.handle({
            "REQUEST_METHOD": "POST", "PATH_INFO": "/s/A/2025", "CONTENT_LENGTH": "-1",
            "CONTENT_TYPE": "application/x-www-form-urlencoded", "wsgi.input": body})
    finally:
        inbox.close()
    assert status == 400 and b"not understood" in page
    assert body.tell() == 0


def test_invitation_tokens_are_single_use_and_unlinkable(instrument, inbox_path):
    links = issue_tokens(inbox_path, "A", 2025, 3)
    [for_c] = issue_tokens(inbox_path, "C", 2025, 1)
    inbox = Inbox(inbox_path, mark_batch=2)
    client = create_collect_app(instrument, inbox, {("A", 2025), ("C", 2025)},
                                require_tokens=True).test_client()
    try:
        assert client.get("/s/A/2025").status_code == 403
        page = client.get(f"/s/A/2025?t={links[0]}").text
        assert f"name='t' value='{links[0]}'" in page
        ok = client.post("/s/A/2025", data={"form_token": TOKEN.search(page).group(1),
                                            "t": links[0], "hs01": "3"})
        # A used, made-up or other site's link is refused as the form opens ...
        assert client.get(f"/s/A/2025?t={links[0]}").status_code == 409
        assert client.get("/s/A/2025?t=made-up").status_code == 403
        assert client.get(f"/s/C/2025?t={links[1]}").status_code == 403
        # ... and when answers are sent with it from a form opened with a good link.
        replay = client.post("/s/A/2025", data={"form_token": form_token(client,
                                                f"/s/A/2025?t={links[2]}"),
                                                "t": links[0], "hs01": "5"})
        forged = client.post("/s/A/2025", data={"form_token": form_token(client,
                                                f"/s/A/2025?t={links[2]}"),
                                                "t": "made-up", "hs01": "5"})
        other_site = client.post("/s/C/2025", data={"form_token": form_token(
            client, f"/s/C/2025?t={for_c}"), "t": links[1], "hs01": "5"})
        assert ok.status_code == 200
        assert replay.status_code == 409 and "already been used" in replay.text
        assert forged.status_code == 409 and other_site.status_code == 409
        # One answer: its used mark waits in memory (refused above all the same) ...
        with sqlite3.connect(inbox_path) as con:
            assert con.execute("select count(*) from tokens where used = 1").fetchone() == (0,)
        second = client.post("/s/A/2025", data={"form_token": form_token(
            client, f"/s/A/2025?t={links[2]}"), "t": links[2], "hs01": "2"})
        assert second.status_code == 200
    finally:
        left_unmarked = inbox.close()
    # ... until two are waiting (mark_batch=2): both are marked together.
    assert len(stored(inbox_path)) == 2 and left_unmarked == 0
    with sqlite3.connect(inbox_path) as con:
        token_columns = [r[1] for r in con.execute("pragma table_info(tokens)")]
        used = con.execute("select count(*) from tokens where used = 1").fetchone()[0]
        raw = con.execute("select token_hash from tokens").fetchall()
    assert token_columns == ["token_hash", "site", "wave", "used"] and used == 2
    assert not {links[0], links[1]} & {r[0] for r in raw}  # only hashes are kept


def test_pipeline_picks_up_new_submissions_exactly_once(client, inbox_path, store_path,
                                                        instrument, definition_yaml):
    for code in ("2", "4", "5"):
        assert client.post("/s/A/2025", data={"form_token": form_token(client),
                                              "hs01": code, "hs02": code, "hs03": code,
                                              "hs04": code, "hs05": code, "hs06": code,
                                              "staff_group": "resident"}).status_code == 200
    with open_store(store_path) as con:
        first = ingest_inbox(con, inbox_path, instrument, definition_yaml)
        assert first.taken == 3 and first.already_in_store == 0
        assert first.ingest.rows_accepted == 3 and first.ingest.rows_rejected == 0
        assert first.ingest.source == f"web form ({inbox_path}), 3 submission(s)"
        assert first.reread == "an inbox this store has not read before: all of it read"
        second = ingest_inbox(con, inbox_path, instrument, definition_yaml)
        assert (second.taken, second.already_in_store, second.ingest) == (0, 0, None)
        # A crash after the store's commit but before the cursor moved: the same rows
        # come again and are left out as already stored, beside a newer one.
        con.execute("delete from inbox_cursors")
        assert client.post("/s/A/2025", data={"form_token": form_token(client), "hs01": "1",
                                              "hs02": "1", "hs03": "1", "hs04": "1",
                                              "hs05": "1", "hs06": "1"}).status_code == 200
        again = ingest_inbox(con, inbox_path, instrument, definition_yaml)
        stored_rows = con.execute("select site_code, wave, hs01, staff_group from responses "
                                  "order by hs01").fetchall()
        quarantined = con.execute("select count(*) from quarantine").fetchone()[0]
    assert (again.taken, again.already_in_store) == (1, 3)
    assert again.ingest.rows_accepted == 1 and quarantined == 0
    assert stored_rows == [("A", 2025, 1, None), ("A", 2025, 2, "resident"),
                           ("A", 2025, 4, "resident"), ("A", 2025, 5, "resident")]


# -- a real server, killed ------------------------------------------------------------------

def _start(db: Path, port: int) -> subprocess.Popen:
    return start_culture("collect", "--db", str(db), "--port", str(port), port=port)


def _post(port: int, token: str, hs01: str) -> int | None:
    """The status of one post, or None when the connection died before an answer."""
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("POST", "/s/A/2025", urlencode({"form_token": token, "hs01": hs01}),
                           {"Content-Type": "application/x-www-form-urlencoded"})
        status = connection.getresponse().status
        connection.close()
        return status
    except (OSError, http.client.HTTPException):
        return None


def test_sigkill_under_load_loses_no_acknowledged_submission_and_stores_none_twice(
        store_path, tmp_path):
    port = free_port()
    server = _start(store_path, port)
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    client.request("GET", "/s/A/2025")
    page = client.getresponse().read().decode()
    tokens = []
    for _ in range(400):  # forms handed out before the crash, sent during it
        client = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        client.request("GET", "/s/A/2025")
        tokens.append(TOKEN.search(client.getresponse().read().decode()).group(1))
    assert TOKEN.search(page)
    acknowledged, lock = set(), threading.Lock()
    queue = list(enumerate(tokens))

    def respondent():
        while True:
            with lock:
                if not queue:
                    return
                number, token = queue.pop()
            if _post(port, token, str(number % 5 + 1)) == 200:
                with lock:
                    acknowledged.add(token.split(".")[0])

    threads = [threading.Thread(target=respondent) for _ in range(20)]
    for thread in threads:
        thread.start()
    while len(acknowledged) < 100:
        time.sleep(0.005)
    server.send_signal(signal.SIGKILL)
    server.wait()
    for thread in threads:
        thread.join()
    assert 100 <= len(acknowledged) < 400  # killed mid-load

    inbox = store_path.with_name("store.inbox.sqlite")
    with sqlite3.connect(inbox) as con:
        after_crash = {r[0] for r in con.execute("select submission_id from submissions")}
    assert acknowledged <= after_crash

    # Restart; every respondent whose post was not acknowledged sends it again.
    server = _start(store_path, port)
    try:
        for token in tokens:
            assert _post(port, token, "3") == 200
    finally:
        server.kill()
        server.wait()
    with sqlite3.connect(inbox) as con:
        ids = [r[0] for r in con.execute("select submission_id from submissions")]
        answers = dict(con.execute("select submission_id, answers from submissions"))
    assert len(ids) == len(set(ids)) == len(tokens)
    # what was acknowledged before the crash kept its first answers
    for number, token in enumerate(tokens):
        nonce = token.split(".")[0]
        if nonce in acknowledged:
            assert answers[nonce] == f'{{"hs01": {number % 5 + 1}}}'


def test_the_general_support_services_are_stated_as_they_describe_themselves(client):
    """NHS Practitioner Health: free, confidential, for doctors (and dentists) in England,
    by self-referral, not a crisis line; Samaritans: 116 123, free, 24 hours, every day."""
    from collect.webform import GENERAL_SUPPORT

    said = GENERAL_SUPPORT
    assert "NHS Practitioner Health (practitionerhealth.nhs.uk)" in said
    assert "free, confidential NHS service for doctors and dentists in England" in said
    assert "refer yourself" in said
    assert "call Samaritans on 116 123: free, 24 hours a day, every day" in said
    assert "In an emergency call 999." in said
    assert "day or night" not in said
    # On the form's first page and on the thank-you page, escaped once.
    page = client.get("/s/A/2025").text
    assert said.replace("'", "&#x27;") in page
    token = form_token(client)
    thanks = client.post("/s/A/2025", data={"form_token": token}).text
    assert said.replace("'", "&#x27;") in thanks
