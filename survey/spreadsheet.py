"""Cells that are safe to open in a spreadsheet (no formula injection)."""

from __future__ import annotations

#: A cell starting with one of these is run as a formula by Excel, LibreOffice or Sheets.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> object:
    """The value, with text that a spreadsheet would run as a formula prefixed by a quote.

    Numbers pass unchanged (so -1.5 stays a number); only text is neutralised.
    """
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value
