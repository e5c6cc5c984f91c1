"""Board-ready site report: one self-contained HTML page and a PDF made from it.

`write_site_report` reads only the published layer (opened read-only) and the site's
action plan, and writes ``site-report-<CODE>-<WAVE>.html`` and ``.pdf``: the six
principles and their gaps with the guide's actions, the site's actions with "did it
move?" for each one due for review, the site's benchmark position (funnel plots and
the peer group's best / median / worst), trends, equity between staff groups, response
rate and reliability, and a methods note. Figures are inline SVG and the CSS is inline, so
the page opens offline and prints the same anywhere. Hidden cells are reported as
"fewer than k responses", never as a number, a blank or a zero. Other sites are
unlabelled points drawn at a band of their respondent count shared with two or more
others (`outputs.peer_bands`), never at their exact count, which would follow them
from panel to panel and from report to report.

The PDF is printed by headless Chromium from the written HTML, with every host name
resolving to nothing, so a report cannot reach the network even by accident.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from datetime import date
from html import escape
from pathlib import Path

import duckdb
import pandas as pd

from outputs.peer_bands import band_of, count_bands, plotted_count
from outputs.report_figures import funnel_charts, principle_chart, trend_chart
from plans.store import ActionBook
from published.layout import (FDR, MIN_SITES_FOR_DISTRIBUTION, MOVED_CAVEAT, NO_TARGET,
                             NOT_STATED, distribution_shown, evidence_citation)
from published.drivers import (ASSOCIATION, DriverView, driver_sentence, priorities,
                               site_drivers, used_sentence)
from published.moved import due_for_review, moved_rows, moved_sentence
from published.reader import PublishedLayer
from published.questions import (LOWEST_SHOWN, METHOD as QUESTION_METHOD, NEGATIVE_NOTE,
                                 PEER_RULE, TOP_CHANGES, biggest_changes, change_sentence,
                                 lowest, no_change_words, question_rows, shown_columns)
from published.scores import SCORE_DEFINITION, headline
from survey.errors import CultureError
from survey.pdf import find_chromium, print_pdf

#: What to do when no PDF can be printed (the end of the printer's error message).
WITHOUT_PDF = "pass --no-pdf to write the HTML only"
CSS_PATH = Path(__file__).resolve().parent / "site_report.css"


class ReportError(CultureError):
    """A site report cannot be made as asked (unknown site or wave, nothing to show)."""


@dataclass(frozen=True)
class SiteReportFiles:
    """Where a site report was written."""

    html: Path
    pdf: Path | None


@dataclass
class SiteData:
    """Everything the report shows for one site and wave, read from the published layer."""

    code: str
    name: str
    site_type: str
    region: str
    wave: int
    k: int
    meta: dict[str, str]
    responses: int
    headcount: int | None
    names: dict[str, str]
    gaps: pd.DataFrame
    actions: pd.DataFrame
    benchmarks: pd.DataFrame
    funnel: pd.DataFrame
    funnel_params: pd.DataFrame
    #: The site's one published verdict per scale and principle against the other sites.
    verdicts: pd.DataFrame
    history: pd.DataFrame
    trends: pd.DataFrame
    group_cells: pd.DataFrame
    equity: pd.DataFrame
    reliability: pd.DataFrame
    agreement: pd.DataFrame
    #: Breakdown (attribute id) -> the title the published layer gives it.
    attribute_titles: dict[str, str]
    #: Every question of the six principles (`published.questions.question_rows`, with a
    #: peer group's best / median / worst withheld below MIN_SITES_FOR_DISTRIBUTION).
    questions: pd.DataFrame
    #: The site's own actions (`plans.store.ActionBook.list(site=...)`; empty if none) and
    #: "did it move?" (`published.moved.moved_rows`) of those due for review on `on`.
    plan: pd.DataFrame = field(default_factory=pd.DataFrame)
    moved: pd.DataFrame = field(default_factory=pd.DataFrame)
    on: date | None = None
    #: What goes with seeking help early (`published.drivers.site_drivers`), as the
    #: dashboard's Drivers page shows it; None when none was published for the wave.
    drivers: DriverView | None = None


def anonymous_funnel(funnel: pd.DataFrame, code: str, k: int) -> pd.DataFrame:
    """Funnel points as the report may draw them: the site's own as published; every
    other site as 'other' at a band of its n (bands of three or more sites per measure),
    with its published verdict and without the columns (interval, z, p, SD) from which
    its exact n could be worked back."""
    own = funnel["site_code"] == code
    others = funnel.loc[~own, ["measure", "n", "mean", "verdict"]].astype({"n": float})
    for measure, block in others.groupby("measure"):
        bands = count_bands(list(block["n"]))
        others.loc[block.index, "n"] = [plotted_count(band_of(n, bands), k)
                                        for n in block["n"]]
    # Ordered by mean, not by site code: in code order the i-th grey point would be the
    # same site in every panel and every report.
    others = others.assign(site_code="other").sort_values(["measure", "mean"], kind="stable")
    return pd.concat([funnel.loc[own], others], ignore_index=True)


def load_site_data(published: PublishedLayer | duckdb.DuckDBPyConnection, site_code: str,
                   wave: int, plan: pd.DataFrame | None = None,
                   on: date | None = None) -> SiteData:
    """The published rows for one site and wave; bad requests name what is accepted.

    `published` is the layer, or a connection from `open_published`; `plan` the action
    plan (`ActionBook.list`; only this site's rows are kept) and `on` the report's date
    (today unless given), which decides the actions due for review.
    """
    layer = (published if isinstance(published, PublishedLayer)
             else PublishedLayer.over(published))
    code = site_code.strip().upper()
    meta = layer.meta()
    k = layer.min_group_size
    sites = layer.sites()
    if code not in set(sites["site_code"]):
        raise ReportError(f"site {site_code!r} is not in the published layer; published "
                          f"sites: {', '.join(sites['site_code'])}")
    waves = layer.waves()
    if wave not in waves:
        raise ReportError(f"wave {wave} is not published; published waves: "
                          f"{', '.join(map(str, waves))}")
    shown = layer.shown_responses(code)
    if wave not in shown:
        raise ReportError(f"site {code} has fewer than {k} responses in {wave} (or they are "
                          f"hidden to protect a smaller group), so no report can be shown; "
                          f"waves with a report for {code}: "
                          f"{', '.join(map(str, sorted(shown))) or 'none'}")
    site = layer.site_row(code)
    funnel, params = layer.funnels(wave, "principle")
    history = layer.unit_series("site", code, ("principle",))
    history = history[~history["suppressed"].astype(bool) & (history["wave"] <= wave)]
    trends = layer.trends("site", code)
    trends = trends[(trends["wave"] == wave) & (trends["measure_kind"] == "principle")]
    group_cells = layer.group_cells(code, wave, kinds=("responses", "principle"))
    equity = layer.equity(code, wave)
    reliability = layer.reliability(code, wave)
    return SiteData(
        code=code, name=str(site["name"]), site_type=str(site["site_type"]),
        region=str(site["region"] or ""), wave=wave, k=k, meta=meta,
        responses=shown[wave], headcount=layer.headcount(code),
        names=layer.measure_names(("principle", "scale")),
        gaps=layer.principle_gaps(code, wave),
        actions=layer.actions(),
        benchmarks=headline(pd.concat([layer.benchmarks(code, wave, kind)
                                       for kind in ("principle", "scale")],
                                      ignore_index=True)),
        funnel=anonymous_funnel(funnel, code, k),
        verdicts=headline(layer.site_verdicts(code, wave)),
        funnel_params=params,
        history=history[["wave", "measure", "n", "mean", "ci_low", "ci_high"]]
        .reset_index(drop=True),
        trends=trends.sort_values("measure", kind="stable").reset_index(drop=True),
        group_cells=group_cells[group_cells["grp"] != NOT_STATED].reset_index(drop=True),
        equity=equity.loc[equity["measure_kind"] == "principle",
                          ["breakdown", "grp", "measure", "diff", "diff_low", "diff_high", "q",
                           "flag"]].reset_index(drop=True),
        reliability=pd.concat([reliability, layer.wave_reliability(wave)], ignore_index=True),
        agreement=layer.site_agreement(code, wave),
        attribute_titles=layer.attribute_titles(),
        questions=question_rows(layer, code, wave),
        drivers=site_drivers(layer, code, wave, f"{site['name']} ({code})"),
        **_plan_fields(layer, code, plan, on or date.today()),
    )


def _plan_fields(layer: PublishedLayer, code: str, plan: pd.DataFrame | None,
                 on: date) -> dict:
    """The site's own actions, and "did it move?" for those due for review: the review
    date on or before `on`, or done (a dropped action is not credited with anything)."""
    if plan is None or plan.empty:
        return {"plan": pd.DataFrame(), "moved": pd.DataFrame(), "on": on}
    own = plan[plan["site_code"] == code].reset_index(drop=True)
    return {"plan": own, "moved": moved_rows(layer, code, due_for_review(own, on)), "on": on}


# Formatting ---------------------------------------------------------------------------

def _shown(value, sites) -> str:
    """A peer group's best, median or worst, or a dash when the group is too small for
    the figure not to be one identifiable peer's own score (published.layout's rule)."""
    return _num(value, 1) if distribution_shown(sites) else "–"


def _num(value, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or pd.isna(value):
        return "–"
    return f"{value:,.{digits}f}".replace("-", "−")


def _omega(value) -> str:
    """Omega, or why a site has none (no proper one-factor solution; not suppression)."""
    return "not estimable" if value is None or pd.isna(value) else _num(value, 2)


def _ci(low, high, digits: int = 1) -> str:
    return f"{_num(low, digits)} to {_num(high, digits)}"


_ACRONYMS = {"uk", "eea", "gp", "sas", "nhs"}


def _label(code: str) -> str:
    """A readable label for a published code ('locally_employed' -> 'Locally employed')."""
    text = re.sub(r"(\d+)_(\d+)", r"\1-\2", str(code)).replace("_", " ")
    text = re.sub(r"(?<=[a-z])(\d)", r" \1", text)
    text = " ".join(w.upper() if w in _ACRONYMS else w for w in text.split(" "))
    return text[:1].upper() + text[1:]


def _hidden(k: int) -> str:
    return (f"fewer than {k} responses <span class='note'>(or hidden so that a smaller "
            f"group cannot be worked out)</span>")


# Sections -----------------------------------------------------------------------------

def _summary(d: SiteData) -> str:
    rate = (f"{d.responses / d.headcount:.0%} of {d.headcount:,} staff in post"
            if d.headcount else "headcount not known, so no response rate")
    clear = d.gaps[d.gaps["certainty"] == "clear gap"]
    first = d.gaps.iloc[0] if len(d.gaps) else None
    name = (f"<b>{escape(first['principle'])} {escape(d.names.get(first['principle'], ''))}</b>"
            if first is not None else "")
    if first is not None and first["certainty"] == NO_TARGET:
        focus = f"Lowest score: {name}."
        tile = ("–", "principles with a clear gap: no target without at least three sites "
                     "to compare with")
        target = f"there is {escape(_target_words(d))}"
    else:
        focus = f"Act first on {name} ({escape(first['certainty'])})." if name else ""
        tile = (f"{len(clear)} of 6", "principles with a clear gap to the target")
        target = f"the target is the {escape(_target_words(d))}"
    return f"""
<section class="summary">
  <div class="tile"><div class="big">{d.responses:,}</div>responses in {d.wave}</div>
  <div class="tile"><div class="big">{_response_rate(d)}</div>response rate: {rate}</div>
  <div class="tile"><div class="big">{tile[0]}</div>{tile[1]}</div>
  <p>{focus} Scores are 0-100 (higher is a more supportive culture); {target}.</p>
</section>"""


def _response_rate(d: SiteData) -> str:
    return f"{d.responses / d.headcount:.0%}" if d.headcount else "–"


def _target_words(d: SiteData) -> str:
    return str(d.gaps["target_basis"].iloc[0]) if len(d.gaps) else "peer group upper quartile"


def _principles(d: SiteData) -> str:
    rows = []
    shown = d.gaps.set_index("principle")
    ordered = list(d.gaps["principle"]) + sorted(p for p in d.names if re.fullmatch(r"P\d", p)
                                                 and p not in set(d.gaps["principle"]))
    for principle in ordered:
        name = escape(d.names.get(principle, principle))
        if principle not in shown.index:
            rows.append(f"<tr><td>–</td><td>{principle} {name}</td>"
                        f"<td colspan='4'>{_hidden(d.k)}</td></tr>")
            continue
        g = shown.loc[principle]
        css = g["certainty"].replace(" ", "-")
        rows.append(
            f"<tr class='{css}'><td>{int(g['priority'])}</td><td>{principle} {name}</td>"
            f"<td>{_num(g['score'])} <span class='ci'>({_ci(g['ci_low'], g['ci_high'])})</span></td>"
            f"<td>{_num(g['target'])}</td>"
            f"<td>{_num(g['gap'])} <span class='ci'>({_ci(g['gap_low'], g['gap_high'])})</span></td>"
            f"<td>{escape(g['certainty'])}</td></tr>")
    figure = principle_chart(d.gaps, d.names) if len(d.gaps) else ""
    return f"""
<section>
  <h2>The six principles: gaps against the target</h2>
  <p>Ordered by priority: a large gap whose whole 95% confidence interval lies short of the
    target comes first. Target: {escape(_target_words(d))}.</p>
  <figure>{figure}</figure>
  <table><thead><tr><th>priority</th><th>principle</th><th>score (95% CI)</th><th>target</th>
    <th>gap (95% CI)</th><th>certainty</th></tr></thead><tbody>{''.join(rows)}</tbody></table>
</section>"""


def _actions(d: SiteData) -> str:
    gaps = d.gaps[d.gaps["certainty"] != "meets target"]
    if len(gaps) and (gaps["certainty"] == NO_TARGET).all():
        intro = ("<p>With no target to measure gaps against, the guide's actions for every "
                 "principle follow, lowest score first.</p>")
        heading = "What the guide suggests"
    else:
        intro, heading = "", "What the guide suggests, for each gap"
    if gaps.empty:
        return ("<section><h2>What the guide suggests</h2><p>Every principle meets its target "
                "this year; the guide's actions remain a checklist for keeping it so.</p></section>")
    blocks = []
    for g in gaps.itertuples():
        items = "".join(
            f"<li><b>{escape(a.title)}.</b> {escape(a.action)}"
            + (f" <span class='note'>({escape(cited)})</span>"
               if (cited := evidence_citation(a.evidence)) else "") + "</li>"
            for a in d.actions[d.actions["principle"] == g.principle].itertuples())
        status = (f"score {_num(g.score)}" if g.certainty == NO_TARGET
                  else f"{escape(g.certainty)}, gap {_num(g.gap)}")
        blocks.append(f"<h3>{g.principle} {escape(d.names.get(g.principle, ''))} "
                      f"<span class='note'>({status})</span></h3><ul>{items}</ul>")
    return f"""
<section class="actions">
  <h2>{heading}</h2>{intro}
  {''.join(blocks)}
</section>"""


def _action_plan(d: SiteData) -> str:
    """The site's recorded actions, and "did it move?" for each one due for review."""
    on = d.on.isoformat() if d.on else ""
    if d.plan.empty:
        return ("<section class='plan'><h2>Action plan</h2><p>No actions are recorded for "
                "this site yet: a director records them on the dashboard's Actions page, or "
                "with <i>culture actions add</i>.</p></section>")
    rows = "".join(
        f"<tr data-action='{escape(str(a.id))}'><td>{escape(a.principle)} "
        f"{escape(d.names.get(a.principle, ''))}</td><td>{escape(a.what)}</td>"
        f"<td>{escape(a.owner_role)}</td><td>{escape(_day(a.start))}</td>"
        f"<td>{escape(_day(a.review))}</td><td>{escape(a.status)}</td></tr>"
        for a in d.plan.itertuples())
    moved = "".join(
        f"<tr data-action='{escape(str(m.action_id))}'><td>{escape(m.principle)}</td>"
        f"<td>{escape(m.action)}</td>"
        + (f"<td colspan='4'>{escape(moved_sentence(m))}</td>"
           if pd.isna(m.wave_before) or pd.isna(m.wave_after) or pd.isna(m.difference) else
           f"<td>{int(m.wave_before)} to {int(m.wave_after)}</td><td>{_signed(m.site_change)}</td>"
           f"<td>{_signed(m.peers_change)} <span class='note'>({int(m.peers)} other sites)"
           f"</span></td><td>{_signed(m.difference)} <span class='ci'>({_ci(m.low, m.high)})"
           f"</span></td>")
        + f"<td class='verdict'>{escape(m.verdict)}</td></tr>"
        for m in d.moved.itertuples())
    moved_table = (
        f"<table class='moved'><thead><tr><th>principle</th><th>action</th><th>waves</th>"
        f"<th>change here</th><th>peers' average change</th><th>difference (95% "
        f"interval)</th><th>did it move?</th></tr></thead><tbody>{moved}</tbody></table>"
        if moved else f"<p>No action is due for review on {on}.</p>")
    return f"""
<section class="plan">
  <h2>Action plan</h2>
  <p>What this site chose to do about its gaps, from its action plan on {on}. Actions carry
    over from wave to wave until they are done or dropped.</p>
  <table><thead><tr><th>principle</th><th>action</th><th>owner (role)</th><th>starts</th>
    <th>review</th><th>status</th></tr></thead><tbody>{rows}</tbody></table>
  <h3>Did it move?</h3>
  <p>For each action due for review (its review date on or before {on}, or done): the
    principle's score change, out of 100, from the last wave before the action started to
    the first wave after (a wave is taken as answered from October of its year), against
    the average change of the other sites of the peer group over the same waves. The
    interval carries this site's sampling error and the spread of the other sites'
    changes; "clearly" when it excludes 0, "not certain" when a 90% interval does. Not
    compared with fewer than 3 other sites or before a wave after the action.
    <b>{escape(MOVED_CAVEAT)}</b></p>
  {moved_table}
</section>"""


def _signed(value) -> str:
    """A change with its sign (+1.2, −0.4)."""
    return ("+" if value > 0 else "") + _num(value)


def _day(value) -> str:
    """An action's date as written in the plan (YYYY-MM-DD), or a dash."""
    stamp = pd.to_datetime(value, errors="coerce")
    return "–" if pd.isna(stamp) else stamp.date().isoformat()


def _benchmarks(d: SiteData) -> str:
    verdicts = d.verdicts.set_index("measure")
    rows = []
    for b in d.benchmarks.itertuples():
        found = b.measure in verdicts.index
        verdict = escape(verdicts.loc[b.measure, "verdict"]) if found else "–"
        judged_by = (_ci(verdicts.loc[b.measure, "low"], verdicts.loc[b.measure, "high"], 1)
                     if found and pd.notna(verdicts.loc[b.measure, "low"]) else "–")
        difference = (f"{_num(b.diff_vs_peer, 1)} <span class='ci'>"
                      f"({_ci(b.diff_vs_peer_low, b.diff_vs_peer_high, 1)})</span>"
                      if pd.notna(b.diff_vs_peer) else escape(str(b.diff_vs_peer_note)))
        rows.append(
            f"<tr data-measure='{escape(b.measure)}'><td>"
            f"{escape(b.measure if b.measure_kind == 'principle' else '')} "
            f"{escape(d.names.get(b.measure, b.measure))}</td><td><b>{_num(b.mean, 1)}</b></td>"
            f"<td>{_shown(b.peer_worst, b.peer_sites)}</td>"
            f"<td>{_shown(b.peer_median, b.peer_sites)}</td>"
            f"<td>{_shown(b.peer_best, b.peer_sites)}</td>"
            f"<td>{_shown(b.national_median, b.national_sites)}</td>"
            f"<td>{difference}</td>"
            f"<td class='verdict'>{verdict}</td><td>{judged_by}</td></tr>")
    figure = (funnel_charts(d.funnel, d.funnel_params, d.code, d.names)
              if len(d.funnel) and len(d.funnel_params) else "<p>Too few sites for a funnel plot.</p>")
    peers = int(d.benchmarks["peer_sites"].max()) if len(d.benchmarks) else 0
    return f"""
<section>
  <h2>Benchmark position</h2>
  <p>Each measure of this site is judged once against the other sites: "clearly below" or
    "clearly above" when its mean lies outside the limits the other sites give a site of
    its size (from their spread, which includes the real differences between sites),
    "not certain" when it lies outside their 90% range but inside those limits, "in line"
    otherwise. The same words appear on the dashboard and in the pipeline's summary. Each
    panel shows every reportable site (grey, marked by its verdict) and this site (blue)
    with its limits. Peer group: {escape(_label(d.site_type))}, {peers} reportable sites
    including this one. A group's worst, median and best are shown from
    {MIN_SITES_FOR_DISTRIBUTION} sites ("–" below that), so that no figure is one peer's
    own score.</p>
  <figure>{figure}</figure>
  <table><thead><tr><th>measure</th><th>this site</th><th>peer worst</th><th>peer average
    (median site)</th><th>peer best</th><th>all sites median</th><th>difference from the
    other sites of the peer group (interval with their spread; excludes 0 when clearly
    different)</th><th>against the other
    sites</th><th>limits the other sites give a site of this size</th></tr></thead>
    <tbody>{''.join(rows)}</tbody></table>
</section>"""


def _questions(d: SiteData) -> str:
    """The questions with the lowest % favourable and the most improved and declined, in
    the words and numbers of the dashboard's Principle page (`published.questions`)."""
    if d.questions.empty:
        return ("<section><h2>Questions</h2><p>No question of the six principles can be "
                f"shown this year: each needs {d.k} or more answers.</p></section>")
    columns = shown_columns(d.questions)
    heads = "".join(f"<th>{escape(header)}</th>" for header in columns.values())
    rows = "".join(
        f"<tr data-item='{escape(row['measure'])}'>"
        + "".join(f"<td>{escape(str(row[column]))}</td>" for column in columns) + "</tr>"
        for _, row in lowest(d.questions, LOWEST_SHOWN).iterrows())
    lists = []
    for heading, chosen, direction in zip(("Most improved", "Most declined"),
                                          biggest_changes(d.questions),
                                          ("improved", "declined")):
        items = "".join(f"<li>{escape(change_sentence(row))}</li>"
                        for _, row in chosen.iterrows()) or (
            f"<li>{escape(no_change_words(d.questions, direction))}</li>")
        lists.append(f"<h3>{heading}</h3><ul class='questions-{direction}'>{items}</ul>")
    return f"""
<section class="questions">
  <h2>Questions: the {LOWEST_SHOWN} least favourable, and the largest changes</h2>
  <p>Of the {len(d.questions)} questions of the six principles shown for this site, the
    {LOWEST_SHOWN} with the lowest % favourable (the share who gave a supportive answer; for
    a negatively worded question, {NEGATIVE_NOTE}), lowest first. Every question, principle
    by principle, is on the dashboard's Principle page, in the same words and numbers.
    {escape(PEER_RULE)}</p>
  <table><thead><tr>{heads}</tr></thead><tbody>{rows}</tbody></table>
  <h3>Most improved and most declined questions</h3>
  <p>At most {TOP_CHANGES} each, largest change first, among the changes called improved or
    declined. {escape(QUESTION_METHOD)}</p>
  {''.join(lists)}
</section>"""


def _drivers(d: SiteData) -> str:
    """What goes with asking for help early: the Drivers page's sentence and table."""
    view = d.drivers
    if view is None:
        return ""
    rows = "".join(
        f"<tr data-scale='{escape(r.scale)}'><td>{escape(r.name)}</td>"
        f"<td>{100 * r.share:.0f}%</td>"
        f"<td>{_ci(100 * r.share_low, 100 * r.share_high, 0) if r.share_low == r.share_low else 'none for one site'}</td>"
        f"<td>{escape(str(r.verdict or 'not compared'))}</td><td>{escape(r.quadrant)}</td>"
        f"<td>{escape(r.actions) if r.important and r.below else ''}</td></tr>"
        for r in view.rows.itertuples())
    chosen = priorities(view)
    priority = (f"Priority (matters most here and the site is below other sites): "
                f"{', '.join(chosen['name'])}." if len(chosen) else
                "No scale is in the priority corner: none that matters more than an equal "
                "share is below other sites here.")
    return f"""
<section class="drivers">
  <h2>What goes with asking for help early</h2>
  <p>{escape(driver_sentence(view))} Importance is from {escape(view.label)}.
    {escape(priority)}</p>
  <p>{escape(ASSOCIATION)}</p>
  <table><thead><tr><th>Scale</th><th>Share of what the scales explain</th>
    <th>95% range</th><th>Verdict against other sites</th><th>Where it falls</th>
    <th>The guide's actions (priorities)</th></tr></thead>
  <tbody>{rows}</tbody></table>{_used_support(view)}
</section>"""


def _used_support(view: DriverView) -> str:
    """The used-support (logistic) model's sentence, when one was published."""
    if view.support is None:
        return ""
    return (f"\n  <p class='drivers-used'>{escape(used_sentence(view.support))} Importance is "
            f"from {escape(view.support.label)}.</p>")


def _rule_words(d: SiteData) -> str:
    """The verdict rules that applied to this site's measures, as published."""
    rules = sorted(set(d.verdicts["rule"].dropna())) if len(d.verdicts) else []
    return "; ".join(rules) or "no site had enough others to be compared"


def _trends(d: SiteData) -> str:
    rows = "".join(
        f"<tr><td>{t.measure} {escape(d.names.get(t.measure, ''))}</td>"
        f"<td>{_num(t.mean_previous)} ({int(t.previous_wave)})</td><td>{_num(t.mean)}</td>"
        f"<td>{_num(t.change)} <span class='ci'>({_ci(t.change_low, t.change_high)})</span></td>"
        f"<td>{escape(t.flag)}</td></tr>" for t in d.trends.itertuples())
    table = (f"<table><thead><tr><th>principle</th><th>previous</th><th>{d.wave}</th><th>change "
             f"(95% CI)</th><th>verdict ({FDR:.0%} FDR)</th></tr></thead><tbody>{rows}</tbody></table>"
             if rows else "<p>No earlier wave is published for this site, so no change is shown.</p>")
    figure = trend_chart(d.history, d.names) if d.history["wave"].nunique() > 1 else ""
    return f"""
<section>
  <h2>Trends</h2>
  <figure>{figure}</figure>
  {table}
</section>"""


def _equity(d: SiteData) -> str:
    principles = sorted(p for p in d.names if re.fullmatch(r"P\d", p))
    cells = d.group_cells.set_index(["breakdown", "grp", "measure"])
    flags = d.equity.set_index(["breakdown", "grp", "measure"])
    labels = d.attribute_titles
    rows, previous = [], None
    for (breakdown, grp), _ in d.group_cells.groupby(["breakdown", "grp"], sort=True):
        # The attribute is named on its first row only, so each block reads as one.
        attribute = labels.get(breakdown, _label(breakdown)) if breakdown != previous else ""
        previous = breakdown
        head = (f"<tr data-group='{escape(breakdown)}:{escape(grp)}'><td>"
                f"{escape(attribute)}</td><td>{escape(_label(grp))}</td>")
        total = cells.loc[(breakdown, grp, "responses")]
        if total["suppressed"]:
            rows.append(head + f"<td colspan='{len(principles) + 1}'>{_hidden(d.k)}</td></tr>")
            continue
        tds = [f"<td>{int(total['n']):,}</td>"]
        for p in principles:
            key = (breakdown, grp, p)
            if key not in cells.index or cells.loc[key, "suppressed"]:
                tds.append(f"<td>fewer than {d.k}</td>")
                continue
            flag = flags.loc[key, "flag"] if key in flags.index else "no clear difference"
            mark = {"lower": " ▼", "higher": " ▲"}.get(flag, "")
            tds.append(f"<td class='{flag.replace(' ', '-')}'>{_num(cells.loc[key, 'mean'])}{mark}</td>")
        rows.append(head + "".join(tds) + "</tr>")
    heads = "".join(f"<th>{p}</th>" for p in principles)
    return f"""
<section>
  <h2>Equity: staff groups within the site</h2>
  <p>Principle scores of each group. ▼ / ▲: lower / higher than the rest of the site after
    controlling the false discovery rate at {FDR:.0%}. Groups with fewer than {d.k} responses are
    never shown, and neither is any group whose number could be worked out from the others.</p>
  <table class="equity"><thead><tr><th>attribute</th><th>group</th><th>responses</th>{heads}</tr>
    </thead><tbody>{''.join(rows)}</tbody></table>
</section>"""


def _reliability(d: SiteData) -> str:
    site = d.reliability[d.reliability["level"] == "site_wave"].set_index("scale")
    overall = d.reliability[d.reliability["level"] == "wave"].set_index("scale")
    agreement = d.agreement.set_index("scale")
    rows = []
    for scale in overall.index:
        name = escape(d.names.get(scale, scale))
        ref = f"{_num(overall.loc[scale, 'alpha'], 2)}"
        if scale not in site.index:
            rows.append(f"<tr><td>{name}</td><td colspan='4'>{_hidden(d.k)}</td><td>{ref}</td></tr>")
            continue
        r = site.loc[scale]
        rwg = agreement.loc[scale, "rwg_j"] if scale in agreement.index else float("nan")
        rows.append(f"<tr><td>{name}</td><td>{int(r['n']):,}</td><td>{_num(r['alpha'], 2)} "
                    f"<span class='ci'>({_ci(r['ci_low'], r['ci_high'], 2)})</span></td>"
                    f"<td>{_omega(r['omega_total'])}</td><td>{_num(rwg, 2)}</td><td>{ref}</td></tr>")
    return f"""
<section>
  <h2>Response and reliability</h2>
  <p>{d.responses:,} people answered in {d.wave}{
    f", {d.responses / d.headcount:.0%} of the {d.headcount:,} staff in post" if d.headcount else ""}.
    Cronbach's alpha (95% CI, Feldt) and McDonald's omega of each scale at this site;
    r<sub>wg(j)</sub> is within-site agreement (0.7 or more is usually taken to justify a
    site score).</p>
  <table><thead><tr><th>scale</th><th>n</th><th>alpha (95% CI)</th><th>omega</th>
    <th>r<sub>wg(j)</sub></th><th>alpha, all sites</th></tr></thead>
    <tbody>{''.join(rows)}</tbody></table>
</section>"""


def _methods(d: SiteData) -> str:
    synthetic = (" <b>All figures in this report come from synthetic data.</b>"
                 if d.meta.get("synthetic", "").lower() in ("true", "yes", "1") else "")
    return f"""
<section class="methods">
  <h2>Methods note</h2>
  <p>{escape(SCORE_DEFINITION)} A respondent's scale score is the mean of their answered
    items (negatively worded items reversed) when at least half are answered, rescaled to
    0-100 as (mean - 1) x 25; a principle score is the mean of its scales' scores. %
    favourable counts agree and strongly agree after reverse-keying. Confidence intervals are 95% (t for means).
    Principle targets: {escape(_target_words(d))} ({escape(d.meta.get('target_rule', ''))}).
    A site is never part of its own target. The gap's 95% interval comes from resampling the
    other sites (a seeded bootstrap, 2,000 draws) together with the site's own sampling
    error, so it carries the uncertainty of a target set by a handful of sites; a gap is
    "clear" only when that whole interval is short of the target. Shrunken (empirical-Bayes)
    site means, shown on the dashboard, treat the between-site variance as known: with few
    sites their intervals are somewhat too narrow.
    Each site is compared with the other sites by leaving it out: a random-effects model
    (tau<sup>2</sup> by REML) fitted to the other sites (externally studentised deleted
    residuals, Viechtbauer &amp; Cheung 2010, as R's metafor::rstudent) gives the limits of
    "clearly": {escape(_rule_words(d))}. Differences from the peer group are taken from the
    other sites' random-effects mean with the same limits, and are not given with fewer
    than three other sites. Changes from the previous wave use Welch's test, controlling the
    false discovery rate at {FDR:.0%} (Benjamini-Hochberg). Reliability: Cronbach's alpha with
    Feldt's CI, McDonald's omega total ("not estimable" where the scale's one-factor model
    has no proper solution at the site, which happens in small groups),
    r<sub>wg(j)</sub> (James, Demaree &amp; Wolf 1984), which rises with the number of items; the
    published layer also holds r*<sub>wg(j)</sub> (Lindell, Brandt &amp; Whitney 1999) and
    r<sub>wg(j)</sub> against a slightly skewed null. Whether a site mean is reported rests on
    its size and its reliability from ICC(1), not on agreement.</p>
  <p>Only aggregates are used. Any group with fewer than {d.k} responses is suppressed, and so
    is any group whose number could otherwise be worked out by subtraction; suppressed groups
    appear as "fewer than {d.k} responses".{synthetic} Published
    {escape(d.meta.get('published_on', ''))} ({escape(d.meta.get('instrument', ''))}).</p>
</section>"""


def render_html(d: SiteData) -> str:
    """The whole report as one self-contained HTML document."""
    css = CSS_PATH.read_text(encoding="utf-8")
    title = f"Culture of support: {d.name} ({d.code}), {d.wave}"
    return f"""<!DOCTYPE html>
<html lang="en-GB"><head><meta charset="utf-8">
<title>{escape(title)}</title>
<style>{css}</style></head>
<body>
<header><h1>Culture of support for doctors</h1>
  <p class="site">{escape(d.name)} <span class="note">({escape(d.code)}; {escape(_label(d.site_type))};
    {escape(d.region)})</span>: survey {d.wave}</p></header>
{_summary(d)}{_principles(d)}{_actions(d)}{_action_plan(d)}{_benchmarks(d)}{_questions(d)}{_drivers(d)}{_trends(d)}{_equity(d)}{_reliability(d)}{_methods(d)}
</body></html>
"""


def write_site_report(published_path: Path, site_code: str, wave: int, out_dir: Path,
                      pdf: bool = True, plans_path: Path | None = None,
                      on: date | None = None) -> SiteReportFiles:
    """Write the HTML report (and its PDF) for one site and wave into `out_dir`, with the
    site's action plan from `plans_path` (`Settings.plans_path`) as of `on` (today)."""
    plan = (ActionBook(plans_path).list(site=site_code.strip().upper())
            if plans_path is not None else None)
    with PublishedLayer.open(published_path) as layer:
        data = load_site_data(layer, site_code, int(wave), plan, on)
    if pdf:
        find_chromium(WITHOUT_PDF)     # fail before writing anything if no PDF can be made
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path = out_dir / f"site-report-{data.code}-{data.wave}.html"
    tmp = html_path.with_name(html_path.name + ".tmp")
    tmp.write_text(render_html(data), encoding="utf-8")
    os.replace(tmp, html_path)
    pdf_path = print_pdf(html_path, html_path.with_suffix(".pdf"), WITHOUT_PDF) if pdf else None
    return SiteReportFiles(html_path, pdf_path)
