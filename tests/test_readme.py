"""The README's two set-up commands are the ones CI runs."""

import re

from survey.settings import PROJECT_ROOT


def test_readme_has_exactly_two_setup_commands_and_ci_runs_them_verbatim():
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    setup = readme.split("## Set up (two commands)", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.+?)\n```", setup, flags=re.S)
    assert len(commands) == 2
    assert "culture demo" in commands[0] and "pytest" in commands[1]
    ci = (PROJECT_ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    for command in commands:
        assert command in ci
