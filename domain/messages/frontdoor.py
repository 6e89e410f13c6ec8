"""Inputs and results of the Front Door activities (origins of the plan's origin group)."""

from __future__ import annotations

from dataclasses import dataclass

PRIORITY_MIN, PRIORITY_MAX = 1, 5
WEIGHT_MIN, WEIGHT_MAX = 1, 1000


@dataclass(frozen=True)
class OriginState:
    """One origin as Front Door reports it."""

    name: str
    region: str | None  # the plan region it serves; None if the plan does not know the origin
    enabled: bool
    priority: int | None
    weight: int | None
    host_name: str | None = None
    provisioning_state: str | None = None


@dataclass(frozen=True)
class GetOriginsInput:
    plan: str


@dataclass(frozen=True)
class OriginsResult:
    plan: str
    profile: str
    origin_group: str
    origins: tuple[OriginState, ...]

    def for_region(self, region: str) -> OriginState | None:
        return next((o for o in self.origins if o.region == region), None)


@dataclass(frozen=True)
class DesiredOrigin:
    """The state one region's origin should reach; None leaves that property as it is."""

    region: str
    enabled: bool | None = None
    priority: int | None = None
    weight: int | None = None


@dataclass(frozen=True)
class SetOriginsInput:
    plan: str
    origins: tuple[DesiredOrigin, ...]
    reason: str = ""
    dry_run: bool = False  # do every read, issue no mutating call, report planned_calls


@dataclass(frozen=True)
class SetOriginsResult:
    plan: str
    changed: tuple[str, ...]  # origin names that were updated
    unchanged: tuple[str, ...]  # origin names already in the desired state
    origins: tuple[OriginState, ...]  # the final state of every origin named in the input
    planned_calls: tuple[str, ...] = ()  # the mutating calls issued (or, in a dry run, that would be)

    def for_region(self, region: str) -> OriginState | None:
        return next((o for o in self.origins if o.region == region), None)


def active_passive(active_region: str, passive_region: str) -> tuple[DesiredOrigin, ...]:
    """All traffic to ``active_region``; ``passive_region`` stays enabled as Front Door's fallback
    (priority 2) for when the active origin fails its health probes."""
    return (
        DesiredOrigin(active_region, enabled=True, priority=1, weight=WEIGHT_MAX),
        DesiredOrigin(passive_region, enabled=True, priority=2, weight=WEIGHT_MAX),
    )


def weighted_split(primary_region: str, dr_region: str, primary_percent: int) -> tuple[DesiredOrigin, ...]:
    """Both origins at priority 1 with weights giving ``primary_percent`` % to the primary; 0 and 100
    are active/passive, since Front Door weights cannot be 0."""
    if not 0 <= primary_percent <= 100:
        raise ValueError(f"primary_percent must be between 0 and 100, got {primary_percent}")
    if primary_percent == 100:
        return active_passive(primary_region, dr_region)
    if primary_percent == 0:
        return active_passive(dr_region, primary_region)
    return (
        DesiredOrigin(primary_region, enabled=True, priority=1, weight=primary_percent * 10),
        DesiredOrigin(dr_region, enabled=True, priority=1, weight=(100 - primary_percent) * 10),
    )
