"""The published layer's read API: it refuses what is not a layer of its layout, with a
message that names the file and what to do, and each question answers with what the
tables hold (checked against the whole table filtered in pandas, on the sample layer)."""

from __future__ import annotations

import os
import shutil
from contextlib import closing
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from published.layout import (ATTRIBUTE_TITLES, CELL_COLUMNS, NOT_STATED, PSYCHOMETRIC_COLUMNS,
                              PUBLISHED_LAYOUT, TABLES, attribute_title)
from published.reader import PublishedLayer, PublishedLayerError, open_published

SITES = ["A", "B", "C", "D", "E", "F", "G"]
WAVES = [2024, 2025, 2026]


@pytest.fixture(scope="module")
def sample(published_sample) -> Path:
    settings, _ = published_sample
    return settings.published_path


@pytest.fixture(scope="module")
def layer(sample):
    with PublishedLayer.open(sample) as opened:
        yield opened


def whole(path: Path, table: str) -> pd.DataFrame:
    """A whole published table, read without the API (the oracle)."""
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(f'select * from "{table}"').df()


def same_rows(got: pd.DataFrame, expected: pd.DataFrame, keys: list[str]) -> None:
    """The same rows and columns whatever their order (floats to 1e-12)."""
    assert len(got) > 0 and len(got) == len(expected)
    assert list(got.columns) == list(expected.columns)
    def plain(frame: pd.DataFrame) -> pd.DataFrame:
        # Missing as None whatever the dtype (a column of NULLs reads as object or str).
        frame = frame.sort_values(keys).reset_index(drop=True).astype(object)
        return frame.where(frame.notna(), None)

    pd.testing.assert_frame_equal(plain(got), plain(expected), check_dtype=False, rtol=1e-12)


def copy_with_layout(sample: Path, folder: Path, layout: str | None) -> Path:
    """A copy of the sample layer whose meta names `layout` (None: no layout row)."""
    path = folder / f"layout-{layout}.published.duckdb"
    shutil.copy(sample, path)
    with duckdb.connect(str(path)) as con:
        if layout is None:
            con.execute("delete from meta where key = 'layout'")
        else:
            con.execute("update meta set value = ? where key = 'layout'", [layout])
    return path


# -- what is refused, and the message -----------------------------------------------------

def test_a_layer_of_another_layout_is_refused_naming_the_file_and_what_to_do(sample, tmp_path):
    path = copy_with_layout(sample, tmp_path, "1")
    message = (f"{path} is a published layer of layout 1, and this program reads layout "
               f"{PUBLISHED_LAYOUT}; publish it again with `culture run`")
    with pytest.raises(PublishedLayerError, match=f"^{message}"):
        PublishedLayer.open(path)
    with pytest.raises(PublishedLayerError, match=f"^{message}"):   # opened at first question
        PublishedLayer(path).waves()
    with pytest.raises(PublishedLayerError, match=f"^{message}"):
        open_published(path)


@pytest.mark.parametrize("what", ["the respondent store", "meta without a layout"])
def test_a_duckdb_file_that_is_not_a_published_layer_is_refused(published_sample, tmp_path,
                                                                 what):
    settings, _ = published_sample
    path = (settings.db_path if what == "the respondent store"
            else copy_with_layout(settings.published_path, tmp_path, None))
    with pytest.raises(PublishedLayerError) as refused:
        PublishedLayer.open(path)
    assert str(refused.value) == (
        f"{path} is not a published layer (it has no meta table naming its layout); pass "
        f"--db with the store whose <store>.published.duckdb you want, or publish with "
        f"`culture run`")


def test_a_file_that_is_not_duckdb_or_not_there_is_refused(tmp_path):
    text = tmp_path / "notes.published.duckdb"
    text.write_text("not a database\n" * 200, encoding="utf-8")
    with pytest.raises(PublishedLayerError, match=f"^{text} cannot be opened as a published "
                                                  f"layer .*culture run"):
        PublishedLayer.open(text)
    missing = tmp_path / "none.published.duckdb"
    with pytest.raises(PublishedLayerError) as refused:
        PublishedLayer(missing).sites()
    assert str(refused.value).startswith(f"no published layer at {missing}: no published "
                                         f"results yet; run `culture run`")


def test_a_replaced_file_is_reopened_and_checked_again(sample, tmp_path):
    path = tmp_path / "live.published.duckdb"
    shutil.copy(sample, path)
    layer = PublishedLayer(path)
    assert layer.meta()["min_group_size"] == "10"
    newer = tmp_path / "newer.published.duckdb"
    shutil.copy(sample, newer)
    with duckdb.connect(str(newer)) as con:
        con.execute("update meta set value = '2031-01-01' where key = 'published_on'")
        con.execute("delete from sites where site_code = 'G'")
    os.replace(newer, path)
    assert layer.meta()["published_on"] == "2031-01-01"
    assert list(layer.sites()["site_code"]) == SITES[:-1]
    os.replace(copy_with_layout(sample, tmp_path, "0"), path)
    with pytest.raises(PublishedLayerError, match="layer of layout 0"):
        layer.sites()
    layer.close()


def test_a_layer_over_a_callers_connection_leaves_it_open(sample):
    with closing(open_published(sample)) as con:
        PublishedLayer.over(con, sample).close()
        assert con.execute("select count(*) from sites").fetchone()[0] == len(SITES)


# -- the layout is what the writer wrote ---------------------------------------------------

def test_the_layout_names_every_table_and_the_columns_readers_rely_on(sample, layer):
    assert layer.tables() == set(TABLES)
    assert tuple(whole(sample, "cells").columns) == CELL_COLUMNS
    for table, columns in PSYCHOMETRIC_COLUMNS.items():
        assert set(columns) <= set(whole(sample, table).columns), table
    assert layer.meta()["layout"] == PUBLISHED_LAYOUT
    groups = whole(sample, "groups")
    carried = dict(zip(groups["breakdown"], groups["attribute"]))
    assert carried == {a: attribute_title(a) for a in carried} == layer.attribute_titles()
    assert set(carried) == set(ATTRIBUTE_TITLES)
    assert attribute_title("years_in_post") == "Years in post"
    assert (groups.loc[groups["grp"] == NOT_STATED, "position"] == 99).sum() == len(carried)


# -- each question returns what the tables hold --------------------------------------------

def test_reference_tables(sample, layer):
    assert layer.meta() == dict(whole(sample, "meta").to_numpy())
    assert layer.min_group_size == 10
    assert list(layer.sites()["site_code"]) == SITES
    assert layer.site_row("B") == {"site_code": "B", "name": "Practitioner Support Partnership",
                                   "site_type": "independent_support_org",
                                   "region": "National"}
    assert layer.site_row("Q") is None
    assert layer.waves() == WAVES
    assert layer.peer_groups() == ["acute_trust", "independent_support_org",
                                   "professional_support_unit"]
    measures = whole(sample, "measures")
    same_rows(layer.measures(), measures, ["measure_kind", "measure"])
    principles = layer.measure_names(("principle",))
    assert list(principles) == ["P1", "P2", "P3", "P4", "P5", "P6"]
    assert principles["P6"] == "Organisational culture"
    assert layer.measure_names() == dict(zip(measures["measure"], measures["name"]))
    same_rows(layer.groups(), whole(sample, "groups"), ["breakdown", "grp"])
    actions = layer.actions()
    same_rows(actions, whole(sample, "actions"), ["principle", "position"])
    assert list(actions["principle"]) == sorted(actions["principle"])
    same_rows(layer.validation(), whole(sample, "validation"), ["check", "scope"])


def test_a_sites_cells_responses_and_headcount(sample, layer):
    cells = whole(sample, "cells")
    site = cells[(cells["level"] == "site") & (cells["unit"] == "A") & (cells["wave"] == 2026)]
    got = layer.site_cells("A", 2026, ("scale", "principle"))
    same_rows(got, site[(site["breakdown"] == "all")
                        & site["measure_kind"].isin(["scale", "principle"])],
              ["measure_kind", "measure"])
    assert list(got["measure"]) == sorted(got["measure"])
    by_group = layer.site_cells("A", 2026, ("principle",), "staff_group")
    same_rows(by_group, site[(site["breakdown"] == "staff_group")
                             & (site["measure_kind"] == "principle")], ["grp", "measure"])
    heads = whole(sample, "site_headcounts")
    headcount = int(heads.loc[heads["site_code"] == "A", "headcount"].sum())
    assert layer.headcount("A") == headcount > 0
    assert layer.headcount("Q") is None
    n = int(site.loc[(site["breakdown"] == "all") & (site["measure_kind"] == "responses"),
                     "n"].iloc[0])
    assert layer.responses("A", 2026) == {"n": n, "headcount": headcount,
                                          "rate": pytest.approx(100 * n / headcount)}
    responses = cells[(cells["level"] == "site") & (cells["breakdown"] == "all")
                      & (cells["measure_kind"] == "responses")]
    for code in SITES:
        shown = responses[(responses["unit"] == code) & ~responses["suppressed"]]
        assert layer.shown_responses(code) == dict(zip(shown["wave"].astype(int),
                                                       shown["n"].astype(int))), code
    groups = layer.group_cells("A", 2026, kinds=("responses", "principle"))
    expected = site[(site["breakdown"] != "all")
                    & site["measure_kind"].isin(["responses", "principle"])]
    same_rows(groups, expected[["breakdown", "grp", "measure_kind", "measure", "n", "mean",
                                "suppressed"]], ["breakdown", "grp", "measure_kind", "measure"])
    assert groups["suppressed"].any() and groups["n"].isna().sum() == groups["suppressed"].sum()


def test_a_sites_gaps_benchmarks_equity_and_trends(sample, layer):
    gaps = whole(sample, "principle_gaps")
    got = layer.principle_gaps("A", 2026)
    same_rows(got, gaps[(gaps["site_code"] == "A") & (gaps["wave"] == 2026)], ["principle"])
    assert list(got["priority"]) == sorted(got["priority"])
    bench = whole(sample, "benchmarks")
    same_rows(layer.benchmarks("A", 2026, "scale"),
              bench[(bench["site_code"] == "A") & (bench["wave"] == 2026)
                    & (bench["measure_kind"] == "scale")], ["measure"])
    peers = bench[(bench["peer_group"] == "acute_trust") & (bench["wave"] == 2026)
                  & (bench["measure_kind"] == "principle")]
    distribution = layer.peer_distribution("acute_trust", 2026, "principle")
    assert list(distribution["measure"]) == ["P1", "P2", "P3", "P4", "P5", "P6"]
    first = peers[peers["measure"] == "P1"].iloc[0]
    assert distribution.iloc[0][["sites", "best", "median", "worst"]].tolist() == [
        first["peer_sites"], first["peer_best"], first["peer_median"], first["peer_worst"]]
    equity = whole(sample, "equity")
    same_rows(layer.equity("A", 2026), equity[(equity["level"] == "site")
                                              & (equity["unit"] == "A")
                                              & (equity["wave"] == 2026)],
              ["breakdown", "grp", "measure_kind", "measure"])
    trends = whole(sample, "trends")
    same_rows(layer.trends("site", "A"), trends[(trends["level"] == "site")
                                                & (trends["unit"] == "A")],
              ["wave", "measure_kind", "measure"])
    weighted = whole(sample, "weighted")
    same_rows(layer.weighted("A", 2026, "principle"),
              weighted[(weighted["site_code"] == "A") & (weighted["wave"] == 2026)
                       & (weighted["measure_kind"] == "principle")], ["measure"])
    cells = whole(sample, "cells")
    series = layer.unit_series("national", "national", ("principle",))
    expected = cells[(cells["level"] == "national") & (cells["breakdown"] == "all")
                     & (cells["measure_kind"] == "principle")]
    same_rows(series, expected[list(series.columns)], ["measure", "wave"])
    assert len(series) == 6 * len(WAVES)


def test_reliability_agreement_icc_and_quality(sample, layer):
    reliability = whole(sample, "reliability")
    same_rows(layer.reliability(None, None), reliability[reliability["level"] == "overall"],
              ["scale"])
    same_rows(layer.reliability("A", 2026),
              reliability[(reliability["level"] == "site_wave")
                          & (reliability["site_code"] == "A") & (reliability["wave"] == 2026)],
              ["scale"])
    same_rows(layer.wave_reliability(2026), reliability[(reliability["level"] == "wave")
                                                        & (reliability["wave"] == 2026)],
              ["scale"])
    agreement = whole(sample, "site_agreement")
    same_rows(layer.site_agreement("A", 2026),
              agreement[(agreement["site_code"] == "A") & (agreement["wave"] == 2026)],
              ["scale"])
    icc = whole(sample, "icc")
    same_rows(layer.icc(2026), icc[icc["wave"] == 2026], ["scale"])
    quality = whole(sample, "data_quality")
    got = layer.data_quality("A", 2026)
    same_rows(got, quality[(quality["site_code"] == "A") & (quality["wave"] == 2026)],
              ["site_code"])
    assert len(got) == 1


def test_funnels_and_shrunken_means(sample, layer):
    funnel, params = whole(sample, "funnel"), whole(sample, "funnel_params")
    points, one = layer.funnel(2026, "principle", "P1")
    p1 = funnel[(funnel["wave"] == 2026) & (funnel["measure_kind"] == "principle")
                & (funnel["measure"] == "P1")]
    same_rows(points, p1[["site_code", "peer_group", "n", "mean", "sd", "others",
                          "others_mean", "low", "high", "flagged", "verdict", "rule"]],
              ["site_code"])
    row = params[(params["wave"] == 2026) & (params["measure"] == "P1")
                 & (params["measure_kind"] == "principle")].iloc[0]
    assert one == {c: pytest.approx(row[c]) if c != "method" else row[c]
                   for c in ("target", "target_se", "tau2", "sigma", "sites", "method")}
    assert layer.funnel(1999, "principle", "P1")[1] is None
    every, every_params = layer.funnels(2026, "principle")
    principle = funnel[(funnel["wave"] == 2026) & (funnel["measure_kind"] == "principle")]
    same_rows(every, principle, ["measure", "site_code"])
    assert list(zip(every["measure"], every["site_code"])) == sorted(
        zip(every["measure"], every["site_code"]))
    same_rows(every_params, params[(params["wave"] == 2026)
                                   & (params["measure_kind"] == "principle")], ["measure"])
    shrunken = whole(sample, "shrunken")
    got = layer.shrunken(2026, "principle", "P1")
    same_rows(got, shrunken.loc[(shrunken["wave"] == 2026) & (shrunken["measure"] == "P1")
                                & (shrunken["measure_kind"] == "principle"), list(got.columns)],
              ["site_code"])
    assert list(got["eb_mean"]) == sorted(got["eb_mean"])
