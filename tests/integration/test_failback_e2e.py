"""Failback end to end: a real failover to westus first, then FailbackWorkflow on a real dr-worker
process and Temporal dev server against the emulator, with short soaks (seconds, not minutes)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from activities.azure import Estates
from activities.cosmos import CosmosActivities
from activities.frontdoor import FrontDoorActivities
from activities.platform import PlatformActivities
from activities.servicebus import ServiceBusActivities
from activities.sql import SqlActivities
from domain.messages.cosmos import GetCosmosAccountInput
from domain.messages.failback import FailbackResult, FailbackStatus
from domain.messages.failover import PrimaryRecovered
from domain.messages.frontdoor import GetOriginsInput
from domain.messages.platform import ListTenantsInput
from domain.messages.servicebus import GetAliasInput
from domain.messages.sql import GetFailoverGroupInput
from domain.plan import DrPlan
from starters import failback_cmd, failover_cmd
from tests.conftest import EmulatorHandle
from tests.integration.processes import WorkerProcess
from tests.integration.test_failover_e2e import finish, start_failover, until_phase
from workers.connection import TemporalSettings

pytestmark = pytest.mark.integration

STEPS = [25, 50, 100]
SOAK_SECONDS = 3
INTERVAL_SECONDS = 1
# Enough requests that even the 25 % step clears the plan's minimum count in a one-second sample.
LOAD_RPS = 2000
PROFILE = "afd-estate"

Handle = WorkflowHandle[Any, FailbackResult]


def settings_for(worker: WorkerProcess) -> TemporalSettings:
    return TemporalSettings(address=worker.env["TEMPORAL_ADDRESS"], task_queue=worker.task_queue)


async def failed_over(client: Client, worker: WorkerProcess, plan: DrPlan, emulator: EmulatorHandle) -> None:
    """A real failover to westus while eastus is down; then eastus comes back and the failover ends."""
    emulator.region("eastus", "down")
    handle = await start_failover(client, worker, plan)
    await until_phase(handle, ("watching",))
    emulator.region("eastus", "healthy")
    result = await finish(handle)
    assert result.outcome == "succeeded", result.reason
    emulator.control.put("/frontdoor/load", json={"requests_per_second": LOAD_RPS}).raise_for_status()


async def start_failback(
    client: Client,
    worker: WorkerProcess,
    plan: DrPlan,
    *,
    steps: list[int] | None = None,
    soak_seconds: int = SOAK_SECONDS,
) -> Handle:
    """A failback through drctl's helper, with seconds-long soaks sampled every second."""
    return await failback_cmd.start_failback(
        client,
        settings_for(worker),
        plan,
        reason="eastus recovered",
        requested_by="test",
        steps=steps or STEPS,
        soak_seconds=soak_seconds,
        interval_seconds=INTERVAL_SECONDS,
    )


async def status(handle: Handle) -> FailbackStatus:
    current: FailbackStatus = await handle.query("status", result_type=FailbackStatus)
    return current


async def until(handle: Handle, done: Callable[[FailbackStatus], bool], within: float = 90) -> FailbackStatus:
    deadline = time.monotonic() + within
    while True:
        current = await status(handle)
        if done(current):
            return current
        assert current.phase != "failed", current.error
        assert time.monotonic() < deadline, f"not reached in {within}s; phase {current.phase}"
        await asyncio.sleep(0.1)


def soaking(percent: int, samples: int = 0) -> Callable[[FailbackStatus], bool]:
    """The step's weights are set and it has taken at least ``samples`` samples."""

    def check(s: FailbackStatus) -> bool:
        if s.current_step != percent or s.primary_percent != percent or s.phase != "shifting":
            return False
        reading = next(r for r in s.readings if r.percent == percent)
        return reading.status == "soaking" and reading.samples >= samples

    return check


def eastus_percent(emulator: EmulatorHandle) -> float:
    """The share of client traffic the emulator routes to the eastus origin now."""
    traffic = emulator.control.get("/frontdoor/traffic").raise_for_status().json()
    return float(traffic[PROFILE]["origins"]["app-eastus"]["percent"])


def origin_patches(emulator: EmulatorHandle, since: int) -> dict[str, list[dict[str, Any]]]:
    """The properties of every applied origin PATCH since ``since``, per origin, in order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for entry in emulator.mutations(since, operation="AFDOrigins_Update"):
        if entry["status"] < 400:
            origin = entry["path"].rsplit("/", 1)[-1]
            out.setdefault(origin, []).append(entry["body"]["properties"])
    return out


def journal_time(entry: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).astimezone(UTC)


async def assert_failed_back(plan: DrPlan, estates: Estates) -> None:
    origins = await FrontDoorActivities(estates).get_origins(GetOriginsInput(plan.name))
    east, west = origins.for_region("eastus"), origins.for_region("westus")
    assert east is not None
    assert west is not None
    assert (east.enabled, east.priority, west.priority) == (True, 1, 2)
    alias = await ServiceBusActivities(estates).get_alias(GetAliasInput(plan.name))
    assert (alias.primary_region, alias.paired) == ("eastus", True), "failed back and protected again"
    for group in plan.sql.failover_groups:
        view = await SqlActivities(estates).get_failover_group(GetFailoverGroupInput(plan.name, group.name))
        assert view.primary_region == "eastus", group.name
    account = await CosmosActivities(estates).get_account(GetCosmosAccountInput(plan.name))
    assert account.write_region == "eastus"
    read_only = await PlatformActivities(estates).list_tenants(
        ListTenantsInput(plan.name, home_region="eastus", mode="read-only", limit=1)
    )
    assert read_only.total == 0


class TestFailbackEndToEnd:
    async def test_routed_traffic_follows_the_weights_step_by_step(
        self, plan: DrPlan, emulator: EmulatorHandle, worker: WorkerProcess, client: Client, estates: Estates
    ) -> None:
        """While each step soaks, the emulator routes exactly that share to eastus; the estate ends on eastus."""
        await failed_over(client, worker, plan, emulator)
        since = emulator.last_seq()
        handle = await start_failback(client, worker, plan)
        observed: dict[int, set[float]] = {}
        while True:
            before = await status(handle)
            if before.phase in ("tenants", "warmup", "completed") or before.phase == "failed":
                break
            share = eastus_percent(emulator)
            after = await status(handle)
            stable = before.current_step is not None and soaking(before.current_step)(before)
            same = (after.current_step, after.primary_percent) == (before.current_step, before.primary_percent)
            if stable and same and after.readings == before.readings and before.current_step is not None:
                observed.setdefault(before.current_step, set()).add(round(share, 6))
            await asyncio.sleep(0.1)
        result = await asyncio.wait_for(handle.result(), 60)
        assert result.outcome == "succeeded", result.reason
        assert observed == {25: {25.0}, 50: {50.0}, 100: {100.0}}
        assert eastus_percent(emulator) == 100.0
        assert [(r.percent, r.status, r.last_verdict) for r in result.readings] == [
            (25, "passed", "ok"),
            (50, "passed", "ok"),
            (100, "passed", "ok"),
        ]
        assert all(r.ok_samples >= 3 and (r.request_count or 0) > 0 for r in result.readings)
        patches = origin_patches(emulator, since)
        assert [p.get("weight") for p in patches["app-eastus"]] == [250, 500, 1000]
        await assert_failed_back(plan, estates)

    async def test_service_bus_fails_over_only_after_replication_drained(
        self, plan: DrPlan, emulator: EmulatorHandle, worker: WorkerProcess, client: Client, estates: Estates
    ) -> None:
        """With a 40-entity backlog at 10/s the alias fails over to eastus no sooner than 4 s after re-pairing."""
        await failed_over(client, worker, plan, emulator)
        emulator.control.put("/servicebus/replication", json={"backlog": 40, "rate_per_second": 10}).raise_for_status()
        since = emulator.last_seq()
        handle = await start_failback(client, worker, plan, steps=[100], soak_seconds=1)
        pending_seen = 0
        sb = ServiceBusActivities(estates)
        while not emulator.mutations(since, operation="DisasterRecoveryConfigs_FailOver"):
            view = await sb.get_alias(GetAliasInput(plan.name))
            pending_seen = max(pending_seen, *(v.pending_replication_operations_count or 0 for v in view.namespaces))
            await asyncio.sleep(0.2)
        result = await asyncio.wait_for(handle.result(), 60)
        assert result.outcome == "succeeded", result.reason
        assert pending_seen > 0, "a backlog was there to wait for"
        pairings = emulator.mutations(since, operation="DisasterRecoveryConfigs_CreateOrUpdate")
        fail_over = emulator.mutations(since, operation="DisasterRecoveryConfigs_FailOver")
        assert "sb-estate-westus" in pairings[0]["path"], "re-paired from the current primary, westus"
        assert len(fail_over) == 1
        assert "sb-estate-eastus" in fail_over[0]["path"]
        waited = (journal_time(fail_over[0]) - journal_time(pairings[0])).total_seconds()
        assert waited >= 4.0 - 0.25
        assert "sb-estate-eastus" in pairings[-1]["path"], "paired back eastus -> westus afterwards"
        drained = re.search(r"\((\d+) pending → 0", result.steps.get("servicebus").detail)
        assert drained is not None, result.steps.get("servicebus").detail
        assert 0 < int(drained.group(1)) <= 40, "the step reports the backlog it waited for"
        await assert_failed_back(plan, estates)

    async def test_error_spike_in_eastus_is_rolled_back_then_resume_completes(
        self, plan: DrPlan, emulator: EmulatorHandle, worker: WorkerProcess, client: Client, estates: Estates
    ) -> None:
        """5xx in eastus during the 50 % soak returns traffic to 25 % within seconds and pauses; resume finishes."""
        await failed_over(client, worker, plan, emulator)
        handle = await start_failback(client, worker, plan, soak_seconds=5)
        await until(handle, soaking(50, samples=1))
        emulator.region("eastus", "degraded", error_rate=0.3, added_latency_ms=0)
        degraded_at = time.monotonic()
        while eastus_percent(emulator) != 25.0:
            assert time.monotonic() - degraded_at < 10, "no rollback"
            await asyncio.sleep(0.05)
        rolled_back_in = time.monotonic() - degraded_at
        held = await until(handle, lambda s: s.phase == "paused", within=10)
        assert rolled_back_in < 2 * INTERVAL_SECONDS + 2, rolled_back_in
        assert (held.primary_percent, held.last_good_percent, held.breaches) == (25, 25, 1)
        fifty = held.readings[1]
        assert (fifty.status, fifty.last_verdict) == ("rolled-back", "breach")
        assert any("5xx rate" in r for r in fifty.reasons)
        await asyncio.sleep(2)
        assert eastus_percent(emulator) == 25.0, "paused: the weights hold"

        emulator.region("eastus", "healthy")
        # Metric buckets are aligned to the interval, so the first sample after a resume may reach
        # up to one interval back: give the healed region that long before retrying the step.
        await asyncio.sleep(2 * INTERVAL_SECONDS + 0.5)
        accepted = await failback_cmd.send_command(client, handle.id, "resume", by="sre")
        assert "retrying the 50 % step" in accepted.message
        result = await asyncio.wait_for(handle.result(), 60)
        assert result.outcome == "succeeded", result.reason
        assert (result.readings[1].attempts, result.readings[1].status) == (2, "passed")
        await assert_failed_back(plan, estates)
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://127.0.0.1:{worker.metrics_port}/metrics")).text
        breaches = [ln for ln in text.splitlines() if ln.startswith("slo_breach_total{")]
        steps = [ln for ln in text.splitlines() if ln.startswith("failback_step{")]
        assert breaches, "slo_breach_total missing from /metrics"
        assert 'plan="local"' in breaches[0]
        assert float(breaches[0].rsplit(" ", 1)[1]) == 1
        assert steps, "failback_step missing from /metrics"
        assert float(steps[0].rsplit(" ", 1)[1]) == 100


class TestCrashSafety:
    async def test_worker_killed_during_a_soak_continues_the_same_step(
        self, plan: DrPlan, emulator: EmulatorHandle, worker: WorkerProcess, client: Client, estates: Estates
    ) -> None:
        """SIGKILL of the worker during the 50 % soak; a new worker finishes and no weight change is repeated."""
        await failed_over(client, worker, plan, emulator)
        since = emulator.last_seq()
        handle = await start_failback(client, worker, plan, soak_seconds=6)
        await until(handle, soaking(50, samples=2))
        worker.kill()
        await asyncio.sleep(1)
        assert eastus_percent(emulator) == 50.0
        worker.start()
        resumed = await until(handle, lambda s: s.current_step == 100 or s.phase in ("tenants", "completed"))
        assert resumed.readings[0].attempts == 1
        assert resumed.readings[1].attempts == 1, "the 50 % step was continued, not started again"
        result = await asyncio.wait_for(handle.result(), 90)
        assert result.outcome == "succeeded", result.reason
        patches = origin_patches(emulator, since)
        assert patches["app-eastus"] == [{"priority": 1, "weight": 250}, {"weight": 500}, {"weight": 1000}]
        assert patches["app-westus"] == [{"weight": 750}, {"weight": 500}, {"priority": 2, "weight": 1000}]
        await assert_failed_back(plan, estates)


class TestRefusals:
    async def test_failback_without_a_failover_is_refused_and_changes_nothing(
        self, plan: DrPlan, emulator: EmulatorHandle, worker: WorkerProcess, client: Client
    ) -> None:
        """On the untouched estate the failback refuses: nothing to fail back, and no mutating call is made."""
        handle = await start_failback(client, worker, plan)
        with pytest.raises(WorkflowFailureError) as info:
            await asyncio.wait_for(handle.result(), 60)
        assert "nothing to fail back" in failover_cmd.failure_message(info.value.cause)
        assert emulator.mutations() == []

    async def test_unhealthy_primary_is_refused(
        self, plan: DrPlan, emulator: EmulatorHandle, worker: WorkerProcess, client: Client
    ) -> None:
        """With eastus down the health gate refuses the failback before any change."""
        emulator.region("eastus", "down")
        handle = await start_failback(client, worker, plan)
        with pytest.raises(WorkflowFailureError) as info:
            await asyncio.wait_for(handle.result(), 60)
        message = failover_cmd.failure_message(info.value.cause)
        assert "primary region eastus is not healthy" in message
        assert emulator.mutations() == []

    async def test_failback_is_refused_while_a_failover_runs(
        self, plan: DrPlan, emulator: EmulatorHandle, worker: WorkerProcess, client: Client
    ) -> None:
        """drctl refuses to start a failback while a failover of the plan runs, naming it."""
        emulator.region("eastus", "down")
        failover = await start_failover(client, worker, plan)
        await until_phase(failover, ("watching",))
        with pytest.raises(failback_cmd.FailbackCommandError) as info:
            await start_failback(client, worker, plan)
        assert failover.id in str(info.value)
        assert "drctl failover status" in str(info.value)
        await failover.signal("primary-recovered", PrimaryRecovered())
        await asyncio.wait_for(failover.result(), 60)
