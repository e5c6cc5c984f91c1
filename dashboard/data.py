"""The dashboard's handle on the published layer: one `PublishedLayer` for the app's life.

The app keeps one (`CULTURE_DATA` in its config) for every request: the layer reads its
reference tables once per published file, runs each question on its own cursor, and
reopens when a run renames a new file into place (`published.reader`). The dashboard
asks it nothing else, so it can never reach the respondent store.
"""

from __future__ import annotations

from published.reader import PublishedLayer, PublishedLayerError

#: What the dashboard's modules call the layer (and its error).
PublishedData = PublishedLayer
PublishedDataError = PublishedLayerError

__all__ = ["PublishedData", "PublishedDataError"]
