"""``drctl drill``: keep a plan's monthly DR drill schedule, run a drill now, show drill reports.

A drill fails the plan's drill estate over (never the plan's own estate), checks the SLO, restores
sampled tenants into a sandbox, verifies integrity, fails back and reports RTO and RPO against the
plan's targets. Reports are signed and stored in the plan's backup container under drills/;
``drctl drill report`` reads them there (Blob Storage from the plan's backup settings or
DR_BLOB_ENDPOINT), or from the drill workflow's result when Blob Storage is not configured.

The async helpers take a connected client, so tests call them directly; the typer commands only add
argument checks, output and exit codes. Connection, error mapping and process exit are
shared (starters/temporal_cli.py).

Exit codes: 0 the drill passed (or was skipped in a blackout window), 1 it failed or the command
failed, 2 invalid input, 130 stopped watching (Ctrl-C).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from azure.core.exceptions import AzureError, ResourceNotFoundError
from rich.console import Group, RenderableType
from rich.live import Live
from rich.text import Text
from temporalio.client import (
    Client,
    ScheduleActionStartWorkflow,
    ScheduleSpec,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import CancelledError
from temporalio.service import RPCError

from activities.azure import AzureClients, AzureConnection
from activities.drill import DrillReportError, read_report
from domain.errors import PlanError
from domain.messages.backups import SEGMENTS_PREFIX
from domain.messages.drill import (
    REPORT_PREFIX,
    STATUS_FAILED,
    STATUS_PASSED,
    DrillInput,
    DrillReport,
    DrillStatus,
    drill_schedule_id,
    drill_workflow_id,
    report_blobs,
    report_markdown,
    seconds_text,
)
from domain.messages.progress import Step, StepTable
from domain.plan import DrPlan, load_plan
from starters.evidence_cmd import plan_trusted_keys
from starters.output import EXIT_FAILED, EXIT_INVALID, console, emit_json, fail
from starters.plan_cmd import load_or_exit
from starters.progress_view import as_dict, facts, header, steps_table
from starters.schedules import (
    ScheduleOutcome,
    apply_schedule,
    calendar_or_exit,
    parse_calendar,
    print_schedule,
    upsert_schedule,
)
from starters.seed_data import build_tenant, default_start, upload_segments
from starters.temporal_cli import (
    QUERY_ERRORS,
    AddressOption,
    CommandError,
    JsonOption,
    NamespaceOption,
    TaskQueueOption,
    connect,
    current_user,
    echo_started,
    failure_message,
    json_output,
    not_found,
    query_status,
    quoted,
    rpc_message,
    run_command,
    run_watching,
    start_workflow_once,
    temporal_settings,
    ui_url,
)
from workers.connection import TemporalSettings
from workflows.common import DR_PLAN

app = typer.Typer(
    help="Run DR drills of a plan's drill estate on a schedule or now, and show their reports.",
    no_args_is_help=True,
)

WORKFLOW_TYPE = "DrillWorkflow"
POLL_SECONDS = 1.0
STATUS_STYLES = {STATUS_PASSED: "bold green", STATUS_FAILED: "bold red"}


class DrillCommandError(CommandError):
    """A request to Temporal or Blob Storage about a drill could not be carried out; the message says why."""


# ---- ids, input and the schedule ------------------------------------------------------------------


def run_workflow_id(plan: str, now: datetime | None = None) -> str:
    """``drill-{plan}-{yyyymmddThhmmss}`` in UTC: a drill started by hand."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return drill_workflow_id(plan, f"{moment:%Y%m%dT%H%M%S}")


def scheduled_workflow_id(plan: str) -> str:
    """The id prefix of scheduled drills (Temporal appends the scheduled time)."""
    return drill_workflow_id(plan, "scheduled")


def drill_problem(plan: DrPlan) -> str | None:
    """Why ``plan`` cannot be drilled (checked again by the workflow, against what the worker holds)."""
    if plan.drill is None:
        return (
            f"plan {plan.name} has no [drill] table: add one naming its drill estate, e.g. "
            '[drill] estate = "local-drill" (see plans/local.toml)'
        )
    return None


def drill_schedule_action(plan: str, task_queue: str) -> ScheduleActionStartWorkflow:
    """What each firing of the schedule starts: a DrillWorkflow of ``plan`` (the plan's digest is not
    pinned: a monthly schedule must outlive plan edits, and each drill reads the plan the worker holds)."""
    return ScheduleActionStartWorkflow(
        WORKFLOW_TYPE,
        DrillInput(plan=plan, scheduled=True, requested_by="schedule", reason="monthly DR drill"),
        id=scheduled_workflow_id(plan),
        task_queue=task_queue,
        typed_search_attributes=TypedSearchAttributes([SearchAttributePair(DR_PLAN, plan)]),
        static_summary=f"Scheduled DR drill of plan {plan}",
    )


async def upsert_drill_schedule(
    client: Client, plan: DrPlan, task_queue: str, *, calendar: str | None = None, spec: ScheduleSpec | None = None
) -> ScheduleOutcome:
    """Create or update ``drill-{plan}`` (overlap skip) on ``calendar`` (default: the plan's [drill]
    calendar); ``spec`` overrides the calendar's spec. ScheduleSpecError when it is not understood."""
    problem = drill_problem(plan)
    if problem is not None:
        raise ValueError(problem)
    assert plan.drill is not None
    phrase = calendar or plan.drill.calendar
    return await upsert_schedule(
        client,
        drill_schedule_id(plan.name),
        drill_schedule_action(plan.name, task_queue),
        spec or parse_calendar(phrase),
        note=f"DR drills of plan {plan.name} on its drill estate {plan.drill.estate}: {phrase}",
    )


# ---- the drill estate in the local stack --------------------------------------------------------


def drill_estates(plans: Sequence[Path]) -> tuple[Path, ...]:
    """The drill estates ``plans`` name in [drill] and do not list themselves: ``<estate>.toml`` beside
    the plan naming it (an unreadable plan is left to the command that validates it)."""
    given = {p.resolve() for p in plans}
    found: list[Path] = []
    for path in plans:
        try:
            drill = load_plan(path).drill
        except PlanError:
            continue
        estate = path.parent / f"{drill.estate}.toml" if drill is not None else None
        if estate is not None and estate.exists() and estate.resolve() not in given | set(found):
            found.append(estate.resolve())
    return tuple(found)


async def seed_missing(plan: DrPlan, connection: AzureConnection, *, segments: int = 4) -> int:
    """Seed data for every tenant of ``plan`` whose live container has no segments yet; how many."""
    clients = AzureClients(plan, connection)
    try:
        missing = []
        for tenant in plan.tenants:
            live = clients.blob.get_container_client(plan.backup.live_container(tenant.id))
            if not await live.exists() or not [b async for b in live.list_blobs(name_starts_with=SEGMENTS_PREFIX)]:
                missing.append(tenant.id)
        start = default_start(segments, timedelta(hours=1))
        data = [s for t in missing for s in build_tenant(t, segments=segments, start=start)]
        await upload_segments(clients.blob, plan.backup, data)
        return len(missing)
    finally:
        await clients.close()


# ---- run ----------------------------------------------------------------------------------------


async def running_drills(client: Client, plan: str) -> list[str]:
    query = f"WorkflowType = {quoted(WORKFLOW_TYPE)} AND DrPlan = {quoted(plan)} AND ExecutionStatus = 'Running'"
    try:
        return [wf.id async for wf in client.list_workflows(query, limit=10)]
    except RPCError as exc:
        raise DrillCommandError(rpc_message(exc, "cannot list running drills")) from exc


async def start_drill(
    client: Client,
    settings: TemporalSettings,
    plan: DrPlan,
    *,
    requested_by: str | None = None,
    reason: str = "",
    workflow_id: str | None = None,
    **overrides: Any,
) -> WorkflowHandle[Any, DrillReport]:
    """Start a DrillWorkflow of ``plan`` now; refuses while another drill of it runs. ``overrides``
    are DrillInput fields (sample_tenants, failback_soak_seconds...)."""
    problem = drill_problem(plan)
    if problem is not None:
        raise ValueError(problem)
    running = await running_drills(client, plan.name)
    if running:
        raise DrillCommandError(f"a drill of plan {plan.name} is already running: {running[0]}")
    inp = DrillInput(
        plan=plan.name,
        requested_by=requested_by or current_user(),
        plan_digest=plan.digest,
        reason=reason,
        **overrides,
    )
    wf_id = workflow_id or run_workflow_id(plan.name)
    return await start_workflow_once(
        client,
        WORKFLOW_TYPE,
        inp,
        workflow_id=wf_id,
        task_queue=settings.task_queue,
        result_type=DrillReport,
        search_attributes=[SearchAttributePair(DR_PLAN, plan.name)],
        summary=f"DR drill of plan {plan.name}" + (f" on {plan.drill.estate}" if plan.drill else ""),
        error=DrillCommandError,
        already_started=f"a drill with id {wf_id} already exists",
    )


async def drill_status(handle: WorkflowHandle[Any, Any]) -> DrillStatus:
    return await query_status(handle, DrillStatus)


async def ended_report(handle: WorkflowHandle[Any, DrillReport], err: WorkflowFailureError) -> DrillReport:
    """The report of a drill that ended without returning one: a cancelled drill winds down and stores
    its report before it ends Cancelled, and its status query still carries it while a worker can
    answer. DrillCommandError naming how the drill ended when there is none."""
    if isinstance(err.cause, CancelledError):
        with contextlib.suppress(*QUERY_ERRORS):
            report = (await drill_status(handle)).report
            if report is not None:
                return report
        raise DrillCommandError(f"drill {handle.id} was cancelled before it had a report") from err
    raise DrillCommandError(f"drill {handle.id} failed: {failure_message(err.cause)}") from err


async def wait_for_report(
    handle: WorkflowHandle[Any, DrillReport],
    on_update: Callable[[DrillStatus], None],
    *,
    interval: float = POLL_SECONDS,
) -> DrillReport:
    """Poll the status query until the drill ends; its report (DrillCommandError if the workflow failed)."""
    closing = asyncio.create_task(handle.result())
    try:
        while not closing.done():
            # Until a worker has the drill the query fails; the next poll asks again.
            with contextlib.suppress(*QUERY_ERRORS):
                on_update(await drill_status(handle))
            await asyncio.wait({closing}, timeout=interval)
        try:
            return closing.result()
        except WorkflowFailureError as err:
            return await ended_report(handle, err)
    finally:
        closing.cancel()


# ---- reports ------------------------------------------------------------------------------------


@dataclass
class StoredReport:
    report: DrillReport
    location: str  # container/blob, or "workflow <id>"
    signature_problem: str | None  # None: signed by a trusted key; "not checked" for workflow results


def blob_configured(plan: DrPlan, connection: AzureConnection) -> bool:
    return bool(connection.blob_account_url or plan.backup.account_url)


async def read_stored_report(
    plan: DrPlan, connection: AzureConnection, workflow_id: str | None = None, env: Mapping[str, str] | None = None
) -> StoredReport | None:
    """The report of drill ``workflow_id`` (default: the newest stored) from the plan's backup
    container, its signature checked against ``plan_trusted_keys(plan, env)``; None when there is none."""
    clients = AzureClients(plan, connection)
    container = clients.blob.get_container_client(plan.backup.backup_container)
    try:
        if workflow_id is None:
            stored = [
                (blob.last_modified, blob.name)
                async for blob in container.list_blobs(name_starts_with=REPORT_PREFIX)
                if blob.name.endswith(".json")
            ]
            if not stored:
                return None
            name = max(stored)[1]
        else:
            name = report_blobs(workflow_id)[0]
        try:
            data = await (await container.get_blob_client(name).download_blob()).readall()
        except ResourceNotFoundError:
            return None
    except AzureError as exc:
        raise DrillCommandError(
            f"cannot read drill reports from container '{container.container_name}': {exc}"
        ) from exc
    finally:
        await clients.close()
    try:
        report, problem = read_report(data, plan_trusted_keys(plan, env))
    except DrillReportError as exc:
        raise DrillCommandError(f"{container.container_name}/{name}: {exc}") from exc
    return StoredReport(report, f"{container.container_name}/{name}", problem)


async def latest_drill_id(client: Client, plan: str) -> str | None:
    """The newest closed drill of ``plan`` in Temporal's visibility."""
    query = f"WorkflowType = {quoted(WORKFLOW_TYPE)} AND DrPlan = {quoted(plan)} AND ExecutionStatus != 'Running'"
    try:
        async for wf in client.list_workflows(query, limit=1):
            return wf.id
    except RPCError as exc:
        raise DrillCommandError(rpc_message(exc, "cannot list drills")) from exc
    return None


async def workflow_report(client: Client, workflow_id: str) -> StoredReport:
    """The report a drill workflow returned (or, cancelled, stored before it ended)."""
    handle: WorkflowHandle[Any, DrillReport] = client.get_workflow_handle(workflow_id, result_type=DrillReport)
    try:
        if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            phase = ""
            with contextlib.suppress(*QUERY_ERRORS):
                phase = f" (phase {(await drill_status(handle)).phase})"
            raise DrillCommandError(f"drill {workflow_id} is still running{phase}: its report comes when it ends")
        report = await handle.result()
    except WorkflowFailureError as err:
        report = await ended_report(handle, err)
    except RPCError as exc:
        if not_found(exc):
            raise DrillCommandError(f"no drill with id {workflow_id}") from exc
        raise DrillCommandError(rpc_message(exc, f"cannot read {workflow_id}")) from exc
    return StoredReport(report, f"workflow {workflow_id}", "not checked (read from the workflow, not the store)")


def report_view(stored: StoredReport) -> RenderableType:
    """A drill report for people: verdict, RTO and RPO against targets, phases, reasons, findings."""
    r = stored.report
    table = StepTable(
        [Step(p.key, p.title, p.status, p.started_at, p.finished_at, p.detail) for p in r.phases if p.status]
    )
    rto_met = r.rto_actual_seconds is not None and r.rto_actual_seconds <= r.rto_target_seconds
    rpo_met = r.rpo_actual_seconds is not None and r.rpo_actual_seconds <= r.rpo_target_seconds
    parts: list[RenderableType] = [
        header(f"DR drill of plan {r.plan}", badge=r.status.upper(), badge_style=STATUS_STYLES.get(r.status, "bold")),
        facts(
            [
                ("workflow", r.workflow_id),
                ("drill estate", r.estate or None),
                ("started", r.started_at),
                ("took", seconds_text(r.duration_seconds)),
                ("tenants", ", ".join(r.tenants) or None),
                ("RTO", _measure(r.rto_actual_seconds, r.rto_target_seconds, rto_met)),
                ("RPO", _measure(r.rpo_actual_seconds, r.rpo_target_seconds, rpo_met)),
                ("pass rate", f"{r.pass_rate:.0%} of recent drills" if r.pass_rate is not None else None),
                ("report", stored.location),
                (
                    "signature",
                    Text(
                        stored.signature_problem or "verified", style="yellow" if stored.signature_problem else "green"
                    ),
                ),
            ]
        ),
    ]
    if table.steps:
        parts.append(steps_table(table))
    for title, items, style in (("reasons", r.reasons, "red"), ("findings", r.findings, "")):
        if items:
            parts.append(Text(f"{title}:", style="bold"))
            parts.extend(Text(f"  - {item}", style=style) for item in items)
    return Group(*parts)


def _measure(actual: float | None, target: int, met: bool) -> Text:
    return Text(
        f"{seconds_text(actual)} (target {target} s)", style="green" if met else ("red" if actual is not None else "")
    )


def exit_code(report: DrillReport) -> int:
    return EXIT_FAILED if report.status == STATUS_FAILED else 0


def print_report(stored: StoredReport, as_json: bool, markdown: bool = False) -> None:
    """A drill report as JSON, Markdown or the terminal view."""
    if as_json:
        emit_json(
            {
                "report": as_dict(stored.report),
                "location": stored.location,
                "signature_problem": stored.signature_problem,
            }
        )
    elif markdown:
        typer.echo(report_markdown(stored.report), nl=False)
    else:
        console().print(report_view(stored))


# ---- the commands -------------------------------------------------------------------------------

PlanOption = Annotated[
    Path, typer.Option("--plan", help="The production plan file (.toml); it names its drill estate.")
]


@app.command()
def schedule(
    *,
    plan_path: PlanOption,
    calendar: Annotated[
        str | None,
        typer.Option(
            "--calendar",
            help="'first|second|third|fourth <weekday> HH:MM UTC' (default: the plan's [drill] calendar), "
            "'daily HH:MM UTC', or a 5-field cron string (UTC).",
        ),
    ] = None,
    delete: Annotated[bool, typer.Option("--delete", help="Delete the plan's drill schedule.")] = False,
    task_queue: TaskQueueOption = None,
    address: AddressOption = None,
    namespace: NamespaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create or update the plan's recurring DR drill (schedule drill-PLAN, overlap skip)."""
    plan = load_or_exit(plan_path)
    if delete and calendar is not None:
        fail("--delete cannot be combined with --calendar", EXIT_INVALID)
    problem = drill_problem(plan)
    if problem is not None and not delete:
        fail(problem, EXIT_INVALID)
    phrase = calendar or (plan.drill.calendar if plan.drill else "")
    spec = None if delete else calendar_or_exit(phrase)
    settings = temporal_settings(address, namespace, task_queue)
    schedule_id = drill_schedule_id(plan.name)

    async def body() -> int:
        client = await connect(settings)
        change = await apply_schedule(
            client,
            schedule_id,
            lambda _: upsert_drill_schedule(client, plan, settings.task_queue, calendar=phrase, spec=spec),
            delete=delete,
            missing=f"plan {plan.name} has no drill schedule ({schedule_id})",
        )
        drill = plan.drill
        print_schedule(
            change,
            as_json=as_json,
            calendar=phrase,
            task_queue=settings.task_queue,
            runs=scheduled_workflow_id(plan.name),
            summary=f"drill estate {drill.estate}" if drill else "",
            state=False,
            notes=[
                f"  blackout:  {b.start} to {b.end} ({b.reason}): drills are skipped"
                for b in (drill.blackouts if drill else ())
            ],
        )
        return 0

    run_command(body)


@app.command()
def run(
    *,
    plan_path: PlanOption,
    wait: Annotated[bool, typer.Option("--wait", help="Watch the drill until its report is ready.")] = False,
    reason: Annotated[str, typer.Option("--reason", help="Why this drill runs now (kept in the report).")] = "",
    sample_tenants: Annotated[
        int | None, typer.Option("--sample-tenants", min=1, help="Tenants to restore (default: the plan's).")
    ] = None,
    soak_seconds: Annotated[
        int | None,
        typer.Option("--failback-soak-seconds", min=1, help="Soak per failback step (default: the drill estate's)."),
    ] = None,
    requested_by: Annotated[str | None, typer.Option("--requested-by", help="Who asks (default: $USER).")] = None,
    task_queue: TaskQueueOption = None,
    address: AddressOption = None,
    namespace: NamespaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run a DR drill of the plan's drill estate now (an unscheduled drill; blackouts still apply)."""
    plan = load_or_exit(plan_path)
    problem = drill_problem(plan)
    if problem is not None:
        fail(problem, EXIT_INVALID)
    settings = temporal_settings(address, namespace, task_queue)
    started: list[str] = []

    async def body() -> int:
        client = await connect(settings)
        overrides: dict[str, Any] = {}
        if sample_tenants is not None:
            overrides["sample_tenants"] = sample_tenants
        if soak_seconds is not None:
            overrides["failback_soak_seconds"] = soak_seconds
        handle = await start_drill(client, settings, plan, requested_by=requested_by, reason=reason, **overrides)
        started.append(handle.id)
        url = ui_url(settings, handle.id)
        if as_json:
            typer.echo(json.dumps({"event": "started", "workflow_id": handle.id, "url": url, "plan": plan.name}))
        else:
            echo_started(f"started DR drill of plan {plan.name}", handle.id, url)
            if not wait:
                typer.echo(f"  report:   drctl drill report {handle.id} --plan {plan_path}")
        if not wait:
            return 0
        if json_output(as_json, wait):
            report = await wait_for_report(handle, lambda _: None)
        else:
            with Live(console=console(), refresh_per_second=4, transient=True) as live:
                report = await wait_for_report(
                    handle, lambda s: live.update(Group(header(f"DR drill: {s.phase}"), steps_table(s.steps)))
                )
        where = f"{plan.backup.backup_container}/{report.report_blob}" if report.report_blob else "not stored"
        print_report(StoredReport(report, where, "not checked here: `drctl drill report` verifies it"), as_json, False)
        return exit_code(report)

    run_watching(
        body,
        lambda: started[0] if started else None,
        lambda wid: f"stopped watching; the drill continues. Its report: drctl drill report {wid} --plan {plan_path}",
    )


@app.command()
def report(
    workflow_id: Annotated[str | None, typer.Argument(help="The drill's workflow id (default: the newest).")] = None,
    *,
    plan_path: Annotated[
        Path | None, typer.Option("--plan", help="The plan file: read its stored reports from Blob Storage.")
    ] = None,
    markdown: Annotated[bool, typer.Option("--markdown", help="Print the report as Markdown.")] = False,
    address: AddressOption = None,
    namespace: NamespaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a drill's report: from the plan's backup container when Blob Storage is configured,
    otherwise from the drill workflow's result."""
    if as_json and markdown:
        fail("choose one of --json and --markdown", EXIT_INVALID)
    plan = load_or_exit(plan_path) if plan_path is not None else None
    if plan is None and workflow_id is None:
        fail("give a drill's workflow id, or --plan to show the plan's newest drill report", EXIT_INVALID)
    connection = AzureConnection.from_env()

    async def body() -> int:
        found: StoredReport | None = None
        if plan is not None and blob_configured(plan, connection):
            found = await read_stored_report(plan, connection, workflow_id)
        if found is None:
            client = await connect(temporal_settings(address, namespace))
            wid = workflow_id
            if wid is None:
                assert plan is not None
                wid = await latest_drill_id(client, plan.name)
                if wid is None:
                    raise DrillCommandError(f"no drill of plan {plan.name} has finished yet")
            found = await workflow_report(client, wid)
        print_report(found, as_json, markdown)
        return exit_code(found.report)

    run_command(body)
