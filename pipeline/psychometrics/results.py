"""What the psychometrics stage gives back: frozen results, one type per part.

`PsychometricsResult` is built once every part is complete (the structural models run
in a worker, the quality flags may too); `as_json()` gives the validation report's JSON,
key for key as the report has always been written, and `pipeline.publish.writer` reads
the attributes. A row that was not estimated (a group below the minimum size, a model
that could not be fitted) says why in `note` and leaves its statistics `None`; in the
JSON such a row has the note and no statistics, as readers of the report expect.
"""

from __future__ import annotations

from dataclasses import dataclass

from stats.invariance import InvarianceStep
from stats.structure import BartlettResult

CAVEAT = ("These checks prove the machinery. On synthetic data they say nothing "
          "about the instrument itself; only real responses can validate it.")


@dataclass(frozen=True)
class Judgement:
    """A statistic judged against its published criterion.

    Attributes: `value` (None when it could not be estimated), `criterion` as text
    ("<= 0.06"), `source` of the criterion (Hu & Bentler 1999, ...), `verdict`: "meets",
    "does not meet" or "n/a".
    """

    value: float | None
    criterion: str
    source: str
    verdict: str

    def as_json(self) -> dict:
        return {"value": self.value, "criterion": self.criterion, "source": self.source,
                "verdict": self.verdict}


@dataclass(frozen=True)
class Scope:
    """Which responses were analysed: `wave` and `site` (None: all), the `instrument`
    key, whether flagged respondents were left out (`excluded_flagged`) and the
    `min_group_size` below which no group's statistics are reported."""

    wave: int | None
    site: str | None
    instrument: str
    excluded_flagged: bool
    min_group_size: int

    def as_json(self) -> dict:
        return {"wave": self.wave, "site": self.site, "instrument": self.instrument,
                "excluded_flagged": self.excluded_flagged,
                "min_group_size": self.min_group_size}


@dataclass(frozen=True)
class SiteQuality:
    """Respondents of one site and wave, and how many of them each quality flag caught."""

    site_code: str
    wave: int
    respondents: int
    straight_lining: int
    speeding: int
    duplicate: int
    flagged: int

    def as_json(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class DataQuality:
    """The quality flags: `totals` over the store (as `flag_response_quality` counts
    them: respondents and each flag) and the same counts `by_site` x wave."""

    totals: dict[str, int]
    by_site: tuple[SiteQuality, ...]

    def as_json(self) -> dict:
        return {"totals": self.totals, "by_site": [row.as_json() for row in self.by_site]}


@dataclass(frozen=True)
class ReliabilityRow:
    """Reliability of one scale in one group: overall, a wave, or a site in a wave.

    `level` is "overall", "wave" or "site_wave"; `wave` and `site_code` are set where the
    level has them. `n` respondents answered the scale's `n_items` items (published as
    `k`, the column name readers know). `alpha`, `alpha_standardised` and its Feldt 95%
    interval (`ci_low`, `ci_high`) and `omega_total` are None for a group below the
    minimum size, which `note` then explains; `omega_total` alone is None, with
    `omega_note`, when the one-factor model has no proper solution.
    """

    level: str
    scale: str
    wave: int | None
    site_code: str | None
    n: int
    n_items: int
    alpha: float | None = None
    alpha_standardised: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    omega_total: float | None = None
    omega_note: str | None = None
    alpha_verdict: str | None = None
    note: str | None = None

    @property
    def reported(self) -> bool:
        """Whether the group was large enough for its statistics to be estimated."""
        return self.note is None

    def as_json(self) -> dict:
        row = {"level": self.level, "scale": self.scale}
        # Keys in the order of the level's grouping columns (site, then wave).
        if self.site_code is not None:
            row["site_code"] = self.site_code
        if self.wave is not None:
            row["wave"] = self.wave
        row |= {"n": self.n, "k": self.n_items}
        if not self.reported:
            return row | {"note": self.note}
        row |= {"alpha": self.alpha, "alpha_standardised": self.alpha_standardised,
                "ci_low": self.ci_low, "ci_high": self.ci_high,
                "omega_total": self.omega_total}
        if self.omega_note is not None:
            row["omega_note"] = self.omega_note
        return row | {"alpha_verdict": self.alpha_verdict}


@dataclass(frozen=True)
class ItemRow:
    """One item pooled over the scope: its corrected item-total correlation and the
    scale's alpha were it deleted."""

    scale: str
    item: str
    item_total_corrected: float
    alpha_if_deleted: float

    def as_json(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ItemDistribution:
    """Answers to one item per response code (raw, before reverse-keying), as text
    codes in the response scale's order, and how many left it blank (`missing`)."""

    item: str
    missing: int
    counts: dict[str, int]

    def as_json(self) -> dict:
        return {"item": self.item, "missing": self.missing, "counts": self.counts}


@dataclass(frozen=True)
class IccRow:
    """ICC(1) and ICC(2) of one scale's score across the sites of one wave, from `n`
    respondents at `sites` sites of average size `n0`; None with a `note` where the
    wave cannot support them (one site, say). `icc1` uses n0; `icc1_mean_size` is ICC(1)
    with the mean site size, as R multilevel::ICC1 gives it (stats.agreement.IccResult)."""

    scale: str
    wave: int
    icc1: float | None = None
    icc2: float | None = None
    n: int | None = None
    sites: int | None = None
    n0: float | None = None
    note: str | None = None
    icc1_mean_size: float | None = None

    def as_json(self) -> dict:
        if self.note is not None:
            return {"scale": self.scale, "wave": self.wave, "note": self.note}
        return {"scale": self.scale, "wave": self.wave, "icc1": self.icc1,
                "icc2": self.icc2, "n": self.n, "sites": self.sites, "n0": self.n0,
                "icc1_mean_size": self.icc1_mean_size}


@dataclass(frozen=True)
class SiteAgreement:
    """Whether one site's mean of one scale in one wave may be reported.

    `site_mean_reliability` is the reliability of the site mean from the wave's ICC(1)
    (Bliese 2000); `rwg_j` the within-site agreement (None if the site had no item
    matrix); `reportable` needs at least the minimum group size and a site mean
    reliability of .70, and `reason` says which was missing. Agreement does not gate:
    rwg_j rises with the number of items, so `rwg_j_star` (Lindell et al. 1999, not
    stepped up by items) and `rwg_j_slight_skew` (a slightly skewed null) stand beside it.
    """

    scale: str
    wave: int
    site_code: str
    n: int
    site_mean_reliability: float
    rwg_j: float | None
    reportable: bool
    reason: str
    rwg_j_star: float | None = None
    rwg_j_slight_skew: float | None = None

    def as_json(self) -> dict:
        row = {"scale": self.scale, "wave": self.wave, "site_code": self.site_code,
               "n": self.n, "site_mean_reliability": self.site_mean_reliability}
        for name in ("rwg_j", "rwg_j_star", "rwg_j_slight_skew"):
            if getattr(self, name) is not None:
                row[name] = getattr(self, name)
        return row | {"reportable": self.reportable, "reason": self.reason}


@dataclass(frozen=True)
class CfaChecks:
    """The CFA of the intended structure: chi-square test, judged fit indices, the
    RMSEA's 90% interval and standardised `loadings` (factor -> item -> loading)."""

    chi_square: float
    df: int
    p_value: float
    cfi: Judgement
    tli: Judgement
    rmsea: Judgement
    rmsea_ci90: tuple[float, float]
    srmr: Judgement
    loadings: dict[str, dict[str, float]]

    def as_json(self) -> dict:
        return {"chi_square": self.chi_square, "df": self.df, "p_value": self.p_value,
                "cfi": self.cfi.as_json(), "tli": self.tli.as_json(),
                "rmsea": self.rmsea.as_json(), "rmsea_ci90": list(self.rmsea_ci90),
                "srmr": self.srmr.as_json(), "loadings": self.loadings}


@dataclass(frozen=True)
class StructureChecks:
    """Does the sample fit the intended scales?

    On `n_complete` complete responses of a sample of at most `sampled_up_to`: sampling
    adequacy (`kmo`, `kmo_items`), `bartlett`'s sphericity test, the factors parallel
    analysis suggests against the `intended_factors`, the `cfa`, and per scale its
    `composite_reliability` and `ave`, per pair of scales the `htmt` ("a / b"). When the
    sample is too small every check is None and `note` says so.
    """

    n_complete: int | None = None
    sampled_up_to: int | None = None
    kmo: Judgement | None = None
    kmo_items: dict[str, float] | None = None
    bartlett: BartlettResult | None = None
    suggested_factors: int | None = None
    intended_factors: int | None = None
    cfa: CfaChecks | None = None
    composite_reliability: dict[str, Judgement] | None = None
    ave: dict[str, Judgement] | None = None
    htmt: dict[str, Judgement] | None = None
    note: str | None = None

    def as_json(self) -> dict:
        if self.note is not None:
            return {"note": self.note}
        return {
            "n_complete": self.n_complete, "sampled_up_to": self.sampled_up_to,
            "kmo": self.kmo.as_json(), "kmo_items": self.kmo_items,
            "bartlett": self.bartlett.__dict__,
            "parallel_analysis": {"suggested_factors": self.suggested_factors,
                                  "intended_factors": self.intended_factors},
            "cfa": self.cfa.as_json(),
            "composite_reliability": _judged(self.composite_reliability),
            "ave": _judged(self.ave), "htmt": _judged(self.htmt)}


def _judged(judgements: dict[str, Judgement]) -> dict[str, dict]:
    return {name: judged.as_json() for name, judged in judgements.items()}


@dataclass(frozen=True)
class InvarianceTest:
    """Measurement invariance of one core scale `across` "site_type" or "staff_group":
    the `groups` compared, those `left_out` as too small, and the configural, metric and
    scalar `steps`; no steps and a `note` where the models could not be fitted."""

    scale: str
    across: str
    groups: tuple[str, ...]
    left_out: tuple[str, ...]
    steps: tuple[InvarianceStep, ...] = ()
    note: str | None = None

    def as_json(self) -> dict:
        entry = {"scale": self.scale, "across": self.across, "groups": list(self.groups),
                 "left_out": list(self.left_out)}
        if self.note is not None:
            return entry | {"note": self.note}
        return entry | {"steps": [step.__dict__ for step in self.steps]}


@dataclass(frozen=True)
class PsychometricsResult:
    """Every check of the validation report for one scope.

    `reliability` is ordered level by level (overall, wave, site x wave), scales in
    instrument order within each; `items` and `item_distributions` pool the scope;
    `icc` is per scale and wave, `sites` per scale, wave and site; `structure` and
    `invariance` come from the seeded structural sample. `criteria` are the thresholds
    each verdict was judged against ({name: (comparison, threshold, source)}).
    """

    scope: Scope
    data_quality: DataQuality
    reliability: tuple[ReliabilityRow, ...]
    items: tuple[ItemRow, ...]
    item_distributions: tuple[ItemDistribution, ...]
    icc: tuple[IccRow, ...]
    sites: tuple[SiteAgreement, ...]
    structure: StructureChecks
    invariance: tuple[InvarianceTest, ...]
    criteria: dict[str, tuple[str, float, str]]
    caveat: str = CAVEAT

    def as_json(self) -> dict:
        """The validation report's JSON: plain dicts and lists, in report order."""
        return {
            "scope": self.scope.as_json(),
            "data_quality": self.data_quality.as_json(),
            "reliability": [row.as_json() for row in self.reliability],
            "items": [row.as_json() for row in self.items],
            "item_distributions": [row.as_json() for row in self.item_distributions],
            "icc": [row.as_json() for row in self.icc],
            "sites": [row.as_json() for row in self.sites],
            "structure": self.structure.as_json(),
            "invariance": [test.as_json() for test in self.invariance],
            "criteria": {name: {"criterion": f"{op} {threshold}", "source": source}
                         for name, (op, threshold, source) in self.criteria.items()},
            "caveat": self.caveat,
        }
