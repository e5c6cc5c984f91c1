"""The psychometrics stage: quality flags, scores, reliability, aggregation and structure.

`run_psychometrics` runs every check a reviewer asks for on the stored responses of a
wave (or all waves) and returns a `PsychometricsResult` (`pipeline.psychometrics.results`),
each statistic judged against a stated criterion. Heavy work stays in DuckDB: reliability for every
scale x site x wave comes from sufficient statistics (`pipeline.psychometrics.moments`); only the
structural models (CFA, EFA, parallel analysis) see respondents, and at most
`STRUCTURE_SAMPLE` of them, drawn by a seeded hash of who answered: pseudo-random, and
the same sample from every store holding the same responses (`structure_sample`).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits
import pandas as pd

from stats.agreement import (group_mean_reliability, icc_from_group_stats, rwg_from_variances,
                             rwg_star_from_variances)
from pipeline.psychometrics.moments import PatternSums, levels_from_patterns, pattern_sums
from pipeline.psychometrics.results import (CfaChecks, DataQuality, IccRow, InvarianceTest,
                                            ItemDistribution, ItemRow, Judgement,
                                            PsychometricsResult, ReliabilityRow,
                                            SiteAgreement, SiteQuality, Scope,
                                            StructureChecks)
from pipeline.quality import (analysis_view, flag_response_quality,
                               flag_response_quality_aside, quality_by_site)
from stats.reliability import (StatisticsError, alpha_batch, item_statistics_from_covariance,
                                  omega_total_batch)
from pipeline.scope import wave_list_sql
from pipeline.scoring import keyed_items, score_responses
from pipeline.store import drop_relation
from stats.structure import bartlett_sphericity, cfa, htmt, kmo, parallel_analysis
from survey.errors import CultureError
from survey.instrument import Instrument
from survey.settings import Settings

#: Criteria every statistic is judged against: (comparison, threshold, source).
CRITERIA = {
    "alpha": (">=", 0.70, "Nunnally 1978"),
    "omega_total": (">=", 0.70, "McDonald 1999"),
    "cfi": (">=", 0.95, "Hu & Bentler 1999"),
    "tli": (">=", 0.95, "Hu & Bentler 1999"),
    "rmsea": ("<=", 0.06, "Hu & Bentler 1999"),
    "srmr": ("<=", 0.08, "Hu & Bentler 1999"),
    "ave": (">=", 0.50, "Fornell & Larcker 1981"),
    "composite_reliability": (">=", 0.70, "Fornell & Larcker 1981"),
    "htmt": ("<", 0.85, "Henseler et al. 2015"),
    "kmo": (">=", 0.60, "Kaiser 1974"),
    "site_mean_reliability": (">=", 0.70, "Bliese 2000"),
}
STRUCTURE_SAMPLE = 20_000
SEED = 20261123


def verdict(name: str, value: float | None) -> str:
    """'meets', 'does not meet' or 'n/a' (no value) against the criterion for `name`."""
    op, threshold, _ = CRITERIA[name]
    if value is None or not np.isfinite(value):
        return "n/a"
    ok = value >= threshold if op == ">=" else value <= threshold if op == "<=" \
        else value < threshold
    return "meets" if ok else "does not meet"


def judge(name: str, value: float | None) -> Judgement:
    """A value with its criterion, source and plain verdict (see `verdict`)."""
    op, threshold, source = CRITERIA[name]
    finite = value is not None and np.isfinite(value)
    return Judgement(float(value) if finite else None, f"{op} {threshold}", source,
                     verdict(name, value))


class PsychometricsError(CultureError):
    """The requested wave or site has no responses to analyse."""


def _scope_table(con, wave: int | None, site: str | None) -> None:
    """`scope_responses`: the analysed respondents of the chosen wave / site."""
    if site is not None:
        known = {r[0] for r in con.execute("select site_code from sites").fetchall()}
        if site.upper() not in known:
            raise PsychometricsError(f"site '{site}' is not in the store; known: "
                                     f"{', '.join(sorted(known))}")
    drop_relation(con, "scope_responses")
    if wave is None and site is None:
        con.execute("create temp view scope_responses as select * from analysis_responses")
    else:
        # Materialised once: every statistic below scans it, and a view would repeat
        # the filtering (and the quality anti-join) each time.
        con.execute("create temp table scope_responses as select * from "
                    "analysis_responses where ($wave is null or wave = $wave) "
                    "and ($site is null or site_code = $site)",
                    {"wave": wave, "site": site.upper() if site else None})
    n = con.execute("select count(*) from scope_responses").fetchone()[0]
    if n == 0:
        raise PsychometricsError(f"no responses for wave {wave or 'any'} and site "
                                 f"{site or 'any'}; check `culture status`")


#: The groupings every scale's item moments are summed at: level -> grouping columns.
MOMENT_LEVELS = {"overall": (), "wave": ("wave",), "site_wave": ("site_code", "wave")}


def scope_moments(con, instrument: Instrument) -> dict[str, dict[str, list]]:
    """Item matrices of every scale at every level, one scan per scale."""
    return {scale.id: _at_levels(_scope_scan(con, instrument, scale.id))
            for scale in instrument.scales}


def _scope_scan(con, instrument: Instrument, scale_id: str) -> PatternSums:
    return pattern_sums(con, instrument, scale_id, MOMENT_LEVELS["site_wave"],
                        source="scope_responses")


def _at_levels(raw: PatternSums, pooled: Sequence[int] | None = None) -> dict[str, list]:
    """The matrices at every level; the overall level pooled over the waves `pooled`
    only (None: over every wave scanned), so that a full run's pooled rows describe the
    open waves, as an incremental run's do."""
    levels = dict(zip(MOMENT_LEVELS,
                      levels_from_patterns(raw, tuple(MOMENT_LEVELS.values())).values()))
    if pooled is not None and len(raw.rows["n"]):
        keep = np.isin(np.asarray(raw.rows["wave"], dtype=np.int64), list(pooled))
        if not keep.all():
            subset = PatternSums({name: np.asarray(column)[keep]
                                  for name, column in raw.rows.items()},
                                 raw.by, raw.items, raw.min_items)
            levels["overall"] = levels_from_patterns(subset, ((),))[()]
    return levels


def reliability_rows(moments: dict, min_group: int) -> list[ReliabilityRow]:
    """Alpha (with CI) and omega per scale: overall, per wave, per site x wave."""
    per_scale = {scale_id: _scale_reliability(scale_id, levels, min_group)
                 for scale_id, levels in moments.items()}
    return _level_major(per_scale)


def _level_major(per_scale: dict[str, dict[str, list[ReliabilityRow]]]
                 ) -> list[ReliabilityRow]:
    """Rows ordered level by level, scales in instrument order within each level."""
    return [row for level in MOMENT_LEVELS for rows in per_scale.values() for row in rows[level]]


def _scale_reliability(scale_id: str, levels: dict[str, list], min_group: int
                       ) -> dict[str, list[ReliabilityRow]]:
    """`reliability_rows` of one scale, by level."""
    result = {}
    for level, by in MOMENT_LEVELS.items():
        rows = result[level] = []
        groups = levels[level]
        # Groups below the reporting threshold are listed but not estimated: their
        # numbers are never shown, and tiny samples make the factor fit crawl.
        big = [g for g in groups if g.n_rows >= min_group]
        if big:
            alphas = alpha_batch(np.stack([g.cov for g in big]), [g.n_rows for g in big])
            omegas = omega_total_batch(np.stack([g.corr for g in big]))
        index = 0
        for group in groups:
            key = dict(zip(by, group.key))
            group_of = {"level": level, "scale": scale_id, "wave": key.get("wave"),
                        "site_code": key.get("site_code"), "n": group.n_rows,
                        "n_items": len(group.items)}
            if group.n_rows < min_group:
                rows.append(ReliabilityRow(
                    **group_of, note=f"fewer than {min_group} responses: not reported"))
                continue
            alpha = {name: float(values[index]) for name, values in alphas.items()}
            omega = float(omegas[index])
            estimable = bool(np.isfinite(omega))
            rows.append(ReliabilityRow(
                **group_of, **alpha, omega_total=omega if estimable else None,
                omega_note=None if estimable else (
                    "not estimable: no proper one-factor solution "
                    "(a Heywood case, usual in small groups)"),
                alpha_verdict=verdict("alpha", alpha["alpha"])))
            index += 1
    return result


def _scale_results(raw: PatternSums, scale_id: str, min_group: int,
                   pooled: Sequence[int] | None = None) -> tuple[dict, dict, tuple]:
    """A scale's matrices at every level, its reliability rows and its aggregation rows
    (`aggregation_rows`); no store access. `pooled` as in `_at_levels`."""
    levels = _at_levels(raw, pooled)
    return (levels, _scale_reliability(scale_id, levels, min_group),
            aggregation_rows({scale_id: levels}, min_group))


def item_rows(moments: dict) -> list[ItemRow]:
    """Corrected item-total correlation and alpha if deleted, pooled over the scope."""
    rows = []
    for scale_id, levels in moments.items():
        (group,) = levels["overall"]
        stats = item_statistics_from_covariance(group.cov, group.items)
        for item, r, alpha in zip(stats.items, stats.item_total_corrected,
                                  stats.alpha_if_deleted):
            rows.append(ItemRow(scale_id, item, r, alpha))
    return rows


def _site_score_stats(moments: dict) -> pd.DataFrame:
    """n, mean and within-site sum of squares of every scale's score per site x wave.

    From the score sums that ride along each scale's moment scan
    (`pipeline.psychometrics.moments`), so the respondents are not read again for them:
    within = sum of squares - n mean^2.
    """
    rows = []
    for scale_id, levels in moments.items():
        for group in levels["site_wave"]:
            if group.score_n > 0:
                mean = group.score_sum / group.score_n
                within = max(group.score_sumsq - group.score_n * mean * mean, 0.0)
                rows.append((group.key[0], group.key[1], group.score_n, mean, within,
                             scale_id))
    return pd.DataFrame(rows, columns=["site_code", "wave", "n", "mean", "within", "scale_id"])


def aggregation_rows(moments: dict, min_group: int
                     ) -> tuple[list[IccRow], list[SiteAgreement]]:
    """ICC(1), ICC(2) per scale and wave; rwg(j) and a reportable verdict per site x wave."""
    rwg = {}
    for scale_id, levels in moments.items():
        groups = levels["site_wave"]
        if not groups:
            continue
        variances = np.array([g.cov.diagonal() for g in groups])
        # (rwg_j, r*wg(j), rwg_j against a slightly skewed null) per site x wave
        for group, *values in zip(groups, rwg_from_variances(variances),
                                  rwg_star_from_variances(variances),
                                  rwg_from_variances(variances, null="slight_skew")):
            rwg[(scale_id, int(group.key[1]), group.key[0])] = tuple(map(float, values))
    stats = _site_score_stats(moments)
    iccs, sites = [], []
    for (scale_id, wave), block in stats.groupby(["scale_id", "wave"]):
        try:
            result = icc_from_group_stats(block.n.to_numpy(), block["mean"].to_numpy(),
                                          block.within.to_numpy())
        except StatisticsError as exc:
            iccs.append(IccRow(scale_id, int(wave), note=str(exc)))
            continue
        iccs.append(IccRow(scale_id, int(wave), icc1=result.icc1, icc2=result.icc2,
                           n=result.n, sites=result.groups, n0=result.n0,
                           icc1_mean_size=result.icc1_mean_size))
        reliability = group_mean_reliability(result.icc1, block.n.to_numpy())
        for site, n, lam in zip(block.site_code, block.n, reliability):
            big_enough = int(n) >= min_group
            reliable = float(lam) >= CRITERIA["site_mean_reliability"][1]
            reportable = bool(big_enough and reliable)
            rwg_j, rwg_j_star, rwg_j_skew = rwg.get((scale_id, int(wave), site),
                                                    (None, None, None))
            sites.append(SiteAgreement(
                scale_id, int(wave), site, int(n), float(lam), rwg_j, reportable,
                "reportable" if reportable else
                f"fewer than {min_group} responses" if not big_enough else
                "site mean not reliable enough (below .70)",
                rwg_j_star=rwg_j_star, rwg_j_slight_skew=rwg_j_skew))
    return iccs, sites


def structure_sample(con, instrument: Instrument,
                     source: str = "scope_responses") -> pd.DataFrame:
    """The seeded sample of analysed respondents the structural checks and the invariance
    models use: site type, staff group and the scale items (one scan serves both).

    The `STRUCTURE_SAMPLE` respondents whose (site, wave, response id) hash smallest
    with the seed, in that order: which respondents are drawn depends on who they are,
    not on where the store keeps them. (DuckDB's seeded reservoir sample depends on the
    rows' physical order, which a parallel ingest does not fix: two stores loaded from
    the same file published different KMO, CFA and invariance results.) DuckDB's hash
    is stable for a given DuckDB version.
    """
    columns = ", ".join(f'r."{i}"' for i in instrument.scale_item_ids)
    return con.execute(
        f"select s.site_type, r.staff_group, {columns} from {source} r "
        f"join sites s using (site_code) "
        f"order by hash(r.site_code, r.wave, r.response_id, $seed), r.site_code, r.wave, "
        f"r.response_id limit {STRUCTURE_SAMPLE}", {"seed": SEED}).df()


def structure_summary(con, instrument: Instrument) -> StructureChecks:
    """KMO, Bartlett, parallel analysis and the CFA of the intended structure."""
    return structure_from_sample(structure_sample(con, instrument), instrument)


def structure_from_sample(frame: pd.DataFrame, instrument: Instrument) -> StructureChecks:
    """`structure_summary` on a sample already drawn (no store access: thread-safe)."""
    structure = {s.id: [i.id for i in instrument.items_of(s.id)] for s in instrument.scales}
    keyed = pd.concat([keyed_items(frame, instrument, s) for s in structure], axis=1)
    complete = keyed.dropna()
    if len(complete) < 5 * len(keyed.columns):
        return StructureChecks(note=f"only {len(complete)} complete responses: too few "
                                    f"for the structural checks (need "
                                    f"{5 * len(keyed.columns)})")
    sampling = kmo(keyed)
    fitted = cfa(complete, structure)
    ratios = htmt(complete, structure)
    return StructureChecks(
        n_complete=len(complete), sampled_up_to=STRUCTURE_SAMPLE,
        kmo=judge("kmo", sampling.overall), kmo_items=sampling.per_item,
        bartlett=bartlett_sphericity(complete),
        suggested_factors=parallel_analysis(complete, seed=SEED).suggested_factors,
        intended_factors=len(structure),
        cfa=CfaChecks(fitted.chi_square, fitted.df, fitted.p_value, judge("cfi", fitted.cfi),
                      judge("tli", fitted.tli), judge("rmsea", fitted.rmsea),
                      tuple(fitted.rmsea_ci), judge("srmr", fitted.srmr), fitted.loadings),
        composite_reliability={f: judge("composite_reliability", v)
                               for f, v in fitted.composite_reliability.items()},
        ave={f: judge("ave", v) for f, v in fitted.ave.items()},
        htmt={f"{a} / {b}": judge("htmt", float(ratios.loc[a, b]))
              for i, a in enumerate(structure) for b in list(structure)[i + 1:]})


def item_distributions(con, instrument: Instrument) -> list[ItemDistribution]:
    """Answers per code for every item (raw, before reverse-keying).

    One scan with a grouping set per item: each is a tiny aggregation on one small
    integer column, and the respondents (and the flagged exclusion) are read once, not
    once per item as a union of one GROUP BY per item would.
    """
    columns = [f'"{item.id}"' for item in instrument.items]
    which = "case " + " ".join(f"when grouping({column}) = 0 then '{item.id}'"
                               for item, column in zip(instrument.items, columns)) + " end"
    counts = con.execute(
        f"select {which} as item, coalesce({', '.join(columns)}) as code, count(*) as n "
        f"from scope_responses group by grouping sets "
        f"({', '.join(f'({column})' for column in columns)})").fetchall()
    rows = {item.id: {"item": item.id, "missing": 0,
                      "counts": {str(c): 0 for c in
                                 instrument.response_scale(item.response_scale).codes}}
            for item in instrument.items}
    for item, code, n in counts:
        if code is None:
            rows[item]["missing"] = int(n)
        else:
            rows[item]["counts"][str(code)] = int(n)
    return [ItemDistribution(**row) for row in rows.values()]


def invariance_summary(con, instrument: Instrument, min_group: int) -> list[InvarianceTest]:
    """Configural / metric / scalar invariance of each core scale across site types and
    staff groups, on a seeded sample of respondents; groups too small are left out."""
    return invariance_from_sample(structure_sample(con, instrument), instrument, min_group)


def invariance_from_sample(frame: pd.DataFrame, instrument: Instrument,
                           min_group: int) -> list[InvarianceTest]:
    """`invariance_summary` on a sample already drawn (no store access: thread-safe)."""
    from stats.invariance import measurement_invariance

    rows = []
    for scale in (s for s in instrument.scales if s.core):
        items = keyed_items(frame, instrument, scale.id)
        needed = max(min_group, 5 * items.shape[1])
        for attribute in ("site_type", "staff_group"):
            data = items.assign(group=frame[attribute])
            data = data[data.group.notna() & (data.group != "prefer_not_to_say")]
            sizes = data.dropna().groupby("group").size()
            kept = sizes[sizes >= needed].index
            left_out = sorted(set(sizes.index) - set(kept))
            compared = {"scale": scale.id, "across": attribute, "groups": tuple(sorted(kept)),
                        "left_out": tuple(left_out)}
            try:
                steps = measurement_invariance(data[data.group.isin(kept)],
                                               list(items.columns), "group")
            except StatisticsError as exc:
                rows.append(InvarianceTest(**compared, note=str(exc)))
                continue
            rows.append(InvarianceTest(**compared, steps=tuple(steps)))
    return rows


@dataclass(frozen=True)
class StructuralModels:
    """The structural checks and invariance models of every analysed respondent, being
    fitted in a worker (`start_structural_models`)."""

    structure: Future
    invariance: Future


def _pooled_source(source: str, waves: Sequence[int] | None,
                   pooled: Sequence[int] | None) -> str:
    """`source`, or its rows of the `pooled` waves when those are fewer than `waves`."""
    if pooled is None or (waves is not None and set(pooled) >= set(waves)):
        return source
    return f"(select * from {source} where {wave_list_sql(pooled)})"


def start_structural_models(con, instrument: Instrument, settings: Settings,
                            pool: ThreadPoolExecutor, waves: Sequence[int] | None = None,
                            pooled: Sequence[int] | None = None) -> StructuralModels:
    """Draw the structural sample from all analysed respondents and start fitting it
    in `pool`, for a caller with other work to do meanwhile.

    The fits are Python and numpy on one small sample (so they cost the same at any
    scale), which holds the GIL most of the time: `culture run` starts them as soon as the quality
    flags exist, to run while DuckDB sums the cells, rather than beside the
    psychometrics' own Python work and the suppression.

    `waves`: the run's computed waves (None: every wave); the sample is drawn from the
    respondents of the `pooled` waves among them (None: all of them), the open waves a
    run's pooled rows describe.
    """
    analysis_view(con, settings.exclude_flagged, waves)
    sample = structure_sample(con, instrument,
                              source=_pooled_source("analysis_responses", waves, pooled))
    return StructuralModels(
        structure=pool.submit(structure_from_sample, sample, instrument),
        invariance=pool.submit(invariance_from_sample, sample, instrument,
                               settings.min_group_size))


def run_psychometrics(con, instrument: Instrument, settings: Settings,
                      wave: int | None = None, site: str | None = None,
                      flags: dict[str, int] | None = None,
                      models: StructuralModels | None = None,
                      waves: Sequence[int] | None = None,
                      pooled: Sequence[int] | None = None) -> PsychometricsResult:
    """Every check of the validation report (`PsychometricsResult.as_json()` is its JSON).

    `flags` is what `flag_response_quality` returned when the caller has just run it
    (`culture run` does, before summing the cells); otherwise the flags are built here.
    `models` is what `start_structural_models` returned, when the caller started them
    (only for the whole store: no wave or site).

    `waves` limits what is read to those waves' respondents (a run's computed waves:
    None reads every wave); `pooled`, the waves the pooled results (overall reliability,
    structure, invariance) describe (None: all that were read). `culture run` passes
    the open waves as `pooled` in both its modes, so a full run and an incremental run
    publish the same pooled rows.
    """
    if models is not None and (wave is not None or site is not None):
        raise ValueError("structural models started early cover every respondent; "
                         "they cannot serve one wave or site")
    # One BLAS thread: every matrix here is small (tens of items), and OpenBLAS's worker
    # threads cost far more than they save on such matrices, above all when other
    # processes share the cores: they spin waiting for work the small products never
    # hand them.
    with threadpool_limits(limits=1, user_api="blas"):
        return _run_psychometrics(con, instrument, settings, wave, site, flags, models,
                                  waves, pooled)


def _run_psychometrics(con, instrument: Instrument, settings: Settings, wave: int | None,
                       site: str | None, flags: dict[str, int] | None,
                       models: StructuralModels | None, waves: Sequence[int] | None = None,
                       pooled: Sequence[int] | None = None) -> PsychometricsResult:
    if flags is None and settings.exclude_flagged:
        # they decide who is analysed
        flags = flag_response_quality(con, instrument, waves=waves)
    analysis_view(con, settings.exclude_flagged, waves)
    score_responses(con, instrument)
    _scope_table(con, wave, site)
    # The structural models are Python and numpy on one small sample; unless the caller
    # started them already, they are fitted in a worker thread while DuckDB scans the
    # respondents below, on the core those scans leave idle when they wait (DuckDB
    # releases the GIL while it works). When the quality flags do not decide who is
    # analysed, they are built meanwhile through a cursor of their own (writing only
    # their own tables) and only their counts wait for them. The results do not depend
    # on the overlap: each side only reads what it was handed or what no other side
    # writes.
    with ThreadPoolExecutor(max_workers=1) as pool, \
            ThreadPoolExecutor(max_workers=1) as flagging:
        flagged = (None if flags is not None else
                   flagging.submit(flag_response_quality_aside, con, instrument, waves))
        if models is None:
            sample = structure_sample(con, instrument,
                                      source=_pooled_source("scope_responses", waves, pooled))
            models = StructuralModels(
                structure=pool.submit(structure_from_sample, sample, instrument),
                invariance=pool.submit(invariance_from_sample, sample, instrument,
                                       settings.min_group_size))
        # (Should the scans fail, leaving the block still waits for the other work.)
        scanned = _scans(con, instrument, settings, pooled)
        if flagged is not None:
            flags = flagged.result()
        quality = DataQuality(flags, tuple(SiteQuality(*row)
                                           for row in quality_by_site(con, waves)))
        return PsychometricsResult(
            scope=Scope(wave, site, instrument.key, settings.exclude_flagged,
                        settings.min_group_size),
            data_quality=quality, **scanned, structure=models.structure.result(),
            invariance=tuple(models.invariance.result()), criteria=dict(CRITERIA))


def _scans(con, instrument: Instrument, settings: Settings,
           pooled: Sequence[int] | None = None) -> dict[str, tuple]:
    """Everything of the stage that reads the respondents in DuckDB.

    Each scale's scan is DuckDB's work; turning its sums into matrices, alphas and
    omegas is Python's. The Python side of one scale runs in a worker thread while
    DuckDB scans the next (DuckDB leaves the GIL free while it works), so neither waits
    for the other. Gives the `PsychometricsResult` parts they make, by name.
    """
    min_group = settings.min_group_size
    with ThreadPoolExecutor(max_workers=1) as python_side:
        pending = {scale.id: python_side.submit(
            _scale_results, _scope_scan(con, instrument, scale.id), scale.id, min_group,
            pooled)
            for scale in instrument.scales}
        distributions = item_distributions(con, instrument)
        results = {scale_id: future.result() for scale_id, future in pending.items()}
    moments = {scale_id: levels for scale_id, (levels, _, _) in results.items()}
    iccs = sorted((row for _, _, (rows, _) in results.values() for row in rows),
                  key=lambda row: (row.scale, row.wave))
    sites = sorted((row for _, _, (_, rows) in results.values() for row in rows),
                   key=lambda row: (row.scale, row.wave, row.site_code))
    return {
        "reliability": tuple(_level_major({scale_id: rows for scale_id, (_, rows, _)
                                           in results.items()})),
        "items": tuple(item_rows(moments)),
        "item_distributions": tuple(distributions),
        "icc": tuple(iccs),
        "sites": tuple(sites),
    }
