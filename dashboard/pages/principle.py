"""Principle detail: one principle's scales and items at a site, and its trend."""

from __future__ import annotations

from urllib.parse import urlencode

import pandas as pd
from dash import dcc, html

from dashboard.components import chart, notice, table
from dashboard.figures import question_figure, trend_figure
from dashboard.pages.glossary import what_this_means
from dashboard.view import View
from published.questions import (METHOD, NEGATIVE_NOTE, PEER_RULE, TOP_CHANGES,
                                 biggest_changes, change_sentence, in_sentence, lowest,
                                 no_change_words, of_principle, question_rows, shown_columns)
from published.scores import FAVOURABLE, SCORE, SCORE_AXIS, headline

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
                          className="lead"),
             what_this_means("The principle's score out of 100 is built from its scales "
                             "below, and each scale from its questions, shown as the % who "
                             "answered favourably: the lowest questions say where to start.",
                             "principle", "scale", "favourable", "hidden-cells"),
             what_this_means("The chart at the foot follows the principle wave by wave; a "
                             "star marks a change larger than chance would produce.",
                             "significant-change")]

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

    parts += question_section(view, principle, list(items["measure"]))

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


def question_section(view: View, principle: str, item_ids: list[str]) -> list:
    """The principle's questions, each as % favourable against last year, the peer group
    and all sites, and the site's most improved and most declined questions
    (`published.questions`: the board report shows the same words and numbers)."""
    # A director is shown no figure that is one identifiable peer's own (PEER_RULE);
    # an admin sees every site by name anyway.
    hide = view.viewer.role == "director"
    # Read once: the principle's questions are some of everything's.
    everything = question_rows(view.data, view.site, view.wave, None, hide)
    rows = of_principle(everything, principle)
    parts = [html.H2("Its questions"),
             html.P(f"Each question as the {FAVOURABLE} at the site: the share who gave a "
                    f"supportive answer; for a negatively worded question, {NEGATIVE_NOTE} "
                    "(the question says so). " + PEER_RULE),
             html.P(METHOD, className="definition")]
    if len(rows):
        lowest_row = lowest(rows, 1).iloc[0]
        moved = rows["change_verdict"].isin(["improved", "declined"]).sum()
        apart = (~rows["verdict"].isin(["in line", "too few sites to compare"])).sum()
        summary = (f"{len(rows)} questions shown; the least favourable is "
                   f"{in_sentence(lowest_row)} ({lowest_row['favourable']}%). {moved} changed "
                   f"clearly since last year; {apart} stand apart from the other sites.")
        parts.append(chart("principle-questions",
                           question_figure(rows, "Its questions: % favourable, last year and "
                                                 "the peer group"),
                           table(rows, shown_columns(rows), "The principle's questions"),
                           summary))
    hidden = [item for item in item_ids if item not in set(rows["measure"])]
    if hidden:
        parts.append(notice(f"Not shown: {', '.join(hidden)} (fewer than {view.k} answers, or "
                            "hidden so that a smaller group cannot be worked out)."))
    parts.append(html.H3("Most improved and most declined questions"))
    parts.append(html.P("Across the questions of all six principles at this site, largest "
                        f"change first (at most {TOP_CHANGES} each; only changes called "
                        "improved or declined)."))
    for heading, chosen, direction in zip(("Most improved", "Most declined"),
                                          biggest_changes(everything),
                                          ("improved", "declined")):
        items = ([html.Li(change_sentence(row)) for _, row in chosen.iterrows()]
                 or [html.Li(no_change_words(everything, direction))])
        parts.append(html.Div([html.H4(heading), html.Ul(items)],
                              className=f"questions-{direction}"))
    return parts
