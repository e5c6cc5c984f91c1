"""The instrument in other tools' formats: a REDCap data dictionary, an XLSForm, a CSV template.

A survey lead who already runs REDCap, KoboToolbox / ODK or a spreadsheet can build
the questionnaire from these files instead of retyping it, and the answers come back
in a shape `pipeline.ingest.tools` (and ingest) accept: the field names are our item and
attribute ids and the stored choice codes are the instrument's own codes. All wording
comes from the instrument file; nothing here writes question text.

What a respondent sees follows the web form: sites are offered by name (the code is
stored), the survey year is set by the project as a hidden value, never typed, section
headings are neutral ("Questions, part 2 of 9"), never a construct's name, and an item
asked only of some groups (`asked_if`) carries the tool's own branching.

The printable HTML / PDF version is in `survey.printable`.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path
from typing import Sequence

from survey.errors import CultureError
from survey.instrument import Instrument, Item
from survey.printable import write_html, write_pdf
from survey.questionnaire import (ABOUT_YOU_NOTE, ABOUT_YOU_SECTION, ROUTING_NOTE,
                                  ROUTING_SECTION, closing_attributes, item_choices,
                                  routing_attributes, sections)

#: REDCap's data dictionary columns, exactly and in this order (its upload checks both).
REDCAP_COLUMNS = (
    "Variable / Field Name", "Form Name", "Section Header", "Field Type", "Field Label",
    "Choices, Calculations, OR Slider Labels", "Field Note",
    "Text Validation Type OR Show Slider Number", "Text Validation Min",
    "Text Validation Max", "Identifier?", "Branching Logic (Show field ONLY if...)",
    "Required Field?", "Custom Alignment", "Question Number (surveys only)",
    "Matrix Group Name", "Matrix Ranking?", "Field Annotation",
)

#: Columns of a response file that are not questions, in the order the template uses.
FIXED_COLUMNS = ("response_id", "site", "wave", "submitted_on", "duration_seconds")

#: Earliest and latest survey year a form accepts (a typo guard, not a policy).
WAVE_MIN, WAVE_MAX = 2000, 2100

EXPORT_FORMATS = ("redcap", "xlsform", "html", "pdf", "csv")

#: Sites offered in a form: a code alone (shown as itself) or (code, name), name shown.
Sites = Sequence["str | tuple[str, str]"]


def site_choices(sites: Sites) -> list[tuple[str, str]]:
    """(code, label) for each site: the name where one is known, else the code."""
    return [(s, s) if isinstance(s, str) else (s[0], s[1] or s[0]) for s in sites]


def survey_year(wave: int | None) -> int:
    """The year a form records: the one given, else this calendar year."""
    year = date.today().year if wave is None else wave
    if not WAVE_MIN <= year <= WAVE_MAX:
        raise CultureError(f"--wave {year}: give a survey year from {WAVE_MIN} to {WAVE_MAX}")
    return year


def redcap_branching(item: Item) -> str:
    """REDCap's "show the field only if" for an item asked of some groups; '' for everyone."""
    if item.asked_if is None:
        return ""
    return " or ".join(f"[{item.asked_if.attribute}] = '{code}'" for code in item.asked_if.codes)


def xlsform_relevant(item: Item) -> str:
    """XLSForm's `relevant` for an item asked of some groups; '' for everyone."""
    if item.asked_if is None:
        return ""
    return " or ".join(f"${{{item.asked_if.attribute}}} = '{code}'"
                       for code in item.asked_if.codes)


def form_name(instrument: Instrument) -> str:
    """The REDCap form / XLSForm id: the instrument id in REDCap's alphabet ('support_culture')."""
    return instrument.instrument.replace("-", "_")


def parse_site_codes(text: str | None) -> tuple[str, ...]:
    """Site codes from 'A,B, RX1' (upper-cased, order kept); empty means 'type the site'."""
    if not text:
        return ()
    codes = tuple(dict.fromkeys(c.strip().upper() for c in text.split(",") if c.strip()))
    for code in codes:
        # REDCap and ODK both store choice codes as bare tokens; a comma or space would
        # break REDCap's "code, label | ..." syntax.
        if not code.replace("_", "").replace("-", "").isalnum():
            raise CultureError(f"--sites: '{code}' is not a usable site code; use letters, "
                               f"digits, '-' or '_' separated by commas, e.g. --sites A,B,RX1")
    return codes


def _choices_text(pairs: list[tuple[object, str]]) -> str:
    """REDCap's choice syntax: '1, Strongly disagree | 2, Disagree'."""
    for _, label in pairs:
        if "|" in label:
            raise CultureError(f"label '{label}' contains '|', which REDCap uses to separate "
                               f"choices; change the label in the instrument file")
    return " | ".join(f"{code}, {label}" for code, label in pairs)


def redcap_rows(instrument: Instrument, site_codes: Sites = (),
                wave: int | None = None) -> list[dict[str, str]]:
    """The data dictionary as rows keyed by `REDCAP_COLUMNS`; `wave` is the survey year
    the project sets (default: this year)."""
    form = form_name(instrument)

    def row(name: str, field_type: str, label: str, **cells: str) -> dict[str, str]:
        base = dict.fromkeys(REDCAP_COLUMNS, "")
        base.update({"Variable / Field Name": name, "Form Name": form,
                     "Field Type": field_type, "Field Label": label})
        for key, value in cells.items():
            base[{"header": "Section Header", "choices": "Choices, Calculations, OR Slider Labels",
                  "note": "Field Note", "validation": "Text Validation Type OR Show Slider Number",
                  "vmin": "Text Validation Min", "vmax": "Text Validation Max",
                  "required": "Required Field?", "matrix": "Matrix Group Name",
                  "annotation": "Field Annotation", "align": "Custom Alignment",
                  "branching": "Branching Logic (Show field ONLY if...)"}[key]] = value
        return base

    # REDCap's first field is the record id; it is a counter, never a person's identifier.
    rows = [row("record_id", "text", "Response ID", annotation="@HIDDEN-SURVEY"),
            row("intro", "descriptive", instrument.introduction, header=instrument.title)]
    if site_codes:
        # Names shown, codes stored: a respondent knows their trust's name, not its code.
        # The label stays "Site": REDCap's label export names the column by it.
        rows.append(row("site", "dropdown", "Site", choices=_choices_text(
            site_choices(site_codes)), note="The organisation you work for", required="y"))
    else:
        rows.append(row("site", "text", "Site", note="The site code you were given",
                        required="y"))
    # Set by the project, never typed: @DEFAULT fills it in, @HIDDEN keeps it off the page.
    rows.append(row("wave", "text", "Survey year", validation="integer",
                    vmin=str(WAVE_MIN), vmax=str(WAVE_MAX),
                    annotation=f"@DEFAULT='{survey_year(wave)}' @HIDDEN @READONLY"))

    def attribute_rows(attributes, header: str, note: str = "") -> None:
        for index, attribute in enumerate(attributes):
            rows.append(row(attribute.id, "dropdown", attribute.question,
                            header=header if index == 0 else "",
                            choices=_choices_text([(o.code, o.label) for o in attribute.options]),
                            note=note or "Optional"))

    # An attribute that routes items is asked before them, so the branching can apply.
    attribute_rows(routing_attributes(instrument), ROUTING_SECTION, ROUTING_NOTE)
    for section_id, heading, items in sections(instrument):
        first = True
        for item in items:
            # A matrix needs identical choices on consecutive fields: true within a scale
            # (the instrument checks it), not for the mixed outcome section.
            matrix = section_id if section_id != "outcomes" else ""
            rows.append(row(item.id, "radio", item.text, header=heading if first else "",
                            choices=_choices_text(item_choices(instrument, item)),
                            matrix=matrix, align="" if matrix else "RH",
                            branching=redcap_branching(item)))
            first = False
    attribute_rows(closing_attributes(instrument), ABOUT_YOU_SECTION)
    return rows


def redcap_dictionary_csv(instrument: Instrument, site_codes: Sites = (),
                          wave: int | None = None) -> str:
    """The REDCap data dictionary as CSV text (upload it under Project Setup > Data Dictionary)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=REDCAP_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(redcap_rows(instrument, site_codes, wave))
    return buffer.getvalue()


def xlsform_sheets(instrument: Instrument, site_codes: Sites = (), wave: int | None = None
                   ) -> dict[str, list[list[str]]]:
    """The XLSForm as {sheet: rows, header first}: `survey`, `choices` and `settings`;
    `wave` is the survey year the project sets (default: this year)."""
    survey = [["type", "name", "label", "hint", "required", "constraint",
               "constraint_message", "appearance", "relevant", "calculation"]]
    choices = [["list_name", "name", "label"]]

    def question(kind: str, name: str, label: str, hint: str = "", required: str = "",
                 constraint: str = "", message: str = "", appearance: str = "",
                 relevant: str = "", calculation: str = "") -> None:
        survey.append([kind, name, label, hint, required, constraint, message, appearance,
                       relevant, calculation])

    # ODK's `today` records the date only: the day, never the time, is what we keep.
    question("today", "submitted_on", "")
    question("note", "intro", instrument.introduction)
    if site_codes:
        # Names shown, codes stored: a respondent knows their trust's name, not its code.
        question("select_one sites", "site", "Site", hint="The organisation you work for",
                 required="yes")
        choices += [["sites", code, label] for code, label in site_choices(site_codes)]
    else:
        question("text", "site", "Site", hint="The site code you were given", required="yes")
    # Set by the project, never typed: a calculate field is stored but not shown.
    question("calculate", "wave", "", calculation=str(survey_year(wave)))

    def attribute_group(name: str, attributes, heading: str, note: str) -> None:
        if not attributes:
            return
        question("begin_group", name, heading, hint=note, appearance="field-list")
        for attribute in attributes:
            question(f"select_one {attribute.id}", attribute.id, attribute.question,
                     hint="Optional")
        question("end_group", name, "")

    # An attribute that routes items is asked before them, so `relevant` can apply.
    attribute_group("about_role", routing_attributes(instrument), ROUTING_SECTION, ROUTING_NOTE)
    for section_id, heading, items in sections(instrument):
        question("begin_group", section_id, heading, appearance="field-list")
        for item in items:
            question(f"select_one {item.response_scale}", item.id, item.text,
                     relevant=xlsform_relevant(item))
        question("end_group", section_id, "")
    attribute_group("about_you", closing_attributes(instrument), ABOUT_YOU_SECTION,
                    ABOUT_YOU_NOTE)

    used_scales = dict.fromkeys(item.response_scale for item in instrument.items)
    for scale_id in used_scales:
        rs = instrument.response_scale(scale_id)
        choices += [[scale_id, str(o.code), o.label] for o in (*rs.options, *rs.missing)]
    for attribute in instrument.attributes:
        choices += [[attribute.id, o.code, o.label] for o in attribute.options]
    settings = [["form_title", "form_id", "version", "default_language"],
                [instrument.title, form_name(instrument), instrument.version,
                 instrument.language]]
    return {"survey": survey, "choices": choices, "settings": settings}


def write_xlsform(instrument: Instrument, path: Path, site_codes: Sites = (),
                  wave: int | None = None) -> Path:
    """Write the XLSForm workbook (upload it to KoboToolbox or ODK Central)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    book.remove(book.active)
    for name, rows in xlsform_sheets(instrument, site_codes, wave).items():
        sheet = book.create_sheet(name)
        for row in rows:
            # Every cell as text: codes like '1' must stay names, not become numbers.
            sheet.append([str(value) for value in row])
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        sheet.freeze_panes = "A2"
    book.save(path)
    return path


def template_header(instrument: Instrument) -> list[str]:
    """The columns ingest expects, in the order a person would fill them."""
    return [*FIXED_COLUMNS, *(a.id for a in instrument.attributes), *instrument.item_ids]


def template_csv(instrument: Instrument) -> str:
    """A CSV template: the header row only (no example row that could be ingested by mistake)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(template_header(instrument))
    return buffer.getvalue()


def export_instrument(instrument: Instrument, fmt: str, out: Path,
                      site_codes: Sites = (), wave: int | None = None) -> Path:
    """Write the instrument to `out` in one of `EXPORT_FORMATS`; returns the path written.

    `site_codes` are codes or (code, name) pairs; `wave` is the survey year REDCap and
    XLSForm record without asking (default: this year).
    """
    if fmt not in EXPORT_FORMATS:
        raise CultureError(f"--format {fmt!r} is not known; use one of {', '.join(EXPORT_FORMATS)}")
    out = Path(out)
    if out.is_dir():
        raise CultureError(f"--out {out}: is a folder; give a file name such as "
                           f"{out / ('support-culture.' + _suffix(fmt))}")
    if not out.parent.exists():
        raise CultureError(f"--out {out}: the folder {out.parent} does not exist")
    if fmt == "redcap":
        out.write_text(redcap_dictionary_csv(instrument, site_codes, wave), encoding="utf-8")
    elif fmt == "xlsform":
        write_xlsform(instrument, out, site_codes, wave)
    elif fmt == "csv":
        out.write_text(template_csv(instrument), encoding="utf-8")
    elif fmt == "html":
        write_html(instrument, out)
    else:
        write_pdf(instrument, out)
    return out


def _suffix(fmt: str) -> str:
    return {"redcap": "csv", "xlsform": "xlsx", "html": "html", "pdf": "pdf", "csv": "csv"}[fmt]
