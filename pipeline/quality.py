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

from dataclasses import dataclass

import duckdb

from pipeline.store import drop_relation
from pipeline.ingest.row_checks import quote
from survey.instrument import Instrument


@dataclass(frozen=True)
class QualityRules:
    min_answers: int = 10
    longstring_share: float = 0.5
    speed_fraction: float = 1 / 3


def quality_sql(instrument: Instrument, rules: QualityRules) -> str:
    """The statement that (re)builds `response_flags` (after `response_quality_waves`)."""
    items = [quote(i) for i in instrument.scale_item_ids]
    every = [quote(i) for i in instrument.item_ids] + [quote(a.id) for a in instrument.attributes]
    answered = " + ".join(f"({i} is not null)::integer" for i in items)
    longest = max(2, round(rules.longstring_share * len(items)))
    blank = 1 + max(c for item in instrument.items if item.id in instrument.scale_item_ids
                    for c in instrument.response_scale(item.response_scale).codes)
    # (The instrument's scored codes are at most MAX_SCORED_CODE, so the mask fits 64 bits.)
    # The run length at each position builds on the one before it, one projection per
    # item, each keeping only the current run and the longest so far. (Written as a
    # chain of aliases in one select list, DuckDB expands every alias into the
    # expressions behind it, and the work grows with the square of the item count.)
    scan = f"""
            select site_code, wave, response_id, batch_id, source_row, duration_seconds,
                   ({answered}) as n_answered,
                   -- One bit per answer code used (codes are small integers): a single
                   -- bit set means every answer was the same (cheaper than least/greatest).
                   -- A blank sets bit {blank}, no answer code, which is set anyway and not
                   -- counted (coalescing the small code before the shift is cheaper than
                   -- coalescing the shifted bigint).
                   bit_count({' | '.join(f'(1::bigint << coalesce({i}, {blank}))' for i in items)}
                             | (1::bigint << {blank})) - 1 as codes_used,
                   -- A 64-bit hash stands in for the answers: grouping wide structs is
                   -- slow, and two different answer sets colliding among a million
                   -- respondents is about a 1 in 10^7 chance.
                   hash(row({', '.join(every)})) as answers_hash,
                   {', '.join(items)}, 1 as run, 1 as longstring
            from responses"""
    for previous, current in zip(items, items[1:]):
        scan = f"""
            select * exclude (run, run_here, longstring, {previous}), run_here as run,
                   greatest(longstring, run_here) as longstring
            from (select *, case when {current} = {previous} then run + 1 else 1 end
                                as run_here
                  from ({scan}))"""
    scan = f"select * exclude (run, {items[-1]}) from ({scan})"
    return f"""
        create or replace table response_flags as
        with
        runs as ({scan}
        ),
        repeated as (
            select site_code, wave, answers_hash, min(response_id) as first_id
            from runs where n_answered >= {rules.min_answers}
            group by all having count(*) > 1
        ),
        final as (
            select batch_id, source_row, site_code, wave, n_answered, longstring,
                   (n_answered >= {rules.min_answers} and codes_used = 1)
                       or longstring >= {longest} as straight_lining,
                   coalesce(duration_seconds < {rules.speed_fraction} * wave_median_seconds,
                            false) as speeding,
                   coalesce(response_id <> repeated.first_id, false) as duplicate
            from runs
            join response_quality_waves using (wave)
            left join repeated using (site_code, wave, answers_hash)
        )
        select *, straight_lining or speeding or duplicate as flagged from final
    """


#: What a survey lead reads: every respondent's measures and flags beside their ids and
#: completion time. A view over the stored flags, which keep only the integer row key
#: and the measures (writing the ids and times again cost ~0.3 s at 1M responses).
QUALITY_VIEW = """
    create view response_quality as
    select f.site_code, f.wave, r.response_id, f.batch_id, f.source_row, f.n_answered,
           f.longstring, r.duration_seconds, w.wave_median_seconds, f.straight_lining,
           f.speeding, f.duplicate, f.flagged
    from response_flags f
    join responses r using (batch_id, source_row)
    join response_quality_waves w on w.wave = f.wave
"""


def flag_response_quality(con: duckdb.DuckDBPyConnection, instrument: Instrument,
                          rules: QualityRules = QualityRules()) -> dict[str, int]:
    """Build `response_flags` (and its readable view `response_quality`); return how
    many respondents each flag caught."""
    con.execute("create or replace table response_quality_waves as "
                "select wave, median(duration_seconds) as wave_median_seconds "
                "from responses group by wave")
    con.execute(quality_sql(instrument, rules))
    # Stores written before the flags were split from their view hold it as a table.
    drop_relation(con, "response_quality")
    con.execute(QUALITY_VIEW)
    counts = con.execute("select count(*) filter (where straight_lining), "
                         "count(*) filter (where speeding), count(*) filter (where duplicate), "
                         "count(*) filter (where flagged), count(*) "
                         "from response_flags").fetchall()[0]
    return dict(zip(("straight_lining", "speeding", "duplicate", "flagged", "respondents"),
                    counts))


def flag_response_quality_aside(con: duckdb.DuckDBPyConnection,
                                instrument: Instrument) -> dict[str, int]:
    """`flag_response_quality` through a cursor of its own, for another thread: it writes
    only its own tables, so it can run while `con` reads the responses."""
    cursor = con.cursor()
    try:
        return flag_response_quality(cursor, instrument)
    finally:
        cursor.close()


def quality_by_site(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """(site, wave, respondents, straight-lining, speeding, duplicate, flagged) rows."""
    return con.execute("""
        select site_code, wave, count(*), count(*) filter (where straight_lining),
               count(*) filter (where speeding), count(*) filter (where duplicate),
               count(*) filter (where flagged)
        from response_flags group by all order by all""").fetchall()


def analysis_view(con: duckdb.DuckDBPyConnection, exclude_flagged: bool) -> None:
    """Define `analysis_responses`: every response, or only unflagged ones."""
    if not exclude_flagged:
        con.execute("create or replace temp view analysis_responses as select * from responses")
        return
    # Every scan of the respondents goes through this view, so it filters on the
    # integer row key (the file and row each response came from) rather than on
    # (site, wave, response id): at 1M responses the string key cost 0.3-0.8 s over the
    # eight moment scans alone.
    con.execute("""
        create or replace temp view analysis_responses as
        select r.* from responses r
        anti join (select batch_id, source_row from response_flags where flagged)
        using (batch_id, source_row)""")
