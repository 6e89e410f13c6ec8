"""Microsoft's Cosmos DB REST examples replayed against the emulator.

Each example's request is sent with the installed SDK's api-version (2026-03-15) and its names
mapped onto the emulator's estate; the answer's status, LRO headers and body shape (every field of
the example with the same JSON type) are checked. Fields the emulator answers differently on
purpose are listed with the reason next to each ignore set.
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
from azure.mgmt.cosmosdb.aio.operations import DatabaseAccountsOperations

from domain.plan import DrPlan
from emulator.providers.cosmos import ACCOUNT_PATH, API_VERSION, LOCATIONS, RESTORABLE_LIST
from tests.conformance.harness import compare_shape, example, path_from_template, replay, request_body
from tests.conftest import EmulatorHandle

UPSTREAM = (
    "azure-rest-api-specs/specification/cosmos-db/resource-manager/Microsoft.DocumentDB/DocumentDB"
    "/stable/2026-03-15/examples/"
)
FORK = (
    "pjohari-ms__azure-rest-api-specs/specification/cosmos-db/resource-manager/Microsoft.DocumentDB/DocumentDB"
    "/stable/2026-03-15/examples/"
)

IGNORED_ACCOUNT = frozenset(
    {
        # The estate's account has no private endpoints; the example shows one.
        "properties.privateEndpointConnections",
        # The estate's account uses continuous backup (point-in-time restore needs it); the example
        # shows a periodic policy in the middle of a migration.
        "properties.backupPolicy.periodicModeProperties",
        "properties.backupPolicy.migrationState",
        # The estate's account has no managed identity (type "None" carries no ids).
        "identity.principalId",
        "identity.tenantId",
        "identity.userAssignedIdentities",
    }
)


def ignored_restorable(prefix: str) -> frozenset[str]:
    """Only a deleted account has deletionTime (the example's first entry is a deleted one)."""
    return frozenset(
        {f"{prefix}properties.deletionTime"}
        | {f"{prefix}properties.restorableLocations[{i}].deletionTime" for i in range(5)}
    )


@pytest.fixture
def http(emulator: EmulatorHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.url, verify=ssl.create_default_context(cafile=emulator.ca_file)) as client:
        yield client


def account_names(plan: DrPlan, account: str | None = None) -> dict[str, str]:
    return {
        "subscriptionId": plan.subscription_id,
        "resourceGroupName": plan.cosmos.resource_group,
        "accountName": account or plan.cosmos.account,
    }


def assert_shape(expected: Any, actual: Any, ignore: frozenset[str] = frozenset()) -> None:
    mismatches = compare_shape(expected, actual, ignore=ignore)
    assert not mismatches, "\n".join(str(m) for m in mismatches)


def assert_operations_status(headers: httpx.Headers) -> None:
    """Both headers on the example's ``.../locations/{location}/operationsStatus/{id}`` URL."""
    for name in ("Azure-AsyncOperation", "Location"):
        url = headers[name]
        assert url.startswith("https://")
        assert re.search(r"/providers/Microsoft\.DocumentDB/locations/[a-z0-9]+/operationsStatus/[0-9a-f-]{36}\?", url)
        assert url.endswith(f"api-version={API_VERSION}")


def restorable(http: httpx.Client, plan: DrPlan, account: str) -> dict[str, Any]:
    answer = replay(http, "GET", RESTORABLE_LIST.format(subscriptionId=plan.subscription_id), API_VERSION)
    found: dict[str, Any] = next(r for r in answer.body["value"] if r["properties"]["accountName"] == account)
    return found


class TestDatabaseAccounts:
    def test_get(self, http: httpx.Client, plan: DrPlan) -> None:
        """CosmosDBDatabaseAccountGet: 200 with the example's shape and the plan's priorities."""
        ex = example(UPSTREAM + "CosmosDBDatabaseAccountGet.json")
        answer = replay(
            http, "GET", path_from_template(ACCOUNT_PATH, ex["parameters"], account_names(plan)), API_VERSION
        )
        assert answer.status == 200
        assert_shape(ex["responses"]["200"]["body"], answer.body, IGNORED_ACCOUNT)
        props = answer.body["properties"]
        assert [p["failoverPriority"] for p in props["failoverPolicies"]] == list(range(len(plan.cosmos.regions)))
        assert props["writeLocations"][0]["locationName"] == "East US"
        assert props["enableAutomaticFailover"] is False

    def test_failover_priority_change(self, http: httpx.Client, plan: DrPlan, emulator: EmulatorHandle) -> None:
        """The fork's example: 202 with both headers on operationsStatus; the change applies at completion."""
        ex = example(FORK + "CosmosDBDatabaseAccountFailoverPriorityChange.json")
        body = {
            "failoverPolicies": [
                {"locationName": plan.dr_region, "failoverPriority": 0},
                {"locationName": plan.primary_region, "failoverPriority": 1},
            ]
        }
        assert {p["locationName"] for p in request_body(ex["parameters"])["failoverPolicies"]} == set(
            plan.cosmos.regions
        )
        path = path_from_template(ACCOUNT_PATH + "/failoverPriorityChange", ex["parameters"], account_names(plan))
        answer = replay(http, "POST", path, API_VERSION, body)
        assert answer.status == 202
        assert answer.body is None
        assert_operations_status(answer.headers)
        assert answer.polls[-1][1] == {"status": "Succeeded"}
        assert emulator.state()["cosmos"]["accounts"][plan.cosmos.account]["write_region"] == plan.dr_region

    def test_failover_priority_change_without_every_region_is_a_400(self, http: httpx.Client, plan: DrPlan) -> None:
        """The example's body minus one region: 400 BadRequest in Azure's error shape."""
        ex = example(FORK + "CosmosDBDatabaseAccountFailoverPriorityChange.json")
        body = {"failoverPolicies": request_body(ex["parameters"])["failoverPolicies"][:1]}
        path = path_from_template(ACCOUNT_PATH + "/failoverPriorityChange", ex["parameters"], account_names(plan))
        answer = replay(http, "POST", path, API_VERSION, body)
        assert answer.status == 400
        assert answer.body["error"]["code"] == "BadRequest"
        assert "West US" in answer.body["error"]["message"]

    def test_offline_then_online_region(self, http: httpx.Client, plan: DrPlan, emulator: EmulatorHandle) -> None:
        """Offline (fork) and Online (upstream) examples: 202 + operationsStatus headers, polled to Succeeded."""
        for file, action, online in (
            (FORK + "CosmosDBDatabaseAccountOfflineRegion.json", "offlineRegion", False),
            (UPSTREAM + "CosmosDBDatabaseAccountOnlineRegion.json", "onlineRegion", True),
        ):
            ex = example(file)
            body = {"region": "West US"}  # the example's "North Europe" is not one of the estate's regions
            path = path_from_template(f"{ACCOUNT_PATH}/{action}", ex["parameters"], account_names(plan))
            answer = replay(http, "POST", path, API_VERSION, body)
            assert answer.status == 202
            assert_operations_status(answer.headers)
            assert answer.polls[-1][1] == {"status": "Succeeded"}
            regions = emulator.state()["cosmos"]["accounts"][plan.cosmos.account]["regions"]
            assert next(r for r in regions if r["region"] == "westus")["online"] is online

    def test_restore_create(self, http: httpx.Client, plan: DrPlan, emulator: EmulatorHandle) -> None:
        """CosmosDBRestoreDatabaseAccountCreateUpdate: 200 Creating with both LRO headers, then Succeeded."""
        ex = example(UPSTREAM + "CosmosDBRestoreDatabaseAccountCreateUpdate.json")
        source = restorable(http, plan, plan.cosmos.account)
        point = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = request_body(ex["parameters"])
        props = body["properties"]
        body = body | {
            "properties": props
            | {
                "restoreParameters": props["restoreParameters"]
                | {"restoreSource": source["id"], "restoreTimestampInUtc": point}
            }
        }
        path = path_from_template(ACCOUNT_PATH, ex["parameters"], account_names(plan, "ddb1-restored"))
        answer = replay(http, "PUT", path, API_VERSION, body)
        assert answer.status == 200
        assert_shape(ex["responses"]["200"]["body"], answer.body)
        assert answer.body["properties"]["provisioningState"] == "Creating"
        assert re.search(r"/locations/[a-z0-9]+/operationsStatus/", answer.headers["Azure-AsyncOperation"])
        assert re.search(r"/databaseAccounts/ddb1-restored/operationResults/", answer.headers["Location"])
        assert answer.polls[-1][1] == {"status": "Succeeded"}
        final = replay(http, "GET", path, API_VERSION)
        assert final.body["properties"]["provisioningState"] == "Succeeded"
        assert final.body["properties"]["createMode"] == "Restore"
        request = emulator.state()["cosmos"]["restore_requests"][-1]
        assert request["restoreParameters"]["restoreSource"] == source["id"]
        assert request["restoreParameters"]["restoreTimestampInUtc"] == point

    def test_restore_outside_the_window_is_a_400(self, http: httpx.Client, plan: DrPlan) -> None:
        """The example's 2021 timestamp is outside the restorable window: 400 BadRequest."""
        ex = example(UPSTREAM + "CosmosDBRestoreDatabaseAccountCreateUpdate.json")
        body = request_body(ex["parameters"])
        props = body["properties"]
        source = restorable(http, plan, plan.cosmos.account)
        body = body | {
            "properties": props | {"restoreParameters": props["restoreParameters"] | {"restoreSource": source["id"]}}
        }
        path = path_from_template(ACCOUNT_PATH, ex["parameters"], account_names(plan, "ddb1-too-old"))
        answer = replay(http, "PUT", path, API_VERSION, body)
        assert answer.status == 400
        assert answer.body["error"]["code"] == "BadRequest"


class TestRestorableAccounts:
    def test_list(self, http: httpx.Client, plan: DrPlan) -> None:
        """CosmosDBRestorableDatabaseAccountNoLocationList: the live account and the deleted one."""
        ex = example(UPSTREAM + "CosmosDBRestorableDatabaseAccountNoLocationList.json")
        answer = replay(
            http, "GET", path_from_template(RESTORABLE_LIST, ex["parameters"], account_names(plan)), API_VERSION
        )
        assert answer.status == 200
        ignore = frozenset().union(*(ignored_restorable(f"value[{i}].") for i in range(5)))
        assert_shape(ex["responses"]["200"]["body"], answer.body, ignore)
        names = {r["properties"]["accountName"]: r for r in answer.body["value"]}
        assert "deletionTime" not in names[plan.cosmos.account]["properties"]
        assert "deletionTime" in names[f"{plan.cosmos.account}-old"]["properties"]

    def test_list_by_location_and_get(self, http: httpx.Client, plan: DrPlan) -> None:
        """The fork's list-by-location and get examples, for the account's home region."""
        listed = example(FORK + "CosmosDBRestorableDatabaseAccountList.json")
        overrides = account_names(plan) | {"location": "East US"}
        path = path_from_template(LOCATIONS + "/restorableDatabaseAccounts", listed["parameters"], overrides)
        answer = replay(http, "GET", path, API_VERSION)
        assert answer.status == 200
        ignore = frozenset().union(*(ignored_restorable(f"value[{i}].") for i in range(5)))
        assert_shape(listed["responses"]["200"]["body"], answer.body, ignore)
        instance = answer.body["value"][0]["name"]

        one = example(FORK + "CosmosDBRestorableDatabaseAccountGet.json")
        path = path_from_template(
            LOCATIONS + "/restorableDatabaseAccounts/{instanceId}",
            one["parameters"],
            overrides | {"instanceId": instance},
        )
        answer = replay(http, "GET", path, API_VERSION)
        assert answer.status == 200
        assert_shape(one["responses"]["200"]["body"], answer.body, ignored_restorable(""))
        assert answer.body["location"] == "East US"


def sdk_accepted_delete_codes() -> set[int]:
    """The status codes the installed SDK's ``database_accounts.begin_delete`` accepts first (the
    Cosmos DB spec is not in azure-specs, and there is no example of the delete)."""
    source = inspect.getsource(DatabaseAccountsOperations._delete_initial)
    found = re.search(r"status_code not in \[([\d, ]+)\]", source)
    assert found is not None
    return {int(code) for code in found.group(1).split(",")}


def restored_account(http: httpx.Client, plan: DrPlan, name: str) -> str:
    """A point-in-time restore of the plan's account into ``name``, completed; its path."""
    source = restorable(http, plan, plan.cosmos.account)
    point = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {
        "location": plan.primary_region,
        "kind": "GlobalDocumentDB",
        "properties": {
            "databaseAccountOfferType": "Standard",
            "locations": [{"locationName": plan.primary_region, "failoverPriority": 0}],
            "createMode": "Restore",
            "restoreParameters": {
                "restoreMode": "PointInTime",
                "restoreSource": source["id"],
                "restoreTimestampInUtc": point,
            },
        },
    }
    path = path_from_template(ACCOUNT_PATH, account_names(plan, name))
    created = replay(http, "PUT", path, API_VERSION, body)
    assert created.polls[-1][1] == {"status": "Succeeded"}
    return path


class TestDatabaseAccountDelete:
    def test_delete_restored_account(self, http: httpx.Client, plan: DrPlan) -> None:
        """202 with no body, both LRO headers as the account PUT's, polled to Succeeded; the account is then gone."""
        path = restored_account(http, plan, "cosmos-restored")
        answer = replay(http, "DELETE", path, API_VERSION)
        assert answer.status in sdk_accepted_delete_codes()
        assert answer.status == 202
        assert answer.body is None
        status, location = answer.headers["Azure-AsyncOperation"], answer.headers["Location"]
        assert re.search(r"^https://.+/providers/Microsoft\.DocumentDB/locations/[a-z0-9]+/operationsStatus/", status)
        assert re.search(r"^https://.+/databaseAccounts/cosmos-restored/operationResults/[0-9a-f-]{36}\?", location)
        assert status.endswith(f"api-version={API_VERSION}")
        assert answer.polls[-1] == (200, {"status": "Succeeded"})
        gone = replay(http, "GET", path, API_VERSION)
        assert gone.status == 404
        assert gone.body["error"]["code"] == "ResourceNotFound"

    def test_deleting_account_reads_deleting_until_done(
        self, http: httpx.Client, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """While the delete runs the account reads provisioningState Deleting, and another DELETE is a 412."""
        path = restored_account(http, plan, "cosmos-slow")
        emulator.latency({"DatabaseAccounts_Delete": 0.6})
        first = replay(http, "DELETE", path, API_VERSION, follow_lro=False)
        assert first.status == 202
        reading = replay(http, "GET", path, API_VERSION)
        assert reading.body["properties"]["provisioningState"] == "Deleting"
        again = replay(http, "DELETE", path, API_VERSION, follow_lro=False)
        assert again.status == 412
        assert again.body["error"]["code"] == "PreconditionFailed"
        time.sleep(0.7)
        assert replay(http, "GET", path, API_VERSION).status == 404

    def test_missing_account_is_204(self, http: httpx.Client, plan: DrPlan) -> None:
        """An account that does not exist: 204 (one of the SDK's accepted codes), no body, no LRO headers."""
        answer = replay(http, "DELETE", path_from_template(ACCOUNT_PATH, account_names(plan, "nope")), API_VERSION)
        assert answer.status in sdk_accepted_delete_codes()
        assert answer.status == 204
        assert answer.body is None
        assert "Azure-AsyncOperation" not in answer.headers

    def test_deleted_account_stays_restorable(self, http: httpx.Client, plan: DrPlan) -> None:
        """A deleted continuous-backup account is listed as restorable with its deletionTime."""
        path = restored_account(http, plan, "cosmos-gone")
        replay(http, "DELETE", path, API_VERSION)
        found = restorable(http, plan, "cosmos-gone")
        assert isinstance(found["properties"]["deletionTime"], str)
        assert_shape(
            example(UPSTREAM + "CosmosDBRestorableDatabaseAccountNoLocationList.json")["responses"]["200"]["body"][
                "value"
            ][0],
            found,
        )
