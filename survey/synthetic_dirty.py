"""The "dirty" sample: the clean export plus every kind of row ingest must catch.

Also rewrites a few valid rows the way label-based survey tools export them (answers
and attributes as text in untidy case and spacing), which ingest must accept.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from survey.instrument import Instrument

#: (reason code ingest must give, how to spoil a copy of a clean row)
BAD_KINDS = (
    ("out_of_range", lambda row, ids: row.update(hs03="7")),
    ("out_of_range", lambda row, ids: row.update(ps02="0")),
    ("unknown_label", lambda row, ids: row.update(ps05="Agree strongly")),
    ("unknown_site", lambda row, ids: row.update(site="ZZ")),
    ("unknown_wave", lambda row, ids: row.update(wave="1999")),
    ("missing_required", lambda row, ids: row.update(response_id="")),
)

MESSY = {1: "strongly DISAGREE", 2: " disagree", 3: "Neither agree nor disagree",
         4: "AGREE ", 5: "Strongly  agree", 9: "Don\u2019t know / prefer not to say"}


def _labelled(row: dict[str, str], instrument: Instrument) -> None:
    for item in instrument.items:
        value = row[item.id]
        if item.response_scale == "agree5" and value:
            row[item.id] = MESSY[int(value)]
    labels = {a.id: {o.code: o.label for o in a.options} for a in instrument.attributes}
    for attribute, names in labels.items():
        if row[attribute]:
            row[attribute] = names[row[attribute]]


def make_dirty(clean: Path, dirty: Path, instrument: Instrument,
               rng: np.random.Generator) -> list[dict]:
    """Write the dirty file; return the planted bad rows (1-based data row, id, reason)."""
    with clean.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = list(reader.fieldnames)
        rows = list(reader)
    for index in rng.choice(len(rows), size=20, replace=False):
        _labelled(rows[int(index)], instrument)

    planted: list[tuple[int, dict, str]] = []     # (insert after this clean row, row, reason)
    n = len(rows)
    for number, (reason, spoil) in enumerate(BAD_KINDS):
        source = dict(rows[int(rng.integers(n))])
        source["response_id"] = f"{source['site']}-{source['wave']}-9{number:04d}"
        spoil(source, None)
        planted.append((int(rng.integers(n)), source, reason))
    # A repeated id: a copy of an earlier row, placed after it.
    original = int(rng.integers(n // 2))
    planted.append((int(rng.integers(original + 1, n)), dict(rows[original]),
                    "duplicate_response_id"))
    # Too few answers: only three items kept.
    sparse = dict(rows[int(rng.integers(n))])
    sparse["response_id"] = f"{sparse['site']}-{sparse['wave']}-99999"
    for item in instrument.items[3:]:
        sparse[item.id] = ""
    planted.append((int(rng.integers(n)), sparse, "too_few_answers"))

    after: dict[int, list[tuple[dict, str]]] = {}
    for position, row, reason in planted:
        after.setdefault(position, []).append((row, reason))
    output, bad_rows = [], []
    for index, row in enumerate(rows):
        output.append(row)
        for extra, reason in after.get(index, []):
            output.append(extra)
            bad_rows.append({"row": len(output), "response_id": extra["response_id"],
                             "reason": reason})
    with dirty.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(output)
    return bad_rows
