"""Sign-in and sign-out routes (plain Flask: they must work before any Dash page does)."""

from __future__ import annotations

import hmac
import secrets
from html import escape
from urllib.parse import urlparse

import flask

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in - Culture of support</title>
<link rel="stylesheet" href="/assets/style.css"></head>
<body class="login-page"><main class="login-box">
<h1>Culture of support for doctors</h1>
<p>Sign in to see your organisation's results. Results are anonymous aggregates.</p>
{message}
<form method="post" action="/login">
<input type="hidden" name="csrf" value="{csrf}">
<input type="hidden" name="next" value="{next}">
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" required value="{username}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit" id="sign-in">Sign in</button>
</form></main></body></html>"""


def register(server: flask.Flask) -> None:
    server.add_url_rule("/login", "login", sign_in, methods=["GET", "POST"])
    server.add_url_rule("/logout", "logout", sign_out, methods=["GET", "POST"])


def _form(message: str = "", username: str = "", status: int = 200):
    token = flask.session.setdefault("csrf", secrets.token_urlsafe(24))
    next_path = _safe_next(flask.request.values.get("next"))
    body = _PAGE.format(message=f'<p class="notice notice-error" role="alert">{escape(message)}'
                                f"</p>" if message else "",
                        csrf=token, next=escape(next_path), username=escape(username))
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
    throttle = flask.current_app.config["CULTURE_THROTTLE"]
    wait = throttle.wait_seconds(username)
    if wait > 0:
        return _form(f"Too many failed attempts; try again in {int(wait) + 1} seconds.",
                     username, status=429)
    account = flask.current_app.config["CULTURE_ACCOUNTS"].authenticate(
        username, form.get("password") or "")
    if account is None:
        throttle.failed(username)
        return _form("Username or password is not right.", username, status=401)
    throttle.succeeded(username)
    flask.session.clear()
    flask.session["user"] = account.username
    return flask.redirect(_safe_next(form.get("next")))


def sign_out():
    flask.session.clear()
    return flask.redirect("/login")
