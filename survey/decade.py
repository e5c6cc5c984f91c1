"""A decade of the national design: ten consecutive waves, one Parquet file a wave.

`write_decade` is the national set of `survey.synthetic.write_national` stretched over
ten years (default 1,000,000 responses a wave, 300 sites, waves 2017-2026: 10,000,000
responses), written so that memory stays small: the sites are taken in groups of about
`chunk_rows` responses over all the waves, each group is drawn by the one generator
(`generate_responses`, all its waves in one call) and its rows are appended to the
wave files as they come. No more than one group's rows are ever held at once.

Why groups of sites over all waves, not one wave over all sites: a site's random
effect and the items' loadings and thresholds are drawn once per call, so a call per
wave would give every site a new culture and every item a new cut each year, and the
year-on-year change would drown in that noise. Within a group, a site keeps its effect
for the decade and every wave is cut at the same thresholds, so what moves from year to
year is the planted trend (`WAVE_TREND` latent SDs a wave on every scale, about 0.36 SD
over the decade) plus the sampling of new respondents. The price: each group has its
own draw of item parameters, a little extra between-site spread (scale-level SD about
0.07 latent units against the sites' 0.33), which is recorded in the manifest.

Sizes: each site has a persistent size (log-normal weight, as in write_national); each
wave's responses are split over the sites by a multinomial draw on those weights (at
least one each), so sites grow and shrink a little from year to year while every wave
holds exactly `per_wave` responses. Same seed, same files.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from survey.instrument import load_instrument
from survey.settings import DEFAULT_INSTRUMENT
from survey.synthetic import (
    GENERATOR_VERSION, NATIONAL_DRIVER_WEIGHTS, WAVE_TREND, SiteSpec, _check,
    _write_reference, generate_responses, national_sites, outside_the_peers,
)

DECADE_SEED = 2027
FIRST_WAVE = 2017
#: Rows drawn in one call of the generator (all waves of a group of sites): about 0.5 GB
#: of working memory, whatever the decade's size.
CHUNK_ROWS = 500_000
#: Parquet row groups of 100k rows let DuckDB read a wave file on every core.
ROW_GROUP = 100_000


def wave_file(year: int) -> str:
    """The name of a wave's file in the decade's folder."""
    return f"responses_{year}.parquet"


def decade_sizes(n_sites: int, per_wave: int, n_waves: int,
                 rng: np.random.Generator) -> np.ndarray:
    """Responses per site (rows) and wave (columns): every column sums to `per_wave`."""
    weights = np.exp(rng.normal(0, 0.6, n_sites))
    cells = np.stack([rng.multinomial(per_wave - n_sites, weights / weights.sum())
                      for _ in range(n_waves)], axis=1)
    return 1 + cells


def site_groups(sizes: np.ndarray, chunk_rows: int) -> list[np.ndarray]:
    """Consecutive runs of site indices whose responses over all waves total about
    `chunk_rows` (a site larger than that is a group of its own)."""
    totals = sizes.sum(axis=1)
    groups, current, rows = [], [], 0
    for index, total in enumerate(totals):
        if current and rows + total > chunk_rows:
            groups.append(np.array(current))
            current, rows = [], 0
        current.append(index)
        rows += int(total)
    groups.append(np.array(current))
    return groups


def national_truth(rows: list[dict], codes: list[str], scales: list[str]) -> None:
    """Recompute each truth row's gap and "outside" against all the decade's sites (each
    group's call saw only its own sites as peers)."""
    by_key = {(row["site"], row["scale"]): row for row in rows}
    position = np.array([[by_key[c, s]["random_effect"] + by_key[c, s]["planted_shift"]
                          + by_key[c, s]["composition"] for s in scales] for c in codes])
    gap, side = outside_the_peers(position)
    for i, code in enumerate(codes):
        for j, scale in enumerate(scales):
            row = by_key[code, scale]
            row["gap_to_others"] = round(float(gap[i, j]), 6)
            for wave in row["waves"]:
                wave["outside"] = {1: "above", -1: "below", 0: None}[int(side[i, j])]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_decade(out_dir: Path, seed: int = DECADE_SEED, per_wave: int = 1_000_000,
                 n_sites: int = 300, n_waves: int = 10, first_wave: int = FIRST_WAVE,
                 chunk_rows: int = CHUNK_ROWS,
                 instrument_path: Path = DEFAULT_INSTRUMENT) -> dict:
    """Write `n_waves` wave files (responses_<year>.parquet), sites.csv, headcounts.csv
    and manifest.json to `out_dir`; return the manifest.

    The manifest lists every wave (so `load_reference_data` registers them all), each
    file with its wave, rows and sha256, the planted trend, outliers and the truth per
    site, scale and wave.
    """
    _check(n_sites >= 1 and n_waves >= 1 and per_wave >= n_sites,
           f"need n_sites >= 1, n_waves >= 1 and at least one response per site and wave "
           f"(got {per_wave} a wave, {n_sites} sites, {n_waves} waves)")
    _check(chunk_rows >= 1, f"chunk_rows must be at least 1 (got {chunk_rows})")
    instrument = load_instrument(instrument_path)
    rng = np.random.default_rng(seed)
    sites = national_sites(n_sites, rng)
    sizes = decade_sizes(n_sites, per_wave, n_waves, rng)
    outlier_sites = rng.choice(n_sites, size=max(1, round(0.03 * n_sites)), replace=False)
    core = [s.id for s in instrument.scales if s.core]
    outliers = {sites[i].code: (core[int(rng.integers(len(core)))], int(rng.choice([-1, 1])))
                for i in sorted(outlier_sites)}
    waves = list(range(first_wave, first_wave + n_waves))
    sites = [SiteSpec(s.code, s.name, s.site_type, s.region, int(round(sizes[i].mean())))
             for i, s in enumerate(sites)]

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    writers: dict[int, pq.ParquetWriter] = {}
    truth_rows, straight, speeders = [], 0, 0
    try:
        for number, group in enumerate(site_groups(sizes, chunk_rows)):
            members = [sites[i] for i in group]
            planted = [(s.code, *outliers[s.code]) for s in members if s.code in outliers]
            table, truth = generate_responses(instrument, members, waves, seed + 1 + number,
                                              planted, sizes[group],
                                              driver_weights=NATIONAL_DRIVER_WEIGHTS)
            truth_rows.extend(truth["site_truth"])
            straight += truth["straight_liners"]
            speeders += truth["speeders"]
            for year in waves:
                rows = table.filter(pc.equal(table["wave"], pa.scalar(year, pa.int32())))
                if year not in writers:
                    writers[year] = pq.ParquetWriter(out_dir / wave_file(year), rows.schema)
                writers[year].write_table(rows, row_group_size=ROW_GROUP)
            del table, rows
    finally:
        for writer in writers.values():
            writer.close()
    _write_reference(sites, out_dir, instrument, rng)
    national_truth(truth_rows, [s.code for s in sites], [s.id for s in instrument.scales])

    files = []
    for index, year in enumerate(waves):
        path = out_dir / wave_file(year)
        files.append({"name": path.name, "wave": year, "rows": pq.read_metadata(path).num_rows,
                      "sites": int((sizes[:, index] > 0).sum()), "sha256": _sha256(path)})
    for name in ("sites.csv", "headcounts.csv"):
        files.append({"name": name, "sha256": _sha256(out_dir / name)})
    manifest = {
        "generator_version": GENERATOR_VERSION, "design": "decade", "seed": seed,
        "instrument": instrument.key, "n_responses": int(sizes.sum()),
        "per_wave": per_wave, "n_sites": n_sites, "waves": waves,
        "chunk_rows": chunk_rows,
        "wave_trend_per_wave": WAVE_TREND,
        "trend_note": "every scale's latent mean rises by wave_trend_per_wave (respondent "
                      "SDs) a wave; sites keep their effect for the decade; item loadings "
                      "and thresholds are drawn once per group of sites (chunk_rows)",
        "outliers": [{"site": code, "scale": scale,
                      "direction": "high" if direction > 0 else "low"}
                     for code, (scale, direction) in outliers.items()],
        "straight_liners": straight, "speeders": speeders,
        "driver_weights": NATIONAL_DRIVER_WEIGHTS,
        "site_truth": truth_rows,
        "files": files,
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n",
                                           encoding="utf-8")
    return manifest
