"""Data quality: straight-lining, speeding and duplicate submissions, flagged per respondent.

Nothing is dropped silently. `flag_response_quality` writes one row per respondent to
`response_flags` with the measures and flags, keyed by the batch and source row the
response was ingested from, and defines the view `response_quality`, which shows them
beside the response id and completion time; `quality_by_site` counts them per site
and wave; `analysis_view` defines `analysis_responses`, which excludes flagged
respondents only when the setting says so.

Rules (the defaults are stated in `QualityRules`):

- longstring: the longest run of identical consecutive answers over the scale items in
  questionnaire order; with mixed keying a long run is inconsistent answering.
- straight-lining: at least `min_answers` scale items answered, all with the same code,
  or a longstring of at least `longstring_share` of the scale items.
- speeding: a completion time below `speed_fraction` of the wave's median (only when
  a duration is present).
- duplicate: the same site, wave and answers (items and attributes) as another
  respondent, with at least `min_answers` items answered; the one with the smallest
  response id is kept unflagged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from pipeline.scope import wave_list_sql
from pipeline.sql_templates import columns, quote, render
from pipeline.store import drop_relation
from survey.instrument import Instrument


@dataclass(frozen=True)
class QualityRules:
    """The thresholds of the flags (see the module docstring)."""

    min_answers: int = 10
    longstring_share: float = 0.5
    speed_fraction: float = 1 / 3


SQL_DIR = Path(__file__).resolve().parent / "sql"

def quality_sql(instrument: Instrument, target: str = "response_flags",
                waves: Sequence[int] | None = None) -> str:
    """The statement that (re)builds `target` (sql/response_flags.sql) from the responses
    of `waves` (None: every wave), after `response_quality_waves`; its parameters come
    from `quality_parameters`."""
    items = [quote(i) for i in instrument.scale_item_ids]
    every = [quote(i) for i in instrument.item_ids] + [quote(a.id) for a in instrument.attributes]
    blank = 1 + max(c for item in instrument.items if item.id in instrument.scale_item_ids
                    for c in instrument.response_scale(item.response_scale).codes)
    steps = []
    for number, (previous, current) in enumerate(zip(items, items[1:]), start=1):
        before = f"step_{number - 1}" if number > 1 else "answers"
        steps.append(f"""step_{number} as (
    select * exclude (run, run_here, longstring, {previous}), run_here as run,
        greatest(longstring, run_here) as longstring
    from (select *, case when {current} = {previous} then run + 1 else 1 end as run_here
          from {before})
),
""")
    source = "responses" if waves is None else \
        f"(select * from responses where {wave_list_sql(waves)})"
    return render(SQL_DIR, "response_flags.sql", target=target, source=source,
                  answered=" + ".join(f"({i} is not null)::integer" for i in items),
                  code_bits=" | ".join(f"(1::bigint << coalesce({i}, {blank}))" for i in items),
                  blank=str(blank), every_answer=", ".join(every), items=columns(items),
                  run_steps="\n".join(steps), last_item=items[-1],
                  last_step=f"step_{len(steps)}" if steps else "answers")


def quality_parameters(instrument: Instrument, rules: QualityRules) -> dict:
    """The values `quality_sql` binds, from the rules and the number of scale items."""
    longest = max(2, round(rules.longstring_share * len(instrument.scale_item_ids)))
    return {"min_answers": rules.min_answers, "longest": longest,
            "speed_fraction": rules.speed_fraction}


def flag_response_quality(con: duckdb.DuckDBPyConnection, instrument: Instrument,
                          rules: QualityRules = QualityRules(),
                          waves: Sequence[int] | None = None) -> dict[str, int]:
    """Build `response_flags` (and its readable view `response_quality`); return how
    many respondents each flag caught.

    `waves`: flag only these waves' respondents (a run's open waves), keeping the stored
    flags of the others (frozen waves: their flags were decided when they were
    published); None flags every wave. Every flag is decided within a wave (the wave's
    median time, duplicates within a site and wave), so flagging a wave alone gives it
    the flags it would get among all of them.
    """
    if waves is None or not _has_flags(con):
        scoped = None if waves is None else wave_list_sql(waves)
        con.execute("create or replace table response_quality_waves as "
                    "select wave, median(duration_seconds) as wave_median_seconds "
                    f"from responses {'where ' + scoped if scoped else ''} group by wave")
        con.execute(quality_sql(instrument, waves=waves), quality_parameters(instrument, rules))
    else:
        scoped = wave_list_sql(waves)
        con.execute(f"delete from response_quality_waves where {scoped}")
        con.execute("insert into response_quality_waves select wave, median(duration_seconds) "
                    f"from responses where {scoped} group by wave")
        con.execute(quality_sql(instrument, "response_flags_fresh", waves),
                    quality_parameters(instrument, rules))
        try:
            same = ([r[0] for r in con.execute("describe response_flags").fetchall()]
                    == [r[0] for r in con.execute("describe response_flags_fresh").fetchall()])
            if same:
                con.execute(f"delete from response_flags where {scoped}")
                # In wave order, so that a later run's scan of one wave's flags skips
                # the stored row groups of the others.
                con.execute("insert into response_flags select * from response_flags_fresh "
                            "order by wave")
            else:   # flags of an older layout: rebuilt from what this run flagged
                con.execute("create or replace table response_flags as "
                            "select * from response_flags_fresh")
        finally:
            con.execute("drop table if exists response_flags_fresh")
    # Stores written before the flags were split from their view hold it as a table.
    drop_relation(con, "response_quality")
    con.execute(render(SQL_DIR, "response_quality.sql"))
    where = "" if waves is None else f" where {wave_list_sql(waves)}"
    counts = con.execute("select count(*) filter (where straight_lining), "
                         "count(*) filter (where speeding), count(*) filter (where duplicate), "
                         "count(*) filter (where flagged), count(*) "
                         f"from response_flags{where}").fetchall()[0]
    return dict(zip(("straight_lining", "speeding", "duplicate", "flagged", "respondents"),
                    counts))


def _has_flags(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(con.execute(
        "select count(*) from information_schema.tables where table_schema = 'main' and "
        "table_name in ('response_flags', 'response_quality_waves') "
        "and table_type = 'BASE TABLE'").fetchall()[0][0] == 2)


def flag_response_quality_aside(con: duckdb.DuckDBPyConnection, instrument: Instrument,
                                waves: Sequence[int] | None = None) -> dict[str, int]:
    """`flag_response_quality` through a cursor of its own, for another thread: it writes
    only its own tables, so it can run while `con` reads the responses."""
    cursor = con.cursor()
    try:
        return flag_response_quality(cursor, instrument, waves=waves)
    finally:
        cursor.close()


def quality_by_site(con: duckdb.DuckDBPyConnection,
                    waves: Sequence[int] | None = None) -> list[tuple]:
    """(site, wave, respondents, straight-lining, speeding, duplicate, flagged) rows, of
    `waves` (None: every wave)."""
    where = "" if waves is None else f"where {wave_list_sql(waves)}"
    return con.execute(f"""
        select site_code, wave, count(*), count(*) filter (where straight_lining),
               count(*) filter (where speeding), count(*) filter (where duplicate),
               count(*) filter (where flagged)
        from response_flags {where} group by all order by all""").fetchall()


def analysis_view(con: duckdb.DuckDBPyConnection, exclude_flagged: bool,
                  waves: Sequence[int] | None = None) -> None:
    """Define `analysis_responses`: every response, or only unflagged ones; of `waves`
    only (a run's computed waves: an incremental run reads the new wave's respondents,
    not every earlier one), or of every wave (None)."""
    # The waves as a constant list: DuckDB skips the stored row groups of other waves.
    scoped = "" if waves is None else f" where {wave_list_sql(waves)}"
    if not exclude_flagged:
        con.execute("create or replace temp view analysis_responses as "
                    f"select * from responses{scoped}")
        return
    # Every scan of the respondents goes through this view, so it filters on the
    # integer row key (the file and row each response came from) rather than on
    # (site, wave, response id), whose string comparisons every scan would repeat.
    flags_scope = "" if waves is None else f" and {wave_list_sql(waves)}"
    con.execute(f"""
        create or replace temp view analysis_responses as
        select r.* from (select * from responses{scoped}) r
        anti join (select batch_id, source_row from response_flags
                   where flagged{flags_scope})
        using (batch_id, source_row)""")
