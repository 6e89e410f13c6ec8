"""``drctl backup``: back up a plan's tenants now, keep the hourly backup schedule, list recovery points.

The async helpers (``start_backup``, ``watch_backup``, ``backup_view``, ``upsert_backup_schedule``,
``list_recovery_points``) take a connected client or a catalog, so tests and the dev stack call them
directly; the typer commands only add argument checks, output and exit codes. Connection, error
mapping and process exit are shared (starters/temporal_cli.py).

Exit codes: 0 done (every tenant with data backed up), 1 a tenant's backup
or the command failed, 2 invalid input, 130 stopped watching (Ctrl-C).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Group, RenderableType
from rich.table import Table
from temporalio.client import Client, ScheduleActionStartWorkflow, ScheduleSpec, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from activities.catalog import BackupCatalog
from domain.errors import CatalogError
from domain.messages.backups import DATA_CLASSES, STATUSES, RecoveryPoint
from domain.messages.restore import (
    BackupInput,
    BackupResult,
    BackupStatus,
    backup_schedule_id,
    backup_workflow_id,
)
from domain.plan import DrPlan
from starters.output import EXIT_FAILED, EXIT_INVALID, console, emit_json, fail, show, table
from starters.plan_cmd import load_or_exit
from starters.progress_view import facts, header, steps_table
from starters.schedules import (
    ScheduleOutcome,
    apply_schedule,
    calendar_or_exit,
    parse_calendar,
    print_schedule,
    upsert_schedule,
)
from starters.temporal_cli import (
    POLL_SECONDS,
    AddressOption,
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
    json_line,
    json_output,
    run_command,
    run_watching,
    show_view,
    start_workflow_once,
    temporal_settings,
    ui_url,
    watch_and_print,
)
from workers.connection import TemporalSettings
from workflows.backup import human_bytes
from workflows.common import DR_PLAN, TENANT_ID

app = typer.Typer(
    help="Back up tenants' data into signed recovery points, schedule hourly backups, list recovery points.",
    no_args_is_help=True,
)

WORKFLOW_TYPE = "BackupWorkflow"
DEFAULT_CALENDAR = "hourly"
MERKLE_PREFIX = 12


class BackupCommandError(CommandError):
    """A request to Temporal about a backup could not be carried out; the message says why."""


# ---- input --------------------------------------------------------------------------------------


def run_workflow_id(plan: str, tenants: Sequence[str], now: datetime | None = None) -> str:
    """``backup-{plan}-{tenant|all|N-tenants}-{yyyymmddThhmmss}`` in UTC."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    scope = tenants[0] if len(tenants) == 1 else (f"{len(tenants)}-tenants" if tenants else None)
    return backup_workflow_id(plan, scope, f"{moment:%Y%m%dT%H%M%S}")


def scheduled_workflow_id(plan: str) -> str:
    """The id prefix of scheduled runs (Temporal appends the scheduled time)."""
    return f"backup-{plan}-scheduled"


def request_problems(plan: DrPlan, tenants: Sequence[str], data_class: str) -> list[str]:
    """What is wrong with a backup request, each problem naming its option."""
    known = {t.id for t in plan.tenants}
    problems = [f"--tenant {t!r} is not a tenant of plan {plan.name}" for t in dict.fromkeys(tenants) if t not in known]
    if data_class not in DATA_CLASSES:
        problems.append(f"--data-class {data_class!r} is not one of {', '.join(DATA_CLASSES)}")
    return problems


# ---- start and watch ----------------------------------------------------------------------------


def start_details(inp: BackupInput, requested_by: str) -> str:
    """The markdown the Temporal UI shows as the workflow's static details."""
    scope = ", ".join(inp.tenant_ids) if inp.tenant_ids else "every tenant of the plan"
    return "\n\n".join(
        [
            f"**Plan:** {inp.plan}",
            f"**Tenants:** {scope}",
            f"**Data class:** {inp.data_class}",
            f"**Requested by:** {requested_by}",
        ]
    )


async def start_backup(
    client: Client,
    settings: TemporalSettings,
    plan: DrPlan,
    *,
    tenants: Sequence[str] = (),
    data_class: str = "hot",
    requested_by: str | None = None,
    workflow_id: str | None = None,
) -> WorkflowHandle[Any, BackupResult]:
    """Start BackupWorkflow for some tenants of ``plan`` (none given: all of them)."""
    problems = request_problems(plan, tenants, data_class)
    if problems:
        raise ValueError("; ".join(problems))
    chosen = tuple(dict.fromkeys(tenants))
    inp = BackupInput(plan=plan.name, tenant_ids=chosen, data_class=data_class)
    wf_id = workflow_id or run_workflow_id(plan.name, chosen)
    pairs = [SearchAttributePair(DR_PLAN, plan.name)]
    if len(chosen) == 1:
        pairs.append(SearchAttributePair(TENANT_ID, chosen[0]))
    count = f"tenant {chosen[0]}" if len(chosen) == 1 else f"{len(chosen) or 'all'} tenants"
    return await start_workflow_once(
        client,
        WORKFLOW_TYPE,
        inp,
        workflow_id=wf_id,
        task_queue=settings.task_queue,
        result_type=BackupResult,
        search_attributes=pairs,
        summary=f"Backup of plan {plan.name}: {count}",
        details=start_details(inp, requested_by or current_user()),
        error=BackupCommandError,
        already_started=f"a backup with id {wf_id} is already running",
    )


@dataclass
class BackupView(WorkflowView[BackupStatus, BackupResult]):
    """Everything the starter can learn about one backup workflow (its runs share the workflow id;
    the run id is the newest run's)."""

    def exit_code(self) -> int:
        """0 when it completed with no tenant failed, 1 otherwise (0 while it runs)."""
        if not self.closed:
            return 0
        return 0 if self.execution_status == "Completed" and self.result is not None else EXIT_FAILED


# A backup continues as new every ``tenants_per_run`` tenants: its handle follows the newest run.
READER = WorkflowReader(BackupStatus, BackupResult, BackupView, ("recovery_points",), BackupCommandError)
result_from_failure = READER.result_from_failure
backup_handle = READER.handle


async def backup_view(client: Client, workflow_id: str) -> BackupView:
    """The backup's state: the "status" query while it runs, its result (or failure) once closed."""
    handle = backup_handle(client, workflow_id)
    return await READER.current(handle, await describe_workflow(handle, WORKFLOW_TYPE, BackupCommandError))


async def watch_backup(
    client: Client,
    workflow_id: str,
    on_update: Callable[[BackupView], None],
    *,
    interval: float = POLL_SECONDS,
) -> BackupView:
    """Poll the "status" query until the backup (across its continue-as-new runs) closes; ``on_update``
    sees every poll. Returns the final view, with the last status seen when it has no result."""
    return await READER.watch(backup_handle(client, workflow_id), on_update, interval=interval)


# ---- views --------------------------------------------------------------------------------------


def status_view(status: BackupStatus) -> RenderableType:
    """A running backup: phase, totals across runs, and this run's step table."""
    finished = status.points_made + status.failures + status.skips
    return Group(
        header(
            f"Backup of plan {status.plan}",
            badge=f"phase: {status.phase}",
            badge_style="bold red" if status.phase == "failed" else "bold",
        ),
        facts(
            [
                ("workflow", status.workflow_id),
                ("tenants", f"{finished} of {status.total or '?'} done (run {status.run})"),
                ("recovery points", status.points_made),
                ("no data", status.skips or None),
                ("failed", status.failures or None),
                ("running", ", ".join(status.running) or None),
                ("copied", human_bytes(status.bytes_copied)),
            ]
        ),
        steps_table(status.steps),
    )


def result_view(result: BackupResult) -> RenderableType:
    """A finished backup: counts, bytes, and each failed tenant with its reason."""
    parts: list[RenderableType] = [
        header(
            f"Backup of plan {result.plan}",
            badge="failed" if result.failures else "done",
            badge_style="bold red" if result.failures else "bold green",
        ),
        facts(
            [
                ("tenants", result.tenants),
                ("recovery points", result.points_made),
                ("no data", result.skips),
                ("failed", result.failures),
                ("copied", human_bytes(result.bytes_copied)),
                ("runs", result.runs),
                ("started", result.started_at),
                ("finished", result.finished_at),
            ]
        ),
    ]
    if result.failed:
        rows = [entry.split(": ", 1) if ": " in entry else [entry, ""] for entry in result.failed]
        unnamed = result.failures - len(result.failed)
        title = "failed tenants" + (f" (the first {len(result.failed)}; {unnamed} more)" if unnamed > 0 else "")
        parts.append(table(title, ["tenant", "reason"], rows))
    return Group(*parts)


def _print_view(view: BackupView) -> None:
    out = console()
    if view.result is not None:
        out.print(result_view(view.result))
    elif view.status is not None:
        out.print(status_view(view.status))
    if view.closed and view.execution_status != "Completed":
        out.print(f"{view.workflow_id} ended {view.execution_status}: {view.failure}", highlight=False, markup=False)
    elif not view.closed:
        out.print(
            f"{view.workflow_id}: {view.failure}" if view.failure else f"{view.workflow_id} is running",
            highlight=False,
            markup=False,
        )


async def watch_and_report(client: Client, workflow_id: str, as_json: bool) -> int:
    """``--wait``: a live table on a terminal, JSON lines otherwise; the exit code of the outcome."""
    return await watch_and_print(
        lambda on_update: watch_backup(client, workflow_id, on_update),
        as_json,
        lambda view: status_view(view.status) if view.status is not None else view.failure or None,
        _print_view,
    )


def _run_watching(body: Callable[[], Coroutine[Any, Any, int]], workflow_id: Callable[[], str | None]) -> NoReturn:
    """``run_command`` where Ctrl-C only stops watching: the backup runs on in Temporal."""
    run_watching(
        body,
        workflow_id,
        lambda wid: f"stopped watching; the backup continues. Resume with: drctl backup status {wid} --wait",
    )


# ---- the schedule -------------------------------------------------------------------------------


def backup_schedule_action(plan: str, task_queue: str, *, data_class: str = "hot") -> ScheduleActionStartWorkflow:
    """What each firing of the schedule does: BackupWorkflow for every tenant of ``plan``."""
    return ScheduleActionStartWorkflow(
        WORKFLOW_TYPE,
        BackupInput(plan=plan, data_class=data_class),
        id=scheduled_workflow_id(plan),
        task_queue=task_queue,
        typed_search_attributes=TypedSearchAttributes([SearchAttributePair(DR_PLAN, plan)]),
        static_summary=f"Scheduled backup of plan {plan}: all tenants",
    )


async def upsert_backup_schedule(
    client: Client,
    plan: str,
    task_queue: str,
    *,
    calendar: str = DEFAULT_CALENDAR,
    spec: ScheduleSpec | None = None,
    data_class: str = "hot",
    paused: bool | None = None,
) -> ScheduleOutcome:
    """Create or update the plan's backup schedule (``backup-{plan}``, overlap skip); ``spec``
    overrides the one ``calendar`` gives (ScheduleSpecError when it is not understood); ``paused``
    pauses or unpauses it (None: as it was)."""
    return await upsert_schedule(
        client,
        backup_schedule_id(plan),
        backup_schedule_action(plan, task_queue, data_class=data_class),
        spec or parse_calendar(calendar),
        note=f"backups of every tenant of plan {plan}: {calendar}",
        paused=paused,
    )


# ---- the catalog --------------------------------------------------------------------------------


async def catalog_for(plan: DrPlan, catalog_url: str | None) -> BackupCatalog:
    """The catalog drctl reads: ``--catalog-url`` / ``DR_CATALOG_URL``, else the plan's; it must exist."""
    url = catalog_url or plan.backup.catalog_url
    try:
        catalog = BackupCatalog(url)
    except CatalogError as exc:
        raise ValueError(str(exc)) from exc
    if not await catalog.exists():
        raise FileNotFoundError(
            f"no backup catalog at {catalog.url}; point DR_CATALOG_URL at the worker's catalog "
            "(`drctl dev env` prints it)"
        )
    return catalog


async def list_recovery_points(
    catalog: BackupCatalog, *, tenant: str | None = None, status: str | None = None, limit: int = 50
) -> list[RecoveryPoint]:
    """Recovery points, newest first: one tenant's or every tenant's."""
    if tenant:
        return await catalog.list_for_tenant(tenant, status=status, limit=limit)
    return await catalog.list_recent(status=status, limit=limit)


def recovery_points_table(points: Sequence[RecoveryPoint], title: str) -> Table:
    """One row per recovery point: what a restore would use and how it was signed."""
    return table(
        title,
        ["id", "tenant", "status", "created (UTC)", "packages", "bytes", "Merkle root", "key id"],
        [
            (
                p.recovery_point_id,
                p.tenant_id,
                p.status,
                p.created_at[:19].replace("T", " "),
                len(p.packages),
                human_bytes(sum(pkg.bytes for pkg in p.packages)),
                (p.merkle_root or "")[:MERKLE_PREFIX],
                p.key_id or "",
            )
            for p in points
        ],
    )


# ---- the commands -------------------------------------------------------------------------------

PlanOption = Annotated[Path, typer.Option("--plan", help="Plan file (.toml).")]
DataClassOption = Annotated[str, typer.Option("--data-class", help=f"One of {', '.join(DATA_CLASSES)}.")]


@app.command()
def run(
    *,
    plan_path: PlanOption,
    tenants: Annotated[
        list[str] | None, typer.Option("--tenant", help="A tenant to back up (repeat; default: every tenant).")
    ] = None,
    data_class: DataClassOption = "hot",
    wait: Annotated[
        bool, typer.Option("--wait", help="Watch until it ends (live table; JSON lines without a terminal).")
    ] = False,
    task_queue: TaskQueueOption = None,
    address: AddressOption = None,
    namespace: NamespaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Back up tenants of a plan now: one signed recovery point per tenant that has data."""
    plan = load_or_exit(plan_path)
    chosen = list(dict.fromkeys(tenants or []))
    problems = request_problems(plan, chosen, data_class)
    if problems:
        fail("; ".join(problems), EXIT_INVALID)
    settings = temporal_settings(address, namespace, task_queue)
    json_out = json_output(as_json, wait)
    started: list[str] = []

    async def body() -> int:
        client = await connect(settings)
        handle = await start_backup(client, settings, plan, tenants=chosen, data_class=data_class)
        started.append(handle.id)
        url = ui_url(settings, handle.id)
        if json_out:
            json_line("started", {"workflow_id": handle.id, "url": url, "plan": plan.name, "tenants": chosen})
        else:
            scope = ", ".join(chosen) if chosen else f"all {len(plan.tenants)} tenants"
            echo_started(f"started backup of plan {plan.name}: {scope}", handle.id, url)
            if not wait:
                typer.echo(f"  watch:    drctl backup status {handle.id} --wait")
        if not wait:
            return 0
        return await watch_and_report(client, handle.id, json_out)

    _run_watching(body, lambda: started[0] if started else None)


@app.command()
def status(
    workflow_id: Annotated[str, typer.Argument(help="The backup's workflow id.")],
    wait: Annotated[bool, typer.Option("--wait", help="Keep watching until it ends.")] = False,
    address: AddressOption = None,
    namespace: NamespaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a backup's step table and totals, or its result once it ended."""
    settings = temporal_settings(address, namespace)
    json_out = json_output(as_json, wait)

    async def body() -> int:
        client = await connect(settings)
        view = await backup_view(client, workflow_id)
        if wait and not view.closed:
            return await watch_and_report(client, workflow_id, json_out)
        show_view(view, ui_url(settings, workflow_id), json_out, _print_view)
        return view.exit_code()

    _run_watching(body, lambda: workflow_id)


@app.command()
def schedule(
    *,
    plan_path: PlanOption,
    calendar: Annotated[
        str | None,
        typer.Option(
            "--calendar",
            help="'hourly' (default), 'every N(m|h|d)', 'daily HH:MM UTC', or a 5-field cron string (UTC).",
        ),
    ] = None,
    delete: Annotated[bool, typer.Option("--delete", help="Delete the plan's backup schedule.")] = False,
    paused: Annotated[
        bool | None, typer.Option("--pause/--unpause", help="Pause the schedule, or let it run again.")
    ] = None,
    data_class: DataClassOption = "hot",
    task_queue: TaskQueueOption = None,
    address: AddressOption = None,
    namespace: NamespaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create or update the plan's recurring backup of every tenant (hourly by default, overlap skip)."""
    plan = load_or_exit(plan_path)
    if delete and (calendar is not None or paused is not None):
        fail("--delete cannot be combined with --calendar, --pause or --unpause", EXIT_INVALID)
    if data_class not in DATA_CLASSES:
        fail(f"--data-class {data_class!r} is not one of {', '.join(DATA_CLASSES)}", EXIT_INVALID)
    phrase = calendar if calendar is not None else DEFAULT_CALENDAR
    spec = calendar_or_exit(phrase)
    settings = temporal_settings(address, namespace, task_queue)
    schedule_id = backup_schedule_id(plan.name)

    async def body() -> int:
        client = await connect(settings)
        change = await apply_schedule(
            client,
            schedule_id,
            None
            if calendar is None and paused is not None
            else lambda pause: upsert_backup_schedule(
                client, plan.name, settings.task_queue, calendar=phrase, spec=spec, data_class=data_class, paused=pause
            ),
            delete=delete,
            paused=paused,
            missing=f"plan {plan.name} has no backup schedule ({schedule_id}); create it with "
            "`drctl backup schedule --plan <plan file>`",
        )
        print_schedule(
            change,
            as_json=as_json,
            calendar=phrase,
            task_queue=settings.task_queue,
            runs=scheduled_workflow_id(plan.name),
            summary=f"every tenant of plan {plan.name}",
        )
        return 0

    run_command(body)


@app.command("list")
def list_command(
    *,
    plan_path: PlanOption,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant's recovery points.")] = None,
    status_filter: Annotated[
        str | None, typer.Option("--status", help=f"Only recovery points in this state: {', '.join(STATUSES)}.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many, newest first.")] = 50,
    catalog_url: Annotated[
        str | None,
        typer.Option("--catalog-url", envvar="DR_CATALOG_URL", help="The backup catalog (default: the plan's)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List recovery points from the backup catalog, newest first."""
    plan = load_or_exit(plan_path)
    if status_filter is not None and status_filter not in STATUSES:
        fail(f"--status {status_filter!r} is not one of {', '.join(STATUSES)}", EXIT_INVALID)

    async def read() -> list[RecoveryPoint]:
        catalog = await catalog_for(plan, catalog_url)
        return await list_recovery_points(catalog, tenant=tenant, status=status_filter, limit=limit)

    try:
        points = asyncio.run(read())
    except ValueError as exc:
        fail(f"--catalog-url: {exc}", EXIT_INVALID)
    except (FileNotFoundError, CatalogError) as exc:
        fail(str(exc))
    if as_json:
        emit_json([dataclasses.asdict(p) for p in points])
        return
    scope = f"tenant {tenant}" if tenant else f"plan {plan.name}"
    show(recovery_points_table(points, f"{len(points)} recovery point(s) of {scope}"))
    if tenant and not points and tenant not in {t.id for t in plan.tenants}:
        typer.echo(f"note: {tenant!r} is not a tenant of plan {plan.name}", err=True)
