"""Did it move? For each of a site's actions, its principle's change from the wave before
the action to the first wave after, against the other sites of its peer group over the
same waves (`stats.change.moved_against_peers`), read from the published layer.

Which waves. The published layer records a wave as a year, not the days it was
answered; the project's surveys are answered in the autumn (the sample's fieldwork
opens on 1 October), so a wave is taken as answered from FIELDWORK_OPENS of its year.
An action that starts on day S is then compared

    before: the latest wave whose fieldwork opened before S
    after:  the first wave whose fieldwork opened after S

so an action started in March 2025 runs from the 2024 wave to the 2025 wave, and one
started in November 2025 (the 2025 wave already under way) from 2025 to 2026. Only
waves in which the site's principle score is shown count (a hidden score is no
baseline); a peer counts when its score is shown in both of those waves.

Every score is a published site cell (level 'site', breakdown 'all', measure kind
'principle', not suppressed): 0-100 already, with its SE. Nothing here reads a hidden
cell, and the peers' average is of three or more sites, never one peer's own change.
This is what happened alongside an action, not proof that the action caused it
(`published.layout.MOVED_CAVEAT`, which every reader shows with these rows).
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from published.layout import MOVED_CAVEAT, MOVED_NOT_COMPARED
from published.reader import PublishedLayer
from stats.change import moved_against_peers

#: (month, day) from which a wave is taken as answered in its year (see the module's note).
FIELDWORK_OPENS = (10, 1)

#: The columns `moved_rows` returns, with the header a person reads.
MOVED_COLUMNS = {
    "principle": "Principle", "action": "Action", "start": "Started",
    "wave_before": "Wave before", "wave_after": "Wave after",
    "site_change": "Change here", "peers_change": "Peers' average change",
    "peers": "Peers compared", "difference": "Difference", "low": "95% interval from",
    "high": "95% interval to", "verdict": "Did it move?", "reason": "Why not compared"}


def start_date(value) -> date | None:
    """An action's start as a date (None when it has none or it is not a date)."""
    stamp = pd.to_datetime(value, errors="coerce")
    return None if stamp is None or pd.isna(stamp) else stamp.date()


def waves_around(start: date, waves: list[int]) -> tuple[int | None, int | None]:
    """The wave before and the first wave after an action started on `start`, among
    `waves` (years), by the rule of the module's note; None where there is none."""
    month, day = FIELDWORK_OPENS
    opened_before = [w for w in waves if date(w, month, day) <= start]
    opened_after = [w for w in waves if date(w, month, day) > start]
    return (max(opened_before) if opened_before else None,
            min(opened_after) if opened_after else None)


def _peer_scores(layer: PublishedLayer, site: str, principles: list[str]) -> pd.DataFrame:
    """Shown principle scores of every site of `site`'s peer group (itself included)."""
    row = layer.site_row(site)
    if row is None or not principles:
        return pd.DataFrame(columns=["site_code", "wave", "principle", "mean", "se"])
    return layer.query(
        "select c.unit as site_code, c.wave, c.measure as principle, c.mean, c.se "
        "from cells c join sites s on s.site_code = c.unit where c.level = 'site' and "
        "c.breakdown = 'all' and c.measure_kind = 'principle' and not c.suppressed and "
        "s.site_type = ? and list_contains(?, c.measure)", [row["site_type"], principles])


def moved_rows(layer: PublishedLayer, site: str, actions: pd.DataFrame) -> pd.DataFrame:
    """One row per action of `site` in `actions` (the plan store's frame: id, site_code,
    principle, what, start, ...): MOVED_COLUMNS plus action_id, status and
    principle_name. Other sites' actions are left out, whatever the frame holds.

    The frame's ``attrs["caveat"]`` is MOVED_CAVEAT: show it with the rows.
    """
    own = actions[actions["site_code"] == site] if len(actions) else actions
    scores = _peer_scores(layer, site, sorted(set(own["principle"])) if len(own) else [])
    names = layer.measure_names(("principle",))
    published_waves = layer.waves()
    rows = []
    for action in own.itertuples(index=False):
        rows.append({"action_id": getattr(action, "id", None), "principle": action.principle,
                     "principle_name": names.get(action.principle, action.principle),
                     "action": action.what, "status": getattr(action, "status", None),
                     **_movement(scores, site, action.principle, start_date(action.start),
                                 published_waves)})
    frame = pd.DataFrame(rows, columns=["action_id", "principle", "principle_name", "action",
                                        "status", *list(MOVED_COLUMNS)[2:]])
    frame = frame.astype({"wave_before": "Int64", "wave_after": "Int64", "peers": "Int64"})
    frame.attrs["caveat"] = MOVED_CAVEAT
    return frame


def due_for_review(actions: pd.DataFrame, on: date) -> pd.DataFrame:
    """The actions due for review on `on`: review date on or before it, or done. A
    dropped action is never due: nothing is credited to what was not done."""
    if actions.empty:
        return actions
    review = pd.to_datetime(actions["review"], errors="coerce").dt.date
    return actions[((review <= on) | (actions["status"] == "done"))
                   & (actions["status"] != "dropped")]


def _movement(scores: pd.DataFrame, site: str, principle: str, start: date | None,
              published_waves: list[int]) -> dict:
    empty = {"start": start, "wave_before": None, "wave_after": None, "site_change": np.nan,
             "peers_change": np.nan, "peers": 0, "difference": np.nan, "low": np.nan,
             "high": np.nan, "verdict": MOVED_NOT_COMPARED}
    if start is None:
        return empty | {"reason": "the action has no start date"}
    if waves_around(start, published_waves)[1] is None:
        return empty | {"reason": f"no wave after the action yet (it started "
                                  f"{start.isoformat()})"}
    measure = scores[scores["principle"] == principle]
    own = measure[measure["site_code"] == site].set_index("wave")
    before, after = waves_around(start, sorted(int(w) for w in own.index))
    if before is None or after is None:
        which = "before" if before is None else "after"
        return empty | {"wave_before": before, "wave_after": after,
                        "reason": f"the site has no shown score in a wave {which} the action"}
    peers = measure[(measure["site_code"] != site) & measure["wave"].isin([before, after])]
    wide = peers.pivot(index="site_code", columns="wave", values=["mean", "se"])
    wide = wide.reindex(columns=pd.MultiIndex.from_product([["mean", "se"], [before, after]]))
    moved = moved_against_peers(
        own.loc[before, "mean"], own.loc[before, "se"], own.loc[after, "mean"],
        own.loc[after, "se"], wide[("mean", before)], wide[("se", before)],
        wide[("mean", after)], wide[("se", after)])
    return {"start": start, "wave_before": before, "wave_after": after,
            "site_change": moved.site_change, "peers_change": moved.peers_change,
            "peers": moved.peers, "difference": moved.difference, "low": moved.low,
            "high": moved.high, "verdict": moved.verdict, "reason": moved.reason}


#: `moved_display`'s columns with the header a person reads (for a table component).
DISPLAY_COLUMNS = {"principle": "Principle", "action": "Action", "waves": "Waves",
                   "site_change": "Change here", "peers_change": "Peers' average change",
                   "difference": "Difference (95% interval)", "verdict": "Did it move?"}


def moved_display(rows: pd.DataFrame, names: dict[str, str] | None = None) -> pd.DataFrame:
    """`moved_rows` as text for a table (DISPLAY_COLUMNS): principle with its name, the
    waves, signed changes in points out of 100, the difference with its interval, and
    the verdict; a row not compared gives its reason in place of the numbers."""
    names = names or {}
    out = []
    for row in rows.itertuples(index=False):
        compared = row.verdict != MOVED_NOT_COMPARED
        out.append({
            "principle": f"{row.principle} {names.get(row.principle, '')}".strip(),
            "action": row.action,
            "waves": (f"{row.wave_before} to {row.wave_after}" if compared
                      else f"not compared: {row.reason}"),
            "site_change": _points(row.site_change) if compared else "–",
            "peers_change": (f"{_points(row.peers_change)} ({row.peers} other sites)"
                             if compared else "–"),
            "difference": (f"{_points(row.difference)} ({_points(row.low)} to "
                           f"{_points(row.high)})" if compared else "–"),
            "verdict": row.verdict})
    return pd.DataFrame(out, columns=list(DISPLAY_COLUMNS))


def _points(value: float) -> str:
    return f"{value:+.1f}".replace("-", "−")


def moved_sentence(row) -> str:
    """One plain sentence for a row of `moved_rows` (a mapping or a namedtuple): the
    change, the peers', the difference with its interval and the verdict, or why the
    action's change was not compared; a compared row ends by saying that this happened
    alongside the action, not because of it."""
    get = row.get if hasattr(row, "get") else (lambda key: getattr(row, key))
    if get("verdict") == MOVED_NOT_COMPARED:
        return f"Not compared: {get('reason')}."
    return (f"{get('principle')} moved {_points(get('site_change'))} points from "
            f"{get('wave_before')} to {get('wave_after')}; the {get('peers')} other sites "
            f"of the peer group moved {_points(get('peers_change'))} on average. "
            f"Difference {_points(get('difference'))} (95% interval "
            f"{_points(get('low'))} to {_points(get('high'))}): {get('verdict')}. "
            f"This is what happened alongside the action, not proof that it caused it.")
