"""The instrument in other tools' formats: a REDCap data dictionary, an XLSForm, a CSV template.

A survey lead who already runs REDCap, KoboToolbox / ODK or a spreadsheet can build
the questionnaire from these files instead of retyping it, and the answers come back
in a shape `pipeline.ingest.tools` (and ingest) accept: the field names are our item and
attribute ids and the stored choice codes are the instrument's own codes. All wording
comes from the instrument file; nothing here writes question text.

The printable HTML / PDF version is in `survey.printable`.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from survey.errors import CultureError
from survey.instrument import Instrument
from survey.printable import write_html, write_pdf
from survey.questionnaire import ABOUT_YOU_NOTE, ABOUT_YOU_SECTION, item_choices, sections

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


def redcap_rows(instrument: Instrument, site_codes: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """The data dictionary as rows keyed by `REDCAP_COLUMNS`."""
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
                  "annotation": "Field Annotation", "align": "Custom Alignment"}[key]] = value
        return base

    # REDCap's first field is the record id; it is a counter, never a person's identifier.
    rows = [row("record_id", "text", "Response ID", annotation="@HIDDEN-SURVEY"),
            row("intro", "descriptive", instrument.introduction, header=instrument.title)]
    if site_codes:
        rows.append(row("site", "dropdown", "Site", choices=_choices_text(
            [(code, code) for code in site_codes]), required="y"))
    else:
        rows.append(row("site", "text", "Site", note="The site code you were given",
                        required="y"))
    rows.append(row("wave", "text", "Survey year", validation="integer",
                    vmin=str(WAVE_MIN), vmax=str(WAVE_MAX), required="y"))
    for section_id, heading, items in sections(instrument):
        first = True
        for item in items:
            # A matrix needs identical choices on consecutive fields: true within a scale
            # (the instrument checks it), not for the mixed outcome section.
            matrix = section_id if section_id != "outcomes" else ""
            rows.append(row(item.id, "radio", item.text, header=heading if first else "",
                            choices=_choices_text(item_choices(instrument, item)),
                            matrix=matrix, align="" if matrix else "RH"))
            first = False
    for index, attribute in enumerate(instrument.attributes):
        rows.append(row(attribute.id, "dropdown", attribute.question,
                        header=ABOUT_YOU_SECTION if index == 0 else "",
                        choices=_choices_text([(o.code, o.label) for o in attribute.options]),
                        note="Optional"))
    return rows


def redcap_dictionary_csv(instrument: Instrument, site_codes: tuple[str, ...] = ()) -> str:
    """The REDCap data dictionary as CSV text (upload it under Project Setup > Data Dictionary)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=REDCAP_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(redcap_rows(instrument, site_codes))
    return buffer.getvalue()


def xlsform_sheets(instrument: Instrument, site_codes: tuple[str, ...] = ()
                   ) -> dict[str, list[list[str]]]:
    """The XLSForm as {sheet: rows, header first}: `survey`, `choices` and `settings`."""
    survey = [["type", "name", "label", "hint", "required", "constraint",
               "constraint_message", "appearance"]]
    choices = [["list_name", "name", "label"]]

    def question(kind: str, name: str, label: str, hint: str = "", required: str = "",
                 constraint: str = "", message: str = "", appearance: str = "") -> None:
        survey.append([kind, name, label, hint, required, constraint, message, appearance])

    # ODK's `today` records the date only: the day, never the time, is what we keep.
    question("today", "submitted_on", "")
    question("note", "intro", instrument.introduction)
    if site_codes:
        question("select_one sites", "site", "Site", required="yes")
        choices += [["sites", code, code] for code in site_codes]
    else:
        question("text", "site", "Site", hint="The site code you were given", required="yes")
    question("integer", "wave", "Survey year", required="yes",
             constraint=f". >= {WAVE_MIN} and . <= {WAVE_MAX}",
             message=f"A year between {WAVE_MIN} and {WAVE_MAX}")
    for section_id, heading, items in sections(instrument):
        question("begin_group", section_id, heading, appearance="field-list")
        for item in items:
            question(f"select_one {item.response_scale}", item.id, item.text)
        question("end_group", section_id, "")
    question("begin_group", "about_you", ABOUT_YOU_SECTION, hint=ABOUT_YOU_NOTE,
             appearance="field-list")
    for attribute in instrument.attributes:
        question(f"select_one {attribute.id}", attribute.id, attribute.question, hint="Optional")
    question("end_group", "about_you", "")

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


def write_xlsform(instrument: Instrument, path: Path, site_codes: tuple[str, ...] = ()) -> Path:
    """Write the XLSForm workbook (upload it to KoboToolbox or ODK Central)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    book.remove(book.active)
    for name, rows in xlsform_sheets(instrument, site_codes).items():
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
                      site_codes: tuple[str, ...] = ()) -> Path:
    """Write the instrument to `out` in one of `EXPORT_FORMATS`; returns the path written."""
    if fmt not in EXPORT_FORMATS:
        raise CultureError(f"--format {fmt!r} is not known; use one of {', '.join(EXPORT_FORMATS)}")
    out = Path(out)
    if out.is_dir():
        raise CultureError(f"--out {out}: is a folder; give a file name such as "
                           f"{out / ('support-culture.' + _suffix(fmt))}")
    if not out.parent.exists():
        raise CultureError(f"--out {out}: the folder {out.parent} does not exist")
    if fmt == "redcap":
        out.write_text(redcap_dictionary_csv(instrument, site_codes), encoding="utf-8")
    elif fmt == "xlsform":
        write_xlsform(instrument, out, site_codes)
    elif fmt == "csv":
        out.write_text(template_csv(instrument), encoding="utf-8")
    elif fmt == "html":
        write_html(instrument, out)
    else:
        write_pdf(instrument, out)
    return out


def _suffix(fmt: str) -> str:
    return {"redcap": "csv", "xlsform": "xlsx", "html": "html", "pdf": "pdf", "csv": "csv"}[fmt]
