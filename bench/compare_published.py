"""Compare every table of two published DuckDB files: same tables, rows, columns and values.

Used to check that a change meant only to make the pipeline faster publishes the same
numbers. Rows are sorted by their non-float columns (then by the floats) before the
comparison, so row order does not matter; floats must agree within a relative
tolerance (reordered sums differ in the last bits), everything else exactly.

    .venv/bin/python bench/compare_published.py BEFORE.duckdb AFTER.duckdb [--rtol 1e-9]
"""

from __future__ import annotations

import argparse
import sys

import duckdb
import numpy as np
import pandas as pd


def _tables(path: str) -> tuple[dict[str, pd.DataFrame], dict[str, list]]:
    with duckdb.connect(path, read_only=True) as con:
        names = [r[0] for r in con.execute(
            "select table_name from information_schema.tables order by 1").fetchall()]
        types = {name: con.execute(f'describe "{name}"').fetchall() for name in names}
        return {name: con.execute(f'select * from "{name}"').df() for name in names}, types


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    floats = [c for c in frame.columns if pd.api.types.is_float_dtype(frame[c])]
    keys = [c for c in frame.columns if c not in floats]
    return frame.sort_values(keys + floats, kind="mergesort", na_position="last").reset_index(
        drop=True)


def compare(before: str, after: str, rtol: float = 1e-9) -> list[str]:
    """Differences found, one line each (empty when the files publish the same values)."""
    problems = []
    (old, old_types), (new, new_types) = _tables(before), _tables(after)
    if set(old) != set(new):
        problems.append(f"tables differ: only before {sorted(set(old) - set(new))}, "
                        f"only after {sorted(set(new) - set(old))}")
    for name in sorted(set(old) & set(new)):
        a, b = old[name], new[name]
        if old_types[name] != new_types[name]:
            problems.append(f"{name}: column types {old_types[name]} != {new_types[name]}")
        if list(a.columns) != list(b.columns):
            problems.append(f"{name}: columns {list(a.columns)} != {list(b.columns)}")
            continue
        if len(a) != len(b):
            problems.append(f"{name}: {len(a)} rows != {len(b)} rows")
            continue
        a, b = _sorted(a), _sorted(b)
        worst = 0.0
        for column in a.columns:
            x, y = a[column], b[column]
            if str(x.dtype) != str(y.dtype):
                problems.append(f"{name}.{column}: dtype {x.dtype} != {y.dtype}")
            if pd.api.types.is_float_dtype(x):
                x, y = x.to_numpy(float), y.to_numpy(float)
                same_nan = np.isnan(x) == np.isnan(y)
                close = np.isclose(x, y, rtol=rtol, atol=0, equal_nan=True)
                if not (same_nan.all() and close.all()):
                    bad = int((~close).sum())
                    problems.append(f"{name}.{column}: {bad} values differ beyond rtol {rtol}")
                with np.errstate(divide="ignore", invalid="ignore"):
                    rel = np.abs(x - y) / np.maximum(np.abs(x), np.abs(y))
                rel = rel[np.isfinite(rel)]
                if len(rel):
                    worst = max(worst, float(rel.max()))
            elif not x.reset_index(drop=True).equals(y.reset_index(drop=True)):
                problems.append(f"{name}.{column}: values differ")
        print(f"{name:16s} {len(a):>9,} rows  largest relative float difference {worst:.1e}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--rtol", type=float, default=1e-9)
    args = parser.parse_args()
    problems = compare(args.before, args.after, args.rtol)
    for line in problems:
        print("DIFFERENT:", line)
    print("same" if not problems else f"{len(problems)} differences")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
