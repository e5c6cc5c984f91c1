"""Static figures for the site report, each returned as inline SVG text.

Pure builders: each takes small published tables (already filtered to what the site
may see) and returns an ``<svg>`` element to paste into the HTML, so the report needs
no network, no scripts and no image files. Figures use matplotlib's object API
(`Figure`, no pyplot), which keeps no global state and picks no GUI backend.
Text stays text (``svg.fonttype = none``) so the PDF is sharp and searchable; other
sites appear only as anonymous points.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.figure import Figure

#: Colours: the site, its target or limits, and everyone else.
SITE = "#1f5fa8"
TARGET = "#c0392b"
OTHERS = "#9aa5b1"
LIMIT95 = "#7f8c8d"
LIMIT998 = "#34495e"

_STYLE = {"svg.fonttype": "none", "svg.hashsalt": "culture-site-report",
          "font.family": "sans-serif", "font.size": 9, "axes.spines.top": False,
          "axes.spines.right": False}


def to_svg(fig: Figure) -> str:
    """The figure as an inline ``<svg>`` element (no XML prolog, no timestamp)."""
    buffer = io.StringIO()
    with rc_context(_STYLE):
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _figure(width: float, height: float) -> Figure:
    with rc_context(_STYLE):
        return Figure(figsize=(width, height), layout="constrained")


def principle_chart(rows: pd.DataFrame, names: dict[str, str]) -> str:
    """Each principle's score (0-100) with its 95% CI against the target, top = act first.

    `rows`: the site's principle_gaps rows (principle, score, ci_low, ci_high, target,
    priority, certainty).
    """
    rows = rows.sort_values("priority", ascending=False)
    with rc_context(_STYLE):
        fig = _figure(7.0, 0.36 * len(rows) + 1.0)
        ax = fig.add_subplot()
        y = np.arange(len(rows))
        ax.hlines(y, rows["ci_low"], rows["ci_high"], color=SITE, lw=2.5, alpha=0.5)
        ax.plot(rows["score"], y, "o", color=SITE, label="score (95% CI)")
        ax.plot(rows["target"], y, "D", color=TARGET, mfc="white", label="target")
        ax.set_yticks(y, [f"{p}  {names.get(p, p)}" for p in rows["principle"]])
        low = float(np.nanmin(rows[["ci_low", "target"]].to_numpy())) - 5
        high = float(np.nanmax(rows[["ci_high", "target"]].to_numpy())) + 5
        ax.set_xlim(max(0, low), min(100, high))
        ax.set_xlabel("principle score (0-100)")
        fig.legend(loc="outside lower center", frameon=False, fontsize=8, ncols=2)
        ax.grid(axis="x", color="#e5e8eb")
        return to_svg(fig)


#: Marker of another site by its published verdict (shape carries it as well as colour).
VERDICT_MARKERS = {"clearly below": ("v", TARGET, TARGET),
                   "below, not certain": ("v", "white", TARGET),
                   "clearly above": ("^", SITE, SITE),
                   "above, not certain": ("^", "white", SITE)}


def funnel_charts(points: pd.DataFrame, params: pd.DataFrame, site_code: str,
                  names: dict[str, str]) -> str:
    """One panel per measure: every site's mean against its number of respondents, each
    other site marked with its published verdict, and this site's limits: what the other
    sites give a site of its size under the verdict rule (leave-one-out random effects,
    `stats.verdicts`), drawn at this site's point; outside them is "clearly" below or
    above, so the picture and the verdict are one thing.

    `points`: the site's own published funnel rows and the other sites' (measure, n at
    their band, mean, verdict); `params`: the published funnel parameters (the all-sites
    random-effects mean is drawn as a line).
    """
    measures = list(dict.fromkeys(points["measure"]))
    columns = 3
    panels = int(np.ceil(len(measures) / columns))
    with rc_context(_STYLE):
        fig = _figure(7.2, 2.3 * panels)
        axes = fig.subplots(panels, columns, squeeze=False).ravel()
        for ax, measure in zip(axes, measures):
            block = points[points["measure"] == measure]
            p = params[params["measure"] == measure].iloc[0]
            others = block[block["site_code"] != site_code]
            own = block[block["site_code"] == site_code]
            if len(own) and pd.notna(own["low"].iloc[0]):
                row = own.iloc[0]
                ax.vlines(row["n"], row["low"], row["high"], color=LIMIT95, lw=1.5,
                          label="what the other sites give a site of this size")
                ax.plot([row["n"]] * 2, [row["low"], row["high"]], "_", color=LIMIT95, ms=10)
                ax.plot(row["n"], row["others_mean"], "_", color=LIMIT95, ms=6,
                        label="other sites' mean")
            ax.axhline(p["target"], color=LIMIT998, lw=1, label="all sites")
            marked = others["verdict"].map(VERDICT_MARKERS)
            plain = marked.isna()
            ax.plot(others.loc[plain, "n"], others.loc[plain, "mean"], "o", color=OTHERS,
                    ms=4, label="other sites")
            for verdict, (marker, face, edge) in VERDICT_MARKERS.items():
                chosen = others[others["verdict"] == verdict]
                if len(chosen):
                    ax.plot(chosen["n"], chosen["mean"], marker, mfc=face, mec=edge, ms=5,
                            label=f"other site: {verdict}")
            ax.plot(own["n"], own["mean"], "o", color=SITE, ms=7, label="this site")
            ax.set_title(f"{measure}  {names.get(measure, measure)}", fontsize=8.5)
            ax.set_xlabel("respondents", fontsize=8)
        for ax in axes[len(measures):]:
            ax.set_visible(False)
        keep = {}
        for ax in axes[:len(measures)]:
            handles, labels = ax.get_legend_handles_labels()
            keep |= {label: handle for handle, label in zip(handles, labels)
                     if label not in keep}
        fig.legend(keep.values(), keep.keys(), loc="outside lower center", ncols=3,
                   frameon=False, fontsize=8)
        return to_svg(fig)


def trend_chart(history: pd.DataFrame, names: dict[str, str]) -> str:
    """The site's principle scores by wave, with 95% CIs (shown cells only)."""
    with rc_context(_STYLE):
        fig = _figure(7.0, 3.0)
        ax = fig.add_subplot()
        waves = sorted(history["wave"].unique())
        for i, (principle, block) in enumerate(history.groupby("measure")):
            block = block.sort_values("wave")
            offset = (i - 2.5) * 0.04
            ax.errorbar(block["wave"] + offset, block["mean"],
                        yerr=[block["mean"] - block["ci_low"], block["ci_high"] - block["mean"]],
                        marker="o", ms=4, capsize=2, lw=1.2,
                        label=f"{principle} {names.get(principle, principle)}")
        ax.set_xticks(waves, [str(w) for w in waves])
        ax.set_ylabel("principle score (0-100)")
        ax.grid(axis="y", color="#e5e8eb")
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=7.5)
        return to_svg(fig)
