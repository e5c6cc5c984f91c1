"""Ingest another survey tool's export: REDCap, Microsoft Forms or Qualtrics, mapped onto ours.

Each adapter reads the tool's export (CSV or XLSX), works out which of its columns are
our questions, attributes, response id, site, wave and date, and writes a normalised
CSV with our column names that `pipeline.ingest.files.ingest_file` then ingests as usual. So
every guarantee of ingest holds here too: one file is one all-or-nothing batch, the
same export twice is a no-op (the normalised bytes are the same), and every row is
stored or quarantined with a reason; an answer text the instrument does not know
(say "Somewhat agree") is quarantined by ingest as `unknown_label`.

Columns are matched, in this order, by an explicit map (`--map`), by the tool's own
fixed columns (REDCap's record_id and survey timestamp; Forms' ID and start / completion
times; Qualtrics' ResponseId, RecordedDate and duration), by our ids (`hs01`, also as
`group/hs01`), and by wording: a header equal to an item's text or an attribute's
question once case, spacing and punctuation are ignored, or ending with it (Qualtrics
and Forms prefix a matrix statement with the matrix question).

Qualtrics rows whose Status marks them as a survey preview, a test or spam are not
answers from staff: they are left out and counted in the report's notes.

Nothing that could identify a person reaches the normalised file: e-mail, name, IP
address, location, the time of day. Known identifying and tool-internal columns are
listed as dropped; any other column not matched is listed as unmapped; neither is
written. Timestamps are kept to the day, as ingest keeps them; the time of day is used
only to compute the duration.
"""

from __future__ import annotations

import csv
import json
import re
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterator

import duckdb

from pipeline.ingest.files import COLUMN_ALIASES, IngestReport, ingest_file
from pipeline.ingest.readers import (Progress, cell_text, check_header, check_regular_file,
                              file_format, inspect_file)
from survey.errors import IngestError
from survey.instrument import Instrument, normalise_label
from survey.instrument_export import FIXED_COLUMNS

#: The tools an export can come from ("culture" is our own format: no adapter).
TOOLS = ("culture", "redcap", "forms", "qualtrics")

#: Columns each tool adds that are never stored: identifying, or internal to the tool.
#: Compared after `_header_key` (lower case, spaces and punctuation as '_').
DROPPED = {
    "redcap": ("redcap_survey_identifier", "survey_identifier", "redcap_event_name",
               "event_name", "redcap_repeat_instrument", "redcap_repeat_instance",
               "redcap_data_access_group", "data_access_group", "complete"),
    "forms": ("email", "name", "last_modified_time", "responder", "responders_email"),
    "qualtrics": ("startdate", "start_date", "enddate", "end_date", "status",
                  "response_type", "ipaddress", "ip_address", "progress", "finished",
                  "recordeddate", "recorded_date", "recipientlastname",
                  "recipient_last_name", "recipientfirstname", "recipient_first_name",
                  "recipientemail", "recipient_email", "externalreference",
                  "external_data_reference", "externaldatareference", "locationlatitude",
                  "location_latitude", "locationlongitude", "location_longitude",
                  "distributionchannel", "distribution_channel", "userlanguage",
                  "user_language"),
}


@dataclass
class ImportReport:
    """What an adapter made of an export, and what ingest then did with it."""

    source: str
    tool: str
    ingest: IngestReport
    #: Our column name -> the header it came from.
    columns: dict[str, str] = field(default_factory=dict)
    #: Identifying or tool-internal columns, recognised and never stored.
    dropped_columns: list[str] = field(default_factory=list)
    #: Columns matching nothing in the instrument: not stored; check them.
    unmapped_columns: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _header_key(text: str) -> str:
    """Header as an id: 'Duration (in seconds)' -> 'duration_in_seconds'."""
    return re.sub(r"[^a-z0-9]+", "_", text.lstrip("\ufeff").strip().casefold()).strip("_")


def normalise_wording(text: str) -> str:
    """Question text for matching: case, spacing, quotes and punctuation ignored."""
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u00a0", " ")
    # Qualtrics and REDCap allow HTML in labels. A tag holds no '<': with [^>]+ every '<'
    # of a text without '>' scanned to its end (quadratic: 100,000 '<' took half a minute).
    text = re.sub(r"<[^<>]+>", " ", text)
    text = re.sub(r"[^\w']+|_", " ", text.casefold()).replace("'", "")
    return re.sub(r"\s+", " ", text).strip()


# --- reading an export ------------------------------------------------------------------

def read_rows(path: Path) -> Iterator[list[str]]:
    """Every row of a CSV (UTF-8 or Windows-1252; comma, semicolon or tab) or the first XLSX sheet."""
    fmt = file_format(path)
    if fmt == "parquet":
        raise IngestError(f"{path}: survey tools export CSV or Excel; give the .csv or .xlsx "
                          f"file (Parquet is read by plain `culture ingest`)")
    if fmt == "xlsx":
        from python_calamine import CalamineError, CalamineWorkbook

        try:
            sheet = CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0)
            rows = sheet.to_python(skip_empty_area=False)
        except (CalamineError, OSError, ValueError) as exc:
            raise IngestError(f"{path}: not a readable Excel workbook ({exc}); save it again "
                              f"as .xlsx") from None
        for row in rows:
            # Trimmed, as the CSV rows below are: adapters match cells by their text.
            yield [(cell_text(v) or "").strip() for v in row]
        return
    source = inspect_file(path)
    encoding = "utf-8-sig" if source.encoding == "utf-8" else "cp1252"
    with path.open(encoding=encoding, newline="") as handle:
        # csv handles quoted line breaks, which Qualtrics' question-text row often has.
        for row in csv.reader(handle, delimiter=source.delimiter):
            yield [v.strip() for v in row]


def _qualtrics_extra_rows(header: list[str], first: list[list[str]]) -> tuple[int, list[str],
                                                                              list[str]]:
    """How many rows after the header are Qualtrics' question-text / ImportId rows, and them."""
    def import_ids(row: list[str]) -> list[str] | None:
        if not any(cell.startswith('{"ImportId"') for cell in row):
            return None
        ids = []
        for cell in row:
            try:
                ids.append(str(json.loads(cell).get("ImportId", "")))
            except (ValueError, AttributeError):
                ids.append("")
        return ids

    if len(first) >= 2 and (ids := import_ids(first[1])) is not None:
        return 2, first[0], ids
    if first and (ids := import_ids(first[0])) is not None:
        return 1, [""] * len(header), ids
    keys = [_header_key(h) for h in header]
    if first and "responseid" in keys and first[0][keys.index("responseid")] == "Response ID":
        return 1, first[0], [""] * len(header)
    return 0, [""] * len(header), [""] * len(header)


#: Qualtrics' Status of rows that are not a respondent's answers (numeric export: the
#: response-type codes; label export: their names): previews and tests by the survey
#: team, and responses Qualtrics itself flagged as spam.
QUALTRICS_NOT_RESPONSES = {"1": "Survey Preview", "2": "Survey Test", "8": "Spam",
                           "9": "Survey Preview Spam", "12": "Imported Spam",
                           "17": "Offline Survey Preview"}


def _without_qualtrics_previews(header: list[str], body: list[list[str]]
                                ) -> tuple[list[list[str]], dict[str, int]]:
    """The rows that are real responses, and how many of each other Status were left out."""
    keys = [_header_key(h) for h in header]
    if "status" not in keys:
        return body, {}
    column = keys.index("status")
    names = {_header_key(name): name for name in QUALTRICS_NOT_RESPONSES.values()}
    kept, skipped = [], {}
    for row in body:
        status = row[column].strip() if column < len(row) else ""
        kind = QUALTRICS_NOT_RESPONSES.get(status) or names.get(_header_key(status))
        if kind is None:
            kept.append(row)
        else:
            skipped[kind] = skipped.get(kind, 0) + 1
    return kept, skipped


# --- matching columns ------------------------------------------------------------------

def load_column_map(path: Path) -> dict[str, str]:
    """A two-column CSV `column,field`: a header (or Qualtrics QID) of the export -> our id."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.reader(handle))
    except OSError as exc:
        raise IngestError(f"--map {path}: cannot be read ({exc.strerror})") from None
    if not rows or [_header_key(c) for c in rows[0][:2]] != ["column", "field"]:
        raise IngestError(f"--map {path}: the first row must be the header 'column,field', "
                          f"then one line per column, e.g. QID12_1,hs01")
    mapping = {}
    for number, row in enumerate(rows[1:], start=2):
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise IngestError(f"--map {path}, line {number}: needs a column and a field, "
                              f"e.g. QID12_1,hs01")
        mapping[row[0].strip()] = row[1].strip()
    return mapping


class _Matcher:
    """Decides what one export column is: our column, dropped, or unmapped."""

    def __init__(self, instrument: Instrument, tool: str, column_map: dict[str, str]):
        self.tool = tool
        ours = set(FIXED_COLUMNS) | set(instrument.item_ids) | {a.id for a in instrument.attributes}
        self.by_id = {ident: ident for ident in ours}
        for canonical, aliases in COLUMN_ALIASES.items():
            for alias in aliases:
                self.by_id.setdefault(alias, canonical)
        self.by_map = {}
        for column, target in column_map.items():
            if target not in ours:
                raise IngestError(f"--map: '{column}' is mapped to '{target}', which is not a "
                                  f"column of {instrument.key}; use an item id (hs01, ...), an "
                                  f"attribute ({', '.join(a.id for a in instrument.attributes)}) "
                                  f"or one of {', '.join(FIXED_COLUMNS)}")
            self.by_map[column.strip().casefold()] = target
        self.by_wording = {normalise_wording(item.text): item.id for item in instrument.items}
        self.by_wording |= {normalise_wording(a.question): a.id for a in instrument.attributes}

    def tool_column(self, key: str) -> str | None:
        """The tool's own fixed columns: a canonical name, 'drop', or None."""
        if self.tool == "redcap":
            if key in ("record_id", "record_id_"):
                return "response_id"
            if key.endswith("timestamp"):
                return "submitted_on"
            if key.endswith("_complete") or key in DROPPED["redcap"]:
                return "drop"
        elif self.tool == "forms":
            if key == "id":
                return "response_id"
            if key == "completion_time":
                return "completed_at"
            if key == "start_time":
                return "started_at"
            if key in DROPPED["forms"]:
                return "drop"
        elif self.tool == "qualtrics":
            if key == "responseid" or key == "response_id":
                return "response_id"
            if key in ("recordeddate", "recorded_date"):
                return "submitted_on"
            if key in ("enddate", "end_date"):
                return "ended_at"
            if key.startswith("duration"):
                return "duration_seconds"
            if key in DROPPED["qualtrics"]:
                return "drop"
        return None

    def match(self, names: list[str]) -> str | None:
        """Our column for a header given by its candidate names (header, text row, ImportId)."""
        names = [n for n in names if n]
        for name in names:
            if name.strip().casefold() in self.by_map:
                return self.by_map[name.strip().casefold()]
        fixed = self.tool_column(_header_key(names[0])) if names else None
        if fixed:
            return fixed
        for name in names:
            key = _header_key(name.rsplit("/", 1)[-1])   # KoboToolbox writes group/hs01
            if key in self.by_id:
                return self.by_id[key]
        for name in names:
            wording = normalise_wording(name)
            if wording in self.by_wording:
                return self.by_wording[wording]
            ends = {ident for text, ident in self.by_wording.items()
                    if wording.endswith(" " + text)}
            if len(ends) == 1:
                return ends.pop()
        return None


# --- dates and durations -----------------------------------------------------------------

ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2}))?"
                 r"(?:\.\d+)?\s*(?:Z|[+-]\d{2}:?\d{2})?)?$")
SLASHED = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4}|\d{2}),?(?:\s+(\d{1,2}):(\d{2})(?::(\d{2}))?"
                     r"\s*([AaPp][Mm])?)?$")


def slash_order(values: list[str]) -> str:
    """'dmy' or 'mdy' for a file's d/m/y-looking dates: whichever a value above 12 proves.

    Microsoft Forms writes dates in the exporting person's locale. When no value settles
    it, day first (the British convention) is assumed.
    """
    first_big = second_big = False
    for value in values:
        found = SLASHED.match(value)
        if found:
            first_big |= int(found.group(1)) > 12
            second_big |= int(found.group(2)) > 12
    return "mdy" if second_big and not first_big else "dmy"


def parse_moment(value: str, order: str = "dmy") -> datetime | None:
    """A timestamp as tools write it (ISO, or d/m/y and m/d/y with optional time); None if not."""
    value = value.strip()
    try:
        if found := ISO.match(value):
            y, m, d, hh, mm, ss = found.groups()
        elif found := SLASHED.match(value):
            a, b, y, hh, mm, ss, half = found.groups()
            d, m = (a, b) if order == "dmy" else (b, a)
            y = str(2000 + int(y)) if len(y) == 2 else y
            if half and hh:
                hh = str(int(hh) % 12 + (12 if half.lower() == "pm" else 0))
        else:
            return None
        return datetime(int(y), int(m), int(d), int(hh or 0), int(mm or 0), int(ss or 0))
    except ValueError:
        return None


def _day(value: str, order: str) -> str:
    """The date only (the time of day is never kept); text left as is if it is not a date,
    so that ingest quarantines the row with `invalid_value` rather than we guess."""
    if value.strip().lower() in ("", "[not completed]"):
        return ""
    moment = parse_moment(value, order)
    return moment.date().isoformat() if moment else value


# --- the adapter -----------------------------------------------------------------------

def _plan(header: list[str], texts: list[str], import_ids: list[str], matcher: _Matcher,
          path: Path) -> tuple[dict[str, int], list[str], list[str]]:
    """Which source column feeds each of our columns; plus dropped and unmapped headers."""
    chosen: dict[str, int] = {}
    dropped, unmapped = [], []
    for index, name in enumerate(header):
        target = matcher.match([name, texts[index], import_ids[index]])
        label = name or f"column {index + 1}"
        if target is None:
            unmapped.append(label)
        elif target == "drop":
            dropped.append(label)
        elif target in chosen:
            if target in ("submitted_on", "ended_at"):
                # Several timestamp columns (REDCap with more than one form): the first wins.
                dropped.append(label)
                continue
            raise IngestError(f"{path}: columns '{header[chosen[target]]}' and '{label}' both "
                              f"mean {target}; remove one, or say which is which with --map")
        else:
            chosen[target] = index
    return chosen, dropped, unmapped


def normalise_export(path: Path, instrument: Instrument, tool: str, out: Path,
                     column_map: dict[str, str] | None = None,
                     site_names: dict[str, str] | None = None) -> ImportReport:
    """Write `out`: the export with our column names, ready for ingest; nothing identifying.

    `site_names` maps a site's name (as `normalise_label` gives it) to its code: a tool's
    label export holds the name the form showed (`culture instrument export --sites`).
    """
    if tool not in TOOLS[1:]:
        raise IngestError(f"--from {tool!r} is not known; use one of {', '.join(TOOLS)}")
    rows = iter(read_rows(path))
    header = next(rows, None)
    if not header or not any(header):
        raise IngestError(f"{path}: the file is empty; export the responses again with a "
                          f"header row")
    header = [h.lstrip("\ufeff") for h in header]
    check_header(path, header)
    texts, import_ids = [""] * len(header), [""] * len(header)
    body = list(rows)
    not_responses: dict[str, int] = {}
    if tool == "qualtrics":
        skip, texts, import_ids = _qualtrics_extra_rows(header, body[:2])
        body, not_responses = _without_qualtrics_previews(header, body[skip:])
    matcher = _Matcher(instrument, tool, column_map or {})
    chosen, dropped, unmapped = _plan(header, _pad(texts, header), _pad(import_ids, header),
                                      matcher, path)
    if not any(ident in chosen for ident in instrument.item_ids):
        raise IngestError(f"{path}: no column matches a question of {instrument.key} by id or "
                          f"wording (first columns: {', '.join(header[:6])}); check --from "
                          f"{tool} is the right tool, or map columns with --map FILE")
    report = ImportReport(source=str(path), tool=tool, ingest=IngestReport(str(path), ""),
                          columns={c: header[i] for c, i in chosen.items()},
                          dropped_columns=dropped, unmapped_columns=unmapped)
    for kind, count in not_responses.items():
        report.notes.append(f"{count} row(s) with Status '{kind}' skipped: Qualtrics marks "
                            f"them as previews, tests or spam, not staff's answers")
    if "response_id" not in chosen:
        raise IngestError(f"{path}: no response id column found (expected "
                          f"{_ID_COLUMN[tool]}); map one with --map FILE (column,field)")

    def column(name: str) -> list[str]:
        index = chosen.get(name)
        return [row[index] if index is not None and index < len(row) else "" for row in body]

    started, ended = column("started_at"), column("completed_at")
    if "ended_at" in chosen and "submitted_on" not in chosen:
        chosen["submitted_on"] = chosen["ended_at"]
    if "completed_at" in chosen and "submitted_on" not in chosen:
        chosen["submitted_on"] = chosen["completed_at"]
    dates = column("submitted_on")
    order = slash_order(dates + started)
    if any(SLASHED.match(v) for v in dates + started):
        report.notes.append("dates read as " + ("month/day/year" if order == "mdy" else
                                                 "day/month/year"))
    out_columns = [c for c in (*FIXED_COLUMNS, *(a.id for a in instrument.attributes),
                               *instrument.item_ids)
                   if c in chosen or (c == "duration_seconds" and "started_at" in chosen)]
    with out.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(out_columns)
        for number, row in enumerate(body):
            if not any(row):
                continue   # a blank line at the end of a hand-edited export
            values = []
            for name in out_columns:
                if name == "submitted_on":
                    values.append(_day(dates[number], order))
                elif name == "duration_seconds" and "duration_seconds" not in chosen:
                    values.append(_duration(started[number], ended[number], order))
                elif name == "site" and site_names:
                    value = row[chosen[name]] if chosen[name] < len(row) else ""
                    values.append(site_names.get(normalise_label(value), value))
                else:
                    index = chosen[name]
                    values.append(row[index] if index < len(row) else "")
            writer.writerow(values)
    return report


_ID_COLUMN = {"redcap": "record_id", "forms": "ID", "qualtrics": "ResponseId"}


def _pad(values: list[str], header: list[str]) -> list[str]:
    return (list(values) + [""] * len(header))[:len(header)]


def _duration(start: str, end: str, order: str) -> str:
    """Whole seconds from start to completion, or blank when either is missing or they disagree."""
    began, finished = parse_moment(start, order), parse_moment(end, order)
    if began is None or finished is None or finished < began:
        return ""
    return str(int((finished - began).total_seconds()))


def import_export(con: duckdb.DuckDBPyConnection, path: Path | str, instrument: Instrument,
                  definition_yaml: str, tool: str, site: str | None = None,
                  wave: int | None = None, column_map: dict[str, str] | None = None,
                  progress: Progress | None = None) -> ImportReport:
    """Normalise one export from `tool` and ingest it as one batch; returns both reports."""
    path = Path(path)
    check_regular_file(path)
    with tempfile.TemporaryDirectory(prefix="culture-import-") as scratch:
        # The batch is recorded under this name, so the store shows where rows came from.
        normalised = Path(scratch) / f"{path.stem}-{tool}.csv"
        names = {normalise_label(name): code for code, name in
                 con.execute("select site_code, name from sites").fetchall()}
        report = normalise_export(path, instrument, tool, normalised, column_map, names)
        report.ingest = ingest_file(con, normalised, instrument, definition_yaml, site, wave,
                                    progress)
    report.ingest.source = str(path)
    return report


def check_tool(tool: str) -> None:
    """Nothing when `tool` is one an export can come from; else an error listing them."""
    if tool not in TOOLS:
        raise IngestError(f"--from {tool!r} is not known; use one of {', '.join(TOOLS)}")


def import_options(tool: str, column_map: Path | None) -> dict[str, str] | None:
    """The column map for `tool` (None without one), once the --from / --map pair is checked."""
    check_tool(tool)
    if tool == "culture" and column_map:
        raise IngestError("--map is for other tools' exports; give --from redcap, forms or "
                          "qualtrics, or rename the columns of your file")
    return load_column_map(column_map) if column_map else None


def ingest_from_tool(con: duckdb.DuckDBPyConnection, path: Path | str, instrument: Instrument,
                     definition_yaml: str, tool: str = "culture", site: str | None = None,
                     wave: int | None = None, column_map: dict[str, str] | None = None,
                     progress: Progress | None = None) -> tuple[IngestReport, ImportReport | None]:
    """One file ingested as one batch, through `tool`'s adapter unless it is ours: ingest's
    report, and the adapter's (None for our own columns)."""
    if tool == "culture":
        return ingest_file(con, path, instrument, definition_yaml, site, wave, progress), None
    imported = import_export(con, path, instrument, definition_yaml, tool, site, wave,
                             column_map, progress)
    return imported.ingest, imported
