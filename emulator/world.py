"""The simulated world every provider shares: regions and their health, the plans it was built
from, the journal, faults, latencies and async operations."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from domain.plan import DrPlan
from emulator.core import ArmError, Faults, Journal, JsonDict, Latencies, Operations, Router

HEALTH_STATES = ("healthy", "degraded", "down")


@dataclass
class RegionState:
    name: str
    health: str = "healthy"
    # While degraded: the share of requests answered 5xx and the latency added to each.
    error_rate: float = 0.0
    added_latency_ms: float = 0.0
    changed_at: float = 0.0  # monotonic time of the last health change

    @property
    def is_down(self) -> bool:
        return self.health == "down"

    @property
    def outage_seconds(self) -> float:
        return time.monotonic() - self.changed_at if self.is_down else 0.0


class Provider(Protocol):
    """One emulated Azure service: its ARM routes, its control routes and its state."""

    name: str

    def register(self, router: Router, control: Router) -> None: ...

    def snapshot(self) -> JsonDict: ...


class World:
    def __init__(self, plans: list[DrPlan]) -> None:
        if not plans:
            raise ValueError("the emulator needs at least one plan")
        self.plans = plans
        self.journal = Journal()
        self.faults = Faults()
        self.latencies = Latencies()
        self.operations = Operations()
        self.regions: dict[str, RegionState] = {}
        for plan in plans:
            for region in plan.regions:
                self.regions.setdefault(region, RegionState(region, changed_at=time.monotonic()))
        self._listeners: list[Callable[[], None]] = []
        # Every provider by name (filled by the Emulator), for providers that read another's state.
        self.providers: dict[str, Provider] = {}

    def region(self, name: str) -> RegionState:
        state = self.regions.get(name.replace(" ", "").lower())
        if state is None:
            raise ArmError(
                400, "LocationNotAvailableForResourceType", f"The region '{name}' is not part of this estate."
            )
        return state

    def set_region_health(
        self, name: str, health: str, *, error_rate: float | None = None, added_latency_ms: float | None = None
    ) -> RegionState:
        if health not in HEALTH_STATES:
            raise ArmError(400, "InvalidHealth", f"health must be one of {', '.join(HEALTH_STATES)}, got {health!r}")
        state = self.region(name)
        if state.health != health:
            state.changed_at = time.monotonic()
        state.health = health
        if health == "degraded":
            state.error_rate = 0.2 if error_rate is None else error_rate
            state.added_latency_ms = 400.0 if added_latency_ms is None else added_latency_ms
        else:
            state.error_rate = 0.0 if error_rate is None else error_rate
            state.added_latency_ms = 0.0 if added_latency_ms is None else added_latency_ms
        self.changed()
        return state

    def on_change(self, listener: Callable[[], None]) -> None:
        """Called whenever something that shapes traffic changes (health, origins)."""
        self._listeners.append(listener)

    def changed(self) -> None:
        for listener in self._listeners:
            listener()

    def snapshot(self) -> dict[str, Any]:
        return {
            "regions": {
                name: asdict(state) | {"outage_seconds": state.outage_seconds} for name, state in self.regions.items()
            },
            "plans": [plan.name for plan in self.plans],
        }
