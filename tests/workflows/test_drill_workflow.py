"""DrillWorkflow's orchestration on the time-skipping test server, with its activities faked and its
child workflows replaced by same-named fakes that report what a scripted outside world says; the
schedule tests use a local dev server, since the time-skipping server has no schedules."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.client import (
    Client,
    ScheduleActionExecutionStartWorkflow,
    ScheduleCalendarSpec,
    ScheduleRange,
    ScheduleSpec,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from activities.drill import pass_rate
from domain.messages.backups import (
    RecoveryPointAgesInput,
    RecoveryPointAgesResult,
    TenantRecoveryPointAge,
    VerifyManifestInput,
    VerifyManifestResult,
)
from domain.messages.drill import (
    STATUS_FAILED,
    STATUS_PASSED,
    STATUS_SKIPPED,
    DescribeDrillInput,
    DrillFacts,
    DrillInput,
    DrillReport,
    DrillStatus,
    StoreDrillReportInput,
    StoreDrillReportResult,
    VerifyEvidenceInput,
    VerifyEvidenceResult,
)
from domain.messages.failback import FailbackInput, FailbackResult
from domain.messages.failover import FailoverInput, FailoverResult, PrimaryRecovered
from domain.messages.integrity import VerificationResult
from domain.messages.progress import DONE, FAILED, SKIPPED, Step, StepTable
from domain.messages.restore import (
    OUTCOME_SANDBOX,
    BackupInput,
    BackupResult,
    RestoreInput,
    RestoreResult,
)
from domain.plan import Blackout, DrPlan, load_plan
from starters.drill_cmd import DrillCommandError, StoredReport, upsert_drill_schedule, workflow_report
from tests.conftest import ROOT, time_skipping
from workflows.drill import DrillWorkflow

DRILL_PLAN = ROOT / "plans" / "local-drill.toml"
RTO_TARGET = 1800
RPO_TARGET = 300

Handle = WorkflowHandle[Any, DrillReport]


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


# ---- the scripted outside world -----------------------------------------------------------------


@dataclass
class DrillWorld:
    """What the fakes report: the drill facts, the failover's measures, failures to inject; and what
    the drill asked of them, in order."""

    facts: DrillFacts
    rto_seconds: float = 600.0
    rpo_seconds: float = 0.0
    failover_outcome: str = "succeeded"
    failover_error: str | None = None
    restore_error: str | None = None
    ages_seconds: float = 0.0  # how long reading the recovery point ages takes (real time: an activity)
    newest: dict[str, tuple[str, str]] = field(default_factory=dict)  # tenant -> (recovery point, created at)
    # How long each fake child takes (workflow time); the dev-server schedule test sets it to 0.
    child_seconds: dict[str, float] = field(
        default_factory=lambda: {"BackupWorkflow": 30.0, "TenantRestoreWorkflow": 42.0, "FailbackWorkflow": 300.0}
    )
    calls: list[tuple[str, Any]] = field(default_factory=list)
    stored: list[DrillReport] = field(default_factory=list)

    def of(self, name: str) -> list[Any]:
        return [arg for called, arg in self.calls if called == name]

    def activities(self) -> list[Any]:
        @activity.defn(name="drill.describe")
        async def describe(arg: DescribeDrillInput) -> DrillFacts:
            self.calls.append(("drill.describe", arg))
            return self.facts

        @activity.defn(name="fake.failover")
        async def failover(arg: FailoverInput) -> FailoverResult:
            self.calls.append(("failover", arg))
            if self.failover_error is not None:
                raise ApplicationError(self.failover_error, type="PreflightRefused", non_retryable=True)
            green = self.failover_outcome == "succeeded"
            slo = Step("slo", "SLO validation", DONE, "2026-01-01T00:00:00Z", "2026-01-01T00:00:05Z", "green")
            return FailoverResult(
                workflow_id=activity.info().workflow_id or "",
                plan=arg.plan,
                from_region=arg.from_region,
                to_region=arg.to_region,
                outcome=self.failover_outcome,
                dry_run=False,
                steps=StepTable([Step("preflight", "Pre-flight", DONE), slo]),
                started_at="",
                finished_at="",
                rto_seconds=self.rto_seconds if green else None,
                rpo_seconds=self.rpo_seconds,
                slo_green=green,
                done=["preflight", "frontdoor", "sql", "cosmos", "slo"],
            )

        @activity.defn(name="fake.backup")
        async def backup(arg: BackupInput) -> BackupResult:
            self.calls.append(("backup", arg))
            return BackupResult(arg.plan, recovery_points=(f"rp-{arg.tenant_ids[0]}",), tenants=1)

        @activity.defn(name="fake.restore")
        async def restore(arg: RestoreInput) -> RestoreResult:
            self.calls.append(("restore", arg))
            if self.restore_error is not None:
                raise ApplicationError(self.restore_error, type="RestoreValidationFailed", non_retryable=True)
            return RestoreResult(
                workflow_id=activity.info().workflow_id or "",
                plan=arg.plan,
                tenant_id=arg.tenant_id,
                outcome=OUTCOME_SANDBOX,
                recovery_point_id=arg.recovery_point_id or "",
                verification_digest="d" * 64,
                records=120,
                evidence_blob=f"evidence/{activity.info().workflow_id or ''}.json",
                rto_seconds=42.0,
            )

        @activity.defn(name="fake.failback")
        async def failback(arg: FailbackInput) -> FailbackResult:
            self.calls.append(("failback", arg))
            return FailbackResult(
                workflow_id=activity.info().workflow_id or "",
                plan=arg.plan,
                primary_region=self.facts.estate_primary_region,
                dr_region=self.facts.estate_dr_region,
                outcome="succeeded",
                dry_run=False,
                steps=StepTable(),
                started_at="",
                finished_at="",
                primary_percent=100,
            )

        @activity.defn(name="backups.recovery_point_ages")
        async def ages(arg: RecoveryPointAgesInput) -> RecoveryPointAgesResult:
            self.calls.append(("backups.recovery_point_ages", arg))
            await asyncio.sleep(self.ages_seconds)
            now = iso(dt.datetime.now(dt.UTC))
            tenants = tuple(
                TenantRecoveryPointAge(t, RPO_TARGET, *self.newest.get(t, (None, None)))
                for t in self.facts.estate_tenants
            )
            return RecoveryPointAgesResult(arg.plan, now, catalog_found=True, tenants=tenants)

        @activity.defn(name="backups.verify_manifest")
        async def verify_manifest(arg: VerifyManifestInput) -> VerifyManifestResult:
            self.calls.append(("backups.verify_manifest", arg))
            verification = VerificationResult(arg.recovery_point_id, "ed25519:0123456789abcdef", True, True, "r" * 64)
            return VerifyManifestResult(arg.plan, arg.recovery_point_id, "m" * 64, verification)

        @activity.defn(name="drill.verify_evidence")
        async def verify_evidence(arg: VerifyEvidenceInput) -> VerifyEvidenceResult:
            self.calls.append(("drill.verify_evidence", arg))
            return VerifyEvidenceResult(arg.plan, arg.blob, True, "restore", "restore", 12, "ed25519:0123456789abcdef")

        @activity.defn(name="drill.store_report")
        async def store(arg: StoreDrillReportInput) -> StoreDrillReportResult:
            self.stored.append(arg.report)
            rate, counted = pass_rate(self.stored)
            return StoreDrillReportResult(
                arg.plan, "dr-backups", arg.report.report_blob or "", "", "", "ed25519:0", rate, counted
            )

        @activity.defn(name="fake.duration")
        async def duration(child: str) -> float:
            return self.child_seconds.get(child, 0.0)

        return [describe, failover, backup, restore, failback, ages, verify_manifest, verify_evidence, store, duration]


# ---- same-named fakes of the child workflows ------------------------------------------------------

FAKE_TIMEOUT = timedelta(seconds=30)


async def take_time(child: str) -> None:
    """As long as the world says this child takes."""
    seconds: float = await workflow.execute_activity(
        "fake.duration", child, result_type=float, start_to_close_timeout=FAKE_TIMEOUT
    )
    if seconds:
        await workflow.sleep(timedelta(seconds=seconds))


@workflow.defn(name="FailoverWorkflow", sandboxed=False)
class FakeFailover:
    """Reports the scripted failover after as long as its RTO; fails like the real one."""

    def __init__(self) -> None:
        self.recovered = False

    @workflow.signal(name="primary-recovered")
    def primary_recovered(self, _: PrimaryRecovered) -> None:
        self.recovered = True

    @workflow.run
    async def run(self, inp: FailoverInput) -> FailoverResult:
        result: FailoverResult = await workflow.execute_activity(
            "fake.failover", inp, result_type=FailoverResult, start_to_close_timeout=FAKE_TIMEOUT
        )
        await workflow.sleep(timedelta(seconds=result.rto_seconds or 1))
        # The real failover ends only once its primary is known to have recovered.
        await workflow.wait_condition(lambda: self.recovered)
        return result


@workflow.defn(name="BackupWorkflow", sandboxed=False)
class FakeBackup:
    @workflow.run
    async def run(self, inp: BackupInput) -> BackupResult:
        await take_time("BackupWorkflow")
        result: BackupResult = await workflow.execute_activity(
            "fake.backup", inp, result_type=BackupResult, start_to_close_timeout=FAKE_TIMEOUT
        )
        return result


@workflow.defn(name="TenantRestoreWorkflow", sandboxed=False)
class FakeRestore:
    @workflow.run
    async def run(self, inp: RestoreInput) -> RestoreResult:
        await take_time("TenantRestoreWorkflow")
        result: RestoreResult = await workflow.execute_activity(
            "fake.restore", inp, result_type=RestoreResult, start_to_close_timeout=FAKE_TIMEOUT
        )
        return result


@workflow.defn(name="FailbackWorkflow", sandboxed=False)
class FakeFailback:
    @workflow.run
    async def run(self, inp: FailbackInput) -> FailbackResult:
        await take_time("FailbackWorkflow")
        result: FailbackResult = await workflow.execute_activity(
            "fake.failback", inp, result_type=FailbackResult, start_to_close_timeout=FAKE_TIMEOUT
        )
        return result


FAKE_CHILDREN: list[type] = [FakeFailover, FakeBackup, FakeRestore, FakeFailback]


# ---- fixtures and helpers -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def drill_estate() -> DrPlan:
    return load_plan(DRILL_PLAN)


def facts_for(estate: DrPlan, **override: Any) -> DrillFacts:
    """The local plan's drill facts as the worker would describe them."""
    facts = DrillFacts(
        plan="local",
        environment="production",
        edition="enterprise",
        rto_target_seconds=RTO_TARGET,
        rpo_target_seconds=RPO_TARGET,
        estate=estate.name,
        calendar="first sunday 02:00 UTC",
        sample_tenants=1,
        estate_served=True,
        estate_environment=estate.environment,
        estate_primary_region=estate.primary_region,
        estate_dr_region=estate.dr_region,
        estate_tenants=tuple(t.id for t in estate.tenants),
    )
    return dataclasses.replace(facts, **override)


@pytest.fixture
def world(drill_estate: DrPlan) -> DrillWorld:
    return DrillWorld(facts_for(drill_estate))


@asynccontextmanager
async def serving(client: Client, world: DrillWorld, task_queue: str) -> AsyncIterator[None]:
    async with Worker(
        client, task_queue=task_queue, workflows=[DrillWorkflow, *FAKE_CHILDREN], activities=world.activities()
    ):
        yield


async def start_drill(client: Client, task_queue: str, **fields: Any) -> Handle:
    """Start one drill of plan local (a worker must serve the task queue)."""
    return await client.start_workflow(
        DrillWorkflow.run,
        DrillInput(plan="local", requested_by="sre", **fields),
        id=f"drill-local-{uuid.uuid4().hex[:8]}",
        task_queue=task_queue,
    )


async def drill(env: WorkflowEnvironment, world: DrillWorld, task_queue: str, **fields: Any) -> DrillReport:
    """Run one drill of plan local to its end; its report."""
    async with serving(env.client, world, task_queue):
        handle = await start_drill(env.client, task_queue, **fields)
        return await handle.result()


@dataclass
class CancelledDrill:
    """How a drill cancelled mid-run ended: the error awaiting it raised, its last status, the report it
    stored, and what `drctl drill report ID` shows of it."""

    workflow_id: str
    error: WorkflowFailureError
    status: DrillStatus
    report: DrillReport
    shown: StoredReport

    def phase(self, key: str) -> tuple[str, str]:
        step = self.status.steps.get(key)
        return step.status, step.detail


CANCEL_REASON = "the drill estate is needed for a release test"


async def cancel_during(
    env: WorkflowEnvironment, world: DrillWorld, task_queue: str, phase: str, child: Callable[[DrillStatus], str] | None
) -> CancelledDrill:
    """Start a drill, cancel it once it is in ``phase`` (and the child workflow of step ``child(status)``
    runs, if given), and wait for it to end. Time only skips while the test awaits the result, so the
    world must make the phases before ``phase`` short."""
    client = env.client
    async with serving(client, world, task_queue):
        handle = await start_drill(client, task_queue)
        async with asyncio.timeout(30):
            while True:
                status = await handle.query(DrillWorkflow.status)
                if status.phase == phase and (child is None or await running(client, handle.id, child(status))):
                    break
                await asyncio.sleep(0.05)
        await handle.cancel(reason=CANCEL_REASON)
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        status = await handle.query(DrillWorkflow.status)
        shown = await workflow_report(client, handle.id)
    assert status.report is not None, "the cancelled drill stored no report"
    return CancelledDrill(handle.id, failure.value, status, status.report, shown)


def child_id(workflow_id: str, key: str) -> str:
    return f"{workflow_id}-{key.replace(':', '-')}"


async def child_status(client: Client, workflow_id: str, key: str) -> WorkflowExecutionStatus | None:
    """The status of the drill's child workflow for step ``key`` (None: not started)."""
    try:
        described = await client.get_workflow_handle(child_id(workflow_id, key)).describe()
    except RPCError:
        return None
    return described.status


async def running(client: Client, workflow_id: str, key: str) -> bool:
    return await child_status(client, workflow_id, key) == WorkflowExecutionStatus.RUNNING


# ---- behaviour ------------------------------------------------------------------------------------


class TestDrill:
    async def test_drill_within_targets_passes_with_the_failovers_measures(
        self, time_env: WorkflowEnvironment, world: DrillWorld, task_queue: str
    ) -> None:
        """A drill whose failover meets the targets passes and reports the failover's RTO and RPO as its actuals."""
        world.rto_seconds, world.rpo_seconds = 600.0, 0.0
        report = await drill(time_env, world, task_queue)
        assert report.status == STATUS_PASSED, report.reasons
        assert (report.rto_actual_seconds, report.rpo_actual_seconds) == (600.0, 0.0)
        assert [p.key for p in report.phases if p.status == DONE] == [
            "failover",
            "slo",
            f"backup:{report.tenants[0]}",
            f"restore:{report.tenants[0]}",
            f"integrity:{report.tenants[0]}",
            "failback",
        ]
        failover = next(p for p in report.phases if p.key == "failover")
        assert failover.duration_seconds is not None
        assert failover.duration_seconds >= 600
        assert [(r.workflow_id, r.status) for r in world.stored] == [(report.workflow_id, report.status)]
        assert report.pass_rate == 1.0

    async def test_the_drill_exercises_the_drill_estate_never_the_plan(
        self, time_env: WorkflowEnvironment, world: DrillWorld, task_queue: str
    ) -> None:
        """The failover, backup, restore and failback all name the drill estate, and the restore is a sandbox."""
        await drill(time_env, world, task_queue)
        (failover,) = world.of("failover")
        assert (failover.plan, failover.from_region, failover.to_region, failover.drill) == (
            "local-drill",
            "centralus",
            "eastus2",
            True,
        )
        assert {a.plan for name in ("backup", "restore", "failback") for a in world.of(name)} == {"local-drill"}
        (restore,) = world.of("restore")
        assert restore.mode == "sandbox"
        assert restore.recovery_point_id == f"rp-{restore.tenant_id}"

    async def test_stale_recovery_point_is_a_finding_not_a_failure(
        self, time_env: WorkflowEnvironment, world: DrillWorld, task_queue: str
    ) -> None:
        """A sampled tenant whose newest recovery point was older than the RPO target at the start gives a finding."""
        created = iso(await time_env.get_current_time() - timedelta(hours=2))
        world.newest = {t: (f"rp-old-{t}", created) for t in world.facts.estate_tenants}
        report = await drill(time_env, world, task_queue)
        assert report.status == STATUS_PASSED, report.reasons
        assert report.backup_age_seconds is not None
        assert report.backup_age_seconds >= 7200
        assert any("beyond the RPO target 300 s" in f and report.tenants[0] in f for f in report.findings)


class TestBlackout:
    async def test_drill_inside_a_blackout_is_skipped_with_the_reason(
        self, time_env: WorkflowEnvironment, world: DrillWorld, task_queue: str
    ) -> None:
        """A drill inside a blackout window is skipped, its report names the window and why, and nothing fails over."""
        now = await time_env.get_current_time()
        window = Blackout(iso(now - timedelta(hours=1)), iso(now + timedelta(days=2)), "year-end change freeze")
        world.facts = dataclasses.replace(world.facts, blackouts=(window,))
        report = await drill(time_env, world, task_queue)
        assert report.status == STATUS_SKIPPED
        assert len(report.reasons) == 1
        assert "year-end change freeze" in report.reasons[0]
        assert window.start in report.reasons[0]
        assert world.of("failover") == []
        assert world.of("failback") == []
        assert [(r.workflow_id, r.status) for r in world.stored] == [(report.workflow_id, report.status)]

    async def test_drill_after_a_blackout_runs(
        self, time_env: WorkflowEnvironment, world: DrillWorld, task_queue: str
    ) -> None:
        """A blackout window that has ended does not stop the drill."""
        now = await time_env.get_current_time()
        window = Blackout(iso(now - timedelta(days=3)), iso(now - timedelta(days=1)), "last month's freeze")
        world.facts = dataclasses.replace(world.facts, blackouts=(window,))
        report = await drill(time_env, world, task_queue)
        assert report.status == STATUS_PASSED, report.reasons
        assert len(world.of("failover")) == 1


class TestTargets:
    async def test_rto_beyond_the_target_fails_the_drill_with_the_reason(
        self, time_env: WorkflowEnvironment, world: DrillWorld, task_queue: str
    ) -> None:
        """A drill whose measured RTO exceeds the target is reported failed with that reason, and still fails back."""
        world.rto_seconds = 2400.0
        report = await drill(time_env, world, task_queue)
        assert report.status == STATUS_FAILED
        assert report.reasons == ["RTO 2400 s exceeds the target 1800 s"]
        assert report.rto_actual_seconds == 2400.0
        assert len(world.of("failback")) == 1
        assert world.stored[-1].status == STATUS_FAILED
        assert report.pass_rate == 0.0

    async def test_rpo_beyond_the_target_fails_the_drill(
        self, time_env: WorkflowEnvironment, world: DrillWorld, task_queue: str
    ) -> None:
        """A data-loss window beyond the RPO target fails the drill with that reason."""
        world.rpo_seconds = 420.0
        report = await drill(time_env, world, task_queue)
        assert report.status == STATUS_FAILED
        assert report.reasons == ["RPO 420 s exceeds the target 300 s"]


class TestRefusals:
    @pytest.mark.parametrize(
        ("override", "words"),
        [
            ({"estate_environment": "production"}, "production environment"),
            ({"estate": "local"}, "the plan itself"),
            ({"estate": ""}, "names no drill estate"),
            ({"estate_served": False}, "does not serve"),
        ],
    )
    async def test_unsafe_drill_estate_is_refused_without_failover(
        self,
        time_env: WorkflowEnvironment,
        world: DrillWorld,
        task_queue: str,
        override: dict[str, Any],
        words: str,
    ) -> None:
        """A drill estate that is production, the plan itself, missing or unserved is refused; nothing fails over."""
        world.facts = dataclasses.replace(world.facts, **override)
        report = await drill(time_env, world, task_queue)
        assert report.status == STATUS_FAILED
        assert len(report.reasons) == 1
        assert words in report.reasons[0]
        assert world.calls == [("drill.describe", DescribeDrillInput("local"))]
        assert [(r.workflow_id, r.status) for r in world.stored] == [(report.workflow_id, report.status)]


class TestFailures:
    async def test_failed_restore_still_reports_and_fails_back(
        self, time_env: WorkflowEnvironment, world: DrillWorld, task_queue: str
    ) -> None:
        """A restore that fails gives a failed report naming it, skips the integrity check and still fails back."""
        world.restore_error = "package segments/0001 holds 3 records, the manifest says 4"
        report = await drill(time_env, world, task_queue)
        tenant = report.tenants[0]
        assert report.status == STATUS_FAILED
        assert any("segments/0001 holds 3 records" in r and tenant in r for r in report.reasons)
        statuses = {p.key: p.status for p in report.phases}
        assert statuses[f"restore:{tenant}"] == "failed"
        assert statuses[f"integrity:{tenant}"] == "skipped"
        assert statuses["failback"] == DONE
        assert [(r.workflow_id, r.status) for r in world.stored] == [(report.workflow_id, report.status)]

    async def test_refused_failover_skips_the_rest_and_changes_nothing(
        self, time_env: WorkflowEnvironment, world: DrillWorld, task_queue: str
    ) -> None:
        """A failover that fails gives a failed report with its error; no restore runs and a failback is attempted."""
        world.failover_error = "pre-flight refused the failover: Service Bus pairing broken"
        report = await drill(time_env, world, task_queue)
        assert report.status == STATUS_FAILED
        assert any("Service Bus pairing broken" in r for r in report.reasons)
        assert world.of("restore") == []
        assert report.rto_actual_seconds is None
        # Its result is lost with the error, so the drill cannot tell what changed: it fails back.
        assert len(world.of("failback")) == 1


class TestTenantChoice:
    async def test_random_tenant_choice_is_replay_safe(
        self, time_env: WorkflowEnvironment, world: DrillWorld, task_queue: str
    ) -> None:
        """The tenant chosen at random is one of the drill estate's, is the one backed up, and replays identically."""
        async with serving(time_env.client, world, task_queue):
            handle = await start_drill(time_env.client, task_queue)
            report = await handle.result()
            history = await handle.fetch_history()
        (tenant,) = report.tenants
        assert tenant in world.facts.estate_tenants
        assert [b.tenant_ids for b in world.of("backup")] == [(tenant,)]
        # Replaying the history re-runs the choice; a different tenant would be a non-determinism error.
        await Replayer(workflows=[DrillWorkflow]).replay_workflow(history)

    async def test_drills_spread_over_the_tenants(
        self, time_env: WorkflowEnvironment, world: DrillWorld, task_queue: str
    ) -> None:
        """Successive drills do not always restore the same tenant, and sample_tenants picks distinct ones."""
        chosen = [tuple((await drill(time_env, world, task_queue)).tenants) for _ in range(5)]
        assert len(set(chosen)) > 1
        report = await drill(time_env, world, task_queue, sample_tenants=3)
        assert len(set(report.tenants)) == 3
        assert report.status == STATUS_PASSED, report.reasons


class TestCancellation:
    """A cancelled drill fails its drill estate back, stores its report, and only then ends cancelled."""

    @staticmethod
    def quick(world: DrillWorld, **child_seconds: float) -> None:
        """Phases before the cancel pass in about a second of real time (time skips only once the test awaits)."""
        world.rto_seconds = 1.0
        world.child_seconds = {"BackupWorkflow": 0.0, "TenantRestoreWorkflow": 0.0, "FailbackWorkflow": 300.0}
        world.child_seconds.update(child_seconds)

    async def test_cancel_during_restore_fails_back_and_stores_the_report(
        self, time_env: WorkflowEnvironment, world: DrillWorld, task_queue: str
    ) -> None:
        """Cancelled while the sandbox restore runs, the drill cancels the restore, fails back, stores a failed
        report saying so, and ends cancelled."""
        self.quick(world, TenantRestoreWorkflow=86400.0)
        ended = await cancel_during(time_env, world, task_queue, "restore", lambda s: f"restore:{s.tenants[0]}")
        tenant = ended.report.tenants[0]
        assert isinstance(ended.error.cause, CancelledError)
        assert ended.status.phase == "cancelled"
        assert ended.report.status == STATUS_FAILED
        assert f"cancelled during restore: {CANCEL_REASON}" in ended.report.reasons
        assert any(f.startswith("the drill was cancelled during restore") for f in ended.report.findings)
        assert [(r.workflow_id, r.status) for r in world.stored] == [(ended.workflow_id, STATUS_FAILED)]
        assert ended.shown.report == ended.report
        assert ended.phase(f"restore:{tenant}") == (FAILED, "cancelled with the drill")
        assert ended.phase(f"integrity:{tenant}") == (SKIPPED, "the drill was cancelled")
        assert ended.phase("failback")[0] == DONE
        assert [f.plan for f in world.of("failback")] == ["local-drill"]
        assert world.of("restore") == []
        restore = await child_status(time_env.client, ended.workflow_id, f"restore:{tenant}")
        assert restore == WorkflowExecutionStatus.CANCELED

    async def test_cancel_during_failover_cancels_it_and_fails_back(
        self, time_env: WorkflowEnvironment, world: DrillWorld, task_queue: str
    ) -> None:
        """Cancelled while the failover runs, the drill cancels the failover, cannot tell what it changed, so
        fails back, stores a failed report, and ends cancelled; nothing is restored."""
        self.quick(world)
        world.rto_seconds = 86400.0
        ended = await cancel_during(time_env, world, task_queue, "failover", lambda _: "failover")
        assert isinstance(ended.error.cause, CancelledError)
        assert f"cancelled during failover: {CANCEL_REASON}" in ended.report.reasons
        assert ended.report.rto_actual_seconds is None
        assert ended.phase("failover") == (FAILED, "cancelled with the drill")
        assert ended.phase("slo") == (SKIPPED, "the drill was cancelled")
        assert ended.phase("failback")[0] == DONE
        assert len(world.of("failback")) == 1
        assert world.of("backup") == world.of("restore") == []
        failover = await child_status(time_env.client, ended.workflow_id, "failover")
        assert failover == WorkflowExecutionStatus.CANCELED
        assert [(r.workflow_id, r.status) for r in world.stored] == [(ended.workflow_id, STATUS_FAILED)]

    async def test_cancel_during_failback_lets_it_finish(
        self, time_env: WorkflowEnvironment, world: DrillWorld, task_queue: str
    ) -> None:
        """Cancelled while it fails back, the drill lets the failback finish (traffic is never left split),
        stores a failed report, and ends cancelled."""
        self.quick(world, FailbackWorkflow=3600.0)
        ended = await cancel_during(time_env, world, task_queue, "failback", lambda _: "failback")
        assert isinstance(ended.error.cause, CancelledError)
        assert f"cancelled during failback: {CANCEL_REASON}" in ended.report.reasons
        assert ended.phase("failback")[0] == DONE
        assert len(world.of("failback")) == 1
        failback = await child_status(time_env.client, ended.workflow_id, "failback")
        assert failback == WorkflowExecutionStatus.COMPLETED
        assert [(r.workflow_id, r.status) for r in world.stored] == [(ended.workflow_id, STATUS_FAILED)]

    async def test_cancel_before_the_failover_stores_the_report_without_failback(
        self, world: DrillWorld, task_queue: str
    ) -> None:
        """Cancelled while it reads the recovery point ages, the drill changed nothing: no failover, no failback,
        a failed report saying so, and it ends cancelled."""
        world.ages_seconds = 3600.0
        # A server of its own: the ages activity the cancel abandons keeps the time-skipping server from
        # skipping time for as long as it lives, which would stall later tests sharing the session's server.
        async with time_skipping() as own_env:
            ended = await cancel_during(own_env, world, task_queue, "backup-ages", None)
        assert isinstance(ended.error.cause, CancelledError)
        assert ended.status.phase == "cancelled"
        assert f"cancelled during backup-ages: {CANCEL_REASON}" in ended.report.reasons
        assert world.of("failover") == world.of("failback") == []
        assert all(p.workflow_id is None for p in ended.report.phases)
        assert {p.status for p in ended.report.phases} == {SKIPPED}
        assert ended.phase("failback") == (SKIPPED, "cancelled before the failover started: nothing to fail back")
        assert [(r.workflow_id, r.status) for r in world.stored] == [(ended.workflow_id, STATUS_FAILED)]

    async def test_cancel_while_reading_the_plan_ends_cancelled_with_nothing_done(
        self, time_env: WorkflowEnvironment, world: DrillWorld, task_queue: str
    ) -> None:
        """Cancelled before it knows its drill estate, the drill starts nothing, has nothing to report, and ends
        cancelled."""
        # Cancelled before any worker serves it: its first workflow task carries the cancel.
        handle = await start_drill(time_env.client, task_queue)
        await handle.cancel()
        async with serving(time_env.client, world, task_queue):
            with pytest.raises(WorkflowFailureError) as failure:
                await handle.result()
            status = await handle.query(DrillWorkflow.status)
            with pytest.raises(DrillCommandError, match="was cancelled before it had a report"):
                await workflow_report(time_env.client, handle.id)
        assert isinstance(failure.value.cause, CancelledError)
        assert status.phase == "cancelled"
        assert status.report is None
        assert world.stored == []
        assert [name for name, _ in world.calls if name != "drill.describe"] == []


# ---- the schedule (a local dev server: the time-skipping server has no schedules) ----------------


class TestSchedule:
    async def test_schedule_fires_on_its_calendar_and_a_drill_runs(
        self, dev_env: WorkflowEnvironment, world: DrillWorld, task_queue: str, tmp_path: Path
    ) -> None:
        """A drill schedule with a calendar a few seconds ahead fires then and starts a DrillWorkflow that reports."""
        plan = load_plan(ROOT / "plans" / "local.toml")
        world.rto_seconds = 1.0
        world.child_seconds = {}
        due = dt.datetime.now(dt.UTC).replace(microsecond=0) + timedelta(seconds=4)
        spec = ScheduleSpec(
            calendars=[
                ScheduleCalendarSpec(
                    second=[ScheduleRange(due.second)],
                    minute=[ScheduleRange(due.minute)],
                    hour=[ScheduleRange(due.hour)],
                    day_of_month=[ScheduleRange(due.day)],
                    month=[ScheduleRange(due.month)],
                )
            ]
        )
        client = dev_env.client
        outcome = await upsert_drill_schedule(client, plan, task_queue, spec=spec)
        schedule = client.get_schedule_handle(outcome.schedule_id)
        try:
            async with serving(client, world, task_queue):
                started = None
                for _ in range(200):
                    actions = (await schedule.describe()).info.recent_actions
                    if actions:
                        started = actions[0]
                        break
                    await asyncio.sleep(0.1)
                assert started is not None, "the schedule did not fire"
                assert abs((started.scheduled_at - due).total_seconds()) < 1
                assert isinstance(started.action, ScheduleActionExecutionStartWorkflow)
                workflow_id = started.action.workflow_id
                handle: Handle = client.get_workflow_handle(workflow_id, result_type=DrillReport)
                report = await asyncio.wait_for(handle.result(), 60)
        finally:
            await schedule.delete()
        assert outcome.schedule_id == "drill-local"
        assert workflow_id.startswith("drill-local-scheduled")
        assert (await handle.describe()).workflow_type == "DrillWorkflow"
        assert report.scheduled
        assert report.status == STATUS_PASSED, report.reasons

    async def test_plan_calendar_schedules_the_first_sunday_of_each_month(
        self, dev_env: WorkflowEnvironment, task_queue: str
    ) -> None:
        """The plan's calendar "first sunday 02:00 UTC" fires on the first Sunday of each month at 02:00 UTC."""
        plan = load_plan(ROOT / "plans" / "local.toml")
        outcome = await upsert_drill_schedule(dev_env.client, plan, task_queue)
        schedule = dev_env.client.get_schedule_handle(outcome.schedule_id)
        try:
            description = await schedule.describe()
            again = await upsert_drill_schedule(dev_env.client, plan, task_queue)
        finally:
            await schedule.delete()
        times = [t.astimezone(dt.UTC) for t in description.info.next_action_times]
        assert len(times) >= 3
        for moment in times:
            assert (moment.weekday(), moment.hour, moment.minute) == (6, 2, 0)
            assert moment.day <= 7
        assert len({(t.year, t.month) for t in times}) == len(times)
        assert not again.created
