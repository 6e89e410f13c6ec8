"""FailoverWorkflow's orchestration, on the time-skipping test server with faked Azure activities."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain.messages.failback import FailbackInput
from domain.messages.failover import (
    AbortRequest,
    FailoverInput,
    FailoverResult,
    FailoverStatus,
    PrimaryRecovered,
    RepinInput,
)
from domain.messages.progress import DONE, FAILED, RUNNING, SKIPPED
from domain.plan import DrPlan
from tests.conftest import time_skipping
from tests.workflows.fakes import (
    FAIL,
    WARN,
    FakeAzure,
    breach,
    cancel_handled,
    check,
    ended_cancelled,
    failure_of_closed,
    no_data,
)
from workflows import WORKFLOWS
from workflows.failover import FailoverWorkflow
from workflows.lock import PLAN_BUSY
from workflows.repin import RepinTenantsWorkflow


@asynccontextmanager
async def worker(env: WorkflowEnvironment, fake: FakeAzure, task_queue: str) -> AsyncIterator[None]:
    async with Worker(env.client, task_queue=task_queue, workflows=list(WORKFLOWS), activities=fake.activities()):
        yield


async def start(env: WorkflowEnvironment, task_queue: str, **kwargs: Any) -> WorkflowHandle[Any, FailoverResult]:
    inp = FailoverInput(plan="local", from_region="eastus", to_region="westus", reason="test outage", **kwargs)
    return await env.client.start_workflow(
        FailoverWorkflow.run, inp, id=f"failover-local-{uuid.uuid4().hex[:8]}", task_queue=task_queue
    )


async def status(handle: WorkflowHandle[Any, FailoverResult]) -> FailoverStatus:
    return await handle.query("status", result_type=FailoverStatus)


async def wait_phase(handle: WorkflowHandle[Any, FailoverResult], *phases: str) -> FailoverStatus:
    for _ in range(400):
        current = await status(handle)
        if current.phase in phases:
            return current
        await asyncio.sleep(0.05)
    raise AssertionError(f"phase never reached {phases}; last {current.phase}")


def cause(err: WorkflowFailureError) -> ApplicationError:
    assert isinstance(err.cause, ApplicationError)
    return err.cause


def recovered_plan(plan: DrPlan, **failover: Any) -> DrPlan:
    return dataclasses.replace(plan, failover=dataclasses.replace(plan.failover, **failover))


async def wait_until(handle: WorkflowHandle[Any, FailoverResult], check: Callable[[FailoverStatus], bool]) -> None:
    """Wait (real time) until ``check`` holds for the status."""
    for _ in range(400):
        if check(await status(handle)):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the status never met the condition")


class TestHappyPath:
    async def test_independent_steps_run_in_parallel(
        self, time_env: WorkflowEnvironment, plan: DrPlan, task_queue: str
    ) -> None:
        """Front Door, Service Bus and tenant modes overlap in time, and so do the data-tier steps."""
        fake = FakeAzure(plan, step_seconds=0.4)
        async with worker(time_env, fake, task_queue):
            handle = await start(time_env, task_queue)
            await wait_phase(handle, "watching")
            await handle.signal("primary-recovered", PrimaryRecovered(by="test"))
            result = await handle.result()
        cutover = [
            fake.of(n)[0] for n in ("frontdoor.set_origins", "servicebus.failover_alias", "platform.set_tenant_mode")
        ]
        assert max(c.started for c in cutover) < min(c.ended for c in cutover)
        data = [*fake.of("sql.failover_group"), *fake.of("cosmos.set_write_region")]
        assert len(data) == len(plan.sql.failover_groups) + 1
        assert max(c.started for c in data) < min(c.ended for c in data)
        assert min(c.started for c in data) >= max(c.ended for c in cutover), "data tier starts after cut-over"
        assert result.outcome == "succeeded"
        assert result.slo_green is True
        assert result.rto_seconds is not None
        assert result.rto_seconds > 0
        assert result.rpo_seconds == 0.0, "planned failovers lose no data"
        assert {c.arg.mode for c in fake.of("sql.failover_group")} == {"planned"}

    async def test_tenant_mode_and_warmup_target_the_dr_gateway(
        self, time_env: WorkflowEnvironment, plan: DrPlan, task_queue: str
    ) -> None:
        """Tenants homed in the failed region become read-only through the DR region's gateway."""
        fake = FakeAzure(plan)
        async with worker(time_env, fake, task_queue):
            handle = await start(time_env, task_queue)
            await wait_phase(handle, "watching")
            await handle.signal("primary-recovered", PrimaryRecovered())
            await handle.result()
        mode = fake.of("platform.set_tenant_mode")[0].arg
        assert (mode.home_region, mode.mode, mode.gateway_region) == ("eastus", "read-only", "westus")
        assert fake.of("platform.warm_cache")[0].arg.region == "westus"
        origins = {o.region: o for o in fake.of("frontdoor.set_origins")[0].arg.origins}
        assert origins["westus"].priority == 1
        assert origins["eastus"].priority == 2


class TestExtendedOutage:
    async def test_repins_tenants_when_the_outage_outlasts_the_threshold(
        self, time_env: WorkflowEnvironment, plan: DrPlan, task_queue: str
    ) -> None:
        """With no recovery signal the 30-minute timer fires and every page of tenants is re-pinned."""
        fake = FakeAzure(plan, repin_pages=4)
        async with worker(time_env, fake, task_queue):
            handle = await start(time_env, task_queue)
            result = await handle.result()
        assert len(fake.of("platform.repin_batch")) == 4
        assert result.repin is not None
        assert (result.repin.moved, result.repin.not_allowed, result.repin.batches) == (28, 8, 4)
        assert "repin" in result.done
        first = fake.of("platform.repin_batch")[0].arg
        assert (first.from_region, first.to_region, first.limit) == ("eastus", "westus", plan.failover.repin_batch_size)

    async def test_recovery_signal_before_threshold_skips_repinning(
        self, time_env: WorkflowEnvironment, plan: DrPlan, task_queue: str
    ) -> None:
        """A "primary recovered" signal that beats the timer leaves every tenant where it is."""
        fake = FakeAzure(plan)
        async with worker(time_env, fake, task_queue):
            handle = await start(time_env, task_queue)
            await wait_phase(handle, "watching")
            await handle.signal("primary-recovered", PrimaryRecovered(by="sre"))
            result = await handle.result()
            final = await status(handle)
        assert fake.of("platform.repin_batch") == []
        assert final.extended_outage == "recovered"
        assert result.repin is None
        assert "repin" in result.not_done


class TestDataTier:
    async def test_forced_failover_after_grace_when_partner_is_down(
        self, time_env: WorkflowEnvironment, plan: DrPlan, task_queue: str
    ) -> None:
        """With the source down and data loss allowed, SQL waits out the grace period, then forces and measures RPO."""
        lossy = recovered_plan(plan, allow_data_loss=True, data_loss_grace_minutes=45)
        fake = FakeAzure(lossy, source_healthy=False, data_loss_seconds=6.5)
        async with worker(time_env, fake, task_queue):
            handle = await start(time_env, task_queue)
            result = await handle.result()
        assert {c.arg.mode for c in fake.of("sql.failover_group")} == {"forced"}
        assert result.rpo_seconds == 6.5
        assert len(fake.of("platform.data_loss_window")) == len(plan.sql.failover_groups)
        assert result.rto_seconds is not None
        assert result.rto_seconds >= 45 * 60, "the grace period is part of RTO"

    async def test_recovery_during_grace_turns_forced_into_planned(
        self, time_env: WorkflowEnvironment, plan: DrPlan, task_queue: str
    ) -> None:
        """If the primary comes back inside the grace period, the failover stays planned (no data loss)."""
        lossy = recovered_plan(plan, allow_data_loss=True, data_loss_grace_minutes=45)
        fake = FakeAzure(lossy, source_healthy=False)
        async with worker(time_env, fake, task_queue):
            handle = await start(time_env, task_queue)
            await wait_phase(handle, "data")
            await handle.signal("primary-recovered", PrimaryRecovered())
            result = await handle.result()
        assert {c.arg.mode for c in fake.of("sql.failover_group")} == {"planned"}
        assert result.rpo_seconds == 0.0

    async def test_partner_down_and_no_data_loss_allowed_stops_with_reason(
        self, time_env: WorkflowEnvironment, plan: DrPlan, task_queue: str
    ) -> None:
        """The plan forbids data loss and the partner is down: the workflow fails, saying what was and was not done."""
        strict = recovered_plan(plan, allow_data_loss=False)
        fake = FakeAzure(strict, source_healthy=False)
        async with worker(time_env, fake, task_queue):
            handle = await start(time_env, task_queue)
            with pytest.raises(WorkflowFailureError) as info:
                await handle.result()
        err = cause(info.value)
        assert err.type == "DataLossNotAllowed"
        assert "allow_data_loss" in err.message
        report = err.details[0]
        assert "frontdoor" in report["done"]
        assert "warmup" in report["not_done"]
        assert fake.of("sql.failover_group") == []


class TestRefusals:
    async def test_preflight_refuses_with_every_reason(
        self, time_env: WorkflowEnvironment, plan: DrPlan, task_queue: str
    ) -> None:
        """Failed checks refuse the failover, all reasons at once, before anything changes."""
        fake = FakeAzure(
            plan,
            checks=[
                check("servicebus", FAIL, "alias missing"),
                check("sql:fog-audit", FAIL, "group missing"),
                check("cosmos", WARN),
            ],
        )
        async with worker(time_env, fake, task_queue):
            handle = await start(time_env, task_queue)
            with pytest.raises(WorkflowFailureError) as info:
                await handle.result()
        err = cause(info.value)
        assert err.type == "PreflightRefused"
        assert "alias missing" in err.message
        assert "group missing" in err.message
        assert fake.names() == ["readiness.preflight"]

    async def test_force_overrides_checks_but_not_a_dead_target(
        self, time_env: WorkflowEnvironment, plan: DrPlan, task_queue: str
    ) -> None:
        """--force goes past failed checks, but never fails over into a region that is down."""
        fake = FakeAzure(
            plan, checks=[check("servicebus", FAIL, "pending replication"), check("target-region", FAIL, "westus down")]
        )
        async with worker(time_env, fake, task_queue):
            handle = await start(time_env, task_queue, force=True)
            with pytest.raises(WorkflowFailureError) as info:
                await handle.result()
        assert "westus down" in cause(info.value).message
        assert "pending replication" not in cause(info.value).message
        assert fake.names() == ["readiness.preflight"]

        fake = FakeAzure(plan, checks=[check("servicebus", FAIL, "pending replication")])
        async with worker(time_env, fake, task_queue):
            handle = await start(time_env, task_queue, force=True, extended_outage_minutes=1)
            result = await handle.result()
        assert result.outcome == "succeeded"
        assert "frontdoor.set_origins" in fake.names()

    async def test_bad_regions_are_refused(self, time_env: WorkflowEnvironment, plan: DrPlan, task_queue: str) -> None:
        """An unknown region or the same source and target stops the workflow before any call."""
        fake = FakeAzure(plan)
        async with worker(time_env, fake, task_queue):
            for kwargs in ({"from_region": "westus"}, {"to_region": "centralus"}):
                inp = dataclasses.replace(FailoverInput("local", "eastus", "westus", "t"), **kwargs)
                handle = await time_env.client.start_workflow(
                    FailoverWorkflow.run, inp, id=f"failover-bad-{uuid.uuid4().hex[:6]}", task_queue=task_queue
                )
                with pytest.raises(WorkflowFailureError) as info:
                    await handle.result()
                assert cause(info.value).type == "InvalidInput"
        assert fake.calls == []


class TestOneAtATime:
    async def test_a_second_failover_or_a_failback_of_the_plan_is_refused_while_one_runs(
        self, time_env: WorkflowEnvironment, plan: DrPlan, task_queue: str
    ) -> None:
        """While a failover of plan local runs (here: watching the outage), a second failover and a failback of
        it fail PlanBusy before any step, their first step saying why; a dry run is not held; once the first
        ends, the plan is free again."""
        fake = FakeAzure(plan)
        async with worker(time_env, fake, task_queue):
            first = await start(time_env, task_queue)
            await wait_phase(first, "watching")
            second = await start(time_env, task_queue)
            second_failure = await failure_of_closed(second)
            second_status = await status(second)
            failback = await time_env.client.start_workflow(
                "FailbackWorkflow",
                FailbackInput(plan="local", reason="too early"),
                id=f"failback-local-{uuid.uuid4().hex[:8]}",
                task_queue=task_queue,
            )
            failback_failure = await failure_of_closed(failback)
            dry_run = await (await start(time_env, task_queue, dry_run=True)).result()
            await first.signal("primary-recovered", PrimaryRecovered(by="test"))
            first_result = await first.result()
            third = await start(time_env, task_queue)
            await wait_phase(third, "watching")
            await third.signal("primary-recovered", PrimaryRecovered(by="test"))
            third_result = await third.result()
        for failure in (second_failure, failback_failure):
            assert failure.application_failure_info.type == PLAN_BUSY
            assert "another failover or failback of plan local is running: it holds dr-lock-local" in failure.message
        preflight = second_status.steps.get("preflight")
        assert (second_status.phase, preflight.status) == ("failed", FAILED)
        assert "dr-lock-local" in preflight.detail
        assert fake.names().count("readiness.preflight") == 3, "the refused failover called nothing"
        assert dry_run.outcome == "dry-run"
        assert (first_result.outcome, third_result.outcome) == ("succeeded", "succeeded")


class TestAbortAndDryRun:
    async def test_abort_between_steps_reports_done_and_not_done(
        self, time_env: WorkflowEnvironment, plan: DrPlan, task_queue: str
    ) -> None:
        """An abort during cut-over lets the running steps finish, then stops before the data tier."""
        gate = asyncio.Event()
        fake = FakeAzure(plan, gates={"frontdoor.set_origins": gate})
        async with worker(time_env, fake, task_queue):
            handle = await start(time_env, task_queue)
            await wait_phase(handle, "cutover")
            ack = await handle.execute_update("abort", AbortRequest(reason="wrong region", by="ic"))
            assert ack["accepted"] is True
            with pytest.raises(WorkflowUpdateFailedError):
                await handle.execute_update("abort", AbortRequest(reason="again"))
            gate.set()
            result = await handle.result()
        assert result.outcome == "aborted"
        assert {"frontdoor", "servicebus", "tenants"} <= set(result.done)
        assert {"warmup", "slo", "cosmos"} <= set(result.not_done)
        assert fake.of("sql.failover_group") == []
        assert fake.of("cosmos.set_write_region") == []
        assert result.reason == "wrong region"

    async def test_dry_run_plans_every_call_and_changes_nothing(
        self, time_env: WorkflowEnvironment, plan: DrPlan, task_queue: str
    ) -> None:
        """A dry run asks every step for its planned calls, waits for no timer and validates nothing."""
        fake = FakeAzure(plan)
        async with worker(time_env, fake, task_queue):
            handle = await start(time_env, task_queue, dry_run=True)
            result = await handle.result()
        assert result.outcome == "dry-run"
        mutating = [c for c in fake.calls if c.name not in ("readiness.preflight",)]
        assert mutating
        assert all(c.arg.dry_run for c in mutating)
        assert "PATCH origins/app-eastus" in result.planned_calls
        assert any("failoverGroups/fog-tenants/failover" in c for c in result.planned_calls)
        assert fake.of("health.read_slo") == []
        assert fake.of("platform.repin_batch") == []
        assert result.rto_seconds is None


class TestSloValidation:
    async def test_breach_and_missing_data_delay_green_and_rto(
        self, time_env: WorkflowEnvironment, plan: DrPlan, task_queue: str
    ) -> None:
        """Samples with a breach or no data are not green; RTO counts until the first green sample."""
        fake = FakeAzure(plan, slo_readings=[breach(), no_data()])
        async with worker(time_env, fake, task_queue):
            handle = await start(time_env, task_queue, extended_outage_minutes=1)
            result = await handle.result()
        assert len(fake.of("health.read_slo")) == 3
        assert result.slo_green is True
        assert result.rto_seconds is not None
        assert result.rto_seconds >= 3 * plan.slo.sample_interval_seconds

    async def test_slo_never_green_is_reported_not_hidden(
        self, time_env: WorkflowEnvironment, plan: DrPlan, task_queue: str
    ) -> None:
        """If the SLO stays red until the timeout the failover completes as slo-not-met with no RTO."""
        fake = FakeAzure(plan, slo_readings=[breach() for _ in range(200)])
        async with worker(time_env, fake, task_queue):
            handle = await start(time_env, task_queue, slo_timeout_seconds=60, extended_outage_minutes=1)
            result = await handle.result()
        assert result.outcome == "slo-not-met"
        assert result.rto_seconds is None
        assert result.slo_green is False
        assert "slo" in result.not_done


class TestRepinning:
    async def test_history_stays_bounded_through_continue_as_new(
        self, time_env: WorkflowEnvironment, plan: DrPlan, task_queue: str
    ) -> None:
        """Re-pinning continues as new every few batches and still adds up every page."""
        fake = FakeAzure(plan, repin_pages=7)
        async with worker(time_env, fake, task_queue):
            handle = await time_env.client.start_workflow(
                RepinTenantsWorkflow.run,
                RepinInput("local", "eastus", "westus", batch_size=50, reason="test", batches_per_run=2),
                id=f"repin-{uuid.uuid4().hex[:6]}",
                task_queue=task_queue,
            )
            summary = await handle.result()
            first_run = time_env.client.get_workflow_handle(handle.id, run_id=handle.result_run_id)
            history = await first_run.fetch_history()
        assert (summary.batches, summary.moved, summary.considered) == (7, 49, 70)
        cursors = [c.arg.cursor for c in fake.of("platform.repin_batch")]
        assert cursors == [None, "1", "2", "3", "4", "5", "6"], "no page repeated or skipped across runs"
        last = history.events[-1]
        assert last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
        assert len(history.events) < 40, "one run holds two batches, not the whole re-pinning"


class TestCancellation:
    """A cancelled failover stops at the next safe point like an abort and ends Cancelled."""

    async def test_cancel_during_cutover_lets_the_running_change_finish(
        self, time_env: WorkflowEnvironment, plan: DrPlan, task_queue: str
    ) -> None:
        """Cancelled while Front Door changes, the workflow waits for that change, runs no later step, marks the
        steps not started skipped and ends Cancelled."""
        gate = asyncio.Event()
        fake = FakeAzure(plan, gates={"frontdoor.set_origins": gate})
        async with worker(time_env, fake, task_queue):
            handle = await start(time_env, task_queue)
            await wait_until(handle, lambda s: s.steps.by_status(DONE) == ["preflight", "servicebus", "tenants"])
            await cancel_handled(handle, "wrong region")
            during = await status(handle)
            assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING, "waits for the change"
            assert during.steps.get("frontdoor").status == RUNNING
            gate.set()
            final = await ended_cancelled(handle, FailoverStatus)
        frontdoor = fake.of("frontdoor.set_origins")
        assert len(frontdoor) == 1
        assert frontdoor[0].ended > 0, "the running change completed"
        assert final.phase == "cancelled"
        assert final.steps.by_status(DONE) == ["preflight", "frontdoor", "servicebus", "tenants"]
        later = [f"sql:{g.name}" for g in plan.sql.failover_groups] + ["cosmos", "warmup", "slo", "repin"]
        assert final.steps.by_status(SKIPPED) == later
        assert {final.steps.get(key).detail for key in later} == {"cancelled: wrong region"}
        assert fake.of("sql.failover_group") == []
        assert fake.of("cosmos.set_write_region") == []
        assert fake.of("platform.warm_cache") == []

    async def test_cancel_during_the_grace_period_forces_nothing(
        self, time_env: WorkflowEnvironment, plan: DrPlan, task_queue: str
    ) -> None:
        """Cancelled while SQL waits out the grace before a forced failover, the wait ends at once: no forced
        failover, the waiting steps failed as cancelled, well before the 45-minute grace."""
        lossy = recovered_plan(plan, allow_data_loss=True, data_loss_grace_minutes=45)
        fake = FakeAzure(lossy, source_healthy=False)
        groups = [f"sql:{g.name}" for g in plan.sql.failover_groups]
        async with worker(time_env, fake, task_queue):
            handle = await start(time_env, task_queue)
            await wait_until(
                handle, lambda s: s.steps.by_status(RUNNING) == groups and s.steps.get("cosmos").status == DONE
            )
            await handle.cancel(reason="the primary is back, failing over by hand")
            final = await ended_cancelled(handle, FailoverStatus)
            described = await handle.describe()
        assert described.close_time is not None
        assert described.close_time - described.start_time < timedelta(minutes=45)
        assert fake.of("sql.failover_group") == []
        for key in groups:
            step = final.steps.get(key)
            assert step.status == FAILED
            assert step.detail.startswith("cancelled: the primary is back, failing over by hand (was: partner down")
        assert final.steps.get("cosmos").status == DONE
        assert final.steps.by_status(SKIPPED) == ["warmup", "slo", "repin"]
        assert final.phase == "cancelled"

    async def test_cancel_while_repinning_cancels_the_child(self, plan: DrPlan, task_queue: str) -> None:
        """Cancelled while watching the outage with tenants being re-pinned, the re-pinning child ends Cancelled
        before the failover does, and the step says the tenants moved so far stay in the DR region."""
        # A test server of its own: the batch activity the child's cancel abandons never reports back to the
        # server, and the time-skipping server then stops skipping time for every later test that shares it.
        gate = asyncio.Event()
        fake = FakeAzure(plan, gates={"platform.repin_batch": gate})
        async with time_skipping() as env, worker(env, fake, task_queue):
            handle = await start(env, task_queue, extended_outage_minutes=1)
            # Small steps: once the batch is held at the gate, the test server's clock runs in real time.
            for _ in range(200):
                if fake.of("platform.repin_batch") and (await status(handle)).phase == "watching":
                    break
                await env.sleep(timedelta(seconds=1))
            else:
                raise AssertionError("re-pinning never started")
            await handle.cancel(reason="outage over")
            final = await ended_cancelled(handle, FailoverStatus)
            child = await env.client.get_workflow_handle(f"{handle.id}-repin").describe()
            closed = (await handle.describe()).close_time
            gate.set()
        assert child.status == WorkflowExecutionStatus.CANCELED
        assert child.close_time is not None
        assert closed is not None
        assert child.close_time <= closed, "the failover waited for its child"
        repin = final.steps.get("repin")
        assert repin.status == FAILED
        assert (
            repin.detail
            == f"cancelled while re-pinning: the tenants moved so far stay in westus (child workflow {handle.id}-repin)"
        )
        assert final.extended_outage == "cancelled"
        assert final.steps.by_status(DONE)[-2:] == ["warmup", "slo"]
