"""Question-level benchmarking for people: each question (item) of a site's survey as %
favourable, against its peer group, all sites and last year, in the words and the
rounding that the dashboard's Principle page and the board report both show.

One place turns the published `item_benchmarks` rows into what a person reads, so the
two readers cannot drift apart (a test reads both and compares them). Numbers are %
favourable (`published.scores.FAVOURABLE`) and changes are in percentage points, one
decimal, the same everywhere.

Anonymity: a peer group's best, average (median) and worst are each a single peer's
value (or between two), so they are shown only when the group has
`MIN_SITES_FOR_DISTRIBUTION` or more sites with the question shown
(`published.layout.distribution_shown`); with fewer, only the site's difference from
the other sites' average (a random-effects mean of three or more sites, as on the
Benchmark page) and the verdict words are shown. `PEER_RULE` says so in words.
"""

from __future__ import annotations

import math

import pandas as pd

from published.layout import MIN_SITES_FOR_DISTRIBUTION, distribution_shown
from published.reader import PublishedLayer

#: How a negatively worded question's % favourable reads.
NEGATIVE_NOTE = "favourable here means disagreeing"
#: How many questions the most improved / most declined lists hold at most.
TOP_CHANGES = 3
#: Questions the board report lists by lowest % favourable.
LOWEST_SHOWN = 10
#: The rule about the peer group's figures, for the page and the report.
PEER_RULE = (f"The peer group's best, average (median site) and worst are of the other "
             f"sites of the peer group with the question shown, and are given only when the "
             f"group has {MIN_SITES_FOR_DISTRIBUTION} or more such sites: among fewer, each "
             f"would be one peer's own figure. Below that, only this site's difference from "
             f"the other sites' average (with an interval carrying their spread; clear when "
             f"it excludes 0) and the verdict against all sites are given.")
#: How the verdicts and changes were reached, in one sentence each.
METHOD = ("Against the other sites: the same rule as for principles and scales (each site "
          "against a random-effects model of all the other sites, itself left out), applied "
          "to the share answering favourably. Change from last year: the difference in "
          "percentage points with its 95% interval, called improved or declined when a "
          "two-proportion test holds after controlling the false discovery rate at 5% "
          "across this site's questions; last year is the previous survey wave, compared "
          "only when the question was shown at this site then.")
#: Words for a figure withheld under PEER_RULE.
WITHHELD = f"not shown (fewer than {MIN_SITES_FOR_DISTRIBUTION} sites)"

#: The display columns (of `question_rows`) every reader shows, with their headers, in
#: order.
COLUMNS = {"question": "Question", "favourable": "% favourable", "last_year": "Last year",
           "change": "Change, points (95% interval)", "change_verdict": "Change",
           "peer_best_words": "Peer best", "peer_median_words": "Peer average (median)",
           "peer_worst_words": "Peer worst", "vs_peers": "Less the other peer sites' average",
           "verdict": "Against the other sites"}


def is_negatively_worded(description: object) -> bool:
    """Whether an item's published description marks it reverse-keyed."""
    return isinstance(description, str) and description.startswith("reverse-keyed")


def points(value: object, signed: bool = False) -> str:
    """A % or a difference in points as every reader shows it (one decimal)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{float(value):+.1f}" if signed else f"{float(value):.1f}"


def of_principle(rows: pd.DataFrame, principle: str) -> pd.DataFrame:
    """The rows (of `item_benchmarks` or `question_rows`) of one principle's questions."""
    tags = rows["principles"].fillna("").str.split(",")
    return rows[tags.map(lambda p: principle in p).to_numpy(bool)].reset_index(drop=True)


def question_rows(layer: PublishedLayer, site: str, wave: int, principle: str | None = None,
                  hide_small_peer_groups: bool = True) -> pd.DataFrame:
    """A site's questions in one wave (of one principle, or of every principle), with the
    published numbers (the change in points as change_value) and the display columns of
    COLUMNS (peer figures as peer_best_words etc.).

    Questions that belong to no principle (the outcome questions, asked yes / no) are
    left out: "% favourable" says nothing about a culture there. With
    `hide_small_peer_groups` (a director, the board report) the peer group's best,
    median and worst are blanked under PEER_RULE, in the numbers as well as the words.
    """
    rows = layer.item_benchmarks(site, wave)
    if principle:
        rows = of_principle(rows, principle)
    else:
        tags = rows["principles"].fillna("").str.split(",")
        rows = rows[tags.map(lambda p: p != [""]).to_numpy(bool)].reset_index(drop=True)
    shown = rows["peer_sites"].map(lambda s: distribution_shown(float(s))).astype(bool)
    if hide_small_peer_groups:
        for column in ("peer_best", "peer_median", "peer_worst"):
            rows[column] = rows[column].where(shown)
    negative = rows["description"].map(is_negatively_worded).astype(bool)
    rows["negative"] = negative
    rows["question"] = [f"{m}: {text}" + (f" (negatively worded: {NEGATIVE_NOTE})" if neg
                                          else "")
                        for m, text, neg in zip(rows["measure"], rows["name"], negative)]
    # A chart's label: the full question, with the note shortened (its axis says the rest).
    rows["label"] = [f"{m}: {text}" + (" (negatively worded)" if neg else "")
                     for m, text, neg in zip(rows["measure"], rows["name"], negative)]
    rows["favourable"] = rows["pct_favourable"].map(points)
    rows["last_year"] = [f"{points(p)} ({int(w)})" if pd.notna(p) else "not shown"
                         for p, w in zip(rows["pct_previous"], rows["previous_wave"])]
    # The published number stays as change_value; `change` becomes its words.
    rows["change_value"] = rows["change"]
    rows["change"] = [
        f"{points(c, True)} ({points(lo, True)} to {points(hi, True)})" if pd.notna(c) else "–"
        for c, lo, hi in zip(rows["change_value"], rows["change_low"], rows["change_high"])]
    rows["change_verdict"] = rows["change_verdict"].fillna("no earlier wave shown")
    for column in ("peer_best", "peer_median", "peer_worst"):
        rows[column + "_words"] = [
            points(v) if pd.notna(v) else (WITHHELD if hide_small_peer_groups and not ok
                                           else "–")
            for v, ok in zip(rows[column], shown)]
    rows["vs_peers"] = [
        f"{points(d, True)} ({points(lo, True)} to {points(hi, True)})" if pd.notna(d)
        else (note or "not compared")
        for d, lo, hi, note in zip(rows["diff_vs_peer"], rows["diff_vs_peer_low"],
                                   rows["diff_vs_peer_high"], rows["diff_vs_peer_note"])]
    return rows


#: The peer group's figures among COLUMNS.
PEER_COLUMNS = ("peer_best_words", "peer_median_words", "peer_worst_words")


def shown_columns(rows: pd.DataFrame) -> dict[str, str]:
    """COLUMNS, less the peer group's best / average / worst when no row has them to
    show (a director's or the board's small peer group: three columns of "not shown")."""
    if rows[["peer_best", "peer_median", "peer_worst"]].notna().to_numpy().any():
        return dict(COLUMNS)
    return {column: header for column, header in COLUMNS.items()
            if column not in PEER_COLUMNS}


def display(rows: pd.DataFrame) -> pd.DataFrame:
    """The COLUMNS of `question_rows`, as text, headed as every reader heads them."""
    return pd.DataFrame({header: rows[column].to_numpy() for column, header in
                         shown_columns(rows).items()})


def biggest_changes(rows: pd.DataFrame, top: int = TOP_CHANGES
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(most improved, most declined): up to `top` questions each whose change verdict is
    "improved" / "declined", largest change first. Empty when none changed clearly."""
    improved = rows[rows["change_verdict"] == "improved"]
    declined = rows[rows["change_verdict"] == "declined"]
    return (improved.sort_values("change_value", ascending=False, kind="stable").head(top),
            declined.sort_values("change_value", kind="stable").head(top))


def lowest(rows: pd.DataFrame, count: int = LOWEST_SHOWN) -> pd.DataFrame:
    """The `count` questions with the lowest % favourable, lowest first."""
    return rows.sort_values(["pct_favourable", "measure"], kind="stable").head(count)


def change_sentence(row) -> str:
    """One question's change in a sentence, e.g. 'hs03: In my workplace, ...: 41.2% in
    2025, 55.0% now (+13.8 points, +6.1 to +21.5)'."""
    change, _, interval = row["change"].partition(" ")
    return (f"{in_sentence(row)}: {points(row['pct_previous'])}% in "
            f"{int(row['previous_wave'])}, {row['favourable']}% now ({change} points, "
            f"{interval.strip('()')})")


def in_sentence(row) -> str:
    """A row's question as it reads inside a sentence: the item's closing full stop
    dropped ("hs03: In my workplace, ... a doctor" then ": 41.2% ..." or " (11.6%)")."""
    return row["question"].removesuffix(".")


def no_change_words(rows: pd.DataFrame, direction: str) -> str:
    """What the most improved / declined list says when it is empty."""
    if not rows["pct_previous"].notna().any():
        return "None: no earlier wave of these questions is shown for this site."
    return (f"None: no question {direction} clearly (false discovery rate 5% across this "
            f"site's questions).")
