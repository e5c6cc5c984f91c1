"""Instrument version 2.0 (issue 22, point 2, the wording): split double-barrelled items,
an introduction that defines its places, pw07 asked only of those it can apply to, a true
time claim, and which items compare with version 1.0."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from survey.errors import InstrumentError
from survey.instrument import load_instrument, parse_instrument
from survey.instrument_versions import DROPPED, NEW, SAME, WITHIN, compare_instruments
from survey.questionnaire import claimed_minutes, estimated_seconds
from survey.settings import DEFAULT_INSTRUMENT, INSTRUMENTS_DIR, SAMPLES_DIR
from survey.synthetic import SAMPLE_SITES, generate_responses
from tests.conftest import culture

V1_PATH = INSTRUMENTS_DIR / "support-culture-v1.yaml"
V2_PATH = INSTRUMENTS_DIR / "support-culture-v2.yaml"
TRAINING = ("foundation", "resident", "gp_resident")


@pytest.fixture(scope="module")
def v1():
    return load_instrument(V1_PATH)


@pytest.fixture(scope="module")
def v2():
    return load_instrument(V2_PATH)


@pytest.fixture(scope="module")
def v2_raw() -> dict:
    return yaml.safe_load(V2_PATH.read_text(encoding="utf-8"))


def test_v1_stays_the_default_and_the_samples_use_it():
    assert DEFAULT_INSTRUMENT == V1_PATH
    manifest = json.loads((SAMPLES_DIR / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["instrument"] == "support-culture@1.0"


def test_double_barrelled_items_are_split_into_new_items(v1, v2):
    texts = {item.id: item.text for item in v2.items}
    assert not {"cf02", "sv01", "vp04"} & set(texts)
    replaced = {item.id: item.replaces for item in v2.items if item.replaces}
    assert replaced == {"cf05": ("cf02",), "cf06": ("cf02",), "sv05": ("sv01",),
                        "sv06": ("sv01",), "sv07": ("sv01",), "vp06": ("vp04",),
                        "vp07": ("vp04",)}
    # Each new statement asks one thing: one fear, one factor, one way of working.
    for ident in replaced:
        assert " or " not in texts[ident] and ", or" not in texts[ident], ident
    assert "record" in texts["cf05"] and "supervisors" not in texts["cf05"]
    assert "supervisors" in texts["cf06"] and "record" not in texts["cf06"]
    factors = {"rota": "sv05", "workload": "sv06", "team": "sv07"}
    for word, ident in factors.items():
        assert [i for i in factors.values() if word in texts[i]] == [ident]
    assert "less than full time" in texts["vp06"] and "different" not in texts["vp06"]
    assert "less than full time" not in texts["vp07"]
    # The new items keep their construct's keying, scale and principle.
    old = {item.id: item for item in v1.items}
    for new_id, (old_id,) in replaced.items():
        new = next(i for i in v2.items if i.id == new_id)
        assert (new.scale, new.reverse, new.principles) == \
            (old[old_id].scale, old[old_id].reverse, old[old_id].principles)
    # v1's double-barrelled wording, for the record of what was split.
    assert "on my record or reach my supervisors" in old["cf02"].text


def test_introduction_says_what_here_team_and_organisation_mean(v1, v2):
    intro = v2.introduction
    for term in ('"here"', '"my team"', '"my organisation"', '"my workplace"'):
        assert term in intro, term
    assert "rotate" in intro and "current placement" in intro
    assert "rotate" not in v1.introduction
    # The anonymity promise is carried over word for word.
    promise = v1.introduction[v1.introduction.index("It is anonymous"):]
    assert intro.endswith(promise)


def test_pw07_is_asked_only_outside_training(v1, v2):
    pw07 = next(i for i in v2.items if i.id == "pw07")
    assert pw07.text == next(i for i in v1.items if i.id == "pw07").text
    assert pw07.asked_if.attribute == "staff_group"
    assert pw07.asked_if.codes == ("sas", "consultant", "locally_employed", "gp")
    assert not set(TRAINING) & set(pw07.asked_if.codes)
    assert [i.id for i in v2.items if i.asked_if] == ["pw07"]
    assert pw07.asked_if.describe(v2) == ("asked only of: SAS doctor (specialty, associate "
                                          "specialist, specialist), Consultant, Locally "
                                          "employed doctor, General practitioner")


def test_time_claim_matches_the_estimate(v1, v2):
    """6-8 s an agreement item, 4-6 s a short question, the introduction read at 200-250 wpm."""
    # v1: 45 agreement items, 2 yes/no and 6 about-you questions, 65 words.
    assert estimated_seconds(v1) == (318, 428)
    # v2: 49 agreement items (pw07 skipped when quick), 8 short questions, 119 words.
    assert estimated_seconds(v2) == (349, 476)

    def holds(instrument) -> bool:
        quick, slow = estimated_seconds(instrument)
        least, most = claimed_minutes(instrument)
        return least <= (quick + slow) / 2 / 60 <= most

    # "About five minutes" for 53 questions was optimistic: 5.3 to 7.1 minutes.
    assert claimed_minutes(v1) == (5, 5) and not holds(v1)
    assert claimed_minutes(v2) == (6, 8) and holds(v2)
    quick, slow = estimated_seconds(v2)
    assert (round(quick / 60), round(slow / 60)) == claimed_minutes(v2)
    assert len(v2.items) + len(v2.attributes) == 57


def test_changelog_lists_every_change(v2):
    assert v2.previous_version == "1.0"
    (entry,) = v2.changelog
    assert entry.version == "2.0"
    text = " ".join(entry.changes)
    for word in ("cf02", "sv01", "vp04", "pw07", "introduction", "minutes"):
        assert word in text


# --- comparable across versions -------------------------------------------------------------

def test_compare_says_which_items_and_scales_compare(v1, v2):
    result = compare_instruments(v1, v2)
    by_status: dict[str, list] = {}
    for row in result.items:
        by_status.setdefault(row.status, []).append(row)
    assert len(by_status[SAME]) == 43
    assert all(r.old_id == r.new_id for r in by_status[SAME])
    (within,) = by_status[WITHIN]
    assert (within.old_id, within.new_id) == ("pw07", "pw07")
    assert "sas, consultant, locally_employed, gp" in within.note
    assert sorted(r.new_id for r in by_status[NEW]) == ["cf05", "cf06", "sv05", "sv06", "sv07",
                                                        "vp06", "vp07"]
    assert {r.old_id: r.note for r in by_status[DROPPED]} == {
        "cf02": "replaced by cf05, cf06", "sv01": "replaced by sv05, sv06, sv07",
        "vp04": "replaced by vp06, vp07"}
    comparable = result.comparable_items()
    assert len(comparable) == 44 and comparable["hs01"] == "hs01" and "cf05" not in comparable
    assert {s.scale_id: s.comparable for s in result.scales} == {
        "stigma": True, "psysafety": True, "pathways": False, "confidentiality": False,
        "systems_view": False, "development": True, "voice_peer": False,
        "leader_modelling": True}


def test_a_false_same_as_claim_is_refused(v1, v2_raw):
    data = copy.deepcopy(v2_raw)
    hs01 = next(i for i in data["items"] if i["id"] == "hs01")
    hs01["text"] = "Around here, a doctor who asks for help is seen as weak."
    changed = parse_instrument(data, "v2-edited.yaml")
    with pytest.raises(InstrumentError, match=r"item 'hs01': same_as 'hs01' but the wording "
                                              r"differ.*new id and `replaces: \[hs01\]`"):
        compare_instruments(v1, changed)
    data = copy.deepcopy(v2_raw)
    next(i for i in data["items"] if i["id"] == "hs02")["reverse"] = False
    with pytest.raises(InstrumentError, match="'hs02'.*reverse keying differ"):
        compare_instruments(v1, parse_instrument(data, "v2-edited.yaml"))
    data = copy.deepcopy(v2_raw)
    next(i for i in data["items"] if i["id"] == "hs03")["same_as"] = "hs99"
    with pytest.raises(InstrumentError, match="same_as 'hs99' is not an item of "
                                              "support-culture@1.0"):
        compare_instruments(v1, parse_instrument(data, "v2-edited.yaml"))


def test_compare_needs_the_earlier_version_first(v1, v2):
    with pytest.raises(InstrumentError, match="give the earlier version first"):
        compare_instruments(v2, v1)
    with pytest.raises(InstrumentError, match="names 1.0 as the version it revises, not 2.0"):
        compare_instruments(v2, v2)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["items"][0].update(asked_if={"attribute": "grade", "in": ["sas"]}),
     "item 'hs01', field 'asked_if': 'grade' is not an attribute"),
    (lambda d: d["items"][0].update(asked_if={"attribute": "staff_group", "in": ["surgeon"]}),
     "item 'hs01', field 'asked_if': 'surgeon' is not an option of 'staff_group'"),
    (lambda d: d.pop("previous_version"),
     "item 'hs01', field 'same_as' / 'replaces': name the version"),
])
def test_bad_routing_and_version_links_are_named(v2_raw, edit, message):
    data = copy.deepcopy(v2_raw)
    edit(data)
    with pytest.raises(InstrumentError, match=message):
        parse_instrument(data, "v2-edited.yaml")


def test_cli_compare(tmp_path):
    result = culture("instrument", "compare", V1_PATH, V2_PATH)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("support-culture@1.0 -> support-culture@2.0: 44 items "
                                    "compare item by item (43 unchanged")
    for ident in ("cf05", "sv07", "vp06", "replaced by cf05, cf06", "same within groups"):
        assert ident in result.stdout
    backwards = culture("instrument", "compare", V2_PATH, V1_PATH)
    assert backwards.exit_code == 1
    assert backwards.stderr.startswith("error: support-culture@2.0 revises support-culture@1.0")
    assert "Traceback" not in backwards.stderr + backwards.stdout


def test_generator_skips_pw07_for_doctors_in_training(v2):
    table, _ = generate_responses(v2, list(SAMPLE_SITES[:3]), [2026], seed=5, outliers=[])
    rows = table.select(["staff_group", "pw07", "pw01"]).to_pylist()
    training = [r for r in rows if r["staff_group"] in TRAINING]
    others = [r for r in rows if r["staff_group"] in ("sas", "consultant")]
    assert len(training) > 100 and len(others) > 50
    assert all(r["pw07"] is None for r in training)
    assert sum(r["pw07"] is not None for r in others) > 0.9 * len(others)
    # Only the routed item: the others are answered by trainees as before.
    assert sum(r["pw01"] is not None for r in training) > 0.9 * len(training)


def test_cli_check_states_the_time_and_the_routing():
    v2 = culture("instrument", "check", V2_PATH)
    assert v2.exit_code == 0 and v2.stderr == ""
    assert "pw07: asked only of: SAS doctor" in v2.stdout
    assert ("5.8 to 7.9 minutes to answer (6-8 s an agreement item); the introduction's "
            "claim holds") in v2.stdout
    v1 = culture("instrument", "check", V1_PATH)
    assert v1.exit_code == 0        # a warning, not an error: 1.0 stays usable
    assert v1.stderr == ("warning: 5.3 to 7.1 minutes to answer (6-8 s an agreement item), "
                         "but the introduction promises 5 minutes; change the claim\n")
