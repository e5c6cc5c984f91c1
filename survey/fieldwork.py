"""The fieldwork summary: how an open survey wave is going, as counts only.

While a wave is open a survey lead wants to see responses so far by site and by staff
group against headcount, invitations issued and used, answers waiting in the web form's
inbox, and the day answers arrived. `pipeline.fieldwork` works these out from the store
and the inbox and writes them here, to a small JSON file beside the store
(``<store>.fieldwork.json``), whenever `culture status`, `culture run` or a running
`culture collect` (once a minute) looks.

Why a file of counts, and not the store. The dashboard may not read respondent-level
data (the import contracts in pyproject.toml: nothing downstream of publishing reaches
`pipeline` or `collect`), and the store is locked while `culture run` writes it. So the
dashboard's Fieldwork page reads only this file, which holds nothing a person answered:
counts per site, per staff group, per day, and invitation totals. Staff-group counts
below the minimum group size k are withheld when the file is written (None), with a
second group withheld when one alone could be worked out from the site's total
(`withhold_small`); `read_summary` withholds again on reading, so an old or edited file
cannot show a small group either. The groups of a site are all its answers to the staff
group question, "not stated" included, so they add up to the site's total.

This module is on the ground floor so that both the pipeline (the writer) and the
dashboard (the reader) may use it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

#: Bumped when the file's shape changes; a reader refuses other versions.
VERSION = 1


def fieldwork_path(store_path: Path | str) -> Path:
    """The fieldwork summary beside a store: culture.duckdb -> culture.fieldwork.json."""
    store_path = Path(store_path)
    return store_path.with_name(store_path.stem + ".fieldwork.json")


def beside_published(published_path: Path | str) -> Path:
    """The fieldwork summary beside a published layer (culture.published.duckdb)."""
    published_path = Path(published_path)
    stem = published_path.name.removesuffix(".duckdb").removesuffix(".published")
    return published_path.with_name(stem + ".fieldwork.json")


def withhold_small(counts: dict[str, int], k: int) -> dict[str, int | None]:
    """`counts` with every count from 1 to k-1 withheld (None).

    Zeros stay: they show no one. When the withheld counts add up to fewer than k, the
    smallest count still shown is withheld too, so subtracting the shown counts from the
    total (which is shown) gives only a sum of k or more, never one small group.
    """
    shown: dict[str, int | None] = {g: (n if n == 0 or n >= k else None)
                                    for g, n in counts.items()}
    hidden = sum(counts[g] for g, n in shown.items() if n is None)
    if 0 < hidden < k:
        others = sorted((n, g) for g, n in shown.items() if n)
        if others:
            shown[others[0][1]] = None
    return shown


def write_summary(path: Path | str, summary: dict) -> Path:
    """Write the summary whole (to a temporary file renamed into place, so a reader never
    sees half a file)."""
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps({"version": VERSION, **summary}, indent=1),
                         encoding="utf-8")
    os.replace(temporary, path)
    return path


def read_summary(path: Path | str) -> dict | None:
    """The summary at `path`, or None when there is none (or it cannot be read); group
    counts below its k are withheld again whatever the file says."""
    try:
        summary = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict) or summary.get("version") != VERSION:
        return None
    k = max(int(summary.get("min_group_size") or 10), 5)
    for wave in summary.get("waves", []):
        for site in wave.get("sites", []):
            _withhold_again(site.get("groups", []), int(site.get("responses") or 0), k)
    return summary


def _withhold_again(groups: list[dict], total: int, k: int) -> None:
    """Withhold in place what `withhold_small` would have: small counts, and one more
    when the site's total less the counts shown would give a small group."""
    for group in groups:
        if group["responses"] is not None and 0 < group["responses"] < k:
            group["responses"] = None
    shown = [g for g in groups if g["responses"]]
    hidden = total - sum(g["responses"] for g in shown)
    if 0 < hidden < k and shown:
        min(shown, key=lambda g: g["responses"])["responses"] = None


def closed_wave_line(wave: dict) -> str:
    """One closed wave: when it closed and its responses, or that its answers were
    deleted under the retention policy (its published results stay)."""
    closed = f"closed on {wave['closed_on']}" if wave.get("closed_on") else "closed"
    if wave.get("purged_on"):
        return (f"Wave {wave['wave']}: {closed}; its answers were deleted on "
                f"{wave['purged_on']} under the retention policy (its published results "
                "are kept)")
    return f"Wave {wave['wave']}: {closed}, {wave['responses']:,} responses"
