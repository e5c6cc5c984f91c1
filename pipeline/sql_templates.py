"""SQL statements read from the stages' .sql files, with their `{{slot}}`s filled.

The one template mechanism of the pipeline. A stage's statement lives in a .sql file
beside it (`pipeline/sql/`, `pipeline/ingest/sql/`, `pipeline/publish/sql/`), shaped
as import CTEs, step CTEs, `final`. Where the instrument decides the columns (one per
item, scale, principle or attribute), the file holds a slot written `{{name}}`, and
the stage fills it with a list of column expressions built from the instrument's
identifiers (quoted with `quote`) and its integer codes, joined by commas.

Values never go into a slot: labels, site and wave lists, limits and the batch id are
DuckDB parameters (`$name`) bound when the statement runs. Double braces were chosen
because they appear in no SQL we write, while single braces (DuckDB struct literals,
`format('{}')`) and `$` (parameters) do.
"""

from __future__ import annotations

import re
from pathlib import Path

_SLOT = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def quote(name: str) -> str:
    """`name` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def columns(expressions) -> str:
    """Column expressions as one select list, one a line."""
    return ",\n        ".join(expressions)


def fill(template: str, **slots: str) -> str:
    """`template` with every `{{name}}` replaced by `slots[name]`.

    Raises KeyError for a slot left unfilled and ValueError for a value no slot takes,
    so a template and its caller cannot drift apart silently.
    """
    used = set(_SLOT.findall(template))
    missing = used - slots.keys()
    if missing:
        raise KeyError(f"no value for slot(s) {sorted(missing)}")
    unused = slots.keys() - used
    if unused:
        raise ValueError(f"no slot named {sorted(unused)} in the template")
    return _SLOT.sub(lambda match: slots[match.group(1)], template)


def render(folder: Path, name: str, **slots: str) -> str:
    """The statement in `folder/name`, its slots filled (see `fill`)."""
    return fill((folder / name).read_text(encoding="utf-8"), **slots)
