"""Readiness checks (failover pre-flight and the scheduled run) against the emulator, through the
real aio SDK clients and the ops API over HTTPS."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import ClientAuthenticationError
from temporalio.exceptions import ApplicationError

from activities.azure import Estates
from activities.readiness import ReadinessActivities
from activities.servicebus import ServiceBusActivities
from domain.messages.readiness import (
    CHECK_COSMOS,
    CHECK_CREDENTIALS,
    CHECK_FRONTDOOR,
    CHECK_SERVICEBUS,
    CHECK_SOURCE_REGION,
    CHECK_TARGET_REGION,
    FAIL,
    OK,
    WARN,
    PreflightInput,
    ReadinessCheck,
    ReadinessInput,
    ReadinessReport,
    sql_check_key,
)
from domain.messages.servicebus import FailoverAliasInput
from domain.plan import DrPlan, FailoverGroupSpec, FailoverPolicy, FrontDoorSpec, SqlSpec
from tests.conftest import EmulatorHandle

ALL_KEYS = {
    CHECK_TARGET_REGION,
    CHECK_SOURCE_REGION,
    CHECK_CREDENTIALS,
    CHECK_FRONTDOOR,
    CHECK_SERVICEBUS,
    sql_check_key("fog-tenants"),
    sql_check_key("fog-audit"),
    CHECK_COSMOS,
}


class RejectingCredential(AsyncTokenCredential):
    """A credential whose token request fails, as DefaultAzureCredential does with no identity."""

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        raise ClientAuthenticationError(
            "DefaultAzureCredential failed to retrieve a token from the included credentials."
        )

    async def close(self) -> None:
        return None

    async def __aexit__(self, *args: object) -> None:
        return None


@pytest.fixture
async def make_estates(emulator: EmulatorHandle) -> AsyncIterator[Any]:
    """Build Estates for (possibly modified) plans against the running emulator; closed at the end."""
    made: list[Estates] = []

    def make(plan: DrPlan) -> Estates:
        estates = Estates([plan], emulator.connection())
        made.append(estates)
        return estates

    yield make
    for estates in made:
        await estates.close()


def readiness_for(estates: Estates, **options: Any) -> ReadinessActivities:
    return ReadinessActivities(estates, probe_retry_seconds=0.05, **options)


@pytest.fixture
def readiness(plan: DrPlan, make_estates: Any) -> ReadinessActivities:
    return readiness_for(make_estates(plan))


def by_key(report: ReadinessReport) -> dict[str, ReadinessCheck]:
    return {c.key: c for c in report.checks}


def statuses(report: ReadinessReport) -> dict[str, str]:
    return {c.key: c.status for c in report.checks}


def failover(plan: DrPlan) -> PreflightInput:
    return PreflightInput(plan.name, plan.primary_region, plan.dr_region)


def set_backlog(emulator: EmulatorHandle, backlog: int, rate: float) -> None:
    """Restart the current pairing's replication with ``backlog`` operations still to copy."""
    emulator.control.put(
        "/servicebus/replication", json={"backlog": backlog, "rate_per_second": rate, "restart": True}
    ).raise_for_status()


def without_dr_origin(plan: DrPlan) -> DrPlan:
    origins = dict(plan.frontdoor.origins) | {plan.dr_region: "app-westus-missing"}
    return dataclasses.replace(plan, frontdoor=dataclasses.replace(plan.frontdoor, origins=origins))


def with_extra_group(plan: DrPlan, name: str = "fog-missing") -> DrPlan:
    group = FailoverGroupSpec(name, "rg-dr-data", dict(plan.sql.failover_groups[0].servers), ("ghost",))
    return dataclasses.replace(plan, sql=SqlSpec((*plan.sql.failover_groups, group)))


class TestInitialEstate:
    async def test_every_check_is_ok_for_a_failover_to_dr(self, readiness: ReadinessActivities, plan: DrPlan) -> None:
        """On the initial estate every check of a primary-to-DR pre-flight is OK and both regions are healthy."""
        report = await readiness.preflight(failover(plan))
        assert set(statuses(report)) == ALL_KEYS
        assert statuses(report) == dict.fromkeys(ALL_KEYS, OK), report.checks
        assert report.source_region_healthy is True
        assert report.target_region_healthy is True
        assert (report.from_region, report.to_region) == (plan.primary_region, plan.dr_region)
        assert report.failed == ()
        target = by_key(report)[CHECK_TARGET_REGION].detail
        assert "answered 200" in target
        assert "100% of health probes passed" in target

    async def test_keys_come_in_a_stable_order(self, readiness: ReadinessActivities, plan: DrPlan) -> None:
        """Region checks come first, then credentials, Front Door, Service Bus, each SQL group and Cosmos DB."""
        report = await readiness.preflight(failover(plan))
        assert [c.key for c in report.checks] == [
            CHECK_TARGET_REGION,
            CHECK_SOURCE_REGION,
            CHECK_CREDENTIALS,
            CHECK_FRONTDOOR,
            CHECK_SERVICEBUS,
            sql_check_key("fog-tenants"),
            sql_check_key("fog-audit"),
            CHECK_COSMOS,
        ]

    async def test_scheduled_check_runs_the_same_checks_primary_to_dr(
        self, readiness: ReadinessActivities, plan: DrPlan
    ) -> None:
        """readiness.check reports the pre-flight's checks for the plan's primary-to-DR direction."""
        report = await readiness.check(ReadinessInput(plan.name))
        assert (report.from_region, report.to_region) == (plan.primary_region, plan.dr_region)
        assert statuses(report) == dict.fromkeys(ALL_KEYS, OK)

    async def test_reverse_direction_reports_nothing_to_do(self, readiness: ReadinessActivities, plan: DrPlan) -> None:
        """Towards the current primary region every data service is already there, which is OK."""
        report = await readiness.preflight(PreflightInput(plan.name, plan.dr_region, plan.primary_region))
        checks = by_key(report)
        assert statuses(report) == dict.fromkeys(ALL_KEYS, OK)
        assert "already the primary" in checks[CHECK_SERVICEBUS].detail
        assert "already primary" in checks[sql_check_key("fog-tenants")].detail
        assert "already writes in eastus" in checks[CHECK_COSMOS].detail

    async def test_regions_outside_the_plan_are_refused(self, readiness: ReadinessActivities, plan: DrPlan) -> None:
        """A direction naming a region the plan does not have is an input error, not a report."""
        with pytest.raises(ApplicationError) as caught:
            await readiness.preflight(PreflightInput(plan.name, plan.primary_region, "northeurope"))
        assert caught.value.non_retryable
        assert "northeurope" in caught.value.message


class TestSingleFailures:
    async def test_target_region_down_fails_the_target_check(
        self, readiness: ReadinessActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A down target region's ops gateway answers 503, so target-region FAILs and names what it saw."""
        emulator.region(plan.dr_region, "down")
        report = await readiness.preflight(failover(plan))
        checks = by_key(report)
        assert checks[CHECK_TARGET_REGION].status == FAIL
        assert "503" in checks[CHECK_TARGET_REGION].detail
        assert "regions/westus" in checks[CHECK_TARGET_REGION].detail
        assert report.target_region_healthy is False
        assert report.source_region_healthy is True
        assert checks[CHECK_SOURCE_REGION].status == OK
        # SQL replication stops while the secondary's region is out.
        assert checks[sql_check_key("fog-tenants")].status == WARN
        assert "SUSPENDED" in checks[sql_check_key("fog-tenants")].detail

    async def test_source_region_down_is_a_warning_only(
        self, readiness: ReadinessActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A down source region is expected in an outage: source-region WARNs and every other check stays OK."""
        emulator.region(plan.primary_region, "down")
        report = await readiness.preflight(failover(plan))
        expected = dict.fromkeys(ALL_KEYS, OK) | {CHECK_SOURCE_REGION: WARN}
        assert statuses(report) == expected, report.checks
        assert report.source_region_healthy is False
        assert report.target_region_healthy is True
        assert "503" in by_key(report)[CHECK_SOURCE_REGION].detail
        assert "forced failover" in by_key(report)[sql_check_key("fog-tenants")].detail

    async def test_suspended_sql_replication_warns_when_the_plan_forbids_data_loss(
        self, plan: DrPlan, make_estates: Any, emulator: EmulatorHandle
    ) -> None:
        """With the source region out and no data loss allowed, each SQL group WARNs that failover must wait."""
        strict = dataclasses.replace(plan, failover=FailoverPolicy(allow_data_loss=False))
        emulator.region(plan.primary_region, "down")
        report = await readiness_for(make_estates(strict)).preflight(failover(strict))
        for group in ("fog-tenants", "fog-audit"):
            check = by_key(report)[sql_check_key(group)]
            assert check.status == WARN
            assert "does not allow data loss" in check.detail

    async def test_servicebus_backlog_warns_with_the_count(
        self, readiness: ReadinessActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """Pending replication operations on the pairing make servicebus WARN with their number."""
        set_backlog(emulator, 500, rate=1.0)
        report = await readiness.preflight(failover(plan))
        check = by_key(report)[CHECK_SERVICEBUS]
        assert check.status == WARN
        found = re.search(r"(\d+) replication operation\(s\) pending", check.detail)
        assert found is not None, check.detail
        assert 490 <= int(found.group(1)) <= 500
        assert statuses(report) == dict.fromkeys(ALL_KEYS, OK) | {CHECK_SERVICEBUS: WARN}

    async def test_servicebus_fails_when_the_target_does_not_hold_the_alias(
        self, readiness: ReadinessActivities, plan: DrPlan, make_estates: Any
    ) -> None:
        """After a fail-over broke the pairing, going back fails until the alias is paired again."""
        await ServiceBusActivities(make_estates(plan)).failover_alias(FailoverAliasInput(plan.name, plan.dr_region))
        back = await readiness.preflight(PreflightInput(plan.name, plan.dr_region, plan.primary_region))
        check = by_key(back)[CHECK_SERVICEBUS]
        assert check.status == FAIL
        assert "pair it first" in check.detail
        again = await readiness.preflight(failover(plan))
        assert by_key(again)[CHECK_SERVICEBUS].status == OK
        assert "already the primary" in by_key(again)[CHECK_SERVICEBUS].detail

    async def test_missing_target_origin_fails_frontdoor(
        self, plan: DrPlan, make_estates: Any, emulator: EmulatorHandle
    ) -> None:
        """A plan whose DR origin does not exist in the origin group FAILs frontdoor, naming the origin."""
        broken = without_dr_origin(plan)
        report = await readiness_for(make_estates(broken)).preflight(failover(broken))
        check = by_key(report)[CHECK_FRONTDOOR]
        assert check.status == FAIL
        assert "app-westus-missing" in check.detail
        assert "app-westus" in check.detail  # what the group does have
        assert statuses(report) == dict.fromkeys(ALL_KEYS, OK) | {CHECK_FRONTDOOR: FAIL}

    async def test_missing_source_origin_fails_frontdoor_too(self, plan: DrPlan, make_estates: Any) -> None:
        """Failover also re-prioritises the source origin, so its absence FAILs frontdoor as well."""
        origins = dict(plan.frontdoor.origins) | {plan.primary_region: "app-eastus-missing"}
        broken = dataclasses.replace(plan, frontdoor=FrontDoorSpec("rg-dr-edge", "afd-estate", "og-app", origins))
        report = await readiness_for(make_estates(broken)).preflight(failover(broken))
        check = by_key(report)[CHECK_FRONTDOOR]
        assert check.status == FAIL
        assert "source region eastus" in check.detail

    async def test_missing_failover_group_fails_its_own_check(self, plan: DrPlan, make_estates: Any) -> None:
        """A failover group Azure does not have FAILs its sql check; the plan's real groups stay OK."""
        broken = with_extra_group(plan)
        report = await readiness_for(make_estates(broken)).preflight(failover(broken))
        checks = by_key(report)
        assert checks[sql_check_key("fog-missing")].status == FAIL
        assert "fog-missing" in checks[sql_check_key("fog-missing")].detail
        assert checks[sql_check_key("fog-tenants")].status == OK
        assert checks[sql_check_key("fog-audit")].status == OK
        assert checks[CHECK_CREDENTIALS].status == OK

    async def test_target_server_outside_the_group_fails(self, plan: DrPlan, make_estates: Any) -> None:
        """A group whose target-region server is not one of its servers FAILs, naming that server."""
        audit = plan.sql.failover_groups[1]
        moved = dataclasses.replace(audit, servers=dict(audit.servers) | {plan.dr_region: "sql-estate-westus2"})
        broken = dataclasses.replace(plan, sql=SqlSpec((plan.sql.failover_groups[0], moved)))
        report = await readiness_for(make_estates(broken)).preflight(failover(broken))
        check = by_key(report)[sql_check_key("fog-audit")]
        assert check.status == FAIL
        assert "sql-estate-westus2" in check.detail
        assert by_key(report)[sql_check_key("fog-tenants")].status == OK

    async def test_missing_cosmos_account_fails_cosmos(self, plan: DrPlan, make_estates: Any) -> None:
        """A Cosmos DB account Azure does not have FAILs the cosmos check with the 404's text."""
        broken = dataclasses.replace(plan, cosmos=dataclasses.replace(plan.cosmos, account="cosmos-ghost"))
        report = await readiness_for(make_estates(broken)).preflight(failover(broken))
        check = by_key(report)[CHECK_COSMOS]
        assert check.status == FAIL
        assert "cosmos-ghost" in check.detail
        assert "404" in check.detail

    async def test_rejected_credentials_fail_the_credentials_check(self, plan: DrPlan, make_estates: Any) -> None:
        """Without a token every Azure read FAILs and credentials FAILs with the authentication error."""
        estates = make_estates(plan)
        estates[plan.name].credential = RejectingCredential()
        report = await readiness_for(estates).preflight(failover(plan))
        checks = by_key(report)
        assert checks[CHECK_CREDENTIALS].status == FAIL
        assert "authentication failed" in checks[CHECK_CREDENTIALS].detail
        for key in (CHECK_FRONTDOOR, CHECK_SERVICEBUS, CHECK_COSMOS, sql_check_key("fog-tenants")):
            assert checks[key].status == FAIL
            assert "authentication failed" in checks[key].detail
        assert checks[CHECK_TARGET_REGION].status == FAIL
        # Not reaching the gateway with our own token says nothing about the source region's health.
        assert report.source_region_healthy is True

    async def test_failing_origin_probes_fail_the_target_even_when_its_gateway_answers(
        self, plan: DrPlan, make_estates: Any, emulator: EmulatorHandle
    ) -> None:
        """If most of the target origin's recent health probes failed, target-region FAILs on that metric."""
        emulator.region(plan.dr_region, "down")
        await asyncio.sleep(2.0)
        emulator.region(plan.dr_region, "healthy")
        activities = readiness_for(make_estates(plan), origin_health_window_seconds=2.5)
        report = await activities.preflight(failover(plan))
        check = by_key(report)[CHECK_TARGET_REGION]
        assert check.status == FAIL
        assert "answered 200" in check.detail
        assert re.search(r"app-westus: \d+% of health probes passed .* \(unhealthy\)", check.detail), check.detail
        assert report.target_region_healthy is False


class TestManyFailuresAtOnce:
    async def test_every_reason_is_in_one_report(
        self, plan: DrPlan, make_estates: Any, emulator: EmulatorHandle
    ) -> None:
        """Several problems injected together all appear in the same report, each under its own key."""
        broken = with_extra_group(without_dr_origin(plan))
        emulator.region(plan.primary_region, "down")
        set_backlog(emulator, 300, rate=1.0)
        report = await readiness_for(make_estates(broken)).preflight(failover(broken))
        got = statuses(report)
        assert got[CHECK_SOURCE_REGION] == WARN
        assert got[CHECK_SERVICEBUS] == WARN
        assert got[CHECK_FRONTDOOR] == FAIL
        assert got[sql_check_key("fog-missing")] == FAIL
        assert {c.key for c in report.failed} == {CHECK_FRONTDOOR, sql_check_key("fog-missing")}
        assert got[CHECK_TARGET_REGION] == OK
        assert got[CHECK_COSMOS] == OK
        assert report.source_region_healthy is False


class TestTransientFaults:
    async def test_transient_503s_on_reads_are_retried(
        self, readiness: ReadinessActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A 503 on each read (ARM and the ops gateway) is retried, and every check still ends OK."""
        for operation in (
            "AFDOrigins_ListByOriginGroup",
            "DisasterRecoveryConfigs_Get",
            "FailoverGroups_Get",
            "DatabaseAccounts_Get",
            "Metrics_List",
            "Ops_GetTenants",
        ):
            emulator.fault(operation, 503, count=2)
        since = emulator.last_seq()
        report = await readiness.preflight(failover(plan))
        assert statuses(report) == dict.fromkeys(ALL_KEYS, OK), report.checks
        faulted = {e["operation"] for e in emulator.journal(since) if e["fault"]}
        assert "Ops_GetTenants" in faulted
        assert "DisasterRecoveryConfigs_Get" in faulted

    async def test_a_gateway_that_keeps_failing_counts_as_down(
        self, readiness: ReadinessActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A target gateway answering 503 to every attempt FAILs target-region after the retries."""
        emulator.fault("Ops_GetTenants", 503, count=100, path_contains=f"/regions/{plan.dr_region}/")
        report = await readiness.preflight(failover(plan))
        check = by_key(report)[CHECK_TARGET_REGION]
        assert check.status == FAIL
        assert "after 3 attempt(s)" in check.detail
        assert by_key(report)[CHECK_SOURCE_REGION].status == OK

    async def test_a_slow_check_fails_on_time_without_holding_the_others(
        self, plan: DrPlan, make_estates: Any, emulator: EmulatorHandle
    ) -> None:
        """A read slower than the check time limit FAILs that check only, and the report arrives on time."""
        emulator.latency({"DatabaseAccounts_Get": 2.5})
        activities = readiness_for(make_estates(plan), check_timeout_seconds=0.5)
        started = time.monotonic()
        report = await activities.preflight(failover(plan))
        assert time.monotonic() - started < 2.0
        check = by_key(report)[CHECK_COSMOS]
        assert check.status == FAIL
        assert "no result within 0.5 s" in check.detail
        assert statuses(report) == dict.fromkeys(ALL_KEYS, OK) | {CHECK_COSMOS: FAIL}
