"""Commands for the dashboard: its accounts (`culture users ...`) and serving it."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from cli.options import DbOption, err, out, settings_for
from survey.settings import Settings, resolve_settings


def users_add(username: str,
              role: Annotated[str, typer.Option(help="admin, director or researcher")],
              site: Annotated[Optional[str], typer.Option(
                  help="A director's own site code")] = None,
              password: Annotated[str, typer.Option(
                  prompt=True, hide_input=True, confirmation_prompt=True,
                  envvar="CULTURE_PASSWORD", help="At least 10 characters \\[env: "
                  "CULTURE_PASSWORD; asked for when not given]")] = "",
              db: DbOption = None) -> None:
    """Add a dashboard account.

    Example: culture users add jsmith --role director --site A
    """
    from dashboard.accounts import AccountBook

    settings = settings_for(db)
    account = AccountBook(settings.accounts_path).add(username, role, password, site,
                                                      known_sites=_published_sites(settings))
    out.print(f"added {account.username} ({account.role}"
              + (f", site {account.site_code}" if account.site_code else "") + ")")


def _published_sites(settings: Settings) -> set[str] | None:
    """Site codes of the published layer (None when nothing is published yet)."""
    from published.reader import PublishedLayer

    if not settings.published_path.exists():
        return None
    with PublishedLayer.open(settings.published_path) as layer:
        return set(layer.sites()["site_code"])


def users_list(db: DbOption = None) -> None:
    """List dashboard accounts (never their passwords).

    Example: culture users list
    """
    from dashboard.accounts import AccountBook

    table = Table("username", "role", "site")
    for account in AccountBook(settings_for(db).accounts_path).accounts():
        table.add_row(account.username, account.role, account.site_code or "")
    out.print(table)


def users_remove(username: str, db: DbOption = None) -> None:
    """Remove an account and end its open dashboard sessions.

    Example: culture users remove jsmith
    """
    from dashboard.accounts import AccountBook

    ended = AccountBook(settings_for(db).accounts_path).remove(username)
    out.print(f"removed {username}; {ended} open session(s) ended")


def users_set_password(username: str, password: Annotated[str, typer.Option(
        prompt=True, hide_input=True, confirmation_prompt=True, envvar="CULTURE_PASSWORD",
        help="At least 10 characters \\[env: CULTURE_PASSWORD]")] = "",
        db: DbOption = None) -> None:
    """Set a new password for an account and end its open dashboard sessions.

    Example: culture users set-password jsmith
    """
    from dashboard.accounts import AccountBook

    ended = AccountBook(settings_for(db).accounts_path).set_password(username, password)
    out.print(f"password of {username} changed; {ended} open session(s) ended")


def serve(db: DbOption = None,
          host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="Port")] = 8050,
          trust_proxy: Annotated[Optional[bool], typer.Option(
              "--trust-proxy/--no-trust-proxy", help="Behind one reverse proxy: take the "
              "client address from its X-Forwarded-For \\[env: CULTURE_TRUST_PROXY; "
              "default: no]")] = None,
          secure_cookies: Annotated[Optional[bool], typer.Option(
              "--secure-cookies/--no-secure-cookies", help="Reached over HTTPS (a TLS "
              "proxy): send cookies only over HTTPS \\[env: CULTURE_SECURE_COOKIES; "
              "default: no]")] = None,
          url_prefix: Annotated[Optional[str], typer.Option(
              help="Serve under this path, for a reverse proxy that passes e.g. /culture/... "
              "on unchanged \\[env: CULTURE_URL_PREFIX; default: the root]")] = None) -> None:
    """Serve the dashboard over the published results (sign-in required).

    Examples: culture serve --port 8050
              culture serve --host 127.0.0.1 --trust-proxy --secure-cookies  (behind nginx)
              culture serve --url-prefix /culture  (nginx: location /culture/ { proxy_pass
              http://127.0.0.1:8050; })
    """
    settings = resolve_settings(db=db, trust_proxy=trust_proxy, secure_cookies=secure_cookies,
                                url_prefix=url_prefix)
    serve_dashboard(settings, host, port)


#: Waitress's worker threads for the dashboard. A page fires several callbacks at once
#: (a browser opens up to 6 connections) and a sign-in spends a while in the password
#: hash; the callbacks are pandas/DuckDB work that mostly holds the GIL, so many more
#: threads than that would only queue inside Python instead of in waitress.
DASHBOARD_THREADS = 8


def serve_dashboard(settings: Settings, host: str, port: int) -> None:
    import waitress

    from dashboard.accounts import AccountBook
    from dashboard.app import create_app
    from published.reader import PublishedLayer

    with PublishedLayer.open(settings.published_path) as layer:
        layer.waves()   # a clear error now, not per page
    if not AccountBook(settings.accounts_path).accounts():
        err.print("no dashboard accounts yet: add one with `culture users add NAME --role "
                  "admin`")
    app = create_app(settings)
    out.print(f"dashboard: http://{host}:{port}{settings.url_prefix}/  (Ctrl+C to stop)",
              highlight=False)
    # waitress, a production WSGI server (Werkzeug's is for development only). Bodies
    # larger than the app accepts are refused before they are buffered. The app reads
    # the proxy's X-Forwarded-* itself (ProxyFix, the same under any server), so waitress
    # must pass them on when the proxy is trusted; by default it strips them.
    waitress.serve(app.server, host=host, port=port, threads=DASHBOARD_THREADS,
                   max_request_body_size=app.server.config["MAX_CONTENT_LENGTH"],
                   clear_untrusted_proxy_headers=not settings.trust_proxy,
                   channel_timeout=60, _quiet=True)
