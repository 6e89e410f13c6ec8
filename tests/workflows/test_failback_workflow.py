"""FailbackWorkflow's orchestration, on the time-skipping test server with faked Azure activities:
real soak times (5 min per step, a sample a minute) pass in seconds."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain.messages.failback import (
    CommandAccepted,
    FailbackCommand,
    FailbackInput,
    FailbackResult,
    FailbackStatus,
)
from domain.messages.health import SloReading
from domain.messages.progress import DONE, FAILED, RUNNING, SKIPPED
from domain.plan import DrPlan
from tests.workflows.fakes import FAIL, FakeAzure, breach, cancel_handled, check, ended_cancelled, green, no_data
from workflows import WORKFLOWS
from workflows.common import DR_PHASE
from workflows.failback import FailbackWorkflow

Handle = WorkflowHandle[Any, FailbackResult]
DEFAULT_STEPS = [10, 25, 50, 75, 100]
SAMPLES_PER_STEP = 5  # the local plan's 300 s soak at 60 s intervals


@dataclass
class Slo:
    """The primary origin's health per traffic step: breaches or missing data where asked."""

    breach_at: set[int] = field(default_factory=set)
    no_data_at: set[int] = field(default_factory=set)

    def __call__(self, region: str, percent: int) -> SloReading:
        if percent in self.breach_at:
            return breach()
        if percent in self.no_data_at:
            return no_data()
        return green()

    def heal(self) -> None:
        self.breach_at.clear()
        self.no_data_at.clear()


def failed_over(plan: DrPlan, slo: Callable[[str, int], SloReading] | None = None, **kwargs: Any) -> FakeAzure:
    """The fake estate as a failover left it: traffic, alias, SQL and Cosmos on the DR region."""
    return FakeAzure(plan, estate_region=plan.dr_region, origin_slo=slo, **kwargs)


@asynccontextmanager
async def worker(env: WorkflowEnvironment, fake: FakeAzure, task_queue: str) -> AsyncIterator[None]:
    async with Worker(env.client, task_queue=task_queue, workflows=list(WORKFLOWS), activities=fake.activities()):
        yield


async def start(env: WorkflowEnvironment, task_queue: str, **kwargs: Any) -> Handle:
    inp = FailbackInput(plan="local", reason="eastus recovered", requested_by="sre", **kwargs)
    return await env.client.start_workflow(
        FailbackWorkflow.run, inp, id=f"failback-local-{uuid.uuid4().hex[:8]}", task_queue=task_queue
    )


async def status(handle: Handle) -> FailbackStatus:
    current: FailbackStatus = await handle.query("status", result_type=FailbackStatus)
    return current


async def advance_until(
    env: WorkflowEnvironment, handle: Handle, done: Callable[[FailbackStatus], bool], step: float = 20
) -> FailbackStatus:
    """Skip workflow time ``step`` seconds at a time until ``done(status)``."""
    for _ in range(400):
        current = await status(handle)
        if done(current):
            return current
        await env.sleep(timedelta(seconds=step))
    raise AssertionError(f"condition never met; last phase {current.phase} at {current.primary_percent} %")


async def command(handle: Handle, name: str, reason: str = "", by: str = "sre") -> CommandAccepted:
    accepted: CommandAccepted = await handle.execute_update(
        name, FailbackCommand(reason=reason, by=by), result_type=CommandAccepted
    )
    return accepted


def cause(err: WorkflowFailureError) -> ApplicationError:
    assert isinstance(err.cause, ApplicationError)
    return err.cause


def paused(current: FailbackStatus) -> bool:
    return current.phase == "paused"


async def held_at_gate(fake: FakeAzure, name: str, calls: int) -> None:
    """Wait (real time) until the fake activity ``name`` has been called ``calls`` times."""
    for _ in range(400):
        if len(fake.of(name)) >= calls:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{name} was called {len(fake.of(name))} times, expected {calls}")


class TestHappyPath:
    async def test_walks_every_step_with_a_full_soak_each(
        self, time_env: WorkflowEnvironment, plan: DrPlan, task_queue: str
    ) -> None:
        """With a healthy primary the shift sets 10/25/50/75/100 % once each, sampling five minutes per step."""
        fake = failed_over(plan)
        async with worker(time_env, fake, task_queue):
            handle = await start(time_env, task_queue)
            result = await handle.result()
        assert result.outcome == "succeeded"
        assert result.schedule == DEFAULT_STEPS
        assert fake.primary_percents == DEFAULT_STEPS
        reads = fake.of("health.read_slo")
        assert len(reads) == len(DEFAULT_STEPS) * SAMPLES_PER_STEP
        assert {(r.arg.regions, r.arg.window_seconds, r.arg.interval) for r in reads} == {(("eastus",), 60.0, "PT60S")}
        assert [(r.percent, r.status, r.ok_samples, r.samples) for r in result.readings] == [
            (p, "passed", SAMPLES_PER_STEP, SAMPLES_PER_STEP) for p in DEFAULT_STEPS
        ]
        assert result.readings[0].request_count == 1000
        final = {o.region: o for o in fake.of("frontdoor.set_origins")[-1].arg.origins}
        assert (final["eastus"].priority, final["westus"].priority) == (1, 2), "100 % is active/passive"
        assert result.primary_percent == 100
        assert result.breaches == 0
        assert {"tenants", "warmup", "servicebus", "cosmos", "traffic:100"} <= set(result.done)
        assert result.not_done == []

    async def test_data_resyncs_in_parallel_before_any_traffic_moves(
        self, time_env: WorkflowEnvironment, plan: DrPlan, task_queue: str
    ) -> None:
        """Service Bus, both SQL groups and Cosmos overlap in time, and finish before the first weight change."""
        fake = failed_over(plan, step_seconds=0.3)
        async with worker(time_env, fake, task_queue):
            handle = await start(time_env, task_queue, steps=[50, 100], soak_seconds=60, interval_seconds=60)
            await handle.result()
        groups = len(plan.sql.failover_groups)
        # The first call of each chain: the alias read, each group's read and the Cosmos change.
        firsts = [
            fake.of("servicebus.get_alias")[1],
            *fake.of("sql.get_failover_group")[groups:],
            *fake.of("cosmos.set_write_region"),
        ]
        assert len(firsts) == 1 + groups + 1
        assert max(c.started for c in firsts) < min(c.ended for c in firsts)
        data_end = max(c.ended for c in fake.calls if c.name.startswith(("servicebus.", "sql.", "cosmos.")))
        assert fake.of("frontdoor.set_origins")[0].started >= data_end

    async def test_service_bus_repairs_drains_then_fails_over_and_pairs_back(
        self, time_env: WorkflowEnvironment, plan: DrPlan, task_queue: str
    ) -> None:
        """The alias is paired from westus, drained, failed over to eastus (safely), then paired eastus → westus."""
        fake = failed_over(plan)
        async with worker(time_env, fake, task_queue):
            handle = await start(time_env, task_queue, steps=[100], soak_seconds=60, interval_seconds=60)
            result = await handle.result()
        sb = [
            (c.name, c.arg) for c in fake.calls if c.name.startswith("servicebus.") and c.name != "servicebus.get_alias"
        ]
        assert [name for name, _ in sb] == [
            "servicebus.pair",
            "servicebus.wait_replication",
            "servicebus.failover_alias",
            "servicebus.pair",
        ]
        assert sb[0][1].primary_region == "westus"
        assert (sb[2][1].target_region, sb[2][1].safe) == ("eastus", True)
        assert sb[3][1].primary_region == "eastus"
        assert (fake.alias_primary, fake.alias_paired) == ("eastus", True)
        detail = result.steps.get("servicebus").detail
        assert "25 pending → 0" in detail

    async def test_sql_fails_back_planned_only_after_replication_caught_up(
        self, time_env: WorkflowEnvironment, plan: DrPlan, task_queue: str
    ) -> None:
        """While a group reports SUSPENDED replication the workflow waits; the failover back is always planned."""
        fake = failed_over(plan, sql_states=["SUSPENDED", "SUSPENDED", "SUSPENDED", "SUSPENDED"])
        async with worker(time_env, fake, task_queue):
            handle = await start(time_env, task_queue, steps=[100], soak_seconds=60, interval_seconds=60)
            result = await handle.result()
        groups = len(plan.sql.failover_groups)
        reads = fake.of("sql.get_failover_group")
        assert len(reads) == 2 * groups + 2, "the estate check consumed two states; two more reads waited"
        assert {c.arg.mode for c in fake.of("sql.failover_group")} == {"planned"}
        last_suspended = reads[groups + 1]
        assert all(c.started > last_suspended.ended for c in fake.of("sql.failover_group"))
        assert fake.sql_primary == {g.name: "eastus" for g in plan.sql.failover_groups}
        assert result.outcome == "succeeded"

    async def test_tenants_read_write_and_warmup_through_the_primary(
        self, time_env: WorkflowEnvironment, plan: DrPlan, task_queue: str
    ) -> None:
        """After all traffic is back, tenants homed in eastus become read-write and eastus's cache warms, via eastus."""
        fake = failed_over(plan)
        async with worker(time_env, fake, task_queue):
            handle = await start(time_env, task_queue, steps=[100], soak_seconds=60, interval_seconds=60)
            await handle.result()
        mode = fake.of("platform.set_tenant_mode")[0]
        assert (mode.arg.home_region, mode.arg.mode, mode.arg.gateway_region) == ("eastus", "read-write", "eastus")
        warm = fake.of("platform.warm_cache")[0]
        assert (warm.arg.region, warm.arg.gateway_region) == ("eastus", "eastus")
        assert mode.started >= fake.of("frontdoor.set_origins")[-1].ended


class TestBreach:
    async def test_breach_at_50_rolls_back_to_25_and_pauses_then_resume_succeeds(
        self, time_env: WorkflowEnvironment, plan: DrPlan, task_queue: str
    ) -> None:
        """A breach at 50 % sets 25 % at once and pauses; after resume the 50 % step is retried and the shift ends."""
        slo = Slo(breach_at={50})
        fake = failed_over(plan, slo)
        async with worker(time_env, fake, task_queue):
            handle = await start(time_env, task_queue)
            held = await advance_until(time_env, handle, paused)
            assert (held.primary_percent, held.last_good_percent, held.current_step) == (25, 25, 50)
            assert fake.primary_percents == [10, 25, 50, 25]
            fifty = held.readings[2]
            assert (fifty.status, fifty.last_verdict, fifty.breaches) == ("rolled-back", "breach", 1)
            assert fifty.error_rate == pytest.approx(0.2)
            assert held.paused is not None
            assert "breach at 50 %" in held.paused
            assert "rolled back to 25 %" in held.paused
            assert held.breaches == 1
            names = fake.names()
            assert names[-2:] == ["health.read_slo", "frontdoor.set_origins"], "rollback follows the breaching sample"
            described = await handle.describe()
            assert described.typed_search_attributes.get(DR_PHASE) == "paused"

            reads = len(fake.of("health.read_slo"))
            await time_env.sleep(timedelta(hours=1))
            assert len(fake.of("health.read_slo")) == reads, "nothing is sampled while paused"
            assert (await status(handle)).primary_percent == 25

            slo.heal()
            ack = await command(handle, "resume")
            assert "retrying the 50 % step" in ack.message
            result = await handle.result()
        assert result.outcome == "succeeded"
        assert fake.primary_percents == [10, 25, 50, 25, 50, 75, 100]
        assert (result.readings[2].attempts, result.readings[2].breaches, result.readings[2].status) == (2, 1, "passed")
        assert result.breaches == 1

    async def test_abort_while_paused_returns_all_traffic_to_dr(
        self, time_env: WorkflowEnvironment, plan: DrPlan, task_queue: str
    ) -> None:
        """Abort after a breach sends 100 % to westus, skips the later steps and leaves tenants untouched."""
        fake = failed_over(plan, Slo(breach_at={50}))
        async with worker(time_env, fake, task_queue):
            handle = await start(time_env, task_queue)
            await advance_until(time_env, handle, paused)
            with pytest.raises(WorkflowUpdateFailedError):
                await command(handle, "abort", reason="  ")
            ack = await command(handle, "abort", reason="5xx in eastus", by="ic")
            assert "westus" in ack.message
            result = await handle.result()
        assert result.outcome == "aborted"
        assert result.reason == "5xx in eastus"
        assert fake.primary_percents == [10, 25, 50, 25, 0]
        final = {o.region: o for o in fake.of("frontdoor.set_origins")[-1].arg.origins}
        assert (final["westus"].priority, final["eastus"].priority) == (1, 2)
        assert result.primary_percent == 0
        assert {"traffic:75", "traffic:100", "tenants", "warmup"} <= set(result.not_done)
        assert "abort" in result.done
        assert fake.of("platform.set_tenant_mode") == []

    async def test_missing_metrics_count_as_a_breach(
        self, time_env: WorkflowEnvironment, plan: DrPlan, task_queue: str
    ) -> None:
        """A sample without data at 25 % rolls back to 10 % and pauses, exactly like a breach (fail closed)."""
        fake = failed_over(plan, Slo(no_data_at={25}))
        async with worker(time_env, fake, task_queue):
            handle = await start(time_env, task_queue)
            held = await advance_until(time_env, handle, paused)
            await command(handle, "abort", reason="no metrics")
            await handle.result()
        assert held.primary_percent == 10
        assert held.readings[1].last_verdict == "no_data"
        assert held.readings[1].status == "rolled-back"
        assert held.paused is not None
        assert "no_data at 25 %" in held.paused
        assert fake.primary_percents == [10, 25, 10, 0]

    async def test_breach_at_the_first_step_rolls_back_to_all_dr(
        self, time_env: WorkflowEnvironment, plan: DrPlan, task_queue: str
    ) -> None:
        """With no good step yet, a breach at 10 % returns all traffic to the DR region."""
        fake = failed_over(plan, Slo(breach_at={10}))
        async with worker(time_env, fake, task_queue):
            handle = await start(time_env, task_queue)
            held = await advance_until(time_env, handle, paused)
            await command(handle, "abort", reason="primary sick")
            await handle.result()
        assert held.primary_percent == 0
        assert fake.primary_percents == [10, 0]


class TestOperatorCommands:
    async def test_pause_and_resume_between_samples_keeps_the_step(
        self, time_env: WorkflowEnvironment, plan: DrPlan, task_queue: str
    ) -> None:
        """An operator pause holds the weights and stops sampling; resume continues the same step without rollback."""
        fake = failed_over(plan)
        async with worker(time_env, fake, task_queue):
            handle = await start(time_env, task_queue)
            await advance_until(time_env, handle, lambda s: s.current_step == 25 and s.readings[1].samples >= 2)
            ack = await command(handle, "pause", reason="deploy in progress")
            assert "pausing at eastus 25 %" in ack.message
            with pytest.raises(WorkflowUpdateFailedError):
                await command(handle, "pause", reason="again")
            held = await advance_until(time_env, handle, paused, step=1)
            assert held.paused == "paused by sre: deploy in progress"
            reads = len(fake.of("health.read_slo"))
            await time_env.sleep(timedelta(hours=2))
            assert len(fake.of("health.read_slo")) == reads
            ack = await command(handle, "resume")
            assert "continuing the 25 % step" in ack.message
            with pytest.raises(WorkflowUpdateFailedError):
                await command(handle, "resume")
            result = await handle.result()
        assert result.outcome == "succeeded"
        assert fake.primary_percents == DEFAULT_STEPS, "no weight change was repeated or rolled back"
        assert result.readings[1].attempts == 1
        assert result.readings[1].ok_samples == SAMPLES_PER_STEP

    async def test_promote_skips_the_remaining_soak(
        self, time_env: WorkflowEnvironment, plan: DrPlan, task_queue: str
    ) -> None:
        """Promote during the 25 % soak sends 100 % to eastus at once; the steps in between are skipped."""
        fake = failed_over(plan)
        async with worker(time_env, fake, task_queue):
            handle = await start(time_env, task_queue)
            await advance_until(time_env, handle, lambda s: s.current_step == 25)
            await command(handle, "promote", reason="looks fine", by="lead")
            result = await handle.result()
        assert fake.primary_percents == [10, 25, 100]
        assert result.outcome == "succeeded"
        assert result.promoted_at == 25
        assert [r.status for r in result.readings] == ["passed", "skipped", "skipped", "skipped", "promoted"]
        assert {"traffic:25", "traffic:50", "traffic:75"} <= set(result.not_done)
        assert "traffic:100" in result.done

    async def test_commands_out_of_place_are_rejected_before_history(
        self, time_env: WorkflowEnvironment, plan: DrPlan, task_queue: str
    ) -> None:
        """During the data resync, pause, resume and promote are refused; abort stops before any traffic moves."""
        gate = asyncio.Event()
        fake = failed_over(plan, gates={"cosmos.set_write_region": gate})
        async with worker(time_env, fake, task_queue):
            handle = await start(time_env, task_queue)
            for _ in range(200):
                if (await status(handle)).phase == "resync":
                    break
                await asyncio.sleep(0.05)
            for name, expected in (
                ("pause", "traffic shifting has not started"),
                ("promote", "traffic shifting has not started"),
                ("resume", "not paused"),
            ):
                with pytest.raises(WorkflowUpdateFailedError) as info:
                    await command(handle, name, reason="x")
                assert expected in str(info.value.cause)
            await command(handle, "abort", reason="changed our mind")
            gate.set()
            result = await handle.result()
            history = await handle.fetch_history()
        assert result.outcome == "aborted"
        assert fake.of("frontdoor.set_origins") == []
        assert "traffic:10" in result.not_done
        accepted = [e for e in history.events if e.HasField("workflow_execution_update_accepted_event_attributes")]
        assert len(accepted) == 1, "only the abort reached the history"


class TestRefusals:
    async def test_unhealthy_primary_is_refused_before_any_change(
        self, time_env: WorkflowEnvironment, plan: DrPlan, task_queue: str
    ) -> None:
        """The health gate refuses while eastus fails its check, naming the reason; nothing is changed."""
        fake = failed_over(plan, target_healthy=False, checks=[check("target-region", FAIL, "eastus gateway 503")])
        async with worker(time_env, fake, task_queue):
            handle = await start(time_env, task_queue)
            with pytest.raises(WorkflowFailureError) as info:
                await handle.result()
        err = cause(info.value)
        assert err.type == "PrimaryUnhealthy"
        assert "eastus gateway 503" in err.message
        assert fake.names() == ["readiness.preflight"]
        assert fake.of("readiness.preflight")[0].arg.to_region == "eastus"

    async def test_failback_without_a_failover_is_refused(
        self, time_env: WorkflowEnvironment, plan: DrPlan, task_queue: str
    ) -> None:
        """With traffic, alias, SQL and Cosmos all on eastus there is nothing to fail back, and nothing is changed."""
        fake = FakeAzure(plan)
        async with worker(time_env, fake, task_queue):
            handle = await start(time_env, task_queue)
            with pytest.raises(WorkflowFailureError) as info:
                await handle.result()
        err = cause(info.value)
        assert err.type == "NothingToFailBack"
        assert "already runs on its primary region eastus" in err.message
        assert "Front Door sends 100 % to eastus" in err.message
        reads = {"readiness.preflight", "frontdoor.get_origins", "servicebus.get_alias", "sql.get_failover_group"}
        assert set(fake.names()) <= reads | {"cosmos.get_account"}

    @pytest.mark.parametrize(
        ("overrides", "expected"),
        [
            ({"steps": [50, 25, 100]}, "steps must strictly increase"),
            ({"steps": [10, 50, 150]}, "between 1 and 100"),
            ({"soak_seconds": 30, "interval_seconds": 60}, "shorter than the sampling interval"),
            ({"steps": [10, 50]}, "the last step must be 100"),
        ],
        ids=["not-increasing", "over-100", "soak-shorter-than-interval", "not-ending-at-100"],
    )
    async def test_bad_schedules_are_refused(
        self,
        time_env: WorkflowEnvironment,
        plan: DrPlan,
        task_queue: str,
        overrides: dict[str, Any],
        expected: str,
    ) -> None:
        """A schedule the plan's rules reject stops the workflow with the rule's words, before any call."""
        fake = failed_over(plan)
        async with worker(time_env, fake, task_queue):
            handle = await start(time_env, task_queue, **overrides)
            with pytest.raises(WorkflowFailureError) as info:
                await handle.result()
        err = cause(info.value)
        assert err.type == "InvalidInput"
        assert expected in err.message
        assert fake.calls == []


class TestVisibility:
    async def test_status_and_ui_details_show_weights_and_readings(
        self, time_env: WorkflowEnvironment, plan: DrPlan, task_queue: str
    ) -> None:
        """Mid-shift, the status query and the UI's current details carry the weights and each step's readings."""
        fake = failed_over(plan)
        async with worker(time_env, fake, task_queue):
            handle = await start(time_env, task_queue)
            current = await advance_until(
                time_env, handle, lambda s: s.current_step == 50 and s.readings[2].samples > 0
            )
            metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
            await command(handle, "promote", reason="done looking")
            await handle.result()
        assert current.phase == "shifting"
        assert (current.primary_percent, current.last_good_percent) == (50, 25)
        assert (current.soak_seconds, current.interval_seconds) == (300, 60)
        assert current.readings[1].ok_samples == SAMPLES_PER_STEP
        details = metadata.current_details
        assert "**Traffic:** eastus 50 % / westus 50 % · step 50 %" in details
        assert "| 25 % | passed | 5/5 | 0 | ok | 1000 | 0.00% | 120 ms |" in details
        assert "Traffic 50 % to eastus" in details

    async def test_dry_run_plans_every_step_and_changes_nothing(
        self, time_env: WorkflowEnvironment, plan: DrPlan, task_queue: str
    ) -> None:
        """A dry run reads the estate, asks every mutating activity for its planned calls and samples nothing."""
        fake = failed_over(plan)
        async with worker(time_env, fake, task_queue):
            handle = await start(time_env, task_queue, dry_run=True)
            result = await handle.result()
        assert result.outcome == "dry-run"
        mutating = [c for c in fake.calls if hasattr(c.arg, "dry_run")]
        assert mutating
        assert all(c.arg.dry_run for c in mutating)
        assert fake.of("health.read_slo") == []
        assert fake.of("servicebus.wait_replication") == []
        assert fake.primary_percents == []
        assert any("disasterRecoveryConfigs" in c for c in result.planned_calls)
        assert sum("then soak 300s" in c for c in result.planned_calls) == len(DEFAULT_STEPS)


class TestCancellation:
    """A cancelled failback is an abort with the reason "cancelled: …" and ends Cancelled."""

    async def test_cancel_during_the_50_percent_change_returns_all_traffic_to_dr(
        self, time_env: WorkflowEnvironment, plan: DrPlan, task_queue: str
    ) -> None:
        """Cancelled while the 50 % weights are being set, that change finishes, then all traffic returns to
        westus; the step cut short fails, the later ones are skipped, and the status shows it all."""
        gate = asyncio.Event()
        gate.set()
        fake = failed_over(plan, gates={"frontdoor.set_origins": gate})
        async with worker(time_env, fake, task_queue):
            handle = await start(time_env, task_queue)
            await advance_until(time_env, handle, lambda s: s.current_step == 25 and s.readings[1].samples >= 4)
            gate.clear()
            # Small steps: once the 50 % change is held at the gate, the test server's clock runs in real time.
            await advance_until(time_env, handle, lambda s: s.current_step == 50, step=1)
            await held_at_gate(fake, "frontdoor.set_origins", 3)
            await cancel_handled(handle, "primary flapping")
            assert (await status(handle)).steps.get("traffic:50").status == RUNNING, "waits for the change"
            gate.set()
            final = await ended_cancelled(handle, FailbackStatus)
        assert fake.primary_percents == [10, 25, 50, 0], "the 50 % change finished, then all traffic went back"
        assert fake.primary_percent == 0
        assert (final.phase, final.primary_percent, final.current_step, final.paused) == ("cancelled", 0, None, None)
        steps = final.steps
        assert [steps.get(k).status for k in ("traffic:10", "traffic:25", "traffic:50")] == [DONE, DONE, FAILED]
        assert steps.get("traffic:50").detail.startswith("cancelled: primary flapping (was: eastus 50 % / westus 50 %")
        assert steps.by_status(SKIPPED) == ["traffic:75", "traffic:100", "tenants", "warmup"]
        assert {steps.get(k).detail for k in steps.by_status(SKIPPED)} == {"cancelled: primary flapping"}
        back = steps.get("abort")
        assert (back.status, back.detail) == (DONE, "eastus 0 % / westus 100 %; cancelled: primary flapping")
        assert [r.status for r in final.readings] == ["passed", "passed", "skipped", "skipped", "skipped"]
        assert fake.of("platform.set_tenant_mode") == []

    async def test_cancel_while_paused_returns_all_traffic_to_dr(
        self, time_env: WorkflowEnvironment, plan: DrPlan, task_queue: str
    ) -> None:
        """Cancelled while paused after a breach at 50 %, the pause ends and all traffic returns to westus."""
        fake = failed_over(plan, Slo(breach_at={50}))
        async with worker(time_env, fake, task_queue):
            handle = await start(time_env, task_queue)
            await advance_until(time_env, handle, paused)
            await handle.cancel()
            final = await ended_cancelled(handle, FailbackStatus)
        assert fake.primary_percents == [10, 25, 50, 25, 0]
        assert (final.phase, final.primary_percent, final.paused) == ("cancelled", 0, None)
        assert final.steps.get("abort").detail == "eastus 0 % / westus 100 %; cancelled"
        assert final.breaches == 1, "the cancel is no breach"

    async def test_cancel_once_all_traffic_is_on_the_primary_keeps_it_there(
        self, time_env: WorkflowEnvironment, plan: DrPlan, task_queue: str
    ) -> None:
        """Cancelled while tenants go read-write (100 % already on eastus), no traffic moves back: the tenant change
        finishes, the warm-up is skipped, and the workflow ends Cancelled."""
        gate = asyncio.Event()
        fake = failed_over(plan, gates={"platform.set_tenant_mode": gate})
        async with worker(time_env, fake, task_queue):
            handle = await start(time_env, task_queue, steps=[50, 100], soak_seconds=60, interval_seconds=60)
            await advance_until(time_env, handle, lambda s: s.current_step == 100)
            # Small steps: once the tenant change is held at the gate, the test server's clock runs in real time.
            await advance_until(time_env, handle, lambda s: s.phase == "tenants", step=1)
            await held_at_gate(fake, "platform.set_tenant_mode", 1)
            await cancel_handled(handle, "night shift handover")
            gate.set()
            final = await ended_cancelled(handle, FailbackStatus)
        assert fake.primary_percents == [50, 100], "no traffic moved back"
        assert (final.phase, final.primary_percent) == ("cancelled", 100)
        assert final.steps.get("tenants").status == DONE
        warmup = final.steps.get("warmup")
        assert (warmup.status, warmup.detail) == (
            SKIPPED,
            "cancelled: night shift handover; all traffic was already on eastus and stays there",
        )
        assert "abort" not in [step.key for step in final.steps.steps]
        assert fake.of("platform.warm_cache") == []
