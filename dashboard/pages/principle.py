"""Principle detail: one principle's scales and items at a site, and its trend."""

from __future__ import annotations

from urllib.parse import urlencode

import pandas as pd
from dash import dcc, html

from dashboard.components import chart, notice, table
from dashboard.figures import response_bars, trend_figure
from dashboard.view import View
from published.scores import SCORE, SCORE_AXIS, headline

TITLE = "Principle detail"
NEEDS_SITE = True


def _principles(view: View) -> pd.DataFrame:
    measures = view.data.measures()
    return measures[measures["measure_kind"] == "principle"].sort_values("measure")


def chosen_principle(view: View) -> str:
    """The principle in the URL, else the site's largest gap, else the first."""
    ids = list(_principles(view)["measure"])
    asked = view.query.get("principle")
    if asked in ids:
        return asked
    gaps = view.data.principle_gaps(view.site, view.wave)
    return str(gaps["principle"].iloc[0]) if len(gaps) else ids[0]


def layout(view: View) -> html.Div:
    data, k = view.data, view.k
    principle = chosen_principle(view)
    measures = data.measures()
    names = dict(zip(measures["measure"], measures["name"]))
    tagged = measures["principles"].fillna("").str.split(",").map(lambda p: principle in p)
    scales = measures[(measures["measure_kind"] == "scale") & tagged]
    items = measures[(measures["measure_kind"] == "item") & tagged]
    tabs = html.Nav([dcc.Link(names[p], href="/principle?" + urlencode(
        {"site": view.site, "wave": view.wave, "principle": p}),
        className="pill active" if p == principle else "pill")
        for p in _principles(view)["measure"]], className="pills",
        **{"aria-label": "Principles"})
    parts = [html.H1(f"{names[principle]}: {view.site_label}, {view.wave}"), view.controls(),
             tabs, html.P(_principles(view).set_index("measure").loc[principle, "description"],
                          className="lead")]

    cells = headline(data.site_cells(view.site, view.wave, ("scale", "item")))
    scale_cells = cells[cells["measure"].isin(scales["measure"])].assign(
        label=lambda f: f["measure"].map(names))
    parts.append(html.H2("Its scales"))
    parts.append(table(scale_cells.assign(shown=scale_cells["suppressed"].map(
        {True: f"fewer than {k} responses", False: "shown"})),
        {"label": "Scale", "n": "Respondents", "mean": SCORE,
         "ci_low": "95% CI low", "ci_high": "95% CI high", "pct_favourable": "% favourable",
         "shown": "Shown"}, "Scale scores at the site", {"n": 0, "pct_favourable": 0, "mean": 1, "ci_low": 1,
                                        "ci_high": 1}))

    item_cells = cells[cells["measure"].isin(items["measure"])].assign(
        label=lambda f: f["measure"] + ": " + f["measure"].map(names).str.slice(0, 70))
    if len(item_cells):
        shown = item_cells[~item_cells["suppressed"]]
        summary = (f"{len(item_cells)} items; the least favourable is "
                   f"{shown.sort_values('pct_favourable').iloc[0]['label']}"
                   if len(shown) else f"All items had {k} or fewer answers.")
        parts.append(chart("principle-items", response_bars(item_cells, k),
                           table(item_cells, {"label": "Item", "n": "Answers",
                                              "pct_favourable": "% favourable",
                                              "pct_unfavourable": "% unfavourable"},
                                 "Answers per item", {"n": 0, "pct_favourable": 1,
                                                      "pct_unfavourable": 1}), summary))

    series = data.unit_series("site", view.site, ("principle",))
    series = series[(series["measure"] == principle) & ~series["suppressed"]].assign(
        label=names[principle])
    trends = data.trends("site", view.site)
    changes = trends[(trends["measure"] == principle) & (trends["flag"] != "no clear change")]
    if len(series):
        parts.append(chart(
            "principle-trend", trend_figure(series, changes.assign(label=names[principle])[
                ["label", "wave", "flag"]], f"{names[principle]} across waves",
                axis=SCORE_AXIS),
            table(series, {"wave": "Wave", "n": "Respondents", "mean": SCORE,
                           "ci_low": "95% CI low", "ci_high": "95% CI high"},
                  "Principle score by wave", {"wave": 0, "n": 0, "mean": 1, "ci_low": 1,
                                              "ci_high": 1}),
            f"{len(series)} waves shown; {len(changes)} significant change(s)."))
    else:
        parts.append(notice(f"No wave of this principle can be shown: {k} or more "
                            "responses are needed."))
    return html.Div(parts)
