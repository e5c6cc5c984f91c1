"""Who sees what: the signed-in viewer, the sites they may open, and how sites are named.

Every callback and route asks this module, on the server, before it reads anything:
a director's page for another site is refused however the request was made (a URL,
a crafted POST to Dash's callback endpoint), not merely hidden in the layout.

Naming. An admin sees every site by name. A director sees their own site by name and
every other site as "Peer 1", "Peer 2", ... Peer numbers are consistent within one
view (the funnel, the caterpillar and their tables agree) but follow a keyed shuffle of
the view, not the site code or its rank, so numbers cannot be carried from one view to
another to single a site out (and peers' counts are banded, `outputs.peer_bands`). A
researcher sees every site by its pseudonym under the deployment's key, the same one
their downloads carry (`outputs.export.deployment_pseudonym_key`).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

import flask

from dashboard.accounts import Account


class AccessDenied(Exception):
    """The signed-in viewer may not see what was asked for (HTTP 403)."""


class NotSignedIn(Exception):
    """No valid session (HTTP 401)."""


#: Page path -> roles allowed to open it.
PAGE_ROLES = {
    "/": ("admin", "director"),
    "/principle": ("admin", "director"),
    "/benchmark": ("admin", "director", "researcher"),
    "/trends": ("admin", "director", "researcher"),
    "/equity": ("admin", "director"),
    # What goes with seeking help early; a researcher sees national and peer groups only.
    "/drivers": ("admin", "director", "researcher"),
    # A site's action plan; a researcher sees counts by principle and status only.
    "/actions": ("admin", "director", "researcher"),
    "/quality": ("admin", "director", "researcher"),
    "/export": ("admin", "researcher"),
    # The survey lead's view of a wave in progress (counts only, groups below k hidden).
    "/fieldwork": ("admin",),
    # The statistical and psychometric detail; a director reads it in plain words on
    # the pages and in the glossary.
    "/methods": ("admin", "researcher"),
    "/glossary": ("admin", "director", "researcher"),
}


@dataclass(frozen=True)
class Viewer:
    """The signed-in account and what its role allows."""

    account: Account

    @property
    def role(self) -> str:
        return self.account.role

    @property
    def own_site(self) -> str | None:
        return self.account.site_code if self.role == "director" else None

    def may_open_site(self, site: str) -> bool:
        return self.role == "admin" or (self.role == "director" and site == self.own_site)

    def may_open_page(self, path: str) -> bool:
        return self.role in PAGE_ROLES.get(path, ())

    def site_options(self, site_codes: list[str]) -> list[str]:
        """Sites this viewer may pick in a site selector."""
        return [s for s in site_codes if self.may_open_site(s)]


def current_viewer() -> Viewer:
    """The viewer of the request being served, from its server-side session: a session
    ended by sign-out, a password change or removal opens nothing (checked once per
    request, on every request)."""
    viewer = flask.g.get("culture_viewer")
    if viewer is not None:
        return viewer
    session_id = flask.session.get("sid")
    book = flask.current_app.config["CULTURE_ACCOUNTS"]
    account = book.session_account(session_id) if isinstance(session_id, str) else None
    if account is None:
        raise NotSignedIn("sign in first")
    flask.g.culture_viewer = Viewer(account)
    return flask.g.culture_viewer


def authorise_site(viewer: Viewer, site: str | None, known: list[str]) -> str:
    """`site` if the viewer may open it; AccessDenied otherwise (unknown sites too, so a
    refusal never confirms that a code exists)."""
    if site is None and viewer.own_site:
        return viewer.own_site
    if site is None and viewer.role == "admin" and known:
        return known[0]
    if site is None or site not in known or not viewer.may_open_site(site):
        raise AccessDenied(f"you do not have access to site {site!r}")
    return site


def authorise_page(viewer: Viewer, path: str) -> None:
    if not viewer.may_open_page(path):
        raise AccessDenied(f"the page {path} is not available to the {viewer.role} role")


class SiteLabels:
    """Display names of sites within one view, following the viewer's role."""

    def __init__(self, viewer: Viewer, names: dict[str, str], view: str, secret: bytes,
                 codes: list[str] | None = None,
                 pseudonyms: dict[str, str] | None = None) -> None:
        self.viewer, self.names = viewer, names
        self.pseudonyms = pseudonyms or {}
        codes = sorted(codes if codes is not None else names)

        def shuffle_key(code: str) -> bytes:
            return hmac.new(secret, f"{view}\0{code}".encode(), hashlib.sha256).digest()

        anonymous = [c for c in codes if not self.named(c)]
        self._numbers = {c: i + 1 for i, c in enumerate(sorted(anonymous, key=shuffle_key))}

    def named(self, code: str) -> bool:
        return self.viewer.role == "admin" or code == self.viewer.own_site

    def stable(self, code: str) -> bool:
        """Whether the site keeps its label from view to view (by name, or by pseudonym
        for a researcher); a peer renumbered per view must carry nothing stable."""
        return self.named(code) or (self.viewer.role == "researcher" and code in self.pseudonyms)

    def __call__(self, code: str) -> str:
        if self.named(code):
            return f"{self.names.get(code, code)} ({code})"
        if self.viewer.role == "researcher":
            # Never the code: a site missing from the pseudonyms reads as unknown.
            return self.pseudonyms.get(code, "Site ?")
        return f"Peer {self._numbers.get(code, '?')}"
