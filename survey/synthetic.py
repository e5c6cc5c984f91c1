"""Synthetic survey responses drawn from a latent-variable model, with planted truth.

Every respondent has one latent score per scale (higher = more supportive culture):

    theta = site effect (per site x scale; plus a planted shift for outlier sites)
          + wave trend + staff-group and place-of-qualification effects
          + individual deviation (correlated across scales, unit variance)

Each item is an ordinal cut of ``loading * theta + unique error`` at item-specific
thresholds; negatively worded items are flipped back (6 - code) so the file looks like
real answers. Realistic noise is added: blank items, "don't know" (code 9, more often on
the pathways items), respondents who stop part-way, straight-liners and speeders.
Everything is drawn from one seeded generator, so the same seed gives the same files.
What was planted is written to ``manifest.json`` for tests and later stages to check:
the attribute effects, the planted outliers, and the complete truth per site, scale and
wave (``site_truth``, see `site_truth`), so that a comparison's true and false alarms
can be counted, not only whether it found the two sites we meant to be found.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from survey.errors import CultureError
from survey.instrument import Instrument, load_instrument
from survey.settings import DEFAULT_INSTRUMENT, SAMPLES_DIR

GENERATOR_VERSION = "1"
SAMPLE_SEED = 20261123
ATTRIBUTE_COLUMNS = ("staff_group", "contract", "pmq", "gender", "age_band", "ethnicity")

#: SD of the site random effect on each latent scale: site ICC of scale scores ~ .07-.10.
SITE_EFFECT_SD = 0.33
#: Change of every latent scale per wave (culture improving slowly).
WAVE_TREND = 0.04
#: Latent shift of a planted outlier site on its scale(s): three site-effect SDs.
OUTLIER_SHIFT = 1.0
#: Weights of the latent scales (respondent SDs) in the propensity to seek help early,
#: from which oc_intend is cut at the agree5 thresholds (plus noise of SD 0.7). The
#: committed samples' weights: stigma first, then pathways and leaders modelling
#: vulnerability (equal), the other five only through their correlation with these.
SAMPLE_DRIVER_WEIGHTS = {"stigma": 0.5, "pathways": 0.3, "leader_modelling": 0.3}
#: The national design's weights (`culture generate --national`, recorded in its
#: manifest), every scale's explicit, so the driver analysis (issue 23) has a known order
#: to recover: stigma and psychological safety matter most (bench/drivers.py plants the
#: same). General dominance shares out correlated variance, so a scale in the tighter
#: CLUSTER gains on one outside it: with confidentiality at 0.04 below voice_peer at 0.08
#: it came out above it, and leader_modelling (0.15) above pathways (0.22), so the planted
#: order was not the one to recover. These weights are in an order the cluster agrees
#: with (its four scales 1st, 2nd, 4th and 5th; every weight distinct), with gaps wide
#: enough that the national set's estimated order is the planted one (seeds 2026, 7 and
#: 11 at 300k responses; bench/drivers.py prints both orders).
NATIONAL_DRIVER_WEIGHTS = {"stigma": 0.46, "psysafety": 0.36, "pathways": 0.32,
                           "leader_modelling": 0.18, "confidentiality": 0.10,
                           "voice_peer": 0.08, "systems_view": 0.05, "development": 0.0}
#: A site x scale x wave cell is truly outside the peer distribution when its true latent
#: mean lies more than this many true between-site SDs (SITE_EFFECT_SD) from the mean of
#: the other sites' true latent means in that wave: under the model a site drawn like its
#: peers lands there rarely (about 7% with 7 sites, 5% with hundreds), so a comparison
#: that flags it has found something real even when nothing was planted.
OUTSIDE_MARGIN_SDS = 1.96
#: Correlation of the individual latent deviations: the "trust" cluster is tighter.
BASE_CORRELATION = 0.35
CLUSTER = ("stigma", "psysafety", "confidentiality", "leader_modelling")
CLUSTER_CORRELATION = 0.55

#: Attribute effects on the latent scales (SD units); the guide warns that international
#: graduates and locally employed doctors know the routes into support less well.
GROUP_EFFECTS = {
    "staff_group": {
        "locally_employed": {"pathways": -0.45, "psysafety": -0.2, "confidentiality": -0.15},
        "foundation": {"pathways": -0.2, "stigma": -0.15},
        "resident": {"stigma": -0.1},
        "consultant": {"psysafety": 0.2, "pathways": 0.1},
    },
    "pmq": {
        "rest_of_world": {"pathways": -0.4, "stigma": -0.15, "confidentiality": -0.2},
        "eea": {"pathways": -0.2},
    },
}

STAFF_MIX = {  # staff_group proportions by site type
    "acute_trust": {"foundation": .12, "resident": .30, "gp_resident": .02, "sas": .10,
                    "consultant": .30, "locally_employed": .12, "gp": .01, "non_medical": .03},
    "professional_support_unit": {"foundation": .25, "resident": .45, "gp_resident": .18,
                                  "sas": .04, "consultant": .03, "locally_employed": .03,
                                  "gp": .01, "non_medical": .01},
    "independent_support_org": {"foundation": .05, "resident": .20, "gp_resident": .05,
                                "sas": .15, "consultant": .30, "locally_employed": .10,
                                "gp": .14, "non_medical": .01},
    "primary_care": {"foundation": .08, "resident": .02, "gp_resident": .25, "sas": .03,
                     "consultant": .01, "locally_employed": .01, "gp": .55, "non_medical": .05},
}
REGIONS = ("North East and Yorkshire", "North West", "Midlands", "East of England", "London",
           "South East", "South West")


@dataclass(frozen=True)
class SiteSpec:
    code: str
    name: str
    site_type: str
    region: str
    responses_per_wave: int


#: The seven sites of the RESTORE 2 design (Table 1); names are fictional.
SAMPLE_SITES = (
    SiteSpec("A", "Tamar Valley Hospitals NHS Trust", "acute_trust", "South West", 240),
    SiteSpec("B", "Practitioner Support Partnership", "independent_support_org", "National", 90),
    SiteSpec("C", "Weald and Downs Professional Support Unit", "professional_support_unit",
             "South East", 140),
    SiteSpec("D", "Trent Meadows University Hospitals NHS Trust", "acute_trust", "Midlands", 220),
    SiteSpec("E", "Solent Coast Support and Wellbeing Service", "professional_support_unit",
             "South East", 120),
    SiteSpec("F", "North Downs Hospitals NHS Trust", "acute_trust", "South East", 200),
    SiteSpec("G", "Exmoor and Quantock Healthcare NHS Trust", "acute_trust", "South West", 180),
)
SAMPLE_WAVES = (2024, 2025, 2026)
#: What the survey form tells each sample site's respondents (sites.csv's optional
#: columns): who to ask about the survey, and where to get support now. Fictional, on
#: the reserved example.org domain; E has no support of its own, so its form names the
#: general services only.
SAMPLE_SUPPORT = {
    "A": ("survey@tamar-valley.example.org", "The Staff Wellbeing Hub (main hospital, ground "
          "floor) is open 8am to 8pm for a confidential conversation.",
          "https://tamar-valley.example.org/wellbeing"),
    "B": ("research@practitioner-support.example.org", "Our advice line is open every day: "
          "ask for a confidential call back.", ""),
    "C": ("survey@weald-downs.example.org", "Your professional support unit offers "
          "confidential coaching and support; self-referral is open.",
          "https://weald-downs.example.org/support"),
    "D": ("staff-survey@trent-meadows.example.org", "Occupational health and the staff "
          "psychology service take self-referrals.",
          "https://trent-meadows.example.org/staff-support"),
    "E": ("survey@solent-coast.example.org", "", ""),
    "F": ("survey@north-downs.example.org", "Speak in confidence to the staff wellbeing "
          "team, or to your educational or clinical supervisor.", ""),
    "G": ("survey@exmoor-quantock.example.org", "The staff support line is open around "
          "the clock.", "https://exmoor-quantock.example.org/support"),
}
SAMPLE_OUTLIERS = (("D", "psysafety", -1), ("C", "pathways", +1))


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise CultureError(message)


def _latent_correlation(scales: tuple[str, ...]) -> np.ndarray:
    k = len(scales)
    corr = np.full((k, k), BASE_CORRELATION)
    for i, a in enumerate(scales):
        for j, b in enumerate(scales):
            if a in CLUSTER and b in CLUSTER:
                corr[i, j] = CLUSTER_CORRELATION
    np.fill_diagonal(corr, 1.0)
    return corr


def _choice(rng: np.random.Generator, options: list[str], p: np.ndarray, n: int) -> np.ndarray:
    return np.asarray(options, dtype=object)[rng.choice(len(options), size=n, p=p / p.sum())]


def _attributes(rng: np.random.Generator, site_types: np.ndarray) -> dict[str, np.ndarray]:
    """Coarse respondent attributes that depend on site type and on each other."""
    n = len(site_types)
    staff = np.empty(n, dtype=object)
    for site_type, mix in STAFF_MIX.items():
        rows = site_types == site_type
        staff[rows] = _choice(rng, list(mix), np.array(list(mix.values())), int(rows.sum()))
    in_training = np.isin(staff, ["foundation", "resident", "gp_resident"])
    contract = np.where(in_training, "training", np.where(
        staff == "locally_employed", "fixed_term", "permanent")).astype(object)
    locum = rng.random(n) < 0.05
    contract[locum & ~in_training] = "locum_bank"
    international = np.where(staff == "locally_employed", 0.55, 0.2)
    draw = rng.random(n)
    pmq = np.where(draw < international, "rest_of_world",
                   np.where(draw < international + 0.08, "eea", "uk")).astype(object)
    gender = _choice(rng, ["woman", "man", "another"], np.array([.52, .47, .01]), n)
    junior = np.isin(staff, ["foundation", "resident", "gp_resident"])
    young = _choice(rng, ["age_under30", "age_30_39", "age_40_49"], np.array([.55, .4, .05]), n)
    older = _choice(rng, ["age_30_39", "age_40_49", "age_50_59", "age_60_plus"],
                    np.array([.2, .35, .33, .12]), n)
    age = np.where(junior, young, older)
    ethnicity = _choice(rng, ["white", "asian", "black_mixed_other"], np.array([.6, .29, .11]), n)
    values = {"staff_group": staff, "contract": contract, "pmq": pmq, "gender": gender,
              "age_band": age, "ethnicity": ethnicity}
    for name, column in values.items():
        draw = rng.random(n)
        column = column.copy()
        column[draw < 0.03] = "prefer_not_to_say"
        column[(draw >= 0.03) & (draw < 0.06)] = None     # skipped: optional question
        values[name] = column
    return values


def expected_group_effects(site_type: str, scales: tuple[str, ...]) -> np.ndarray:
    """The mean attribute effect on each latent scale among a site type's respondents.

    Follows `_attributes`: staff groups in the type's mix, place of qualification
    outside Europe with probability .55 for locally employed doctors and .2 for the
    rest, EEA .08; each attribute is then hidden ("prefer not to say" or skipped) for
    6% of respondents, who get none of that attribute's effects. This is the site's
    expected composition, not the composition its sample happened to draw.
    """
    mix = STAFF_MIX[site_type]
    shown = 0.94
    effect = dict.fromkeys(scales, 0.0)
    for group, share in mix.items():
        for scale, value in GROUP_EFFECTS["staff_group"].get(group, {}).items():
            effect[scale] += shown * share * value
        outside_europe = 0.55 if group == "locally_employed" else 0.2
        for pmq, chance in (("rest_of_world", outside_europe), ("eea", 0.08)):
            for scale, value in GROUP_EFFECTS["pmq"][pmq].items():
                effect[scale] += shown * share * chance * value
    return np.array([effect[s] for s in scales])


def outside_the_peers(position: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each unit's gap to the mean of the others (down axis 0), and +1 / -1 / 0 for a
    gap above / below / within OUTSIDE_MARGIN_SDS * SITE_EFFECT_SD.

    `position` holds true latent means, units down the first axis (any further axes are
    separate comparisons: scales, replicates). The one definition of "truly outside",
    shared by the manifest and bench/calibration.py.
    """
    position = np.asarray(position, float)
    k = position.shape[0]
    if k < 2:
        return np.zeros_like(position), np.zeros(position.shape, int)
    gap = position - (position.sum(axis=0) - position) / (k - 1)
    margin = OUTSIDE_MARGIN_SDS * SITE_EFFECT_SD
    return gap, np.where(gap > margin, 1, np.where(gap < -margin, -1, 0))


def site_truth(sites: list[SiteSpec], waves: list[int], scales: tuple[str, ...],
               random_effects: np.ndarray, planted: np.ndarray) -> list[dict]:
    """Every site's true latent position per scale and wave, and whether it is outside.

    For site i, scale s and wave w (index t = 0, 1, ...):

        latent_mean = random_effect + planted_shift + composition + WAVE_TREND * t

    where composition is `expected_group_effects` of the site's type. The cell is
    outside ("above" or "below"; else None) when latent_mean differs from the mean of
    the other sites' latent_mean in that wave by more than OUTSIDE_MARGIN_SDS *
    SITE_EFFECT_SD. The margin uses the model's between-site SD, not the SD of the
    drawn effects, so a planted outlier among the peers does not widen it. A planted
    shift (3 SDs) is almost always outside, but not by definition: a random effect of
    the other sign can pull it back, and the truth then says so.
    """
    composition = np.array([expected_group_effects(s.site_type, scales) for s in sites])
    position = random_effects + planted + composition
    gap, side = outside_the_peers(position)
    rows = []
    for i, site in enumerate(sites):
        for j, scale in enumerate(scales):
            outside = {1: "above", -1: "below", 0: None}[int(side[i, j])]
            rows.append({
                "site": site.code, "scale": scale,
                "random_effect": round(float(random_effects[i, j]), 6),
                "planted_shift": float(planted[i, j]),
                "composition": round(float(composition[i, j]), 6),
                "gap_to_others": round(float(gap[i, j]), 6),
                # The trend is common to all sites, so the gap, and whether the cell
                # is outside, is the same in every wave of this model.
                "waves": [{"wave": wave,
                           "latent_mean": round(float(position[i, j] + WAVE_TREND * t), 6),
                           "outside": outside}
                          for t, wave in enumerate(waves)],
            })
    return rows


def generate_responses(instrument: Instrument, sites: list[SiteSpec], waves: list[int],
                       seed: int, outliers: list[tuple[str, str, int]],
                       site_sizes: np.ndarray | None = None,
                       outlier_shift: float = OUTLIER_SHIFT,
                       driver_weights: dict[str, float] | None = None) -> tuple[pa.Table, dict]:
    """Responses for every site and wave as an Arrow table, and the truth planted in them.

    `site_sizes` (sites x waves) overrides the per-site responses_per_wave;
    `outlier_shift` is the latent shift of each planted outlier (in respondent SDs);
    `driver_weights` the scales' weights in the propensity behind oc_intend (default
    SAMPLE_DRIVER_WEIGHTS).
    """
    _check(len(sites) >= 1 and len(waves) >= 1, "need at least one site and one wave")
    rng = np.random.default_rng(seed)
    scales = tuple(s.id for s in instrument.scales)
    scale_index = {s: i for i, s in enumerate(scales)}
    sizes = site_sizes if site_sizes is not None else np.array(
        [[s.responses_per_wave] * len(waves) for s in sites])
    site_of = np.repeat(np.arange(len(sites)), sizes.sum(axis=1))
    wave_of = np.concatenate([np.repeat(np.arange(len(waves)), row) for row in sizes])
    n = len(site_of)

    random_effects = rng.normal(0, SITE_EFFECT_SD, size=(len(sites), len(scales)))
    planted = np.zeros_like(random_effects)
    for code, scale, direction in outliers:
        planted[[s.code for s in sites].index(code), scale_index[scale]] += \
            direction * outlier_shift
    site_effects = random_effects + planted
    site_types = np.array([sites[i].site_type for i in site_of], dtype=object)
    attributes = _attributes(rng, site_types)
    chol = np.linalg.cholesky(_latent_correlation(scales))
    theta = rng.standard_normal((n, len(scales))) @ chol.T
    theta += site_effects[site_of] + WAVE_TREND * wave_of[:, None]
    for attribute, groups in GROUP_EFFECTS.items():
        for group, effects in groups.items():
            rows = attributes[attribute] == group
            for scale, effect in effects.items():
                theta[rows, scale_index[scale]] += effect

    columns: dict[str, np.ndarray] = {}
    base_thresholds = np.array([-1.7, -0.8, 0.05, 1.2])
    for item in instrument.items:
        if item.kind != "scale":
            continue
        loading = rng.uniform(0.6, 0.8)
        thresholds = base_thresholds + rng.normal(0, 0.15)
        y = loading * theta[:, scale_index[item.scale]] + np.sqrt(1 - loading**2) * \
            rng.standard_normal(n)
        code = 1 + (y[:, None] > thresholds).sum(axis=1)
        columns[item.id] = (6 - code if item.reverse else code).astype(np.int16)
    # Summed in the weights' order, then the noise: the samples' floats are unchanged.
    propensity = np.zeros(n)
    for scale, weight in (driver_weights or SAMPLE_DRIVER_WEIGHTS).items():
        propensity = propensity + weight * theta[:, scale_index[scale]]
    propensity = propensity + 0.7 * rng.standard_normal(n)
    columns["oc_intend"] = (1 + (propensity[:, None] > base_thresholds).sum(axis=1)).astype(np.int16)
    needed = rng.random(n) < 0.3
    used_p = np.where(needed, 1 / (1 + np.exp(0.3 - 0.8 * theta[:, scale_index["pathways"]])), .05)
    columns["oc_needed"] = np.where(needed, 2, 1).astype(np.int16)
    columns["oc_used"] = np.where(rng.random(n) < used_p, 2, 1).astype(np.int16)

    agree_items = [i.id for i in instrument.items if i.response_scale == "agree5"]
    straight = rng.random(n) < 0.01
    straight_code = rng.choice([2, 3, 4, 4, 5], size=n)
    for item_id in agree_items:
        columns[item_id] = np.where(straight, straight_code, columns[item_id]).astype(np.int16)

    # Missingness, as masks (True = blank): MCAR blanks, "don't know", stopping part-way
    # (after item 20 at the earliest, so every clean response stays usable).
    blank = {i.id: rng.random(n) < 0.02 for i in instrument.items}
    dont_know = {i.id: rng.random(n) < (0.05 if i.scale == "pathways" else 0.01)
                 for i in instrument.items}
    stop_at = np.where(rng.random(n) < 0.02, rng.integers(20, len(instrument.items), n),
                       len(instrument.items))
    for position, item in enumerate(instrument.items):
        dk = dont_know[item.id] & ~straight
        columns[item.id] = np.where(dk, 9, columns[item.id]).astype(np.int16)
        blank[item.id] |= position >= stop_at
        if item.asked_if is not None:
            # Routed items are skipped, as the form would, by those they are not asked of.
            asked = np.isin(attributes[item.asked_if.attribute], list(item.asked_if.codes))
            blank[item.id] |= ~asked

    ids = np.empty(n, dtype=object)
    for (s, w) in set(zip(site_of.tolist(), wave_of.tolist())):
        rows = np.flatnonzero((site_of == s) & (wave_of == w))
        ids[rows] = [f"{sites[s].code}-{waves[w]}-{i + 1:05d}" for i in range(len(rows))]
    # Submitted on a day of the wave's six-week autumn window (never a time of day).
    wave_start = np.array([(date(year, 10, 1) - date(1970, 1, 1)).days for year in waves])
    submitted_days = (wave_start[wave_of] + rng.integers(0, 42, n)).astype(np.int32)
    duration = np.exp(rng.normal(np.log(300), 0.4, n))
    speeder = rng.random(n) < 0.02
    duration = np.where(speeder, rng.uniform(20, 59, n), duration).round().astype(np.int32)

    arrays = {
        "response_id": pa.array(ids, type=pa.string()),
        "site": pa.array([sites[i].code for i in site_of], type=pa.string()),
        "wave": pa.array(np.asarray(waves)[wave_of].astype(np.int32)),
        "submitted_on": pa.array(submitted_days, type=pa.int32()).cast(pa.date32()),
        "duration_seconds": pa.array(duration),
    }
    for name in ATTRIBUTE_COLUMNS:
        arrays[name] = pa.array(attributes[name], type=pa.string())
    for item in instrument.items:
        arrays[item.id] = pa.array(columns[item.id], mask=blank[item.id], type=pa.int16())

    truth = {
        "site_effect_sd": SITE_EFFECT_SD,
        "intended_site_icc": round(SITE_EFFECT_SD**2 / (1 + SITE_EFFECT_SD**2), 3),
        "wave_trend_per_wave": WAVE_TREND,
        "group_effects": GROUP_EFFECTS,
        "outliers": [{"site": code, "scale": scale,
                      "direction": "high" if direction > 0 else "low",
                      "latent_shift": direction * outlier_shift}
                     for code, scale, direction in outliers],
        "straight_liners": int(straight.sum()),
        "speeders": int(speeder.sum()),
        "outside_margin": {
            "between_site_sds": OUTSIDE_MARGIN_SDS,
            "latent_units": round(OUTSIDE_MARGIN_SDS * SITE_EFFECT_SD, 6),
            "rule": "a cell is outside when its true latent mean differs from the mean of "
                    "the other sites' true latent means in that wave by more than "
                    "between_site_sds x site_effect_sd",
        },
        "site_truth": site_truth(sites, waves, scales, random_effects, planted),
    }
    return pa.table(arrays), truth


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_csv(table: pa.Table, path: Path) -> None:
    """CSV with blanks for missing values, written by DuckDB in file order."""
    with duckdb.connect() as con:
        con.register("rows", table)
        con.execute("copy (select * from rows) to '" + str(path).replace("'", "''") +
                    "' (header, delimiter ',')")


def _write_reference(sites: list[SiteSpec], out_dir: Path, instrument: Instrument,
                     rng: np.random.Generator) -> None:
    import csv

    with (out_dir / "sites.csv").open("w", encoding="utf-8", newline="\n") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["site_code", "name", "site_type", "region", "contact_email",
                         "support_text", "support_url"])
        for s in sites:
            writer.writerow([s.code, s.name, s.site_type, s.region,
                             *SAMPLE_SUPPORT.get(s.code, ("", "", ""))])
    groups = [o.code for a in instrument.attributes if a.id == "staff_group"
              for o in a.options if o.code != "prefer_not_to_say"]
    with (out_dir / "headcounts.csv").open("w", encoding="utf-8", newline="\n") as handle:
        handle.write("site_code,staff_group,headcount\n")
        for s in sites:
            mix = STAFF_MIX[s.site_type]
            for group in groups:
                # Headcount ~ responses / a response rate of 35-60%.
                expected = s.responses_per_wave * mix[group] / rng.uniform(0.35, 0.6)
                handle.write(f"{s.code},{group},{int(round(expected))}\n")


def write_samples(out_dir: Path = SAMPLES_DIR, seed: int = SAMPLE_SEED,
                  instrument_path: Path = DEFAULT_INSTRUMENT) -> dict:
    """The committed samples: 7 sites x 3 waves, clean and dirty CSV, and the manifest."""
    from survey.synthetic_dirty import make_dirty

    instrument = load_instrument(instrument_path)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table, truth = generate_responses(instrument, list(SAMPLE_SITES), list(SAMPLE_WAVES), seed,
                                      list(SAMPLE_OUTLIERS))
    clean = out_dir / "responses_clean.csv"
    _write_csv(table, clean)
    dirty_rows = make_dirty(clean, out_dir / "responses_dirty.csv", instrument,
                            np.random.default_rng(seed + 1))
    _write_reference(list(SAMPLE_SITES), out_dir, instrument, np.random.default_rng(seed + 2))
    manifest = {
        "generator_version": GENERATOR_VERSION, "seed": seed, "instrument": instrument.key,
        "n_responses": table.num_rows, "waves": list(SAMPLE_WAVES),
        "sites": [s.__dict__ for s in SAMPLE_SITES], **truth,
        "dirty": {"file": "responses_dirty.csv", "bad_rows": dirty_rows,
                  "expected_accepted": table.num_rows, "expected_rejected": len(dirty_rows)},
    }
    return _finish_manifest(out_dir, manifest, ["responses_clean.csv", "responses_dirty.csv",
                                                "sites.csv", "headcounts.csv"])


def _finish_manifest(out_dir: Path, manifest: dict, names: list[str]) -> dict:
    def rows(name: str) -> int:
        if name.endswith(".parquet"):
            with duckdb.connect() as con:
                return con.execute("select count(*) from read_parquet(?)",
                                   [str(out_dir / name)]).fetchone()[0]
        with (out_dir / name).open("rb") as handle:
            return sum(1 for _ in handle) - 1
    manifest["files"] = [{"name": name, "rows": rows(name), "sha256": _sha256(out_dir / name)}
                         for name in names]
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n",
                                           encoding="utf-8")
    return manifest


def national_sites(n_sites: int, rng: np.random.Generator) -> list[SiteSpec]:
    """A national mix of site types across the regions of England."""
    types = _choice(rng, list(STAFF_MIX), np.array([.6, .1, .1, .2]), n_sites)
    regions = _choice(rng, list(REGIONS), np.ones(len(REGIONS)), n_sites)
    suffix = {"acute_trust": "Hospitals NHS Trust", "primary_care": "Primary Care Network",
              "professional_support_unit": "Professional Support Unit",
              "independent_support_org": "Practitioner Support Service"}
    return [SiteSpec(f"S{i + 1:03d}", f"Site {i + 1:03d} {suffix[t]}", t, r, 0)
            for i, (t, r) in enumerate(zip(types, regions))]


def write_national(out_dir: Path, seed: int = 2026, n_responses: int = 1_000_000,
                   n_sites: int = 300, n_waves: int = 5, formats: tuple[str, ...] = ("parquet",),
                   instrument_path: Path = DEFAULT_INSTRUMENT) -> dict:
    """The national-scale set (default 1M responses, 300 sites, 5 waves) as Parquet (+CSV)."""
    import pyarrow.parquet as pq

    _check(n_sites >= 1 and n_waves >= 1 and n_responses >= n_sites * n_waves,
           f"need n_sites >= 1, n_waves >= 1 and at least one response per site and wave "
           f"(got {n_responses} responses, {n_sites} sites, {n_waves} waves)")
    _check(set(formats) <= {"parquet", "csv"}, f"formats must be parquet and/or csv: {formats}")
    instrument = load_instrument(instrument_path)
    rng = np.random.default_rng(seed)
    sites = national_sites(n_sites, rng)
    weights = np.exp(rng.normal(0, 0.6, n_sites))
    cells = rng.multinomial(n_responses - n_sites * n_waves,
                            np.repeat(weights / weights.sum() / n_waves, n_waves))
    sizes = 1 + cells.reshape(n_sites, n_waves)
    outlier_sites = rng.choice(n_sites, size=max(1, round(0.03 * n_sites)), replace=False)
    core = [s.id for s in instrument.scales if s.core]
    outliers = [(sites[i].code, core[int(rng.integers(len(core)))], int(rng.choice([-1, 1])))
                for i in sorted(outlier_sites)]
    waves = list(range(2027 - n_waves, 2027))
    sites = [SiteSpec(s.code, s.name, s.site_type, s.region, int(sizes[i].mean()))
             for i, s in enumerate(sites)]
    table, truth = generate_responses(instrument, sites, waves, seed + 1, outliers, sizes,
                                      driver_weights=NATIONAL_DRIVER_WEIGHTS)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = []
    if "parquet" in formats:
        # Row groups of 100k rows let DuckDB read the file on every core.
        pq.write_table(table, out_dir / "responses.parquet", row_group_size=100_000)
        names.append("responses.parquet")
    if "csv" in formats:
        _write_csv(table, out_dir / "responses.csv")
        names.append("responses.csv")
    _write_reference(sites, out_dir, instrument, rng)
    manifest = {"generator_version": GENERATOR_VERSION, "seed": seed,
                "instrument": instrument.key, "n_responses": table.num_rows,
                "n_sites": n_sites, "waves": waves, **truth,
                "driver_weights": NATIONAL_DRIVER_WEIGHTS}
    return _finish_manifest(out_dir, manifest, names + ["sites.csv", "headcounts.csv"])
