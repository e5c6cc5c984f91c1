"""Small layout pieces shared by pages: a chart with its table view, notices, numbers."""

from __future__ import annotations

import math
import numbers

import numpy as np

import pandas as pd
from dash import dcc, html

from dashboard.figures import DEFINITIONS


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
          digits: dict[str, int] | None = None) -> html.Div:
    """The rows of `columns` as a table (rendered from GitHub-flavoured Markdown).

    One Markdown component instead of a component per cell: a 300-site table as Dash
    `html.Td`s was 20,000 components and most of a page's server time. Cell text is
    escaped, so a site name cannot inject markup or links.
    """
    digits = digits or {}
    lines = ["| " + " | ".join(_escape(label) for label in columns.values()) + " |",
             "|" + "---|" * len(columns)]
    values = [frame[c].tolist() if c in frame else [None] * len(frame) for c in columns]
    places = [digits.get(c, 2) for c in columns]
    for row in zip(*values):
        lines.append("| " + " | ".join(
            _escape(v if isinstance(v, str) else fmt(v, d)) for v, d in zip(row, places))
            + " |")
    return html.Div([html.P(caption, className="table-caption"),
                     dcc.Markdown("\n".join(lines), className="data-table")],
                    className="table-wrap")


_MARKDOWN_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_{}[]()<>#+-.!|~"})


def _escape(text: str) -> str:
    return str(text).replace("\n", " ").translate(_MARKDOWN_SPECIAL)


def chart(graph_id: str, figure: dict, alternative: html.Div, summary: str) -> html.Figure:
    """A graph, a one-sentence text alternative, and the same numbers as a table."""
    return html.Figure([
        dcc.Graph(id=graph_id, figure=figure, config={"displaylogo": False,
                                                      "responsive": True},
                  className="graph"),
        html.Figcaption([summary, " ", html.Span(DEFINITIONS, className="definition")],
                        className="summary"),
        html.Details([html.Summary("Table view"), alternative], className="table-view"),
    ], className="chart")


def notice(text: str, kind: str = "info") -> html.P:
    return html.P(text, className=f"notice notice-{kind}", role="status")


def key_figure(label: str, value: str, detail: str = "") -> html.Div:
    return html.Div([html.Div(label, className="kf-label"),
                     html.Div(value, className="kf-value"),
                     html.Div(detail, className="kf-detail")], className="key-figure")
