"""DrillWorkflow: the monthly DR drill. Fails the plan's drill estate (never production) over, checks
the SLO in the DR region, backs up and sandbox-restores tenants chosen at random, verifies their
integrity, fails back, and reports each phase and the RTO and RPO achieved against the plan's
targets, signed and stored beside the plan's evidence. Blackout windows skip the drill.

RTO actual is the failover's measured RTO (start to SLO green); RPO actual is the failover's
measured data-loss window. Both measure the failover mechanism the drill exercised; the age of
the sampled tenants' newest recovery point at the drill's start is reported as a finding.

A cancelled drill leaves nothing half-done: it lets what the cancel interrupted end, fails the drill
estate back once its failover has started, stores its report (failed, saying when it was cancelled),
and only then ends as cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.converter import value_to_type
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from domain.messages.backups import (
        RecoveryPointAgesInput,
        RecoveryPointAgesResult,
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
        DrillPhase,
        DrillReport,
        DrillStatus,
        StoreDrillReportInput,
        StoreDrillReportResult,
        VerifyEvidenceInput,
        VerifyEvidenceResult,
        report_blobs,
        seconds_text,
        target_reasons,
    )
    from domain.messages.failback import FailbackInput, FailbackResult
    from domain.messages.failover import FailoverInput, FailoverResult, PrimaryRecovered
    from domain.messages.progress import DONE, FAILED, PENDING, RUNNING, SKIPPED
    from domain.messages.restore import (
        MODE_SANDBOX,
        OUTCOME_SANDBOX,
        BackupInput,
        BackupResult,
        RestoreInput,
        RestoreResult,
    )
    from workflows.common import (
        DR_PLAN,
        NON_RETRYABLE,
        Progress,
        activity_options,
        cancelled,
        error_text,
        error_type,
        now_iso,
        raise_if_cancelled,
        shielded,
    )

T = TypeVar("T")

# The failover outcomes after which the estate runs in its DR region (the cut-over is complete).
CUT_OVER = ("succeeded", "slo-not-met")
PRODUCTION = "production"
AGES_ATTEMPTS = 3


class PhaseFailed(Exception):
    """A drill phase ended without what the drill needs from it; the message is the report's reason."""


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _seconds_between(started: str | None, finished: str | None) -> float | None:
    if not started or not finished:
        return None
    return round((_parse(finished) - _parse(started)).total_seconds(), 3)


def _carried(err: BaseException, result_type: type[T]) -> T | None:
    """The result a failed child workflow attached to its ApplicationError (FailoverResult, FailbackResult)."""
    seen: BaseException | None = err
    while isinstance(seen, ChildWorkflowError):
        seen = seen.cause
    if not isinstance(seen, ApplicationError) or not seen.details:
        return None
    detail = seen.details[0]
    if isinstance(detail, result_type):
        return detail
    if isinstance(detail, dict):
        try:
            converted: T = value_to_type(result_type, detail)
        except (TypeError, ValueError, KeyError):
            return None
        return converted
    return None


@workflow.defn(name="DrillWorkflow")
class DrillWorkflow:
    @workflow.init
    def __init__(self, inp: DrillInput) -> None:
        self.inp = inp
        self.progress = Progress(f"DR drill of plan {inp.plan}")
        self.started_at = ""
        self.facts: DrillFacts | None = None
        self.tenants: list[str] = []
        self.recovery_points: list[str] = []
        self.reasons: list[str] = []
        self.findings: list[str] = []
        self.children: dict[str, str] = {}  # step key -> child workflow id
        self.failover: FailoverResult | None = None
        self.backup_ages: dict[str, float | None] = {}
        self.chains: list[asyncio.Task[None]] = []  # one backup → restore → integrity chain per tenant
        self.report: DrillReport | None = None

    @workflow.query(name="status")
    def status(self) -> DrillStatus:
        return DrillStatus(
            workflow_id=workflow.info().workflow_id,
            plan=self.inp.plan,
            estate=self.facts.estate if self.facts else "",
            phase=self.progress.phase,
            steps=self.progress.table,
            started_at=self.started_at,
            tenants=list(self.tenants),
            report=self.report,
        )

    # ---- the run ----------------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: DrillInput) -> DrillReport:
        self.started_at = now_iso()
        start = workflow.now()
        workflow.upsert_search_attributes([DR_PLAN.value_set(inp.plan)])
        try:
            return await self._drill(inp, start)
        except BaseException as err:
            if not cancelled(err):
                raise
            await self._wind_down(inp, start)
            raise

    async def _drill(self, inp: DrillInput, start: datetime) -> DrillReport:
        self.progress.set_phase("describe")
        facts = self.facts = await workflow.execute_activity(
            "drill.describe",
            DescribeDrillInput(inp.plan, inp.plan_digest),
            result_type=DrillFacts,
            **activity_options(1, summary=f"drill facts of plan {inp.plan}"),
        )
        blackout = next((b for b in facts.blackouts if b.contains(start)), None)
        if blackout is not None:
            self.reasons.append(f"inside the blackout window {blackout.start} to {blackout.end}: {blackout.reason}")
            self.progress.set_phase("skipped")
            return await self._finish(inp, facts, start, STATUS_SKIPPED)
        refusal = self._refusal(facts)
        if refusal is not None:
            self.reasons.append(f"refused: {refusal}")
            self.progress.set_phase("refused")
            return await self._finish(inp, facts, start, STATUS_FAILED)
        wanted = min(inp.sample_tenants or facts.sample_tenants, len(facts.estate_tenants))
        # workflow.random() is seeded by Temporal: a replay chooses the same tenants.
        self.tenants = workflow.random().sample(sorted(facts.estate_tenants), wanted)
        self._declare_steps(facts)
        self.progress.set_phase("backup-ages")
        await self._backup_ages(facts)
        raise_if_cancelled()
        self.progress.set_phase("failover")
        await self._failover(inp, facts)
        raise_if_cancelled()
        if self.failover is not None and self.failover.outcome in CUT_OVER:
            self.progress.set_phase("restore")
            self.chains = [asyncio.create_task(self._tenant(inp, facts, tenant)) for tenant in self.tenants]
            await asyncio.gather(*self.chains)
        else:
            self.progress.skip_pending("the failover did not complete", "failback", "report")
        self.progress.set_phase("failback")
        await self._failback(inp, facts)
        raise_if_cancelled()
        status = STATUS_FAILED if self.reasons else STATUS_PASSED
        return await self._finish(inp, facts, start, status)

    # ---- checks -----------------------------------------------------------------------------

    def _refusal(self, facts: DrillFacts) -> str | None:
        """Why this drill must not run: a drill never fails production over."""
        if not facts.estate:
            return f'plan {facts.plan} names no drill estate: add [drill] estate = "<drill estate plan>"'
        if facts.estate == facts.plan:
            return f"the drill estate of plan {facts.plan} is the plan itself: a drill never fails production over"
        if not facts.estate_served:
            return (
                f"the worker does not serve the drill estate's plan {facts.estate}: start dr-worker with "
                "--plan pointing at it too"
            )
        if facts.estate_environment == PRODUCTION:
            return f"the drill estate {facts.estate} is a production environment: a drill never fails production over"
        if not facts.estate_tenants:
            return f"the drill estate {facts.estate} has no tenants to restore"
        return None

    def _declare_steps(self, facts: DrillFacts) -> None:
        p = self.progress
        p.add("failover", f"Failover of {facts.estate}: {facts.estate_primary_region} → {facts.estate_dr_region}")
        p.add("slo", f"SLO validation in {facts.estate_dr_region}")
        for tenant in self.tenants:
            p.add(f"backup:{tenant}", f"Backup of tenant {tenant}")
            p.add(f"restore:{tenant}", f"Sandbox restore of tenant {tenant}")
            p.add(f"integrity:{tenant}", f"Integrity of tenant {tenant}'s restore: manifest and evidence")
        p.add("failback", f"Failback of {facts.estate} to {facts.estate_primary_region}")
        p.add("report", "Store the signed drill report")
        p.publish()

    # ---- phases -----------------------------------------------------------------------------

    def _child_id(self, key: str) -> str:
        child = f"{workflow.info().workflow_id}-{key.replace(':', '-')}"
        self.children[key] = child
        return child

    async def _failover(self, inp: DrillInput, facts: DrillFacts) -> None:
        """A planned failover of the drill estate as a child; the primary never failed, so the
        failover is told at once, and ends after SLO validation instead of watching the outage."""
        child_id = self._child_id("failover")
        self.progress.mark("failover", RUNNING, f"child workflow {child_id}")
        try:
            handle = await workflow.start_child_workflow(
                "FailoverWorkflow",
                FailoverInput(
                    plan=facts.estate,
                    from_region=facts.estate_primary_region,
                    to_region=facts.estate_dr_region,
                    reason=f"DR drill {workflow.info().workflow_id} of plan {inp.plan}",
                    requested_by=inp.requested_by or "drill",
                    slo_timeout_seconds=inp.slo_timeout_seconds,
                    drill=True,
                ),
                id=child_id,
                parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
                result_type=FailoverResult,
                static_summary=f"Drill failover of {facts.estate}: {facts.estate_primary_region} → "
                f"{facts.estate_dr_region}",
            )
            # A cancel that reaches the drill while it signals the failover is passed on once the signal
            # is sent: never a failover left running unawaited while the drill fails back.
            await shielded(
                handle.signal(
                    "primary-recovered", PrimaryRecovered(by="drill", note="a drill: the primary region never failed")
                )
            )
            if workflow.cancellation_reason() is not None:
                handle.cancel()
            result: FailoverResult = await handle
        except (ChildWorkflowError, ApplicationError) as err:
            self.failover = _carried(err, FailoverResult)
            if cancelled(err):
                raise
            reason = f"failover failed: {error_text(err)}"
            self.reasons.append(reason)
            self.progress.mark("failover", FAILED, reason)
            self.progress.mark("slo", SKIPPED, "the failover did not complete")
            return
        self.failover = result
        if result.outcome not in CUT_OVER:
            reason = f"failover ended {result.outcome}" + (f": {result.reason}" if result.reason else "")
            self.reasons.append(reason)
            self.progress.mark("failover", FAILED, reason)
            self.progress.mark("slo", SKIPPED, "the failover did not complete")
            return
        self.progress.mark(
            "failover",
            DONE,
            f"RTO {seconds_text(result.rto_seconds)}, data-loss window {seconds_text(result.rpo_seconds)}",
        )
        self._slo(facts, result)

    def _slo(self, facts: DrillFacts, result: FailoverResult) -> None:
        """The failover validated the SLO in the DR region; the phase carries its verdict and times."""
        step = next((s for s in result.steps.steps if s.key == "slo"), None)
        detail = step.detail if step is not None else ""
        slo = self.progress.table.get("slo")
        if step is not None:
            slo.started_at, slo.finished_at = step.started_at, step.finished_at
        slo.status = DONE if result.slo_green else FAILED
        slo.detail = detail or ("green" if result.slo_green else "not green")
        if not result.slo_green:
            self.reasons.append(f"SLO not green in {facts.estate_dr_region} after the failover: {slo.detail}")
        self.progress.publish()

    async def _tenant(self, inp: DrillInput, facts: DrillFacts, tenant: str) -> None:
        """Back up one sampled tenant, restore that recovery point into a sandbox, verify it; a
        failure is recorded and ends this tenant's chain only."""
        key = ""
        try:
            key = f"backup:{tenant}"
            point = await self._run_step(key, lambda: self._backup(inp, facts, tenant))
            key = f"restore:{tenant}"
            restored = await self._run_step(key, lambda: self._restore(inp, facts, tenant, point))
            key = f"integrity:{tenant}"
            await self._run_step(key, lambda: self._integrity(facts, tenant, point, restored))
        except (PhaseFailed, ActivityError, ChildWorkflowError, ApplicationError) as err:
            if cancelled(err):
                raise
            message = str(err) if isinstance(err, PhaseFailed) else error_text(err)
            self.reasons.append(f"{self.progress.table.get(key).title} failed: {message}")
            for later in ("restore", "integrity"):
                step = self.progress.table.get(f"{later}:{tenant}")
                if step.status == PENDING:
                    self.progress.mark(step.key, SKIPPED, f"{key} failed")

    async def _run_step(self, key: str, body: Callable[[], Awaitable[tuple[T, str]]]) -> T:
        self.progress.mark(key, RUNNING)
        try:
            value, detail = await body()
        except (PhaseFailed, ActivityError, ChildWorkflowError, ApplicationError) as err:
            if not cancelled(err):  # a step the drill's cancel interrupts is marked by the wind-down
                self.progress.mark(key, FAILED, str(err) if isinstance(err, PhaseFailed) else error_text(err))
            raise
        self.progress.mark(key, DONE, detail)
        return value

    async def _backup(self, inp: DrillInput, facts: DrillFacts, tenant: str) -> tuple[str, str]:
        age = self.backup_ages.get(tenant)
        result: BackupResult = await workflow.execute_child_workflow(
            "BackupWorkflow",
            BackupInput(plan=facts.estate, tenant_ids=(tenant,)),
            parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
            id=self._child_id(f"backup:{tenant}"),
            result_type=BackupResult,
            static_summary=f"Drill backup of tenant {tenant} ({facts.estate})",
        )
        if result.failed or not result.recovery_points:
            raise PhaseFailed("; ".join(result.failed or result.skipped) or "no recovery point was made")
        point = result.recovery_points[0]
        self.recovery_points.append(point)
        before = "no earlier recovery point" if age is None else f"the previous one was {seconds_text(age)} old"
        return point, f"recovery point {point} ({before})"

    async def _backup_ages(self, facts: DrillFacts) -> None:
        """How old each sampled tenant's newest recovery point was when the drill started (a finding,
        not a verdict: the drill's own backup gives the restore a fresh one)."""
        try:
            ages: RecoveryPointAgesResult = await workflow.execute_activity(
                "backups.recovery_point_ages",
                RecoveryPointAgesInput(facts.estate),
                result_type=RecoveryPointAgesResult,
                start_to_close_timeout=timedelta(minutes=2),
                # Only a finding depends on it: a few attempts, then the drill goes on without it.
                retry_policy=RetryPolicy(maximum_attempts=AGES_ATTEMPTS, non_retryable_error_types=NON_RETRYABLE),
                summary=f"recovery point ages in {facts.estate}",
            )
        except ActivityError as err:
            if cancelled(err):
                raise
            self.findings.append(f"could not read the drill estate's recovery points: {error_text(err)}")
            return
        start = _parse(self.started_at)
        newest = {t.tenant_id: t.created_at for t in ages.tenants}
        for tenant in self.tenants:
            created = newest.get(tenant)
            self.backup_ages[tenant] = None if created is None else max(0.0, (start - _parse(created)).total_seconds())

    async def _restore(self, inp: DrillInput, facts: DrillFacts, tenant: str, point: str) -> tuple[RestoreResult, str]:
        result: RestoreResult = await workflow.execute_child_workflow(
            "TenantRestoreWorkflow",
            RestoreInput(
                plan=facts.estate,
                tenant_id=tenant,
                requested_by=f"drill {workflow.info().workflow_id}",
                recovery_point_id=point,
                mode=MODE_SANDBOX,
                reason=f"DR drill of plan {inp.plan}",
            ),
            parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
            id=self._child_id(f"restore:{tenant}"),
            result_type=RestoreResult,
            static_summary=f"Drill sandbox restore of tenant {tenant} ({facts.estate})",
        )
        if result.outcome != OUTCOME_SANDBOX:
            raise PhaseFailed(f"the restore ended {result.outcome}, expected {OUTCOME_SANDBOX}")
        self.findings.append(
            f"tenant {tenant}: {result.records} records restored into a sandbox and validated in "
            f"{seconds_text(result.rto_seconds)}; nothing promoted"
        )
        return result, f"{result.records} records validated in {seconds_text(result.rto_seconds)}"

    async def _integrity(self, facts: DrillFacts, tenant: str, point: str, restored: RestoreResult) -> tuple[None, str]:
        """Check again, independently of the restore: the recovery point's manifest (signature,
        Merkle root, catalog agreement) and the restore's evidence pack (hash chain, signature)."""
        manifest: VerifyManifestResult = await workflow.execute_activity(
            "backups.verify_manifest",
            VerifyManifestInput(facts.estate, point),
            result_type=VerifyManifestResult,
            **activity_options(5, summary=f"verify manifest of {point}"),
        )
        problems = [str(p) for p in manifest.verification.problems]
        evidence_note = "no evidence pack"
        if restored.evidence_blob is None:
            problems.append(f"the restore {restored.workflow_id} stored no evidence pack")
        else:
            pack: VerifyEvidenceResult = await workflow.execute_activity(
                "drill.verify_evidence",
                VerifyEvidenceInput(facts.estate, restored.evidence_blob),
                result_type=VerifyEvidenceResult,
                **activity_options(5, summary=f"verify evidence {restored.evidence_blob}"),
            )
            problems += [f"evidence {pack.blob}: {p}" for p in pack.problems]
            evidence_note = f"evidence pack of {pack.entries} entries signed by {pack.key_id}"
        if problems:
            raise PhaseFailed("; ".join(problems))
        return None, f"manifest {manifest.manifest_sha256[:12]} signature and Merkle root verified; {evidence_note}"

    async def _failback(self, inp: DrillInput, facts: DrillFacts) -> None:
        """Best effort: bring the drill estate back whenever the failover changed something. Shielded
        from the drill's cancel, which would stop it between traffic steps."""
        changed = self.failover is None or any(key != "preflight" for key in self.failover.done)
        if not changed:
            self.progress.mark("failback", SKIPPED, "the failover changed nothing")
            return
        child_id = self._child_id("failback")
        self.progress.mark("failback", RUNNING, f"child workflow {child_id}")
        try:
            result: FailbackResult = await shielded(
                workflow.execute_child_workflow(
                    "FailbackWorkflow",
                    FailbackInput(
                        plan=facts.estate,
                        reason=f"DR drill {workflow.info().workflow_id}: back to {facts.estate_primary_region}",
                        requested_by=inp.requested_by or "drill",
                        steps=inp.failback_steps,
                        soak_seconds=inp.failback_soak_seconds,
                        interval_seconds=inp.failback_interval_seconds,
                    ),
                    id=child_id,
                    parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
                    result_type=FailbackResult,
                    static_summary=f"Drill failback of {facts.estate} to {facts.estate_primary_region}",
                )
            )
        except (ChildWorkflowError, ApplicationError) as err:
            if error_type(err) == "NothingToFailBack":
                self.progress.mark("failback", SKIPPED, error_text(err))
                return
            reason = f"failback failed: {error_text(err)}"
            self.reasons.append(reason)
            self.findings.append(
                f"the drill estate {facts.estate} may still run in {facts.estate_dr_region}: "
                f"fail it back with `drctl failback start --plan <{facts.estate} plan file>`"
            )
            self.progress.mark("failback", FAILED, reason)
            return
        if result.outcome != "succeeded":
            reason = f"failback ended {result.outcome}" + (f": {result.reason}" if result.reason else "")
            self.reasons.append(reason)
            self.progress.mark("failback", FAILED, reason)
            return
        if result.breaches:
            self.findings.append(f"the failback saw {result.breaches} SLO breach(es) and rolled back to retry")
        steps = ", ".join(f"{r.percent}%" for r in result.readings)
        self.progress.mark("failback", DONE, f"traffic back on {facts.estate_primary_region} in steps {steps}")

    # ---- cancellation -----------------------------------------------------------------------

    async def _wind_down(self, inp: DrillInput, start: datetime) -> None:
        """After the drill's cancel: let the tenant chains end (their children are being cancelled), fail
        the drill estate back if its failover started, and store the report (failed, saying when it was
        cancelled). A drill cancelled while reading its plan knows no estate and changed nothing."""
        phase = self.progress.phase
        self.progress.set_phase("cancelled")
        if self.chains:
            await workflow.wait(self.chains)
        facts = self.facts
        if facts is None:
            return
        why = workflow.cancellation_reason()
        self.reasons.append(f"cancelled during {phase}" + (f": {why}" if why else ""))
        for key in self.progress.table.by_status(RUNNING):
            self.progress.mark(key, FAILED, "cancelled with the drill")
        if "failover" not in self.children:
            self.progress.mark("failback", SKIPPED, "cancelled before the failover started: nothing to fail back")
        self.progress.skip_pending("the drill was cancelled", "failback", "report")
        failback = self.progress.table.get("failback")
        if failback.status == PENDING:
            self.progress.set_phase("failback")
            await self._failback(inp, facts)
        self.findings.append(
            f"the drill was cancelled during {phase} and wound down: failback {failback.status} ({failback.detail})"
        )
        await self._finish(inp, facts, start, STATUS_FAILED)
        self.progress.set_phase("cancelled")

    # ---- the report ---------------------------------------------------------------------------

    async def _finish(self, inp: DrillInput, facts: DrillFacts, start: datetime, status: str) -> DrillReport:
        """Judge, sign and store the report (a storage failure is a finding, not a lost report)."""
        failover = self.failover
        rto = failover.rto_seconds if failover is not None else None
        rpo = failover.rpo_seconds if failover is not None else None
        if failover is not None and failover.outcome in CUT_OVER:
            self.reasons += target_reasons(rto, rpo, facts.rto_target_seconds, facts.rpo_target_seconds)
            if status == STATUS_PASSED and self.reasons:
                status = STATUS_FAILED
            if rto is not None:
                share = rto / facts.rto_target_seconds
                self.findings.insert(0, f"the failover used {share:.1%} of the {facts.rto_target_seconds} s RTO budget")
        self._backup_findings(facts)
        json_blob, markdown_blob = report_blobs(workflow.info().workflow_id)
        report = DrillReport(
            workflow_id=workflow.info().workflow_id,
            plan=inp.plan,
            estate=facts.estate,
            status=status,
            scheduled=inp.scheduled,
            requested_by=inp.requested_by,
            started_at=self.started_at,
            finished_at=now_iso(),
            duration_seconds=(workflow.now() - start).total_seconds(),
            environment=facts.environment,
            edition=facts.edition,
            rto_target_seconds=facts.rto_target_seconds,
            rpo_target_seconds=facts.rpo_target_seconds,
            rto_actual_seconds=rto,
            rpo_actual_seconds=rpo,
            slo_green=failover.slo_green if failover is not None and failover.outcome in CUT_OVER else None,
            tenants=list(self.tenants),
            recovery_points=list(self.recovery_points),
            backup_age_seconds=max((a for a in self.backup_ages.values() if a is not None), default=None),
            phases=self._phases(),
            reasons=list(self.reasons),
            findings=list(self.findings),
            report_blob=json_blob,
            markdown_blob=markdown_blob,
        )
        if not self.progress.table.steps or self.progress.table.steps[-1].key != "report":
            self.progress.add("report", "Store the signed drill report")
        self.progress.set_phase("report")
        try:
            stored: StoreDrillReportResult = await self.progress.run(
                "report",
                lambda: shielded(
                    workflow.execute_activity(
                        "drill.store_report",
                        StoreDrillReportInput(inp.plan, report),
                        result_type=StoreDrillReportResult,
                        **activity_options(5, summary="store the drill report"),
                    )
                ),
                lambda r: f"{r.container}/{r.json_blob} and .md, signed by {r.key_id}",
            )
            report.pass_rate = stored.pass_rate
        except (ActivityError, ApplicationError) as err:
            report.report_blob = report.markdown_blob = None
            report.findings.append(f"the report could not be stored: {error_text(err)}")
        self.report = report
        self.progress.set_phase("completed" if status != STATUS_FAILED else "failed")
        return report

    def _backup_findings(self, facts: DrillFacts) -> None:
        for tenant, age in self.backup_ages.items():
            if age is None:
                self.findings.append(
                    f"tenant {tenant} had no recovery point before the drill; the drill made the first"
                )
            elif age > facts.rpo_target_seconds:
                self.findings.append(
                    f"tenant {tenant}'s newest recovery point was {seconds_text(age)} old at the drill's start, "
                    f"beyond the RPO target {facts.rpo_target_seconds} s: check the drill estate's backup schedule"
                )

    def _phases(self) -> list[DrillPhase]:
        return [
            DrillPhase(
                key=step.key,
                title=step.title,
                status=step.status,
                started_at=step.started_at,
                finished_at=step.finished_at,
                duration_seconds=_seconds_between(step.started_at, step.finished_at),
                detail=step.detail,
                workflow_id=self.children.get(step.key),
            )
            for step in self.progress.table.steps
            if step.key != "report"
        ]
