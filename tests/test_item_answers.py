"""The published answer distribution (`item_answers`): counted right, summed like the
cells, hidden exactly where the cells are, and checked by the verifier."""

from __future__ import annotations

import shutil

import duckdb
import pytest

from pipeline.psychometrics.stage import run_psychometrics
from pipeline.publish.verify import DisclosureError, verify_published
from pipeline.publish.writer import publish
from pipeline.store import open_store
from survey.settings import Settings


def published(settings, sql, params=()):
    with duckdb.connect(str(settings.published_path), read_only=True) as con:
        return con.execute(sql, list(params)).df()


@pytest.fixture(scope="module")
def small_site_published(sample_store, instrument):
    """The sample with site B's 2026 answers cut to 6 people (k = 10): B's item cells
    are hidden, and so is some other cell that would give them away."""
    settings = Settings(db_path=sample_store)
    with open_store(sample_store) as con:
        con.execute("delete from responses where site_code = 'B' and wave = 2026 and "
                    "response_id not in (select response_id from responses where "
                    "site_code = 'B' and wave = 2026 order by response_id limit 6)")
        # Another sample, not the first published again: forget the first's layer and any
        # versions kept of it (published again, the verifier would rightly refuse the cut
        # by subtraction).
        con.execute("delete from cell_versions; delete from cell_version_marks")
        settings.published_path.unlink(missing_ok=True)
        publish(con, instrument, settings, run_psychometrics(con, instrument, settings))
    return settings


def test_a_site_items_options_are_the_answers_as_given(published_sample):
    settings, _ = published_sample
    rows = published(settings, "select * from item_answers where wave = 2026 and "
                               "level = 'site' and unit = 'A' and measure = 'cf02' "
                               "order by position")
    with duckdb.connect(str(settings.db_path), read_only=True) as con:
        counts = dict(con.execute("select cf02, count(*) from responses where site_code = 'A' "
                                  "and wave = 2026 group by all").fetchall())
    answered = sum(v for code, v in counts.items() if code is not None)
    assert list(rows["option_label"]) == [
        "Strongly disagree", "Disagree", "Neither agree nor disagree", "Agree",
        "Strongly agree", "No answer: Don't know / prefer not to say, or left blank"]
    assert list(rows["answers"]) == [counts.get(c, 0) for c in (1, 2, 3, 4, 5)] + [
        counts.get(None, 0)]
    assert rows["pct"].iloc[:5].tolist() == pytest.approx(
        [100 * counts.get(c, 0) / answered for c in (1, 2, 3, 4, 5)])
    # cf02 is reverse-keyed: "Strongly disagree" is scored 5 and favourable.
    assert list(rows["scored_code"].iloc[:5]) == [5, 4, 3, 2, 1]
    cell = published(settings, "select n, pct_favourable, pct_unfavourable from cells where "
                               "wave = 2026 and level = 'site' and unit = 'A' and "
                               "measure = 'cf02' and breakdown = 'all'").iloc[0]
    assert cell["n"] == answered
    assert rows.loc[rows["favourable"] == True, "pct"].sum() == pytest.approx(  # noqa: E712
        cell["pct_favourable"])
    assert rows["pct"].iloc[3:5].sum() == pytest.approx(cell["pct_unfavourable"])


def test_peer_and_national_counts_are_their_sites_sums(published_sample):
    settings, _ = published_sample
    sums = published(settings, """
        select a.level, a.unit, a.position, a.answers,
            (select sum(s.answers) from item_answers s
             where s.level = 'site' and s.wave = a.wave and s.measure = a.measure
               and s.position = a.position
               and (a.level = 'national' or s.peer_group = a.unit)) as of_sites
        from item_answers a
        where a.level <> 'site' and a.wave = 2025 and a.measure = 'ps03'""")
    assert len(sums) == 6 * (1 + 3)    # all sites and the three peer groups
    assert (sums["answers"] == sums["of_sites"]).all()


def test_hidden_cells_hide_their_answers_and_the_pattern_is_the_cells(small_site_published):
    settings = small_site_published
    pattern = published(settings, """
        select a.level, a.unit, a.suppressed, bool_and(a.answers is null) as blank,
            any_value(c.suppressed) as cell_suppressed
        from item_answers a
        join cells c on c.breakdown = 'all' and c.measure_kind = 'item'
            and (c.wave, c.level, c.unit, c.measure) = (a.wave, a.level, a.unit, a.measure)
        where a.wave = 2026 and a.measure = 'hs01' group by all order by all""")
    hidden = pattern[pattern["suppressed"]]
    assert set(hidden["unit"]) >= {"B"} and len(hidden) >= 2   # B and one that protects it
    assert hidden["blank"].all()
    assert (pattern["suppressed"] == pattern["cell_suppressed"]).all()
    assert not pattern.loc[~pattern["suppressed"], "blank"].any()


def test_verifier_refuses_a_hidden_cells_answers_or_counts_that_do_not_add_up(
        small_site_published, tmp_path):
    settings = small_site_published
    verify_published(settings.published_path, 10)
    for statement, problem in (
            ("update item_answers set answers = 2 where unit = 'B' and wave = 2026 and "
             "measure = 'hs01' and position = 1", "a hidden cell's answers are shown"),
            ("update item_answers set answers = answers + 1 where unit = 'A' and "
             "wave = 2026 and measure = 'hs01' and position = 1",
             "the answers do not add up to the cell's n"),
            ("delete from item_answers where unit = 'A' and wave = 2026 and measure = 'hs01'",
             "rows are not the item cell's")):
        copy = tmp_path / "tampered.duckdb"
        shutil.copy(settings.published_path, copy)
        with duckdb.connect(str(copy)) as con:
            con.execute(statement)
        with pytest.raises(DisclosureError) as caught:
            verify_published(copy, 10)
        assert problem in str(caught.value)
