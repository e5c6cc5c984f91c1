"""The decade generator (survey.decade): ten wave files of the national design, written a
group of sites at a time, seeded, with the planted trend visible from wave to wave."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pytest
from scipy.stats import norm

from survey.decade import site_groups, wave_file, write_decade
from survey.instrument import load_instrument
from survey.settings import DEFAULT_INSTRUMENT
from survey.synthetic import WAVE_TREND

WAVES = list(range(2017, 2027))


@pytest.fixture(scope="module")
def small_decade(tmp_path_factory):
    folder = tmp_path_factory.mktemp("decade")
    # 12 sites in groups of about 1,500 rows over the decade: several generator calls.
    return folder, write_decade(folder, seed=11, per_wave=500, n_sites=12, chunk_rows=1_500)


def test_ten_wave_files_with_every_site_and_the_rows_asked_for(small_decade):
    folder, manifest = small_decade
    assert manifest["waves"] == WAVES
    assert manifest["n_responses"] == 5_000
    con = duckdb.connect()
    for wave in WAVES:
        path = str(folder / wave_file(wave))
        rows, sites, waves_in_file, ids = con.execute(
            "select count(*), count(distinct site), list(distinct wave), "
            "count(distinct response_id) from read_parquet(?)", [path]).fetchone()
        assert (rows, sites, waves_in_file, ids) == (500, 12, [wave], 500)
    listed = {f["name"]: f for f in manifest["files"]}
    assert [listed[wave_file(w)]["rows"] for w in WAVES] == [500] * 10
    # Response ids are unique across the whole decade, as one store needs them.
    every = str(folder / "responses_*.parquet")
    assert con.execute("select count(distinct response_id) from read_parquet(?)",
                       [every]).fetchone()[0] == 5_000
    assert sorted(json.loads((folder / "manifest.json").read_text())["waves"]) == WAVES
    assert len((folder / "sites.csv").read_text().splitlines()) == 13


def test_sites_are_drawn_in_several_groups_each_within_the_chunk():
    sizes = np.array([[100] * 10, [50] * 10, [80] * 10, [30] * 10, [400] * 10])
    groups = site_groups(sizes, chunk_rows=1_500)
    # 1,000 + 500 fit in 1,500; 800 + 300 start the next; 4,000 stands alone.
    assert [g.tolist() for g in groups] == [[0, 1], [2, 3], [4]]


def test_same_seed_same_files_other_seed_other_files(small_decade, tmp_path):
    folder, manifest = small_decade
    again = write_decade(tmp_path / "again", seed=11, per_wave=500, n_sites=12,
                         chunk_rows=1_500)
    other = write_decade(tmp_path / "other", seed=12, per_wave=500, n_sites=12,
                         chunk_rows=1_500)
    hashes = {f["name"]: f["sha256"] for f in manifest["files"]}
    assert {f["name"]: f["sha256"] for f in again["files"]} == hashes
    for wave in WAVES:
        assert (tmp_path / "again" / wave_file(wave)).read_bytes() == \
            (folder / wave_file(wave)).read_bytes()
    assert all(f["sha256"] != hashes[f["name"]] for f in other["files"]
               if f["name"].startswith("responses_"))


def test_every_scale_drifts_by_the_planted_trend_each_wave(tmp_path):
    """Each latent scale rises by WAVE_TREND a wave. An item is a cut of
    y = loading * theta + noise with var(y) between 1 and 1.1 here (site effects and
    attribute effects), loadings drawn in [0.6, 0.8]; so the probit of the share agreeing
    (4 or 5, reversed items turned back) moves by loading * WAVE_TREND / sd(y) a wave:
    between 0.6 * 0.04 / 1.05 and 0.8 * 0.04, widened by 0.003 for sampling (200,000
    responses, the slope's standard error is about 0.001)."""
    write_decade(tmp_path, seed=5, per_wave=20_000, n_sites=40, chunk_rows=60_000)
    instrument = load_instrument(DEFAULT_INSTRUMENT)
    low, high = 0.6 * WAVE_TREND / 1.05 - 0.003, 0.8 * WAVE_TREND + 0.003
    con = duckdb.connect()
    files = str(tmp_path / "responses_*.parquet")
    for scale in instrument.scales:
        answers = " union all ".join(
            f"select wave, case when {i.id} between 1 and 5 then "
            f"{'6 - ' if i.reverse else ''}{i.id} end as code from read_parquet($files)"
            for i in instrument.items if i.scale == scale.id)
        shares = con.execute(f"select wave, avg((code >= 4)::int) from ({answers}) "
                             f"where code is not null group by wave order by wave",
                             {"files": files}).fetchall()
        assert [w for w, _ in shares] == WAVES
        probit = norm.ppf([share for _, share in shares])
        slope = np.polyfit(WAVES, probit, 1)[0]
        assert low < slope < high, (scale.id, slope, (low, high))


def test_a_decade_starts_with_one_wave_run_and_frozen_alone(tmp_path):
    """bench/decade.py's course at a tiny scale: the first wave ingested, run and frozen
    by itself, then the next two one at a time. A first wave's layer has columns with no
    value at all (changes from a previous wave that does not exist), typed NULL; the
    waves after it must still freeze and publish beside its held rows."""
    from pipeline.run import run_pipeline
    from pipeline.store import load_reference_data, open_store
    from pipeline.waves import freeze_wave, frozen_waves
    from survey.settings import Settings

    data = tmp_path / "data"
    write_decade(data, seed=3, per_wave=400, n_sites=6, n_waves=3)
    instrument = load_instrument(DEFAULT_INSTRUMENT)
    settings = Settings(db_path=tmp_path / "decade.duckdb")
    with open_store(settings.db_path) as con:
        load_reference_data(con, data, instrument)
    first_layer = None
    for wave in (2017, 2018, 2019):
        run_pipeline(settings, instrument, [data / wave_file(wave)])
        with duckdb.connect(str(settings.published_path), read_only=True) as pub:
            if first_layer is None:
                first_layer = pub.execute("select * from cells where wave = 2017 "
                                          "order by all").fetchall()
            else:
                assert pub.execute("select * from cells where wave = 2017 order by all"
                                   ).fetchall() == first_layer
            assert [w for (w,) in pub.execute("select distinct wave from cells "
                                              "order by 1").fetchall()] == \
                list(range(2017, wave + 1))
        with open_store(settings.db_path) as con:
            assert freeze_wave(con, wave, settings.published_path) > 0
            assert frozen_waves(con) == list(range(2017, wave + 1))
