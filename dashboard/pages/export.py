"""Export: the researcher's download of published aggregates (the same files as
`culture export --pseudonymise`).

A researcher's download is always pseudonymised, on the server, with the deployment's
key (the pseudonyms on their pages) and with site type and region coarsened; the
request chooses only the level and the format, and a request naming anything else is
refused. An admin's download names sites, as their pages do.
"""

from __future__ import annotations

import flask
from dash import html

from dashboard.access import authorise_page, current_viewer
from dashboard.view import View, deployment_key, export_min_sites
from outputs.export import AGGREGATE_FORMATS, AGGREGATE_LEVELS

TITLE = "Export"
NEEDS_SITE = False


def layout(view: View) -> html.Div:
    sites = ("Sites are shown by the pseudonyms you see on every page; site names are left "
             "out, and site type and region are shown only as far as each combination "
             f"covers {export_min_sites()} or more sites (coarsening.txt says what was done)."
             if view.viewer.role == "researcher" else "Sites are named (admin download).")
    links = [html.Li(html.A(f"{level} level, {fmt.upper()}",
                            href=f"/download/aggregates?level={level}&format={fmt}",
                            id=f"export-{level}-{fmt}"))
             for level in AGGREGATE_LEVELS for fmt in AGGREGATE_FORMATS]
    return html.Div([
        html.H1("Export aggregates"),
        html.P(f"Only published aggregates: cells with fewer than {view.k} responses (or "
               "hidden so that they cannot be worked out) have no statistics and a "
               "suppression flag. Each download is a zip with the data, a "
               "datapackage.json describing every field, and labels for SPSS and Stata.",
               className="lead"),
        html.P(sites),
        html.Ul(links, className="downloads"),
    ])


def register(app) -> None:
    app.server.add_url_rule("/download/aggregates", "download_aggregates", download)


def download():
    """A zip of one export, built from the published file; export rights checked here."""
    from outputs.export import export_zip
    viewer = current_viewer()
    authorise_page(viewer, "/export")
    # Only the level and the format are the researcher's to choose: a key or any other
    # parameter is refused rather than ignored, so nobody believes they chose one.
    unknown = sorted(set(flask.request.args) - {"level", "format"})
    if unknown:
        return flask.Response(f"unknown parameter(s) {', '.join(unknown)}: a download takes "
                              "only level and format; researchers' downloads are always "
                              "pseudonymised with the deployment's key", 400,
                              mimetype="text/plain")
    level = flask.request.args.get("level", "site")
    fmt = flask.request.args.get("format", "csv")
    if level not in AGGREGATE_LEVELS or fmt not in AGGREGATE_FORMATS:
        return flask.Response(f"unknown export {level!r} / {fmt!r}; levels: "
                              f"{', '.join(AGGREGATE_LEVELS)}; formats: {', '.join(AGGREGATE_FORMATS)}", 400,
                              mimetype="text/plain")
    data = flask.current_app.config["CULTURE_DATA"]
    key = None if viewer.role == "admin" else deployment_key(data)
    payload = export_zip(data.path, fmt=fmt, level=level, pseudonym_key=key,
                         min_sites=export_min_sites())
    return flask.Response(payload, mimetype="application/zip", headers={
        "Content-Disposition": f'attachment; filename="culture-{level}-{fmt}.zip"'})
