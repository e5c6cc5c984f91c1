"""Settings resolved once, with a stated precedence: flag > environment > default.

Nothing reads configuration at import time; the CLI builds one `Settings` and
passes it down.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from survey.errors import SettingsError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INSTRUMENTS_DIR = PROJECT_ROOT / "instruments"
SAMPLES_DIR = PROJECT_ROOT / "data_samples"
DEFAULT_INSTRUMENT = INSTRUMENTS_DIR / "support-culture-v1.yaml"

ENV_DB = "CULTURE_DB"
ENV_INSTRUMENT = "CULTURE_INSTRUMENT"
ENV_MIN_GROUP = "CULTURE_MIN_GROUP_SIZE"
ENV_EXCLUDE_FLAGGED = "CULTURE_EXCLUDE_FLAGGED"
ENV_TARGET = "CULTURE_TARGET"
ENV_TRUST_PROXY = "CULTURE_TRUST_PROXY"
ENV_SECURE_COOKIES = "CULTURE_SECURE_COOKIES"
ENV_URL_PREFIX = "CULTURE_URL_PREFIX"
ENV_MIN_SITES = "CULTURE_MIN_SITES_PER_COMBINATION"
ENV_MEMORY_LIMIT = "CULTURE_MEMORY_LIMIT"
#: A DuckDB memory size: a number and a unit (e.g. 3GB, 512MB).
_MEMORY = re.compile(r"\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)", re.IGNORECASE)

#: How a principle's target is set (see pipeline.benchmark.principle_gap_table).
TARGET_RULES = ("peer_q3", "national_q3", "peer_median", "national_median")

#: The disclosure floor: no configuration may publish groups smaller than this.
ABSOLUTE_MIN_GROUP_SIZE = 5
#: A site type or region shown for a single site names it; two is the least that does not.
ABSOLUTE_MIN_SITES_PER_COMBINATION = 2
#: A URL prefix is a plain path: it is written into links, redirects and Dash's config,
#: so nothing in it may need escaping or end the path (no ?, #, %, quotes or spaces).
_URL_PREFIX = re.compile(r"(/(?!\.+(/|$))[A-Za-z0-9._~-]+)+")


@dataclass(frozen=True)
class Settings:
    """Where the store and the instrument are, and the reporting threshold."""

    db_path: Path = field(default_factory=lambda: Path("culture.duckdb"))
    instrument_path: Path = DEFAULT_INSTRUMENT
    min_group_size: int = 10
    #: Leave respondents flagged by the data-quality step out of the analysis.
    exclude_flagged: bool = False
    #: Principle targets: the peer group's upper quartile unless said otherwise.
    target_rule: str = "peer_q3"
    #: The dashboard is behind one reverse proxy: take the client address (sign-in
    #: throttling) from its X-Forwarded-For. Off, a client could name any address.
    trust_proxy: bool = False
    #: The dashboard is reached over HTTPS (a TLS proxy): cookies get the Secure flag.
    secure_cookies: bool = False
    #: The dashboard is served under this path behind a reverse proxy that passes the
    #: path on unchanged (e.g. "/culture"); "" serves it at the root.
    url_prefix: str = ""
    #: Pseudonymised exports coarsen site type and region until every combination shown
    #: covers at least this many sites.
    min_sites_per_combination: int = 3
    #: What DuckDB may hold in memory during a run before it spills to disk: a full run of
    #: ten national waves otherwise peaks near 4.4 GB (bench/decade.py), and the run
    #: shares the machine with the dashboard and the survey server.
    memory_limit: str = "3GB"

    @property
    def published_path(self) -> Path:
        """The published layer: aggregates only, beside the store (culture.published.duckdb)."""
        return self.db_path.with_name(self.db_path.stem + ".published.duckdb")

    @property
    def held_layer_path(self) -> Path:
        """Frozen waves' held rows as a layer, beside the store (culture.held.duckdb): what
        each run's published layer starts from (`pipeline.waves.held_layer`); derived
        from the store, and rebuilt from it when missing or out of date."""
        return self.db_path.with_name(self.db_path.stem + ".held.duckdb")

    @property
    def accounts_path(self) -> Path:
        """Dashboard accounts, beside the store (culture.accounts.duckdb)."""
        return self.db_path.with_name(self.db_path.stem + ".accounts.duckdb")

    @property
    def plans_path(self) -> Path:
        """Sites' action plans, beside the store (culture.plans.duckdb): `plans.store`."""
        return self.db_path.with_name(self.db_path.stem + ".plans.duckdb")

    @property
    def inbox_path(self) -> Path:
        """The web form's submissions, beside the store (culture.inbox.sqlite)."""
        return self.db_path.with_name(self.db_path.stem + ".inbox.sqlite")

    def __post_init__(self) -> None:
        if self.target_rule not in TARGET_RULES:
            raise SettingsError(f"target rule {self.target_rule!r} is not known; use one of "
                                f"{', '.join(TARGET_RULES)}")
        if self.min_group_size < ABSOLUTE_MIN_GROUP_SIZE:
            raise SettingsError(
                f"minimum group size {self.min_group_size} is below the floor of "
                f"{ABSOLUTE_MIN_GROUP_SIZE}; use {ABSOLUTE_MIN_GROUP_SIZE} or more"
            )
        if self.url_prefix and not _URL_PREFIX.fullmatch(self.url_prefix):
            raise SettingsError(f"URL prefix {self.url_prefix!r} is not a path like /culture "
                                "(a leading /, letters, digits, - _ . and / only)")
        if not _MEMORY.fullmatch(self.memory_limit.strip()):
            raise SettingsError(f"memory limit {self.memory_limit!r} is not a size like 3GB "
                                "or 512MB")
        if self.min_sites_per_combination < ABSOLUTE_MIN_SITES_PER_COMBINATION:
            raise SettingsError(
                f"minimum sites per combination {self.min_sites_per_combination} is below "
                f"the floor of {ABSOLUTE_MIN_SITES_PER_COMBINATION}; use 3 (the default) or more")


def resolve_settings(
    db: Path | str | None = None,
    instrument: Path | str | None = None,
    min_group_size: int | None = None,
    exclude_flagged: bool | None = None,
    target_rule: str | None = None,
    trust_proxy: bool | None = None,
    secure_cookies: bool | None = None,
    url_prefix: str | None = None,
    min_sites_per_combination: int | None = None,
    memory_limit: str | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Settings from command-line flags, then environment variables, then defaults."""
    env = os.environ if environ is None else environ
    db_path = Path(db) if db else Path(env.get(ENV_DB) or "culture.duckdb")
    instrument_path = (
        Path(instrument) if instrument else Path(env.get(ENV_INSTRUMENT) or DEFAULT_INSTRUMENT)
    )
    if min_group_size is None:
        raw = env.get(ENV_MIN_GROUP)
        if raw:
            try:
                min_group_size = int(raw)
            except ValueError:
                raise SettingsError(
                    f"{ENV_MIN_GROUP}={raw!r} is not a whole number; use e.g. 10"
                ) from None
        else:
            min_group_size = 10
    if exclude_flagged is None:
        raw = (env.get(ENV_EXCLUDE_FLAGGED) or "no").strip().lower()
        if raw not in ("yes", "no", "true", "false", "1", "0"):
            raise SettingsError(f"{ENV_EXCLUDE_FLAGGED}={raw!r}: use yes or no")
        exclude_flagged = raw in ("yes", "true", "1")
    target_rule = target_rule or env.get(ENV_TARGET) or "peer_q3"
    if trust_proxy is None:
        trust_proxy = _yes_or_no(env, ENV_TRUST_PROXY)
    if secure_cookies is None:
        secure_cookies = _yes_or_no(env, ENV_SECURE_COOKIES)
    if url_prefix is None:
        url_prefix = env.get(ENV_URL_PREFIX) or ""
    # "/culture/" and "/culture" mean the same mount point; "/" means none.
    url_prefix = url_prefix.strip().rstrip("/")
    if min_sites_per_combination is None:
        raw = env.get(ENV_MIN_SITES) or "3"
        try:
            min_sites_per_combination = int(raw)
        except ValueError:
            raise SettingsError(f"{ENV_MIN_SITES}={raw!r} is not a whole number; use e.g. 3"
                                ) from None
    return Settings(db_path=db_path, instrument_path=instrument_path,
                    min_group_size=min_group_size, exclude_flagged=exclude_flagged,
                    target_rule=target_rule, trust_proxy=trust_proxy,
                    secure_cookies=secure_cookies, url_prefix=url_prefix,
                    min_sites_per_combination=min_sites_per_combination,
                    memory_limit=memory_limit or env.get(ENV_MEMORY_LIMIT) or "3GB")


def _yes_or_no(env, name: str) -> bool:
    raw = (env.get(name) or "no").strip().lower()
    if raw not in ("yes", "no", "true", "false", "1", "0"):
        raise SettingsError(f"{name}={raw!r}: use yes or no")
    return raw in ("yes", "true", "1")
