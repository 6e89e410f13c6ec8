"""The emulated services. Each module holds one provider: its state, ARM routes and control routes."""

from __future__ import annotations

from emulator.world import Provider, World


def all_providers(world: World) -> list[Provider]:
    from emulator.providers.cosmos import CosmosProvider  # noqa: PLC0415
    from emulator.providers.frontdoor import FrontDoorProvider  # noqa: PLC0415
    from emulator.providers.monitor import MonitorProvider  # noqa: PLC0415
    from emulator.providers.platform import PlatformProvider  # noqa: PLC0415
    from emulator.providers.servicebus import ServiceBusProvider  # noqa: PLC0415
    from emulator.providers.sql import SqlProvider  # noqa: PLC0415

    frontdoor = FrontDoorProvider(world)
    return [
        frontdoor,
        MonitorProvider(world, frontdoor),
        ServiceBusProvider(world),
        SqlProvider(world),
        CosmosProvider(world),
        PlatformProvider(world),
    ]
