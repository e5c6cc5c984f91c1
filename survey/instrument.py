"""The questionnaire as data: load one YAML instrument file and validate it.

An instrument file says what is asked (items, their wording, scale, keying and the
guide's principle each serves), how answers are coded (response scales, with the
"don't know / prefer not to say" option coded as missing), how scales are scored,
which optional respondent attributes are collected, and which scales measure each of
the six principles. `load_instrument` returns a frozen `Instrument`; any problem is an
`InstrumentError` whose message names the file, the item and the field.

An item may be asked of some respondents only (`asked_if`: an attribute and its codes;
the exports route it), and a later version links its items to the version it revises
(`previous_version`, `same_as`, `replaces`; `survey.instrument_versions` compares them).
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from survey.errors import InstrumentError

#: Identifiers become DuckDB column names, so they are kept to a safe alphabet.
IDENTIFIER = r"^[a-z][a-z0-9_]{0,39}$"

#: Columns every response row has; item and attribute ids may not reuse them.
RESERVED_COLUMNS = frozenset(
    {"response_id", "site", "site_code", "wave", "instrument_version", "batch_id",
     "source_row", "duration_seconds", "submitted_on"}
)

#: The guide's six principles; an instrument must measure each of them.
PRINCIPLE_IDS = ("P1", "P2", "P3", "P4", "P5", "P6")

#: Core constructs need full scales: this many items, with both keyings present.
CORE_SCALE_MIN_ITEMS = 6
#: Largest answer code a response scale may score: answers are stored as small integers,
#: and the straight-lining check keeps one bit per code in a 64-bit mask.
MAX_SCORED_CODE = 60
SHORT_SCALE_MIN_ITEMS = 3


def normalise_label(text: str) -> str:
    """The form in which answer labels are compared: case, spacing and quote style ignored."""
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u00a0", " ")
    return re.sub(r"\s+", " ", text).strip().casefold()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ResponseOption(_Strict):
    """One answer: the code stored and the label shown (plus labels other tools use)."""

    code: int = Field(ge=0, le=99)
    label: str = Field(min_length=1)
    aliases: tuple[str, ...] = ()


class ResponseScale(_Strict):
    """Answer options scored in order, and options that are recorded as missing."""

    id: str = Field(pattern=IDENTIFIER)
    options: tuple[ResponseOption, ...] = Field(min_length=2)
    missing: tuple[ResponseOption, ...] = ()
    #: Codes counted as "favourable" once reverse-keying is applied.
    favourable: tuple[int, ...] = ()

    @property
    def codes(self) -> tuple[int, ...]:
        return tuple(o.code for o in self.options)

    @property
    def missing_codes(self) -> tuple[int, ...]:
        return tuple(o.code for o in self.missing)

    def label_map(self) -> dict[str, int | None]:
        """Normalised label or alias -> stored code (None for the missing options)."""
        mapping: dict[str, int | None] = {}
        for option in self.options:
            for text in (option.label, *option.aliases):
                mapping[normalise_label(text)] = option.code
        for option in self.missing:
            for text in (option.label, *option.aliases):
                mapping[normalise_label(text)] = None
        return mapping


class Reference(_Strict):
    """A published source for a construct (cited, never copied)."""

    id: str = Field(pattern=r"^[a-z0-9_]+$")
    citation: str = Field(min_length=5)


class Scale(_Strict):
    """A set of items scored together as one construct."""

    id: str = Field(pattern=IDENTIFIER)
    name: str = Field(min_length=1)
    #: What a high score means, in plain words (scores are oriented so higher is better).
    high_score_means: str = Field(min_length=1)
    description: str = Field(min_length=1)
    core: bool = False
    #: Least number of answered items for the scale score to be computed.
    min_items: int = Field(ge=1)
    references: tuple[str, ...] = ()


class AskedIf(_Strict):
    """Routing: the item is asked only of respondents whose attribute answer is one of `in`.

    Everyone else skips it, and their answer is missing by design, not by choice.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    attribute: str = Field(pattern=IDENTIFIER)
    codes: tuple[str, ...] = Field(min_length=1, alias="in")

    def describe(self, instrument: "Instrument") -> str:
        """The condition in words, e.g. 'asked only of: Consultant, SAS doctor (...)'."""
        labels = {o.code: o.label for a in instrument.attributes if a.id == self.attribute
                  for o in a.options}
        return "asked only of: " + ", ".join(labels.get(c, c) for c in self.codes)


class Item(_Strict):
    """One question: a statement answered on a response scale."""

    id: str = Field(pattern=IDENTIFIER)
    text: str = Field(min_length=8, max_length=200)
    kind: Literal["scale", "outcome"] = "scale"
    scale: str | None = None
    #: True when agreeing is the unfavourable answer; scoring reverses these items.
    reverse: bool
    principles: tuple[str, ...] = ()
    response_scale: str = "agree5"
    asked_if: AskedIf | None = None
    #: The id of the item in the `previous_version` with the same wording, keying and
    #: answers: answers to the two can be compared across waves item by item.
    same_as: str | None = None
    #: Ids of previous-version items this one takes over from with new wording (not comparable).
    replaces: tuple[str, ...] = ()


class Change(_Strict):
    """One version's entry in the instrument's changelog."""

    version: str = Field(pattern=r"^\d+\.\d+(\.\d+)?$")
    changes: tuple[str, ...] = Field(min_length=1)


class AttributeOption(_Strict):
    code: str = Field(pattern=IDENTIFIER)
    label: str = Field(min_length=1)
    aliases: tuple[str, ...] = ()


class Attribute(_Strict):
    """An optional, coarse respondent characteristic used for equity comparisons."""

    id: str = Field(pattern=IDENTIFIER)
    question: str = Field(min_length=5)
    options: tuple[AttributeOption, ...] = Field(min_length=2)

    def label_map(self) -> dict[str, str]:
        """Normalised code, label or alias -> stored code."""
        mapping: dict[str, str] = {}
        for option in self.options:
            for text in (option.code, option.label, *option.aliases):
                mapping[normalise_label(text)] = option.code
        return mapping


class Principle(_Strict):
    """One of the guide's six principles and the scales that measure it."""

    id: Literal["P1", "P2", "P3", "P4", "P5", "P6"]
    name: str = Field(min_length=1)
    summary: str = Field(min_length=1)
    scales: tuple[str, ...] = Field(min_length=1)


class Scoring(_Strict):
    """Rules that turn answers into scores and decide which responses are usable."""

    #: A response with fewer answered items than this (across all scale items) is rejected.
    min_answered_items: int = Field(ge=1)
    #: NHS Staff Survey convention for 0-10 scores of a 5-point item.
    zero_to_ten: tuple[float, ...] = (0.0, 2.5, 5.0, 7.5, 10.0)


class Instrument(_Strict):
    """A validated instrument version. Build it with `load_instrument`."""

    instrument: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    version: str = Field(pattern=r"^\d+\.\d+(\.\d+)?$")
    title: str
    language: str = "en-GB"
    introduction: str
    response_scales: tuple[ResponseScale, ...] = Field(min_length=1)
    scales: tuple[Scale, ...] = Field(min_length=1)
    items: tuple[Item, ...] = Field(min_length=1)
    attributes: tuple[Attribute, ...] = ()
    principles: tuple[Principle, ...]
    scoring: Scoring
    references: tuple[Reference, ...] = ()
    #: The version this one was revised from; items' `same_as` name ids in that version.
    previous_version: str | None = Field(default=None, pattern=r"^\d+\.\d+(\.\d+)?$")
    changelog: tuple[Change, ...] = ()

    @property
    def key(self) -> str:
        """The identifier stored with each response, e.g. 'support-culture@1.0'."""
        return f"{self.instrument}@{self.version}"

    @cached_property
    def item_ids(self) -> tuple[str, ...]:
        return tuple(item.id for item in self.items)

    @cached_property
    def scale_item_ids(self) -> tuple[str, ...]:
        return tuple(item.id for item in self.items if item.kind == "scale")

    def items_of(self, scale_id: str) -> tuple[Item, ...]:
        return tuple(item for item in self.items if item.scale == scale_id)

    def response_scale(self, scale_id: str) -> ResponseScale:
        return {rs.id: rs for rs in self.response_scales}[scale_id]

    def scale(self, scale_id: str) -> Scale:
        return {s.id: s for s in self.scales}[scale_id]


def _describe_location(data: dict, loc: tuple) -> str:
    """Turn a pydantic location like ('items', 3, 'reverse') into "item 'ps04', field 'reverse'"."""
    if not loc:
        return "top level"
    section, *rest = loc
    singular = {"items": "item", "scales": "scale", "attributes": "attribute",
                "principles": "principle", "response_scales": "response scale",
                "references": "reference"}
    if section in singular and rest and isinstance(rest[0], int):
        index = rest[0]
        entries = data.get(section) or []
        entry = entries[index] if index < len(entries) else None
        name = entry.get("id") if isinstance(entry, dict) else None
        where = f"{singular[section]} '{name}'" if name else f"{singular[section]} #{index + 1}"
        field = ".".join(str(part) for part in rest[1:])
        return f"{where}, field '{field}'" if field else where
    return "field '" + ".".join(str(part) for part in loc) + "'"


def _cross_reference_problems(inst: Instrument) -> list[str]:
    """Problems a schema alone cannot see: dangling references, duplicates, thin scales."""
    problems: list[str] = []
    scale_ids = {s.id for s in inst.scales}
    rs_ids = {rs.id for rs in inst.response_scales}
    ref_ids = {r.id for r in inst.references}

    def duplicates(kind: str, ids: list[str]) -> None:
        seen: set[str] = set()
        for ident in ids:
            if ident in seen:
                problems.append(f"{kind} '{ident}': the id is used more than once")
            seen.add(ident)

    duplicates("item", [i.id for i in inst.items])
    duplicates("scale", [s.id for s in inst.scales])
    duplicates("attribute", [a.id for a in inst.attributes])
    duplicates("principle", [p.id for p in inst.principles])
    duplicates("response scale", list(rs_ids) if len(rs_ids) == len(inst.response_scales)
               else [rs.id for rs in inst.response_scales])

    columns = [i.id for i in inst.items] + [a.id for a in inst.attributes]
    for ident in columns:
        if ident in RESERVED_COLUMNS:
            problems.append(f"'{ident}': the id is reserved for a response column "
                            f"({', '.join(sorted(RESERVED_COLUMNS))})")
    clash = {i.id for i in inst.items} & {a.id for a in inst.attributes}
    for ident in sorted(clash):
        problems.append(f"'{ident}': used both as an item id and an attribute id")

    for rs in inst.response_scales:
        codes = [o.code for o in rs.options + rs.missing]
        if len(set(codes)) != len(codes):
            problems.append(f"response scale '{rs.id}', field 'options': codes repeat ({codes})")
        labels = [normalise_label(t) for o in rs.options + rs.missing for t in (o.label, *o.aliases)]
        if len(set(labels)) != len(labels):
            problems.append(f"response scale '{rs.id}', field 'options': labels repeat")
        outside = [c for c in rs.codes if not 0 <= c <= MAX_SCORED_CODE]
        if outside:
            problems.append(f"response scale '{rs.id}', field 'options': scored codes must be "
                            f"whole numbers from 0 to {MAX_SCORED_CODE} (got {outside})")
        for code in rs.favourable:
            if code not in rs.codes:
                problems.append(f"response scale '{rs.id}', field 'favourable': {code} is not "
                                f"one of the scored codes {list(rs.codes)}")

    principle_ids = {p.id for p in inst.principles}
    for item in inst.items:
        where = f"item '{item.id}'"
        if item.response_scale not in rs_ids:
            problems.append(f"{where}, field 'response_scale': '{item.response_scale}' is not "
                            f"defined; defined: {sorted(rs_ids)}")
        if item.kind == "scale":
            if item.scale is None:
                problems.append(f"{where}, field 'scale': a scale item needs a scale; "
                                f"defined: {sorted(scale_ids)}")
            elif item.scale not in scale_ids:
                problems.append(f"{where}, field 'scale': '{item.scale}' is not defined; "
                                f"defined: {sorted(scale_ids)}")
        elif item.scale is not None:
            problems.append(f"{where}, field 'scale': outcome items are not part of a scale")
        if item.asked_if is not None:
            attribute = {a.id: a for a in inst.attributes}.get(item.asked_if.attribute)
            if attribute is None:
                problems.append(f"{where}, field 'asked_if': '{item.asked_if.attribute}' is not "
                                f"an attribute; defined: {sorted(a.id for a in inst.attributes)}")
            else:
                known = [o.code for o in attribute.options]
                for code in item.asked_if.codes:
                    if code not in known:
                        problems.append(f"{where}, field 'asked_if': '{code}' is not an option "
                                        f"of '{attribute.id}'; options: {known}")
        if (item.same_as or item.replaces) and inst.previous_version is None:
            problems.append(f"{where}, field 'same_as' / 'replaces': name the version they refer "
                            f"to in the top-level field 'previous_version'")
        for principle in item.principles:
            if principle not in principle_ids:
                problems.append(f"{where}, field 'principles': '{principle}' is not one of "
                                f"{sorted(principle_ids)}")

    for scale in inst.scales:
        where = f"scale '{scale.id}'"
        members = inst.items_of(scale.id)
        needed = CORE_SCALE_MIN_ITEMS if scale.core else SHORT_SCALE_MIN_ITEMS
        if len(members) < needed:
            kind = "a core scale" if scale.core else "a scale"
            problems.append(f"{where}: {kind} needs at least {needed} items, has {len(members)}")
        if scale.core and members and len({i.reverse for i in members}) < 2:
            problems.append(f"{where}: a core scale needs both positively and negatively "
                            f"worded items (reverse: true and false)")
        if scale.min_items > len(members):
            problems.append(f"{where}, field 'min_items': {scale.min_items} is more than the "
                            f"{len(members)} items in the scale")
        if len({inst.response_scale(i.response_scale).codes for i in members
                if i.response_scale in rs_ids}) > 1:
            problems.append(f"{where}: all items of a scale must share one response scale")
        for ref in scale.references:
            if ref not in ref_ids:
                problems.append(f"{where}, field 'references': '{ref}' is not in the "
                                f"references list")

    for principle in inst.principles:
        for scale_id in principle.scales:
            if scale_id not in scale_ids:
                problems.append(f"principle '{principle.id}', field 'scales': '{scale_id}' is "
                                f"not defined; defined: {sorted(scale_ids)}")
    missing = [p for p in PRINCIPLE_IDS if p not in principle_ids]
    if missing:
        problems.append(f"field 'principles': the guide's principles {missing} are not measured")

    for attribute in inst.attributes:
        if "prefer_not_to_say" not in {o.code for o in attribute.options}:
            problems.append(f"attribute '{attribute.id}', field 'options': every attribute "
                            f"needs a 'prefer_not_to_say' option")
    if inst.scoring.min_answered_items > len(inst.scale_item_ids):
        problems.append(f"field 'scoring.min_answered_items': {inst.scoring.min_answered_items} "
                        f"is more than the {len(inst.scale_item_ids)} scale items")
    return problems


def parse_instrument(data: object, source: str) -> Instrument:
    """Validate already-parsed YAML; `source` names the file in error messages."""
    if not isinstance(data, dict):
        raise InstrumentError(f"{source}: the file should hold a mapping of fields "
                              f"(instrument, version, items, ...), not {type(data).__name__}")
    try:
        inst = Instrument.model_validate(data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            where = _describe_location(data, tuple(error["loc"]))
            lines.append(f"{source}: {where}: {error['msg']}")
        raise InstrumentError("\n".join(lines)) from None
    problems = _cross_reference_problems(inst)
    if problems:
        raise InstrumentError("\n".join(f"{source}: {p}" for p in problems))
    return inst


def load_instrument(path: Path | str) -> Instrument:
    """Read and validate one instrument file; raises `InstrumentError` naming what is wrong."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InstrumentError(f"{path}: no such instrument file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InstrumentError(f"{path}: cannot be read ({exc}); save it as UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InstrumentError(f"{path}: not valid YAML{at}: "
                              f"{getattr(exc, 'problem', exc)}") from None
    return parse_instrument(data, str(path))
