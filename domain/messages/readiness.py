"""Readiness checks: what failover's pre-flight and the half-hourly readiness run report."""

from __future__ import annotations

from dataclasses import dataclass

OK = "OK"
WARN = "WARN"
FAIL = "FAIL"

# Stable check keys: workflows decide on them (failover refuses on CHECK_TARGET_REGION even when forced).
CHECK_TARGET_REGION = "target-region"
CHECK_SOURCE_REGION = "source-region"
CHECK_CREDENTIALS = "credentials"
CHECK_FRONTDOOR = "frontdoor"
CHECK_SERVICEBUS = "servicebus"
CHECK_COSMOS = "cosmos"
SQL_CHECK_PREFIX = "sql:"


def sql_check_key(failover_group: str) -> str:
    """The key of the check on one SQL failover group (``sql:<group>``)."""
    return SQL_CHECK_PREFIX + failover_group


@dataclass(frozen=True)
class PreflightInput:
    """Is the plan's estate ready to fail over from ``from_region`` to ``to_region`` now?"""

    plan: str
    from_region: str
    to_region: str


@dataclass(frozen=True)
class ReadinessInput:
    """The scheduled readiness run: the plan's normal direction, primary to DR."""

    plan: str


@dataclass(frozen=True)
class ReadinessCheck:
    key: str
    title: str
    status: str  # OK | WARN | FAIL
    detail: str = ""


@dataclass(frozen=True)
class ReadinessReport:
    plan: str
    checks: tuple[ReadinessCheck, ...]
    source_region_healthy: bool
    target_region_healthy: bool
    checked_at: str
    from_region: str = ""
    to_region: str = ""

    @property
    def failed(self) -> tuple[ReadinessCheck, ...]:
        return tuple(c for c in self.checks if c.status == FAIL)

    @property
    def warnings(self) -> tuple[ReadinessCheck, ...]:
        return tuple(c for c in self.checks if c.status == WARN)

    def check(self, key: str) -> ReadinessCheck | None:
        """The check with ``key``, if the report has one."""
        return next((c for c in self.checks if c.key == key), None)
