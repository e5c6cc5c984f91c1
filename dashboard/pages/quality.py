"""Quality in plain words: how many answered, how many answers look careless, and whether
each scale's result can be read as a whole for the site.

The psychometric detail (alpha, omega, agreement, ICCs, the validation checks) is on the
Methods page, for admins and researchers; this page says what it means.
"""

from __future__ import annotations

import pandas as pd
from dash import html

from dashboard.components import fmt, key_figure, notice
from dashboard.figures import hidden_text
from dashboard.pages.glossary import term_link, what_this_means
from dashboard.pages.methods import RELIABILITY_BAR
from dashboard.view import View

TITLE = "Quality"
NEEDS_SITE = "unless researcher"


def read_as_whole(row, k: int, name: str) -> str:
    """One plain sentence: can this scale's site result be read as the site's?"""
    if row.reportable:
        return (f"{name}: yes. The site's result is steady enough to stand for the site as "
                "a whole.")
    if int(row.n) < k:
        return f"{name}: not shown. Fewer than {k} people answered these questions."
    return (f"{name}: read with care. The site's result is not steady enough to stand for "
            "the whole site: another group of the same staff could give a different one.")


#: The published flag counts, in words a director reads.
FLAG_WORDS = {"n_straight_lining": "giving the same answer to every question",
              "n_speeding": "finishing implausibly fast",
              "n_duplicate": "answering twice"}


def flags_in_words(quality: pd.DataFrame, k: int) -> str:
    """The site's data-quality flags as a sentence (counts below k are not published)."""
    row = quality.iloc[0]
    total, flagged = row["n_respondents"], row["n_flagged"]
    if pd.isna(flagged):
        return ("Answers that look careless are counted, but the count is not shown: "
                f"it is below {k}, or could be worked out from another count.")
    shown = [f"{words}: {fmt(row[column])}" for column, words in FLAG_WORDS.items()
             if not pd.isna(row[column])]
    detail = f" Counted: {'; '.join(shown)}." if shown else ""
    of = f" of {fmt(total)}" if not pd.isna(total) else ""
    kinds = list(FLAG_WORDS.values())
    return (f"{fmt(flagged)}{of} people gave answers that look careless ("
            + ", ".join(kinds[:-1]) + f", or {kinds[-1]}).{detail} A count of one kind is "
            f"not shown when it, or its difference from another count, is below {k}.")


def _site_parts(view: View) -> list:
    data, k = view.data, view.k
    names = data.measure_names()
    responses = data.responses(view.site, view.wave)
    n, rate = responses["n"], responses["rate"]
    parts: list = [html.Div([
        key_figure("Responses", fmt(n) if n is not None else hidden_text(k)),
        key_figure("Staff headcount", fmt(responses["headcount"])
                   if responses["headcount"] else "not given"),
        key_figure("Response rate", fmt(rate, 0, "%") if rate is not None
                   else "not available", "responses / staff headcount")],
        className="key-figures")]
    if rate is not None:
        parts.append(what_this_means(
            f"{fmt(rate, 0, '%')} of the staff answered; the lower the rate, the more "
            "those who answered may differ from those who did not.", "response-rate"))
    quality = data.data_quality(view.site, view.wave)
    if len(quality):
        parts += [html.H2("Answers that look careless"),
                  html.P(flags_in_words(quality, k)),
                  what_this_means("A few careless answers are expected in any survey; many "
                                  "would make the site's results less trustworthy.",
                                  "data-quality")]
    agreement = data.site_agreement(view.site, view.wave)
    if len(agreement):
        readable = agreement.sort_values("scale")
        parts += [html.H2("Can this site's results be read as a whole?"),
                  html.Ul([html.Li(read_as_whole(r, k, names.get(r.scale, r.scale)))
                           for r in readable.itertuples()]),
                  what_this_means(f"{int(readable['reportable'].sum())} of {len(readable)} "
                                  "scales give a result that stands for the site as a whole.",
                                  "read-as-whole")]
    return parts


def _all_sites_parts(view: View) -> list:
    reliability = view.data.reliability(None, None)
    if reliability.empty:
        return [notice(f"Nothing to show: {hidden_text(view.k)}.")]
    strong = int((reliability["alpha"] >= RELIABILITY_BAR).sum())
    return [html.H2("Do each scale's questions hang together?"),
            html.P(f"{strong} of {len(reliability)} scales reach the usual bar for "
                   "reliability across all sites."),
            what_this_means("A scale whose questions hang together measures one thing; "
                            "one that does not should be read question by question.",
                            "reliability")]


def layout(view: View) -> html.Div:
    parts = [html.H1(f"{view.site_label}: can these results be trusted? {view.wave}"),
             view.controls(),
             html.P("Synthetic sample data proves the machinery, not the instrument: only real "
                    "answers can validate it.", className="lead")]
    parts += _site_parts(view) if view.site else _all_sites_parts(view)
    more = ["Words on this page are explained in the ", html.A("glossary", href="/glossary"),
            " (", term_link("minimum-group", "why some numbers are hidden"), ")."]
    if view.viewer.role in ("admin", "researcher"):
        more += [" The reliability, agreement and validation statistics are on the ",
                 html.A("Methods", href="/methods"), " page."]
    parts.append(html.P(more, className="lead"))
    return html.Div(parts)
