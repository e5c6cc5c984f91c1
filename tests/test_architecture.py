"""The house's floors hold: the import contracts in pyproject.toml pass, they fail when a
forbidden import is added, and no module imports itself through others."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

from survey.settings import PROJECT_ROOT

PACKAGES = ("survey", "stats", "collect", "published", "pipeline", "outputs", "dashboard",
            "cli")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True,
                          text=True, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})


def test_the_import_contracts_hold():
    done = _lint(PROJECT_ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 2 kept, 0 broken." in done.stdout


@pytest.mark.parametrize("module, line, broken", [
    # a dashboard module reaching the respondent store
    ("dashboard/data.py", "import pipeline.store", "Readers of the published layer never "
                                                   "reach respondent data BROKEN"),
    # the published layer's reader reaching the inbox
    ("published/reader.py", "import collect.inbox", "Readers of the published layer never "
                                                    "reach respondent data BROKEN"),
    # the ground floor importing the command line
    ("survey/settings.py", "import cli.main", "Each package imports only the packages below "
                                              "it BROKEN"),
])
def test_a_forbidden_import_breaks_a_contract(tmp_path, module, line, broken):
    for package in PACKAGES:
        shutil.copytree(PROJECT_ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__", "assets"))
    shutil.copy(PROJECT_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{line}  # noqa\n",
                      encoding="utf-8")
    done = _lint(tmp_path)
    assert done.returncode == 1 and broken in done.stdout, done.stdout


def test_no_module_imports_itself_through_others():
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    loops = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            chain = graph.find_shortest_chain(importer=imported, imported=importer)
            if chain and importer not in PACKAGES and imported not in PACKAGES:
                loops.append(" -> ".join((importer, *chain)))
    assert loops == []
