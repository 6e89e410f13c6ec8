"""Azure Cosmos DB activities against the emulator, through the real aio SDK over HTTPS."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.cosmosdb.models import (
    DatabaseAccountCreateUpdateParameters,
    DatabaseAccountCreateUpdateProperties,
    FailoverPolicies,
    FailoverPolicy,
    Location,
    RestoreParameters,
)
from temporalio.exceptions import ApplicationError

from activities.azure import AzureClients, Estates, azure_call
from activities.cosmos import CosmosActivities
from domain.messages.cosmos import (
    DeleteCosmosAccountInput,
    GetCosmosAccountInput,
    RestoreCosmosAccountInput,
    SetCosmosWriteRegionInput,
)
from domain.plan import DrPlan
from tests.conftest import EmulatorHandle

PRIORITY_CHANGE = "DatabaseAccounts_FailoverPriorityChange"
CREATE = "DatabaseAccounts_CreateOrUpdate"
DELETE = "DatabaseAccounts_Delete"


@pytest.fixture
def cosmos(estates: Estates) -> CosmosActivities:
    return CosmosActivities(estates)


def account_state(emulator: EmulatorHandle, name: str) -> dict[str, Any]:
    state: dict[str, Any] = emulator.state()["cosmos"]["accounts"][name]
    return state


def restorable_id(emulator: EmulatorHandle, account: str) -> str:
    return str(next(r["id"] for r in emulator.state()["cosmos"]["restorable_accounts"] if r["account"] == account))


def hours_ago(hours: float) -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours)).isoformat()


async def change_priorities(clients: AzureClients, plan: DrPlan, policies: list[tuple[str, int]]) -> None:
    """Send a raw failover priority change, mapped the way activities map errors."""
    body = FailoverPolicies(
        failover_policies=[FailoverPolicy(location_name=n, failover_priority=p) for n, p in policies]
    )
    async with azure_call(f"Cosmos DB account '{plan.cosmos.account}'", "change priorities of"):
        poller = await clients.cosmos.database_accounts.begin_failover_priority_change(
            resource_group_name=plan.cosmos.resource_group, account_name=plan.cosmos.account, failover_parameters=body
        )
        await poller.result()


async def create_account(
    clients: AzureClients, plan: DrPlan, name: str, parameters: DatabaseAccountCreateUpdateParameters
) -> None:
    """Send a raw account PUT and wait for it, mapped the way activities map errors."""
    async with azure_call(f"Cosmos DB account '{name}'", "create"):
        poller = await clients.cosmos.database_accounts.begin_create_or_update(
            resource_group_name=plan.cosmos.resource_group, account_name=name, create_update_parameters=parameters
        )
        await poller.result()


class TestReadAccount:
    async def test_reports_regions_in_priority_order(self, cosmos: CosmosActivities, plan: DrPlan) -> None:
        """The account writes in the plan's first region and lists every region with its priority."""
        view = await cosmos.get_account(GetCosmosAccountInput(plan.name))
        assert view.account == plan.cosmos.account
        assert view.write_region == plan.cosmos.regions[0]
        assert [(r.region, r.priority, r.is_write) for r in view.regions] == [
            (plan.cosmos.regions[0], 0, True),
            (plan.cosmos.regions[1], 1, False),
        ]
        assert view.provisioning_state == "Succeeded"


class TestWriteRegion:
    async def test_moves_the_write_region(
        self, cosmos: CosmosActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """Setting the DR region as write region gives it priority 0 once the operation completes."""
        result = await cosmos.set_write_region(SetCosmosWriteRegionInput(plan.name, plan.dr_region))
        assert result.changed
        assert result.write_region == plan.dr_region
        assert [r.region for r in result.regions] == [plan.dr_region, plan.primary_region]
        state = account_state(emulator, plan.cosmos.account)
        assert state["write_region"] == plan.dr_region
        assert state["failovers"][-1]["data_loss_seconds"] == 0.0

    async def test_second_run_sends_no_second_change(
        self, cosmos: CosmosActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """Running the activity twice issues exactly one failover priority change."""
        start = emulator.last_seq()
        first = await cosmos.set_write_region(SetCosmosWriteRegionInput(plan.name, plan.dr_region))
        second = await cosmos.set_write_region(SetCosmosWriteRegionInput(plan.name, plan.dr_region))
        assert first.changed
        assert not second.changed
        assert len(emulator.mutations(start, PRIORITY_CHANGE)) == 1

    async def test_attempt_without_the_token_waits_for_the_running_change(
        self, cosmos: CosmosActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A second attempt meeting the first one's running change (412) waits for it instead of failing."""
        emulator.latency({PRIORITY_CHANGE: 1.0})
        start = emulator.last_seq()
        request = SetCosmosWriteRegionInput(plan.name, plan.dr_region)
        first = asyncio.create_task(cosmos.set_write_region(request))
        for _ in range(100):  # until the first attempt's POST has been accepted
            if emulator.mutations(start, PRIORITY_CHANGE):
                break
            await asyncio.sleep(0.05)
        second = await cosmos.set_write_region(request)
        assert (await first).changed
        assert second.write_region == plan.dr_region
        assert [e["status"] for e in emulator.journal(start) if e["operation"] == PRIORITY_CHANGE] == [202, 412]

    async def test_move_away_from_a_down_region_records_the_replication_lag(
        self, cosmos: CosmosActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """With the write region down, the account's replication lag is recorded as the data-loss window."""
        emulator.control.put("/cosmos/lag", json={"account": plan.cosmos.account, "seconds": 7}).raise_for_status()
        emulator.region(plan.primary_region, "down")
        await cosmos.set_write_region(SetCosmosWriteRegionInput(plan.name, plan.dr_region))
        last = account_state(emulator, plan.cosmos.account)["failovers"][-1]
        assert last["previous_write_region_down"] is True
        assert last["data_loss_seconds"] == 7.0

    async def test_priority_list_missing_a_region_is_a_non_retryable_400(
        self, clients: AzureClients, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """Azure's rule: the list must name every region of the account; a partial one is refused."""
        with pytest.raises(ApplicationError) as caught:
            await change_priorities(clients, plan, [(plan.dr_region, 0)])
        assert caught.value.non_retryable
        assert "400 BadRequest" in str(caught.value)
        assert "missing" in str(caught.value)
        assert account_state(emulator, plan.cosmos.account)["write_region"] == plan.primary_region

    async def test_duplicate_priorities_are_refused(self, clients: AzureClients, plan: DrPlan) -> None:
        """Priorities must be exactly 0..n-1."""
        with pytest.raises(ApplicationError) as caught:
            await change_priorities(clients, plan, [(plan.dr_region, 0), (plan.primary_region, 0)])
        assert caught.value.non_retryable
        assert "priorities" in str(caught.value)

    async def test_region_outside_the_account_is_refused(self, cosmos: CosmosActivities, plan: DrPlan) -> None:
        """The activity refuses a region the account does not have, before calling Azure."""
        with pytest.raises(ApplicationError) as caught:
            await cosmos.set_write_region(SetCosmosWriteRegionInput(plan.name, "northeurope"))
        assert caught.value.non_retryable
        assert caught.value.type == "InvalidInput"


class TestRestore:
    async def test_request_carries_restore_mode_source_and_timestamp(
        self, cosmos: CosmosActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """The PUT uses createMode Restore with the restorable account's id and the requested time."""
        point = hours_ago(2)
        result = await cosmos.restore_account(RestoreCosmosAccountInput(plan.name, "cosmos-restore", point))
        assert result.created
        assert result.provisioning_state == "Succeeded"
        assert result.restore_source == restorable_id(emulator, plan.cosmos.account)
        request = emulator.state()["cosmos"]["restore_requests"][-1]
        assert request["account"] == "cosmos-restore"
        assert request["createMode"] == "Restore"
        params = request["restoreParameters"]
        assert params["restoreMode"] == "PointInTime"
        assert params["restoreSource"] == restorable_id(emulator, plan.cosmos.account)
        sent = dt.datetime.fromisoformat(params["restoreTimestampInUtc"].replace("Z", "+00:00"))
        assert abs((sent - dt.datetime.fromisoformat(point)).total_seconds()) < 0.001
        assert account_state(emulator, "cosmos-restore")["provisioning_state"] == "Succeeded"

    async def test_second_run_returns_the_existing_restore(
        self, cosmos: CosmosActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A rerun with the same source and time finds the restored account and sends no second PUT."""
        start = emulator.last_seq()
        request = RestoreCosmosAccountInput(plan.name, "cosmos-restore", hours_ago(1))
        first = await cosmos.restore_account(request)
        second = await cosmos.restore_account(request)
        assert first.created
        assert not second.created
        assert second.account_id == first.account_id
        assert len(emulator.mutations(start, CREATE)) == 1

    async def test_deleted_account_restores_within_its_window(
        self, cosmos: CosmosActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A deleted account is restorable to a time before its deletion."""
        old = f"{plan.cosmos.account}-old"
        result = await cosmos.restore_account(
            RestoreCosmosAccountInput(plan.name, "cosmos-undelete", hours_ago(24 * 12), source_account=old)
        )
        assert result.restore_source == restorable_id(emulator, old)

    async def test_time_outside_the_window_is_refused(self, cosmos: CosmosActivities, plan: DrPlan) -> None:
        """A point before the 30-day continuous-backup window fails at once, naming the window."""
        with pytest.raises(ApplicationError) as caught:
            await cosmos.restore_account(RestoreCosmosAccountInput(plan.name, "cosmos-r", hours_ago(24 * 40)))
        assert caught.value.non_retryable
        assert "restorable windows" in str(caught.value)

    async def test_azure_refuses_a_timestamp_outside_the_window(
        self, clients: AzureClients, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """The emulator itself validates the timestamp against the restorable account: 400, non-retryable."""
        parameters = DatabaseAccountCreateUpdateParameters(
            location="eastus",
            properties=DatabaseAccountCreateUpdateProperties(
                locations=[Location(location_name="eastus", failover_priority=0)],
                create_mode="Restore",
                restore_parameters=RestoreParameters(
                    restore_mode="PointInTime",
                    restore_source=restorable_id(emulator, plan.cosmos.account),
                    restore_timestamp_in_utc=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
                ),
            ),
        )
        with pytest.raises(ApplicationError) as caught:
            await create_account(clients, plan, "cosmos-future", parameters)
        assert caught.value.non_retryable
        assert "outside the restorable window" in str(caught.value)


class TestRetriesAndErrors:
    async def test_throttling_and_unavailability_are_retried(
        self, cosmos: CosmosActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A 429 with Retry-After and a 503 are retried and the read succeeds."""
        start = emulator.last_seq()
        emulator.fault("DatabaseAccounts_Get", 429, count=1, retry_after=1)
        emulator.fault("DatabaseAccounts_Get", 503, count=1)
        view = await cosmos.get_account(GetCosmosAccountInput(plan.name))
        assert view.write_region == plan.primary_region
        statuses = [e["status"] for e in emulator.journal(start) if e["operation"] == "DatabaseAccounts_Get"]
        assert statuses == [429, 503, 200]

    async def test_forbidden_is_non_retryable_and_names_the_account(
        self, cosmos: CosmosActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A 403 stops at once with a message naming the account."""
        emulator.fault("DatabaseAccounts_Get", 403, count=5)
        with pytest.raises(ApplicationError) as caught:
            await cosmos.get_account(GetCosmosAccountInput(plan.name))
        assert caught.value.non_retryable
        assert "403" in str(caught.value)
        assert plan.cosmos.account in str(caught.value)

    async def test_missing_account_is_non_retryable_and_names_it(self, plan: DrPlan, emulator: EmulatorHandle) -> None:
        """A plan naming an account Azure does not have gets a non-retryable 404 naming it."""
        wrong = dataclasses.replace(plan, cosmos=dataclasses.replace(plan.cosmos, account="cosmos-missing"))
        estates = Estates([wrong], emulator.connection())
        try:
            with pytest.raises(ApplicationError) as caught:
                await CosmosActivities(estates).get_account(GetCosmosAccountInput(plan.name))
        finally:
            await estates.close()
        assert caught.value.non_retryable
        assert "404" in str(caught.value)
        assert "cosmos-missing" in str(caught.value)


class TestDeleteAccount:
    async def test_restore_then_delete(
        self, cosmos: CosmosActivities, clients: AzureClients, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A restored account is deleted with one DELETE; Azure then answers 404 for it."""
        copy = await cosmos.restore_account(RestoreCosmosAccountInput(plan.name, "cosmos-restore", hours_ago(1)))
        start = emulator.last_seq()
        result = await cosmos.delete_account(DeleteCosmosAccountInput(plan.name, copy.account))
        assert result.deleted
        assert result.account_id == copy.account_id
        assert len(emulator.mutations(start, DELETE)) == 1
        assert "cosmos-restore" not in emulator.state()["cosmos"]["accounts"]
        with pytest.raises(HttpResponseError) as caught:
            await clients.cosmos.database_accounts.get(
                resource_group_name=plan.cosmos.resource_group, account_name=copy.account
            )
        assert caught.value.status_code == 404

    async def test_second_delete_sends_no_mutating_call(
        self, cosmos: CosmosActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """Deleting an account that is already gone is a no-op: no mutating request reaches Azure."""
        await cosmos.restore_account(RestoreCosmosAccountInput(plan.name, "cosmos-restore", hours_ago(1)))
        request = DeleteCosmosAccountInput(plan.name, "cosmos-restore")
        await cosmos.delete_account(request)
        middle = emulator.last_seq()
        again = await cosmos.delete_account(request)
        assert not again.deleted
        assert emulator.mutations(middle) == []

    async def test_waits_for_a_running_restore_before_deleting(
        self, cosmos: CosmosActivities, clients: AzureClients, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """Cleaning up after an abandoned restore still provisioning waits for it, then deletes once."""
        emulator.latency({CREATE: 0.5})
        parameters = DatabaseAccountCreateUpdateParameters(
            location="eastus",
            properties=DatabaseAccountCreateUpdateProperties(
                locations=[Location(location_name="eastus", failover_priority=0)],
                create_mode="Restore",
                restore_parameters=RestoreParameters(
                    restore_mode="PointInTime",
                    restore_source=restorable_id(emulator, plan.cosmos.account),
                    restore_timestamp_in_utc=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1),
                ),
            ),
        )
        await clients.cosmos.database_accounts.begin_create_or_update(
            resource_group_name=plan.cosmos.resource_group,
            account_name="cosmos-abandoned",
            create_update_parameters=parameters,
        )
        assert account_state(emulator, "cosmos-abandoned")["provisioning_state"] == "Creating"
        start = emulator.last_seq()
        result = await cosmos.delete_account(DeleteCosmosAccountInput(plan.name, "cosmos-abandoned"))
        assert result.deleted
        assert [e["status"] for e in emulator.journal(start) if e["operation"] == DELETE] == [202]

    async def test_attempt_meeting_a_running_delete_waits_for_it(
        self, cosmos: CosmosActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """An attempt that finds the account Deleting waits until it is gone instead of sending a second DELETE."""
        await cosmos.restore_account(RestoreCosmosAccountInput(plan.name, "cosmos-restore", hours_ago(1)))
        emulator.latency({DELETE: 0.5})
        start = emulator.last_seq()
        request = DeleteCosmosAccountInput(plan.name, "cosmos-restore")
        first = asyncio.create_task(cosmos.delete_account(request))
        for _ in range(100):  # until the first attempt's DELETE has been accepted
            if emulator.mutations(start, DELETE):
                break
            await asyncio.sleep(0.05)
        second = await cosmos.delete_account(request)
        assert (await first).deleted
        assert not second.deleted
        assert [e["status"] for e in emulator.journal(start) if e["operation"] == DELETE] == [202]

    async def test_refuses_the_plans_own_account(
        self, cosmos: CosmosActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """The plan's live account is refused before any call to Azure."""
        start = emulator.last_seq()
        with pytest.raises(ApplicationError) as caught:
            await cosmos.delete_account(DeleteCosmosAccountInput(plan.name, plan.cosmos.account.upper()))
        assert caught.value.non_retryable
        assert caught.value.type == "AccountProtected"
        assert emulator.journal(start) == []
        assert account_state(emulator, plan.cosmos.account)["provisioning_state"] == "Succeeded"
