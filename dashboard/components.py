"""Small layout pieces shared by pages: a chart with its table view, notices, numbers."""

from __future__ import annotations

import math
import numbers

import numpy as np

import pandas as pd
import plotly.graph_objects as go
from dash import dcc, html


def fmt(value, digits: int = 2, suffix: str = "") -> str:
    """A number for a table cell; blank-looking values are spelled out, never left empty."""
    if value is None or value is pd.NA or (isinstance(value, numbers.Real)
                                           and math.isnan(value)):
        return "not shown"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral) or (digits == 0 and isinstance(value, numbers.Real)):
        return f"{int(value):,}{suffix}"
    if isinstance(value, numbers.Real):
        return f"{value:,.{digits}f}{suffix}"
    return f"{value}{suffix}"


def table(frame: pd.DataFrame, columns: dict[str, str], caption: str,
          digits: dict[str, int] | None = None) -> html.Table:
    """An accessible HTML table (caption, column headers with scope) of `columns`."""
    digits = digits or {}
    head = html.Thead(html.Tr([html.Th(label, scope="col") for label in columns.values()]))
    body = html.Tbody([
        html.Tr([html.Td(fmt(row[c], digits.get(c, 2)) if not isinstance(row[c], str)
                         else row[c]) for c in columns])
        for _, row in frame.iterrows()])
    return html.Table([html.Caption(caption), head, body], className="data-table")


def chart(graph_id: str, figure: go.Figure, alternative: html.Table, summary: str) -> html.Figure:
    """A graph, a one-sentence text alternative, and the same numbers as a table."""
    return html.Figure([
        dcc.Graph(id=graph_id, figure=figure, config={"displaylogo": False,
                                                      "responsive": True},
                  className="graph"),
        html.Figcaption(summary, className="summary"),
        html.Details([html.Summary("Table view"), alternative], className="table-view"),
    ], className="chart")


def notice(text: str, kind: str = "info") -> html.P:
    return html.P(text, className=f"notice notice-{kind}", role="status")


def refused(text: str) -> html.Div:
    return html.Div([html.H2("Not available"), html.P(text)], className="refused",
                    role="alert")


def key_figure(label: str, value: str, detail: str = "") -> html.Div:
    return html.Div([html.Div(label, className="kf-label"),
                     html.Div(value, className="kf-value"),
                     html.Div(detail, className="kf-detail")], className="key-figure")
