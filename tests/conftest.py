"""Shared fixtures: the real instrument and a real DuckDB store file in a temp folder."""

from __future__ import annotations

import csv
import dataclasses
import shutil
from pathlib import Path

import pytest

import json

from pipeline.ingest.files import ingest_file
from pipeline.store import Site, add_sites, add_wave, load_reference_data, open_store
from survey.instrument import load_instrument
from survey.settings import DEFAULT_INSTRUMENT, SAMPLES_DIR


@pytest.fixture(scope="session")
def instrument():
    return load_instrument(DEFAULT_INSTRUMENT)


@pytest.fixture(scope="session")
def definition_yaml() -> str:
    return DEFAULT_INSTRUMENT.read_text(encoding="utf-8")


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """A store with sites A (acute trust) and C (support unit) and waves 2024-2025."""
    path = tmp_path / "store.duckdb"
    with open_store(path) as con:
        add_sites(con, [Site("A", "Tamar Valley Hospitals", "acute_trust", "South West"),
                        Site("C", "South East Professional Support Unit",
                             "professional_support_unit", "South East")])
        add_wave(con, 2024)
        add_wave(con, 2025)
    return path


@pytest.fixture(scope="session")
def sample_manifest() -> dict:
    return json.loads((SAMPLES_DIR / "manifest.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def _sample_template(tmp_path_factory, instrument, definition_yaml) -> Path:
    """The committed clean sample ingested for real, once per test run (copied for use)."""
    path = tmp_path_factory.mktemp("sample-template") / "store.duckdb"
    with open_store(path) as con:
        load_reference_data(con, SAMPLES_DIR, instrument)
        ingest_file(con, SAMPLES_DIR / "responses_clean.csv", instrument, definition_yaml)
    return path


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory, _sample_template) -> Path:
    """A store holding the committed clean sample, ingested for real: a module's own copy
    of one made per run (a copy costs milliseconds, an ingest a second)."""
    path = tmp_path_factory.mktemp("sample") / "store.duckdb"
    shutil.copyfile(_sample_template, path)
    return path


def culture(*args: object, env: dict[str, str] | None = None, input: str | None = None):
    """The `culture` command run in-process by Typer's test runner: its exit code, stdout
    and stderr as a shell would see them (`result.exit_code`, `.stdout`, `.stderr`).

    The caller's CULTURE_* variables are unset unless given in `env`, as in a clean shell.
    An exception that is not a user's error propagates, so the test shows its traceback.
    """
    import os

    from typer.testing import CliRunner

    from cli.main import app

    clean = {name: None for name in os.environ if name.startswith("CULTURE_")}
    return CliRunner().invoke(app, [str(a) for a in args], env=clean | (env or {}),
                              input=input, catch_exceptions=False)


def full_answers(instrument, code: str = "4") -> dict[str, str]:
    """Every item answered with `code` (yes/no items answered 'Yes' = 2)."""
    answers = {}
    for item in instrument.items:
        answers[item.id] = "2" if item.response_scale == "yesno" else code
    return answers


def response_row(instrument, response_id: str, site: str = "A", wave: str = "2025",
                 **overrides: str) -> dict[str, str]:
    row = {"response_id": response_id, "site": site, "wave": wave, "staff_group": "consultant",
           "pmq": "uk"}
    row |= full_answers(instrument)
    row |= overrides
    return row


def write_csv(path: Path, rows: list[dict[str, str]], encoding: str = "utf-8",
              delimiter: str = ",") -> Path:
    header: list[str] = []
    for row in rows:
        header += [k for k in row if k not in header]
    with path.open("w", newline="", encoding=encoding) as handle:
        writer = csv.DictWriter(handle, fieldnames=header, delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="session")
def _published_template(tmp_path_factory, _sample_template, instrument):
    """The sample run through psychometrics and publish (k = 10), once per test run."""
    from pipeline.psychometrics.stage import run_psychometrics
    from pipeline.publish.writer import publish
    from survey.settings import Settings

    store = tmp_path_factory.mktemp("published-template") / "store.duckdb"
    shutil.copyfile(_sample_template, store)
    settings = Settings(db_path=store)
    with open_store(store) as con:
        psychometrics = run_psychometrics(con, instrument, settings)
        report = publish(con, instrument, settings, psychometrics)
    return settings, report


@pytest.fixture(scope="module")
def published_sample(sample_store, _published_template):
    """The module's sample store as psychometrics and publish leave it, with its published
    layer beside it (k = 10): (settings, report). Copies of one run per test session."""
    from survey.settings import Settings

    template, report = _published_template
    shutil.copyfile(template.db_path, sample_store)
    settings = Settings(db_path=sample_store)
    shutil.copyfile(template.published_path, settings.published_path)
    return settings, dataclasses.replace(report, path=settings.published_path)
