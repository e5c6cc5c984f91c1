"""Benchmark: ingest the national-scale set (1M responses, 300 sites, 5 waves).

Prints rows per second for ingest from CSV and from Parquet, with full validation, and
the ratio to a bare `pandas.read_csv` of the same CSV run in this process (the baseline:
merely reading the file, no checks). Goals (2-core machine): CSV ingest no slower than
the pandas read (ratio >= 1.0), Parquet 1M rows in under 5 s.

    .venv/bin/python bench/ingest.py [--rows 1000000] [--data bench/data/national]
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

from common import DEFAULT_DATA, ensure_data, load_reference

from pipeline.ingest.files import ingest_file
from pipeline.store import open_store
from survey.instrument import load_instrument
from survey.settings import DEFAULT_INSTRUMENT


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed_ingest(data: Path, source: Path, store: Path, instrument, definition: str) -> tuple:
    store.unlink(missing_ok=True)
    with open_store(store) as con:
        load_reference(con, data)
        started = time.perf_counter()
        report = ingest_file(con, source, instrument, definition)
        elapsed = time.perf_counter() - started
    return elapsed, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()

    manifest = ensure_data(args.data, args.rows)
    csv_path, parquet_path = args.data / "responses.csv", args.data / "responses.parquet"
    instrument = load_instrument(DEFAULT_INSTRUMENT)
    definition = DEFAULT_INSTRUMENT.read_text(encoding="utf-8")

    import pandas as pd

    started = time.perf_counter()
    frame = pd.read_csv(csv_path)
    pandas_seconds = time.perf_counter() - started
    n_rows = len(frame)
    del frame

    scratch = args.data / "stores"
    scratch.mkdir(exist_ok=True)
    csv_seconds, csv_report = timed_ingest(args.data, csv_path, scratch / "csv.duckdb",
                                              instrument, definition)
    pq_seconds, pq_report = timed_ingest(args.data, parquet_path, scratch / "pq.duckdb",
                                            instrument, definition)
    # Row numbers must follow the file even though DuckDB reads the CSV in parallel:
    # the same rows in the Parquet file carry their position as file_row_number.
    import duckdb

    with duckdb.connect(str(scratch / "csv.duckdb"), read_only=True) as con:
        misplaced = con.execute(
            "select count(*) from responses r join (select file_row_number + 1 as source_row, "
            "response_id, site as site_code, wave from read_parquet(?, file_row_number = true)) p "
            "using (site_code, wave, response_id) where r.source_row <> p.source_row",
            [str(parquet_path)]).fetchone()[0]
    size_mb = csv_path.stat().st_size / 1e6
    print(f"machine: {os.cpu_count()} cores; file: {n_rows:,} rows, CSV {size_mb:.0f} MB, "
          f"{len(instrument.items)} items")
    print(f"baseline pandas.read_csv (no validation): {pandas_seconds:6.2f} s "
          f"{n_rows / pandas_seconds:>12,.0f} rows/s")
    for label, seconds, report in (("ingest CSV (full validation)", csv_seconds, csv_report),
                                   ("ingest Parquet (full validation)", pq_seconds, pq_report)):
        print(f"{label:41s} {seconds:6.2f} s {n_rows / seconds:>12,.0f} rows/s  "
              f"speed vs pandas read: {pandas_seconds / seconds:4.2f}x  "
              f"accepted {report.rows_accepted:,} rejected {report.rows_rejected:,}")
    print(f"CSV rows whose source_row differs from their position in the file: {misplaced}")
    print(f"peak memory of this process: {peak_rss_mb():,.0f} MB")
    print(f"goals: CSV ratio >= 1.00 -> {'met' if pandas_seconds / csv_seconds >= 1 else 'NOT met'}; "
          f"Parquet under 5 s -> {'met' if pq_seconds < 5 else 'NOT met'}")
    assert manifest["n_responses"] == n_rows


if __name__ == "__main__":
    main()
