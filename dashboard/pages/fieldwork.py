"""Fieldwork, for the survey lead (admins only): how each open wave is going.

Responses so far by site and by staff group against headcount, answers waiting in the
web form's inbox, invitations issued and used, and web answers by the day they arrived.

Where the numbers come from. Not the store, nor the inbox: the dashboard may not read
respondent-level data (the import contracts in pyproject.toml keep `dashboard` away from
`pipeline` and `collect`), and the store is locked while `culture run` writes it. The
page reads the small file of counts that `culture status`, `culture run` and a running
`culture collect` (every minute) write beside the store (`survey.fieldwork`): counts
only, staff groups under the minimum group size k already withheld by the writer and
withheld again by the reader. The page says when the counts were written and by what.
"""

from __future__ import annotations

import pandas as pd
from dash import html

from dashboard.components import key_figure, notice, table
from dashboard.view import View
from survey.fieldwork import beside_published, closed_wave_line, read_summary

TITLE = "Fieldwork"
NEEDS_SITE = False


def _rate(n, headcount) -> str:
    return f"{round(100 * n / headcount)}%" if n is not None and headcount else ""


def _folded(summary: str, content) -> html.Details:
    return html.Details([html.Summary(summary), content], className="folded")


def _wave_parts(wave: dict, k: int) -> list:
    sites = wave["sites"]
    issued = sum(s["invitations_issued"] for s in sites)
    used = sum(s["invitations_used"] for s in sites)
    parts = [html.H2(f"Wave {wave['wave']}: open"),
             html.Div([key_figure("Responses so far", f"{wave['responses']:,}",
                                  "in the store and waiting in the inbox"),
                       key_figure("Waiting in the inbox", f"{wave['waiting']:,}",
                                  "web answers the next \u201cculture run\u201d takes in"),
                       key_figure("Invitations used", f"{used:,} of {issued:,}" if issued
                                  else "none issued",
                                  "marked used ten at a time, so up to nine recent uses "
                                  "may not show yet")], className="key-figures")]
    by_site = pd.DataFrame([{
        "site": f"{s['name']} ({s['site']})", "responses": f"{s['responses']:,}",
        "headcount": f"{s['headcount']:,}" if s["headcount"] else "not given",
        "rate": _rate(s["responses"], s["headcount"]) or "-",
        "waiting": f"{s['waiting']:,}",
        "invitations": (f"{s['invitations_used']:,} of {s['invitations_issued']:,}"
                        if s["invitations_issued"] else "none issued"),
        "reportable": ("yes" if s["responses"] >= k else f"not yet: fewer than {k}")}
        for s in sites])
    parts.append(table(by_site, {"site": "Site", "responses": "Responses so far",
                                 "headcount": "Headcount", "rate": "Response rate",
                                 "waiting": "Waiting in the inbox",
                                 "invitations": "Invitations used",
                                 "reportable": f"Enough to report ({k} or more)"},
                       f"Wave {wave['wave']}: responses by site",
                       filename=f"fieldwork-{wave['wave']}-sites"))
    rows = []
    for s in sites:
        withheld = [g["label"] for g in s["groups"] if g["responses"] is None]
        for g in s["groups"]:
            n, heads = g["responses"], g["headcount"]
            if n is not None and (n or heads):
                rows.append({"site": f"{s['name']} ({s['site']})", "group": g["label"],
                             "responses": f"{n:,}",
                             "headcount": f"{heads:,}" if heads else "not given",
                             "rate": _rate(n, heads) or "-"})
        if withheld:
            rows.append({"site": f"{s['name']} ({s['site']})",
                         "group": f"{len(withheld)} more group(s)",
                         "responses": f"not shown: fewer than {k} each",
                         "headcount": "-", "rate": "-"})
    parts.append(html.P(f"A staff group is shown once {k} or more of its people have "
                        "answered; below that it is not shown, and neither is one more "
                        "group when the hidden one could be worked out from the site's "
                        "total.", className="lead"))
    # Long lists (a group per site, a day per day of fieldwork) fold away: on a phone they
    # would run the page to many screens before the closed waves.
    if rows:
        parts.append(_folded(f"Staff groups, site by site ({len(rows):,} rows)",
                             table(pd.DataFrame(rows), {"site": "Site", "group": "Staff group",
                                                        "responses": "Responses so far",
                                                        "headcount": "Headcount",
                                                        "rate": "Response rate"},
                                   f"Wave {wave['wave']}: responses by staff group",
                                   filename=f"fieldwork-{wave['wave']}-staff-groups")))
    if wave["days"]:
        days = pd.DataFrame([{"day": day, "n": f"{n:,}"} for day, n in wave["days"]])
        parts.append(_folded(f"Web answers day by day ({len(days):,} days)",
                             table(days, {"day": "Day", "n": "Web answers that day (all sites)"},
                                   f"Wave {wave['wave']}: web answers by the day they arrived",
                                   filename=f"fieldwork-{wave['wave']}-days")))
    else:
        parts.append(notice("No answers have come through the web form for this wave yet."))
    return parts


def layout(view: View) -> html.Div:
    summary = read_summary(beside_published(view.data.path))
    parts = [html.H1("Fieldwork")]
    if summary is None:
        return html.Div(parts + [notice(
            "No fieldwork counts yet. They are written beside the store by the commands "
            "\u201cculture status\u201d and \u201cculture run\u201d, and every minute by a "
            "running \u201cculture collect\u201d.")])
    k = summary["min_group_size"]
    parts.append(html.P(
        f"How each open survey wave is going, as counted at "
        f"{summary['written_at'].replace('T', ' ')} by the command "
        f"\u201c{summary['written_by']}\u201d. "
        "Counts only: nobody's answers are shown here, and staff groups with fewer than "
        f"{k} responses are not shown.", className="lead"))
    waves = sorted(summary["waves"], key=lambda w: w["wave"], reverse=True)
    open_waves = [w for w in waves if w["open"]]
    if not open_waves:
        parts.append(notice("No wave is open for answers. Open one with the command "
                            "\u201cculture waves open YEAR\u201d."))
    for wave in open_waves:
        parts.extend(_wave_parts(wave, k))
    closed = [w for w in waves if not w["open"]]
    if closed:
        parts.append(html.H2("Closed waves"))
        parts.append(html.Ul([html.Li(closed_wave_line(w)) for w in closed]))
    return html.Div(parts)

