"""Benchmark: export every aggregate of the national-scale published layer (1,000,000
responses, 300 sites, 5 waves) at every level, in every format, then the obvious
row-by-row export in the same process.

The published layer is built once with bench/pipeline.py's `run_once` (about two
minutes) and kept in bench/data/national/stores; later runs reuse it. Prints the time
of each format (all four levels), of all formats in one call, the rows per level, and
the ratios against the obvious code: pandas merges of the published tables, then
`iterrows` with the formula guard applied cell by cell and `csv.writer` (CSV), and
`pyreadstat.write_sav` of the pandas frames (SPSS, without labels). Goal: every aggregate (all four levels) exported in under 10 s, per format.

    .venv/bin/python bench/export.py [--skip-baseline]
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import shutil
import time
import warnings
from pathlib import Path

import duckdb
import pandas as pd
import pyreadstat
from common import ROOT, ensure_data

from outputs.export import (AGGREGATE_FORMATS as FORMATS, AGGREGATE_LEVELS as LEVELS,  # noqa: E402
                            LEVEL_SPECS, export_aggregates)
from survey.spreadsheet import FORMULA_PREFIXES  # noqa: E402
from survey.instrument import load_instrument
from survey.settings import DEFAULT_INSTRUMENT

FOLDER = ROOT / "bench" / "data" / "national"
OUT = ROOT / "bench" / "data" / "export"


def published_layer() -> Path:
    """The national published file, built by the pipeline benchmark's run_once if missing."""
    path = FOLDER / "stores" / "pipeline.published.duckdb"
    if path.exists():
        return path
    ensure_data(FOLDER, 1_000_000, formats=("parquet",))
    # bench/pipeline.py cannot be imported by name: the package `pipeline` shadows it.
    spec = importlib.util.spec_from_file_location("bench_pipeline", ROOT / "bench" / "pipeline.py")
    bench_pipeline = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_pipeline)
    wall, _, _ = bench_pipeline.run_once(FOLDER, load_instrument(DEFAULT_INSTRUMENT))
    print(f"built the national published layer in {wall:.1f} s")
    return path


def timed_export(published: Path, fmt) -> tuple[float, object]:
    out = OUT / ("all" if isinstance(fmt, list) else fmt)
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    report = export_aggregates(published, out, fmt)
    return time.perf_counter() - started, report


def obvious_levels(published: Path) -> dict[str, pd.DataFrame]:
    """What a first attempt would build: every published table in pandas, merged there."""
    with duckdb.connect(str(published), read_only=True) as con:
        cells = con.table("cells").df()
        sites = con.table("sites").df()
        measures = con.table("measures").df()
        reliability = con.table("reliability").df()
        gaps = con.table("principle_gaps").df()
        groups = con.table("groups").df()
    frame = cells.merge(sites[["site_code", "name", "region"]].rename(
        columns={"site_code": "unit", "name": "site_name"}), on="unit", how="left")
    frame.loc[frame["level"] != "site", ["site_name", "region"]] = None
    frame = frame.merge(measures[["measure_kind", "measure", "name"]].rename(
        columns={"name": "measure_name"}), on=["measure_kind", "measure"], how="left")
    site_rel = reliability[reliability["level"] == "site_wave"].rename(columns={
        "site_code": "unit", "scale": "measure", "ci_low": "alpha_ci_low",
        "ci_high": "alpha_ci_high"})[["wave", "unit", "measure", "alpha", "alpha_ci_low",
                                      "alpha_ci_high", "omega_total"]]
    nat_rel = reliability[reliability["level"] == "wave"].rename(columns={
        "scale": "measure", "ci_low": "alpha_ci_low", "ci_high": "alpha_ci_high"})[
        ["wave", "measure", "alpha", "alpha_ci_low", "alpha_ci_high", "omega_total"]].assign(
        unit="national")
    rel = pd.concat([site_rel, nat_rel]).assign(breakdown="all", measure_kind="scale")
    rel["wave"] = rel["wave"].astype(int)
    frame = frame.merge(rel, on=["wave", "unit", "breakdown", "measure_kind", "measure"],
                        how="left")
    gaps = gaps.rename(columns={"site_code": "unit", "principle": "measure"})[
        ["wave", "unit", "measure", "target", "gap", "gap_low", "gap_high", "certainty",
         "priority"]].assign(level="site", breakdown="all", measure_kind="principle")
    frame = frame.merge(gaps, on=["wave", "level", "unit", "breakdown", "measure_kind",
                                  "measure"], how="left")
    frame["site_type"] = frame["peer_group"].where(frame["level"] != "national")
    frame["group_value"] = frame["grp"]
    frame = frame.merge(groups[["breakdown", "grp", "label"]].rename(
        columns={"label": "group_label"}), on=["breakdown", "grp"], how="left")
    frame["suppressed"] = frame["suppressed"].astype(int)
    selections = {"site": (frame["breakdown"] == "all") & frame["measure_kind"].isin(
                      ["responses", "scale"]),
                  "principle": (frame["breakdown"] == "all") & (frame["measure_kind"] == "principle"),
                  "item": (frame["breakdown"] == "all") & (frame["measure_kind"] == "item"),
                  "group": frame["breakdown"] != "all"}
    return {level: frame.loc[rows, list(LEVEL_SPECS[level].columns)]
            for level, rows in selections.items()}


def obvious_csv_export(levels: dict[str, pd.DataFrame], out: Path) -> float:
    """The loop a first attempt would write: one row at a time, one cell at a time."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    started = time.perf_counter()
    for level, frame in levels.items():
        with (out / f"culture_{level}.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(list(frame.columns))
            for _, row in frame.iterrows():
                values = []
                for value in row:
                    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
                        value = "'" + value
                    elif not isinstance(value, str) and pd.isna(value):
                        value = ""
                    values.append(value)
                writer.writerow(values)
    return time.perf_counter() - started


def obvious_sav_export(levels: dict[str, pd.DataFrame], out: Path) -> float:
    """pyreadstat.write_sav straight from the pandas frames (no labels even)."""
    started = time.perf_counter()
    for level, frame in levels.items():
        frame = frame.assign(n=frame["n"].astype("float64"))
        pyreadstat.write_sav(frame, str(out / f"culture_{level}.sav"))
    return time.perf_counter() - started


def same_rows(ours: Path, theirs: Path) -> bool:
    """Whether two CSV exports of one level hold the same rows (numbers to 1e-9)."""
    with duckdb.connect() as con:
        a = con.execute("select * from read_csv(?) order by all", [str(ours)]).df()
        b = con.execute("select * from read_csv(?) order by all", [str(theirs)]).df()
    if a.shape != b.shape or list(a.columns) != list(b.columns):
        return False
    for frame in (a, b):
        for column in frame.columns:
            # One side may read a column as Int64 (NA) and the other as float (NaN).
            if pd.api.types.is_numeric_dtype(frame[column]):
                frame[column] = frame[column].astype("float64")
    pd.testing.assert_frame_equal(a, b, check_dtype=False, rtol=1e-9)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    published = published_layer()
    with duckdb.connect(str(published), read_only=True) as con:
        cells = con.execute("select count(*) from cells").fetchall()[0][0]
    print(f"published layer: {published} ({published.stat().st_size / 1e6:.0f} MB, "
          f"{cells:,} cells)")
    times = {}
    for fmt in FORMATS:
        times[fmt], report = timed_export(published, fmt)
        sizes = sum(f.path.stat().st_size for f in report.files) / 1e6
        print(f"{fmt:>8}: {times[fmt]:6.2f} s for all four levels ({sizes:,.0f} MB); "
              f"goal under 10 s: {'met' if times[fmt] < 10 else 'MISSED'}")
    print("rows: " + ", ".join(f"{f.level} {f.rows:,}" for f in report.files))
    together, _ = timed_export(published, list(FORMATS))
    print(f"all four formats x all four levels (16 files) in one call: {together:.2f} s; SPSS "
          f"and Stata dominate because pyreadstat writes row by row")
    if args.skip_baseline:
        return
    started = time.perf_counter()
    levels = obvious_levels(published)
    merging = time.perf_counter() - started
    baseline = merging + obvious_csv_export(levels, OUT / "baseline")
    print(f"obvious CSV loop finished in {baseline:.2f} s; comparing its files with ours")
    equal = all(same_rows(OUT / "csv" / f"culture_{level}.csv",
                          OUT / "baseline" / f"culture_{level}.csv") for level in LEVELS)
    print(f"obvious loop (pandas merges + iterrows + csv.writer, CSV only): {baseline:.2f} s; "
          f"culture export CSV is {baseline / times['csv']:.1f}x faster; same rows: {equal}")
    sav = merging + obvious_sav_export(levels, OUT / "baseline")
    print(f"obvious SPSS export (pandas merges + pyreadstat.write_sav of pandas frames, no "
          f"labels): {sav:.2f} s; culture export SPSS is {sav / times['sav']:.1f}x faster")


if __name__ == "__main__":
    main()
