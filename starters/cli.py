"""drctl: the operator's command line. This module only sets up logging and registers the groups."""

from __future__ import annotations

from typing import Annotated

import typer

from observability.logging import configure_logging
from starters import (
    backup_cmd,
    demo_cmd,
    dev_cmd,
    drill_cmd,
    emulator_cmd,
    evidence_cmd,
    failback_cmd,
    failover_cmd,
    keys_cmd,
    plan_cmd,
    restore_cmd,
)

app = typer.Typer(
    name="drctl",
    help="Disaster-recovery orchestration for Azure estates.",
    no_args_is_help=True,
    # Locals in a traceback can hold tokens; errors the user can fix never reach a traceback.
    pretty_exceptions_show_locals=False,
)


@app.callback()
def _setup(
    log_level: Annotated[
        str, typer.Option("--log-level", envvar="DR_LOG_LEVEL", help="DEBUG, INFO, WARNING or ERROR.")
    ] = "WARNING",
    json_logs: Annotated[
        bool | None,
        typer.Option("--json-logs/--console-logs", help="Log format on stderr (default: JSON unless a terminal)."),
    ] = None,
) -> None:
    try:
        configure_logging(log_level, json_logs)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--log-level") from exc


app.add_typer(emulator_cmd.app, name="emulator")
app.add_typer(plan_cmd.app, name="plan")
app.add_typer(failover_cmd.app, name="failover")
app.add_typer(failback_cmd.app, name="failback")
app.add_typer(dev_cmd.app, name="dev")
app.add_typer(keys_cmd.app, name="keys")
app.add_typer(evidence_cmd.app, name="evidence")
app.add_typer(restore_cmd.app, name="restore")
app.add_typer(backup_cmd.app, name="backup")
app.add_typer(drill_cmd.app, name="drill")
app.command(name="demo")(demo_cmd.demo)


def main() -> None:
    """Console-script entry point (``drctl``)."""
    try:
        app()
    except SystemExit as done:
        if failover_cmd.connected_to_temporal():
            failover_cmd.exit_process(done.code)
        raise


if __name__ == "__main__":
    main()
