"""Inputs and results of the backup activities: recovery points of tenant data in Blob Storage, the
backup catalog, and the quarantine a tenant restore goes through (standard library only).

Layout in Blob Storage (containers named by the plan's [backup] table):
  tenant live container   segments/<segment>.jsonl.gz            the tenant's data, gzip JSON lines
                          replaced/<restore id>/segments/...     live blobs a promotion replaced
                          replaced/<restore id>/promotion.json   what that promotion did (for undo)
  backup container        recovery-points/<rp id>/segments/...   packages: copies of the segments
                          recovery-points/<rp id>/manifest.json  the signed manifest (+ .sig)
  quarantine container    segments/...                            a restore's verified packages
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from domain.messages.integrity import PackageDigest, VerificationResult

SEGMENTS_PREFIX = "segments/"
RECOVERY_POINTS_PREFIX = "recovery-points/"
REPLACED_PREFIX = "replaced/"
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.json.sig"
PROMOTION_JOURNAL = "promotion.json"

STATUS_IN_PROGRESS = "in_progress"
STATUS_COMPLETED = "completed"
STATUS_FAILED = "failed"
STATUSES = (STATUS_IN_PROGRESS, STATUS_COMPLETED, STATUS_FAILED)

BACKUP_FULL = "full"
BACKUP_INCREMENTAL = "incremental"
BACKUP_POINT_IN_TIME = "point-in-time"
BACKUP_TYPES = (BACKUP_FULL, BACKUP_INCREMENTAL, BACKUP_POINT_IN_TIME)

DATA_CLASSES = ("hot", "warm", "cold")

# Blob and container metadata keys (Azure folds metadata names to lower case).
META_SHA256 = "sha256"
META_RECORDS = "records"
META_SOURCE_ETAG = "sourceetag"
META_DATA_CLASS = "dataclass"
META_TENANT = "tenantid"
META_FROM = "fromtime"
META_TO = "totime"
META_READONLY = "readonly"  # on a quarantine container: "true" once sealed
META_RESTORE = "restoreid"
META_RECOVERY_POINT = "recoverypointid"


def utc_iso(moment: dt.datetime) -> str:
    """A moment as the catalog and manifests write it: UTC, microseconds, ``Z`` (sorts as text)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_utc(value: str) -> dt.datetime:
    """An ISO 8601 timestamp as an aware UTC datetime (naive input means UTC); ValueError if malformed."""
    moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def recovery_point_id(created_at: dt.datetime, region: str, tenant_id: str) -> str:
    """``RP-<yyyymmddThhmmssZ>-<region>-<tenant>``, the operators' form (RP-20251027T080000Z-eu-west-acme)."""
    return f"RP-{created_at.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}-{region}-{tenant_id}"


def package_blob(recovery_point: str, name: str) -> str:
    """Where a package (a copy of the live blob ``name``) lives in the backup container."""
    return f"{RECOVERY_POINTS_PREFIX}{recovery_point}/{name}"


def manifest_blob(recovery_point: str) -> str:
    return f"{RECOVERY_POINTS_PREFIX}{recovery_point}/{MANIFEST_NAME}"


def signature_blob(recovery_point: str) -> str:
    return f"{RECOVERY_POINTS_PREFIX}{recovery_point}/{SIGNATURE_NAME}"


def replaced_blob(restore_id: str, name: str) -> str:
    """Where a promotion keeps the live blob ``name`` it replaced or removed."""
    return f"{REPLACED_PREFIX}{restore_id}/{name}"


def promotion_journal_blob(restore_id: str) -> str:
    return f"{REPLACED_PREFIX}{restore_id}/{PROMOTION_JOURNAL}"


@dataclass(frozen=True)
class Segment:
    """One blob of a tenant's live data, as listed (records and time range when its writer recorded them)."""

    name: str  # blob name in the tenant's live container, under segments/
    bytes: int
    etag: str
    last_modified: str
    data_class: str
    records: int | None = None
    time_from: str | None = None
    time_to: str | None = None


@dataclass(frozen=True)
class Package:
    """One package of a recovery point: an entry of its manifest and of the catalog's Packages column."""

    name: str  # the live blob it copies (segments/...), and its name in a quarantine
    blob: str  # its blob in the backup container (recovery-points/<rp id>/<name>)
    uri: str
    sha256: str
    bytes: int
    records: int
    data_class: str
    time_from: str | None = None  # the segment's oldest and newest record, as its writer recorded them
    time_to: str | None = None


@dataclass(frozen=True)
class RecoveryPoint:
    """A row of the backup catalog (the operations guide's BackupCatalog plus what a restore needs)."""

    recovery_point_id: str
    tenant_id: str
    region: str
    backup_type: str
    created_at: str
    status: str
    policy_version: str
    data_classes: tuple[str, ...] = ()
    packages: tuple[Package, ...] = ()
    completed_at: str | None = None
    merkle_root: str | None = None
    signature: str | None = None  # base64 Ed25519 signature over the manifest blob's bytes
    key_id: str | None = None
    time_from: str | None = None  # oldest record timestamp in the packages
    time_to: str | None = None  # newest record timestamp in the packages
    manifest_blob: str | None = None
    manifest_uri: str | None = None
    failure: str | None = None


@dataclass(frozen=True)
class ListSegmentsInput:
    plan: str
    tenant_id: str


@dataclass(frozen=True)
class ListSegmentsResult:
    plan: str
    tenant_id: str
    container: str
    segments: tuple[Segment, ...]
    container_exists: bool = True  # False: the tenant has no live container (it never wrote data)


@dataclass(frozen=True)
class CopyPackageInput:
    """Desired state: the live segment ``segment`` is a package of ``recovery_point_id``."""

    plan: str
    tenant_id: str
    recovery_point_id: str
    segment: str  # blob name in the tenant's live container
    data_class: str = "hot"


@dataclass(frozen=True)
class CopyPackageResult:
    plan: str
    recovery_point_id: str
    package: Package
    uploaded: bool  # False when an earlier attempt had already copied the same source


@dataclass(frozen=True)
class WriteManifestInput:
    """Desired state: the recovery point's manifest and its detached signature are in the backup container."""

    plan: str
    recovery_point_id: str
    tenant_id: str
    region: str
    backup_type: str
    created_at: str
    packages: tuple[Package, ...]
    data_classes: tuple[str, ...] = ("hot",)


@dataclass(frozen=True)
class WriteManifestResult:
    plan: str
    recovery_point_id: str
    manifest_blob: str
    manifest_uri: str
    signature_blob: str
    manifest_sha256: str
    merkle_root: str
    signature: str
    key_id: str
    time_from: str | None
    time_to: str | None
    written: bool  # False when a complete manifest for the same packages was already there


@dataclass(frozen=True)
class RegisterRecoveryPointInput:
    """Desired state: the catalog holds this recovery point with this status (in_progress first,
    then completed with its manifest fields, or failed with a reason)."""

    plan: str
    recovery_point_id: str
    tenant_id: str
    region: str
    backup_type: str
    created_at: str
    status: str = STATUS_IN_PROGRESS
    data_classes: tuple[str, ...] = ("hot",)
    packages: tuple[Package, ...] = ()
    merkle_root: str | None = None
    signature: str | None = None
    key_id: str | None = None
    time_from: str | None = None
    time_to: str | None = None
    manifest_blob: str | None = None
    manifest_uri: str | None = None
    failure: str | None = None


@dataclass(frozen=True)
class RegisterRecoveryPointResult:
    plan: str
    recovery_point: RecoveryPoint
    changed: bool


@dataclass(frozen=True)
class FindRecoveryPointInput:
    """The recovery point a restore uses: ``recovery_point_id`` if given, else the tenant's newest
    completed one at or before ``at`` (ISO 8601), else its newest completed one."""

    plan: str
    tenant_id: str
    at: str | None = None
    recovery_point_id: str | None = None


@dataclass(frozen=True)
class FindRecoveryPointResult:
    plan: str
    recovery_point: RecoveryPoint


@dataclass(frozen=True)
class VerifyPackageInput:
    plan: str
    recovery_point_id: str
    package: Package


@dataclass(frozen=True)
class VerifyPackageResult:
    plan: str
    recovery_point_id: str
    name: str
    verified: bool
    expected_sha256: str
    actual_sha256: str | None  # None when the blob is missing
    bytes: int
    problem: str | None = None  # names the package and what is wrong

    @property
    def digest(self) -> PackageDigest | None:
        """What was measured, in the form integrity's verify_manifest compares with the manifest."""
        return None if self.actual_sha256 is None else PackageDigest(self.name, self.bytes, self.actual_sha256)


# The problem code (beside integrity's) for a manifest that disagrees with the catalog's row.
CATALOG_MISMATCH = "catalog-mismatch"


@dataclass(frozen=True)
class VerifyManifestInput:
    """Check a recovery point's manifest blob: its signature, its Merkle root, that the catalog's row
    agrees with it and, given the digests verify_package measured, every package."""

    plan: str
    recovery_point_id: str
    actual: tuple[PackageDigest, ...] | None = None


@dataclass(frozen=True)
class VerifyManifestResult:
    plan: str
    recovery_point_id: str
    manifest_sha256: str
    verification: VerificationResult  # every check; .ok when there is no problem


@dataclass(frozen=True)
class CopyToQuarantineInput:
    """Desired state: the package is in the restore's quarantine under its live name, its SHA-256
    checked on the way (a mismatch copies nothing)."""

    plan: str
    tenant_id: str
    restore_id: str
    recovery_point_id: str
    package: Package


@dataclass(frozen=True)
class CopyToQuarantineResult:
    plan: str
    restore_id: str
    container: str
    name: str
    sha256: str
    copied: bool  # False when it was already there with the same hash


@dataclass(frozen=True)
class SealQuarantineInput:
    """Desired state: the quarantine holds exactly ``packages`` (names and hashes) and is read-only."""

    plan: str
    restore_id: str
    packages: tuple[Package, ...]


@dataclass(frozen=True)
class SealQuarantineResult:
    plan: str
    restore_id: str
    container: str
    blobs: int
    records: int
    changed: bool


@dataclass(frozen=True)
class PromoteInput:
    """Desired state: the tenant's live segments are the sealed quarantine's, and the ones they
    replaced are kept under replaced/<restore id>/ for undo_promotion."""

    plan: str
    tenant_id: str
    restore_id: str


@dataclass(frozen=True)
class PromoteResult:
    plan: str
    tenant_id: str
    restore_id: str
    container: str
    promoted: tuple[str, ...]  # live blobs now holding restored content
    kept: tuple[str, ...]  # live blobs copied under replaced/<restore id>/ first
    removed: tuple[str, ...]  # live blobs the restore does not have (kept, then deleted)
    changed: bool


@dataclass(frozen=True)
class UndoPromotionInput:
    """Give back what a promotion replaced: the live segments it kept, and the tenant's projection
    database as the promotion found it (``drctl restore undo`` reads both from the restore)."""

    plan: str
    tenant_id: str
    restore_id: str
    # The database the promotion's registry swap moved the tenant's projections away from
    # (RestoreResult.replaced_database). None: not recorded (a restore promoted by an older
    # version), and the undo falls back to the plan's shared database.
    previous_database: str | None = None
    # Whether the promotion swapped the tenant's projection database at all. False: it did not (no
    # projection database was restored), and the undo leaves the mapping alone. None: not known.
    database_swapped: bool | None = None


@dataclass(frozen=True)
class UndoPromotionResult:
    plan: str
    tenant_id: str
    restore_id: str
    restored: tuple[str, ...]  # live blobs given back their pre-promotion content
    removed: tuple[str, ...]  # live blobs the promotion had added
    changed: bool
    # Where the tenant's projections are served from after the undo (None: the mapping was left alone).
    projection_database: str | None = None
    # True: the restore did not record which database its promotion replaced, so the projections
    # were pointed at the plan's shared database (which may not be what the tenant used before).
    fell_back_to_shared: bool = False


@dataclass(frozen=True)
class CleanupQuarantineInput:
    plan: str
    restore_id: str


@dataclass(frozen=True)
class CleanupQuarantineResult:
    plan: str
    restore_id: str
    container: str
    deleted: bool


@dataclass(frozen=True)
class RecoveryPointAgesInput:
    """How old each tenant's newest completed recovery point of the plan is, now."""

    plan: str


@dataclass(frozen=True)
class TenantRecoveryPointAge:
    """One tenant's newest completed recovery point and its age against the tenant's RPO target."""

    tenant_id: str
    rpo_target_seconds: int
    recovery_point_id: str | None = None  # None: the tenant has no completed recovery point
    created_at: str | None = None
    age_seconds: float | None = None


@dataclass(frozen=True)
class RecoveryPointAgesResult:
    plan: str
    measured_at: str  # the moment the ages are counted from (ISO 8601 UTC)
    catalog_found: bool  # False: the catalog database does not exist yet (no backup ever ran here)
    tenants: tuple[TenantRecoveryPointAge, ...]

    @property
    def worst_age_seconds(self) -> float | None:
        """The oldest of the tenants' newest recovery points: the plan's effective RPO right now
        (None when no tenant has one)."""
        ages = [t.age_seconds for t in self.tenants if t.age_seconds is not None]
        return max(ages) if ages else None
