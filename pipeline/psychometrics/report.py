"""The validation report: one self-contained HTML file and the same numbers as JSON.

Charts are static SVG (`pipeline.psychometrics.report_svg`): the report used to inline
plotly.js, 4.8 MB for three charts, and is now some tens of kilobytes that open
anywhere without a network or a script. Every chart has a table or sentence beside it
stating the same numbers, and colours come from the dashboard's colour-blind-safe
Okabe-Ito palette.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

from pipeline.psychometrics.report_svg import loading_bars, reliability_panels, stacked_shares
from pipeline.psychometrics.results import Judgement, PsychometricsResult, ReliabilityRow
from survey.instrument import Instrument

VERDICT_STYLE = {"meets": "ok", "does not meet": "bad", "n/a": "na"}


def _figure_html(svg: str) -> str:
    return f"<figure>{svg}</figure>"


def _distribution_figure(result: PsychometricsResult, instrument: Instrument) -> str:
    items = {i.id: i for i in instrument.items}
    rows = [r for r in result.item_distributions
            if r.item in items and items[r.item].response_scale == "agree5"]
    labels = [o.label for o in instrument.response_scale("agree5").options]
    bars = []
    for r in rows:
        total = max(sum(r.counts.values()), 1)
        bars.append((r.item, items[r.item].text,
                     [100 * r.counts.get(str(code), 0) / total for code in range(1, 6)]))
    return stacked_shares(bars, labels)


def _reliability_figure(result: PsychometricsResult, instrument: Instrument) -> str:
    """One panel a scale, named as readers know it; sites x waves down each panel."""
    rows = [r for r in result.reliability if r.level == "site_wave" and r.reported]
    names = {s.id: s.name for s in instrument.scales}
    order = [s for s in names if any(r.scale == s for r in rows)]
    order += sorted({r.scale for r in rows} - set(order))
    rows.sort(key=lambda r: (r.site_code, r.wave))
    panels = [(names.get(scale, scale),
               [(f"{r.site_code} {r.wave}", r.alpha, r.ci_low, r.ci_high)
                for r in rows if r.scale == scale]) for scale in order]
    return reliability_panels(panels)


def _loadings_figure(result: PsychometricsResult, instrument: Instrument) -> str | None:
    cfa = result.structure.cfa
    if cfa is None:
        return None
    names = {s.id: s.name for s in instrument.scales}
    return loading_bars([(names.get(factor, factor), list(loadings.items()))
                         for factor, loadings in cfa.loadings.items()])


def _verdict_cell(judged: Judgement) -> str:
    value = "n/a" if judged.value is None else f"{judged.value:.3f}"
    css = VERDICT_STYLE[judged.verdict]
    return (f"<td>{value}</td><td>{html.escape(judged.criterion)}</td>"
            f"<td class='{css}'>{judged.verdict}</td>")


def _number(value: float | None) -> str:
    """Three decimals, or 'n/a' where a statistic could not be estimated."""
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3f}"


def _reliability_cells(r: ReliabilityRow) -> list[str]:
    """A scale's row of the overall reliability table (or why it has no numbers)."""
    head = [f"<td>{r.scale}</td>", f"<td>{r.n}</td>", f"<td>{r.n_items}</td>"]
    if not r.reported:     # too few responses to report
        return head + [f"<td colspan='6'>{html.escape(r.note)}</td>"]
    return head + [
        f"<td>{_number(r.alpha)}</td>",
        f"<td>{_number(r.ci_low)} to {_number(r.ci_high)}</td>",
        f"<td>{_number(r.alpha_standardised)}</td>", f"<td>{_number(r.omega_total)}</td>",
        "<td>&ge; 0.70</td>",
        f"<td class='{VERDICT_STYLE[r.alpha_verdict]}'>{r.alpha_verdict}</td>"]


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th scope='col'>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cells) + "</tr>" for cells in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(result: PsychometricsResult, instrument: Instrument) -> str:
    """The report as one HTML document."""
    structure, scope = result.structure, result.scope
    parts = [f"<h1>Validation report: {html.escape(instrument.title)} "
             f"({html.escape(instrument.key)})</h1>",
             f"<p class='caveat'>{html.escape(result.caveat)}</p>",
             f"<p>Scope: wave {scope.wave or 'all'}, site "
             f"{scope.site or 'all'}; groups smaller than "
             f"{scope.min_group_size} are not reported.</p>"]
    overall = [r for r in result.reliability if r.level == "overall"]
    parts.append("<h2>Reliability of each scale</h2>")
    parts.append(_table(
        ["scale", "n", "items", "alpha", "95% CI", "standardised alpha", "omega total",
         "criterion", "verdict"],
        [_reliability_cells(r) for r in overall]))
    parts.append("<h2>Reliability by site and wave</h2>")
    parts.append("<p>Each dot is a site's Cronbach's alpha for the scale in one wave, the "
                 "line its 95% Feldt interval; the dashed line is the .70 criterion. Sites "
                 "and waves are in the same rows in every panel.</p>")
    parts.append(_figure_html(_reliability_figure(result, instrument)))
    parts.append("<h2>Is it fair to report site means?</h2>")
    nan = float("nan")
    parts.append(_table(["scale", "wave", "ICC(1)", "ICC(2)", "sites", "n"],
                        [[f"<td>{r.scale}</td>", f"<td>{r.wave}</td>",
                          f"<td>{nan if r.icc1 is None else r.icc1:.3f}</td>",
                          f"<td>{nan if r.icc2 is None else r.icc2:.3f}</td>",
                          f"<td>{'' if r.sites is None else r.sites}</td>",
                          f"<td>{'' if r.n is None else r.n}</td>"]
                         for r in result.icc]))
    not_reportable = [r for r in result.sites if not r.reportable]
    parts.append(f"<p>{len(result.sites) - len(not_reportable)} of {len(result.sites)} "
                 f"site x wave x scale means are reportable (at least "
                 f"{scope.min_group_size} responses and reliability of the "
                 f"site mean of .70 or more).</p>")
    if structure.cfa is not None:
        cfa = structure.cfa
        parts.append("<h2>Structure: does the data fit the intended scales?</h2>")
        parts.append(f"<p>CFA of the intended {len(cfa.loadings)}-factor structure on "
                     f"{structure.n_complete} complete responses: chi-square "
                     f"{cfa.chi_square:.1f} on {cfa.df} df; RMSEA 90% CI "
                     f"{cfa.rmsea_ci90[0]:.3f} to {cfa.rmsea_ci90[1]:.3f}. Parallel "
                     f"analysis suggests {structure.suggested_factors} "
                     f"factors.</p>")
        parts.append(_table(["statistic", "value", "criterion", "verdict"],
                            [[f"<td>{name}</td>", _verdict_cell(judged)] for name, judged in
                             (("KMO", structure.kmo), ("CFI", cfa.cfi),
                              ("TLI", cfa.tli), ("RMSEA", cfa.rmsea),
                              ("SRMR", cfa.srmr))]))
        parts.append(_table(["scale", "composite reliability", "criterion", "verdict", "AVE",
                             "criterion", "verdict"],
                            [[f"<td>{f}</td>", _verdict_cell(cr),
                              _verdict_cell(structure.ave[f])]
                             for f, cr in structure.composite_reliability.items()]))
        parts.append(_table(["pair of scales", "HTMT", "criterion", "verdict"],
                            [[f"<td>{pair}</td>", _verdict_cell(j)]
                             for pair, j in structure.htmt.items()]))
        figure = _loadings_figure(result, instrument)
        if figure is not None:
            parts.append(_figure_html(figure))
    else:
        parts.append(f"<p>{html.escape(structure.note or '')}</p>")
    parts.append("<h2>Do the scales mean the same in every group?</h2>")
    parts.append("<p>Measurement invariance of the core scales: each step adds equality "
                 "constraints (metric: loadings; scalar: loadings and intercepts) and holds "
                 "when CFI falls by no more than .01 and RMSEA rises by no more than .015 "
                 "(Chen 2007). Scalar invariance is what comparing group means needs.</p>")
    invariance_rows = []
    for test in result.invariance:
        for step in test.steps:
            delta = ("" if step.delta_cfi is None else
                     f"{step.delta_cfi:+.3f} / {step.delta_rmsea:+.3f}")
            invariance_rows.append([
                f"<td>{test.scale}</td>", f"<td>{test.across}</td>",
                f"<td>{step.step}</td>", f"<td>{step.chi_square:.1f}</td>",
                f"<td>{step.df}</td>", f"<td>{step.cfi:.3f}</td>",
                f"<td>{step.rmsea:.3f}</td>", f"<td>{delta}</td>",
                f"<td>{html.escape(step.verdict)}</td>"])
        if test.note is not None:
            invariance_rows.append([f"<td>{test.scale}</td>", f"<td>{test.across}</td>",
                                    f"<td colspan='7'>{html.escape(test.note)}</td>"])
    parts.append(_table(["scale", "across", "model", "chi-square", "df", "CFI", "RMSEA",
                         "change in CFI / RMSEA", "verdict"], invariance_rows))
    parts.append("<h2>How people answered each item</h2>")
    parts.append(_figure_html(_distribution_figure(result, instrument)))
    totals = result.data_quality.totals
    parts.append("<h2>Data quality</h2>")
    parts.append(f"<p>Of {totals['respondents']} respondents, {totals['straight_lining']} "
                 f"straight-lined, {totals['speeding']} answered implausibly fast and "
                 f"{totals['duplicate']} duplicated an earlier submission; "
                 f"{totals['flagged']} are flagged and were "
                 f"{'excluded from' if scope.excluded_flagged else 'kept in'} "
                 f"the analysis.</p>")
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:auto;padding:1em;"
             "color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid "
             "#bbb;padding:4px 8px;text-align:left}.ok{color:#0072B2;font-weight:600}"
             ".bad{color:#D55E00;font-weight:600}.caveat{background:#fff4d6;padding:.6em}"
             "figure{margin:1em 0}")
    return ("<!doctype html><html lang='en-GB'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>Validation report {html.escape(instrument.key)}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")


def write_report(result: PsychometricsResult, instrument: Instrument,
                 out_dir: Path) -> tuple[Path, Path]:
    """Write validation_report.html and validation_report.json into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path = out_dir / "validation_report.html"
    json_path = out_dir / "validation_report.json"
    html_path.write_text(render_html(result, instrument), encoding="utf-8")
    json_path.write_text(json.dumps(result.as_json(), indent=2, default=float) + "\n", encoding="utf-8")
    return html_path, json_path
