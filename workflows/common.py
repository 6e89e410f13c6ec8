"""Pieces every DR workflow shares: activity options, search attributes, the step table kept
visible in the Temporal UI, error text for humans, and how a workflow's cancel is met.

Temporal cancels a workflow by calling ``Task.cancel`` on its main task: the ``CancelledError``
lands in whatever that task awaits (an activity is then cancelled, a timer dropped, a child asked
to cancel) and can be caught to wind down. The cancel is a state, not an event: it is delivered
once, and ``workflow.cancellation_reason()`` stays set afterwards, which is how a run finds a cancel
that a shielded change absorbed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from domain.messages.plan import DescribePlan, PlanSummary
    from domain.messages.progress import DONE, FAILED, PENDING, PLANNED, RUNNING, SKIPPED, Step, StepTable

T = TypeVar("T")

DR_PLAN = SearchAttributeKey.for_keyword("DrPlan")
DR_PHASE = SearchAttributeKey.for_keyword("DrPhase")
TENANT_ID = SearchAttributeKey.for_keyword("TenantId")

# Errors that retrying cannot fix: stop at once and report.
NON_RETRYABLE = ["AzureNonRetryableError", "PlanNotLoaded", "PlanMismatch", "PreflightRefused", "ValueError"]

AZURE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=0,  # bounded by the activity's schedule-to-close timeout instead
    non_retryable_error_types=NON_RETRYABLE,
)


def activity_options(
    minutes: float = 10, *, heartbeat_seconds: float = 15, summary: str | None = None
) -> dict[str, Any]:
    """Options for an Azure activity: retried on throttling and faults for up to ``minutes``.

    Long operations heartbeat every couple of seconds, so a worker that dies is noticed within
    ``heartbeat_seconds`` and the retry resumes the same Azure operation on another worker."""
    options: dict[str, Any] = {
        "start_to_close_timeout": timedelta(minutes=minutes),
        "schedule_to_close_timeout": timedelta(minutes=minutes * 3),
        "heartbeat_timeout": timedelta(seconds=heartbeat_seconds),
        "retry_policy": AZURE_RETRY,
    }
    if summary:
        options["summary"] = summary
    return options


def error_text(err: BaseException) -> str:
    """The innermost human message of an activity or child failure."""
    seen = err
    while isinstance(seen, (ActivityError, ChildWorkflowError)) and seen.cause is not None:
        seen = seen.cause
    if isinstance(seen, ApplicationError):
        return seen.message
    return str(seen)


def error_type(err: BaseException) -> str | None:
    seen = err
    while isinstance(seen, (ActivityError, ChildWorkflowError)) and seen.cause is not None:
        seen = seen.cause
    return seen.type if isinstance(seen, ApplicationError) else None


def now_iso() -> str:
    return workflow.now().isoformat().replace("+00:00", "Z")


def cancelled(err: BaseException) -> bool:
    """Whether ``err`` is this workflow's own cancellation, however it surfaced: an activity or child
    cancelled with the workflow raises its own error. A child cancelled by someone else is a failure."""
    return workflow.cancellation_reason() is not None and is_cancelled_exception(err)


def raise_if_cancelled() -> None:
    """Stop at a safe point once the workflow was cancelled, also when a shielded step absorbed the
    cancel (Temporal delivers it once: nothing else would raise it again)."""
    if workflow.cancellation_reason() is not None:
        raise asyncio.CancelledError


def cancel_note() -> str:
    """How a step or a run ended by the workflow's cancel is described: "cancelled[: <reason>]"."""
    why = workflow.cancellation_reason()
    return f"cancelled: {why}" if why else "cancelled"


async def shielded(work: Awaitable[T]) -> T:
    """Await ``work`` to its end even if the workflow is cancelled meanwhile: an Azure change cut short
    leaves its outcome unknown, a traffic shift cut short leaves traffic split, a report store cut short
    loses the report. (Unshielded, an activity's default cancellation type, TRY_CANCEL, stops waiting
    for it at once and asks it to stop at its next heartbeat.) The run finds the absorbed cancel
    afterwards (raise_if_cancelled, cancelled).

    ``work`` is awaited through ``workflow.wait`` (the deterministic ``asyncio.wait``), which, unlike
    ``asyncio.shield``, logs nothing when ``work`` fails after the cancel. Pass an activity as a started
    handle (``workflow.start_activity``): its command is then issued at once, where an unshielded
    ``execute_activity`` issues it, so histories written before the shield still replay. A coroutine
    starts as a task on the next turn of the loop, after the tasks already waiting there."""
    task = asyncio.ensure_future(work)
    while not task.done():
        try:
            await workflow.wait([task])
        except asyncio.CancelledError:
            if workflow.cancellation_reason() is None:  # not the workflow's cancel: the worker evicts it
                raise
    return task.result()


class Progress:
    """A workflow's step table, mirrored to the UI's current details on every change."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.table = StepTable()
        self.phase = "starting"

    def add(self, key: str, title: str) -> Step:
        return self.table.add(key, title)

    def set_phase(self, phase: str) -> None:
        self.phase = phase
        workflow.upsert_search_attributes([DR_PHASE.value_set(phase)])
        self.publish()

    def publish(self) -> None:
        workflow.set_current_details(f"**{self.title}** — phase: `{self.phase}`\n\n{self.table.markdown()}")

    def mark(self, key: str, status: str, detail: str | None = None, calls: list[str] | None = None) -> Step:
        step = self.table.get(key)
        if status == RUNNING and step.status != RUNNING:
            # A running step's progress updates keep the time it started.
            step.started_at = now_iso()
        elif status in (DONE, FAILED, SKIPPED, PLANNED):
            step.finished_at = now_iso()
        step.status = status
        if detail is not None:
            step.detail = detail
        if calls:
            step.calls.extend(calls)
        self.publish()
        return step

    def cut_short(self, detail: str, status: str = FAILED) -> None:
        """Steps still running when the run stops early end as ``status`` with ``detail``, followed by
        what they were doing."""
        for key in self.table.by_status(RUNNING):
            was = self.table.get(key).detail
            self.mark(key, status, f"{detail} (was: {was})" if was else detail)

    def skip_pending(self, detail: str, *keep: str) -> None:
        """Steps not started are skipped with ``detail``, except those in ``keep``."""
        for key in self.table.by_status(PENDING):
            if key not in keep:
                self.mark(key, SKIPPED, detail)

    async def run(self, key: str, body: Callable[[], Awaitable[T]], describe: Callable[[T], str]) -> T:
        """Run one step: running → done (with ``describe(result)``) or failed (with the reason, or
        "cancelled[: <reason>]" when the workflow's cancel stopped it)."""
        self.mark(key, RUNNING)
        try:
            result = await body()
        except (ActivityError, ChildWorkflowError, ApplicationError) as err:
            self.mark(key, FAILED, cancel_note() if cancelled(err) else error_text(err))
            raise
        self.mark(key, DONE, describe(result))
        return result


async def gather_steps(*steps: Awaitable[Any], passthrough: tuple[type[BaseException], ...] = ()) -> list[Any]:
    """Run independent steps together; every step finishes (or fails) before the first failure is
    raised, so a step table never shows a step as running when it is not. Failures other than
    activity, child or application errors (and ``passthrough`` types) are raised as they are."""
    results = await asyncio.gather(*steps, return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    for failure in failures:
        if not isinstance(failure, (ActivityError, ChildWorkflowError, ApplicationError, *passthrough)):
            raise failure
    if failures:
        raise failures[0]
    return list(results)


async def describe_plan(progress: Progress, plan: str, digest: str, *, cancelled_phase: str) -> PlanSummary:
    """plan.describe, the first call of a failover or failback: the plan as the worker holds it (refused
    unless it has ``digest``). Cancelled here, the run shows ``cancelled_phase``: no step had started."""
    try:
        summary: PlanSummary = await workflow.execute_activity(
            "plan.describe",
            DescribePlan(plan, digest),
            result_type=PlanSummary,
            **activity_options(1, summary=f"load plan {plan}"),
        )
    except ActivityError as err:
        if cancelled(err):
            progress.set_phase(cancelled_phase)
        raise
    return summary


async def desired_state_step(
    progress: Progress,
    key: str,
    *,
    activity_name: str,
    arg: Any,
    result_type: type[T],
    describe: Callable[[T], str],
    summary: str,
    planned_calls: list[str],
    minutes: float = 10,
) -> T:
    """One desired-state activity as a step of ``progress``; in a dry run (``arg.dry_run``) the step
    shows the calls it would make, which are also appended to ``planned_calls``.

    The activity is a change to the estate, so it is shielded: a workflow cancelled meanwhile lets it
    finish rather than cancelling an Azure operation halfway (every step is idempotent and short), and
    stops at its next safe point."""
    result: T = await progress.run(
        key,
        lambda: shielded(
            workflow.start_activity(
                activity_name, arg, result_type=result_type, **activity_options(minutes, summary=summary)
            )
        ),
        describe,
    )
    if getattr(arg, "dry_run", False):
        calls = list(getattr(result, "planned_calls", ()) or ())
        planned_calls.extend(calls)
        progress.mark(key, PLANNED, "; ".join(calls) or "nothing to do: already in the target state", calls)
    return result
