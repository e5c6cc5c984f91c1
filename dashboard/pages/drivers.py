"""Drivers: which part of the culture goes most with doctors seeking help early.

A director (own site) or an admin sees each scale's importance (its share of what the
scales explain together of "I would seek help early", from the site's own model when
one is published, else its peer group's or all sites', labelled as such) against the
site's verdict on that scale, with the priority quadrant named and tied to the guide's
actions. A researcher sees the national and peer-group tables, no site.
"""

from __future__ import annotations

import pandas as pd
from dash import html

from dashboard.components import chart, notice, table
from dashboard.figures import BLUE, GREY, VERMILLION, Figure, _base, wrap
from dashboard.pages.glossary import what_this_means
from dashboard.view import View
from published.drivers import (ASSOCIATION, PRIORITY, USED, DriverView, driver_sentence,
                               outcome_name, peer_words, priorities, site_drivers,
                               used_sentence)
from published.scores import SCORE

TITLE = "Drivers"
NEEDS_SITE = "unless researcher"

#: The table view of a site's drivers: column -> header.
SITE_COLUMNS = {"name": "Scale", "share_pct": "Share of what the scales explain (%)",
                "low_pct": "95% range low", "high_pct": "95% range high",
                "weight_pct": "Cross-check: relative weight (%)", "rank": "Rank",
                "verdict": "Your verdict against other sites", "score": SCORE,
                "difference": "Points from other sites' average",
                "quadrant": "Where it falls", "actions": "The guide's actions"}
DIGITS = {"share_pct": 0, "low_pct": 0, "high_pct": 0, "weight_pct": 0, "rank": 0, "score": 1,
          "difference": 1}
#: The importance chart's plot area, in pixels.
PLOT_HEIGHT = 360
#: The used-support (logistic) model's table: column -> header.
USED_COLUMNS = {"name": "Scale", "share_pct": "Share of what the scales explain (%)",
                "low_pct": "95% range low", "high_pct": "95% range high", "rank": "Rank"}


def as_percent(rows: pd.DataFrame) -> pd.DataFrame:
    """The shares as whole percentages, the way the page, the table and the report show
    them."""
    return rows.assign(share_pct=100 * rows["share"], low_pct=100 * rows["share_low"],
                       high_pct=100 * rows["share_high"],
                       weight_pct=100 * rows["relative_weight"])


def importance_figure(view: DriverView, site_label: str) -> Figure:
    """Importance (share, with its range) across; where the site stands up the side (points
    from the other sites' average), marked by its verdict; the priority corner (more than
    an equal share, below other sites) shaded and named.

    Each point is numbered by its rank (1: the largest share); the legend names each
    scale with its verdict."""
    rows = as_percent(view.rows)
    equal = 100 / len(rows)
    right = max(50.0, float(rows["high_pct"].fillna(rows["share_pct"]).max()) + 5)
    depth = max(10.0, float(rows["difference"].abs().max()) + 8) if rows[
        "difference"].notna().any() else 10.0
    # Each point carries its rank and the legend names it: the scales' names written
    # beside points a few pixels apart on a phone would cover each other (and the axis,
    # for the many scales with small shares).
    ranked = rows[rows["difference"].notna()].sort_values("share_pct", ascending=False,
                                                           kind="stable")
    fig = Figure()
    for rank, (_, row) in enumerate(ranked.iterrows(), start=1):
        below = bool(row["below"])
        colour = VERMILLION if below else BLUE
        low, high = row["share_pct"] - row["low_pct"], row["high_pct"] - row["share_pct"]
        fig.add_trace(dict(
            type="scatter", mode="markers+text", cliponaxis=False,
            name=f"{rank} {row['name']}: {'below' if below else 'not below'} other sites",
            x=[row["share_pct"]], y=[round(row["difference"], 1)], text=[row["name"]],
            texttemplate=str(rank), textposition="middle center",
            textfont={"size": 10, "color": "#FFFFFF"},
            marker={"color": colour, "size": 17, "symbol": "diamond" if below else "circle"},
            error_x={"type": "data", "symmetric": False, "color": colour,
                     "visible": bool(pd.notna(high)), "array": [0 if pd.isna(high) else high],
                     "arrayminus": [0 if pd.isna(low) else low]},
            customdata=[["" if pd.isna(row["verdict"]) else row["verdict"], row["score"]]],
            hovertemplate="%{text}<br>share %{x:.0f}%<br>%{y:+.1f} points from other sites"
                          "<br>%{customdata[0]}<extra></extra>"))
    fig["layout"].setdefault("shapes", []).append(
        {"type": "rect", "xref": "x", "yref": "y", "x0": equal, "x1": right, "y0": -depth,
         "y1": 0, "fillcolor": "rgba(213, 94, 0, 0.08)", "line": {"width": 0},
         "layer": "below"})
    fig.add_annotation(x=right, y=-depth, xref="x", yref="y", xanchor="right",
                       yanchor="bottom", text="Priority corner", showarrow=False,
                       font={"color": VERMILLION})
    fig.add_line("x", equal, GREY, "dash", "equal share")
    fig.update_xaxes(title="Importance: share of what the scales explain together (%), "
                           "with its range", range=[0, right])
    fig.update_yaxes(title="Points from the other sites' average", range=[-depth, depth],
                     zeroline=True)
    return _base(fig, f"What goes with seeking help early, against where {site_label} stands",
                 plot_height=PLOT_HEIGHT, subtitle=f"Importance from {view.label}")


def _site_layout(view: View, parts: list) -> html.Div:
    drivers = site_drivers(view.data, view.site, view.wave, view.site_label)
    if drivers is None:
        return html.Div(parts + [notice("No driver results were published for this wave.")])
    parts.append(html.P(driver_sentence(drivers), className="lead", id="drivers-sentence"))
    parts.append(html.P(ASSOCIATION, className="plain-note", id="drivers-association"))
    if drivers.scope != "site":
        parts.append(notice(f"Importance here is from {drivers.label}.", "info"))
    chosen = priorities(drivers)
    if len(chosen):
        parts.append(html.Div([
            html.H2(PRIORITY),
            html.Ul([html.Li([html.Strong(r.name), f" ({100 * r.share:.0f}% of what the "
                              f"scales explain; {r.verdict}). The guide's actions: "
                              f"{r.actions or 'none listed'}."])
                     for r in chosen.itertuples()])], id="drivers-priorities"))
    else:
        parts.append(html.P("No scale is in the priority corner: none that matters more than "
                            "an equal share is below other sites here.",
                            id="drivers-priorities"))
    parts.append(what_this_means(
        "A scale far to the right goes more with doctors saying they would seek help early; "
        "if your site is also below other sites on it, that is where improving the culture "
        "is most likely to go with earlier help-seeking.", "drivers", "verdict"))
    rows = as_percent(drivers.rows)
    summary = (driver_sentence(drivers) + " " + (
        f"Priority: {', '.join(chosen['name'])}." if len(chosen) else
        "No scale is in the priority corner."))
    parts.append(chart("drivers-chart", importance_figure(drivers, view.site_label),
                       table(rows, SITE_COLUMNS, f"Scales by importance, from {drivers.label}",
                             DIGITS, filename="drivers"), summary))
    if drivers.support is not None:
        parts.append(html.P(used_sentence(drivers.support), id="drivers-used-sentence"))
        parts.append(table(as_percent(drivers.support.rows), USED_COLUMNS,
                           f"{outcome_name(USED)}: from {drivers.support.label}",
                           DIGITS, filename="drivers-used-if-needed"))
    return html.Div(parts)


#: The researcher's tables: column -> header.
GROUP_COLUMNS = {"group": "Group", "name": "Scale", "n": "Respondents", "sites": "Sites",
                 "share_pct": "Share of R2 (%)", "low_pct": "95% low", "high_pct": "95% high",
                 "weight_pct": "Relative weight (%)", "rank": "Rank",
                 "favourable_rank": "Rank, agreeing only", "r2": "R2"}


def group_rows(view: View) -> pd.DataFrame:
    """National and peer-group rows of oc_intend, with the favourable check's rank."""
    frames = []
    for scope, unit, group in [("national", "national", "All sites")] + [
            ("peer", g, peer_words(g).capitalize()) for g in view.data.peer_groups()]:
        rows = view.data.drivers(scope, unit, view.wave, "oc_intend")
        if rows.empty:
            continue
        check = view.data.drivers(scope, unit, view.wave, "oc_intend_favourable")
        rows = rows.assign(group=group, favourable_rank=rows["scale"].map(
            dict(zip(check["scale"], check["rank"]))))
        frames.append(as_percent(rows))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _researcher_layout(view: View, parts: list) -> html.Div:
    rows = group_rows(view)
    if rows.empty:
        return html.Div(parts + [notice("No driver results were published for this wave.")])
    national = rows[rows["group"] == "All sites"]
    parts.append(html.P(ASSOCIATION, className="plain-note", id="drivers-association"))
    parts.append(what_this_means(
        "Each scale's general dominance (its average gain in R2 over all 255 subset models) "
        "as a share of the full model's R2, with a 95% interval from resampling whole "
        "sites; peer groups of fewer than 5 sites and sites are not listed here.", "drivers"))
    figure = Figure()
    figure.add_trace(dict(type="bar", orientation="h", name="All sites",
                          x=national["share_pct"][::-1],
                          y=[wrap(n, 22) for n in national["name"][::-1]],
                          marker={"color": BLUE},
                          error_x={"type": "data", "symmetric": False,
                                   "array": (national["high_pct"] - national["share_pct"])[::-1],
                                   "arrayminus": (national["share_pct"]
                                                  - national["low_pct"])[::-1]}))
    figure.update_xaxes(title="Share of R2 (%), 95% site-bootstrap interval")
    figure = _base(figure, f"All sites: what goes with seeking help early, {view.wave}",
                   plot_height=50 * len(national) + 10)
    parts.append(chart("drivers-national", figure,
                       table(rows, GROUP_COLUMNS, "National and peer-group driver models",
                             DIGITS | {"n": 0, "sites": 0, "favourable_rank": 0, "r2": 3},
                             filename="drivers-groups"),
                       f"Nationally {national['name'].iloc[0].lower()} ranks first "
                       f"({national['share_pct'].iloc[0]:.0f}% of R2 = "
                       f"{national['r2'].iloc[0]:.2f})."))
    used = used_rows(view)
    if len(used):
        parts.append(table(used, {"group": "Group", **USED_COLUMNS,
                                  "share_pct": "Share of McFadden R2 (%)", "n": "Respondents",
                                  "sites": "Sites", "r2": "McFadden R2"},
                           f"{outcome_name(USED)}: logistic models (95% ranges from a "
                           "one-step site bootstrap)",
                           DIGITS | {"n": 0, "sites": 0, "r2": 3},
                           filename="drivers-used-if-needed"))
    return html.Div(parts)


def used_rows(view: View) -> pd.DataFrame:
    """National and peer-group rows of the used-support (logistic) model, as percentages."""
    frames = [as_percent(rows.assign(group=group)) for scope, unit, group in
              [("national", "national", "All sites")] + [
                  ("peer", g, peer_words(g).capitalize()) for g in view.data.peer_groups()]
              if len(rows := view.data.drivers(scope, unit, view.wave, USED))]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def layout(view: View) -> html.Div:
    heading = (f"{view.site_label}: what goes with seeking help early, {view.wave}"
               if view.site else f"What goes with seeking help early, {view.wave}")
    parts = [html.H1(heading), view.controls(with_site=True),
             html.P("Doctors were asked whether they would seek help early rather than wait "
                    "if they began to struggle. This page shows which parts of the culture "
                    "go most with saying yes.", className="lead")]
    if view.site:
        return _site_layout(view, parts)
    return _researcher_layout(view, parts)
