"""Azure SQL activities against the emulator, through the real aio SDK over HTTPS."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.sql.models import Database, DatabaseProperties
from temporalio.converter import DataConverter
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.azure import AzureClients, Estates, LroHeartbeat
from activities.platform import PlatformActivities
from activities.sql import TAG_POINT, TAG_SOURCE, SqlActivities
from domain.messages.platform import SetTenantDatabaseInput
from domain.messages.sql import (
    MODE_FORCED,
    MODE_NONE,
    MODE_PLANNED,
    MODE_TRY_PLANNED,
    DeleteDatabaseInput,
    FailoverSqlGroupInput,
    GetFailoverGroupInput,
    RestoreDatabasePitrInput,
    RestoreDatabasePitrResult,
)
from domain.plan import DrPlan
from domain.resource_ids import sql_database
from tests.conftest import EmulatorHandle

FAILOVER = "FailoverGroups_Failover"
FORCE = "FailoverGroups_ForceFailoverAllowDataLoss"
CREATE = "Databases_CreateOrUpdate"
DELETE = "Databases_Delete"
GROUP = "fog-tenants"


@pytest.fixture
def sql(estates: Estates) -> SqlActivities:
    return SqlActivities(estates)


def group_state(emulator: EmulatorHandle, name: str = GROUP) -> dict[str, Any]:
    state: dict[str, Any] = emulator.state()["sql"]["failover_groups"][name]
    return state


def set_lag(emulator: EmulatorHandle, seconds: float, name: str = GROUP) -> None:
    emulator.control.put("/sql/lag", json={"failover_group": name, "seconds": seconds}).raise_for_status()


def source_id(plan: DrPlan, region: str, database: str = "tenants") -> str:
    spec = next(g for g in plan.sql.failover_groups if g.name == GROUP)
    return sql_database(plan.subscription_id, spec.resource_group, spec.servers[region], database)


def hours_ago(hours: float) -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours)).isoformat()


class TestReadFailoverGroup:
    async def test_reports_each_servers_role(self, sql: SqlActivities, plan: DrPlan) -> None:
        """The group starts primary in the plan's primary region with the DR server as secondary."""
        view = await sql.get_failover_group(GetFailoverGroupInput(plan.name, GROUP))
        roles = {s.region: s.role for s in view.servers}
        assert view.primary_region == plan.primary_region
        assert roles == {plan.primary_region: "Primary", plan.dr_region: "Secondary"}
        assert view.replication_state == "CATCH_UP"
        assert view.databases == ("tenants", "projections")

    async def test_unknown_group_in_plan_is_refused(self, sql: SqlActivities, plan: DrPlan) -> None:
        """A failover group the plan does not list fails at once, naming the plan's groups."""
        with pytest.raises(ApplicationError) as caught:
            await sql.get_failover_group(GetFailoverGroupInput(plan.name, "fog-nope"))
        assert caught.value.non_retryable
        assert "fog-tenants" in str(caught.value)


class TestPlannedFailover:
    async def test_sdk_result_is_the_group_seen_from_the_new_primary(self, clients: AzureClients, plan: DrPlan) -> None:
        """The poller's final answer (GET on Location) deserializes to the group with the DR server primary."""
        spec = plan.sql.failover_groups[0]
        poller = await clients.sql.failover_groups.begin_failover(
            resource_group_name=spec.resource_group,
            server_name=spec.servers[plan.dr_region],
            failover_group_name=spec.name,
        )
        group = await poller.result()
        assert group.properties is not None
        assert group.properties.replication_role == "Primary"
        assert group.properties.partner_servers[0].replication_role == "Secondary"
        assert group.id is not None
        assert group.id.endswith(f"/servers/{spec.servers[plan.dr_region]}/failoverGroups/{spec.name}")

    async def test_flips_roles(self, sql: SqlActivities, plan: DrPlan, emulator: EmulatorHandle) -> None:
        """A planned failover to the DR region makes its server primary, without data loss."""
        result = await sql.failover_group(FailoverSqlGroupInput(plan.name, GROUP, plan.dr_region, MODE_PLANNED))
        assert result.changed
        assert result.mode == MODE_PLANNED
        assert not result.data_loss_possible
        assert result.primary_region == plan.dr_region
        assert {s.region: s.role for s in result.servers} == {
            plan.dr_region: "Primary",
            plan.primary_region: "Secondary",
        }
        state = group_state(emulator)
        assert state["primary_region"] == plan.dr_region
        assert state["failovers"][-1]["mode"] == "planned"
        assert state["failovers"][-1]["data_loss_seconds"] == 0.0

    async def test_second_run_issues_no_second_failover(
        self, sql: SqlActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """Running the activity twice sends exactly one failover request; the rerun reports no change."""
        start = emulator.last_seq()
        request = FailoverSqlGroupInput(plan.name, GROUP, plan.dr_region, MODE_PLANNED)
        first = await sql.failover_group(request)
        second = await sql.failover_group(request)
        assert first.changed
        assert not second.changed
        assert second.mode == MODE_NONE
        assert second.primary_region == plan.dr_region
        assert len(emulator.mutations(start, FAILOVER)) == 1

    async def test_refused_while_partner_region_is_down(
        self, sql: SqlActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """With the primary's region down a planned failover stops at once with Azure's reason."""
        emulator.region(plan.primary_region, "down")
        with pytest.raises(ApplicationError) as caught:
            await sql.failover_group(FailoverSqlGroupInput(plan.name, GROUP, plan.dr_region, MODE_PLANNED))
        message = str(caught.value)
        assert caught.value.non_retryable
        assert "PlannedFailoverTimedOut" in message
        assert GROUP in message
        assert plan.sql.failover_groups[0].servers[plan.dr_region] in message
        assert group_state(emulator)["primary_region"] == plan.primary_region

    async def test_partner_lost_mid_operation_fails_the_operation(
        self, sql: SqlActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """An accepted planned failover whose partner goes down before it completes ends Failed, non-retryable."""
        emulator.latency({FAILOVER: 1.0})
        start = emulator.last_seq()
        task = asyncio.create_task(
            sql.failover_group(FailoverSqlGroupInput(plan.name, GROUP, plan.dr_region, MODE_PLANNED))
        )
        for _ in range(100):  # until the failover POST has been accepted
            if emulator.mutations(start, FAILOVER):
                break
            await asyncio.sleep(0.05)
        await asyncio.to_thread(emulator.region, plan.primary_region, "down")
        with pytest.raises(ApplicationError) as caught:
            await task
        assert caught.value.non_retryable
        assert "the operation failed: PlannedFailoverTimedOut" in str(caught.value)
        assert group_state(emulator)["primary_region"] == plan.primary_region

    async def test_failover_posted_on_the_primary_is_rejected(self, clients: AzureClients, plan: DrPlan) -> None:
        """Azure's rule: a failover request must go to the secondary server."""
        spec = plan.sql.failover_groups[0]
        with pytest.raises(HttpResponseError) as caught:
            await clients.sql.failover_groups.begin_failover(
                resource_group_name=spec.resource_group,
                server_name=spec.servers[plan.primary_region],
                failover_group_name=spec.name,
            )
        assert caught.value.status_code == 400
        assert caught.value.error is not None
        assert caught.value.error.code == "FailoverGroupFailoverRequestOnPrimary"


class TestForcedFailover:
    async def test_works_while_partner_is_down_and_records_the_data_loss_window(
        self, sql: SqlActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A forced failover succeeds during the outage; the replication lag at that moment is the data lost."""
        set_lag(emulator, 12.5)
        emulator.region(plan.primary_region, "down")
        result = await sql.failover_group(FailoverSqlGroupInput(plan.name, GROUP, plan.dr_region, MODE_FORCED))
        assert result.changed
        assert result.mode == MODE_FORCED
        assert result.data_loss_possible
        assert result.primary_region == plan.dr_region
        last = group_state(emulator)["failovers"][-1]
        assert last["mode"] == "forced"
        assert last["partner_down"] is True
        assert last["data_loss_seconds"] == 12.5

    async def test_try_planned_falls_back_to_forced_when_partner_is_down(
        self, sql: SqlActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """tryPlannedBeforeForcedFailover fails over with data loss when the primary cannot be reached."""
        set_lag(emulator, 3.0)
        emulator.region(plan.primary_region, "down")
        result = await sql.failover_group(FailoverSqlGroupInput(plan.name, GROUP, plan.dr_region, MODE_TRY_PLANNED))
        assert result.primary_region == plan.dr_region
        assert result.data_loss_possible
        last = group_state(emulator)["failovers"][-1]
        assert last["mode"] == "forced"
        assert last["requested"] == "try_planned"
        assert last["data_loss_seconds"] == 3.0


class TestPointInTimeRestore:
    async def test_request_reaches_azure_with_mode_source_and_time(
        self, sql: SqlActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """The restore PUTs createMode PointInTimeRestore with the primary copy's id and the requested time."""
        point = hours_ago(2)
        result = await sql.restore_database_pitr(
            RestoreDatabasePitrInput(plan.name, GROUP, "tenants", "tenants-restore", point)
        )
        assert result.created
        assert result.status == "Online"
        assert result.source_database_id == source_id(plan, plan.primary_region)
        state = emulator.state()["sql"]["databases"][result.database_id]
        request = state["create_request"]
        assert request["createMode"] == "PointInTimeRestore"
        assert request["sourceDatabaseId"] == source_id(plan, plan.primary_region)
        sent = dt.datetime.fromisoformat(request["restorePointInTime"].replace("Z", "+00:00"))
        assert abs((sent - dt.datetime.fromisoformat(point)).total_seconds()) < 0.001
        assert state["tags"] == {TAG_SOURCE: result.source_database_id, TAG_POINT: result.point_in_time}

    async def test_restores_on_the_current_primary_after_a_failover(
        self, sql: SqlActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """After failover the restore uses the new primary's copy (geo-secondaries cannot be restored)."""
        await sql.failover_group(FailoverSqlGroupInput(plan.name, GROUP, plan.dr_region, MODE_PLANNED))
        result = await sql.restore_database_pitr(
            RestoreDatabasePitrInput(plan.name, GROUP, "tenants", "tenants-restore", hours_ago(1))
        )
        assert result.region == plan.dr_region
        assert result.source_database_id == source_id(plan, plan.dr_region)

    async def test_second_run_returns_the_existing_restore(
        self, sql: SqlActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A rerun with the same source and time finds the restored database and sends no second PUT."""
        start = emulator.last_seq()
        request = RestoreDatabasePitrInput(plan.name, GROUP, "tenants", "tenants-restore", hours_ago(3))
        first = await sql.restore_database_pitr(request)
        second = await sql.restore_database_pitr(request)
        assert first.created
        assert not second.created
        assert second.database_id == first.database_id
        assert len(emulator.mutations(start, CREATE)) == 1

    async def test_existing_target_from_another_restore_is_refused(self, sql: SqlActivities, plan: DrPlan) -> None:
        """A target name already used by a restore of another point in time fails instead of overwriting."""
        await sql.restore_database_pitr(
            RestoreDatabasePitrInput(plan.name, GROUP, "tenants", "t-restore", hours_ago(3))
        )
        with pytest.raises(ApplicationError) as caught:
            await sql.restore_database_pitr(
                RestoreDatabasePitrInput(plan.name, GROUP, "tenants", "t-restore", hours_ago(5))
            )
        assert caught.value.non_retryable
        assert caught.value.type == "RestoreTargetExists"

    async def test_point_outside_retention_is_a_non_retryable_400(
        self, sql: SqlActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A point older than the 7-day retention window is refused by Azure with InvalidPointInTime."""
        with pytest.raises(ApplicationError) as caught:
            await sql.restore_database_pitr(
                RestoreDatabasePitrInput(plan.name, GROUP, "tenants", "tenants-old", hours_ago(24 * 10))
            )
        assert caught.value.non_retryable
        assert "400 InvalidPointInTime" in str(caught.value)
        assert "tenants-old" in str(caught.value)
        assert not any(d["name"] == "tenants-old" for d in emulator.state()["sql"]["databases"].values())

    async def test_restore_into_a_down_region_is_retryable(
        self, sql: SqlActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A restore on a server whose region is down fails with a retryable 503."""
        emulator.region(plan.primary_region, "down")
        with pytest.raises(ApplicationError) as caught:
            await sql.restore_database_pitr(
                RestoreDatabasePitrInput(
                    plan.name, GROUP, "tenants", "tenants-r", hours_ago(1), region=plan.primary_region
                )
            )
        assert not caught.value.non_retryable
        assert "503" in str(caught.value)


class TestRetriesAndErrors:
    async def test_throttling_is_retried_after_retry_after(
        self, sql: SqlActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A 429 with Retry-After is retried by the client and the read succeeds."""
        start = emulator.last_seq()
        emulator.fault("FailoverGroups_Get", 429, count=1, retry_after=1)
        view = await sql.get_failover_group(GetFailoverGroupInput(plan.name, GROUP))
        assert view.primary_region == plan.primary_region
        reads = [e for e in emulator.journal(start) if e["operation"] == "FailoverGroups_Get"]
        assert [e["status"] for e in reads[:2]] == [429, 200]
        assert dt.datetime.fromisoformat(reads[1]["time"].replace("Z", "+00:00")) - dt.datetime.fromisoformat(
            reads[0]["time"].replace("Z", "+00:00")
        ) >= dt.timedelta(seconds=0.9)

    async def test_service_unavailable_is_retried(
        self, sql: SqlActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """Two 503 answers in a row are retried and the failover still completes once."""
        start = emulator.last_seq()
        emulator.fault(FAILOVER, 503, count=2)
        result = await sql.failover_group(FailoverSqlGroupInput(plan.name, GROUP, plan.dr_region, MODE_PLANNED))
        assert result.changed
        attempts = [e["status"] for e in emulator.journal(start) if e["operation"] == FAILOVER]
        assert attempts == [503, 503, 202]

    async def test_forbidden_is_non_retryable_and_names_the_group(
        self, sql: SqlActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A 403 stops at once with a message naming the failover group and the missing role."""
        emulator.fault("FailoverGroups_Get", 403, count=5)
        with pytest.raises(ApplicationError) as caught:
            await sql.get_failover_group(GetFailoverGroupInput(plan.name, GROUP))
        assert caught.value.non_retryable
        assert "403" in str(caught.value)
        assert f"'{GROUP}'" in str(caught.value)
        assert "RBAC" in str(caught.value)

    async def test_missing_group_is_non_retryable_and_names_it(self, plan: DrPlan, emulator: EmulatorHandle) -> None:
        """A plan naming a failover group Azure does not have gets a non-retryable 404 naming it."""
        spec = dataclasses.replace(plan.sql.failover_groups[0], name="fog-missing")
        wrong = dataclasses.replace(plan, sql=dataclasses.replace(plan.sql, failover_groups=(spec,)))
        estates = Estates([wrong], emulator.connection())
        try:
            with pytest.raises(ApplicationError) as caught:
                await SqlActivities(estates).get_failover_group(GetFailoverGroupInput(plan.name, "fog-missing"))
        finally:
            await estates.close()
        assert caught.value.non_retryable
        assert "404" in str(caught.value)
        assert "fog-missing" in str(caught.value)


class TestConcurrentAttempts:
    async def test_attempt_without_the_token_waits_for_the_running_failover(
        self, sql: SqlActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """An attempt that never saw the first one's heartbeat gets FailoverGroupBusy and waits instead of failing."""
        emulator.latency({FAILOVER: 1.0})
        start = emulator.last_seq()
        request = FailoverSqlGroupInput(plan.name, GROUP, plan.dr_region, MODE_PLANNED)
        first = asyncio.create_task(sql.failover_group(request))
        for _ in range(100):  # until the first attempt's POST has been accepted
            if emulator.mutations(start, FAILOVER):
                break
            await asyncio.sleep(0.05)
        second = await sql.failover_group(request)
        assert (await first).changed
        assert second.primary_region == plan.dr_region
        assert [e["status"] for e in emulator.journal(start) if e["operation"] == FAILOVER] == [202, 409]


async def interrupted_after_heartbeat(sql: SqlActivities, request: FailoverSqlGroupInput) -> list[Any]:
    """Run one attempt until its first LRO heartbeat, cancel it there, and return the heartbeat
    details as the worker would hand them to the next attempt (through the payload converter)."""
    beats: list[LroHeartbeat] = []
    first = ActivityEnvironment()

    def on_heartbeat(*details: Any) -> None:
        for detail in details:
            if isinstance(detail, LroHeartbeat):
                beats.append(detail)
                first.cancel()

    first.on_heartbeat = on_heartbeat
    with pytest.raises(asyncio.CancelledError):
        await first.run(sql.failover_group, request)
    assert beats
    converter = DataConverter.default.payload_converter
    return converter.from_payloads(converter.to_payloads([beats[0]]))


def next_attempt(details: list[Any]) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(ActivityEnvironment.default_info(), attempt=2, heartbeat_details=details)
    return env


class TestResumeFromHeartbeat:
    async def test_interrupted_failover_resumes_from_the_heartbeated_token(
        self, sql: SqlActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A retried attempt picks up the first attempt's operation from its heartbeat: one failover POST in all."""
        emulator.latency({FAILOVER: 1.0})
        start = emulator.last_seq()
        request = FailoverSqlGroupInput(plan.name, GROUP, plan.dr_region, MODE_PLANNED)
        details = await interrupted_after_heartbeat(sql, request)
        assert group_state(emulator)["busy"] is True

        result = await next_attempt(details).run(sql.failover_group, request)

        assert result.changed
        assert result.primary_region == plan.dr_region
        assert len(emulator.mutations(start, FAILOVER)) == 1

    async def test_resumed_attempt_after_completion_reports_the_change(
        self, sql: SqlActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """When the interrupted failover finished before the retry, the retry reports it as this activity's change."""
        emulator.latency({FAILOVER: 0.3})
        start = emulator.last_seq()
        request = FailoverSqlGroupInput(plan.name, GROUP, plan.dr_region, MODE_PLANNED)
        details = await interrupted_after_heartbeat(sql, request)
        await asyncio.sleep(0.5)
        assert group_state(emulator)["primary_region"] == plan.dr_region

        result = await next_attempt(details).run(sql.failover_group, request)

        assert result.changed
        assert result.mode == MODE_PLANNED
        assert len(emulator.mutations(start, FAILOVER)) == 1


async def restored(sql: SqlActivities, plan: DrPlan, name: str = "projections-t1-restore") -> RestoreDatabasePitrResult:
    return await sql.restore_database_pitr(
        RestoreDatabasePitrInput(plan.name, GROUP, "projections", name, hours_ago(1))
    )


class TestDeleteDatabase:
    async def test_restore_then_delete(
        self, sql: SqlActivities, clients: AzureClients, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A point-in-time restore's copy is deleted with one DELETE and Azure no longer has it."""
        copy = await restored(sql, plan)
        start = emulator.last_seq()
        result = await sql.delete_database(DeleteDatabaseInput(plan.name, copy.database, server=copy.server))
        assert result.changed
        assert result.deleted == (copy.database_id,)
        assert result.servers == (copy.server,)
        assert len(emulator.mutations(start, DELETE)) == 1
        assert copy.database_id not in emulator.state()["sql"]["databases"]
        with pytest.raises(HttpResponseError) as caught:
            await clients.sql.databases.get(
                resource_group_name=plan.sql.failover_groups[0].resource_group,
                server_name=copy.server,
                database_name=copy.database,
            )
        assert caught.value.status_code == 404

    async def test_second_delete_sends_no_mutating_call(
        self, sql: SqlActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """Deleting a database that is already gone is a no-op: no mutating request reaches Azure."""
        copy = await restored(sql, plan)
        request = DeleteDatabaseInput(plan.name, copy.database, server=copy.server)
        await sql.delete_database(request)
        middle = emulator.last_seq()
        again = await sql.delete_database(request)
        assert not again.changed
        assert again.deleted == ()
        assert emulator.mutations(middle) == []

    async def test_by_failover_group_finds_the_copy_on_either_server(
        self, sql: SqlActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """Given only the failover group, each of its servers is read and the copy on the primary is deleted."""
        copy = await restored(sql, plan)
        start = emulator.last_seq()
        result = await sql.delete_database(DeleteDatabaseInput(plan.name, copy.database, failover_group=GROUP))
        assert result.deleted == (copy.database_id,)
        assert set(result.servers) == set(plan.sql.failover_groups[0].servers.values())
        deletes = emulator.mutations(start, DELETE)
        assert [copy.server in e["path"] for e in deletes] == [True]

    async def test_waits_for_a_running_restore_before_deleting(
        self, sql: SqlActivities, clients: AzureClients, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """Cleaning up after an abandoned restore that is still running waits for it to settle, then deletes once."""
        emulator.latency({CREATE: 0.5})
        spec = plan.sql.failover_groups[0]
        server = spec.servers[plan.primary_region]
        await clients.sql.databases.begin_create_or_update(
            resource_group_name=spec.resource_group,
            server_name=server,
            database_name="projections-abandoned",
            parameters=Database(
                location=plan.primary_region,
                properties=DatabaseProperties(
                    create_mode="PointInTimeRestore",
                    source_database_id=source_id(plan, plan.primary_region, "projections"),
                    restore_point_in_time=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1),
                ),
            ),
        )
        start = emulator.last_seq()
        result = await sql.delete_database(DeleteDatabaseInput(plan.name, "projections-abandoned", server=server))
        assert result.changed
        assert [e["status"] for e in emulator.journal(start) if e["operation"] == DELETE] == [202]
        assert not any(d["name"] == "projections-abandoned" for d in emulator.state()["sql"]["databases"].values())

    async def test_refuses_the_plans_own_database(
        self, sql: SqlActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """The restore's source (a replicated database of the plan) is refused before any call to Azure."""
        start = emulator.last_seq()
        with pytest.raises(ApplicationError) as caught:
            await sql.delete_database(DeleteDatabaseInput(plan.name, "projections", failover_group=GROUP))
        assert caught.value.non_retryable
        assert caught.value.type == "DatabaseProtected"
        assert "'projections'" in str(caught.value)
        assert emulator.journal(start) == []

    async def test_refuses_a_database_azure_reports_in_a_failover_group(
        self, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A failover group member the plan does not list is still refused, from Azure's own answer."""
        audit = next(g for g in plan.sql.failover_groups if g.name == "fog-audit")
        groups = tuple(dataclasses.replace(g, databases=()) if g is audit else g for g in plan.sql.failover_groups)
        unlisted = dataclasses.replace(plan, sql=dataclasses.replace(plan.sql, failover_groups=groups))
        estates = Estates([unlisted], emulator.connection())
        start = emulator.last_seq()
        try:
            with pytest.raises(ApplicationError) as caught:
                await SqlActivities(estates).delete_database(
                    DeleteDatabaseInput(plan.name, "audit", failover_group=audit.name)
                )
        finally:
            await estates.close()
        assert caught.value.non_retryable
        assert caught.value.type == "DatabaseProtected"
        assert "failover group 'fog-audit'" in str(caught.value)
        assert emulator.mutations(start) == []

    async def test_refuses_a_database_a_tenant_reads_from(
        self, sql: SqlActivities, estates: Estates, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A promoted copy (a tenant's projections point at it) is refused until the tenant points back."""
        copy = await restored(sql, plan)
        ops = PlatformActivities(estates)
        tenant = plan.tenants[0].id
        await ops.set_tenant_database(SetTenantDatabaseInput(plan.name, tenant, copy.database, "restore promoted"))
        start = emulator.last_seq()
        request = DeleteDatabaseInput(plan.name, copy.database, server=copy.server)
        with pytest.raises(ApplicationError) as caught:
            await sql.delete_database(request)
        assert caught.value.non_retryable
        assert caught.value.type == "DatabaseInUse"
        assert tenant in str(caught.value)
        assert emulator.mutations(start) == []

        await ops.set_tenant_database(
            SetTenantDatabaseInput(plan.name, tenant, "projections", "restore undone", expected_current=copy.database)
        )
        assert (await sql.delete_database(request)).changed

    async def test_server_outside_the_plan_is_refused(self, sql: SqlActivities, plan: DrPlan) -> None:
        """A server the plan does not name stops at once, naming the plan's servers."""
        with pytest.raises(ApplicationError) as caught:
            await sql.delete_database(DeleteDatabaseInput(plan.name, "projections-x", server="sql-elsewhere"))
        assert caught.value.non_retryable
        assert plan.sql.failover_groups[0].servers[plan.primary_region] in str(caught.value)
