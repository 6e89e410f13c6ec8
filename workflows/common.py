"""Pieces every DR workflow shares: activity options, search attributes, the step table kept
visible in the Temporal UI, and error text for humans."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from domain.messages.progress import DONE, FAILED, PLANNED, RUNNING, SKIPPED, Step, StepTable

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

    async def run(self, key: str, body: Callable[[], Awaitable[T]], describe: Callable[[T], str]) -> T:
        """Run one step: running → done (with ``describe(result)``) or failed (with the reason)."""
        self.mark(key, RUNNING)
        try:
            result = await body()
        except (ActivityError, ChildWorkflowError, ApplicationError) as err:
            self.mark(key, FAILED, error_text(err))
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
    shows the calls it would make, which are also appended to ``planned_calls``."""
    result: T = await progress.run(
        key,
        lambda: workflow.execute_activity(
            activity_name, arg, result_type=result_type, **activity_options(minutes, summary=summary)
        ),
        describe,
    )
    if getattr(arg, "dry_run", False):
        calls = list(getattr(result, "planned_calls", ()) or ())
        planned_calls.extend(calls)
        progress.mark(key, PLANNED, "; ".join(calls) or "nothing to do: already in the target state", calls)
    return result
