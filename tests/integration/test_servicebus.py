"""Service Bus Geo-DR alias activities against the emulator, through the real aio SDK over HTTPS."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError
from temporalio.exceptions import ApplicationError

from activities.azure import AzureClients, Estates, azure_call
from activities.servicebus import ServiceBusActivities
from domain.messages.servicebus import (
    FailoverAliasInput,
    GetAliasInput,
    PairAliasInput,
    WaitReplicationInput,
)
from domain.plan import DrPlan
from domain.resource_ids import servicebus_namespace
from tests.conftest import EmulatorHandle

FAIL_OVER = "DisasterRecoveryConfigs_FailOver"
CREATE = "DisasterRecoveryConfigs_CreateOrUpdate"


@pytest.fixture
def sb(estates: Estates) -> ServiceBusActivities:
    return ServiceBusActivities(estates)


def namespace_id(plan: DrPlan, region: str) -> str:
    spec = plan.servicebus
    return servicebus_namespace(plan.subscription_id, spec.resource_group, spec.namespaces[region])


def shape_replication(emulator: EmulatorHandle, backlog: int, rate: float) -> None:
    emulator.control.put(
        "/servicebus/replication", json={"backlog": backlog, "rate_per_second": rate}
    ).raise_for_status()


class TestAliasView:
    async def test_initial_alias_is_paired_primary_to_dr(self, sb: ServiceBusActivities, plan: DrPlan) -> None:
        """The estate starts with the alias pointing at the primary namespace, replicating to the DR one."""
        view = await sb.get_alias(GetAliasInput(plan.name))
        by_region = {v.region: v for v in view.namespaces}
        assert view.primary_region == plan.primary_region
        assert view.paired is True
        assert by_region[plan.primary_region].role == "Primary"
        assert by_region[plan.dr_region].role == "Secondary"
        assert by_region[plan.primary_region].partner_namespace == namespace_id(plan, plan.dr_region)
        assert by_region[plan.dr_region].partner_namespace == namespace_id(plan, plan.primary_region)
        assert all(v.provisioning_state == "Succeeded" for v in view.namespaces)
        assert all(v.pending_replication_operations_count == 0 for v in view.namespaces)

    async def test_list_through_the_sdk_returns_the_alias(self, clients: AzureClients, plan: DrPlan) -> None:
        """Listing the primary namespace's configurations yields the plan's alias with its role."""
        spec = plan.servicebus
        items = [
            c
            async for c in clients.servicebus.disaster_recovery_configs.list(
                resource_group_name=spec.resource_group, namespace_name=spec.namespaces[plan.primary_region]
            )
        ]
        assert [c.name for c in items] == [spec.alias]
        assert items[0].properties is not None
        assert items[0].properties.role == "Primary"


class TestFailover:
    async def test_failover_on_the_secondary_flips_roles_and_breaks_the_pairing(
        self, sb: ServiceBusActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """Fail-over leaves the DR namespace PrimaryNotReplicating without partner; the old primary drops the alias."""
        emulator.latency({FAIL_OVER: 0.3})
        result = await sb.failover_alias(FailoverAliasInput(plan.name, plan.dr_region))
        assert result.changed is True
        assert result.role == "PrimaryNotReplicating"
        assert result.duration_seconds >= 0.3
        view = await sb.get_alias(GetAliasInput(plan.name))
        by_region = {v.region: v for v in view.namespaces}
        assert view.primary_region == plan.dr_region
        assert view.paired is False
        assert by_region[plan.dr_region].partner_namespace is None
        assert by_region[plan.primary_region].exists is False

    async def test_failover_on_the_primary_is_refused_with_400(
        self, clients: AzureClients, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """Azure allows fail-over only on the secondary: the primary answers 400 and nothing changes."""
        spec = plan.servicebus
        primary = spec.namespaces[plan.primary_region]
        with pytest.raises(ApplicationError) as caught:
            async with azure_call(f"alias {spec.alias} on {primary}", "fail over"):
                await clients.servicebus.disaster_recovery_configs.fail_over(
                    resource_group_name=spec.resource_group, namespace_name=primary, alias=spec.alias
                )
        assert caught.value.non_retryable is True
        assert "400 BadRequest" in caught.value.message
        assert "secondary" in caught.value.message
        assert primary in caught.value.message
        assert emulator.state()["servicebus"]["namespaces"][primary]["aliases"][spec.alias]["role"] == "Primary"

    async def test_failover_alias_twice_issues_one_failover(
        self, sb: ServiceBusActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A second run finds the DR namespace already primary and sends no mutating request."""
        first = await sb.failover_alias(FailoverAliasInput(plan.name, plan.dr_region))
        since = emulator.last_seq()
        second = await sb.failover_alias(FailoverAliasInput(plan.name, plan.dr_region))
        assert first.changed is True
        assert second.changed is False
        assert emulator.mutations(since, FAIL_OVER) == []
        assert emulator.mutations(since) == []

    async def test_failover_succeeds_while_the_primary_region_is_down(
        self, sb: ServiceBusActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """The point of fail-over: it works when the primary's region is down."""
        emulator.region(plan.primary_region, "down")
        result = await sb.failover_alias(FailoverAliasInput(plan.name, plan.dr_region))
        assert result.primary_namespace == plan.servicebus.namespaces[plan.dr_region]
        assert result.role == "PrimaryNotReplicating"

    async def test_failover_when_the_secondary_region_is_down_is_retryable(
        self, sb: ServiceBusActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A namespace in a down region answers 503, which maps to a retryable error naming it."""
        emulator.region(plan.dr_region, "down")
        with pytest.raises(ApplicationError) as caught:
            await sb.failover_alias(FailoverAliasInput(plan.name, plan.dr_region))
        assert caught.value.non_retryable is False
        assert caught.value.type == "AzureRetryableError"
        assert plan.servicebus.namespaces[plan.dr_region] in caught.value.message

    async def test_safe_failover_is_refused_while_the_primary_is_down(
        self, sb: ServiceBusActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A safe fail-over needs the primary to drain replication, so it is refused when it is down."""
        emulator.region(plan.primary_region, "down")
        with pytest.raises(ApplicationError) as caught:
            await sb.failover_alias(FailoverAliasInput(plan.name, plan.dr_region, safe=True))
        assert caught.value.non_retryable is True
        assert "Safe failover" in caught.value.message


class TestPairing:
    async def test_pair_when_already_paired_sends_nothing(
        self, sb: ServiceBusActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """Pairing from the current primary to the current secondary is already true: no PUT."""
        since = emulator.last_seq()
        result = await sb.pair(PairAliasInput(plan.name, plan.primary_region))
        assert result.changed is False
        assert emulator.mutations(since, CREATE) == []

    async def test_repair_waits_for_replication_to_drain(
        self, sb: ServiceBusActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """Re-pairing from the DR namespace reports a backlog that wait_replication sees fall to zero."""
        await sb.failover_alias(FailoverAliasInput(plan.name, plan.dr_region))
        shape_replication(emulator, backlog=300, rate=400.0)
        emulator.latency({CREATE: 0.2})
        paired = await sb.pair(PairAliasInput(plan.name, plan.dr_region))
        assert paired.changed is True
        assert paired.primary_namespace == plan.servicebus.namespaces[plan.dr_region]
        assert paired.pending_replication_operations_count > 0
        waited = await sb.wait_replication(WaitReplicationInput(plan.name))
        assert waited.initial_pending_count > 0
        assert waited.pending_replication_operations_count == 0
        assert waited.duration_seconds > 0.2
        view = await sb.get_alias(GetAliasInput(plan.name))
        roles = {v.region: v.role for v in view.namespaces}
        assert roles == {plan.dr_region: "Primary", plan.primary_region: "Secondary"}

    async def test_full_failback_cycle_restores_the_original_pairing(
        self, sb: ServiceBusActivities, plan: DrPlan
    ) -> None:
        """Fail over, re-pair from DR, drain, fail back and re-pair: the estate ends as it began."""
        await sb.failover_alias(FailoverAliasInput(plan.name, plan.dr_region))
        await sb.pair(PairAliasInput(plan.name, plan.dr_region))
        await sb.wait_replication(WaitReplicationInput(plan.name))
        back = await sb.failover_alias(FailoverAliasInput(plan.name, plan.primary_region))
        assert back.changed is True
        await sb.pair(PairAliasInput(plan.name, plan.primary_region))
        view = await sb.get_alias(GetAliasInput(plan.name))
        assert view.primary_region == plan.primary_region
        assert {v.region: v.role for v in view.namespaces} == {
            plan.primary_region: "Primary",
            plan.dr_region: "Secondary",
        }

    async def test_pair_is_refused_while_the_partner_region_is_down(
        self, sb: ServiceBusActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """Pairing needs both namespaces: with the partner's region down it fails, non-retryable, naming the alias."""
        await sb.failover_alias(FailoverAliasInput(plan.name, plan.dr_region))
        emulator.region(plan.primary_region, "down")
        with pytest.raises(ApplicationError) as caught:
            await sb.pair(PairAliasInput(plan.name, plan.dr_region))
        assert caught.value.non_retryable is True
        assert "409" in caught.value.message
        assert plan.servicebus.alias in caught.value.message

    async def test_wait_replication_on_an_unpaired_alias_fails_fast(
        self, sb: ServiceBusActivities, plan: DrPlan
    ) -> None:
        """Without a pairing nothing replicates, so waiting is refused at once."""
        await sb.failover_alias(FailoverAliasInput(plan.name, plan.dr_region))
        with pytest.raises(ApplicationError) as caught:
            await sb.wait_replication(WaitReplicationInput(plan.name, timeout_seconds=5))
        assert caught.value.type == "AliasNotPaired"

    async def test_delete_while_paired_is_refused_with_400(self, clients: AzureClients, plan: DrPlan) -> None:
        """Azure refuses to delete an alias whose primary still has a secondary."""
        spec = plan.servicebus
        with pytest.raises(HttpResponseError) as caught:
            await clients.servicebus.disaster_recovery_configs.delete(
                resource_group_name=spec.resource_group,
                namespace_name=spec.namespaces[plan.primary_region],
                alias=spec.alias,
            )
        assert caught.value.status_code == 400
        assert caught.value.error is not None
        assert caught.value.error.code == "BadRequest"
        assert "does not have secondary namespace" in str(caught.value.error.message)


class TestErrorMapping:
    async def test_throttling_and_unavailability_are_retried_to_success(
        self, sb: ServiceBusActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """Injected 429 and 503 answers are retried by the client and the read still succeeds."""
        emulator.fault("DisasterRecoveryConfigs_Get", 429, count=1, retry_after=0.1)
        emulator.fault("DisasterRecoveryConfigs_Get", 503, count=1)
        since = emulator.last_seq()
        view = await sb.get_alias(GetAliasInput(plan.name))
        assert view.primary_region == plan.primary_region
        faults = [e["status"] for e in emulator.journal(since) if e["fault"]]
        assert sorted(faults) == [429, 503]

    async def test_forbidden_is_not_retried_and_names_the_namespace(
        self, sb: ServiceBusActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A 403 stops at once with a message naming the namespace and the missing RBAC role."""
        primary = plan.servicebus.namespaces[plan.primary_region]
        emulator.fault("DisasterRecoveryConfigs_Get", 403, count=5, path_contains=primary)
        with pytest.raises(ApplicationError) as caught:
            await sb.get_alias(GetAliasInput(plan.name))
        assert caught.value.non_retryable is True
        assert caught.value.type == "AzureNonRetryableError"
        assert primary in caught.value.message
        assert "RBAC" in caught.value.message

    async def test_missing_namespace_is_not_retried_and_names_it(
        self, sb: ServiceBusActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """ARM's 404 ResourceNotFound for the namespace is a plan error: non-retryable, naming the namespace."""
        secondary = plan.servicebus.namespaces[plan.dr_region]
        emulator.fault("DisasterRecoveryConfigs_Get", 404, count=5, path_contains=secondary)
        with pytest.raises(ApplicationError) as caught:
            await sb.get_alias(GetAliasInput(plan.name))
        assert caught.value.non_retryable is True
        assert secondary in caught.value.message
        assert "404" in caught.value.message

    async def test_failover_to_a_namespace_without_the_alias_is_refused(
        self, sb: ServiceBusActivities, plan: DrPlan
    ) -> None:
        """After fail-over the old primary no longer holds the alias, so failing over to it needs a re-pair first."""
        await sb.failover_alias(FailoverAliasInput(plan.name, plan.dr_region))
        with pytest.raises(ApplicationError) as caught:
            await sb.failover_alias(FailoverAliasInput(plan.name, plan.primary_region))
        assert caught.value.type == "AliasNotOnNamespace"
        assert caught.value.non_retryable is True
