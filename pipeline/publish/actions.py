"""The guide's recommended actions per principle, kept as data beside the instrument."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from survey.errors import InstrumentError
from survey.instrument import Instrument
from survey.settings import INSTRUMENTS_DIR

DEFAULT_ACTIONS = INSTRUMENTS_DIR / "guide-actions.yaml"


class Action(BaseModel):
    """One thing an organisation can do, in plain words, with the evidence it rests on."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    title: str = Field(min_length=3, max_length=80)
    action: str = Field(min_length=20)
    evidence: str | None = None


class Guide(BaseModel):
    """Actions for each principle id (P1..P6)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    guide: str
    version: str
    source: str
    principles: dict[str, tuple[Action, ...]]


def load_actions(instrument: Instrument, path: Path = DEFAULT_ACTIONS) -> Guide:
    """Read the actions file and check it covers every principle of `instrument`."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        guide = Guide.model_validate(data)
    except OSError as exc:
        raise InstrumentError(f"{path}: cannot read the guide's actions ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise InstrumentError(f"{path}: not valid YAML ({exc})") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InstrumentError(f"{path}: {where}: {first['msg']}") from None
    wanted = {p.id for p in instrument.principles}
    missing, unknown = wanted - set(guide.principles), set(guide.principles) - wanted
    if missing or unknown:
        raise InstrumentError(
            f"{path}: actions must be given for exactly the instrument's principles "
            f"({', '.join(sorted(wanted))}); missing: {', '.join(sorted(missing)) or 'none'}, "
            f"unknown: {', '.join(sorted(unknown)) or 'none'}")
    empty = [p for p, actions in guide.principles.items() if not actions]
    if empty:
        raise InstrumentError(f"{path}: principle(s) {', '.join(empty)} have no actions")
    return guide


def action_rows(guide: Guide) -> list[dict]:
    """The actions as table rows: principle, order, title, action, evidence."""
    return [{"principle": pid, "position": i + 1, "title": a.title, "action": a.action,
             "evidence": a.evidence}
            for pid, actions in guide.principles.items() for i, a in enumerate(actions)]
