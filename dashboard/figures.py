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

import re
import textwrap

import numpy as np
import pandas as pd

from published.scores import SCORE, SCORE_AXIS, SCORE_DEFINITION

BLUE, ORANGE, VERMILLION, SKY = "#0072B2", "#E69F00", "#D55E00", "#56B4E9"
GREEN, PURPLE, YELLOW, BLACK, GREY = "#009E73", "#CC79A7", "#F0E442", "#000000", "#BBBBBB"
#: Line colours, darkest first; no yellow (unreadable on white). Charts with many series
#: draw small multiples rather than relying on telling these apart.
SERIES = [BLUE, VERMILLION, GREEN, BLACK, PURPLE, ORANGE, SKY]
#: Orange (lower) to purple (higher) through white: ColorBrewer PuOr, colour-blind safe.
DIVERGING = [[0.0, "#B35806"], [0.25, "#F1A340"], [0.5, "#F7F7F7"], [0.75, "#998EC3"],
             [1.0, "#542788"]]
#: Every score a person sees is out of 100 (`published.scores`); the names stay so that
#: pages importing them read the one wording.
PRINCIPLE_AXIS = SCALE_AXIS = SCORE_AXIS
DEFINITIONS = SCORE_DEFINITION
#: The mark and words for the viewer's own site in every comparison chart.
YOU = "You"
#: Characters per line for text inside a chart: a 390 px phone leaves ~350 px for a
#: chart, about 46 characters of 13 px text; titles (15 px) a few fewer.
LINE, TITLE_LINE = 46, 42


def wrap(text: str, width: int = LINE) -> str:
    """`text` in full, broken at spaces into lines of at most `width` characters with
    plotly's <br> (plotly never wraps text itself, and cuts or overlaps what does not
    fit). Existing <br>s are kept."""
    return "<br>".join(line for part in str(text).split("<br>")
                       for line in (textwrap.wrap(part, width, break_long_words=False)
                                    or [""]))


def lines(text: str) -> int:
    return str(text).count("<br>") + 1


def slug(text: str) -> str:
    """A file name stem from a title: lower case words joined by hyphens."""
    plain = re.sub(r"<[^>]+>", " ", str(text))
    return re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-")[:80] or "chart"


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


#: Height of plotly's mode bar above a plot: a title starts below it, never under it.
MODEBAR = 36
#: Pixels per line of 13 px text; a chart about 340 px wide on a phone (for the legend);
#: x axis titles are centred under a plot narrower than the chart, so wrap shorter.
LINE_PX, PHONE_PX, X_TITLE_LINE = 18, 320, 36
#: A small multiple's panel is under half a phone's chart: ~140 px, 18 characters.
PANEL_LINE = 18


def _base(fig: Figure, title: str, plot_height: int, below_ticks: int = 0,
          subtitle: str = "") -> Figure:
    """Title, fonts and margins shared by every chart, laid out so that nothing overlaps
    or is cut at 390 px: the title wrapped, at the chart's left edge and below the mode
    bar; axis titles wrapped to the plot's size; the legend's entries wrapped and placed
    below the x axis's title, in margins computed here (plotly's automatic margins would
    shrink the plot under the legend). `plot_height`: the data area's height;
    `below_ticks`: extra height of multi-line x tick labels. An x axis on top (side
    "top") takes its room from the top margin instead."""
    layout = fig["layout"]
    title = wrap(title, TITLE_LINE)
    subtitle = wrap(subtitle, LINE) if subtitle else ""
    heading = MODEBAR + 14 + 20 * lines(title) + (17 * lines(subtitle) + 4 if subtitle else 0) + 12
    # An x title is centred under the plot, which on a phone is the chart less the y
    # axis's labels (category names, at about 7 px a character).
    labels = [line for trace in fig["data"] for y in (trace.get("y") or [])
              if isinstance(y, str) for line in y.split("<br>")]
    beside = 7 * max((len(line) for line in labels), default=0)
    x_line = max(18, min(X_TITLE_LINE, (PHONE_PX - 50 - beside) // 7))
    x_title = ""
    for key in [key for key in layout if key.startswith("xaxis")]:
        text = layout[key].get("title", {}).get("text")
        # Automargin only keeps the title at its standoff (the margin computed below
        # already has room for it); without it plotly draws the title on the ticks.
        layout[key]["automargin"] = True
        if text:
            layout[key]["title"].update(text=wrap(text, x_line), standoff=10)
            x_title = max(x_title, layout[key]["title"]["text"], key=lines)
    y_title = layout["yaxis"].get("title", {}).get("text")
    if y_title:
        layout["yaxis"]["title"]["text"] = wrap(y_title, max(16, plot_height // 8))
    axis_block = 26 + below_ticks + (10 + LINE_PX * lines(x_title) + 8 if x_title else 0)
    entries = [t for t in fig["data"] if t.get("showlegend", True) and t.get("name")]
    for trace in entries:
        trace["name"] = wrap(trace["name"], 38)
    # Entries sit side by side and wrap onto rows; a phone's width decides how many rows.
    widths = [44 + 8 * max(len(re.sub(r"<[^>]+>", "", part)) for part in t["name"].split("<br>"))
              for t in entries]
    rows, used = (1, 0) if widths else (0, 0)
    room = max(120, PHONE_PX - 50 - beside)   # the plot's width on a phone
    for width in widths:
        if used and used + width > room:
            rows, used = rows + 1, 0
        used += width
    tallest = max((lines(t["name"]) for t in entries), default=0)
    legend_block = rows * (LINE_PX * tallest + 8) + (6 if rows else 0)
    on_top = layout["xaxis"].get("side") == "top"
    top = heading + (axis_block if on_top else 0)
    bottom = (0 if on_top else axis_block) + legend_block + 12
    height = top + plot_height + bottom
    # Placed in pixels from the top (plotly's title pad is not honoured with a container
    # reference): the mode bar's height, then the title, whose "top" plotly puts about
    # 14 px above its text.
    fig.update_layout(title={"text": title, "x": 0, "xref": "container", "xanchor": "left",
                             "y": 1 - (MODEBAR + 14) / height, "yref": "container",
                             "yanchor": "top", "pad": {"l": 8}, "font": {"size": 15}}
                      | ({"subtitle": {"text": subtitle, "font": {"size": 12,
                                                                  "color": "#505050"}}}
                         if subtitle else {}),
                      height=height,
                      margin={"l": 10, "r": 10, "t": top, "b": bottom},
                      paper_bgcolor="#FFFFFF", plot_bgcolor="#FFFFFF",
                      font={"family": "system-ui, sans-serif", "size": 13},
                      # Placed from the chart's bottom edge, in pixels: should the
                      # legend need more rows than estimated, plotly shrinks the plot,
                      # and the axis moves up, away from it, rather than under it.
                      # Under the plot, as wide as it: plotly wraps the entries at the
                      # plot's width (a container reference is no wider: it clamps x).
                      legend={"orientation": "h", "x": 0, "xanchor": "left",
                              "xref": "paper", "yref": "container", "yanchor": "top",
                              "y": (legend_block + 6) / height})
    return fig


def hidden_text(k: int) -> str:
    return f"fewer than {k} responses"


def principle_figure(rows: pd.DataFrame, site_label: str) -> Figure:
    """Score (with 95% CI) against target per principle, largest gap at the top.

    rows: name, score, ci_low, ci_high, target, gap, certainty, n (ordered by priority).
    """
    rows = rows.iloc[::-1]
    names = [wrap(name, 20) for name in rows["name"]]
    fig = Figure()
    fig.add_trace(dict(type="scatter",
        x=rows["score"], y=names, mode="markers", name=f"{site_label}: score (95% CI)",
        marker={"color": BLUE, "size": 11, "symbol": "circle"},
        error_x={"type": "data", "symmetric": False, "color": BLUE,
                 "array": rows["ci_high"] - rows["score"],
                 "arrayminus": rows["score"] - rows["ci_low"]},
        customdata=np.stack([rows["gap"], rows["certainty"], rows["n"]], axis=-1),
        hovertemplate="%{y}<br>score %{x:.1f}<br>gap %{customdata[0]:.1f} "
                      "(%{customdata[1]})<br>n = %{customdata[2]}<extra></extra>"))
    fig.add_trace(dict(type="scatter",
        x=rows["target"], y=names, mode="markers", name="target",
        marker={"color": VERMILLION, "size": 12, "symbol": "diamond-open",
                "line": {"width": 2}},
        hovertemplate="%{y}<br>target %{x:.1f}<extra></extra>"))
    fig.update_xaxes(title=SCORE_AXIS, range=[0, 100])
    return _base(fig, "Principles: score against target (largest gap first)",
                 plot_height=50 * len(rows) + 10)


def response_bars(rows: pd.DataFrame, k: int) -> Figure:
    """Stacked % unfavourable / neither / favourable per item; hidden items say so.

    Each item's full text is written above its bar across the chart's width (wrapped,
    never cut), rather than beside it, where on a phone it would leave no room for the
    bar. The y axis counts pixels, so a wrapped label gets exactly the height it needs.

    rows: label, pct_unfavourable, pct_favourable, n, suppressed.
    """
    rows = rows.iloc[::-1].copy()
    shown = ~rows["suppressed"].astype(bool)
    unf = rows["pct_unfavourable"].where(shown)
    fav = rows["pct_favourable"].where(shown)
    neither = (100 - unf - fav).clip(lower=0)
    labels = [wrap(label) for label in rows["label"]]
    bar, gap = 22, 8
    bottoms, height = [], 0
    for label in labels:
        bottoms.append(height)
        height += bar + gap + LINE_PX * lines(label)
    middles = [b + bar / 2 for b in bottoms]
    fig = Figure()
    for name, values, colour in (("Unfavourable", unf, VERMILLION), ("Neither", neither, GREY),
                                 ("Favourable", fav, BLUE)):
        fig.add_trace(dict(type="bar",
            x=values, y=middles, width=bar, orientation="h", name=name,
            marker={"color": colour}, textposition="inside", insidetextanchor="middle",
            text=[f"{v:.0f}%" if pd.notna(v) and v >= 6 else "" for v in values],
            customdata=np.stack([rows["label"], rows["n"]], axis=-1),
            hovertemplate=f"%{{customdata[0]}}<br>{name.lower()} %{{x:.1f}}%<br>"
                          "n = %{customdata[1]}<extra></extra>"))
    for label, bottom, hidden in zip(labels, bottoms, ~shown):
        fig.add_annotation(x=0, xref="paper", xanchor="left", y=bottom + bar + 2,
                           yanchor="bottom", align="left", text=label, showarrow=False)
        if hidden:
            fig.add_annotation(x=50, y=bottom + bar / 2, text=hidden_text(k),
                               showarrow=False, font={"color": BLACK})
    fig.update_layout(barmode="stack")
    fig.update_xaxes(title="% of answers (negatively worded items reversed; "
                           "don't know excluded)", range=[0, 100])
    fig.update_yaxes(range=[0, height], visible=False, fixedrange=True)
    return _base(fig, "How people answered each item", plot_height=height)


def trend_figure(series: pd.DataFrame, changes: pd.DataFrame, title: str,
                 axis: str = SCORE_AXIS) -> Figure:
    """Each measure across waves with 95% CIs, significant changes starred.

    One measure: one plot. Several: small multiples, one panel per measure in two
    columns on a shared score axis, each titled with the measure's name, so no line has
    to be told from another by its colour.

    series: label, wave, mean, ci_low, ci_high, n; changes: label, wave, flag (only rows
    whose change is significant after FDR control).
    """
    groups = list(series.groupby("label", sort=False))
    columns = 1 if len(groups) == 1 else 2
    panel_rows = -(-len(groups) // columns)
    panel, title_px = (260, 0) if len(groups) == 1 else (130, 8 + LINE_PX * max(
        lines(wrap(label, PANEL_LINE)) for label, _ in groups))
    between = 50
    plot_height = panel_rows * (panel + title_px) + (panel_rows - 1) * between
    low = float(np.nanmin(series["ci_low"])) if len(series) else 0
    high = float(np.nanmax(series["ci_high"])) if len(series) else 100
    pad = max(2.0, (high - low) * 0.08)
    fig = Figure()
    waves = sorted(series["wave"].unique()) if len(series) else []
    # The starred points of every panel in one merge: a merge a panel cost a quarter of
    # the Trends page's time over ten waves (bench/dashboard.py --waves 10).
    starred = changes.merge(series, on=["label", "wave"])
    for position, (label, rows) in enumerate(groups):
        row, column = divmod(position, columns)
        suffix = "" if position == 0 else str(position + 1)
        top_of_title = 1 - row * (panel + title_px + between) / plot_height
        top = top_of_title - title_px / plot_height
        bottom = top - panel / plot_height
        x_domain = [0, 1] if columns == 1 else ([0, 0.46] if column == 0 else [0.54, 1])
        fig["layout"][f"xaxis{suffix}"] = dict(_AXIS, domain=x_domain, anchor=f"y{suffix}",
                                               tickvals=waves)
        fig["layout"][f"yaxis{suffix}"] = dict(_AXIS, domain=[max(bottom, 0), top],
                                               anchor=f"x{suffix}", range=[low - pad,
                                                                           high + pad])
        if len(groups) > 1:
            fig.add_annotation(text=wrap(label, PANEL_LINE), x=x_domain[0], xref="paper",
                               xanchor="left", y=top_of_title, yref="paper",
                               yanchor="top", align="left", showarrow=False,
                               font={"size": 13})
        fig.add_trace(dict(type="scatter", xaxis=f"x{suffix}", yaxis=f"y{suffix}",
            x=rows["wave"], y=rows["mean"], mode="lines+markers", name=label,
            showlegend=False, line={"color": BLUE}, marker={"color": BLUE, "size": 7},
            error_y={"type": "data", "symmetric": False, "color": BLUE,
                     "array": rows["ci_high"] - rows["mean"],
                     "arrayminus": rows["mean"] - rows["ci_low"]},
            customdata=rows["n"],
            hovertemplate=f"{label}<br>%{{x}}: %{{y:.1f}}<br>n = %{{customdata}}"
                          "<extra></extra>"))
        marked = starred[starred["label"] == label]
        if len(marked):
            fig.add_trace(dict(type="scatter", xaxis=f"x{suffix}", yaxis=f"y{suffix}",
                x=marked["wave"], y=marked["mean"], mode="markers",
                name="significant change", showlegend=False,
                marker={"symbol": "star", "size": 15, "color": BLACK},
                text=marked["flag"], hovertemplate="%{text}<extra></extra>"))
    if len(changes):   # one legend entry for every panel's stars
        fig.add_trace(dict(type="scatter", x=[None], y=[None], mode="markers",
                           name="significant change from the previous wave",
                           marker={"symbol": "star", "size": 15, "color": BLACK},
                           hoverinfo="skip"))
    last = "" if len(groups) <= 1 else str(len(groups))
    fig["layout"]["xaxis"]["title"] = {"text": "Survey wave (year)"}
    if last and len(groups) > 1:   # the wave axis is named once, under the bottom panels
        fig["layout"]["xaxis"]["title"] = {"text": ""}
        fig["layout"][f"xaxis{last}"]["title"] = {"text": "Survey wave (year)"}
    fig["layout"]["yaxis"]["title"] = {"text": axis if len(groups) == 1 else SCORE}
    return _base(fig, title, plot_height=plot_height,
                 subtitle="" if len(groups) == 1 else axis)


#: A marker and colour per verdict word (shape and colour both carry it); sites not
#: compared (too few others) are grey circles.
VERDICT_MARKS = {"clearly below": ("triangle-down", VERMILLION),
                 "below, not certain": ("triangle-down-open", VERMILLION),
                 "in line": ("circle", SKY),
                 "above, not certain": ("triangle-up-open", BLUE),
                 "clearly above": ("triangle-up", BLUE)}


def _mark_you(fig: Figure, x: float, y: float, label: str, right_half: bool,
              xref: str = "x") -> None:
    """The viewer's site, in words as well as by its marker: "You" in a small box with an
    arrow to the point, set above it and towards the plot's middle so it neither leaves
    the chart nor hides the neighbouring points (the legend says "You: <site>")."""
    fig.add_annotation(x=x, y=y, xref=xref, yref="y", text=f"<b>{YOU}</b>",
                       showarrow=True, arrowhead=2, arrowwidth=1.5, arrowcolor=BLACK,
                       ax=-24 if right_half else 24, ay=-36, align="left",
                       xanchor="right" if right_half else "left", yanchor="bottom",
                       bgcolor="rgba(255,255,255,0.92)", bordercolor=BLACK, borderwidth=1,
                       borderpad=3, font={"size": 12, "color": BLACK})


def funnel_figure(points: pd.DataFrame, params: dict, measure: str,
                  axis: str = SCORE_AXIS) -> Figure:
    """Each site's score against its respondents, marked with its published verdict, and
    the limits it was judged by: what the other sites give a site of its size (leave-one-
    out random effects, `stats.verdicts`), drawn as an interval at the site's point, so
    a point outside its own interval is exactly a site read "clearly" below or above.
    The highlighted site (the viewer's) is an orange diamond labelled "You: <site>".

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
    fig["layout"]["annotations"][-1].update(bgcolor="rgba(255,255,255,0.85)", font={"size": 12})
    if len(mine) and pd.notna(mine["low"].iloc[0]):
        row = mine.iloc[0]
        fig.add_trace(dict(type="scatter", x=[row["x"], row["x"]], y=[row["low"], row["high"]],
                           mode="lines+markers", line={"color": BLACK, "width": 2},
                           marker={"symbol": "line-ew", "size": 16,
                                   "line": {"color": BLACK, "width": 2}},
                           name=f"what the other sites give a site of your size",
                           hoverinfo="skip"))
    others = points[~points["highlight"]]
    marks = [VERDICT_MARKS.get(v, ("circle", GREY)) for v in others["verdict"]]
    fig.add_trace(dict(
        type="scatter", x=others["x"], y=others["mean"], mode="markers", name="other sites",
        text=others["label"], showlegend=False,   # the verdicts' entries below stand for it
        marker={"color": [c for _, c in marks], "symbol": [s for s, _ in marks], "size": 10,
                "line": {"color": [c for _, c in marks], "width": 1.5}},
        customdata=np.stack([others["verdict"], others["n_shown"]], axis=-1),
        hovertemplate="%{text}<br>n = %{customdata[1]}<br>score %{y:.1f}"
                      "<br>%{customdata[0]}<extra></extra>"))
    bars = others[others["with_interval"].astype(bool) & others["low"].notna()]
    if len(bars):
        fig.add_trace(dict(type="scatter", x=bars["x"], y=(bars["low"] + bars["high"]) / 2,
                           mode="markers", marker={"size": 1, "color": GREY, "opacity": 0},
                           error_y={"type": "data", "symmetric": True,
                                    "array": (bars["high"] - bars["low"]) / 2,
                                    "color": GREY, "thickness": 1, "width": 4},
                           name="what the other sites give each site of its size",
                           showlegend=False, hoverinfo="skip"))
        # Its legend entry: the points are invisible, so the key draws a grey bar.
        fig.add_trace(dict(type="scatter", x=[None], y=[None], mode="markers",
                           name="what the other sites give each site of its size",
                           marker={"symbol": "line-ns-open", "size": 14, "color": GREY,
                                   "line": {"color": GREY, "width": 1.5}},
                           hoverinfo="skip"))
    # A legend entry per verdict shown (the points carry their own marks).
    for verdict in [v for v in VERDICT_MARKS if v in set(others["verdict"])]:
        symbol, colour = VERDICT_MARKS[verdict]
        fig.add_trace(dict(type="scatter", x=[None], y=[None], mode="markers", name=verdict,
                           marker={"color": colour, "symbol": symbol, "size": 10},
                           hoverinfo="skip"))
    if len(mine):
        row = mine.iloc[0]
        fig.add_trace(dict(type="scatter", x=mine["x"], y=mine["mean"], mode="markers",
                           name=f"{YOU}: {row['label']}", text=mine["label"],
                           marker={"color": ORANGE, "size": 15, "symbol": "diamond",
                                   "line": {"color": BLACK, "width": 1.5}},
                           customdata=mine["verdict"],
                           hovertemplate=f"{YOU}: %{{text}}<br>n = %{{x}}<br>score %{{y:.1f}}"
                                         "<br>%{customdata}<extra></extra>"))
        xs = points["x"].astype(float)
        _mark_you(fig, float(row["x"]), float(row["mean"]), str(row["label"]),
                  right_half=row["x"] > (xs.min() + xs.max()) / 2)
    fig.update_xaxes(title="Respondents at the site (n)")
    fig.update_yaxes(title=axis)
    return _base(fig, f"Funnel plot: {measure}, each site against the other sites",
                 plot_height=320)


def caterpillar_figure(rows: pd.DataFrame, measure: str, axis: str = SCORE_AXIS) -> Figure:
    """Site scores allowing for their size (empirical-Bayes shrunken means) with 95%
    intervals, lowest first; the highlighted site (the viewer's) is an orange diamond
    labelled "You: <site>".

    rows: label, eb_mean, eb_low, eb_high, highlight.
    """
    rows = rows.sort_values("eb_mean").reset_index(drop=True)
    rank = list(range(1, len(rows) + 1))
    mine = rows.index[rows["highlight"].astype(bool)]
    fig = Figure()
    fig.add_trace(dict(
        type="scatter", x=rank, y=rows["eb_mean"], mode="markers", name="sites",
        marker={"color": BLUE, "size": 7, "symbol": "circle"},
        error_y={"type": "data", "symmetric": False, "array": rows["eb_high"] - rows["eb_mean"],
                 "arrayminus": rows["eb_mean"] - rows["eb_low"], "color": GREY},
        text=rows["label"], showlegend=False,
        hovertemplate="%{text}<br>score allowing for size %{y:.1f}<extra></extra>"))
    if len(mine):
        at = int(mine[0])
        row = rows.iloc[at]
        fig.add_trace(dict(type="scatter", x=[rank[at]], y=[row["eb_mean"]], mode="markers",
                           name=f"{YOU}: {row['label']}", text=[row["label"]],
                           marker={"color": ORANGE, "size": 15, "symbol": "diamond",
                                   "line": {"color": BLACK, "width": 1.5}},
                           hovertemplate=f"{YOU}: %{{text}}<br>score allowing for size "
                                         "%{y:.1f}<extra></extra>"))
        _mark_you(fig, rank[at], float(row["eb_mean"]), str(row["label"]),
                  right_half=rank[at] > (len(rows) + 1) / 2)
    fig.update_xaxes(title="Sites from lowest to highest score (1 = lowest)")
    fig.update_yaxes(title=axis)
    return _base(fig, f"Caterpillar plot: {measure}, site scores allowing for their size "
                      "(95% intervals)", plot_height=300)


def equity_heatmap(matrix: pd.DataFrame, hidden: pd.DataFrame, k: int) -> Figure:
    """Group minus rest of site per scale, in points out of 100; hidden cells grey and
    labelled, never blank. Row and column names are wrapped, not cut; the colour bar is
    left out (every cell prints its number; the colours only group them), which leaves a
    phone's width to the cells. With many scales the chart is wider than a phone, and
    `components.chart` lets it scroll sideways inside its card (`layout.meta.min_width`).

    matrix: groups x measures of differences (NaN where hidden or not comparable);
    hidden: same shape, True where the group's cell was suppressed.
    """
    groups, measures = list(matrix.index), list(matrix.columns)
    values = matrix.to_numpy(float)
    hide = hidden.reindex(index=groups, columns=measures).fillna(False).to_numpy(bool)
    text = np.where(hide, f"< {k}", np.where(np.isnan(values), "n/a",
                                             np.vectorize(lambda v: f"{v:+.1f}")(
                                                 np.nan_to_num(values))))
    # At least 7.5 points (0.3 on the 1-5 scale) either way, so small differences stay pale.
    limit = max(7.5, float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 7.5)
    rows = [wrap(g, 28) for g in groups]
    columns = [wrap(m, 12) for m in measures]
    fig = Figure()
    fig.add_trace(dict(type="heatmap",
        z=np.where(hide, np.nan, values), x=columns, y=rows, zmin=-limit, zmax=limit,
        colorscale=DIVERGING, text=text, texttemplate="%{text}", hoverongaps=False,
        showscale=False, xgap=1, ygap=1,
        customdata=np.array([[f"{g} / {m}" for m in measures] for g in groups]),
        hovertemplate="%{customdata}: %{text} points<extra></extra>"))
    fig.add_trace(dict(type="heatmap",
        z=np.where(hide, 1.0, np.nan), x=columns, y=rows, showscale=False,
        colorscale=[[0, "#DDDDDD"], [1, "#DDDDDD"]], text=np.where(hide, text, ""),
        texttemplate="%{text}", hoverongaps=False, xgap=1, ygap=1,
        customdata=np.array([[f"{g} / {m}" for m in measures] for g in groups]),
        hovertemplate=f"%{{customdata}}: {hidden_text(k)}<extra></extra>"))
    # Scale names on top, by the first rows; what the numbers are is said in the
    # subtitle, at the chart's left edge, where a phone scrolled to the start sees it.
    fig.update_xaxes(title="Scale", side="top", tickangle=0)
    fig.update_yaxes(autorange="reversed")
    tick_lines = max((lines(c) for c in columns), default=1)
    row_px = max(30, 16 * max((lines(r) for r in rows), default=1) + 8)
    fig = _base(fig, f"Equity: groups against the rest of the site (grey: {hidden_text(k)})",
                plot_height=row_px * len(rows), below_ticks=LINE_PX * (tick_lines - 1),
                subtitle="Each cell: the group's score minus everyone else's at the site, "
                         "in points out of 100 (orange lower, purple higher)")
    # Below ~80 px a column's names and "+12.5" no longer fit: wider than a phone, the
    # chart scrolls sideways in its card.
    fig["layout"]["meta"] = {"min_width": 190 + 80 * len(measures)}
    return fig


def reliability_figure(rows: pd.DataFrame, title: str) -> Figure:
    """Cronbach's alpha with Feldt 95% CI and omega per scale, against .70.

    rows: label, alpha, ci_low, ci_high, omega_total, n.
    """
    labels = [wrap(label, 22) for label in rows["label"]]
    fig = Figure()
    fig.add_trace(dict(type="scatter",
        x=rows["alpha"], y=labels, mode="markers", name="alpha (95% CI)",
        marker={"color": BLUE, "size": 10},
        error_x={"type": "data", "symmetric": False, "array": rows["ci_high"] - rows["alpha"],
                 "arrayminus": rows["alpha"] - rows["ci_low"], "color": BLUE},
        customdata=rows["n"], hovertemplate="%{y}: alpha %{x:.2f}, n = %{customdata}"
                                            "<extra></extra>"))
    fig.add_trace(dict(type="scatter", x=rows["omega_total"], y=labels, mode="markers",
                             name="omega total", marker={"color": ORANGE, "size": 10,
                                                         "symbol": "square-open"}))
    fig.add_line("x", 0.70, BLACK, "dash", ".70 criterion")
    fig.update_xaxes(title="Reliability coefficient (0-1; .70 or more is adequate)",
                     range=[0.4, 1.0])
    return _base(fig, title, plot_height=40 * len(rows) + 10)


def question_figure(rows: pd.DataFrame, title: str) -> Figure:
    """Each question's % favourable at the site, last year's, and the peer group's worst
    to best with its median where the caller left them in (NaN where withheld).

    rows: label (the full question), pct_favourable, pct_previous, peer_best,
    peer_median, peer_worst, verdict, change_verdict; in reading order (first at the top).
    """
    import textwrap

    # 26 characters a line: on a 390 px phone the labels then leave the plot ~150 px.
    labels = ["<br>".join(textwrap.wrap(str(q), 26, break_long_words=False))
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


def mark_actions(fig: Figure, actions: pd.DataFrame) -> Figure:
    """`fig`, a `trend_figure`, with each action's start marked on its measure's panel: a
    dotted vertical line at the start date (as a fraction of its year on the wave axis)
    and a hollow triangle at the panel's foot whose hover names the action.

    actions: label (the measure's name, as in the trend's series), what, status, start (a
    date). An action whose measure has no line is left out. The words are the users'
    own, and plotly reads a few HTML tags in text, so they are escaped first.
    """
    from html import escape

    panels = {trace["name"]: (trace.get("xaxis", "x"), trace.get("yaxis", "y"))
              for trace in fig["data"] if trace.get("mode") == "lines+markers"}
    marked = False
    for action in actions.itertuples():
        if action.label not in panels:
            continue
        xaxis, yaxis = panels[action.label]
        start = pd.Timestamp(action.start)
        x = start.year + (start.day_of_year - 1) / 365.25
        low = fig["layout"][yaxis.replace("y", "yaxis", 1)].get("range", [0, 100])[0]
        fig["layout"].setdefault("shapes", []).append({
            "type": "line", "xref": xaxis, "yref": f"{yaxis} domain", "x0": x, "x1": x,
            "y0": 0, "y1": 1, "line": {"color": ORANGE, "dash": "dot", "width": 2}})
        fig.add_trace(dict(type="scatter", xaxis=xaxis, yaxis=yaxis, x=[x], y=[low],
                           mode="markers", showlegend=False, name="action started",
                           marker={"symbol": "triangle-up-open", "size": 12, "color": ORANGE,
                                   "line": {"width": 2}},
                           text=[f"Action: {escape(str(action.what))}<br>started "
                                 f"{start.date().isoformat()} ({escape(str(action.status))})"],
                           hovertemplate="%{text}<extra></extra>"))
        marked = True
    if marked:   # one legend entry for every panel's marks
        fig.add_trace(dict(type="scatter", x=[None], y=[None], mode="markers",
                           name="an action of the site's plan started (dotted line)",
                           marker={"symbol": "triangle-up-open", "size": 12, "color": ORANGE,
                                   "line": {"width": 2}}, hoverinfo="skip"))
    return fig
