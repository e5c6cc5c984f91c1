"""The instrument laid out as a questionnaire: its sections in order and each item's
choices, the one layout every export (REDCap, XLSForm, the printable form) follows, and
how long it takes to answer."""

from __future__ import annotations

import re

from survey.instrument import Attribute, Instrument, Item

#: The heading of the optional questions at the end.
ABOUT_YOU_SECTION = "About you (optional)"
ABOUT_YOU_NOTE = ("Every question in this part is optional; choose 'Prefer not to say' or "
                  "leave it blank if you wish.")
#: Asked before the statements when some statements apply only to some answers to it.
ROUTING_SECTION = "About your role (optional)"
ROUTING_NOTE = ("We ask this first because a few statements apply only to some roles. Like "
                "every question, it is optional.")

#: Seconds to read and answer, (quick, slow): an agreement statement takes 6-8 s (a common
#: rule of thumb for Likert items), a short question with a few options (yes / no, about
#: you) 4-6 s, and the introduction is read at 250-200 words a minute.
SECONDS_PER_AGREEMENT_ITEM = (6, 8)
SECONDS_PER_SHORT_QUESTION = (4, 6)
READING_WORDS_PER_MINUTE = (250, 200)
#: An answer scale with at least this many scored options is an agreement scale.
AGREEMENT_MIN_OPTIONS = 5


def part_heading(number: int, total: int) -> str:
    """A neutral heading ("Questions, part 2 of 9"), as the web form shows.

    A scale's name ("Help-seeking stigma") would tell respondents what is measured and
    colour their answers, so no export shows it.
    """
    return f"Questions, part {number} of {total}"


def sections(instrument: Instrument) -> list[tuple[str, str, tuple[Item, ...]]]:
    """The questionnaire's parts in order: (section id, neutral heading, items); one per
    scale, then outcomes. The id (a scale's id) is for the tool's own names, never shown."""
    parts = [(scale.id, instrument.items_of(scale.id)) for scale in instrument.scales]
    outcomes = tuple(item for item in instrument.items if item.kind == "outcome")
    parts.append(("outcomes", outcomes))
    parts = [part for part in parts if part[1]]
    return [(ident, part_heading(number, len(parts)), items)
            for number, (ident, items) in enumerate(parts, start=1)]


def routing_attributes(instrument: Instrument) -> tuple[Attribute, ...]:
    """Attributes some item's `asked_if` depends on: asked before the statements."""
    wanted = {item.asked_if.attribute for item in instrument.items if item.asked_if}
    return tuple(a for a in instrument.attributes if a.id in wanted)


def closing_attributes(instrument: Instrument) -> tuple[Attribute, ...]:
    """The attributes asked at the end, in "About you": all but the routing ones."""
    first = {a.id for a in routing_attributes(instrument)}
    return tuple(a for a in instrument.attributes if a.id not in first)


def estimated_seconds(instrument: Instrument) -> tuple[int, int]:
    """(quick, slow) seconds to complete the questionnaire, every question answered.

    Quick: the shortest time per question and routed items skipped; slow: the longest
    time and every item asked. Compare with the introduction's claim ("six to eight
    minutes") in `claimed_minutes`.
    """
    quick = slow = 0.0
    for item in instrument.items:
        scale = instrument.response_scale(item.response_scale)
        low, high = (SECONDS_PER_AGREEMENT_ITEM if len(scale.options) >= AGREEMENT_MIN_OPTIONS
                     else SECONDS_PER_SHORT_QUESTION)
        quick += 0 if item.asked_if else low
        slow += high
    quick += SECONDS_PER_SHORT_QUESTION[0] * len(instrument.attributes)
    slow += SECONDS_PER_SHORT_QUESTION[1] * len(instrument.attributes)
    words = len(instrument.introduction.split())
    quick += words / READING_WORDS_PER_MINUTE[0] * 60
    slow += words / READING_WORDS_PER_MINUTE[1] * 60
    return round(quick), round(slow)


_NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                 "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15,
                 "twenty": 20}


def claimed_minutes(instrument: Instrument) -> tuple[int, int] | None:
    """The time the introduction promises, as (least, most) minutes, or None if it names none.

    Reads "about five minutes" as (5, 5) and "six to eight minutes" as (6, 8).
    """
    number = r"(\d+|" + "|".join(_NUMBER_WORDS) + r")"
    found = re.search(rf"{number}(?:\s*(?:to|-|–)\s*{number})?\s+minutes",
                      instrument.introduction, re.IGNORECASE)
    if not found:
        return None
    values = [int(v) if v.isdigit() else _NUMBER_WORDS[v.lower()]
              for v in found.groups() if v]
    return min(values), max(values)


def count_in_words(number: int) -> str:
    """A small count as a respondent reads it ("seven"); larger ones as digits."""
    words = {value: word for word, value in _NUMBER_WORDS.items()}
    return words.get(number, str(number))


#: The introduction's promise of the smallest group shown: "groups of at least ten people",
#: "groups of ten or more people".
_GROUP_PROMISE = re.compile(
    r"(groups\s+of\s+(?:at\s+least\s+)?)(\d+|" + "|".join(_NUMBER_WORDS)
    + r")(\s+(?:or\s+more\s+)?people)", re.IGNORECASE)


def for_respondents(instrument: Instrument, min_group_size: int) -> Instrument:
    """The instrument as respondents read it: where the introduction promises the smallest
    group results are shown for, it names the trust's own minimum group size.

    The instruments' wording says "ten" (the default); a trust that shows groups of seven
    must not promise ten, and one that shows only groups of fifteen can say so.
    """
    said = _GROUP_PROMISE.sub(
        lambda found: found[1] + count_in_words(min_group_size) + found[3],
        instrument.introduction)
    return instrument.model_copy(update={"introduction": said})


def item_choices(instrument: Instrument, item: Item) -> list[tuple[int, str]]:
    """(code, label) of every answer an item offers, "don't know" last."""
    rs = instrument.response_scale(item.response_scale)
    return [(o.code, o.label) for o in (*rs.options, *rs.missing)]
