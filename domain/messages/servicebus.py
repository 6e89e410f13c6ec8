"""Inputs and results of the Service Bus Geo-DR alias activities (standard library only)."""

from __future__ import annotations

from dataclasses import dataclass

ROLE_PRIMARY = "Primary"
ROLE_SECONDARY = "Secondary"
ROLE_PRIMARY_NOT_REPLICATING = "PrimaryNotReplicating"
PRIMARY_ROLES = (ROLE_PRIMARY, ROLE_PRIMARY_NOT_REPLICATING)


@dataclass(frozen=True)
class GetAliasInput:
    plan: str


@dataclass(frozen=True)
class NamespaceAliasView:
    """One namespace's view of the plan's alias; ``exists`` is false when it does not hold it."""

    region: str
    namespace: str
    namespace_id: str
    exists: bool
    role: str | None = None
    provisioning_state: str | None = None
    pending_replication_operations_count: int | None = None
    partner_namespace: str | None = None


@dataclass(frozen=True)
class AliasView:
    """Both namespaces' views; ``primary_region`` is where the alias points (role Primary or
    PrimaryNotReplicating), ``paired`` whether a Primary/Secondary pairing exists."""

    plan: str
    alias: str
    namespaces: tuple[NamespaceAliasView, ...]
    primary_region: str | None
    paired: bool


@dataclass(frozen=True)
class FailoverAliasInput:
    """Desired state: the alias's primary is the namespace in ``target_region``."""

    plan: str
    target_region: str
    safe: bool = False  # IsSafeFailover: wait for pending replication (needs the primary reachable)
    timeout_seconds: float = 900.0
    dry_run: bool = False  # do every read, issue no mutating call, report planned_calls


@dataclass(frozen=True)
class FailoverAliasResult:
    plan: str
    alias: str
    primary_region: str
    primary_namespace: str
    role: str
    changed: bool
    duration_seconds: float
    planned_calls: tuple[str, ...] = ()  # the mutating calls issued (or, in a dry run, that would be)


@dataclass(frozen=True)
class PairAliasInput:
    """Desired state: the alias is paired with the namespace in ``primary_region`` as primary and
    the plan's other namespace as secondary."""

    plan: str
    primary_region: str
    timeout_seconds: float = 900.0
    dry_run: bool = False  # do every read, issue no mutating call, report planned_calls


@dataclass(frozen=True)
class PairAliasResult:
    plan: str
    alias: str
    primary_namespace: str
    secondary_namespace: str
    changed: bool
    pending_replication_operations_count: int
    duration_seconds: float
    planned_calls: tuple[str, ...] = ()  # the mutating calls issued (or, in a dry run, that would be)


@dataclass(frozen=True)
class WaitReplicationInput:
    plan: str
    timeout_seconds: float = 1800.0


@dataclass(frozen=True)
class WaitReplicationResult:
    plan: str
    alias: str
    primary_namespace: str
    initial_pending_count: int
    pending_replication_operations_count: int
    duration_seconds: float
