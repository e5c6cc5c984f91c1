"""Respondent counts of anonymous peers, banded so that they cannot be followed.

An anonymous peer ("Peer 3") is renumbered in every view, but a site's exact number of
respondents is the same in every view of a wave (and nearly so across measures and
waves), so shown beside the label it would carry the site from view to view. Peers'
counts are therefore shown as bands, each holding at least `MIN_PEERS_PER_BAND` peers
of the view: bands start from a ladder of round numbers, and neighbouring rungs are
merged, lowest first, until each band holds enough peers. Every peer in a band reads
the same, so a band cannot single one out.

In a funnel plot a peer's point is drawn at its band's middle (geometric, as the
funnel's width goes with 1 / sqrt(n)). Its verdict is computed upstream from the exact n
and never changed here; it rests on the peer's own limits (what the other sites give a
site of its size), drawn as an interval at the point, not on a curve shared by all
points, so no x along the axis can put a point on the wrong side of its limits. Pure
functions: numbers in, numbers and labels out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

#: Round numbers the bands start from (respondents); the last band is open-ended.
LADDER = (0, 20, 50, 100, 150, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 7500,
          10_000, 20_000, 50_000)
#: Fewest peers a band may hold: with one, the band would be as good as the exact count.
MIN_PEERS_PER_BAND = 3


@dataclass(frozen=True)
class CountBand:
    """Respondent counts from `low` up to, not including, `high` (None: no upper end).

    The first band holds every count from 0 and the last has no upper end, so every
    count has a band; `shown_low` and `shown_high` are the ladder rungs around the
    band's own peers, which its label and its points keep to.
    """

    low: int
    high: int | None
    shown_low: int
    shown_high: int

    def holds(self, n: float) -> bool:
        return n >= self.low and (self.high is None or n < self.high)

    def label(self, k: int = 0) -> str:
        """'50-149', or '150 or more' for the last band; never below the threshold k."""
        low = max(self.shown_low, k)
        if self.high is None:
            return f"{low:,} or more"
        return f"{low:,}-{self.shown_high - 1:,}"

    def middle(self, k: int = 0) -> float:
        """The geometric middle of the band (never below the threshold k)."""
        return math.sqrt(max(self.shown_low, k, 1) * self.shown_high)


def count_bands(counts: Sequence[float], min_peers: int = MIN_PEERS_PER_BAND
                ) -> list[CountBand]:
    """Contiguous bands covering every count from 0 up, each holding at least
    `min_peers` of `counts` (all of them in one band when there are fewer)."""
    rungs = list(LADDER) + [None]
    per_rung = [sum(1 for n in counts if n >= lo and (hi is None or n < hi))
                for lo, hi in zip(rungs[:-1], rungs[1:])]
    bands: list[list[int]] = []  # rung indices, lowest first
    current: list[int] = []
    held = 0
    for index, count in enumerate(per_rung):
        current.append(index)
        held += count
        if held >= min_peers:
            bands.append(current)
            current, held = [], 0
    if current:  # the rungs left over hold too few: they join the band below
        if bands:
            bands[-1] += current
        else:
            bands.append(current)
    result = []
    for position, indices in enumerate(bands):
        low = rungs[indices[0]]
        high = None if position == len(bands) - 1 else rungs[indices[-1] + 1]
        inside = [n for n in counts if n >= low and (high is None or n < high)] or [0]
        shown_low = max(r for r in LADDER if r <= min(inside))
        shown_high = next((r for r in LADDER if r > max(inside)), int(max(inside) * 1.5) + 1)
        result.append(CountBand(low, high, shown_low, shown_high))
    return result


def band_of(n: float, bands: Sequence[CountBand]) -> CountBand:
    """The band holding `n` (bands cover every count from 0 up)."""
    return next(b for b in bands if b.holds(n))


def plotted_count(band: CountBand, k: int = 0) -> float:
    """Where a peer's point goes on a funnel's n axis: its band's middle, kept within the
    band's shown rungs and never below the threshold k."""
    low = max(band.shown_low, k, 1)
    high = max(band.shown_high - 1, low)
    return float(min(max(band.middle(k), low), high))
