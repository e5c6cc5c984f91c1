"""Data-quality flags find what the generator planted, and nothing is dropped silently."""

from __future__ import annotations



from pipeline.ingest.files import ingest_file
from pipeline.quality import analysis_view, flag_response_quality, quality_by_site
from pipeline.store import open_store
from tests.conftest import response_row, write_csv


def test_planted_straight_liners_and_speeders_are_flagged(sample_store, sample_manifest,
                                                         instrument):
    path, manifest = sample_store, sample_manifest
    with open_store(path) as con:
        counts = flag_response_quality(con, instrument)
        slow_flagged = con.execute("select count(*) from response_quality where speeding "
                                   "and duration_seconds >= 60").fetchone()[0]
        planted_fast = con.execute("select count(*) from response_quality "
                                   "where duration_seconds < 60").fetchone()[0]
    # Every planted straight-liner answered all agree items alike; no one else did.
    assert counts["straight_lining"] == manifest["straight_liners"]
    assert counts["respondents"] == manifest["n_responses"]
    # Planted speeders took 20-59 s; the wave median is ~300 s, so a third of it is ~100 s.
    assert planted_fast == manifest["speeders"]
    assert counts["speeding"] == planted_fast + slow_flagged
    assert slow_flagged <= 0.01 * manifest["n_responses"]
    assert counts["duplicate"] == 0
    assert counts["flagged"] <= counts["straight_lining"] + counts["speeding"]


def test_counts_per_site_add_up_and_exclusion_is_a_setting(sample_store, sample_manifest,
                                                           instrument):
    path, manifest = sample_store, sample_manifest
    with open_store(path) as con:
        counts = flag_response_quality(con, instrument)
        per_site = quality_by_site(con)
        analysis_view(con, exclude_flagged=False)
        everyone = con.execute("select count(*) from analysis_responses").fetchone()[0]
        analysis_view(con, exclude_flagged=True)
        kept = con.execute("select count(*) from analysis_responses").fetchone()[0]
    assert len(per_site) == 7 * 3
    assert sum(row[6] for row in per_site) == counts["flagged"]
    assert everyone == manifest["n_responses"]
    assert kept == manifest["n_responses"] - counts["flagged"]


def test_duplicate_submissions_and_longstrings(tmp_path, store_path, instrument,
                                               definition_yaml):
    scale_items = instrument.scale_item_ids
    varied = {item.id: str(1 + position % 5) for position, item in enumerate(instrument.items)
              if item.response_scale == "agree5"}
    rows = [response_row(instrument, "r1", **varied),
            response_row(instrument, "r2", **varied),          # same answers: a duplicate
            response_row(instrument, "r3", **varied, staff_group="foundation"),
            response_row(instrument, "r4"),                    # every item 4: straight-line
            # Seven alike, a blank (which breaks a run), nine alike, then varied: the
            # longest run is 9, too short to flag.
            response_row(instrument, "r5", **{item: "" if p == 7 else
                                              "2" if p < 17 else varied[item]
                                              for p, item in enumerate(scale_items)})]
    with open_store(store_path) as con:
        ingest_file(con, write_csv(tmp_path / "x.csv", rows), instrument, definition_yaml)
        flag_response_quality(con, instrument)
        got = con.execute("select response_id, longstring, straight_lining, duplicate "
                          "from response_quality order by response_id").fetchall()
    assert got == [("r1", 1, False, False), ("r2", 1, False, True),
                   ("r3", 1, False, False), ("r4", 44, True, False),
                   ("r5", 9, False, False)]


def test_a_store_holding_the_old_flags_table_gets_the_view(sample_store, instrument):
    with open_store(sample_store) as con:
        con.execute("drop view if exists response_quality")
        con.execute("create table response_quality as select 1 as stale")
        counts = flag_response_quality(con, instrument)
        kind = con.execute("select table_type from information_schema.tables "
                           "where table_name = 'response_quality'").fetchall()
        flagged = con.execute("select count(*) from response_quality where flagged").fetchall()
        ids = con.execute("select count(distinct response_id) from response_quality").fetchall()
    assert kind == [("VIEW",)]
    assert flagged[0][0] == counts["flagged"] > 0
    assert ids[0][0] == counts["respondents"]
