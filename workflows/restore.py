"""TenantRestoreWorkflow: restore one tenant's data from a verified recovery point through a read-only
quarantine, with the projection database (and Cosmos DB account) restored beside it, validated, and
in production mode (requested with the requester's signature) promoted only after signed approvals
by others. Every run leaves a signed evidence pack."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from activities.integrity import (
        INTEGRITY_ERROR_TYPE,
        key_id_of,
        verification_digest,
        verify_approval,
        verify_restore_request,
    )
    from domain.messages.backups import (
        CleanupQuarantineInput,
        CleanupQuarantineResult,
        CopyToQuarantineInput,
        CopyToQuarantineResult,
        FindRecoveryPointInput,
        FindRecoveryPointResult,
        PromoteInput,
        PromoteResult,
        RecoveryPoint,
        SealQuarantineInput,
        SealQuarantineResult,
        UndoPromotionInput,
        UndoPromotionResult,
        VerifyManifestInput,
        VerifyManifestResult,
        VerifyPackageInput,
        VerifyPackageResult,
    )
    from domain.messages.cosmos import (
        DeleteCosmosAccountInput,
        DeleteCosmosAccountResult,
        RestoreCosmosAccountInput,
        RestoreCosmosAccountResult,
    )
    from domain.messages.integrity import APPROVE, REJECT, Approval, VerificationResult
    from domain.messages.platform import SetTenantDatabaseInput, SetTenantDatabaseResult
    from domain.messages.progress import DONE, FAILED, RUNNING, SKIPPED
    from domain.messages.restore import (
        MODE_PRODUCTION,
        MODES,
        OUTCOME_PROMOTED,
        OUTCOME_REJECTED,
        OUTCOME_SANDBOX,
        OUTCOME_TIMED_OUT,
        VERIFY_POLICIES,
        ApprovalAccepted,
        DescribeRestoreInput,
        EvidenceItem,
        PackageStatus,
        RejectRequest,
        RestoreInput,
        RestoreResult,
        RestoreStatus,
        RestoreTargets,
        StoreEvidenceInput,
        StoreEvidenceResult,
        ValidateQuarantineInput,
        ValidateQuarantineResult,
    )
    from domain.messages.sql import (
        DeleteDatabaseInput,
        DeleteDatabaseResult,
        RestoreDatabasePitrInput,
        RestoreDatabasePitrResult,
    )
    from workflows.common import DR_PLAN, TENANT_ID, Progress, activity_options, error_text, error_type, now_iso

T = TypeVar("T")

AWAITING_APPROVAL = "awaiting-approval"
REQUEST_NOT_AUTHENTICATED = "RequestNotAuthenticated"
REQUEST_STEP = "request"  # the step that verifies the requester's signature
PROOF_FAILURES = "backup_proof_failures_total"
RESTORE_DURATION = "restore_duration_seconds"
SET_TENANT_DATABASE = "platform.set_tenant_database"
PROJECTION_DATABASE_CHANGED = "ProjectionDatabaseChanged"
# The key of the detail a restore that failed after its registry swap attaches to its failure: the
# database the swap replaced, which undo points the tenant back at (a failed run has no result).
REPLACED_DATABASE = "replaced_database"


def _suffix(workflow_id: str) -> str:
    """A short stable suffix for the names of the databases this restore creates."""
    return hashlib.sha256(workflow_id.encode()).hexdigest()[:8]


def restored_database_name(source_database: str, tenant_id: str, restore_id: str) -> str:
    """The database a restore's point-in-time copy of ``source_database`` is created as (stable per restore)."""
    return f"{source_database}-{tenant_id}-restore-{_suffix(restore_id)}"


@workflow.defn(name="TenantRestoreWorkflow")
class TenantRestoreWorkflow:
    @workflow.init
    def __init__(self, inp: RestoreInput) -> None:
        self.inp = inp
        self.progress = Progress(f"Restore of tenant {inp.tenant_id} ({inp.plan}, {inp.mode})")
        self.started_at = ""
        self.targets: RestoreTargets | None = None
        self.requester_key_id: str | None = None  # the key that signed the request, once verified
        self.point: RecoveryPoint | None = None
        self.manifest_sha256: str | None = None
        self.verification: VerificationResult | None = None
        self.digest: str | None = None
        self.packages: dict[str, PackageStatus] = {}
        self.validation: ValidateQuarantineResult | None = None
        self.approvals: list[Approval] = []
        self.rejection: RejectRequest | None = None
        self.deadline: str | None = None
        self.restored_database: str | None = None
        self.restored_server: str | None = None
        self.restored_cosmos: str | None = None
        self.database_swapped = False
        self.replaced_database: str | None = None  # what the swap moved the tenant's projections away from
        self.evidence: list[EvidenceItem] = []
        self.evidence_blob: str | None = None
        self.calls: list[str] = []
        self.error: str | None = None

    # ---- messages -------------------------------------------------------------------------

    @workflow.query(name="status")
    def status(self) -> RestoreStatus:
        verification = self.verification
        return RestoreStatus(
            workflow_id=workflow.info().workflow_id,
            plan=self.inp.plan,
            tenant_id=self.inp.tenant_id,
            mode=self.inp.mode,
            requested_by=self.inp.requested_by,
            phase=self.progress.phase,
            steps=self.progress.table,
            started_at=self.started_at,
            requester_key_id=self.requester_key_id,
            recovery_point=self.point,
            manifest_sha256=self.manifest_sha256,
            verification_digest=self.digest,
            verification_ok=None if verification is None else verification.ok,
            verification_problems=() if verification is None else tuple(str(p) for p in verification.problems),
            packages=tuple(self.packages.values()),
            validation=self.validation,
            approvals_required=self.targets.approvals_required if self.targets else 0,
            approvers=tuple(a.name for a in self.targets.approvers) if self.targets else (),
            approvals=tuple(self.approvals),
            approval_deadline=self.deadline,
            rejection=self.rejection.reason if self.rejection else None,
            restored_database=self.restored_database,
            restored_cosmos_account=self.restored_cosmos,
            evidence_blob=self.evidence_blob,
            error=self.error,
        )

    @workflow.update(name="approve")
    def approve(self, approval: Approval) -> ApprovalAccepted:
        self.approvals.append(approval)
        self._record("approval", dict(self._approval_record(approval)))
        required = self.targets.approvals_required if self.targets else 0
        return ApprovalAccepted(
            approval.approver,
            len(self.approvals),
            required,
            f"approval by {approval.approver} recorded ({len(self.approvals)} of {required})",
        )

    @approve.validator
    def _validate_approve(self, approval: Approval) -> None:
        self._check_decision(approval, APPROVE)
        if any(a.approver == approval.approver for a in self.approvals):
            raise ValueError(f"{approval.approver} has already approved this restore")
        assert self.targets is not None  # _check_decision refused otherwise
        keys = {a.name: a.public_key for a in self.targets.approvers}
        if any(keys.get(a.approver) == keys[approval.approver] for a in self.approvals):
            raise ValueError(f"{approval.approver}'s key has already approved this restore under another name")

    @workflow.update(name="reject")
    def reject(self, request: RejectRequest) -> ApprovalAccepted:
        self.rejection = request
        self._record("approval", {**self._approval_record(request.approval), "reason": request.reason})
        required = self.targets.approvals_required if self.targets else 0
        return ApprovalAccepted(
            request.approval.approver,
            len(self.approvals),
            required,
            f"rejected by {request.approval.approver}: the restore cleans up and promotes nothing",
        )

    @reject.validator
    def _validate_reject(self, request: RejectRequest) -> None:
        if not request.reason.strip():
            raise ValueError("a rejection needs a reason (--reason)")
        self._check_decision(request.approval, REJECT)

    def _check_decision(self, approval: Approval, decision: str) -> None:
        """Refuse (by raising, so nothing reaches history) a decision this restore must not accept."""
        phase = self.progress.phase
        if self.inp.mode != MODE_PRODUCTION:
            raise ValueError(f"a {self.inp.mode} restore is never promoted and takes no approvals")
        if phase != AWAITING_APPROVAL or self.targets is None or self.point is None or self.digest is None:
            raise ValueError(f"the restore is {phase}: decisions are accepted only while it awaits approval")
        if self.rejection is not None:
            raise ValueError(f"the restore was already rejected by {self.rejection.approval.approver}")
        keys = {a.name: a.public_key for a in self.targets.approvers}
        who = approval.approver
        if who not in keys:
            listed = ", ".join(sorted(keys)) or "none"
            raise ValueError(f"{who!r} is not an approver of plan {self.inp.plan} (approvers: {listed})")
        if who == self.inp.requested_by:
            raise ValueError(f"{who} requested this restore and cannot decide on it")
        # The Ed25519 check calls into cryptography's native code, which must not run under the
        # sandbox's restricted proxies; it is a pure function of its arguments.
        with workflow.unsafe.sandbox_unrestricted():
            problems = verify_approval(
                approval,
                keys[who],
                workflow.now(),
                workflow_id=workflow.info().workflow_id,
                recovery_point_id=self.point.recovery_point_id,
                verification_digest=self.digest,
                decision=decision,
            )
            requesters_key = not problems and key_id_of(keys[who]) == self.requester_key_id
        if problems:
            raise ValueError("; ".join(problems))
        if requesters_key:
            raise ValueError(
                f"{who}'s key {self.requester_key_id} signed this restore's request as {self.inp.requested_by}: "
                "the requester cannot decide on it, under any name"
            )

    # ---- the run ----------------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: RestoreInput) -> RestoreResult:
        self.started_at = now_iso()
        start = workflow.now()
        restore_id = workflow.info().workflow_id
        workflow.upsert_search_attributes([DR_PLAN.value_set(inp.plan), TENANT_ID.value_set(inp.tenant_id)])
        self._declare_steps()
        self._record("note", {"request": inp})
        outcome = ""
        promoted: tuple[str, ...] = ()
        records = 0
        try:
            self._check_request(inp)
            self.progress.set_phase("locate")
            self.targets = await self._step(
                "describe",
                "restore.describe",
                DescribeRestoreInput(inp.plan, inp.tenant_id),
                RestoreTargets,
                lambda t: f"{t.approvals_required} approval(s) from {len(t.approvers)} approver(s)",
            )
            self._authenticate_request(inp)
            found = await self._step(
                "locate",
                "backups.find_recovery_point",
                FindRecoveryPointInput(inp.plan, inp.tenant_id, inp.at, inp.recovery_point_id),
                FindRecoveryPointResult,
                lambda r: f"{r.recovery_point.recovery_point_id} ({len(r.recovery_point.packages)} packages)",
            )
            point = self.point = found.recovery_point
            self.packages = {p.name: PackageStatus(p.name, p.bytes, p.records) for p in point.packages}
            self.progress.set_phase("verify")
            await self._verify(inp, point)
            self.progress.set_phase("quarantine")
            sealed = await self._quarantine(inp, point, restore_id)
            records = sealed.records
            self.progress.set_phase("databases")
            # Both restores run to their end before a failure of one surfaces, so the cleanup that
            # follows knows of every copy Azure may have created.
            outcomes = await asyncio.gather(
                self._sql(inp, point, restore_id), self._cosmos(inp, point, restore_id), return_exceptions=True
            )
            for outcome_or_error in outcomes:
                if isinstance(outcome_or_error, BaseException):
                    raise outcome_or_error
            self.progress.set_phase("validate")
            await self._validate(inp, point, restore_id)
            if inp.mode != MODE_PRODUCTION:
                self.progress.mark("approvals", SKIPPED, "sandbox restores are never promoted")
                self.progress.mark("promote", SKIPPED, "sandbox restores are never promoted")
                self.progress.mark("swap", SKIPPED, "sandbox restores are never promoted")
                outcome = OUTCOME_SANDBOX
            else:
                outcome = await self._await_approvals(inp)
                if outcome == OUTCOME_PROMOTED:
                    self.progress.set_phase("promote")
                    # The registry swap goes first: it refuses if the tenant's mapping changed since the
                    # restore began, and then no live data has been replaced.
                    await self._swap_in_database(inp, restore_id)
                    result = await self._step(
                        "promote",
                        "backups.promote",
                        PromoteInput(inp.plan, inp.tenant_id, restore_id),
                        PromoteResult,
                        lambda r: (
                            f"{len(r.promoted)} segment(s) promoted; {len(r.kept)} replaced kept under "
                            f"replaced/{restore_id}/"
                        ),
                    )
                    promoted = result.promoted
                    self._record("call", {"promote": result})
                else:
                    self.progress.mark("promote", SKIPPED, f"not promoted: {outcome}")
                    self.progress.mark("swap", SKIPPED, f"not promoted: {outcome}")
        except asyncio.CancelledError:
            self.error = "cancelled"
            self.progress.set_phase("cancelled")
            self._record("note", {"cancelled": True})
            await self._finish(inp, restore_id, start, "cancelled")
            raise
        except (ActivityError, ChildWorkflowError, ApplicationError) as err:
            self.error = error_text(err)
            self.progress.set_phase("failed")
            self._record("note", {"failed": self.error})
            await self._finish(inp, restore_id, start, "failed")
            undo_facts = [{REPLACED_DATABASE: self.replaced_database}] if self.database_swapped else []
            raise ApplicationError(
                f"restore of tenant {inp.tenant_id} (plan {inp.plan}) failed: {self.error}",
                *undo_facts,
                type=error_type(err) or "RestoreFailed",
                non_retryable=True,
            ) from err
        rto = await self._finish(inp, restore_id, start, outcome)
        self.progress.set_phase("completed")
        await workflow.wait_condition(workflow.all_handlers_finished)
        assert self.point is not None
        assert self.digest is not None
        return RestoreResult(
            workflow_id=restore_id,
            plan=inp.plan,
            tenant_id=inp.tenant_id,
            outcome=outcome,
            recovery_point_id=self.point.recovery_point_id,
            verification_digest=self.digest,
            records=records,
            approvals=tuple(a.approver for a in self.approvals),
            promoted=promoted,
            restored_database=self.restored_database,
            restored_cosmos_account=self.restored_cosmos,
            evidence_blob=self.evidence_blob,
            rto_seconds=rto,
            calls=tuple(self.calls),
            replaced_database=self.replaced_database,
        )

    # ---- steps ------------------------------------------------------------------------------

    def _declare_steps(self) -> None:
        for key, title in (
            ("describe", "Read the plan's restore facts"),
            (REQUEST_STEP, "Verify the requester's signature"),
            ("locate", "Choose the recovery point"),
            ("verify", "Verify packages, Merkle root and manifest signature"),
            ("quarantine", "Copy into a read-only quarantine"),
            ("sql", "SQL point-in-time restore of the projection database"),
            ("cosmos", "Cosmos DB account restore"),
            ("validate", "Validate records against the manifest"),
            ("approvals", "Wait for approvals"),
            ("swap", "Point the tenant at the restored database"),
            ("promote", "Promote into the live container"),
            ("evidence", "Write the evidence pack"),
            ("cleanup", "Remove the quarantine and unpromoted restored databases"),
        ):
            self.progress.add(key, title)

    @staticmethod
    def _check_request(inp: RestoreInput) -> None:
        problems = []
        if inp.mode not in MODES:
            problems.append(f"mode must be one of {', '.join(MODES)}, not {inp.mode!r}")
        if inp.verify_policy not in VERIFY_POLICIES:
            problems.append(f"verify_policy must be one of {', '.join(VERIFY_POLICIES)}, not {inp.verify_policy!r}")
        if bool(inp.at) == bool(inp.recovery_point_id):
            problems.append("give exactly one of a point in time (--at) or a recovery point id (--recovery-point)")
        if not inp.requested_by.strip():
            problems.append("requested_by must name the requester (--as)")
        if not 0 < inp.sample_share <= 1:
            problems.append(f"sample_share must be in (0, 1], not {inp.sample_share}")
        if inp.approval_timeout_seconds <= 0:
            problems.append(
                f"approval_timeout_seconds must be > 0, not {inp.approval_timeout_seconds} (--approval-timeout)"
            )
        if problems:
            raise ApplicationError("; ".join(problems), type="InvalidInput", non_retryable=True)

    def _authenticate_request(self, inp: RestoreInput) -> None:
        """Refuse a request not signed, for this run and before it expired, by the person it names with the
        key the plan lists for them (an approver or a requester): nobody may request under another
        person's name and then approve as themselves. Production requires the signature; a sandbox
        restore (never promoted) needs none, but one it carries is checked all the same."""
        targets = self.targets
        assert targets is not None
        signed = inp.request_signature
        who = inp.requested_by
        if signed is None:
            if inp.mode != MODE_PRODUCTION:
                self.progress.mark(REQUEST_STEP, SKIPPED, f"{inp.mode} restores need no signed request")
                return
            raise self._request_refused(
                f"a production restore must be signed by its requester {who} "
                f"(drctl restore start --as {who} --key {who}.key)"
            )
        self.progress.mark(REQUEST_STEP, RUNNING)
        keys = {p.name: p.public_key for p in (*targets.approvers, *targets.requesters)}
        if who not in keys:
            listed = ", ".join(sorted(keys)) or "none"
            raise self._request_refused(
                f"{who!r} may not request restores of plan {inp.plan}: only its [[approvers]] and [[requesters]] "
                f"may ({listed})"
            )
        info = workflow.info()
        # Native Ed25519 code outside the sandbox's proxies, as in _check_decision. The signature must
        # have been valid when the restore was started (not when a worker got round to it).
        with workflow.unsafe.sandbox_unrestricted():
            problems = verify_restore_request(inp, keys[who], info.workflow_start_time, workflow_id=info.workflow_id)
            key_id = "" if problems else key_id_of(keys[who])
        if problems:
            raise self._request_refused("; ".join(problems))
        self.requester_key_id = key_id
        self.progress.mark(REQUEST_STEP, DONE, f"signed by {who} with key {key_id}, valid until {signed.expires_at}")
        self._record(
            "verification",
            {
                "requester": {
                    "requested_by": who,
                    "key_id": key_id,
                    "issued_at": signed.issued_at,
                    "expires_at": signed.expires_at,
                    "signature": signed.signature,
                }
            },
        )

    def _request_refused(self, problem: str) -> ApplicationError:
        """The error a restore whose request is not authenticated fails with (its step marked failed)."""
        message = f"the restore request is not authenticated: {problem}"
        self.progress.mark(REQUEST_STEP, FAILED, message)
        return ApplicationError(message, type=REQUEST_NOT_AUTHENTICATED, non_retryable=True)

    async def _step(
        self,
        key: str,
        activity_name: str,
        /,
        arg: Any,
        result_type: type[T],
        describe: Callable[[T], str],
        *,
        minutes: float = 10,
    ) -> T:
        result: T = await self.progress.run(
            key,
            lambda: workflow.execute_activity(
                activity_name, arg, result_type=result_type, **activity_options(minutes, summary=activity_name)
            ),
            describe,
        )
        self.calls.append(activity_name)
        return result

    async def _verify(self, inp: RestoreInput, point: RecoveryPoint) -> None:
        """Stream every package, then check the manifest (signature, Merkle root) against what was measured."""
        self.progress.mark("verify", RUNNING)
        try:
            measured: list[VerifyPackageResult] = await asyncio.gather(
                *[
                    workflow.execute_activity(
                        "backups.verify_package",
                        VerifyPackageInput(inp.plan, point.recovery_point_id, package),
                        result_type=VerifyPackageResult,
                        **activity_options(30, summary=f"verify {package.name}"),
                    )
                    for package in point.packages
                ]
            )
            for m in measured:
                self.packages[m.name] = PackageStatus(
                    m.name, m.bytes, self.packages[m.name].records, m.verified, m.problem
                )
            checked = await workflow.execute_activity(
                "backups.verify_manifest",
                VerifyManifestInput(
                    inp.plan, point.recovery_point_id, tuple(d for m in measured if (d := m.digest) is not None)
                ),
                result_type=VerifyManifestResult,
                **activity_options(5, summary="verify manifest"),
            )
        except (ActivityError, ApplicationError) as err:
            if error_type(err) == INTEGRITY_ERROR_TYPE:
                self._proof_failed(inp)
            self.progress.mark("verify", FAILED, error_text(err))
            raise
        self.calls.extend(["backups.verify_package"] * len(measured) + ["backups.verify_manifest"])
        self.manifest_sha256 = checked.manifest_sha256
        self.verification = checked.verification
        self.digest = verification_digest(checked.verification)
        self._record(
            "verification",
            {
                "recovery_point": point.recovery_point_id,
                "manifest_sha256": checked.manifest_sha256,
                "verification_digest": self.digest,
                "packages": [self.packages[p.name] for p in point.packages],
                "result": checked.verification,
            },
        )
        failed_packages = {m.name for m in measured if m.problem}
        problems = [m.problem for m in measured if m.problem] + [
            str(p) for p in checked.verification.problems if p.package not in failed_packages
        ]
        if problems:
            self._proof_failed(inp)
            message = f"recovery point {point.recovery_point_id} failed verification: {'; '.join(problems)}"
            self.progress.mark("verify", FAILED, message)
            raise ApplicationError(message, type=INTEGRITY_ERROR_TYPE, non_retryable=True)
        self.progress.mark(
            "verify", DONE, f"{len(measured)} package(s), Merkle root and signature verified ({self.digest[:12]})"
        )

    def _proof_failed(self, inp: RestoreInput) -> None:
        workflow.metric_meter().create_counter(
            PROOF_FAILURES, "recovery points that failed integrity verification"
        ).add(1, {"plan": inp.plan})

    async def _quarantine(self, inp: RestoreInput, point: RecoveryPoint, restore_id: str) -> SealQuarantineResult:
        async def copy_all() -> SealQuarantineResult:
            copies: list[CopyToQuarantineResult] = await asyncio.gather(
                *[
                    workflow.execute_activity(
                        "backups.copy_to_quarantine",
                        CopyToQuarantineInput(inp.plan, inp.tenant_id, restore_id, point.recovery_point_id, package),
                        result_type=CopyToQuarantineResult,
                        **activity_options(30, summary=f"quarantine {package.name}"),
                    )
                    for package in point.packages
                ]
            )
            self.calls.extend(["backups.copy_to_quarantine"] * len(copies))
            sealed: SealQuarantineResult = await workflow.execute_activity(
                "backups.seal_quarantine",
                SealQuarantineInput(inp.plan, restore_id, point.packages),
                result_type=SealQuarantineResult,
                **activity_options(5, summary="seal quarantine"),
            )
            self.calls.append("backups.seal_quarantine")
            return sealed

        sealed = await self.progress.run(
            "quarantine", copy_all, lambda s: f"{s.blobs} blob(s), {s.records} records in read-only '{s.container}'"
        )
        self._record("step", {"quarantine": sealed})
        return sealed

    async def _sql(self, inp: RestoreInput, point: RecoveryPoint, restore_id: str) -> None:
        targets = self.targets
        assert targets is not None
        if targets.sql_failover_group is None or targets.sql_database is None:
            self.progress.mark("sql", SKIPPED, "the plan has no projection database")
            return
        request = RestoreDatabasePitrInput(
            plan=inp.plan,
            failover_group=targets.sql_failover_group,
            source_database=targets.sql_database,
            target_database=restored_database_name(targets.sql_database, inp.tenant_id, restore_id),
            point_in_time=point.created_at,
        )
        # Recorded before the call: a copy Azure began creating is deleted by the cleanup even if
        # this activity never reports back (deleting a database that never appeared is a no-op).
        self.restored_database = request.target_database
        result = await self._step(
            "sql",
            "sql.restore_database_pitr",
            request,
            RestoreDatabasePitrResult,
            lambda r: f"{r.database} on {r.server} as of {r.point_in_time}",
            minutes=60,
        )
        self.restored_database = result.database
        self.restored_server = result.server
        self._record("call", {"sql.restore_database_pitr": request, "result": result})

    async def _cosmos(self, inp: RestoreInput, point: RecoveryPoint, restore_id: str) -> None:
        targets = self.targets
        assert targets is not None
        if targets.cosmos_account is None:
            self.progress.mark("cosmos", SKIPPED, "the plan has no Cosmos DB account")
            return
        request = RestoreCosmosAccountInput(
            plan=inp.plan,
            target_account=f"{targets.cosmos_account[:30]}-r{_suffix(restore_id)}",
            point_in_time=point.created_at,
        )
        self.restored_cosmos = request.target_account
        result = await self._step(
            "cosmos",
            "cosmos.restore_account",
            request,
            RestoreCosmosAccountResult,
            lambda r: f"{r.account} from {r.restore_source} as of {r.point_in_time}",
            minutes=60,
        )
        self.restored_cosmos = result.account
        self._record("call", {"cosmos.restore_account": request, "result": result})

    async def _validate(self, inp: RestoreInput, point: RecoveryPoint, restore_id: str) -> None:
        result = await self._step(
            "validate",
            "restore.validate_quarantine",
            ValidateQuarantineInput(
                inp.plan, inp.tenant_id, restore_id, {p.name: p.records for p in point.packages}, inp.sample_share
            ),
            ValidateQuarantineResult,
            lambda r: (
                f"{r.records} records match the manifest; {r.sampled} sampled record(s) all the tenant's"
                if r.ok
                else "; ".join(r.problems)
            ),
            minutes=30,
        )
        self.validation = result
        self._record("validation", {"result": result})
        if not result.ok:
            self.progress.mark("validate", FAILED, "; ".join(result.problems))
            raise ApplicationError(
                f"validation of the restored data failed: {'; '.join(result.problems)}",
                type="RestoreValidationFailed",
                non_retryable=True,
            )

    async def _await_approvals(self, inp: RestoreInput) -> str:
        targets = self.targets
        assert targets is not None
        timeout = timedelta(seconds=inp.approval_timeout_seconds)
        self.deadline = (workflow.now() + timeout).isoformat().replace("+00:00", "Z")
        self.progress.mark("approvals", RUNNING, f"{targets.approvals_required} approval(s) needed by {self.deadline}")
        self.progress.set_phase(AWAITING_APPROVAL)
        try:
            await workflow.wait_condition(
                lambda: len(self.approvals) >= targets.approvals_required or self.rejection is not None,
                timeout=timeout,
            )
        except TimeoutError:
            self.progress.set_phase("closing")  # no decision is accepted from here on
            self.progress.mark("approvals", FAILED, f"no decision before {self.deadline}: nothing promoted")
            self._record("note", {"approval_timeout": self.deadline})
            return OUTCOME_TIMED_OUT
        self.progress.set_phase("closing")
        if self.rejection is not None:
            who = self.rejection.approval.approver
            self.progress.mark("approvals", FAILED, f"rejected by {who}: {self.rejection.reason}")
            return OUTCOME_REJECTED
        self.progress.mark("approvals", DONE, "approved by " + ", ".join(a.approver for a in self.approvals))
        return OUTCOME_PROMOTED

    async def _swap_in_database(self, inp: RestoreInput, restore_id: str) -> None:
        """Point the tenant's projections at the restored database (the shared one stays as it was)."""
        targets = self.targets
        assert targets is not None
        if self.restored_database is None or targets.projection_database is None:
            self.progress.mark("swap", SKIPPED, "no projection database was restored")
            return
        request = SetTenantDatabaseInput(
            plan=inp.plan,
            tenant_id=inp.tenant_id,
            database=self.restored_database,
            reason=f"restore {restore_id} promoted",
            expected_current=targets.projection_database,
        )
        result = await self._step(
            "swap",
            SET_TENANT_DATABASE,
            request,
            SetTenantDatabaseResult,
            lambda r: f"{r.tenant_id}'s projections now in {r.current} (were in {targets.projection_database})",
        )
        self.database_swapped = True
        # The swap moves the tenant only away from the mapping read at the start (the activity refuses
        # otherwise); a retried swap that finds its own work done reports the restored database as previous.
        self.replaced_database = result.previous if result.changed else targets.projection_database
        self._record(
            "call", {SET_TENANT_DATABASE: request, "result": result, REPLACED_DATABASE: self.replaced_database}
        )

    async def _cleanup(self, inp: RestoreInput, restore_id: str) -> str:
        """Delete the quarantine, and the restored database and Cosmos account unless promotion uses them."""
        done: list[str] = []
        quarantine: CleanupQuarantineResult = await workflow.execute_activity(
            "backups.cleanup_quarantine",
            CleanupQuarantineInput(inp.plan, restore_id),
            result_type=CleanupQuarantineResult,
            **activity_options(10, summary="delete quarantine"),
        )
        self.calls.append("backups.cleanup_quarantine")
        done.append(f"quarantine '{quarantine.container}' deleted" if quarantine.deleted else "no quarantine")
        if self.restored_database is not None and not self.database_swapped:
            group = self.targets.sql_failover_group if self.targets and not self.restored_server else None
            dropped: DeleteDatabaseResult = await workflow.execute_activity(
                "sql.delete_database",
                DeleteDatabaseInput(
                    inp.plan,
                    self.restored_database,
                    server=self.restored_server,
                    failover_group=group,
                ),
                result_type=DeleteDatabaseResult,
                **activity_options(60, summary=f"delete {self.restored_database}"),
            )
            self.calls.append("sql.delete_database")
            done.append(f"database {dropped.database} deleted")
        if self.restored_cosmos is not None and not self.database_swapped:
            account: DeleteCosmosAccountResult = await workflow.execute_activity(
                "cosmos.delete_account",
                DeleteCosmosAccountInput(inp.plan, self.restored_cosmos),
                result_type=DeleteCosmosAccountResult,
                **activity_options(60, summary=f"delete {self.restored_cosmos}"),
            )
            self.calls.append("cosmos.delete_account")
            done.append(f"Cosmos account {account.account} deleted")
        self._record("call", {"cleanup": done})
        return "; ".join(done)

    async def _finish(self, inp: RestoreInput, restore_id: str, start: datetime, outcome: str) -> float:
        """Clean up, write the evidence pack and record the duration, whatever the outcome."""
        await self._best_effort(
            "cleanup", lambda: self.progress.run("cleanup", lambda: self._cleanup(inp, restore_id), lambda d: d)
        )
        rto = (workflow.now() - start).total_seconds()
        workflow.metric_meter().create_histogram_float(
            RESTORE_DURATION, "time from restore request to its end", "s"
        ).record(rto, {"plan": inp.plan, "mode": inp.mode, "outcome": outcome})
        for step in self.progress.table.steps:
            self._record("step", {"step": step})
        self._record("note", {"outcome": outcome, "calls": list(self.calls)})
        stored = await self._best_effort(
            "evidence",
            lambda: self._step(
                "evidence",
                "restore.store_evidence",
                StoreEvidenceInput(
                    plan=inp.plan,
                    workflow_id=restore_id,
                    kind="restore",
                    started_at=self.started_at,
                    finished_at=now_iso(),
                    items=tuple(self.evidence),
                    tenant=inp.tenant_id,
                    recovery_point=self.point.recovery_point_id if self.point else None,
                    rto_seconds=rto,
                ),
                StoreEvidenceResult,
                lambda r: f"{r.entries} entries in '{r.container}/{r.blob}', signed by {r.key_id}",
            ),
        )
        if isinstance(stored, StoreEvidenceResult):
            self.evidence_blob = stored.blob
        return rto

    async def _best_effort(self, key: str, body: Callable[[], Awaitable[T]]) -> T | None:
        """Run a closing step; its failure is shown in the step table but does not hide the outcome."""
        try:
            return await body()
        except (ActivityError, ApplicationError) as err:
            self._record("note", {key: f"failed: {error_text(err)}"})
            return None

    def _record(self, kind: str, data: dict[str, Any]) -> None:
        self.evidence.append(EvidenceItem(kind, now_iso(), data))

    @staticmethod
    def _approval_record(approval: Approval) -> dict[str, str]:
        return {
            "approver": approval.approver,
            "decision": approval.decision,
            "recovery_point": approval.recovery_point_id,
            "verification_digest": approval.verification_digest,
            "expires_at": approval.expires_at,
            "key_id": approval.key_id,
            "signature": approval.signature,
        }


@workflow.defn(name="UndoPromotionWorkflow")
class UndoPromotionWorkflow:
    """Give a tenant back the live data a promoted restore replaced (the restore kept it for this), and
    point its projections back at the database the promotion replaced."""

    @workflow.run
    async def run(self, inp: UndoPromotionInput) -> UndoPromotionResult:
        workflow.upsert_search_attributes([DR_PLAN.value_set(inp.plan), TENANT_ID.value_set(inp.tenant_id)])
        self._check(inp)
        database: str | None = None
        fell_back = False
        if inp.database_swapped is not False:
            targets: RestoreTargets = await workflow.execute_activity(
                "restore.describe",
                DescribeRestoreInput(inp.plan, inp.tenant_id),
                result_type=RestoreTargets,
                **activity_options(5, summary="restore facts"),
            )
            if targets.sql_database is not None:
                fell_back = inp.previous_database is None
                database = inp.previous_database or targets.sql_database
                if fell_back:
                    workflow.logger.warning(
                        "restore %s did not record which database its promotion replaced: pointing tenant %s's "
                        "projections at the plan's shared database %s",
                        inp.restore_id,
                        inp.tenant_id,
                        database,
                    )
                await self._point_back(inp, database, targets.sql_database)
        result: UndoPromotionResult = await workflow.execute_activity(
            "backups.undo_promotion",
            inp,
            result_type=UndoPromotionResult,
            **activity_options(30, summary=f"undo promotion of {inp.restore_id}"),
        )
        return dataclasses.replace(result, projection_database=database, fell_back_to_shared=fell_back)

    @staticmethod
    def _check(inp: UndoPromotionInput) -> None:
        """Refuse an input that contradicts itself before anything changes, naming the fields."""
        problems = []
        if inp.previous_database is not None and not inp.previous_database.strip():
            problems.append(
                "previous_database must name the database the promotion replaced (RestoreResult.replaced_database), "
                "or be left out"
            )
        if inp.previous_database is not None and inp.database_swapped is False:
            problems.append(
                "previous_database is given but database_swapped is false: a promotion that swapped no database "
                "replaced none; drop one of them"
            )
        if problems:
            raise ApplicationError("; ".join(problems), type="InvalidInput", non_retryable=True)

    @staticmethod
    async def _point_back(inp: UndoPromotionInput, database: str, source_database: str) -> None:
        """First, and conditioned on the tenant still using this restore's database: if another change came
        since (such as a later restore's promotion), the undo stops here with nothing changed."""
        restored = restored_database_name(source_database, inp.tenant_id, inp.restore_id)
        try:
            await workflow.execute_activity(
                SET_TENANT_DATABASE,
                SetTenantDatabaseInput(
                    plan=inp.plan,
                    tenant_id=inp.tenant_id,
                    database=database,
                    reason=f"undo of restore {inp.restore_id}",
                    expected_current=restored,
                ),
                result_type=SetTenantDatabaseResult,
                **activity_options(10, summary=f"projections back to {database}"),
            )
        except ActivityError as err:
            if error_type(err) != PROJECTION_DATABASE_CHANGED:
                raise
            raise ApplicationError(
                f"undo of restore {inp.restore_id} refused with nothing changed (live data and projection "
                f"database as they were): {error_text(err)}. The tenant's projections moved since this restore "
                "promoted them (a later restore's promotion, or another change): undo that first",
                type=PROJECTION_DATABASE_CHANGED,
                non_retryable=True,
            ) from err
