"""Which items and scales compare across two versions of an instrument.

A later version names the version it revises (`previous_version`) and, for each item
kept unchanged, the earlier item it equals (`same_as`). `compare_instruments` checks
each such claim against the earlier file (same wording, keying, answer codes and scale:
anything else is an `InstrumentError`, since a wrong claim would join answers to
different questions) and says, item by item and scale by scale, what can be compared
across waves run on the two versions. An item asked only of some groups (`asked_if`) in
either version compares only within the groups asked in both.
"""

from __future__ import annotations

from dataclasses import dataclass

from survey.errors import InstrumentError
from survey.instrument import Instrument, Item

#: Item statuses, in the order a report lists them.
SAME, WITHIN, NEW, DROPPED = "same", "same within groups", "new", "dropped"


@dataclass(frozen=True)
class ItemComparison:
    """One item's fate between two versions."""

    status: str            # one of SAME, WITHIN, NEW, DROPPED
    old_id: str | None     # the item in the earlier version (None for a new item)
    new_id: str | None     # the item in the later version (None for a dropped item)
    note: str = ""

    @property
    def comparable(self) -> bool:
        return self.status in (SAME, WITHIN)


@dataclass(frozen=True)
class ScaleComparison:
    scale_id: str
    comparable: bool
    note: str


@dataclass(frozen=True)
class InstrumentComparison:
    old: Instrument
    new: Instrument
    items: tuple[ItemComparison, ...]
    scales: tuple[ScaleComparison, ...]

    def comparable_items(self) -> dict[str, str]:
        """Later-version item id -> earlier-version item id, for items that compare."""
        return {c.new_id: c.old_id for c in self.items if c.comparable}


def _answers(instrument: Instrument, item: Item) -> tuple:
    rs = instrument.response_scale(item.response_scale)
    return tuple((o.code, o.label) for o in (*rs.options, *rs.missing)), rs.favourable


def _groups(item: Item) -> tuple[str, frozenset[str]] | None:
    return (item.asked_if.attribute, frozenset(item.asked_if.codes)) if item.asked_if else None


def compare_instruments(old: Instrument, new: Instrument) -> InstrumentComparison:
    """What compares between `old` and the version `new` revises it into."""
    if old.instrument != new.instrument:
        raise InstrumentError(f"{old.key} and {new.key} are different instruments; only "
                              f"versions of one instrument compare")
    if old.previous_version == new.version:
        raise InstrumentError(f"{old.key} revises {new.key}: give the earlier version "
                              f"first, then the later one")
    if new.previous_version != old.version:
        said = new.previous_version or "no earlier version"
        raise InstrumentError(f"{new.key} names {said} as the version it revises, not "
                              f"{old.version}; compare it with that version")
    old_items = {item.id: item for item in old.items}
    results: list[ItemComparison] = []
    claimed: set[str] = set()
    replaced_by: dict[str, list[str]] = {}
    for item in new.items:
        for gone in item.replaces:
            if gone not in old_items:
                raise InstrumentError(f"{new.key}, item '{item.id}': replaces '{gone}', which "
                                      f"is not an item of {old.key}")
            replaced_by.setdefault(gone, []).append(item.id)
        if item.same_as is None:
            note = f"replaces {', '.join(item.replaces)} (new wording)" if item.replaces else ""
            results.append(ItemComparison(NEW, None, item.id, note))
            continue
        before = old_items.get(item.same_as)
        if before is None:
            raise InstrumentError(f"{new.key}, item '{item.id}': same_as '{item.same_as}' is "
                                  f"not an item of {old.key}")
        differs = [what for what, a, b in (
            ("wording", before.text, item.text), ("reverse keying", before.reverse, item.reverse),
            ("answer options", _answers(old, before), _answers(new, item)),
            ("scale", before.scale, item.scale), ("kind", before.kind, item.kind)) if a != b]
        if differs:
            raise InstrumentError(f"{new.key}, item '{item.id}': same_as '{item.same_as}' but "
                                  f"the {' and '.join(differs)} differ; an item that changed "
                                  f"needs a new id and `replaces: [{item.same_as}]`")
        claimed.add(before.id)
        old_groups, new_groups = _groups(before), _groups(item)
        if old_groups == new_groups:
            results.append(ItemComparison(SAME, before.id, item.id))
        else:
            asked = [g for g in (old_groups, new_groups) if g]
            attributes = {g[0] for g in asked}
            if len(attributes) > 1:
                results.append(ItemComparison(NEW, None, item.id, "asked of different "
                                              "groups in each version"))
                claimed.discard(before.id)
                continue
            common = frozenset.intersection(*(g[1] for g in asked))
            routed = item if new_groups else before
            labels = {o.code: o.label for a in new.attributes if a.id == routed.asked_if.attribute
                      for o in a.options}
            order = [o for o in labels if o in common]
            which = ({old.version, new.version} if len(asked) == 2
                     else {(new if new_groups else old).version})
            results.append(ItemComparison(
                WITHIN, before.id, item.id,
                f"compare only among {routed.asked_if.attribute} = {', '.join(order)} "
                f"({' and '.join(sorted(which))} ask{'s' if len(which) == 1 else ''} only some "
                f"groups)"))
    for item in old.items:
        if item.id not in claimed:
            by = replaced_by.get(item.id)
            results.append(ItemComparison(DROPPED, item.id, None,
                                          f"replaced by {', '.join(by)}" if by else ""))
    scales = tuple(_compare_scale(old, new, scale.id, results)
                   for scale in new.scales)
    return InstrumentComparison(old, new, tuple(results), scales)


def _compare_scale(old: Instrument, new: Instrument, scale_id: str,
                   items: list[ItemComparison]) -> ScaleComparison:
    """A scale score compares only when it is made of the same items, asked of the same people."""
    if scale_id not in {s.id for s in old.scales}:
        return ScaleComparison(scale_id, False, f"not in {old.key}")
    new_ids = {i.id for i in new.items_of(scale_id)}
    old_ids = {i.id for i in old.items_of(scale_id)}
    same = {c.new_id for c in items if c.status == SAME}
    mapped = {c.old_id for c in items if c.status == SAME and c.new_id in new_ids}
    routed = {c.new_id for c in items if c.status == WITHIN}
    changed = sorted(f"{ident} (asked of some groups only)" if ident in routed else ident
                     for ident in (new_ids - same) | (old_ids - mapped - routed))
    if not changed:
        if old.scale(scale_id).min_items != new.scale(scale_id).min_items:
            return ScaleComparison(scale_id, False, "same items, but a different least "
                                                    "number of answers for a score")
        return ScaleComparison(scale_id, True, "same items")
    return ScaleComparison(scale_id, False, f"items changed: {', '.join(changed)}; compare "
                                            f"its unchanged items one by one")
