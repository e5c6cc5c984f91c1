"""The validation report's charts as static SVG: small, readable, no script.

The report used to embed plotly.js (4.8 MB) for three charts a reader only looks at;
drawn here as SVG they cost some kilobytes, print as they show, and open anywhere.
Each chart is a pure function of numbers to an SVG string; the table or sentence
beside it in the report states the same numbers. Colours are the dashboard's
Okabe-Ito palette, copied (the pipeline may not import the dashboard).
"""

from __future__ import annotations

import html
import textwrap
from collections.abc import Sequence

#: dashboard.figures.SERIES: line colours, darkest first, no yellow.
SERIES = ("#0072B2", "#D55E00", "#009E73", "#000000", "#CC79A7", "#E69F00", "#56B4E9")
#: Okabe-Ito, ordered from "strongly disagree" to "strongly agree".
ANSWER_COLOURS = ("#D55E00", "#E69F00", "#999999", "#56B4E9", "#0072B2")
GRID, TEXT, CRITERION = "#E5E5E5", "#222222", "#777777"
FONT = "font-family='system-ui,sans-serif' font-size='11'"
#: Above this many site x wave rows a panel draws a sorted caterpillar without row names.
MAX_NAMED_ROWS = 60


def _svg(width: float, height: float, label: str, body: list[str]) -> str:
    return (f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width:.0f} {height:.0f}' "
            f"width='100%' style='max-width:{width:.0f}px' role='img' "
            f"aria-label='{html.escape(label, quote=True)}' {FONT} fill='{TEXT}'>"
            f"<title>{html.escape(label)}</title>{''.join(body)}</svg>")


def _text(x: float, y: float, text: str, anchor: str = "start", extra: str = "") -> str:
    return (f"<text x='{x:.1f}' y='{y:.1f}' text-anchor='{anchor}' {extra}>"
            f"{html.escape(text)}</text>")


def reliability_panels(panels: Sequence[tuple[str, Sequence[tuple[str, float, float, float]]]],
                       criterion: float = 0.70, low: float = 0.3, columns: int = 4) -> str:
    """Small multiples of Cronbach's alpha with its interval: one panel a scale (its
    name), one row a site x wave ((label, alpha, ci_low, ci_high)); a dashed line at
    `criterion`. Rows share their order across panels, so a site reads across."""
    labels = list(dict.fromkeys(label for _, rows in panels for label, *_ in rows))
    named = len(labels) <= MAX_NAMED_ROWS
    row_h = 14 if named else max(2.0, 600 / max(len(labels), 1))
    label_w = 70 if named else 10
    panel_w, gap, top = 230, 16, 44
    columns = max(1, min(columns, len(panels)))
    plot_h = row_h * len(labels) + 8
    panel_h = top + plot_h + 28
    grid_rows = -(-len(panels) // columns)
    width = label_w + columns * (panel_w + gap)
    height = grid_rows * panel_h + 10
    body = []

    def x_of(value: float, x0: float) -> float:
        return x0 + (min(max(value, low), 1.0) - low) / (1.0 - low) * (panel_w - 10)

    for index, (name, rows) in enumerate(panels):
        x0 = label_w + (index % columns) * (panel_w + gap)
        y0 = (index // columns) * panel_h
        # One colour for all panels, as the dashboard's small multiples: the panel's
        # title, not its colour, says which scale it is.
        colour = SERIES[0]
        for line_no, line in enumerate(textwrap.wrap(name, 34)[:2]):
            body.append(_text(x0, y0 + 16 + 14 * line_no, line,
                              extra="font-weight='600' font-size='12'"))
        for tick in (0.5, 0.7, 0.9):
            x = x_of(tick, x0)
            body.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{y0 + top:.1f}' "
                        f"y2='{y0 + top + plot_h:.1f}' stroke='{GRID}'/>")
            body.append(_text(x, y0 + top + plot_h + 14, f"{tick:.1f}", "middle"))
        x = x_of(criterion, x0)
        body.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{y0 + top:.1f}' "
                    f"y2='{y0 + top + plot_h:.1f}' stroke='{CRITERION}' "
                    f"stroke-dasharray='4 3'/>")
        order = labels if named else [r[0] for r in sorted(rows, key=lambda r: r[1])]
        position = {label: i for i, label in enumerate(order)}
        for label, alpha, ci_low, ci_high in rows:
            y = y0 + top + 4 + row_h * (position[label] + 0.5)
            tip = html.escape(f"{name}, {label}: alpha {alpha:.2f} "
                              f"({ci_low:.2f} to {ci_high:.2f})")
            body.append(f"<g><title>{tip}</title>"
                        f"<line x1='{x_of(ci_low, x0):.1f}' x2='{x_of(ci_high, x0):.1f}' "
                        f"y1='{y:.1f}' y2='{y:.1f}' stroke='{colour}' stroke-width='1.5'/>"
                        f"<circle cx='{x_of(alpha, x0):.1f}' cy='{y:.1f}' "
                        f"r='{min(3.5, row_h / 2):.1f}' fill='{colour}'/></g>")
        if named and index % columns == 0:
            for label, i in position.items():
                body.append(_text(x0 - 6, y0 + top + 4 + row_h * (i + 0.5) + 4, label, "end"))
    return _svg(width, height, "Cronbach's alpha by scale, site and wave, with 95% Feldt "
                "intervals; dashed line: criterion .70", body)


def stacked_shares(rows: Sequence[tuple[str, str, Sequence[float]]],
                   options: Sequence[str]) -> str:
    """A horizontal bar per item ((id, text, shares in %)), its answers stacked in the
    options' order; the item's text shows on hover, its id at the left."""
    bar_h, label_w, plot_w, top = 16, 60, 560, 40
    width, height = label_w + plot_w + 20, top + bar_h * len(rows) + 40
    body = []
    x = label_w
    for option, colour in zip(options, ANSWER_COLOURS):
        body.append(f"<rect x='{x}' y='8' width='10' height='10' fill='{colour}'/>")
        body.append(_text(x + 14, 17, option))
        x += 14 + 6.2 * len(option) + 16
    for i, (item, text, shares) in enumerate(rows):
        y = top + i * bar_h
        body.append(_text(label_w - 6, y + bar_h - 4, item, "end"))
        left = label_w
        for option, colour, share in zip(options, ANSWER_COLOURS, shares):
            w = plot_w * share / 100
            tip = html.escape(f"{item} {text}: {option} {share:.0f}%")
            body.append(f"<rect x='{left:.1f}' y='{y + 1}' width='{w:.1f}' "
                        f"height='{bar_h - 2}' fill='{colour}'><title>{tip}</title></rect>")
            left += w
    for tick in (0, 25, 50, 75, 100):
        x = label_w + plot_w * tick / 100
        body.append(_text(x, top + bar_h * len(rows) + 14, f"{tick}%", "middle"))
    body.append(_text(label_w + plot_w / 2, height - 6,
                      "% of answers (don't know and blank excluded)", "middle"))
    return _svg(width, height, "How people answered each item", body)


def loading_bars(factors: Sequence[tuple[str, Sequence[tuple[str, float]]]]) -> str:
    """Standardised CFA loadings: one block a factor (its name), one bar an item."""
    bar_h, label_w, plot_w, head = 13, 60, 420, 20
    lines = sum(len(items) for _, items in factors)
    height = head * len(factors) + bar_h * lines + 36
    width = label_w + plot_w + 50
    body, y = [], 0.0
    bottom = head * len(factors) + bar_h * lines

    def x_of(value: float) -> float:
        return label_w + max(0.0, min(value, 1.0)) * plot_w

    for tick in (0, 0.4, 0.7, 1.0):     # under the bars
        body.append(f"<line x1='{x_of(tick):.1f}' x2='{x_of(tick):.1f}' y1='0' "
                    f"y2='{bottom:.1f}' stroke='{GRID}'/>")
        body.append(_text(x_of(tick), bottom + 14, f"{tick:.1f}", "middle"))
    colour = SERIES[0]      # the block's title says which scale: one colour reads best
    for name, items in factors:
        body.append(_text(label_w, y + 14, name, extra="font-weight='600'"))
        y += head
        for item, loading in items:
            body.append(_text(label_w - 6, y + bar_h - 3, item, "end"))
            body.append(f"<rect x='{label_w}' y='{y + 1:.1f}' "
                        f"width='{x_of(loading) - label_w:.1f}' height='{bar_h - 2}' "
                        f"fill='{colour}'/>")
            body.append(_text(x_of(loading) + 4, y + bar_h - 3, f"{loading:.2f}"))
            y += bar_h
    body.append(_text(label_w + plot_w / 2, y + 30, "standardised loading (CFA)", "middle"))
    return _svg(width, y + 36, "Standardised CFA loadings by scale", body)
