"""Fieldwork: how each survey wave is going, counted from the store and the web form's inbox.

`fieldwork_summary` reads the store (read-only: responses, headcounts, sites, waves) and
the inbox (submissions, invitations, closed waves) and returns counts only: responses so
far per site (those in the store plus those still waiting in the inbox for the next
`culture run`), per staff group against headcount with groups below k withheld
(`survey.fieldwork.withhold_small`), invitations issued and marked used, and web answers
by the day they arrived (all sites together: a site's day could single a person out).
`write_fieldwork` writes them where the dashboard's Fieldwork page reads them
(`survey.fieldwork`), which is why the page never needs the store or the inbox.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

from collect.inbox import closed_waves, invitation_counts, read_submissions
from pipeline.store import open_store
from survey.fieldwork import fieldwork_path, withhold_small, write_summary
from survey.instrument import Instrument
from survey.settings import Settings

#: The staff-group category of answers that did not say.
NOT_STATED = "not_stated"


def _store_counts(store: Path) -> dict:
    with open_store(store, read_only=True) as con:
        columns = {r[0] for r in con.execute(
            "select column_name from information_schema.columns where table_schema = 'main' "
            "and table_name = 'responses'").fetchall()}
        group = "staff_group" if "staff_group" in columns else "null"
        responses = con.execute(
            f"select site_code, wave, coalesce({group}, '{NOT_STATED}'), count(*) "
            "from responses group by all").fetchall()
        held = {r[0] for r in con.execute(
            "select response_id from responses union all select response_id from quarantine "
            "where response_id is not null").fetchall()}
        purged = {}
        if con.execute("select count(*) from information_schema.tables where table_schema = "
                       "'main' and table_name = 'wave_events'").fetchall()[0][0]:
            purged = {int(wave): str(day) for wave, day in con.execute(
                "select wave, min(happened_at)::date from wave_events where action = 'purge' "
                "group by wave").fetchall()}
        return {
            "sites": con.execute("select site_code, name from sites order by 1").fetchall(),
            "waves": [int(r[0]) for r in con.execute("select wave from waves order by 1")
                      .fetchall()],
            "headcounts": con.execute("select site_code, staff_group, headcount "
                                      "from site_headcounts").fetchall(),
            "responses": responses,
            "held": held,
            "purged": purged,
        }


def fieldwork_summary(settings: Settings, instrument: Instrument,
                      written_by: str = "culture status") -> dict:
    """Counts of every wave the store knows (see the module note), ready to write."""
    k = settings.min_group_size
    store = _store_counts(settings.db_path)
    inbox = settings.inbox_path
    submissions = read_submissions(inbox) if inbox.exists() else []
    closed = closed_waves(inbox)
    invitations = {(s, int(w)): (issued, int(used or 0))
                   for s, w, issued, used in invitation_counts(inbox)}
    options = [(o.code, o.label) for a in instrument.attributes if a.id == "staff_group"
               for o in a.options]
    groups = options + [(NOT_STATED, "Not stated")]

    in_store: Counter = Counter()
    by_group: Counter = Counter()
    for site, wave, group, n in store["responses"]:
        in_store[(site, wave)] += n
        by_group[(site, wave, group)] += n
    waiting: Counter = Counter()
    days: Counter = Counter()
    for _, response_id, site, wave, day, answers in submissions:
        days[(wave, day)] += 1
        if response_id not in store["held"]:
            waiting[(site, wave)] += 1
            by_group[(site, wave, answers.get("staff_group") or NOT_STATED)] += 1
    headcount: Counter = Counter()
    for site, group, n in store["headcounts"]:
        headcount[(site, group)] += n

    waves = []
    for wave in store["waves"]:
        sites = []
        for code, name in store["sites"]:
            counts = {g: by_group[(code, wave, g)] for g, _ in groups}
            shown = withhold_small(counts, k)
            issued, used = invitations.get((code, wave), (0, 0))
            total_heads = sum(headcount[(code, g)] for g, _ in options)
            sites.append({
                "site": code, "name": name,
                "responses": in_store[(code, wave)] + waiting[(code, wave)],
                "in_store": in_store[(code, wave)], "waiting": waiting[(code, wave)],
                "headcount": total_heads or None,
                "invitations_issued": issued, "invitations_used": used,
                "groups": [{"group": g, "label": label, "responses": shown[g],
                            "headcount": headcount.get((code, g)) or None}
                           for g, label in groups],
            })
        # A purged wave's answers are gone from the store (retention): its counts here
        # are zero, so it is shown as purged, never as an open wave with no answers.
        purged_on = store["purged"].get(wave)
        waves.append({
            "wave": wave, "open": wave not in closed and purged_on is None,
            "closed_on": closed.get(wave), "purged_on": purged_on,
            "responses": sum(s["responses"] for s in sites),
            "waiting": sum(s["waiting"] for s in sites),
            "days": [[day, n] for (w, day), n in sorted(days.items()) if w == wave],
            "sites": sites,
        })
    return {"written_at": dt.datetime.now().isoformat(timespec="seconds"),
            "written_by": written_by, "min_group_size": k, "waves": waves}


def write_fieldwork(settings: Settings, instrument: Instrument,
                    written_by: str = "culture status") -> tuple[Path, dict]:
    """Work out the summary and write it beside the store: (its path, the summary)."""
    summary = fieldwork_summary(settings, instrument, written_by)
    return write_summary(fieldwork_path(settings.db_path), summary), summary
