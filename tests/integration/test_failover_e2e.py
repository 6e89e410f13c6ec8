"""Failover end to end: a real dr-worker process, a real Temporal dev server and the emulator,
including crashes of the worker and of the server in the middle of the failover."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError

from activities.azure import Estates
from activities.cosmos import CosmosActivities
from activities.frontdoor import FrontDoorActivities
from activities.platform import PlatformActivities
from activities.servicebus import ServiceBusActivities
from activities.sql import SqlActivities
from domain.messages.cosmos import GetCosmosAccountInput
from domain.messages.failover import FailoverInput, FailoverResult, FailoverStatus, PrimaryRecovered
from domain.messages.frontdoor import GetOriginsInput
from domain.messages.platform import ListTenantsInput
from domain.messages.servicebus import GetAliasInput
from domain.messages.sql import GetFailoverGroupInput
from domain.plan import DrPlan
from starters import failover_cmd
from tests.conftest import EmulatorHandle
from tests.integration.processes import DevServer, WorkerProcess
from workers.connection import TemporalSettings

pytestmark = pytest.mark.integration

# Slow enough that a crash lands inside a step, fast enough for CI.
STEP_LATENCIES = {
    "AFDOrigins_Update": 1.0,
    "DisasterRecoveryConfigs_FailOver": 1.0,
    "FailoverGroups_Failover": 3.0,
    "FailoverGroups_ForceFailoverAllowDataLoss": 3.0,
    "DatabaseAccounts_FailoverPriorityChange": 2.0,
    "Ops_CacheWarmup": 0.5,
}


async def start_failover(
    client: Client, worker: WorkerProcess, plan: DrPlan, **kwargs: Any
) -> WorkflowHandle[Any, Any]:
    inp = FailoverInput(
        plan=plan.name,
        from_region="eastus",
        to_region="westus",
        reason="eastus down",
        plan_digest=plan.digest,
        **kwargs,
    )
    return await client.start_workflow(
        "FailoverWorkflow",
        inp,
        id=f"failover-local-{uuid.uuid4().hex[:8]}",
        task_queue=worker.task_queue,
        result_type=FailoverResult,
    )


async def until_phase(handle: WorkflowHandle[Any, Any], phases: tuple[str, ...], within: float = 120) -> FailoverStatus:
    deadline = time.monotonic() + within
    while True:
        try:
            current: FailoverStatus = await handle.query("status", result_type=FailoverStatus)
            if current.phase in phases:
                return current
            if current.phase == "failed":
                raise AssertionError(f"failover failed: {current.error}")
        except Exception as err:
            if isinstance(err, AssertionError):
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"phase {phases} not reached in {within}s")
        await asyncio.sleep(0.2)


async def until_journal(emulator: EmulatorHandle, operation: str, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while not emulator.mutations(operation=operation):
        if time.monotonic() > deadline:
            raise AssertionError(f"{operation} never reached the emulator")
        await asyncio.sleep(0.05)


async def finish(handle: WorkflowHandle[Any, Any]) -> FailoverResult:
    await until_phase(handle, ("watching", "completed"))
    await handle.signal("primary-recovered", PrimaryRecovered(by="test"))
    result: FailoverResult = await asyncio.wait_for(handle.result(), 120)
    return result


def assert_each_mutation_once(emulator: EmulatorHandle) -> Counter[tuple[str, str]]:
    applied = Counter((e["operation"], e["path"].lower()) for e in emulator.mutations() if e["status"] < 400)
    repeated = {k: n for k, n in applied.items() if n > 1}
    assert not repeated, f"mutating calls issued more than once: {repeated}"
    return applied


async def assert_failed_over(plan: DrPlan, estates: Estates) -> None:
    origins = await FrontDoorActivities(estates).get_origins(GetOriginsInput(plan.name))
    west, east = origins.for_region("westus"), origins.for_region("eastus")
    assert west is not None
    assert east is not None
    assert (west.enabled, west.priority) == (True, 1)
    assert east.priority == 2
    alias = await ServiceBusActivities(estates).get_alias(GetAliasInput(plan.name))
    assert alias.primary_region == "westus"
    sql = SqlActivities(estates)
    for group in plan.sql.failover_groups:
        view = await sql.get_failover_group(GetFailoverGroupInput(plan.name, group.name))
        assert view.primary_region == "westus", group.name
    account = await CosmosActivities(estates).get_account(GetCosmosAccountInput(plan.name))
    assert account.write_region == "westus"
    platform = PlatformActivities(estates)
    east_tenants = sum(1 for t in plan.tenants if t.home_region == "eastus")
    read_only = await platform.list_tenants(
        ListTenantsInput(plan.name, home_region="eastus", mode="read-only", limit=1)
    )
    assert read_only.total == east_tenants
    west_rw = await platform.list_tenants(ListTenantsInput(plan.name, home_region="westus", mode="read-write", limit=1))
    assert west_rw.total == len(plan.tenants) - east_tenants


class TestFailoverEndToEnd:
    async def test_regional_failover_reaches_the_expected_estate(
        self, plan: DrPlan, emulator: EmulatorHandle, worker: WorkerProcess, client: Client, estates: Estates
    ) -> None:
        """With eastus down, the failover leaves origins, alias, groups, Cosmos and tenant modes on westus."""
        emulator.region("eastus", "down")
        handle = await start_failover(client, worker, plan)
        result = await finish(handle)
        assert result.outcome == "succeeded", result.reason
        assert result.rto_seconds is not None
        assert result.rto_seconds > 0
        assert result.rpo_seconds is not None
        assert result.rpo_seconds > 0, "forced failover of a down region loses data"
        await assert_failed_over(plan, estates)
        assert_each_mutation_once(emulator)

    async def test_dry_run_issues_no_mutating_call(
        self, plan: DrPlan, emulator: EmulatorHandle, worker: WorkerProcess, client: Client
    ) -> None:
        """A dry run lists the ARM calls it would make and the emulator sees none of them."""
        handle = await start_failover(client, worker, plan, dry_run=True)
        result: FailoverResult = await asyncio.wait_for(handle.result(), 120)
        assert result.outcome == "dry-run"
        assert emulator.mutations() == []
        assert any("AFDOrigins" in c or "/origins/" in c for c in result.planned_calls)
        assert any("failover" in c.lower() for c in result.planned_calls)

    async def test_bursts_of_throttling_and_faults_are_survived(
        self, plan: DrPlan, emulator: EmulatorHandle, worker: WorkerProcess, client: Client, estates: Estates
    ) -> None:
        """429s with Retry-After and 503s on every mutating step are retried until the failover succeeds."""
        for op in ("AFDOrigins_Update", "DisasterRecoveryConfigs_FailOver", "FailoverGroups_Failover"):
            emulator.fault(op, 429, count=5, retry_after=1)
        for op in ("DatabaseAccounts_FailoverPriorityChange", "Ops_SetTenantMode", "Ops_CacheWarmup"):
            emulator.fault(op, 503, count=5)
        handle = await start_failover(client, worker, plan)
        result = await finish(handle)
        assert result.outcome == "succeeded", result.reason
        await assert_failed_over(plan, estates)
        faults = [e for e in emulator.journal() if e["fault"]]
        assert len(faults) >= 30
        assert_each_mutation_once(emulator)


class TestCrashSafety:
    async def test_worker_killed_mid_failover_completes_without_repeating_calls(
        self, plan: DrPlan, emulator: EmulatorHandle, worker: WorkerProcess, client: Client, estates: Estates
    ) -> None:
        """SIGKILL of the worker during the SQL failover; a new worker finishes and nothing is applied twice."""
        emulator.latency(STEP_LATENCIES)
        handle = await start_failover(client, worker, plan)
        await until_journal(emulator, "FailoverGroups_Failover")
        worker.kill()
        await asyncio.sleep(1)
        worker.start()
        result = await finish(handle)
        assert result.outcome == "succeeded", result.reason
        await assert_failed_over(plan, estates)
        applied = assert_each_mutation_once(emulator)
        assert sum(1 for op, _ in applied if op == "FailoverGroups_Failover") == len(plan.sql.failover_groups)

    async def test_dev_server_restart_mid_failover_keeps_the_workflow(
        self,
        plan: DrPlan,
        emulator: EmulatorHandle,
        dev_server: DevServer,
        worker: WorkerProcess,
        estates: Estates,
    ) -> None:
        """The Temporal server is killed and restarted on its database; the failover resumes and completes."""
        emulator.latency(STEP_LATENCIES)
        client = await Client.connect(dev_server.address)
        handle = await start_failover(client, worker, plan)
        await until_journal(emulator, "AFDOrigins_Update")
        dev_server.kill()
        await asyncio.sleep(2)
        dev_server.start()
        client = await Client.connect(dev_server.address)
        handle = client.get_workflow_handle(handle.id, result_type=FailoverResult)
        result = await finish(handle)
        assert result.outcome == "succeeded", result.reason
        await assert_failed_over(plan, estates)
        assert_each_mutation_once(emulator)


class TestRefusalsAndErrors:
    async def test_target_region_down_is_refused_before_any_change(
        self, plan: DrPlan, emulator: EmulatorHandle, worker: WorkerProcess, client: Client
    ) -> None:
        """Failing over into a region that is down is refused by pre-flight, even with --force."""
        emulator.region("westus", "down")
        handle = await start_failover(client, worker, plan, force=True)
        with pytest.raises(WorkflowFailureError) as info:
            await asyncio.wait_for(handle.result(), 120)
        assert isinstance(info.value.cause, ApplicationError)
        assert info.value.cause.type == "PreflightRefused"
        assert "westus" in info.value.cause.message
        assert emulator.mutations() == []

    async def test_non_retryable_error_stops_with_reason_and_reported_state(
        self, plan: DrPlan, emulator: EmulatorHandle, worker: WorkerProcess, client: Client, estates: Estates
    ) -> None:
        """A 403 on the Cosmos step fails the failover at once, naming the resource and what was done."""
        emulator.fault("DatabaseAccounts_FailoverPriorityChange", 403, count=100)
        handle = await start_failover(client, worker, plan)
        with pytest.raises(WorkflowFailureError) as info:
            await asyncio.wait_for(handle.result(), 120)
        err = info.value.cause
        assert isinstance(err, ApplicationError)
        assert "403" in err.message
        assert plan.cosmos.account in err.message
        report = err.details[0]
        assert {"frontdoor", "servicebus", "tenants"} <= set(report["done"])
        assert "cosmos" in report["not_done"]
        assert "warmup" in report["not_done"]
        assert len([e for e in emulator.journal() if e["operation"] == "DatabaseAccounts_FailoverPriorityChange"]) == 1
        alias = await ServiceBusActivities(estates).get_alias(GetAliasInput(plan.name))
        assert alias.primary_region == "westus", "steps done before the error stay done and are reported"

    async def test_second_failover_of_a_running_plan_is_refused(
        self, plan: DrPlan, emulator: EmulatorHandle, worker: WorkerProcess, client: Client
    ) -> None:
        """While a failover of the plan runs, drctl refuses to start another and names the running one."""
        emulator.region("eastus", "down")
        settings = TemporalSettings(address=worker.env["TEMPORAL_ADDRESS"], task_queue=worker.task_queue)
        first = await failover_cmd.start_failover(
            client, settings, plan, from_region="eastus", to_region="westus", reason="first"
        )
        await until_phase(first, ("watching",))
        with pytest.raises(failover_cmd.FailoverAlreadyRunning) as info:
            await failover_cmd.start_failover(
                client, settings, plan, from_region="eastus", to_region="westus", reason="second"
            )
        assert first.id in str(info.value)
        await first.signal("primary-recovered", PrimaryRecovered())
        await asyncio.wait_for(first.result(), 60)


class TestWorkerProcess:
    async def test_metrics_endpoint_reports_rto_and_sigterm_stops_cleanly(
        self, plan: DrPlan, emulator: EmulatorHandle, worker: WorkerProcess, client: Client
    ) -> None:
        """After a failover the worker's Prometheus endpoint carries failover_rto_seconds; SIGTERM exits 0."""
        emulator.region("eastus", "down")
        handle = await start_failover(client, worker, plan)
        result = await finish(handle)
        assert result.rto_seconds is not None
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://127.0.0.1:{worker.metrics_port}/metrics")).text
        lines = [ln for ln in text.splitlines() if ln.startswith("failover_rto_seconds{")]
        assert lines, "failover_rto_seconds missing from /metrics"
        assert 'plan="local"' in lines[0]
        assert abs(float(lines[0].rsplit(" ", 1)[1]) - result.rto_seconds) < 0.01
        assert "temporal_workflow_completed" in text or "temporal_request" in text, "SDK metrics are served too"
        assert worker.stop() == 0
        assert "worker stopped" in worker.log.read_text()
