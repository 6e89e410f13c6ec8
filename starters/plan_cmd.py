"""``drctl plan``: validate a plan file, check that its estate is ready to fail over, and schedule
that check every 30 minutes.

``drctl plan check PLAN`` validates the file, then runs the readiness checks (the ones failover's
pre-flight uses, plus each tenant's newest recovery point against its RPO target) and prints an
OK/WARN/FAIL table:
  - by default through a ReadinessWorkflow on the workers, so the run uses the workers'
    credentials and network, and is recorded like the scheduled ones (DrReadiness search
    attribute, metrics);
  - with ``--local`` in this process, with this machine's Azure credentials and no Temporal;
  - with ``--offline`` only the file is validated and summarised (no Azure, no Temporal).
``drctl plan schedule-readiness PLAN`` creates (or updates) the schedule ``readiness-{plan}`` that
runs ReadinessWorkflow every 30 minutes: starting runs is a separate, idempotent act from
looking at one, so it is a command of its own rather than a flag of ``check``.

Exit codes of ``check``: 0 every check OK or WARN, 3 a check FAILed, 2 invalid input (the plan,
the options), 1 the checks could not run (Temporal unreachable, no worker, the run failed).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections import Counter
from collections.abc import Coroutine, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.table import Table
from rich.text import Text
from temporalio.client import Client, ScheduleActionStartWorkflow, WorkflowFailureError
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.service import RPCError

from activities.azure import AzureConnection, Estates
from activities.catalog import BackupCatalog
from activities.readiness import ReadinessActivities
from domain.errors import CatalogError, PlanError
from domain.messages.readiness import (
    FAIL,
    OK,
    WARN,
    ReadinessInput,
    ReadinessResult,
    ReadinessWorkflowInput,
)
from domain.plan import DrPlan, load_plan
from starters.output import EXIT_INVALID, console, emit_json, fail, fail_plan, show, table
from starters.schedules import (
    ScheduleOutcome,
    ScheduleSpecError,
    apply_schedule,
    parse_calendar,
    upsert_schedule,
)
from starters.temporal_cli import (
    AddressOption,
    CommandError,
    NamespaceOption,
    TaskQueueOption,
    connect,
    current_user,
    failure_message,
    rpc_message,
    temporal_settings,
    ui_url,
)
from workers.connection import TemporalSettings, TemporalUnreachable
from workflows.common import DR_PLAN
from workflows.readiness import schedule_id

app = typer.Typer(help="Validate DR plans and check that their estates are ready.", no_args_is_help=True)

WORKFLOW_TYPE = "ReadinessWorkflow"
EXIT_NOT_READY = 3
DEFAULT_EVERY = "every 30m"
# A readiness run takes about a minute at most (each check has its own time limit); the rest is
# room for a busy worker. The workflow is given the same limit, so a run no worker takes up ends.
RUN_TIMEOUT = timedelta(minutes=10)
STATUS_STYLES = {OK: "green", WARN: "bold yellow", FAIL: "bold red"}


class ReadinessCommandError(CommandError):
    """The readiness checks could not be run through Temporal; the message says why."""


def load_or_exit(path: Path) -> DrPlan:
    """The plan at ``path``, or every problem in it printed and exit code 2."""
    try:
        return load_plan(path)
    except PlanError as error:
        fail_plan(error)


# ---- running the checks ----------------------------------------------------------------------------


def readiness_workflow_id(plan: str, now: datetime | None = None) -> str:
    """``readiness-{plan}-check-{yyyymmddThhmmss}`` (UTC): an on-demand run, beside the scheduled
    runs ``readiness-{plan}-<scheduled time>``."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{schedule_id(plan)}-check-{moment:%Y%m%dT%H%M%S}"


def local_catalog(plan: DrPlan, env: Mapping[str, str] | None = None) -> BackupCatalog:
    """The backup catalog a ``--local`` check reads: ``DR_CATALOG_URL``, else the plan's backup.catalog_url."""
    e = os.environ if env is None else env
    return BackupCatalog(e.get("DR_CATALOG_URL") or plan.backup.catalog_url)


async def check_locally(
    plan: DrPlan, connection: AzureConnection | None = None, catalog: BackupCatalog | None = None
) -> ReadinessResult:
    """Run readiness.check in this process (``--local``): this machine's credentials, no Temporal."""
    estates = Estates([plan], connection or AzureConnection.from_env())
    try:
        report = await ReadinessActivities(estates, catalog=catalog).check(ReadinessInput(plan.name))
    finally:
        await estates.close()
    return ReadinessResult.from_report(report, environment=plan.environment, edition=plan.edition)


async def check_through_temporal(
    client: Client,
    settings: TemporalSettings,
    plan: DrPlan,
    *,
    requested_by: str = "",
    workflow_id: str | None = None,
    run_timeout: timedelta = RUN_TIMEOUT,
) -> tuple[str, ReadinessResult]:
    """Start a ReadinessWorkflow for ``plan`` (the workers must hold this version of it) and wait
    for its table; returns the workflow id and the result."""
    wf_id = workflow_id or readiness_workflow_id(plan.name)
    inp = ReadinessWorkflowInput(plan.name, plan.digest, requested_by=requested_by or f"drctl ({current_user()})")
    try:
        handle = await client.start_workflow(
            WORKFLOW_TYPE,
            inp,
            id=wf_id,
            task_queue=settings.task_queue,
            result_type=ReadinessResult,
            execution_timeout=run_timeout,
            # Two checks of a plan in the same second are one run.
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=TypedSearchAttributes([SearchAttributePair(DR_PLAN, plan.name)]),
            static_summary=f"Readiness check of {plan.name} ({inp.requested_by})",
        )
    except RPCError as exc:
        raise ReadinessCommandError(rpc_message(exc, f"cannot start {wf_id}")) from exc
    try:
        async with asyncio.timeout(run_timeout.total_seconds()):
            result: ReadinessResult = await handle.result()
    except TimeoutError:
        raise ReadinessCommandError(
            f"{wf_id}: no result within {run_timeout.total_seconds():.0f} s; is dr-worker running on task queue "
            f"{settings.task_queue}? (`drctl dev status`), or run the checks from here with --local"
        ) from None
    except WorkflowFailureError as exc:
        raise ReadinessCommandError(f"{wf_id} failed: {failure_message(exc.cause)}") from exc
    return wf_id, result


# ---- the schedule --------------------------------------------------------------------------------


def readiness_action(plan: str, task_queue: str) -> ScheduleActionStartWorkflow:
    """What the schedule starts: a ReadinessWorkflow of ``plan`` (whichever plan version the workers hold)."""
    return ScheduleActionStartWorkflow(
        WORKFLOW_TYPE,
        ReadinessWorkflowInput(plan, requested_by="schedule"),
        id=schedule_id(plan),
        task_queue=task_queue,
        execution_timeout=RUN_TIMEOUT,
        typed_search_attributes=TypedSearchAttributes([SearchAttributePair(DR_PLAN, plan)]),
        static_summary=f"Scheduled readiness check of {plan}",
    )


async def schedule_readiness(
    client: Client, settings: TemporalSettings, plan: str, calendar: str = DEFAULT_EVERY
) -> ScheduleOutcome:
    """Create or update the schedule ``readiness-{plan}`` (default every 30 minutes; overlap skip)."""
    spec = parse_calendar(calendar)
    return await upsert_schedule(
        client,
        schedule_id(plan),
        readiness_action(plan, settings.task_queue),
        spec,
        note=f"readiness checks of plan {plan}: {calendar} (drctl plan schedule-readiness)",
    )


# ---- output -----------------------------------------------------------------------------------------


def readiness_view(result: ReadinessResult) -> Table:
    """The OK/WARN/FAIL table: one row per check, with what to do about each WARN and FAIL."""
    style = STATUS_STYLES.get(result.status, "bold")
    title = Text(f"Readiness of {result.plan}: ", style="bold") + Text(result.status, style=style)
    title.append(f"  ({result.from_region} → {result.to_region}, {result.checked_at})", style="dim")
    view = Table(title=title, title_justify="left", header_style="bold")
    for column in ("check", "status", "detail", "fix"):
        view.add_column(column, overflow="fold")
    for row in result.rows:
        view.add_row(
            Text(row.title), Text(row.status, style=STATUS_STYLES.get(row.status, "")), Text(row.detail), Text(row.fix)
        )
    return view


def exit_code(result: ReadinessResult) -> int:
    """0 when every check is OK or WARN, EXIT_NOT_READY when one FAILs."""
    return EXIT_NOT_READY if result.status == FAIL else 0


def _summary_line(result: ReadinessResult) -> str:
    counts = Counter(r.status for r in result.rows)
    parts = [f"{counts[s]} {s}" for s in (OK, WARN, FAIL) if counts[s]]
    rpo = (
        f"; effective RPO {result.rpo_effective_seconds:.0f} s (oldest newest recovery point)"
        if result.rpo_effective_seconds is not None
        else ""
    )
    return f"readiness {result.status}: {', '.join(parts) or 'no checks'}{rpo}"


def _run(body: Coroutine[Any, Any, int]) -> NoReturn:
    try:
        code = asyncio.run(body)
    except TemporalUnreachable as exc:
        fail(f"{exc} (or run the checks from here with --local)")
    except CommandError as exc:
        fail(str(exc))
    except ScheduleSpecError as exc:
        fail(str(exc), EXIT_INVALID)
    raise typer.Exit(code)


# ---- the commands ----------------------------------------------------------------------------------


@app.command()
def check(
    path: Annotated[Path, typer.Argument(help="Plan file (.toml).")],
    *,
    offline: Annotated[
        bool, typer.Option("--offline", help="Only validate and summarise the file: no Azure, no Temporal.")
    ] = False,
    local: Annotated[
        bool,
        typer.Option("--local", help="Run the checks in this process with this machine's Azure credentials."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    task_queue: TaskQueueOption = None,
    address: AddressOption = None,
    namespace: NamespaceOption = None,
) -> None:
    """Validate a plan, then check its estate is ready to fail over: OK/WARN/FAIL per check, exit 3 on a FAIL."""
    plan = load_or_exit(path)
    if offline and local:
        fail("--offline and --local exclude each other: --offline runs no checks at all", EXIT_INVALID)
    if not as_json:
        typer.echo(f"plan {plan.name} ({path}) is valid")
    if offline:
        if as_json:
            emit_json({"plan": plan.name, "valid": True, "digest": plan.digest})
        else:
            show(*summary(plan))
        return

    def report(result: ReadinessResult, workflow_id: str | None = None) -> int:
        if as_json:
            emit_json(dataclasses.asdict(result) | {"workflow_id": workflow_id})
        else:
            out = console()
            out.print(readiness_view(result))
            out.print(_summary_line(result), highlight=False, markup=False)
            if workflow_id:
                out.print(f"workflow: {workflow_id}  {ui_url(settings, workflow_id)}", highlight=False, markup=False)
        return exit_code(result)

    settings = temporal_settings(address, namespace, task_queue)
    if local:
        try:
            catalog = local_catalog(plan)
        except CatalogError as exc:
            fail(str(exc), EXIT_INVALID)

        async def run_here() -> int:
            return report(await check_locally(plan, catalog=catalog))

        _run(run_here())

    async def run_on_workers() -> int:
        client = await connect(settings)
        workflow_id, result = await check_through_temporal(client, settings, plan)
        return report(result, workflow_id)

    _run(run_on_workers())


@app.command("schedule-readiness")
def schedule_readiness_command(
    path: Annotated[Path, typer.Argument(help="Plan file (.toml).")],
    *,
    calendar: Annotated[
        str,
        typer.Option(
            "--calendar", help="When to run: 'every 30m' (default), 'hourly', 'daily HH:MM UTC' or a cron string."
        ),
    ] = DEFAULT_EVERY,
    task_queue: TaskQueueOption = None,
    address: AddressOption = None,
    namespace: NamespaceOption = None,
) -> None:
    """Run the plan's readiness checks on a Temporal Schedule (readiness-PLAN), every 30 minutes by default."""
    plan = load_or_exit(path)
    try:
        parse_calendar(calendar)
    except ScheduleSpecError as exc:
        fail(str(exc), EXIT_INVALID)
    settings = temporal_settings(address, namespace, task_queue)

    async def body() -> int:
        client = await connect(settings)
        change = await apply_schedule(
            client, schedule_id(plan.name), lambda _: schedule_readiness(client, settings, plan.name, calendar)
        )
        upcoming = ", ".join(t.astimezone(UTC).strftime("%H:%M") for t in change.upcoming())
        typer.echo(
            f"{'created' if change.created else 'updated'} schedule {change.schedule_id}: ReadinessWorkflow of "
            f"plan {plan.name}, {calendar} (next: {upcoming} UTC) on task queue {settings.task_queue}"
        )
        typer.echo(
            f"  see runs: temporal workflow list --query \"WorkflowType='{WORKFLOW_TYPE}' AND DrPlan='{plan.name}'\""
        )
        return 0

    _run(body())


def summary(plan: DrPlan) -> list[object]:
    """The tables ``plan check`` prints."""
    overview = table(
        f"Plan {plan.name}",
        ["field", "value"],
        [
            ("environment", plan.environment),
            ("edition", plan.edition),
            ("subscription", plan.subscription_id),
            ("regions", f"{plan.primary_region} (primary) -> {plan.dr_region} (DR)"),
            ("allow data loss", f"{plan.failover.allow_data_loss} (after {plan.failover.data_loss_grace_minutes} min)"),
            ("failback steps", " / ".join(f"{s}%" for s in plan.failback.steps)),
        ],
    )
    fd, sb, cos = plan.frontdoor, plan.servicebus, plan.cosmos

    def per_region(names: dict[str, str]) -> str:
        return "\n".join(f"{region}: {names[region]}" for region in plan.regions if region in names)

    resource_rows: list[tuple[str, str, str]] = [
        ("Front Door origins", f"{fd.resource_group}/{fd.profile}/{fd.origin_group}", per_region(fd.origins)),
        ("Service Bus alias", f"{sb.resource_group}/{sb.alias}", per_region(sb.namespaces)),
    ]
    resource_rows.extend(
        (
            "SQL failover group",
            f"{group.resource_group}/{group.name}\ndatabases: {', '.join(group.databases)}",
            per_region(group.servers),
        )
        for group in plan.sql.failover_groups
    )
    resource_rows.append(
        ("Cosmos DB account", f"{cos.resource_group}/{cos.account}", "priority: " + " > ".join(cos.regions))
    )
    resource_rows.append(("Platform ops API", "", per_region(plan.platform.endpoints)))
    resources = table("Resources", ["kind", "resource group/name", "per region"], resource_rows)

    counts = Counter((t.home_region, t.residency) for t in plan.tenants)
    tenants = table(
        f"Tenants ({len(plan.tenants)})",
        ["home region", "residency", "allowed regions", "tenants"],
        [
            (home, policy, ", ".join(plan.residency.get(policy, ())), count)
            for (home, policy), count in sorted(counts.items())
        ],
    )
    approvers = table(
        f"Approvers ({plan.approvals_required} required)",
        ["name", "public key"],
        [(a.name, a.public_key) for a in plan.approvers] or [("(none)", "")],
    )
    return [overview, resources, tenants, approvers]
