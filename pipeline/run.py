"""`culture run`: ingest to publish, on one store connection.

Stages: ingest (files given, each all-or-nothing, then the web form's new submissions
from the inbox) -> quality flags -> aggregate, alongside the structural models ->
psychometrics (scores, reliability) alongside suppression -> publish -> benchmark,
alongside the verifier's check of the cells -> verify (every table's counts). The
driver models are fitted from the quality flags on, beside every later stage until
publish writes them. Stages side by side share nothing but what they read. The store is opened once for writing;
the published layer is a separate file replaced in one rename at the end, so a
dashboard reading it is never blocked.

Frozen waves (issue 25) are held as published: a run computes only the open waves
(quality flags, cells, psychometrics, item answers, drivers and comparisons read the
respondents of those waves alone, so adding a wave does not re-read the earlier ones)
and publishes the frozen waves' held rows beside them (`pipeline.scope`). A full run
(`full=True`, `culture run --full`) recomputes every wave with respondents and then
publishes the held rows in place of the frozen waves' recomputed ones: the same layer.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
from threadpoolctl import threadpool_limits

from pipeline.drivers import driver_inputs, driver_rows
from pipeline.ingest.inbox import InboxReport, ingest_inbox
from pipeline.ingest.files import IngestReport
from pipeline.publish.disclosure import suppress_small_cells
from pipeline.psychometrics.results import PsychometricsResult
from pipeline.psychometrics.stage import run_psychometrics, start_structural_models
from pipeline.publish.writer import PublishReport, aggregate_cells, publish
from pipeline.quality import analysis_view, flag_response_quality
from pipeline.scope import RunScope
from pipeline.store import open_store
from pipeline.ingest.tools import ImportReport, check_tool, ingest_from_tool
from survey.instrument import Instrument
from survey.settings import Settings

STAGES = ("ingest", "quality", "aggregate", "psychometrics + suppress", "publish", "benchmark",
          "verify")


@dataclass
class RunReport:
    """Everything `culture run` did."""

    ingests: list[IngestReport] = field(default_factory=list)
    #: What the import adapter made of each file, when they came from another tool.
    imports: list[ImportReport] = field(default_factory=list)
    psychometrics: PsychometricsResult | None = None
    published: PublishReport | None = None
    #: What was taken from the web form's inbox (None: no inbox, none expected).
    inbox: InboxReport | None = None
    #: Which waves were computed, which held as published, and whether it was a full run.
    scope: RunScope | None = None


def run_pipeline(settings: Settings, instrument: Instrument, files: list[Path] = (),
                 site: str | None = None, wave: int | None = None,
                 stage: Callable[[str], None] | None = None, tool: str = "culture",
                 column_map: dict[str, str] | None = None, full: bool = False) -> RunReport:
    """Run every stage; `stage(name)` is called as each one starts.

    `tool` other than "culture" reads each file through that tool's import adapter
    (`pipeline.ingest.tools`; `column_map` as its --map), as `culture ingest --from` does.

    Frozen waves are held as published and only the open waves computed; `full`
    recomputes every wave with respondents, frozen ones too, and still publishes the
    frozen waves' held rows (so both modes publish the same layer). Rows pooled over
    waves (validation, overall reliability) describe the open waves in both modes, and
    stay as last published when no wave is open.
    """
    check_tool(tool)
    with threadpool_limits(limits=1, user_api="blas"):  # small matrices: see psychometrics
        return _run(settings, instrument, files, site, wave, stage or (lambda name: None),
                    tool, column_map, full)


def _run(settings: Settings, instrument: Instrument, files: list[Path], site: str | None,
         wave: int | None, step: Callable[[str], None], tool: str,
         column_map: dict[str, str] | None, full: bool = False) -> RunReport:
    report = RunReport()
    definition = settings.instrument_path.read_text(encoding="utf-8")
    with open_store(settings.db_path, memory_limit=settings.memory_limit) as con:
        step("ingest")
        for file in files:
            ingested, imported = ingest_from_tool(con, file, instrument, definition, tool,
                                                  site, wave, column_map)
            if imported is not None:
                report.imports.append(imported)
            report.ingests.append(ingested)
        report.inbox = ingest_inbox(con, settings.inbox_path, instrument, definition)
        if report.inbox is not None and report.inbox.ingest is not None:
            report.ingests.append(report.inbox.ingest)
        # The quality flags decide who is analysed, so they come first; then the cells
        # are summed. Python work is placed beside DuckDB work, which leaves the GIL
        # free: the structural models (Python on a small sample) are fitted while DuckDB
        # sums the cells, and suppression (Python on those sums) runs beside the
        # psychometrics' scans, so each Python step fills time DuckDB would leave a core
        # idle. (bench/pipeline.py measures the stages.)
        scope = report.scope = RunScope.of_store(con, full)
        if not scope.computed and scope.frozen:
            # Every wave frozen: nothing to compute, the layer is the held rows.
            report.published = publish(con, instrument, settings, None, step, None, scope)
            return report
        step("quality")
        flags = flag_response_quality(con, instrument, waves=scope.computed)
        drivers_pool = ThreadPoolExecutor(max_workers=1)
        try:
            _compute_and_publish(con, instrument, settings, report, scope, flags, step,
                                 drivers_pool)
        except BaseException:
            # Told at once: the driver fits under way are left to end on their own.
            drivers_pool.shutdown(wait=False, cancel_futures=True)
            raise
        drivers_pool.shutdown()
    return report


def _compute_and_publish(con: duckdb.DuckDBPyConnection, instrument: Instrument,
                         settings: Settings, report: RunReport, scope: RunScope,
                         flags: dict[str, int], step: Callable[[str], None],
                         drivers_pool: ThreadPoolExecutor) -> None:
    """The stages from the quality flags on, into `report`; the driver models fitted in
    `drivers_pool` (which the caller shuts down)."""
    with ThreadPoolExecutor(max_workers=1) as models_pool, \
            ThreadPoolExecutor(max_workers=1) as pool:
        # (Should a stage fail, leaving the block waits for these two workers.)
        models = start_structural_models(con, instrument, settings, models_pool,
                                         scope.computed, scope.pooled)
        # The driver models are the run's longest numpy work (the logistic model's
        # 255 fits a group on the latest wave's respondents): fitted from here on,
        # beside everything up to their place in the published layer.
        analysis_view(con, settings.exclude_flagged, scope.computed)
        drivers = drivers_pool.submit(driver_rows, driver_inputs(con, instrument))
        step("aggregate")
        sums = aggregate_cells(con, instrument, settings, scope.computed)
        step("psychometrics + suppress")
        suppressing = pool.submit(suppress_small_cells, sums, settings.min_group_size)
        report.psychometrics = run_psychometrics(con, instrument, settings, flags=flags,
                                                 models=models, waves=scope.computed,
                                                 pooled=scope.pooled)
        decided = suppressing.result()
        report.published = publish(con, instrument, settings, report.psychometrics, step,
                                   decided, scope, drivers)
