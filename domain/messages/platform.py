"""Inputs and results of the platform ops API activities (standard library only)."""

from __future__ import annotations

from dataclasses import dataclass

MODE_READ_WRITE = "read-write"
MODE_READ_ONLY = "read-only"
TENANT_MODES = (MODE_READ_WRITE, MODE_READ_ONLY)
# The shared database holding every tenant's projections until a restore points a tenant elsewhere.
DEFAULT_PROJECTION_DATABASE = "projections"


@dataclass(frozen=True)
class SetTenantModeInput:
    """Desired state: every tenant homed in ``home_region`` has ``mode``.

    ``gateway_region`` is the ops gateway to call; by default the plan's other region, since the
    home region is usually the one that failed.
    """

    plan: str
    home_region: str
    mode: str
    reason: str
    gateway_region: str | None = None
    dry_run: bool = False  # do every read, issue no mutating call, report planned_calls


@dataclass(frozen=True)
class SetTenantModeResult:
    plan: str
    home_region: str
    mode: str
    matched: int
    changed: int
    planned_calls: tuple[str, ...] = ()  # the mutating calls issued (or, in a dry run, that would be)


@dataclass(frozen=True)
class RepinTenantsInput:
    """Desired state: these tenants are served from ``target_region`` where residency allows.
    ``gateway_region`` defaults to the target region."""

    plan: str
    tenant_ids: tuple[str, ...]
    target_region: str
    reason: str
    gateway_region: str | None = None


@dataclass(frozen=True)
class RepinTenantsResult:
    plan: str
    target_region: str
    moved: tuple[str, ...]
    skipped: tuple[str, ...]  # already served from the target region
    refused: tuple[str, ...]  # their residency policy does not allow the target region


@dataclass(frozen=True)
class TenantRecord:
    id: str
    home_region: str
    serving_region: str
    mode: str
    residency: str
    allowed_regions: tuple[str, ...] = ()
    projection_database: str = DEFAULT_PROJECTION_DATABASE


@dataclass(frozen=True)
class ListTenantsInput:
    """One page of the registry, filtered; ``gateway_region`` defaults to the plan's DR region."""

    plan: str
    home_region: str | None = None
    serving_region: str | None = None
    mode: str | None = None
    cursor: str | None = None
    limit: int = 100
    gateway_region: str | None = None


@dataclass(frozen=True)
class ListTenantsResult:
    plan: str
    tenants: tuple[TenantRecord, ...]
    next_cursor: str | None
    total: int


@dataclass(frozen=True)
class WarmCacheInput:
    """Desired state: the cache of ``region`` is warm (``force`` warms it even if it is)."""

    plan: str
    region: str
    scope: str = "all"
    force: bool = False
    timeout_seconds: float = 900.0
    gateway_region: str | None = None
    dry_run: bool = False  # do every read, issue no mutating call, report planned_calls


@dataclass(frozen=True)
class WarmCacheResult:
    plan: str
    region: str
    state: str
    changed: bool
    operation_id: str | None
    duration_seconds: float
    planned_calls: tuple[str, ...] = ()  # the mutating calls issued (or, in a dry run, that would be)


@dataclass(frozen=True)
class RepinBatchInput:
    """One page of the tenants homed in ``from_region``, re-pinned to ``to_region`` where their
    residency allows; the ops gateway of ``to_region`` is called."""

    plan: str
    from_region: str
    to_region: str
    reason: str
    cursor: str | None = None
    limit: int = 500
    dry_run: bool = False  # do every read, issue no mutating call, report planned_calls


@dataclass(frozen=True)
class RepinBatchResult:
    plan: str
    considered: int
    moved: int
    already_there: int
    not_allowed: int  # their residency policy keeps them in their home region
    next_cursor: str | None
    planned_calls: tuple[str, ...] = ()  # the mutating calls issued (or, in a dry run, that would be)


STORE_COSMOS = "cosmos"
STORE_SQL_PREFIX = "sql:"


def sql_store(failover_group: str) -> str:
    """The heartbeat store name of a SQL failover group (``sql:<group>``)."""
    return STORE_SQL_PREFIX + failover_group


@dataclass(frozen=True)
class DataLossWindowInput:
    """How much ``store`` lost in the failover that completed at ``at``: read from the newest
    application heartbeat visible in the new primary, through the ops gateway of the plan's region
    other than ``failed_region``. ``store`` is ``sql:<failover group>`` or ``cosmos``."""

    plan: str
    store: str
    failed_region: str
    at: str  # ISO 8601 UTC: when the failover completed


@dataclass(frozen=True)
class DataLossWindowResult:
    plan: str
    store: str
    last_heartbeat_at: str  # ISO 8601 UTC: the newest heartbeat that survived
    at: str  # ISO 8601 UTC, as given
    seconds: float  # max(0, at - last_heartbeat_at): the effective RPO


@dataclass(frozen=True)
class SetTenantDatabaseInput:
    """Desired state: the registry maps ``tenant_id`` to ``database`` for its projections.

    ``expected_current`` guards against a concurrent change: when given, the registry is changed
    only if it still maps the tenant to that database (the activity refuses otherwise). The call
    goes to ``gateway_region``'s ops gateway, else to the first of the plan's regions that answers.
    """

    plan: str
    tenant_id: str
    database: str
    reason: str
    expected_current: str | None = None
    gateway_region: str | None = None


@dataclass(frozen=True)
class SetTenantDatabaseResult:
    plan: str
    tenant_id: str
    previous: str  # the mapping read before acting (equal to current when nothing changed)
    current: str
    changed: bool
    planned_calls: tuple[str, ...] = ()  # the mutating call issued, if any
