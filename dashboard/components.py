"""Small layout pieces shared by pages: a chart with its table view, notices, numbers."""

from __future__ import annotations

import base64
import csv
import io
import math
import numbers

import numpy as np

import pandas as pd
from dash import dcc, html

from dashboard.figures import DEFINITIONS, slug


def fmt(value, digits: int = 2, suffix: str = "") -> str:
    """A number for a table cell; blank-looking values are spelled out, never left empty."""
    if value is None or value is pd.NA or (isinstance(value, numbers.Real)
                                           and math.isnan(value)):
        return "not shown"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}{suffix}"
    if digits == 0 and isinstance(value, numbers.Real):
        return f"{round(value):,}{suffix}"      # 43.9% reads 44%, not 43%
    if isinstance(value, numbers.Real):
        return f"{value:,.{digits}f}{suffix}"
    return f"{value}{suffix}"


def table(frame: pd.DataFrame, columns: dict[str, str], caption: str,
          digits: dict[str, int] | None = None, filename: str | None = None) -> html.Div:
    """The rows of `columns` as a table (rendered from GitHub-flavoured Markdown), and the
    same cells, as shown, as a CSV download (a data: link: nothing is fetched again, so
    the file holds exactly what the viewer may see).

    One Markdown component instead of a component per cell: a 300-site table as Dash
    `html.Td`s was 20,000 components and most of a page's server time. Cell text is
    escaped, so a site name cannot inject markup or links, and shows as written.
    """
    digits = digits or {}
    values = [frame[c].tolist() if c in frame else [None] * len(frame) for c in columns]
    places = [digits.get(c, 2) for c in columns]
    cells = [[v if isinstance(v, str) else fmt(v, d) for v, d in zip(row, places)]
             for row in zip(*values)]
    header = list(columns.values())
    lines = ["| " + " | ".join(_escape(label) for label in header) + " |",
             "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_escape(cell) for cell in row) + " |" for row in cells]
    name = (filename or slug(caption)) + ".csv"
    return html.Div([html.P(caption, className="table-caption"),
                     html.A("Download this table (CSV)", href=csv_href([header, *cells]),
                            download=name, className="csv-download"),
                     dcc.Markdown("\n".join(lines), className="data-table")],
                    className="table-wrap")


def csv_href(rows: list[list[str]]) -> str:
    """A data: URL of `rows` as a UTF-8 CSV (with a byte-order mark, so that Excel reads
    accents and dashes right)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    payload = base64.b64encode(("\ufeff" + out.getvalue()).encode("utf-8")).decode("ascii")
    return "data:text/csv;charset=utf-8;base64," + payload


#: The renderer (dcc.Markdown's remark) honours a backslash before these; before "<", ">"
#: and "&" it shows the backslash, so those are written as entities, which it decodes to
#: plain text (raw HTML is never rendered: Markdown's HTML is off).
_MARKDOWN_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_{}[]()#+-.!|~"}
                                  | {"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def _escape(text: str) -> str:
    # "://" as an entity too: GFM turns a bare "https://..." into a link otherwise.
    return (str(text).replace("\n", " ").translate(_MARKDOWN_SPECIAL)
            .replace("://", "&#58;//"))


def chart(graph_id: str, figure: dict, alternative: html.Div, summary: str) -> html.Figure:
    """A graph, a one-sentence text alternative, and the same numbers as a table; the
    table's CSV and the chart's PNG (mode bar's camera, named after the chart's title) to
    download. A figure whose layout.meta.min_width is wider than the screen scrolls
    sideways inside its card rather than widening the page."""
    title = figure.get("layout", {}).get("title", {}).get("text", graph_id)
    config = {"displaylogo": False, "responsive": True,
              "modeBarButtons": [["toImage", "zoom2d", "pan2d", "resetScale2d"]],
              "toImageButtonOptions": {"format": "png", "filename": slug(title), "scale": 2}}
    graph = dcc.Graph(id=graph_id, figure=figure, config=config, className="graph")
    min_width = (figure.get("layout", {}).get("meta") or {}).get("min_width")
    if min_width:
        graph = html.Div([html.P("Wider than this screen: swipe the chart sideways to see "
                                 "every column.", className="scroll-hint"),
                          html.Div(html.Div(graph, style={"minWidth": f"{int(min_width)}px"}),
                                   className="graph-scroll")])
    downloads = [node for node in [alternative, *alternative._traverse()]
                 if getattr(node, "className", None) == "csv-download"]
    saves = [html.P([html.A("Download the numbers (CSV)", href=downloads[0].href,
                            download=downloads[0].download, className="csv-download"),
                     " The chart: the camera button above it saves a PNG."],
                    className="downloads-line")] if downloads else []
    return html.Figure([
        graph,
        html.Figcaption([summary, " ", html.Span(DEFINITIONS, className="definition")],
                        className="summary"),
        *saves,
        html.Details([html.Summary("Table view"), alternative], className="table-view"),
    ], className="chart")


def notice(text: str, kind: str = "info") -> html.P:
    return html.P(text, className=f"notice notice-{kind}", role="status")


def key_figure(label: str, value: str, detail: str = "") -> html.Div:
    return html.Div([html.Div(label, className="kf-label"),
                     html.Div(value, className="kf-value"),
                     html.Div(detail, className="kf-detail")], className="key-figure")
