"""The export's codebook stands alone (issue 22, points 6-9): every measure described,
answer distributions exported, value labels in questionnaire order, licence and
citation, and a valid CITATION.cff."""

from __future__ import annotations

from pathlib import Path

import duckdb
import frictionless
import pandas as pd
import pyreadstat
import pytest
import yaml

from outputs.export import AGGREGATE_FORMATS, export_aggregates

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def exported(published_sample, tmp_path_factory):
    settings, _ = published_sample
    out = tmp_path_factory.mktemp("codebook")
    report = export_aggregates(settings.published_path, out, list(AGGREGATE_FORMATS))
    return settings, report, out


def published(settings, sql):
    with duckdb.connect(str(settings.published_path), read_only=True) as con:
        return con.execute(sql).df()


def test_codebook_csv_gives_every_items_scale_keying_and_options(exported):
    _, _, out = exported
    book = pd.read_csv(out / "codebook.csv", keep_default_na=False).set_index("measure")
    cf02 = book.loc["cf02"]
    assert cf02["name"].startswith("I worry that using support")
    assert (cf02["scale"], cf02["scale_name"]) == ("confidentiality", "Trust in confidentiality")
    assert cf02["reverse_keyed"] == "1" and book.loc["cf03", "reverse_keyed"] == "0"
    assert cf02["answer_options"] == ("1 = Strongly disagree; 2 = Disagree; 3 = Neither agree "
                                      "nor disagree; 4 = Agree; 5 = Strongly agree")
    assert cf02["favourable_options"] == "1, 2"           # disagreeing is favourable
    assert book.loc["cf03", "favourable_options"] == "4, 5"
    assert cf02["no_answer_option"].startswith("9 = Don't know")
    assert book.loc["stigma", "measure_kind"] == "scale"
    assert set(book["measure_kind"]) == {"responses", "scale", "principle", "item"}


def test_codebook_md_and_package_say_means_are_scored_and_carry_licence_and_citation(
        exported):
    _, _, out = exported
    text = (out / "codebook.md").read_text(encoding="utf-8")
    assert "**scored direction**" in text and "6 - mean" in text
    assert "| cf02 | I worry that using support" in text
    assert "| yes | 1 = Strongly disagree;" in text
    package = frictionless.Package(str(out / "datapackage.json"))
    assert package.licenses[0]["name"] == "CC-BY-4.0"
    descriptor = package.to_descriptor()
    assert "Culture of support contributors" in descriptor["citation"]
    assert "MIT" in descriptor["instrumentLicense"]
    mean = next(f for f in package.get_resource("item-csv").schema.fields if f.name == "mean")
    assert "scored direction" in mean.description and "6 - mean" in mean.description


@pytest.mark.slow   # frictionless reads every exported file
def test_package_with_codebook_and_answers_is_valid(exported):
    _, report, out = exported
    result = frictionless.validate(str(out / "datapackage.json"))
    assert result.valid, result.flatten(["rowNumber", "fieldName", "type", "note"])[:5]
    names = {task.name for task in result.tasks}
    assert {"codebook", "answers-csv", "answers-parquet", "answers-sav"} <= names


def test_answers_level_is_the_published_distribution(exported):
    settings, report, _ = exported
    path = next(f.path for f in report.files if (f.level, f.fmt) == ("answers", "csv"))
    rows = pd.read_csv(path)
    mine = rows[(rows["unit"] == "A") & (rows["wave"] == 2026) & (rows["measure"] == "cf02")]
    truth = published(settings, "select option_code, answers, pct from item_answers where "
                                "unit = 'A' and wave = 2026 and measure = 'cf02' "
                                "order by position")
    assert list(mine["option_position"]) == [1, 2, 3, 4, 5, 99]
    assert list(mine["answers"]) == list(truth["answers"])
    assert mine["pct_answers"].iloc[:5].tolist() == pytest.approx(truth["pct"].iloc[:5].tolist())
    assert list(mine["favourable"].iloc[:5]) == [1, 1, 0, 0, 0]


@pytest.mark.parametrize("fmt", ["sav", "dta"])
def test_value_labels_follow_the_questionnaire(exported, fmt):
    settings, report, _ = exported
    path = next(f.path for f in report.files if (f.level, f.fmt) == ("group", fmt))
    frame, meta = (pyreadstat.read_sav if fmt == "sav" else pyreadstat.read_dta)(str(path))
    labels = meta.variable_value_labels
    breakdown = {label: code for code, label in labels["breakdown"].items()}
    age = int(breakdown["Age band"])
    ages = {int(c): label for c, label in labels["group_label"].items() if c // 100 == age}
    assert ages == {age * 100 + 1: "Under 30", age * 100 + 2: "30-39", age * 100 + 3: "40-49",
                    age * 100 + 4: "50-59", age * 100 + 5: "60 or over",
                    age * 100 + 99: "Not stated (blank or prefer not to say)"}
    # Every row's group belongs to its own attribute's block, and reads as published.
    assert ((frame["group_value"] // 100) == frame["breakdown"]).all()
    groups = published(settings, "select breakdown, grp, label from groups")
    title = {int(c): b for b, c in ((b, breakdown[t]) for b, t in published(
        settings, "select distinct breakdown, attribute from groups").itertuples(index=False))}
    expected = {(b, g): label for b, g, label in groups.itertuples(index=False)}
    for row in frame.drop_duplicates(["breakdown", "group_value"]).itertuples():
        key = (title[int(row.breakdown)], labels["group_value"][row.group_value])
        assert labels["group_label"][row.group_label] == expected[key]
    # Measure names in the instrument's order: responses, then the scales as listed.
    names = [labels["measure_name"][c] for c in sorted(labels["measure_name"])]
    assert names[:3] == ["Responses", "Help-seeking stigma", "Team psychological safety"]


def test_citation_cff_is_cff_1_2_0():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0"
    assert isinstance(cff["message"], str) and cff["message"].strip()
    assert isinstance(cff["title"], str) and cff["title"].strip()
    assert cff["authors"] == [{"name": "Culture of support contributors"}]
    assert cff["license"] == "MIT" and cff["type"] in ("software", "dataset")
    allowed = {"cff-version", "message", "title", "authors", "type", "version", "license",
               "keywords", "abstract", "repository-code", "url", "date-released",
               "preferred-citation", "references", "identifiers", "doi", "commit"}
    assert set(cff) <= allowed


def test_pseudonymised_answers_leave_out_small_peer_groups_as_the_cells_do(published_sample,
                                                                          tmp_path):
    settings, _ = published_sample
    report = export_aggregates(settings.published_path, tmp_path, "csv", ["item", "answers"],
                               pseudonym_key="a key of twenty characters")
    files = {f.level: pd.read_csv(f.path) for f in report.files}
    for level, frame in files.items():
        assert set(frame.loc[frame["level"] == "peer", "unit"]) == {"acute_trust"}, level
        assert "site_name" not in frame.columns
    item_units = set(files["item"]["unit"])
    assert set(files["answers"]["unit"]) == item_units
    assert not item_units & {"A", "B", "C", "D", "E", "F", "G"}
