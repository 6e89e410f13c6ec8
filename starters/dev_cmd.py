"""``drctl dev``: the local stack (Temporal dev server, estate emulator, Azurite, dr-worker) in the background,
with logs and pid files in a state folder, and the environment that talks to it."""

from __future__ import annotations

import json
import shlex
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from starters.output import EXIT_INVALID, emit_json, fail, show, table
from starters.plan_cmd import load_or_exit
from starters.stack import Stack, StackConfig, StackError

app = typer.Typer(help="Run the local stack: Temporal dev server, estate emulator and a worker.", no_args_is_help=True)

DEFAULT_STATE_DIR = Path(".state")
DEFAULT_PLAN = Path("plans/local.toml")
CONFIG_FILE = "stack.json"

StateDirOption = Annotated[
    Path,
    typer.Option("--state-dir", help="Where logs, pid files and data live.", envvar="DR_STATE_DIR", show_envvar=True),
]


def config_path(state_dir: Path) -> Path:
    return state_dir / CONFIG_FILE


def save_config(config: StackConfig) -> None:
    """Remember how the stack was started, so ``down``, ``status`` and ``env`` need no flags."""
    data = {
        "plans": [str(p) for p in config.plans],
        "temporal_port": config.temporal_port,
        "ui_port": config.ui_port,
        "emulator_port": config.emulator_port,
        "metrics_port": config.metrics_port,
        "azurite_port": config.azurite_port,
        "task_queue": config.task_queue,
    }
    config.state_dir.mkdir(parents=True, exist_ok=True)
    config_path(config.state_dir).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def load_config(state_dir: Path) -> StackConfig:
    """The configuration ``up`` saved in ``state_dir``; the defaults when there is none."""
    state_dir = state_dir.resolve()
    default = StackConfig(state_dir=state_dir, plans=(DEFAULT_PLAN.resolve(),))
    try:
        data: dict[str, Any] = json.loads(config_path(state_dir).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default
    except (OSError, ValueError) as exc:
        fail(f"cannot read {config_path(state_dir)}: {exc}; delete it and run `drctl dev up` again")
    try:
        return replace(
            default,
            plans=tuple(Path(p) for p in data.get("plans", default.plans)),
            temporal_port=int(data.get("temporal_port", default.temporal_port)),
            ui_port=int(data.get("ui_port", default.ui_port)),
            emulator_port=int(data.get("emulator_port", default.emulator_port)),
            metrics_port=int(data.get("metrics_port", default.metrics_port)),
            azurite_port=int(data.get("azurite_port", default.azurite_port)),
            task_queue=data.get("task_queue") or None,
        )
    except (TypeError, ValueError) as exc:
        fail(f"{config_path(state_dir)} is malformed ({exc}); delete it and run `drctl dev up` again")


def stack_env(config: StackConfig) -> dict[str, str]:
    """What a shell needs to use the stack: the clients' environment plus the UI's address."""
    return config.client_env() | {"DR_UI_URL": config.ui_url}


def export_lines(env: dict[str, str]) -> list[str]:
    return [f"export {key}={shlex.quote(value)}" for key, value in env.items()]


def _progress(message: str) -> None:
    typer.echo(f"… {message}")


@app.command()
def up(
    *,
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
    plan: Annotated[
        list[Path] | None,
        typer.Option("--plan", help="Plan the emulator and worker serve (repeatable; default plans/local.toml)."),
    ] = None,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="Start Temporal and the emulator only.")] = False,
    temporal_port: Annotated[int | None, typer.Option("--temporal-port", min=1, max=65535)] = None,
    ui_port: Annotated[int | None, typer.Option("--ui-port", min=1, max=65535)] = None,
    emulator_port: Annotated[int | None, typer.Option("--emulator-port", min=1, max=65535)] = None,
    metrics_port: Annotated[int | None, typer.Option("--metrics-port", min=1, max=65535)] = None,
    azurite_port: Annotated[int | None, typer.Option("--azurite-port", min=1, max=65535)] = None,
    task_queue: Annotated[
        str | None, typer.Option("--task-queue", help="Task queue of the worker (default dr-orchestrator).")
    ] = None,
) -> None:
    """Start the stack in the background (parts already running are kept) and print its environment.

    Options not given keep the values of the last ``up`` in the same state folder."""
    saved = load_config(state_dir)
    paths = tuple(p.resolve() for p in plan) if plan else saved.plans
    names = [load_or_exit(p).name for p in paths]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        fail(
            f"plan name(s) {', '.join(duplicates)} given more than once; each --plan must be a different plan",
            EXIT_INVALID,
        )
    config = replace(
        saved,
        plans=paths,
        temporal_port=temporal_port or saved.temporal_port,
        ui_port=ui_port or saved.ui_port,
        emulator_port=emulator_port or saved.emulator_port,
        metrics_port=metrics_port or saved.metrics_port,
        azurite_port=azurite_port or saved.azurite_port,
        task_queue=task_queue or saved.task_queue,
    )
    ports = {
        "--temporal-port": config.temporal_port,
        "--ui-port": config.ui_port,
        "--emulator-port": config.emulator_port,
        "--metrics-port": config.metrics_port,
        "--azurite-port": config.azurite_port,
    }
    if len(set(ports.values())) != len(ports):
        fail(f"the ports must differ: {', '.join(f'{k} {v}' for k, v in ports.items())}", EXIT_INVALID)
    running = [name for name, pid in Stack(saved).status().items() if pid is not None]
    if running and config != saved:
        fail(
            f"the stack in {config.state_dir} is running ({', '.join(running)}) with other settings "
            f"(Temporal {saved.temporal_address}, emulator {saved.emulator_url}); "
            f"stop it first with `drctl dev down --state-dir {state_dir}`, or drop the changed options"
        )
    stack = Stack(config)
    save_config(config)
    try:
        stack.up(worker=not no_worker, progress=_progress)
    except StackError as exc:
        fail(f"{exc}\n(stop what did start with `drctl dev down --state-dir {state_dir}`)")
    typer.echo(f"stack up (state in {config.state_dir})")
    typer.echo(f"  Temporal: {config.temporal_address}")
    typer.echo(f"  UI:       {config.ui_url}")
    typer.echo(f"  emulator: {config.emulator_url} (CA {config.ca_file})")
    typer.echo(f"  blobs:    {config.blob_endpoint} (Azurite)")
    if not no_worker:
        typer.echo(f"  worker:   metrics {config.metrics_url}, plans {', '.join(names)}")
    typer.echo("environment for drctl and tests (or: eval $(drctl dev env)):")
    for line in export_lines(stack_env(config)):
        typer.echo(line)


@app.command()
def down(state_dir: StateDirOption = DEFAULT_STATE_DIR) -> None:
    """Stop the worker, Azurite, the emulator and the Temporal dev server (their data stays in the state folder)."""
    stack = Stack(load_config(state_dir))
    stopped = stack.down(progress=_progress)
    typer.echo(f"stopped {', '.join(stopped)}" if stopped else "nothing was running")


@app.command()
def status(
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Which parts of the stack run, their pids, addresses and logs."""
    config = load_config(state_dir)
    stack = Stack(config)
    pids = stack.status()
    where = {
        "temporal": f"{config.temporal_address} (UI {config.ui_url})",
        "emulator": config.emulator_url,
        "azurite": config.blob_endpoint,
        "worker": config.metrics_url,
    }
    procs = {"temporal": stack.temporal, "emulator": stack.emulator, "azurite": stack.azurite, "worker": stack.worker}
    if as_json:
        emit_json(
            {
                name: {"running": pid is not None, "pid": pid, "address": where[name], "log": str(procs[name].log_file)}
                for name, pid in pids.items()
            }
        )
        return
    show(
        table(
            f"Local stack ({config.state_dir})",
            ["part", "state", "pid", "address", "log"],
            [
                (name, "running" if pid is not None else "stopped", pid, where[name], procs[name].log_file)
                for name, pid in pids.items()
            ],
        )
    )


@app.command()
def env(state_dir: StateDirOption = DEFAULT_STATE_DIR) -> None:
    """Print ``export`` lines for a shell to talk to the stack: ``eval "$(drctl dev env)"``."""
    for line in export_lines(stack_env(load_config(state_dir))):
        typer.echo(line)
