"""PlanLockWorkflow: at most one failover or failback of a plan at a time, enforced by Temporal itself.

Temporal runs at most one open workflow per workflow id, so the failover or failback that starts the
child ``dr-lock-{plan}`` holds the plan until it releases it, and a second one's start of that child
fails at once: atomic, unlike a visibility query, which lags behind the starts it should see. The
holder releases the lock with a signal when it ends; were it terminated or timed out instead, the
child's parent-close policy (terminate) frees the lock with it. Dry runs change nothing and take no
lock. The starters keep their visibility check for a friendlier refusal naming the running workflow.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import workflow
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.workflow import ChildWorkflowHandle, ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from domain.messages.progress import FAILED
    from workflows.common import Progress, error_text

PLAN_BUSY = "PlanBusy"


def plan_lock_id(plan: str) -> str:
    """The lock's workflow id: one per plan."""
    return f"dr-lock-{plan}"


@dataclass(frozen=True)
class PlanLockInput:
    plan: str
    holder: str  # the workflow id of the failover or failback holding the plan
    holder_type: str  # FailoverWorkflow | FailbackWorkflow


@dataclass(frozen=True)
class PlanLockRelease:
    holder: str  # only the holder's release counts


@workflow.defn(name="PlanLockWorkflow")
class PlanLockWorkflow:
    @workflow.init
    def __init__(self, inp: PlanLockInput) -> None:
        self.inp = inp
        self.released = False

    @workflow.run
    async def run(self, inp: PlanLockInput) -> None:
        await workflow.wait_condition(lambda: self.released)

    @workflow.signal(name="release")
    def release(self, req: PlanLockRelease) -> None:
        if req.holder == self.inp.holder:
            self.released = True

    @workflow.query(name="holder")
    def holder(self) -> PlanLockInput:
        return self.inp


PlanLock = ChildWorkflowHandle[PlanLockWorkflow, None]


async def acquire_plan_lock(plan: str, holder_type: str) -> PlanLock:
    """Hold ``plan`` for the calling workflow; ApplicationError PlanBusy (non-retryable) when another
    failover or failback of it holds the plan now."""
    lock_id = plan_lock_id(plan)
    try:
        return await workflow.start_child_workflow(
            PlanLockWorkflow.run,
            PlanLockInput(plan, workflow.info().workflow_id, holder_type),
            id=lock_id,
            parent_close_policy=ParentClosePolicy.TERMINATE,
            static_summary=f"{holder_type} {workflow.info().workflow_id} holds plan {plan}",
        )
    except WorkflowAlreadyStartedError as err:
        raise ApplicationError(
            f"another failover or failback of plan {plan} is running: it holds {lock_id}. See who with "
            f"`temporal workflow query --workflow-id {lock_id} --type holder`, and let it end (or abort it) first",
            type=PLAN_BUSY,
            non_retryable=True,
        ) from err


async def hold_plan(
    plan: str, holder_type: str, progress: Progress, *, first_step: str, failed_phase: str, dry_run: bool
) -> PlanLock | None:
    """The plan's lock for a failover or failback about to start (a dry run changes nothing and takes
    none). PlanBusy while another holds it, with ``first_step`` failed saying so and ``failed_phase`` set."""
    if dry_run:
        return None
    try:
        return await acquire_plan_lock(plan, holder_type)
    except ApplicationError as err:
        progress.mark(first_step, FAILED, error_text(err))
        progress.set_phase(failed_phase)
        raise


async def release_plan_lock(lock: PlanLock | None) -> None:
    """Let the next failover or failback of the plan start (nothing to do without a lock), and wait until
    the lock has ended: once the holder has ended too, the plan is free (no start can race a release)."""
    if lock is not None:
        await lock.signal(PlanLockWorkflow.release, PlanLockRelease(workflow.info().workflow_id))
        await lock
