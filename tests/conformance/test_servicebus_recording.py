"""The real Azure recording of a Geo-DR alias life cycle, replayed against the emulator.

``test_cli_mgmt_servicebus_namespace.test_disaster_recovery_configs.yaml`` (azure-sdk-for-python)
shows: name check, create answering Accepted, GET polling to Succeeded, breakPairing 200 with an
empty body, fail-over on the secondary 200 with an empty body, then DELETE answering 400 while the
pairing is still being torn down and 404 once the alias has moved. Its alias interactions are
replayed in order with the names mapped onto the emulator's estate (and the current api-version);
repeated requests are polling, compared as the sequence of distinct answers.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from domain.plan import DrPlan
from domain.resource_ids import servicebus_namespace
from emulator.providers.servicebus import ALIAS_PATH, API_VERSION
from tests.conformance.harness import SPECS, compare_shape, path_from_template
from tests.conftest import EmulatorHandle

RECORDING = (
    SPECS
    / "azure-sdk-for-python/sdk/servicebus/azure-mgmt-servicebus/tests/recordings"
    / "test_cli_mgmt_servicebus_namespace.test_disaster_recovery_configs.yaml"
)
RECORDED_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
RECORDED_GROUP = "rgname"
RECORDED_PRIMARY = "myNamespacexxyyzzzy"
RECORDED_SECONDARY = "myNamespacexxyyzzzysecond"
RECORDED_ALIAS = "mydisasterrecovercf"
LRO_HEADERS = ("azure-asyncoperation", "location", "operation-location")
POLL_DEADLINE_SECONDS = 15.0


@dataclass
class Exchange:
    """One recorded request and the part of its answer that is compared."""

    method: str
    path: str
    body: Any
    status: int
    answer: Any
    headers: dict[str, str]

    def outcome(self) -> tuple[int, str | None]:
        return outcome(self.status, self.answer)


def outcome(status: int, answer: Any) -> tuple[int, str | None]:
    """What polling watches: the status and the provisioning state or error code."""
    if not isinstance(answer, dict):
        return (status, None)
    if "error" in answer:
        return (status, str(answer["error"].get("code")))
    return (status, answer.get("properties", {}).get("provisioningState"))


def collapse(items: list[tuple[int, str | None]]) -> list[tuple[int, str | None]]:
    return [item for i, item in enumerate(items) if i == 0 or items[i - 1] != item]


def without_correlation(message: str) -> str:
    return re.sub(r"\s*CorrelationId: [0-9a-f-]+", "", " ".join(message.split()))


class Mapper:
    """Replaces the recording's names (whole path segments) with the emulator's."""

    def __init__(self, plan: DrPlan) -> None:
        spec = plan.servicebus
        self.names = {
            RECORDED_SUBSCRIPTION: plan.subscription_id,
            RECORDED_GROUP: spec.resource_group,
            RECORDED_PRIMARY: spec.namespaces[plan.primary_region],
            RECORDED_SECONDARY: spec.namespaces[plan.dr_region],
            RECORDED_ALIAS: spec.alias,
        }

    def path(self, path: str) -> str:
        return "/".join(self.names.get(part, part) for part in path.split("/"))

    def text(self, text: str) -> str:
        return re.sub(r"'([^']+)'", lambda m: f"'{self.names.get(m.group(1), m.group(1))}'", text)


def recorded_alias_exchanges(mapper: Mapper) -> list[Exchange]:
    data = yaml.safe_load(RECORDING.read_text(encoding="utf-8"))
    out: list[Exchange] = []
    for interaction in data["interactions"]:
        request, response = interaction["request"], interaction["response"]
        path = urlsplit(request["uri"]).path
        if "/disasterRecoveryConfigs" not in path or "/authorizationrules" in path.lower():
            continue
        body: Any = None
        raw = request.get("body") or ""
        partner = re.search(r'"partnerNamespace": "([^"]+)"', raw)
        if partner:
            body = {"properties": {"partnerNamespace": mapper.path(partner.group(1))}}
        elif raw.startswith("{"):
            body = json.loads(raw)
        text = response["body"]["string"]
        out.append(
            Exchange(
                method=request["method"],
                path=mapper.path(path),
                body=body,
                status=int(response["status"]["code"]),
                answer=json.loads(text) if text else None,
                headers={k.lower(): v[0] for k, v in response["headers"].items()},
            )
        )
    return out


def runs(exchanges: list[Exchange]) -> list[list[Exchange]]:
    """Consecutive identical requests form one run: the recording's polling."""
    grouped: list[list[Exchange]] = []
    for exchange in exchanges:
        if grouped and (grouped[-1][0].method, grouped[-1][0].path) == (exchange.method, exchange.path):
            grouped[-1].append(exchange)
        else:
            grouped.append([exchange])
    return grouped


@pytest.fixture
def http(emulator: EmulatorHandle) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=emulator.url, verify=emulator.ssl_context, timeout=30, headers={"Authorization": "Bearer recording"}
    ) as client:
        yield client


def send(http: httpx.Client, exchange: Exchange) -> httpx.Response:
    return http.request(exchange.method, exchange.path, params={"api-version": API_VERSION}, json=exchange.body)


def body_of(response: httpx.Response) -> Any:
    return response.json() if response.content else None


def unpair_and_delete(http: httpx.Client, plan: DrPlan) -> None:
    """The recording starts from two namespaces without an alias."""
    path = path_from_template(
        ALIAS_PATH,
        {},
        {
            "subscriptionId": plan.subscription_id,
            "resourceGroupName": plan.servicebus.resource_group,
            "namespaceName": plan.servicebus.namespaces[plan.primary_region],
            "alias": plan.servicebus.alias,
        },
    )
    params = {"api-version": API_VERSION}
    assert http.post(path + "/breakPairing", params=params).status_code == 200
    assert http.delete(path, params=params).status_code == 200


class TestDisasterRecoveryRecording:
    def test_alias_life_cycle_matches_the_recording(
        self, http: httpx.Client, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """Every recorded alias request gets the recorded statuses, states, error codes, messages and headers."""
        mapper = Mapper(plan)
        recorded = runs(recorded_alias_exchanges(mapper))
        assert [(r[0].method, r[0].path.rsplit("/", 1)[-1], len(r)) for r in recorded] == [
            ("POST", "CheckNameAvailability", 1),
            ("PUT", plan.servicebus.alias, 1),
            ("GET", plan.servicebus.alias, 4),
            ("POST", "breakPairing", 1),
            ("POST", "failover", 1),
            ("DELETE", plan.servicebus.alias, 10),
        ]
        unpair_and_delete(http, plan)
        # Real Azure applies these over seconds; the recording's fail-over arrived before the
        # break-pairing had finished, which is what made its DELETEs answer 400 and then 404.
        emulator.latency(
            {
                "DisasterRecoveryConfigs_CreateOrUpdate": 0.3,
                "DisasterRecoveryConfigs_BreakPairing": 0.3,
                "DisasterRecoveryConfigs_FailOver": 0.3,
            }
        )
        for run in recorded:
            first, last = run[0], run[-1]
            seen: list[tuple[int, str | None]] = []
            deadline = time.monotonic() + POLL_DEADLINE_SECONDS
            while True:
                response = send(http, first)
                answer = body_of(response)
                seen.append(outcome(response.status_code, answer))
                self.check_answer(first if len(seen) == 1 else last, response, answer, mapper, plan)
                if len(run) == 1 or seen[-1] == last.outcome() or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert collapse(seen) == collapse([e.outcome() for e in run]), f"{first.method} {first.path}"

    @staticmethod
    def check_answer(recorded: Exchange, response: httpx.Response, answer: Any, mapper: Mapper, plan: DrPlan) -> None:
        headers = {k.lower() for k in response.headers}
        assert not headers & set(LRO_HEADERS), "these calls are synchronous in Azure"
        if recorded.answer is None:
            assert response.headers.get("content-length") == "0"
            assert answer is None
            return
        if response.status_code != recorded.status:
            return  # an earlier state of a polling run; the run's sequence is compared by the caller
        assert response.headers["content-type"].startswith(recorded.headers["content-type"].split(";")[0])
        if "error" in recorded.answer:
            assert "x-ms-failure-cause" not in headers, "the resource provider answers these, not the ARM gateway"
            assert answer["error"]["code"] == recorded.answer["error"]["code"]
            expected = mapper.text(without_correlation(recorded.answer["error"]["message"]))
            assert without_correlation(answer["error"]["message"]) == expected
            return
        assert compare_shape(recorded.answer, answer, ignore=frozenset({"properties.type"})) == []
        if "partnerNamespace" in recorded.answer.get("properties", {}):
            spec = plan.servicebus
            partner = servicebus_namespace(plan.subscription_id, spec.resource_group, spec.namespaces[plan.dr_region])
            assert answer["properties"]["partnerNamespace"] == partner
            assert answer["properties"]["role"] == recorded.answer["properties"]["role"]
