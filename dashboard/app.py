"""The dashboard: `create_app(settings)` builds a Flask server with a Dash app on it.

Nothing expensive happens at import or in the factory: the published file is opened
on the first request that needs it. Sign-in is plain Flask (a form, a signed session
cookie that is HttpOnly and SameSite=Strict); every other route, Dash's callback
endpoint included, needs a signed-in account, and every callback checks the viewer's
right to the site and page it was asked for (`dashboard.access`).

The pages live in `dashboard.pages`, one module each with a `layout(view)` and, where
it has controls of its own, `register(app)`. The shell routes on the URL:
``/benchmark?site=A&wave=2026&measure=psysafety`` is one view, so views can be
bookmarked and shared, and a URL for a site one may not see is refused on the server.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import parse_qs, urlencode

import dash
import flask
from dash import Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate

from dashboard import login
from dashboard.access import (AccessDenied, NotSignedIn, PAGE_ROLES, authorise_page,
                              authorise_site, current_viewer)
from dashboard.accounts import AccountBook, LoginThrottle
from dashboard.components import refused
from dashboard.data import PublishedData
from dashboard.pages import PAGES
from dashboard.view import View
from survey.settings import Settings

ASSETS = Path(__file__).parent / "assets"
#: Routes reachable without signing in.
OPEN_PATHS = ("/login", "/logout", "/assets/", "/_favicon.ico")


def create_app(settings: Settings, secret_key: bytes | None = None,
               throttle: LoginThrottle | None = None) -> dash.Dash:
    """A Dash app serving the published layer of `settings` to signed-in accounts."""
    server = flask.Flask(__name__)
    server.config.update(
        SECRET_KEY=secret_key or secrets.token_bytes(32),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_NAME="culture_session",
        CULTURE_DATA=PublishedData(settings.published_path),
        CULTURE_ACCOUNTS=AccountBook(settings.accounts_path),
        CULTURE_THROTTLE=throttle or LoginThrottle(),
        MAX_CONTENT_LENGTH=1024 * 1024,
    )
    login.register(server)
    server.before_request(_require_sign_in)
    server.register_error_handler(AccessDenied, lambda e: (str(e), 403))
    server.register_error_handler(NotSignedIn, lambda e: (str(e), 401))

    app = dash.Dash(__name__, server=server, title="Culture of support",
                    assets_folder=str(ASSETS), suppress_callback_exceptions=True,
                    update_title=None, serve_locally=True,
                    meta_tags=[{"name": "viewport",
                                "content": "width=device-width, initial-scale=1"}])
    app.layout = shell
    app.callback(Output("page", "children"), Output("nav", "children"),
                 Input("url", "pathname"), Input("url", "search"))(render_page)
    app.callback(Output("url", "search"), Input("site-select", "value"),
                 Input("wave-select", "value"), State("url", "search"),
                 prevent_initial_call=True)(navigate)
    for page in PAGES.values():
        if hasattr(page, "register"):
            page.register(app)
    return app


def _require_sign_in():
    path = flask.request.path
    if path.startswith(OPEN_PATHS):
        return None
    try:
        current_viewer()
    except NotSignedIn:
        if flask.request.method == "GET" and not path.startswith("/_dash"):
            return flask.redirect("/login?" + urlencode({"next": flask.request.full_path}))
        return ("sign in first", 401)
    return None


def shell() -> html.Div:
    """The frame around every page: header, navigation, the page."""
    return html.Div([
        dcc.Location(id="url", refresh=False),
        html.A("Skip to content", href="#page", className="skip-link"),
        html.Header([
            html.Div("Culture of support for doctors", className="brand"),
            html.Nav(id="nav", **{"aria-label": "Pages"}),
            html.A("Sign out", href="/logout", className="sign-out"),
        ], className="top"),
        html.Main(id="page", tabIndex="-1"),
        html.Footer("Results are aggregates of anonymous answers; groups of fewer than the "
                    "minimum size are never shown.", className="foot"),
    ])


def parse_query(search: str | None) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs((search or "").lstrip("?")).items()}


def view_from_request(path: str, search: str | None, needs_site: bool | str) -> View:
    """The authorised view for a page request; AccessDenied if any part is not allowed."""
    viewer = current_viewer()
    authorise_page(viewer, path)
    data: PublishedData = flask.current_app.config["CULTURE_DATA"]
    query = parse_query(search)
    waves = data.waves()
    wave = query.get("wave")
    if wave is None:
        wave = waves[-1]
    elif not wave.isdigit() or int(wave) not in waves:
        raise AccessDenied(f"wave {wave!r} has no published results; published waves: "
                           f"{', '.join(map(str, waves))}")
    site = None
    if needs_site == "unless researcher":
        needs_site = viewer.role != "researcher"
    if needs_site:
        site = authorise_site(viewer, query.get("site"), list(data.sites()["site_code"]))
    return View(viewer=viewer, data=data, path=path, site=site, wave=int(wave), query=query,
                secret=flask.current_app.config["SECRET_KEY"])


def render_page(pathname: str | None, search: str | None):
    """Router callback: the page for the URL, or a refusal; and the navigation."""
    viewer = current_viewer()
    path = pathname if pathname in PAGES else "/"
    if path == "/" and not viewer.may_open_page("/"):
        path = next(p for p, roles in PAGE_ROLES.items() if viewer.role in roles)
    page = PAGES[path]
    nav = [dcc.Link(PAGES[p].TITLE, href=p + _carry(search),
                    className="nav-link active" if p == path else "nav-link",
                    title=f"{PAGES[p].TITLE} (current page)" if p == path else PAGES[p].TITLE)
           for p in PAGES if viewer.may_open_page(p)]
    try:
        view = view_from_request(path, search, page.NEEDS_SITE)
    except AccessDenied as denied:
        return refused(str(denied)), nav
    return page.layout(view), nav


def _carry(search: str | None) -> str:
    """Keep the chosen site and wave when moving between pages."""
    query = {k: v for k, v in parse_query(search).items() if k in ("site", "wave")}
    return "?" + urlencode(query) if query else ""


def navigate(site: str | None, wave: int | None, search: str | None) -> str:
    """Selector change -> URL (the router then renders, and authorises, the new view)."""
    query = parse_query(search)
    if site:
        query["site"] = site
    if wave:
        query["wave"] = str(wave)
    new = "?" + urlencode(query)
    if new == (search or ""):
        raise PreventUpdate
    return new
