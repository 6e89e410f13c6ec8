"""The real Azure recording of a failover group's life, its failover part replayed against the emulator.

``test_cli_mgmt_sql_failover_group.test_failover_group.yaml`` (azure-sdk-for-python) shows, after
creating two servers and a group: GET on the primary, ``forceFailoverAllowDataLoss`` POSTed on the
partner answering 202 ``{"operation":"FailoverFailoverGroup","startTime"}`` with
``azure-asyncoperation`` and ``location``, the status poll, then the GET on
``failoverGroupOperationResults`` answering the group from the new primary; a PATCH (not emulated,
skipped); and a planned ``failover`` back on the original server with the same pattern. Those
interactions are replayed in order with the names mapped onto the emulator's estate and the
current api-version.
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

from domain.plan import DrPlan, FailoverGroupSpec
from emulator.providers.cosmos import display_region
from emulator.providers.sql import API_VERSION
from tests.conformance.harness import SPECS, compare_shape
from tests.conftest import EmulatorHandle

RECORDING = (
    SPECS
    / "azure-sdk-for-python/sdk/sql/azure-mgmt-sql/tests/recordings"
    / "test_cli_mgmt_sql_failover_group.test_failover_group.yaml"
)
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
HEADERS = {"Authorization": "Bearer recording"}
# The recorded group used the Automatic policy with a grace period; the estate's groups are Manual
# (the orchestrator decides when to fail over) and Azure sends no grace period with Manual.
IGNORED_GROUP = frozenset({"properties.readWriteEndpoint.failoverWithDataLossGracePeriodMinutes"})


@dataclass
class Exchange:
    method: str
    path: str
    status: int
    body: Any
    headers: dict[str, str]


def recorded() -> list[Exchange]:
    data = yaml.safe_load(RECORDING.read_text(encoding="utf-8"))
    out = []
    for item in data["interactions"]:
        response = item["response"]
        text = response["body"]["string"]
        out.append(
            Exchange(
                method=item["request"]["method"],
                path=urlsplit(item["request"]["uri"]).path,
                status=response["status"]["code"],
                body=json.loads(text) if text else None,
                headers={k.lower(): v[0] for k, v in response["headers"].items()},
            )
        )
    return out


class Mapper:
    """The recording's names (whole path segments) replaced by the estate's."""

    def __init__(self, plan: DrPlan, group: FailoverGroupSpec) -> None:
        self.names = {
            "00000000-0000-0000-0000-000000000000": plan.subscription_id,
            "rgname": group.resource_group,
            "myserverxpxy": group.servers[plan.primary_region],
            "mypartnerserverxpxy": group.servers[plan.dr_region],
            "myfailovergroupxyz": group.name,
            "eastus": plan.primary_region,
            "eastus2": plan.dr_region,
        }
        self.locations = {"East US": display_region(plan.primary_region), "East US 2": display_region(plan.dr_region)}

    def path(self, path: str) -> str:
        return "/".join(self.names.get(segment, segment) for segment in path.split("/"))

    def url_shape(self, url: str) -> str:
        """A poll URL's path with names mapped and the operation id masked; the query's api-version."""
        parts = urlsplit(url)
        base, _, operation_id = self.path(parts.path).rpartition("/")
        assert UUID.fullmatch(operation_id), url
        return f"{base}/{{id}}?" + re.sub(r"api-version=[^&]+", "api-version", parts.query)


@pytest.fixture
def http(emulator: EmulatorHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.url, verify=ssl.create_default_context(cafile=emulator.ca_file)) as client:
        yield client


def assert_shape(expected: Any, actual: Any, ignore: frozenset[str] = frozenset()) -> None:
    mismatches = compare_shape(expected, actual, ignore=ignore)
    assert not mismatches, "\n".join(str(m) for m in mismatches)


def assert_group_matches(recorded_group: dict[str, Any], ours: dict[str, Any], mapper: Mapper) -> None:
    """Same shape, same id, location and roles once the names are mapped."""
    assert_shape(recorded_group, ours, IGNORED_GROUP)
    assert ours["id"] == mapper.path(recorded_group["id"])
    assert ours["location"] == mapper.locations[recorded_group["location"]]
    assert ours["properties"]["replicationRole"] == recorded_group["properties"]["replicationRole"]
    partner, our_partner = recorded_group["properties"]["partnerServers"][0], ours["properties"]["partnerServers"][0]
    assert our_partner["id"] == mapper.path(partner["id"])
    assert our_partner["replicationRole"] == partner["replicationRole"]
    assert our_partner["location"] == mapper.locations[partner["location"]]


class TestFailoverRecording:
    def test_failover_sequence(self, http: httpx.Client, plan: DrPlan, emulator: EmulatorHandle) -> None:
        """Forced failover onto the partner then planned failover back answer as the recording did."""
        exchanges = recorded()
        group = plan.sql.failover_groups[0]
        mapper = Mapper(plan, group)
        emulator.latency({"FailoverGroups_Failover": 0.3})
        params = {"api-version": API_VERSION}

        initial = exchanges[18]
        answer = http.get(mapper.path(initial.path), params=params, headers=HEADERS)
        assert answer.status_code == initial.status
        assert_group_matches(initial.body, answer.json(), mapper)

        for post_index in (20, 26):
            post, status_poll, final = exchanges[post_index : post_index + 3]
            assert post.method == "POST"
            assert "failoverGroupAzureAsyncOperation" in status_poll.path
            assert "failoverGroupOperationResults" in final.path

            answer = http.post(mapper.path(post.path), params=params, headers=HEADERS)
            assert answer.status_code == post.status == 202
            assert_shape(post.body, answer.json())
            assert answer.json()["operation"] == post.body["operation"]
            for header in ("azure-asyncoperation", "location"):
                assert mapper.url_shape(answer.headers[header]) == mapper.url_shape(post.headers[header])

            statuses = []
            for _ in range(100):
                poll = http.get(answer.headers["azure-asyncoperation"], headers=HEADERS)
                assert poll.status_code == status_poll.status
                assert_shape(status_poll.body, poll.json())
                assert poll.json()["name"] == urlsplit(answer.headers["azure-asyncoperation"]).path.rpartition("/")[2]
                statuses.append(poll.json()["status"])
                if statuses[-1] != "InProgress":
                    break
                time.sleep(0.05)
            assert statuses[-1] == status_poll.body["status"] == "Succeeded"

            result = http.get(answer.headers["location"], headers=HEADERS)
            assert result.status_code == final.status
            assert_group_matches(final.body, result.json(), mapper)

        # The planned failover took its configured 0.3 s: it was seen in progress first.
        assert statuses[0] == "InProgress"
        assert emulator.state()["sql"]["failover_groups"][group.name]["primary_region"] == plan.primary_region
