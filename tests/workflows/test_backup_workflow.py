"""BackupWorkflow's orchestration on the time-skipping test server with faked Blob Storage and catalog
(and the real manifest signing), and its hourly Temporal Schedule on a dev server (the time-skipping
server has no schedule API)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.client import (
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    ScheduleSpec,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.exceptions import ApplicationError
from temporalio.runtime import MetricBuffer, Runtime, TelemetryConfig
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain.messages.backups import (
    BACKUP_FULL,
    STATUS_COMPLETED,
    STATUS_FAILED,
    STATUS_IN_PROGRESS,
)
from domain.messages.restore import BackupInput, BackupResult, BackupStatus, backup_schedule_id
from domain.plan import DrPlan
from starters.backup_cmd import WORKFLOW_TYPE, scheduled_workflow_id, upsert_backup_schedule
from tests.conftest import time_skipping
from tests.workflows.backup_fakes import Backups, small_plan, tenant_ids
from workflows.backup import (
    BACKUP_DURATION,
    BACKUP_FAILED,
    BACKUP_RUNS,
    RESULT_FAILED,
    RESULT_SUCCESS,
    BackupWorkflow,
    bounded,
)
from workflows.common import DR_PHASE, DR_PLAN, TENANT_ID

Handle = WorkflowHandle[Any, BackupResult]


async def run_backup(env: WorkflowEnvironment, backups: Backups, task_queue: str, **fields: Any) -> Handle:
    """Start a backup of ``backups.plan`` on a worker serving the fakes; returns once it has closed."""
    inp = BackupInput(plan=backups.plan.name, **fields)
    async with Worker(env.client, task_queue=task_queue, workflows=[BackupWorkflow], activities=backups.activities()):
        handle: Handle = await env.client.start_workflow(
            BackupWorkflow.run, inp, id=f"backup-{inp.plan}-{uuid.uuid4().hex[:8]}", task_queue=task_queue
        )
        with contextlib.suppress(WorkflowFailureError):
            await handle.result()
    return handle


async def failure_of(handle: Handle) -> ApplicationError:
    with pytest.raises(WorkflowFailureError) as err:
        await handle.result()
    assert isinstance(err.value.cause, ApplicationError)
    return err.value.cause


@pytest.fixture(scope="module")
async def metrics_env() -> AsyncIterator[tuple[WorkflowEnvironment, MetricBuffer]]:
    buffer = MetricBuffer(10000)
    async with time_skipping(Runtime(telemetry=TelemetryConfig(metrics=buffer))) as env:
        yield env, buffer


def metric_updates(buffer: MetricBuffer, name: str, plan: str) -> list[Any]:
    return [u for u in buffer.retrieve_updates() if u.metric.name == name and u.attributes.get("plan") == plan]


class TestEveryTenant:
    async def test_each_tenant_gets_one_signed_recovery_point_and_metrics(
        self, metrics_env: tuple[WorkflowEnvironment, MetricBuffer], task_queue: str, plan: DrPlan
    ) -> None:
        """Backing up every tenant makes one completed, signed, full recovery point per tenant holding
        each live segment, and records a success and a duration per tenant, labelled with the plan."""
        env, buffer = metrics_env
        buffer.retrieve_updates()
        backups = Backups(small_plan(plan, 3))
        handle = await run_backup(env, backups, task_queue)
        result = await handle.result()
        updates = [u for u in buffer.retrieve_updates() if u.attributes.get("plan") == backups.plan.name]
        tenants = tenant_ids(backups.plan)
        assert sorted(p.split("-", 3)[3] for p in result.recovery_points) == sorted(tenants)
        assert result.failed == ()
        assert result.tenants == 3
        assert result.bytes_copied == 3 * sum(len(b) for b in backups.world.live.values())
        for tenant in tenants:
            (point,) = backups.points(tenant)
            assert point.status == STATUS_COMPLETED
            assert point.backup_type == BACKUP_FULL
            assert point.region == backups.plan.primary_region
            assert point.merkle_root
            assert point.signature
            assert [p.name for p in point.packages] == sorted(backups.world.live)
            assert backups.registrations(tenant) == [STATUS_IN_PROGRESS, STATUS_COMPLETED]
            assert sorted(backups.copied(tenant)) == sorted(backups.world.live)
        runs = [u for u in updates if u.metric.name == BACKUP_RUNS]
        assert [u.attributes["result"] for u in runs] == [RESULT_SUCCESS] * 3
        assert sum(u.value for u in runs) == 3
        assert len([u for u in updates if u.metric.name == BACKUP_DURATION]) == 3

    async def test_status_and_search_attributes_of_a_single_tenant_backup(
        self, time_env: WorkflowEnvironment, task_queue: str, plan: DrPlan
    ) -> None:
        """A one-tenant backup is findable by DrPlan and TenantId and its status shows the tenant's step done."""
        backups = Backups(small_plan(plan, 3))
        tenant = tenant_ids(backups.plan)[1]
        handle = await run_backup(time_env, backups, task_queue, tenant_ids=(tenant,))
        result = await handle.result()
        async with Worker(
            time_env.client, task_queue=task_queue, workflows=[BackupWorkflow], activities=backups.activities()
        ):
            status: BackupStatus = await handle.query("status", result_type=BackupStatus)
        attributes = (await handle.describe()).typed_search_attributes
        assert attributes.get(DR_PLAN) == backups.plan.name
        assert attributes.get(TENANT_ID) == tenant
        assert attributes.get(DR_PHASE) == "completed"
        assert len(result.recovery_points) == 1
        assert backups.points(tenant_ids(backups.plan)[0]) == []
        assert status.phase == "completed"
        assert status.total == 1
        step = status.steps.get(f"tenant:{tenant}")
        assert step.status == "done"
        assert result.recovery_points[0] in step.detail


class TestFailures:
    async def test_one_tenants_failed_copy_leaves_the_others_backed_up(
        self, metrics_env: tuple[WorkflowEnvironment, MetricBuffer], task_queue: str, plan: DrPlan
    ) -> None:
        """A tenant whose copy fails gets a failed catalog row while every other tenant is backed up;
        the workflow then fails naming that tenant, with the recovery points made in its details."""
        env, buffer = metrics_env
        buffer.retrieve_updates()
        backups = Backups(small_plan(plan, 4))
        broken = tenant_ids(backups.plan)[1]
        backups.failing_copy.add(broken)
        handle = await run_backup(env, backups, task_queue, concurrency=2)
        cause = await failure_of(handle)
        runs = metric_updates(buffer, BACKUP_RUNS, backups.plan.name)
        assert cause.type == BACKUP_FAILED
        assert cause.non_retryable
        assert f"{broken}: segment" in cause.message
        assert "1 of 4 tenant(s)" in cause.message
        details = cause.details[0]
        assert len(details["recovery_points"]) == 3
        assert details["failed"][0].startswith(f"{broken}: ")
        for tenant in tenant_ids(backups.plan):
            (point,) = backups.points(tenant)
            assert point.status == (STATUS_FAILED if tenant == broken else STATUS_COMPLETED)
        failed_row = next(a for a in backups.world.of("backups.register_recovery_point") if a.status == STATUS_FAILED)
        assert "refused the copy" in (failed_row.failure or "")
        assert sorted(u.attributes["result"] for u in runs) == [RESULT_FAILED] + [RESULT_SUCCESS] * 3

    async def test_an_unknown_data_class_is_refused_before_any_activity(
        self, time_env: WorkflowEnvironment, task_queue: str, plan: DrPlan
    ) -> None:
        """A data class outside hot, warm and cold fails the workflow at once as invalid input."""
        backups = Backups(small_plan(plan, 1))
        async with Worker(
            time_env.client, task_queue=task_queue, workflows=[BackupWorkflow], activities=backups.activities()
        ):
            handle = await time_env.client.start_workflow(
                BackupWorkflow.run,
                BackupInput(plan=backups.plan.name, data_class="lukewarm"),
                id=f"backup-{uuid.uuid4().hex[:8]}",
                task_queue=task_queue,
            )
            cause = await failure_of(handle)
        assert cause.type == "InvalidInput"
        assert "lukewarm" in cause.message
        assert backups.world.calls == []


class TestNothingNew:
    async def test_tenants_without_data_get_no_recovery_point(
        self, time_env: WorkflowEnvironment, task_queue: str, plan: DrPlan
    ) -> None:
        """Tenants with an empty or missing live container are reported as having no data, nothing is
        registered for them, and the backup still succeeds."""
        backups = Backups(small_plan(plan, 3))
        empty, missing, full = tenant_ids(backups.plan)
        backups.empty.add(empty)
        backups.missing.add(missing)
        result = await (await run_backup(time_env, backups, task_queue)).result()
        assert len(result.recovery_points) == 1
        assert sorted(result.skipped) == [
            f"{empty}: no data: container 'tenant-{empty}' has no segments",
            f"{missing}: no data: container 'tenant-{missing}' does not exist",
        ]
        assert backups.registrations(empty) == []
        assert backups.registrations(missing) == []
        assert backups.points(full)[0].status == STATUS_COMPLETED


class TestLongRuns:
    async def test_continue_as_new_keeps_every_recovery_point_and_failure(
        self, time_env: WorkflowEnvironment, task_queue: str, plan: DrPlan
    ) -> None:
        """With two tenants per run, five tenants take three runs; the last run returns (here: fails
        with) every recovery point made and the failure of the first run's tenant."""
        backups = Backups(small_plan(plan, 5))
        tenants = tenant_ids(backups.plan)
        backups.failing_copy.add(tenants[0])
        handle = await run_backup(time_env, backups, task_queue, tenants_per_run=2, concurrency=2)
        cause = await failure_of(handle)
        first = time_env.client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id)
        details = cause.details[0]
        assert (await first.describe()).status == WorkflowExecutionStatus.CONTINUED_AS_NEW
        assert details["runs"] == 3
        assert sorted(p.split("-", 3)[3] for p in details["recovery_points"]) == sorted(tenants[1:])
        assert [f.split(":")[0] for f in details["failed"]] == [tenants[0]]
        assert tenants[0] in cause.message

    async def test_what_continue_as_new_carries_stays_bounded_and_the_counts_whole(
        self, time_env: WorkflowEnvironment, task_queue: str, plan: DrPlan
    ) -> None:
        """With names_kept 2, seven tenants over four runs (two failing, one without data) carry and return
        at most two names of each kind, while the counts, the message and the status cover every tenant."""
        backups = Backups(small_plan(plan, 7))
        tenants = tenant_ids(backups.plan)
        backups.failing_copy.update(tenants[1:3])
        backups.empty.add(tenants[6])
        handle = await run_backup(time_env, backups, task_queue, tenants_per_run=2, concurrency=1, names_kept=2)
        cause = await failure_of(handle)
        async with Worker(
            time_env.client, task_queue=task_queue, workflows=[BackupWorkflow], activities=backups.activities()
        ):
            status: BackupStatus = await handle.query("status", result_type=BackupStatus)
        details = cause.details[0]
        assert details["runs"] == 4
        assert (details["tenants"], details["points_made"], details["failures"], details["skips"]) == (7, 4, 2, 1)
        assert [p.split("-", 3)[3] for p in details["recovery_points"]] == [tenants[0], tenants[3]]
        assert [f.split(":")[0] for f in details["failed"]] == tenants[1:3]
        assert "failed for 2 of 7 tenant(s) (4 recovery point(s) made)" in cause.message
        assert (status.points_made, status.failures, status.skips) == (4, 2, 1)
        assert len(status.recovery_points) == 2
        assert sum(len(backups.points(t)) for t in tenants) == 6

    async def test_a_plan_too_large_to_describe_is_paged_from_the_registry(
        self, time_env: WorkflowEnvironment, task_queue: str, plan: DrPlan
    ) -> None:
        """When plan.describe lists no tenant ids, the registry is read a page per run and every tenant backed up."""
        backups = Backups(small_plan(plan, 5))
        backups.registry = tenant_ids(backups.plan)
        result = await (await run_backup(time_env, backups, task_queue, tenants_per_run=2)).result()
        assert backups.registry_cursors == [None, "2", "4"]
        assert sorted(p.split("-", 3)[3] for p in result.recovery_points) == backups.registry
        assert result.runs == 3
        assert result.tenants == 5


class TestBounded:
    async def test_runs_at_most_limit_at_once_in_order(self) -> None:
        """No more than ``limit`` items run together and results come back in item order."""
        running, peak = 0, 0

        async def work(item: int) -> int:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.001 * (5 - item))
            running -= 1
            return item * 10

        assert await bounded(list(range(5)), 2, work) == [0, 10, 20, 30, 40]
        assert peak == 2

    async def test_a_failure_stops_new_items_and_is_raised_after_the_running_ones(self) -> None:
        """After the first failure no new item starts, the running ones finish, then the failure is raised."""
        finished: list[int] = []

        async def work(item: int) -> int:
            if item == 0:
                await asyncio.sleep(0.001)
                raise ApplicationError("boom")
            await asyncio.sleep(0.01)
            finished.append(item)
            return item

        with pytest.raises(ApplicationError, match="boom"):
            await bounded(list(range(6)), 2, work)
        assert finished == [1]

    async def test_stop_ends_early_with_a_prefix(self) -> None:
        """Once ``stop()`` is true no new item starts, and the results are the started prefix."""
        done: list[int] = []

        async def work(item: int) -> int:
            done.append(item)
            return item

        assert await bounded(list(range(5)), 1, work, stop=lambda: len(done) >= 2) == [0, 1]


async def first_scheduled_run(env: WorkflowEnvironment, schedule_id: str) -> str:
    """The workflow id of the schedule's first action, once it has one."""
    handle = env.client.get_schedule_handle(schedule_id)
    for _ in range(200):
        actions = (await handle.describe()).info.recent_actions
        if actions:
            started = actions[0].action
            assert isinstance(started, ScheduleActionExecutionStartWorkflow)
            return started.workflow_id
        await asyncio.sleep(0.1)
    raise AssertionError(f"schedule {schedule_id} started nothing")


class TestSchedule:
    async def test_the_hourly_schedule_starts_a_backup_of_every_tenant(
        self, dev_env: WorkflowEnvironment, task_queue: str, plan: DrPlan
    ) -> None:
        """The plan's schedule runs BackupWorkflow for every tenant hourly with overlap skip, and a firing
        (triggered here) backs up each tenant under the scheduled workflow id."""
        backups = Backups(small_plan(plan, 2))
        name = backups.plan.name
        handle = dev_env.client.get_schedule_handle(backup_schedule_id(name))
        async with Worker(
            dev_env.client, task_queue=task_queue, workflows=[BackupWorkflow], activities=backups.activities()
        ):
            outcome = await upsert_backup_schedule(dev_env.client, name, task_queue)
            try:
                described = await handle.describe()
                await handle.trigger()
                workflow_id = await first_scheduled_run(dev_env, handle.id)
                result = await dev_env.client.get_workflow_handle(workflow_id, result_type=BackupResult).result()
            finally:
                await handle.delete()
        action = described.schedule.action
        assert outcome.created
        assert [i.every for i in described.schedule.spec.intervals] == [dt.timedelta(hours=1)]
        assert described.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert action.workflow == WORKFLOW_TYPE
        assert action.id == scheduled_workflow_id(name)
        assert action.task_queue == task_queue
        assert workflow_id.startswith(f"backup-{name}-scheduled")
        assert sorted(p.split("-", 3)[3] for p in result.recovery_points) == sorted(tenant_ids(backups.plan))

    async def test_a_schedule_fires_on_its_interval_and_an_update_keeps_one_schedule(
        self, dev_env: WorkflowEnvironment, task_queue: str, plan: DrPlan
    ) -> None:
        """Upserting twice leaves one schedule with the newer spec, which starts BackupWorkflow by itself."""
        backups = Backups(small_plan(plan, 1))
        name = backups.plan.name
        handle = dev_env.client.get_schedule_handle(backup_schedule_id(name))
        async with Worker(
            dev_env.client, task_queue=task_queue, workflows=[BackupWorkflow], activities=backups.activities()
        ):
            created = await upsert_backup_schedule(dev_env.client, name, task_queue, calendar="daily 03:00 UTC")
            every_second = ScheduleSpec(intervals=[ScheduleIntervalSpec(every=dt.timedelta(seconds=1))])
            updated = await upsert_backup_schedule(dev_env.client, name, task_queue, spec=every_second)
            try:
                workflow_id = await first_scheduled_run(dev_env, handle.id)
                await handle.pause()
                result = await dev_env.client.get_workflow_handle(workflow_id, result_type=BackupResult).result()
                described = await handle.describe()
                for running in described.info.running_actions:
                    assert isinstance(running, ScheduleActionExecutionStartWorkflow)
                    await dev_env.client.get_workflow_handle(running.workflow_id).result()
            finally:
                await handle.delete()
        assert created.created
        assert not updated.created
        assert described.schedule.spec.calendars == []
        assert [i.every for i in described.schedule.spec.intervals] == [dt.timedelta(seconds=1)]
        assert len(result.recovery_points) == 1
