"""Front Door activities through the real azure-mgmt-cdn client against the emulator, and the
traffic the emulator routes as a result."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.azure import Estates
from activities.frontdoor import FrontDoorActivities
from domain.messages.frontdoor import DesiredOrigin, GetOriginsInput, SetOriginsInput, weighted_split
from domain.plan import DrPlan
from tests.conftest import EmulatorHandle

UPDATE = "AFDOrigins_Update"


@pytest.fixture
async def frontdoor(plan: DrPlan, emulator: EmulatorHandle) -> AsyncIterator[FrontDoorActivities]:
    estates = Estates([plan], emulator.connection())
    try:
        yield FrontDoorActivities(estates)
    finally:
        await estates.close()


def traffic(emulator: EmulatorHandle, plan: DrPlan) -> dict[str, Any]:
    body: dict[str, Any] = emulator.control.get("/frontdoor/traffic").raise_for_status().json()
    return body[plan.frontdoor.profile]  # type: ignore[no-any-return]


def percents(emulator: EmulatorHandle, plan: DrPlan) -> dict[str, float]:
    return {name: o["percent"] for name, o in traffic(emulator, plan)["origins"].items()}


async def patch_sent(emulator: EmulatorHandle) -> None:
    """Wait until the emulator has accepted an origin update (its operation then runs)."""
    for _ in range(500):
        if emulator.mutations(operation=UPDATE):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no AFDOrigins_Update reached the emulator")


def failover(plan: DrPlan) -> SetOriginsInput:
    return SetOriginsInput(
        plan.name,
        (
            DesiredOrigin(plan.primary_region, enabled=False),
            DesiredOrigin(plan.dr_region, enabled=True, priority=1),
        ),
        reason="test failover",
    )


class TestGetOrigins:
    async def test_lists_both_origins_with_their_regions(self, frontdoor: FrontDoorActivities, plan: DrPlan) -> None:
        """The initial estate is active/passive: primary enabled at priority 1, DR enabled at priority 2."""
        result = await frontdoor.get_origins(GetOriginsInput(plan.name))
        primary, dr = result.for_region(plan.primary_region), result.for_region(plan.dr_region)
        assert primary is not None
        assert dr is not None
        assert (primary.name, primary.enabled, primary.priority, primary.weight) == ("app-eastus", True, 1, 1000)
        assert (dr.name, dr.enabled, dr.priority, dr.provisioning_state) == ("app-westus", True, 2, "Succeeded")


class TestSetOrigins:
    async def test_second_run_issues_no_mutation(
        self, frontdoor: FrontDoorActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """Setting the same desired state twice sends exactly one PATCH per differing origin."""
        request = SetOriginsInput(plan.name, (DesiredOrigin(plan.dr_region, priority=1),))
        first = await frontdoor.set_origins(request)
        second = await frontdoor.set_origins(request)
        assert (first.changed, second.changed, second.unchanged) == (("app-westus",), (), ("app-westus",))
        assert len(emulator.mutations(operation=UPDATE)) == 1

    async def test_only_differing_origins_are_patched(
        self, frontdoor: FrontDoorActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """An origin already in the desired state is read but not updated."""
        result = await frontdoor.set_origins(failover(plan))
        assert result.changed == ("app-westus", "app-eastus")
        state = await frontdoor.set_origins(
            SetOriginsInput(plan.name, (DesiredOrigin(plan.primary_region, enabled=False, priority=1),))
        )
        assert state.changed == ()
        mutations = emulator.mutations(operation=UPDATE)
        assert [m["path"].rsplit("/", 1)[-1] for m in mutations] == ["app-westus", "app-eastus"]

    async def test_patch_sends_only_the_changed_properties(
        self, frontdoor: FrontDoorActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """The PATCH body is a merge of the properties that differ, nothing else."""
        await frontdoor.set_origins(SetOriginsInput(plan.name, weighted_split(plan.primary_region, plan.dr_region, 25)))
        bodies = {m["path"].rsplit("/", 1)[-1]: m["body"] for m in emulator.mutations(operation=UPDATE)}
        assert bodies == {
            "app-eastus": {"properties": {"weight": 250}},
            "app-westus": {"properties": {"priority": 1, "weight": 750}},
        }

    async def test_disabling_comes_last(
        self, frontdoor: FrontDoorActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """Disabling an origin comes after every other change, so some origin stays enabled throughout."""
        await frontdoor.set_origins(SetOriginsInput(plan.name, (DesiredOrigin(plan.dr_region, enabled=False),)))
        since = emulator.last_seq()
        await frontdoor.set_origins(
            SetOriginsInput(
                plan.name,
                (DesiredOrigin(plan.primary_region, enabled=False), DesiredOrigin(plan.dr_region, enabled=True)),
            )
        )
        order = [m["path"].rsplit("/", 1)[-1] for m in emulator.mutations(since, operation=UPDATE)]
        assert order == ["app-westus", "app-eastus"]

    async def test_change_applies_when_the_operation_completes(
        self, frontdoor: FrontDoorActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """While the update runs the origin reads Updating with its old values; the result shows the new ones."""
        emulator.latency({UPDATE: 1.5})
        task = asyncio.create_task(
            frontdoor.set_origins(SetOriginsInput(plan.name, (DesiredOrigin(plan.dr_region, priority=1),)))
        )
        await patch_sent(emulator)
        during = (await frontdoor.get_origins(GetOriginsInput(plan.name))).for_region(plan.dr_region)
        result = await task
        after = result.for_region(plan.dr_region)
        assert during is not None
        assert after is not None
        assert (during.priority, during.provisioning_state) == (2, "Updating")
        assert (after.priority, after.provisioning_state) == (1, "Succeeded")

    async def test_a_running_update_is_waited_out_first(
        self, frontdoor: FrontDoorActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A second run while the first update still runs waits for it and then finds nothing to do."""
        emulator.latency({UPDATE: 1.0})
        request = SetOriginsInput(plan.name, (DesiredOrigin(plan.dr_region, priority=1),))
        first = asyncio.create_task(frontdoor.set_origins(request))
        await patch_sent(emulator)
        second = await frontdoor.set_origins(request)
        await first
        assert second.changed == ()
        assert len(emulator.mutations(operation=UPDATE)) == 1

    async def test_heartbeats_while_the_update_runs(
        self, frontdoor: FrontDoorActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """Run as a Temporal activity, a slow update heartbeats the operation it waits for."""
        emulator.latency({UPDATE: 0.5})
        env = ActivityEnvironment()
        beats: list[Any] = []
        env.on_heartbeat = lambda *details: beats.append(details)
        result = await env.run(
            frontdoor.set_origins, SetOriginsInput(plan.name, (DesiredOrigin(plan.dr_region, priority=1),))
        )
        assert result.changed == ("app-westus",)
        assert any(getattr(d[0], "operation", "").startswith("frontdoor.update_origin:app-westus") for d in beats)

    @pytest.mark.parametrize(("status", "extra"), [(429, {"retry_after": 1}), (503, {})])
    async def test_throttling_and_outages_are_retried_by_the_sdk(
        self, frontdoor: FrontDoorActivities, plan: DrPlan, emulator: EmulatorHandle, status: int, extra: dict[str, Any]
    ) -> None:
        """A 429 with Retry-After or a 503 on the update is retried by the SDK and the update lands once."""
        emulator.fault(UPDATE, status, **extra)
        result = await frontdoor.set_origins(SetOriginsInput(plan.name, (DesiredOrigin(plan.dr_region, priority=1),)))
        attempts = [e for e in emulator.journal() if e["operation"] == UPDATE]
        assert result.changed == ("app-westus",)
        assert [(e["status"], e["fault"]) for e in attempts] == [(status, True), (202, False)]

    async def test_forbidden_fails_at_once(
        self, frontdoor: FrontDoorActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A 403 is not retried: one attempt, a non-retryable error naming the origin."""
        emulator.fault(UPDATE, 403, count=5)
        with pytest.raises(ApplicationError) as caught:
            await frontdoor.set_origins(SetOriginsInput(plan.name, (DesiredOrigin(plan.dr_region, priority=1),)))
        assert caught.value.non_retryable
        assert "app-westus" in str(caught.value)
        assert "403" in str(caught.value)
        assert len([e for e in emulator.journal() if e["operation"] == UPDATE]) == 1

    async def test_unknown_origin_fails_at_once(self, plan: DrPlan, emulator: EmulatorHandle) -> None:
        """An origin the estate does not have is a non-retryable 404 naming that origin."""
        fd = dataclasses.replace(plan.frontdoor, origins={**plan.frontdoor.origins, plan.dr_region: "app-missing"})
        estates = Estates([dataclasses.replace(plan, frontdoor=fd)], emulator.connection())
        try:
            with pytest.raises(ApplicationError) as caught:
                await FrontDoorActivities(estates).set_origins(
                    SetOriginsInput(plan.name, (DesiredOrigin(plan.dr_region, priority=1),))
                )
        finally:
            await estates.close()
        assert caught.value.non_retryable
        assert "app-missing" in str(caught.value)
        assert "404" in str(caught.value)
        assert emulator.mutations(operation=UPDATE) == []

    async def test_invalid_weight_is_refused_before_any_call(
        self, frontdoor: FrontDoorActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A weight outside Front Door's 1..1000 is refused without touching Azure."""
        since = emulator.last_seq()
        with pytest.raises(ApplicationError, match="weight") as caught:
            await frontdoor.set_origins(SetOriginsInput(plan.name, (DesiredOrigin(plan.dr_region, weight=0),)))
        assert caught.value.non_retryable
        assert emulator.journal(since) == []


class TestTraffic:
    async def test_weights_split_traffic(
        self, frontdoor: FrontDoorActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """Equal priority with weights 250/750 sends 25 % and 75 % of requests."""
        await frontdoor.set_origins(SetOriginsInput(plan.name, weighted_split(plan.primary_region, plan.dr_region, 25)))
        assert percents(emulator, plan) == {"app-eastus": 25.0, "app-westus": 75.0}

    async def test_failover_moves_all_traffic_to_dr(
        self, frontdoor: FrontDoorActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """Disabling the primary and promoting the DR origin sends it all traffic."""
        await frontdoor.set_origins(failover(plan))
        assert percents(emulator, plan) == {"app-eastus": 0.0, "app-westus": 100.0}

    def test_primary_down_sends_all_traffic_to_dr(self, plan: DrPlan, emulator: EmulatorHandle) -> None:
        """A down primary region fails its probes, so Front Door routes everything to the DR origin."""
        emulator.region(plan.primary_region, "down")
        assert percents(emulator, plan) == {"app-eastus": 0.0, "app-westus": 100.0}

    def test_load_is_settable(self, plan: DrPlan, emulator: EmulatorHandle) -> None:
        """The control API sets the client request rate of a profile."""
        emulator.control.put(
            "/frontdoor/load", json={"profile": plan.frontdoor.profile, "requests_per_second": 50}
        ).raise_for_status()
        assert traffic(emulator, plan)["requests_per_second"] == 50.0
