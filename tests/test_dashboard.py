"""Dashboard logic without a browser: accounts, sign-in, scoping, and every page's
callback called as a function over real published tables built from the samples."""

from __future__ import annotations

import re

import duckdb
import numpy as np
import plotly.graph_objects as go
import pytest
from dash.exceptions import PreventUpdate

from dashboard.access import AccessDenied
from dashboard.accounts import AccountBook, AccountError, LoginThrottle, check_password
from dashboard.app import create_app, navigate, render_page, view_from_request
from dashboard.pages.benchmark import benchmark_body
from dashboard.pages.equity import equity_grid
from tests.pages import as_text, figures, signed_in

PASSWORD = "a long enough password"
SITE_PAGES = ["/", "/principle", "/benchmark", "/trends", "/equity", "/quality"]


@pytest.fixture(scope="module")
def app(published_sample):
    settings, _ = published_sample
    book = AccountBook(settings.accounts_path)
    for username, role, site in (("admin", "admin", None), ("dir-a", "director", "A"),
                                 ("dir-d", "director", "D"), ("res", "researcher", None)):
        book.add(username, role, PASSWORD, site)
    return create_app(settings, secret_key=b"test secret", throttle=LoginThrottle(free=3))


@pytest.fixture(scope="module")
def published(published_sample):
    settings, _ = published_sample
    con = duckdb.connect(str(settings.published_path), read_only=True)
    yield con
    con.close()


def site_names(published) -> dict[str, str]:
    return dict(published.execute("select site_code, name from sites").fetchall())


# -- accounts and sign-in --------------------------------------------------------------

def test_accounts_hash_with_scrypt_and_check_roles(tmp_path):
    book = AccountBook(tmp_path / "accounts.duckdb")
    book.add("Jo.Smith", "director", PASSWORD, "A", known_sites={"A", "B"})
    stored = duckdb.connect(str(tmp_path / "accounts.duckdb"), read_only=True).execute(
        "select password_hash from accounts").fetchall()[0][0]
    assert stored.startswith("scrypt$32768$8$1$") and PASSWORD not in stored
    assert check_password(PASSWORD, stored) and not check_password(PASSWORD + "x", stored)
    assert book.authenticate("jo.smith", PASSWORD).site_code == "A"
    assert book.authenticate("jo.smith", "wrong password") is None
    for args, message in (
            (("x1", "director", PASSWORD), "needs --site"),
            (("x2", "admin", PASSWORD, "A"), "directors only"),
            (("x3", "boss", PASSWORD), "admin, director, researcher"),
            (("x4", "director", PASSWORD, "Z"), "known sites: A, B"),
            (("x5", "admin", "short"), "at least 10 characters"),
            (("jo.smith", "admin", PASSWORD), "already exists")):
        with pytest.raises(AccountError, match=message):
            book.add(*args, known_sites={"A", "B"})
    book.set_password("jo.smith", "another long password")
    assert book.authenticate("jo.smith", PASSWORD) is None
    book.remove("jo.smith")
    assert book.accounts() == []
    with pytest.raises(AccountError, match="no account 'jo.smith'"):
        book.remove("jo.smith")


def test_throttle_doubles_the_wait_after_free_failures_and_resets_on_success():
    now = [1000.0]
    throttle = LoginThrottle(free=3, max_wait=60, clock=lambda: now[0])
    assert [throttle.reserve("jo", "10.0.0.1") for _ in range(4)] == [0, 0, 0, 2]
    now[0] += 2
    assert throttle.reserve("jo", "10.0.0.1") == 0
    assert throttle.reserve("jo", "10.0.0.1") == 4
    for _ in range(10):
        now[0] += 60
        assert throttle.reserve("jo", "10.0.0.1") == 0
    assert throttle.reserve("jo", "10.0.0.1") == 60  # bounded
    assert throttle.reserve("jo", "10.0.0.2") == 0  # another address is not held up
    assert throttle.reserve("someone else", "10.0.0.1") == 0
    throttle.succeeded("jo", "10.0.0.1")
    assert throttle.reserve("jo", "10.0.0.1") == 0


def _login(client, username: str, password: str):
    page = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return client.post("/login", data={"csrf": token, "username": username,
                                       "password": password, "next": "/equity"})


def test_sign_in_sets_a_strict_http_only_cookie_and_slows_repeated_failures(app):
    client = app.server.test_client()
    response = _login(client, "dir-a", PASSWORD)
    assert response.status_code == 302 and response.headers["Location"] == "/equity"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    other = app.server.test_client()
    assert [_login(other, "dir-d", "wrong").status_code for _ in range(3)] == [401] * 3
    refused = _login(other, "dir-d", PASSWORD)  # right password, but too soon
    assert refused.status_code == 429 and "try again in" in refused.text


def test_sign_in_refuses_a_missing_csrf_token_and_foreign_redirects(app):
    client = app.server.test_client()
    client.get("/login")
    assert client.post("/login", data={"username": "admin", "password": PASSWORD}
                       ).status_code == 400
    page = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    response = client.post("/login", data={"csrf": token, "username": "admin",
                                           "password": PASSWORD, "next": "//evil.example/x"})
    assert response.headers["Location"] == "/"


def test_everything_but_sign_in_needs_a_session(app):
    client = app.server.test_client()
    assert client.get("/benchmark").status_code == 302
    assert client.post("/_dash-update-component", json={}).status_code == 401
    assert client.get("/_dash-layout").status_code == 401
    assert client.get("/download/aggregates").status_code == 302


# -- who sees what -----------------------------------------------------------------------

@pytest.mark.parametrize("path", SITE_PAGES)
def test_director_pages_name_only_their_own_site(app, published, path):
    names = site_names(published)
    with signed_in(app, "dir-a"):
        page, nav = render_page(path, "?site=A&wave=2026")
    text = as_text(page)
    assert "Not available" not in text
    assert names["A"] in text
    for code, name in names.items():
        if code != "A":
            assert name not in text and f"({code})" not in text, (path, code)
    assert "Export" not in as_text(nav)


@pytest.mark.parametrize("path", SITE_PAGES)
def test_director_is_refused_other_sites_and_unknown_waves(app, published, path):
    names = site_names(published)
    for search, reason in (("?site=B&wave=2026", "site 'B'"), ("?site=ZZ", "site 'ZZ'"),
                           ("?site=A&wave=1999", "wave '1999'")):
        with signed_in(app, "dir-a"), pytest.raises(AccessDenied) as refused:
            render_page(path, search)
        assert reason in str(refused.value) and names["B"] not in str(refused.value)


def test_crafted_callback_for_another_site_is_refused_with_403(app):
    client = app.server.test_client()
    _login(client, "dir-a", PASSWORD)
    body = {"output": "benchmark-body.children",
            "outputs": {"id": "benchmark-body", "property": "children"},
            "inputs": [{"id": "benchmark-measure", "property": "value",
                        "value": "scale:psysafety"}],
            "state": [{"id": "url", "property": "search", "value": "?site=B&wave=2026"}],
            "changedPropIds": ["benchmark-measure.value"]}
    refused = client.post("/_dash-update-component", json=body)
    assert refused.status_code == 403 and "site 'B'" in refused.text
    body["state"][0]["value"] = "?site=A&wave=2026"
    allowed = client.post("/_dash-update-component", json=body)
    assert allowed.status_code == 200 and "Funnel plot" in allowed.text


def test_researcher_sees_aggregates_without_names_and_no_site_pages(app, published):
    names = site_names(published)
    with signed_in(app, "res"):
        with pytest.raises(AccessDenied, match="not available to the researcher role"):
            render_page("/equity", "?site=A")
        benchmark, nav = render_page("/benchmark", "?wave=2026")
    assert "Export" in as_text(nav) and "Equity" not in as_text(nav)
    text = as_text(benchmark)
    # every site by the pseudonym the researcher's downloads carry, never by name or code
    assert re.search(r"\bS[A-Z2-7]{8}\b", text)
    assert not any(name in text for name in names.values())


def test_admin_sees_every_site_named(app, published):
    names = site_names(published)
    with signed_in(app, "admin"):
        page, nav = render_page("/benchmark", "?site=D&wave=2026")
    text = as_text(page)
    assert all(name in text for name in names.values())
    assert "Peer 1" not in text and "Export" in as_text(nav)


def test_peer_numbers_agree_within_a_view_and_are_not_ranks(app, published):
    with signed_in(app, "dir-a"):
        view = view_from_request("/benchmark", "?site=A&wave=2026", True)
        body = benchmark_body(view, "scale:psysafety")
    funnel, caterpillar = figures(body)[:2]
    funnel_labels = {label for trace in funnel["data"] for label in (trace.get("text") or [])
                     if isinstance(label, str)}
    caterpillar_labels = caterpillar["data"][0]["text"]
    assert set(caterpillar_labels) == funnel_labels
    assert {f"Peer {i}" for i in range(1, 7)} < funnel_labels
    means = published.execute("select site_code, eb_mean from shrunken where wave = 2026 and "
                              "measure = 'psysafety' and site_code <> 'A' order by eb_mean"
                              ).fetchall()
    assert len([label for label in caterpillar_labels if label.startswith("Peer")]) \
        == len(means) == 6
    # Another view numbers the same peers afresh (a keyed shuffle per view), so a number
    # cannot be carried from one view to the next.
    codes = [code for code, _ in means]
    with signed_in(app, "dir-a"):
        this_view = view_from_request("/benchmark", "?site=A&wave=2026", True).labels(codes)
        other_view = view_from_request("/benchmark", "?site=A&wave=2025", True).labels(codes)
    assert sorted(map(this_view, codes)) == sorted(map(other_view, codes))
    assert [this_view(c) for c in codes] != [other_view(c) for c in codes]


# -- what is shown ------------------------------------------------------------------------

def test_overview_shows_the_published_principle_scores_targets_and_actions(app, published):
    rows = published.execute("select principle, score, target, priority from principle_gaps "
                             "where site_code = 'D' and wave = 2026 order by priority"
                             ).fetchall()
    n = published.execute("select n from cells where level = 'site' and unit = 'D' and wave = "
                          "2026 and breakdown = 'all' and measure_kind = 'responses'"
                          ).fetchall()[0][0]
    headcount = published.execute("select sum(headcount) from site_headcounts where "
                                  "site_code = 'D'").fetchall()[0][0]
    with signed_in(app, "dir-d"):
        page, _ = render_page("/", "?site=D&wave=2026")
    figure = figures(page)[0]
    # Names are wrapped for a phone (<br> between words), never cut.
    unwrap = [y.replace("<br>", " ") for y in figure["data"][0]["y"]]
    scores = dict(zip(unwrap, figure["data"][0]["x"]))
    targets = dict(zip([y.replace("<br>", " ") for y in figure["data"][1]["y"]],
                       figure["data"][1]["x"]))
    names = dict(published.execute("select measure, name from measures").fetchall())
    for principle, score, target, _ in rows:
        assert scores[names[principle]] == pytest.approx(score, abs=1e-9)
        assert targets[names[principle]] == pytest.approx(target, abs=1e-9)
    assert unwrap[-1] == names[rows[0][0]]  # largest gap drawn on top
    text = as_text(page)
    assert f"{n:,}" in text and f"{100 * n / headcount:.0f}%" in text
    first_action = published.execute("select title from actions where principle = ? order by "
                                      "position", [rows[0][0]]).fetchall()[0][0]
    assert first_action in text
    weighted = published.execute("select weighted_mean from weighted where site_code = 'D' and "
                                 "wave = 2026 and measure = ?", [rows[0][0]]).fetchall()[0][0]
    assert "Weighted score" in text and f"{weighted:.1f}" in text


def test_equity_marks_hidden_cells_never_blank_or_zero(app, published):
    k = 10
    hidden = published.execute(
        "select count(*) from cells where level = 'site' and unit = 'A' and wave = 2026 and "
        "breakdown <> 'all' and measure_kind = 'scale' and suppressed").fetchall()[0][0]
    assert hidden > 0
    with signed_in(app, "dir-a"):
        view = view_from_request("/equity", "?site=A&wave=2026", True)
        diff, hidden_mask, rows = equity_grid(view)
        page, _ = render_page("/equity", "?site=A&wave=2026")
    assert int(hidden_mask.to_numpy().sum()) == hidden
    assert np.isnan(diff.to_numpy(float)[hidden_mask.to_numpy()]).all()
    heatmap = figures(page)[0]
    shown_text, grey = heatmap["data"][0]["text"], heatmap["data"][1]
    flat = [cell for row in shown_text for cell in row]
    assert flat.count(f"< {k}") == hidden and "" not in flat
    assert sum(cell == f"< {k}" for row in grey["text"] for cell in row) == hidden
    for values, labels in zip(heatmap["data"][0]["z"], shown_text):
        for value, label in zip(values, labels):
            assert (value is None) == (label in (f"< {k}", "n/a"))
    assert "fewer than 10 responses" in as_text(page)


def test_every_page_figure_is_valid_plotly_with_titled_axes(app):
    with signed_in(app, "admin"):
        # The Quality page is plain words now; its reliability chart is on Methods.
        charted = [p for p in SITE_PAGES if p != "/quality"] + ["/methods"]
        pages = [render_page(path, "?site=A&wave=2025")[0] for path in charted]
    count = 0
    for page in pages:
        for figure in figures(page):
            go.Figure(figure)  # raises on any property plotly does not know
            layout = figure["layout"]
            assert layout["title"]["text"]
            assert layout["xaxis"].get("title", {}).get("text") or layout["yaxis"].get(
                "title", {}).get("text")
            count += 1
        assert "Table view" in as_text(page)
    assert count >= 8


def test_navigate_keeps_other_choices_and_stops_when_nothing_changes():
    assert navigate("B", 2025, "?measure=scale%3Astigma") == \
        "?measure=scale%3Astigma&site=B&wave=2025"
    with pytest.raises(PreventUpdate):
        navigate("A", 2026, "?site=A&wave=2026")


def test_users_commands_add_list_remove_and_refuse_with_a_message(tmp_path, monkeypatch):
    from tests.conftest import culture

    db = tmp_path / "store.duckdb"
    env = {"CULTURE_PASSWORD": PASSWORD}

    def run(*args):
        return culture("users", *args, "--db", db, env=env)

    added = run("add", "jo", "--role", "director", "--site", "A")
    assert added.exit_code == 0 and added.stdout == "added jo (director, site A)\n"
    listed = run("list")
    assert "jo" in listed.stdout and "director" in listed.stdout and PASSWORD not in listed.stdout
    refused = run("add", "kim", "--role", "director")
    assert refused.exit_code == 1 and "a director needs --site" in refused.stderr
    assert run("remove", "jo").exit_code == 0
    assert AccountBook(tmp_path / "store.accounts.duckdb").accounts() == []

    def never(*args, **kwargs):
        raise AssertionError("serve started a server with nothing published")

    monkeypatch.setattr("waitress.serve", never)
    served = culture("serve", "--db", db)
    assert served.exit_code == 1 and "no published results yet" in served.stderr


def test_researcher_downloads_the_export_and_a_director_cannot(app, published):
    import io
    import zipfile

    researcher = app.server.test_client()
    _login(researcher, "res", PASSWORD)
    response = researcher.get("/download/aggregates?level=site&format=csv")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == \
        'attachment; filename="culture-site-csv.zip"'
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    assert {"datapackage.json", "culture_site.csv"} <= set(archive.namelist())
    rows = archive.read("culture_site.csv").decode("utf-8").splitlines()
    assert len(rows) > 100
    director = app.server.test_client()
    _login(director, "dir-a", PASSWORD)
    assert director.get("/download/aggregates?level=site&format=csv").status_code == 403
    unknown = researcher.get("/download/aggregates?level=x&format=csv")
    assert unknown.status_code == 400 and "levels: site, principle, item, group" in unknown.text


def test_a_missing_omega_reads_as_not_estimable_not_as_hidden():
    # A small group's Heywood case has no omega: the Methods page's table says why, and
    # does not use the wording of a suppressed cell.
    from dashboard.pages.methods import omega_text

    assert omega_text([0.8234, None, float("nan")]) == ["0.82", "not estimable",
                                                       "not estimable"]


def test_a_director_is_not_shown_single_peers_scores_in_a_small_peer_group(app, published):
    """Site A's peer group (acute trusts) has 4 sites: its best, quartiles and worst would
    each be one peer's own score, so a director sees none of them (from 10 sites they
    are shown); an admin, who sees every site by name anyway, still does."""
    rows = published.execute(
        "select peer_sites, peer_best, peer_worst, peer_q3, mean from benchmarks "
        "where site_code = 'A' and wave = 2026 and measure_kind = 'scale'").fetchall()
    assert rows and all(sites < 10 for sites, *_ in rows)
    with signed_in(app, "dir-a"):
        director, _ = render_page("/benchmark", "?site=A&wave=2026")
    with signed_in(app, "admin"):
        admin, _ = render_page("/benchmark", "?site=A&wave=2026")
    director, admin = as_text(director), as_text(admin)
    assert "Best, average and worst" not in director
    assert "best, average and worst are shown from 10 sites" in director
    assert "Best, average and worst in the peer group" in admin
    # (the funnel shows each anonymous peer's mean as a point: the table is what changes)
    director_table = director[director.index("This site against its peer group"):]
    admin_table = admin[admin.index("Best, average and worst in the peer group"):]
    for _, best, worst, q3, own in rows:
        for value in (best, worst, q3):
            # Shown on the headline 0-100 scale: (1-5 mean - 1) x 25.
            value, mine = (value - 1) * 25, (own - 1) * 25
            if round(value, 1) != round(mine, 1):
                assert f"{value:.1f}" not in director_table
                assert f"{value:.1f}" in admin_table


def test_the_guides_evidence_reads_as_a_citation_never_nan(app):
    """Each action on the Overview names the RESTORE 2 configurations it rests on in
    words; an action without evidence shows none (the page once read 'CMOC nan')."""
    with signed_in(app, "dir-a"):
        page, _ = render_page("/", "?site=A&wave=2026")
    text = as_text(page)
    assert not re.search(r"\bnan\b", text) and "CMOC" not in text
    assert text.count("RESTORE 2 evidence, configurations ") >= 6
    assert "(RESTORE 2 evidence, configurations 1.3-1.4)" in text
