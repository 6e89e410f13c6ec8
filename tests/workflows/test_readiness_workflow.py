"""ReadinessWorkflow with faked checks: its table, DrReadiness search attribute and gauges on the
time-skipping server; its schedule and drctl's run through Temporal on a dev server (the
time-skipping server has no schedules)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import (
    Client,
    ScheduleBackfill,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import ApplicationError
from temporalio.runtime import MetricBuffer, Runtime, TelemetryConfig
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.azure import AzureConnection, Estates
from activities.plans import PlanActivities
from domain.messages.readiness import (
    CHECK_CREDENTIALS,
    CHECK_RECOVERY_POINTS,
    CHECK_SERVICEBUS,
    CHECK_TARGET_REGION,
    FAIL,
    OK,
    WARN,
    ReadinessCheck,
    ReadinessInput,
    ReadinessReport,
    ReadinessResult,
    ReadinessStatus,
    ReadinessWorkflowInput,
    sql_check_key,
)
from domain.plan import DrPlan
from starters.plan_cmd import ReadinessCommandError, check_through_temporal, schedule_readiness
from starters.stack import SEARCH_ATTRIBUTES
from tests.conftest import venv_binary
from workers.connection import TemporalSettings
from workflows.common import DR_PHASE, DR_PLAN
from workflows.readiness import (
    CHECK_STATUS_METRIC,
    DR_READINESS,
    RPO_EFFECTIVE_METRIC,
    ReadinessWorkflow,
    schedule_id,
)

Handle = WorkflowHandle[Any, ReadinessResult]
ROWS_OK = (
    ReadinessCheck(CHECK_TARGET_REGION, "Target region westus", OK, "answered 200"),
    ReadinessCheck(CHECK_CREDENTIALS, "Azure credentials", OK, "6 ARM read(s) succeeded"),
    ReadinessCheck(sql_check_key("fog-tenants"), "SQL failover group fog-tenants", OK, "CATCH_UP"),
    ReadinessCheck(CHECK_RECOVERY_POINTS, "Tenant recovery points", OK, "300/300 tenant(s) within"),
)


def report(*rows: ReadinessCheck, rpo: float | None = 120.0) -> ReadinessReport:
    return ReadinessReport(
        plan="local",
        checks=rows,
        source_region_healthy=True,
        target_region_healthy=True,
        checked_at="2026-11-28T21:30:00.000000Z",
        from_region="eastus",
        to_region="westus",
        rpo_effective_seconds=rpo,
    )


def with_row(key: str, status: str, detail: str, fix: str) -> tuple[ReadinessCheck, ...]:
    """ROWS_OK with the row ``key`` replaced (or added)."""
    row = ReadinessCheck(key, key, status, detail, fix)
    rows = [row if r.key == key else r for r in ROWS_OK]
    return tuple(rows) if any(r.key == key for r in ROWS_OK) else (*ROWS_OK, row)


@dataclasses.dataclass
class FakeReadiness:
    """readiness.check answering scripted reports (the last one repeats); plan.describe is the real
    activity over plans/local.toml, so the digest check is the worker's."""

    plan: DrPlan
    reports: list[ReadinessReport]
    calls: list[ReadinessInput] = dataclasses.field(default_factory=list)

    def activities(self) -> list[Callable[..., Any]]:
        @activity.defn(name="readiness.check")
        async def check(arg: ReadinessInput) -> ReadinessReport:
            self.calls.append(arg)
            return self.reports[min(len(self.calls), len(self.reports)) - 1]

        describe = PlanActivities(Estates([self.plan], AzureConnection())).describe
        return [check, describe]


@asynccontextmanager
async def worker(client: Client, fake: FakeReadiness, task_queue: str) -> AsyncIterator[None]:
    async with Worker(client, task_queue=task_queue, workflows=[ReadinessWorkflow], activities=fake.activities()):
        yield


async def run_once(client: Client, task_queue: str, inp: ReadinessWorkflowInput) -> Handle:
    return await client.start_workflow(
        ReadinessWorkflow.run, inp, id=f"readiness-local-test-{uuid.uuid4().hex[:8]}", task_queue=task_queue
    )


async def register_search_attributes(env: WorkflowEnvironment) -> None:
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes=dict.fromkeys(SEARCH_ATTRIBUTES, IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD),
        )
    )


@pytest.fixture(scope="module")
async def metrics_env() -> AsyncIterator[tuple[WorkflowEnvironment, MetricBuffer]]:
    buffer = MetricBuffer(10000)
    env = await WorkflowEnvironment.start_time_skipping(
        runtime=Runtime(telemetry=TelemetryConfig(metrics=buffer)),
        test_server_existing_path=venv_binary("temporal-test-server"),
    )
    await register_search_attributes(env)
    try:
        yield env, buffer
    finally:
        await env.shutdown()


class TestReadinessRun:
    async def test_table_search_attribute_and_status_query(
        self, time_env: WorkflowEnvironment, task_queue: str, plan: DrPlan
    ) -> None:
        """A run returns every row with its fix, its overall status in DrReadiness, and the same in its query."""
        rows = with_row(CHECK_SERVICEBUS, WARN, "400 replication operation(s) pending", "wait until it is 0")
        fake = FakeReadiness(plan, [report(*rows)])
        async with worker(time_env.client, fake, task_queue):
            handle = await run_once(time_env.client, task_queue, ReadinessWorkflowInput("local", plan.digest, "alice"))
            result = await handle.result()
            status = await handle.query("status", result_type=ReadinessStatus)
            described = await handle.describe()
        assert result.status == WARN
        assert result.rows == rows
        assert result.row(CHECK_SERVICEBUS) == ReadinessCheck(
            CHECK_SERVICEBUS, CHECK_SERVICEBUS, WARN, "400 replication operation(s) pending", "wait until it is 0"
        )
        assert (result.environment, result.edition) == ("production", "enterprise")
        assert (result.from_region, result.to_region) == ("eastus", "westus")
        assert fake.calls == [ReadinessInput("local")]
        assert status.phase == "completed"
        assert status.result == result
        attributes = described.typed_search_attributes
        assert attributes.get(DR_READINESS) == WARN
        assert attributes.get(DR_PLAN) == "local"
        assert attributes.get(DR_PHASE) == "completed"

    async def test_a_failed_check_makes_the_run_fail_but_the_workflow_succeed(
        self, time_env: WorkflowEnvironment, task_queue: str, plan: DrPlan
    ) -> None:
        """A FAIL row is a verdict, not an error: the run completes with status FAIL in DrReadiness."""
        rows = with_row(CHECK_TARGET_REGION, FAIL, "503 from the gateway", "check westus")
        fake = FakeReadiness(plan, [report(*rows)])
        async with worker(time_env.client, fake, task_queue):
            handle = await run_once(time_env.client, task_queue, ReadinessWorkflowInput("local"))
            result = await handle.result()
            described = await handle.describe()
        assert result.status == FAIL
        assert described.status == WorkflowExecutionStatus.COMPLETED
        assert described.typed_search_attributes.get(DR_READINESS) == FAIL

    async def test_another_plan_version_fails_the_run(
        self, time_env: WorkflowEnvironment, task_queue: str, plan: DrPlan
    ) -> None:
        """When the worker holds another version of the plan nothing is checked and DrReadiness says FAIL."""
        fake = FakeReadiness(plan, [report(*ROWS_OK)])
        async with worker(time_env.client, fake, task_queue):
            handle = await run_once(time_env.client, task_queue, ReadinessWorkflowInput("local", "0" * 64))
            with pytest.raises(WorkflowFailureError) as failed:
                await handle.result()
            status = await handle.query("status", result_type=ReadinessStatus)
            described = await handle.describe()
        cause = failed.value.cause
        assert isinstance(cause, ApplicationError)
        assert cause.type == "PlanMismatch"
        assert "different version of plan 'local'" in cause.message
        assert fake.calls == []
        assert status.phase == "failed"
        assert status.error is not None
        assert described.typed_search_attributes.get(DR_READINESS) == FAIL


class TestMetrics:
    async def test_check_status_and_effective_rpo_gauges(
        self, metrics_env: tuple[WorkflowEnvironment, MetricBuffer], task_queue: str, plan: DrPlan
    ) -> None:
        """Each check sets readiness_check_status{plan,check} to 0/1/2, and the run sets rpo_effective_seconds."""
        env, buffer = metrics_env
        buffer.retrieve_updates()  # drop earlier updates
        rows = with_row(CHECK_SERVICEBUS, WARN, "pending", "wait")
        rows = (*rows[:1], ReadinessCheck(CHECK_CREDENTIALS, "Azure credentials", FAIL, "401", "log in"), *rows[2:])
        fake = FakeReadiness(plan, [report(*rows, rpo=1260.0)])
        async with worker(env.client, fake, task_queue):
            await (await run_once(env.client, task_queue, ReadinessWorkflowInput("local"))).result()
        updates = buffer.retrieve_updates()
        status = {
            str(u.attributes["check"]): u.value
            for u in updates
            if u.metric.name == CHECK_STATUS_METRIC and u.attributes.get("plan") == "local"
        }
        assert status == {
            CHECK_TARGET_REGION: 0,
            CHECK_CREDENTIALS: 2,
            sql_check_key("fog-tenants"): 0,
            CHECK_RECOVERY_POINTS: 0,
            CHECK_SERVICEBUS: 1,
        }
        rpo = [u for u in updates if u.metric.name == RPO_EFFECTIVE_METRIC]
        assert [(u.value, u.attributes.get("plan")) for u in rpo] == [(1260.0, "local")]
        assert rpo[0].metric.unit == "s"

    async def test_no_rpo_gauge_without_any_recovery_point(
        self, metrics_env: tuple[WorkflowEnvironment, MetricBuffer], task_queue: str, plan: DrPlan
    ) -> None:
        """When no tenant has a recovery point there is no age to report, so rpo_effective_seconds is not set."""
        env, buffer = metrics_env
        buffer.retrieve_updates()
        fake = FakeReadiness(plan, [report(*ROWS_OK, rpo=None)])
        async with worker(env.client, fake, task_queue):
            await (await run_once(env.client, task_queue, ReadinessWorkflowInput("local"))).result()
        updates = buffer.retrieve_updates()
        assert [u for u in updates if u.metric.name == RPO_EFFECTIVE_METRIC] == []
        assert any(u.metric.name == CHECK_STATUS_METRIC for u in updates)


# ---- the schedule and drctl's run, on a dev server ------------------------------------------------


@pytest.fixture(scope="module")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=venv_binary("temporal"),
        search_attributes=[SearchAttributeKey.for_keyword(key) for key in SEARCH_ATTRIBUTES],
    )
    try:
        yield env
    finally:
        await env.shutdown()


async def runs_of(client: Client, plan: str, count: int, wait_seconds: float = 60.0) -> list[Any]:
    """Wait until ``count`` ReadinessWorkflow runs of ``plan`` have completed; returns them."""
    query = f"WorkflowType = 'ReadinessWorkflow' AND DrPlan = '{plan}' AND ExecutionStatus = 'Completed'"
    async with asyncio.timeout(wait_seconds):
        while True:
            found = [wf async for wf in client.list_workflows(query)]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.3)


class TestSchedule:
    async def test_schedule_fires_every_30_minutes(self, dev_env: WorkflowEnvironment, plan: DrPlan) -> None:
        """readiness-{plan} runs ReadinessWorkflow every 30 minutes: two hours of its calendar start four runs."""
        task_queue = f"tq-{uuid.uuid4().hex[:12]}"
        name = f"sched{uuid.uuid4().hex[:6]}"
        settings = TemporalSettings(task_queue=task_queue)
        fake = FakeReadiness(dataclasses.replace(plan, name=name), [report(*ROWS_OK)])
        first = await schedule_readiness(dev_env.client, settings, name)
        again = await schedule_readiness(dev_env.client, settings, name)
        handle = dev_env.client.get_schedule_handle(schedule_id(name))
        try:
            described = await handle.describe()
            assert (first.created, again.created) == (True, False)
            assert first.schedule_id == f"readiness-{name}"
            assert described.schedule.spec.intervals == [ScheduleIntervalSpec(every=dt.timedelta(minutes=30))]
            upcoming = described.info.next_action_times
            assert [b - a for a, b in itertools.pairwise(upcoming)][:3] == [dt.timedelta(minutes=30)] * 3
            # Two hours of the calendar, replayed now: runs at :00, :30, :00 and :30.
            aligned = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=4)
            async with worker(dev_env.client, fake, task_queue):
                await handle.backfill(
                    ScheduleBackfill(
                        start_at=aligned - dt.timedelta(minutes=1),
                        end_at=aligned + dt.timedelta(minutes=105),
                        overlap=ScheduleOverlapPolicy.ALLOW_ALL,
                    )
                )
                runs = await runs_of(dev_env.client, name, 4)
        finally:
            await handle.delete()
        assert len(runs) == 4
        assert all(wf.id.startswith(f"readiness-{name}-") for wf in runs)
        # Runs started by a schedule are named by their scheduled time.
        times = sorted(dt.datetime.fromisoformat(wf.id.removeprefix(f"readiness-{name}-")) for wf in runs)
        assert times == [aligned + dt.timedelta(minutes=30 * i) for i in range(4)]
        assert len(fake.calls) == 4
        assert {c.plan for c in fake.calls} == {name}
        assert all(wf.typed_search_attributes.get(DR_READINESS) == OK for wf in runs)


class TestDrctlThroughTemporal:
    async def test_check_through_temporal_returns_the_table(self, dev_env: WorkflowEnvironment, plan: DrPlan) -> None:
        """drctl's default path starts a ReadinessWorkflow for the validated plan and returns its table."""
        task_queue = f"tq-{uuid.uuid4().hex[:12]}"
        settings = TemporalSettings(task_queue=task_queue)
        rows = with_row(CHECK_RECOVERY_POINTS, FAIL, "1 without any", "run the BackupWorkflow")
        fake = FakeReadiness(plan, [report(*rows)])
        async with worker(dev_env.client, fake, task_queue):
            workflow_id, result = await check_through_temporal(dev_env.client, settings, plan, requested_by="alice")
        assert workflow_id.startswith("readiness-local-check-")
        assert result.status == FAIL
        assert result.row(CHECK_RECOVERY_POINTS) is not None
        assert fake.calls == [ReadinessInput("local")]

    async def test_another_plan_version_is_refused_with_the_reason(
        self, dev_env: WorkflowEnvironment, plan: DrPlan
    ) -> None:
        """A plan file that differs from the workers' fails the command with the PlanMismatch message."""
        task_queue = f"tq-{uuid.uuid4().hex[:12]}"
        edited = dataclasses.replace(plan, digest="f" * 64)
        fake = FakeReadiness(plan, [report(*ROWS_OK)])
        async with worker(dev_env.client, fake, task_queue):
            with pytest.raises(ReadinessCommandError) as refused:
                await check_through_temporal(
                    dev_env.client,
                    TemporalSettings(task_queue=task_queue),
                    edited,
                    workflow_id=f"rd-{uuid.uuid4().hex}",
                )
        assert "different version of plan 'local'" in str(refused.value)
        assert fake.calls == []

    async def test_no_worker_times_out_with_a_hint(self, dev_env: WorkflowEnvironment, plan: DrPlan) -> None:
        """Without a worker on the task queue the command gives up after its limit and names --local."""
        settings = TemporalSettings(task_queue=f"tq-none-{uuid.uuid4().hex[:8]}")
        with pytest.raises(ReadinessCommandError) as gave_up:
            await check_through_temporal(dev_env.client, settings, plan, run_timeout=dt.timedelta(seconds=2))
        assert "no result within 2 s" in str(gave_up.value)
        assert "--local" in str(gave_up.value)
