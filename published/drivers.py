"""What goes with seeking help early, read for one site: the words and numbers the
dashboard's Drivers page and the board report share.

A site is shown its own driver model when one was published (at least
`stats.drivers.MIN_SITE_RESPONDENTS` respondents answered), else its peer group's, else
all sites', always labelled with whose answers it rests on. Each scale's importance
(its share of what the eight scales explain together) is set against the site's own
standing on it: the published verdict against the other sites and its score out of 100.
A scale of high importance (more than an equal share) where the site is below the
others is a *priority*: improving it is where the answers suggest seeking help early
goes most with the culture, and the guide's actions for the principles it serves are
listed with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from published.layout import DRIVER_OUTCOMES, VERDICTS
from published.reader import PublishedLayer
from published.scores import to_score
from survey.questionnaire import count_in_words

#: The outcome the page and the report lead with.
OUTCOME = "oc_intend"
#: The logistic model shown with it: using support among those who needed it (national
#: and peer groups only: no site has enough such respondents to resample).
USED = "oc_used_if_needed"
#: Verdicts that count as "below the other sites" for the priority quadrant.
BELOW = VERDICTS[:2]
#: The priority quadrant, in plain words.
PRIORITY = "Priority: matters most here and you are below other sites"
QUADRANTS = {(True, True): PRIORITY,
             (True, False): "Matters most; you are not below other sites: keep it",
             (False, True): "You are below other sites; it matters less for seeking help",
             (False, False): "Matters less; you are not below other sites"}
#: Said wherever driver results are shown: association, not cause, without jargon.
ASSOCIATION = ("These are parts of the culture that go together with seeking help early "
               "in the answers, not proof that changing one will change the other.")
#: Readers' words for the peer groups (site types).
PEER_WORDS = {"acute_trust": "acute trusts", "primary_care": "primary care networks",
              "professional_support_unit": "professional support units",
              "independent_support_org": "independent support organisations"}


def peer_words(group: str | None) -> str:
    return PEER_WORDS.get(group or "", (group or "").replace("_", " "))


@dataclass(frozen=True)
class DriverView:
    """The driver model a site is shown, and every scale's row in it."""

    scope: str            # "site", "peer" or "national"
    unit: str
    label: str            # whose answers the model rests on, for a heading
    whose: str            # the same for a sentence: "doctors in acute trusts"
    n: int
    rows: pd.DataFrame    # one row a scale, largest share first (see `site_drivers`)
    #: With the help-seeking model: the used-support model the same reader is shown
    #: (`used_support`), or None when none was published.
    support: DriverView | None = None


def _model(layer: PublishedLayer, site: str | None, peer_group: str | None, wave: int,
           outcome: str) -> tuple[str, str, pd.DataFrame]:
    for scope, unit in (("site", site), ("peer", peer_group), ("national", "national")):
        if unit is None:
            continue
        rows = layer.drivers(scope, unit, wave, outcome)
        if len(rows):
            return scope, unit, rows
    return "national", "national", pd.DataFrame()


def site_drivers(layer: PublishedLayer, site: str | None, wave: int,
                 site_name: str = "your site", outcome: str = OUTCOME) -> DriverView | None:
    """The model a site is shown (its own, else its peer group's, else all sites'), its
    rows with the site's verdict and score on each scale, the quadrant and the guide's
    actions for the scale's principles; None when no model was published for the wave.

    rows: scale, name, share, share_low, share_high, relative_weight, rank, n, sites,
    principles, verdict, score (out of 100), difference (points from the other sites'
    average), important, below, quadrant, actions (titles, "; ").
    With `site` None (a researcher) the national model is given, without a site's part.
    """
    row = layer.site_row(site) if site else None
    peer_group = row["site_type"] if row else None
    scope, unit, rows = _model(layer, site, peer_group, wave, outcome)
    if rows.empty:
        return None
    n = int(rows["n"].iloc[0])
    whose = {"site": f"doctors at {site_name}",
             "peer": f"doctors in {peer_words(unit)}",
             "national": "doctors at all sites"}[scope]
    label = {"site": f"{site_name}'s own answers (n = {n:,})",
             "peer": f"your peer group, {peer_words(unit)} (n = {n:,}): {site_name} has too "
                     f"few answers for a model of its own",
             "national": f"all sites (n = {n:,})"}[scope]
    if scope == "national" and site:
        label += f": {site_name} has too few answers, and its peer group too few sites, " \
                 f"for a model of their own"
    rows = rows.copy()
    rows["important"] = rows["share"] > 1 / len(rows)
    if site:
        verdicts = layer.site_verdicts(site, wave)
        verdicts = verdicts[verdicts["measure_kind"] == "scale"].set_index("measure")
        rows["verdict"] = rows["scale"].map(verdicts["verdict"])
        rows["score"] = rows["scale"].map(verdicts["mean"]).map(
            lambda v: to_score(v, "scale") if pd.notna(v) else float("nan"))
        # Points out of 100 from the other sites' average: where the site stands.
        rows["difference"] = rows["scale"].map(25 * (verdicts["mean"] - verdicts["others_mean"]))
        rows["below"] = rows["verdict"].isin(BELOW)
        rows["quadrant"] = [QUADRANTS[(bool(i), bool(b))] for i, b in
                            zip(rows["important"], rows["below"])]
    else:
        rows["verdict"], rows["score"], rows["difference"] = None, float("nan"), float("nan")
        rows["below"], rows["quadrant"] = False, None
    actions = layer.actions()
    rows["actions"] = [_actions_for(actions, principles) for principles in rows["principles"]]
    support = used_support(layer, peer_group, wave) if outcome == OUTCOME else None
    return DriverView(scope, unit, label, whose, n, rows.reset_index(drop=True), support)


def used_support(layer: PublishedLayer, peer_group: str | None, wave: int
                 ) -> DriverView | None:
    """The logistic model of using support among those who needed it that a site of
    `peer_group` is shown: its peer group's when published, else all sites'; None when
    neither was (the national one for a researcher, `peer_group` None). Rows as the
    layer's `drivers`, largest share first, share_low / share_high the one-step
    site-bootstrap interval (NULL when too few sites to resample)."""
    scope, unit, rows = "national", "national", pd.DataFrame()
    if peer_group:
        scope, unit, rows = "peer", peer_group, layer.drivers("peer", peer_group, wave, USED)
    if rows.empty:
        scope, unit, rows = "national", "national", layer.drivers("national", "national",
                                                                 wave, USED)
    if rows.empty:
        return None
    n = int(rows["n"].iloc[0])
    whose = (f"doctors in {peer_words(unit)}" if scope == "peer" else "doctors at all sites")
    label = (f"your peer group, {peer_words(unit)} (n = {n:,} who needed support)"
             if scope == "peer" else f"all sites (n = {n:,} who needed support)")
    return DriverView(scope, unit, label, whose, n, rows.reset_index(drop=True))


def used_sentence(view: DriverView) -> str:
    """"Among doctors in acute trusts who needed support, access to support goes most
    with using it (52%, 95% range 47% to 57%, of what the eight scales explain
    together)."; the range left out when none was published."""
    first = view.rows.sort_values("rank").iloc[0]
    interval = ("" if pd.isna(first["share_low"]) else
                f", 95% range {first['share_low']:.0%} to {first['share_high']:.0%},")
    return (f"Among {view.whose} who needed support, {first['name'].lower()} goes most "
            f"with using it ({first['share']:.0%}{interval} of what the "
            f"{count_in_words(len(view.rows))} scales explain together).")


def _actions_for(actions: pd.DataFrame, principles) -> str:
    ids = [p for p in str(principles or "").split(",") if p]
    chosen = actions[actions["principle"].isin(ids)]
    return "; ".join(dict.fromkeys(str(t) for t in chosen["title"]))


def driver_sentence(view: DriverView) -> str:
    """"Among doctors in acute trusts, help-seeking stigma goes most with seeking help
    early (36% of what the eight scales explain together), then ... and ...."""
    top = view.rows.sort_values("rank").head(3)
    first = top.iloc[0]
    rest = [f"{r.name.lower()} ({r.share:.0%})" for r in top.iloc[1:].itertuples()]
    sentence = (f"Among {view.whose}, {first['name'].lower()} goes most with seeking help "
                f"early ({first['share']:.0%} of what the {count_in_words(len(view.rows))} "
                "scales explain together)")
    if rest:
        sentence += ", then " + " and ".join(rest)
    return sentence + "."


def priorities(view: DriverView) -> pd.DataFrame:
    """The rows in the priority quadrant (high importance, below other sites)."""
    return view.rows[view.rows["important"] & view.rows["below"]]


def outcome_name(outcome: str = OUTCOME) -> str:
    return DRIVER_OUTCOMES.get(outcome, outcome)
