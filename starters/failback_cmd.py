"""``drctl failback``: bring an estate back to its recovered primary region, shifting traffic in
health-gated steps, and watch, pause, resume, abort or promote the shift.

The async helpers (``start_failback``, ``failback_view``, ``watch_failback``, ``send_command``)
take a connected client, so tests and demos call them directly; the typer commands only add
argument checks, output and exit codes. Connection, error mapping and process exit are
shared (starters/temporal_cli.py).

Exit codes: 0 done (or dry run), 1 the failback or the command failed (refused, aborted),
2 invalid input, 4 the shift is paused waiting for an operator, 130 stopped watching (Ctrl-C).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import SearchAttributePair
from temporalio.service import RPCError

from domain.messages.failback import (
    ABORT,
    COMMANDS,
    GATE,
    PAUSE,
    PAUSED,
    PROMOTE,
    RESUME,
    STARTING,
    CommandAccepted,
    FailbackCommand,
    FailbackInput,
    FailbackResult,
    FailbackStatus,
    StepReading,
)
from domain.plan import DrPlan, validate_failback_steps
from starters.failover_cmd import running_exclusive
from starters.output import EXIT_FAILED, EXIT_INVALID, console, fail
from starters.plan_cmd import load_or_exit
from starters.progress_view import OUTCOME_STYLES, facts, header, parse_time, steps_table
from starters.temporal_cli import (
    POLL_SECONDS,
    UPDATE_TIMEOUT,
    AddressOption,
    ByOption,
    CommandError,
    JsonOption,
    NamespaceOption,
    TaskQueueOption,
    WorkflowReader,
    WorkflowView,
    connect,
    current_user,
    describe_workflow,
    echo_started,
    failure_message,
    json_line,
    json_output,
    rpc_message,
    run_command,
    run_watching,
    show_view,
    start_workflow_once,
    status_name,
    temporal_settings,
    ui_url,
    watch_and_print,
)
from workers.connection import TemporalSettings
from workflows.common import DR_PLAN

app = typer.Typer(
    help="Fail an estate back to its primary region in health-gated traffic steps, and steer the shift.",
    no_args_is_help=True,
)

WORKFLOW_TYPE = "FailbackWorkflow"
EXIT_PAUSED = 4
# How long ``start`` waits to see the health gate and the estate check pass (or refuse).
GATE_WAIT_SECONDS = 30.0
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


class FailbackCommandError(CommandError):
    """A request to Temporal about a failback could not be carried out; the message says why."""


# ---- input -------------------------------------------------------------------------------------


def workflow_id_for(plan: str, now: datetime | None = None) -> str:
    """``failback-{plan}-{yyyymmddThhmmss}`` in UTC."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"failback-{plan}-{moment:%Y%m%dT%H%M%S}"


def parse_duration(value: str) -> int:
    """Whole seconds from ``300``, ``300s``, ``5m``, ``1m30s`` or ``1h``."""
    text = value.strip().lower()
    if text.isdigit():
        return int(text)
    match = _DURATION.match(text)
    if not text or match is None or not any(match.groups()):
        raise ValueError(f"{value!r} is not a duration such as 60s, 5m, 1m30s or 1h")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def parse_steps(value: str) -> list[int]:
    """``10,25,50,75,100`` as whole percentages."""
    parts = [p.strip().rstrip("%").strip() for p in value.split(",")]
    try:
        return [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"{value!r} is not a list of whole percentages such as 10,25,50,75,100") from None


def schedule_problems(steps: list[int], soak_seconds: int, interval_seconds: int) -> list[str]:
    """What is wrong with a schedule, in the plan's words and with the options' names."""
    options = {"steps": "--steps", "soak": "--soak", "interval": "--interval"}
    problems = [
        f"{options.get(issue.field, issue.field)}: {issue.problem} (fix: {issue.fix})"
        for issue in validate_failback_steps(steps, soak_seconds, interval_seconds)
    ]
    if interval_seconds < 1:
        problems.append(f"--interval: must be at least 1s, found {interval_seconds}s")
    return problems


# ---- what a failback looks like from outside ----------------------------------------------------


@dataclass
class FailbackView(WorkflowView[FailbackStatus, FailbackResult]):
    """Everything the starter can learn about one failback workflow."""

    @property
    def paused(self) -> bool:
        return not self.closed and self.status is not None and self.status.phase == PAUSED

    def exit_code(self) -> int:
        """0 succeeded or dry run, 4 paused for an operator, 1 failed, aborted or closed without a result."""
        if self.result is not None:
            return 0 if self.result.outcome in ("succeeded", "dry-run") else EXIT_FAILED
        if self.closed:
            return EXIT_FAILED
        return EXIT_PAUSED if self.paused else 0


READER = WorkflowReader(FailbackStatus, FailbackResult, FailbackView, ("outcome", "readings"), FailbackCommandError)
result_from_failure = READER.result_from_failure
failback_handle = READER.handle


async def _described(
    client: Client, workflow_id: str, *, running: bool
) -> tuple[WorkflowHandle[Any, FailbackResult], WorkflowExecutionDescription]:
    """The failback's handle and description; refuses other workflow types (and, when ``running``,
    workflows that have closed)."""
    handle = failback_handle(client, workflow_id)
    description = await describe_workflow(handle, WORKFLOW_TYPE, FailbackCommandError)
    if running and description.status != WorkflowExecutionStatus.RUNNING:
        raise FailbackCommandError(
            f"{workflow_id} is no longer running ({status_name(description.status)}); "
            f"see `drctl failback status {workflow_id}`"
        )
    return handle, description


async def failback_view(client: Client, workflow_id: str) -> FailbackView:
    """The failback's state: the "status" query while it runs; once closed, its result (or the one
    its failure carries)."""
    handle, description = await _described(client, workflow_id, running=False)
    return await READER.current(handle, description)


# ---- start, watch, commands ----------------------------------------------------------------------


def start_details(inp: FailbackInput, plan: DrPlan) -> str:
    """The markdown the Temporal UI shows as the workflow's static details."""
    steps = inp.steps or list(plan.failback.steps)
    soak = inp.soak_seconds if inp.soak_seconds is not None else plan.failback.soak_seconds
    interval = inp.interval_seconds if inp.interval_seconds is not None else plan.failback.interval_seconds
    return "\n\n".join(
        [
            f"**Reason:** {inp.reason or 'not given'}",
            f"**Requested by:** {inp.requested_by or 'unknown'}",
            f"**Plan:** {inp.plan} (digest `{inp.plan_digest[:12]}`)",
            f"**Regions:** {plan.dr_region} → {plan.primary_region}",
            f"**Steps:** {' → '.join(f'{s} %' for s in steps)} · soak {soak}s · sample every {interval}s",
            f"**Dry run:** {'yes' if inp.dry_run else 'no'}",
        ]
    )


async def start_failback(
    client: Client,
    settings: TemporalSettings,
    plan: DrPlan,
    *,
    reason: str,
    steps: list[int] | None = None,
    soak_seconds: int | None = None,
    interval_seconds: int | None = None,
    requested_by: str | None = None,
    dry_run: bool = False,
    workflow_id: str | None = None,
) -> WorkflowHandle[Any, FailbackResult]:
    """Start FailbackWorkflow for ``plan``; refuses a bad schedule, and while a failover or
    failback of the plan runs."""
    problems = schedule_problems(
        steps if steps is not None else list(plan.failback.steps),
        soak_seconds if soak_seconds is not None else plan.failback.soak_seconds,
        interval_seconds if interval_seconds is not None else plan.failback.interval_seconds,
    )
    if problems:
        raise ValueError("; ".join(problems))
    running = await running_exclusive(client, plan.name)
    if running:
        kind, other = running[0]
        group = "failback" if kind == WORKFLOW_TYPE else "failover"
        raise FailbackCommandError(
            f"a {kind} of plan {plan.name} is already running: {other}. See it with `drctl {group} status {other}`"
        )
    inp = FailbackInput(
        plan=plan.name,
        plan_digest=plan.digest,
        reason=reason,
        requested_by=requested_by or current_user(),
        steps=steps,
        soak_seconds=soak_seconds,
        interval_seconds=interval_seconds,
        dry_run=dry_run,
    )
    wf_id = workflow_id or workflow_id_for(plan.name)
    return await start_workflow_once(
        client,
        WORKFLOW_TYPE,
        inp,
        workflow_id=wf_id,
        task_queue=settings.task_queue,
        result_type=FailbackResult,
        search_attributes=[SearchAttributePair(DR_PLAN, plan.name)],
        summary=f"Failback {plan.name}: {plan.dr_region} → {plan.primary_region}" + (" (dry run)" if dry_run else ""),
        details=start_details(inp, plan),
        error=FailbackCommandError,
        already_started=f"a workflow with id {wf_id} already exists; retry in a second",
    )


async def watch_failback(
    handle: WorkflowHandle[Any, FailbackResult],
    on_update: Callable[[FailbackView], None],
    *,
    until: Callable[[FailbackStatus], bool] = lambda s: s.phase == PAUSED,
    interval: float = POLL_SECONDS,
    within: float | None = None,
) -> FailbackView:
    """Poll the "status" query until the failback closes or ``until(status)`` (by default: paused
    for an operator), at most ``within`` seconds; ``on_update`` sees every poll."""
    return await READER.watch(handle, on_update, until=until, interval=interval, within=within)


async def send_command(
    client: Client, workflow_id: str, command: str, reason: str = "", by: str | None = None
) -> CommandAccepted:
    """Pause, resume, abort or promote a running failback; the workflow's validator may refuse."""
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r}; one of {', '.join(COMMANDS)}")
    handle, _ = await _described(client, workflow_id, running=True)
    try:
        accepted: CommandAccepted = await handle.execute_update(
            command,
            FailbackCommand(reason=reason, by=by or current_user()),
            result_type=CommandAccepted,
            rpc_timeout=UPDATE_TIMEOUT,
        )
    except WorkflowUpdateFailedError as exc:
        raise FailbackCommandError(f"{command} refused: {failure_message(exc.cause)}") from exc
    except RPCTimeoutOrCancelledError as exc:
        raise FailbackCommandError(
            f"no worker accepted the {command} within {UPDATE_TIMEOUT.seconds}s: is dr-worker running? "
            "(`drctl dev status`)"
        ) from exc
    except RPCError as exc:
        raise FailbackCommandError(rpc_message(exc, f"cannot {command} {workflow_id}")) from exc
    return accepted


# ---- views -------------------------------------------------------------------------------------


def _percent(value: float | None) -> str:
    return f"{value:.2%}" if value is not None else "n/a"


def split_text(primary: str, dr: str, primary_percent: int) -> str:
    return f"{primary} {primary_percent} % · {dr} {100 - primary_percent} %"


def readings_table(readings: list[StepReading]) -> Table:
    """One row per traffic step: its state and the primary origin's last SLO reading."""
    result = Table(title="SLO readings per step", title_justify="left", header_style="bold")
    for column in ("step", "status", "ok/samples", "breaches", "last", "requests", "5xx", "latency", "reasons"):
        result.add_column(column, overflow="fold", justify="right" if column in ("requests", "latency") else "left")
    styles = {"passed": "green", "rolled-back": "bold red", "soaking": "bold yellow", "promoted": "cyan"}
    for r in readings:
        verdict_style = {"ok": "green", "breach": "bold red", "no_data": "bold red"}.get(r.last_verdict, "")
        result.add_row(
            Text(f"{r.percent} %"),
            Text(r.status, style=styles.get(r.status, "dim")),
            Text(f"{r.ok_samples}/{r.samples}"),
            Text(str(r.breaches), style="red" if r.breaches else ""),
            Text(r.last_verdict or "-", style=verdict_style),
            Text(f"{r.request_count:.0f}" if r.request_count is not None else "n/a"),
            Text(_percent(r.error_rate)),
            Text(f"{r.latency_ms:.0f} ms" if r.latency_ms is not None else "n/a"),
            Text("; ".join(r.reasons)),
        )
    return result


def _title(plan: str, dr: str, primary: str) -> str:
    return f"Failback {plan}: {dr or '?'} → {primary or '?'}"


def status_view(status: FailbackStatus, *, now: datetime | None = None) -> RenderableType:
    """A running failback: phase, current weights, the step table and the readings per step."""
    schedule = " → ".join(f"{s} %" for s in status.schedule)
    style = "bold red" if status.phase in ("failed", PAUSED) else "bold"
    return Group(
        header(
            _title(status.plan, status.dr_region, status.primary_region),
            dry_run=status.dry_run,
            badge=f"phase: {status.phase}",
            badge_style=style,
        ),
        facts(
            [
                ("workflow", status.workflow_id),
                ("started", status.started_at or None),
                ("traffic", split_text(status.primary_region, status.dr_region, status.primary_percent)),
                ("step", f"{status.current_step} %" if status.current_step is not None else None),
                ("last good", f"{status.last_good_percent} %"),
                (
                    "schedule",
                    f"{schedule} (soak {status.soak_seconds}s, sample every {status.interval_seconds}s)"
                    if schedule
                    else None,
                ),
                ("paused", Text(status.paused, style="bold yellow") if status.paused else None),
                ("command", status.pending_command),
                ("breaches", status.breaches or None),
                ("promoted at", f"{status.promoted_at} %" if status.promoted_at is not None else None),
                ("error", Text(status.error, style="red") if status.error else None),
            ]
        ),
        steps_table(status.steps, show_calls=status.dry_run, now=now),
        readings_table(status.readings),
    )


def result_view(result: FailbackResult) -> RenderableType:
    """A finished failback: outcome, final weights, the step table and the readings per step."""
    return Group(
        header(
            _title(result.plan, result.dr_region, result.primary_region),
            dry_run=result.dry_run,
            badge=f"outcome: {result.outcome}",
            badge_style=OUTCOME_STYLES.get(result.outcome, "bold"),
        ),
        facts(
            [
                ("workflow", result.workflow_id),
                ("started", result.started_at or None),
                ("finished", result.finished_at or None),
                ("traffic", split_text(result.primary_region, result.dr_region, result.primary_percent)),
                ("breaches", result.breaches),
                ("promoted at", f"{result.promoted_at} %" if result.promoted_at is not None else None),
                ("done", ", ".join(result.done) or "nothing"),
                ("not done", ", ".join(result.not_done) or "nothing"),
                (
                    "failure" if result.outcome == "failed" else "reason",
                    Text(result.reason, style="red" if result.outcome == "failed" else "") if result.reason else None,
                ),
            ]
        ),
        steps_table(result.steps, show_calls=result.dry_run, now=parse_time(result.finished_at)),
        readings_table(result.readings),
    )


def outcome_lines(view: FailbackView) -> list[str]:
    """The closing words: outcome, or what the operator can do next."""
    wid = view.workflow_id
    if view.result is not None:
        r = view.result
        lines = [f"outcome: {r.outcome}; traffic {split_text(r.primary_region, r.dr_region, r.primary_percent)}"]
        if view.failure and r.outcome == "failed":
            lines.append(f"failure: {view.failure}")
        return lines
    if view.closed:
        return [f"{wid} ended {view.execution_status}: {view.failure or 'no result'}"]
    if view.paused and view.status is not None:
        return [
            f"paused: {view.status.paused}",
            f"  resume (retry or continue the step): drctl failback resume {wid}",
            f"  promote (100 % now, no more soak):   drctl failback promote {wid}",
            f'  abort (all traffic back to DR):      drctl failback abort {wid} --reason "..."',
        ]
    return [f"{wid}: {view.failure}" if view.failure else f"{wid} is running"]


def print_view(view: FailbackView) -> None:
    out = console()
    if view.result is not None:
        out.print(result_view(view.result))
    elif view.status is not None:
        out.print(status_view(view.status))
    for line in outcome_lines(view):
        out.print(line, highlight=False, markup=False)


async def watch_and_report(handle: WorkflowHandle[Any, FailbackResult], as_json: bool) -> int:
    """``--wait``: a live view on a terminal, JSON lines otherwise; stops when closed or paused."""
    return await watch_and_print(
        lambda on_update: watch_failback(handle, on_update),
        as_json,
        lambda view: status_view(view.status) if view.status is not None else view.failure or None,
        print_view,
    )


# ---- the commands -------------------------------------------------------------------------------


def _run_watching(body: Callable[[], Coroutine[Any, Any, int]], workflow_id: Callable[[], str | None]) -> NoReturn:
    """Ctrl-C only stops watching: the failback runs on in Temporal."""
    run_watching(
        body,
        workflow_id,
        lambda wid: f"stopped watching; the failback continues. Resume with: drctl failback status {wid} --wait",
    )


@app.command()
def start(
    *,
    plan_path: Annotated[Path, typer.Option("--plan", help="Plan file (.toml) whose estate fails back.")],
    steps: Annotated[
        str | None, typer.Option("--steps", help="Primary's share per step, e.g. 10,25,50,75,100 (plan's default).")
    ] = None,
    soak: Annotated[
        str | None, typer.Option("--soak", help="How long each step must stay healthy, e.g. 5m (plan's default).")
    ] = None,
    interval: Annotated[
        str | None, typer.Option("--interval", help="SLO sampling interval, e.g. 60s (plan's default).")
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why: shown in the UI and the audit trail.")] = (
        "primary region recovered"
    ),
    wait: Annotated[
        bool, typer.Option("--wait", help="Watch until done or paused (live view; JSON lines without a terminal).")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan every call, change nothing.")] = False,
    requested_by: Annotated[str | None, typer.Option("--requested-by", help="Who asks (default: $USER).")] = None,
    task_queue: TaskQueueOption = None,
    address: AddressOption = None,
    namespace: NamespaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start a failback of a plan's estate to its primary region."""
    plan = load_or_exit(plan_path)
    try:
        step_list = parse_steps(steps) if steps is not None else None
        soak_seconds = parse_duration(soak) if soak is not None else None
        interval_seconds = parse_duration(interval) if interval is not None else None
    except ValueError as exc:
        fail(str(exc), EXIT_INVALID)
    problems = schedule_problems(
        step_list if step_list is not None else list(plan.failback.steps),
        soak_seconds if soak_seconds is not None else plan.failback.soak_seconds,
        interval_seconds if interval_seconds is not None else plan.failback.interval_seconds,
    )
    if problems:
        fail("invalid failback schedule:\n  " + "\n  ".join(problems), EXIT_INVALID)
    if not reason.strip():
        fail("--reason is empty: say why the failback is started", EXIT_INVALID)
    settings = temporal_settings(address, namespace, task_queue)
    json_out = json_output(as_json, wait)
    started: list[str] = []

    async def body() -> int:
        client = await connect(settings)
        handle = await start_failback(
            client,
            settings,
            plan,
            reason=reason.strip(),
            steps=step_list,
            soak_seconds=soak_seconds,
            interval_seconds=interval_seconds,
            requested_by=requested_by,
            dry_run=dry_run,
        )
        started.append(handle.id)
        url = ui_url(settings, handle.id)
        if json_out:
            json_line("started", {"workflow_id": handle.id, "url": url, "plan": plan.name})
        else:
            kind = "dry-run failback" if dry_run else "failback"
            echo_started(
                f"started {kind} of plan {plan.name}: {plan.dr_region} → {plan.primary_region}", handle.id, url
            )
        if wait:
            return await watch_and_report(handle, json_out)
        # Refusals (primary unhealthy, nothing to fail back) come within seconds: report them here.
        gate = await watch_failback(
            handle, lambda _: None, until=lambda s: s.phase not in (STARTING, GATE), within=GATE_WAIT_SECONDS
        )
        if gate.closed:
            if json_out:
                json_line("outcome", {**gate.as_json(), "exit_code": gate.exit_code()})
            else:
                print_view(gate)
            return gate.exit_code()
        if not json_out:
            typer.echo(f"  watch:    drctl failback status {handle.id} --wait")
            typer.echo(f"  pause:    drctl failback pause {handle.id}")
            typer.echo(f'  abort:    drctl failback abort {handle.id} --reason "..."')
        return 0

    _run_watching(body, lambda: started[0] if started else None)


@app.command()
def status(
    workflow_id: Annotated[str, typer.Argument(help="The failback's workflow id.")],
    wait: Annotated[bool, typer.Option("--wait", help="Keep watching until done or paused.")] = False,
    address: AddressOption = None,
    namespace: NamespaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a failback's phase, current weights, step table and the last SLO readings per step."""
    settings = temporal_settings(address, namespace)
    json_out = json_output(as_json, wait)

    async def body() -> int:
        client = await connect(settings)
        view = await failback_view(client, workflow_id)
        if wait and not view.closed and not view.paused:
            return await watch_and_report(failback_handle(client, workflow_id), json_out)
        show_view(view, ui_url(settings, workflow_id), json_out, print_view)
        return view.exit_code() if wait else 0

    _run_watching(body, lambda: workflow_id)


def _command(name: str, workflow_id: str, reason: str, by: str | None, settings: TemporalSettings) -> None:

    async def body() -> int:
        client = await connect(settings)
        accepted = await send_command(client, workflow_id, name, reason.strip(), by)
        typer.echo(f"{workflow_id}: {accepted.message}")
        typer.echo(f"follow it with: drctl failback status {workflow_id} --wait")
        return 0

    run_command(body)


WorkflowIdArgument = Annotated[str, typer.Argument(help="The failback's workflow id.")]


@app.command()
def pause(
    workflow_id: WorkflowIdArgument,
    reason: Annotated[str, typer.Option("--reason", help="Why (shown while paused).")] = "",
    by: ByOption = None,
    address: AddressOption = None,
    namespace: NamespaceOption = None,
) -> None:
    """Hold the traffic shift where it is: no further sample or step until resume, promote or abort."""
    _command(PAUSE, workflow_id, reason, by, temporal_settings(address, namespace))


@app.command()
def resume(
    workflow_id: WorkflowIdArgument,
    note: Annotated[str, typer.Option("--note", help="What was checked (kept in the history).")] = "",
    by: ByOption = None,
    address: AddressOption = None,
    namespace: NamespaceOption = None,
) -> None:
    """Continue a paused shift: after a breach the step is retried, after a pause it goes on."""
    _command(RESUME, workflow_id, note, by, temporal_settings(address, namespace))


@app.command()
def abort(
    workflow_id: WorkflowIdArgument,
    reason: Annotated[str, typer.Option("--reason", help="Why the failback must stop.")],
    by: ByOption = None,
    address: AddressOption = None,
    namespace: NamespaceOption = None,
) -> None:
    """Return all traffic to the DR region and end the failback."""
    if not reason.strip():
        fail("--reason is empty: say why the failback must stop", EXIT_INVALID)
    _command(ABORT, workflow_id, reason, by, temporal_settings(address, namespace))


@app.command()
def promote(
    workflow_id: WorkflowIdArgument,
    reason: Annotated[str, typer.Option("--reason", help="Why the remaining soak is skipped.")] = "",
    by: ByOption = None,
    address: AddressOption = None,
    namespace: NamespaceOption = None,
) -> None:
    """Send 100 % to the primary region now, skipping the remaining steps' soak."""
    _command(PROMOTE, workflow_id, reason, by, temporal_settings(address, namespace))
