"""Cells that are safe to open in a spreadsheet (no formula injection, OWASP "CSV injection").

One guard, in two forms: `safe_cell` for rows Python writes, `safe_cell_sql` for CSV
files DuckDB writes itself (the researcher exports), so both neutralise the same text.
"""

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


def safe_cell_sql(expression: str) -> str:
    """A DuckDB expression giving the text `expression` as `safe_cell` would give it.

    `expression` is SQL (a column or macro parameter name), never a value: the
    prefixes are written as chr() codes, so no quoting of tab or quote is needed.
    """
    starts = ", ".join(f"chr({ord(c)})" for c in FORMULA_PREFIXES)
    return (f"case when left({expression}, 1) in ({starts}) then chr(39) || {expression} "
            f"else {expression} end")
