"""What a tenant restore needs beyond the backup activities: the plan's restore facts (requesters,
approvers and their keys, databases), validation of a sealed quarantine's records, and the signed
evidence pack stored in Blob Storage."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Mapping

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import ContentSettings
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.azure import AzureClients, Estates, azure_call, heartbeat, public_url
from activities.backups import RecordCounter
from activities.evidence import EvidenceHeader, EvidenceRecorder
from activities.integrity import key_id_of
from activities.platform import gateways_for, tenant_projection_database
from domain.messages.backups import SEGMENTS_PREFIX
from domain.messages.restore import (
    ApproverKey,
    DescribeRestoreInput,
    PackageValidation,
    RestoreTargets,
    StoreEvidenceInput,
    StoreEvidenceResult,
    ValidateQuarantineInput,
    ValidateQuarantineResult,
)

EVIDENCE_PREFIX = "evidence/"
PROJECTION_DATABASE = "projections"
TENANT_FIELD = "tenantId"


def evidence_blob(workflow_id: str) -> str:
    """Where the evidence pack of one workflow run is stored in the plan's backup container."""
    return f"{EVIDENCE_PREFIX}{workflow_id}.json"


def sample_step(share: float) -> int:
    """Every how many records one is parsed so that about ``share`` of them are (at least one in a package)."""
    if not 0 < share <= 1:
        raise ValueError(f"sample share must be in (0, 1], not {share}")
    return max(1, math.floor(1 / share))


class RestoreActivities:
    """Restore facts from the plan, quarantine validation and evidence storage (Blob Storage)."""

    def __init__(self, estates: Estates, signing_key: Ed25519PrivateKey) -> None:
        self.estates = estates
        self.signing_key = signing_key

    def _clients(self, plan: str) -> AzureClients:
        return self.estates[plan]

    @activity.defn(name="restore.describe")
    async def describe(self, request: DescribeRestoreInput) -> RestoreTargets:
        """The plan's approvers and requesters (with keys), retention, and the tenant's projection database and
        Cosmos account."""
        plan = self._clients(request.plan).plan
        try:
            plan.tenant(request.tenant_id)
        except KeyError:
            raise ApplicationError(
                f"tenant {request.tenant_id!r} is not in plan {plan.name!r}", type="InvalidInput", non_retryable=True
            ) from None
        group = next((g for g in plan.sql.failover_groups if PROJECTION_DATABASE in g.databases), None)
        current = None
        if group is not None:
            clients = self._clients(request.plan)
            _, current = await tenant_projection_database(clients, request.tenant_id, gateways_for(clients))
        return RestoreTargets(
            plan=plan.name,
            tenant_id=request.tenant_id,
            approvers=tuple(ApproverKey(a.name, a.public_key) for a in plan.approvers),
            approvals_required=plan.approvals_required,
            retention_days=plan.backup.retention_days,
            live_container=plan.backup.live_container(request.tenant_id),
            sql_failover_group=group.name if group else None,
            sql_database=PROJECTION_DATABASE if group else None,
            cosmos_account=plan.cosmos.account or None,
            projection_database=current,
            requesters=tuple(ApproverKey(r.name, r.public_key) for r in plan.requesters),
        )

    @activity.defn(name="restore.validate_quarantine")
    async def validate_quarantine(self, request: ValidateQuarantineInput) -> ValidateQuarantineResult:
        """Stream every package in the quarantine: records counted against the manifest, every
        ``1/sample_share``-th record parsed and checked to carry the tenant's id."""
        clients = self._clients(request.plan)
        container = clients.blob.get_container_client(clients.plan.backup.quarantine_container(request.restore_id))
        step = sample_step(request.sample_share)
        results: list[PackageValidation] = []
        for name, expected in sorted(request.expected_records.items()):
            if not name.startswith(SEGMENTS_PREFIX):
                raise ApplicationError(f"package {name!r} is not under {SEGMENTS_PREFIX}", non_retryable=True)
            blob = container.get_blob_client(name)
            records = sampled = foreign = 0
            problem: str | None = None

            def check(index: int, line: bytes) -> None:
                nonlocal records, sampled, foreign
                if not line.strip():
                    return
                if records % step == 0:
                    sampled += 1
                    foreign += not _belongs(line, request.tenant_id)
                records += 1

            reader = RecordCounter(f"package {name}", on_line=check)
            async with azure_call(f"blob '{name}' in container '{container.container_name}'", "validate"):
                try:
                    downloader = await blob.download_blob()
                except ResourceNotFoundError:
                    downloader = None
                if downloader is None:
                    problem = f"package {name} is missing from quarantine '{container.container_name}'"
                else:
                    async for chunk in downloader.chunks():
                        heartbeat({"validating": name})
                        reader.feed(chunk)
                    try:
                        reader.finish()
                    except ApplicationError as err:
                        problem = err.message
            if problem is None and records != expected:
                problem = f"package {name} holds {records} records, the manifest says {expected}"
            if problem is None and foreign:
                problem = f"package {name}: {foreign} of {sampled} sampled records do not belong to {request.tenant_id}"
            results.append(PackageValidation(name, expected, records, sampled, foreign, problem))
        return ValidateQuarantineResult(
            request.plan,
            request.restore_id,
            tuple(results),
            records=sum(p.actual_records for p in results),
            sampled=sum(p.sampled for p in results),
        )

    @activity.defn(name="restore.store_evidence")
    async def store_evidence(self, request: StoreEvidenceInput) -> StoreEvidenceResult:
        """Chain and sign the run's evidence and write it to the backup container (same run: same blob)."""
        clients = self._clients(request.plan)
        recorder = EvidenceRecorder(
            EvidenceHeader(
                workflow_id=request.workflow_id,
                kind=request.kind,
                started_at=request.started_at,
                tenant=request.tenant,
                recovery_point=request.recovery_point,
            )
        )
        for item in request.items:
            recorder.add(item.kind, item.data, item.at)
        pack = recorder.finish(self.signing_key, finished_at=request.finished_at, rto_seconds=request.rto_seconds)
        container = clients.blob.get_container_client(clients.plan.backup.backup_container)
        name = evidence_blob(request.workflow_id)
        blob = container.get_blob_client(name)
        async with azure_call(f"blob '{name}' in container '{container.container_name}'", "write"):
            with contextlib.suppress(ResourceExistsError):
                await container.create_container()
            await blob.upload_blob(
                pack.to_json(), overwrite=True, content_settings=ContentSettings(content_type="application/json")
            )
        return StoreEvidenceResult(
            request.plan,
            container.container_name,
            name,
            public_url(blob.url),
            entries=len(pack.entries),
            last_hash=pack.last_hash,
            key_id=key_id_of(self.signing_key),
        )


def _belongs(line: bytes, tenant_id: str) -> bool:
    try:
        record = json.loads(line)
    except ValueError:
        return False
    return isinstance(record, Mapping) and record.get(TENANT_FIELD) == tenant_id
