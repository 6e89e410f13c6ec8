"""Readiness checks: what failover's pre-flight and the half-hourly readiness run report."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

OK = "OK"
WARN = "WARN"
FAIL = "FAIL"
STATUSES = (OK, WARN, FAIL)
# The value of the readiness_check_status gauge for each status (worse is higher).
STATUS_VALUES = {OK: 0, WARN: 1, FAIL: 2}

# Stable check keys: workflows decide on them (failover refuses on CHECK_TARGET_REGION even when forced).
CHECK_TARGET_REGION = "target-region"
CHECK_SOURCE_REGION = "source-region"
CHECK_CREDENTIALS = "credentials"
CHECK_FRONTDOOR = "frontdoor"
CHECK_SERVICEBUS = "servicebus"
CHECK_COSMOS = "cosmos"
CHECK_RECOVERY_POINTS = "recovery-points"
SQL_CHECK_PREFIX = "sql:"


def sql_check_key(failover_group: str) -> str:
    """The key of the check on one SQL failover group (``sql:<group>``)."""
    return SQL_CHECK_PREFIX + failover_group


def worst_status(statuses: Iterable[str]) -> str:
    """The worst of ``statuses`` (FAIL > WARN > OK); OK when there are none."""
    return max(statuses, key=lambda s: STATUS_VALUES.get(s, STATUS_VALUES[FAIL]), default=OK)


@dataclass(frozen=True)
class PreflightInput:
    """Is the plan's estate ready to fail over from ``from_region`` to ``to_region`` now?"""

    plan: str
    from_region: str
    to_region: str


@dataclass(frozen=True)
class ReadinessInput:
    """The scheduled readiness run: the plan's normal direction, primary to DR, plus the age of
    every tenant's newest recovery point."""

    plan: str


@dataclass(frozen=True)
class ReadinessCheck:
    """One row of the readiness table."""

    key: str
    title: str
    status: str  # OK | WARN | FAIL
    detail: str = ""
    fix: str = ""  # what an operator does about a WARN or FAIL; empty when OK


@dataclass(frozen=True)
class ReadinessReport:
    plan: str
    checks: tuple[ReadinessCheck, ...]
    source_region_healthy: bool
    target_region_healthy: bool
    checked_at: str
    from_region: str = ""
    to_region: str = ""
    # The oldest of the tenants' newest recovery points, in seconds (readiness.check only; None when
    # recovery points were not checked or no tenant has one).
    rpo_effective_seconds: float | None = None

    @property
    def failed(self) -> tuple[ReadinessCheck, ...]:
        return tuple(c for c in self.checks if c.status == FAIL)

    @property
    def warnings(self) -> tuple[ReadinessCheck, ...]:
        return tuple(c for c in self.checks if c.status == WARN)

    @property
    def status(self) -> str:
        """The overall status: the worst of the checks."""
        return worst_status(c.status for c in self.checks)

    def check(self, key: str) -> ReadinessCheck | None:
        """The check with ``key``, if the report has one."""
        return next((c for c in self.checks if c.key == key), None)


# ---- ReadinessWorkflow ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadinessWorkflowInput:
    """One readiness run of a plan (from its schedule, or from ``drctl plan check``)."""

    plan: str
    plan_digest: str = ""  # when given, the worker must hold this version of the plan
    requested_by: str = "schedule"


@dataclass(frozen=True)
class ReadinessResult:
    """What a readiness run found: the table (one row per check: check, status, detail, fix) and
    the overall status, which the run also keeps in the DrReadiness search attribute."""

    plan: str
    status: str  # worst of the rows
    rows: tuple[ReadinessCheck, ...]
    checked_at: str
    from_region: str
    to_region: str
    environment: str = ""
    edition: str = ""
    rpo_effective_seconds: float | None = None  # oldest newest-recovery-point of any tenant

    @classmethod
    def from_report(cls, report: ReadinessReport, *, environment: str = "", edition: str = "") -> ReadinessResult:
        return cls(
            plan=report.plan,
            status=report.status,
            rows=report.checks,
            checked_at=report.checked_at,
            from_region=report.from_region,
            to_region=report.to_region,
            environment=environment,
            edition=edition,
            rpo_effective_seconds=report.rpo_effective_seconds,
        )

    def row(self, key: str) -> ReadinessCheck | None:
        """The row with ``key``, if the table has one."""
        return next((c for c in self.rows if c.key == key), None)


@dataclass(frozen=True)
class ReadinessStatus:
    """The ``status`` query of a readiness run: its phase and, once done, its result."""

    plan: str
    phase: str  # starting | checking | completed | failed
    result: ReadinessResult | None = None
    error: str | None = None
