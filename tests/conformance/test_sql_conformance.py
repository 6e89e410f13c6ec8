"""Microsoft's Azure SQL REST examples replayed against the emulator.

Each example's request is sent with the installed SDK's api-version (2025-01-01, whatever version
the example file was taken from) and the example's names mapped onto the emulator's estate; the
answer's status, LRO headers and body shape (every field of the example, with the same JSON type)
are checked. Fields the emulator leaves out on purpose are listed in IGNORED with the reason.
"""

from __future__ import annotations

import datetime as dt
import inspect
import re
import ssl
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from azure.mgmt.sql.aio.operations import DatabasesOperations

from domain.plan import DrPlan, FailoverGroupSpec
from domain.resource_ids import sql_database
from emulator.providers.sql import API_VERSION, DATABASE_PATH, DROPPED_PATH, GROUP_PATH, LTR_PATH, SERVER_PATH
from tests.conformance.harness import compare_shape, example, path_from_template, replay, request_body
from tests.conftest import EmulatorHandle

SPEC = "azure-rest-api-specs/specification/sql/resource-manager/Microsoft.Sql/stable/2025-01-01/"
STABLE = SPEC + "examples/"
STABLE_2023 = "azure-rest-api-specs/specification/sql/resource-manager/Microsoft.Sql/stable/2023-08-01/examples/"
PREVIEW = "azure-rest-api-specs/specification/sql/resource-manager/Microsoft.Sql/preview/2025-02-01-preview/examples/"

# The local estate's groups use the Manual failover policy (the orchestrator decides when to fail
# over), and Azure sends no grace period with Manual; the examples show Automatic groups.
IGNORED_GROUP = frozenset({"properties.readWriteEndpoint.failoverWithDataLossGracePeriodMinutes"})
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture
def http(emulator: EmulatorHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.url, verify=ssl.create_default_context(cafile=emulator.ca_file)) as client:
        yield client


@pytest.fixture
def group(plan: DrPlan) -> FailoverGroupSpec:
    return plan.sql.failover_groups[0]


def names(plan: DrPlan, group: FailoverGroupSpec, region: str) -> dict[str, str]:
    return {
        "subscriptionId": plan.subscription_id,
        "resourceGroupName": group.resource_group,
        "serverName": group.servers[region],
        "failoverGroupName": group.name,
    }


def assert_shape(expected: Any, actual: Any, ignore: frozenset[str] = frozenset()) -> None:
    mismatches = compare_shape(expected, actual, ignore=ignore)
    assert not mismatches, "\n".join(str(m) for m in mismatches)


def assert_sql_lro(headers: httpx.Headers, kind: str) -> None:
    """Both LRO headers, absolute, on the recording's location-scoped operation URLs."""
    status = headers["Azure-AsyncOperation"]
    result = headers["Location"]
    assert status.startswith("https://")
    assert result.startswith("https://")
    assert re.search(
        rf"/providers/Microsoft\.Sql/locations/[a-z0-9]+/{kind}AzureAsyncOperation/{UUID.pattern}\?", status
    )
    assert re.search(rf"/providers/Microsoft\.Sql/locations/[a-z0-9]+/{kind}OperationResults/{UUID.pattern}\?", result)
    assert f"api-version={API_VERSION}" in status
    assert f"api-version={API_VERSION}" in result


class TestFailoverGroups:
    def test_get(self, http: httpx.Client, plan: DrPlan, group: FailoverGroupSpec) -> None:
        """FailoverGroupGet: 200 with the example's shape, seen from the primary."""
        ex = example(STABLE + "FailoverGroupGet.json")
        path = path_from_template(GROUP_PATH, ex["parameters"], names(plan, group, plan.primary_region))
        answer = replay(http, "GET", path, API_VERSION)
        assert answer.status == 200
        assert_shape(ex["responses"]["200"]["body"], answer.body, IGNORED_GROUP)
        assert answer.body["properties"]["replicationRole"] == "Primary"
        assert answer.body["properties"]["partnerServers"][0]["replicationRole"] == "Secondary"

    def test_list_by_server(self, http: httpx.Client, plan: DrPlan, group: FailoverGroupSpec) -> None:
        """FailoverGroupList: 200 {"value": [...]} holding both of the server's groups."""
        ex = example(PREVIEW + "FailoverGroupList.json")
        path = path_from_template(
            SERVER_PATH + "/failoverGroups", ex["parameters"], names(plan, group, plan.primary_region)
        )
        answer = replay(http, "GET", path, API_VERSION)
        assert answer.status == 200
        ignore = frozenset(f"value[{i}].{p}" for i in range(5) for p in IGNORED_GROUP)
        assert_shape(ex["responses"]["200"]["body"], answer.body, ignore)
        assert {g["name"] for g in answer.body["value"]} == {g.name for g in plan.sql.failover_groups}

    @pytest.mark.parametrize(
        ("file", "action"),
        [
            (STABLE + "FailoverGroupFailover.json", "failover"),
            (STABLE_2023 + "FailoverGroupForceFailoverAllowDataLoss.json", "forceFailoverAllowDataLoss"),
            (PREVIEW + "FailoverGroupTryPlannedBeforeForcedFailover.json", "tryPlannedBeforeForcedFailover"),
        ],
    )
    def test_failover_actions(
        self, http: httpx.Client, plan: DrPlan, group: FailoverGroupSpec, file: str, action: str
    ) -> None:
        """POST on the secondary: 202 + both LRO headers, polls to Succeeded, Location answers the group."""
        ex = example(file)
        path = path_from_template(f"{GROUP_PATH}/{action}", ex["parameters"], names(plan, group, plan.dr_region))
        answer = replay(http, "POST", path, API_VERSION)
        assert answer.status == 202
        assert answer.body["operation"] == "FailoverFailoverGroup"
        assert isinstance(answer.body["startTime"], str)
        assert_sql_lro(answer.headers, "failoverGroup")
        assert answer.polls[-1][0] == 200
        assert answer.polls[-1][1]["status"] == "Succeeded"
        assert_shape(ex["responses"]["200"]["body"], answer.final, IGNORED_GROUP)
        assert answer.final["properties"]["replicationRole"] == "Primary"
        assert answer.final["id"].endswith(f"/servers/{group.servers[plan.dr_region]}/failoverGroups/{group.name}")

    def test_failover_on_the_primary_is_a_400(self, http: httpx.Client, plan: DrPlan, group: FailoverGroupSpec) -> None:
        """The spec's FailoverGroupFailoverRequestOnPrimary, in Azure's error shape."""
        ex = example(STABLE + "FailoverGroupFailover.json")
        path = path_from_template(f"{GROUP_PATH}/failover", ex["parameters"], names(plan, group, plan.primary_region))
        answer = replay(http, "POST", path, API_VERSION)
        assert answer.status == 400
        assert answer.body["error"]["code"] == "FailoverGroupFailoverRequestOnPrimary"
        assert isinstance(answer.body["error"]["message"], str)


class TestDatabases:
    def test_get(self, http: httpx.Client, plan: DrPlan, group: FailoverGroupSpec) -> None:
        """GetVCoreDatabase: 200 with the example's shape for the primary copy."""
        ex = example(STABLE + "GetVCoreDatabase.json")
        overrides = names(plan, group, plan.primary_region) | {"databaseName": group.databases[0]}
        answer = replay(http, "GET", path_from_template(DATABASE_PATH, ex["parameters"], overrides), API_VERSION)
        assert answer.status == 200
        assert_shape(ex["responses"]["200"]["body"], answer.body)

    def test_create_point_in_time_restore(
        self, http: httpx.Client, plan: DrPlan, group: FailoverGroupSpec, emulator: EmulatorHandle
    ) -> None:
        """CreateDatabasePITRMode: 202 + LRO headers, polls to Succeeded, the database as the example's 200."""
        ex = example(PREVIEW + "CreateDatabasePITRMode.json")
        server = group.servers[plan.primary_region]
        source = sql_database(plan.subscription_id, group.resource_group, server, group.databases[0])
        point = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat().replace("+00:00", "Z")
        body = request_body(ex["parameters"])
        body = body | {
            "location": plan.primary_region,
            "properties": body["properties"] | {"sourceDatabaseId": source, "restorePointInTime": point},
        }
        overrides = names(plan, group, plan.primary_region)
        answer = replay(http, "PUT", path_from_template(DATABASE_PATH, ex["parameters"], overrides), API_VERSION, body)
        assert answer.status == 202
        assert_sql_lro(answer.headers, "database")
        assert "/resourceGroups/" in answer.headers["Location"]  # as the example's 202 Location
        assert answer.polls[-1][1]["status"] == "Succeeded"
        assert_shape(ex["responses"]["200"]["body"], answer.final)
        recorded = emulator.state()["sql"]["create_requests"][-1]
        assert recorded["createMode"] == "PointInTimeRestore"
        assert recorded["sourceDatabaseId"] == source
        assert recorded["restorePointInTime"] == point

    def test_point_outside_retention_is_a_400(self, http: httpx.Client, plan: DrPlan, group: FailoverGroupSpec) -> None:
        """A restore point before earliestRestoreDate: 400 InvalidPointInTime in Azure's error shape."""
        ex = example(PREVIEW + "CreateDatabasePITRMode.json")
        server = group.servers[plan.primary_region]
        body = request_body(ex["parameters"])
        body = body | {
            "properties": body["properties"]
            | {"sourceDatabaseId": sql_database(plan.subscription_id, group.resource_group, server, group.databases[0])}
        }
        overrides = names(plan, group, plan.primary_region)
        answer = replay(http, "PUT", path_from_template(DATABASE_PATH, ex["parameters"], overrides), API_VERSION, body)
        assert answer.status == 400
        assert answer.body["error"]["code"] == "InvalidPointInTime"


class TestBackups:
    def test_restorable_dropped_database(self, http: httpx.Client, plan: DrPlan, group: FailoverGroupSpec) -> None:
        """ListRestorableDroppedDatabasesByServer and GetRestorableDroppedDatabase shapes."""
        listed = example(PREVIEW + "ListRestorableDroppedDatabasesByServer.json")
        overrides = names(plan, group, plan.primary_region)
        answer = replay(http, "GET", path_from_template(DROPPED_PATH, listed["parameters"], overrides), API_VERSION)
        assert answer.status == 200
        assert_shape(listed["responses"]["200"]["body"], answer.body)
        dropped = answer.body["value"][0]["name"]
        assert re.fullmatch(r"[^,]+,\d{18}", dropped)

        one = example(STABLE + "GetRestorableDroppedDatabase.json")
        path = path_from_template(
            DROPPED_PATH + "/{restorableDroppedDatabaseId}",
            one["parameters"],
            overrides | {"restorableDroppedDatabaseId": dropped},
        )
        answer = replay(http, "GET", path, API_VERSION)
        assert answer.status == 200
        assert_shape(one["responses"]["200"]["body"], answer.body)

    def test_long_term_retention_backups(self, http: httpx.Client, plan: DrPlan, group: FailoverGroupSpec) -> None:
        """LongTermRetentionBackupListByDatabase and LongTermRetentionBackupGet shapes."""
        listed = example(STABLE + "LongTermRetentionBackupListByDatabase.json")
        overrides = {
            "subscriptionId": plan.subscription_id,
            "locationName": plan.primary_region,
            "longTermRetentionServerName": group.servers[plan.primary_region],
            "longTermRetentionDatabaseName": group.databases[0],
        }
        answer = replay(http, "GET", path_from_template(LTR_PATH, listed["parameters"], overrides), API_VERSION)
        assert answer.status == 200
        assert_shape(listed["responses"]["200"]["body"], answer.body)
        assert len(answer.body["value"]) == 2
        backup = answer.body["value"][0]["name"]

        one = example(STABLE + "LongTermRetentionBackupGet.json")
        path = path_from_template(LTR_PATH + "/{backupName}", one["parameters"], overrides | {"backupName": backup})
        answer = replay(http, "GET", path, API_VERSION)
        assert answer.status == 200
        assert_shape(one["responses"]["200"]["body"], answer.body)


def delete_spec() -> dict[str, Any]:
    """Databases_Delete in the 2025-01-01 spec (there is no example JSON for it in azure-specs)."""
    spec = example(SPEC + "Databases.json")
    operation: dict[str, Any] = spec["paths"][DATABASE_PATH]["delete"]
    assert operation["operationId"] == "Databases_Delete"
    return operation


def sdk_accepted_delete_codes() -> set[int]:
    """The status codes the installed SDK's ``databases.begin_delete`` accepts from the first answer."""
    source = inspect.getsource(DatabasesOperations._delete_initial)
    found = re.search(r"status_code not in \[([\d, ]+)\]", source)
    assert found is not None
    return {int(code) for code in found.group(1).split(",")}


def restored_database(http: httpx.Client, plan: DrPlan, group: FailoverGroupSpec, name: str) -> str:
    """A point-in-time restore of the group's first database into ``name``; its path."""
    server = group.servers[plan.primary_region]
    source = sql_database(plan.subscription_id, group.resource_group, server, group.databases[0])
    point = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    body = {
        "location": plan.primary_region,
        "properties": {"createMode": "PointInTimeRestore", "sourceDatabaseId": source, "restorePointInTime": point},
    }
    path = path_from_template(DATABASE_PATH, names(plan, group, plan.primary_region) | {"databaseName": name}, {})
    created = replay(http, "PUT", path, API_VERSION, body)
    assert created.polls[-1][1]["status"] == "Succeeded"
    return path


class TestDatabaseDelete:
    def test_spec_and_sdk_agree_on_the_codes(self) -> None:
        """The spec lists 200/202/204 and a final state via Location; the SDK accepts exactly those."""
        operation = delete_spec()
        assert {"200", "202", "204"} <= set(operation["responses"])
        assert operation["x-ms-long-running-operation"] is True
        assert operation["x-ms-long-running-operation-options"]["final-state-via"] == "location"
        assert sdk_accepted_delete_codes() == {200, 202, 204}

    def test_delete_restored_database(
        self, http: httpx.Client, plan: DrPlan, group: FailoverGroupSpec, emulator: EmulatorHandle
    ) -> None:
        """202 + both LRO headers, polled to Succeeded; the database is gone and listed as restorable dropped."""
        path = restored_database(http, plan, group, "projections-restored")
        answer = replay(http, "DELETE", path, API_VERSION)
        assert str(answer.status) in delete_spec()["responses"]
        assert answer.status == 202
        assert answer.body["operation"] == "DropLogicalDatabase"
        assert isinstance(answer.body["startTime"], str)
        assert_sql_lro(answer.headers, "database")
        assert "/resourceGroups/" in answer.headers["Location"]
        assert answer.polls[-1][0] == 200
        assert answer.polls[-1][1]["status"] == "Succeeded"
        assert answer.final is None  # the operation result of a delete has no body
        gone = replay(http, "GET", path, API_VERSION)
        assert gone.status == 404
        assert gone.body["error"]["code"] == "ResourceNotFound"
        dropped = replay(
            http, "GET", path_from_template(DROPPED_PATH, names(plan, group, plan.primary_region)), API_VERSION
        )
        assert any(d["properties"]["databaseName"] == "projections-restored" for d in dropped.body["value"])

    def test_location_answers_202_while_running_then_204(
        self, http: httpx.Client, plan: DrPlan, group: FailoverGroupSpec, emulator: EmulatorHandle
    ) -> None:
        """Location polls answer 202 until the drop completes, then 204; a DELETE meanwhile joins the same operation."""
        path = restored_database(http, plan, group, "projections-slow")
        emulator.latency({"Databases_Delete": 0.6})
        first = replay(http, "DELETE", path, API_VERSION, follow_lro=False)
        again = replay(http, "DELETE", path, API_VERSION, follow_lro=False)
        assert (first.status, again.status) == (202, 202)
        assert again.headers["Location"] == first.headers["Location"]
        headers = {"Authorization": "Bearer conformance"}
        assert http.get(first.headers["Location"], headers=headers).status_code == 202
        assert http.get(path, params={"api-version": API_VERSION}, headers=headers).status_code == 200
        time.sleep(0.7)
        done = http.get(first.headers["Location"], headers=headers)
        assert (done.status_code, done.content) == (204, b"")
        assert len(emulator.state()["sql"]["restorable_dropped_databases"]) == 3  # one seeded per server, plus this

    def test_missing_database_is_204(self, http: httpx.Client, plan: DrPlan, group: FailoverGroupSpec) -> None:
        """The spec's 204 "does not exist": no body and no LRO headers."""
        path = path_from_template(DATABASE_PATH, names(plan, group, plan.primary_region) | {"databaseName": "nope"}, {})
        answer = replay(http, "DELETE", path, API_VERSION)
        assert str(answer.status) in delete_spec()["responses"]
        assert answer.status == 204
        assert answer.body is None
        assert "Azure-AsyncOperation" not in answer.headers
        assert "Location" not in answer.headers

    def test_failover_group_member_is_a_409(self, http: httpx.Client, plan: DrPlan, group: FailoverGroupSpec) -> None:
        """A database in a failover group must leave it first: 409 in Azure's error shape, nothing deleted."""
        overrides = names(plan, group, plan.primary_region) | {"databaseName": group.databases[0]}
        path = path_from_template(DATABASE_PATH, overrides, {})
        answer = replay(http, "DELETE", path, API_VERSION)
        assert answer.status == 409
        assert answer.body["error"]["code"] == "InvalidDatabaseStateForOperation"
        assert group.name in answer.body["error"]["message"]
        assert replay(http, "GET", path, API_VERSION).status == 200
