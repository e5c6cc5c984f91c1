"""Trends: every scale and principle across waves, significant changes marked."""

from __future__ import annotations

from dash import html

from dashboard.components import chart, notice, table
from dashboard.figures import mark_actions, trend_figure
from dashboard.pages.actions import site_actions
from dashboard.pages.glossary import what_this_means
from dashboard.view import View
from published.scores import SCORE, SCORE_AXIS, headline

TITLE = "Trends"
NEEDS_SITE = "unless researcher"


def layout(view: View) -> html.Div:
    level, unit = ("site", view.site) if view.site else ("national", "national")
    label = view.site_label
    names = view.data.measure_names()
    series = headline(view.data.unit_series(level, unit, ("scale", "principle")))
    series = series[~series["suppressed"]].assign(label=series["measure"].map(names))
    trends = headline(view.data.trends(level, unit))
    changes = trends[trends["flag"] != "no clear change"].assign(
        label=trends["measure"].map(names))
    parts = [html.H1(f"{label}: change across waves"), view.controls(with_site=True),
             html.P("A star marks a change from the previous wave that is larger than chance "
                    "would produce, with the bar set so that no more than 5 in 100 of the "
                    "marked changes are false alarms (how it is tested: see the glossary).",
                    className="lead")]
    if series.empty:
        return html.Div(parts + [notice(f"Nothing to show: no wave had {view.k} or more "
                                        "responses.")])
    # The site's actions (a researcher's view has no site, so no plan text) are marked on
    # their principle's line at their start.
    planned = site_actions(view.site)[0] if view.site else None
    for kind, axis, heading in (("principle", SCORE_AXIS, "Principles"),
                                ("scale", SCORE_AXIS, "Scales")):
        rows = series[series["measure_kind"] == kind]
        marked = changes[changes["measure_kind"] == kind][["label", "wave", "flag"]]
        listed = trends[trends["measure_kind"] == kind].assign(
            label=lambda f: f["measure"].map(names))
        summary = (f"{len(marked)} significant change(s): " + "; ".join(
            f"{r.label} {r.flag} in {r.wave}" for r in marked.itertuples())
            if len(marked) else "No significant change between waves.")
        parts.append(what_this_means(
            f"Each line is one {kind}'s score wave by wave. Small ups and downs without a "
            "star are what you would expect from year to year even if nothing had changed.",
            "significant-change", "false-discovery-rate", "adjusted-p", "welch"))
        figure = trend_figure(rows, marked, f"{heading} by wave", axis)
        if kind == "principle" and planned is not None and len(planned):
            started = planned.assign(label=planned["principle"].map(names))
            figure = mark_actions(figure, started)
            summary += " Actions started: " + "; ".join(
                f"{a.what} ({a.label}, {a.start.isoformat()})"
                for a in started.itertuples()) + "."
        parts.append(chart(f"trends-{kind}", figure,
                           table(listed, {"label": "Measure", "wave": "Wave",
                                          "mean": SCORE, "change": "Change",
                                          "change_low": "95% CI low",
                                          "change_high": "95% CI high",
                                          "q": "Adjusted p (false discovery rate)",
                                          "flag": "Verdict"},
                                 f"{heading}: change from the previous wave",
                                 {"wave": 0, "q": 3, "mean": 1, "change": 1,
                                  "change_low": 1, "change_high": 1}),
                           summary))
    return html.Div(parts)
