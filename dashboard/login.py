"""Sign-in and sign-out routes (plain Flask: they must work before any Dash page does).

A sign-in opens a server-side session (`dashboard.sessions`); the signed cookie then
holds its random id and nothing else (before sign-in, the form's CSRF token). Sign-out ends the session on the
server, so a copy of the cookie kept by anyone opens nothing afterwards.

Guessing is slowed by `dashboard.accounts.LoginThrottle`, per account and address with
a per-account ceiling that browsers which signed in before are exempt from; that
exemption is a signed, HttpOnly device cookie (path /login, 90 days) naming the account.

Why not the usual extensions (the developers' guide prefers them to hand-written code):
Flask-Limiter counts requests per key; counting only failures needs its `deduct_when`,
which records after the response, that is after the slow password hash, which is the
check-then-record race this module must not have (concurrent guesses all passing one
check); nor does it know device cookies. Flask-Login keeps the user id in the signed
cookie and loads the user from it: revocation would still need the session table here,
and the 30 lines it would replace are `current_viewer` and the two routes below.
Flask-WTF's CSRF token is the same hidden-field-and-session check as `_form`, for one
form. None of the three is installed; adding them would add code paths, not remove any.
"""

from __future__ import annotations

import hmac
import secrets
from html import escape
from urllib.parse import urlparse

import flask
from itsdangerous import BadSignature, URLSafeTimedSerializer

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in - Culture of support</title>
<link rel="stylesheet" href="{root}/assets/style.css"></head>
<body class="login-page"><main class="login-box">
<h1>Culture of support for doctors</h1>
<p>Sign in to see your organisation's results. Results are anonymous aggregates.</p>
{message}
<form method="post" action="{root}/login">
<input type="hidden" name="csrf" value="{csrf}">
<input type="hidden" name="next" value="{next}">
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" required value="{username}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit" id="sign-in">Sign in</button>
</form></main></body></html>"""


#: A browser that signed in to an account within this many seconds is exempt from that
#: account's ceiling on failures from every address (not from its own address's count).
DEVICE_COOKIE_AGE = 90 * 24 * 60 * 60
DEVICE_COOKIE = "culture_device"


def register(server: flask.Flask) -> None:
    server.add_url_rule("/login", "login", sign_in, methods=["GET", "POST"])
    server.add_url_rule("/logout", "logout", sign_out, methods=["GET", "POST"])


def _devices() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(flask.current_app.secret_key, salt="culture device")


def _is_known_device(username: str) -> bool:
    """Whether this browser holds a device cookie from signing in to `username`."""
    value = flask.request.cookies.get(DEVICE_COOKIE)
    if not value:
        return False
    try:
        return _devices().loads(value, max_age=DEVICE_COOKIE_AGE) == username
    except BadSignature:
        return False


def _form(message: str = "", username: str = "", status: int = 200):
    token = flask.session.setdefault("csrf", secrets.token_urlsafe(24))
    next_path = _safe_next(flask.request.values.get("next"))
    body = _PAGE.format(message=f'<p class="notice notice-error" role="alert">{escape(message)}'
                                f"</p>" if message else "",
                        csrf=token, next=escape(next_path), username=escape(username),
                        root=escape(flask.request.script_root))  # the mount point, if any
    return flask.Response(body, status=status, mimetype="text/html")


def _safe_next(value: str | None) -> str:
    """Only same-site paths: never redirect a signed-in user to another host."""
    if not value:
        return "/"
    parsed = urlparse(value)
    if parsed.scheme or parsed.netloc or not value.startswith("/") or value.startswith("//"):
        return "/"
    return value


def sign_in():
    if flask.request.method == "GET":
        return _form()
    form = flask.request.form
    expected = flask.session.get("csrf", "")
    if not expected or not hmac.compare_digest(form.get("csrf", ""), expected):
        return _form("The form had expired; please sign in again.", status=400)
    username = (form.get("username") or "").strip().lower()
    address = flask.request.remote_addr or ""
    throttle = flask.current_app.config["CULTURE_THROTTLE"]
    # Reserved before the hash: this attempt already counts, so concurrent guesses
    # cannot all pass the same check.
    wait = throttle.reserve(username, address, _is_known_device(username))
    if wait > 0:
        response = _form(f"Too many failed attempts; try again in {int(wait) + 1} seconds.",
                         username, status=429)
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    book = flask.current_app.config["CULTURE_ACCOUNTS"]
    account = book.authenticate(username, form.get("password") or "")
    if account is None:
        return _form("Username or password is not right.", username, status=401)
    throttle.succeeded(username, address)
    _end_session()
    flask.session.clear()
    flask.session["sid"] = book.open_session(account)
    response = flask.redirect(_safe_next(form.get("next")))
    config = flask.current_app.config
    response.set_cookie(DEVICE_COOKIE, _devices().dumps(account.username),
                        max_age=DEVICE_COOKIE_AGE, path=flask.request.script_root + "/login",
                        httponly=True, samesite="Strict", secure=config["SESSION_COOKIE_SECURE"])
    return response


def _end_session() -> None:
    session_id = flask.session.get("sid")
    if isinstance(session_id, str):
        flask.current_app.config["CULTURE_ACCOUNTS"].sessions.end(session_id)


def sign_out():
    """End the session on the server (not only in this browser) and go to sign-in."""
    _end_session()
    flask.session.clear()
    return flask.redirect("/login")
