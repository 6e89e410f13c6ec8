"""``drctl failover``: start a failover of a plan's estate, watch it, query it, abort it, list them.

The async helpers (``start_failover``, ``watch_failover``, ``failover_view``, ``abort_failover``,
``signal_recovered``, ``list_failovers``) take a connected client, so tests and demos call them
directly; the typer commands only add argument checks, output and exit codes.

Exit codes: 0 done (or dry run), 1 the failover or the command failed, 2 invalid input,
3 the failover finished but the SLO did not turn green, 130 stopped watching (Ctrl-C).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import SearchAttributePair
from temporalio.service import RPCError

from domain.messages.failover import (
    AbortAccepted,
    AbortRequest,
    FailoverInput,
    FailoverResult,
    FailoverStatus,
    PrimaryRecovered,
)
from domain.plan import DrPlan
from starters.output import EXIT_FAILED, EXIT_INVALID, console, fail
from starters.plan_cmd import load_or_exit
from starters.progress_view import format_seconds, planned_calls_view, result_view, rpo_text, status_view
from starters.temporal_cli import (
    POLL_SECONDS,
    UPDATE_TIMEOUT,
    AddressOption,
    ByOption,
    CommandError,
    JsonOption,
    NamespaceOption,
    TaskQueueOption,
    WorkflowListing,
    WorkflowReader,
    WorkflowView,
    current_user,
    describe_workflow,
    echo_started,
    failure_message,
    json_line,
    json_output,
    quoted,
    rpc_message,
    run_watching,
    show_listing,
    show_view,
    start_workflow_once,
    status_name,
    temporal_settings,
    watch_and_print,
)

# Re-exported (explicitly, for mypy): drctl's entry point and the demo reach them through this module.
from starters.temporal_cli import connect as connect  # noqa: PLC0414
from starters.temporal_cli import connected_to_temporal as connected_to_temporal  # noqa: PLC0414
from starters.temporal_cli import exit_process as exit_process  # noqa: PLC0414
from starters.temporal_cli import run_command as run_command  # noqa: PLC0414
from starters.temporal_cli import ui_url as ui_url  # noqa: PLC0414
from workers.connection import TemporalSettings
from workflows.common import DR_PLAN

app = typer.Typer(
    help="Fail an estate over to its DR region, and watch, abort or list failovers.", no_args_is_help=True
)

WORKFLOW_TYPE = "FailoverWorkflow"
# Workflows that move an estate's traffic: only one of them may run per plan at a time.
EXCLUSIVE_TYPES = ("FailoverWorkflow", "FailbackWorkflow")
EXIT_SLO_NOT_MET = 3
# Phases after which --wait stops watching: the cut-over is over (the workflow may keep running to
# watch for the extended-outage threshold) or the workflow is about to close.
SETTLED_PHASES = ("watching", "completed")


# ---- errors the helpers raise (the commands turn them into messages and exit codes) -------------


class FailoverCommandError(CommandError):
    """A request to Temporal about a failover could not be carried out; the message says why."""


class FailoverAlreadyRunning(FailoverCommandError):
    """Another failover or failback of the same plan is running."""

    def __init__(self, plan: str, running: list[tuple[str, str]]) -> None:
        self.plan = plan
        self.running = running
        workflow_type, workflow_id = running[0]
        super().__init__(
            f"a {workflow_type} of plan {plan} is already running: {workflow_id}. "
            f"See it with `drctl failover status {workflow_id}`"
            + (
                f"; stop it with `drctl failover abort {workflow_id} --reason ...`, or, once it only watches "
                f"the outage (phase watching), end it with `drctl failover recovered {workflow_id}`"
                if workflow_type == WORKFLOW_TYPE
                else ""
            )
        )


class WorkflowNotFound(FailoverCommandError):
    """No failover workflow has the given id."""


# ---- small pure helpers ---------------------------------------------------------------------------


def workflow_id_for(plan: str, now: datetime | None = None) -> str:
    """``failover-{plan}-{yyyymmddThhmmss}`` in UTC (DESIGN's business key, to the second)."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"failover-{plan}-{moment:%Y%m%dT%H%M%S}"


def region_problem(plan: DrPlan, from_region: str, to_region: str) -> tuple[str, str] | None:
    """``(option, message)`` when the regions cannot be a failover of ``plan``, else None."""
    valid = ", ".join(plan.regions)
    for option, value in (("--from", from_region), ("--to", to_region)):
        if value not in plan.regions:
            return option, f"{option} {value!r} is not a region of plan {plan.name}; valid choices: {valid}"
    if from_region == to_region:
        return (
            "--to",
            f"--from and --to are both {from_region}: --from is the failed region, --to the region to move to "
            f"(plan {plan.name}: {valid})",
        )
    return None


def parse_outage_start(value: str, now: datetime | None = None) -> str:
    """An ISO 8601 instant with a timezone, not in the future, normalised to ``...Z``."""
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not an ISO 8601 time such as 2025-01-31T09:15:00Z") from exc
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no timezone; add one, e.g. {value}Z for UTC")
    moment = parsed.astimezone(UTC)
    if moment > (now or datetime.now(UTC)) + timedelta(minutes=1):
        raise ValueError(f"{value!r} is in the future")
    return moment.isoformat().replace("+00:00", "Z")


@dataclass
class FailoverView(WorkflowView[FailoverStatus, FailoverResult]):
    """Everything the starter can learn about one failover workflow."""

    @property
    def settled(self) -> bool:
        """Whether a watcher can stop: closed, or past the cut-over."""
        return self.closed or (self.status is not None and self.status.phase in SETTLED_PHASES)

    def exit_code(self) -> int:
        """0 succeeded or dry run, 3 SLO not met, 1 failed, aborted or closed without a result."""
        if self.result is not None:
            outcome = self.result.outcome
            if outcome in ("succeeded", "dry-run"):
                return 0
            return EXIT_SLO_NOT_MET if outcome == "slo-not-met" else EXIT_FAILED
        if self.closed:
            return EXIT_FAILED
        if self.status is not None and self.status.phase in SETTLED_PHASES:
            if self.status.dry_run or self.status.slo_green:
                return 0
            return EXIT_SLO_NOT_MET
        return 0


READER = WorkflowReader(
    FailoverStatus, FailoverResult, FailoverView, ("outcome", "steps"), FailoverCommandError, WorkflowNotFound
)
result_from_failure = READER.result_from_failure
failover_handle = READER.handle


async def failover_view(client: Client, workflow_id: str) -> FailoverView:
    """The failover's state: the "status" query while it runs; once closed, its result (or the
    result its failure carries), and the last status when a worker can still answer the query."""
    handle = failover_handle(client, workflow_id)
    description = await describe_workflow(
        handle,
        WORKFLOW_TYPE,
        FailoverCommandError,
        unknown=WorkflowNotFound,
        list_hint=" (list them with `drctl failover list --all`)",
    )
    return await READER.current(handle, description)


# ---- start --------------------------------------------------------------------------------------


async def running_exclusive(client: Client, plan: str) -> list[tuple[str, str]]:
    """``(workflow type, id)`` of failovers and failbacks of ``plan`` that are running now."""
    types = ", ".join(quoted(t) for t in EXCLUSIVE_TYPES)
    query = f"WorkflowType IN ({types}) AND DrPlan = {quoted(plan)} AND ExecutionStatus = 'Running'"
    try:
        return [(wf.workflow_type, wf.id) async for wf in client.list_workflows(query, limit=10)]
    except RPCError as exc:
        raise FailoverCommandError(rpc_message(exc, "cannot list running failovers")) from exc


def start_details(inp: FailoverInput) -> str:
    """The markdown the Temporal UI shows as the workflow's static details."""
    lines = [
        f"**Reason:** {inp.reason}",
        f"**Requested by:** {inp.requested_by or 'unknown'}",
        f"**Plan:** {inp.plan} (digest `{inp.plan_digest[:12]}`)",
        f"**Regions:** {inp.from_region} → {inp.to_region}",
        f"**Dry run:** {'yes' if inp.dry_run else 'no'} · **Force:** {'yes' if inp.force else 'no'}",
    ]
    if inp.outage_started_at:
        lines.append(f"**Outage started:** {inp.outage_started_at}")
    return "\n\n".join(lines)


async def start_failover(
    client: Client,
    settings: TemporalSettings,
    plan: DrPlan,
    *,
    from_region: str,
    to_region: str,
    reason: str,
    requested_by: str | None = None,
    dry_run: bool = False,
    force: bool = False,
    outage_started_at: str | None = None,
    extended_outage_minutes: int | None = None,
    slo_timeout_seconds: int | None = None,
    workflow_id: str | None = None,
) -> WorkflowHandle[Any, FailoverResult]:
    """Start FailoverWorkflow for ``plan``; refuses while a failover or failback of it runs."""
    problem = region_problem(plan, from_region, to_region)
    if problem is not None:
        raise ValueError(problem[1])
    running = await running_exclusive(client, plan.name)
    if running:
        raise FailoverAlreadyRunning(plan.name, running)
    inp = FailoverInput(
        plan=plan.name,
        from_region=from_region,
        to_region=to_region,
        reason=reason,
        requested_by=requested_by or current_user(),
        plan_digest=plan.digest,
        dry_run=dry_run,
        force=force,
        outage_started_at=outage_started_at,
        extended_outage_minutes=extended_outage_minutes,
        slo_timeout_seconds=slo_timeout_seconds,
    )
    wf_id = workflow_id or workflow_id_for(plan.name)
    return await start_workflow_once(
        client,
        WORKFLOW_TYPE,
        inp,
        workflow_id=wf_id,
        task_queue=settings.task_queue,
        result_type=FailoverResult,
        search_attributes=[SearchAttributePair(DR_PLAN, plan.name)],
        summary=f"Failover {plan.name}: {from_region} → {to_region}" + (" (dry run)" if dry_run else ""),
        details=start_details(inp),
        error=FailoverCommandError,
        already_started=FailoverAlreadyRunning(plan.name, [(WORKFLOW_TYPE, wf_id)]),
    )


# ---- watch --------------------------------------------------------------------------------------


async def watch_failover(
    handle: WorkflowHandle[Any, FailoverResult],
    on_update: Callable[[FailoverView], None],
    *,
    interval: float = POLL_SECONDS,
) -> FailoverView:
    """Poll the "status" query until the failover is past its cut-over (phase watching or
    completed) or closes; ``on_update`` sees every poll. Returns the final view."""
    return await READER.watch(handle, on_update, until=lambda s: s.phase == "watching", interval=interval)


# ---- abort, recovered, list ---------------------------------------------------------------------


async def _described(client: Client, workflow_id: str) -> WorkflowHandle[Any, FailoverResult]:
    handle = failover_handle(client, workflow_id)
    description = await describe_workflow(
        handle,
        WORKFLOW_TYPE,
        FailoverCommandError,
        unknown=WorkflowNotFound,
        list_hint=" (list them with `drctl failover list`)",
    )
    if description.status != WorkflowExecutionStatus.RUNNING:
        raise FailoverCommandError(
            f"{workflow_id} is no longer running ({status_name(description.status)}); "
            f"see `drctl failover status {workflow_id}`"
        )
    return handle


async def abort_failover(client: Client, workflow_id: str, reason: str, by: str | None = None) -> AbortAccepted:
    """Ask a running failover to stop after its current steps; the workflow's validator may refuse."""
    handle = await _described(client, workflow_id)
    try:
        accepted: AbortAccepted = await handle.execute_update(
            "abort",
            AbortRequest(reason=reason, by=by or current_user()),
            result_type=AbortAccepted,
            rpc_timeout=UPDATE_TIMEOUT,
        )
    except WorkflowUpdateFailedError as exc:
        raise FailoverCommandError(f"abort refused: {failure_message(exc.cause)}") from exc
    except RPCTimeoutOrCancelledError as exc:
        raise FailoverCommandError(
            f"no worker accepted the abort within {UPDATE_TIMEOUT.seconds}s: is dr-worker running? (`drctl dev status`)"
        ) from exc
    except RPCError as exc:
        raise FailoverCommandError(rpc_message(exc, f"cannot abort {workflow_id}")) from exc
    return accepted


async def signal_recovered(client: Client, workflow_id: str, note: str = "", by: str | None = None) -> None:
    """Tell a running failover that its failed region is back (no extended-outage re-pinning)."""
    handle = await _described(client, workflow_id)
    try:
        await handle.signal("primary-recovered", PrimaryRecovered(by=by or current_user(), note=note))
    except RPCError as exc:
        raise FailoverCommandError(rpc_message(exc, f"cannot signal {workflow_id}")) from exc


@dataclass(frozen=True)
class FailoverListing(WorkflowListing):
    """One failover as ``drctl failover list`` shows it."""


async def list_failovers(
    client: Client, plan: str | None = None, *, include_closed: bool = False, limit: int = 50
) -> list[FailoverListing]:
    """Failover workflows, newest first: running ones, or all with ``include_closed``."""
    query = f"WorkflowType = {quoted(WORKFLOW_TYPE)}"
    if plan:
        query += f" AND DrPlan = {quoted(plan)}"
    if not include_closed:
        query += " AND ExecutionStatus = 'Running'"
    try:
        return [FailoverListing.of(wf) async for wf in client.list_workflows(query, limit=limit)]
    except RPCError as exc:
        raise FailoverCommandError(rpc_message(exc, "cannot list failovers")) from exc


# ---- the commands -------------------------------------------------------------------------------


def _outcome_lines(view: FailoverView) -> list[str]:
    """The closing words: outcome, RTO, RPO, what to do next."""
    wid = view.workflow_id
    if view.result is not None:
        r = view.result
        lines = [f"outcome: {r.outcome}"]
        if not r.dry_run:
            lines.append(f"RTO {format_seconds(r.rto_seconds)}, RPO {rpo_text(r.rpo_seconds)}")
        if r.outcome == "slo-not-met":
            lines.append("the cut-over finished but the SLO did not turn green in time; check the estate's health")
        if view.failure and r.outcome == "failed" and not r.reason:
            lines.append(f"failure: {view.failure}")
        return lines
    if view.closed:
        return [f"{wid} ended {view.execution_status}: {view.failure or 'no result'}"]
    status = view.status
    if status is not None and status.phase == "watching":
        return [
            f"cut-over complete: RTO {format_seconds(status.rto_seconds)}, RPO {rpo_text(status.rpo_seconds)}, "
            f"SLO {'green' if status.slo_green else 'NOT green'}",
            f"the workflow keeps watching the outage of {status.from_region} (tenants are re-pinned past the "
            f"threshold); when the region is back: drctl failover recovered {wid}",
        ]
    return [f"{wid}: {view.failure}" if view.failure else f"{wid} is running"]


def _print_view(view: FailoverView) -> None:
    """The human rendering of a view: the final table, then the outcome lines."""
    out = console()
    if view.result is not None:
        out.print(result_view(view.result))
    elif view.status is not None:
        out.print(status_view(view.status))
    for line in _outcome_lines(view):
        out.print(line, highlight=False, markup=False)
    if view.result is None and view.status is not None and view.status.dry_run:
        out.print(planned_calls_view([c for s in view.status.steps.steps for c in s.calls]))


async def watch_and_report(handle: WorkflowHandle[Any, FailoverResult], as_json: bool) -> int:
    """``--wait``: a live table on a terminal, JSON lines otherwise; the exit code of the outcome."""
    return await watch_and_print(
        lambda on_update: watch_failover(handle, on_update),
        as_json,
        lambda view: status_view(view.status) if view.status is not None else view.failure or None,
        _print_view,
    )


def _resume_hint(workflow_id: str) -> str:
    return (
        f"stopped watching; the failover continues. Resume with: drctl failover status {workflow_id} --wait "
        f"(abort: drctl failover abort {workflow_id} --reason ...)"
    )


def _run_watching(body: Callable[[], Coroutine[Any, Any, int]], workflow_id: Callable[[], str | None]) -> NoReturn:
    """``run_command`` where Ctrl-C only stops watching: the workflow runs on in Temporal."""
    run_watching(body, workflow_id, _resume_hint)


@app.command()
def start(
    *,
    plan_path: Annotated[Path, typer.Option("--plan", help="Plan file (.toml) to fail over.")],
    from_region: Annotated[str, typer.Option("--from", help="The failed region (where traffic is now).")],
    to_region: Annotated[str, typer.Option("--to", help="The region to move to (the plan's other region).")],
    reason: Annotated[str, typer.Option("--reason", help="Why: shown in the UI, the audit trail and to tenants.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan every call, change nothing.")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Proceed past failed pre-flight checks (never the target region's).")
    ] = False,
    wait: Annotated[
        bool,
        typer.Option("--wait", help="Watch until the cut-over is done (live table; JSON lines without a terminal)."),
    ] = False,
    outage_started_at: Annotated[
        str | None,
        typer.Option("--outage-started-at", help="When the outage began (ISO 8601 with timezone); default: now."),
    ] = None,
    extended_outage_minutes: Annotated[
        int | None, typer.Option("--extended-outage-minutes", min=1, help="Override the plan's re-pin threshold.")
    ] = None,
    slo_timeout_seconds: Annotated[
        int | None, typer.Option("--slo-timeout-seconds", min=1, help="Override the plan's SLO validation timeout.")
    ] = None,
    requested_by: Annotated[str | None, typer.Option("--requested-by", help="Who asks (default: $USER).")] = None,
    task_queue: TaskQueueOption = None,
    address: AddressOption = None,
    namespace: NamespaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start a failover of a plan's estate from one region to the other."""
    plan = load_or_exit(plan_path)
    problem = region_problem(plan, from_region, to_region)
    if problem is not None:
        fail(problem[1], EXIT_INVALID)
    if not reason.strip():
        fail("--reason is empty: say why the failover is needed", EXIT_INVALID)
    outage = None
    if outage_started_at is not None:
        try:
            outage = parse_outage_start(outage_started_at)
        except ValueError as exc:
            fail(f"--outage-started-at: {exc}", EXIT_INVALID)
    settings = temporal_settings(address, namespace, task_queue)
    json_out = json_output(as_json, wait)
    started: list[str] = []

    async def body() -> int:
        client = await connect(settings)
        handle = await start_failover(
            client,
            settings,
            plan,
            from_region=from_region,
            to_region=to_region,
            reason=reason.strip(),
            requested_by=requested_by,
            dry_run=dry_run,
            force=force,
            outage_started_at=outage,
            extended_outage_minutes=extended_outage_minutes,
            slo_timeout_seconds=slo_timeout_seconds,
        )
        started.append(handle.id)
        url = ui_url(settings, handle.id)
        if json_out:
            json_line(
                "started",
                {"workflow_id": handle.id, "run_id": handle.first_execution_run_id, "url": url, "plan": plan.name},
            )
        else:
            kind = "dry-run failover" if dry_run else "failover"
            echo_started(f"started {kind} of plan {plan.name}: {from_region} → {to_region}", handle.id, url)
            if not wait:
                typer.echo(f"  watch:    drctl failover status {handle.id} --wait")
                typer.echo(f'  abort:    drctl failover abort {handle.id} --reason "..."')
        if not wait:
            return 0
        return await watch_and_report(handle, json_out)

    _run_watching(body, lambda: started[0] if started else None)


@app.command()
def status(
    workflow_id: Annotated[str, typer.Argument(help="The failover's workflow id.")],
    wait: Annotated[bool, typer.Option("--wait", help="Keep watching until the cut-over is done.")] = False,
    address: AddressOption = None,
    namespace: NamespaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a failover's step table, phase, RTO and RPO (also after it closed)."""
    settings = temporal_settings(address, namespace)
    json_out = json_output(as_json, wait)

    async def body() -> int:
        client = await connect(settings)
        view = await failover_view(client, workflow_id)
        if wait and not view.settled:
            return await watch_and_report(failover_handle(client, workflow_id), json_out)
        show_view(view, ui_url(settings, workflow_id), json_out, _print_view)
        return view.exit_code() if wait else 0

    _run_watching(body, lambda: workflow_id)


@app.command()
def abort(
    workflow_id: Annotated[str, typer.Argument(help="The failover's workflow id.")],
    reason: Annotated[str, typer.Option("--reason", help="Why the failover must stop.")],
    by: ByOption = None,
    address: AddressOption = None,
    namespace: NamespaceOption = None,
) -> None:
    """Stop a running failover after the steps now running; later steps are skipped."""
    if not reason.strip():
        fail("--reason is empty: say why the failover must stop", EXIT_INVALID)
    settings = temporal_settings(address, namespace)

    async def body() -> int:
        client = await connect(settings)
        accepted = await abort_failover(client, workflow_id, reason.strip(), by)
        typer.echo(f"{workflow_id}: {accepted.message}")
        typer.echo(f"follow it with: drctl failover status {workflow_id} --wait")
        return 0 if accepted.accepted else EXIT_FAILED

    run_command(body)


@app.command()
def recovered(
    workflow_id: Annotated[str, typer.Argument(help="The failover's workflow id.")],
    note: Annotated[str, typer.Option("--note", help="What was seen (kept in the workflow's history).")] = "",
    by: ByOption = None,
    address: AddressOption = None,
    namespace: NamespaceOption = None,
) -> None:
    """Tell a failover the failed region is back, so tenants are not re-pinned to the DR region."""
    settings = temporal_settings(address, namespace)

    async def body() -> int:
        client = await connect(settings)
        await signal_recovered(client, workflow_id, note, by)
        typer.echo(f"{workflow_id}: primary-recovered signal sent")
        return 0

    run_command(body)


@app.command("list")
def list_command(
    *,
    plan: Annotated[str | None, typer.Option("--plan", help="Only failovers of this plan (its name).")] = None,
    include_closed: Annotated[bool, typer.Option("--all", help="Include finished failovers.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many, newest first.")] = 50,
    address: AddressOption = None,
    namespace: NamespaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """List running failovers (or all of them with --all)."""
    settings = temporal_settings(address, namespace)

    async def body() -> int:
        client = await connect(settings)
        rows = await list_failovers(client, plan, include_closed=include_closed, limit=limit)
        scope = "" if include_closed else "running "
        title = f"{len(rows)} {scope}failover(s)" + (f" of plan {plan}" if plan else "")
        show_listing(rows, as_json=as_json, title=title)
        return 0

    run_command(body)
