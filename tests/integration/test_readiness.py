"""Readiness checks (failover pre-flight and the scheduled run) against the emulator, through the
real aio SDK clients and the ops API over HTTPS."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import ClientAuthenticationError
from temporalio.exceptions import ApplicationError
from typer.testing import CliRunner

from activities.azure import Estates
from activities.backups import BackupActivities, tenant_recovery_point_ages
from activities.catalog import BackupCatalog
from activities.integrity import generate_private_key
from activities.readiness import ReadinessActivities
from activities.servicebus import ServiceBusActivities
from domain.messages.backups import (
    BACKUP_INCREMENTAL,
    STATUS_COMPLETED,
    STATUS_IN_PROGRESS,
    CopyPackageInput,
    ListSegmentsInput,
    RecoveryPoint,
    RecoveryPointAgesInput,
    RecoveryPointAgesResult,
    RegisterRecoveryPointInput,
    TenantRecoveryPointAge,
    WriteManifestInput,
    recovery_point_id,
    utc_iso,
)
from domain.messages.readiness import (
    CHECK_COSMOS,
    CHECK_CREDENTIALS,
    CHECK_FRONTDOOR,
    CHECK_RECOVERY_POINTS,
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
from domain.plan import DrPlan, FailoverGroupSpec, FailoverPolicy, FrontDoorSpec, SqlSpec, TargetsSpec, load_plan
from starters.cli import app
from starters.plan_cmd import EXIT_NOT_READY
from starters.seed_data import build_tenant, upload_segments
from tests.conftest import LOCAL_PLAN, EmulatorHandle
from tests.integration.azurite import AzuriteHandle

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
        """readiness.check reports the pre-flight's checks for the primary-to-DR direction, then recovery points."""
        report = await readiness.check(ReadinessInput(plan.name))
        preflight = await readiness.preflight(failover(plan))
        assert (report.from_region, report.to_region) == (plan.primary_region, plan.dr_region)
        assert [c.key for c in report.checks] == [*(c.key for c in preflight.checks), CHECK_RECOVERY_POINTS]
        assert statuses(report) == dict.fromkeys(ALL_KEYS, OK) | {CHECK_RECOVERY_POINTS: WARN}

    async def test_without_a_catalog_recovery_points_warn_that_they_were_not_checked(
        self, readiness: ReadinessActivities, plan: DrPlan
    ) -> None:
        """A worker without backups says it could not look at recovery points, and how to configure them."""
        check = by_key(await readiness.check(ReadinessInput(plan.name)))[CHECK_RECOVERY_POINTS]
        assert check.status == WARN
        assert "not configured" in check.detail
        assert "DR_SIGNING_KEY" in check.fix

    async def test_ok_checks_carry_no_fix_and_failures_do(
        self, plan: DrPlan, make_estates: Any, emulator: EmulatorHandle
    ) -> None:
        """Every WARN or FAIL row says what to do; OK rows leave the fix empty."""
        emulator.region(plan.dr_region, "down")
        report = await readiness_for(make_estates(plan)).preflight(failover(plan))
        for check in report.checks:
            assert bool(check.fix) == (check.status != OK), check
        assert plan.dr_region in by_key(report)[CHECK_TARGET_REGION].fix

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


# ---- the readiness run: recovery points and each problem on its own ------------------------------

RUN_KEYS = ALL_KEYS | {CHECK_RECOVERY_POINTS}
PRO_TENANT = "t0001-globex"  # RPO target 15 minutes (production, pro)
FREE_TENANT = "t0002-initech"  # RPO target 24 hours (production, free)
ENTERPRISE_TENANT = "t0003-umbrella"  # RPO target 5 minutes (production, enterprise)


@pytest.fixture
def small_plan(plan: DrPlan) -> DrPlan:
    """The local estate with six tenants of all three editions, so catalogs fill quickly."""
    return dataclasses.replace(plan, tenants=plan.tenants[:6])


@pytest.fixture
def catalog(tmp_path: Path) -> BackupCatalog:
    return BackupCatalog(f"sqlite:///{tmp_path / 'catalog.db'}")


async def record_point(catalog: BackupCatalog, plan: DrPlan, tenant_id: str, age: dt.timedelta) -> RecoveryPoint:
    """A completed recovery point of ``tenant_id`` created ``age`` ago (catalog row only)."""
    created = dt.datetime.now(dt.UTC) - age
    rp = recovery_point_id(created, plan.primary_region, tenant_id)
    await catalog.register(
        RecoveryPoint(rp, tenant_id, plan.primary_region, BACKUP_INCREMENTAL, utc_iso(created), "in_progress", "1.0.0")
    )
    point, _ = await catalog.complete(
        rp,
        packages=(),
        merkle_root="0" * 64,
        signature="sig",
        key_id="key",
        manifest_blob=f"recovery-points/{rp}/manifest.json",
        manifest_uri=f"https://example.invalid/{rp}",
        time_from=None,
        time_to=None,
    )
    return point


async def fill(
    catalog: BackupCatalog,
    plan: DrPlan,
    *,
    but: str | tuple[str, ...] = (),
    age: dt.timedelta = dt.timedelta(minutes=1),
) -> None:
    """Give every tenant of ``plan`` (except ``but``) a recovery point ``age`` old."""
    skip = (but,) if isinstance(but, str) else but
    for tenant in plan.tenants:
        if tenant.id not in skip:
            await record_point(catalog, plan, tenant.id, age)


@pytest.fixture
async def run(small_plan: DrPlan, make_estates: Any, catalog: BackupCatalog) -> ReadinessActivities:
    """Readiness with a backup catalog in which every tenant has a fresh recovery point."""
    await fill(catalog, small_plan)
    return readiness_for(make_estates(small_plan), catalog=catalog)


def not_ok(report: ReadinessReport) -> dict[str, str]:
    return {c.key: c.status for c in report.checks if c.status != OK}


def suspend_replication(
    emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch, group_name: str, state: str = "SUSPENDED"
) -> None:
    """Make the emulator report ``state`` as the replicationState of one failover group, with both
    regions healthy (the emulator derives the state from region health only)."""
    sql = emulator.server.provider("sql")
    original = sql.group_body

    def group_body(group: Any, server: Any) -> dict[str, Any]:
        body: dict[str, Any] = original(group, server)
        if group.name == group_name:
            body["properties"]["replicationState"] = state
        return body

    emulator.call(lambda: monkeypatch.setattr(sql, "group_body", group_body))


class TestReadinessRun:
    async def test_every_check_is_ok_when_every_tenant_was_just_backed_up(
        self, run: ReadinessActivities, small_plan: DrPlan
    ) -> None:
        """With fresh recovery points for every tenant the whole readiness table is OK."""
        report = await run.check(ReadinessInput(small_plan.name))
        assert statuses(report) == dict.fromkeys(RUN_KEYS, OK), report.checks
        check = by_key(report)[CHECK_RECOVERY_POINTS]
        assert check.detail.startswith("6/6 tenant(s) within their RPO target")
        assert report.rpo_effective_seconds is not None
        assert 55 <= report.rpo_effective_seconds <= 120
        assert report.status == OK

    async def test_preflight_leaves_recovery_points_out(self, run: ReadinessActivities, small_plan: DrPlan) -> None:
        """Failover's pre-flight runs the same estate checks but never the recovery-point one."""
        report = await run.preflight(failover(small_plan))
        assert set(statuses(report)) == ALL_KEYS
        assert report.rpo_effective_seconds is None


class TestDetectsEachProblemOnItsOwn:
    async def test_dr_region_down(self, run: ReadinessActivities, small_plan: DrPlan, emulator: EmulatorHandle) -> None:
        """A down DR region FAILs target-region alone; SQL replication, stopped by it, only WARNs."""
        emulator.region(small_plan.dr_region, "down")
        report = await run.check(ReadinessInput(small_plan.name))
        sql = {sql_check_key("fog-tenants"), sql_check_key("fog-audit")}
        assert not_ok(report) == {CHECK_TARGET_REGION: FAIL} | dict.fromkeys(sql, WARN), report.checks
        target = by_key(report)[CHECK_TARGET_REGION]
        assert "503" in target.detail
        assert f"DR region {small_plan.dr_region} cannot take the traffic" in target.fix
        for key in sql:
            assert f"while {small_plan.dr_region} is out" in by_key(report)[key].detail
        assert report.status == FAIL

    async def test_pending_servicebus_replication(
        self, run: ReadinessActivities, small_plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A replication backlog on the alias WARNs servicebus alone, with the count and how to wait it out."""
        set_backlog(emulator, 400, rate=1.0)
        report = await run.check(ReadinessInput(small_plan.name))
        assert not_ok(report) == {CHECK_SERVICEBUS: WARN}, report.checks
        check = by_key(report)[CHECK_SERVICEBUS]
        assert re.search(r"\d+ replication operation\(s\) pending", check.detail)
        assert "pendingReplicationOperationsCount is 0" in check.fix

    async def test_sql_failover_group_not_replicating(
        self,
        run: ReadinessActivities,
        small_plan: DrPlan,
        emulator: EmulatorHandle,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A group whose replication is SUSPENDED while both regions answer FAILs its own check alone."""
        suspend_replication(emulator, monkeypatch, "fog-audit")
        report = await run.check(ReadinessInput(small_plan.name))
        assert not_ok(report) == {sql_check_key("fog-audit"): FAIL}, report.checks
        check = by_key(report)[sql_check_key("fog-audit")]
        assert "replication SUSPENDED although both regions answer" in check.detail
        assert "resume it" in check.fix

    async def test_seeding_sql_failover_group_warns(
        self,
        run: ReadinessActivities,
        small_plan: DrPlan,
        emulator: EmulatorHandle,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A group still SEEDING its secondary WARNs: the copy is not usable yet."""
        suspend_replication(emulator, monkeypatch, "fog-tenants", "SEEDING")
        report = await run.check(ReadinessInput(small_plan.name))
        assert not_ok(report) == {sql_check_key("fog-tenants"): WARN}, report.checks
        assert "seeding" in by_key(report)[sql_check_key("fog-tenants")].fix

    async def test_tenant_recovery_point_older_than_its_rpo(
        self, small_plan: DrPlan, make_estates: Any, catalog: BackupCatalog
    ) -> None:
        """A pro tenant whose newest recovery point is 20 minutes old (target 15) WARNs recovery-points alone."""
        await fill(catalog, small_plan, but=PRO_TENANT)
        await record_point(catalog, small_plan, PRO_TENANT, dt.timedelta(hours=5))
        await record_point(catalog, small_plan, PRO_TENANT, dt.timedelta(minutes=20))
        report = await readiness_for(make_estates(small_plan), catalog=catalog).check(ReadinessInput(small_plan.name))
        assert not_ok(report) == {CHECK_RECOVERY_POINTS: WARN}, report.checks
        check = by_key(report)[CHECK_RECOVERY_POINTS]
        assert "5/6 tenant(s) within their RPO target, 1 older than it" in check.detail
        assert f"{PRO_TENANT} 20m > 15m" in check.detail
        assert "BackupWorkflow" in check.fix
        assert report.rpo_effective_seconds is not None
        assert 1195 <= report.rpo_effective_seconds <= 1260

    async def test_recovery_point_more_than_twice_too_old_or_missing_fails(
        self, small_plan: DrPlan, make_estates: Any, catalog: BackupCatalog
    ) -> None:
        """Past twice its target, or with no completed recovery point at all, a tenant FAILs the check."""
        await fill(catalog, small_plan, but=(ENTERPRISE_TENANT, PRO_TENANT))
        await record_point(catalog, small_plan, ENTERPRISE_TENANT, dt.timedelta(minutes=11))
        report = await readiness_for(make_estates(small_plan), catalog=catalog).check(ReadinessInput(small_plan.name))
        assert not_ok(report) == {CHECK_RECOVERY_POINTS: FAIL}, report.checks
        detail = by_key(report)[CHECK_RECOVERY_POINTS].detail
        assert "1 without any completed recovery point" in detail
        # The tenant with none is named first, then the most overdue.
        assert detail.index(f"{PRO_TENANT} none") < detail.index(f"{ENTERPRISE_TENANT} 11m > 5m")

    async def test_each_tenant_is_held_to_its_own_edition(
        self, small_plan: DrPlan, make_estates: Any, catalog: BackupCatalog
    ) -> None:
        """A free tenant backed up 3 hours ago is within its daily target; an explicit plan target binds all."""
        await fill(catalog, small_plan, but=FREE_TENANT)
        await record_point(catalog, small_plan, FREE_TENANT, dt.timedelta(hours=3))
        report = await readiness_for(make_estates(small_plan), catalog=catalog).check(ReadinessInput(small_plan.name))
        assert by_key(report)[CHECK_RECOVERY_POINTS].status == OK
        strict = dataclasses.replace(small_plan, targets=TargetsSpec(rpo_seconds=7200))
        report = await readiness_for(make_estates(strict), catalog=catalog).check(ReadinessInput(strict.name))
        check = by_key(report)[CHECK_RECOVERY_POINTS]
        assert check.status == WARN
        assert f"{FREE_TENANT} 3h > 2h" in check.detail

    async def test_no_catalog_yet_fails_and_is_not_created(
        self, small_plan: DrPlan, make_estates: Any, tmp_path: Path
    ) -> None:
        """A configured catalog no backup has written yet FAILs every tenant, and looking does not create it."""
        path = tmp_path / "never" / "catalog.db"
        missing = BackupCatalog(f"sqlite:///{path}")
        report = await readiness_for(make_estates(small_plan), catalog=missing).check(ReadinessInput(small_plan.name))
        check = by_key(report)[CHECK_RECOVERY_POINTS]
        assert check.status == FAIL
        assert "6 without any completed recovery point" in check.detail
        assert "no backup has run there" in check.detail
        assert not path.exists()
        assert not await missing.exists()


async def record_failed(catalog: BackupCatalog, plan: DrPlan, tenant_id: str, age: dt.timedelta) -> None:
    """A failed recovery point of ``tenant_id`` created ``age`` ago (catalog row only)."""
    created = dt.datetime.now(dt.UTC) - age
    rp = recovery_point_id(created, plan.primary_region, tenant_id)
    await catalog.register(
        RecoveryPoint(
            rp, tenant_id, plan.primary_region, BACKUP_INCREMENTAL, utc_iso(created), STATUS_IN_PROGRESS, "1.0.0"
        )
    )
    await catalog.fail(rp, "package upload failed")


class TestRecoveryPointsInOneRead:
    async def test_every_tenant_is_read_over_one_catalog_connection(
        self, plan: DrPlan, make_estates: Any, catalog: BackupCatalog, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The run reads all of the local estate's tenants' newest recovery points over a single catalog connection."""
        await record_point(catalog, plan, PRO_TENANT, dt.timedelta(minutes=1))
        sessions: list[dict[str, Any]] = []
        session = catalog._db.session

        def counted(**kwargs: Any) -> contextlib.AbstractAsyncContextManager[Any]:
            sessions.append(kwargs)
            return session(**kwargs)

        monkeypatch.setattr(catalog._db, "session", counted)
        report = await readiness_for(make_estates(plan), catalog=catalog).check(ReadinessInput(plan.name))
        check = by_key(report)[CHECK_RECOVERY_POINTS]
        total = len(plan.tenants)
        assert total >= 300
        assert check.status == FAIL
        assert check.detail.startswith(
            f"1/{total} tenant(s) within their RPO target, {total - 1} without any completed recovery point"
        )
        assert len(sessions) == 1

    async def test_ages_are_those_of_each_tenants_newest_completed_point(
        self, small_plan: DrPlan, any_catalog_url: str
    ) -> None:
        """On either backend each tenant is aged by the point list_for_tenant finds first among its completed
        ones, past newer failed or running ones; a tenant with only failed points has none."""
        catalog = BackupCatalog(any_catalog_url)
        await record_point(catalog, small_plan, PRO_TENANT, dt.timedelta(hours=5))
        chosen = await record_point(catalog, small_plan, PRO_TENANT, dt.timedelta(minutes=20))
        await record_failed(catalog, small_plan, PRO_TENANT, dt.timedelta(minutes=10))
        created = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
        await catalog.register(
            RecoveryPoint(
                recovery_point_id(created, small_plan.primary_region, PRO_TENANT),
                PRO_TENANT,
                small_plan.primary_region,
                BACKUP_INCREMENTAL,
                utc_iso(created),
                STATUS_IN_PROGRESS,
                "1.0.0",
            )
        )
        await record_failed(catalog, small_plan, FREE_TENANT, dt.timedelta(minutes=2))
        await record_point(catalog, small_plan, ENTERPRISE_TENANT, dt.timedelta(minutes=3))
        now = dt.datetime.now(dt.UTC)

        ages = await tenant_recovery_point_ages(catalog, small_plan, now)

        expected = []
        for tenant in small_plan.tenants:
            target = small_plan.tenant_rpo_seconds(tenant)
            newest = await catalog.list_for_tenant(tenant.id, status=STATUS_COMPLETED, limit=1)
            if not newest:
                expected.append(TenantRecoveryPointAge(tenant.id, target))
                continue
            age = (now - dt.datetime.fromisoformat(newest[0].created_at)).total_seconds()
            expected.append(
                TenantRecoveryPointAge(tenant.id, target, newest[0].recovery_point_id, newest[0].created_at, age)
            )
        assert ages == RecoveryPointAgesResult(small_plan.name, utc_iso(now), True, tuple(expected))
        by_tenant = {t.tenant_id: t for t in ages.tenants}
        assert by_tenant[PRO_TENANT].recovery_point_id == chosen.recovery_point_id
        assert 1195 <= (by_tenant[PRO_TENANT].age_seconds or 0) <= 1260
        assert by_tenant[FREE_TENANT].recovery_point_id is None
        assert [t.tenant_id for t in ages.tenants if t.recovery_point_id] == [PRO_TENANT, ENTERPRISE_TENANT]

    async def test_a_catalog_not_created_yet_gives_every_tenant_none(
        self, small_plan: DrPlan, any_catalog_url: str
    ) -> None:
        """On either backend a catalog no backup has written yet ages no tenant and is not created by looking."""
        catalog = BackupCatalog(any_catalog_url)
        now = dt.datetime.now(dt.UTC)
        ages = await tenant_recovery_point_ages(catalog, small_plan, now)
        none = tuple(TenantRecoveryPointAge(t.id, small_plan.tenant_rpo_seconds(t)) for t in small_plan.tenants)
        assert ages == RecoveryPointAgesResult(small_plan.name, utc_iso(now), False, none)
        assert not await catalog.exists()


class TestResourcesAsPlanned:
    async def test_database_left_out_of_its_failover_group_fails(self, plan: DrPlan, make_estates: Any) -> None:
        """A plan database the failover group does not hold FAILs that group's check, naming the database."""
        audit = plan.sql.failover_groups[1]
        more = dataclasses.replace(audit, databases=(*audit.databases, "ledger"))
        broken = dataclasses.replace(plan, sql=SqlSpec((plan.sql.failover_groups[0], more)))
        report = await readiness_for(make_estates(broken)).preflight(failover(broken))
        check = by_key(report)[sql_check_key("fog-audit")]
        assert check.status == FAIL
        assert "ledger" in check.detail
        assert "--add-db ledger" in check.fix
        assert by_key(report)[sql_check_key("fog-tenants")].status == OK

    async def test_cosmos_region_missing_from_the_account_fails(self, plan: DrPlan, make_estates: Any) -> None:
        """A planned Cosmos DB region the account does not have FAILs cosmos, naming it."""
        broken = dataclasses.replace(
            plan, cosmos=dataclasses.replace(plan.cosmos, regions=(*plan.cosmos.regions, "westus2"))
        )
        report = await readiness_for(make_estates(broken)).preflight(failover(broken))
        check = by_key(report)[CHECK_COSMOS]
        assert check.status == FAIL
        assert "planned region(s) westus2" in check.detail
        assert not_ok(report) == {CHECK_COSMOS: FAIL}

    async def test_a_refused_read_fails_the_credentials_check(
        self, readiness: ReadinessActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A token that ARM answers with 403 FAILs credentials as well as the check that was refused."""
        emulator.fault("DatabaseAccounts_Get", 403, count=100)
        report = await readiness.preflight(failover(plan))
        checks = by_key(report)
        assert checks[CHECK_COSMOS].status == FAIL
        assert "RBAC role" in checks[CHECK_COSMOS].fix
        assert checks[CHECK_CREDENTIALS].status == FAIL
        assert "refused (403)" in checks[CHECK_CREDENTIALS].detail
        assert not_ok(report) == {CHECK_COSMOS: FAIL, CHECK_CREDENTIALS: FAIL}


# ---- recovery point ages from real backups (Azurite + a SQLite catalog) ---------------------------


@pytest.fixture
def blob_plan(small_plan: DrPlan) -> DrPlan:
    """The small plan with containers of its own in the session's Azurite."""
    uid = uuid.uuid4().hex[:8]
    backup = dataclasses.replace(
        small_plan.backup,
        live_container_prefix=f"t{uid}-",
        backup_container=f"bk-{uid}",
        quarantine_container_prefix=f"q{uid}-",
    )
    return dataclasses.replace(small_plan, backup=backup)


@pytest.fixture
async def blob_estates(blob_plan: DrPlan, azurite: AzuriteHandle, emulator: EmulatorHandle) -> AsyncIterator[Estates]:
    """The emulator's ARM and ops API with Blob Storage at Azurite, as a backup-enabled worker has."""
    found = Estates([blob_plan], azurite.connection(emulator.connection()))
    try:
        yield found
    finally:
        await found.close()


async def back_up(backups: BackupActivities, plan: DrPlan, tenant: str, created: dt.datetime) -> str:
    """What BackupWorkflow does for one tenant: register, copy each live segment, sign, complete."""
    rp = recovery_point_id(created, plan.primary_region, tenant)
    common: dict[str, Any] = {
        "plan": plan.name,
        "recovery_point_id": rp,
        "tenant_id": tenant,
        "region": plan.primary_region,
        "backup_type": BACKUP_INCREMENTAL,
        "created_at": utc_iso(created),
    }
    await backups.register_recovery_point(RegisterRecoveryPointInput(**common))
    listed = await backups.list_segments(ListSegmentsInput(plan.name, tenant))
    packages = tuple(
        [
            (await backups.copy_package(CopyPackageInput(plan.name, tenant, rp, segment.name))).package
            for segment in listed.segments
        ]
    )
    manifest = await backups.write_manifest(WriteManifestInput(packages=packages, **common))
    await backups.register_recovery_point(
        RegisterRecoveryPointInput(
            status=STATUS_COMPLETED,
            packages=packages,
            merkle_root=manifest.merkle_root,
            signature=manifest.signature,
            key_id=manifest.key_id,
            time_from=manifest.time_from,
            time_to=manifest.time_to,
            manifest_blob=manifest.manifest_blob,
            manifest_uri=manifest.manifest_uri,
            **common,
        )
    )
    return rp


class TestRecoveryPointAgesFromRealBackups:
    async def test_ages_name_each_tenants_newest_completed_recovery_point(
        self, blob_plan: DrPlan, blob_estates: Estates, catalog: BackupCatalog
    ) -> None:
        """backups.recovery_point_ages gives the newest backup's id and age, the tenant's target, or none."""
        backups = BackupActivities(blob_estates, catalog, generate_private_key())
        now = dt.datetime.now(dt.UTC)
        start = now - dt.timedelta(hours=3)
        await upload_segments(
            blob_estates[blob_plan.name].blob,
            blob_plan.backup,
            build_tenant(PRO_TENANT, segments=2, start=start, instances=2),
        )
        await back_up(backups, blob_plan, PRO_TENANT, now - dt.timedelta(minutes=30))
        newest = await back_up(backups, blob_plan, PRO_TENANT, now - dt.timedelta(minutes=2))
        ages = await backups.recovery_point_ages(RecoveryPointAgesInput(blob_plan.name))
        by_tenant = {t.tenant_id: t for t in ages.tenants}
        assert set(by_tenant) == {t.id for t in blob_plan.tenants}
        pro = by_tenant[PRO_TENANT]
        assert pro.recovery_point_id == newest
        assert pro.age_seconds is not None
        assert 115 <= pro.age_seconds <= 180
        assert pro.rpo_target_seconds == 15 * 60
        assert by_tenant[FREE_TENANT].rpo_target_seconds == 24 * 3600
        assert by_tenant[ENTERPRISE_TENANT].rpo_target_seconds == 5 * 60
        assert by_tenant[FREE_TENANT].recovery_point_id is None
        assert ages.catalog_found is True
        assert ages.worst_age_seconds == pro.age_seconds

    async def test_readiness_reads_the_same_catalog(
        self, blob_plan: DrPlan, blob_estates: Estates, catalog: BackupCatalog
    ) -> None:
        """After one real backup the readiness run counts that tenant within target and FAILs on the rest."""
        backups = BackupActivities(blob_estates, catalog, generate_private_key())
        now = dt.datetime.now(dt.UTC)
        await upload_segments(
            blob_estates[blob_plan.name].blob,
            blob_plan.backup,
            build_tenant(PRO_TENANT, segments=1, start=now - dt.timedelta(hours=2), instances=2),
        )
        await back_up(backups, blob_plan, PRO_TENANT, now - dt.timedelta(minutes=1))
        report = await readiness_for(blob_estates, catalog=catalog).check(ReadinessInput(blob_plan.name))
        assert not_ok(report) == {CHECK_RECOVERY_POINTS: FAIL}, report.checks
        detail = by_key(report)[CHECK_RECOVERY_POINTS].detail
        assert detail.startswith("1/6 tenant(s) within their RPO target, 5 without any completed recovery point")
        assert PRO_TENANT not in detail


# ---- drctl plan check --local -----------------------------------------------------------------------


def local_env(emulator: EmulatorHandle, catalog_url: str) -> dict[str, str]:
    """What `drctl dev env` exports for the local stack, with this test's emulator and catalog."""
    return {
        "DR_ARM_ENDPOINT": emulator.url,
        "DR_CA_FILE": emulator.ca_file,
        "DR_OPS_ENDPOINT": emulator.url + "/regions/{region}",
        "DR_POLLING_INTERVAL": "0.05",
        "DR_CATALOG_URL": catalog_url,
        "DR_LOG_LEVEL": "ERROR",
        "COLUMNS": "250",
    }


class TestPlanCheckLocally:
    def test_prints_the_table_and_exits_3_on_a_fail(self, emulator: EmulatorHandle, tmp_path: Path) -> None:
        """`drctl plan check --local` prints every check with its fix and exits 3 when one FAILs."""
        env = local_env(emulator, f"sqlite:///{tmp_path / 'catalog.db'}")
        result = CliRunner().invoke(app, ["plan", "check", str(LOCAL_PLAN), "--local"], env=env)
        assert result.exit_code == EXIT_NOT_READY, result.output
        out = result.stdout
        assert "plan local" in out
        assert "Readiness of local: FAIL" in out
        for title in (
            "Target region westus",
            "Service Bus alias",
            "SQL failover group fog-audit",
            "Tenant recovery points",
        ):
            assert title in out
        assert "300 without any completed recovery point" in out
        assert "run the BackupWorkflow for the plan" in out
        assert "readiness FAIL: 8 OK, 1 FAIL" in out

    def test_json_result_and_exit_0_when_only_warnings(self, emulator: EmulatorHandle, tmp_path: Path) -> None:
        """With a backlog on the alias and fresh recovery points, --json shows a WARN run that exits 0."""
        url = f"sqlite:///{tmp_path / 'catalog.db'}"
        plan = load_plan(LOCAL_PLAN)
        asyncio.run(fill(BackupCatalog(url), plan))
        set_backlog(emulator, 300, rate=1.0)
        result = CliRunner().invoke(
            app, ["plan", "check", str(LOCAL_PLAN), "--local", "--json"], env=local_env(emulator, url)
        )
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert data["status"] == WARN
        rows = {row["key"]: row for row in data["rows"]}
        assert rows[CHECK_SERVICEBUS]["status"] == WARN
        assert rows[CHECK_SERVICEBUS]["fix"]
        assert rows[CHECK_RECOVERY_POINTS]["status"] == OK
        assert data["workflow_id"] is None

    def test_offline_only_validates(self) -> None:
        """`drctl plan check --offline` validates and summarises the plan without reaching Azure or Temporal."""
        env = {"TEMPORAL_ADDRESS": "127.0.0.1:1", "DR_ARM_ENDPOINT": "https://127.0.0.1:1", "COLUMNS": "200"}
        result = CliRunner().invoke(app, ["plan", "check", str(LOCAL_PLAN), "--offline"], env=env)
        assert result.exit_code == 0, result.output
        assert "plan local" in result.stdout
        assert "Tenants (300)" in result.stdout
        assert "Readiness" not in result.stdout
