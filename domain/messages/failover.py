"""Inputs, results, signals, updates and queries of FailoverWorkflow and its re-pinning child."""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.messages.progress import StepTable


@dataclass(frozen=True)
class FailoverInput:
    plan: str
    from_region: str
    to_region: str
    reason: str
    requested_by: str = ""
    plan_digest: str = ""  # sha256 of the plan file the starter validated; the worker must hold the same
    dry_run: bool = False
    force: bool = False  # skip pre-flight refusals (never the target-region health check)
    outage_started_at: str | None = None  # ISO 8601; defaults to the workflow's start
    extended_outage_minutes: int | None = None  # overrides the plan's threshold for re-pinning
    slo_timeout_seconds: int | None = None  # overrides the plan's SLO validation timeout
    drill: bool = False


@dataclass(frozen=True)
class PrimaryRecovered:
    """Signal: the failed region is back; the extended-outage re-pinning is no longer needed."""

    by: str = ""
    note: str = ""


@dataclass(frozen=True)
class AbortRequest:
    reason: str
    by: str = ""


@dataclass(frozen=True)
class AbortAccepted:
    accepted: bool
    message: str


@dataclass
class RepinSummary:
    considered: int = 0
    moved: int = 0
    already_there: int = 0
    not_allowed: int = 0  # residency policy forbids the DR region
    batches: int = 0


@dataclass
class FailoverStatus:
    workflow_id: str
    plan: str
    from_region: str
    to_region: str
    phase: str
    dry_run: bool
    steps: StepTable
    started_at: str
    rto_seconds: float | None = None
    rpo_seconds: float | None = None
    slo_green: bool | None = None
    abort_requested: str | None = None
    repin: RepinSummary | None = None
    extended_outage: str = "watching"  # watching | recovered | repinned | not-applicable
    last_slo: str = ""
    error: str | None = None


@dataclass
class FailoverResult:
    workflow_id: str
    plan: str
    from_region: str
    to_region: str
    outcome: str  # succeeded | slo-not-met | aborted | failed | dry-run
    dry_run: bool
    steps: StepTable
    started_at: str
    finished_at: str
    rto_seconds: float | None
    rpo_seconds: float | None
    slo_green: bool
    done: list[str] = field(default_factory=list)
    not_done: list[str] = field(default_factory=list)
    planned_calls: list[str] = field(default_factory=list)
    repin: RepinSummary | None = None
    reason: str = ""


@dataclass(frozen=True)
class RepinInput:
    plan: str
    from_region: str
    to_region: str
    batch_size: int
    reason: str
    cursor: str | None = None
    carried: RepinSummary | None = None  # totals carried across continue-as-new
    batches_per_run: int = 200
