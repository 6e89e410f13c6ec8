"""What every drctl command group that talks to Temporal shares: the connection options, connecting,
running an async command body with its errors turned into messages and exit codes, and the pieces
the start/status/watch commands repeat (status queries, how a workflow ended, JSON lines, the UI
link, Ctrl-C while watching).

The command modules keep what is theirs (workflow types, views, messages); the helpers here take
those as arguments, so one behaviour serves failover, failback, backup, restore, drill and plan.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import getpass
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Generic, NoReturn, Protocol, Self, TypeVar
from urllib.parse import quote

import typer
from rich.console import RenderableType
from rich.live import Live
from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.converter import value_to_type
from temporalio.exceptions import (
    ApplicationError,
    CancelledError,
    FailureError,
    TerminatedError,
    WorkflowAlreadyStartedError,
)
from temporalio.exceptions import TimeoutError as WorkflowTimeoutError
from temporalio.service import RPCError, RPCStatusCode

from starters.output import console, emit_json, fail, show, table
from workers.connection import TemporalSettings, TemporalUnreachable
from workflows.common import DR_PHASE, DR_PLAN

EXIT_INTERRUPTED = 130
DEFAULT_UI = "http://127.0.0.1:8233"
POLL_SECONDS = 0.75
QUERY_TIMEOUT = timedelta(seconds=5)
UPDATE_TIMEOUT = timedelta(seconds=30)
QUERY_ERRORS = (RPCError, RPCTimeoutOrCancelledError, WorkflowQueryFailedError, WorkflowQueryRejectedError)
# What an INVALID_ARGUMENT about a search attribute means: the server was set up without drctl.
MISSING_SEARCH_ATTRIBUTES = (
    "The server lacks the DR search attributes; register them with "
    "`temporal operator search-attribute create --name DrPlan --type Keyword` (and DrPhase, TenantId), "
    "or use `drctl dev up`"
)

AddressOption = Annotated[
    str | None, typer.Option("--address", help="Temporal host:port.", envvar="TEMPORAL_ADDRESS", show_envvar=True)
]
NamespaceOption = Annotated[
    str | None, typer.Option("--namespace", help="Temporal namespace.", envvar="TEMPORAL_NAMESPACE", show_envvar=True)
]
TaskQueueOption = Annotated[
    str | None, typer.Option("--task-queue", help="Task queue of the workers.", envvar="DR_TASK_QUEUE")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (lines) instead of tables.")]
ByOption = Annotated[str | None, typer.Option("--by", help="Who asks (default: $USER).")]

ResultT = TypeVar("ResultT")
StatusT = TypeVar("StatusT")
ListingT = TypeVar("ListingT", bound="WorkflowListing")
# The columns of a ``list`` command's table: (header, WorkflowListing attribute).
LISTING_COLUMNS = (
    ("id", "workflow_id"),
    ("plan", "plan"),
    ("phase", "phase"),
    ("status", "status"),
    ("started (UTC)", "start_time"),
)


class CommandError(Exception):
    """A request to Temporal could not be carried out; the message says why (exit code 1)."""


# ---- settings, connecting, running a command -------------------------------------------------------


def temporal_settings(address: str | None, namespace: str | None, task_queue: str | None = None) -> TemporalSettings:
    """Environment settings with the command's flags on top."""
    return TemporalSettings.from_env(address=address, namespace=namespace, task_queue=task_queue)


_connected = False


async def connect(settings: TemporalSettings) -> Client:
    """A Temporal client for ``settings``; TemporalUnreachable (exit 1 with advice) when there is none."""
    global _connected  # noqa: PLW0603 - one process-wide fact: see exit_process()
    # Set before trying: a failed attempt starts the client's Rust threads too.
    _connected = True
    try:
        client = await settings.connect()
    except ValueError as exc:  # TLS settings incomplete
        raise TemporalUnreachable(str(exc)) from exc
    return client


def connected_to_temporal() -> bool:
    """Whether a command of this process opened a Temporal client."""
    return _connected


def exit_process(code: object) -> NoReturn:
    """Exit with ``code`` (SystemExit semantics) without interpreter teardown.

    The Temporal client's Rust threads can call into Python while a short-lived process
    finalizes, which aborts it ("PyGILState_Release: thread state must be current",
    temporalio/sdk-python#300) after the command already succeeded; flushing and leaving with
    os._exit avoids that."""
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        sys.stderr.write(f"{code}\n")
        status = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    logging.shutdown()
    os._exit(status)


def run_command(body: Callable[[], Coroutine[Any, Any, int]]) -> NoReturn:
    """Run an async command body; map the helpers' errors to messages and exit codes."""
    try:
        code = asyncio.run(body())
    except TemporalUnreachable as exc:
        fail(str(exc))
    except CommandError as exc:
        fail(str(exc))
    raise typer.Exit(code)


def run_watching(
    body: Callable[[], Coroutine[Any, Any, int]],
    workflow_id: Callable[[], str | None],
    hint: Callable[[str], str],
) -> NoReturn:
    """``run_command`` where Ctrl-C only stops watching (the workflow runs on in Temporal): say
    ``hint(workflow id)`` (or "interrupted" before one started) and exit 130."""
    try:
        run_command(body)
    except KeyboardInterrupt:
        wid = workflow_id()
        typer.echo(hint(wid) if wid else "interrupted", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None


# ---- small pure helpers ------------------------------------------------------------------------------


def ui_url(settings: TemporalSettings, workflow_id: str, ui_base: str | None = None) -> str:
    """The workflow's page in the Temporal UI (base from ``DR_UI_URL``)."""
    base = (ui_base or os.environ.get("DR_UI_URL") or DEFAULT_UI).rstrip("/")
    return f"{base}/namespaces/{quote(settings.namespace, safe='')}/workflows/{quote(workflow_id, safe='')}"


def current_user() -> str:
    """Who runs drctl (for "requested by" fields), or "unknown"."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def quoted(value: str) -> str:
    """A visibility-query string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def is_terminal() -> bool:
    """Whether stdout is a terminal (live tables) rather than a pipe or file (JSON lines)."""
    return sys.stdout.isatty()


def json_output(as_json: bool, wait: bool) -> bool:
    """Whether a command prints JSON: asked to, or watching (``--wait``) without a terminal to draw on."""
    return as_json or (wait and not is_terminal())


def json_line(kind: str, data: dict[str, Any]) -> None:
    """One event of a ``--json`` stream: ``{"event": kind, ...data}`` on one line."""
    typer.echo(json.dumps({"event": kind, **data}, sort_keys=True, default=str))


def echo_started(headline: str, workflow_id: str, url: str) -> None:
    """What a start command prints first: what started, its workflow id and its UI link."""
    typer.echo(headline)
    typer.echo(f"  workflow: {workflow_id}")
    typer.echo(f"  UI:       {url}")


# ---- errors from Temporal ------------------------------------------------------------------------------


def not_found(exc: BaseException) -> bool:
    """Whether Temporal answered NOT_FOUND (no such workflow or schedule)."""
    return isinstance(exc, RPCError) and exc.status == RPCStatusCode.NOT_FOUND


def rpc_message(exc: RPCError, what: str, *, missing_attributes: str = MISSING_SEARCH_ATTRIBUTES) -> str:
    """``what: the server's message``, saying ``missing_attributes`` when the DR search attributes are missing."""
    if exc.status == RPCStatusCode.INVALID_ARGUMENT and "search attribute" in exc.message.lower():
        return f"{what}: {exc.message}. {missing_attributes}"
    return f"{what}: {exc.message}"


def failure_message(err: BaseException) -> str:
    """The human message of a workflow failure: the workflow's own ApplicationError message,
    otherwise the innermost cause."""
    seen: BaseException = err
    while not isinstance(seen, ApplicationError) and isinstance(seen, FailureError) and seen.cause is not None:
        seen = seen.cause
    if isinstance(seen, FailureError):
        return seen.message
    return str(seen)


def query_problem(exc: BaseException) -> str:
    """Why the "status" query got no answer, in the operator's terms."""
    if isinstance(exc, RPCTimeoutOrCancelledError | asyncio.TimeoutError) or (
        isinstance(exc, RPCError) and exc.status == RPCStatusCode.DEADLINE_EXCEEDED
    ):
        return "no worker answered the status query (is dr-worker running? `drctl dev status`)"
    if isinstance(exc, WorkflowQueryFailedError):
        return f"the status query failed: {exc.message}"
    return f"the status query failed: {exc}"


# ---- workflows from outside ----------------------------------------------------------------------------


def status_name(status: WorkflowExecutionStatus | None) -> str:
    """``Running``, ``Completed``, ``ContinuedAsNew``, ``TimedOut``...: the names the Temporal UI shows."""
    if status is None:
        return "Unknown"
    return {
        WorkflowExecutionStatus.RUNNING: "Running",
        WorkflowExecutionStatus.COMPLETED: "Completed",
        WorkflowExecutionStatus.FAILED: "Failed",
        WorkflowExecutionStatus.CANCELED: "Canceled",
        WorkflowExecutionStatus.TERMINATED: "Terminated",
        WorkflowExecutionStatus.CONTINUED_AS_NEW: "ContinuedAsNew",
        WorkflowExecutionStatus.TIMED_OUT: "TimedOut",
    }.get(status, status.name.title())


def ended_state(cause: BaseException | None) -> str:
    """The execution status a workflow failure with ``cause`` left: Terminated, Canceled, TimedOut or Failed."""
    if isinstance(cause, TerminatedError):
        return "Terminated"
    if isinstance(cause, CancelledError):
        return "Canceled"
    if isinstance(cause, WorkflowTimeoutError):
        return "TimedOut"
    return "Failed"


def failure_result(err: BaseException, result_type: type[ResultT], *keys: str) -> ResultT | None:
    """The ``result_type`` a failed workflow attaches to its ApplicationError as the first detail
    (a dict with ``keys`` once it came over the wire), if any."""
    if not isinstance(err, ApplicationError) or not err.details:
        return None
    detail = err.details[0]
    if isinstance(detail, result_type):
        return detail
    if isinstance(detail, dict) and all(key in detail for key in keys):
        try:
            converted: ResultT = value_to_type(result_type, detail)
        except (TypeError, ValueError, KeyError):
            return None
        return converted
    return None


async def wait_closed(
    handle: WorkflowHandle[Any, ResultT], from_failure: Callable[[BaseException], ResultT | None]
) -> tuple[str, ResultT | None, str | None]:
    """Wait for the workflow to close: how it ended, its result (or the one its failure carries,
    by ``from_failure``) and why it failed."""
    try:
        return "Completed", await handle.result(), None
    except WorkflowFailureError as err:
        return ended_state(err.cause), from_failure(err.cause), failure_message(err.cause)


async def start_workflow_once(
    client: Client,
    workflow_type: str,
    arg: Any,
    *,
    workflow_id: str,
    task_queue: str,
    result_type: type[ResultT],
    search_attributes: Sequence[SearchAttributePair[str]],
    summary: str,
    details: str | None = None,
    error: type[Exception],
    already_started: Exception | str,
    missing_attributes: str = MISSING_SEARCH_ATTRIBUTES,
) -> WorkflowHandle[Any, ResultT]:
    """Start ``workflow_type`` under ``workflow_id``, never a second run with that id:
    ``already_started`` (an ``error`` when a message) when one exists, ``error`` for Temporal's
    other refusals."""
    try:
        handle: WorkflowHandle[Any, ResultT] = await client.start_workflow(
            workflow_type,
            arg,
            id=workflow_id,
            task_queue=task_queue,
            result_type=result_type,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            search_attributes=TypedSearchAttributes(list(search_attributes)),
            static_summary=summary,
            static_details=details,
        )
    except WorkflowAlreadyStartedError as exc:
        raise (error(already_started) if isinstance(already_started, str) else already_started) from exc
    except RPCError as exc:
        raise error(rpc_message(exc, f"cannot start {workflow_id}", missing_attributes=missing_attributes)) from exc
    return handle


async def query_status(handle: WorkflowHandle[Any, Any], result_type: type[ResultT]) -> ResultT:
    """The workflow's "status" query (QUERY_ERRORS when no worker answers in time)."""
    status: ResultT = await handle.query("status", result_type=result_type, rpc_timeout=QUERY_TIMEOUT)
    return status


async def describe_workflow(
    handle: WorkflowHandle[Any, Any],
    workflow_type: str,
    error: type[Exception],
    *,
    unknown: type[Exception] | None = None,
    list_hint: str = "",
    missing_attributes: str = MISSING_SEARCH_ATTRIBUTES,
    rpc_timeout: timedelta | None = None,
) -> WorkflowExecutionDescription:
    """The workflow's description; ``error`` when it cannot be described or is not a
    ``workflow_type``, ``unknown`` (default ``error``) naming the id and ``list_hint`` when there is none."""
    try:
        description = await handle.describe(rpc_timeout=rpc_timeout)
    except RPCError as exc:
        if not_found(exc):
            raise (unknown or error)(f"no workflow with id {handle.id}{list_hint}") from exc
        raise error(rpc_message(exc, f"cannot describe {handle.id}", missing_attributes=missing_attributes)) from exc
    if description.workflow_type != workflow_type:
        raise error(f"{handle.id} is a {description.workflow_type}, not a {workflow_type}")
    return description


# ---- showing and watching a workflow -------------------------------------------------------------------


@dataclass
class WorkflowView(Generic[StatusT, ResultT]):
    """Everything a starter can learn about one workflow from outside; each kind of workflow adds
    its own fields and says which exit code its state means."""

    workflow_id: str
    execution_status: str  # Running | Completed | Failed | Terminated | Canceled | TimedOut | ...
    status: StatusT | None = None  # from the "status" query
    result: ResultT | None = None  # when closed: its result, or the one its failure carries
    failure: str | None = None  # why it failed, or why it could not be queried
    run_id: str | None = None  # the run described (a continue-as-new starts another under the same id)

    @property
    def closed(self) -> bool:
        return self.execution_status != "Running"

    def as_json(self) -> dict[str, Any]:
        """Every field as JSON-ready data (messages as dicts)."""
        return dataclasses.asdict(self)


class Phased(Protocol):
    """A workflow's "status" query answer: every one names the phase the workflow is in."""

    @property
    def phase(self) -> str: ...


PhasedT = TypeVar("PhasedT", bound=Phased)
ReadViewT = TypeVar("ReadViewT", bound="WorkflowView[Any, Any]")
COMPLETED_PATIENCE = 30.0  # once the status says "completed", how long to wait for the result itself


@dataclass(frozen=True)
class WorkflowReader(Generic[PhasedT, ResultT, ReadViewT]):
    """How drctl reads one kind of workflow from outside: its "status" query, its result (or the one
    a failure carries as its first detail, recognised by ``result_keys``), and the view it makes of
    them. ``error`` is the command group's error, ``unknown`` the one for an id Temporal does not know."""

    status_type: type[PhasedT]
    result_type: type[ResultT]
    view_type: Callable[..., ReadViewT]  # (workflow_id, execution_status, status=, result=, failure=, run_id=)
    result_keys: tuple[str, ...]
    error: Callable[[str], Exception]
    unknown: Callable[[str], Exception] | None = None

    def handle(self, client: Client, workflow_id: str) -> WorkflowHandle[Any, ResultT]:
        """The workflow's newest run (its result follows continue-as-new)."""
        return client.get_workflow_handle(workflow_id, result_type=self.result_type)

    def result_from_failure(self, err: BaseException) -> ResultT | None:
        return failure_result(err, self.result_type, *self.result_keys)

    async def query(self, handle: WorkflowHandle[Any, Any]) -> PhasedT:
        return await query_status(handle, self.status_type)

    async def closed(self, handle: WorkflowHandle[Any, ResultT]) -> ReadViewT:
        """Wait for the workflow to close and describe how it ended."""
        state, result, failure = await wait_closed(handle, self.result_from_failure)
        return self.view_type(handle.id, state, result=result, failure=failure)

    async def current(
        self, handle: WorkflowHandle[Any, ResultT], description: WorkflowExecutionDescription
    ) -> ReadViewT:
        """The workflow as ``description`` found it: the "status" query while it runs; once closed,
        its result (or the one its failure carries), and the last status when there is no result and
        a worker can still answer the query (a closed run answers only while one can replay it)."""
        if description.status == WorkflowExecutionStatus.RUNNING:
            view = self.view_type(handle.id, "Running", run_id=description.run_id)
            try:
                view.status = await self.query(handle)
            except QUERY_ERRORS as exc:
                view.failure = query_problem(exc)
            return view
        view = await self.closed(handle)
        view.run_id = description.run_id
        if view.result is None:
            with contextlib.suppress(*QUERY_ERRORS):
                view.status = await self.query(handle)
        return view

    async def watch(
        self,
        handle: WorkflowHandle[Any, ResultT],
        on_update: Callable[[ReadViewT], None],
        *,
        until: Callable[[PhasedT], bool] | None = None,
        interval: float = POLL_SECONDS,
        within: float | None = None,
    ) -> ReadViewT:
        """Poll the "status" query until the workflow closes, ``until(status)`` holds, or ``within``
        seconds have passed; ``on_update`` sees every poll. The view returned is the last poll's, or
        once closed the closed view with the last status seen when it has no result."""
        closing = asyncio.create_task(self.closed(handle))
        loop = asyncio.get_running_loop()
        deadline = None if within is None else loop.time() + within
        last: PhasedT | None = None
        try:
            while not closing.done():
                view = self.view_type(handle.id, "Running", status=last, run_id=handle.result_run_id)
                try:
                    view.status = last = await self.query(handle)
                except QUERY_ERRORS as exc:
                    if not_found(exc):
                        raise (self.unknown or self.error)(f"no workflow with id {handle.id}") from exc
                    view.failure = query_problem(exc)
                if closing.done():
                    break
                on_update(view)
                if (last is not None and until is not None and until(last)) or (
                    deadline is not None and loop.time() >= deadline
                ):
                    return view
                # "completed" comes just before the workflow returns: wait for the result itself.
                completing = last is not None and last.phase == "completed"
                await asyncio.wait({closing}, timeout=COMPLETED_PATIENCE if completing else interval)
            final = closing.result()
            if final.result is None:
                final.status = final.status or last
            final.run_id = handle.result_run_id
            return final
        finally:
            closing.cancel()


class Reportable(Protocol):
    """What ``status`` and ``--wait`` print of a view: JSON for scripts and the exit code it means."""

    def as_json(self) -> dict[str, Any]: ...

    def exit_code(self) -> int: ...


ViewT = TypeVar("ViewT", bound=Reportable)


def show_view(view: ViewT, url: str, as_json: bool, print_view: Callable[[ViewT], None]) -> None:
    """``status`` without watching: the view as JSON (with its UI link), or printed and the link after it."""
    if as_json:
        emit_json(view.as_json() | {"url": url})
    else:
        print_view(view)
        typer.echo(f"UI: {url}")


async def watch_and_print(
    watch: Callable[[Callable[[ViewT], None]], Awaitable[ViewT]],
    as_json: bool,
    live_view: Callable[[ViewT], RenderableType | None],
    print_view: Callable[[ViewT], None],
) -> int:
    """``--wait``: with ``as_json`` each changed view as a "status" JSON line and the last one as
    "outcome"; otherwise ``live_view`` of each poll on the terminal (None: keep what is shown) and
    ``print_view`` of the last one. ``watch(on_update)`` polls and returns the last view; its exit code."""
    if as_json:
        previous: dict[str, Any] | None = None

        def emit(view: ViewT) -> None:
            nonlocal previous
            data = view.as_json()
            if data != previous:
                json_line("status", data)
                previous = data

        final = await watch(emit)
        json_line("outcome", {**final.as_json(), "exit_code": final.exit_code()})
        return final.exit_code()
    with Live(console=console(), refresh_per_second=4, transient=True) as live:

        def refresh(view: ViewT) -> None:
            shown = live_view(view)
            if shown is not None:
                live.update(shown)

        final = await watch(refresh)
    print_view(final)
    return final.exit_code()


# ---- listing workflows ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkflowListing:
    """One workflow as a ``list`` command shows it, from Temporal's visibility store."""

    workflow_id: str
    plan: str  # the DrPlan search attribute
    phase: str  # the DrPhase search attribute
    status: str
    start_time: datetime | None
    close_time: datetime | None

    @classmethod
    def of(cls, wf: WorkflowExecution, **more: Any) -> Self:
        """The listing of ``wf``; ``more`` fills a subclass's own fields."""
        attrs = wf.typed_search_attributes
        return cls(
            workflow_id=wf.id,
            plan=attrs.get(DR_PLAN) or "",
            phase=attrs.get(DR_PHASE) or "",
            status=status_name(wf.status),
            start_time=wf.start_time,
            close_time=wf.close_time,
            **more,
        )


def show_listing(
    rows: Sequence[ListingT], *, as_json: bool, title: str, columns: Sequence[tuple[str, str]] = LISTING_COLUMNS
) -> None:
    """``list``'s output: the rows as JSON, or a table of ``columns`` (times in UTC to the second)."""
    if as_json:
        emit_json([dataclasses.asdict(row) for row in rows])
        return

    def cell(row: ListingT, attribute: str) -> object:
        value = getattr(row, attribute)
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if isinstance(value, datetime) else value

    show(table(title, [header for header, _ in columns], [[cell(r, a) for _, a in columns] for r in rows]))
