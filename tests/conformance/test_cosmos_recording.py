"""The real Azure recording of a Cosmos DB account creation, replayed against the emulator.

``test_mgmt_cosmosdb.test_accounts_create.yaml`` (azure-sdk-for-python) shows: HEAD on the account
name answering 404; PUT answering **200** with ``provisioningState: Creating`` plus
``azure-asyncoperation`` (``.../locations/westus/operationsStatus/{id}``) and ``location``
(``.../databaseAccounts/{name}/operationResults/{id}``); polls answering ``{"status":"Dequeued"}``
then ``{"status":"Succeeded"}``; the final GET with ``provisioningState: Succeeded``. Every
interaction is replayed in order with the subscription and resource group mapped onto the
emulator's estate and the current api-version.
"""

from __future__ import annotations

import json
import re
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from domain.plan import DrPlan
from emulator.providers.cosmos import API_VERSION
from tests.conformance.harness import SPECS, compare_shape
from tests.conftest import EmulatorHandle

RECORDING = (
    SPECS
    / "azure-sdk-for-python/sdk/cosmos/azure-mgmt-cosmosdb/tests/recordings"
    / "test_mgmt_cosmosdb.test_accounts_create.yaml"
)
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
HEADERS = {"Authorization": "Bearer recording"}
IGNORED = frozenset(
    {
        # Fields of the 2021-03-01-preview answer that the 2026-03-15 schema no longer has.
        "properties.EnabledApiTypes",
        "properties.enablePartitionKeyMonitor",
        "properties.configurationOverrides",
        # The 2021 answer serialized this enum as the integer 1; 2026-03-15 sends the string "Geo".
        "properties.backupPolicy.periodicModeProperties.backupStorageRedundancy",
    }
)


@dataclass
class Exchange:
    method: str
    path: str
    request: Any
    status: int
    body: Any
    headers: dict[str, str]


def recorded() -> list[Exchange]:
    data = yaml.safe_load(RECORDING.read_text(encoding="utf-8"))
    out = []
    for item in data["interactions"]:
        request, response = item["request"], item["response"]
        text = response["body"]["string"]
        out.append(
            Exchange(
                method=request["method"],
                path=urlsplit(request["uri"]).path,
                request=json.loads(request["body"]) if request["body"] else None,
                status=response["status"]["code"],
                body=json.loads(text) if text else None,
                headers={k.lower(): v[0] for k, v in response["headers"].items()},
            )
        )
    return out


class Mapper:
    def __init__(self, plan: DrPlan) -> None:
        self.names = {
            "00000000-0000-0000-0000-000000000000": plan.subscription_id,
            "test_mgmt_cosmosdb_test_accounts_create427b100e": plan.cosmos.resource_group,
        }

    def path(self, path: str) -> str:
        return "/".join(self.names.get(segment, segment) for segment in path.split("/"))

    def url_shape(self, url: str) -> str:
        parts = urlsplit(url)
        base, _, operation_id = self.path(parts.path).rpartition("/")
        assert UUID.fullmatch(operation_id), url
        return f"{base}/{{id}}?" + re.sub(r"api-version=[^&]+", "api-version", parts.query)


@pytest.fixture
def http(emulator: EmulatorHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.url, verify=ssl.create_default_context(cafile=emulator.ca_file)) as client:
        yield client


def assert_shape(expected: Any, actual: Any) -> None:
    mismatches = compare_shape(expected, actual, ignore=IGNORED)
    assert not mismatches, "\n".join(str(m) for m in mismatches)


class TestAccountCreateRecording:
    def test_create_sequence(self, http: httpx.Client, plan: DrPlan, emulator: EmulatorHandle) -> None:
        """Name check, PUT 200 Creating with both LRO headers, Dequeued then Succeeded, final GET."""
        check, put, *polls, final = recorded()
        mapper = Mapper(plan)
        params = {"api-version": API_VERSION}
        emulator.latency({"DatabaseAccounts_CreateOrUpdate": 0.3})

        answer = http.head(check.path, params=params, headers=HEADERS)
        assert answer.status_code == check.status == 404

        answer = http.put(mapper.path(put.path), params=params, json=put.request, headers=HEADERS)
        assert answer.status_code == put.status == 200
        assert_shape(put.body, answer.json())
        assert (
            answer.json()["properties"]["provisioningState"]
            == put.body["properties"]["provisioningState"]
            == "Creating"
        )
        for header in ("azure-asyncoperation", "location"):
            assert mapper.url_shape(answer.headers[header]) == mapper.url_shape(put.headers[header])

        seen = []
        for _ in range(100):
            poll = http.get(answer.headers["azure-asyncoperation"], headers=HEADERS)
            assert poll.status_code == 200
            seen.append(poll.json())
            if poll.json()["status"] != "Dequeued":
                break
            time.sleep(0.05)
        distinct = [body for i, body in enumerate(seen) if i == 0 or seen[i - 1] != body]
        assert distinct == [p.body for p in polls] == [{"status": "Dequeued"}, {"status": "Succeeded"}]

        answer = http.get(mapper.path(final.path), params=params, headers=HEADERS)
        assert answer.status_code == final.status
        assert_shape(final.body, answer.json())
        assert answer.json()["properties"]["provisioningState"] == "Succeeded"
        assert http.head(check.path, params=params, headers=HEADERS).status_code == 200
