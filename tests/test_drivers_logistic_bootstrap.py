"""The one-step site bootstrap of the logistic driver model (stats.drivers).

`logistic_site_bootstrap` does not refit the 2^p - 1 logistic models in each replicate:
it sums each model's score and information per site once, at the coefficients fitted on
all the sites, and takes one Newton step per replicate. Checked here on small seeded
designs with sites that differ (site effects on the predictors and on the outcome):

- against the full refit of every model on the same resampled sites (`method="refit"`):
  the interval ends agree within ONE_STEP_TOLERANCE;
- against planted truth: the population shares (the same analysis on a design 100 times
  larger) fall inside the 95% intervals at about that rate over seeds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stats.drivers import DriversError, dominance_table, logistic_site_bootstrap

NAMES = ("a", "b", "c")
#: Planted log-odds weights: a first, then b, c none of its own (only via correlation).
WEIGHTS = np.array([0.8, 0.45, 0.0])
#: One step from the full-sample coefficients against the converged refit: the
#: difference is second order (about 1 / n against the interval's 1 / sqrt(n)). On
#: 2,400 respondents it was at most 0.0016 in a replicate's share and 0.0004 at an
#: interval's end over seeds 1-7, so 0.005 leaves room but catches a step that went
#: wrong (a site left out, a wrong sign, the null model not resampled).
ONE_STEP_TOLERANCE = 0.005


def clustered(seed: int, n_sites: int = 40, per_site: int = 60):
    """(x, y, site) of a logistic outcome on three correlated predictors, with site
    effects on the predictors and on the outcome's log-odds."""
    rng = np.random.default_rng(seed)
    site = np.repeat(np.arange(n_sites), per_site)
    n = len(site)
    common = rng.standard_normal((n, 1))
    x = (0.8 * rng.standard_normal((n, 3)) + 0.5 * common
         + rng.normal(0, 0.4, (n_sites, 3))[site])
    eta = -0.4 + x @ WEIGHTS + rng.normal(0, 0.3, n_sites)[site]
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    return x, y, site


def test_one_step_agrees_with_refitting_every_replicate():
    for seed in (1, 2):
        x, y, site = clustered(seed)
        quick = logistic_site_bootstrap(x, y, site, "y", NAMES, draws=100, seed=seed)
        full = logistic_site_bootstrap(x, y, site, "y", NAMES, draws=100, seed=seed,
                                       method="refit")
        # same full-sample estimate, same resampled sites
        np.testing.assert_array_equal(quick.share, full.share)
        assert np.abs(quick.share_draws - full.share_draws).max() < ONE_STEP_TOLERANCE
        np.testing.assert_allclose(quick.share_low, full.share_low, atol=ONE_STEP_TOLERANCE)
        np.testing.assert_allclose(quick.share_high, full.share_high, atol=ONE_STEP_TOLERANCE)
        assert quick.total_low == pytest.approx(full.total_low, abs=ONE_STEP_TOLERANCE / 2)
        assert quick.total_high == pytest.approx(full.total_high, abs=ONE_STEP_TOLERANCE / 2)
        # and the intervals are real intervals of a real width
        assert (quick.share_low < quick.share).all() and (quick.share < quick.share_high).all()
        assert (quick.share_high - quick.share_low).min() > 0.01


def test_the_estimate_is_the_plain_dominance_analysis():
    x, y, site = clustered(3)
    boot = logistic_site_bootstrap(x, y, site, "y", NAMES, draws=20)
    plain = dominance_table(pd.DataFrame(dict(zip(NAMES, x.T)) | {"y": y}), "y", NAMES,
                            "logistic")
    np.testing.assert_allclose(boot.share, plain.general_share, rtol=1e-10)
    assert boot.total == pytest.approx(plain.total, rel=1e-10)
    assert boot.n == len(y) and boot.n_sites == 40


def test_intervals_cover_the_planted_shares_at_about_the_nominal_rate():
    # the population shares: the same analysis on 4,000 sites
    x, y, site = clustered(1000, n_sites=4000)
    truth = dominance_table(pd.DataFrame(dict(zip(NAMES, x.T)) | {"y": y}), "y", NAMES,
                            "logistic").general_share
    assert list(np.argsort(-truth)) == [0, 1, 2] and truth[2] > 0.02
    covered, widths = [], []
    for seed in range(25):
        x, y, site = clustered(seed)
        boot = logistic_site_bootstrap(x, y, site, "y", NAMES, draws=200, seed=seed)
        covered.append((boot.share_low <= truth) & (truth <= boot.share_high))
        widths.append(boot.share_high - boot.share_low)
    # 75 intervals at 95%: 0.947 with these seeds (0.91 over 100 seeds: a percentile
    # bootstrap of 40 sites runs a little short); below 0.85 would be a real shortfall
    assert 0.85 <= np.mean(covered) <= 1.0
    assert np.mean(widths) > 0.05


def test_unusable_bootstraps_say_what_is_wrong():
    x, y, site = clustered(4, n_sites=4)
    with pytest.raises(DriversError, match="at least 5 sites"):
        logistic_site_bootstrap(x, y, site, "y", NAMES)
    x, y, site = clustered(4)
    with pytest.raises(DriversError, match="method 'exact' is not one of"):
        logistic_site_bootstrap(x, y, site, "y", NAMES, method="exact")
    with pytest.raises(DriversError, match=r"x must be \(rows, 3 predictors\)"):
        logistic_site_bootstrap(x[:, :2], y, site, "y", NAMES)
