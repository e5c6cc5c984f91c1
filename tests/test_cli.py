"""The `culture` command itself: every command's help, errors as one line and an exit code,
the store commands' output, and a thin shell that starts fast.

Commands run in-process through Typer's runner (`tests.conftest.culture`); the console
script runs as a real process only where the process is the point.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from cli.main import app
from pipeline.ingest.tools import check_tool, ingest_from_tool, import_options
from pipeline.store import load_reference_data, open_store
from survey.errors import IngestError, ReferenceDataError
from survey.settings import DEFAULT_INSTRUMENT, PROJECT_ROOT, SAMPLES_DIR
from tests.conftest import culture, response_row, write_csv

CLI_DIR = PROJECT_ROOT / "cli"

#: `culture --help` lists these, in this order (commands, then groups).
TOP_LEVEL = ["ingest", "quarantine", "status", "psychometrics", "generate", "run", "purge",
             "export", "report", "demo", "serve", "collect", "invite", "instrument", "sites",
             "waves", "users", "actions"]


def _leaf_commands() -> list[tuple[str, ...]]:
    """Every runnable command as its words, e.g. ("sites", "add")."""
    root = typer.main.get_command(app)
    found = []

    def walk(group, words: tuple[str, ...]) -> None:
        for name in group.list_commands(None):
            command = group.get_command(None, name)
            if hasattr(command, "list_commands"):
                walk(command, (*words, name))
            else:
                found.append((*words, name))

    walk(root, ())
    return found


def test_the_commands_keep_their_names_and_order():
    root = typer.main.get_command(app)
    assert root.list_commands(None) == TOP_LEVEL
    assert len(_leaf_commands()) == 32
    assert ("users", "set-password") in _leaf_commands()
    assert {("actions", "list"), ("actions", "add"), ("actions", "export")} <= set(
        _leaf_commands())
    assert {("waves", "close"), ("waves", "open"), ("waves", "freeze"), ("waves", "unfreeze"),
            ("waves", "log")} <= set(_leaf_commands())


@pytest.mark.parametrize("words", _leaf_commands(), ids=" ".join)
def test_every_command_has_help_with_an_example(words):
    result = culture(*words, "--help")
    assert result.exit_code == 0
    assert f"Example: culture {' '.join(words)}" in result.stdout or \
        f"Examples: culture {' '.join(words)}" in result.stdout


def test_a_user_error_is_one_line_on_stderr_and_exit_code_1(tmp_path):
    result = culture("instrument", "check", tmp_path / "missing.yaml")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"error: {tmp_path / 'missing.yaml'}: no such instrument file\n"


def test_an_interrupted_ingest_says_nothing_was_written_and_exits_130(tmp_path, store_path,
                                                                      instrument, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("pipeline.ingest.tools.ingest_from_tool", interrupted)
    path = write_csv(tmp_path / "x.csv", [response_row(instrument, "r1")])
    result = culture("ingest", path, "--db", store_path)
    assert result.exit_code == 130
    assert result.stderr == ("interrupted; the file being ingested was not written (each "
                             "file is all or nothing)\n")


def test_the_console_script_runs_as_a_real_process(tmp_path):
    """The installed `culture` script: its entry point, exit codes and streams."""
    script = str(Path(sys.executable).with_name("culture"))
    bad = subprocess.run([script, "instrument", "check", str(tmp_path / "missing.yaml")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr == f"error: {tmp_path / 'missing.yaml'}: no such instrument file\n"
    good = subprocess.run([script, "instrument", "check", str(DEFAULT_INSTRUMENT)],
                          capture_output=True, text=True, timeout=60)
    assert good.returncode == 0 and "47 items in 8 scales" in good.stdout


def test_the_command_line_starts_without_the_libraries_its_commands_load():
    # Each command imports what it needs when it runs, so `culture --help` and
    # `culture users list` do not pay for pandas, DuckDB or the export writers.
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, cli.main; print(sorted(m for m in "
         "('pandas', 'duckdb', 'polars', 'outputs.export', 'pipeline.run', 'dashboard.app') "
         "if m in sys.modules))"], capture_output=True, text=True, timeout=60,
        cwd=PROJECT_ROOT)
    assert loaded.stdout.strip() == "[]", loaded.stderr


def test_the_command_modules_hold_no_sql():
    """Queries belong to the library (pipeline.store, published.reader); the CLI prints."""
    for module in sorted(CLI_DIR.glob("*.py")):
        text = module.read_text(encoding="utf-8").lower()
        assert "select " not in text and "insert " not in text, module.name


# --- the store commands ------------------------------------------------------------------

def test_sites_and_waves_are_set_up_and_listed(tmp_path):
    db = tmp_path / "store.duckdb"
    loaded = culture("sites", "load", SAMPLES_DIR / "sites.csv", "--headcounts",
                     SAMPLES_DIR / "headcounts.csv", "--db", db)
    assert loaded.exit_code == 0, loaded.stderr
    assert loaded.stdout.startswith("7 sites loaded, ") and "headcounts" in loaded.stdout
    added = culture("sites", "add", "rx1", "--name", "Tamar Valley Hospitals", "--type",
                    "acute_trust", "--region", "South West", "--db", db)
    assert added.stdout == "site RX1 saved\n"
    refused = culture("sites", "add", "RX2", "--name", "X", "--type", "hospital", "--db", db)
    assert refused.exit_code == 1
    assert "'hospital' is not a site type; accepted: acute_trust" in refused.stderr
    assert culture("waves", "add", "2027", "--db", db).stdout == "wave 2027 saved\n"
    assert culture("waves", "add", "27", "--db", db).stderr == (
        "error: wave 27: give the survey year, e.g. 2025\n")
    listed = culture("sites", "list", "--db", db).stdout
    codes = [code for code in (line.split("│")[1].strip() for line in listed.splitlines()
                               if line.startswith("│")) if code]   # not a wrapped name
    assert codes == ["A", "B", "C", "D", "E", "F", "G", "RX1"]
    assert "Tamar Valley Hospitals" in listed
    status = culture("status", "--db", db)
    assert status.stdout.splitlines()[0] == ("0 responses from 0 of the 8 sites in the store, "
                                             "waves 2027, in 0 ingest batch(es)")


def test_quarantine_shows_the_rejected_rows_and_writes_them_spreadsheet_safe(
        tmp_path, store_path, instrument):
    rows = [response_row(instrument, "r1"), response_row(instrument, "r2", hs01="=1+2"),
            response_row(instrument, "r3", hs02="7")]
    ingested = culture("ingest", write_csv(tmp_path / "x.csv", rows), "--db", store_path)
    assert ingested.exit_code == 0, ingested.stderr
    assert "3 rows read, 1 accepted, 2 quarantined" in ingested.stdout
    assert "see them with: culture quarantine --batch 1" in ingested.stdout
    shown = culture("quarantine", "--batch", "1", "--db", store_path)
    assert shown.exit_code == 0
    assert "r2" in shown.stdout and "r3" in shown.stdout and "=1+2" in shown.stdout
    out = tmp_path / "rejected.csv"
    written = culture("quarantine", "--csv", out, "--db", store_path)
    assert written.stdout == (f"2 rejected row problem(s) written to {out} (spreadsheet_row "
                              f"is the row a spreadsheet shows, with the header as row 1)\n")
    with out.open(encoding="utf-8-sig", newline="") as handle:
        table = list(csv.reader(handle))
    assert table[0] == ["batch", "file", "spreadsheet_row", "data_row", "response_id",
                        "column", "bad_value", "reason_code", "reason"]
    # r2 is the file's second answer, on the spreadsheet's third row (header = row 1).
    assert [tuple(r[2:7]) for r in table[1:]] == [("3", "2", "r2", "hs01", "'=1+2"),
                                                  ("4", "3", "r3", "hs02", "7")]
    status = culture("status", "--db", store_path).stdout
    assert status.startswith("1 responses from 1 of the 2 sites in the store")
    assert "quarantined rows: " in status


def test_invite_refuses_an_unknown_survey_and_a_silly_count(tmp_path, store_path):
    links = tmp_path / "links.csv"
    unknown = culture("invite", "--site", "Q", "--wave", "2025", "--count", "10", "--out",
                      links, "--db", store_path)
    # The command the README documents for sites (issue 22, point 5).
    assert unknown.exit_code == 1 and "site 'Q' is not in the store: load the sites file " \
        "with `culture sites load sites.csv`" in unknown.stderr
    too_many = culture("invite", "--site", "A", "--wave", "2025", "--count", "100001",
                       "--out", links, "--db", store_path)
    assert too_many.stderr == "error: --count 100001: use 1 to 100000\n"
    assert not links.exists()
    made = culture("invite", "--site", "A", "--wave", "2025", "--count", "12", "--out", links,
                   "--base-url", "https://survey.example/", "--db", store_path)
    assert made.stdout == f"12 invitation links for site A, wave 2025: {links}\n"
    rows = list(csv.DictReader(links.open(encoding="utf-8")))
    assert len(rows) == 12 and len({r["link"] for r in rows}) == 12
    assert all(r["link"].startswith("https://survey.example/s/A/2025?t=") for r in rows)


def test_generate_writes_the_samples_its_manifest_lists(tmp_path):
    result = culture("generate", "--out", tmp_path)
    assert result.exit_code == 0, result.stderr
    assert f"wrote {tmp_path / 'responses_clean.csv'} (3,570 rows)" in result.stdout
    committed = (SAMPLES_DIR / "responses_clean.csv").read_bytes()
    assert (tmp_path / "responses_clean.csv").read_bytes() == committed


# --- the library functions the commands call -----------------------------------------------

def test_one_dispatch_by_tool(tmp_path, store_path, instrument, definition_yaml):
    with pytest.raises(IngestError, match="--from 'qualtrix' is not known; use one of "
                                          "culture, redcap, forms, qualtrics"):
        check_tool("qualtrix")
    with pytest.raises(IngestError, match="--map is for other tools' exports"):
        import_options("culture", tmp_path / "map.csv")
    assert import_options("forms", None) is None
    path = write_csv(tmp_path / "ours.csv", [response_row(instrument, "r1")])
    with open_store(store_path) as con:
        report, imported = ingest_from_tool(con, path, instrument, definition_yaml)
    assert imported is None and report.rows_accepted == 1


def test_reference_data_of_a_folder_loads_in_one_go_or_not_at_all(tmp_path, instrument):
    with open_store(tmp_path / "store.duckdb") as con:
        loaded = load_reference_data(con, SAMPLES_DIR, instrument)
        assert (loaded.sites, loaded.headcounts, loaded.waves) == (7, 56, (2024, 2025, 2026))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text('{"waves": [2030]}', encoding="utf-8")
    (broken / "sites.csv").write_text("site_code,name,site_type,region\nZ,Zed,acute_trust,\n",
                                      encoding="utf-8")
    with open_store(tmp_path / "other.duckdb") as con:
        with pytest.raises(ReferenceDataError, match="headcounts.csv: no such file"):
            load_reference_data(con, broken, instrument)
        # The sites read before the missing file were rolled back with it.
        assert con.execute("select count(*) from sites").fetchone() == (0,)
        assert con.execute("select count(*) from waves").fetchone() == (0,)
