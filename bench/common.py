"""Shared by the benchmarks: the national-scale data set and a store loaded with it."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.store import load_reference_data  # noqa: E402
from survey.synthetic import write_national  # noqa: E402

DEFAULT_DATA = ROOT / "bench" / "data" / "national"


def ensure_data(folder: Path, rows: int, formats: tuple[str, ...] = ("parquet", "csv")) -> dict:
    """The national set in `folder`, generated (seeded) unless already there at this size."""
    manifest_path = folder / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        names = {f["name"] for f in manifest.get("files", [])}
        if manifest.get("n_responses") == rows and {f"responses.{f}" for f in formats} <= names:
            return manifest
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    started = time.perf_counter()
    write_national(folder, n_responses=rows, formats=formats)
    print(f"generated {rows:,} responses in {time.perf_counter() - started:.1f} s")
    return json.loads(manifest_path.read_text())


def load_reference(con, folder: Path) -> None:
    """Sites and waves of the national set, so that ingest accepts its rows (no
    headcounts: the benchmarks' published numbers have always been made without)."""
    load_reference_data(con, folder)
