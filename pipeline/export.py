"""Researcher exports: published aggregates as CSV, Parquet, SPSS or Stata, with a codebook.

`export_aggregates` writes one file per level and format and a Frictionless data
package (`datapackage.json`) describing every file and field. It reads only the
published layer (`Settings.published_path`, opened read-only), so an export can hold
nothing the suppression step did not let through: hidden cells keep their row with
NULL statistics and ``suppressed = 1``, never a count below the threshold.

Levels (one file each):

    site        site, peer group and all sites x wave x scale (and the responses count),
                with Cronbach's alpha (Feldt 95% CI) and omega total where published
    principle   unit x wave x principle (0-100 score), with each site's gap to its target
    item        unit x wave x item (1-5 mean after reverse-keying, or % yes)
    group       unit x wave x attribute group (staff group, pmq, ...) x scale / principle

Pseudonymisation replaces each site code by ``S`` + 8 characters of base32 of
HMAC-SHA256(key, site code): the same key gives the same codes in every export (so
waves exported apart can be joined), another key gives codes that cannot be linked to
them, and without the key the codes cannot be reversed by trying the known site codes.
Site names are then left out; site type and region stay.

CSV cells are safe to open in a spreadsheet: any text starting with = + - @ tab or
carriage return is prefixed with a single quote (OWASP "CSV injection"), so it is
shown as text, never run as a formula. Numbers are written as numbers.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import io
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl
import pyreadstat

from pipeline.published import min_group_size, open_published, published_meta
from pipeline.store import SITE_TYPES, insert_rows, read_sql
from survey.errors import CultureError

FORMATS = ("csv", "parquet", "sav", "dta")
LEVELS = ("site", "principle", "item", "group")
#: Environment variable read by the CLI when --pseudonymise-key is not given.
ENV_PSEUDONYM_KEY = "CULTURE_PSEUDONYMISE_KEY"
#: A short key could be found by trying keys against the few known site codes.
MIN_KEY_LENGTH = 16
PSEUDONYM_LENGTH = 8
#: Leading characters a spreadsheet reads as the start of a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

MEDIA_TYPES = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet",
               "sav": "application/x-spss-sav", "dta": "application/x-stata-dta"}


class ExportError(CultureError):
    """An export cannot be made as asked (unknown format or level, unusable key)."""


@dataclass(frozen=True)
class LevelSpec:
    """Which published cells a level holds and which columns describe them."""

    title: str
    where: str
    columns: tuple[str, ...]


_HEAD = ("wave", "level", "unit", "site_name", "site_type", "region")
_STATS = ("n", "mean", "sd", "se", "ci_low", "ci_high")
_ONE_TO_FIVE = ("mean_0_10", "pct_favourable")
_RELIABILITY = ("alpha", "alpha_ci_low", "alpha_ci_high", "omega_total")
_GAP = ("target", "gap", "gap_low", "gap_high", "certainty", "priority")

LEVEL_SPECS = {
    "site": LevelSpec(
        "Scales by site, peer group and all sites, per wave",
        "breakdown = 'all' and measure_kind in ('responses', 'scale')",
        _HEAD + ("measure_kind", "measure", "measure_name") + _STATS + _ONE_TO_FIVE
        + _RELIABILITY + ("suppressed",)),
    "principle": LevelSpec(
        "The six principles (0-100) by site, peer group and all sites, per wave",
        "breakdown = 'all' and measure_kind = 'principle'",
        _HEAD + ("measure", "measure_name") + _STATS + _GAP + ("suppressed",)),
    "item": LevelSpec(
        "Items by site, peer group and all sites, per wave",
        "breakdown = 'all' and measure_kind = 'item'",
        _HEAD + ("measure", "measure_name") + _STATS + _ONE_TO_FIVE
        + ("pct_unfavourable", "suppressed")),
    "group": LevelSpec(
        "Scales and principles by respondent attribute group within each unit and wave",
        "breakdown <> 'all'",
        _HEAD + ("breakdown", "group_value", "group_label", "measure_kind", "measure",
                 "measure_name")
        + _STATS + _ONE_TO_FIVE + ("suppressed",)),
}

#: Variable labels (SPSS, Stata) and field titles (datapackage.json); Stata allows 80 chars.
COLUMN_LABELS = {
    "wave": "Survey wave (year)",
    "level": "Unit level: site, peer group (site type) or all sites",
    "unit": "Site code (pseudonym if pseudonymised), site type, or national",
    "site_name": "Site name",
    "site_type": "Site type (the site's peer group)",
    "region": "Region of England",
    "breakdown": "Respondent attribute the group is defined by",
    "group_value": "Group within the attribute (code)",
    "group_label": "Group within the attribute (as the question offered it)",
    "measure_kind": "Kind of measure: responses, scale, principle or item",
    "measure": "Measure id (scale, principle P1-P6 or item)",
    "measure_name": "Measure name (item text for items)",
    "n": "Respondents in the cell (blank if suppressed)",
    "mean": "Mean: 1-5 for scales and items, 0-100 for principles, % yes for yes/no items",
    "sd": "Standard deviation (n - 1 denominator)",
    "se": "Standard error of the mean, sd / sqrt(n)",
    "ci_low": "Mean: lower limit of the 95% confidence interval (t, n - 1 df)",
    "ci_high": "Mean: upper limit of the 95% confidence interval (t, n - 1 df)",
    "mean_0_10": "Mean on 0-10, (mean - 1) x 2.5 (NHS Staff Survey convention)",
    "pct_favourable": "% favourable answers (agree or strongly agree after reverse-keying)",
    "pct_unfavourable": "% unfavourable answers (disagree or strongly disagree after keying)",
    "alpha": "Cronbach's alpha of the scale in this unit and wave",
    "alpha_ci_low": "Cronbach's alpha: lower limit of the 95% CI (Feldt 1987)",
    "alpha_ci_high": "Cronbach's alpha: upper limit of the 95% CI (Feldt 1987)",
    "omega_total": "McDonald's omega total (one-factor minres)",
    "target": "Principle target (by default the peer group's upper quartile)",
    "gap": "Gap: target minus score (positive: short of the target)",
    "gap_low": "Gap: lower limit of the 95% CI",
    "gap_high": "Gap: upper limit of the 95% CI",
    "certainty": "Clear gap, possible gap or meets target",
    "priority": "Order in which to act on the site's principles (1 = first)",
    "suppressed": "1 if withheld: fewer than k respondents, or to protect such a cell",
}

#: Categorical text columns: stable numeric codes with value labels in SPSS and Stata.
CODED_COLUMNS = {
    "level": {"site": "Site", "peer": "Peer group (site type)", "national": "All sites"},
    "site_type": {t: t.replace("_", " ").replace("org", "organisation").capitalize()
                  for t in SITE_TYPES},
    "measure_kind": {"responses": "Responses", "scale": "Scale", "principle": "Principle",
                     "item": "Item"},
    "breakdown": {"staff_group": "Staff group / career stage", "contract": "Contract type",
                  "pmq": "Place of primary medical qualification", "gender": "Gender",
                  "age_band": "Age band", "ethnicity": "Ethnicity"},
    "certainty": {"clear gap": "Clear gap", "possible gap": "Possible gap",
                  "meets target": "Meets target"},
}
#: Further text columns coded 1, 2, ... in sorted order, labelled with their values: in
#: SPSS and Stata a labelled number is the usual form of a category (and text cells cost
#: five times as much to write as numbers).
DATA_CODED_COLUMNS = ("region", "group_value", "group_label", "measure_name")
#: SPSS keeps value labels up to 120 bytes: a column with longer text stays text.
VALUE_LABEL_BYTES = 120
SUPPRESSED_LABELS = {0: "Shown", 1: "Suppressed (small cell or protects one)"}
#: Codes above this are given, in sorted order, to values no list above knows.
UNKNOWN_CODE_START = 90


@dataclass(frozen=True)
class ExportedFile:
    """One file written by an export."""

    level: str
    fmt: str
    path: Path
    rows: int


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote: the files, their data package and the threshold applied."""

    out_dir: Path
    files: tuple[ExportedFile, ...]
    datapackage: Path
    min_group_size: int
    pseudonymised: bool

    @property
    def paths(self) -> list[Path]:
        """Every file written, the data package last."""
        return [f.path for f in self.files] + [self.datapackage]


def pseudonymise(site_code: str, key: str) -> str:
    """The readable pseudonym of a site code under `key` (HMAC-SHA256, base32, 8 chars)."""
    digest = hmac.new(key.encode("utf-8"), site_code.encode("utf-8"), hashlib.sha256).digest()
    return "S" + base64.b32encode(digest).decode("ascii")[:PSEUDONYM_LENGTH]


def _chosen(value: str | Sequence[str] | None, allowed: tuple[str, ...], what: str) -> list[str]:
    if value is None:
        return list(allowed)
    values = [value] if isinstance(value, str) else list(value)
    for v in values:
        if v not in allowed:
            raise ExportError(f"{what} {v!r} is not known; use one of {', '.join(allowed)}")
    return list(dict.fromkeys(values)) or list(allowed)


def _check_key(key: str | None) -> None:
    if key is not None and len(key) < MIN_KEY_LENGTH:
        raise ExportError(
            f"the pseudonymisation key has {len(key)} characters; use at least "
            f"{MIN_KEY_LENGTH} (e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(24))') "
            f"and keep it: the same key gives the same pseudonyms next year")


def _prepare(con: duckdb.DuckDBPyConnection, key: str | None) -> None:
    """Session objects the level queries use: pseudonyms, the CSV guard, export_cells."""
    codes = [row[0] for row in con.execute("select site_code from sites").fetchall()]
    pairs = [(code, pseudonymise(code, key)) for code in codes] if key else []
    if len({p for _, p in pairs}) < len(pairs):
        raise ExportError("two sites share a pseudonym under this key; choose another key")
    con.execute("create or replace temp table site_pseudonyms "
                "(site_code varchar, pseudonym varchar)")
    insert_rows(con, "site_pseudonyms", ["site_code", "pseudonym"], pairs)
    quote = "'" * 4
    starts = ", ".join("chr(%d)" % ord(c) for c in FORMULA_STARTS)
    con.execute(f"create or replace temp macro csv_safe(x) as case when left(x, 1) in "
                f"({starts}) then {quote} || x else x end")
    con.execute("create or replace temp view export_cells as " + read_sql("export_cells.sql"))


def _level_query(level: str, pseudonymised: bool) -> str:
    """SQL selecting one level's columns in a stable order (no user value is formatted in)."""
    spec = LEVEL_SPECS[level]
    columns = [c for c in spec.columns if not (pseudonymised and c == "site_name")]
    return (f"select {', '.join(columns)} from export_cells where {spec.where} "
            "order by case level when 'site' then 1 when 'peer' then 2 else 3 end, unit, "
            "wave, breakdown, group_value, measure_kind, measure")


def _csv_query(types: dict[str, str]) -> str:
    """The materialised level with every text column passed through the formula guard."""
    select = [f"csv_safe({c}) as {c}" if t == "VARCHAR" else c for c, t in types.items()]
    return f"select {', '.join(select)} from export_level"


def export_aggregates(published_path: Path, out_dir: Path,
                      fmt: str | Sequence[str] = "csv",
                      level: str | Sequence[str] | None = None,
                      pseudonym_key: str | None = None) -> ExportReport:
    """Write the published aggregates of `level` (default all) in `fmt` and a data package.

    Files are named ``culture_<level>.<format>`` in `out_dir`, with
    ``datapackage.json`` beside them. Everything is written in a hidden folder inside
    `out_dir` first and moved into place only when complete, the data package last,
    so a reader never finds a half-written file.
    """
    formats = _chosen(fmt, FORMATS, "format")
    levels = _chosen(level, LEVELS, "level")
    _check_key(pseudonym_key)
    out_dir = Path(out_dir)
    pseudonymised = pseudonym_key is not None
    with closing(open_published(Path(published_path))) as con:
        k = min_group_size(con)
        meta = published_meta(con)
        _prepare(con, pseudonym_key)
        out_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".export-", dir=out_dir))
        try:
            written, resources = [], []
            for name in levels:
                # Materialised once (in the session's temp catalog, the file stays
                # read-only), then written in every format: the joins and the sort run once.
                con.execute("create or replace temp table export_level as "
                            + _level_query(name, pseudonymised))
                relation = con.table("export_level")
                types = dict(zip(relation.columns, map(str, relation.types)))
                rows = con.execute("select count(*) from export_level").fetchall()[0][0]
                observed = {column: [r[0] for r in con.execute(
                    f"select distinct {column} from export_level where {column} is not null"
                ).fetchall()] for column in (*CODED_COLUMNS, *DATA_CODED_COLUMNS)
                    if column in types}
                observed = labelled_columns(observed)
                frame = None
                for fmt_name in formats:
                    path = staging / f"culture_{name}.{fmt_name}"
                    if fmt_name == "csv":
                        con.sql(_csv_query(types)).write_csv(str(path), header=True)
                    elif fmt_name == "parquet":
                        relation.write_parquet(str(path), compression="zstd")
                    else:
                        # Polars, not pandas: pyreadstat walks the rows one by one, and
                        # polars hands them over several times faster.
                        frame = relation.pl() if frame is None else frame
                        _write_labelled(frame, path, fmt_name, name, k, observed)
                    written.append(ExportedFile(name, fmt_name, out_dir / path.name, rows))
                    resources.append(_resource(name, fmt_name, path, types, observed))
                con.execute("drop table export_level")
            package = _package(resources, meta, k, pseudonymised)
            (staging / "datapackage.json").write_text(json.dumps(package, indent=2),
                                                      encoding="utf-8")
            for file in written:
                os.replace(staging / file.path.name, file.path)
            os.replace(staging / "datapackage.json", out_dir / "datapackage.json")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return ExportReport(out_dir, tuple(written), out_dir / "datapackage.json", k, pseudonymised)


def export_zip(published_path: Path, fmt: str | Sequence[str] = "csv",
               level: str | Sequence[str] | None = None,
               pseudonym_key: str | None = None) -> bytes:
    """The same export as `export_aggregates`, as the bytes of a zip file (for a download)."""
    with tempfile.TemporaryDirectory(prefix="culture-export-") as tmp:
        report = export_aggregates(published_path, Path(tmp), fmt, level, pseudonym_key)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in report.paths:
                archive.write(path, arcname=path.name)
    return buffer.getvalue()


def labelled_columns(observed: dict[str, list]) -> dict[str, list]:
    """The text columns (with their values) that SPSS and Stata files carry as labelled
    codes: every listed category, and data-coded text whose values fit a value label."""
    return {column: values for column, values in observed.items()
            if column in CODED_COLUMNS
            or max((len(v.encode()) for v in values), default=0) <= VALUE_LABEL_BYTES}


def value_codes(column: str, values) -> dict[str, int]:
    """Codes for a categorical column: its known values in order (stable from export to
    export), then values no list knows in sorted order (from 90 where a list exists)."""
    known = list(CODED_COLUMNS.get(column, ()))
    codes = {value: i for i, value in enumerate(known, start=1)}
    extra = sorted(set(v for v in values if v is not None) - set(codes))
    start = UNKNOWN_CODE_START if known else 1
    codes |= {value: start + i for i, value in enumerate(extra)}
    return codes


def value_labels_of(column: str, codes: dict[str, int]) -> dict[int, str]:
    """The value labels of a coded column: code -> readable label."""
    return {code: CODED_COLUMNS.get(column, {}).get(value, value) for value, code in codes.items()}


def _write_labelled(frame: pl.DataFrame, path: Path, fmt: str, level: str, k: int,
                    observed: dict[str, list]) -> None:
    """An SPSS or Stata file with variable labels, and value labels for coded columns."""
    value_labels: dict[str, dict[int, str]] = {"suppressed": dict(SUPPRESSED_LABELS)}
    recoded = []
    for column, values in observed.items():
        codes = value_codes(column, values)
        recoded.append(pl.col(column).replace_strict(codes, default=None,
                                                     return_dtype=pl.Int32))
        value_labels[column] = value_labels_of(column, codes)
    out = frame.with_columns(recoded)
    labels = [COLUMN_LABELS[c] for c in out.columns]
    file_label = f"Culture of support: {level} aggregates (k = {k})"
    if fmt == "sav":
        pyreadstat.write_sav(out, str(path), file_label=file_label, column_labels=labels,
                             variable_value_labels=value_labels)
    else:
        pyreadstat.write_dta(out, str(path), file_label=file_label, column_labels=labels,
                             variable_value_labels=value_labels, version=15)


_FIELD_TYPES = {"VARCHAR": "string", "INTEGER": "integer", "BIGINT": "integer",
                "DOUBLE": "number", "FLOAT": "number", "BOOLEAN": "boolean"}


def _resource(level: str, fmt: str, path: Path, types: dict[str, str],
              observed: dict[str, list]) -> dict:
    """The data-package resource describing one written file, with its sha256."""
    fields = []
    for column, duck_type in types.items():
        field = {"name": column, "type": _FIELD_TYPES.get(duck_type, "any"),
                 "title": COLUMN_LABELS[column]}
        if column in observed:
            codes = value_codes(column, observed[column])
            if fmt in ("sav", "dta"):
                field["type"] = "integer"
                field["description"] = "; ".join(
                    f"{code} = {label}" for code, label in value_labels_of(column, codes).items())
                field["constraints"] = {"enum": sorted(codes.values())}
            elif column in CODED_COLUMNS:
                field["constraints"] = {"enum": list(codes)}
        elif column == "suppressed":
            field["description"] = "; ".join(f"{c} = {t}" for c, t in SUPPRESSED_LABELS.items())
            field["constraints"] = {"enum": [0, 1]}
        fields.append(field)
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    resource = {
        "name": f"{level}-{fmt}", "path": path.name, "title": LEVEL_SPECS[level].title,
        "format": fmt, "mediatype": MEDIA_TYPES[fmt],
        # Frictionless reads CSV and Parquet; SPSS and Stata files it checks by size and hash.
        "type": "table" if fmt in ("csv", "parquet") else "file",
        "bytes": path.stat().st_size, "hash": f"sha256:{digest.hexdigest()}",
        "schema": {"fields": fields, "missingValues": [""]},
    }
    if fmt == "csv":
        resource["encoding"] = "utf-8"
    if fmt == "parquet":
        # Frictionless reads Parquet through pandas, where a NULL integer arrives as NaN,
        # and it does not measure a Parquet file's bytes, so a stated size or hash would
        # always fail to match.
        resource["schema"]["missingValues"] = ["", "nan"]
        del resource["bytes"], resource["hash"]
    return resource


def _package(resources: list[dict], meta: dict[str, str], k: int, pseudonymised: bool) -> dict:
    """The Frictionless data package descriptor for an export."""
    sites = ("Site codes are pseudonyms (keyed HMAC-SHA256); site names are left out."
             if pseudonymised else "Sites are named by their codes and names.")
    return {
        "name": "culture-of-support-aggregates",
        "title": "Culture of support for doctors: published survey aggregates",
        "description": (
            f"Aggregates published on {meta.get('published_on', 'unknown date')} from the "
            f"support-culture survey ({meta.get('instrument', 'instrument unknown')}). No "
            f"respondent-level rows. Cells with fewer than {k} respondents, and cells from "
            f"which such a cell could be worked out by subtraction, are withheld: their "
            f"statistics are blank and suppressed = 1. {sites} Principle targets: "
            f"{meta.get('target_rule', 'peer_q3')}."),
        "created": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "keywords": ["psychological safety", "help-seeking stigma", "doctors", "survey"],
        "resources": resources,
    }

