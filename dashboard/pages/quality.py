"""Quality: reliability per scale, agreement within the site (ICC, rwg), data-quality
flags and the validation verdicts, each against its stated criterion."""

from __future__ import annotations

import pandas as pd
from dash import html

from dashboard.components import chart, notice, table
from dashboard.figures import hidden_text, reliability_figure
from dashboard.view import View

TITLE = "Quality"
NEEDS_SITE = "unless researcher"


def omega_text(values) -> list[str]:
    """Omega for the table: two decimals, or why there is none (a small group's one-factor
    fit had no proper solution; this is not a suppressed number)."""
    return ["not estimable" if v is None or pd.isna(v) else f"{v:.2f}" for v in values]


def layout(view: View) -> html.Div:
    data, k = view.data, view.k
    names = data.measure_names()
    parts = [html.H1(f"{view.site_label}: can these results be trusted? {view.wave}"),
             view.controls(),
             html.P("Synthetic sample data proves the machinery, not the instrument: only real "
                    "answers can validate it.", className="lead")]
    scope = f"{view.site_label}, {view.wave}" if view.site else "all sites, all waves"
    reliability = data.reliability(view.site, view.wave if view.site else None)
    if len(reliability):
        reliability = reliability.assign(label=reliability["scale"].map(names),
                                         omega_text=omega_text(reliability["omega_total"]))
        weak = reliability[reliability["alpha"] < 0.70]
        parts.append(chart("quality-reliability",
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
            parts += [html.H2("Is it fair to report this site as a whole?"),
                      table(agreement, {"label": "Scale", "n": "Respondents",
                                        "site_mean_reliability": "Reliability of the site mean",
                                        "rwg_j": "Agreement rwg(j)", "reason": "Verdict"},
                            "Agreement within the site (reportable when the reliability of "
                            "the site mean is at least .70)", {"n": 0})]
        quality = data.data_quality(view.site, view.wave)
        if len(quality):
            parts += [html.H2("Data-quality flags"),
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
        parts += [html.H2(f"Differences between sites, {view.wave}"),
                  table(icc.assign(label=icc["scale"].map(names)),
                        {"label": "Scale", "icc1": "ICC(1)", "icc2": "ICC(2)",
                         "sites": "Sites", "n": "Respondents"},
                        "Share of variance between sites (ICC(1)) and reliability of site "
                        "means (ICC(2))", {"sites": 0, "n": 0, "icc1": 3})]
    validation = data.validation()
    if len(validation):
        parts += [html.H2("Validation of the instrument (all sites pooled)"),
                  table(validation, {"check": "Check", "scope": "Scope", "value": "Value",
                                     "criterion": "Criterion", "source": "Source",
                                     "verdict": "Verdict"},
                        "Structure and validity checks against stated criteria",
                        {"value": 3})]
    return html.Div(parts)
