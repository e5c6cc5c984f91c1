"""What every command shares: the --db and --instrument options, settings, the consoles.

Results go to stdout (`out`), warnings and progress bars to stderr (`err`), so that a
command's output can be piped or captured without the bars.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from survey.settings import Settings, resolve_settings

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

DbOption = Annotated[Optional[Path], typer.Option(
    "--db", help="DuckDB store file \\[env: CULTURE_DB; default: ./culture.duckdb]")]
InstrumentOption = Annotated[Optional[Path], typer.Option(
    "--instrument", help="Instrument YAML \\[env: CULTURE_INSTRUMENT; default: "
                         "instruments/support-culture-v1.yaml]")]


def settings_for(db: Path | None = None, instrument: Path | None = None) -> Settings:
    """Settings from these two flags, then the environment, then the defaults."""
    return resolve_settings(db=db, instrument=instrument)


def instrument_of(settings: Settings):
    """The instrument the settings name, loaded and validated."""
    from survey.instrument import load_instrument

    return load_instrument(settings.instrument_path)
