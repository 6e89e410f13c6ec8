"""Inputs, results, updates and queries of FailbackWorkflow: the data resync, the traffic shift
back to the primary region in health-gated steps, and the operator's commands on it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from domain.messages.frontdoor import OriginState
from domain.messages.progress import StepTable

# Phases of a failback (the DrPhase search attribute and the status query's ``phase``).
STARTING = "starting"
GATE = "gate"
RESYNC = "resync"
SHIFTING = "shifting"
PAUSED = "paused"
TENANTS = "tenants"
WARMUP = "warmup"
COMPLETED = "completed"
ABORTED = "aborted"
FAILED = "failed"
FINISHED_PHASES = (COMPLETED, ABORTED, FAILED)

# Operator commands: the names of the workflow's updates.
PAUSE = "pause"
RESUME = "resume"
ABORT = "abort"
PROMOTE = "promote"
COMMANDS = (PAUSE, RESUME, ABORT, PROMOTE)

# What happened to one traffic step.
STEP_PENDING = "pending"
STEP_SOAKING = "soaking"
STEP_PASSED = "passed"
STEP_ROLLED_BACK = "rolled-back"
STEP_PROMOTED = "promoted"
STEP_SKIPPED = "skipped"
STEP_PLANNED = "planned"

# Front Door's weight of an origin that has none set.
DEFAULT_WEIGHT = 50

# Azure SQL's replicationState once the secondary has caught up with the primary.
SQL_CAUGHT_UP = "CATCH_UP"


@dataclass(frozen=True)
class FailbackInput:
    plan: str
    plan_digest: str = ""  # sha256 of the plan file the starter validated; the worker must hold the same
    reason: str = ""
    requested_by: str = ""
    steps: list[int] | None = None  # the primary's share (%) at each step; default: the plan's
    soak_seconds: int | None = None  # how long each step must stay healthy; default: the plan's
    interval_seconds: int | None = None  # SLO sampling interval; default: the plan's
    dry_run: bool = False


@dataclass(frozen=True)
class FailbackCommand:
    """An operator's pause, resume, abort or promote (one Temporal update each)."""

    reason: str = ""
    by: str = ""


@dataclass(frozen=True)
class CommandAccepted:
    command: str
    message: str
    phase: str  # the failback's phase when the command was accepted


@dataclass
class StepReading:
    """The SLO readings of one traffic step: the primary origin's last sample and the tallies."""

    percent: int  # the primary region's share of traffic at this step
    status: str = STEP_PENDING
    attempts: int = 0  # times the step was started (a resume after a breach starts it again)
    samples: int = 0
    ok_samples: int = 0
    breaches: int = 0  # samples that breached the SLO or had no data
    soaked_seconds: float = 0.0  # healthy seconds of the current attempt
    last_verdict: str = ""  # ok | breach | no_data
    reasons: list[str] = field(default_factory=list)
    request_count: float | None = None
    error_rate: float | None = None
    latency_ms: float | None = None
    sampled_at: str | None = None


@dataclass
class FailbackStatus:
    workflow_id: str
    plan: str
    primary_region: str
    dr_region: str
    phase: str
    dry_run: bool
    steps: StepTable
    started_at: str
    schedule: list[int] = field(default_factory=list)
    soak_seconds: int = 0
    interval_seconds: int = 0
    current_step: int | None = None  # the step (primary %) being shifted to or soaked
    primary_percent: int = 0  # the primary's share Front Door is set to now; the DR region has the rest
    last_good_percent: int = 0  # the highest step that soaked healthy (rollbacks return here)
    readings: list[StepReading] = field(default_factory=list)
    paused: str | None = None  # why the shift is paused (a breach, or the operator's reason)
    pending_command: str | None = None  # accepted, not yet acted on
    breaches: int = 0
    promoted_at: int | None = None  # the primary % at which an operator promoted to 100 %
    error: str | None = None


@dataclass
class FailbackResult:
    workflow_id: str
    plan: str
    primary_region: str
    dr_region: str
    outcome: str  # succeeded | aborted | failed | dry-run
    dry_run: bool
    steps: StepTable
    started_at: str
    finished_at: str
    schedule: list[int] = field(default_factory=list)
    primary_percent: int = 0
    readings: list[StepReading] = field(default_factory=list)
    breaches: int = 0
    promoted_at: int | None = None
    done: list[str] = field(default_factory=list)
    not_done: list[str] = field(default_factory=list)
    planned_calls: list[str] = field(default_factory=list)
    reason: str = ""


def primary_percent(origins: Sequence[OriginState], primary_region: str) -> int:
    """The share of traffic (%) Front Door sends to the primary region's origin: among enabled
    origins, those of the lowest priority value split the traffic by weight."""
    enabled = [o for o in origins if o.enabled]
    if not enabled:
        return 0
    best = min(o.priority or 1 for o in enabled)
    chosen = [o for o in enabled if (o.priority or 1) == best]
    total = sum(o.weight or DEFAULT_WEIGHT for o in chosen)
    share = sum(o.weight or DEFAULT_WEIGHT for o in chosen if o.region == primary_region)
    return round(100 * share / total)
