"""Read access to the published layer, the only thing exports and reports may open.

Everything downstream of publishing goes through `open_published`, which opens
`Settings.published_path` read-only (so it never takes the store's write lock and
cannot change what was verified) and refuses a missing or foreign file with a message
that says how to make one.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from published.layout import PUBLISHED_LAYOUT
from survey.errors import CultureError


class PublishedLayerError(CultureError):
    """The published layer is missing, unreadable or of a layout this program does not read."""


def open_published(path: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the published file at `path`, checked for its layout."""
    path = Path(path)
    if not path.exists():
        raise PublishedLayerError(
            f"no published layer at {path}; run `culture run` (or `culture demo`) first, or "
            f"pass --db with the store whose <store>.published.duckdb you want")
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise PublishedLayerError(f"{path} cannot be opened as a published layer: {exc}") from None
    try:
        found = con.execute("select value from meta where key = 'layout'").fetchall()
        layout = found[0] if found else None
    except duckdb.Error:
        layout = None
    if layout is None or layout[0] != PUBLISHED_LAYOUT:
        con.close()
        raise PublishedLayerError(
            f"{path} is not a published layer of layout {PUBLISHED_LAYOUT} (found "
            f"{layout[0] if layout else 'none'}); publish again with `culture run`")
    return con


def published_meta(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """The published layer's meta table (min_group_size, published_on, ...) as a dict."""
    return dict(con.execute("select key, value from meta").fetchall())


def min_group_size(con: duckdb.DuckDBPyConnection) -> int:
    """The reporting threshold k the layer was suppressed with."""
    return int(published_meta(con)["min_group_size"])
