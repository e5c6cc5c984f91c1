"""A printable questionnaire: one self-contained HTML page, and a PDF of it made by headless Chromium.

For sites that run the survey on paper (or want to show staff exactly what is asked).
The page has one section per scale with a tick box for every answer, the instrument's
own introduction plus a plain explanation of how a paper form stays anonymous, and the
optional "about you" questions marked as optional. Each question and answer shows its
id and code in small print, so answers can be typed into the CSV template
(`culture instrument export --format csv`) and ingested.

Section headings are neutral ("Questions, part 2 of 9"), never a construct's name, and
each grid keeps its header row with its statements: a grid is not split across pages
when it fits on one, and a longer one repeats its header on the next page.

Accessibility: real headings, tables with captions and row / column headers, a visible
text label for every box (the box itself is hidden from screen readers), body text at
11pt with high contrast, and nothing conveyed by colour alone.
"""

from __future__ import annotations

import html
import tempfile
from pathlib import Path

from survey.instrument import Instrument
from survey.pdf import print_pdf
from survey.questionnaire import (ABOUT_YOU_NOTE, ABOUT_YOU_SECTION, ROUTING_NOTE,
                                  ROUTING_SECTION, closing_attributes, item_choices,
                                  routing_attributes, sections)

#: What a paper respondent needs to know beyond the instrument's introduction.
PAPER_ANONYMITY = (
    "Please do not write your name, staff number or anything else that identifies you "
    "anywhere on this form. Tick one box for each statement. When you have finished, "
    "put the form in the sealed box or envelope provided; forms are typed in without any "
    "record of who handed them in, and no one at your workplace sees individual answers."
)

#: What to do when no PDF can be printed (the end of the printer's error message).
PRINT_FROM_BROWSER = "export --format html and print that from a browser"

CSS = """
:root { color: #111; background: #fff; }
body { font-family: "DejaVu Sans", Arial, Helvetica, sans-serif; font-size: 11pt;
       line-height: 1.35; max-width: 60rem; margin: 1.5rem auto; padding: 0 1rem; }
h1 { font-size: 18pt; margin: 0 0 .5rem; }
h2 { font-size: 13pt; margin: 1.2rem 0 .4rem; break-after: avoid; }
.intro { border: 1.5pt solid #111; padding: .6rem .8rem; }
.intro p { margin: .3rem 0; }
table { width: 100%; border-collapse: collapse; margin-bottom: .6rem; break-inside: avoid; }
thead { display: table-header-group; }
caption { text-align: left; font-weight: bold; padding: .2rem 0; }
th, td { border: .75pt solid #555; padding: .3rem .25rem; vertical-align: middle; }
thead th { font-size: 8.5pt; font-weight: normal; text-align: center; width: 9%; }
thead th:first-child { width: auto; }
tbody th { font-weight: normal; text-align: left; }
td { text-align: center; }
tr { break-inside: avoid; }
.box { display: inline-block; width: 11pt; height: 11pt; border: 1.2pt solid #111;
       vertical-align: middle; }
.ref { color: #444; font-size: 7.5pt; white-space: nowrap; }
.num { font-weight: bold; margin-right: .25rem; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden;
                   clip: rect(0 0 0 0); white-space: nowrap; }
fieldset { border: .75pt solid #555; margin: 0 0 .5rem; padding: .3rem .6rem;
           break-inside: avoid; }
legend { padding: 0 .2rem; }
ul.options { list-style: none; margin: .2rem 0; padding: 0; display: flex; flex-wrap: wrap;
             gap: .3rem 1.2rem; }
.optional { font-style: italic; }
.routing { display: block; font-size: 9pt; font-style: italic; }
footer { margin-top: .5rem; font-size: 8.5pt; color: #444; }
@page { size: A4; margin: 14mm 12mm; }
@media print {
  body { margin: 0; max-width: none; padding: 0; font-size: 10.5pt; }
  section { break-before: auto; }
}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _box(label: str) -> str:
    return (f'<span class="box" aria-hidden="true"></span>'
            f'<span class="visually-hidden">{_e(label)}</span>')


def _asked_of(instrument: Instrument, item) -> str:
    """The line under a statement asked only of some: 'Answer only if you are: ...'."""
    if item.asked_if is None:
        return ""
    attribute = next(a for a in instrument.attributes if a.id == item.asked_if.attribute)
    labels = [o.label for o in attribute.options if o.code in item.asked_if.codes]
    return (f'<span class="routing">Answer only if your answer to "{_e(attribute.question)}" '
            f'was: {_e("; ".join(labels))}.</span>')


def _scale_table(instrument: Instrument, heading: str, items, first_number: int) -> str:
    """A grid: statements down, answers across, one tick box per cell."""
    choices = item_choices(instrument, items[0])
    head = "".join(f'<th scope="col">{_e(label)} <span class="ref">({code})</span></th>'
                   for code, label in choices)
    rows = []
    for number, item in enumerate(items, start=first_number):
        cells = "".join(f"<td>{_box(label)}</td>" for _, label in choices)
        rows.append(f'<tr><th scope="row"><span class="num">{number}.</span>{_e(item.text)} '
                    f'<span class="ref">[{_e(item.id)}]</span>{_asked_of(instrument, item)}'
                    f'</th>{cells}</tr>')
    return (f'<table><caption class="visually-hidden">{_e(heading)}: tick one box for each '
            f'statement</caption><thead><tr><th scope="col"><span class="visually-hidden">'
            f'Statement</span></th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>')


def _single_question(number: int | None, name: str, text: str, options: list[tuple],
                     optional: bool) -> str:
    """One question with its options listed as tick boxes (for questions outside a grid)."""
    prefix = f'<span class="num">{number}.</span>' if number is not None else ""
    tag = ' <span class="optional">(optional)</span>' if optional else ""
    boxes = "".join(f"<li>{_box(label)} {_e(label)} <span class=\"ref\">({_e(code)})</span></li>"
                    for code, label in options)
    return (f'<fieldset><legend>{prefix}{_e(text)}{tag} <span class="ref">[{_e(name)}]</span>'
            f'</legend><ul class="options">{boxes}</ul></fieldset>')


def printable_html(instrument: Instrument) -> str:
    """The whole questionnaire as one HTML document (styles inline, no network access)."""
    parts = [f'<header><h1>{_e(instrument.title)}</h1><p class="ref">Questionnaire '
             f'version {_e(instrument.version)} ({_e(instrument.key)})</p><div class="intro">'
             f"<p>{_e(instrument.introduction)}</p>"
             f'<p id="anonymity">{_e(PAPER_ANONYMITY)}</p></div></header><main>']
    routing = routing_attributes(instrument)
    if routing:
        # Asked first: some statements apply only to some answers to these.
        parts.append(f'<section id="about_role" aria-labelledby="h-about_role">'
                     f'<h2 id="h-about_role">{_e(ROUTING_SECTION)}</h2>'
                     f'<p class="optional">{_e(ROUTING_NOTE)}</p>')
        for attribute in routing:
            parts.append(_single_question(None, attribute.id, attribute.question,
                                          [(o.code, o.label) for o in attribute.options],
                                          optional=True))
        parts.append("</section>")
    number = 1
    for section_id, heading, items in sections(instrument):
        parts.append(f'<section id="{_e(section_id)}" aria-labelledby="h-{_e(section_id)}">'
                     f'<h2 id="h-{_e(section_id)}">{_e(heading)}</h2>')
        # Statements sharing one answer scale read best as a grid; mixed ones one by one.
        grids: list[list] = []
        for item in items:
            if grids and grids[-1][0].response_scale == item.response_scale:
                grids[-1].append(item)
            else:
                grids.append([item])
        for group in grids:
            if len(group) > 1 or len(item_choices(instrument, group[0])) > 3:
                parts.append(_scale_table(instrument, heading, group, number))
            else:
                item = group[0]
                parts.append(_single_question(number, item.id, item.text,
                                              item_choices(instrument, item), optional=False))
            number += len(group)
        parts.append("</section>")
    parts.append(f'<section id="about_you" aria-labelledby="h-about_you">'
                 f'<h2 id="h-about_you">{_e(ABOUT_YOU_SECTION)}</h2>'
                 f'<p class="optional">{_e(ABOUT_YOU_NOTE)}</p>')
    for attribute in closing_attributes(instrument):
        parts.append(_single_question(None, attribute.id, attribute.question,
                                      [(o.code, o.label) for o in attribute.options],
                                      optional=True))
    parts.append("</section></main><footer>Thank you for taking part.</footer>")
    return (f'<!DOCTYPE html>\n<html lang="{_e(instrument.language)}"><head>'
            f'<meta charset="utf-8"><meta name="viewport" content="width=device-width, '
            f'initial-scale=1"><title>{_e(instrument.title)}</title><style>{CSS}</style>'
            f"</head><body>{''.join(parts)}</body></html>\n")


def write_html(instrument: Instrument, path: Path) -> Path:
    """The questionnaire written to `path` as one self-contained HTML page."""
    path.write_text(printable_html(instrument), encoding="utf-8")
    return path


def write_pdf(instrument: Instrument, path: Path) -> Path:
    """The questionnaire printed to `path` as an A4 PDF (headless Chromium, offline)."""
    with tempfile.TemporaryDirectory(prefix="culture-print-") as scratch:
        page = write_html(instrument, Path(scratch) / "questionnaire.html")
        return print_pdf(page, path, instead=PRINT_FROM_BROWSER)
