"""Dry runs of every mutating activity against the emulator: all reads, no mutation, and a plan of
calls that is exactly what the real run then sends."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from activities.azure import Estates
from activities.cosmos import CosmosActivities
from activities.frontdoor import FrontDoorActivities
from activities.platform import PlatformActivities
from activities.servicebus import ServiceBusActivities
from activities.sql import SqlActivities
from domain.messages.cosmos import SetCosmosWriteRegionInput
from domain.messages.frontdoor import DesiredOrigin, SetOriginsInput, active_passive
from domain.messages.platform import RepinBatchInput, SetTenantModeInput, WarmCacheInput
from domain.messages.servicebus import FailoverAliasInput, PairAliasInput
from domain.messages.sql import MODE_FORCED, MODE_NONE, MODE_PLANNED, FailoverSqlGroupInput
from domain.plan import DrPlan
from tests.conftest import EmulatorHandle

GROUP = "fog-tenants"


def parse_call(line: str) -> tuple[str, str, str | None, Any]:
    """(method, URL path, api-version, body) of a planned-call line."""
    method, _, rest = line.partition(" ")
    target, _, body = rest.partition(" ")
    url = urlsplit(target)
    api_version = parse_qs(url.query).get("api-version", [None])[0]
    return method, url.path, api_version, json.loads(body) if body else None


def sent(entries: list[dict[str, Any]]) -> list[tuple[str, str, str | None]]:
    return [(e["method"], e["path"], e["api_version"]) for e in entries]


def assert_plan_is_what_was_sent(planned: tuple[str, ...], issued: list[dict[str, Any]]) -> None:
    """Same count, methods, paths and api-versions, in the same order."""
    assert issued, "the real run sent no mutating request"
    assert [parse_call(line)[:3] for line in planned] == sent(issued)


class TestFrontDoorDryRun:
    async def test_plans_exactly_the_patches_a_real_run_sends(
        self, estates: Estates, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A dry failover changes nothing yet lists the two PATCHes, with their bodies, that the real run sends."""
        fd = FrontDoorActivities(estates)
        desired = (DesiredOrigin(plan.primary_region, enabled=False), DesiredOrigin(plan.dr_region, priority=1))
        since = emulator.last_seq()
        dry = await fd.set_origins(SetOriginsInput(plan.name, desired, dry_run=True))
        assert emulator.mutations(since) == []
        since = emulator.last_seq()
        real = await fd.set_origins(SetOriginsInput(plan.name, desired))
        issued = emulator.mutations(since)
        assert_plan_is_what_was_sent(dry.planned_calls, issued)
        assert [parse_call(line)[3] for line in dry.planned_calls] == [e["body"]["properties"] for e in issued]
        assert real.planned_calls == dry.planned_calls
        assert dry.changed == real.changed == ("app-westus", "app-eastus")
        assert [(o.name, o.enabled, o.priority, o.weight) for o in dry.origins] == [
            (o.name, o.enabled, o.priority, o.weight) for o in real.origins
        ]

    async def test_plans_nothing_in_the_desired_state(
        self, estates: Estates, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """The estate already is active/passive towards the primary: the dry run plans no call."""
        since = emulator.last_seq()
        dry = await FrontDoorActivities(estates).set_origins(
            SetOriginsInput(plan.name, active_passive(plan.primary_region, plan.dr_region), dry_run=True)
        )
        assert dry.planned_calls == ()
        assert dry.changed == ()
        assert emulator.mutations(since) == []


class TestServiceBusDryRun:
    async def test_failover_plans_the_post_a_real_run_sends(
        self, estates: Estates, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A dry fail-over reports the DR namespace as the unpaired primary it would become, and its one POST."""
        sb = ServiceBusActivities(estates)
        since = emulator.last_seq()
        dry = await sb.failover_alias(FailoverAliasInput(plan.name, plan.dr_region, dry_run=True))
        assert emulator.mutations(since) == []
        since = emulator.last_seq()
        real = await sb.failover_alias(FailoverAliasInput(plan.name, plan.dr_region))
        assert_plan_is_what_was_sent(dry.planned_calls, emulator.mutations(since))
        assert real.planned_calls == dry.planned_calls
        assert (dry.changed, dry.role) == (real.changed, real.role) == (True, "PrimaryNotReplicating")

    async def test_safe_failover_plans_its_body(self, estates: Estates, plan: DrPlan, emulator: EmulatorHandle) -> None:
        """A safe fail-over's planned call carries the IsSafeFailover body the SDK sends."""
        sb = ServiceBusActivities(estates)
        dry = await sb.failover_alias(FailoverAliasInput(plan.name, plan.dr_region, safe=True, dry_run=True))
        since = emulator.last_seq()
        await sb.failover_alias(FailoverAliasInput(plan.name, plan.dr_region, safe=True))
        issued = emulator.mutations(since)
        assert_plan_is_what_was_sent(dry.planned_calls, issued)
        assert [parse_call(line)[3] for line in dry.planned_calls] == [e["body"]["properties"] for e in issued]

    async def test_pair_plans_the_put_a_real_run_sends(
        self, estates: Estates, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """After a fail-over, a dry re-pair from DR lists the PUT naming the partner that the real run sends."""
        sb = ServiceBusActivities(estates)
        await sb.failover_alias(FailoverAliasInput(plan.name, plan.dr_region))
        since = emulator.last_seq()
        dry = await sb.pair(PairAliasInput(plan.name, plan.dr_region, dry_run=True))
        assert emulator.mutations(since) == []
        since = emulator.last_seq()
        real = await sb.pair(PairAliasInput(plan.name, plan.dr_region))
        issued = emulator.mutations(since)
        assert_plan_is_what_was_sent(dry.planned_calls, issued)
        assert [parse_call(line)[3] for line in dry.planned_calls] == [e["body"]["properties"] for e in issued]
        assert real.planned_calls == dry.planned_calls
        assert dry.changed is real.changed is True

    async def test_plans_nothing_in_the_desired_state(
        self, estates: Estates, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """The alias already points at the primary, paired to DR: neither dry run plans a call."""
        sb = ServiceBusActivities(estates)
        since = emulator.last_seq()
        failover = await sb.failover_alias(FailoverAliasInput(plan.name, plan.primary_region, dry_run=True))
        pair = await sb.pair(PairAliasInput(plan.name, plan.primary_region, dry_run=True))
        assert (failover.planned_calls, failover.changed) == ((), False)
        assert (pair.planned_calls, pair.changed) == ((), False)
        assert emulator.mutations(since) == []


class TestSqlDryRun:
    @pytest.mark.parametrize("mode", [MODE_PLANNED, MODE_FORCED])
    async def test_plans_the_failover_a_real_run_requests(
        self, estates: Estates, plan: DrPlan, emulator: EmulatorHandle, mode: str
    ) -> None:
        """A dry failover predicts the new primary and lists the mode's POST on the DR server, as really sent."""
        sql = SqlActivities(estates)
        since = emulator.last_seq()
        dry = await sql.failover_group(FailoverSqlGroupInput(plan.name, GROUP, plan.dr_region, mode, dry_run=True))
        assert emulator.mutations(since) == []
        since = emulator.last_seq()
        real = await sql.failover_group(FailoverSqlGroupInput(plan.name, GROUP, plan.dr_region, mode))
        assert_plan_is_what_was_sent(dry.planned_calls, emulator.mutations(since))
        assert real.planned_calls == dry.planned_calls
        assert (dry.changed, dry.mode, dry.primary_region, dry.primary_server, dry.servers) == (
            real.changed,
            real.mode,
            real.primary_region,
            real.primary_server,
            real.servers,
        )

    async def test_plans_nothing_in_the_desired_state(
        self, estates: Estates, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """The primary region already holds the group's primary: no failover is planned."""
        since = emulator.last_seq()
        dry = await SqlActivities(estates).failover_group(
            FailoverSqlGroupInput(plan.name, GROUP, plan.primary_region, dry_run=True)
        )
        assert (dry.planned_calls, dry.changed, dry.mode) == ((), False, MODE_NONE)
        assert emulator.mutations(since) == []


class TestCosmosDryRun:
    async def test_plans_the_priority_change_a_real_run_requests(
        self, estates: Estates, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A dry write-region move predicts the new priorities and lists the POST and body the real run sends."""
        cosmos = CosmosActivities(estates)
        since = emulator.last_seq()
        dry = await cosmos.set_write_region(SetCosmosWriteRegionInput(plan.name, plan.dr_region, dry_run=True))
        assert emulator.mutations(since) == []
        since = emulator.last_seq()
        real = await cosmos.set_write_region(SetCosmosWriteRegionInput(plan.name, plan.dr_region))
        issued = emulator.mutations(since)
        assert_plan_is_what_was_sent(dry.planned_calls, issued)
        assert [parse_call(line)[3] for line in dry.planned_calls] == [e["body"] for e in issued]
        assert real.planned_calls == dry.planned_calls
        assert (dry.changed, dry.write_region, dry.regions) == (real.changed, real.write_region, real.regions)

    async def test_plans_nothing_in_the_desired_state(
        self, estates: Estates, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """The account already writes in the primary region: no priority change is planned."""
        since = emulator.last_seq()
        dry = await CosmosActivities(estates).set_write_region(
            SetCosmosWriteRegionInput(plan.name, plan.primary_region, dry_run=True)
        )
        assert (dry.planned_calls, dry.changed) == ((), False)
        assert emulator.mutations(since) == []


class TestPlatformDryRun:
    async def test_tenant_mode_plans_the_post_a_real_run_sends(
        self, estates: Estates, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A dry mode change counts the tenants it would change and lists the ops POST with its body."""
        ops = PlatformActivities(estates)
        request = SetTenantModeInput(plan.name, plan.primary_region, "read-only", "eastus outage")
        since = emulator.last_seq()
        dry = await ops.set_tenant_mode(SetTenantModeInput(**{**vars(request), "dry_run": True}))
        assert emulator.mutations(since) == []
        since = emulator.last_seq()
        real = await ops.set_tenant_mode(request)
        issued = emulator.mutations(since)
        assert_plan_is_what_was_sent(dry.planned_calls, issued)
        assert [parse_call(line)[3] for line in dry.planned_calls] == [e["body"] for e in issued]
        assert real.planned_calls == dry.planned_calls
        assert (dry.matched, dry.changed) == (real.matched, real.changed)
        assert dry.changed > 0

    async def test_warm_cache_plans_the_warmup_a_real_run_starts(
        self, estates: Estates, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """The DR cache starts cold: a dry run lists the warm-up POST and starts nothing."""
        ops = PlatformActivities(estates)
        since = emulator.last_seq()
        dry = await ops.warm_cache(WarmCacheInput(plan.name, plan.dr_region, dry_run=True))
        assert emulator.mutations(since) == []
        assert emulator.state()["platform"]["caches"][plan.dr_region]["state"] == "cold"
        since = emulator.last_seq()
        real = await ops.warm_cache(WarmCacheInput(plan.name, plan.dr_region))
        assert_plan_is_what_was_sent(dry.planned_calls, emulator.mutations(since))
        assert real.planned_calls == dry.planned_calls
        assert (dry.changed, dry.state) == (real.changed, real.state) == (True, "warm")

    async def test_repin_batch_plans_the_post_a_real_run_sends(
        self, estates: Estates, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A dry batch counts the tenants it would move and lists one re-pin POST, its id list abridged."""
        ops = PlatformActivities(estates)
        request = RepinBatchInput(plan.name, plan.primary_region, plan.dr_region, "extended outage")
        since = emulator.last_seq()
        dry = await ops.repin_batch(RepinBatchInput(**{**vars(request), "dry_run": True}))
        assert emulator.mutations(since) == []
        since = emulator.last_seq()
        real = await ops.repin_batch(request)
        issued = emulator.mutations(since)
        assert_plan_is_what_was_sent(dry.planned_calls, issued)
        assert real.planned_calls == dry.planned_calls
        assert (dry.considered, dry.moved, dry.already_there, dry.not_allowed) == (
            real.considered,
            real.moved,
            real.already_there,
            real.not_allowed,
        )
        body = parse_call(dry.planned_calls[0])[3]
        ids = issued[0]["body"]["tenantIds"]
        assert len(ids) == real.moved > 20
        assert body["tenantIds"] == [*ids[:20], f"... {len(ids) - 20} more"]
        assert body["targetRegion"] == plan.dr_region

    async def test_plan_nothing_in_the_desired_state(
        self, estates: Estates, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """Tenants read-write, the primary's cache warm, DR tenants served from DR: no dry run plans a call."""
        ops = PlatformActivities(estates)
        since = emulator.last_seq()
        mode = await ops.set_tenant_mode(
            SetTenantModeInput(plan.name, plan.primary_region, "read-write", "no-op", dry_run=True)
        )
        cache = await ops.warm_cache(WarmCacheInput(plan.name, plan.primary_region, dry_run=True))
        batch = await ops.repin_batch(RepinBatchInput(plan.name, plan.dr_region, plan.dr_region, "no-op", dry_run=True))
        assert (mode.planned_calls, mode.changed) == ((), 0)
        assert (cache.planned_calls, cache.changed) == ((), False)
        assert (batch.planned_calls, batch.moved) == ((), 0)
        assert batch.already_there == batch.considered > 0
        assert emulator.mutations(since) == []
