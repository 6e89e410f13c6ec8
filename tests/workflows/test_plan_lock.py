"""PlanLockWorkflow on the time-skipping server: one holder per plan at a time, atomically, freed by
the holder's release or by the holder ending any other way."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from temporalio import workflow
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from workflows.lock import (
    PLAN_BUSY,
    PlanLockInput,
    PlanLockRelease,
    PlanLockWorkflow,
    acquire_plan_lock,
    plan_lock_id,
    release_plan_lock,
)

with workflow.unsafe.imports_passed_through():
    # The helpers' module imports the Azure activities, which a workflow module must not load.
    from tests.workflows.fakes import ended, failure_of_closed


@dataclass(frozen=True)
class HoldInput:
    plan: str


@dataclass(frozen=True)
class Finish:
    note: str = ""


@workflow.defn(name="LockHolder")
class LockHolder:
    """Holds its plan's lock until told to finish, then releases it."""

    def __init__(self) -> None:
        self.held = False
        self.finished = False

    @workflow.run
    async def run(self, inp: HoldInput) -> str:
        lock = await acquire_plan_lock(inp.plan, "LockHolder")
        self.held = True
        await workflow.wait_condition(lambda: self.finished)
        await release_plan_lock(lock)
        return "released"

    @workflow.signal(name="finish")
    def finish(self, _: Finish) -> None:
        self.finished = True

    @workflow.query(name="held")
    def holding(self) -> bool:
        return self.held


def unique_plan() -> str:
    return f"plan-{uuid.uuid4().hex[:8]}"


async def hold(client: Client, task_queue: str, plan: str) -> WorkflowHandle[LockHolder, str]:
    """Start a holder of ``plan`` and wait until it holds the lock or has ended."""
    handle = await client.start_workflow(
        LockHolder.run, HoldInput(plan), id=f"holder-{uuid.uuid4().hex[:8]}", task_queue=task_queue
    )
    async with asyncio.timeout(15):
        while (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            if await handle.query(LockHolder.holding):
                break
            await asyncio.sleep(0.05)
    return handle


def serving(env: WorkflowEnvironment, task_queue: str) -> Worker:
    return Worker(env.client, task_queue=task_queue, workflows=[LockHolder, PlanLockWorkflow])


class TestPlanLock:
    async def test_a_second_holder_of_the_same_plan_is_refused_until_the_first_releases(
        self, time_env: WorkflowEnvironment, task_queue: str
    ) -> None:
        """While one holds the plan a second start fails PlanBusy (naming the lock); another plan is free; once
        the first releases, the plan can be held again."""
        plan = unique_plan()
        async with serving(time_env, task_queue):
            first = await hold(time_env.client, task_queue, plan)
            second = await hold(time_env.client, task_queue, plan)
            cause = await failure_of_closed(second)
            other = await hold(time_env.client, task_queue, unique_plan())
            holder = await time_env.client.get_workflow_handle(plan_lock_id(plan)).query(
                "holder", result_type=PlanLockInput
            )
            await first.signal(LockHolder.finish, Finish())
            first_ended = await ended(first)
            third = await hold(time_env.client, task_queue, plan)
            held_again = await third.query(LockHolder.holding)
            for handle in (other, third):
                await handle.signal(LockHolder.finish, Finish())
                assert await ended(handle) == WorkflowExecutionStatus.COMPLETED
        assert cause.application_failure_info.type == PLAN_BUSY
        assert cause.application_failure_info.non_retryable
        assert f"another failover or failback of plan {plan} is running: it holds dr-lock-{plan}" in cause.message
        assert first_ended == WorkflowExecutionStatus.COMPLETED
        assert (holder.plan, holder.holder, holder.holder_type) == (plan, first.id, "LockHolder")
        assert held_again

    async def test_a_holder_that_ends_without_releasing_frees_the_plan(
        self, dev_env: WorkflowEnvironment, task_queue: str
    ) -> None:
        """A holder terminated mid-hold takes its lock with it (parent-close policy), so the plan is never stuck.
        On a dev server: the time-skipping server does not apply parent-close policies."""
        plan = unique_plan()
        async with serving(dev_env, task_queue):
            first = await hold(dev_env.client, task_queue, plan)
            await first.terminate(reason="operator ended it")
            lock = await ended(dev_env.client.get_workflow_handle(plan_lock_id(plan)))
            second = await hold(dev_env.client, task_queue, plan)
            held = await second.query(LockHolder.holding)
            await second.signal(LockHolder.finish, Finish())
            assert await ended(second) == WorkflowExecutionStatus.COMPLETED
        assert lock == WorkflowExecutionStatus.TERMINATED
        assert held

    async def test_a_release_by_another_workflow_does_not_free_the_plan(
        self, time_env: WorkflowEnvironment, task_queue: str
    ) -> None:
        """Only the holder's own release counts: a stray release signal leaves the lock held."""
        plan = unique_plan()
        async with serving(time_env, task_queue):
            first = await hold(time_env.client, task_queue, plan)
            lock = time_env.client.get_workflow_handle(plan_lock_id(plan))
            await lock.signal(PlanLockWorkflow.release, PlanLockRelease("someone-else"))
            second = await hold(time_env.client, task_queue, plan)
            cause = await failure_of_closed(second)
            await first.signal(LockHolder.finish, Finish())
            assert await ended(first) == WorkflowExecutionStatus.COMPLETED
        assert cause.application_failure_info.type == PLAN_BUSY
