"""Equity: each staff group (and the other attributes) against the rest of the site."""

from __future__ import annotations

import pandas as pd
from dash import html

from dashboard.components import chart, notice, table
from dashboard.figures import equity_heatmap, hidden_text
from dashboard.pages.glossary import what_this_means
from dashboard.view import View
from published.scores import SCORE, headline

TITLE = "Equity"
NEEDS_SITE = True


def equity_grid(view: View) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(differences, hidden, long rows) for every attribute group x scale of the site.

    Groups whose cell is suppressed are marked hidden (shown as "fewer than k
    responses"); the "not stated" group is listed in the table but not compared.
    """
    data = view.data
    names = data.measure_names()
    groups = data.groups()
    cells = headline(data.group_cells(view.site, view.wave))
    cells = cells[cells["measure_kind"] == "scale"]
    equity = headline(data.equity(view.site, view.wave))
    equity = equity[equity["measure_kind"] == "scale"][
        ["breakdown", "grp", "measure", "diff", "diff_low", "diff_high", "q", "flag"]]
    rows = cells.merge(groups, on=["breakdown", "grp"], how="left").merge(
        equity, on=["breakdown", "grp", "measure"], how="left")
    rows["row"] = rows["attribute"] + ": " + rows["label"]
    rows["scale"] = rows["measure"].map(names)
    rows = rows.sort_values(["breakdown", "position", "measure"])
    order = list(dict.fromkeys(rows["row"]))
    columns = list(dict.fromkeys(rows["scale"]))
    diff = rows.pivot(index="row", columns="scale", values="diff").reindex(order)[columns]
    hidden = rows.pivot(index="row", columns="scale", values="suppressed").reindex(order)[
        columns].astype(bool)
    return diff, hidden, rows


def layout(view: View) -> html.Div:
    k = view.k
    parts = [html.H1(f"{view.site_label}: equity, {view.wave}"), view.controls(),
             html.P("Each cell is a group's mean score minus the mean of everyone else at the "
                    f"site, in points out of 100 (orange: lower, purple: higher). Grey cells had "
                    f"{hidden_text(k)} or are hidden so that a small group cannot be worked "
                    "out by subtraction.", className="lead")]
    diff, hidden, rows = equity_grid(view)
    if rows.empty:
        return html.Div(parts + [notice("No group results for this site and wave.")])
    flagged = rows[rows["flag"].isin(["lower", "higher"])]
    summary = (f"{int(hidden.to_numpy().sum())} of {hidden.size} cells hidden. "
               + (f"{len(flagged)} clear difference(s): " + "; ".join(
                   f"{r.row} {r.flag} on {r.scale}" for r in flagged.head(8).itertuples())
                  if len(flagged) else "No clear difference after false discovery control."))
    listed = rows.assign(shown=rows["suppressed"].map({True: hidden_text(k), False: "shown"}))
    parts.append(what_this_means(
        "A cell below zero means that group feels less supported than their colleagues at "
        "the site. Only differences larger than chance, with no more than 5 in 100 false "
        "alarms, are called lower or higher; grey cells protect small groups.",
        "equity", "false-discovery-rate", "hidden-cells", "not-stated"))
    parts.append(chart("equity-heatmap", equity_heatmap(diff, hidden, k),
                       table(listed, {"row": "Group", "scale": "Scale", "shown": "Shown",
                                      "n": "Respondents", "mean": SCORE,
                                      "diff": "Difference from rest of site",
                                      "diff_low": "95% CI low", "diff_high": "95% CI high",
                                      "flag": "Verdict (5% false discovery rate)"},
                             "Groups against the rest of the site",
                             {"n": 0, "mean": 1, "diff": 1, "diff_low": 1, "diff_high": 1}),
                       summary))
    return html.Div(parts)
