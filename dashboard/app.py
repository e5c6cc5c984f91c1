"""The dashboard: `create_app(settings)` builds a Flask server with a Dash app on it.

Nothing expensive happens at import or in the factory: the published file is opened
on the first request that needs it. Sign-in is plain Flask (a form, a signed session
cookie that is HttpOnly and SameSite=Strict, Secure when `Settings.secure_cookies`,
holding only a server-side session id: `dashboard.sessions`); every other route, Dash's
callback endpoint included, needs a live session, and every callback checks the viewer's
right to the site and page it was asked for (`dashboard.access`).

Refusals are HTTP 403 however they are asked for: a typed URL gets a plain refusal page
(before any of the app loads), a callback for a view one may not open gets 403 from the
router or the page's own callback. A callback request that is not a well-formed Dash
request (not JSON, keys missing, values of the wrong type, an unknown callback) gets 400
before it reaches any callback. Every response carries a Content-Security-Policy (scripts
from this server plus Dash's one inline renderer script, by hash; see `CSP`),
X-Frame-Options DENY, Referrer-Policy no-referrer and X-Content-Type-Options nosniff.

The pages live in `dashboard.pages`, one module each with a `layout(view)` and, where
it has controls of its own, `register(app)`. The shell routes on the URL:
``/benchmark?site=A&wave=2026&measure=psysafety`` is one view, so views can be
bookmarked and shared, and a URL for a site one may not see is refused on the server.

Under a path prefix (`Settings.url_prefix`, for a reverse proxy that passes the path on
unchanged) the app is mounted at the prefix and everything outside it is 404. Inside,
the code keeps app-relative paths ("/login", "/benchmark"): Flask sees the prefix as the
script root, and the prefix is added where a path leaves for the browser: redirects
(`_prefix_redirect`), the hand-written pages, Dash's config and the pages' links
(`_prefix_links`).
"""

from __future__ import annotations

import secrets
from html import escape
from pathlib import Path
from urllib.parse import urlencode

import dash
import flask
from dash import Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate
from werkzeug.exceptions import BadRequest, NotFound
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.middleware.proxy_fix import ProxyFix

from dashboard import login
from dashboard.access import AccessDenied, NotSignedIn, PAGE_ROLES, current_viewer
from dashboard.accounts import AccountBook, LoginThrottle
from dashboard.data import PublishedData
from dashboard.pages import PAGES
from dashboard.view import parse_query, view_from_request
from survey.settings import Settings

ASSETS = Path(__file__).parent / "assets"
#: Routes reachable without signing in.
OPEN_PATHS = ("/login", "/logout", "/assets/", "/_favicon.ico")
CALLBACK_PATH = "/_dash-update-component"

#: The narrowest policy under which every page works in Chromium with no violation:
#: scripts only from this server plus Dash's inline renderer script (its hash is added
#: per app); plotly sets style attributes and injects <style> elements at run time, so
#: styles need 'unsafe-inline' (styles cannot run code; scripts stay locked). Plotly's
#: mode bar draws data: images. No framing, no plugins, forms post here only.
CSP = ("default-src 'none'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; font-src 'self'; connect-src 'self'; manifest-src 'self'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'")


#: Dash's page around the app, with its language declared (html-has-lang: a screen reader
#: picks its voice from it) and its scripts outside the <footer> Dash puts them in (a second
#: contentinfo landmark beside the shell's own footer).
INDEX = """<!DOCTYPE html>
<html lang="en-GB">
    <head>
        {%metas%}
        <title>{%title%}</title>
        {%favicon%}
        {%css%}
    </head>
    <body>
        {%app_entry%}
        {%config%}
        {%scripts%}
        {%renderer%}
    </body>
</html>"""


def create_app(settings: Settings, secret_key: bytes | None = None,
               throttle: LoginThrottle | None = None) -> dash.Dash:
    """A Dash app serving the published layer of `settings` to signed-in accounts."""
    server = flask.Flask(__name__)
    prefix = settings.url_prefix
    if prefix:
        # Mounted in the app itself, not only by the WSGI server, so that every server
        # (and the test client) sees the same routes: the prefix becomes SCRIPT_NAME.
        server.wsgi_app = DispatcherMiddleware(NotFound(), {prefix: server.wsgi_app})
    if settings.trust_proxy:
        # One proxy: its X-Forwarded-For entry is the client (throttling keys on it) and
        # X-Forwarded-Proto says whether the browser used HTTPS.
        server.wsgi_app = ProxyFix(server.wsgi_app, x_for=1, x_proto=1)
    server.config.update(
        SECRET_KEY=secret_key or secrets.token_bytes(32),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        SESSION_COOKIE_NAME="culture_session",
        # Under a prefix the cookie goes to the dashboard only, not the proxy's other apps.
        SESSION_COOKIE_PATH=prefix or "/",
        CULTURE_DATA=PublishedData(settings.published_path),
        CULTURE_ACCOUNTS=AccountBook(settings.accounts_path),
        CULTURE_PLANS=settings.plans_path,
        CULTURE_THROTTLE=throttle or LoginThrottle(),
        MAX_CONTENT_LENGTH=1024 * 1024,
    )
    login.register(server)
    server.before_request(_require_sign_in)
    server.register_error_handler(AccessDenied, _refused_response)
    server.register_error_handler(NotSignedIn, lambda e: (str(e), 401))

    app = dash.Dash(__name__, server=server, title="Culture of support",
                    assets_folder=str(ASSETS), suppress_callback_exceptions=True,
                    update_title=None, serve_locally=True, index_string=INDEX,
                    # Flask's routes stay at "/" inside the mount; the browser asks
                    # for the layout, callbacks and assets under the prefix.
                    routes_pathname_prefix="/", requests_pathname_prefix=prefix + "/",
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
    # After every callback is registered: the hashes cover Dash's inline scripts.
    policy = CSP.format(hashes=" ".join(app.csp_hashes()))
    server.before_request(lambda: _check_callback_request(app))
    server.before_request(_refuse_page_requests)
    server.after_request(lambda response: _security_headers(response, policy))
    server.after_request(_prefix_redirect)
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


def _prefix_redirect(response: flask.Response) -> flask.Response:
    """Redirects are written app-relative ("/login", the sign-in's next); under a prefix
    the browser needs the mount point in front. Werkzeug leaves Location as written."""
    root = flask.request.script_root
    location = response.headers.get("Location")
    if root and location and location.startswith("/") and not location.startswith("//"):
        response.headers["Location"] = root + location
    return response


def _prefix_links(component, root: str):
    """Pages link app-relative ("/benchmark?...", "/download/..."); under a prefix the
    browser needs the mount point in front of every such href."""
    if root:
        for node in [component, *component._traverse()]:
            href = getattr(node, "href", None)
            if isinstance(href, str) and href.startswith("/") and not href.startswith("//"):
                node.href = root + href
    return component


def _security_headers(response: flask.Response, policy: str) -> flask.Response:
    response.headers["Content-Security-Policy"] = policy
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


_REFUSED_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Not available - Culture of support</title>
<link rel="stylesheet" href="{root}/assets/style.css"></head>
<body><header class="top"><div class="brand">Culture of support for doctors</div>
<a href="{root}/logout" class="sign-out">Sign out</a></header>
<main id="page"><div class="refused" role="alert"><h2>Not available</h2><p>{reason}</p>
<p><a href="{root}/">Go to the results you can see</a></p></div></main></body></html>"""


def _refused_response(denied: AccessDenied) -> flask.Response:
    """403: a readable page for a browser's page request, plain text for a callback."""
    if flask.request.method == "GET" and not flask.request.path.startswith("/_dash"):
        return flask.Response(_REFUSED_PAGE.format(reason=escape(str(denied)),
                                                   root=escape(flask.request.script_root)),
                              403, mimetype="text/html")
    return flask.Response(str(denied), 403, mimetype="text/plain")


def _refuse_page_requests() -> None:
    """A typed or bookmarked URL for a view the viewer may not open: 403 before the app
    loads (the router callback would refuse it too, but only after a 200 page)."""
    request = flask.request
    if (request.method != "GET" or request.path.startswith(OPEN_PATHS)
            or request.path.startswith(("/_dash", "/_reload", "/download/"))):
        return
    viewer = current_viewer()
    path = page_path(viewer, request.path)
    view_from_request(path, request.query_string.decode("utf-8", "replace"),
                      PAGES[path].NEEDS_SITE)


#: Property types the callbacks of this app accept from a client, by property name;
#: any other property's value must at least be JSON (Dash has parsed it).
_VALUE_TYPES = {"pathname": (str, type(None)), "search": (str, type(None)),
                "value": (str, int, float, type(None))}


def _check_callback_request(app: dash.Dash) -> None:
    """400 for a callback request Dash would fail on with a 500: a body that is not a
    JSON object, a callback that does not exist, inputs missing or of the wrong type."""
    request = flask.request
    if request.path != CALLBACK_PATH or request.method != "POST":
        return
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("a callback request is a JSON object")
    callback = app.callback_map.get(body.get("output")) if isinstance(
        body.get("output"), str) else None
    if callback is None:
        raise BadRequest("no such callback output")
    for key in ("inputs", "state"):
        sent = body.get(key, [])
        declared = callback["inputs" if key == "inputs" else "state"]
        if not isinstance(sent, list) or len(sent) != len(declared):
            raise BadRequest(f"{key}: expected a list of {len(declared)}")
        for item, expected in zip(sent, declared):
            if expected["id"].startswith("{"):
                # Pattern-matching inputs arrive as lists or objects; Dash matches them.
                if not isinstance(item, (list, dict)):
                    raise BadRequest(f"{key}: expected a list or an object")
                continue
            if (not isinstance(item, dict) or item.get("id") != expected["id"]
                    or item.get("property") != expected["property"]):
                raise BadRequest(f"{key}: expected {expected['id']}.{expected['property']}")
            types = _VALUE_TYPES.get(expected["property"])
            value = item.get("value")
            if types and (isinstance(value, bool) or not isinstance(value, types)):
                raise BadRequest(f"{expected['id']}.{expected['property']}: wrong type")
    outputs = body.get("outputs")
    outputs = outputs if isinstance(outputs, list) else [outputs]
    if not all(isinstance(o, dict) and isinstance(o.get("id"), str)
               and isinstance(o.get("property"), str) for o in outputs):
        raise BadRequest("outputs: expected {id, property} objects")
    changed = body.get("changedPropIds", [])
    if not isinstance(changed, list) or not all(isinstance(c, str) for c in changed):
        raise BadRequest("changedPropIds: expected a list of strings")


def shell() -> html.Div:
    """The frame around every page: header, navigation, the page."""
    return html.Div([
        dcc.Location(id="url", refresh=False),
        html.A("Skip to content", href="#page", className="skip-link"),
        html.Header([
            html.Div("Culture of support for doctors", className="brand"),
            html.Nav(id="nav", **{"aria-label": "Pages"}),
            html.A("Sign out", href=flask.request.script_root + "/logout",
                   className="sign-out"),
        ], className="top"),
        html.Main(id="page", tabIndex="-1"),
        html.Footer("Results are aggregates of anonymous answers; groups of fewer than the "
                    "minimum size are never shown.", className="foot"),
    ])


def page_path(viewer, pathname: str | None) -> str:
    """The page a URL path shows: unknown paths show the first page the role may open."""
    path = pathname if pathname in PAGES else "/"
    if path == "/" and not viewer.may_open_page("/"):
        path = next(p for p, roles in PAGE_ROLES.items() if viewer.role in roles)
    return path


def render_page(pathname: str | None, search: str | None):
    """Router callback: the page for the URL and the navigation; AccessDenied (HTTP 403)
    for a view the viewer may not open."""
    viewer = current_viewer()
    root = flask.request.script_root
    if root and pathname and (pathname == root or pathname.startswith(root + "/")):
        # The browser's path includes the mount point; the pages are known without it.
        pathname = pathname[len(root):] or "/"
    path = page_path(viewer, pathname)
    page = PAGES[path]
    nav = [dcc.Link(PAGES[p].TITLE, href=p + _carry(search),
                    className="nav-link active" if p == path else "nav-link",
                    title=f"{PAGES[p].TITLE} (current page)" if p == path else PAGES[p].TITLE)
           for p in PAGES if viewer.may_open_page(p)]
    view = view_from_request(path, search, page.NEEDS_SITE)
    return _prefix_links(page.layout(view), root), [_prefix_links(link, root) for link in nav]


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
