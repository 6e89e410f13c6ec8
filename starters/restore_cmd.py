"""``drctl restore``: request a tenant restore (production requests signed by the requester), show
approvers what they are asked to sign, record their signed decisions, list restores and give back the
data a promotion replaced.

The async helpers (``start_restore``, ``restore_view``, ``watch_restore``, ``list_restores``,
``decide``, ``start_undo``) take a connected client, so tests and demos call them directly; the
typer commands only add argument checks, output and exit codes. Connection, error mapping and
process exit are shared (starters/temporal_cli.py).

Exit codes: 0 validated, promoted or awaiting approval; 1 the restore or the command failed
(refused, rejected, timed out); 2 invalid input; 130 stopped watching (Ctrl-C).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import SearchAttributePair
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from activities.integrity import (
    KeyMaterialError,
    key_id_of,
    load_private_key,
    passphrase_from_env,
    sign_approval,
    sign_restore_request,
)
from domain.errors import PlanError
from domain.messages.backups import UndoPromotionInput, UndoPromotionResult
from domain.messages.integrity import APPROVE, REJECT, Approval
from domain.messages.progress import DONE, FAILED, PENDING, SKIPPED
from domain.messages.restore import (
    MODE_PRODUCTION,
    MODE_SANDBOX,
    MODES,
    OUTCOME_PROMOTED,
    OUTCOME_SANDBOX,
    ApprovalAccepted,
    PackageStatus,
    PackageValidation,
    RejectRequest,
    RestoreInput,
    RestoreResult,
    RestoreStatus,
    restore_workflow_id,
)
from domain.plan import DrPlan, load_plan
from starters.failback_cmd import parse_duration
from starters.output import EXIT_FAILED, EXIT_INVALID, console, fail, fail_plan
from starters.progress_view import as_dict, facts, format_seconds, header, steps_table
from starters.temporal_cli import (
    LISTING_COLUMNS,
    POLL_SECONDS,
    QUERY_ERRORS,
    QUERY_TIMEOUT,
    UPDATE_TIMEOUT,
    AddressOption,
    CommandError,
    JsonOption,
    NamespaceOption,
    TaskQueueOption,
    WorkflowListing,
    WorkflowView,
    connect,
    current_user,
    describe_workflow,
    echo_started,
    failure_message,
    json_line,
    json_output,
    query_problem,
    query_status,
    quoted,
    rpc_message,
    run_command,
    run_watching,
    show_listing,
    show_view,
    start_workflow_once,
    status_name,
    temporal_settings,
    ui_url,
    watch_and_print,
)
from workers.connection import TemporalSettings
from workflows.common import DR_PLAN, TENANT_ID
from workflows.restore import AWAITING_APPROVAL, REPLACED_DATABASE, REQUEST_STEP, SET_TENANT_DATABASE

app = typer.Typer(
    help="Restore a tenant's data from a verified recovery point, approve or reject its promotion, undo it.",
    no_args_is_help=True,
)

WORKFLOW_TYPE = "TenantRestoreWorkflow"
UNDO_WORKFLOW_TYPE = "UndoPromotionWorkflow"
SUCCESS_OUTCOMES = (OUTCOME_PROMOTED, OUTCOME_SANDBOX)
# Restore's words for a server set up without the DR search attributes.
MISSING_ATTRIBUTES = "The server lacks the DR search attributes DrPlan, DrPhase and TenantId (`drctl dev up` adds them)"
# How far in the future --at may be (clock skew between the caller and the catalog).
CLOCK_SKEW = timedelta(minutes=1)
# How long a signed restore request stays valid: drctl starts it at once, so this only has to cover clock
# skew between drctl and the Temporal server.
REQUEST_LIFETIME = timedelta(hours=1)

OUTCOME_STYLES = {
    OUTCOME_PROMOTED: "bold green",
    OUTCOME_SANDBOX: "bold green",
    "rejected": "bold yellow",
    "approval-timed-out": "bold yellow",
}


class RestoreCommandError(CommandError):
    """A request to Temporal about a restore could not be carried out; the message says why."""


class InvalidRequest(ValueError):
    """A restore request that must not be started; every problem names its option."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


# ---- input -------------------------------------------------------------------------------------


def restore_id_for(plan: str, tenant_id: str, now: datetime | None = None) -> str:
    """``restore-{plan}-{tenant}-{yyyymmddThhmmss}`` in UTC: the workflow id and the quarantine's restore id."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return restore_workflow_id(plan, tenant_id, f"{moment:%Y%m%dT%H%M%S}")


def undo_workflow_id(restore_id: str) -> str:
    return f"undo-{restore_id}"


def parse_point_in_time(value: str, now: datetime | None = None) -> tuple[str, bool]:
    """``--at`` as ``YYYY-MM-DDTHH:MM:SSZ`` and whether UTC was assumed (no offset given); not in the future."""
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--at {value!r} is not an ISO 8601 time such as 2026-11-28T09:00:00Z") from None
    assumed = parsed.tzinfo is None or parsed.utcoffset() is None
    moment = (parsed.replace(tzinfo=UTC) if assumed else parsed).astimezone(UTC).replace(microsecond=0)
    if moment > (now or datetime.now(UTC)) + CLOCK_SKEW:
        raise ValueError(f"--at {value!r} is in the future; a restore needs a recovery point that exists")
    return moment.isoformat().replace("+00:00", "Z"), assumed


def build_request(
    *,
    plan: str,
    tenant_id: str,
    at: str | None,
    recovery_point_id: str | None,
    mode: str,
    requested_by: str,
    reason: str = "",
    approval_timeout: str = "72h",
    now: datetime | None = None,
) -> tuple[RestoreInput, list[str]]:
    """The request and notes for the caller (such as "UTC assumed"); InvalidRequest naming each bad option."""
    problems: list[str] = []
    notes: list[str] = []
    if not plan.strip():
        problems.append("--plan is empty")
    if not tenant_id.strip():
        problems.append("--tenant is empty")
    given = [name for name, value in (("--at", at), ("--recovery-point", recovery_point_id)) if value]
    if len(given) != 1:
        which = "both were given" if given else "neither was given"
        problems.append(f"give exactly one of --at TIME or --recovery-point ID ({which})")
    point_in_time: str | None = None
    if at and len(given) == 1:
        try:
            point_in_time, assumed = parse_point_in_time(at, now)
        except ValueError as exc:
            problems.append(str(exc))
        else:
            if assumed:
                notes.append(f"--at {at.strip()} has no UTC offset: taken as UTC ({point_in_time})")
    if mode not in MODES:
        problems.append(f"--mode must be one of {', '.join(MODES)}, not {mode!r}")
    if not requested_by.strip():
        problems.append("--as is empty: name who requests the restore")
    timeout = 0
    try:
        timeout = parse_duration(approval_timeout)
    except ValueError as exc:
        problems.append(f"--approval-timeout: {exc}")
    else:
        if timeout <= 0:
            problems.append("--approval-timeout must be longer than 0s")
    if problems:
        raise InvalidRequest(problems)
    request = RestoreInput(
        plan=plan.strip(),
        tenant_id=tenant_id.strip(),
        requested_by=requested_by.strip(),
        at=point_in_time,
        recovery_point_id=recovery_point_id.strip() if recovery_point_id else None,
        mode=mode,
        reason=reason.strip(),
        approval_timeout_seconds=timeout,
    )
    return request, notes


def is_plan_file(value: str) -> bool:
    """Whether ``--plan`` names a plan file rather than a plan the workers load by name."""
    return value.endswith(".toml") or Path(value).is_file()


def plan_problems(plan: DrPlan, request: RestoreInput) -> list[str]:
    """What the plan file says is wrong with ``request``: an unknown tenant, or approvals nobody can give."""
    problems: list[str] = []
    if plan.tenants and request.tenant_id not in {t.id for t in plan.tenants}:
        problems.append(f"--tenant {request.tenant_id!r} is not a tenant of plan {plan.name}")
    if request.mode == MODE_PRODUCTION:
        others = [a.name for a in plan.approvers if a.name != request.requested_by]
        if len(others) < plan.approvals_required:
            problems.append(
                f"--mode production: plan {plan.name} needs {plan.approvals_required} approval(s) from approvers "
                f"other than the requester {request.requested_by}, and lists {len(others)} "
                f"({', '.join(others) or 'none'}): nobody could ever approve it"
            )
    return problems


def missing_key_problems(mode: str, requester: str, key: Path | None) -> list[str]:
    """Why a request cannot be signed: production needs the requester's private key (--key)."""
    if mode != MODE_PRODUCTION or key is not None:
        return []
    name = requester.strip() or "NAME"
    return [
        f"--mode production needs --key: the request is signed with the requester's Ed25519 private key "
        f"(--as {name} --key {name}.key; `drctl keys generate {name}` makes one, and the plan lists its public key "
        "under [[requesters]] or [[approvers]])"
    ]


def requester_problems(plan: DrPlan, request: RestoreInput, key: Ed25519PrivateKey) -> list[str]:
    """What the plan file says is wrong with signing ``request`` with ``key``: a requester the plan does not
    list (among its approvers or requesters), or a key that is not theirs."""
    who = request.requested_by
    person = plan.requester(who)
    if person is None:
        listed = ", ".join(p.name for p in (*plan.approvers, *plan.requesters)) or "none"
        return [
            f"--as {who}: plan {plan.name} lets only its [[approvers]] and [[requesters]] request restores "
            f"({listed}); add {who} under [[requesters]] with the public key from `drctl keys generate {who}`"
        ]
    try:
        expected = key_id_of(person.public_key)
    except KeyMaterialError as exc:
        return [f"the plan's public key for {who} cannot be used: {exc}"]
    if key_id_of(key) != expected:
        return [
            f"--key is key {key_id_of(key)}, not {who}'s: plan {plan.name} lists {expected} for {who}; "
            f"sign with {who}'s own private key"
        ]
    return []


def load_signing_key(path: Path, passphrase_env: str | None) -> Ed25519PrivateKey:
    """The requester's or approver's private key; ValueError naming --key or --passphrase-env when it cannot
    be used."""
    passphrase = None
    if passphrase_env:
        try:
            passphrase = passphrase_from_env(passphrase_env)
        except KeyMaterialError as exc:
            raise ValueError(f"--passphrase-env: {exc}") from None
    if not path.is_file():
        raise ValueError(f"--key {path}: no such file")
    try:
        return load_private_key(path, passphrase)
    except KeyMaterialError as exc:
        hint = " (name the variable holding it with --passphrase-env VAR)" if passphrase is None else ""
        raise ValueError(f"--key: {exc}{hint}") from None


# ---- what a restore looks like from outside ------------------------------------------------------


@dataclass
class RestoreView(WorkflowView[RestoreStatus, RestoreResult]):
    """Everything the starter can learn about one restore workflow (its "status" query answers also
    after close, while a worker replays it)."""

    request: RestoreInput | None = None  # the workflow's input, from its first history event
    run_id: str | None = None
    # The database its promotion moved the tenant's projections away from: from the result, or from the
    # failure of a restore that failed after its registry swap (None: no swap, or not recorded).
    replaced_database: str | None = None

    @property
    def awaiting_approval(self) -> bool:
        return not self.closed and self.status is not None and self.status.phase == AWAITING_APPROVAL

    @property
    def plan(self) -> str | None:
        for source in (self.result, self.status, self.request):
            if source is not None:
                return source.plan
        return None

    @property
    def tenant_id(self) -> str | None:
        for source in (self.result, self.status, self.request):
            if source is not None:
                return source.tenant_id
        return None

    def exit_code(self) -> int:
        """0 validated, promoted, running or awaiting approval; 1 failed, rejected, timed out or closed unfinished."""
        if self.result is not None:
            return 0 if self.result.outcome in SUCCESS_OUTCOMES else EXIT_FAILED
        return EXIT_FAILED if self.closed else 0


def _rpc_text(exc: RPCError, what: str) -> str:
    return rpc_message(exc, what, missing_attributes=MISSING_ATTRIBUTES)


def restore_handle(client: Client, workflow_id: str) -> WorkflowHandle[Any, RestoreResult]:
    return client.get_workflow_handle(workflow_id, result_type=RestoreResult)


async def _describe(handle: WorkflowHandle[Any, Any]) -> WorkflowExecutionDescription:
    """The restore's description; refuses unknown ids and other workflow types."""
    return await describe_workflow(
        handle,
        WORKFLOW_TYPE,
        RestoreCommandError,
        list_hint=" (list restores with `drctl restore list`)",
        missing_attributes=MISSING_ATTRIBUTES,
        rpc_timeout=QUERY_TIMEOUT,
    )


async def _query_status(handle: WorkflowHandle[Any, Any]) -> RestoreStatus:
    return await query_status(handle, RestoreStatus)


async def _request_of(client: Client, handle: WorkflowHandle[Any, Any]) -> RestoreInput | None:
    """The RestoreInput the workflow was started with (it holds the reason, which the status lacks)."""
    try:
        async for event in handle.fetch_history_events(page_size=1, rpc_timeout=QUERY_TIMEOUT):
            payloads = list(event.workflow_execution_started_event_attributes.input.payloads)
            decoded = await client.data_converter.decode(payloads, [RestoreInput])
            return decoded[0] if decoded and isinstance(decoded[0], RestoreInput) else None
    except (RPCError, RPCTimeoutOrCancelledError, TypeError, ValueError, KeyError):
        return None
    return None


def replaced_database_of(cause: BaseException | None) -> str | None:
    """The database a restore that failed after its registry swap says the swap replaced (the first
    detail of its failure), if it says one."""
    if not isinstance(cause, ApplicationError) or not cause.details:
        return None
    detail = cause.details[0]
    value = detail.get(REPLACED_DATABASE) if isinstance(detail, dict) else None
    return value if isinstance(value, str) and value else None


async def restore_view(client: Client, workflow_id: str, *, request: RestoreInput | None = None) -> RestoreView:
    """The restore's state: its request, the "status" query, and once closed its result (or failure)."""
    handle = restore_handle(client, workflow_id)
    description = await _describe(handle)
    view = RestoreView(workflow_id, status_name(description.status), run_id=description.run_id)
    view.request = request or await _request_of(client, handle)
    if view.closed:
        try:
            view.result = await handle.result()
        except WorkflowFailureError as err:
            view.failure = failure_message(err.cause)
            view.replaced_database = replaced_database_of(err.cause)
        else:
            view.replaced_database = view.result.replaced_database
    try:
        view.status = await _query_status(handle)
    except QUERY_ERRORS as exc:
        # A closed run answers only while a worker can replay it; its result says enough then.
        if not view.closed:
            view.failure = query_problem(exc)
    return view


# ---- start, watch, list -------------------------------------------------------------------------


def start_details(request: RestoreInput) -> str:
    """The markdown the Temporal UI shows as the workflow's static details."""
    point = (
        f"recovery point `{request.recovery_point_id}`"
        if request.recovery_point_id
        else f"newest recovery point at or before {request.at}"
    )
    signed = request.request_signature
    lines = [
        f"**Reason:** {request.reason or 'not given'}",
        f"**Requested by:** {request.requested_by}"
        + (f" (request signed with key `{signed.key_id}`)" if signed else " (unsigned)"),
        f"**Plan:** {request.plan} · **Tenant:** {request.tenant_id} · **Mode:** {request.mode}",
        f"**From:** {point}",
    ]
    if request.mode == MODE_PRODUCTION:
        lines.append(f"**Approval timeout:** {format_seconds(request.approval_timeout_seconds)}")
    return "\n\n".join(lines)


async def start_restore(
    client: Client,
    request: RestoreInput,
    *,
    task_queue: str,
    workflow_id: str | None = None,
    key: Ed25519PrivateKey | None = None,
    now: datetime | None = None,
) -> WorkflowHandle[Any, RestoreResult]:
    """Start TenantRestoreWorkflow for ``request`` under ``restore-{plan}-{tenant}-{UTC second}``, first
    signed with the requester's ``key`` over that workflow id (valid for REQUEST_LIFETIME from ``now``).
    A production request must be signed: RestoreCommandError without a key or signature."""
    moment = now or datetime.now(UTC)
    wf_id = workflow_id or restore_id_for(request.plan, request.tenant_id, moment)
    if key is not None:
        request = sign_restore_request(
            key, request, workflow_id=wf_id, issued_at=moment, expires_at=moment + REQUEST_LIFETIME
        )
    if request.mode == MODE_PRODUCTION and request.request_signature is None:
        raise RestoreCommandError(
            f"a production restore must be signed by its requester {request.requested_by}: pass their private key"
        )
    return await start_workflow_once(
        client,
        WORKFLOW_TYPE,
        request,
        workflow_id=wf_id,
        task_queue=task_queue,
        result_type=RestoreResult,
        search_attributes=[
            SearchAttributePair(DR_PLAN, request.plan),
            SearchAttributePair(TENANT_ID, request.tenant_id),
        ],
        summary=f"Restore of tenant {request.tenant_id} ({request.plan}, {request.mode})",
        details=start_details(request),
        error=RestoreCommandError,
        already_started=f"a workflow with id {wf_id} already exists; retry in a second",
        missing_attributes=MISSING_ATTRIBUTES,
    )


async def watch_restore(
    client: Client,
    workflow_id: str,
    on_update: Callable[[RestoreView], None],
    *,
    until: Callable[[RestoreView], bool] = lambda v: v.awaiting_approval,
    interval: float = POLL_SECONDS,
) -> RestoreView:
    """Poll until the restore closes or ``until(view)`` (by default: it awaits approval); ``on_update``
    sees every poll. Polls describe and the query rather than waiting on the result, so a
    time-skipping test server never skips past the approval deadline while someone only watches."""
    request: RestoreInput | None = None
    while True:
        view = await restore_view(client, workflow_id, request=request)
        request = view.request
        on_update(view)
        if view.closed or until(view):
            return view
        await asyncio.sleep(interval)


@dataclass(frozen=True)
class RestoreListing(WorkflowListing):
    """One restore as ``drctl restore list`` shows it: also its tenant (the TenantId search attribute)."""

    tenant_id: str


def restores_query(plan: str | None = None, tenant_id: str | None = None, *, open_only: bool = False) -> str:
    """The visibility query for restores of a plan and/or tenant (search attributes DrPlan, TenantId)."""
    query = f"WorkflowType = {quoted(WORKFLOW_TYPE)}"
    if plan:
        query += f" AND DrPlan = {quoted(plan)}"
    if tenant_id:
        query += f" AND TenantId = {quoted(tenant_id)}"
    if open_only:
        query += " AND ExecutionStatus = 'Running'"
    return query


async def list_restores(
    client: Client, *, plan: str | None = None, tenant_id: str | None = None, open_only: bool = False, limit: int = 50
) -> list[RestoreListing]:
    """Restore workflows, newest first, with their phase (search attribute DrPhase)."""
    try:
        return [
            RestoreListing.of(wf, tenant_id=wf.typed_search_attributes.get(TENANT_ID) or "")
            async for wf in client.list_workflows(restores_query(plan, tenant_id, open_only=open_only), limit=limit)
        ]
    except RPCError as exc:
        raise RestoreCommandError(_rpc_text(exc, "cannot list restores")) from exc


# ---- decisions and undo --------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """A signed decision the restore accepted, and the status it was signed against."""

    approval: Approval
    accepted: ApprovalAccepted
    status: RestoreStatus


async def decide(
    client: Client,
    workflow_id: str,
    *,
    approver: str,
    key: Ed25519PrivateKey,
    decision: str = APPROVE,
    expires_in: timedelta = timedelta(hours=1),
    reason: str = "",
    now: datetime | None = None,
) -> Decision:
    """Sign ``decision`` over the restore's recovery point and verification digest, valid for
    ``expires_in``, and send it; refused locally unless the restore awaits approval, and by the
    workflow's validator (its message is the error's)."""
    if decision not in (APPROVE, REJECT):
        raise ValueError(f"decision must be {APPROVE} or {REJECT}, not {decision!r}")
    handle = restore_handle(client, workflow_id)
    description = await _describe(handle)
    if description.status != WorkflowExecutionStatus.RUNNING:
        raise RestoreCommandError(
            f"{workflow_id} is no longer running ({status_name(description.status)}); "
            f"see `drctl restore status {workflow_id}`"
        )
    try:
        status = await _query_status(handle)
    except QUERY_ERRORS as exc:
        raise RestoreCommandError(f"cannot read what you would sign: {query_problem(exc)}") from exc
    if status.phase != AWAITING_APPROVAL:
        raise RestoreCommandError(
            f"{workflow_id} is not awaiting approval (phase {status.phase}); decisions are accepted only while it "
            f"awaits approval. Watch it with `drctl restore status {workflow_id} --wait`"
        )
    if status.recovery_point is None or status.verification_digest is None:
        raise RestoreCommandError(f"{workflow_id} shows no verified recovery point to sign for")
    approval = sign_approval(
        key,
        workflow_id=workflow_id,
        recovery_point_id=status.recovery_point.recovery_point_id,
        verification_digest=status.verification_digest,
        decision=decision,
        approver=approver,
        expires_at=(now or datetime.now(UTC)) + expires_in,
    )
    argument: Approval | RejectRequest = approval if decision == APPROVE else RejectRequest(approval, reason)
    try:
        accepted: ApprovalAccepted = await handle.execute_update(
            decision, argument, result_type=ApprovalAccepted, rpc_timeout=UPDATE_TIMEOUT
        )
    except WorkflowUpdateFailedError as exc:
        raise RestoreCommandError(f"{decision} refused: {failure_message(exc.cause)}") from exc
    except RPCTimeoutOrCancelledError as exc:
        raise RestoreCommandError(
            f"no worker accepted the {decision} within {UPDATE_TIMEOUT.seconds}s: is dr-worker running? "
            "(`drctl dev status`)"
        ) from exc
    except RPCError as exc:
        raise RestoreCommandError(_rpc_text(exc, f"cannot send the {decision} to {workflow_id}")) from exc
    return Decision(approval, accepted, status)


def undo_problem(view: RestoreView) -> str | None:
    """Why the restore's promotion cannot be undone (it is running, or never replaced live data), or None."""
    wid = view.workflow_id
    if not view.closed:
        phase = view.status.phase if view.status else "unknown"
        return (
            f"restore {wid} is still running (phase {phase}); undo applies once it has finished: "
            f"`drctl restore status {wid} --wait`"
        )
    if view.result is not None:
        if view.result.outcome != OUTCOME_PROMOTED:
            return (
                f"restore {wid} was not promoted (outcome {view.result.outcome}): the tenant's live data was never "
                "replaced, so there is nothing to undo"
            )
        return None
    if view.status is None:
        return (
            f"restore {wid} ended {view.execution_status} ({view.failure or 'no result'}) and no worker answered "
            "its status query, so whether it promoted anything is unknown; start a worker and retry"
        )
    promote = next((s for s in view.status.steps.steps if s.key == "promote"), None)
    if promote is None or promote.status in (PENDING, SKIPPED):
        return f"restore {wid} ended {view.execution_status} before promoting anything: there is nothing to undo"
    return None  # it failed during or after the promotion: undo gives back what it replaced


def database_swapped(view: RestoreView) -> bool:
    """Whether the restore's promotion pointed the tenant's projections at its restored database: its
    result lists the registry swap among its calls (restores of every version do), or, for a restore
    that failed after promoting, its step table shows the swap done."""
    if view.result is not None:
        return view.result.replaced_database is not None or SET_TENANT_DATABASE in view.result.calls
    if view.status is None:
        return False
    swap = next((s for s in view.status.steps.steps if s.key == "swap"), None)
    return swap is not None and swap.status == DONE


def undo_request(view: RestoreView) -> UndoPromotionInput:
    """The undo of the restore's promotion: its plan and tenant, and whether its promotion swapped the tenant's
    projection database and which one it replaced (left out for restores that did not record it, so the
    undo falls back to the plan's shared database)."""
    plan, tenant = view.plan, view.tenant_id
    if plan is None or tenant is None:
        raise RestoreCommandError(f"cannot tell the plan and tenant of restore {view.workflow_id}")
    swapped = database_swapped(view)
    return UndoPromotionInput(
        plan,
        tenant,
        view.workflow_id,
        previous_database=view.replaced_database if swapped else None,
        database_swapped=swapped,
    )


def undo_database_note(restore_id: str, inp: UndoPromotionInput) -> str:
    """What the undo does with the tenant's projection database, in the operator's words."""
    if not inp.database_swapped:
        return "its promotion swapped no projection database: the tenant's mapping is left as it is"
    if inp.previous_database is None:
        return (
            f"restore {restore_id} did not record which database its promotion replaced (restores promoted by an "
            "older version, or cancelled while promoting, do not): the tenant's projections go back to the plan's "
            "shared database, which may not be the one it used before"
        )
    return f"the tenant's projections go back to {inp.previous_database}, the database the promotion replaced"


def undo_projection_text(result: UndoPromotionResult) -> str:
    """Where the undo left the tenant's projections, saying so when it fell back to the shared database."""
    if result.projection_database is None:
        return "its projection database was left as it was"
    if result.fell_back_to_shared:
        return (
            f"its projections are served from the plan's shared database {result.projection_database}: restore "
            f"{result.restore_id} did not record which database its promotion replaced"
        )
    return f"its projections are served from {result.projection_database} again"


async def start_undo(
    client: Client, restore_id: str, *, task_queue: str
) -> tuple[WorkflowHandle[Any, UndoPromotionResult], RestoreView]:
    """Start UndoPromotionWorkflow (id ``undo-{restore id}``) for a restore that promoted; refuses otherwise."""
    view = await restore_view(client, restore_id)
    problem = undo_problem(view)
    if problem is not None:
        raise RestoreCommandError(problem)
    inp = undo_request(view)
    plan, tenant = inp.plan, inp.tenant_id
    wf_id = undo_workflow_id(restore_id)
    handle = await start_workflow_once(
        client,
        UNDO_WORKFLOW_TYPE,
        inp,
        workflow_id=wf_id,
        task_queue=task_queue,
        result_type=UndoPromotionResult,
        search_attributes=[SearchAttributePair(DR_PLAN, plan), SearchAttributePair(TENANT_ID, tenant)],
        summary=f"Undo the promotion of restore {restore_id} (tenant {tenant}, {plan})",
        error=RestoreCommandError,
        already_started=f"an undo of restore {restore_id} is already running: {wf_id}",
        missing_attributes=MISSING_ATTRIBUTES,
    )
    return handle, view


# ---- views -------------------------------------------------------------------------------------


def size_text(count: int) -> str:
    """Bytes as ``512 B``, ``1.5 KiB``, ``3.2 MiB``..., with the exact count beyond a KiB."""
    if count < 1024:
        return f"{count} B"
    value = float(count)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit} ({count:,} bytes)"


def _title(view: RestoreView) -> str:
    source = view.status or view.request
    tenant = view.tenant_id or "?"
    if source is None:
        return f"Restore of tenant {tenant}"
    return f"Restore of tenant {tenant} ({source.plan}, {source.mode})"


def _badge(view: RestoreView) -> tuple[str, str]:
    if view.result is not None:
        return f"outcome: {view.result.outcome}", OUTCOME_STYLES.get(view.result.outcome, "bold")
    if view.closed:
        return view.execution_status, "bold red"
    phase = view.status.phase if view.status else "unknown"
    style = {AWAITING_APPROVAL: "bold yellow", "failed": "bold red"}.get(phase, "bold")
    return f"phase: {phase}", style


def _asked_for(request: RestoreInput | None) -> str | None:
    if request is None:
        return None
    if request.recovery_point_id:
        return f"recovery point {request.recovery_point_id}"
    return f"the newest recovery point at or before {request.at}"


def _requester_text(view: RestoreView) -> Text | None:
    """Who requested the restore and whether the workflow verified their signature on the request."""
    status, request = view.status, view.request
    asked = status or request
    if asked is None:
        return None
    who = asked.requested_by
    if status is None:
        signed = request is not None and request.request_signature is not None
        return Text(f"{who} ({'signed' if signed else 'unsigned'} request)")
    if status.requester_key_id:
        return Text(f"{who} (signature verified, key {status.requester_key_id})", style="green")
    step = next((s for s in status.steps.steps if s.key == REQUEST_STEP), None)
    if step is not None and step.status == FAILED:
        return Text(f"{who} (request signature refused: see the error below)", style="bold red")
    if step is not None and step.status == SKIPPED:
        return Text(f"{who} (unsigned: {status.mode} restores need no signature)")
    return Text(f"{who} (signature not verified yet)", style="dim")


def _verification_text(status: RestoreStatus) -> Text:
    if status.verification_ok is None:
        return Text("not checked yet", style="dim")
    if status.verification_ok:
        return Text("ok: every package, the Merkle root and the manifest signature", style="green")
    return Text("FAILED: " + "; ".join(status.verification_problems), style="bold red")


def _integrity_cell(package: PackageStatus) -> Text:
    if package.verified is None:
        return Text("pending", style="dim")
    if package.verified:
        return Text("✓ verified", style="green")
    return Text(f"✗ {package.problem or 'failed'}", style="bold red")


def packages_table(status: RestoreStatus) -> Table:
    """One row per package: size and records per the manifest, integrity, and the validated records."""
    checked: dict[str, PackageValidation] = (
        {p.name: p for p in status.validation.packages} if status.validation is not None else {}
    )
    result = Table(title="Packages", title_justify="left", header_style="bold")
    for column in ("package", "bytes", "records", "integrity", "restored", "sampled", "foreign", "validation"):
        result.add_column(column, overflow="fold", justify="right" if column in ("bytes", "sampled") else "left")
    for package in status.packages:
        valid = checked.get(package.name)
        if valid is None:
            restored, sampled, foreign, verdict = Text(""), Text(""), Text(""), Text("pending", style="dim")
        else:
            match = valid.actual_records == valid.expected_records
            restored = Text(f"{valid.actual_records} of {valid.expected_records}", style="" if match else "bold red")
            sampled = Text(str(valid.sampled))
            foreign = Text(str(valid.foreign), style="bold red" if valid.foreign else "")
            verdict = Text(valid.problem, style="bold red") if valid.problem else Text("✓ ok", style="green")
        result.add_row(
            Text(package.name),
            Text(str(package.bytes)),
            Text(str(package.records)),
            _integrity_cell(package),
            restored,
            sampled,
            foreign,
            verdict,
        )
    return result


def approvals_table(approvals: Sequence[Approval]) -> Table:
    result = Table(title="Approvals so far", title_justify="left", header_style="bold")
    for column in ("approver", "decision", "key id", "valid until"):
        result.add_column(column, overflow="fold")
    for a in approvals:
        result.add_row(Text(a.approver), Text(a.decision), Text(a.key_id), Text(a.expires_at))
    return result


def _eligible(status: RestoreStatus) -> list[str]:
    """Approvers who may still decide: listed, not the requester, not yet approved."""
    done = {a.approver for a in status.approvals}
    return [n for n in status.approvers if n != status.requested_by and n not in done]


def _approvers_text(status: RestoreStatus) -> str:
    return ", ".join(f"{n} (requester)" if n == status.requested_by else n for n in status.approvers)


def status_renderable(view: RestoreView, *, now: datetime | None = None) -> RenderableType:
    """Everything an approver must see before signing: the request, the recovery point, its
    verification, the validated records, the approvals so far, the restored databases and the steps."""
    badge, style = _badge(view)
    parts: list[RenderableType] = [header(_title(view), badge=badge, badge_style=style)]
    status, request, result = view.status, view.request, view.result
    asked = status or request
    parts.append(
        facts(
            [
                ("workflow", view.workflow_id),
                ("tenant", view.tenant_id),
                ("mode", asked.mode if asked else None),
                ("requested by", _requester_text(view)),
                ("reason", (request.reason or "not given") if request else None),
                ("asked for", _asked_for(request)),
                ("started", status.started_at if status and status.started_at else None),
            ]
        )
    )
    if status is not None:
        point = status.recovery_point
        if point is not None:
            total = sum(p.bytes for p in point.packages)
            parts.append(
                facts(
                    [
                        ("recovery point", point.recovery_point_id),
                        ("created", point.created_at),
                        ("packages", f"{len(point.packages)} · {size_text(total)}"),
                        ("manifest sha256", status.manifest_sha256),
                        ("merkle root", point.merkle_root),
                        ("signed by key", point.key_id),
                    ]
                )
            )
        parts.append(
            facts(
                [
                    ("verification", _verification_text(status)),
                    ("verification digest", status.verification_digest or "not yet computed"),
                ]
            )
        )
        if status.packages:
            parts.append(packages_table(status))
        if status.validation is not None:
            v = status.validation
            parts.append(
                facts(
                    [
                        (
                            "validation",
                            Text(f"ok: {v.records} records match the manifest, {v.sampled} sampled", style="green")
                            if v.ok
                            else Text("FAILED: " + "; ".join(v.problems), style="bold red"),
                        )
                    ]
                )
            )
        if status.mode == MODE_PRODUCTION:
            parts.append(
                facts(
                    [
                        ("approvals", f"{len(status.approvals)} of {status.approvals_required} required"),
                        ("approvers", _approvers_text(status) or None),
                        ("deadline", status.approval_deadline),
                        ("rejected", Text(status.rejection, style="bold yellow") if status.rejection else None),
                    ]
                )
            )
            if status.approvals:
                parts.append(approvals_table(status.approvals))
        parts.append(
            facts(
                [
                    ("restored database", status.restored_database),
                    ("restored Cosmos DB account", status.restored_cosmos_account),
                    ("evidence", status.evidence_blob),
                    ("error", Text(status.error, style="red") if status.error else None),
                ]
            )
        )
        parts.append(steps_table(status.steps, title="Steps", now=now))
    if result is not None:
        parts.append(
            facts(
                [
                    ("outcome", Text(result.outcome, style=OUTCOME_STYLES.get(result.outcome, "bold"))),
                    ("recovery point", None if status else result.recovery_point_id),
                    ("verification digest", None if status else result.verification_digest),
                    ("records", result.records),
                    ("approved by", ", ".join(result.approvals) or None),
                    ("promoted", f"{len(result.promoted)} segment(s)" if result.promoted else None),
                    ("restored database", None if status else result.restored_database),
                    ("replaced database", result.replaced_database),
                    ("restored Cosmos DB account", None if status else result.restored_cosmos_account),
                    ("evidence", None if status else result.evidence_blob),
                    ("duration", format_seconds(result.rto_seconds)),
                ]
            )
        )
    return Group(*parts)


def progress_renderable(view: RestoreView) -> RenderableType:
    """The live view while watching: title, phase and the step table."""
    badge, style = _badge(view)
    parts: list[RenderableType] = [header(_title(view), badge=badge, badge_style=style)]
    if view.status is not None:
        parts.append(steps_table(view.status.steps))
    elif view.failure:
        parts.append(Text(view.failure, style="red"))
    return Group(*parts)


def next_lines(view: RestoreView) -> list[str]:
    """The closing words: the outcome, or what approvers must run."""
    wid = view.workflow_id
    if view.result is not None:
        lines = [f"outcome: {view.result.outcome}"]
        if view.result.outcome == OUTCOME_PROMOTED:
            lines.append(f"the replaced data is kept; to give it back: drctl restore undo {wid}")
        return lines
    if view.closed:
        return [f"{wid} ended {view.execution_status}: {view.failure or 'no result'}"]
    status = view.status
    if view.awaiting_approval and status is not None:
        missing = max(status.approvals_required - len(status.approvals), 0)
        who = ", ".join(_eligible(status)) or "nobody"
        return [
            f"awaiting {missing} more approval(s) by {status.approval_deadline} from: {who} "
            f"({status.requested_by} requested it and cannot decide)",
            f"  review:   drctl restore status {wid}",
            f"  approve:  drctl restore approve {wid} --as NAME --key NAME.key",
            f'  reject:   drctl restore reject {wid} --as NAME --key NAME.key --reason "..."',
        ]
    if view.failure:
        return [f"{wid}: {view.failure}"]
    return [f"{wid} is running (phase {status.phase if status else 'unknown'})"]


def print_view(view: RestoreView) -> None:
    out = console()
    out.print(status_renderable(view))
    for line in next_lines(view):
        out.print(line, highlight=False, markup=False)


# ---- the commands -------------------------------------------------------------------------------

WorkflowIdArgument = Annotated[str, typer.Argument(help="The restore's workflow id.")]
ApproverOption = Annotated[str, typer.Option("--as", help="Your approver name in the plan.")]
KeyOption = Annotated[Path, typer.Option("--key", help="Your Ed25519 private key (PEM), e.g. alice.key.")]
PassphraseOption = Annotated[
    str | None,
    typer.Option("--passphrase-env", metavar="VAR", help="Environment variable holding the key's passphrase."),
]
ExpiresOption = Annotated[
    str, typer.Option("--expires-in", help="How long the signed decision stays valid, e.g. 30m or 1h.")
]


def _run_watching(body: Callable[[], Coroutine[Any, Any, int]], workflow_id: Callable[[], str | None]) -> NoReturn:
    """Ctrl-C only stops watching (the workflow runs on in Temporal): say so and exit 130."""
    run_watching(
        body,
        workflow_id,
        lambda wid: f"stopped watching; the restore continues. Resume with: drctl restore status {wid} --wait",
    )


async def watch_and_report(client: Client, workflow_id: str, as_json: bool) -> int:
    """``--wait``: a live step table on a terminal, JSON lines otherwise, until the restore closes or
    awaits approval; then the full view and what approvers must run."""
    return await watch_and_print(
        lambda on_update: watch_restore(client, workflow_id, on_update), as_json, progress_renderable, print_view
    )


def _load_key_or_exit(key: Path, passphrase_env: str | None) -> Ed25519PrivateKey:
    try:
        return load_signing_key(key, passphrase_env)
    except ValueError as exc:
        fail(str(exc), EXIT_INVALID)


def _expiry_or_exit(expires_in: str) -> timedelta:
    try:
        seconds = parse_duration(expires_in)
    except ValueError as exc:
        fail(f"--expires-in: {exc}", EXIT_INVALID)
    if seconds <= 0:
        fail("--expires-in must be longer than 0s", EXIT_INVALID)
    return timedelta(seconds=seconds)


@app.command()
def start(
    *,
    plan: Annotated[
        str,
        typer.Option("--plan", help="Plan name, or its plan file (.toml) to check tenant and approvers first."),
    ],
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant whose data is restored.")],
    at: Annotated[
        str | None,
        typer.Option("--at", help="ISO 8601 time (UTC if no offset): use the newest recovery point at or before it."),
    ] = None,
    recovery_point: Annotated[
        str | None, typer.Option("--recovery-point", help="A recovery point id, e.g. RP-20261128T090000Z-eastus-t1.")
    ] = None,
    mode: Annotated[
        str, typer.Option("--mode", help="sandbox (validate only) or production (promote after approvals).")
    ] = MODE_SANDBOX,
    requester: Annotated[
        str | None,
        typer.Option(
            "--as", help="Who requests it (default: $USER); production: an approver or requester of the plan."
        ),
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option("--key", help="The requester's Ed25519 private key (PEM), which signs the request (production)."),
    ] = None,
    passphrase_env: PassphraseOption = None,
    reason: Annotated[str, typer.Option("--reason", help="Why: shown to approvers and kept in the evidence.")] = "",
    approval_timeout: Annotated[
        str, typer.Option("--approval-timeout", help="How long production waits for approvals, e.g. 72h.")
    ] = "72h",
    wait: Annotated[
        bool,
        typer.Option("--wait", help="Watch until it ends or awaits approval (JSON lines without a terminal)."),
    ] = False,
    task_queue: TaskQueueOption = None,
    address: AddressOption = None,
    namespace: NamespaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Request a restore of one tenant's data from a recovery point (sandbox, or production with approvals,
    signed with the requester's --key)."""
    plan_file: DrPlan | None = None
    if is_plan_file(plan):
        try:
            plan_file = load_plan(Path(plan))
        except PlanError as error:
            fail_plan(error)
        except OSError as exc:
            fail(f"--plan {plan}: {exc.strerror or exc}", EXIT_INVALID)
    requested_by = requester if requester is not None else current_user()
    problems = missing_key_problems(mode, requested_by, key)
    try:
        request, notes = build_request(
            plan=plan_file.name if plan_file else plan,
            tenant_id=tenant,
            at=at,
            recovery_point_id=recovery_point,
            mode=mode,
            requested_by=requested_by,
            reason=reason,
            approval_timeout=approval_timeout,
        )
    except InvalidRequest as exc:
        fail("invalid restore request:\n  " + "\n  ".join([*exc.problems, *problems]), EXIT_INVALID)
    problems += plan_problems(plan_file, request) if plan_file else []
    if problems:
        fail("invalid restore request:\n  " + "\n  ".join(problems), EXIT_INVALID)
    private_key = _load_key_or_exit(key, passphrase_env) if key is not None else None
    if private_key is not None and plan_file is not None:
        problems = requester_problems(plan_file, request, private_key)
        if problems:
            fail("invalid restore request:\n  " + "\n  ".join(problems), EXIT_INVALID)
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    settings = temporal_settings(address, namespace, task_queue)
    json_out = json_output(as_json, wait)
    started: list[str] = []

    async def body() -> int:
        client = await connect(settings)
        handle = await start_restore(client, request, task_queue=settings.task_queue, key=private_key)
        started.append(handle.id)
        url = ui_url(settings, handle.id)
        if json_out:
            json_line("started", {"workflow_id": handle.id, "url": url, "request": as_dict(request)})
        else:
            echo_started(
                f"started {request.mode} restore of tenant {request.tenant_id} (plan {request.plan})", handle.id, url
            )
            if not wait:
                typer.echo(f"  watch:    drctl restore status {handle.id} --wait")
        if not wait:
            return 0
        return await watch_and_report(client, handle.id, json_out)

    _run_watching(body, lambda: started[0] if started else None)


@app.command()
def status(
    workflow_id: WorkflowIdArgument,
    wait: Annotated[bool, typer.Option("--wait", help="Keep watching until it ends or awaits approval.")] = False,
    address: AddressOption = None,
    namespace: NamespaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show what approvers sign: tenant, recovery point, verification, validated records, approvals, steps."""
    settings = temporal_settings(address, namespace)
    json_out = json_output(as_json, wait)

    async def body() -> int:
        client = await connect(settings)
        view = await restore_view(client, workflow_id)
        if wait and not view.closed and not view.awaiting_approval:
            return await watch_and_report(client, workflow_id, json_out)
        show_view(view, ui_url(settings, workflow_id), json_out, print_view)
        return view.exit_code() if wait else 0

    _run_watching(body, lambda: workflow_id)


@app.command("list")
def list_command(
    *,
    plan: Annotated[str | None, typer.Option("--plan", help="Only restores of this plan (its name).")] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only restores of this tenant.")] = None,
    open_only: Annotated[bool, typer.Option("--open", help="Only restores still running.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many, newest first.")] = 50,
    address: AddressOption = None,
    namespace: NamespaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """List restores (all, or only running ones with --open) with their phase."""
    settings = temporal_settings(address, namespace)

    async def body() -> int:
        client = await connect(settings)
        rows = await list_restores(client, plan=plan, tenant_id=tenant, open_only=open_only, limit=limit)
        scope = [f"of plan {plan}"] if plan else []
        scope += [f"of tenant {tenant}"] if tenant else []
        show_listing(
            rows,
            as_json=as_json,
            title=" ".join([f"{len(rows)} {'running ' if open_only else ''}restore(s)", *scope]),
            columns=(LISTING_COLUMNS[0], ("tenant", "tenant_id"), *LISTING_COLUMNS[1:]),
        )
        return 0

    run_command(body)


def _decide_command(
    *,
    decision: str,
    workflow_id: str,
    approver: str,
    key: Path,
    expires_in: str,
    passphrase_env: str | None,
    reason: str,
    settings: TemporalSettings,
) -> NoReturn:
    if not approver.strip():
        fail("--as is empty: give your approver name in the plan", EXIT_INVALID)
    private_key = _load_key_or_exit(key, passphrase_env)
    lifetime = _expiry_or_exit(expires_in)

    async def body() -> int:
        client = await connect(settings)
        done = await decide(
            client,
            workflow_id,
            approver=approver.strip(),
            key=private_key,
            decision=decision,
            expires_in=lifetime,
            reason=reason,
        )
        point = done.status.recovery_point
        typer.echo(
            f"signed {decision} of {workflow_id} as {approver.strip()} with key {key_id_of(private_key)}: "
            f"tenant {done.status.tenant_id}, recovery point {point.recovery_point_id if point else '?'}, "
            f"verification digest {done.approval.verification_digest}, valid until {done.approval.expires_at}"
        )
        typer.echo(done.accepted.message)
        typer.echo(f"follow it with: drctl restore status {workflow_id} --wait")
        return 0

    run_command(body)


@app.command()
def approve(
    workflow_id: WorkflowIdArgument,
    *,
    approver: ApproverOption,
    key: KeyOption,
    expires_in: ExpiresOption = "1h",
    passphrase_env: PassphraseOption = None,
    address: AddressOption = None,
    namespace: NamespaceOption = None,
) -> None:
    """Sign and record your approval of the restore's recovery point and verification (run `status` first)."""
    _decide_command(
        decision=APPROVE,
        workflow_id=workflow_id,
        approver=approver,
        key=key,
        expires_in=expires_in,
        passphrase_env=passphrase_env,
        reason="",
        settings=temporal_settings(address, namespace),
    )


@app.command()
def reject(
    workflow_id: WorkflowIdArgument,
    *,
    approver: ApproverOption,
    key: KeyOption,
    reason: Annotated[str, typer.Option("--reason", help="Why the restore must not be promoted.")],
    expires_in: ExpiresOption = "1h",
    passphrase_env: PassphraseOption = None,
    address: AddressOption = None,
    namespace: NamespaceOption = None,
) -> None:
    """Sign and record your rejection: the restore cleans up and promotes nothing."""
    if not reason.strip():
        fail("--reason is empty: say why the restore must not be promoted", EXIT_INVALID)
    _decide_command(
        decision=REJECT,
        workflow_id=workflow_id,
        approver=approver,
        key=key,
        expires_in=expires_in,
        passphrase_env=passphrase_env,
        reason=reason.strip(),
        settings=temporal_settings(address, namespace),
    )


@app.command()
def undo(
    workflow_id: WorkflowIdArgument,
    *,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the tenant has its data back.")] = False,
    task_queue: TaskQueueOption = None,
    address: AddressOption = None,
    namespace: NamespaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Give the tenant back the live data a promoted restore replaced (kept under replaced/<restore id>/)."""
    settings = temporal_settings(address, namespace, task_queue)

    async def body() -> int:
        client = await connect(settings)
        handle, view = await start_undo(client, workflow_id, task_queue=settings.task_queue)
        url = ui_url(settings, handle.id)
        note = undo_database_note(workflow_id, undo_request(view))
        if as_json:
            json_line(
                "started",
                {
                    "workflow_id": handle.id,
                    "restore_id": workflow_id,
                    "url": url,
                    "previous_database": view.replaced_database,
                    "note": note,
                },
            )
        else:
            echo_started(
                f"started undo of restore {workflow_id} (tenant {view.tenant_id}, plan {view.plan})", handle.id, url
            )
            typer.echo(note)
        if not wait:
            return 0
        try:
            result = await handle.result()
        except WorkflowFailureError as err:
            raise RestoreCommandError(f"undo of {workflow_id} failed: {failure_message(err.cause)}") from err
        if as_json:
            json_line("outcome", {"workflow_id": handle.id, "result": as_dict(result), "exit_code": 0})
        else:
            typer.echo(
                f"tenant {result.tenant_id} has its data back: {len(result.restored)} segment(s) restored, "
                f"{len(result.removed)} added by the promotion removed"
                + ("" if result.changed else " (it had already been undone)")
            )
            typer.echo(undo_projection_text(result))
        return 0

    run_watching(body, lambda: workflow_id, lambda wid: f"stopped waiting; the undo continues: {undo_workflow_id(wid)}")
