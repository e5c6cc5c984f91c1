"""The instrument file: the shipped one is valid and complete; each kind of bad file is named."""

from __future__ import annotations

import copy

import pytest
import yaml

from survey.errors import InstrumentError
from survey.instrument import PRINCIPLE_IDS, load_instrument, normalise_label, parse_instrument
from survey.settings import DEFAULT_INSTRUMENT, INSTRUMENTS_DIR
from tests.conftest import culture


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(DEFAULT_INSTRUMENT.read_text(encoding="utf-8"))


def test_every_instrument_file_in_the_repository_is_valid():
    from pipeline.publish.actions import DEFAULT_ACTIONS, load_actions

    files = sorted(set(INSTRUMENTS_DIR.glob("*.yaml")) - {DEFAULT_ACTIONS})
    assert files, "instruments/ holds no instrument"
    for path in files:
        load_actions(load_instrument(path))


def test_actions_file_must_cover_every_principle(tmp_path, instrument):
    from pipeline.publish.actions import DEFAULT_ACTIONS, load_actions

    text = DEFAULT_ACTIONS.read_text(encoding="utf-8")
    broken = tmp_path / "actions.yaml"
    broken.write_text(text.replace("  P6:\n", "  P7:\n"), encoding="utf-8")
    with pytest.raises(InstrumentError, match="missing: P6, unknown: P7"):
        load_actions(instrument, broken)


def test_shipped_instrument_measures_what_the_guide_needs(instrument):
    core = {s.id: instrument.items_of(s.id) for s in instrument.scales if s.core}
    assert set(core) == {"stigma", "psysafety", "pathways"}
    for items in core.values():
        assert len(items) >= 6
        assert {i.reverse for i in items} == {True, False}
    short = [s for s in instrument.scales if not s.core]
    assert {s.id for s in short} == {"confidentiality", "systems_view", "development",
                                     "voice_peer", "leader_modelling"}
    assert all(len(instrument.items_of(s.id)) >= 3 for s in short)
    assert [p.id for p in instrument.principles] == list(PRINCIPLE_IDS)
    outcomes = {i.id for i in instrument.items if i.kind == "outcome"}
    assert outcomes == {"oc_intend", "oc_needed", "oc_used"}
    attributes = {a.id for a in instrument.attributes}
    assert attributes == {"staff_group", "contract", "pmq", "gender", "age_band", "ethnicity"}
    # At least half of a scale's items must be answered for a score.
    for scale in instrument.scales:
        assert scale.min_items * 2 >= len(instrument.items_of(scale.id))
    agree = instrument.response_scale("agree5")
    assert agree.codes == (1, 2, 3, 4, 5) and agree.missing_codes == (9,)
    assert agree.favourable == (4, 5)
    assert instrument.key == "support-culture@1.0"


def test_item_wording_is_unique_and_plain(instrument):
    texts = [normalise_label(i.text) for i in instrument.items]
    assert len(set(texts)) == len(texts)
    assert all(len(i.text.split()) <= 22 for i in instrument.items)


def test_labels_match_whatever_the_case_spacing_or_quote_style(instrument):
    lookup = instrument.response_scale("agree5").label_map()
    assert lookup[normalise_label("  STRONGLY   agree ")] == 5
    assert lookup[normalise_label("Don\u2019t know / prefer not to say")] is None
    assert lookup[normalise_label("neutral")] == 3


def _broken(raw: dict, change) -> dict:
    data = copy.deepcopy(raw)
    change(data)
    return data


def _item(data, ident):
    return next(i for i in data["items"] if i["id"] == ident)


BAD_FILES = {
    "wrong type names item and field": (
        lambda d: _item(d, "ps04").__setitem__("reverse", "sometimes"),
        "item 'ps04', field 'reverse'"),
    "missing field": (
        lambda d: _item(d, "hs02").pop("reverse"), "item 'hs02', field 'reverse': Field required"),
    "misspelt field": (
        lambda d: _item(d, "hs03").__setitem__("revers", True),
        "item 'hs03', field 'revers': Extra inputs are not permitted"),
    "unknown scale": (
        lambda d: _item(d, "cf01").__setitem__("scale", "trust"),
        "item 'cf01', field 'scale': 'trust' is not defined"),
    "unknown principle": (
        lambda d: _item(d, "sv01").__setitem__("principles", ["P9"]),
        "item 'sv01', field 'principles': 'P9' is not one of"),
    "duplicate item id": (
        lambda d: _item(d, "hs02").__setitem__("id", "hs01"),
        "item 'hs01': the id is used more than once"),
    "core scale too short": (
        lambda d: d.__setitem__("items", [i for i in d["items"] if i["id"] not in ("pw07", "pw08", "pw06")]),
        "scale 'pathways': a core scale needs at least 6 items, has 5"),
    "core scale keyed one way": (
        lambda d: [i.__setitem__("reverse", False) for i in d["items"] if i.get("scale") == "psysafety"],
        "scale 'psysafety': a core scale needs both positively and negatively worded items"),
    "principle not measured": (
        lambda d: d.__setitem__("principles", [p for p in d["principles"] if p["id"] != "P3"]),
        "the guide's principles ['P3'] are not measured"),
    "attribute without prefer not to say": (
        lambda d: d["attributes"][0].__setitem__(
            "options", [o for o in d["attributes"][0]["options"] if o["code"] != "prefer_not_to_say"]),
        "attribute 'staff_group', field 'options': every attribute needs a 'prefer_not_to_say'"),
    "reserved id": (
        lambda d: _item(d, "vp01").__setitem__("id", "wave"),
        "'wave': the id is reserved"),
    "unsafe id": (
        lambda d: _item(d, "vp02").__setitem__("id", "vp02; drop table responses"),
        "field 'id': String should match pattern"),
    "answer code too large": (
        lambda d: d["response_scales"][0]["options"][-1].__setitem__("code", 75),
        "field 'options': scored codes must be whole numbers from 0 to 60 (got [75])"),
    "min items above scale size": (
        lambda d: d["scales"][3].__setitem__("min_items", 9),
        "scale 'confidentiality', field 'min_items': 9 is more than the 4 items"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_each_kind_of_bad_file_is_named_precisely(case, raw, tmp_path):
    change, expected = BAD_FILES[case]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_broken(raw, change), sort_keys=False), encoding="utf-8")
    with pytest.raises(InstrumentError) as caught:
        load_instrument(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert expected in message


@pytest.mark.parametrize("content, expected", [
    ("items: [unclosed", "not valid YAML at line 1"),
    ("- just\n- a list\n", "should hold a mapping"),
])
def test_unparseable_files_name_the_problem(content, expected, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InstrumentError, match=expected):
        load_instrument(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(InstrumentError, match="no such instrument file"):
        load_instrument(tmp_path / "nope.yaml")


def test_parse_reports_every_problem_at_once(raw):
    data = _broken(raw, lambda d: (_item(d, "hs01").__setitem__("scale", "x"),
                                   _item(d, "hs02").__setitem__("scale", "y")))
    with pytest.raises(InstrumentError) as caught:
        parse_instrument(data, "mem.yaml")
    assert "item 'hs01'" in str(caught.value) and "item 'hs02'" in str(caught.value)


def test_cli_check_accepts_the_shipped_file_and_rejects_a_bad_one(raw, tmp_path):
    good = culture("instrument", "check", DEFAULT_INSTRUMENT)
    assert good.exit_code == 0, good.stderr
    assert "support-culture@1.0, 47 items in 8 scales" in good.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_broken(raw, BAD_FILES["unknown scale"][0])), encoding="utf-8")
    result = culture("instrument", "check", bad)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    assert "item 'cf01', field 'scale': 'trust' is not defined" in result.stderr
