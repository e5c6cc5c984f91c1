"""Benchmark: the national driver analysis (issue 23) at national scale, 1M responses.

A seeded national set made here with numpy (300 sites of the national mix of site types,
eight scale scores, the three outcome questions, a few missing answers), with the national
generator's planted driver weights for `oc_intend` (survey.synthetic
.NATIONAL_DRIVER_WEIGHTS, on latent scales correlated as it correlates them): stigma and
psychological safety matter most. It sits in an in-memory DuckDB table, as responses do
in the store. Two paths in this process:

- ours: one DuckDB statement sums n, sums and cross-products of [outcome, 8 scales] per
  site; then, for `oc_intend` and its "favourable" sensitivity outcome, dominance
  analysis nationally and in each peer group (site type), each with a 200-draw site
  bootstrap, and every eligible site's own model (>= 100 respondents answering);
- the obvious loop: respondent rows into pandas, then statsmodels OLS for all 255
  subset models of `oc_intend`, nationally, per peer group and per eligible site (no
  bootstrap: that would be 200 times more). By default the site part is timed on a
  sample of sites and scaled to all of them (`--baseline-sites 0` fits every one).

Prints both times, their ratios (goal: ours a few seconds, >= 20x faster), the largest
difference in general dominance between the two, the planted and estimated orders of all
eight scales, and the logistic analysis (using support among those who needed it)
nationally and per peer group with its one-step site bootstrap (as the pipeline runs it).

    .venv/bin/python bench/drivers.py [--rows 1000000] [--sites 300] [--baseline-sites 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stats.drivers import (MIN_BOOTSTRAP_SITES, MIN_SITE_RESPONDENTS,  # noqa: E402
                           SiteMoments, dominance_from_fits, dominance_from_site_moments,
                           logistic_site_bootstrap, site_bootstrap, site_dominance)
from survey.synthetic import (BASE_CORRELATION, CLUSTER, CLUSTER_CORRELATION,  # noqa: E402
                              NATIONAL_DRIVER_WEIGHTS, national_sites)

SCALES = ("stigma", "psysafety", "pathways", "confidentiality", "systems_view",
          "development", "voice_peer", "leader_modelling")
#: Planted weights of the latent scales in the propensity to seek help early.
PLANTED = NATIONAL_DRIVER_WEIGHTS
OUTCOMES = ("oc_intend", "oc_intend_fav")
DRAWS = 200


def national_set(rows: int, n_sites: int, seed: int = 2026) -> tuple[pd.DataFrame, dict]:
    """Respondents (site, scale scores 1-5, outcomes) and {site: site type}."""
    rng = np.random.default_rng(seed)
    sites = national_sites(n_sites, rng)
    size = rng.multinomial(rows - 20 * n_sites, rng.dirichlet(np.full(n_sites, 1.5))) + 20
    site = np.repeat(np.arange(n_sites), size)
    k = len(SCALES)
    # the national generator's latent correlations: a tighter cluster of four scales
    person = np.array([[1.0 if a == b else CLUSTER_CORRELATION if {a, b} <= set(CLUSTER)
                        else BASE_CORRELATION for b in SCALES] for a in SCALES])
    theta = (rng.standard_normal((rows, k)) @ np.linalg.cholesky(person).T
             + rng.normal(0, .3, (n_sites, k))[site])
    # a scale score is the mean of five 1-5 answers: steps of 0.2
    scores = np.clip(np.round((3.2 + .8 * theta + .3 * rng.standard_normal((rows, k))) * 5)
                     / 5, 1, 5)
    weights = np.array([PLANTED[s] for s in SCALES])
    propensity = (theta @ weights + rng.normal(0, .25, n_sites)[site]
                  + .7 * rng.standard_normal(rows))
    intend = 1 + (propensity[:, None] > np.array([-1.6, -.8, .05, 1.1])).sum(axis=1)
    needed = rng.random(rows) < .3
    # pathways and stigma go with using support once it is needed
    used = needed & (rng.random(rows) < 1 / (1 + np.exp(.3 - .8 * theta[:, 2] - .4 * theta[:, 0])))
    frame = pd.DataFrame(scores, columns=list(SCALES))
    frame.insert(0, "site_code", np.array([s.code for s in sites])[site])
    frame["oc_intend"] = intend.astype(float)
    frame["oc_needed"], frame["oc_used"] = needed.astype(float), used.astype(float)
    for column, share in (("oc_intend", .04), *((s, .02) for s in SCALES)):
        frame.loc[rng.random(rows) < share, column] = np.nan
    # one of five waves, drawn last so the rest is as before: the pipeline fits the
    # logistic model on the latest wave only
    frame["wave"] = rng.integers(0, 5, rows)
    return frame, {s.code: s.site_type for s in sites}


def site_moments(con, outcomes=OUTCOMES) -> SiteMoments:
    """n, sums and cross-products per site, listwise over the outcomes and scales; scores
    centred at 3 so the national sums stay small."""
    columns = [*outcomes, *SCALES]
    values = {"oc_intend": "oc_intend - 3", "oc_intend_fav": "(oc_intend >= 4)::double",
              **{s: f"{s} - 3" for s in SCALES}}
    pairs = [(i, j) for i in range(len(columns)) for j in range(i, len(columns))]
    sql = (f"with answered as (select site_code, "
           + ", ".join(f"{values[c]} as v{i}" for i, c in enumerate(columns))
           + " from responses where " + " and ".join(f"{s} is not null" for s in
                                                   ("oc_intend", *SCALES))
           + ") select site_code, count(*) as n, "
           + ", ".join(f"sum(v{i}) as s{i}" for i in range(len(columns))) + ", "
           + ", ".join(f"sum(v{i} * v{j}) as p{i}_{j}" for i, j in pairs)
           + " from answered group by site_code order by site_code")
    table = con.execute(sql).fetchnumpy()
    m, count = len(columns), len(table["n"])
    products = np.empty((count, m, m))
    for i, j in pairs:
        products[:, i, j] = products[:, j, i] = table[f"p{i}_{j}"]
    return SiteMoments(tuple(columns), tuple(table["site_code"]), table["n"].astype(float),
                       np.stack([table[f"s{i}"] for i in range(m)], axis=1), products)


def ours(con, site_type: dict, outcomes=OUTCOMES, draws: int = DRAWS) -> dict:
    moments = site_moments(con, outcomes)
    results = {}
    groups = {"national": moments.sites}
    for kind in sorted(set(site_type.values())):
        groups[kind] = [s for s in moments.sites if site_type[s] == kind]
    for outcome in outcomes:
        for group, members in groups.items():
            chosen = moments.of_sites(members)
            results[(outcome, group)] = (
                dominance_from_site_moments(chosen, outcome, SCALES),
                site_bootstrap(chosen, outcome, SCALES, draws=draws)
                if draws and len(members) >= MIN_BOOTSTRAP_SITES else None)
        results[(outcome, "sites")] = site_dominance(moments, outcome, SCALES)
    return results


def subset_r2_statsmodels(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    import statsmodels.api as sm

    fits = np.zeros(2 ** x.shape[1])
    for mask in range(1, len(fits)):
        columns = [j for j in range(x.shape[1]) if mask >> j & 1]
        fits[mask] = sm.OLS(y, sm.add_constant(x[:, columns], has_constant="add")).fit().rsquared
    return fits


def obvious_loop(con, site_type: dict, baseline_sites: int) -> tuple[dict, float]:
    """{group: general dominance} of oc_intend and the seconds it took, with the site part
    scaled up from `baseline_sites` sampled eligible sites (0: all of them)."""
    started = time.perf_counter()
    frame = con.execute("select site_code, oc_intend, " + ", ".join(SCALES)
                        + " from responses").df().dropna()
    frame["type"] = frame["site_code"].map(site_type)
    results = {}
    groups = [("national", frame)] + list(frame.groupby("type"))
    for name, rows in groups:
        fits = subset_r2_statsmodels(rows["oc_intend"].to_numpy(), rows[list(SCALES)].to_numpy())
        results[name] = dominance_from_fits(fits, "oc_intend", SCALES).general
    fixed = time.perf_counter() - started
    counts = frame["site_code"].value_counts()
    eligible = sorted(counts[counts >= MIN_SITE_RESPONDENTS].index)
    sample = eligible if baseline_sites == 0 else list(
        np.random.default_rng(0).choice(eligible, min(baseline_sites, len(eligible)),
                                        replace=False))
    started = time.perf_counter()
    by_site = frame.groupby("site_code")
    for site in sample:
        rows = by_site.get_group(site)
        fits = subset_r2_statsmodels(rows["oc_intend"].to_numpy(), rows[list(SCALES)].to_numpy())
        results[site] = dominance_from_fits(fits, "oc_intend", SCALES).general
    per_site = (time.perf_counter() - started) / max(len(sample), 1)
    return results, fixed + per_site * len(eligible)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sites", type=int, default=300)
    parser.add_argument("--baseline-sites", type=int, default=20,
                        help="eligible sites the statsmodels loop fits (0 = all)")
    args = parser.parse_args()

    frame, site_type = national_set(args.rows, args.sites)
    con = duckdb.connect()
    con.register("frame", frame)
    con.execute("create table responses as select * from frame")
    con.unregister("frame")

    ours(con, site_type, draws=5)   # warm up DuckDB and numpy once
    started, cpu = time.perf_counter(), time.process_time()
    fast = ours(con, site_type)
    fast_seconds, fast_cpu = time.perf_counter() - started, time.process_time() - cpu
    started = time.perf_counter()
    same_work = ours(con, site_type, outcomes=("oc_intend",), draws=0)
    same_seconds = time.perf_counter() - started
    slow, slow_seconds = obvious_loop(con, site_type, args.baseline_sites)

    sites = fast[("oc_intend", "sites")]
    difference = max(np.abs(same_work[("oc_intend", key)][0].general - value).max()
                     if key in site_type.values() or key == "national" else
                     np.abs(sites.loc[key, list(SCALES)].to_numpy(float)
                            * sites.loc[key, "r2"] - value).max()
                     for key, value in slow.items())
    national, boot = fast[("oc_intend", "national")]
    planted = sorted(SCALES, key=lambda s: -PLANTED[s])
    estimated = [national.predictors[i] for i in np.argsort(-national.general)]
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the "
          f"end; {args.rows:,} responses, {args.sites} sites, "
          f"{len(set(site_type.values()))} peer groups, {len(sites)} sites with >= "
          f"{MIN_SITE_RESPONDENTS} answering")
    print(f"ours, whole analysis (2 outcomes x national + peer groups, each with a "
          f"{DRAWS}-draw site bootstrap, + every eligible site): {fast_seconds:6.2f} s "
          f"(CPU {fast_cpu:.2f} s)")
    print(f"ours, the loop's work only (oc_intend, no bootstrap):             "
          f"{same_seconds:6.2f} s")
    scaled = "" if args.baseline_sites == 0 else (
        f" (sites timed on {min(args.baseline_sites, len(sites))} and scaled to {len(sites)})")
    print(f"obvious loop (pandas + statsmodels OLS, 255 subsets a group, no bootstrap): "
          f"{slow_seconds:6.1f} s{scaled}")
    print(f"speed-up, same work: {slow_seconds / same_seconds:.0f}x; whole analysis against "
          f"the loop without its bootstrap: {slow_seconds / fast_seconds:.0f}x (goal >= 20x)")
    print(f"largest |difference| in general dominance: {difference:.1e}")
    print(f"national R2 {national.total:.3f} (n = {national.n:,})")
    print(f"planted order   {planted}")
    print(f"estimated order {estimated}: "
          + ("the planted order" if estimated == planted else "NOT the planted order"))
    print("national shares with site-bootstrap 95% intervals:")
    print(boot.table().round(3).to_string())

    started, cpu = time.perf_counter(), time.process_time()
    with threadpool_limits(limits=1, user_api="blas"):   # as pipeline.run runs it
        used = used_if_needed(con, site_type)
    print(f"logistic, using support among those who needed it (255 IRLS fits on the rows "
          f"and a 200-draw one-step site bootstrap, nationally and in each of "
          f"{len(used) - 1} peer groups): {time.perf_counter() - started:.2f} s (CPU "
          f"{time.process_time() - cpu:.2f} s)")
    national_used = used["national"]
    print(f"national McFadden R2 {national_used.total:.3f} "
          f"({national_used.total_low:.3f} to {national_used.total_high:.3f}), "
          f"n = {national_used.n:,}; shares with one-step 95% intervals:")
    print(national_used.table().round(3).to_string())


def used_if_needed(con, site_type: dict) -> dict:
    """The pipeline's logistic analysis of the latest wave: {group: one-step site
    bootstrap}, nationally and per peer group of at least MIN_BOOTSTRAP_SITES sites."""
    rows = con.execute("select site_code, oc_used, " + ", ".join(SCALES) + " from responses "
                       "where wave = 4 and oc_needed = 1 and oc_used is not null and "
                       + " and ".join(f"{s} is not null" for s in SCALES)).fetchnumpy()
    site = np.asarray(rows["site_code"]).astype(str)
    x, y = np.column_stack([rows[s] for s in SCALES]), np.asarray(rows["oc_used"], float)
    kind = np.array([site_type[s] for s in site], dtype=object)
    groups = {"national": np.ones(len(y), bool)}
    groups |= {k: kind == k for k in sorted(set(site_type.values()))}
    return {name: logistic_site_bootstrap(x[chosen], y[chosen], site[chosen], "oc_used",
                                          SCALES, draws=DRAWS)
            for name, chosen in groups.items()
            if len(np.unique(site[chosen])) >= MIN_BOOTSTRAP_SITES}


if __name__ == "__main__":
    main()
