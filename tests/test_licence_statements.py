"""The licence statements agree (issue 22, point 9): the software and the instrument are
MIT-licensed in this repository (LICENSE, pyproject, CITATION.cff and the data package's
instrumentLicense all say so), and published aggregates are CC BY 4.0."""

from __future__ import annotations

import tomllib

import yaml

from outputs.export import DATA_LICENSE, INSTRUMENT_LICENSE
from survey.settings import PROJECT_ROOT


def test_software_and_instrument_are_mit_and_the_aggregates_cc_by_everywhere():
    licence = (PROJECT_ROOT / "LICENSE").read_text(encoding="utf-8")
    assert licence.startswith("MIT License\n")
    assert "Culture of support contributors" in licence
    assert "Permission is hereby granted, free of charge" in licence
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["license"] == {"text": "MIT"}
    cff = yaml.safe_load((PROJECT_ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["license"] == "MIT"
    message = " ".join(cff["message"].split())
    assert "the survey instrument (instruments/*.yaml" in message
    assert "released under the MIT licence (LICENSE)" in message
    assert "licensed CC-BY-4.0" in message and DATA_LICENSE["name"] == "CC-BY-4.0"
    assert "under the MIT licence" in INSTRUMENT_LICENSE
    assert "instruments/support-culture-v*.yaml" in INSTRUMENT_LICENSE
