"""The validation statement of ingest, generated from the instrument.

One query over the view `raw_typed` turns every data row into cleaned values plus
problem markers, in a single vectorised pass:

- fixed columns and attributes get a `p__<column>` reason id (NULL when fine);
- each item gets a status `s__<item>`: its code (1-5, 1-2 ...), 0 when blank or
  "don't know", or `OUT_OF_RANGE` / `UNKNOWN_LABEL` (codes at the top of UTINYINT so
  they can never be mistaken for an answer);
- `answered` counts scored answers, `p__answers` flags too few, `n_problems` totals;
- an item asked of some respondents only (`asked_if`) has its status set to 0 for
  everyone else, whatever the cell holds (another tool may not have routed it), and a
  marker `b__<item>` that is true where an answer was blanked so (`CheckedSql.blanked`).

How the rows are numbered and duplicates found depends on the file (`CheckedSql`):

- a file without row numbers (CSV, Excel) becomes the temp table `checked`, whose
  position is the data row, and `mark_duplicates_sql` numbers the rows and marks
  repeated ids;
- a Parquet file is read with its row numbers (`raw_numbered`), so duplicates are found
  first from the key columns alone, and the accepted rows go into `responses` straight
  from the query, in parallel, without the wide `checked` table in between; `checked`
  is built only when some row has a problem, for the quarantine.

The statements are the .sql files of pipeline/ingest/sql (row_values, checked_rows,
row_keys, duplicate_rows, mark_duplicates); this module fills their per-attribute and
per-item slots (pipeline.sql_templates).
Identifiers come from the validated instrument (a safe alphabet) and are quoted;
values (label lists, flags, site and wave lists) are bound as parameters. Only the
instrument's integer codes are written into the SQL text, as IN lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from pipeline.sql_templates import quote, render
from survey.instrument import Instrument

SQL_DIR = Path(__file__).resolve().parent / "sql"

#: Reason codes, in the order of their numeric ids (1-based) used inside the SQL.
REASONS = ("out_of_range", "unknown_label", "missing_required", "unknown_site",
           "unknown_wave", "duplicate_response_id", "too_few_answers", "invalid_value")
REASON_ID = {code: number for number, code in enumerate(REASONS, start=1)}

#: Item statuses at or above this mark a problem: status - 249 is the reason id.
OUT_OF_RANGE = 250
UNKNOWN_LABEL = 251

#: The SQL form of survey.instrument.normalise_label (case, spacing, curly quotes).
NORMALISE = ("lower(trim(regexp_replace(replace(replace(replace({v}, '\u2019', ''''), "
             "'\u2018', ''''), chr(160), ' '), '\\s+', ' ', 'g')))")

#: The earliest submission date accepted: online staff surveys of this kind, and every
#: wave a store can hold, are this century; an earlier date is a typing or export error
#: (a year of 0026, or a minus sign read as a BC date).
EARLIEST_SUBMITTED = date(2000, 1, 1)
#: Days after today still accepted: a survey tool's clock or time zone can put a
#: submission a little ahead of the machine that ingests it; weeks ahead is a typo.
DAYS_AFTER_TODAY = 7
#: The longest completion time accepted, in seconds: one day, the web form's own cap.
MAX_DURATION_SECONDS = 86_400


def submitted_range(today: date) -> tuple[date, date]:
    """(earliest, latest) submission dates accepted on `today`."""
    return EARLIEST_SUBMITTED, today + timedelta(days=DAYS_AFTER_TODAY)


NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT",
                 "UINTEGER", "UBIGINT", "HUGEINT", "FLOAT", "DOUBLE", "DECIMAL")


@dataclass(frozen=True)
class ProblemColumn:
    """Where a problem marker column of `checked` points in the file, for the quarantine."""

    marker: str               # p__x or s__x
    column_name: str          # the name a survey lead knows (item id, 'site', '(answers)')
    source_column: str | None  # the header in their file, when there is one
    accepts: str              # what would have been accepted


def _accepts_item(instrument: Instrument, response_scale: str) -> str:
    rs = instrument.response_scale(response_scale)
    scored = ", ".join(f"{o.code} = {o.label}" for o in rs.options)
    missing = ", ".join(f"{o.code} or '{o.label}'" for o in rs.missing)
    return f"{scored}; {missing} (stored as missing); or blank"


def _is_one_of(value: str, codes: tuple[int, ...]) -> str:
    """SQL testing that `value` is one of the integer `codes`.

    Written as a range or equalities: DuckDB turns an IN list into a join, which is slow
    when repeated for every item of a wide row.
    """
    codes = tuple(sorted(int(c) for c in codes))
    if not codes:
        return "false"
    if codes == tuple(range(codes[0], codes[-1] + 1)) and len(codes) > 2:
        return f"({value} between {codes[0]} and {codes[-1]} and {value} = floor({value}))"
    return "(" + " or ".join(f"{value} = {c}" for c in codes) + ")"


@dataclass
class CheckedSql:
    """The validation queries of one file, their parameters and the problem columns.

    `params` holds what the instrument gives; ingest adds the run's values (site and
    wave flags, known sites and waves, the batch) before running the queries.
    """

    rows: str        # select: one row per data row, cleaned values and problem markers
    keys: str | None  # select source_row, site_code, wave, response_id (numbered files)
    params: dict
    problems: list[ProblemColumn]
    #: Routed items in the file: each has a b__<item> column, true where routing blanked
    #: an answer given by someone the item is not asked of.
    blanked: list[str] = field(default_factory=list)

    @property
    def numbered(self) -> bool:
        """Rows carry their source_row and duplicate marks (see the module docstring)."""
        return self.keys is not None

    def bound(self, sql: str) -> dict:
        """The parameters `sql` uses (DuckDB refuses unused named parameters)."""
        return {name: value for name, value in self.params.items() if f"${name}" in sql}


def build_checked_sql(instrument: Instrument, mapping: dict[str, str],
                      types: dict[str, str], numbered: bool = False,
                      today: date | None = None) -> CheckedSql:
    """The validation queries of a file, from the instrument and the file's header.

    `mapping` is canonical name -> the file's column; `types` the file's column types.
    `numbered` reads `raw_numbered` (the file with DuckDB's 0-based `file_row_number`)
    and marks duplicates from the temp table `duplicate_rows`, which the caller fills
    from the `keys` query first. Submission dates are accepted from EARLIEST_SUBMITTED to
    DAYS_AFTER_TODAY after `today` (the real date unless given).
    """
    earliest, latest = submitted_range(today or date.today())
    params: dict[str, object] = {"earliest_date": earliest, "latest_date": latest,
                                 "max_duration": MAX_DURATION_SECONDS}
    slots = {name: [] for name in ("attribute_texts", "attribute_codes", "attribute_values",
                                   "item_values", "item_statuses")}

    def numeric(canonical: str) -> bool:
        source = mapping.get(canonical)
        return bool(source) and types[source].split("(")[0] in NUMERIC_TYPES

    def text(canonical: str) -> str:
        source = mapping.get(canonical)
        if not source:
            return "null::varchar"
        if numeric(canonical):
            return f"{quote(source)}::varchar"
        return f"nullif(trim({quote(source)}::varchar), '')"

    problems = [
        ProblemColumn("p__response_id", "response_id", mapping.get("response_id"), "any text"),
        ProblemColumn("p__site", "site", mapping.get("site"), "a site code set up in the store"),
        ProblemColumn("p__wave", "wave", mapping.get("wave"), "a survey year set up in the store"),
        ProblemColumn("p__submitted_on", "submitted_on", mapping.get("submitted_on"),
                      f"a date from {earliest.isoformat()} to {latest.isoformat()}, "
                      f"written like 2025-10-14 or 14/10/2025, or blank"),
        ProblemColumn("p__duration_seconds", "duration_seconds", mapping.get("duration_seconds"),
                      f"a number of seconds from 0 to {MAX_DURATION_SECONDS} (one day, as "
                      f"the web form allows), or blank"),
    ]

    # --- attributes: a code or label of the instrument's options, or blank -----------------
    for attribute in instrument.attributes:
        ident = attribute.id
        v, c = quote("v__" + ident), quote("c__" + ident)
        lookup = attribute.label_map()
        params[f"keys_{ident}"] = list(lookup)
        params[f"codes_{ident}"] = list(lookup.values())
        slots["attribute_texts"].append(f"{text(ident)} as {v}")
        # Most cells hold the code itself; only the rest pay for normalising the text.
        slots["attribute_codes"].append(
            f"coalesce(list_extract($codes_{ident}, list_position($keys_{ident}, {v})), "
            f"list_extract($codes_{ident}, list_position($keys_{ident}, "
            f"{NORMALISE.format(v=v)}))) as {c}")
        slots["attribute_values"] += [
            f"{c} as {quote(ident)}",
            f"case when {v} is not null and {c} is null then {REASON_ID['unknown_label']} "
            f"end::utinyint as {quote('p__' + ident)}"]
        problems.append(ProblemColumn(f"p__{ident}", ident, mapping.get(ident),
                                      ", ".join(o.label for o in attribute.options) + ", or blank"))

    # --- items: a numeric code, or a label / alias of the item's response scale ------------
    for rs in instrument.response_scales:
        lookup = rs.label_map() | {"": None}   # a cell of spaces is a blank
        params[f"labels_{rs.id}"] = list(lookup)
        params[f"labelcodes_{rs.id}"] = [float(c if c is not None else rs.missing_codes[0])
                                         for c in lookup.values()]
    answered, blanked = [], []
    for item in instrument.items:
        v, s = quote("v__" + item.id), quote("s__" + item.id)
        value, status = _item_status(item, instrument, mapping.get(item.id), numeric(item.id))
        slots["item_values"].append(f"{value} as {v}")
        if item.asked_if is not None and mapping.get(item.id):
            # Not asked (another group, or no answer to the question it depends on): the
            # cell is ignored, as the form and the exports' branching would have it.
            params[f"asked_{item.id}"] = list(item.asked_if.codes)
            asked = (f"coalesce(list_contains($asked_{item.id}, "
                     f"{quote('c__' + item.asked_if.attribute)}), false)")
            slots["item_statuses"].append(
                f"(not {asked} and ({status}) <> 0) as {quote('b__' + item.id)}")
            status = f"case when {asked} then {status} else 0 end"
            blanked.append(item.id)
        slots["item_statuses"].append(f"({status})::utinyint as {s}")
        problems.append(ProblemColumn(f"s__{item.id}", item.id, mapping.get(item.id),
                                      _accepts_item(instrument, item.response_scale)))
        if item.kind == "scale":
            answered.append(f"({s} between 1 and {OUT_OF_RANGE - 1})::integer")

    problems.append(ProblemColumn("p__answers", "(answers)", None, ""))
    problems.append(ProblemColumn("p__duplicate", "response_id", mapping.get("response_id"), ""))
    params["min_answered"] = instrument.scoring.min_answered_items

    markers = [p.marker for p in problems if p.marker not in ("p__answers", "p__duplicate")]
    counted = " + ".join(f"({m} >= {OUT_OF_RANGE})::integer" if m.startswith("s__")
                         else f"({m} is not null)::integer" for m in markers)
    values = render(SQL_DIR, "row_values.sql",
                    raw="raw_numbered" if numbered else "raw_typed",
                    source_row="file_row_number + 1 as source_row," if numbered else "",
                    keep_source_row="source_row," if numbered else "",
                    response_id=text("response_id"), site=text("site"), wave=text("wave"),
                    submitted_on=text("submitted_on"), duration=text("duration_seconds"),
                    **{name: _list_slot(exprs) for name, exprs in slots.items()})
    duplicate = (f"case when source_row in (select source_row from duplicate_rows) "
                 f"then {REASON_ID['duplicate_response_id']} end::utinyint"
                 if numbered else "null::utinyint")
    rows = render(SQL_DIR, "checked_rows.sql", row_values=values,
                  answered=" + ".join(answered), duplicate=duplicate, problems=counted)
    keys = render(SQL_DIR, "row_keys.sql", row_values=values) if numbered else None
    return CheckedSql(rows, keys, params, problems, blanked)


def _item_status(item, instrument: Instrument, source: str | None,
                 numeric: bool) -> tuple[str, str]:
    """(value, status) SQL of one item: the cell as read, and its s__ status."""
    rs = instrument.response_scale(item.response_scale)
    v = quote("v__" + item.id)

    def status_of(code: str) -> str:
        return (f"case when {code} is null then {UNKNOWN_LABEL} "
                f"when {_is_one_of(code, rs.codes)} then {code} "
                f"when {_is_one_of(code, rs.missing_codes)} then 0 "
                f"else {OUT_OF_RANGE} end")

    if numeric:
        # Parquet codes arrive as numbers: no text round trip.
        return f"{quote(source)}::double", f"case when {v} is null then 0 else {status_of(v)} end"
    if source:
        # Cells holding exactly a code take the fast path; anything else (labels,
        # ' 4', '4.0', whitespace) is parsed and looked up. try_cast ignores spaces,
        # and a cell of spaces normalises to '' which the label list maps to missing.
        parsed = (f"coalesce(try_cast({v} as double), list_extract($labelcodes_{rs.id}, "
                  f"list_position($labels_{rs.id}, {NORMALISE.format(v=v)})))")
        exact = " ".join(f"when {v} = '{code}' then {code}" for code in rs.codes)
        exact += " " + " ".join(f"when {v} = '{code}' then 0" for code in rs.missing_codes)
        return (f"{quote(source)}::varchar",
                f"case when {v} is null then 0 {exact} else {status_of(parsed)} end")
    return "null::double", "0"


def _list_slot(expressions: list[str]) -> str:
    """A list slot of row_values.sql: each column followed by its comma."""
    return "".join(f"{e},\n        " for e in expressions)


#: Creates `checked` from `CheckedSql.rows` of a file without row numbers. The statement
#: scans the file in parallel, yet CREATE TABLE AS keeps the file's order, so a row's
#: position in `checked` is its data row number.
CREATE_CHECKED_SQL = "create or replace temp table checked as {rows}"


def duplicate_rows_sql(keys: str) -> str:
    """Rows repeating an earlier row's site, wave and response id, or an id already stored
    (sql/duplicate_rows.sql).

    `keys` is a relation (or parenthesised query) with source_row, site_code, wave and
    response_id; the result is one column, source_row.
    """
    return render(SQL_DIR, "duplicate_rows.sql", keys=keys)


def mark_duplicates_sql() -> str:
    """The statements numbering the rows of `checked` and marking its duplicates
    (sql/mark_duplicates.sql)."""
    return render(SQL_DIR, "mark_duplicates.sql", duplicate_rows=duplicate_rows_sql("checked"))
