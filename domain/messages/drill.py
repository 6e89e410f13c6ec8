"""Inputs, results and the report of DrillWorkflow: a DR drill of a plan's drill estate (failover,
SLO check, sandbox restore of sampled tenants, integrity verification, failback), measured against
the plan's RTO and RPO targets. Standard library only; the report renders itself as Markdown."""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.messages.progress import StepTable
from domain.plan import Blackout

STATUS_PASSED = "passed"
STATUS_FAILED = "failed"
STATUS_SKIPPED = "skipped"
STATUSES = (STATUS_PASSED, STATUS_FAILED, STATUS_SKIPPED)

# Drill reports live in the production plan's backup container, beside the evidence packs.
REPORT_PREFIX = "drills/"
REPORT_FORMAT = "dr-drill-report/v1"
REPORT_CONTEXT = b"dr-orchestrator/drill-report/v1\n"
# rto_drill_pass_rate is the share of this many newest stored drills (skipped ones aside) that passed.
PASS_RATE_WINDOW = 10


def drill_schedule_id(plan: str) -> str:
    """The id of the plan's recurring drill schedule."""
    return f"drill-{plan}"


def drill_workflow_id(plan: str, suffix: str) -> str:
    """``drill-<plan>-<suffix>``: a drill started by hand (scheduled ones are ``drill-<plan>-scheduled-<time>``)."""
    return f"drill-{plan}-{suffix}"


def report_blobs(workflow_id: str) -> tuple[str, str]:
    """The JSON and Markdown blobs of one drill's report in the plan's backup container."""
    return f"{REPORT_PREFIX}{workflow_id}.json", f"{REPORT_PREFIX}{workflow_id}.md"


@dataclass(frozen=True)
class DrillInput:
    """Run one drill of ``plan`` (the production plan, which names its drill estate in [drill]).

    The failback overrides default to the drill estate's own [failback] schedule."""

    plan: str
    scheduled: bool = False
    requested_by: str = ""
    plan_digest: str = ""  # empty: accept the version the worker holds (schedules outlive plan edits)
    reason: str = ""
    sample_tenants: int | None = None  # default: the plan's [drill] sample_tenants
    slo_timeout_seconds: int | None = None  # default: the drill estate's SLO validation timeout
    failback_steps: list[int] | None = None
    failback_soak_seconds: int | None = None
    failback_interval_seconds: int | None = None


@dataclass(frozen=True)
class DescribeDrillInput:
    plan: str
    expected_digest: str = ""


@dataclass(frozen=True)
class DrillFacts:
    """What a drill needs to know of the production plan and of its drill estate."""

    plan: str
    environment: str
    edition: str
    rto_target_seconds: int
    rpo_target_seconds: int
    estate: str  # "": the plan has no [drill] table
    calendar: str = ""
    blackouts: tuple[Blackout, ...] = ()
    sample_tenants: int = 1
    estate_served: bool = False  # whether this worker holds the drill estate's plan
    estate_environment: str = ""
    estate_primary_region: str = ""
    estate_dr_region: str = ""
    estate_tenants: tuple[str, ...] = ()


@dataclass(frozen=True)
class VerifyEvidenceInput:
    """Check one stored evidence pack (chain and signature) in ``plan``'s backup container."""

    plan: str
    blob: str


@dataclass(frozen=True)
class VerifyEvidenceResult:
    plan: str
    blob: str
    ok: bool
    workflow_id: str
    kind: str
    entries: int
    key_id: str
    problems: tuple[str, ...] = ()


@dataclass
class DrillPhase:
    """One phase of a drill as the report shows it: when it ran, how long, how it ended, and the
    child workflow that carried it out (if any)."""

    key: str
    title: str
    status: str  # done | failed | skipped | pending
    started_at: str | None = None
    finished_at: str | None = None
    duration_seconds: float | None = None
    detail: str = ""
    workflow_id: str | None = None


@dataclass
class DrillReport:
    """The outcome of one drill: phases, RTO and RPO actuals against the plan's targets, pass or
    fail with the reasons, and findings (observations that do not fail the drill)."""

    workflow_id: str
    plan: str
    estate: str
    status: str  # passed | failed | skipped
    scheduled: bool
    requested_by: str
    started_at: str
    finished_at: str
    duration_seconds: float
    environment: str  # of the plan: the targets are its environment's and edition's
    edition: str
    rto_target_seconds: int
    rpo_target_seconds: int
    rto_actual_seconds: float | None = None  # the failover's measured RTO (start to SLO green)
    rpo_actual_seconds: float | None = None  # the failover's measured data-loss window
    slo_green: bool | None = None
    tenants: list[str] = field(default_factory=list)
    recovery_points: list[str] = field(default_factory=list)
    backup_age_seconds: float | None = None  # newest recovery point of the sampled tenant(s) at the start
    phases: list[DrillPhase] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)  # why it failed or was skipped
    findings: list[str] = field(default_factory=list)
    report_blob: str | None = None
    markdown_blob: str | None = None
    pass_rate: float | None = None  # of the newest stored drills, after this one was stored

    @property
    def passed(self) -> bool:
        return self.status == STATUS_PASSED


@dataclass
class DrillStatus:
    """The ``status`` query: the running drill's phase and step table, and its report once done."""

    workflow_id: str
    plan: str
    estate: str
    phase: str
    steps: StepTable
    started_at: str
    tenants: list[str] = field(default_factory=list)
    report: DrillReport | None = None


@dataclass(frozen=True)
class StoreDrillReportInput:
    """Sign and store a drill's report (JSON and Markdown) in ``plan``'s backup container."""

    plan: str
    report: DrillReport


@dataclass(frozen=True)
class StoreDrillReportResult:
    plan: str
    container: str
    json_blob: str
    markdown_blob: str
    uri: str
    key_id: str
    pass_rate: float | None  # None: no stored drill has passed or failed yet
    counted: int  # drills the pass rate counts


def seconds_text(value: float | None) -> str:
    """Seconds as the report writes them: ``2400 s``, ``12.3 s``, ``n/a``."""
    if value is None:
        return "n/a"
    return f"{value:.0f} s" if value >= 100 or value == int(value) else f"{value:.1f} s"


def target_reasons(rto_actual: float | None, rpo_actual: float | None, rto_target: int, rpo_target: int) -> list[str]:
    """Why the measured RTO and RPO fail the targets (empty: both met)."""
    reasons = []
    if rto_actual is None:
        reasons.append(f"RTO not measured: the failover never reported its SLO green (target {rto_target} s)")
    elif rto_actual > rto_target:
        reasons.append(f"RTO {seconds_text(rto_actual)} exceeds the target {rto_target} s")
    if rpo_actual is None:
        reasons.append(f"RPO not measured: the failover did not complete its data tier (target {rpo_target} s)")
    elif rpo_actual > rpo_target:
        reasons.append(f"RPO {seconds_text(rpo_actual)} exceeds the target {rpo_target} s")
    return reasons


def report_markdown(report: DrillReport) -> str:
    """The report for people: verdict, actuals against targets, phases, reasons and findings."""
    verdict = {STATUS_PASSED: "PASSED", STATUS_FAILED: "FAILED", STATUS_SKIPPED: "SKIPPED"}.get(
        report.status, report.status.upper()
    )
    lines = [
        f"# DR drill {report.workflow_id}: {verdict}",
        "",
        f"- **Plan:** {report.plan} ({report.environment}, {report.edition}); "
        f"**drill estate:** {report.estate or 'none'}",
        f"- **Started:** {report.started_at} · **finished:** {report.finished_at} · "
        f"**took:** {seconds_text(report.duration_seconds)}",
        f"- **Requested by:** {report.requested_by or 'unknown'}" + (" (schedule)" if report.scheduled else ""),
    ]
    if report.tenants:
        lines.append(f"- **Sampled tenant(s):** {', '.join(report.tenants)}")
    if report.recovery_points:
        lines.append(f"- **Recovery point(s):** {', '.join(report.recovery_points)}")
    lines += [
        "",
        "| measure | actual | target | met |",
        "|---|---|---|---|",
        _measure_row("RTO", report.rto_actual_seconds, report.rto_target_seconds),
        _measure_row("RPO", report.rpo_actual_seconds, report.rpo_target_seconds),
    ]
    if report.phases:
        lines += ["", "| phase | status | started | took | detail |", "|---|---|---|---|---|"]
        for phase in report.phases:
            detail = phase.detail.replace("|", "/").replace("\n", " ")
            lines.append(
                f"| {phase.title} | {phase.status} | {phase.started_at or ''} | "
                f"{seconds_text(phase.duration_seconds) if phase.duration_seconds is not None else ''} | {detail} |"
            )
    for title, items in (("Reasons", report.reasons), ("Findings", report.findings)):
        if items:
            lines += ["", f"## {title}", "", *(f"- {item}" for item in items)]
    return "\n".join(lines) + "\n"


def _measure_row(name: str, actual: float | None, target: int) -> str:
    met = "n/a" if actual is None else ("yes" if actual <= target else "**no**")
    return f"| {name} | {seconds_text(actual)} | {target} s | {met} |"
