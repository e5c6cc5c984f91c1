"""The published layer's layout: what the writer (`pipeline.publish`) promises and every
reader checks before it trusts a table.

One definition of the table names, the columns readers rely on, the codes and titles
the layer carries, and the layout version. The writer takes them from here; the
reader (`published.reader`) refuses a file whose `meta` names another version. A
change to what any table holds, or means, is a new `PUBLISHED_LAYOUT`.
"""

from __future__ import annotations

#: Version of the published tables' layout, written into `meta` and checked on open.
PUBLISHED_LAYOUT = "4"
#: The `meta` key under which the writer records `PUBLISHED_LAYOUT`.
LAYOUT_KEY = "layout"

#: Every table of the published layer, with what one of its rows is.
TABLES = {
    "meta": "key, value: layout, instrument, min_group_size, target_rule, excluded_flagged, "
            "published_on",
    "sites": "a site: code, name, site type (its peer group), region",
    "site_headcounts": "staff in post of a site and staff group (groups below k pooled)",
    "measures": "a measure (responses, scale, principle or item) with its name, "
                "principles and (an item's) scale, in the instrument's order",
    "groups": "a breakdown group with its attribute's title and its own label",
    "actions": "one of the guide's actions for a principle",
    "cells": "unit (site, peer group, national) x wave x breakdown group x measure; "
             "statistics NULL where suppressed",
    "benchmarks": "site x wave x measure against its peer group and all sites",
    "funnel": "site x wave x measure: the site against the other sites (leave-one-out "
              "random effects): the rule's limits for a site of its size and the one "
              "verdict every reader shows",
    "item_benchmarks": "site x wave x item (shown cells only): % favourable against the "
                       "other shown sites of its peer group (best, median, worst), all "
                       "sites (the funnel's verdict rule) and the previous wave",
    "item_answers": "unit x wave x item (the item cells of `cells`) x answer option: "
                    "answers and % of the item's answers, and the unit's respondents who "
                    "gave none; NULL where the cell is suppressed",
    "funnel_params": "wave x measure: the random-effects mean, tau^2 and pooled SD of all "
                     "compared sites",
    "shrunken": "site x wave x measure: empirical-Bayes mean and rank",
    "trends": "unit x wave x measure: change from the previous wave",
    "principle_gaps": "site x wave x principle: gap to the target, certainty, priority",
    "equity": "unit x wave x group x measure: difference from the rest of the unit",
    "weighted": "site x wave x measure: mean weighted to the staff-group headcount mix",
    "reliability": "scale overall, per wave and per shown site x wave: alpha, omega",
    "site_agreement": "site x wave x scale: within-site agreement (rwg_j)",
    "icc": "wave x scale: intraclass correlations between sites",
    "data_quality": "site x wave: respondents flagged (counts NULL where below k)",
    "validation": "a pooled validity check (structure, invariance) with its verdict",
    "drivers": "wave x scope (national, peer group, site) x outcome x scale: the scale's "
               "share of what the scales explain together of an outcome (general "
               "dominance), with a site-bootstrap interval, its relative weight and rank",
}

#: The published cells' columns, in the order they are written.
CELL_COLUMNS = ("wave", "level", "unit", "peer_group", "breakdown", "grp", "measure_kind",
                "measure", "n", "mean", "sd", "se", "ci_low", "ci_high", "mean_0_10",
                "pct_favourable", "pct_unfavourable", "suppressed")

#: The columns readers of the published psychometric tables rely on, with their types
#: (`pipeline.frames.with_columns`), so a table with no rows still has them.
PSYCHOMETRIC_COLUMNS = {
    "reliability": {"level": "string", "scale": "string", "wave": "Int64",
                    "site_code": "string", "n": "Int64", "k": "Int64", "alpha": "float64",
                    "alpha_standardised": "float64", "ci_low": "float64",
                    "ci_high": "float64", "omega_total": "float64", "omega_note": "string",
                    "alpha_verdict": "string"},
    "site_agreement": {"scale": "string", "wave": "Int64", "site_code": "string",
                       "n": "Int64", "site_mean_reliability": "float64", "rwg_j": "float64",
                       "rwg_j_star": "float64", "rwg_j_slight_skew": "float64",
                       "reportable": "boolean", "reason": "string"},
    "icc": {"scale": "string", "wave": "Int64", "icc1": "float64", "icc2": "float64",
            "n": "Int64", "sites": "Int64", "n0": "float64", "icc1_mean_size": "float64"},
    "data_quality": {"site_code": "string", "wave": "Int64", "n_respondents": "Int64",
                     "n_straight_lining": "Int64", "n_speeding": "Int64",
                     "n_duplicate": "Int64", "n_flagged": "Int64"},
}

#: The breakdown group of respondents who left an attribute blank or preferred not to say.
NOT_STATED = "not_stated"

#: Readers' titles of the respondent attributes, in the order exports code them (1, 2,
#: ...). These are the words the published `groups` table carries; an attribute not
#: listed is titled from its id (`attribute_title`).
ATTRIBUTE_TITLES = {"staff_group": "Staff group / career stage", "contract": "Contract",
                    "pmq": "Place of primary qualification", "gender": "Gender",
                    "age_band": "Age band", "ethnicity": "Ethnicity"}


def attribute_title(attribute_id: str) -> str:
    """The title readers see for a respondent attribute ('age_band' -> 'Age band')."""
    return ATTRIBUTE_TITLES.get(attribute_id, attribute_id.replace("_", " ").capitalize())


#: The certainty a principle gap reads when there is no target to compare with.
NO_TARGET = "no target"
#: False discovery rate of the published trend and equity flags.
FDR = 0.05

#: The verdict words of a site x measure x wave against the other sites, lowest first.
#: Every reader (dashboard, site report, `culture run`) shows these words as published.
VERDICTS = ("clearly below", "below, not certain", "in line", "above, not certain",
            "clearly above")
#: The verdict of a cell compared with too few other sites to say what peers achieve.
NOT_COMPARED = "too few sites to compare"
#: Fewest other sites a site is compared with: the spread of one or two sites is no
#: distribution to stand outside of.
MIN_OTHER_SITES = 3

#: "Did it move?": a site's change in a principle from the wave before an action to the
#: first wave after, against its peers' change over the same waves (`stats.change`), in
#: the style of VERDICTS, lowest first. "Better" is up the scale (more supportive).
MOVED_VERDICTS = ("clearly did worse than peers", "did worse than peers, not certain",
                  "moved with peers", "did better than peers, not certain",
                  "clearly did better than peers")
#: An action's change not compared (too few peers, or no wave after the action yet).
MOVED_NOT_COMPARED = "not compared"
#: Said wherever a "did it move?" verdict is shown.
MOVED_CAVEAT = ("This is what happened alongside the action, not proof that the action "
                "caused it: anything else that changed at the site over those years moved "
                "the score too.")

#: Columns of the published `funnel` table (one row a site x wave x measure), with types.
#: low / high: the limits the verdict rule (`stats.verdicts`, named in `rule`) puts on
#: the other sites for a site of this one's size; flagged is "mean outside [low, high]"
#: and goes with verdict's "clearly"; others_mean is the other sites' random-effects mean.
FUNNEL_COLUMNS = {"wave": "Int64", "site_code": "string", "peer_group": "string",
                  "measure_kind": "string", "measure": "string", "n": "Int64",
                  "mean": "float64", "sd": "float64", "others": "Int64", "others_mean": "float64",
                  "z": "float64", "p": "float64", "low": "float64", "high": "float64",
                  "flagged": "boolean", "verdict": "string", "rule": "string"}
#: Columns of `funnel_params` (one row a wave x measure): the random-effects model of all
#: compared sites, drawn as the centre line; sigma is the pooled within-site SD.
FUNNEL_PARAM_COLUMNS = {"wave": "Int64", "measure_kind": "string", "measure": "string",
                        "method": "string", "target": "float64", "target_se": "float64",
                        "tau2": "float64", "sigma": "float64", "sites": "Int64"}

#: Columns of `item_benchmarks` (pipeline.item_benchmarks: one row a shown site x wave x
#: item), with types. Every level is % favourable and every difference in points, so the
#: table carries no measure_kind: `published.scores.headline` has nothing to rescale.
#: peer_best / peer_median / peer_worst are of the *other* shown sites of the peer group
#: (single sites' own values: readers show them only when `distribution_shown`);
#: others / others_mean / low / high / verdict / rule are the funnel's rule against all
#: other sites; change_* compare with the site's shown cell of the previous wave.
ITEM_BENCHMARK_COLUMNS = {
    "wave": "Int64", "site_code": "string", "peer_group": "string", "measure": "string",
    "n": "Int64", "pct_favourable": "float64", "peer_sites": "Int64", "peer_best": "float64",
    "peer_median": "float64", "peer_worst": "float64", "others_in_peer": "Int64",
    "diff_vs_peer": "float64", "diff_vs_peer_low": "float64", "diff_vs_peer_high": "float64",
    "diff_vs_peer_note": "string", "others": "Int64", "others_mean": "float64",
    "low": "float64", "high": "float64", "verdict": "string", "rule": "string",
    "previous_wave": "Int64", "n_previous": "Int64", "pct_previous": "float64",
    "change": "float64", "change_low": "float64", "change_high": "float64",
    "change_p": "float64", "change_q": "float64", "change_verdict": "string"}

#: Columns of `item_answers` (pipeline.publish.answers: one row an item cell of `cells`
#: x answer option, in the questionnaire's order), with types. option_code / option_label
#: are the answer as offered (before reverse-keying); scored_code is the code after it and
#: favourable whether it counts towards % favourable; pct is % of the item's answers. The
#: row with is_answer false (position 99) counts the unit's respondents who gave no
#: answer (don't know, blank, or not asked), shown where the unit's responses cell is.
ITEM_ANSWER_COLUMNS = {
    "wave": "Int64", "level": "string", "unit": "string", "peer_group": "string",
    "measure": "string", "position": "Int64", "option_code": "Int64",
    "option_label": "string", "scored_code": "Int64", "favourable": "boolean",
    "is_answer": "boolean", "answers": "Int64", "pct": "float64", "suppressed": "boolean"}

#: Sites a group needs before a director or a board report is shown its best, quartiles,
#: median and worst: each of those is (or is interpolated from) single sites' scores, and
#: among fewer sites a reader who knows the group could tell whose. The same ten as the
#: smallest group of people shown.
MIN_SITES_FOR_DISTRIBUTION = 10


def distribution_shown(sites: int | float) -> bool:
    """Whether a group of `sites` sites is large enough to show its distribution."""
    return sites == sites and sites >= MIN_SITES_FOR_DISTRIBUTION


def evidence_citation(evidence: object) -> str | None:
    """How an action's `evidence` (the RESTORE 2 programme-theory configurations it rests
    on, e.g. "1.3-1.4") reads for a person, or None when there is none (never "nan")."""
    if not isinstance(evidence, str) or not evidence.strip():
        return None
    return f"RESTORE 2 evidence, configurations {evidence.strip()}"


#: Outcomes of the published `drivers` table (pipeline.drivers), with what each models.
#: oc_intend is the main one; the favourable version is its sensitivity check (does the
#: order hold when only agreeing counts?); using support among those who needed it is a
#: logistic model, fitted on respondent rows, so national and latest wave only.
DRIVER_OUTCOMES = {
    "oc_intend": "Would seek help early (the answer, 1-5)",
    "oc_intend_favourable": "Would seek help early (agree or strongly agree)",
    "oc_used_if_needed": "Used support, among those who needed it",
}
#: Scopes of a driver model: all sites, one peer group (site type), one site.
DRIVER_SCOPES = ("national", "peer", "site")
#: Columns of `drivers` (one row a wave x scope x unit x outcome x scale), with types.
#: share is the scale's general dominance over the model's fit (r2: R^2, or McFadden's
#: R^2 for the logistic model, named in fit_measure), share_low / share_high its 95%
#: site-bootstrap interval (NULL for a site's own model; for the logistic model a one-step
#: approximation, stats.drivers.logistic_site_bootstrap);
#: relative_weight is Johnson's relative weight as a share of the fit, the cross-check
#: (NULL for the logistic model); n respondents (at least MIN_SITE_RESPONDENTS of
#: stats.drivers, so never below k) and sites behind the model; rank 1 = largest share.
DRIVER_COLUMNS = {
    "wave": "Int64", "scope": "string", "unit": "string", "peer_group": "string",
    "outcome": "string", "model": "string", "fit_measure": "string", "scale": "string",
    "n": "Int64", "sites": "Int64", "share": "float64", "share_low": "float64",
    "share_high": "float64", "relative_weight": "float64", "r2": "float64",
    "r2_low": "float64", "r2_high": "float64", "rank": "Int64", "note": "string"}
