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
              "default: no]")] = None) -> None:
    """Serve the dashboard over the published results (sign-in required).

    Examples: culture serve --port 8050
              culture serve --host 127.0.0.1 --trust-proxy --secure-cookies  (behind nginx)
    """
    settings = resolve_settings(db=db, trust_proxy=trust_proxy, secure_cookies=secure_cookies)
    serve_dashboard(settings, host, port)


def serve_dashboard(settings: Settings, host: str, port: int) -> None:
    from werkzeug.serving import run_simple

    from dashboard.accounts import AccountBook
    from dashboard.app import create_app
    from published.reader import PublishedLayer

    with PublishedLayer.open(settings.published_path) as layer:
        layer.waves()   # a clear error now, not per page
    if not AccountBook(settings.accounts_path).accounts():
        err.print("no dashboard accounts yet: add one with `culture users add NAME --role "
                  "admin`")
    app = create_app(settings)
    out.print(f"dashboard: http://{host}:{port}/  (Ctrl+C to stop)")
    run_simple(host, port, app.server, threaded=True, use_reloader=False)
