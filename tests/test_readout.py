"""The director's read-out: one headline measure (scores out of 100) on every page and a
response rate set against the peer group's, pooled so that no peer's own rate shows."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from dashboard.accounts import AccountBook, LoginThrottle
from dashboard.app import create_app, render_page
from published.reader import PublishedLayer
from published.scores import headline, headline_params, to_score
from tests.pages import as_text, signed_in
from tests.test_dashboard import PASSWORD


@pytest.fixture(scope="module")
def app(published_sample):
    settings, _ = published_sample
    book = AccountBook(settings.accounts_path)
    for username, role, site in (("admin", "admin", None), ("dir-b", "director", "B"),
                                 ("dir-d", "director", "D")):
        book.add(username, role, PASSWORD, site)
    return create_app(settings, secret_key=b"test secret", throttle=LoginThrottle(free=3))


def test_headline_puts_scales_on_the_principles_0_to_100_and_leaves_principles():
    frame = pd.DataFrame({"measure_kind": ["scale", "principle", "item"],
                          "mean": [1.0, 40.0, 5.0], "low": [2.0, 30.0, 3.0],
                          "diff_vs_peer": [-0.5, -5.0, 0.2], "sd": [1.0, 20.0, 0.8],
                          "tau2": [0.04, 9.0, 0.01]})
    out = headline(frame)
    assert out["mean"].tolist() == [0.0, 40.0, 100.0]
    assert out["low"].tolist() == [25.0, 30.0, 50.0]
    # Differences and spreads scale without the offset; variances by 25 squared.
    assert out["diff_vs_peer"].tolist() == [-12.5, -5.0, 5.0]
    assert out["sd"].tolist() == [25.0, 20.0, 20.0]
    assert out["tau2"].tolist() == pytest.approx([25.0, 9.0, 6.25])
    assert frame["mean"].tolist() == [1.0, 40.0, 5.0]      # the caller's frame is untouched
    assert to_score(3.0, "scale") == 50.0 and to_score(50.0, "principle") == 50.0
    assert headline_params({"target": 3.0, "target_se": 0.1, "tau2": 0.01, "sigma": 0.9},
                           "scale") == pytest.approx({"target": 50.0, "target_se": 2.5,
                                                      "tau2": 6.25, "sigma": 22.5})


def test_no_page_a_director_sees_shows_a_1_to_5_scale(app):
    pages = ("/", "/principle", "/benchmark", "/trends", "/equity", "/quality")
    with signed_in(app, "dir-d"):
        for path in pages:
            page, _ = render_page(path, "?site=D&wave=2026")
            text = as_text(page)
            assert "1-5" not in text and "(1 to 5)" not in text, path


def test_the_peer_groups_response_rate_is_the_other_sites_pooled(app, published_sample):
    """D's peer group (acute trusts) has three other sites with a headcount: their
    responses over their headcount, never one peer's own rate; B's group has no other
    site, so B is told why there is no figure."""
    settings, _ = published_sample
    con = duckdb.connect(str(settings.published_path), read_only=True)
    others = con.execute(
        "select sum(c.n), sum(h.headcount) from cells c join sites s on s.site_code = c.unit "
        "join (select site_code, sum(headcount) headcount from site_headcounts group by 1) h "
        "on h.site_code = c.unit where c.level = 'site' and c.wave = 2026 and "
        "c.breakdown = 'all' and c.measure_kind = 'responses' and s.site_type = "
        "'acute_trust' and c.unit <> 'D'").fetchone()
    single = con.execute(
        "select c.n / h.headcount * 100 from cells c join (select site_code, sum(headcount) "
        "headcount from site_headcounts group by 1) h on h.site_code = c.unit where "
        "c.level = 'site' and c.wave = 2026 and c.breakdown = 'all' and "
        "c.measure_kind = 'responses' and c.unit in ('A', 'F', 'G')").fetchall()
    con.close()
    expected = 100 * others[0] / others[1]
    with PublishedLayer(settings.published_path) as layer:
        assert layer.peer_response_rate("D", 2026) == {"rate": pytest.approx(expected),
                                                       "sites": 3}
    with signed_in(app, "dir-d"):
        page, _ = render_page("/", "?site=D&wave=2026")
    text = as_text(page)
    figure = text[text.index("Peer group's response rate"):][:300]
    assert f"\"{expected:.0f}%\"" in figure
    assert "the other 3 sites of the peer group together" in figure
    # The pooled rate is none of the three peers' own rates.
    assert all(round(rate) != round(expected) for (rate,) in single)
    with signed_in(app, "dir-b"):
        page, _ = render_page("/", "?site=B&wave=2026")
    assert "shown when three or more other sites of the peer group" in as_text(page)
