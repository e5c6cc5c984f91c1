"""Pure figure builders: small DataFrames in, plotly figure dicts out.

No data access and no knowledge of who is looking: callers pass rows already scoped
and labelled. Figures are plain dicts in plotly's schema rather than
`plotly.graph_objects`, whose per-attribute validation cost ~50-100 ms a figure, most
of a page's budget; `go.Figure(fig)` validates one when a test wants to.

Colours are the Okabe-Ito palette (distinguishable with the common colour-vision
deficiencies); meaning never rests on colour alone (shapes, text and the table view
carry it too). Every axis says what its number is.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

BLUE, ORANGE, VERMILLION, SKY = "#0072B2", "#E69F00", "#D55E00", "#56B4E9"
GREEN, PURPLE, YELLOW, BLACK, GREY = "#009E73", "#CC79A7", "#F0E442", "#000000", "#BBBBBB"
SERIES = [BLUE, ORANGE, GREEN, VERMILLION, SKY, PURPLE, BLACK, YELLOW]
#: Orange (lower) to purple (higher) through white: ColorBrewer PuOr, colour-blind safe.
DIVERGING = [[0.0, "#B35806"], [0.25, "#F1A340"], [0.5, "#F7F7F7"], [0.75, "#998EC3"],
             [1.0, "#542788"]]
#: Axis titles short enough for a tablet; the full definitions are in DEFINITIONS.
PRINCIPLE_AXIS = "Principle score, 0-100 (higher is better)"
SCALE_AXIS = "Scale score, 1-5 (higher is better)"
DEFINITIONS = ("A scale score is the mean of a person's answers to its items (1-5, negatively "
               "worded items reversed), averaged over respondents; a principle score is the "
               "mean of its scales' scores rescaled to 0-100.")


_AXIS = {"gridcolor": "#E5E5E5", "zerolinecolor": "#BBBBBB", "automargin": True,
         "linecolor": "#888888"}


class Figure(dict):
    """A plotly figure as a dict, with the few builder methods used here."""

    def __init__(self, data: list | None = None) -> None:
        super().__init__(data=list(data or []), layout={"xaxis": dict(_AXIS),
                                                         "yaxis": dict(_AXIS)})

    def add_trace(self, trace: dict) -> None:
        self["data"].append(_plain(trace))

    def update_layout(self, **values) -> None:
        self["layout"].update(_plain(values))

    def update_xaxes(self, title: str | None = None, **values) -> None:
        self["layout"]["xaxis"].update(_plain(values) | ({"title": {"text": title}}
                                                         if title else {}))

    def update_yaxes(self, title: str | None = None, **values) -> None:
        self["layout"]["yaxis"].update(_plain(values) | ({"title": {"text": title}}
                                                         if title else {}))

    def add_line(self, axis: str, value: float, colour: str, dash: str = "solid",
                 label: str = "") -> None:
        """A horizontal (axis 'y') or vertical (axis 'x') reference line across the plot."""
        across = "x" if axis == "y" else "y"
        shape = {"type": "line", "xref": f"{across} domain" if axis == "y" else "x",
                 "yref": "y" if axis == "y" else "y domain",
                 f"{axis}0": value, f"{axis}1": value, f"{across}0": 0, f"{across}1": 1,
                 "line": {"color": colour, "dash": dash, "width": 1.5}}
        self["layout"].setdefault("shapes", []).append(shape)
        if label:
            self.add_annotation(**{axis: value, across: 1 if axis == "x" else 0,
                                   f"{across}ref": f"{across} domain", "text": label,
                                   "showarrow": False, "yanchor": "bottom",
                                   "xanchor": "left" if axis == "y" else "right"})

    def add_annotation(self, **values) -> None:
        self["layout"].setdefault("annotations", []).append(_plain(values))


def _plain(value):
    """JSON-ready copies: arrays and Series become lists, NaN becomes None."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (pd.Series, pd.Index, np.ndarray, list, tuple)):
        return [_plain(v) for v in (value.tolist() if hasattr(value, "tolist") else value)]
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, np.generic):
        return _plain(value.item())
    if value is pd.NA:
        return None
    return value


def _base(fig: Figure, title: str, height: int = 380) -> Figure:
    fig.update_layout(title={"text": title, "x": 0, "font": {"size": 15}}, height=height,
                      margin={"l": 10, "r": 10, "t": 50, "b": 90},
                      paper_bgcolor="#FFFFFF", plot_bgcolor="#FFFFFF",
                      font={"family": "system-ui, sans-serif", "size": 13},
                      legend={"orientation": "h", "y": -0.3, "yanchor": "top"})
    return fig


def hidden_text(k: int) -> str:
    return f"fewer than {k} responses"


def principle_figure(rows: pd.DataFrame, site_label: str) -> Figure:
    """Score (with 95% CI) against target per principle, largest gap at the top.

    rows: name, score, ci_low, ci_high, target, gap, certainty, n (ordered by priority).
    """
    rows = rows.iloc[::-1]
    fig = Figure()
    fig.add_trace(dict(type="scatter",
        x=rows["score"], y=rows["name"], mode="markers", name=f"{site_label}: score (95% CI)",
        marker={"color": BLUE, "size": 11, "symbol": "circle"},
        error_x={"type": "data", "symmetric": False, "color": BLUE,
                 "array": rows["ci_high"] - rows["score"],
                 "arrayminus": rows["score"] - rows["ci_low"]},
        customdata=np.stack([rows["gap"], rows["certainty"], rows["n"]], axis=-1),
        hovertemplate="%{y}<br>score %{x:.1f}<br>gap %{customdata[0]:.1f} "
                      "(%{customdata[1]})<br>n = %{customdata[2]}<extra></extra>"))
    fig.add_trace(dict(type="scatter",
        x=rows["target"], y=rows["name"], mode="markers", name="target",
        marker={"color": VERMILLION, "size": 12, "symbol": "diamond-open",
                "line": {"width": 2}},
        hovertemplate="%{y}<br>target %{x:.1f}<extra></extra>"))
    fig.update_xaxes(title=PRINCIPLE_AXIS, range=[0, 100])
    return _base(fig, "Principles: score against target (largest gap first)",
                 height=120 + 45 * len(rows))


def response_bars(rows: pd.DataFrame, k: int) -> Figure:
    """Stacked % unfavourable / neither / favourable per item; hidden items say so.

    rows: label, pct_unfavourable, pct_favourable, n, suppressed.
    """
    rows = rows.iloc[::-1].copy()
    shown = ~rows["suppressed"].astype(bool)
    unf = rows["pct_unfavourable"].where(shown)
    fav = rows["pct_favourable"].where(shown)
    neither = (100 - unf - fav).clip(lower=0)
    fig = Figure()
    for name, values, colour in (("Unfavourable", unf, VERMILLION), ("Neither", neither, GREY),
                                 ("Favourable", fav, BLUE)):
        fig.add_trace(dict(type="bar",
            x=values, y=rows["label"], orientation="h", name=name, marker={"color": colour},
            text=[f"{v:.0f}%" if pd.notna(v) and v >= 6 else "" for v in values],
            textposition="inside", customdata=rows["n"],
            hovertemplate=f"%{{y}}<br>{name.lower()} %{{x:.1f}}%<br>n = %{{customdata}}"
                          "<extra></extra>"))
    for label in rows.loc[~shown, "label"]:
        fig.add_annotation(x=50, y=label, text=hidden_text(k), showarrow=False,
                           font={"color": BLACK})
    fig.update_layout(barmode="stack")
    fig.update_xaxes(title="% of answers (negatively worded items reversed; "
                           "don't know excluded)", range=[0, 100])
    return _base(fig, "How people answered each item", height=140 + 34 * len(rows))


def trend_figure(series: pd.DataFrame, changes: pd.DataFrame, title: str,
                 axis: str = SCALE_AXIS) -> Figure:
    """One line per measure across waves with 95% CIs; significant changes starred.

    series: label, wave, mean, ci_low, ci_high, n; changes: label, wave, flag (only rows
    whose change is significant after FDR control).
    """
    fig = Figure()
    for position, (label, rows) in enumerate(series.groupby("label", sort=False)):
        colour = SERIES[position % len(SERIES)]
        fig.add_trace(dict(type="scatter",
            x=rows["wave"], y=rows["mean"], mode="lines+markers", name=label,
            line={"color": colour}, marker={"color": colour},
            error_y={"type": "data", "symmetric": False, "color": colour,
                     "array": rows["ci_high"] - rows["mean"],
                     "arrayminus": rows["mean"] - rows["ci_low"]},
            customdata=rows["n"],
            hovertemplate=f"{label}<br>%{{x}}: %{{y:.2f}}<br>n = %{{customdata}}"
                          "<extra></extra>"))
    if len(changes):
        marked = changes.merge(series, on=["label", "wave"])
        fig.add_trace(dict(type="scatter",
            x=marked["wave"], y=marked["mean"], mode="markers+text", name="significant change",
            marker={"symbol": "star", "size": 16, "color": BLACK},
            text=marked["flag"], textposition="top center",
            hovertemplate="%{text}<extra></extra>"))
    fig.update_xaxes(title="Survey wave (year)", dtick=1)
    fig.update_yaxes(title=axis)
    return _base(fig, title, height=420)


#: A marker and colour per verdict word (shape and colour both carry it); sites not
#: compared (too few others) are grey circles.
VERDICT_MARKS = {"clearly below": ("triangle-down", VERMILLION),
                 "below, not certain": ("triangle-down-open", VERMILLION),
                 "in line": ("circle", SKY),
                 "above, not certain": ("triangle-up-open", BLUE),
                 "clearly above": ("triangle-up", BLUE)}


def funnel_figure(points: pd.DataFrame, params: dict, measure: str,
                  axis: str = SCALE_AXIS) -> Figure:
    """Each site's mean against its respondents, marked with its published verdict, and
    the limits it was judged by: what the other sites give a site of its size (leave-one-
    out random effects, `stats.verdicts`), drawn as an interval at the site's point, so
    a point outside its own interval is exactly a site read "clearly" below or above.

    points: label, n, mean, highlight (bool), verdict, low, high; optionally x (where to
    draw the point, e.g. an anonymous peer's banded count), n_shown (the count hover text
    gives) and with_interval (whether to draw the point's interval; peers drawn at a band
    get none, since its width would hint at their exact n). The highlighted site's
    interval is always drawn.
    """
    points = points.assign(x=points["x"] if "x" in points else points["n"].astype(float),
                           n_shown=points["n_shown"] if "n_shown" in points
                           else points["n"].astype(str),
                           with_interval=points["with_interval"] if "with_interval" in points
                           else True)
    fig = Figure()
    mine = points[points["highlight"]]
    fig.add_line("y", params["target"], BLACK, label="all-sites mean")
    if len(mine) and pd.notna(mine["low"].iloc[0]):
        row = mine.iloc[0]
        fig.add_trace(dict(type="scatter", x=[row["x"], row["x"]], y=[row["low"], row["high"]],
                           mode="lines+markers", line={"color": BLACK, "width": 2},
                           marker={"symbol": "line-ew", "size": 16,
                                   "line": {"color": BLACK, "width": 2}},
                           name=f"what the other sites give a site of its size "
                                f"(for {row['label']})", hoverinfo="skip"))
    others = points[~points["highlight"]]
    marks = [VERDICT_MARKS.get(v, ("circle", GREY)) for v in others["verdict"]]
    fig.add_trace(dict(
        type="scatter", x=others["x"], y=others["mean"], mode="markers", name="other sites",
        text=others["label"], showlegend=False,   # the verdicts' entries below stand for it
        marker={"color": [c for _, c in marks], "symbol": [s for s, _ in marks], "size": 10,
                "line": {"color": [c for _, c in marks], "width": 1.5}},
        customdata=np.stack([others["verdict"], others["n_shown"]], axis=-1),
        hovertemplate="%{text}<br>n = %{customdata[1]}<br>mean %{y:.2f}"
                      "<br>%{customdata[0]}<extra></extra>"))
    bars = others[others["with_interval"].astype(bool) & others["low"].notna()]
    if len(bars):
        fig.add_trace(dict(type="scatter", x=bars["x"], y=(bars["low"] + bars["high"]) / 2,
                           mode="markers", marker={"size": 1, "color": GREY, "opacity": 0},
                           error_y={"type": "data", "symmetric": True,
                                    "array": (bars["high"] - bars["low"]) / 2,
                                    "color": GREY, "thickness": 1, "width": 4},
                           name="what the other sites give each site of its size",
                           hoverinfo="skip"))
    # A legend entry per verdict shown (the points carry their own marks).
    for verdict in [v for v in VERDICT_MARKS if v in set(others["verdict"])]:
        symbol, colour = VERDICT_MARKS[verdict]
        fig.add_trace(dict(type="scatter", x=[None], y=[None], mode="markers", name=verdict,
                           marker={"color": colour, "symbol": symbol, "size": 10},
                           hoverinfo="skip"))
    if len(mine):
        fig.add_trace(dict(type="scatter", x=mine["x"], y=mine["mean"], mode="markers+text",
                           name=mine["label"].iloc[0], text=mine["label"],
                           textposition="top center",
                           marker={"color": ORANGE, "size": 14, "symbol": "diamond",
                                   "line": {"color": BLACK, "width": 1.5}},
                           customdata=mine["verdict"],
                           hovertemplate="%{text}<br>n = %{x}<br>mean %{y:.2f}<br>"
                                         "%{customdata}<extra></extra>"))
    fig.update_xaxes(title="Respondents at the site (n)")
    fig.update_yaxes(title=axis)
    return _base(fig, f"Funnel plot: {measure}, each site against the other sites",
                 height=460)


def caterpillar_figure(rows: pd.DataFrame, measure: str, axis: str = SCALE_AXIS) -> Figure:
    """Shrunken (empirical-Bayes) site means with 95% intervals, lowest first.

    rows: label, eb_mean, eb_low, eb_high, highlight.
    """
    rows = rows.sort_values("eb_mean").reset_index(drop=True)
    colours = [ORANGE if h else BLUE for h in rows["highlight"]]
    fig = Figure()
    fig.add_trace(dict(
        type="scatter", x=list(range(1, len(rows) + 1)), y=rows["eb_mean"], mode="markers",
        marker={"color": colours, "size": [12 if h else 7 for h in rows["highlight"]],
                "symbol": ["diamond" if h else "circle" for h in rows["highlight"]]},
        error_y={"type": "data", "symmetric": False, "array": rows["eb_high"] - rows["eb_mean"],
                 "arrayminus": rows["eb_mean"] - rows["eb_low"], "color": GREY},
        text=rows["label"], showlegend=False,
        hovertemplate="%{text}<br>shrunken mean %{y:.2f}<extra></extra>"))
    fig.update_xaxes(title="Sites ordered by shrunken mean (1 = lowest)")
    fig.update_yaxes(title=axis.replace("score", "shrunken score", 1))
    return _base(fig, f"Caterpillar plot: {measure} (empirical-Bayes means, 95% intervals)",
                 height=400)


def equity_heatmap(matrix: pd.DataFrame, hidden: pd.DataFrame, k: int) -> Figure:
    """Group minus rest of site per scale; hidden cells grey and labelled, never blank.

    matrix: groups x measures of differences (NaN where hidden or not comparable);
    hidden: same shape, True where the group's cell was suppressed.
    """
    groups, measures = list(matrix.index), list(matrix.columns)
    values = matrix.to_numpy(float)
    hide = hidden.reindex(index=groups, columns=measures).fillna(False).to_numpy(bool)
    text = np.where(hide, f"< {k}", np.where(np.isnan(values), "n/a",
                                             np.vectorize(lambda v: f"{v:+.2f}")(
                                                 np.nan_to_num(values))))
    limit = max(0.3, float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 0.3)
    fig = Figure()
    fig.add_trace(dict(type="heatmap",
        z=np.where(hide, np.nan, values), x=measures, y=groups, zmin=-limit, zmax=limit,
        colorscale=DIVERGING, text=text, texttemplate="%{text}", hoverongaps=False,
        colorbar={"title": "group minus<br>rest of site"},
        hovertemplate="%{y} / %{x}: %{text}<extra></extra>"))
    fig.add_trace(dict(type="heatmap",
        z=np.where(hide, 1.0, np.nan), x=measures, y=groups, showscale=False,
        colorscale=[[0, "#DDDDDD"], [1, "#DDDDDD"]], text=np.where(hide, text, ""),
        texttemplate="%{text}", hoverongaps=False,
        hovertemplate=f"%{{y}} / %{{x}}: {hidden_text(k)}<extra></extra>"))
    fig.update_xaxes(title="Scale (difference in 1-5 score: the group minus everyone else "
                           "at the site)", side="top")
    fig.update_yaxes(autorange="reversed")
    return _base(fig, f"Equity: groups against the rest of the site (grey: {hidden_text(k)})",
                 height=160 + 28 * len(groups))


def reliability_figure(rows: pd.DataFrame, title: str) -> Figure:
    """Cronbach's alpha with Feldt 95% CI and omega per scale, against .70.

    rows: label, alpha, ci_low, ci_high, omega_total, n.
    """
    fig = Figure()
    fig.add_trace(dict(type="scatter",
        x=rows["alpha"], y=rows["label"], mode="markers", name="alpha (95% CI)",
        marker={"color": BLUE, "size": 10},
        error_x={"type": "data", "symmetric": False, "array": rows["ci_high"] - rows["alpha"],
                 "arrayminus": rows["alpha"] - rows["ci_low"], "color": BLUE},
        customdata=rows["n"], hovertemplate="%{y}: alpha %{x:.2f}, n = %{customdata}"
                                            "<extra></extra>"))
    fig.add_trace(dict(type="scatter", x=rows["omega_total"], y=rows["label"], mode="markers",
                             name="omega total", marker={"color": ORANGE, "size": 10,
                                                         "symbol": "square-open"}))
    fig.add_line("x", 0.70, BLACK, "dash", ".70 criterion")
    fig.update_xaxes(title="Reliability coefficient (0-1; .70 or more is adequate)",
                     range=[0.4, 1.0])
    return _base(fig, title, height=140 + 36 * len(rows))


def question_figure(rows: pd.DataFrame, title: str) -> Figure:
    """Each question's % favourable at the site, last year's, and the peer group's worst
    to best with its median where the caller left them in (NaN where withheld).

    rows: label (the full question), pct_favourable, pct_previous, peer_best,
    peer_median, peer_worst, verdict, change_verdict; in reading order (first at the top).
    """
    import textwrap

    labels = ["<br>".join(textwrap.wrap(str(q), 48, break_long_words=False))
              for q in rows["label"]]
    fig = Figure()
    has_peers = rows["peer_best"].notna()
    if has_peers.any():
        # One line from the peer group's worst to its best per question (None breaks it).
        xs, ys = [], []
        for label, worst, best in zip(labels, rows["peer_worst"], rows["peer_best"]):
            if pd.notna(worst) and pd.notna(best):
                xs += [worst, best, None]
                ys += [label, label, None]
        fig.add_trace(dict(type="scatter", x=xs, y=ys, mode="lines",
                           name="peer group: worst to best", line={"color": GREY, "width": 6},
                           hoverinfo="skip"))
        fig.add_trace(dict(type="scatter", x=rows["peer_median"], y=labels, mode="markers",
                           name="peer group average (median)",
                           marker={"color": BLACK, "size": 10, "symbol": "line-ns-open",
                                   "line": {"width": 2}},
                           hovertemplate="%{y}<br>peer average %{x:.1f}%<extra></extra>"))
    fig.add_trace(dict(type="scatter", x=rows["pct_previous"], y=labels, mode="markers",
                       name="last year", marker={"color": ORANGE, "size": 10,
                                                 "symbol": "circle-open", "line": {"width": 2}},
                       customdata=rows["change_verdict"],
                       hovertemplate="%{y}<br>last year %{x:.1f}% (%{customdata})"
                                     "<extra></extra>"))
    fig.add_trace(dict(type="scatter", x=rows["pct_favourable"], y=labels, mode="markers",
                       name="this site", marker={"color": BLUE, "size": 12},
                       customdata=rows["verdict"],
                       hovertemplate="%{y}<br>%{x:.1f}% favourable<br>against the other "
                                     "sites: %{customdata}<extra></extra>"))
    fig.update_xaxes(title="% favourable (for a negatively worded question, % disagreeing)",
                     range=[0, 100])
    fig.update_yaxes(autorange="reversed")
    # Categories are spaced evenly: every row gets the height of the longest label.
    row_height = 17 * max((label.count("<br>") + 1 for label in labels), default=1) + 12
    return _base(fig, title, row_height * len(labels) + 40)
