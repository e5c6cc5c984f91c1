"""The action plan as a file for the board: CSV or XLSX, written or as bytes to download.

Free text is the users' own, and a cell that begins with = + - @ would run as a formula
when the file is opened in a spreadsheet; such cells get a leading apostrophe (OWASP's
advice for CSV injection), which the spreadsheet shows as plain text.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from plans.store import PlanError

#: Columns of the board's file, in order, with their headings.
BOARD_COLUMNS = {"id": "id", "site_code": "site_code", "principle": "principle",
                 "what": "what", "owner_role": "owner_role", "start": "start",
                 "review": "review", "status": "status", "note": "note",
                 "updated_at": "updated_at"}
FORMATS = ("csv", "xlsx")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def board_table(actions: pd.DataFrame) -> pd.DataFrame:
    """`ActionBook.list` output as the board's table: its columns, text made inert."""
    table = actions[list(BOARD_COLUMNS)].rename(columns=BOARD_COLUMNS).copy()
    for column in ("what", "owner_role", "note"):
        table[column] = [("'" + v) if isinstance(v, str) and v.startswith(_FORMULA_START)
                         else v for v in table[column]]
    return table


def plan_bytes(actions: pd.DataFrame, fmt: str) -> bytes:
    """The board's file in `fmt` (csv or xlsx) as bytes."""
    table = board_table(actions)
    if fmt == "csv":
        return table.to_csv(index=False).encode("utf-8")
    if fmt == "xlsx":
        buffer = io.BytesIO()
        with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
            table.to_excel(writer, index=False, sheet_name="Action plan")
        return buffer.getvalue()
    raise PlanError(f"format {fmt!r} is not known; use one of {', '.join(FORMATS)}")


def write_plan(actions: pd.DataFrame, path: Path | str) -> Path:
    """Write the board's file; the format follows the name's ending (.csv or .xlsx)."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise PlanError(f"{path.name}: name the file .csv or .xlsx")
    path.write_bytes(plan_bytes(actions, fmt))
    return path
