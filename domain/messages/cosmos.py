"""Inputs and results of the Azure Cosmos DB activities: write region and point-in-time restore
(standard library only)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GetCosmosAccountInput:
    plan: str


@dataclass(frozen=True)
class CosmosRegion:
    region: str  # short name, e.g. "eastus"
    priority: int
    is_write: bool


@dataclass(frozen=True)
class CosmosAccountView:
    plan: str
    account: str
    write_region: str
    regions: tuple[CosmosRegion, ...]  # in failover priority order
    provisioning_state: str


@dataclass(frozen=True)
class SetCosmosWriteRegionInput:
    """Desired state: ``region`` has failover priority 0 (the write region)."""

    plan: str
    region: str
    dry_run: bool = False  # do every read, issue no mutating call, report planned_calls


@dataclass(frozen=True)
class SetCosmosWriteRegionResult:
    plan: str
    account: str
    write_region: str
    changed: bool
    regions: tuple[CosmosRegion, ...]
    completed_at: str  # ISO 8601 UTC
    planned_calls: tuple[str, ...] = ()  # the mutating calls issued (or, in a dry run, that would be)


@dataclass(frozen=True)
class RestoreCosmosAccountInput:
    """Restore ``source_account`` (default: the plan's account) as it was at ``point_in_time`` into
    the new account ``target_account``, in ``location`` (default: the source's home region)."""

    plan: str
    target_account: str
    point_in_time: str  # ISO 8601; naive means UTC
    source_account: str | None = None
    location: str | None = None


@dataclass(frozen=True)
class RestoreCosmosAccountResult:
    plan: str
    account: str
    account_id: str
    location: str
    restore_source: str  # the restorable database account id
    point_in_time: str  # ISO 8601 UTC, as requested
    provisioning_state: str
    created: bool  # false when an earlier attempt had already restored it


@dataclass(frozen=True)
class DeleteCosmosAccountInput:
    """Desired state: the account ``account`` (in the plan's Cosmos resource group) no longer
    exists. Refused for the plan's own account."""

    plan: str
    account: str


@dataclass(frozen=True)
class DeleteCosmosAccountResult:
    plan: str
    account: str
    account_id: str
    deleted: bool  # false when it was already gone
