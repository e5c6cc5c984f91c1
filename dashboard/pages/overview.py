"""Overview: a site's six principles against their targets, largest gaps first, with the
guide's actions; responses and response rate."""

from __future__ import annotations

import pandas as pd
from dash import html

from dashboard.components import chart, fmt, key_figure, notice, table
from dashboard.figures import hidden_text, principle_figure
from dashboard.pages.actions import open_actions_list, site_actions
from dashboard.pages.glossary import what_this_means
from dashboard.view import View
from plans.store import OPEN_STATUSES
from published.layout import evidence_citation

TITLE = "Overview"
NEEDS_SITE = True
#: The published certainty of a principle with no target (fewer than three sites).
NO_TARGET = "no target"


def principle_rows(view: View) -> pd.DataFrame:
    """The site's principle gaps in priority order, with principle names."""
    gaps = view.data.principle_gaps(view.site, view.wave)
    names = view.data.measure_names()
    return gaps.assign(name=gaps["principle"].map(names).fillna(gaps["principle"]))


def layout(view: View) -> html.Div:
    data, k = view.data, view.k
    responses = data.responses(view.site, view.wave)
    rows = principle_rows(view)
    parts = [html.H1(f"{view.site_label}: culture of support, {view.wave}"),
             view.controls(), _key_figures(responses, data.peer_response_rate(view.site,
                                                                         view.wave), k),
             what_this_means("The more of the staff answered, the more the scores below "
                             "speak for everyone at the site.", "response-rate",
                             "minimum-group")]
    if rows.empty:
        parts.append(notice(f"No principle scores can be shown for {view.wave}: the site had "
                            f"{hidden_text(k)}, or too few comparable sites."))
        return html.Div(parts)
    top = rows.iloc[0]
    if top["certainty"] == NO_TARGET:
        summary = (f"Lowest score: {top['name']}, {top['score']:.1f}. "
                   f"{top['target_basis'].capitalize()}, so no gaps are shown.")
    else:
        summary = (f"Largest gap: {top['name']}, score {top['score']:.1f} against a target "
                   f"of {top['target']:.1f} ({top['certainty']}). "
                   f"Target: {top['target_basis']}.")
    parts.append(what_this_means(
        "Each dot is one principle's score out of 100, its line the range the true score "
        "most likely lies in, and each diamond the target other sites show is within "
        "reach; the largest gaps come first. A 'clear gap' is below target even allowing "
        "for chance.", "score", "principle", "target",
        "gap", "confidence-interval"))
    parts.append(chart("overview-principles", principle_figure(rows, view.site_label),
                       table(rows, {"priority": "Priority", "name": "Principle",
                                    "n": "Respondents", "score": "Score (0-100)",
                                    "ci_low": "95% CI low", "ci_high": "95% CI high",
                                    "target": "Target", "gap": "Gap (target - score)",
                                    "gap_low": "Gap CI low", "gap_high": "Gap CI high",
                                    "certainty": "Certainty"},
                             "Principle scores, targets and gaps", {"n": 0, "priority": 0}),
                       summary))
    weighted = data.weighted(view.site, view.wave, "principle")
    if len(weighted):
        weighted = weighted.assign(name=weighted["measure"].map(data.measure_names()))
        parts.append(html.Details([
            html.Summary("Scores weighted to the site's staff-group mix"),
            html.P("Each staff group counts by its share of the site's headcount rather than "
                   "its share of the respondents (weights capped at 3; hidden groups and "
                   "'not stated' weighted together).", className="lead"),
            what_this_means("If the weighted score differs much from the plain one, one "
                            "staff group answered far more than the others.", "weighted"),
            table(weighted, {"name": "Principle", "n": "Respondents", "mean": "Score",
                             "weighted_mean": "Weighted score",
                             "weighted_ci_low": "95% CI low", "weighted_ci_high": "95% CI high",
                             "design_effect": "Design effect"},
                  "Unweighted and weighted principle scores", {"n": 0, "mean": 1,
                                                               "weighted_mean": 1,
                                                               "weighted_ci_low": 1,
                                                               "weighted_ci_high": 1})],
            className="table-view"))
    parts.append(html.H2("What the guide suggests, largest gaps first"))
    actions = data.actions()
    # The site's own open actions beside the guide's (the Actions page keeps them).
    planned, problem = site_actions(view.site, OPEN_STATUSES)
    if problem:
        parts.append(notice(f"The site's actions cannot be shown just now: {problem}."))
    for _, row in rows.iterrows():
        parts.append(_principle_actions(row, actions[actions["principle"] == row["principle"]],
                                        planned[planned["principle"] == row["principle"]]))
    return html.Div(parts)


def _key_figures(responses: dict, peers: dict, k: int) -> html.Div:
    n = responses["n"]
    return html.Div([
        key_figure("Responses", fmt(n) if n is not None else hidden_text(k)),
        key_figure("Staff headcount", fmt(responses["headcount"])
                   if responses["headcount"] else "not given"),
        key_figure("Response rate", fmt(responses["rate"], 0, "%")
                   if responses["rate"] is not None else "not available",
                   "responses / staff headcount"),
        key_figure("Peer group's response rate", fmt(peers["rate"], 0, "%")
                   if peers["rate"] is not None else "not shown",
                   f"the other {peers['sites']} sites of the peer group together"
                   if peers["rate"] is not None else
                   "shown when three or more other sites of the peer group give a headcount"),
    ], className="key-figures")


def _principle_actions(row: pd.Series, actions: pd.DataFrame,
                       planned: pd.DataFrame | None = None) -> html.Section:
    if row["certainty"] == NO_TARGET:
        status = f"score {row['score']:.1f}; {row['target_basis']}"
    elif row["certainty"] == "meets target":
        status = f"meets its target ({row['score']:.1f} against {row['target']:.1f})"
    else:
        status = (f"{row['gap']:.1f} points below target (95% CI {row['gap_low']:.1f} to "
                  f"{row['gap_high']:.1f}; {row['certainty']})")
    return html.Section([
        html.H3(f"{int(row['priority'])}. {row['name']}"),
        html.P(status, className="gap-status"),
        html.Ul([html.Li([html.Strong(a["title"] + ": "), a["action"]]
                         + ([html.Span(f" ({cited})", className="evidence")]
                            if (cited := evidence_citation(a["evidence"])) else []))
                 for _, a in actions.iterrows()]),
        open_actions_list(planned) if planned is not None else None,
    ], className="principle-actions")
