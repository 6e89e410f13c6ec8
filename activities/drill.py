"""What a DR drill needs beyond the failover, backup, restore and failback activities: the drill facts
of a plan and its drill estate, an independent check of a stored evidence pack, and the signed drill
report (JSON and Markdown) in Blob Storage with the plan's drill pass rate.

A stored report is JSON::

    {"format": "dr-drill-report/v1", "report": {...DrillReport...},
     "signature": {"key_id", "algorithm", "signature"}}

signed with Ed25519 over ``dr-orchestrator/drill-report/v1`` + newline + the canonical JSON of
format and report, by the orchestrator's manifest-signing key (the evidence packs' key).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import ContentSettings
from azure.storage.blob.aio import ContainerClient
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.azure import AzureClients, Estates, azure_call, public_url
from activities.evidence import verify_pack
from activities.integrity import canonical_json, check_signature, key_id_of, public_key_b64, sign, trusted_keys
from domain.messages.drill import (
    PASS_RATE_WINDOW,
    REPORT_CONTEXT,
    REPORT_FORMAT,
    REPORT_PREFIX,
    STATUS_FAILED,
    STATUS_PASSED,
    DescribeDrillInput,
    DrillFacts,
    DrillPhase,
    DrillReport,
    StoreDrillReportInput,
    StoreDrillReportResult,
    VerifyEvidenceInput,
    VerifyEvidenceResult,
    report_blobs,
    report_markdown,
)
from domain.messages.integrity import ED25519, Signature
from domain.plan import DrPlan

DRILL_RATE_METRIC = "rto_drill_pass_rate"
# Reports read (newest stored first) to find the last PASS_RATE_WINDOW drills that ran.
PASS_RATE_SCAN = 5 * PASS_RATE_WINDOW


class DrillReportError(ValueError):
    """Bytes that are not a stored drill report."""


def report_payload(report: Mapping[str, Any]) -> bytes:
    """The bytes a stored report's signature covers."""
    return REPORT_CONTEXT + canonical_json({"format": REPORT_FORMAT, "report": dict(report)})


def signed_report(report: DrillReport, private_key: Ed25519PrivateKey) -> bytes:
    """The report as stored: JSON with its Ed25519 signature."""
    body = dataclasses.asdict(report)
    signature = sign(report_payload(body), private_key)
    document = {"format": REPORT_FORMAT, "report": body, "signature": dataclasses.asdict(signature)}
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False).encode()


def report_from_dict(data: Mapping[str, Any]) -> DrillReport:
    """A DrillReport from its JSON form; DrillReportError if fields are missing or malformed."""
    try:
        fields = {f.name for f in dataclasses.fields(DrillReport)}
        values = {k: v for k, v in data.items() if k in fields}
        values["phases"] = [DrillPhase(**phase) for phase in data.get("phases", [])]
        return DrillReport(**values)
    except TypeError as exc:
        raise DrillReportError(f"not a drill report: {exc}") from exc


def read_report(data: bytes, trusted: Mapping[str, str]) -> tuple[DrillReport, str | None]:
    """A stored report and the problem with its signature (None: signed by a key in ``trusted``)."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DrillReportError(f"not a drill report: not JSON ({exc})") from exc
    if not isinstance(document, dict) or document.get("format") != REPORT_FORMAT:
        raise DrillReportError(f"not a drill report: expected format {REPORT_FORMAT}")
    body = document.get("report")
    if not isinstance(body, dict):
        raise DrillReportError("not a drill report: no report object")
    report = report_from_dict(body)
    sig = document.get("signature")
    if not isinstance(sig, dict) or not all(isinstance(sig.get(k), str) for k in ("key_id", "signature")):
        return report, "the report is not signed"
    signature = Signature(sig["key_id"], sig["signature"], str(sig.get("algorithm", ED25519)))
    problem = check_signature(report_payload(body), signature, trusted)
    return report, None if problem is None else problem.message


def pass_rate(reports: Iterable[DrillReport], window: int = PASS_RATE_WINDOW) -> tuple[float | None, int]:
    """The share of the newest ``window`` drills that ran (passed or failed; skipped ones do not
    count) that passed, and how many were counted; None when none ran."""
    ran = sorted(
        (r for r in reports if r.status in (STATUS_PASSED, STATUS_FAILED)), key=lambda r: r.finished_at, reverse=True
    )[:window]
    if not ran:
        return None, 0
    return sum(r.passed for r in ran) / len(ran), len(ran)


def plan_keys(plan: DrPlan) -> list[str]:
    """Public keys a plan vouches for beside the orchestrator's: its approvers' and earlier signing keys."""
    return [a.public_key for a in plan.approvers] + list(plan.backup.trusted_keys)


class DrillActivities:
    """Drill facts from the plans this worker serves, evidence checks and the drill report store."""

    def __init__(self, estates: Estates, signing_key: Ed25519PrivateKey) -> None:
        self.estates = estates
        self.signing_key = signing_key
        self.key_id = key_id_of(signing_key)

    def _trusted(self, plan: DrPlan) -> dict[str, str]:
        return trusted_keys((public_key_b64(self.signing_key), *plan_keys(plan)))

    def _backups(self, clients: AzureClients) -> ContainerClient:
        return clients.blob.get_container_client(clients.plan.backup.backup_container)

    @activity.defn(name="drill.describe")
    async def describe(self, request: DescribeDrillInput) -> DrillFacts:
        """The plan's targets and [drill] settings, and its drill estate's environment, regions and
        tenants as this worker holds them; refuses if the worker holds another version of the plan."""
        plan = self.estates[request.plan].plan
        if request.expected_digest and request.expected_digest != plan.digest:
            raise ApplicationError(
                f"the worker holds a different version of plan {plan.name!r} (sha256 {plan.digest[:12]}) than "
                f"the one you validated (sha256 {request.expected_digest[:12]}); deploy the same plan file to "
                "the workers and drctl, then retry",
                type="PlanMismatch",
                non_retryable=True,
            )
        facts = DrillFacts(
            plan=plan.name,
            environment=plan.environment,
            edition=plan.edition,
            rto_target_seconds=plan.rto_target_seconds,
            rpo_target_seconds=plan.rpo_target_seconds,
            estate="",
        )
        if plan.drill is None:
            return facts
        spec = plan.drill
        facts = dataclasses.replace(
            facts,
            estate=spec.estate,
            calendar=spec.calendar,
            blackouts=spec.blackouts,
            sample_tenants=spec.sample_tenants,
        )
        if spec.estate not in self.estates.names:
            return facts
        estate = self.estates[spec.estate].plan
        return dataclasses.replace(
            facts,
            estate_served=True,
            estate_environment=estate.environment,
            estate_primary_region=estate.primary_region,
            estate_dr_region=estate.dr_region,
            estate_tenants=tuple(t.id for t in estate.tenants),
        )

    @activity.defn(name="drill.verify_evidence")
    async def verify_evidence(self, request: VerifyEvidenceInput) -> VerifyEvidenceResult:
        """Read an evidence pack from the plan's backup container and check its hash chain and its
        signature by the orchestrator's key (or a key the plan trusts)."""
        clients = self.estates[request.plan]
        container = self._backups(clients)
        blob = container.get_blob_client(request.blob)
        async with azure_call(f"blob '{request.blob}' in container '{container.container_name}'", "read"):
            try:
                data = await (await blob.download_blob()).readall()
            except ResourceNotFoundError:
                data = None
        if data is None:
            return VerifyEvidenceResult(
                request.plan,
                request.blob,
                ok=False,
                workflow_id="",
                kind="",
                entries=0,
                key_id="",
                problems=(f"no evidence pack at {container.container_name}/{request.blob}",),
            )
        checked = verify_pack(data, self._trusted(clients.plan))
        return VerifyEvidenceResult(
            request.plan,
            request.blob,
            ok=checked.ok,
            workflow_id=checked.workflow_id,
            kind=checked.kind,
            entries=checked.entries,
            key_id=checked.key_id,
            problems=tuple(str(p) for p in checked.problems),
        )

    @activity.defn(name="drill.store_report")
    async def store_report(self, request: StoreDrillReportInput) -> StoreDrillReportResult:
        """Write the signed JSON report and its Markdown under drills/ in the plan's backup container
        (the same drill: the same blobs), then set rto_drill_pass_rate from the newest stored drills."""
        clients = self.estates[request.plan]
        container = self._backups(clients)
        json_name, markdown_name = report_blobs(request.report.workflow_id)
        where = f"container '{container.container_name}'"
        async with azure_call(f"drill report '{json_name}' in {where}", "write"):
            with contextlib.suppress(ResourceExistsError):
                await container.create_container()
            await container.get_blob_client(json_name).upload_blob(
                signed_report(request.report, self.signing_key),
                overwrite=True,
                content_settings=ContentSettings(content_type="application/json"),
            )
            await container.get_blob_client(markdown_name).upload_blob(
                report_markdown(request.report).encode(),
                overwrite=True,
                content_settings=ContentSettings(content_type="text/markdown; charset=utf-8"),
            )
        async with azure_call(f"drill reports under '{REPORT_PREFIX}' in {where}", "read"):
            reports = await self._recent_reports(container, self._trusted(clients.plan))
        rate, counted = pass_rate(reports)
        if rate is not None and activity.in_activity():
            activity.metric_meter().create_gauge_float(
                DRILL_RATE_METRIC, f"share of the last {PASS_RATE_WINDOW} drills that passed", "1"
            ).set(rate, {"plan": request.plan})
        return StoreDrillReportResult(
            plan=request.plan,
            container=container.container_name,
            json_blob=json_name,
            markdown_blob=markdown_name,
            uri=public_url(container.get_blob_client(json_name).url),
            key_id=self.key_id,
            pass_rate=rate,
            counted=counted,
        )

    async def _recent_reports(self, container: ContainerClient, trusted: Mapping[str, str]) -> list[DrillReport]:
        """The newest stored reports (by storage time); unreadable ones, and ones not signed by a trusted
        key, are left out, so that nobody able to write a blob can raise the pass rate."""
        found = [
            (blob.last_modified, blob.name)
            async for blob in container.list_blobs(name_starts_with=REPORT_PREFIX)
            if blob.name.endswith(".json")
        ]
        reports = []
        for _, name in sorted(found, reverse=True)[:PASS_RATE_SCAN]:
            try:
                data = await (await container.get_blob_client(name).download_blob()).readall()
            except ResourceNotFoundError:
                continue
            with contextlib.suppress(DrillReportError):
                report, problem = read_report(data, trusted)
                if problem is None:
                    reports.append(report)
        return reports
