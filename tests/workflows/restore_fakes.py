"""Same-named fakes of the backup, restore, SQL and Cosmos activities: blobs held in dicts, while the
manifest, its signature, Merkle root and evidence pack use the real integrity and evidence code, so
tampering is caught exactly as in production."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import gzip
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.evidence import EvidenceHeader, EvidenceRecorder
from activities.integrity import (
    INTEGRITY_ERROR_TYPE,
    build_manifest,
    generate_private_key,
    key_id_of,
    public_key_b64,
    sign_manifest,
    trusted_keys,
    verify_manifest,
)
from domain.messages.backups import (
    STATUS_COMPLETED,
    CleanupQuarantineInput,
    CleanupQuarantineResult,
    CopyPackageInput,
    CopyPackageResult,
    CopyToQuarantineInput,
    CopyToQuarantineResult,
    FindRecoveryPointInput,
    FindRecoveryPointResult,
    ListSegmentsInput,
    ListSegmentsResult,
    Package,
    PromoteInput,
    PromoteResult,
    RecoveryPoint,
    RegisterRecoveryPointInput,
    RegisterRecoveryPointResult,
    SealQuarantineInput,
    SealQuarantineResult,
    Segment,
    UndoPromotionInput,
    UndoPromotionResult,
    VerifyManifestInput,
    VerifyManifestResult,
    VerifyPackageInput,
    VerifyPackageResult,
    WriteManifestInput,
    WriteManifestResult,
    package_blob,
)
from domain.messages.cosmos import (
    DeleteCosmosAccountInput,
    DeleteCosmosAccountResult,
    RestoreCosmosAccountInput,
    RestoreCosmosAccountResult,
)
from domain.messages.integrity import Manifest, PackageEntry, Signature
from domain.messages.platform import SetTenantDatabaseInput, SetTenantDatabaseResult
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
from domain.messages.sql import (
    DeleteDatabaseInput,
    DeleteDatabaseResult,
    RestoreDatabasePitrInput,
    RestoreDatabasePitrResult,
)

TENANT = "tenant-0001"
RECOVERY_POINT = "RP-20261128T090000Z-eastus-tenant-0001"
CREATED_AT = "2026-11-28T09:00:00.000000Z"
APPROVERS = ("alice", "bob", "carol")
REQUESTER = "rita"  # may request production restores, not approve them (the plan's [[requesters]])


def segment(tenant: str, index: int, records: int = 20) -> bytes:
    """A gzip JSON-lines segment of ``records`` records belonging to ``tenant``."""
    lines = [json.dumps({"tenantId": tenant, "id": f"{index}-{i}"}) for i in range(records)]
    return gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class FakeRestoreWorld:
    """One tenant's live container, its recovery point in the backup container, quarantines, evidence."""

    signing_key: Ed25519PrivateKey = field(default_factory=generate_private_key)
    approver_keys: dict[str, Ed25519PrivateKey] = field(
        default_factory=lambda: {name: generate_private_key() for name in APPROVERS}
    )
    requester_keys: dict[str, Ed25519PrivateKey] = field(default_factory=lambda: {REQUESTER: generate_private_key()})
    approvals_required: int = 2
    cosmos_account: str | None = "cosmos-estate"
    sql_database: str | None = "projections"  # the plan's shared projection database (None: the plan has none)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    live: dict[str, bytes] = field(default_factory=dict)
    replaced: dict[str, dict[str, bytes]] = field(default_factory=dict)
    backups: dict[str, bytes] = field(default_factory=dict)
    quarantine: dict[str, dict[str, bytes]] = field(default_factory=dict)
    sealed: set[str] = field(default_factory=set)
    evidence: dict[str, bytes] = field(default_factory=dict)
    catalog: dict[str, RecoveryPoint] = field(default_factory=dict)
    manifests: dict[str, tuple[Manifest, Signature]] = field(default_factory=dict)
    projection_database: str = "projections"  # the tenant registry's mapping of the tenant
    hold_validation: asyncio.Event | None = None  # set: validation waits for it (to act mid-restore)
    hold_cleanup: asyncio.Event | None = None  # set: quarantine cleanup waits for it
    fail_cosmos_restore: bool = False  # set: the Cosmos DB account restore fails
    fail_promote: bool = False  # set: promotion of live segments fails, replacing nothing

    def __post_init__(self) -> None:
        self.restore_data = {f"segments/2026112808-{i:04d}.jsonl.gz": segment(TENANT, i) for i in range(3)}
        self.make_recovery_point(RECOVERY_POINT, self.restore_data)
        self.live = {name: segment(TENANT, 100 + i, 5) for i, name in enumerate(sorted(self.restore_data))}

    def make_recovery_point(self, rp_id: str, data: dict[str, bytes]) -> RecoveryPoint:
        packages = tuple(
            Package(name, package_blob(rp_id, name), f"https://fake/{name}", _sha(body), len(body), 20, "hot")
            for name, body in sorted(data.items())
        )
        for package, body in zip(packages, (data[n] for n in sorted(data)), strict=True):
            self.backups[package.blob] = body
        manifest = build_manifest(
            tenant_id=TENANT,
            recovery_point_id=rp_id,
            created_at=CREATED_AT,
            time_from="2026-11-28T08:00:00Z",
            time_to=CREATED_AT,
            policy_version="1.0.0",
            data_classes=("hot",),
            region="eastus",
            packages=[PackageEntry(p.name, p.bytes, p.records, p.sha256) for p in packages],
        )
        signature = sign_manifest(manifest, self.signing_key)
        self.manifests[rp_id] = (manifest, signature)
        point = RecoveryPoint(
            recovery_point_id=rp_id,
            tenant_id=TENANT,
            region="eastus",
            backup_type="full",
            created_at=CREATED_AT,
            status=STATUS_COMPLETED,
            policy_version="1.0.0",
            data_classes=("hot",),
            packages=packages,
            merkle_root=manifest.merkle_root,
            signature=signature.signature,
            key_id=signature.key_id,
        )
        self.catalog[rp_id] = point
        return point

    # ---- tampering ----------------------------------------------------------------------------

    def package_blobs(self) -> list[str]:
        return [p.blob for p in self.catalog[RECOVERY_POINT].packages]

    def flip_byte(self, blob: str) -> None:
        data = bytearray(self.backups[blob])
        data[len(data) // 2] ^= 0x01
        self.backups[blob] = bytes(data)

    def resign_with_other_key(self) -> None:
        manifest, _ = self.manifests[RECOVERY_POINT]
        self.manifests[RECOVERY_POINT] = (manifest, sign_manifest(manifest, generate_private_key()))

    def corrupt_merkle_root(self) -> None:
        manifest, _ = self.manifests[RECOVERY_POINT]
        bad = dataclasses.replace(manifest, merkle_root="0" * 64)
        self.manifests[RECOVERY_POINT] = (bad, sign_manifest(bad, self.signing_key))

    def of(self, name: str) -> list[Any]:
        return [arg for call, arg in self.calls if call == name]

    def key_of(self, name: str) -> Ed25519PrivateKey:
        """The private key of an approver or requester of the fake plan."""
        return {**self.approver_keys, **self.requester_keys}[name]

    # ---- activities -----------------------------------------------------------------------------

    def activities(self) -> list[Callable[..., Any]]:
        @activity.defn(name="restore.describe")
        async def describe(arg: DescribeRestoreInput) -> RestoreTargets:
            self.calls.append(("restore.describe", arg))
            return RestoreTargets(
                plan=arg.plan,
                tenant_id=arg.tenant_id,
                approvers=tuple(ApproverKey(n, public_key_b64(k)) for n, k in self.approver_keys.items()),
                approvals_required=self.approvals_required,
                retention_days=35,
                live_container=f"tenant-{arg.tenant_id}",
                sql_failover_group="fog-tenants" if self.sql_database else None,
                sql_database=self.sql_database,
                cosmos_account=self.cosmos_account,
                projection_database=self.projection_database,
                requesters=tuple(ApproverKey(n, public_key_b64(k)) for n, k in self.requester_keys.items()),
            )

        @activity.defn(name="backups.find_recovery_point")
        async def find(arg: FindRecoveryPointInput) -> FindRecoveryPointResult:
            self.calls.append(("backups.find_recovery_point", arg))
            if arg.at and arg.at > "2027":
                raise ApplicationError(
                    f"point in time {arg.at} is in the future", type="PointInTimeInFuture", non_retryable=True
                )
            return FindRecoveryPointResult(arg.plan, self.catalog[arg.recovery_point_id or RECOVERY_POINT])

        @activity.defn(name="backups.verify_package")
        async def verify_package(arg: VerifyPackageInput) -> VerifyPackageResult:
            self.calls.append(("backups.verify_package", arg))
            package = arg.package
            what = f"package {package.name} of recovery point {arg.recovery_point_id}"
            body = self.backups.get(package.blob)
            if body is None:
                return VerifyPackageResult(
                    arg.plan, arg.recovery_point_id, package.name, False, package.sha256, None, 0, f"{what} is missing"
                )
            actual = _sha(body)
            problem = None if actual == package.sha256 else f"{what} has SHA-256 {actual}, the manifest says so-and-so"
            return VerifyPackageResult(
                arg.plan,
                arg.recovery_point_id,
                package.name,
                problem is None,
                package.sha256,
                actual,
                len(body),
                problem,
            )

        @activity.defn(name="backups.verify_manifest")
        async def verify(arg: VerifyManifestInput) -> VerifyManifestResult:
            self.calls.append(("backups.verify_manifest", arg))
            manifest, signature = self.manifests[arg.recovery_point_id]
            trusted = trusted_keys([public_key_b64(self.signing_key)])
            result = verify_manifest(manifest, signature, trusted, arg.actual)
            digest = _sha(json.dumps(manifest.to_dict(), sort_keys=True).encode())
            return VerifyManifestResult(arg.plan, arg.recovery_point_id, digest, result)

        @activity.defn(name="backups.copy_to_quarantine")
        async def copy(arg: CopyToQuarantineInput) -> CopyToQuarantineResult:
            self.calls.append(("backups.copy_to_quarantine", arg))
            body = self.backups[arg.package.blob]
            if _sha(body) != arg.package.sha256:
                raise ApplicationError(f"{arg.package.name} changed", type=INTEGRITY_ERROR_TYPE, non_retryable=True)
            self.quarantine.setdefault(arg.restore_id, {})[arg.package.name] = body
            return CopyToQuarantineResult(arg.plan, arg.restore_id, "q", arg.package.name, _sha(body), True)

        @activity.defn(name="backups.seal_quarantine")
        async def seal(arg: SealQuarantineInput) -> SealQuarantineResult:
            self.calls.append(("backups.seal_quarantine", arg))
            self.sealed.add(arg.restore_id)
            held = self.quarantine[arg.restore_id]
            return SealQuarantineResult(arg.plan, arg.restore_id, "q", len(held), 20 * len(held), True)

        @activity.defn(name="backups.promote")
        async def promote(arg: PromoteInput) -> PromoteResult:
            self.calls.append(("backups.promote", arg))
            assert arg.restore_id in self.sealed, "promote reads only from a sealed quarantine"
            if self.fail_promote:
                raise ApplicationError("live container unavailable", type="ServiceUnavailable", non_retryable=True)
            self.replaced[arg.restore_id] = dict(self.live)
            self.live = dict(self.quarantine[arg.restore_id])
            kept = tuple(sorted(self.replaced[arg.restore_id]))
            return PromoteResult(
                arg.plan, arg.tenant_id, arg.restore_id, "live", tuple(sorted(self.live)), kept, (), True
            )

        @activity.defn(name="backups.undo_promotion")
        async def undo(arg: UndoPromotionInput) -> UndoPromotionResult:
            self.calls.append(("backups.undo_promotion", arg))
            before = self.replaced.get(arg.restore_id)
            if before is None:  # the promotion replaced no live segment
                return UndoPromotionResult(arg.plan, arg.tenant_id, arg.restore_id, (), (), False)
            added = tuple(sorted(set(self.live) - set(before)))
            self.live = dict(before)
            return UndoPromotionResult(arg.plan, arg.tenant_id, arg.restore_id, tuple(sorted(before)), added, True)

        @activity.defn(name="backups.cleanup_quarantine")
        async def cleanup(arg: CleanupQuarantineInput) -> CleanupQuarantineResult:
            self.calls.append(("backups.cleanup_quarantine", arg))
            if self.hold_cleanup is not None:
                await self.hold_cleanup.wait()
            deleted = self.quarantine.pop(arg.restore_id, None) is not None
            self.sealed.discard(arg.restore_id)
            return CleanupQuarantineResult(arg.plan, arg.restore_id, "q", deleted)

        @activity.defn(name="sql.restore_database_pitr")
        async def sql_pitr(arg: RestoreDatabasePitrInput) -> RestoreDatabasePitrResult:
            self.calls.append(("sql.restore_database_pitr", arg))
            return RestoreDatabasePitrResult(
                arg.plan, "eastus", "sql-east", arg.target_database, "id", "src", arg.point_in_time, "Online", True
            )

        @activity.defn(name="cosmos.restore_account")
        async def cosmos_restore(arg: RestoreCosmosAccountInput) -> RestoreCosmosAccountResult:
            self.calls.append(("cosmos.restore_account", arg))
            if self.fail_cosmos_restore:
                raise ApplicationError("restore source not found", type="ResourceNotFound", non_retryable=True)
            return RestoreCosmosAccountResult(
                arg.plan, arg.target_account, "id", "eastus", "restorable", arg.point_in_time, "Succeeded", True
            )

        @activity.defn(name="sql.delete_database")
        async def sql_delete(arg: DeleteDatabaseInput) -> DeleteDatabaseResult:
            self.calls.append(("sql.delete_database", arg))
            assert arg.database != "projections", "the shared projection database is never deleted"
            return DeleteDatabaseResult(arg.plan, arg.database, ("sql-east",), ("id",), True)

        @activity.defn(name="cosmos.delete_account")
        async def cosmos_delete(arg: DeleteCosmosAccountInput) -> DeleteCosmosAccountResult:
            self.calls.append(("cosmos.delete_account", arg))
            assert arg.account != self.cosmos_account, "the plan's own account is never deleted"
            return DeleteCosmosAccountResult(arg.plan, arg.account, "id", True)

        @activity.defn(name="platform.set_tenant_database")
        async def set_database(arg: SetTenantDatabaseInput) -> SetTenantDatabaseResult:
            self.calls.append(("platform.set_tenant_database", arg))
            previous = self.projection_database
            if previous not in {arg.expected_current, arg.database}:
                raise ApplicationError(f"tenant uses {previous}", type="ProjectionDatabaseChanged", non_retryable=True)
            self.projection_database = arg.database
            return SetTenantDatabaseResult(arg.plan, arg.tenant_id, previous, arg.database, previous != arg.database)

        @activity.defn(name="restore.validate_quarantine")
        async def validate(arg: ValidateQuarantineInput) -> ValidateQuarantineResult:
            self.calls.append(("restore.validate_quarantine", arg))
            if self.hold_validation is not None:
                await self.hold_validation.wait()
            results = []
            for name, expected in sorted(arg.expected_records.items()):
                lines = [json.loads(x) for x in gzip.decompress(self.quarantine[arg.restore_id][name]).splitlines()]
                foreign = sum(1 for r in lines if r["tenantId"] != arg.tenant_id)
                problem = None if len(lines) == expected and not foreign else f"package {name} is wrong"
                results.append(PackageValidation(name, expected, len(lines), len(lines), foreign, problem))
            return ValidateQuarantineResult(arg.plan, arg.restore_id, tuple(results), 60, 60)

        @activity.defn(name="restore.store_evidence")
        async def store(arg: StoreEvidenceInput) -> StoreEvidenceResult:
            self.calls.append(("restore.store_evidence", arg))
            recorder = EvidenceRecorder(
                EvidenceHeader(arg.workflow_id, arg.kind, arg.started_at, "", arg.tenant, arg.recovery_point)
            )
            for item in arg.items:
                recorder.add(item.kind, item.data, item.at)
            pack = recorder.finish(self.signing_key, finished_at=arg.finished_at, rto_seconds=arg.rto_seconds)
            blob = f"evidence/{arg.workflow_id}.json"
            self.evidence[blob] = pack.to_json()
            return StoreEvidenceResult(
                arg.plan,
                "dr-backups",
                blob,
                f"https://fake/{blob}",
                len(pack.entries),
                pack.last_hash,
                key_id_of(self.signing_key),
            )

        @activity.defn(name="backups.list_segments")
        async def list_segments(arg: ListSegmentsInput) -> ListSegmentsResult:
            self.calls.append(("backups.list_segments", arg))
            segments = tuple(
                Segment(name, len(body), f"etag-{_sha(body)[:8]}", CREATED_AT, "hot", 5)
                for name, body in sorted(self.live.items())
            )
            return ListSegmentsResult(arg.plan, arg.tenant_id, f"tenant-{arg.tenant_id}", segments)

        @activity.defn(name="backups.copy_package")
        async def copy_package(arg: CopyPackageInput) -> CopyPackageResult:
            self.calls.append(("backups.copy_package", arg))
            body = self.live[arg.segment]
            blob = package_blob(arg.recovery_point_id, arg.segment)
            self.backups[blob] = body
            package = Package(arg.segment, blob, f"https://fake/{blob}", _sha(body), len(body), 5, arg.data_class)
            return CopyPackageResult(arg.plan, arg.recovery_point_id, package, True)

        @activity.defn(name="backups.write_manifest")
        async def write_manifest(arg: WriteManifestInput) -> WriteManifestResult:
            self.calls.append(("backups.write_manifest", arg))
            manifest = build_manifest(
                tenant_id=arg.tenant_id,
                recovery_point_id=arg.recovery_point_id,
                created_at=arg.created_at,
                time_from=arg.created_at,
                time_to=arg.created_at,
                policy_version="1.0.0",
                data_classes=arg.data_classes,
                region=arg.region,
                packages=[PackageEntry(p.name, p.bytes, p.records, p.sha256) for p in arg.packages],
            )
            signature = sign_manifest(manifest, self.signing_key)
            self.manifests[arg.recovery_point_id] = (manifest, signature)
            return WriteManifestResult(
                arg.plan,
                arg.recovery_point_id,
                "m",
                "https://fake/m",
                "s",
                "sha",
                manifest.merkle_root,
                signature.signature,
                signature.key_id,
                arg.created_at,
                arg.created_at,
                True,
            )

        @activity.defn(name="backups.register_recovery_point")
        async def register(arg: RegisterRecoveryPointInput) -> RegisterRecoveryPointResult:
            self.calls.append(("backups.register_recovery_point", arg))
            point = RecoveryPoint(
                arg.recovery_point_id,
                arg.tenant_id,
                arg.region,
                arg.backup_type,
                arg.created_at,
                arg.status,
                "1.0.0",
                arg.data_classes,
                arg.packages,
                merkle_root=arg.merkle_root,
                signature=arg.signature,
            )
            self.catalog[arg.recovery_point_id] = point
            return RegisterRecoveryPointResult(arg.plan, point, True)

        return [
            describe, find, verify_package, verify, copy, seal, promote, undo, cleanup, sql_pitr, cosmos_restore,
            sql_delete, cosmos_delete, set_database,
            validate, store, list_segments, copy_package, write_manifest, register,
        ]  # fmt: skip


def now_plus(moment: dt.datetime, hours: float) -> dt.datetime:
    return moment + dt.timedelta(hours=hours)
