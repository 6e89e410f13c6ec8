"""Inputs, results, updates and status of the tenant restore and backup workflows (standard library only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from domain.messages.backups import RecoveryPoint
from domain.messages.integrity import Approval
from domain.messages.progress import StepTable

MODE_SANDBOX = "sandbox"
MODE_PRODUCTION = "production"
MODES = (MODE_SANDBOX, MODE_PRODUCTION)

# Verify policies: "full" streams every package; there is deliberately no weaker policy than that for
# production, so "full" is the only accepted value today (kept as a field so plans can grow more).
VERIFY_FULL = "full"
VERIFY_POLICIES = (VERIFY_FULL,)

# Outcomes of a restore (``RestoreResult.outcome``).
OUTCOME_PROMOTED = "promoted"
OUTCOME_SANDBOX = "sandbox-validated"
OUTCOME_REJECTED = "rejected"
OUTCOME_TIMED_OUT = "approval-timed-out"

DEFAULT_APPROVAL_TIMEOUT_SECONDS = 72 * 3600
DEFAULT_SAMPLE_SHARE = 0.1

# Backups: tenants per run before continuing as new (keeps history bounded), and tenants and
# package copies in flight at once.
BACKUP_TENANTS_PER_RUN = 100
BACKUP_TENANT_CONCURRENCY = 8
BACKUP_COPY_CONCURRENCY = 4
# How many recovery points, failures and skips a backup names in its input, status and result (their
# counts are always whole): what continue-as-new carries must stay far below Temporal's payload limit
# whatever the number of tenants. The catalog lists every recovery point.
BACKUP_NAMES_KEPT = 1000


def restore_workflow_id(plan: str, tenant_id: str, suffix: str) -> str:
    """``restore-<plan>-<tenant>-<suffix>``: the workflow id and the restore id of its quarantine."""
    return f"restore-{plan}-{tenant_id}-{suffix}"


def backup_workflow_id(plan: str, tenant_id: str | None, suffix: str) -> str:
    """``backup-<plan>-<tenant, or all>-<suffix>``: a manual backup run (scheduled runs are
    ``backup-<plan>-scheduled-<time>``)."""
    return f"backup-{plan}-{tenant_id or 'all'}-{suffix}"


def backup_schedule_id(plan: str) -> str:
    """The id of the plan's recurring backup schedule."""
    return f"backup-{plan}"


@dataclass(frozen=True)
class RequestSignature:
    """The requester's Ed25519 signature over every field of a restore request and the workflow id it
    starts (``restore_request_payload``): production restores run only on a request the plan's
    approvers or requesters signed, so nobody can request under another person's name."""

    workflow_id: str
    issued_at: str  # ISO 8601 UTC, seconds precision, "Z" suffix
    expires_at: str  # the restore must start before this
    key_id: str
    signature: str = ""  # base64 of the Ed25519 signature


@dataclass(frozen=True)
class RestoreInput:
    """A tenant restore request: which data, from when, and how far it may go (sandbox never promotes)."""

    plan: str
    tenant_id: str
    requested_by: str
    at: str | None = None  # ISO 8601: restore the newest recovery point at or before it
    recovery_point_id: str | None = None
    data_classes: tuple[str, ...] = ("hot",)
    mode: str = MODE_SANDBOX
    verify_policy: str = VERIFY_FULL
    reason: str = ""
    approval_timeout_seconds: int = DEFAULT_APPROVAL_TIMEOUT_SECONDS
    sample_share: float = DEFAULT_SAMPLE_SHARE
    request_signature: RequestSignature | None = None  # required in production mode


@dataclass(frozen=True)
class ApproverKey:
    """A person the plan lists (an approver or a requester) and their public key."""

    name: str
    public_key: str  # base64 raw Ed25519 public key


@dataclass(frozen=True)
class DescribeRestoreInput:
    plan: str
    tenant_id: str


@dataclass(frozen=True)
class RestoreTargets:
    """What the plan says a restore of one tenant involves: who may request and approve it, retention and
    databases."""

    plan: str
    tenant_id: str
    approvers: tuple[ApproverKey, ...]
    approvals_required: int
    retention_days: int
    live_container: str
    sql_failover_group: str | None  # the group holding the projection database (None: no SQL restore)
    sql_database: str | None
    cosmos_account: str | None  # None: the plan has no Cosmos DB account to restore
    # The database the tenant registry serves the tenant's projections from when the restore began
    # (None: no projection database); promotion swaps from it, and only from it.
    projection_database: str | None = None
    # Who may request production restores besides the approvers (the plan's [[requesters]]).
    requesters: tuple[ApproverKey, ...] = ()


@dataclass(frozen=True)
class ValidateQuarantineInput:
    """Count every package's records against the manifest and parse a sampled share of them, each of
    which must belong to ``tenant_id``."""

    plan: str
    tenant_id: str
    restore_id: str
    expected_records: dict[str, int]  # package name -> records the manifest says
    sample_share: float = DEFAULT_SAMPLE_SHARE


@dataclass(frozen=True)
class PackageValidation:
    name: str
    expected_records: int
    actual_records: int
    sampled: int
    foreign: int  # sampled records of another tenant (or without a tenant)
    problem: str | None = None


@dataclass(frozen=True)
class ValidateQuarantineResult:
    plan: str
    restore_id: str
    packages: tuple[PackageValidation, ...]
    records: int
    sampled: int

    @property
    def ok(self) -> bool:
        return all(p.problem is None for p in self.packages)

    @property
    def problems(self) -> tuple[str, ...]:
        return tuple(p.problem for p in self.packages if p.problem)


@dataclass(frozen=True)
class EvidenceItem:
    """One fact a workflow recorded, in order (an entry of the evidence pack)."""

    kind: str  # step | call | verification | validation | approval | note
    at: str
    data: dict[str, Any]


@dataclass(frozen=True)
class StoreEvidenceInput:
    """Chain, sign and store the evidence pack of one run under evidence/<workflow id>.json."""

    plan: str
    workflow_id: str
    kind: str  # restore | drill | failover
    started_at: str
    finished_at: str
    items: tuple[EvidenceItem, ...]
    tenant: str | None = None
    recovery_point: str | None = None
    rto_seconds: float | None = None


@dataclass(frozen=True)
class StoreEvidenceResult:
    plan: str
    container: str
    blob: str
    uri: str
    entries: int
    last_hash: str
    key_id: str


@dataclass(frozen=True)
class ApprovalAccepted:
    approver: str
    approvals: int
    required: int
    message: str


@dataclass(frozen=True)
class RejectRequest:
    approval: Approval  # decision "reject", signed like an approval
    reason: str


@dataclass(frozen=True)
class PackageStatus:
    name: str
    bytes: int
    records: int
    verified: bool | None = None  # None: not checked yet
    problem: str | None = None


@dataclass(frozen=True)
class RestoreStatus:
    """What an operator, and an approver before signing, sees of a restore."""

    workflow_id: str
    plan: str
    tenant_id: str
    mode: str
    requested_by: str
    phase: str
    steps: StepTable
    started_at: str
    requester_key_id: str | None = None  # set once the request's signature is verified as the requester's
    recovery_point: RecoveryPoint | None = None
    manifest_sha256: str | None = None
    verification_digest: str | None = None
    verification_ok: bool | None = None
    verification_problems: tuple[str, ...] = ()
    packages: tuple[PackageStatus, ...] = ()
    validation: ValidateQuarantineResult | None = None
    approvals_required: int = 0
    approvers: tuple[str, ...] = ()
    approvals: tuple[Approval, ...] = ()
    approval_deadline: str | None = None
    rejection: str | None = None
    restored_database: str | None = None
    restored_cosmos_account: str | None = None
    evidence_blob: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class RestoreResult:
    workflow_id: str
    plan: str
    tenant_id: str
    outcome: str
    recovery_point_id: str
    verification_digest: str
    records: int
    approvals: tuple[str, ...] = ()
    promoted: tuple[str, ...] = ()
    restored_database: str | None = None
    restored_cosmos_account: str | None = None
    evidence_blob: str | None = None
    rto_seconds: float = 0.0
    calls: tuple[str, ...] = field(default_factory=tuple)
    # The database the promotion moved the tenant's projections away from: what undo points them
    # back at (None: the restore swapped no database in, or was promoted by an older version).
    replaced_database: str | None = None


@dataclass(frozen=True)
class BackupInput:
    """Back up one tenant, or every tenant of the plan (``tenant_ids`` empty).

    A run backs up at most ``tenants_per_run`` tenants, ``concurrency`` at a time, then continues as
    new with the tenants still to do in ``tenant_ids`` (and, for plans too large for plan.describe to
    list, the tenant registry's ``cursor``), carrying what was done so far: the counts, and the first
    ``names_kept`` names of each."""

    plan: str
    tenant_ids: tuple[str, ...] = ()
    data_class: str = "hot"
    done: tuple[str, ...] = ()  # recovery points made before a continue-as-new (the first names_kept)
    failed: tuple[str, ...] = ()  # "<tenant>: <reason>", carried over a continue-as-new likewise
    skipped: tuple[str, ...] = ()  # "<tenant>: <why no recovery point was made>", carried likewise
    points_made: int = 0  # how many recovery points earlier runs made (done names the first of them)
    failures: int = 0  # how many tenants failed in earlier runs
    skips: int = 0  # how many tenants earlier runs skipped (no data)
    names_kept: int = BACKUP_NAMES_KEPT
    cursor: str | None = None  # the registry page to read once tenant_ids are done
    tenants_per_run: int = BACKUP_TENANTS_PER_RUN
    concurrency: int = BACKUP_TENANT_CONCURRENCY
    copy_concurrency: int = BACKUP_COPY_CONCURRENCY
    runs: int = 0  # runs before this one (continue-as-new count)
    total: int = 0  # tenants to back up in all runs (0: not known yet)
    bytes_copied: int = 0
    started_at: str | None = None  # when the first run started


@dataclass(frozen=True)
class BackupResult:
    """What a backup did in all its runs: counts, and the first ``names_kept`` names of each kind."""

    plan: str
    recovery_points: tuple[str, ...]
    failed: tuple[str, ...] = ()  # "<tenant>: <reason>"
    skipped: tuple[str, ...] = ()  # "<tenant>: <why no recovery point was made>"
    tenants: int = 0  # tenants considered
    points_made: int = 0  # recovery points made (recovery_points names the first of them)
    failures: int = 0  # tenants failed (failed names the first of them)
    skips: int = 0  # tenants without data (skipped names the first of them)
    bytes_copied: int = 0
    runs: int = 1
    started_at: str = ""
    finished_at: str = ""


@dataclass(frozen=True)
class BackupStatus:
    """What an operator sees of a running backup: this run's step table and the totals of all runs."""

    workflow_id: str
    plan: str
    phase: str
    steps: StepTable
    started_at: str
    run: int  # 1 for the first run, +1 per continue-as-new
    total: int  # tenants to back up in all runs (0: not known yet)
    recovery_points: tuple[str, ...] = ()  # the first names_kept recovery points made
    failed: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    running: tuple[str, ...] = ()  # tenants being backed up now
    points_made: int = 0
    failures: int = 0
    skips: int = 0
    remaining: int = 0  # tenants queued after this run's (registry pages not yet read excluded)
    bytes_copied: int = 0
