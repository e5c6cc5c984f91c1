"""Researcher exports: every file read back, labels, data package, threshold, pseudonyms,
formula injection, and the errors a user sees."""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import re
import zipfile
from pathlib import Path

import duckdb
import frictionless
import pandas as pd
import pyreadstat
import pytest

from outputs.export import (CODED_COLUMNS, COLUMN_LABELS, ENV_PSEUDONYM_KEY, AGGREGATE_FORMATS, AGGREGATE_LEVELS,
                             ExportError, export_aggregates, export_zip, pseudonymise)
from pipeline.psychometrics.stage import run_psychometrics
from pipeline.publish.writer import publish
from pipeline.store import open_store
from survey.settings import Settings
from tests.conftest import culture

K = 10
KEY = "correct horse battery staple"
#: Hostile site names and a region: each starts with a character a spreadsheet treats as
#: a formula (=, @, +, -, tab, carriage return).
PAYLOADS = {"A": '=HYPERLINK("http://x","y")', "B": "@SUM(1+1)", "C": "+44 Support Line",
            "D": "-2+3 Trust", "E": "\tTabbed Trust", "F": "\rReturned Trust"}
REGION_PAYLOAD = ("G", "=1+1")


@pytest.fixture(scope="module")
def hostile_published(sample_store, instrument):
    """The sample published (k = 10) after its site names were replaced by payloads."""
    settings = Settings(db_path=sample_store)
    with open_store(sample_store) as con:
        for code, name in PAYLOADS.items():
            con.execute("update sites set name = ? where site_code = ?", [name, code])
        con.execute("update sites set region = ? where site_code = ?", REGION_PAYLOAD[::-1])
        psychometrics = run_psychometrics(con, instrument, settings)
        publish(con, instrument, settings, psychometrics)
    return settings


@pytest.fixture(scope="module")
def exported(hostile_published, tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    report = export_aggregates(hostile_published.published_path, out, list(AGGREGATE_FORMATS))
    return hostile_published, report, out


def read_back(path: Path) -> pd.DataFrame:
    """A file as a DataFrame: CSV and Parquet by DuckDB, SPSS and Stata by pyreadstat."""
    if path.suffix == ".sav":
        return pyreadstat.read_sav(str(path))[0]
    if path.suffix == ".dta":
        return pyreadstat.read_dta(str(path))[0]
    reader = "read_parquet" if path.suffix == ".parquet" else "read_csv"
    with duckdb.connect() as con:
        return con.execute(f"select * from {reader}(?)", [str(path)]).df()


def published(settings, sql, params=()):
    with duckdb.connect(str(settings.published_path), read_only=True) as con:
        return con.execute(sql, list(params)).df()


def test_every_level_and_format_is_written_and_reads_back_equal(exported):
    settings, report, out = exported
    assert {(f.level, f.fmt) for f in report.files} == {(l, f) for l in AGGREGATE_LEVELS for f in AGGREGATE_FORMATS}
    cell = published(settings, "select * from cells where level = 'site' and unit = 'A' and "
                               "wave = 2026 and measure = 'psysafety' and breakdown = 'all'").iloc[0]
    alpha = published(settings, "select alpha, omega_total from reliability where level = "
                                "'site_wave' and site_code = 'A' and wave = 2026 and "
                                "scale = 'psysafety'").iloc[0]
    for file in report.files:
        frame = read_back(file.path)
        assert len(frame) == file.rows > 0, file.path
        if file.level != "site":
            continue
        row = frame[(frame["unit"] == "A") & (frame["wave"] == 2026)
                    & (frame["measure"] == "psysafety")]
        assert len(row) == 1, file.path
        row = row.iloc[0]
        assert row["n"] == cell["n"] == 240
        assert row["mean"] == pytest.approx(cell["mean"], rel=1e-12)
        assert row["ci_high"] == pytest.approx(cell["ci_high"], rel=1e-12)
        assert row["pct_favourable"] == pytest.approx(cell["pct_favourable"], rel=1e-12)
        assert row["alpha"] == pytest.approx(alpha["alpha"], rel=1e-12)
        assert row["omega_total"] == pytest.approx(alpha["omega_total"], rel=1e-12)
    shown = published(settings, "select count(*) as n from cells where breakdown <> 'all'")
    group_rows = {f.fmt: f.rows for f in report.files if f.level == "group"}
    assert set(group_rows.values()) == {int(shown["n"].iloc[0])}


def test_principle_level_carries_each_sites_gap(exported):
    settings, report, _ = exported
    gaps = published(settings, "select * from principle_gaps where site_code = 'D' and "
                               "wave = 2026").set_index("principle")
    frame = read_back(next(f.path for f in report.files
                           if (f.level, f.fmt) == ("principle", "parquet")))
    site = frame[(frame["unit"] == "D") & (frame["wave"] == 2026)].set_index("measure")
    assert sorted(site.index) == [f"P{i}" for i in range(1, 7)]
    for principle, gap in gaps.iterrows():
        assert site.loc[principle, "gap"] == pytest.approx(gap["gap"], rel=1e-12)
        assert site.loc[principle, "priority"] == gap["priority"]
        assert site.loc[principle, "certainty"] == gap["certainty"]
    assert frame.loc[frame["level"] != "site", "gap"].isna().all()


def test_items_carry_unfavourable_shares_and_groups_their_labels(exported):
    settings, report, _ = exported
    items = read_back(next(f.path for f in report.files if (f.level, f.fmt) == ("item", "csv")))
    cell = published(settings, "select pct_unfavourable from cells where level = 'site' and "
                               "unit = 'A' and wave = 2026 and measure = 'hs01' and "
                               "breakdown = 'all'").iloc[0]
    row = items[(items["unit"] == "A") & (items["wave"] == 2026) & (items["measure"] == "hs01")]
    assert row["pct_unfavourable"].iloc[0] == pytest.approx(cell["pct_unfavourable"], abs=1e-9)
    groups = read_back(next(f.path for f in report.files
                            if (f.level, f.fmt) == ("group", "parquet")))
    labels = groups.drop_duplicates(["breakdown", "group_value"]).set_index(
        ["breakdown", "group_value"])["group_label"]
    assert labels[("staff_group", "locally_employed")] == "Locally employed doctor"
    assert labels[("staff_group", "not_stated")] == "Not stated (blank or prefer not to say)"


@pytest.mark.parametrize("fmt", ["sav", "dta"])
def test_spss_and_stata_files_carry_variable_and_value_labels(exported, fmt):
    settings, report, _ = exported
    titles = published(settings, "select distinct breakdown, attribute from groups")
    published_titles = dict(zip(titles["breakdown"], titles["attribute"]))
    for file in (f for f in report.files if f.fmt == fmt):
        reader = pyreadstat.read_sav if fmt == "sav" else pyreadstat.read_dta
        frame, meta = reader(str(file.path))
        assert meta.column_names_to_labels == {c: COLUMN_LABELS[c] for c in frame.columns}
        assert meta.file_label == f"Culture of support: {file.level} aggregates (k = 10)"
        labels = meta.variable_value_labels
        assert labels["level"] == {1: "Site", 2: "Peer group (site type)", 3: "All sites"}
        assert labels["suppressed"] == {0: "Shown", 1: "Suppressed (small cell or protects one)"}
        assert labels["site_type"][1] == "Acute trust"
        assert labels["site_type"][3] == "Independent support organisation"
        row = frame[(frame["unit"] == "B") & (frame["level"] == 1)].iloc[0]
        assert labels["site_type"][row["site_type"]] == "Independent support organisation"
        if file.level in ("site", "group"):
            assert labels["measure_kind"][2] == "Scale"
        if file.level == "group":
            # The title the published layer carries for pmq, the one the dashboard shows.
            assert labels["breakdown"][3] == published_titles["pmq"] \
                == "Place of primary qualification"
            assert set(labels["breakdown"].values()) >= set(published_titles.values())
            codes = {label: code for code, label in labels["group_value"].items()}
            pmq = frame[frame["group_value"] == codes["rest_of_world"]]
            assert set(pmq["breakdown"]) == {3} and len(pmq) > 0
        assert labels["region"] == {1: "=1+1", 2: "Midlands", 3: "National", 4: "South East",
                                    5: "South West"}
        assert labels["region"][int(row["region"])] == "National"
        if fmt == "dta":
            assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,31}", c) for c in frame.columns)
        assert all(len(label) <= 80 for label in meta.column_names_to_labels.values())


@pytest.mark.slow   # frictionless reads every exported file against the codebook
def test_data_package_is_valid_and_describes_every_file_and_field(exported):
    _, report, out = exported
    result = frictionless.validate(str(out / "datapackage.json"))
    assert result.valid, result.flatten(["rowNumber", "fieldName", "type", "note"])[:5]
    package = frictionless.Package(str(out / "datapackage.json"))
    assert {r.path for r in package.resources} == {f.path.name for f in report.files} | {
        "codebook.csv"}
    assert {p.name for p in out.iterdir()} == {f.path.name for f in report.files} | {
        "datapackage.json", "codebook.csv", "codebook.md"}
    for resource in package.resources:
        columns = list(read_back(out / resource.path).columns)
        assert resource.schema.field_names == columns, resource.name
    tables = [task for task in result.tasks if task.type == "table"]
    assert len(tables) == 2 * len(AGGREGATE_LEVELS) + 1     # and codebook.csv
    rows = {task.name: task.stats["rows"] for task in tables if task.name != "codebook"}
    assert rows == {f"{f.level}-{f.fmt}": f.rows for f in report.files
                    if f.fmt in ("csv", "parquet")}
    level_field = next(f for f in package.get_resource("site-sav").schema.fields
                       if f.name == "level")
    assert level_field.description == "1 = Site; 2 = Peer group (site type); 3 = All sites"


def test_no_exported_count_is_below_the_threshold_and_hidden_cells_are_blank(exported):
    settings, report, _ = exported
    assert int(published(settings, "select value from meta where key = 'min_group_size'")
               ["value"].iloc[0]) == K
    hidden_rows = 0
    for file in report.files:
        frame = read_back(file.path)
        if file.level == "answers":
            # Option counts may be small (they are a shown cell's split); hidden cells'
            # are blank, as the published item_answers rows (tests/test_item_answers.py).
            hidden = frame["suppressed"] == 1
            assert frame.loc[hidden, ["answers", "pct_answers"]].isna().all().all()
            continue
        counts = [c for c in frame.columns if c == "n" or c.startswith("n_")]
        assert counts, file.path
        for column in counts:
            values = pd.to_numeric(frame[column], errors="coerce").dropna()
            assert (values >= K).all(), (file.path, column, values.min())
        hidden = frame["suppressed"] == 1
        stats = [c for c in ("n", "mean", "sd", "se", "ci_low", "ci_high", "pct_favourable",
                             "alpha", "omega_total") if c in frame.columns]
        assert frame.loc[hidden, stats].isna().all().all(), file.path
        assert frame.loc[~hidden, "n"].notna().all(), file.path
        hidden_rows += int(hidden.sum())
    expected = int(published(settings, "select count(*) as n from cells where suppressed")
                   ["n"].iloc[0])
    assert hidden_rows == expected * len(AGGREGATE_FORMATS) > 0


def test_csv_neutralises_formula_payloads_and_keeps_numbers(exported):
    _, report, _ = exported
    path = next(f.path for f in report.files if (f.level, f.fmt) == ("principle", "csv"))
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    names = {r["unit"]: r["site_name"] for r in rows if r["level"] == "site"}
    for code, payload in PAYLOADS.items():
        assert names[code] == "'" + payload
    regions = {r["unit"]: r["region"] for r in rows if r["level"] == "site"}
    assert regions["G"] == "'=1+1"
    for row in rows:
        for column, value in row.items():
            if column in ("site_name", "region") and value:
                assert value[0] not in "=+-@\t\r", (column, value)
    gaps = [float(r["gap"]) for r in rows if r["gap"]]
    assert min(gaps) < 0, "negative numbers must stay numbers, not quoted text"
    assert not any(r["gap"].startswith("'") for r in rows)
    # Binary formats keep the name as it is: they are not opened by spreadsheets.
    sav = read_back(next(f.path for f in report.files if (f.level, f.fmt) == ("site", "sav")))
    assert PAYLOADS["A"] in set(sav["site_name"])


def test_pseudonyms_are_stable_within_a_key_and_unlinkable_across_keys(hostile_published,
                                                                        tmp_path):
    path = hostile_published.published_path
    first = export_aggregates(path, tmp_path / "one", ["csv", "sav"], "site", KEY)
    again = export_aggregates(path, tmp_path / "two", "csv", "site", KEY)
    other = export_aggregates(path, tmp_path / "three", "csv", "site", KEY[::-1])
    one, two, three = (read_back(r.files[0].path) for r in (first, again, other))
    sites = lambda frame: frame[frame["level"] == "site"]  # noqa: E731
    assert "site_name" not in one.columns and "site_name" not in read_back(first.files[1].path)
    assert {"site_type", "region"} <= set(one.columns)
    assert set(sites(one)["unit"]) == set(sites(two)["unit"])
    assert one.equals(two)
    assert not set(sites(one)["unit"]) & set(sites(three)["unit"])
    digest = hmac.new(KEY.encode(), b"A", hashlib.sha256).digest()
    expected_a = "S" + base64.b32encode(digest).decode()[:8]
    assert pseudonymise("A", KEY) == expected_a
    row = sites(one)[(sites(one)["unit"] == expected_a) & (sites(one)["wave"] == 2026)
                     & (sites(one)["measure"] == "psysafety")].iloc[0]
    assert row["n"] == 240 and row["site_type"] == "acute_trust"
    assert set(sites(one)["unit"]).isdisjoint(PAYLOADS) and len(set(sites(one)["unit"])) == 7
    for file in first.files:
        data = file.path.read_bytes()
        for payload in ("HYPERLINK", "Returned Trust", "Tabbed Trust"):
            assert payload.encode() not in data, file.path


def test_zip_for_download_holds_the_same_files(exported):
    settings, report, out = exported
    data = export_zip(settings.published_path, ["csv", "dta"], "item")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert sorted(archive.namelist()) == ["codebook.csv", "codebook.md", "culture_item.csv",
                                              "culture_item.dta", "datapackage.json"]
        assert archive.read("culture_item.csv") == (out / "culture_item.csv").read_bytes()


def test_a_failed_export_leaves_no_partial_files(hostile_published, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pyreadstat, "write_dta", broken)
    with pytest.raises(OSError, match="disk full"):
        export_aggregates(hostile_published.published_path, tmp_path, ["csv", "dta"])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs, message", [
    ({"fmt": "xlsx"}, "format 'xlsx' is not known; use one of csv, parquet, sav, dta"),
    ({"level": "ward"}, "level 'ward' is not known; use one of site, principle, item, group"),
    ({"pseudonym_key": "short"}, "the pseudonymisation key has 5 characters; use at least 16"),
])
def test_bad_requests_name_what_is_accepted(hostile_published, tmp_path, kwargs, message):
    with pytest.raises(ExportError, match=re.escape(message)):
        export_aggregates(hostile_published.published_path, tmp_path, **kwargs)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, env, message", [
    (["--format", "xlsx"], {}, "format 'xlsx' is not known; use one of csv, parquet, sav, dta"),
    (["--level", "ward"], {}, "level 'ward' is not known; use one of site, principle, item"),
    ([], {ENV_PSEUDONYM_KEY: "short"}, "the pseudonymisation key has 5 characters"),
    (["--db", "missing.duckdb"], {}, "no published layer at missing.published.duckdb: no "
                                     "published results yet; run `culture run`"),
])
def test_cli_turns_bad_input_into_one_line_and_exit_code_1(hostile_published, tmp_path, args,
                                                           env, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = ["--db", str(hostile_published.db_path)] if "--db" not in args else []
    run = culture("export", "--out", tmp_path / "out", *db, *args, env=env)
    assert run.exit_code == 1, run.stderr
    assert run.stderr.startswith("error: ") and run.stderr.count("\n") == 1
    assert message in run.stderr
    assert not (tmp_path / "out").exists()


def test_cli_export_writes_pseudonymised_files_from_the_environment_key(hostile_published,
                                                                        tmp_path):
    run = culture("export", "--out", tmp_path, "--db", hostile_published.db_path, "--format",
                  "parquet", "--level", "site", env={ENV_PSEUDONYM_KEY: KEY})
    assert run.exit_code == 0, run.stderr
    frame = read_back(tmp_path / "culture_site.parquet")
    assert pseudonymise("A", KEY) in set(frame["unit"]) and "A" not in set(frame["unit"])
    assert "sites are pseudonymised" in run.stdout
    assert CODED_COLUMNS["level"].keys() >= set(frame["level"])


@pytest.mark.parametrize("fmt", ["sav", "dta"])
def test_long_text_columns_are_labelled_codes_that_read_as_the_same_text(exported, fmt):
    # Names and group labels are written as numbers carrying the text as value labels
    # (cheaper to write, and the usual SPSS / Stata form); read with the labels applied,
    # every row shows the same text as the CSV.
    _, report, _ = exported
    reader = pyreadstat.read_sav if fmt == "sav" else pyreadstat.read_dta
    for level, column in (("group", "group_label"), ("group", "measure_name"),
                          ("item", "measure_name")):
        path = next(f.path for f in report.files if (f.level, f.fmt) == (level, fmt))
        coded, meta = reader(str(path))
        assert pd.api.types.is_numeric_dtype(coded[column]), (level, column)
        labelled, _ = reader(str(path), apply_value_formats=True)
        text = read_back(next(f.path for f in report.files if (f.level, f.fmt) == (level, "csv")))
        assert list(labelled[column].astype(str)) == list(text[column].astype(str)), (level, column)


def test_text_too_long_for_a_value_label_stays_text():
    from outputs.export import labelled_columns

    long_item = "x" * 121
    kept = labelled_columns({"level": ["site"], "measure_name": ["Short", long_item],
                             "group_label": ["é" * 60]})          # 120 bytes in UTF-8
    assert set(kept) == {"level", "group_label"}


def test_pseudonymised_export_hides_peer_targets_where_the_type_is_not_shown(
        hostile_published, tmp_path):
    # Four acute trusts share their peer group's target; with min_sites = 4 no type is
    # shown, and a shared target would still group them. With 3 the type is shown and
    # the target stays.
    path = hostile_published.published_path
    shown = export_aggregates(path, tmp_path / "three", "csv", "principle", KEY, min_sites=3)
    hidden = export_aggregates(path, tmp_path / "four", "csv", "principle", KEY, min_sites=4)
    three, four = (read_back(r.files[0].path) for r in (shown, hidden))
    acute = {pseudonymise(code, KEY) for code in "ADFG"}
    for frame, expect_targets in ((three, True), (four, False)):
        rows = frame[frame["unit"].isin(acute)]
        assert len(rows) == 4 * 3 * 6
        assert rows["target"].notna().all() == expect_targets
        assert rows["gap"].notna().any() == expect_targets
        assert rows["priority"].notna().any() == expect_targets
    assert set(four["level"]) == {"site", "national"}
    assert four["site_type"].isna().all() and four["region"].isna().all()
    # Targets that are all sites' (the support units, the independent organisation) stay.
    others = four[four["level"].eq("site") & ~four["unit"].isin(acute)]
    assert others["target"].notna().all() and len(others) == 3 * 3 * 6
    notes = (tmp_path / "four" / "coarsening.txt").read_text()
    assert "targets: a principle target that is the site's peer group's is left blank" in notes


@pytest.mark.parametrize("text", ['=HYPERLINK("http://x","y")', "@SUM(1+1)", "+44 line",
                                  "-1.5", "\tTabbed", "\rReturned", "Plain Trust", "'quoted",
                                  "", " =spaced"])
def test_the_csv_guard_in_sql_neutralises_exactly_what_the_python_guard_does(text):
    from survey.spreadsheet import safe_cell, safe_cell_sql

    with duckdb.connect() as con:
        guarded = con.execute(f"select {safe_cell_sql('x')} from (select ? as x)",
                              [text]).fetchone()[0]
    assert guarded == safe_cell(text)
    assert guarded == ("'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text)
