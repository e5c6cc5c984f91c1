"""Ingest survey exports into the store: every row accepted or quarantined with a reason.

One file is one batch and one transaction: if the process dies half-way the store is
exactly as before, and running the same command again completes the work. A file
whose bytes (and --site / --wave) match an earlier batch is not ingested twice.

Validation is one SQL statement over the file as text (`pipeline.readers`), built from
the instrument: each answer may be a code or a label in any case and spacing; the
"don't know / prefer not to say" option is stored as missing. Rows with any problem go
to the quarantine table, one line per problem, with the reason codes in `REASONS`.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from pipeline.readers import (Progress, SourceFile, create_raw_view, describe_read_error,
                              inspect_file)
from pipeline.store import read_sql, register_instrument
from survey.errors import IngestError
from survey.instrument import Instrument

#: Reason codes, in the order of their numeric ids (1-based) used inside the SQL.
REASONS = ("out_of_range", "unknown_label", "missing_required", "unknown_site",
           "unknown_wave", "duplicate_response_id", "too_few_answers", "invalid_value")
_R = {code: number for number, code in enumerate(REASONS, start=1)}

#: Header spellings other tools use for the fixed columns (compared after normalising).
COLUMN_ALIASES = {
    "response_id": ("response_id", "responseid", "response", "id", "record_id",
                    "respondent_id"),
    "site": ("site", "site_code", "sitecode", "organisation", "organisation_code",
             "trust_code"),
    "wave": ("wave", "year", "survey_year"),
    "submitted_on": ("submitted_on", "submitted", "date", "completed_on", "submitdate",
                     "completion_date"),
    "duration_seconds": ("duration_seconds", "duration", "duration_s",
                         "duration_in_seconds", "time_taken_seconds"),
}

#: The SQL form of survey.instrument.normalise_label (case, spacing, curly quotes).
_NORMALISE = ("lower(trim(regexp_replace(replace(replace(replace({v}, '\u2019', ''''), "
              "'\u2018', ''''), chr(160), ' '), '\\s+', ' ', 'g')))")


@dataclass
class IngestReport:
    """What happened to one file."""

    source: str
    sha256: str
    batch_id: int | None = None
    rows_read: int = 0
    rows_accepted: int = 0
    rows_rejected: int = 0
    already_ingested: bool = False
    previous_batch: tuple[int, datetime] | None = None
    ignored_columns: list[str] = field(default_factory=list)
    missing_item_columns: list[str] = field(default_factory=list)
    rejected_by_reason: dict[str, int] = field(default_factory=dict)


def _normal_header(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.lstrip("\ufeff").strip().lower())


def map_columns(columns: list[str], instrument: Instrument, path: Path,
                site: str | None, wave: int | None) -> tuple[dict[str, str], list[str]]:
    """Match the file's header to canonical names; return (canonical -> source, ignored)."""
    wanted: dict[str, str] = {}
    for canonical, aliases in COLUMN_ALIASES.items():
        for alias in aliases:
            wanted.setdefault(alias, canonical)
    for ident in (*instrument.item_ids, *(a.id for a in instrument.attributes)):
        wanted[ident] = ident
    mapping: dict[str, str] = {}
    ignored: list[str] = []
    for column in columns:
        canonical = wanted.get(_normal_header(column))
        if canonical is None:
            ignored.append(column)
        elif canonical in mapping:
            raise IngestError(f"{path}: columns '{mapping[canonical]}' and '{column}' both "
                              f"mean {canonical}; keep one of them")
        else:
            mapping[canonical] = column
    required = [("response_id", None), ("site", site), ("wave", wave)]
    for canonical, flag in required:
        if canonical not in mapping and flag is None:
            hint = {"site": " or give --site CODE", "wave": " or give --wave YEAR"}.get(canonical, "")
            raise IngestError(f"{path}: missing required column '{canonical}'; add a column "
                              f"named {canonical}{hint} (the first row must be the header)")
    if not any(i in mapping for i in instrument.item_ids):
        raise IngestError(f"{path}: no column matches a question of {instrument.key}; expected "
                          f"columns named like {', '.join(instrument.item_ids[:3])}, ...")
    return mapping, ignored


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _accepts_item(instrument: Instrument, response_scale: str) -> str:
    rs = instrument.response_scale(response_scale)
    scored = ", ".join(f"{o.code} = {o.label}" for o in rs.options)
    missing = ", ".join(f"{o.code} or '{o.label}'" for o in rs.missing)
    return f"{scored}; {missing} (stored as missing); or blank"


def _build_checked_sql(instrument: Instrument, mapping: dict[str, str]) -> tuple[str, dict, list]:
    """SQL creating temp table `checked`, its parameters, and the problem-column map."""
    params: dict[str, object] = {}
    cleaned = ["source_row"]
    coded = ["*"]
    final = ["source_row"]
    problems: list[str] = []
    problem_map: list[tuple[str, str, str | None, str]] = []

    def text(canonical: str) -> str:
        source = mapping.get(canonical)
        return f"nullif(trim({_q(source)}), '')" if source else "null::varchar"

    # Fixed columns.
    cleaned.append(f"{text('response_id')} as v__response_id")
    cleaned.append(f"coalesce({text('site')}, $site_flag) as v__site")
    cleaned.append(f"coalesce({text('wave')}, $wave_flag) as v__wave")
    cleaned.append(f"{text('submitted_on')} as v__submitted_on")
    cleaned.append(f"{text('duration_seconds')} as v__duration")
    coded.append("upper(v__site) as c__site")
    coded.append("try_cast(try_cast(v__wave as double) as integer) as c__wave_number")
    coded.append("coalesce(try_cast(v__submitted_on as date), "
                 "try_strptime(v__submitted_on, '%d/%m/%Y')::date, "
                 "try_cast(v__submitted_on as timestamp)::date, "
                 "try_strptime(v__submitted_on, '%d/%m/%Y %H:%M')::date) as c__submitted_on")
    coded.append("try_cast(v__duration as double) as c__duration")
    final += [
        "v__response_id as response_id",
        "v__site as site_text",
        "v__wave as wave_text",
        "case when list_contains($known_sites, c__site) then c__site end as site_code",
        "case when list_contains($known_waves, c__wave_number) then c__wave_number end as wave",
        "c__submitted_on as submitted_on",
        "case when isfinite(c__duration) and c__duration >= 0 then c__duration end "
        "as duration_seconds",
    ]
    problems += [
        f"case when v__response_id is null then {_R['missing_required']} end as p__response_id",
        f"case when v__site is null then {_R['missing_required']} "
        f"when not list_contains($known_sites, c__site) then {_R['unknown_site']} end "
        f"as p__site",
        f"case when v__wave is null then {_R['missing_required']} "
        f"when not coalesce(list_contains($known_waves, c__wave_number), false) "
        f"then {_R['unknown_wave']} end as p__wave",
        f"case when v__submitted_on is not null and c__submitted_on is null "
        f"then {_R['invalid_value']} end as p__submitted_on",
        f"case when v__duration is not null and not coalesce(isfinite(c__duration) "
        f"and c__duration >= 0, false) then {_R['invalid_value']} end as p__duration_seconds",
    ]
    problem_map += [
        ("p__response_id", "response_id", mapping.get("response_id"), "any text"),
        ("p__site", "site", mapping.get("site"), "a site code set up in the store"),
        ("p__wave", "wave", mapping.get("wave"), "a survey year set up in the store"),
        ("p__submitted_on", "submitted_on", mapping.get("submitted_on"),
         "a date such as 2025-10-14 or 14/10/2025, or blank"),
        ("p__duration_seconds", "duration_seconds", mapping.get("duration_seconds"),
         "a number of seconds (0 or more), or blank"),
    ]

    # Attributes: a code or label of the instrument's options, or blank.
    for attribute in instrument.attributes:
        ident = attribute.id
        lookup = attribute.label_map()
        params[f"keys_{ident}"] = list(lookup)
        params[f"codes_{ident}"] = list(lookup.values())
        cleaned.append(f"{text(ident)} as {_q('v__' + ident)}")
        coded.append(f"list_extract($codes_{ident}, list_position($keys_{ident}, "
                     f"{_NORMALISE.format(v=_q('v__' + ident))})) as {_q('c__' + ident)}")
        final.append(f"{_q('c__' + ident)} as {_q(ident)}")
        problems.append(f"case when {_q('v__' + ident)} is not null and {_q('c__' + ident)} "
                        f"is null then {_R['unknown_label']} end as {_q('p__' + ident)}")
        accepts = ", ".join(o.label for o in attribute.options) + ", or blank"
        problem_map.append((f"p__{ident}", ident, mapping.get(ident), accepts))

    # Items: a numeric code, or a label / alias of the item's response scale.
    for rs in instrument.response_scales:
        lookup = rs.label_map()
        params[f"labels_{rs.id}"] = list(lookup)
        params[f"labelcodes_{rs.id}"] = [c if c is not None else rs.missing_codes[0]
                                         for c in lookup.values()]
        params[f"scored_{rs.id}"] = [float(c) for c in rs.codes]
        params[f"valid_{rs.id}"] = [float(c) for c in (*rs.codes, *rs.missing_codes)]
    answered_terms = []
    for item in instrument.items:
        v, c = _q("v__" + item.id), _q("c__" + item.id)
        rs = item.response_scale
        cleaned.append(f"{text(item.id)} as {v}")
        coded.append(f"coalesce(try_cast({v} as double), list_extract($labelcodes_{rs}, "
                     f"list_position($labels_{rs}, {_NORMALISE.format(v=v)}))) as {c}")
        final.append(f"case when list_contains($scored_{rs}, {c}) then {c}::utinyint end "
                     f"as {_q(item.id)}")
        problems.append(f"case when {v} is null then null "
                        f"when {c} is null then {_R['unknown_label']} "
                        f"when not list_contains($valid_{rs}, {c}) then {_R['out_of_range']} "
                        f"end as {_q('p__' + item.id)}")
        problem_map.append((f"p__{item.id}", item.id, mapping.get(item.id),
                            _accepts_item(instrument, rs)))
        if item.kind == "scale":
            answered_terms.append(f"coalesce(list_contains($scored_{rs}, {c}), false)::integer")

    final.append(f"({' + '.join(answered_terms)}) as answered")
    answers_problem = (f"case when answered < $min_answered then {_R['too_few_answers']} end "
                       f"as p__answers")
    problem_map.append(("p__answers", "(answers)", None, ""))
    params["min_answered"] = instrument.scoring.min_answered_items

    duplicate = (
        f"case when response_id is not null and site_code is not null and wave is not null "
        f"and (row_number() over (partition by site_code, wave, response_id "
        f"order by source_row) > 1 or stored.present) "
        f"then {_R['duplicate_response_id']} end as p__duplicate"
    )
    problem_map.append(("p__duplicate", "response_id", mapping.get("response_id"), ""))
    problem_names = [p.rsplit(" as ", 1)[1] for p in problems] + ["p__answers", "p__duplicate"]

    sql = f"""
        create or replace temp table checked as
        with
        cleaned as (select {', '.join(cleaned)} from raw),
        coded as (select {', '.join(coded)} from cleaned),
        final_values as (select {', '.join(final + problems)} from coded),
        with_problems as (select *, {answers_problem} from final_values),
        stored as (select distinct site_code, wave, response_id, true as present
                   from responses),
        flagged as (
            select with_problems.*, {duplicate}
            from with_problems
            left join stored using (site_code, wave, response_id)
        )
        select *, ({' + '.join(f'({p} is not null)::integer' for p in problem_names)})
               as n_problems
        from flagged
    """
    return sql, params, problem_map


def find_previous_batch(con: duckdb.DuckDBPyConnection, sha256: str, site: str | None,
                        wave: int | None) -> tuple[int, datetime] | None:
    """The earlier batch with the same bytes and flags, if any."""
    return con.execute(
        "select batch_id, ingested_at from ingest_batches where sha256 = ? "
        "and site_flag is not distinct from ? and wave_flag is not distinct from ? "
        "order by batch_id limit 1", [sha256, site, wave]).fetchone()


def ingest_file(con: duckdb.DuckDBPyConnection, path: Path | str, instrument: Instrument,
                definition_yaml: str, site: str | None = None, wave: int | None = None,
                progress: Progress | None = None) -> IngestReport:
    """Ingest one file as one batch, all or nothing; returns what was accepted and rejected."""
    path = Path(path)
    site = site.strip().upper() if site else None
    source: SourceFile = inspect_file(path, progress)
    report = IngestReport(source=str(path), sha256=source.sha256)
    previous = find_previous_batch(con, source.sha256, site, wave)
    if previous:
        report.already_ingested = True
        report.previous_batch = (int(previous[0]), previous[1])
        return report

    with tempfile.TemporaryDirectory(prefix="culture-ingest-") as scratch:
        columns = create_raw_view(con, source, Path(scratch))
        mapping, report.ignored_columns = map_columns(columns, instrument, path, site, wave)
        report.missing_item_columns = [i for i in instrument.item_ids if i not in mapping]
        checked_sql, params, problem_map = _build_checked_sql(instrument, mapping)
        params |= {
            "site_flag": site, "wave_flag": None if wave is None else str(wave),
            # Small reference lists bound as parameters keep the big statement free of subqueries.
            "known_sites": [r[0] for r in con.execute("select site_code from sites").fetchall()],
            "known_waves": [r[0] for r in con.execute("select wave from waves").fetchall()],
        }
        if progress:
            progress("validating", 0, 1)
        try:
            # DuckDB's expression rewriter spends ~2 s planning this wide statement (every
            # item's CASE chain) and gains nothing at run time; skip it for this one query.
            con.execute("set disabled_optimizers = 'expression_rewriter'")
            con.execute(checked_sql, params)
        except (duckdb.InvalidInputException, duckdb.IOException,
                duckdb.ConversionException) as exc:
            # Raised while DuckDB scans the file (ragged rows, bad quoting); a bug in the
            # generated SQL would be a BinderException and is left to surface as one.
            raise IngestError(f"{path}: cannot be read: {describe_read_error(exc)}; check the "
                              f"file is a complete "
                              f"export with one header row and the same number of columns on "
                              f"every line") from None
        finally:
            con.execute("reset disabled_optimizers")
        report.rows_read = con.execute("select count(*) from checked").fetchone()[0]
        if report.rows_read == 0:
            raise IngestError(f"{path}: has a header but no data rows; nothing to ingest")
        con.execute("create or replace temp table problem_map (problem_column varchar, "
                    "column_name varchar, source_column varchar, accepts varchar)")
        con.executemany("insert into problem_map values (?, ?, ?, ?)", problem_map)

        if progress:
            progress("writing", 0, 1)
        con.execute("begin transaction")
        try:
            register_instrument(con, instrument, definition_yaml)
            batch_id = con.execute("select nextval('ingest_batch_id')").fetchone()[0]
            _insert_accepted(con, instrument, batch_id)
            con.execute("insert into quarantine " + read_sql("ingest_quarantine.sql"),
                        {"batch_id": batch_id, "min_answered": params["min_answered"]})
            accepted = con.execute("select count(*) from checked where n_problems = 0").fetchone()[0]
            con.execute(
                "insert into ingest_batches values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [batch_id, path.name, source.sha256, source.file_format, site, wave,
                 instrument.key, report.rows_read, accepted, report.rows_read - accepted,
                 datetime.now()])
            _pause_for_crash_test()
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
        finally:
            con.execute("drop view if exists raw")
            con.unregister("raw_source")
    report.batch_id = int(batch_id)
    report.rows_accepted = int(accepted)
    report.rows_rejected = report.rows_read - report.rows_accepted
    report.rejected_by_reason = dict(con.execute(
        "select reason_code, count(distinct source_row) from quarantine where batch_id = ? "
        "group by 1 order by 1", [batch_id]).fetchall())
    con.execute("drop table if exists checked")
    return report


def _insert_accepted(con: duckdb.DuckDBPyConnection, instrument: Instrument,
                     batch_id: int) -> None:
    columns = ["response_id", "site_code", "wave", "instrument_version", "batch_id",
               "source_row", "submitted_on", "duration_seconds",
               *(a.id for a in instrument.attributes), *instrument.item_ids]
    values = ["response_id", "site_code", "wave", "$version", "$batch_id", "source_row",
              "submitted_on", "duration_seconds",
              *(_q(a.id) for a in instrument.attributes), *(_q(i) for i in instrument.item_ids)]
    con.execute(
        f"insert into responses ({', '.join(_q(c) for c in columns)}) "
        f"select {', '.join(values)} from checked where n_problems = 0 order by source_row",
        {"version": instrument.key, "batch_id": batch_id})


def _pause_for_crash_test() -> None:
    """Fault injection for the crash test: hold the open transaction so it can be killed."""
    import os
    import sys
    import time

    marker = os.environ.get("CULTURE_TEST_PAUSE_BEFORE_COMMIT")
    if marker:
        Path(marker).write_text("paused")
        sys.stdout.flush()
        time.sleep(60)

