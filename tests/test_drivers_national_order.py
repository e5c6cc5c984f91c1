"""The national generator's planted driver order is the order general dominance finds.

survey.synthetic.NATIONAL_DRIVER_WEIGHTS plants the scales' weights in the propensity
behind oc_intend. General dominance shares out correlated variance, so the planted
weights are only recoverable when their order agrees with how the scales correlate (see
the constant). One wave of the national design (300 sites of the national mix, 300,000
responses) is generated here with the items, scored by the pipeline's rule, and the
estimated order of all eight scales must be the planted one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.scoring import scale_score
from stats.drivers import dominance_table
from survey.synthetic import (NATIONAL_DRIVER_WEIGHTS, SiteSpec, generate_responses,
                              national_sites)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [2026, 7])
def test_the_estimated_order_is_the_planted_order(instrument, seed):
    rng = np.random.default_rng(seed)
    sites = national_sites(300, rng)
    sizes = 1 + rng.multinomial(300_000 - 300, rng.dirichlet(np.full(300, 2.0)))[:, None]
    sites = [SiteSpec(s.code, s.name, s.site_type, s.region, int(sizes[i, 0]))
             for i, s in enumerate(sites)]
    table, _ = generate_responses(instrument, sites, [2026], seed + 1, [], sizes,
                                  driver_weights=NATIONAL_DRIVER_WEIGHTS)
    answers = table.to_pandas()
    scales = [s.id for s in instrument.scales]
    frame = pd.DataFrame({s: scale_score(answers, instrument, s) for s in scales})
    frame["oc_intend"] = answers["oc_intend"].astype(float)
    estimated = list(dominance_table(frame, "oc_intend", scales).table().index)
    planted = sorted(NATIONAL_DRIVER_WEIGHTS, key=lambda s: -NATIONAL_DRIVER_WEIGHTS[s])
    assert len(set(NATIONAL_DRIVER_WEIGHTS.values())) == 8   # an order, not ties
    assert estimated == planted
