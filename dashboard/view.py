"""One authorised view: who is looking, at which site and wave, with which extra choices.

Pages receive a `View` only after `view_from_request` has checked the
viewer's right to the page and the site, so a page never has to remember to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs

import flask
from dash import dcc, html

from dashboard.access import (AccessDenied, SiteLabels, Viewer, authorise_page, authorise_site,
                              current_viewer)
from dashboard.data import PublishedData


@dataclass
class View:
    viewer: Viewer
    data: PublishedData
    path: str
    site: str | None
    wave: int
    query: dict[str, str] = field(default_factory=dict)
    secret: bytes = b""

    @property
    def k(self) -> int:
        return self.data.min_group_size

    def site_names(self) -> dict[str, str]:
        sites = self.data.sites()
        return dict(zip(sites["site_code"], sites["name"]))

    def labels(self, codes: list[str] | None = None) -> SiteLabels:
        """Site names for this view (anonymous where the role says so; a researcher's
        pseudonyms are the ones their downloads carry)."""
        view_key = f"{self.path}|{self.wave}|{self.viewer.account.username}"
        pseudonyms = None
        if self.viewer.role == "researcher":
            from outputs.export import pseudonymise

            key = deployment_key(self.data)
            pseudonyms = {code: pseudonymise(code, key) for code in self.site_names()}
        return SiteLabels(self.viewer, self.site_names(), view_key, self.secret, codes,
                          pseudonyms)

    @property
    def site_label(self) -> str:
        return self.labels()(self.site) if self.site else "All sites"

    @property
    def peer_group(self) -> str | None:
        row = self.data.site_row(self.site) if self.site else None
        return row["site_type"] if row else None

    def controls(self, with_site: bool = True) -> html.Div:
        """Site and wave selectors (a director's own site is shown as text)."""
        parts = []
        if with_site and self.site:
            choices = self.viewer.site_options(list(self.data.sites()["site_code"]))
            labels = self.labels()
            if len(choices) > 1:
                parts.append(html.Div([
                    html.Label("Site", htmlFor="site-select"),
                    dcc.Dropdown(id="site-select", value=self.site, clearable=False,
                                 options=[{"label": labels(c), "value": c} for c in choices])],
                    className="control"))
            else:
                parts.append(html.Div([html.Span("Site", className="control-label"),
                                       html.Strong(labels(self.site))], className="control"))
        if not any(getattr(part.children[-1], "id", None) == "site-select" for part in parts):
            # The selectors share one callback: with the site fixed (a director) or none
            # (a researcher) it still needs a site-select to read, or the wave cannot move.
            parts.append(dcc.Input(id="site-select", type="hidden", value=self.site or ""))
        waves = self.data.waves()
        parts.append(html.Div([
            html.Label("Survey wave", htmlFor="wave-select"),
            dcc.Dropdown(id="wave-select", value=self.wave, clearable=False,
                         options=[{"label": str(w), "value": w} for w in waves])],
            className="control"))
        return html.Div(parts, className="controls")


def deployment_key(data: PublishedData) -> str:
    """The deployment's pseudonymisation key, resolved once per app: researchers' pages
    and downloads use it and nothing a request carries."""
    config = flask.current_app.config
    if "CULTURE_PSEUDONYM_KEY" not in config:
        from outputs.export import deployment_pseudonym_key

        config["CULTURE_PSEUDONYM_KEY"] = deployment_pseudonym_key(data.path)
    return config["CULTURE_PSEUDONYM_KEY"]


def export_min_sites() -> int:
    """Fewest sites a site type x region may cover in a researcher's download: the app's
    settings if it keeps them, else the environment (CULTURE_MIN_SITES_PER_COMBINATION)."""
    config = flask.current_app.config
    if "CULTURE_MIN_SITES" not in config:
        from survey.settings import resolve_settings

        settings = config.get("CULTURE_SETTINGS") or resolve_settings()
        config["CULTURE_MIN_SITES"] = settings.min_sites_per_combination
    return config["CULTURE_MIN_SITES"]


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
