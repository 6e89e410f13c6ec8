"""Platform ops API activities against the emulator's per-region ops gateways over HTTPS."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from activities.azure import Estates
from activities.cosmos import CosmosActivities
from activities.platform import PlatformActivities
from activities.sql import SqlActivities
from domain.messages.cosmos import SetCosmosWriteRegionInput
from domain.messages.platform import (
    DEFAULT_PROJECTION_DATABASE,
    DataLossWindowInput,
    ListTenantsInput,
    RepinTenantsInput,
    SetTenantDatabaseInput,
    SetTenantModeInput,
    WarmCacheInput,
    sql_store,
)
from domain.messages.sql import MODE_FORCED, MODE_PLANNED, FailoverSqlGroupInput, RestoreDatabasePitrInput
from domain.plan import DrPlan
from tests.conftest import EmulatorHandle


@pytest.fixture
def ops(estates: Estates) -> PlatformActivities:
    return PlatformActivities(estates)


def gateway(emulator: EmulatorHandle, region: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{emulator.url}/regions/{region}/ops/v1",
        verify=emulator.ssl_context,
        headers={"Authorization": "Bearer test"},
        timeout=30,
    )


def registry(emulator: EmulatorHandle) -> dict[str, Any]:
    tenants: dict[str, Any] = emulator.state()["platform"]["tenants"]
    return tenants


def homed(plan: DrPlan, region: str) -> list[str]:
    return [t.id for t in plan.tenants if t.home_region == region]


class TestTenantModes:
    async def test_setting_a_mode_twice_posts_once(
        self, ops: PlatformActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """The first run changes every tenant homed in the region with one POST; the second sends none."""
        since = emulator.last_seq()
        request = SetTenantModeInput(plan.name, plan.primary_region, "read-only", "eastus outage")
        first = await ops.set_tenant_mode(request)
        middle = emulator.last_seq()
        second = await ops.set_tenant_mode(request)
        assert first.changed == first.matched == len(homed(plan, plan.primary_region))
        assert second.changed == 0
        assert second.matched == first.matched
        assert len(emulator.mutations(since, "Ops_SetTenantMode")) == 1
        assert emulator.mutations(middle) == []
        modes = {t["id"]: t["mode"] for t in registry(emulator).values()}
        assert all(modes[t] == "read-only" for t in homed(plan, plan.primary_region))
        assert all(modes[t] == "read-write" for t in homed(plan, plan.dr_region))

    async def test_mode_change_goes_through_the_other_regions_gateway(
        self, ops: PlatformActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """With the home region down, the default gateway is the DR region's, so the change still lands."""
        emulator.region(plan.primary_region, "down")
        since = emulator.last_seq()
        result = await ops.set_tenant_mode(SetTenantModeInput(plan.name, plan.primary_region, "read-only", "outage"))
        assert result.changed > 0
        paths = [e["path"] for e in emulator.mutations(since, "Ops_SetTenantMode")]
        assert paths == [f"/regions/{plan.dr_region}/ops/v1/tenants/mode"]

    def test_mode_by_tenant_ids_reports_counts(self, emulator: EmulatorHandle, plan: DrPlan) -> None:
        """The runbook's tenantIds form sets only those tenants and counts what changed."""
        ids = homed(plan, plan.dr_region)[:3]
        with gateway(emulator, plan.dr_region) as http:
            answer = http.post("/tenants/mode", json={"tenantIds": ids, "mode": "read-only", "reason": "drill"})
            again = http.post("/tenants/mode", json={"tenantIds": ids, "mode": "read-only", "reason": "drill"})
        assert answer.status_code == 200
        assert answer.json()["changed"] == 3
        assert again.json()["changed"] == 0
        assert again.json()["unchanged"] == 3

    def test_mode_without_reason_is_a_bad_request(self, emulator: EmulatorHandle, plan: DrPlan) -> None:
        """Every registry change must carry a reason; without it the API answers 400 in Azure's error shape."""
        with gateway(emulator, plan.dr_region) as http:
            answer = http.post("/tenants/mode", json={"homeRegion": plan.primary_region, "mode": "read-only"})
        assert answer.status_code == 400
        assert answer.json()["error"]["code"] == "InvalidRequest"


class TestRegistryReads:
    async def test_paging_walks_every_matching_tenant_once(self, ops: PlatformActivities, plan: DrPlan) -> None:
        """Following next_cursor yields each tenant homed in the region exactly once."""
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            page = await ops.list_tenants(
                ListTenantsInput(plan.name, home_region=plan.primary_region, cursor=cursor, limit=40)
            )
            seen += [t.id for t in page.tenants]
            pages += 1
            cursor = page.next_cursor
            if cursor is None:
                break
        assert sorted(seen) == sorted(homed(plan, plan.primary_region))
        assert pages == -(-len(seen) // 40)
        assert page.total == len(seen)

    def test_a_bad_cursor_is_refused(self, emulator: EmulatorHandle, plan: DrPlan) -> None:
        """An invalid cursor answers 400 rather than an arbitrary page."""
        with gateway(emulator, plan.primary_region) as http:
            answer = http.get("/tenants", params={"cursor": "not-a-cursor"})
        assert answer.status_code == 400
        assert answer.json()["error"]["code"] == "InvalidCursor"

    def test_requests_without_a_bearer_token_are_refused(self, emulator: EmulatorHandle, plan: DrPlan) -> None:
        """The ops API, like ARM, needs a bearer token."""
        with httpx.Client(verify=emulator.ssl_context) as http:
            answer = http.get(f"{emulator.url}/regions/{plan.primary_region}/ops/v1/tenants")
        assert answer.status_code == 401


class TestRepin:
    async def test_repin_moves_allowed_tenants_and_refuses_residency_violations(
        self, ops: PlatformActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """Tenants whose policy allows the DR region move; eastus-only tenants are refused and stay."""
        allowed = [t.id for t in plan.tenants if t.home_region == plan.primary_region and t.residency == "us"][:5]
        pinned = [t.id for t in plan.tenants if t.residency == "eastus-only"][:2]
        result = await ops.repin_tenants(
            RepinTenantsInput(plan.name, tuple(allowed + pinned), plan.dr_region, "extended outage")
        )
        assert sorted(result.moved) == sorted(allowed)
        assert sorted(result.refused) == sorted(pinned)
        assert result.skipped == ()
        serving = {t["id"]: t["servingRegion"] for t in registry(emulator).values()}
        assert all(serving[t] == plan.dr_region for t in allowed)
        assert all(serving[t] == plan.primary_region for t in pinned)

    async def test_repin_twice_posts_once(
        self, ops: PlatformActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A second run finds the tenants already served from the target and sends no POST."""
        ids = tuple(t.id for t in plan.tenants if t.residency == "us" and t.home_region == plan.primary_region)[:10]
        await ops.repin_tenants(RepinTenantsInput(plan.name, ids, plan.dr_region, "outage"))
        since = emulator.last_seq()
        second = await ops.repin_tenants(RepinTenantsInput(plan.name, ids, plan.dr_region, "outage"))
        assert sorted(second.skipped) == sorted(ids)
        assert second.moved == ()
        assert emulator.mutations(since) == []

    def test_the_api_refuses_a_batch_with_a_residency_violation_naming_it(
        self, emulator: EmulatorHandle, plan: DrPlan
    ) -> None:
        """The API answers 409 naming the offending tenant and moves nothing of the batch."""
        ok = next(t.id for t in plan.tenants if t.residency == "us" and t.home_region == plan.primary_region)
        bad = next(t.id for t in plan.tenants if t.residency == "eastus-only")
        with gateway(emulator, plan.dr_region) as http:
            answer = http.post(
                "/tenants/repin", json={"tenantIds": [ok, bad], "targetRegion": plan.dr_region, "reason": "outage"}
            )
        assert answer.status_code == 409
        assert answer.json()["error"]["code"] == "ResidencyViolation"
        assert bad in answer.json()["error"]["message"]
        assert ok not in answer.json()["error"]["message"]
        assert registry(emulator)[ok]["servingRegion"] == plan.primary_region

    async def test_unknown_tenants_are_not_retried(self, ops: PlatformActivities, plan: DrPlan) -> None:
        """A tenant id the registry does not know stops the activity with its name."""
        with pytest.raises(ApplicationError) as caught:
            await ops.repin_tenants(RepinTenantsInput(plan.name, ("no-such-tenant",), plan.dr_region, "outage"))
        assert caught.value.non_retryable is True
        assert "no-such-tenant" in caught.value.message


class TestCacheWarmup:
    async def test_warmup_polls_the_operation_and_is_idempotent(
        self, ops: PlatformActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A cold cache is warmed by one POST polled to Succeeded; a second run finds it warm and posts nothing."""
        emulator.latency({"Ops_CacheWarmup": 0.3})
        since = emulator.last_seq()
        first = await ops.warm_cache(WarmCacheInput(plan.name, plan.dr_region))
        middle = emulator.last_seq()
        second = await ops.warm_cache(WarmCacheInput(plan.name, plan.dr_region))
        assert first.changed is True
        assert first.duration_seconds >= 0.3
        assert first.operation_id is not None
        assert len(emulator.mutations(since, "Ops_CacheWarmup")) == 1
        polls = [e for e in emulator.journal(since) if e["operation"] == "Ops_GetOperation"]
        assert len(polls) >= 2
        assert second.changed is False
        assert emulator.mutations(middle) == []

    async def test_a_region_that_went_down_needs_warming_again(
        self, ops: PlatformActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """An outage empties the region's cache, so warming the recovered primary posts a warm-up."""
        emulator.region(plan.primary_region, "down")
        emulator.region(plan.primary_region, "healthy")
        result = await ops.warm_cache(WarmCacheInput(plan.name, plan.primary_region))
        assert result.changed is True


class TestGatewayErrors:
    async def test_a_down_regions_gateway_answers_503_as_a_retryable_error(
        self, ops: PlatformActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """Calling the ops gateway of a down region fails with a retryable error naming that gateway."""
        emulator.region(plan.primary_region, "down")
        with pytest.raises(ApplicationError) as caught:
            await ops.list_tenants(ListTenantsInput(plan.name, gateway_region=plan.primary_region))
        assert caught.value.non_retryable is False
        assert caught.value.type == "AzureRetryableError"
        assert "503" in caught.value.message
        assert f"ops gateway {plan.primary_region}" in caught.value.message

    async def test_throttling_is_retryable_and_the_retry_succeeds(
        self, ops: PlatformActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A 429 with Retry-After maps to a retryable error carrying the delay; the next attempt succeeds."""
        emulator.fault("Ops_GetTenants", 429, count=1, retry_after=2)
        request = SetTenantModeInput(plan.name, plan.primary_region, "read-only", "outage")
        with pytest.raises(ApplicationError) as caught:
            await ops.set_tenant_mode(request)
        assert caught.value.non_retryable is False
        assert caught.value.next_retry_delay is not None
        assert caught.value.next_retry_delay.total_seconds() == 2
        result = await ops.set_tenant_mode(request)
        assert result.changed == len(homed(plan, plan.primary_region))

    async def test_forbidden_is_not_retried(
        self, ops: PlatformActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A 403 from the ops API stops at once and names what was being changed."""
        emulator.fault("Ops_RepinTenants", 403, count=1)
        ids = tuple(t.id for t in plan.tenants if t.residency == "us" and t.home_region == plan.primary_region)[:2]
        with pytest.raises(ApplicationError) as caught:
            await ops.repin_tenants(RepinTenantsInput(plan.name, ids, plan.dr_region, "outage"))
        assert caught.value.non_retryable is True
        assert "403" in caught.value.message
        assert f"to {plan.dr_region}" in caught.value.message


GROUP = "fog-tenants"


def set_sql_lag(emulator: EmulatorHandle, seconds: float) -> None:
    emulator.control.put("/sql/lag", json={"failover_group": GROUP, "seconds": seconds}).raise_for_status()


class TestDataLossWindow:
    async def test_forced_sql_failover_loses_the_lag_at_that_moment(
        self, ops: PlatformActivities, estates: Estates, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """After a forced failover with 7 s of replication lag, the newest surviving heartbeat is 7 s old."""
        set_sql_lag(emulator, 7.0)
        emulator.region(plan.primary_region, "down")
        failover = await SqlActivities(estates).failover_group(
            FailoverSqlGroupInput(plan.name, GROUP, plan.dr_region, MODE_FORCED)
        )
        set_sql_lag(emulator, 1.0)  # the lag now no longer matters: the lost writes are gone
        window = await ops.data_loss_window(
            DataLossWindowInput(plan.name, sql_store(GROUP), plan.primary_region, failover.completed_at)
        )
        assert window.seconds == pytest.approx(7.0, abs=0.5)
        assert (window.store, window.at) == (sql_store(GROUP), failover.completed_at)
        assert window.last_heartbeat_at < failover.completed_at

    async def test_planned_sql_failover_loses_at_most_the_live_lag(
        self, ops: PlatformActivities, estates: Estates, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A planned failover keeps replicating: the window is bounded by the current lag, not frozen."""
        set_sql_lag(emulator, 2.0)
        failover = await SqlActivities(estates).failover_group(
            FailoverSqlGroupInput(plan.name, GROUP, plan.dr_region, MODE_PLANNED)
        )
        window = await ops.data_loss_window(
            DataLossWindowInput(plan.name, sql_store(GROUP), plan.primary_region, failover.completed_at)
        )
        assert 0.0 <= window.seconds < 2.0 + 1.0

    async def test_cosmos_move_away_from_a_down_region_loses_its_lag(
        self, ops: PlatformActivities, estates: Estates, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """Moving the Cosmos write region off a down region freezes the newest heartbeat at the lag then."""
        emulator.control.put("/cosmos/lag", json={"account": plan.cosmos.account, "seconds": 4}).raise_for_status()
        emulator.region(plan.primary_region, "down")
        moved = await CosmosActivities(estates).set_write_region(SetCosmosWriteRegionInput(plan.name, plan.dr_region))
        window = await ops.data_loss_window(
            DataLossWindowInput(plan.name, "cosmos", plan.primary_region, moved.completed_at)
        )
        assert window.seconds == pytest.approx(4.0, abs=0.5)

    def test_heartbeat_names_the_region_holding_the_primary_copy(self, emulator: EmulatorHandle, plan: DrPlan) -> None:
        """Without a failover the answer names the primary region and trails the measurement by the lag."""
        set_sql_lag(emulator, 3.0)
        with gateway(emulator, plan.dr_region) as http:
            answer = http.get("/replication/heartbeat", params={"store": sql_store(GROUP)})
        assert answer.status_code == 200
        body = answer.json()
        assert (body["store"], body["region"]) == (sql_store(GROUP), plan.primary_region)
        measured = dt.datetime.fromisoformat(body["measuredAt"].replace("Z", "+00:00"))
        last = dt.datetime.fromisoformat(body["lastHeartbeatAt"].replace("Z", "+00:00"))
        assert (measured - last).total_seconds() == pytest.approx(3.0, abs=0.01)

    def test_a_down_regions_gateway_answers_503(self, emulator: EmulatorHandle, plan: DrPlan) -> None:
        """The heartbeat route, like every ops route, is unavailable through a down region's gateway."""
        emulator.region(plan.primary_region, "down")
        with gateway(emulator, plan.primary_region) as http:
            answer = http.get("/replication/heartbeat", params={"store": "cosmos"})
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == "ServiceUnavailable"

    async def test_unknown_store_is_non_retryable_and_named(
        self, ops: PlatformActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A store outside the plan stops at once naming it; the gateway itself answers 404 for it."""
        with pytest.raises(ApplicationError) as caught:
            await ops.data_loss_window(
                DataLossWindowInput(plan.name, "sql:fog-nope", plan.primary_region, "2026-01-01T00:00:00Z")
            )
        assert caught.value.non_retryable is True
        assert "sql:fog-nope" in caught.value.message
        with gateway(emulator, plan.dr_region) as http:
            answer = http.get("/replication/heartbeat", params={"store": "sql:fog-nope"})
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "StoreNotFound"
        assert "sql:fog-nope" in answer.json()["error"]["message"]


SET_DATABASE = "Ops_SetTenantProjectionDatabase"
RESTORED = "projections-restore-1"


async def restore_copy(estates: Estates, plan: DrPlan) -> str:
    """A point-in-time restore of the shared projection database, Online: something to point a tenant at."""
    point = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
    result = await SqlActivities(estates).restore_database_pitr(
        RestoreDatabasePitrInput(plan.name, GROUP, DEFAULT_PROJECTION_DATABASE, RESTORED, point)
    )
    return result.database


class TestProjectionDatabase:
    async def test_every_tenant_starts_on_the_shared_database(self, ops: PlatformActivities, plan: DrPlan) -> None:
        """The registry maps each tenant's projections to the plan's shared database until told otherwise."""
        page = await ops.list_tenants(ListTenantsInput(plan.name, limit=1000))
        assert {t.projection_database for t in page.tenants} == {DEFAULT_PROJECTION_DATABASE}

    async def test_promotion_points_the_tenant_at_the_copy_once(
        self, ops: PlatformActivities, estates: Estates, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """The first run changes only this tenant with one POST; the second reads and sends nothing."""
        copy = await restore_copy(estates, plan)
        tenant = plan.tenants[0].id
        request = SetTenantDatabaseInput(plan.name, tenant, copy, "restore promoted", DEFAULT_PROJECTION_DATABASE)
        start = emulator.last_seq()
        first = await ops.set_tenant_database(request)
        middle = emulator.last_seq()
        second = await ops.set_tenant_database(request)
        assert (first.previous, first.current, first.changed) == (DEFAULT_PROJECTION_DATABASE, copy, True)
        assert (second.previous, second.current, second.changed) == (copy, copy, False)
        assert len(emulator.mutations(start, SET_DATABASE)) == 1
        assert emulator.mutations(middle) == []
        assert emulator.state()["platform"]["projectionDatabases"] == {
            DEFAULT_PROJECTION_DATABASE: len(plan.tenants) - 1,
            copy: 1,
        }
        assert registry(emulator)[tenant]["projectionDatabase"] == copy

    async def test_undo_points_the_tenant_back(
        self, ops: PlatformActivities, estates: Estates, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """Undoing a promotion restores the shared database and reports the copy as the previous value."""
        copy = await restore_copy(estates, plan)
        tenant = plan.tenants[0].id
        await ops.set_tenant_database(SetTenantDatabaseInput(plan.name, tenant, copy, "restore promoted"))
        undone = await ops.set_tenant_database(
            SetTenantDatabaseInput(plan.name, tenant, DEFAULT_PROJECTION_DATABASE, "undo", expected_current=copy)
        )
        assert (undone.previous, undone.current, undone.changed) == (copy, DEFAULT_PROJECTION_DATABASE, True)
        assert registry(emulator)[tenant]["projectionDatabase"] == DEFAULT_PROJECTION_DATABASE

    async def test_an_unexpected_current_database_is_refused(
        self, ops: PlatformActivities, estates: Estates, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """When the tenant no longer reads from the expected database nothing is changed and nothing is retried."""
        copy = await restore_copy(estates, plan)
        tenant = plan.tenants[0].id
        start = emulator.last_seq()
        with pytest.raises(ApplicationError) as caught:
            await ops.set_tenant_database(
                SetTenantDatabaseInput(plan.name, tenant, copy, "restore promoted", expected_current="projections-old")
            )
        assert caught.value.non_retryable
        assert caught.value.type == "ProjectionDatabaseChanged"
        assert "projections-old" in str(caught.value)
        assert emulator.mutations(start) == []

    async def test_a_database_that_does_not_exist_is_refused(
        self, ops: PlatformActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """The registry refuses to point a tenant at a database no server of its plan holds Online."""
        tenant = plan.tenants[0].id
        with pytest.raises(ApplicationError) as caught:
            await ops.set_tenant_database(SetTenantDatabaseInput(plan.name, tenant, "projections-nowhere", "typo"))
        assert caught.value.non_retryable
        assert "DatabaseUnavailable" in str(caught.value)
        assert registry(emulator)[tenant]["projectionDatabase"] == DEFAULT_PROJECTION_DATABASE

    async def test_a_database_being_deleted_is_refused(
        self, ops: PlatformActivities, estates: Estates, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A copy whose delete is running cannot be swapped in: the registry answers DatabaseUnavailable."""
        copy = await restore_copy(estates, plan)
        emulator.latency({"Databases_Delete": 1.0})
        spec = next(g for g in plan.sql.failover_groups if g.name == GROUP)
        await estates[plan.name].sql.databases.begin_delete(
            resource_group_name=spec.resource_group, server_name=spec.servers[plan.primary_region], database_name=copy
        )
        with pytest.raises(ApplicationError) as caught:
            await ops.set_tenant_database(SetTenantDatabaseInput(plan.name, plan.tenants[0].id, copy, "promote"))
        assert caught.value.non_retryable
        assert "DatabaseUnavailable" in str(caught.value)

    async def test_the_other_regions_gateway_answers_when_one_is_down(
        self, ops: PlatformActivities, estates: Estates, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """With the primary region down the change goes through the DR region's gateway."""
        copy = await restore_copy(estates, plan)
        emulator.region(plan.primary_region, "down")
        start = emulator.last_seq()
        result = await ops.set_tenant_database(
            SetTenantDatabaseInput(plan.name, plan.tenants[0].id, copy, "restore promoted")
        )
        assert result.changed
        paths = [e["path"] for e in emulator.mutations(start, SET_DATABASE)]
        assert paths == [f"/regions/{plan.dr_region}/ops/v1/tenants/database"]

    async def test_unknown_tenant_is_not_retried(self, ops: PlatformActivities, plan: DrPlan) -> None:
        """A tenant the registry does not know stops at once, named."""
        with pytest.raises(ApplicationError) as caught:
            await ops.set_tenant_database(SetTenantDatabaseInput(plan.name, "t-nope", "projections-x", "restore"))
        assert caught.value.non_retryable
        assert caught.value.type == "TenantNotFound"
        assert "t-nope" in str(caught.value)

    async def test_the_api_filters_and_guards_with_expected_current(
        self, estates: Estates, emulator: EmulatorHandle, plan: DrPlan
    ) -> None:
        """The runbook shape: a stale expectedCurrent answers 409 and changes nothing; the list filters by database."""
        copy = await restore_copy(estates, plan)
        tenant = plan.tenants[1].id
        body = {"tenantId": tenant, "projectionDatabase": copy, "reason": "promote"}
        with gateway(emulator, plan.primary_region) as http:
            stale = http.post("/tenants/database", json=body | {"expectedCurrent": "projections-old"})
            changed = http.post("/tenants/database", json=body | {"expectedCurrent": DEFAULT_PROJECTION_DATABASE})
            again = http.post("/tenants/database", json=body | {"expectedCurrent": "projections-old"})
            listed = http.get("/tenants", params={"projectionDatabase": copy.upper()})
            unreasoned = http.post("/tenants/database", json={"tenantId": tenant, "projectionDatabase": copy})
        assert stale.status_code == 409
        assert stale.json()["error"]["code"] == "ProjectionDatabaseChanged"
        assert changed.json() == {
            "tenantId": tenant,
            "previous": DEFAULT_PROJECTION_DATABASE,
            "projectionDatabase": copy,
            "changed": True,
        }
        assert again.status_code == 200  # already set: the expectation is not checked
        assert again.json()["changed"] is False
        assert [t["id"] for t in listed.json()["value"]] == [tenant]
        assert unreasoned.status_code == 400
        assert [e["status"] for e in emulator.journal() if e["operation"] == SET_DATABASE] == [409, 200, 200, 400]
        assert all(e["mutating"] for e in emulator.journal() if e["operation"] == SET_DATABASE)
