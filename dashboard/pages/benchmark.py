"""Benchmark: funnel plot and caterpillar plot of one measure across sites, with the
viewer's site highlighted, and best / average / worst of the site's peer group.

Anonymous peers ("Peer N", renumbered in every view) show their respondent count as a
band shared by at least three peers, in tables, hover text and the funnel's x position
alike (`outputs.peer_bands`): an exact count, the same in every view of a wave, would
let a director follow a peer from view to view. Verdicts come from the exact counts, computed once in the pipeline: every word here is
the published one, the same the site report and `culture run` give for the cell.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pandas as pd
from dash import Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate

from dashboard.components import chart, notice, table
from dashboard.figures import caterpillar_figure, funnel_figure
from dashboard.pages.glossary import what_this_means
from dashboard.view import View, parse_query, view_from_request
from outputs.peer_bands import band_of, count_bands, plotted_count
from published.layout import MIN_OTHER_SITES, MIN_SITES_FOR_DISTRIBUTION, distribution_shown
from published.scores import SCORE, SCORE_AXIS, headline, headline_params

TITLE = "Benchmark"
NEEDS_SITE = "unless researcher"


def _measure_options(view: View) -> list[dict]:
    measures = view.data.measures()
    chosen = measures[measures["measure_kind"].isin(["principle", "scale"])]
    return [{"label": ("Principle: " if kind == "principle" else "Scale: ") + name,
             "value": f"{kind}:{measure}"}
            for kind, measure, name in chosen[["measure_kind", "measure", "name"]].itertuples(
                index=False)]


def layout(view: View) -> html.Div:
    options = _measure_options(view)
    values = [o["value"] for o in options]
    asked = view.query.get("measure")
    value = asked if asked in values else values[0]
    title = f"{view.site_label} against all sites, {view.wave}" if view.site else \
        f"All sites, {view.wave}"
    return html.Div([
        html.H1(title), view.controls(),
        html.Div([html.Label("Measure", htmlFor="benchmark-measure"),
                  dcc.Dropdown(id="benchmark-measure", options=options, value=value,
                               clearable=False)], className="control wide"),
        html.Div(benchmark_body(view, value), id="benchmark-body"),
    ])


def benchmark_body(view: View, value: str) -> list:
    """Funnel, caterpillar and the peer-group table for one measure ('kind:id')."""
    kind, _, measure = value.partition(":")
    names = view.data.measure_names()
    if measure not in names or kind not in ("scale", "principle"):
        return [notice(f"{value!r} is not a measure of this instrument.", "error")]
    axis = SCORE_AXIS
    points, params = view.data.funnel(view.wave, kind, measure)
    points, params = headline(points, kind), headline_params(params, kind)
    if params is None or points.empty:
        return [notice(f"No funnel for {names[measure]} in {view.wave}: too few sites have "
                       f"{view.k} or more responses.")]
    labels = view.labels(list(points["site_code"]))
    stable = points["site_code"].map(labels.stable).astype(bool)
    bands = count_bands(list(points.loc[~stable, "n"]))
    points = points.assign(
        label=points["site_code"].map(labels), highlight=points["site_code"] == view.site,
        n_shown=[f"{int(r.n)}" if keep else band_of(r.n, bands).label(view.k)
                 for r, keep in zip(points.itertuples(), stable)],
        x=[float(r.n) if keep else plotted_count(band_of(r.n, bands), view.k)
           for r, keep in zip(points.itertuples(), stable)],
        # A peer drawn at its band gets no interval of its own: its width would hint at
        # the exact count the band hides.
        with_interval=stable.to_numpy(),
        judged_by=[_interval_words(r, keep) for r, keep in zip(points.itertuples(), stable)])
    # In the view's label order, not the store's (site code) order, which would line the
    # same peer up at the same place in every view's figure.
    points = points.sort_values("label", kind="stable").reset_index(drop=True)
    mine = points[points["highlight"]]
    outside = points[points["flagged"].astype(bool)]
    summary = (f"{len(points)} sites, each judged against the other sites, leaving the site "
               f"itself out. " + (
        f"{view.site_label}: {mine['verdict'].iloc[0]} (score {mine['mean'].iloc[0]:.1f} from "
        f"{int(mine['n'].iloc[0])} respondents; {mine['judged_by'].iloc[0]}). "
        if len(mine) else "")
        + f"{len(outside)} site(s) outside what the other sites give a site of their size."
        + (" Peers' respondent counts are shown in bands of three or more peers, and their "
           "points drawn at their band's middle." if (~stable).any() else ""))
    # The rule's technical name is for those who read the Methods page, not a director.
    rule = {} if view.viewer.role == "director" else {"rule": "Rule (see Methods)"}
    parts = [what_this_means(
                 "Each dot is a site. A site outside the funnel differs from the other sites "
                 "by more than chance and its number of answers would explain; inside it, "
                 "the difference could be chance.", "funnel", "verdict", "prediction-interval"),
             chart("benchmark-funnel", funnel_figure(points, params, names[measure], axis),
                   table(points.sort_values("label"),
                         {"label": "Site", "n_shown": "Respondents", "mean": SCORE,
                          "verdict": "Against the other sites", "judged_by": "Judged by"}
                         | rule, "Funnel plot points", {"mean": 1}),
                   summary)]
    shrunk = headline(view.data.shrunken(view.wave, kind, measure), kind)
    shrunk_stable = shrunk["site_code"].map(labels.stable).astype(bool)
    shrunk = shrunk.assign(
        label=shrunk["site_code"].map(labels), highlight=shrunk["site_code"] == view.site,
        n_shown=[f"{int(n)}" if keep else band_of(n, bands).label(view.k)
                 for n, keep in zip(shrunk["n"], shrunk_stable)])
    parts.append(what_this_means(
        "Sites from lowest to highest, each score adjusted for how many people answered, so "
        "a small site does not top or tail the list by luck. Where the bars overlap, the "
        "order could easily change.", "caterpillar", "shrunken-mean"))
    parts.append(chart("benchmark-caterpillar", caterpillar_figure(shrunk, names[measure], axis),
                       table(shrunk, {"label": "Site", "n_shown": "Respondents",
                                      "mean": "Score as measured",
                                      "eb_mean": "Score allowing for size",
                                      "eb_low": "95% low", "eb_high": "95% high",
                                      "rank": "Rank (1 = highest)"},
                             "Site scores allowing for their size",
                             {"rank": 0, "mean": 1, "eb_mean": 1, "eb_low": 1,
                              "eb_high": 1}),
                       "Small sites are pulled towards the all-sites mean in proportion to "
                       "their uncertainty, so their rank is fair to them."))
    if view.site:
        parts.append(_peer_table(view, kind, names))
    return parts


#: The peer table's difference column: short, so the table fits its card.
VS_PEERS = "Less the other sites' mean (interval)"
VS_PEERS_NOTE = ("The difference from the other sites' mean has an interval that carries "
                 "their spread: a difference is clear when the interval excludes 0.")


def _peer_table(view: View, kind: str, names: dict[str, str]) -> html.Div:
    peer = view.peer_group
    distribution = headline(view.data.peer_distribution(peer, view.wave, kind), kind)
    own = headline(view.data.benchmarks(view.site, view.wave, kind), kind)
    own = own[["measure", "mean"]].assign(vs_peers=[
        _difference_words(r) for r in own.itertuples()])
    rows = distribution.merge(own, on="measure", how="left").assign(
        label=lambda f: f["measure"].map(names))
    if rows.empty:
        return notice("No peer-group comparison is available for this wave.")
    sites = int(rows["sites"].max())
    if view.viewer.role == "director" and not distribution_shown(sites):
        # Among a few anonymous peers, a best or worst score is one peer's own.
        return html.Div([
            html.H2(f"This site against its peer group ({peer.replace('_', ' ')})"),
            html.P(f"The peer group has {sites} sites; best, average and worst are shown "
                   f"from {MIN_SITES_FOR_DISTRIBUTION} sites, so that no figure is one "
                   f"peer's own score. " + VS_PEERS_NOTE),
            table(rows, {"label": "Measure", "mean": "This site",
                         "vs_peers": VS_PEERS},
                  "This site against the other sites of its peer group", {"mean": 1}),
            _peer_meaning()])
    return html.Div([
        html.H2(f"Best, average and worst in the peer group ({peer.replace('_', ' ')})"),
        table(rows, {"label": "Measure", "mean": "This site", "best": "Best",
                     "q3": "Upper quartile", "median": "Average (median)", "q1": "Lower quartile",
                     "worst": "Worst", "sites": "Sites",
                     "vs_peers": VS_PEERS},
              "Site means in the peer group (each site's mean; sites shown only with "
              f"{view.k} or more responses)",
              {"sites": 0} | {c: 1 for c in ("mean", "best", "q3", "median", "q1", "worst")}),
        html.P(VS_PEERS_NOTE), _peer_meaning()])


def _peer_meaning() -> html.P:
    return what_this_means("A positive difference means the site scores above the average "
                           "of the other sites of its type; the difference is clear only "
                           "when its interval does not include 0.", "peer-group",
                           "peer-spread")


def _difference_words(row) -> str:
    """The site's difference from what the other sites of its peer group achieve, with
    the interval that carries their spread, or why there is none."""
    if pd.isna(row.diff_vs_peer):
        return row.diff_vs_peer_note or "not compared"
    return (f"{row.diff_vs_peer:+.1f} ({row.diff_vs_peer_low:+.1f} to "
            f"{row.diff_vs_peer_high:+.1f})")


def _interval_words(row, exact: bool) -> str:
    """What a verdict was judged by, in words: the limits the other sites give a site of
    this size (a peer at a band gets them without the numbers). The rule's name is a
    column of its own, shown to admins and researchers."""
    if pd.isna(row.low):
        return f"fewer than {MIN_OTHER_SITES} other sites: not compared"
    judged = f"against the other {int(row.others)} sites"
    if not exact:
        return judged
    return f"{judged}: clearly different outside {row.low:.1f} to {row.high:.1f}"


def register(app) -> None:
    @app.callback(Output("benchmark-body", "children"), Input("benchmark-measure", "value"),
                  State("url", "search"), prevent_initial_call=True)
    def update_benchmark(value: str, search: str):
        # Authorised afresh: a crafted request naming another site is refused (403).
        view = view_from_request("/benchmark", search, NEEDS_SITE)
        return benchmark_body(view, value)

    @app.callback(Output("url", "search", allow_duplicate=True),
                  Input("benchmark-measure", "value"), State("url", "search"),
                  prevent_initial_call=True)
    def remember_measure(value: str, search: str):
        # The measure joins the URL, as the site and the wave do: the view can be
        # bookmarked and shared, and a change of site or wave keeps the measure.
        query = parse_query(search)
        if not isinstance(value, str) or query.get("measure") == value:
            raise PreventUpdate
        if "measure" not in query:
            # The dropdown reports its first value as the page mounts: that is the page's
            # own default, and writing it would race the router's own URL update (which
            # adds the wave) and drop the wave.
            view = view_from_request("/benchmark", search, NEEDS_SITE)
            if value == _measure_options(view)[0]["value"]:
                raise PreventUpdate
        return "?" + urlencode(query | {"measure": value})
