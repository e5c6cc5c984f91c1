"""Methods: the statistical rules behind every verdict and the psychometric detail
(reliability, agreement, ICC, validation), for admins and researchers.

The pages a director reads say what a result means in plain words and link to the
glossary; the formulas, thresholds and criteria they rest on are stated here, taken from
the modules that apply them (`stats.verdicts`, `published.layout`), so that the words
cannot drift from the rules.
"""

from __future__ import annotations

import pandas as pd
from dash import html

from dashboard.components import chart, notice, table
from dashboard.figures import hidden_text, reliability_figure
from dashboard.pages.glossary import term_link
from dashboard.view import View
from published.layout import FDR, MIN_OTHER_SITES
from stats.verdicts import FEW_SITES_Z, MANY_SITES, NOT_CERTAIN_LEVEL, PEER_RANGE, RULES

TITLE = "Methods"
NEEDS_SITE = "unless researcher"

#: Reliability a scale (and a site mean) must reach: the conventional .70.
RELIABILITY_BAR = 0.70


def omega_text(values) -> list[str]:
    """Omega for the table: two decimals, or why there is none (a small group's one-factor
    fit had no proper solution; this is not a suppressed number)."""
    return ["not estimable" if v is None or pd.isna(v) else f"{v:.2f}" for v in values]


def verdict_rules() -> html.Section:
    """How a site's verdict against the other sites is decided (stats.verdicts)."""
    few_rule, many_rule = RULES
    return html.Section([
        html.H2("How a site is judged against the other sites"),
        html.P("Each site is compared with a random-effects model of the other sites, "
               "leaving the site itself out (Viechtbauer & Cheung 2010), so that a real "
               "outlier cannot widen its own yardstick. The model allows for "
               "overdispersion: sites differ by more than sampling error, and tau^2, the "
               "between-site variance, is estimated from the others."),
        html.Ul([
            html.Li(f"Fewer than {MANY_SITES} sites, rule '{few_rule}': 'clearly' above or "
                    "below when the site's mean lies outside the prediction interval the "
                    f"others give a site of its size. {FEW_SITES_Z} rather than 1.96, because "
                    "with few peers tau^2 is often underestimated and 1.96 flagged too many "
                    "ordinary sites (bench/calibration.py)."),
            html.Li(f"{MANY_SITES} sites or more, rule '{many_rule}': 'clearly' when the "
                    f"data show, with Benjamini-Hochberg false discovery control at "
                    f"{FDR:.0%}, that the site's true mean lies beyond the range holding "
                    f"{PEER_RANGE:.0%} of the other sites' true means."),
            html.Li(f"'Not certain': not flagged, but outside the others' "
                    f"{NOT_CERTAIN_LEVEL:.0%} prediction interval (|z| > 1.645)."),
            html.Li(f"Fewer than {MIN_OTHER_SITES} other sites: not compared."),
        ]),
        html.P(["In plain words: ", term_link("verdict"), ", ", term_link("funnel"), ", ",
                term_link("prediction-interval"), ", ",
                term_link("between-site-variation"), "."]),
    ])


def other_rules() -> html.Section:
    return html.Section([
        html.H2("Change over time and groups within a site"),
        html.P(f"A change from the previous wave, and a group's difference from the rest of "
               f"its site, are tested with Welch's t test (no equal-variance assumption; "
               f"Welch-Satterthwaite degrees of freedom). The p values of all measures of "
               f"one unit are adjusted by Benjamini-Hochberg, and a change or difference is "
               f"marked when its adjusted p (q) is below {FDR:.2f}: a false discovery rate "
               f"of {FDR:.0%}."),
        html.H2("Ranking: empirical-Bayes shrinkage"),
        html.P("The caterpillar plot ranks sites by their empirical-Bayes (shrunken) means: "
               "each site's mean is weighted against the all-sites random-effects mean by "
               "B = tau^2 / (tau^2 + se^2), the share of its variance that is real "
               "between-site difference. Small sites are pulled further towards the "
               "middle, so a rank is not won or lost by chance."),
        html.P(["In plain words: ", term_link("false-discovery-rate"), ", ",
                term_link("adjusted-p"), ", ", term_link("welch"), ", ",
                term_link("shrunken-mean"), "."]),
    ])


def psychometrics(view: View) -> list:
    """Reliability, agreement within the site, ICCs and the validation of the instrument."""
    data, k = view.data, view.k
    names = data.measure_names()
    parts: list = [html.H2("Psychometrics"),
                   html.P("Synthetic sample data proves the machinery, not the instrument: "
                          "only real answers can validate it.", className="lead")]
    scope = f"{view.site_label}, {view.wave}" if view.site else "all sites, all waves"
    reliability = data.reliability(view.site, view.wave if view.site else None)
    if len(reliability):
        reliability = reliability.assign(label=reliability["scale"].map(names),
                                         omega_text=omega_text(reliability["omega_total"]))
        weak = reliability[reliability["alpha"] < RELIABILITY_BAR]
        parts.append(chart("methods-reliability",
                           reliability_figure(reliability, f"Reliability per scale ({scope})"),
                           table(reliability, {"label": "Scale", "n": "Respondents",
                                               "k": "Items", "alpha": "Alpha",
                                               "ci_low": "95% CI low", "ci_high": "95% CI high",
                                               "omega_text": "Omega total",
                                               "alpha_verdict": "Verdict (alpha >= .70)"},
                                 "Reliability per scale", {"n": 0, "k": 0}),
                           f"{len(reliability) - len(weak)} of {len(reliability)} scales reach "
                           "alpha .70."))
    else:
        parts.append(notice(f"Reliability is not shown for {scope}: {hidden_text(k)}."))
    if view.site:
        agreement = data.site_agreement(view.site, view.wave)
        if len(agreement):
            agreement = agreement.assign(label=agreement["scale"].map(names))
            parts += [html.H3("Is it fair to report this site as a whole?"),
                      table(agreement, {"label": "Scale", "n": "Respondents",
                                        "site_mean_reliability": "Reliability of the site mean",
                                        "rwg_j": "Agreement rwg(j)", "reason": "Verdict"},
                            "Agreement within the site (reportable when the reliability of "
                            "the site mean is at least .70)", {"n": 0})]
        quality = data.data_quality(view.site, view.wave)
        if len(quality):
            parts += [html.H3("Data-quality flags"),
                      table(quality, {"n_respondents": "Respondents",
                                      "n_straight_lining": "Straight-lining",
                                      "n_speeding": "Implausibly fast",
                                      "n_duplicate": "Duplicates", "n_flagged": "Any flag"},
                            f"Respondents flagged (a count is not shown when it, or its "
                            f"difference from another count, is below {k})",
                            {c: 0 for c in ("n_respondents", "n_straight_lining",
                                            "n_speeding", "n_duplicate", "n_flagged")})]
    icc = data.icc(view.wave)
    if len(icc):
        parts += [html.H3(f"Differences between sites, {view.wave}"),
                  table(icc.assign(label=icc["scale"].map(names)),
                        {"label": "Scale", "icc1": "ICC(1)", "icc2": "ICC(2)",
                         "sites": "Sites", "n": "Respondents"},
                        "Share of variance between sites (ICC(1)) and reliability of site "
                        "means (ICC(2))", {"sites": 0, "n": 0, "icc1": 3})]
    validation = data.validation()
    if len(validation):
        parts += [html.H3("Validation of the instrument (all sites pooled)"),
                  table(validation, {"check": "Check", "scope": "Scope", "value": "Value",
                                     "criterion": "Criterion", "source": "Source",
                                     "verdict": "Verdict"},
                        "Structure and validity checks against stated criteria",
                        {"value": 3})]
    return parts


def layout(view: View) -> html.Div:
    return html.Div([
        html.H1(f"Methods: how the results are worked out ({view.site_label}, {view.wave})"),
        view.controls(),
        html.P(["The rules and checks behind the words the other pages use. Each term is "
                "explained in plain English in the ", html.A("glossary", href="/glossary"),
                "."], className="lead"),
        verdict_rules(), other_rules(), *psychometrics(view)])
