"""The `culture` command: parse, call one library function, print. The top of the house;
nothing imports it.

main.py              the app: every command registered in `--help` order, and
                     `CultureGroup`, which alone turns a CultureError into one line and exit 1
options.py           --db / --instrument, settings resolved once, the stdout/stderr consoles
survey_commands.py   instrument check|export, generate, collect, invite
store_commands.py    sites, waves, ingest, quarantine, status (and how ingest is printed)
pipeline_commands.py run, psychometrics, demo (and how a run's results are printed)
output_commands.py   export, report
dashboard_commands.py users add|list|remove|set-password, serve
"""
