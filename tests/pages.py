"""Reading what a dashboard page rendered: its figures and its tables, from the component
tree a callback returns (Dash components or their JSON)."""

from __future__ import annotations

import html
import json
import re
from contextlib import contextmanager

import flask
import pandas as pd
import plotly.utils


@contextmanager
def signed_in(app, username: str):
    """A callback's request context for `app`, signed in as `username` (an account the
    app's book holds), so a page's layout or callback can be called as a function."""
    with app.server.test_request_context("/_dash-update-component", method="POST"):
        book = app.server.config["CULTURE_ACCOUNTS"]
        flask.session["sid"] = book.open_session(book.get(username))
        yield


def as_text(component) -> str:
    """The rendered tree as JSON, with Markdown escapes dropped (so names match)."""
    return json.dumps(component, cls=plotly.utils.PlotlyJSONEncoder).replace("\\\\", "")


def _tree(component) -> object:
    """The component tree as plain JSON data (components, figures and frames encoded)."""
    return json.loads(json.dumps(component, cls=plotly.utils.PlotlyJSONEncoder))


def _walk(node, visit) -> None:
    if isinstance(node, dict):
        visit(node)
        for value in node.values():
            _walk(value, visit)
    elif isinstance(node, list):
        for value in node:
            _walk(value, visit)


def figures(component) -> list[dict]:
    """Every figure in a rendered page, in page order."""
    found = []
    _walk(_tree(component), lambda node: found.append(node["props"]["figure"])
          if "figure" in node.get("props", {}) else None)
    return found


def markdown_tables(component) -> dict[str, pd.DataFrame]:
    """Every table on the page (rendered as Markdown), by the caption above it."""
    found, caption = {}, [None]

    def visit(node):
        props = node.get("props", {})
        if node.get("type") == "P" and props.get("className") == "table-caption":
            caption[0] = props.get("children")
        text = props.get("children")
        if node.get("type") == "Markdown" and isinstance(text, str) and text.startswith("|"):
            lines = [line.strip("| ").split(" | ") for line in text.splitlines()]
            rows = [[html.unescape(re.sub(r"\\(.)", r"\1", cell)) for cell in line]
                    for line in lines]   # Markdown's escapes, then the entities for <, >, &
            found[caption[0]] = pd.DataFrame(rows[2:], columns=rows[0])

    _walk(_tree(component), visit)
    return found
