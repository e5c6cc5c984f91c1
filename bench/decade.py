"""Benchmark: a decade at national scale (issue 25), ten incremental runs against full runs.

The data: ten waves of the national design (`survey.decade.write_decade`: default
1,000,000 responses a wave, 300 sites, 2017-2026, one Parquet file a wave), generated
once into bench/data/ (never committed).

Three things are run, each `culture run` in a fresh child process so that its peak
memory (the process's peak RSS, DuckDB's buffers included) is its own:

- ten incremental runs on one store: ingest wave w, run (only open waves computed,
  frozen waves' published rows held), freeze w;
- at a few checkpoints (default after waves 2, 5 and 10), a full rerun of all the waves
  so far on a copy of the store as it stood before wave w (ingest wave w, run with
  full=True): the incremental run's ratio is taken against it, and the reruns show how
  a full run grows with the waves;
- one full run: a fresh store, all ten wave files ingested and run at once.

Prints, for each run, wall time, peak memory and the published layer's size, and the
goals of issue 25: each incremental wave in at most a third of a full rerun of all its
waves; the ten-wave full run under 4 GB peak with time near-linear in responses (the
ratio per wave added). Figures are printed, not asserted.

    .venv/bin/python bench/decade.py [--per-wave 1000000] [--sites 300] [--waves 10]
                                     [--checkpoints 2 5 10] [--skip-full | --only-full]
                                     [--memory-limit 3GB] [--generate]

A quick try: --per-wave 20000 (10 waves x 20,000). --generate only writes the data.
--memory-limit sets DuckDB's memory_limit (and a temp directory beside the store, to
spill to) on every connection the run opens, to see what a cap costs.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT  # (adds the project to sys.path)

from survey.decade import DECADE_SEED, wave_file, write_decade  # noqa: E402

GB = 1024 ** 3


def decade_folder(per_wave: int, sites: int, waves: int) -> Path:
    """Where the decade of this size lives (the full size in bench/data/decade)."""
    if (per_wave, sites, waves) == (1_000_000, 300, 10):
        return ROOT / "bench" / "data" / "decade"
    return ROOT / "bench" / "data" / f"decade_{waves}x{per_wave}_{sites}sites"


def ensure_decade(per_wave: int, sites: int, waves: int, force: bool = False) -> tuple[Path, dict]:
    """The decade's folder and manifest, generated (seeded) unless already there."""
    folder = decade_folder(per_wave, sites, waves)
    manifest_path = folder / "manifest.json"
    if manifest_path.exists() and not force:
        manifest = json.loads(manifest_path.read_text())
        if (manifest.get("seed"), manifest.get("per_wave"), manifest.get("n_sites"),
                len(manifest.get("waves", []))) == (DECADE_SEED, per_wave, sites, waves) and \
                all((folder / wave_file(w)).exists() for w in manifest["waves"]):
            return folder, manifest
    shutil.rmtree(folder, ignore_errors=True)
    started = time.perf_counter()
    manifest = write_decade(folder, per_wave=per_wave, n_sites=sites, n_waves=waves)
    print(f"generated {manifest['n_responses']:,} responses ({waves} waves x {per_wave:,}, "
          f"{sites} sites) in {time.perf_counter() - started:.0f} s, peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2:.2f} GB")
    return folder, manifest


# --- the child process: one run --------------------------------------------------------

def supports_full() -> bool:
    from pipeline.run import run_pipeline
    return "full" in inspect.signature(run_pipeline).parameters


def limit_duckdb(memory_limit: str, spill: Path) -> None:
    """Every DuckDB connection opened from now on gets `memory_limit` and spills to
    `spill` (bench only: the pipeline has no such setting)."""
    import duckdb

    connect = duckdb.connect

    def limited(*args, **kwargs):
        con = connect(*args, **kwargs)
        con.execute(f"set memory_limit = '{memory_limit}'")
        if not kwargs.get("read_only"):
            con.execute("set temp_directory = ?", [str(spill)])
        return con

    duckdb.connect = limited


def cpu_seconds() -> float:
    """CPU time of every thread of this process (DuckDB's included): steadier than wall
    time when other work shares the cores."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def one_run(job: dict) -> dict:
    """Run the pipeline once as `job` says; what it cost."""
    import warnings

    from pipeline.run import run_pipeline
    from pipeline.store import load_reference_data, open_store
    from survey.instrument import load_instrument
    from survey.settings import DEFAULT_INSTRUMENT, Settings

    warnings.simplefilter("ignore")
    store = Path(job["store"])
    if job.get("memory_limit"):
        limit_duckdb(job["memory_limit"], store.parent / "spill")
    instrument = load_instrument(DEFAULT_INSTRUMENT)
    settings = Settings(db_path=store)
    if job["fresh"]:
        for path in (store, settings.published_path,
                     store.with_name(store.stem + ".held.duckdb")):
            path.unlink(missing_ok=True)
        with open_store(store) as con:
            load_reference_data(con, Path(job["folder"]), instrument)
    marks: list[tuple[str, float]] = []
    extra = {"full": True} if job["full"] and supports_full() else {}
    cpu_started = cpu_seconds()
    started = time.perf_counter()
    report = run_pipeline(settings, instrument, [Path(f) for f in job["files"]],
                          stage=lambda name: marks.append((name, time.perf_counter())),
                          **extra)
    ended = time.perf_counter()
    cpu = cpu_seconds() - cpu_started
    marks.append(("end", ended))
    stages = {name: t1 - t0 for (name, t0), (_, t1) in zip(marks, marks[1:])}
    freeze_seconds, held, freeze_error = 0.0, None, None
    if job.get("freeze"):
        import duckdb

        from pipeline.waves import freeze_wave
        from survey.errors import CultureError

        began = time.perf_counter()
        try:
            with open_store(store) as con:
                held = freeze_wave(con, job["freeze"], settings.published_path,
                                   reason="bench/decade.py: wave closed")
        except (duckdb.Error, CultureError) as exc:  # reported; the decade goes on unfrozen
            freeze_error = str(exc).splitlines()[0]
        freeze_seconds = time.perf_counter() - began
    pub = report.published
    return {"seconds": ended - started, "cpu_seconds": cpu, "stages": stages,
            "freeze_seconds": freeze_seconds,
            "held_rows": held, "freeze_error": freeze_error,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2,
            "published_mb": settings.published_path.stat().st_size / 1024 ** 2,
            "store_mb": store.stat().st_size / 1024 ** 2,
            "cells": pub.cells if pub is not None else None}


def run_child(job: dict) -> dict:
    """`one_run` in a fresh Python, so its peak memory is its own."""
    done = subprocess.run([sys.executable, __file__, "--job", json.dumps(job)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"run failed ({job}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the bench -------------------------------------------------------------------------

def stage_line(result: dict) -> str:
    return ", ".join(f"{name} {seconds:.1f}" for name, seconds in result["stages"].items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-wave", type=int, default=1_000_000, help="responses a wave")
    parser.add_argument("--sites", type=int, default=300)
    parser.add_argument("--waves", type=int, default=10)
    parser.add_argument("--checkpoints", type=int, nargs="*", default=[2, 5, 10],
                        help="waves after which a full rerun is timed (none: skip)")
    parser.add_argument("--skip-full", action="store_true",
                        help="leave out the one full run of all the waves")
    parser.add_argument("--only-full", action="store_true",
                        help="only the one full run (e.g. to try --memory-limit)")
    parser.add_argument("--memory-limit", default=None,
                        help="DuckDB memory_limit for every run, e.g. 3GB")
    parser.add_argument("--generate", action="store_true",
                        help="(re)write the data and stop")
    parser.add_argument("--job", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        print(json.dumps(one_run(json.loads(args.job))))
        return
    print(f"machine: {os.cpu_count()} cores, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / GB:.0f} GB; "
          f"load average {os.getloadavg()[0]:.1f} (other work shares the cores)")
    folder, manifest = ensure_decade(args.per_wave, args.sites, args.waves, args.generate)
    if args.generate:
        return
    waves = manifest["waves"]
    files = [str(folder / wave_file(w)) for w in waves]
    if not supports_full():
        print("note: run_pipeline has no `full` option in this tree: every run recomputes "
              "every wave, so the incremental runs below are full runs too")
    stores = folder / "stores"
    stores.mkdir(exist_ok=True)
    incremental = stores / "incremental.duckdb"
    rerun = stores / "rerun.duckdb"
    limit = {"memory_limit": args.memory_limit} if args.memory_limit else {}

    if not args.only_full:
        print(f"\nten incremental runs ({args.per_wave:,} responses a wave, {args.sites} sites"
              f"{', DuckDB memory_limit ' + args.memory_limit if args.memory_limit else ''})")
        print(f"{'wave':>5}{'run s':>8}{'cpu s':>7}{'freeze s':>9}{'peak GB':>9}"
              f"{'layer MB':>9}{'full rerun s':>13}{'cpu s':>7}{'rerun GB':>9}{'ratio':>7}"
              f"{'cpu ratio':>10}")
    rows, reruns = [], {}
    for index, wave in enumerate([] if args.only_full else waves, start=1):
        if index in args.checkpoints:
            # The full rerun starts from the store exactly as the incremental run finds it:
            # the store, its published layer and its held layer file.
            beside = (".published.duckdb", ".held.duckdb")
            if index > 1:
                shutil.copyfile(incremental, rerun)
                for suffix in beside:
                    source = incremental.with_name(incremental.stem + suffix)
                    if source.exists():
                        shutil.copyfile(source, rerun.with_name(rerun.stem + suffix))
            reruns[index] = run_child({"store": str(rerun), "folder": str(folder),
                                       "files": [files[index - 1]], "full": True,
                                       "fresh": index == 1, **limit})
            rerun.unlink()
            for suffix in beside:
                rerun.with_name(rerun.stem + suffix).unlink(missing_ok=True)
        result = run_child({"store": str(incremental), "folder": str(folder),
                            "files": [files[index - 1]], "full": False, "fresh": index == 1,
                            "freeze": wave, **limit})
        rows.append(result)
        closing = result["seconds"] + result["freeze_seconds"]
        line = (f"{wave:>5}{result['seconds']:>8.1f}{result['cpu_seconds']:>7.1f}"
                f"{result['freeze_seconds']:>9.1f}{result['peak_rss_gb']:>9.2f}"
                f"{result['published_mb']:>9.1f}")
        if index in reruns:
            full = reruns[index]
            line += (f"{full['seconds']:>13.1f}{full['cpu_seconds']:>7.1f}"
                     f"{full['peak_rss_gb']:>9.2f}{closing / full['seconds']:>7.2f}"
                     f"{result['cpu_seconds'] / full['cpu_seconds']:>10.2f}")
        print(line, flush=True)
        print(f"      stages: {stage_line(result)}")
        if result["freeze_error"]:
            print(f"      FREEZE FAILED (wave left open): {result['freeze_error']}")
    if reruns:
        print("\nfull reruns (all waves so far recomputed; wave w ingested as in the "
              "incremental run)")
        for index, full in reruns.items():
            print(f"  {index:>2} waves, {index * args.per_wave:>11,} responses: "
                  f"{full['seconds']:6.1f} s (cpu {full['cpu_seconds']:.1f} s), "
                  f"peak {full['peak_rss_gb']:.2f} GB, layer "
                  f"{full['published_mb']:.1f} MB ({stage_line(full)})")
        points = sorted(reruns)
        for small, large in zip(points, points[1:]):
            a, b = reruns[small]["seconds"], reruns[large]["seconds"]
            print(f"  {small} -> {large} waves: x{large / small:.1f} responses, x{b / a:.2f} "
                  f"time; {(b - a) / (large - small):.1f} s per wave added "
                  f"(ratio per wave added to seconds per wave at {small}: "
                  f"{((b - a) / (large - small)) / (a / small):.2f})")
        ratios = [(rows[i - 1]["seconds"] + rows[i - 1]["freeze_seconds"]) /
                  reruns[i]["seconds"] for i in points]
        print(f"goal: each incremental wave in at most 1/3 of a full rerun of its waves; "
              f"measured ratios {', '.join(f'{r:.2f}' for r in ratios)} at "
              f"{', '.join(map(str, points))} waves")
        # A run that adds a wave does at least what a fresh run of that one wave does
        # (ingest it, flag, sum, score, fit the drivers, publish, benchmark, verify): the
        # first wave's run is one. Its time over the full rerun's is the ratio no
        # incremental design can beat at that many waves.
        floors = [rows[0]["seconds"] / reruns[i]["seconds"] for i in points]
        print(f"floor for any incremental design (the one-wave run of wave 1, "
              f"{rows[0]['seconds']:.1f} s, over the full rerun): "
              f"{', '.join(f'{r:.2f}' for r in floors)} at {', '.join(map(str, points))} "
              f"waves")
    if args.skip_full:
        return
    full_store = stores / "full.duckdb"
    print(f"\none full run: {len(waves)} waves ingested at once "
          f"({manifest['n_responses']:,} responses)", flush=True)
    full = run_child({"store": str(full_store), "folder": str(folder), "files": files,
                      "full": True, "fresh": True, **limit})
    print(f"  {full['seconds']:.1f} s (cpu {full['cpu_seconds']:.1f} s), "
          f"peak {full['peak_rss_gb']:.2f} GB, layer "
          f"{full['published_mb']:.1f} MB, store {full['store_mb']:.0f} MB, "
          f"{full['cells']:,} cells")
    print(f"  stages: {stage_line(full)}")
    per_wave = full["seconds"] / len(waves)
    if rows:
        print(f"  {per_wave:.1f} s per wave; the last incremental wave took "
              f"{rows[-1]['seconds']:.1f} s")
    print(f"goal: the ten-wave full run under 4 GB peak; measured "
          f"{full['peak_rss_gb']:.2f} GB ({'met' if full['peak_rss_gb'] < 4 else 'NOT met'})")


if __name__ == "__main__":
    main()
