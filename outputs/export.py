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
    answers     unit x wave x item x answer option: answers and % of the item's answers
                (as answered, before reverse-keying), and the no-answer count

Beside the files: ``codebook.csv`` (a resource of the data package: every measure with
its kind, scale, principles, item text, reverse-keying and answer options with codes)
and ``codebook.md``, the same for a person, with what every column means, the licence
and how to cite. SPSS and Stata value labels follow the questionnaire: attribute groups
are coded attribute x 100 + the option's place in the question (99: not stated),
measure names in the instrument's order.

Pseudonymisation replaces each site code by ``S`` + 8 characters of base32 of
HMAC-SHA256(key, site code): the same key gives the same codes in every export (so
waves exported apart can be joined), another key gives codes that cannot be linked to
them, and without the key the codes cannot be reversed by trying the known site codes.
The deployment's own key (`deployment_pseudonym_key`: CULTURE_PSEUDONYMISE_KEY, else a
random key file beside the store made once) serves researchers' dashboard pages and
downloads, so both name a site by the same pseudonym and no researcher picks the key.

Site names are then left out, and site type and region, which can single a site out
as surely as its name (the only independent organisation), are coarsened until every
combination shown covers at least `min_sites` sites (`coarsen_quasi_identifiers`).
Peer-group rows of a type that is not shown as itself are left out: a peer group of one
site is that site's row with its type attached, and any peer row's n is the sum of its
members' n, which finds the members. ``coarsening.txt`` and the data package say what
was done.

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
import secrets
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pandas as pd

from published.layout import ATTRIBUTE_TITLES, NOT_STATED
from published.reader import PublishedLayer, open_published
from survey.errors import CultureError
from survey.settings import ABSOLUTE_MIN_SITES_PER_COMBINATION
from survey.sites import SITE_TYPES
from survey.spreadsheet import safe_cell_sql

if TYPE_CHECKING:
    import polars as pl

SQL_DIR = Path(__file__).resolve().parent / "sql"

AGGREGATE_FORMATS = ("csv", "parquet", "sav", "dta")
AGGREGATE_LEVELS = ("site", "principle", "item", "group", "answers")
#: Levels written only when asked for by name: the driver models are not cells (no
#: site below 100 respondents has one), so they stay out of the default set of cell files.
ON_REQUEST_LEVELS = ("drivers",)
#: The deployment's pseudonymisation key; when unset, a key file beside the store is used.
ENV_PSEUDONYM_KEY = "CULTURE_PSEUDONYMISE_KEY"
#: The key file's name beside the store: culture.duckdb -> culture.pseudonym.key.
KEY_FILE_SUFFIX = ".pseudonym.key"
#: Shown in place of site types and regions with too few sites of their own.
MERGED_TYPE = "other_types"
MERGED_REGION = "other_regions"
NOTES_FILE = "coarsening.txt"
#: A short key could be found by trying keys against the few known site codes.
MIN_KEY_LENGTH = 16
PSEUDONYM_LENGTH = 8

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
    #: The session view the level reads (sql/export_cells.sql, sql/export_answers.sql).
    source: str = "export_cells"
    order: str = "wave, breakdown, group_value, measure_kind, measure"


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
    "answers": LevelSpec(
        "Every item's answers by option, by site, peer group and all sites, per wave",
        "true",
        _HEAD + ("measure", "measure_name", "option_position", "option_code", "option_label",
                 "scored_code", "favourable", "is_answer", "answers", "pct_answers",
                 "suppressed"),
        source="export_answers", order="wave, measure, option_position"),
    "drivers": LevelSpec(
        "What goes with seeking help early: each scale's share of the R2 of an outcome "
        "(general dominance), nationally, by peer group and by site (>= 100 respondents), "
        "per wave",
        "true",
        _HEAD + ("outcome", "model", "fit_measure", "measure", "measure_name", "n", "sites",
                 "share", "share_low", "share_high", "relative_weight", "r2", "r2_low",
                 "r2_high", "rank", "note", "suppressed"),
        source="export_drivers", order="wave, outcome, rank"),
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
    "mean": "Mean: 1-5 (scored: reverse-keyed items reversed), 0-100 for principles",
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
    "option_position": "Place of the answer option in the question (99: no answer)",
    "option_code": "Answer code as offered on the form (before reverse-keying)",
    "option_label": "Answer option as offered on the form",
    "scored_code": "The answer's code after reverse-keying (what means are made of)",
    "favourable": "1 if the answer counts towards % favourable",
    "is_answer": "1 for an answer option; 0 for the row counting no answer",
    "answers": "Respondents who gave this answer (blank if suppressed)",
    "pct_answers": "% of the item's answers in the cell (no-answer row: blank)",
    "outcome": "Outcome modelled: oc_intend, oc_intend_favourable or oc_used_if_needed",
    "model": "Model: linear (OLS) or logistic",
    "fit_measure": "Fit shared out: R2, or McFadden's pseudo-R2 (logistic)",
    "sites": "Sites whose respondents the model rests on",
    "share": "Scale's share of the model's fit (general dominance / fit)",
    "share_low": "Share: lower limit of the 95% site-bootstrap interval",
    "share_high": "Share: upper limit of the 95% site-bootstrap interval",
    "relative_weight": "Johnson's relative weight as a share of R2 (cross-check)",
    "r2": "Fit of the model with all eight scales (R2 or McFadden R2)",
    "r2_low": "Fit: lower limit of the 95% site-bootstrap interval",
    "r2_high": "Fit: upper limit of the 95% site-bootstrap interval",
    "rank": "Rank of the scale's share within the model (1 = largest)",
    "note": "What the model's interval rests on, or why it has none",
}

#: What the statistics mean, beyond their labels: codebook.md and the fields' descriptions.
COLUMN_NOTES = {
    "mean": "Scales and agreement items are on 1-5 in the scored direction: a reverse-keyed "
            "item's answers are reversed (6 - answer) before the mean is taken, so a higher "
            "mean is always the more supportive answer. The mean of the answers as given "
            "is 6 - mean for a reverse-keyed item (codebook.csv, reverse_keyed), and the "
            "answers level gives every option's count as given. Yes/no items have no "
            "mean (see pct_favourable); principles are 0-100, (scale mean - 1) x 25.",
    "pct_favourable": "Items: % of the item's answers that are favourable after "
                      "reverse-keying (agree or strongly agree; for a reverse-keyed item, "
                      "disagree or strongly disagree). Scales: % of all answers to the "
                      "scale's items that are favourable (AHRQ SOPS composite convention).",
    "n": "Respondents counted: with a score for a scale or principle, with an answer "
         "(not don't know, not blank) for an item.",
    "share": "Drivers level: the scale's general dominance (its mean gain in fit over "
             "all 2^8 subset models, Budescu 1993; LMG for R2) over the full model's fit, "
             "so a model's shares sum to 1. Linear models: oc_intend on its answer (1-5) "
             "and, as a check, on agreeing (1/0); fitted from per-site sums, with a "
             "200-draw bootstrap resampling whole sites for national and peer-group "
             "models (groups of 5 sites or more). Site rows: the site's own model, only "
             "from 100 respondents, no interval. oc_used_if_needed: logistic model of "
             "using support among those who needed it, national only, no interval. An "
             "association, not a cause.",
    "answers": "Counts of the answers as given, before reverse-keying; the no-answer row "
               "counts the unit's respondents who answered don't know, left the item "
               "blank or were not asked it (the store does not tell these apart).",
}

#: The data package's licence (aggregates) and the instrument's, with how to cite both.
DATA_LICENSE = {"name": "CC-BY-4.0", "title": "Creative Commons Attribution 4.0",
                "path": "https://creativecommons.org/licenses/by/4.0/"}
INSTRUMENT_LICENSE = ("The instrument (instruments/support-culture-v*.yaml: item wording, "
                      "answer options, scoring) is the project's own and is released with "
                      "its software under the MIT licence; the constructs' sources are "
                      "cited in the instrument file.")
CITATION = ("Culture of support contributors. Culture of support for doctors: staff survey "
            "instrument and published aggregates ({instrument}; published {published_on}). "
            "See CITATION.cff in the project's repository.")
CODEBOOK_CSV = "codebook.csv"
CODEBOOK_MD = "codebook.md"
#: Columns of codebook.csv, one row a measure, with their titles.
CODEBOOK_COLUMNS = {
    "measure_kind": "Kind of measure: responses, scale, principle or item",
    "measure": "Measure id, as in the level files",
    "name": "Name (the item's text for items)",
    "scale": "Scale the item belongs to (blank: an outcome item)",
    "scale_name": "Name of that scale",
    "principles": "Principles (P1-P6) the measure informs, comma-separated",
    "reverse_keyed": "1 if agreeing is the unfavourable answer: reversed before scoring",
    "answer_options": "Answer codes and labels as offered, in the question's order",
    "favourable_options": "Codes (as offered) counted as favourable",
    "no_answer_option": "Code and label of the don't-know option (stored as missing)",
    "description": "What a high score means (scales), or the principle's summary",
}

#: Categorical text columns: stable numeric codes with value labels in SPSS and Stata.
CODED_COLUMNS = {
    "level": {"site": "Site", "peer": "Peer group (site type)", "national": "All sites"},
    "site_type": {t: t.replace("_", " ").replace("org", "organisation").capitalize()
                  for t in SITE_TYPES} | {MERGED_TYPE: "Other types (each too few sites)"},
    "measure_kind": {"responses": "Responses", "scale": "Scale", "principle": "Principle",
                     "item": "Item"},
    # The titles the published layer gives the attributes, coded in its order.
    "breakdown": dict(ATTRIBUTE_TITLES),
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
#: Joins an attribute and a group into one key: a group's code depends on both.
GROUP_KEY_SEPARATOR = "\x1f"


@dataclass(frozen=True)
class Coarsening:
    """How site type and region are shown in a pseudonymised export.

    `site_type` and `region` map each site code to what is shown (None: left out);
    `hidden_peer_groups` are the peer groups whose rows are left out.
    """

    min_sites: int
    site_type: dict[str, str | None]
    region: dict[str, str | None]
    hidden_peer_groups: tuple[str, ...]
    notes: tuple[str, ...]

    def combinations(self) -> dict[tuple[str | None, str | None], int]:
        """Sites per (site type, region) as shown."""
        counts: dict[tuple[str | None, str | None], int] = {}
        for code in self.site_type:
            key = (self.site_type[code], self.region[code])
            counts[key] = counts.get(key, 0) + 1
        return counts


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
    #: What was coarsened to keep every site type x region shown to min_sites or more.
    coarsening: Coarsening | None = None

    @property
    def paths(self) -> list[Path]:
        """Every file written, the data package last."""
        notes = [self.out_dir / NOTES_FILE] if self.coarsening is not None else []
        codebook = [self.out_dir / CODEBOOK_CSV, self.out_dir / CODEBOOK_MD]
        return [f.path for f in self.files] + notes + codebook + [self.datapackage]


def _merge_small(values: dict[str, str], min_sites: int, merged: str) -> dict[str, str] | None:
    """Categories with fewer than `min_sites` sites shown together as `merged` (with the
    next smallest too while the merged category is still too small); None when that
    would merge everything, so the column says nothing and is better left out."""
    counts: dict[str, int] = {}
    for value in values.values():
        counts[value] = counts.get(value, 0) + 1
    small = {v for v, c in counts.items() if c < min_sites}
    while 0 < sum(counts[v] for v in small) < min_sites and len(small) < len(counts):
        small.add(min(set(counts) - small, key=lambda v: (counts[v], v)))
    if len(small) == len(counts) and len(counts) > 1 or \
            0 < sum(counts[v] for v in small) < min_sites:
        return None
    return {code: merged if v in small else v for code, v in values.items()}


def coarsen_quasi_identifiers(sites: dict[str, tuple[str, str | None]],
                              peer_groups: Sequence[str], min_sites: int) -> Coarsening:
    """The most detailed showing of site type and region in which every combination
    shown covers at least `min_sites` sites.

    Tried in order, the first that holds is used: both as they are; both with their
    small categories merged; type (merged) without region; region (merged) without
    type; neither. A category is small when it has fewer than `min_sites` sites. Only
    peer groups whose type is shown as itself keep their rows.
    """
    types = {code: t for code, (t, _) in sites.items()}
    regions = {code: r or "" for code, (_, r) in sites.items()}
    nothing: dict[str, str | None] = {code: None for code in sites}
    candidates = [(types, regions),
                  (_merge_small(types, min_sites, MERGED_TYPE),
                   _merge_small(regions, min_sites, MERGED_REGION)),
                  (_merge_small(types, min_sites, MERGED_TYPE), nothing),
                  (nothing, _merge_small(regions, min_sites, MERGED_REGION))]
    shown_types, shown_regions = nothing, nothing   # fewer than min_sites sites in all
    for candidate_types, candidate_regions in candidates:
        if candidate_types is None or candidate_regions is None:
            continue
        counts: dict[tuple, int] = {}
        for code in sites:
            key = (candidate_types[code], candidate_regions[code])
            counts[key] = counts.get(key, 0) + 1
        if min(counts.values(), default=min_sites) >= min_sites:
            shown_types, shown_regions = candidate_types, candidate_regions
            break
    shown_regions = {c: r or None for c, r in shown_regions.items()}
    shown_as_itself = {types[c] for c in sites if shown_types[c] == types[c]}
    hidden = tuple(sorted(set(peer_groups) - shown_as_itself))
    notes = _coarsening_notes(types, regions, shown_types, shown_regions, hidden, min_sites)
    return Coarsening(min_sites, dict(shown_types), shown_regions, hidden, notes)


def _coarsening_notes(types: dict[str, str], regions: dict[str, str],
                      shown_types: dict[str, str | None], shown_regions: dict[str, str | None],
                      hidden: tuple[str, ...], min_sites: int) -> tuple[str, ...]:
    """One sentence per column and one for peer groups, saying what was done and why."""
    notes = []
    for column, original, shown, merged in (("site_type", types, shown_types, MERGED_TYPE),
                                            ("region", regions, shown_regions, MERGED_REGION)):
        if shown and all(v is None for v in shown.values()):
            notes.append(f"{column}: left out (shown, even with its small categories merged, "
                         f"some combination would cover fewer than {min_sites} sites)")
            continue
        merged_values = sorted({original[c] for c in shown if shown[c] == merged})
        if merged_values:
            notes.append(f"{column}: {', '.join(merged_values)} shown together as {merged}, "
                         f"so that no {column} shown has fewer than {min_sites} sites")
        else:
            notes.append(f"{column}: shown as it is")
    if hidden:
        notes.append(f"peer-group rows left out for {', '.join(hidden)} (the type is not "
                     f"shown as itself: a small peer group's row is its sites' rows with the "
                     f"type attached, and its n, the sum of its sites' n, finds them)")
        notes.append("targets: a principle target that is the site's peer group's is left "
                     "blank, with its gap, certainty and priority, where the site's type is "
                     "not shown as itself (sites sharing such a target share a type)")
    return tuple(notes)


def pseudonym_key_path(published_path: Path) -> Path:
    """Where the deployment's key file lives: beside the store (culture.pseudonym.key)."""
    published_path = Path(published_path)
    stem = published_path.name.removesuffix(".duckdb").removesuffix(".published")
    return published_path.with_name(stem + KEY_FILE_SUFFIX)


def deployment_pseudonym_key(published_path: Path, environ: dict[str, str] | None = None) -> str:
    """The deployment's pseudonymisation key: CULTURE_PSEUDONYMISE_KEY if set, else the
    key file beside the store, made (random, mode 0600) by the first caller that needs it.

    Researchers' pages and downloads use this key and no other, so a researcher can
    neither choose a key nor get two pseudonyms for one site.
    """
    env = os.environ if environ is None else environ
    if env.get(ENV_PSEUDONYM_KEY):
        key = env[ENV_PSEUDONYM_KEY]
        _check_key(key)
        return key
    path = pseudonym_key_path(published_path)
    if not path.exists():
        _create_key_file(path)
    try:
        key = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ExportError(f"{path}: cannot read the pseudonymisation key ({exc.strerror}); "
                          f"give the serving account read access, or set "
                          f"{ENV_PSEUDONYM_KEY}") from None
    if len(key) < MIN_KEY_LENGTH:
        raise ExportError(f"{path}: the pseudonymisation key has {len(key)} characters; it "
                          f"must have at least {MIN_KEY_LENGTH}. Restore it from a backup "
                          f"(a new key gives every site new pseudonyms)")
    return key


def _create_key_file(path: Path) -> None:
    """Write a random key to `path` once: written aside, then linked into place, so two
    processes starting together agree on one key and nobody reads half a key."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise ExportError(f"{path.parent}: cannot create the pseudonymisation key file "
                          f"({exc.strerror}); make the folder writable or set "
                          f"{ENV_PSEUDONYM_KEY}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made it first: theirs is the key
    finally:
        tmp.unlink(missing_ok=True)


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


def _prepare(con: duckdb.DuckDBPyConnection, layer: PublishedLayer, key: str | None,
             min_sites: int) -> Coarsening | None:
    """Session objects the level queries use: pseudonyms with the site type and region
    to show, peer groups to leave out, the CSV guard, export_cells."""
    sites = {row["site_code"]: (row["site_type"], row["region"])
             for row in layer.sites().to_dict("records")}
    coarsening = None
    rows, hidden = [], []
    if key:
        coarsening = coarsen_quasi_identifiers(sites, layer.peer_groups(), min_sites)
        rows = [(code, pseudonymise(code, key), coarsening.site_type[code],
                 coarsening.region[code]) for code in sites]
        hidden = [(group,) for group in coarsening.hidden_peer_groups]
    if len({r[1] for r in rows}) < len(rows):
        raise ExportError("two sites share a pseudonym under this key; choose another key")
    _temp_table(con, "site_pseudonyms", ["site_code", "pseudonym", "site_type", "region"],
                rows)
    _temp_table(con, "hidden_peer_groups", ["peer_group"], hidden)
    con.execute(f"create or replace temp macro csv_safe(x) as {safe_cell_sql('x')}")
    con.execute("create or replace temp view export_cells as "
                + (SQL_DIR / "export_cells.sql").read_text(encoding="utf-8"))
    if _has_table(con, "item_answers"):
        con.execute("create or replace temp view export_answers as "
                    + (SQL_DIR / "export_answers.sql").read_text(encoding="utf-8"))
    if _has_table(con, "drivers"):
        con.execute("create or replace temp view export_drivers as "
                    + (SQL_DIR / "export_drivers.sql").read_text(encoding="utf-8"))
    return coarsening


def _has_table(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(con.execute("select count(*) from information_schema.tables "
                            "where table_name = ?", [table]).fetchone()[0])


@dataclass(frozen=True)
class QuestionnaireOrder:
    """Codes that follow the instrument, read from the published layer: attribute groups
    (breakdown, group) -> (code, label), and measure names in the instrument's order."""

    groups: dict[tuple[str, str], tuple[int, str]]
    measure_names: tuple[str, ...]

    @classmethod
    def of(cls, con: duckdb.DuckDBPyConnection) -> QuestionnaireOrder:
        groups = {}
        rows = con.execute("select breakdown, grp, label, position from groups "
                           "order by rowid").fetchall()
        known = value_codes("breakdown", [r[0] for r in rows])
        for breakdown, grp, label, position in rows:
            # attribute x 100 + the option's place in the question; 99: not stated
            place = 99 if grp == NOT_STATED else int(position) + 1
            groups[(breakdown, grp)] = (known[breakdown] * 100 + place, label)
        # The measures table is written in the instrument's order (responses, scales,
        # principles, items); rowid keeps it.
        names = [r[0] for r in con.execute("select name from measures order by rowid")
                 .fetchall()]
        return cls(groups, tuple(dict.fromkeys(names)))

    def coding(self, column: str, values) -> tuple[dict[str, int], dict[int, str]] | None:
        """(value or breakdown\x1fgroup -> code, code -> label) for a column the
        questionnaire orders, or None."""
        if column in ("group_value", "group_label"):
            codes = {f"{b}{GROUP_KEY_SEPARATOR}{g}": code
                     for (b, g), (code, _) in self.groups.items()}
            labels = {code: (g if column == "group_value" else label)
                      for (b, g), (code, label) in self.groups.items()}
            return codes, labels
        if column == "measure_name":
            present = set(values)
            ordered = [n for n in self.measure_names if n in present]
            ordered += sorted(present - set(ordered))
            codes = {name: i for i, name in enumerate(ordered, start=1)}
            return codes, {code: name for name, code in codes.items()}
        return None


def _temp_table(con: duckdb.DuckDBPyConnection, name: str, columns: list[str],
                rows: list[tuple]) -> None:
    """A temporary table of varchar `columns` holding `rows` (small: one row a site)."""
    frame = pd.DataFrame(rows, columns=columns, dtype="object")
    con.register("incoming_rows", frame)
    try:
        con.execute(f"create or replace temp table {name} as select "
                    + ", ".join(f"{c}::varchar as {c}" for c in columns)
                    + " from incoming_rows")
    finally:
        con.unregister("incoming_rows")


def _level_query(level: str, pseudonymised: bool) -> str:
    """SQL selecting one level's columns in a stable order (no user value is formatted in)."""
    spec = LEVEL_SPECS[level]
    columns = [c for c in spec.columns if not (pseudonymised and c == "site_name")]
    return (f"select {', '.join(columns)} from {spec.source} where {spec.where} "
            "order by case level when 'site' then 1 when 'peer' then 2 else 3 end, unit, "
            f"{spec.order}")


def _csv_query(types: dict[str, str]) -> str:
    """The materialised level with every text column passed through the formula guard."""
    select = [f"csv_safe({c}) as {c}" if t == "VARCHAR" else c for c, t in types.items()]
    return f"select {', '.join(select)} from export_level"


def export_aggregates(published_path: Path, out_dir: Path,
                      fmt: str | Sequence[str] = "csv",
                      level: str | Sequence[str] | None = None,
                      pseudonym_key: str | None = None,
                      min_sites: int = 3) -> ExportReport:
    """Write the published aggregates of `level` (default all) in `fmt` and a data package.

    Files are named ``culture_<level>.<format>`` in `out_dir`, with
    ``datapackage.json`` beside them (and ``coarsening.txt`` when pseudonymised: what
    was done to site type, region and peer groups so that each combination shown covers
    `min_sites` sites or more). Everything is written in a hidden folder inside
    `out_dir` first and moved into place only when complete, the data package last,
    so a reader never finds a half-written file.
    """
    formats = _chosen(fmt, AGGREGATE_FORMATS, "format")
    levels = (list(AGGREGATE_LEVELS) if level is None
              else _chosen(level, AGGREGATE_LEVELS + ON_REQUEST_LEVELS, "level"))
    _check_key(pseudonym_key)
    if min_sites < ABSOLUTE_MIN_SITES_PER_COMBINATION:
        raise ExportError(f"min_sites {min_sites} is below the floor of "
                          f"{ABSOLUTE_MIN_SITES_PER_COMBINATION}; use 3 (the default) or more")
    out_dir = Path(out_dir)
    pseudonymised = pseudonym_key is not None
    # The layer answers the questions; the level files are the export's own SQL model
    # (sql/export_cells.sql) over the same checked, read-only file, on its session.
    with closing(open_published(Path(published_path))) as con:
        layer = PublishedLayer.over(con, published_path)
        k = layer.min_group_size
        meta = layer.meta()
        coarsening = _prepare(con, layer, pseudonym_key, min_sites)
        if "answers" in levels and not _has_table(con, "item_answers"):
            raise ExportError(f"{published_path} was published before answer distributions "
                              f"were; publish it again with `culture run`, or leave out "
                              f"--level answers")
        order = QuestionnaireOrder.of(con)
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
                        _write_labelled(frame, path, fmt_name, name, k, observed, order)
                    written.append(ExportedFile(name, fmt_name, out_dir / path.name, rows))
                    resources.append(_resource(name, fmt_name, path, types, observed,
                                               coarsening, order))
                con.execute("drop table export_level")
            codebook = codebook_rows(con)
            codebook.to_csv(staging / CODEBOOK_CSV, index=False, encoding="utf-8")
            resources.append(_codebook_resource(staging / CODEBOOK_CSV))
            package = _package(resources, meta, k, coarsening)
            (staging / CODEBOOK_MD).write_text(codebook_markdown(package, codebook),
                                               encoding="utf-8")
            if coarsening is not None:
                (staging / NOTES_FILE).write_text(_notes_text(coarsening), encoding="utf-8")
            (staging / "datapackage.json").write_text(json.dumps(package, indent=2),
                                                      encoding="utf-8")
            for file in written:
                os.replace(staging / file.path.name, file.path)
            if coarsening is not None:
                os.replace(staging / NOTES_FILE, out_dir / NOTES_FILE)
            for name in (CODEBOOK_CSV, CODEBOOK_MD, "datapackage.json"):
                os.replace(staging / name, out_dir / name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return ExportReport(out_dir, tuple(written), out_dir / "datapackage.json", k, pseudonymised,
                        coarsening)


def export_zip(published_path: Path, fmt: str | Sequence[str] = "csv",
               level: str | Sequence[str] | None = None,
               pseudonym_key: str | None = None, min_sites: int = 3) -> bytes:
    """The same export as `export_aggregates`, as the bytes of a zip file (for a download)."""
    with tempfile.TemporaryDirectory(prefix="culture-export-") as tmp:
        report = export_aggregates(published_path, Path(tmp), fmt, level, pseudonym_key,
                                   min_sites)
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


def column_coding(column: str, values, order: QuestionnaireOrder | None
                  ) -> tuple[dict[str, int], dict[int, str]]:
    """(value -> code, code -> label) of a coded column: in the questionnaire's order
    where it has one (attribute groups keyed by breakdown and group), else `value_codes`."""
    coded = order.coding(column, values) if order is not None else None
    if coded is not None:
        return coded
    codes = value_codes(column, values)
    return codes, value_labels_of(column, codes)


def _write_labelled(frame: pl.DataFrame, path: Path, fmt: str, level: str, k: int,
                    observed: dict[str, list], order: QuestionnaireOrder | None = None) -> None:
    """An SPSS or Stata file with variable labels, and value labels for coded columns."""
    # Imported here, not at the top: the dashboard imports this module for its format
    # and level lists, and needs neither.
    import polars as pl
    import pyreadstat

    value_labels: dict[str, dict[int, str]] = {"suppressed": dict(SUPPRESSED_LABELS)}
    recoded = []
    for column, values in observed.items():
        codes, labels = column_coding(column, values, order)
        source = pl.col(column)
        if order is not None and column in ("group_value", "group_label"):
            # A group's code is its attribute's and place's: "not_stated" of age band
            # is not "not_stated" of gender.
            source = pl.col("breakdown") + GROUP_KEY_SEPARATOR + pl.col("group_value")
        recoded.append(source.replace_strict(codes, default=None, return_dtype=pl.Int32)
                       .alias(column))
        value_labels[column] = labels
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
              observed: dict[str, list], coarsening: Coarsening | None = None,
              order: QuestionnaireOrder | None = None) -> dict:
    """The data-package resource describing one written file, with its sha256."""
    fields = []
    for column, duck_type in types.items():
        field = {"name": column, "type": _FIELD_TYPES.get(duck_type, "any"),
                 "title": COLUMN_LABELS[column]}
        if column in observed:
            codes, labels = column_coding(column, observed[column], order)
            if fmt in ("sav", "dta"):
                field["type"] = "integer"
                field["description"] = "; ".join(
                    f"{code} = {label}" for code, label in sorted(labels.items()))
                field["constraints"] = {"enum": sorted(labels)}
            elif column in CODED_COLUMNS:
                field["constraints"] = {"enum": list(codes)}
        elif column == "suppressed":
            field["description"] = "; ".join(f"{c} = {t}" for c, t in SUPPRESSED_LABELS.items())
            field["constraints"] = {"enum": [0, 1]}
        if column in COLUMN_NOTES:
            field["description"] = "; ".join(filter(None, [field.get("description"),
                                                            COLUMN_NOTES[column]]))
        note = _column_note(column, coarsening)
        if note:
            field["description"] = "; ".join(filter(None, [field.get("description"), note]))
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


def _column_note(column: str, coarsening: Coarsening | None) -> str:
    """What a pseudonymised export did to a column, for its field description."""
    if coarsening is None:
        return ""
    prefix = {"site_type": "site_type:", "region": "region:", "level": "peer-group rows",
              "unit": "peer-group rows"} | dict.fromkeys(_GAP, "targets:")
    prefix = prefix.get(column)
    notes = [n for n in coarsening.notes if prefix and n.startswith(prefix)]
    return "Pseudonymised export: " + "; ".join(notes) if notes else ""


def _notes_text(coarsening: Coarsening) -> str:
    """coarsening.txt: what was coarsened, in words a researcher reads first."""
    lines = [f"Sites are pseudonymised. Site names are left out, and site type and region "
             f"are shown only as far as every combination of them shown covers at least "
             f"{coarsening.min_sites} sites:", ""]
    lines += [f"- {note}" for note in coarsening.notes]
    return "\n".join(lines) + "\n"


def _package(resources: list[dict], meta: dict[str, str], k: int,
             coarsening: Coarsening | None) -> dict:
    """The Frictionless data package descriptor for an export."""
    sites = ("Site codes are pseudonyms (keyed HMAC-SHA256); site names are left out. "
             + " ".join(f"{note}." for note in coarsening.notes)
             if coarsening is not None else "Sites are named by their codes and names.")
    return {
        "name": "culture-of-support-aggregates",
        "title": "Culture of support for doctors: published survey aggregates",
        "description": (
            f"Aggregates published on {meta.get('published_on', 'unknown date')} from the "
            f"support-culture survey ({meta.get('instrument', 'instrument unknown')}). No "
            f"respondent-level rows. Cells with fewer than {k} respondents, and cells from "
            f"which such a cell could be worked out by subtraction, are withheld: their "
            f"statistics are blank and suppressed = 1. {sites} Principle targets: "
            f"{meta.get('target_rule', 'peer_q3')}. Item and scale means are in the scored "
            f"direction (reverse-keyed items reversed, so higher is always more "
            f"supportive); codebook.csv says which items are reverse-keyed, and the "
            f"answers level counts every option as answered. codebook.md explains it all."),
        "created": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "keywords": ["psychological safety", "help-seeking stigma", "doctors", "survey"],
        "licenses": [DATA_LICENSE],
        "contributors": [{"title": "Culture of support contributors", "role": "author"}],
        "citation": CITATION.format(
            instrument=meta.get("instrument", "instrument unknown"),
            published_on=meta.get("published_on", "unknown date")),
        "instrumentLicense": INSTRUMENT_LICENSE,
        "resources": resources,
    }



def codebook_rows(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """codebook.csv: every measure with its kind, scale, principles, item text,
    reverse-keying and answer options (codes as offered), from the published layer."""
    measures = con.execute(
        "select measure_kind, measure, name, coalesce(scale, '') as scale, principles, "
        "description from measures order by rowid").df() if _has_column(
            con, "measures", "scale") else con.execute(
        "select measure_kind, measure, name, '' as scale, principles, description "
        "from measures order by rowid").df()
    names = dict(zip(measures.loc[measures["measure_kind"] == "scale", "measure"],
                     measures.loc[measures["measure_kind"] == "scale", "name"]))
    options: dict[str, list] = {}
    if _has_table(con, "item_answers"):
        for measure, position, code, label, scored, favourable in con.execute(
                "select distinct measure, position, option_code, option_label, scored_code, "
                "favourable from item_answers order by measure, position").fetchall():
            options.setdefault(measure, []).append((position, code, label, scored, favourable))
    rows = []
    for m in measures.to_dict("records"):
        offered = [o for o in options.get(m["measure"], []) if o[0] != 99]
        missing = [o for o in options.get(m["measure"], []) if o[0] == 99]
        is_item = m["measure_kind"] == "item"
        reverse = any(code != scored for _, code, _, scored, _ in offered)
        rows.append({
            "measure_kind": m["measure_kind"], "measure": m["measure"], "name": m["name"],
            "scale": m["scale"] if is_item else "",
            "scale_name": names.get(m["scale"], "") if is_item else "",
            "principles": m["principles"] or "",
            "reverse_keyed": int(reverse) if is_item else None,
            "answer_options": "; ".join(f"{code} = {label}" for _, code, label, _, _ in offered),
            "favourable_options": ", ".join(str(code) for _, code, _, _, fav in offered if fav),
            "no_answer_option": (f"{missing[0][1]} = Don't know / prefer not to say (stored "
                                 f"as missing)" if missing and missing[0][1] is not None
                                 else ""),
            "description": m["description"] or ""})
    return pd.DataFrame(rows, columns=list(CODEBOOK_COLUMNS)).astype(
        {"reverse_keyed": "Int64"})


def _has_column(con: duckdb.DuckDBPyConnection, table: str, column: str) -> bool:
    return bool(con.execute("select count(*) from information_schema.columns "
                            "where table_name = ? and column_name = ?",
                            [table, column]).fetchone()[0])


def _codebook_resource(path: Path) -> dict:
    """The data-package resource of codebook.csv (a table Frictionless checks)."""
    fields = [{"name": c, "type": "integer" if c == "reverse_keyed" else "string",
               "title": title} for c, title in CODEBOOK_COLUMNS.items()]
    fields[list(CODEBOOK_COLUMNS).index("reverse_keyed")]["constraints"] = {"enum": [0, 1]}
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"name": "codebook", "path": path.name, "title": "Codebook: every measure, its "
            "items, keying and answer options", "format": "csv", "mediatype": "text/csv",
            "type": "table", "encoding": "utf-8", "bytes": path.stat().st_size,
            "hash": f"sha256:{digest}", "schema": {"fields": fields, "missingValues": [""]}}


def _markdown_cell(text: object) -> str:
    return "" if text is None or text != text else str(text).replace("|", "\\|").replace(
        "\n", " ")


def codebook_markdown(package: dict, codebook: pd.DataFrame) -> str:
    """codebook.md: the data package for a person, readable without the software."""
    lines = [f"# {package['title']}", "", package["description"], "",
             "## Licence and citation", "",
             f"- Data (these aggregates): {package['licenses'][0]['title']} "
             f"({package['licenses'][0]['name']}, {package['licenses'][0]['path']}).",
             f"- Instrument: {package['instrumentLicense']}",
             f"- Cite as: {package['citation']}", "",
             "## Reading the numbers", "",
             "Item and scale means are in the **scored direction**: a reverse-keyed item "
             "(reverse_keyed = 1 below) has its answers reversed (6 - answer) before the "
             "mean, % favourable and % unfavourable are worked out, so a higher mean is "
             "always the more supportive answer. The mean of the answers as given is "
             "6 - mean. The answers level (culture_answers.*) counts every option as "
             "given, with the scored code beside it.", "",
             "## Columns", "", "| Column | Meaning |", "|---|---|"]
    for column, label in COLUMN_LABELS.items():
        note = COLUMN_NOTES.get(column)
        lines.append(f"| {column} | {_markdown_cell(label)}"
                     + (f". {_markdown_cell(note)}" if note else "") + " |")
    lines += ["", "## Files", ""]
    lines += [f"- `{r['path']}`: {r['title']}" for r in package["resources"]]
    for kind, title in (("scale", "Scales"), ("principle", "Principles")):
        rows = codebook[codebook["measure_kind"] == kind]
        lines += ["", f"## {title}", "", "| Id | Name | Principles | Meaning |",
                  "|---|---|---|---|"]
        lines += [f"| {r.measure} | {_markdown_cell(r.name)} | {r.principles} | "
                  f"{_markdown_cell(r.description)} |" for r in rows.itertuples()]
    items = codebook[codebook["measure_kind"] == "item"]
    lines += ["", "## Items", "", "| Id | Item text | Scale | Principles | Reverse-keyed | "
              "Answer options (code = label) | Favourable | Don't know |",
              "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r.measure} | {_markdown_cell(r.name)} | {_markdown_cell(r.scale_name)} | "
              f"{r.principles} | {'yes' if r.reverse_keyed == 1 else 'no'} | "
              f"{_markdown_cell(r.answer_options)} | {r.favourable_options} | "
              f"{_markdown_cell(r.no_answer_option)} |" for r in items.itertuples()]
    return "\n".join(lines) + "\n"
