"""The published layer's layout: what the writer (`pipeline.publish`) promises and every
reader checks before it trusts a table.

One definition of the table names, the columns readers rely on, the codes and titles
the layer carries, and the layout version. The writer takes them from here; the
reader (`published.reader`) refuses a file whose `meta` names another version. A
change to what any table holds, or means, is a new `PUBLISHED_LAYOUT`.
"""

from __future__ import annotations

#: Version of the published tables' layout, written into `meta` and checked on open.
PUBLISHED_LAYOUT = "1"
#: The `meta` key under which the writer records `PUBLISHED_LAYOUT`.
LAYOUT_KEY = "layout"

#: Every table of the published layer, with what one of its rows is.
TABLES = {
    "meta": "key, value: layout, instrument, min_group_size, target_rule, excluded_flagged, "
            "published_on",
    "sites": "a site: code, name, site type (its peer group), region",
    "site_headcounts": "staff in post of a site and staff group (groups below k pooled)",
    "measures": "a measure (responses, scale, principle or item) with its name",
    "groups": "a breakdown group with its attribute's title and its own label",
    "actions": "one of the guide's actions for a principle",
    "cells": "unit (site, peer group, national) x wave x breakdown group x measure; "
             "statistics NULL where suppressed",
    "benchmarks": "site x wave x measure against its peer group and all sites",
    "funnel": "site x wave x measure: a point of a funnel plot with its verdict",
    "funnel_params": "wave x measure: a funnel's target, spread and overdispersion",
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
#: False discovery rate at which sites are flagged in the published funnels.
FDR = 0.05
