"""Calibration of the rules that say a site stands out from its peers (issue 20).

For each candidate rule and each design, prints the share of planted outlier cells
flagged (power), the share of truly outside cells flagged, the false-alarm rate among
the other cells, and the false discovery proportion, each with its Monte Carlo
standard error and the number of replicates. "Truly outside" is the generator's own
definition (survey.synthetic.outside_the_peers: the true latent mean more than 1.96
between-site SDs from the mean of the other sites); a flag on a cell that is neither
planted nor truly outside in the flagged direction is a false alarm.

Replicates are drawn at the summary level, from the generator's model: per site and
scale a random effect N(0, SITE_EFFECT_SD^2), the planted shifts, the expected staff
composition of the site's type and the wave trend give the true latent mean; a site's
observed scale mean is alpha + beta * latent + N(0, sigma_w^2 / n) and its SD
sigma_w * sqrt(chi2(n - 1) / (n - 1)). alpha, beta and sigma_w per scale are measured
once from a large generator run (a regression of site means on the recorded latent
means, and the pooled within-site SD). --generator-seeds then runs the real generator
on the sample design for that many seeds and scores the same rules on its actual
responses, so that the summary model can be seen to agree with it.

Designs:
    sample    the 7 sites x 3 waves of data_samples/ (sizes from SAMPLE_SITES), with the
              sample's two planted outliers (D low on psysafety, C high on pathways)
    national  300 sites, one wave of write_national's design (sizes drawn as it draws
              them for --national-responses over 5 waves; 3% of sites planted, each on
              one core scale, either direction)

Rules (each at a two-sided 5% level, |z| > 1.96 unless FDR-controlled at 5%):
    today                 stats.comparison.funnel (phi rescaled by 0.6786), p from
                          t(I - 1), Benjamini-Hochberg
    spiegelhalter         Spiegelhalter (2005) as published: phi not rescaled, normal p
    spiegelhalter+BH      the same with Benjamini-Hochberg
    loo-DL, loo-REML      stats.outliers.deleted_residuals (leave-one-out random
                          effects, tau^2 by DerSimonian-Laird or REML), normal p
    loo-DL+BH, loo-REML+BH  the same with Benjamini-Hochberg
    loo-REML z>2.15       loo-REML at the cut stats.verdicts uses with few sites
    beyond-range          the site's true mean beyond the others' 95% range,
                          mu_(-i) -/+ 1.96 tau_(-i) (REML), one-sided 5%: the test of
                          the truth's own definition of "outside"
    beyond-range+BH       the same with Benjamini-Hochberg
    chosen                stats.verdicts.site_verdicts: loo-REML z>2.15 below
                          MANY_SITES sites, beyond-range+BH from there on

    .venv/bin/python bench/calibration.py [--replicates 1000] [--national-replicates 100]
        [--national-responses 60000 200000 1000000] [--generator-seeds 40] [--seed 20]
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from common import ROOT  # noqa: F401  (puts the project on the path)
from scipy import stats

from stats.comparison import benjamini_hochberg, funnel, pooled_sd
from stats.outliers import deleted_residuals
from stats.verdicts import site_verdicts
from survey.instrument import load_instrument
from survey.settings import DEFAULT_INSTRUMENT, Settings
from survey.synthetic import (OUTLIER_SHIFT, SAMPLE_OUTLIERS, SAMPLE_SITES, SAMPLE_WAVES,
                              SITE_EFFECT_SD, WAVE_TREND, SiteSpec, expected_group_effects,
                              generate_responses, national_sites, outside_the_peers)

FDR = 0.05
#: Cells under the reporting threshold are suppressed, so never compared.
MIN_GROUP_SIZE = Settings().min_group_size
Z95 = float(stats.norm.ppf(0.975))


# --- the rules: one table (sites of one scale and wave) in, -1 / 0 / +1 per site out ---

def _today(n, mean, sd):
    target = float(np.average(mean, weights=n))
    fun = funnel(mean, n, target, pooled_sd(n, sd))
    return np.where(benjamini_hochberg(fun.p) < FDR, np.sign(mean - target), 0)


def _spiegelhalter(bh: bool):
    def rule(n, mean, sd):
        target = float(np.average(mean, weights=n))
        fun = funnel(mean, n, target, pooled_sd(n, sd), consistent=False)
        p = 2 * stats.norm.sf(np.abs(fun.z_adjusted))
        hit = (benjamini_hochberg(p) < FDR) if bh else (p < 1 - 0.95)
        return np.where(hit, np.sign(mean - target), 0)
    return rule


def _leave_one_out(method: str, bh: bool, cut: float = Z95):
    def rule(n, mean, sd):
        result = deleted_residuals(mean, sd ** 2 / n, method)
        hit = (benjamini_hochberg(result.p) < FDR) if bh else (np.abs(result.z) > cut)
        return np.where(hit, np.sign(result.z), 0)
    return rule


def _beyond_range(bh: bool):
    def rule(n, mean, sd):
        result = deleted_residuals(mean, sd ** 2 / n, "REML")
        excess = np.abs(mean - result.mu_without) - Z95 * np.sqrt(result.tau2_without)
        p = stats.norm.sf(excess / np.sqrt(sd ** 2 / n + result.se_without ** 2))
        hit = (benjamini_hochberg(p) < FDR) if bh else (p < FDR)
        return np.where(hit, np.sign(mean - result.mu_without), 0)
    return rule


def _chosen(n, mean, sd):
    verdicts = site_verdicts(pd.DataFrame({"n": n, "mean": mean, "sd": sd}))
    return np.where(verdicts["flagged"], np.sign(verdicts["z"]), 0)


RULES = {
    "today": _today,
    "spiegelhalter": _spiegelhalter(False),
    "spiegelhalter+BH": _spiegelhalter(True),
    "loo-DL": _leave_one_out("DL", False),
    "loo-DL+BH": _leave_one_out("DL", True),
    "loo-REML": _leave_one_out("REML", False),
    "loo-REML+BH": _leave_one_out("REML", True),
    "loo-REML z>2.15": _leave_one_out("REML", False, cut=2.15),
    "beyond-range": _beyond_range(False),
    "beyond-range+BH": _beyond_range(True),
    "chosen": _chosen,
}


# --- the generator's model at the summary level ---

def scale_scores(instrument, table) -> dict[str, np.ndarray]:
    """Each respondent's mean of answered items per scale, reverse-keyed, 9 = missing."""
    scores = {}
    for scale in instrument.scales:
        items = instrument.items_of(scale.id)
        values = np.column_stack([
            table.column(i.id).to_numpy(zero_copy_only=False).astype(float) for i in items])
        values[values == 9] = np.nan
        for position, item in enumerate(items):
            if item.reverse:
                values[:, position] = 6 - values[:, position]
        with warnings.catch_warnings():
            # A respondent who answered none of a scale's items has no score (NaN).
            warnings.simplefilter("ignore", RuntimeWarning)
            scores[scale.id] = np.nanmean(values, axis=1)
    return scores


@dataclass(frozen=True)
class ScaleModel:
    """Observed scale mean = alpha + beta * latent mean; within-site SD sigma_w."""

    alpha: float
    beta: float
    sigma_w: float


def measure_scale_models(instrument, seed: int) -> dict[str, ScaleModel]:
    """alpha, beta, sigma_w per scale from one generator run of 150 sites x 200 people."""
    sites = [SiteSpec(f"S{i:03d}", f"Site {i}", ("acute_trust", "professional_support_unit",
                                                 "independent_support_org",
                                                 "primary_care")[i % 4], "London", 200)
             for i in range(150)]
    table, truth = generate_responses(instrument, sites, [2026], seed, [])
    site_of = np.asarray(table.column("site").to_pylist())
    latent = {(r["site"], r["scale"]): r["waves"][0]["latent_mean"]
              for r in truth["site_truth"]}
    models = {}
    for scale, scores in scale_scores(instrument, table).items():
        ok = ~np.isnan(scores)
        codes, index = np.unique(site_of[ok], return_inverse=True)
        counts = np.bincount(index)
        means = np.bincount(index, scores[ok]) / counts
        within = ((scores[ok] - means[index]) ** 2).sum() / (ok.sum() - len(codes))
        x = np.array([latent[(code, scale)] for code in codes])
        # The latent means are exact, so the noise in the site means does not bias
        # the slope (it would if it were in x).
        beta, alpha = np.polyfit(x, means, 1)
        models[scale] = ScaleModel(float(alpha), float(beta), float(np.sqrt(within)))
    return models


@dataclass(frozen=True)
class Design:
    name: str
    types: list[str]          # site type per site
    sizes: np.ndarray         # sites x waves responses
    planted: np.ndarray       # sites x scales latent shifts


def sample_design(scales: tuple[str, ...]) -> Design:
    planted = np.zeros((len(SAMPLE_SITES), len(scales)))
    codes = [s.code for s in SAMPLE_SITES]
    for code, scale, direction in SAMPLE_OUTLIERS:
        planted[codes.index(code), scales.index(scale)] = direction * OUTLIER_SHIFT
    sizes = np.array([[s.responses_per_wave] * len(SAMPLE_WAVES) for s in SAMPLE_SITES])
    return Design("sample", [s.site_type for s in SAMPLE_SITES], sizes, planted)


def national_design(rng, scales, core, n_responses: int, n_sites: int = 300,
                    n_waves: int = 5) -> Design:
    """One wave of a national design drawn as write_national draws it."""
    sites = national_sites(n_sites, rng)
    weights = np.exp(rng.normal(0, 0.6, n_sites))
    cells = rng.multinomial(n_responses - n_sites * n_waves,
                            np.repeat(weights / weights.sum() / n_waves, n_waves))
    sizes = (1 + cells.reshape(n_sites, n_waves))[:, -1:]
    planted = np.zeros((n_sites, len(scales)))
    for i in rng.choice(n_sites, size=max(1, round(0.03 * n_sites)), replace=False):
        planted[i, scales.index(core[int(rng.integers(len(core)))])] = \
            rng.choice([-1, 1]) * OUTLIER_SHIFT
    return Design(f"national {n_responses // 1000}k", [s.site_type for s in sites], sizes,
                  planted)


def simulate(rng, design: Design, scales, models) -> list[tuple]:
    """Summary tables (n, mean, sd, planted sign, outside sign) per scale and wave."""
    k, waves = design.sizes.shape
    composition = np.array([expected_group_effects(t, scales) for t in design.types])
    position = rng.normal(0, SITE_EFFECT_SD, (k, len(scales))) + design.planted + composition
    _, outside = outside_the_peers(position)
    planted = np.sign(design.planted)
    tables = []
    for t in range(waves):
        shown = design.sizes[:, t] >= MIN_GROUP_SIZE
        n = design.sizes[shown, t].astype(float)
        for j, scale in enumerate(scales):
            model = models[scale]
            latent = position[shown, j] + WAVE_TREND * t
            mean = model.alpha + model.beta * latent + rng.normal(0, model.sigma_w / np.sqrt(n))
            sd = model.sigma_w * np.sqrt(rng.chisquare(n - 1) / (n - 1))
            # Truth is about all sites (a suppressed site is still a peer in the
            # population), the comparison about the published ones.
            tables.append((n, mean, sd, planted[shown, j], outside[shown, j]))
    return tables


def generator_tables(instrument, seed: int) -> list[tuple]:
    """The same tables from the generator's actual responses for the sample design."""
    scales = tuple(s.id for s in instrument.scales)
    table, truth = generate_responses(instrument, list(SAMPLE_SITES), list(SAMPLE_WAVES),
                                      seed, list(SAMPLE_OUTLIERS))
    site = np.asarray(table.column("site").to_pylist())
    wave = table.column("wave").to_numpy()
    scores = scale_scores(instrument, table)
    codes = [s.code for s in SAMPLE_SITES]
    side = {"above": 1, "below": -1, None: 0}
    rows = {(r["site"], r["scale"], w["wave"]): (np.sign(r["planted_shift"]), side[w["outside"]])
            for r in truth["site_truth"] for w in r["waves"]}
    tables = []
    for year in SAMPLE_WAVES:
        for scale in scales:
            n, mean, sd, planted, outside = [], [], [], [], []
            for code in codes:
                values = scores[scale][(site == code) & (wave == year)]
                values = values[~np.isnan(values)]
                n.append(len(values))
                mean.append(values.mean())
                sd.append(values.std(ddof=1))
                planted.append(rows[(code, scale, year)][0])
                outside.append(rows[(code, scale, year)][1])
            tables.append(tuple(np.array(a, float) for a in (n, mean, sd, planted, outside)))
    return tables


# --- scoring ---

class Tally:
    """Per-replicate counts, so that Monte Carlo SEs respect cells of one replicate."""

    def __init__(self):
        self.rows: list[tuple[int, ...]] = []

    def add(self, flags: list[np.ndarray], tables: list[tuple]) -> None:
        counts = np.zeros(9, int)
        for flag, (_, _, _, planted, outside) in zip(flags, tables):
            is_planted = planted != 0
            truly = (outside != 0) | is_planted
            direction = np.where(is_planted, planted, outside)
            hit = flag != 0
            right = hit & truly & (flag == direction)
            counts += [is_planted.sum(), (right & is_planted).sum(), truly.sum(),
                       right.sum(), (~truly).sum(), (hit & ~truly).sum(), hit.sum(),
                       (~is_planted).sum(), (hit & ~is_planted).sum()]
        self.rows.append(tuple(counts))

    @staticmethod
    def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> tuple[float, float]:
        total = denominator.sum()
        if total == 0:
            return float("nan"), float("nan")
        ratio = numerator.sum() / total
        r = len(numerator)
        se = np.sqrt(((numerator - ratio * denominator) ** 2).sum() * r / max(r - 1, 1)) / total
        return float(ratio), float(se)

    def summary(self) -> dict[str, tuple[float, float]]:
        a = np.array(self.rows)
        wrong = a[:, 6] - a[:, 3]  # flagged, but not a truly outside cell in that direction
        return {"planted": self._ratio(a[:, 1], a[:, 0]),
                "outside": self._ratio(a[:, 3], a[:, 2]),
                "false_alarm": self._ratio(a[:, 5], a[:, 4]),
                "unplanted": self._ratio(a[:, 8], a[:, 7]),
                "fdp": self._ratio(wrong, a[:, 6]),
                "replicates": (len(a), 0.0),
                "cells": (int(a[:, 0].sum()), int(a[:, 2].sum()))}


def run(design_tables, label: str, rules: dict | None = None) -> dict[str, dict]:
    rules = rules or RULES
    tallies = {name: Tally() for name in rules}
    started = time.perf_counter()
    for tables in design_tables:
        for name, rule in rules.items():
            tallies[name].add([rule(n, mean, sd) for n, mean, sd, _, _ in tables], tables)
    results = {name: t.summary() for name, t in tallies.items()}
    report(label, results, time.perf_counter() - started)
    return results


def report(label: str, results: dict[str, dict], seconds: float) -> None:
    first = next(iter(results.values()))
    planted_cells, outside_cells = first["cells"]
    print(f"\n{label}: {first['replicates'][0]:.0f} replicates, {planted_cells} planted "
          f"cells, {outside_cells} truly outside cells (planted included), {seconds:.1f} s")
    print(f"  {'rule':<18} {'planted flagged':>16} {'outside flagged':>16} "
          f"{'false alarms':>15} {'FDP':>15} {'unplanted flagged':>18}")
    for name, r in results.items():
        cells = [f"{100 * r[k][0]:5.1f}% ± {100 * r[k][1]:4.2f}" for k in
                 ("planted", "outside", "false_alarm", "fdp", "unplanted")]
        print(f"  {name:<18} {cells[0]:>16} {cells[1]:>16} {cells[2]:>15} {cells[3]:>15} "
              f"{cells[4]:>18}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicates", type=int, default=1000,
                        help="replicates of the 7-site x 3-wave sample design")
    parser.add_argument("--national-replicates", type=int, default=100)
    parser.add_argument("--national-responses", type=int, nargs="+",
                        default=[60_000, 200_000, 1_000_000])
    parser.add_argument("--generator-seeds", type=int, default=40,
                        help="seeds of the real generator on the sample design (0: skip)")
    parser.add_argument("--sweep-sites", type=int, nargs="*",
                        default=[7, 10, 15, 20, 30, 50, 100],
                        help="numbers of sites (about 150 responses each) for the sweep")
    parser.add_argument("--sweep-replicates", type=int, default=300)
    parser.add_argument("--seed", type=int, default=20)
    args = parser.parse_args()

    instrument = load_instrument(DEFAULT_INSTRUMENT)
    scales = tuple(s.id for s in instrument.scales)
    core = [s.id for s in instrument.scales if s.core]
    started = time.perf_counter()
    models = measure_scale_models(instrument, args.seed)
    print(f"scale models from one generator run ({time.perf_counter() - started:.1f} s): "
          "observed mean = alpha + beta * latent, within-site SD sigma_w")
    for scale, m in models.items():
        print(f"  {scale:<17} alpha {m.alpha:5.2f}  beta {m.beta:5.3f}  sigma_w {m.sigma_w:5.3f}"
              f"  noise per latent SD {m.sigma_w / m.beta:5.2f}")

    rng = np.random.default_rng(args.seed)
    design = sample_design(scales)
    run((simulate(rng, design, scales, models) for _ in range(args.replicates)),
        "sample design, 7 sites x 3 waves, summary model")
    if args.generator_seeds:
        run((generator_tables(instrument, 1000 + s) for s in range(args.generator_seeds)),
            "sample design, 7 sites x 3 waves, the generator's own responses")
    for n_responses in args.national_responses:
        run((simulate(rng, national_design(rng, scales, core, n_responses), scales, models)
             for _ in range(args.national_replicates)),
            f"national design, 300 sites, one wave of {n_responses:,} responses over 5")
    # Where FDR control starts to pay, as the number of sites grows (national site mix,
    # 3% planted, at least one): the evidence for stats.verdicts.MANY_SITES.
    sweep = {name: RULES[name] for name in ("loo-REML", "loo-REML z>2.15", "loo-REML+BH",
                                            "beyond-range+BH", "chosen")}
    for k in args.sweep_sites:
        replicates = max(20, args.sweep_replicates * 7 // k)
        run((simulate(rng, national_design(rng, scales, core, k * 5 * 150, n_sites=k),
                      scales, models) for _ in range(replicates)),
            f"sweep: {k} sites, one wave of about 150 responses each", sweep)


if __name__ == "__main__":
    main()
