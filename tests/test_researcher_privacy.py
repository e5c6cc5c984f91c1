"""Researchers and directors against a real `culture serve` on 127.0.0.1, as attackers.

A researcher signs in over HTTP and downloads every level: the zip holds no site code
or name, its pseudonyms are the ones on the researcher's pages (under the deployment's
key, which no request can choose), and every site type x region shown covers three or
more sites. A director collects the funnel and caterpillar tables of several views and
tries to match the renumbered peers by their respondent counts.
"""

from __future__ import annotations

import io
import json
import re
import stat
import zipfile
from itertools import combinations

import duckdb
import numpy as np
import pandas as pd
import pytest
import requests

from dashboard.accounts import AccountBook
from outputs.export import (ENV_PSEUDONYM_KEY, MERGED_TYPE, coarsen_quasi_identifiers,
                             deployment_pseudonym_key, pseudonym_key_path, pseudonymise)
from tests.conftest import culture
from tests.live import free_port, start_culture, stop
from tests.pages import figures, markdown_tables

PASSWORD = "a long enough password"
USERS = (("res", "researcher", None), ("dir-a", "director", "A"), ("dir-d", "director", "D"),
         ("boss", "admin", None))
from outputs.export import AGGREGATE_LEVELS as LEVELS
MIN_SITES = 3


@pytest.fixture(scope="module")
def server(published_sample):
    """`culture serve` over the published sample, with no key in its environment: the
    deployment key is the file it makes beside the store."""
    settings, _ = published_sample
    book = AccountBook(settings.accounts_path)
    for username, role, site in USERS:
        if book.get(username) is None:
            book.add(username, role, PASSWORD, site)
    port = free_port()
    process = start_culture("serve", "--db", str(settings.db_path), "--port", str(port),
                            port=port, env={"PATH": "/usr/bin:/bin",
                                            "HOME": str(settings.db_path.parent)})
    yield f"http://127.0.0.1:{port}", settings
    stop(process)


def sign_in(base: str, username: str) -> requests.Session:
    """A browser-like session signed in through the real form (CSRF token and all)."""
    client = requests.Session()
    page = client.get(base + "/login", timeout=30)
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    response = client.post(base + "/login", data={"csrf": token, "username": username,
                                                  "password": PASSWORD, "next": "/"},
                           allow_redirects=False, timeout=60)
    assert response.status_code == 302, response.text
    return client


def page_json(client: requests.Session, base: str, path: str, search: str) -> dict:
    """The page as Dash's router callback sends it to the browser."""
    body = {"output": "..page.children...nav.children..",
            "outputs": [{"id": "page", "property": "children"},
                        {"id": "nav", "property": "children"}],
            "inputs": [{"id": "url", "property": "pathname", "value": path},
                       {"id": "url", "property": "search", "value": search}],
            "changedPropIds": ["url.pathname"]}
    response = client.post(base + "/_dash-update-component", json=body, timeout=60)
    assert response.status_code == 200, response.text[:500]
    return response.json()


def benchmark_json(client, base: str, search: str, measure: str) -> dict:
    """The benchmark body for one measure, as the measure dropdown's callback sends it."""
    body = {"output": "benchmark-body.children",
            "outputs": {"id": "benchmark-body", "property": "children"},
            "inputs": [{"id": "benchmark-measure", "property": "value", "value": measure}],
            "state": [{"id": "url", "property": "search", "value": search}],
            "changedPropIds": ["benchmark-measure.value"]}
    response = client.post(base + "/_dash-update-component", json=body, timeout=60)
    assert response.status_code == 200, response.text[:500]
    return response.json()


def published(settings, sql: str, params=()) -> pd.DataFrame:
    with duckdb.connect(str(settings.published_path), read_only=True) as con:
        return con.execute(sql, list(params)).df()


# -- item 2: a researcher's download is pseudonymised with the deployment's key --------

@pytest.fixture(scope="module")
def researcher_downloads(server):
    base, settings = server
    client = sign_in(base, "res")
    zips = {}
    for level in LEVELS:
        response = client.get(f"{base}/download/aggregates",
                              params={"level": level, "format": "csv"}, timeout=120)
        assert response.status_code == 200, response.text[:300]
        zips[level] = zipfile.ZipFile(io.BytesIO(response.content))
    return base, settings, client, zips


def test_researcher_download_holds_no_site_code_or_name(researcher_downloads):
    _, settings, _, zips = researcher_downloads
    sites = published(settings, "select site_code, name from sites")
    for level, archive in zips.items():
        frame = pd.read_csv(archive.open(f"culture_{level}.csv"))
        units = set(frame.loc[frame["level"] == "site", "unit"])
        assert len(units) == 7 and units.isdisjoint(sites["site_code"]), (level, units)
        assert all(re.fullmatch(r"S[A-Z2-7]{8}", u) for u in units)
        assert "site_name" not in frame.columns
        for name in archive.namelist():
            data = archive.read(name).decode("utf-8")
            for site_name in sites["name"]:
                assert site_name not in data, (level, name, site_name)
        assert "coarsening.txt" in archive.namelist(), level


def test_researcher_pseudonyms_are_those_on_their_pages_under_the_deployment_key(
        researcher_downloads):
    base, settings, client, zips = researcher_downloads
    key_file = pseudonym_key_path(settings.published_path)
    assert key_file == settings.db_path.with_name("store.pseudonym.key")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    assert len(key) >= 32
    frame = pd.read_csv(zips["site"].open("culture_site.csv"))
    downloaded = set(frame.loc[frame["level"] == "site", "unit"])
    assert downloaded == {pseudonymise(code, key) for code in "ABCDEFG"}
    page = page_json(client, base, "/benchmark", "?wave=2026")
    funnel = markdown_tables(page)["Funnel plot points"]
    assert set(funnel["Site"]) == downloaded
    # The same pseudonym sits beside the same numbers in both.
    cells = frame[(frame["level"] == "site") & (frame["wave"] == 2026)
                  & (frame["measure"] == "stigma")].set_index("unit")
    body = benchmark_json(client, base, "?wave=2026", "scale:stigma")
    shown = markdown_tables(body)["Funnel plot points"].set_index("Site")
    for unit, row in shown.iterrows():
        assert int(row["Respondents"]) == cells.loc[unit, "n"]
        # The page shows the score out of 100; the download keeps the 1-5 mean.
        assert float(row["Score (0-100)"]) == pytest.approx(
            (cells.loc[unit, "mean"] - 1) * 25, abs=0.05)
    # Another wave's page, another view: the same pseudonyms (stable, as the export is).
    other = markdown_tables(page_json(client, base, "/benchmark", "?wave=2024"))
    assert set(other["Funnel plot points"]["Site"]) == downloaded
    # The CLI's --pseudonymise uses the same deployment key.
    out = settings.db_path.parent / "cli-export"
    run = culture("export", "--out", out, "--db", settings.db_path, "--pseudonymise", "--level",
                  "site")
    assert run.exit_code == 0, run.stderr
    cli = pd.read_csv(out / "culture_site.csv")
    assert set(cli.loc[cli["level"] == "site", "unit"]) == downloaded


@pytest.mark.parametrize("query", ["pseudonym_key=correct+horse+battery+staple",
                                   "key=aaaaaaaaaaaaaaaaaaaa", "pseudonymise=no",
                                   "min_sites=1"])
def test_researcher_cannot_choose_the_key_or_turn_pseudonyms_off(researcher_downloads, query):
    base, _, client, _ = researcher_downloads
    response = client.get(f"{base}/download/aggregates?level=site&format=csv&{query}",
                          timeout=60)
    assert response.status_code == 400
    assert "takes only level and format" in response.text
    assert response.headers["Content-Type"].startswith("text/plain")


def test_admin_download_still_names_sites(server):
    base, settings = server
    client = sign_in(base, "boss")
    response = client.get(f"{base}/download/aggregates?level=site&format=csv", timeout=120)
    assert response.status_code == 200
    frame = pd.read_csv(zipfile.ZipFile(io.BytesIO(response.content)).open("culture_site.csv"))
    assert set(frame.loc[frame["level"] == "site", "unit"]) == set("ABCDEFG")
    assert "Tamar Valley Hospitals NHS Trust" in set(frame["site_name"])


def test_the_environment_key_wins_and_a_second_caller_reads_the_same_file(tmp_path):
    published_path = tmp_path / "x.published.duckdb"
    first = deployment_pseudonym_key(published_path, environ={})
    assert deployment_pseudonym_key(published_path, environ={}) == first
    assert (tmp_path / "x.pseudonym.key").read_text().strip() == first
    assert deployment_pseudonym_key(published_path, {ENV_PSEUDONYM_KEY: "k" * 20}) == "k" * 20
    assert [p.name for p in tmp_path.iterdir()] == ["x.pseudonym.key"]


# -- item 3: site type and region never single a site out --------------------------------

def test_every_type_and_region_combination_downloaded_covers_three_sites(researcher_downloads):
    _, settings, _, zips = researcher_downloads
    truth = published(settings, "select site_code, site_type from sites")
    for level, archive in zips.items():
        frame = pd.read_csv(archive.open(f"culture_{level}.csv"), keep_default_na=False)
        sites = frame[frame["level"] == "site"].drop_duplicates("unit")
        sizes = sites.groupby(["site_type", "region"])["unit"].nunique()
        assert sizes.min() >= MIN_SITES, (level, sizes.to_dict())
        # The only independent organisation (B) and the two support units are one group.
        assert "independent_support_org" not in archive.read(f"culture_{level}.csv").decode()
        assert sizes.to_dict() == {("acute_trust", ""): 4, (MERGED_TYPE, ""): 3}
        # Peer-group rows only for types shown as themselves (a group of one would be
        # its site's row with the type attached).
        peers = set(frame.loc[frame["level"] == "peer", "unit"])
        assert peers == {"acute_trust"}, level
        assert (truth["site_type"] == "acute_trust").sum() == 4
    notes = zips["site"].read("coarsening.txt").decode()
    assert "independent_support_org, professional_support_unit shown together as other_types" \
        in notes
    assert "region: left out" in notes and "at least 3 sites" in notes
    package = json.loads(zips["site"].read("datapackage.json"))
    fields = {f["name"]: f for f in package["resources"][0]["schema"]["fields"]}
    assert "other_types" in fields["site_type"]["description"]
    assert "region: left out" in fields["region"]["description"]
    assert "peer-group rows left out for independent_support_org" in package["description"]


def test_cli_says_what_was_coarsened_and_takes_the_setting_from_the_environment(
        published_sample, tmp_path):
    settings, _ = published_sample
    run = culture("export", "--out", tmp_path, "--db", settings.db_path, "--level", "site",
                  env={ENV_PSEUDONYM_KEY: "k" * 24, "CULTURE_MIN_SITES_PER_COMBINATION": "4"})
    assert run.exit_code == 0, run.stderr
    text = " ".join(run.stdout.split())
    assert "covers 4 or more sites" in text
    assert "site_type: left out" in text and "region: left out" in text
    frame = pd.read_csv(tmp_path / "culture_site.csv", keep_default_na=False)
    assert set(frame["site_type"]) == {""} and set(frame["region"]) == {""}
    assert set(frame["level"]) == {"site", "national"}
    refused = culture("export", "--out", tmp_path / "x", "--db", settings.db_path,
                      "--min-sites", "1", "--pseudonymise")
    assert refused.exit_code == 1 and "below the floor of 2" in refused.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("min_sites", [2, 3, 5])
def test_coarsening_leaves_no_combination_below_the_minimum(seed, min_sites):
    rng = np.random.default_rng(seed)
    count = int(rng.integers(1, 30))
    types = ["acute_trust", "professional_support_unit", "independent_support_org",
             "primary_care"]
    regions = ["South West", "South East", "Midlands", "North", "London", None]
    sites = {f"S{i}": (str(rng.choice(types, p=[0.6, 0.2, 0.1, 0.1])),
                       regions[int(rng.integers(0, len(regions)))]) for i in range(count)}
    result = coarsen_quasi_identifiers(sites, types, min_sites)
    if count >= min_sites:
        assert min(result.combinations().values()) >= min_sites, result
    shown_itself = {t for code, (t, _) in sites.items() if result.site_type[code] == t}
    assert set(result.hidden_peer_groups) == set(types) - shown_itself
    for code, (site_type, region) in sites.items():
        assert result.site_type[code] in (site_type, MERGED_TYPE, None)
        assert result.region[code] in (region, "other_regions", None)


def test_researcher_pages_show_no_site_type_or_region(server):
    base, settings = server
    client = sign_in(base, "res")
    sites = published(settings, "select site_type, region from sites")
    for path in ("/benchmark", "/trends", "/quality"):
        text = json.dumps(page_json(client, base, path, "?wave=2026"))
        for value in set(sites["site_type"]) | set(sites["region"]):
            assert value not in text and value.replace("_", " ") not in text, (path, value)


# -- item 7: anonymous peers carry no stable fingerprint -----------------------------------

def director_views(base: str, username: str, site: str) -> list[dict]:
    """What a director sees of peers in several views: per view, peer label -> the count
    shown in the funnel table, the caterpillar table and hover text, and the funnel x."""
    client = sign_in(base, username)
    views = []
    for wave in (2024, 2025, 2026):
        for measure in ("scale:psysafety", "principle:P3"):
            body = benchmark_json(client, base, f"?site={site}&wave={wave}", measure)
            tables = markdown_tables(body)
            funnel = tables["Funnel plot points"].set_index("Site")
            caterpillar = tables["Site scores allowing for their size"].set_index("Site")
            figure = figures(body)[0]
            others = next(t for t in figure["data"] if t.get("name") == "other sites")
            peers = {}
            for label in funnel.index:
                if not label.startswith("Peer"):
                    continue
                at = others["text"].index(label)
                peers[label] = {"table": funnel.loc[label, "Respondents"],
                                "caterpillar": caterpillar.loc[label, "Respondents"],
                                "hover": others["customdata"][at][1],
                                "x": others["x"][at], "mean": others["y"][at],
                                "verdict": funnel.loc[label, "Against the other sites"],
                                "marked": others["customdata"][at][0]}
            views.append({"wave": wave, "measure": measure, "peers": peers,
                          "order": [t for t in others["text"] if t.startswith("Peer")]})
    return views


def test_a_director_cannot_match_peers_across_views_by_their_counts(server):
    base, settings = server
    exact = published(settings, "select distinct n from funnel where site_code <> 'A'")
    exact = set(exact["n"].astype(int))
    views = director_views(base, "dir-a", "A") + director_views(base, "dir-d", "D")
    for view in views:
        peers = view["peers"]
        assert len(peers) == 6
        for label, seen in peers.items():
            assert not seen["table"].isdigit(), (view["wave"], label, seen)
            assert seen["table"] == seen["caterpillar"] == seen["hover"]
            assert round(seen["x"]) not in exact or seen["x"] != round(seen["x"])
        # The figure lists peers in the view's own (shuffled) label order, not in an
        # order that is the same in every view (the store's, by site code).
        assert view["order"] == sorted(view["order"]), view["order"]
        # Each count shown is shared by at least three peers of the view ...
        shown = pd.Series({label: seen["table"] for label, seen in peers.items()})
        assert shown.value_counts().min() >= 3, shown.to_dict()
    # ... so, in any two views, no peer has a single match by count.
    for first, second in combinations(views, 2):
        for seen in first["peers"].values():
            matches = [label for label, other in second["peers"].items()
                       if other["table"] == seen["table"]]
            assert len(matches) >= 3


def test_peer_points_are_drawn_in_their_band_and_marked_with_their_verdict(server):
    base, settings = server
    published_verdicts = published(settings, "select verdict from funnel where wave = 2026 "
                                             "and measure = 'psysafety' and site_code <> 'A'")
    view = next(v for v in director_views(base, "dir-a", "A")
                if (v["wave"], v["measure"]) == (2026, "scale:psysafety"))
    verdicts = []
    for seen in view["peers"].values():
        # The table's word and the point's mark are the published verdict of the peer.
        assert seen["verdict"] == seen["marked"], seen
        verdicts.append(seen["verdict"])
        low, _, high = seen["table"].replace(",", "").partition("-")
        low = int(low.split()[0])
        assert low <= seen["x"] <= (int(high) if high else 10 ** 6), seen
    assert sorted(verdicts) == sorted(published_verdicts["verdict"])
