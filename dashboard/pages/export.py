"""Export: the researcher's download of published aggregates (the same files as
`culture export`)."""

from __future__ import annotations

import flask
from dash import html

from dashboard.access import authorise_page, current_viewer
from dashboard.view import View

TITLE = "Export"
NEEDS_SITE = False
FORMATS = ("csv", "parquet", "sav", "dta")
LEVELS = ("site", "principle", "item", "group")


def layout(view: View) -> html.Div:
    links = [html.Li(html.A(f"{level} level, {fmt.upper()}",
                            href=f"/download/aggregates?level={level}&format={fmt}",
                            id=f"export-{level}-{fmt}"))
             for level in LEVELS for fmt in FORMATS]
    return html.Div([
        html.H1("Export aggregates"),
        html.P(f"Only published aggregates: cells with fewer than {view.k} responses (or "
               "hidden so that they cannot be worked out) have no statistics and a "
               "suppression flag. Each download is a zip with the data, a "
               "datapackage.json describing every field, and labels for SPSS and Stata.",
               className="lead"),
        html.Ul(links, className="downloads"),
    ])


def register(app) -> None:
    app.server.add_url_rule("/download/aggregates", "download_aggregates", download)


def download():
    """A zip of one export, built from the published file; export rights checked here."""
    from pipeline.export import export_zip
    viewer = current_viewer()
    authorise_page(viewer, "/export")
    level = flask.request.args.get("level", "site")
    fmt = flask.request.args.get("format", "csv")
    if level not in LEVELS or fmt not in FORMATS:
        return flask.Response(f"unknown export {level!r} / {fmt!r}; levels: "
                              f"{', '.join(LEVELS)}; formats: {', '.join(FORMATS)}", 400,
                              mimetype="text/plain")
    data = flask.current_app.config["CULTURE_DATA"]
    payload = export_zip(data.path, fmt=fmt, level=level)
    return flask.Response(payload, mimetype="application/zip", headers={
        "Content-Disposition": f'attachment; filename="culture-{level}-{fmt}.zip"'})
