"""Glossary: every term a page uses, in plain English, one paragraph each.

Other pages link here (`term_link`, `what_this_means`) instead of explaining a method in
place: a medical director reads one plain sentence under a chart and follows the link
for more; the statistical detail itself lives on the Methods page (admins, researchers).
An entry's id is its anchor (`/glossary#funnel`), so links keep working when the order
or the wording of the entries changes. A link to an id that has no entry raises KeyError
when the page renders, so a page cannot point at a missing explanation.
"""

from __future__ import annotations

from dataclasses import dataclass

from dash import html

from dashboard.view import View
from published.layout import MIN_OTHER_SITES, MIN_SITES_FOR_DISTRIBUTION, NOT_COMPARED, VERDICTS
from published.scores import SCORE_DEFINITION

TITLE = "Glossary"
NEEDS_SITE = False


@dataclass(frozen=True)
class Term:
    """One glossary entry: its anchor id, its name and one plain paragraph (what it is, how
    to read it, why we use it). `{k}` in the text is the deployment's minimum group size."""

    id: str
    name: str
    text: str


#: What each published verdict word says about a site, in the order VERDICTS lists them.
VERDICT_MEANINGS = {
    "clearly below": "The site's score is lower than the other sites' scores would lead us "
                     "to expect for a site of its size, by more than chance would explain. "
                     "Worth acting on.",
    "below, not certain": "The site's score is on the low side of what the other sites "
                          "achieve, but not by enough to rule out chance. Worth a look, not "
                          "a finding.",
    "in line": "The site's score is within the range the other sites' scores lead us to "
               "expect for a site of its size.",
    "above, not certain": "The site's score is on the high side of what the other sites "
                          "achieve, but not by enough to rule out chance.",
    "clearly above": "The site's score is higher than the other sites' scores would lead us "
                     "to expect for a site of its size, by more than chance would explain. "
                     "Something here may be worth sharing.",
    NOT_COMPARED: f"Fewer than {MIN_OTHER_SITES} other sites reported this measure in this "
                  "wave, so there is no spread of other sites to compare the site with and "
                  "no verdict is given.",
}

SECTIONS: tuple[tuple[str, tuple[Term, ...]], ...] = (
    ("Scores and measures", (
        Term("score", "Score (out of 100)",
             SCORE_DEFINITION + " Higher is always better. A principle's score is built "
             "from the scores of its scales; a scale's score from its questions."),
        Term("principle", "Principle",
             "One of the six things the guide says a culture of support for doctors needs. "
             "Each is measured by a few scales; the Overview shows the six side by side."),
        Term("scale", "Scale",
             "A small set of questions that together measure one thing (for example, "
             "whether doctors feel safe to speak up). Several questions give a steadier "
             "reading than any one of them."),
        Term("favourable", "% favourable (questions)",
             "For a single question: the share of people who chose one of the supportive "
             "answers (agree or strongly agree; for a question worded the other way round, "
             "disagree or strongly disagree)."),
        Term("drivers", "What goes with seeking help early (drivers)",
             "How much of the differences in whether doctors would seek help early goes "
             "together with each part of the culture, as a share of what the eight scales "
             "explain together; the shares add up to 100%. It is worked out fairly when "
             "the scales overlap (each scale's part is averaged over every combination of "
             "the others), with a range from redrawing whole sites. It shows what goes "
             "together, not what causes what. A site sees its own figures only from 100 "
             "answers; with fewer, its peer group's."),
        Term("confidence-interval", "95% interval (CI low, CI high)",
             "The range in which the true score most likely lies, given how many people "
             "answered. A narrow range means the score is pinned down; a wide one means "
             "more answers would be needed to be sure. When two ranges overlap a lot, the "
             "scores may not really differ."),
        Term("target", "Target",
             "What a site could reasonably reach on a principle, set from what the other "
             "sites achieve this wave (the rule is stated on the Overview). No target is "
             f"set when fewer than {MIN_OTHER_SITES} other sites reported."),
        Term("gap", "Gap and certainty",
             "How far a principle's score lies below its target, with its 95% interval. "
             "'Clear gap': even the interval's low end is below target. 'Possible gap': "
             "below target, but the interval reaches it. 'Meets target': at or above it. "
             "Priorities list clear, large gaps first."),
        Term("weighted", "Weighted score and design effect",
             "The score recomputed so that each staff group counts by its share of the "
             "site's staff rather than its share of those who answered. If it differs a "
             "lot from the plain score, one group answered much more than others. The "
             "design effect says how much the weighting widens the interval (1 = not at "
             "all)."),
        Term("response-rate", "Responses and response rate",
             "Responses: how many people answered. Response rate: responses divided by the "
             "staff headcount the site gave. A low rate means those who answered may not "
             "speak for everyone."),
    )),
    ("Comparing with other sites", (
        Term("verdict", "Verdict (against the other sites)",
             "One of five published words saying where a site stands against the other "
             "sites on one measure, judged the same way on every page and in every report. "
             "The words and their meaning are listed below."),
        Term("funnel", "Funnel plot",
             "Each dot is a site: across, how many people answered; up, the score. The "
             "funnel-shaped lines show how far from the middle a site's score can lie by "
             "chance alone: wide for small sites, narrow for large ones. A dot outside the "
             "funnel is a site that really differs. We use it so that small sites are not "
             "called good or bad on a handful of answers."),
        Term("prediction-interval", "Range expected from the other sites",
             "For one site: the range of scores that the other sites' scores lead us to "
             "expect for a site of its size. A site outside it is 'clearly' above or below. "
             "Each site is judged against the others without itself, so an unusual site "
             "cannot widen its own yardstick. The exact rule is on the Methods page."),
        Term("between-site-variation", "Real differences between sites",
             "Sites differ from each other by more than chance alone, because they really "
             "are different places (statisticians call this overdispersion). The funnel "
             "allows for it, so that a site is only singled out when it stands out from "
             "that ordinary variety, not merely from an average."),
        Term("caterpillar", "Caterpillar plot",
             "Every site's score as a dot with its 95% interval, ordered from lowest to "
             "highest, so it looks like a caterpillar. Read the intervals, not the order: "
             "where intervals overlap, the ranks could easily swap."),
        Term("shrunken-mean", "Adjusted score for ranking (shrunken mean)",
             "A small site's score is pulled part of the way towards the all-sites average, "
             "more when it rests on few answers (the method is called empirical Bayes). "
             "This stops a small site topping or tailing a ranking by luck, so ranks are "
             "fair to small and large sites alike."),
        Term("peer-group", "Peer group",
             "The sites of the same type (for example, acute trusts). The best, quartiles, "
             "median and worst show the spread within the group; 'less the other sites' "
             "mean' shows the site's difference from the others' average, with an interval: "
             "the difference is clear when the interval does not include 0."),
        Term("quartiles", "Best, quartiles, median, worst",
             "Line the peer group's sites up by score: the median is the middle one, the "
             "upper and lower quartiles are a quarter of the way from the top and the "
             "bottom, best and worst are the ends."),
    )),
    ("Change over time", (
        Term("significant-change", "Clear change between waves",
             "A change from the previous wave that is larger than the play of chance "
             "would produce. A star marks it on the Trends page. Small ups and downs "
             "without a star are what you would expect from one year to the next even "
             "if nothing had changed."),
        Term("false-discovery-rate", "False discovery rate",
             "When many measures are checked at once, a few will look changed by chance. "
             "We set the bar so that, on average, no more than 5 in 100 of the changes or "
             "differences we mark are false alarms. This is why a modest change may not "
             "be marked."),
        Term("adjusted-p", "Adjusted p (false discovery rate)",
             "A number from 0 to 1 for each change or difference: small means unlikely to "
             "be chance. It has been adjusted for the number of measures checked at once "
             "(the Benjamini-Hochberg method); below 0.05 the change is marked."),
        Term("welch", "Comparing two averages",
             "How we tell whether two averages really differ (this wave against the last, "
             "or one group against the rest of the site): the Welch test, which weighs the "
             "difference against how many people answered and how spread out their answers "
             "are, without assuming both groups are equally spread out."),
    )),
    ("Groups within a site", (
        Term("equity", "Difference from the rest of the site",
             "A group's score (for example, international medical graduates) minus the "
             "score of everyone else at the site. Below zero: the group is less well "
             "supported than their colleagues. Only differences larger than chance, after "
             "the false discovery rate check, are called lower or higher."),
        Term("not-stated", "Not stated",
             "People who left a question about themselves blank or preferred not to say. "
             "They are listed but not compared, since they are not one group."),
    )),
    ("Reliability and validity", (
        Term("reliability", "Reliability (alpha, omega)",
             "Whether a scale's questions hang together, so that their average measures "
             "one thing rather than noise. Read from 0 to 1; .70 or more is the usual bar. "
             "Cronbach's alpha and McDonald's omega are two ways of measuring it."),
        Term("read-as-whole", "Can the site's results be read as a whole?",
             "Whether a site's average is steady enough to stand for the site: with enough "
             "answers and enough difference between sites, another sample of the same "
             "staff would give nearly the same average. If not, read the result with care."),
        Term("agreement", "Agreement within the site (rwg)",
             "How much people at the same site agree with each other on a scale, from 0 "
             "(no more than random answers) to 1 (all the same). Shown on the Methods page."),
        Term("icc", "Share of differences between sites (ICC)",
             "ICC(1) is the share of all the variation in answers that lies between sites "
             "rather than between people; ICC(2) is how reliable a site's average is. They "
             "tell us whether comparing sites makes sense at all. Shown on the Methods page."),
        Term("validation", "Validation of the questionnaire",
             "Checks, on everyone's answers pooled, that the questionnaire measures what it "
             "says: that the questions group into the intended scales (a confirmatory "
             "factor analysis, judged by the fit indices CFI, TLI, RMSEA and SRMR), that "
             "the data suit such an analysis (KMO), that scales are distinct from one "
             "another (HTMT) and that they mean the same in different groups "
             "(measurement invariance). Shown on the Methods page."),
        Term("data-quality", "Data-quality flags",
             "Answers that look careless: the same answer to every question "
             "(straight-lining), a questionnaire finished implausibly fast, or the same "
             "person answering twice. We count them so a reader can judge the data."),
    )),
    ("Privacy rules", (
        Term("minimum-group", "Minimum group size",
             "No result is shown for a group of fewer than {k} people, so that no "
             "individual's answers can be recognised."),
        Term("hidden-cells", "Hidden cells",
             "A result is hidden when its group is smaller than {k}, and also when it could "
             "be worked out by subtraction: if a site's total and all but one group were "
             "shown, the last small group could be calculated from them, so one more is "
             "hidden too."),
        Term("peer-bands", "Peers shown in bands",
             "Other sites are 'Peer 1', 'Peer 2' and so on, renumbered on every page, and "
             "their number of responses is shown as a band shared by at least three peers, "
             "so that a peer cannot be recognised or followed from page to page."),
        Term("peer-spread", "Peers' best and worst",
             f"The best, quartiles, median and worst of a peer group are shown only when it "
             f"has at least {MIN_SITES_FOR_DISTRIBUTION} sites: among fewer, each of those "
             "figures is one peer's own score and could be recognised."),
    )),
)

#: Every term by its id (the anchor other pages link to).
TERMS = {term.id: term for _, terms in SECTIONS for term in terms}


def term_link(term_id: str, words: str | None = None) -> html.A:
    """A link to one glossary entry; KeyError if the glossary has no such entry."""
    return html.A(words or TERMS[term_id].name, href=f"/glossary#{term_id}")


def what_this_means(sentence: str, *term_ids: str) -> html.P:
    """One plain sentence for a chart or a statistic, with links to the terms it rests on."""
    links: list = []
    for i, term_id in enumerate(term_ids):
        links += ([", "] if i else [" In the glossary: "]) + [term_link(term_id)]
    end = ["."] if term_ids else []
    return html.P([html.Strong("What this means: "), sentence, *links, *end],
                  className="lead plain-note")


def _entry(term: Term, k: int) -> html.Div:
    parts = [html.H3(term.name, id=term.id), html.P(term.text.format(k=k))]
    if term.id == "verdict":
        parts.append(html.Dl([child for word in (*VERDICTS, NOT_COMPARED) for child in (
            html.Dt(word), html.Dd(VERDICT_MEANINGS[word]))]))
    return html.Div(parts, className="glossary-entry")


def layout(view: View) -> html.Div:
    parts = [html.H1("Glossary: the words these pages use"),
             html.P("Each term in plain English: what it is, how to read it and why we use "
                    "it. Pages link to the entry they rest on.", className="lead")]
    for heading, terms in SECTIONS:
        parts.append(html.Section([html.H2(heading)]
                                  + [_entry(term, view.k) for term in terms]))
    if view.viewer.role in ("admin", "researcher"):
        parts.append(html.P(["The formulas, rules and thresholds behind these terms are on "
                             "the ", html.A("Methods", href="/methods"), " page."]))
    return html.Div(parts)
