"""Benchmark: the whole pipeline (`culture run`: ingest -> psychometrics -> aggregate ->
suppress -> publish -> benchmark -> verify) at 10k, 100k and 1M responses (300 sites,
5 waves), then the obvious loop on the 1M set in the same process.

Prints wall time and the time of each stage per size (to show how cost grows), the
process's peak memory after the pipeline runs (goal at 1M: under 15 s and under 2 GB),
and the ratio against the obvious loop (pandas groupby + pingouin.cronbach_alpha +
factor_analyzer per scale x site x wave, which computes only part of what the pipeline
does; goal >= 50x).

    .venv/bin/python bench/pipeline.py [--sizes 10000 100000 1000000] [--skip-loop]
                                       [--without-headcounts]

Staff-group headcounts (headcounts.csv of the set) are loaded as a national run would,
so the benchmark stage includes the headcount-weighted means; --without-headcounts
leaves them out (as this benchmark did before they were loaded).
"""

from __future__ import annotations

import argparse
import os
import resource
import time
import warnings
from pathlib import Path

from common import ROOT, ensure_data, load_reference

from pipeline.run import run_pipeline
from pipeline.store import load_headcounts_csv, open_store
from survey.instrument import load_instrument
from survey.settings import DEFAULT_INSTRUMENT, Settings


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def run_once(folder: Path, instrument, headcounts: bool = True
             ) -> tuple[float, dict[str, float], object]:
    store = folder / "stores" / "pipeline.duckdb"
    store.parent.mkdir(exist_ok=True)
    for path in (store, store.with_name("pipeline.published.duckdb")):
        path.unlink(missing_ok=True)
    with open_store(store) as con:
        load_reference(con, folder)
        if headcounts and (folder / "headcounts.csv").exists():
            load_headcounts_csv(con, folder / "headcounts.csv", instrument)
    settings = Settings(db_path=store)
    stages: dict[str, float] = {}
    marks: list[tuple[str, float]] = []
    started = time.perf_counter()
    report = run_pipeline(settings, instrument, [folder / "responses.parquet"],
                          stage=lambda name: marks.append((name, time.perf_counter())))
    ended = time.perf_counter()
    marks.append(("end", ended))
    for (name, t0), (_, t1) in zip(marks, marks[1:]):
        stages[name] = t1 - t0
    return ended - started, stages, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--skip-loop", action="store_true")
    parser.add_argument("--without-headcounts", action="store_true",
                        help="do not load headcounts.csv (no weighted means)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    instrument = load_instrument(DEFAULT_INSTRUMENT)
    print(f"machine: {os.cpu_count()} cores, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 1024 ** 3:.0f} GB")
    timings = {}
    for size in sorted(args.sizes):
        folder = ROOT / "bench" / "data" / ("national" if size == 1_000_000 else f"national_{size}")
        ensure_data(folder, size, formats=("parquet",))
        wall, stages, report = run_once(folder, instrument, not args.without_headcounts)
        timings[size] = wall
        pub = report.published
        print(f"{size:>9,} responses: {wall:6.2f} s  peak RSS so far {peak_rss_gb():.2f} GB  "
              f"({pub.cells:,} cells, {pub.hidden_primary + pub.hidden_complementary:,} hidden, "
              f"largest verified block {pub.verification.largest_block})")
        print("           " + ", ".join(f"{name} {seconds:.2f}" for name, seconds in stages.items()))
    sizes = sorted(timings)
    for small, large in zip(sizes, sizes[1:]):
        print(f"growth {small:,} -> {large:,}: x{large / small:.0f} rows, "
              f"x{timings[large] / timings[small]:.1f} time")
    largest = sizes[-1]
    print(f"goal at 1M: under 15 s and 2 GB; measured {timings[largest]:.2f} s, "
          f"peak {peak_rss_gb():.2f} GB")
    if args.skip_loop:
        return
    from psychometrics import obvious_loop

    folder = ROOT / "bench" / "data" / ("national" if largest == 1_000_000 else f"national_{largest}")
    with open_store(folder / "stores" / "pipeline.duckdb", read_only=True) as con:
        started = time.perf_counter()
        obvious_loop(con, instrument)
        loop = time.perf_counter() - started
    print(f"obvious loop (reliability only, pandas + pingouin + factor_analyzer): {loop:.2f} s; "
          f"whole pipeline is {loop / timings[largest]:.1f}x faster (goal >= 50x)")


if __name__ == "__main__":
    main()
