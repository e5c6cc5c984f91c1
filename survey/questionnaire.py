"""The instrument laid out as a questionnaire: its sections in order and each item's
choices, the one layout every export (REDCap, XLSForm, the printable form) follows."""

from __future__ import annotations

from survey.instrument import Instrument, Item

#: Section headings for the parts of the questionnaire that are not a scale.
OUTCOME_SECTION = "Seeking help yourself"
ABOUT_YOU_SECTION = "About you (optional)"
ABOUT_YOU_NOTE = ("Every question in this part is optional; choose 'Prefer not to say' or "
                  "leave it blank if you wish.")


def sections(instrument: Instrument) -> list[tuple[str, str, tuple[Item, ...]]]:
    """The questionnaire's parts in order: (section id, heading, items); one per scale, then outcomes."""
    parts = [(scale.id, scale.name, instrument.items_of(scale.id)) for scale in instrument.scales]
    outcomes = tuple(item for item in instrument.items if item.kind == "outcome")
    if outcomes:
        parts.append(("outcomes", OUTCOME_SECTION, outcomes))
    return [part for part in parts if part[2]]


def item_choices(instrument: Instrument, item: Item) -> list[tuple[int, str]]:
    """(code, label) of every answer an item offers, "don't know" last."""
    rs = instrument.response_scale(item.response_scale)
    return [(o.code, o.label) for o in (*rs.options, *rs.missing)]
