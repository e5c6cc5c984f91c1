"""The `culture` command line: a thin shell over the library.

This module is the table of contents: it builds the app from the command modules
(`survey_commands`, `store_commands`, `pipeline_commands`, `output_commands`,
`dashboard_commands`), in the order `culture --help` lists them. Every command resolves
`Settings` once (flag > environment > default) and calls library functions. Library
errors (`CultureError`) become one line on stderr and exit code 1 here (`CultureGroup`)
and nowhere else; a user never sees a traceback for a problem they can fix.
"""

from __future__ import annotations

import typer
from click import Context
from typer.core import TyperGroup

from cli import (dashboard_commands, output_commands, pipeline_commands, plans_commands,
                 retention_commands, store_commands, survey_commands)
from cli.options import err
from survey.errors import CultureError



class CultureGroup(TyperGroup):
    """The `culture` group: a user's error from any command becomes one line and exit code 1.

    Done here rather than around `app()`, so that Typer's test runner sees what a shell
    sees; and an interrupt is caught before Typer turns it into a silent exit 130.
    """

    def invoke(self, ctx: Context):
        try:
            return super().invoke(ctx)
        except CultureError as exc:
            from rich.text import Text

            err.print(Text("error: ", style="bold red") + Text(str(exc)), soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print("interrupted; the file being ingested was not written (each file is "
                      "all or nothing)")
            raise typer.Exit(130) from None


app = typer.Typer(help="Measure and benchmark the culture of support for doctors.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  cls=CultureGroup)
instrument_app = typer.Typer(help="Check instrument files and export them to other tools.",
                              no_args_is_help=True)
sites_app = typer.Typer(help="Set up the sites (trusts, support units) in the store.",
                        no_args_is_help=True)
waves_app = typer.Typer(help="Set up survey waves (one per year), open, close and freeze them.",
                        no_args_is_help=True)
users_app = typer.Typer(help="Dashboard accounts (admin, director, researcher).",
                        no_args_is_help=True)
actions_app = typer.Typer(help="Sites' action plans against the principles (kept across waves).",
                          no_args_is_help=True)

instrument_app.command("check")(survey_commands.instrument_check)
instrument_app.command("export")(survey_commands.instrument_export)
instrument_app.command("compare")(survey_commands.instrument_compare)
sites_app.command("add")(store_commands.sites_add)
sites_app.command("load")(store_commands.sites_load)
sites_app.command("list")(store_commands.sites_list)
waves_app.command("add")(store_commands.waves_add)
waves_app.command("close")(store_commands.waves_close)
waves_app.command("open")(store_commands.waves_open)
waves_app.command("freeze")(store_commands.waves_freeze)
waves_app.command("unfreeze")(store_commands.waves_unfreeze)
waves_app.command("log")(store_commands.waves_log)
users_app.command("add")(dashboard_commands.users_add)
users_app.command("list")(dashboard_commands.users_list)
users_app.command("remove")(dashboard_commands.users_remove)
users_app.command("set-password")(dashboard_commands.users_set_password)
actions_app.command("list")(plans_commands.actions_list)
actions_app.command("add")(plans_commands.actions_add)
actions_app.command("export")(plans_commands.actions_export)

app.command()(store_commands.ingest)
app.command()(store_commands.quarantine)
app.command()(store_commands.status)
app.command()(pipeline_commands.psychometrics)
app.command()(survey_commands.generate)
app.command()(pipeline_commands.run)
app.command()(retention_commands.purge)
app.command("export")(output_commands.export_aggregates_command)
app.command("report")(output_commands.site_report_command)
app.command()(pipeline_commands.demo)
app.command()(dashboard_commands.serve)
app.command()(survey_commands.collect)
app.command()(survey_commands.invite)
app.add_typer(instrument_app, name="instrument")
app.add_typer(sites_app, name="sites")
app.add_typer(waves_app, name="waves")
app.add_typer(users_app, name="users")
app.add_typer(actions_app, name="actions")


def main() -> None:
    """Entry point of the `culture` console script (errors are handled by `CultureGroup`)."""
    app()


if __name__ == "__main__":
    main()
