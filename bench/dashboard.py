"""Server time of every dashboard callback on the national-scale published tables.

Builds (once) the published layer of 1,000,000 responses, 300 sites and 5 waves with
the real pipeline, signs in as a director, an admin and a researcher through the real
sign-in route, and posts real callback requests to Dash's endpoint through Flask's
test client: the time measured is everything the server does for a request (session
check, scoping, DuckDB queries, figures, JSON). Prints p50 / p95 / max per callback
and overall (goal: p95 under 150 ms on a 2-core machine), and a ratio against a
baseline run in the same process: the obvious data access of loading the published
`cells` table into pandas and filtering it for each request.

    .venv/bin/python bench/dashboard.py [--calls 40] [--rebuild]
                                        [--waves 10 [--per-wave 1000000] [--sites 300]]

--waves 10 reads the published layer of a decade (bench/decade.py: ten waves of
1,000,000 responses; the layer its incremental runs left, ten waves with nine frozen,
else its full run's, else one full run made here) and reports the trend views (Trends
and Principle, which read every wave of a site or the nation) apart: goal p95 under
150 ms over ten waves.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import re
import time
import warnings

import duckdb
import numpy as np

from common import ROOT, ensure_data  # (adds the project to sys.path)

from dashboard.accounts import AccountBook  # noqa: E402
from dashboard.app import create_app  # noqa: E402
from published.layout import LAYOUT_KEY, PUBLISHED_LAYOUT  # noqa: E402
from survey.instrument import load_instrument  # noqa: E402
from survey.settings import DEFAULT_INSTRUMENT, Settings  # noqa: E402

PASSWORD = "benchmark password"
#: Pages a director opens (every page they may), and the admin-only and researcher pages.
PAGES = ["/", "/principle", "/benchmark", "/trends", "/equity", "/quality", "/glossary",
         "/actions", "/drivers"]
ADMIN_PAGES = ["/methods", "/fieldwork"]


def published_national(rebuild: bool) -> Settings:
    folder = ROOT / "bench" / "data" / "national"
    ensure_data(folder, 1_000_000, formats=("parquet",))
    settings = Settings(db_path=folder / "stores" / "pipeline.duckdb")
    current = False
    if settings.published_path.exists():
        with duckdb.connect(str(settings.published_path), read_only=True) as con:
            # A layer of an older layout is rebuilt: the dashboard refuses to read it.
            found = con.execute("select value from meta where key = ?",
                                [LAYOUT_KEY]).fetchall()
            current = bool(found) and found[0][0] == PUBLISHED_LAYOUT
    if rebuild or not current:
        # bench/pipeline.py shares its name with the package, so load it by path
        spec = importlib.util.spec_from_file_location("bench_pipeline",
                                                      ROOT / "bench" / "pipeline.py")
        bench_pipeline = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bench_pipeline)
        started = time.perf_counter()
        bench_pipeline.run_once(folder, load_instrument(DEFAULT_INSTRUMENT))
        print(f"built the national published layer in {time.perf_counter() - started:.0f} s")
    return settings


def published_decade(per_wave: int, sites: int, waves: int, rebuild: bool) -> Settings:
    """The published layer of bench/decade.py's decade of this size, made if missing."""
    from decade import ensure_decade, run_child, wave_file

    folder, manifest = ensure_decade(per_wave, sites, waves)
    stores = folder / "stores"
    for name in ("incremental.duckdb", "full.duckdb"):
        settings = Settings(db_path=stores / name)
        if not rebuild and settings.published_path.exists():
            with duckdb.connect(str(settings.published_path), read_only=True) as con:
                found = con.execute("select value from meta where key = ?",
                                    [LAYOUT_KEY]).fetchall()
            if found and found[0][0] == PUBLISHED_LAYOUT:
                print(f"reading the decade's layer {settings.published_path}")
                return settings
    stores.mkdir(exist_ok=True)
    started = time.perf_counter()
    run_child({"store": str(stores / "full.duckdb"), "folder": str(folder),
               "files": [str(folder / wave_file(w)) for w in manifest["waves"]],
               "full": True, "fresh": True})
    print(f"built the decade's published layer in {time.perf_counter() - started:.0f} s")
    return Settings(db_path=stores / "full.duckdb")


def sign_in(app, username: str):
    client = app.server.test_client()
    page = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    response = client.post("/login", data={"csrf": token, "username": username,
                                           "password": PASSWORD})
    assert response.status_code == 302, response.text
    return client


def router_request(path: str, search: str) -> dict:
    return {"output": "..page.children...nav.children..",
            "outputs": [{"id": "page", "property": "children"},
                        {"id": "nav", "property": "children"}],
            "inputs": [{"id": "url", "property": "pathname", "value": path},
                       {"id": "url", "property": "search", "value": search}],
            "changedPropIds": ["url.pathname"]}


def measure_request(value: str, search: str) -> dict:
    return {"output": "benchmark-body.children",
            "outputs": {"id": "benchmark-body", "property": "children"},
            "inputs": [{"id": "benchmark-measure", "property": "value", "value": value}],
            "state": [{"id": "url", "property": "search", "value": search}],
            "changedPropIds": ["benchmark-measure.value"]}


def navigate_request(site: str, wave: int, search: str) -> dict:
    return {"output": "url.search", "outputs": {"id": "url", "property": "search"},
            "inputs": [{"id": "site-select", "property": "value", "value": site},
                       {"id": "wave-select", "property": "value", "value": wave}],
            "state": [{"id": "url", "property": "search", "value": search}],
            "changedPropIds": ["site-select.value"]}


def timed(client, body: dict) -> float:
    started = time.perf_counter()
    response = client.post("/_dash-update-component", json=body)
    elapsed = time.perf_counter() - started
    assert response.status_code in (200, 204), (response.status_code, response.text[:300])
    return elapsed * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=40, help="requests per callback")
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--waves", type=int, default=5,
                        help="5: the national set; any other: a decade of bench/decade.py")
    parser.add_argument("--per-wave", type=int, default=1_000_000,
                        help="with --waves other than 5: responses a wave")
    parser.add_argument("--sites", type=int, default=300,
                        help="with --waves other than 5: sites")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print(f"machine: {os.cpu_count()} cores, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 1024 ** 3:.0f} GB")
    settings = (published_national(args.rebuild) if args.waves == 5 else
                published_decade(args.per_wave, args.sites, args.waves, args.rebuild))
    with duckdb.connect(str(settings.published_path), read_only=True) as con:
        sites = [r[0] for r in con.execute("select site_code from sites order by 1").fetchall()]
        waves = [r[0] for r in con.execute("select distinct wave from cells order by 1"
                                           ).fetchall()]
        cells = con.execute("select count(*) from cells").fetchall()[0][0]
        measures = [f"{k}:{m}" for k, m in con.execute(
            "select measure_kind, measure from measures where measure_kind in "
            "('scale', 'principle')").fetchall()]
    print(f"published layer: {cells:,} cells, {len(sites)} sites, waves {waves}")
    settings.accounts_path.unlink(missing_ok=True)
    book = AccountBook(settings.accounts_path)
    rng = random.Random(7)
    director_sites = rng.sample(sites, 5)
    book.add("bench-admin", "admin", PASSWORD)
    book.add("bench-researcher", "researcher", PASSWORD)
    for number, site in enumerate(director_sites):
        book.add(f"bench-director-{number}", "director", PASSWORD, site)
    app = create_app(settings)
    directors = [(sign_in(app, f"bench-director-{i}"), s) for i, s in enumerate(director_sites)]
    admin = sign_in(app, "bench-admin")
    researcher = sign_in(app, "bench-researcher")

    def director_search():
        client, site = rng.choice(directors)
        return client, f"?site={site}&wave={rng.choice(waves)}"

    times: dict[str, list[float]] = {}
    # warm-up: first open of the file and the reference-table caches
    timed(admin, router_request("/", f"?site={sites[0]}"))
    for _ in range(args.calls):
        for path in PAGES:
            client, search = director_search()
            times.setdefault(f"page {path} (director)", []).append(
                timed(client, router_request(path, search)))
        site = rng.choice(sites)
        for path in ADMIN_PAGES:
            times.setdefault(f"page {path} (admin)", []).append(
                timed(admin, router_request(path, f"?site={site}&wave={rng.choice(waves)}")))
        times.setdefault("page /methods (researcher)", []).append(
            timed(researcher, router_request("/methods", f"?wave={rng.choice(waves)}")))
        # The trend views read every wave of a site (or the nation, for a researcher).
        times.setdefault("page /trends (admin)", []).append(
            timed(admin, router_request("/trends", f"?site={site}&wave={waves[-1]}")))
        times.setdefault("page /trends (researcher)", []).append(
            timed(researcher, router_request("/trends", f"?wave={waves[-1]}")))
        times.setdefault("page /benchmark (admin)", []).append(
            timed(admin, router_request("/benchmark", f"?site={site}&wave={rng.choice(waves)}")))
        times.setdefault("page /benchmark (researcher)", []).append(
            timed(researcher, router_request("/benchmark", f"?wave={rng.choice(waves)}")))
        client, search = director_search()
        times.setdefault("benchmark measure", []).append(
            timed(client, measure_request(rng.choice(measures), search)))
        times.setdefault("navigate", []).append(
            timed(admin, navigate_request(rng.choice(sites), rng.choice(waves), "?site=X")))
    every = np.concatenate([np.array(v) for v in times.values()])
    print(f"{'callback':<32}{'calls':>6}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}")
    for name, values in times.items():
        v = np.array(values)
        print(f"{name:<32}{len(v):>6}{np.percentile(v, 50):>9.1f}{np.percentile(v, 95):>9.1f}"
              f"{v.max():>9.1f}")
    p95 = np.percentile(every, 95)
    print(f"{'all callbacks':<32}{len(every):>6}{np.percentile(every, 50):>9.1f}{p95:>9.1f}"
          f"{every.max():>9.1f}")
    print(f"goal: p95 under 150 ms; measured {p95:.1f} ms "
          f"({'met' if p95 < 150 else 'NOT met'})")
    trend = np.concatenate([np.array(v) for k, v in times.items()
                            if k.startswith(("page /trends", "page /principle"))])
    trend_p95 = np.percentile(trend, 95)
    print(f"trend views (Trends, Principle) over {len(waves)} waves: {len(trend)} calls, "
          f"p50 {np.percentile(trend, 50):.1f} ms, p95 {trend_p95:.1f} ms "
          f"({'met' if trend_p95 < 150 else 'NOT met'})")

    # Baseline: load the published cells into pandas for each request and filter there.
    baseline = []
    for _ in range(5):
        started = time.perf_counter()
        with duckdb.connect(str(settings.published_path), read_only=True) as con:
            frame = con.execute("select * from cells").df()
        site = rng.choice(sites)
        frame[(frame["level"] == "site") & (frame["unit"] == site)
              & (frame["wave"] == waves[-1]) & (frame["breakdown"] == "all")]
        baseline.append((time.perf_counter() - started) * 1000)
    print(f"baseline (whole cells table to pandas per request, data access only): "
          f"median {np.median(baseline):.0f} ms; dashboard p95 is "
          f"{np.median(baseline) / p95:.1f}x faster for a whole page")


if __name__ == "__main__":
    main()
