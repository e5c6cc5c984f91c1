"""Moving tables between DuckDB and pandas through Arrow.

DuckDB's `.df()` builds pandas string columns value by value, and registering a pandas
frame makes DuckDB scan it the same way: at the published layer's 800k cells that is
seconds. Arrow hands both sides column buffers instead (about ten times faster here),
and yields the same pandas dtypes and the same DuckDB column types as the direct
route, so what is read or written does not change.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pandas as pd
import pyarrow as pa


def query_frame(con: duckdb.DuckDBPyConnection, sql: str,
                params: Sequence | None = None) -> pd.DataFrame:
    """The result of `sql` (values bound from `params`) as a pandas frame."""
    return con.sql(sql, params=params).to_arrow_table().to_pandas()


def write_table(con: duckdb.DuckDBPyConnection, name: str,
                frame: pd.DataFrame | pa.Table) -> None:
    """Create (or replace) table `name` holding `frame`'s rows (a pandas frame, or the
    Arrow table `pa.Table.from_pandas` makes of one)."""
    table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(
        frame, preserve_index=False)
    con.register("frame_to_write", table)
    try:
        con.execute(f'create or replace table "{name}" as select * from frame_to_write')
    finally:
        con.unregister("frame_to_write")


def with_columns(frame: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """`frame` with every one of `columns` ({name: pandas dtype}), added empty where missing.

    A published table must keep its columns, and their types, when a run has nothing
    to put in it (one site has no funnel, a small site no site-level reliability):
    readers query every table the same way, whatever the data.
    """
    missing = {name: pd.Series(pd.NA, index=frame.index, dtype=dtype)
               for name, dtype in columns.items() if name not in frame.columns}
    return frame.assign(**missing) if missing else frame
