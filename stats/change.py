"""Did it move? A site's change in a score against its peers' change over the same waves.

A site that acted on a principle wants to know, a wave or two later, whether its score
moved. Its own change is not the answer: culture drifts everywhere (the sample's
generator plants a common rise of every scale each wave), and a survey's change has
sampling error. The question this module answers is the difference in differences

    D = (y_after - y_before) - mean_j (y_after,j - y_before,j)

the site's change minus the average change of the other sites of its peer group over
the same two waves (each peer counted once, as in the peer group's mean).

Its uncertainty has two parts:

* the site's own sampling error of its change, se_before^2 + se_after^2 (the two waves
  are different samples of staff; any overlap of respondents would make the true error
  smaller, so this errs wide);
* the peers' average change, treated as a sample of m peer changes: its variance is
  s^2 / m, s^2 the between-peer variance of their changes. That spread holds both the
  peers' sampling error and the real differences between their years, without a model.
  A random-effects pool (tau^2 by REML) was not used: with the three to six peers of a
  peer group tau^2 is often estimated at or near zero (see stats.verdicts), which would
  make the peers' average look surer than three sites can be. s^2 is floored at the
  peers' mean sampling variance of a change, which their spread cannot truly be below:
  with three peers the sample variance of their changes falls under a third of its
  expectation about a quarter of the time.

The interval is D -/+ t * sqrt(v_site + s^2 / m), with t on Welch-Satterthwaite degrees
of freedom (v_site + s^2/m)^2 / ((s^2/m)^2 / (m - 1)): the site's part is taken as known
(a sample of ten or more respondents per wave), the peers' part as estimated from m.
In R, with the site first: ``d <- after - before; D <- d[1] - mean(d[-1]);
vp <- max(var(d[-1]), mean(se_b[-1]^2 + se_a[-1]^2)) / m; v <- se_b[1]^2 + se_a[1]^2 + vp;
df <- v^2 / (vp^2 / (m - 1)); D + c(-1, 1) * qt(.975, df) * sqrt(v)``.

Verdicts, in the words every reader shows (`published.layout.MOVED_VERDICTS`), as the
site comparison's (`stats.verdicts`):

    clearly did better / worse than peers      the 95% interval excludes 0
    did better / worse than peers, not certain the 90% interval excludes 0, the 95% not
    moved with peers                           neither
    not compared                             fewer than MIN_PEERS peers with a score in
                                             both waves, or no score before or after

"Better" is up the 0-100 scale (more supportive), whichever way the scores went: a site
whose score fell less than its peers' did better than them (the words once said "moved
more", which read oddly of a score that fell). This is what happened alongside an action, not proof that
the action caused it: anything else that changed at the site over those years moved the
score too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from survey.errors import CultureError

#: Fewest other sites of the peer group whose change makes a comparison (as the site
#: comparison's MIN_OTHER_SITES): the spread of one or two changes is no yardstick.
MIN_PEERS = 3
#: Level of the interval, and of the narrower one outside which a change is "not certain".
LEVEL = 0.95
NOT_CERTAIN_LEVEL = 0.90

#: Lowest first, as `stats.verdicts.VERDICTS`; `published.layout.MOVED_VERDICTS` holds
#: the same words for readers.
VERDICTS = ("clearly did worse than peers", "did worse than peers, not certain",
            "moved with peers", "did better than peers, not certain",
            "clearly did better than peers")
NOT_COMPARED = "not compared"


class ChangeError(CultureError):
    """The inputs of a comparison are not numbers of the shape it needs."""


@dataclass(frozen=True)
class Movement:
    """One site's change against its peers' over the same two waves (0-100 points).

    site_change, site_change_se   the site's change and its sampling error
    peers_change, peers_change_se the peers' average change and its error (from their
                                  spread; see the module's note)
    peers                         how many peers' changes were averaged
    difference, low, high         the difference in differences and its 95% interval
    df                            the interval's degrees of freedom
    verdict                       one of VERDICTS, or NOT_COMPARED
    reason                        why not compared ("" when compared)
    """

    site_change: float
    site_change_se: float
    peers_change: float
    peers_change_se: float
    peers: int
    difference: float
    low: float
    high: float
    df: float
    verdict: str
    reason: str = ""


def _not_compared(reason: str, site_change: float = np.nan, site_change_se: float = np.nan,
                  peers: int = 0) -> Movement:
    return Movement(site_change, site_change_se, np.nan, np.nan, peers, np.nan, np.nan,
                    np.nan, np.nan, NOT_COMPARED, reason)


def moved_against_peers(before: float, before_se: float, after: float, after_se: float,
                        peers_before, peers_before_se, peers_after, peers_after_se
                        ) -> Movement:
    """The site's change from `before` to `after` against its peers' changes.

    `before`, `after` and their SEs are the site's score in the two waves; the `peers_*`
    are arrays, one entry per other site of its peer group, in the same order (a peer
    without a score in either wave is left out by the caller, or given as NaN and left
    out here). Returns a `Movement`; NOT_COMPARED with its reason when the site has no
    score in a wave or fewer than MIN_PEERS peers have one in both.
    """
    site = np.array([before, before_se, after, after_se], float)
    peers = [np.asarray(a, float).ravel() for a in (peers_before, peers_before_se,
                                                   peers_after, peers_after_se)]
    if len({len(a) for a in peers}) != 1:
        raise ChangeError(f"the peers' scores and SEs need one entry per peer; got lengths "
                          f"{[len(a) for a in peers]}")
    if np.any(site[[1, 3]] < 0) or any(np.any(a < 0) for a in (peers[1], peers[3])):
        raise ChangeError("a standard error cannot be negative")
    if not np.all(np.isfinite(site)):
        return _not_compared("the site has no shown score in one of the two waves")
    site_change = site[2] - site[0]
    site_var = site[1] ** 2 + site[3] ** 2
    complete = np.all(np.isfinite(np.vstack(peers)), axis=0)
    m = int(complete.sum())
    if m < MIN_PEERS:
        return _not_compared(f"{m} other site{'' if m == 1 else 's'} of the peer group "
                             f"with a shown score in both waves; {MIN_PEERS} or more are "
                             f"needed", site_change, float(np.sqrt(site_var)), m)
    b, b_se, a, a_se = (x[complete] for x in peers)
    changes = a - b
    spread = max(float(np.var(changes, ddof=1)), float(np.mean(b_se ** 2 + a_se ** 2)))
    peers_var = spread / m
    total = site_var + peers_var
    df = total ** 2 / (peers_var ** 2 / (m - 1))
    difference = site_change - float(changes.mean())
    half = stats.t.ppf(0.5 + LEVEL / 2, df) * np.sqrt(total)
    half_uncertain = stats.t.ppf(0.5 + NOT_CERTAIN_LEVEL / 2, df) * np.sqrt(total)
    return Movement(
        site_change=float(site_change), site_change_se=float(np.sqrt(site_var)),
        peers_change=float(changes.mean()), peers_change_se=float(np.sqrt(peers_var)),
        peers=m, difference=difference, low=difference - half, high=difference + half,
        df=float(df), verdict=_verdict(difference, half, half_uncertain))


def _verdict(difference: float, half: float, half_uncertain: float) -> str:
    size = abs(difference)
    if size > half:
        return VERDICTS[4] if difference > 0 else VERDICTS[0]
    if size > half_uncertain:
        return VERDICTS[3] if difference > 0 else VERDICTS[1]
    return VERDICTS[2]
