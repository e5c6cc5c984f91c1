"""The action plan store (`plans.store`) and `culture actions ...`: validation, the audit
trail, carrying over runs, and a second process holding the file."""

from __future__ import annotations

import datetime as dt
import io
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cli.main import app
from plans.store import (IN_USE, OPEN_STATUSES, ActionBook, ActionNotFound, PlanError,
                         PlanInUse)

SITES, PRINCIPLES = {"A", "B"}, {f"P{i}" for i in range(1, 7)}


@pytest.fixture
def book(tmp_path) -> ActionBook:
    return ActionBook(tmp_path / "culture.plans.duckdb", known_sites=SITES,
                      known_principles=PRINCIPLES)


def _add(book: ActionBook, site="A", principle="P1", **extra) -> dict:
    fields = dict(what="Publish one clear route in", owner_role="Medical director",
                  start="2026-04-01", review="2026-10-01", user="dir-a")
    return book.add(site, principle, **{**fields, **extra})


def test_an_action_is_recorded_changed_closed_and_every_change_audited(book):
    action = _add(book, note="first step")
    assert action["id"] == 1 and action["status"] == "planned"
    assert action["start"] == dt.date(2026, 4, 1) and action["review"] == dt.date(2026, 10, 1)
    book.update(action["id"], "dir-a", status="in progress", review="2026-11-15")
    closed = book.close(action["id"], "admin1", status="dropped")
    assert closed["status"] == "dropped" and closed["updated_by"] == "admin1"

    trail = book.audit(action["id"])
    created = trail[trail["old"].isna()]
    assert list(created["field"]) == ["site_code", "principle", "what", "owner_role", "start",
                                      "review", "status", "note"]
    changes = trail[trail["old"].notna()][["who", "field", "old", "new"]]
    assert changes.values.tolist() == [
        ["dir-a", "review", "2026-10-01", "2026-11-15"],
        ["dir-a", "status", "planned", "in progress"],
        ["admin1", "status", "in progress", "dropped"]]
    # An update that changes nothing writes nothing.
    book.update(action["id"], "dir-a", note="first step")
    assert len(book.audit(action["id"])) == len(trail)


def test_open_actions_carry_over_and_lists_filter_by_site_and_status(book):
    first, second = _add(book), _add(book, principle="P2")
    _add(book, site="B", principle="P2")
    book.close(first["id"], "dir-a")
    assert book.list(site="A", status=OPEN_STATUSES)["id"].tolist() == [second["id"]]
    assert len(book.list()) == 3 and len(book.list(site="B")) == 1
    counts = book.counts_by_principle_status()
    assert counts.columns.tolist() == ["principle", "status", "actions"]
    assert counts.values.tolist() == [["P1", "done", 1], ["P2", "planned", 2]]


@pytest.mark.parametrize("change, message", [
    ({"review": "2026-03-01"}, "before the start"),
    ({"start": "1/4/2026"}, "use a date like 2026-04-01"),
    ({"status": "finished"}, "use one of planned, in progress, done, dropped"),
    ({"principle": "P7"}, "principle 'P7' is not known"),
    ({"what": "x" * 201}, "201 characters; use 3 to 200"),
    ({"owner_role": "M"}, "a role such as Medical director, not a name"),
    ({"note": "n" * 501}, "use 0 to 500"),
    ({"what": "two\nlines"}, "one line"),
    ({"site_code": "C"}, "cannot change site_code"),
])
def test_a_bad_change_is_refused_with_a_clear_message_and_nothing_written(book, change,
                                                                        message):
    action = _add(book)
    before = book.audit()
    with pytest.raises(PlanError, match=message.replace("(", r"\(")):
        book.update(action["id"], "dir-a", **change)
    assert book.get(action["id"]) == action
    assert len(book.audit()) == len(before)


def test_an_action_is_found_only_at_its_own_site(book):
    action = _add(book)
    with pytest.raises(ActionNotFound, match="no action 1 at site B"):
        book.update(action["id"], "dir-b", site="B", status="done")
    with pytest.raises(ActionNotFound):
        book.get(action["id"], site="B")
    assert book.get(action["id"])["status"] == "planned"
    with pytest.raises(PlanError, match="site 'C' is not in the published results"):
        _add(book, site="C")


def test_reading_a_plan_that_was_never_written_is_empty_and_makes_no_file(tmp_path):
    book = ActionBook(tmp_path / "none.plans.duckdb")
    assert book.list().empty and book.audit().empty and book.counts_by_principle_status().empty
    assert not book.path.exists()


_HOLDER = textwrap.dedent("""
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
""")


def _hold(path: Path, seconds: float) -> subprocess.Popen:
    """A second process that opens the plans file for writing and keeps it."""
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path), str(seconds)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "holding"
    return holder


def test_a_second_process_holding_the_file_gives_in_use_not_a_corrupt_file(book):
    action = _add(book)
    holder = _hold(book.path, 30)
    try:
        started = time.monotonic()
        with pytest.raises(PlanInUse, match="in use by another process; try again"):
            book.update(action["id"], "dir-a", status="done")
        assert time.monotonic() - started < 10
        with pytest.raises(PlanInUse):
            book.list()
    finally:
        holder.kill()
        holder.wait()
    # Once the other process lets go, the file is whole and the refused change absent.
    assert book.get(action["id"])["status"] == "planned"
    assert book.update(action["id"], "dir-a", status="done")["status"] == "done"


def test_a_write_waits_briefly_for_a_process_that_lets_go(book):
    _add(book)
    holder = _hold(book.path, 0.5)
    try:
        assert _add(book, principle="P3")["id"] == 2
    finally:
        holder.wait()


# -- the command line ------------------------------------------------------------------

def _cli(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_culture_actions_add_list_and_export(tmp_path):
    db = str(tmp_path / "culture.duckdb")
    done = _cli("actions", "add", "--db", db, "--site", "A", "--principle", "P2",
                "--what", "Say what stays confidential", "--owner-role", "Guardian of safe working",
                "--start", "2026-05-01", "--review", "2026-09-01", "--user", "admin1")
    assert done.exit_code == 0, done.output
    assert "added action 1" in done.output
    listed = _cli("actions", "list", "--db", db, "--site", "A")
    assert "Say what stays confidential" in listed.output and "planned" in listed.output
    assert (tmp_path / "culture.plans.duckdb").exists()

    csv = tmp_path / "plan.csv"
    assert _cli("actions", "export", str(csv), "--db", db).exit_code == 0
    frame = pd.read_csv(csv)
    assert frame[["site_code", "principle", "owner_role", "status"]].values.tolist() == [
        ["A", "P2", "Guardian of safe working", "planned"]]
    xlsx = tmp_path / "plan.xlsx"
    assert _cli("actions", "export", str(xlsx), "--db", db, "--site", "A").exit_code == 0
    sheet = pd.read_excel(xlsx, engine="openpyxl")
    assert sheet["what"].tolist() == ["Say what stays confidential"]
    assert str(sheet["review"].iloc[0])[:10] == "2026-09-01"


def test_culture_actions_add_refuses_bad_input_in_one_line(tmp_path):
    db = str(tmp_path / "culture.duckdb")
    done = CliRunner().invoke(app, ["actions", "add", "--db", db, "--site", "A",
                                    "--principle", "P2", "--what", "Something to do",
                                    "--owner-role", "Medical director", "--start",
                                    "2026-05-01", "--review", "2026-04-01", "--user", "a1"])
    assert done.exit_code == 1
    assert "review date 2026-04-01 is before the start" in done.output
    assert "Traceback" not in done.output


def test_culture_actions_in_use_is_one_line_not_a_traceback(tmp_path):
    db = tmp_path / "culture.duckdb"
    ActionBook(tmp_path / "culture.plans.duckdb").add(
        "A", "P1", "Publish one clear route in", "Medical director", "2026-01-01",
        "2026-02-01", "admin1")
    holder = _hold(tmp_path / "culture.plans.duckdb", 30)
    try:
        done = subprocess.run([str(Path(sys.executable).with_name("culture")), "actions",
                               "list", "--db", str(db)], capture_output=True, text=True,
                              timeout=60)
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 1
    assert IN_USE in done.stderr and "Traceback" not in done.stderr


def test_the_plans_file_is_beside_the_store_not_in_it(tmp_path):
    from survey.settings import Settings

    settings = Settings(db_path=tmp_path / "x" / "culture.duckdb")
    assert settings.plans_path == tmp_path / "x" / "culture.plans.duckdb"
    assert settings.plans_path not in (settings.published_path, settings.accounts_path)


# -- the board's file and the Trends marks -------------------------------------------------

def test_the_boards_file_makes_formula_looking_text_inert(book):
    from plans.board import plan_bytes

    _add(book, what="=HYPERLINK(\"http://x\")", note="+1 more", owner_role="@lead role")
    rows = pd.read_csv(io.BytesIO(plan_bytes(book.list(), "csv")))
    assert rows[["what", "owner_role", "note"]].values.tolist() == [
        ["'=HYPERLINK(\"http://x\")", "'@lead role", "'+1 more"]]
    with pytest.raises(PlanError, match="use one of csv, xlsx"):
        plan_bytes(book.list(), "pdf")


def test_an_actions_start_is_marked_on_its_principles_panel_with_its_words_escaped():
    from dashboard.figures import mark_actions, trend_figure

    series = pd.DataFrame({"label": ["Routes"] * 2 + ["Trust"] * 2, "wave": [2025, 2026] * 2,
                           "mean": [60.0, 62, 70, 71], "ci_low": [58.0, 60, 68, 69],
                           "ci_high": [62.0, 64, 72, 73], "n": [40] * 4})
    figure = trend_figure(series, pd.DataFrame(columns=["label", "wave", "flag"]), "t")
    actions = pd.DataFrame({"label": ["Trust", "Not drawn"], "what": ["<b>Talk</b>", "x"],
                            "status": ["planned"] * 2,
                            "start": [dt.date(2025, 7, 2), dt.date(2025, 1, 1)]})
    marked = mark_actions(figure, actions)
    trust = next(t for t in marked["data"] if t.get("name") == "Trust")
    [line] = [s for s in marked["layout"]["shapes"] if s.get("line", {}).get("dash") == "dot"]
    assert line["xref"] == trust["xaxis"] and line["yref"] == trust["yaxis"] + " domain"
    assert line["x0"] == pytest.approx(2025 + 182 / 365.25)
    [mark] = [t for t in marked["data"] if t.get("name") == "action started"]
    assert mark["text"] == ["Action: &lt;b&gt;Talk&lt;/b&gt;<br>started 2025-07-02 (planned)"]
