"""Re-pinning a failed region's tenants page by page, as RepinTenantsWorkflow does, against the
emulator's tenant registry: residency policies decide who may move."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from activities.azure import Estates
from activities.platform import PlatformActivities
from domain.messages.platform import ListTenantsInput, RepinBatchInput
from domain.plan import DrPlan
from tests.conftest import EmulatorHandle


@pytest.fixture
async def platform(plan: DrPlan, emulator: EmulatorHandle) -> AsyncIterator[PlatformActivities]:
    estates = Estates([plan], emulator.connection())
    try:
        yield PlatformActivities(estates)
    finally:
        await estates.close()


async def repin_all(platform: PlatformActivities, plan: DrPlan, limit: int) -> tuple[int, int, int, int]:
    cursor: str | None = None
    moved = kept = pages = considered = 0
    while True:
        batch = await platform.repin_batch(
            RepinBatchInput(plan.name, "eastus", "westus", reason="extended outage", cursor=cursor, limit=limit)
        )
        pages += 1
        moved += batch.moved
        kept += batch.not_allowed
        considered += batch.considered
        cursor = batch.next_cursor
        if cursor is None:
            return moved, kept, pages, considered


class TestRepinBatches:
    async def test_residency_decides_who_moves(
        self, plan: DrPlan, emulator: EmulatorHandle, platform: PlatformActivities
    ) -> None:
        """Tenants whose policy allows westus move there; eastus-only tenants stay; every tenant is seen once."""
        east = [t for t in plan.tenants if t.home_region == "eastus"]
        allowed = [t for t in east if plan.may_live_in(t, "westus")]
        moved, kept, pages, considered = await repin_all(platform, plan, limit=37)
        assert considered == len(east)
        assert moved == len(allowed)
        assert kept == len(east) - len(allowed)
        assert kept > 0, "the local plan has eastus-only tenants"
        assert pages == -(-len(east) // 37)
        served_west = await platform.list_tenants(
            ListTenantsInput(plan.name, home_region="eastus", serving_region="westus", limit=1)
        )
        assert served_west.total == len(allowed)

    async def test_second_pass_changes_nothing(
        self, plan: DrPlan, emulator: EmulatorHandle, platform: PlatformActivities
    ) -> None:
        """A resumed or repeated re-pinning finds everyone in place and sends no re-pin request."""
        await repin_all(platform, plan, limit=100)
        since = emulator.last_seq()
        moved, _, _, _ = await repin_all(platform, plan, limit=100)
        assert moved == 0
        assert emulator.mutations(since, "Ops_RepinTenants") == []
