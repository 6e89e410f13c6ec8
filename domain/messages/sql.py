"""Inputs and results of the Azure SQL activities: failover groups and point-in-time restores
(standard library only)."""

from __future__ import annotations

from dataclasses import dataclass

ROLE_PRIMARY = "Primary"
ROLE_SECONDARY = "Secondary"

MODE_PLANNED = "planned"  # no data loss; needs the current primary reachable
MODE_FORCED = "forced"  # forceFailoverAllowDataLoss: works while the primary is down, may lose data
MODE_TRY_PLANNED = "try_planned"  # tryPlannedBeforeForcedFailover: Azure falls back to forced
MODE_NONE = "none"  # the target was already primary: nothing was called
FAILOVER_MODES = (MODE_PLANNED, MODE_FORCED, MODE_TRY_PLANNED)


@dataclass(frozen=True)
class GetFailoverGroupInput:
    plan: str
    failover_group: str


@dataclass(frozen=True)
class ServerRole:
    region: str
    server: str
    role: str  # Primary | Secondary


@dataclass(frozen=True)
class FailoverGroupView:
    """A failover group as Azure reports it. Replication lag is not exposed by ARM, so it is not here."""

    plan: str
    failover_group: str
    primary_region: str
    primary_server: str
    servers: tuple[ServerRole, ...]
    replication_state: str
    read_write_failover_policy: str
    grace_period_minutes: int | None
    databases: tuple[str, ...]


@dataclass(frozen=True)
class FailoverSqlGroupInput:
    """Desired state: the group's primary is the server in ``target_region``."""

    plan: str
    failover_group: str
    target_region: str
    mode: str = MODE_PLANNED  # one of FAILOVER_MODES
    dry_run: bool = False  # do every read, issue no mutating call, report planned_calls


@dataclass(frozen=True)
class FailoverSqlGroupResult:
    plan: str
    failover_group: str
    primary_region: str
    primary_server: str
    changed: bool
    mode: str  # the mode used, or MODE_NONE when the target already was primary
    data_loss_possible: bool
    servers: tuple[ServerRole, ...]
    completed_at: str  # ISO 8601 UTC
    planned_calls: tuple[str, ...] = ()  # the mutating calls issued (or, in a dry run, that would be)


@dataclass(frozen=True)
class RestoreDatabasePitrInput:
    """Create ``target_database`` from ``source_database`` as it was at ``point_in_time``.

    The restore runs on the server that holds the group's primary copy (Azure restores to the
    source's own server) unless ``region`` names one.
    """

    plan: str
    failover_group: str
    source_database: str
    target_database: str
    point_in_time: str  # ISO 8601; naive means UTC
    region: str | None = None


@dataclass(frozen=True)
class RestoreDatabasePitrResult:
    plan: str
    region: str
    server: str
    database: str
    database_id: str
    source_database_id: str
    point_in_time: str  # ISO 8601 UTC, as requested
    status: str
    created: bool  # false when an earlier attempt had already restored it


@dataclass(frozen=True)
class DeleteDatabaseInput:
    """Desired state: ``database`` no longer exists on ``server`` or, when only ``failover_group``
    is given, on any of that group's servers (one of the two is required).

    Refused, before any change, for the plan's replicated databases, for any database Azure reports
    in a failover group or as a geo-secondary, and for a database a tenant's projections point at.
    """

    plan: str
    database: str
    server: str | None = None
    failover_group: str | None = None


@dataclass(frozen=True)
class DeleteDatabaseResult:
    plan: str
    database: str
    servers: tuple[str, ...]  # the servers looked at
    deleted: tuple[str, ...]  # resource ids of the copies this activity deleted; empty: already gone
    changed: bool
