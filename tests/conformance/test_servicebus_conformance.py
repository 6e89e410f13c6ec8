"""Microsoft's Service Bus Geo-DR alias examples replayed against the emulator (api-version 2026-01-01).

Each example's names are mapped onto the emulator's estate (its namespaceName onto the namespace
that plays the example's part), the emulator is put in the state the example assumes, and the
answer's status and body shape are compared with the example's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from domain.plan import DrPlan
from emulator.providers.servicebus import ALIAS_PATH, API_VERSION, CONFIGS_PATH
from tests.conformance.harness import compare_shape, example, path_from_template, replay, request_body
from tests.conftest import EmulatorHandle

EXAMPLES = "azure-rest-api-specs/specification/servicebus/resource-manager/Microsoft.ServiceBus/ServiceBus"
GET = f"{EXAMPLES}/stable/2026-01-01/examples/disasterRecoveryConfigs/SBAliasGet.json"
DELETE = f"{EXAMPLES}/stable/2026-01-01/examples/disasterRecoveryConfigs/SBAliasDelete.json"
CHECK_NAME = f"{EXAMPLES}/stable/2026-01-01/examples/disasterRecoveryConfigs/SBAliasCheckNameAvailability.json"
CREATE = f"{EXAMPLES}/preview/2025-05-01-preview/examples/disasterRecoveryConfigs/SBAliasCreate.json"
FAIL_OVER = f"{EXAMPLES}/preview/2025-05-01-preview/examples/disasterRecoveryConfigs/SBAliasFailOver.json"
BREAK_PAIRING = f"{EXAMPLES}/preview/2025-05-01-preview/examples/disasterRecoveryConfigs/SBEHAliasBreakPairing.json"
LIST = f"{EXAMPLES}/stable/2024-01-01/examples/disasterRecoveryConfigs/SBAliasList.json"

LRO_HEADERS = ("Azure-AsyncOperation", "Location", "Operation-Location")


@pytest.fixture
def http(emulator: EmulatorHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.url, verify=emulator.ssl_context, timeout=30) as client:
        yield client


def names(plan: DrPlan, region: str) -> dict[str, str]:
    """Path parameters that put an example onto the emulator's namespace in ``region``."""
    spec = plan.servicebus
    return {
        "subscriptionId": plan.subscription_id,
        "resourceGroupName": spec.resource_group,
        "namespaceName": spec.namespaces[region],
        "alias": spec.alias,
    }


def path_of(template: str, data: dict[str, Any], plan: DrPlan, region: str) -> str:
    return path_from_template(template, data["parameters"], names(plan, region))


def break_pairing(http: httpx.Client, plan: DrPlan) -> None:
    path = path_from_template(ALIAS_PATH + "/breakPairing", {}, names(plan, plan.primary_region))
    assert replay(http, "POST", path, API_VERSION).status == 200


def assert_synchronous(headers: httpx.Headers) -> None:
    """These operations are not LROs: an LRO header would make the SDK poll."""
    assert not [h for h in LRO_HEADERS if h in headers]


class TestDisasterRecoveryConfigExamples:
    def test_alias_get_on_the_secondary(self, http: httpx.Client, plan: DrPlan) -> None:
        """SBAliasGet: the secondary namespace's view has the example's fields and the role Secondary."""
        data = example(GET)
        result = replay(http, "GET", path_of(ALIAS_PATH, data, plan, plan.dr_region), API_VERSION)
        assert result.status == 200
        assert compare_shape(data["responses"]["200"]["body"], result.body) == []
        assert result.body["properties"]["role"] == "Secondary"
        assert result.body["name"] == plan.servicebus.alias

    def test_alias_create_answers_accepted_primary(self, http: httpx.Client, plan: DrPlan) -> None:
        """SBAliasCreate: re-pairing an unpaired primary answers 200 Accepted with role Primary, synchronously."""
        break_pairing(http, plan)
        data = example(CREATE)
        body = request_body(data["parameters"])
        body["properties"]["partnerNamespace"] = plan.servicebus.namespaces[plan.dr_region]
        result = replay(http, "PUT", path_of(ALIAS_PATH, data, plan, plan.primary_region), API_VERSION, body)
        assert result.status == 200
        assert compare_shape(data["responses"]["200"]["body"], result.body) == []
        assert result.body["properties"]["provisioningState"] == "Accepted"
        assert result.body["properties"]["role"] == "Primary"
        assert result.body["properties"]["alternateName"] == body["properties"]["alternateName"]
        assert_synchronous(result.headers)

    def test_alias_fail_over_on_the_secondary(self, http: httpx.Client, plan: DrPlan) -> None:
        """SBAliasFailOver: the secondary answers 200 with an empty body and no LRO header."""
        data = example(FAIL_OVER)
        result = replay(http, "POST", path_of(ALIAS_PATH + "/failover", data, plan, plan.dr_region), API_VERSION)
        assert result.status == 200
        assert result.body is None
        assert_synchronous(result.headers)

    def test_alias_fail_over_on_the_primary_is_an_azure_error(self, http: httpx.Client, plan: DrPlan) -> None:
        """The same call on the primary answers 400 in Azure's error shape."""
        data = example(FAIL_OVER)
        result = replay(http, "POST", path_of(ALIAS_PATH + "/failover", data, plan, plan.primary_region), API_VERSION)
        assert result.status == 400
        assert compare_shape({"error": {"code": "", "message": ""}}, result.body) == []
        assert result.body["error"]["code"] == "BadRequest"

    def test_alias_break_pairing_on_the_primary(self, http: httpx.Client, plan: DrPlan) -> None:
        """SBEHAliasBreakPairing: the primary answers 200 with an empty body and no LRO header."""
        data = example(BREAK_PAIRING)
        result = replay(
            http, "POST", path_of(ALIAS_PATH + "/breakPairing", data, plan, plan.primary_region), API_VERSION
        )
        assert result.status == 200
        assert result.body is None
        assert_synchronous(result.headers)

    def test_alias_delete_once_unpaired(self, http: httpx.Client, plan: DrPlan) -> None:
        """SBAliasDelete: an unpaired alias is deleted with one of the example's statuses, then is gone."""
        break_pairing(http, plan)
        data = example(DELETE)
        path = path_of(ALIAS_PATH, data, plan, plan.primary_region)
        result = replay(http, "DELETE", path, API_VERSION)
        assert str(result.status) in data["responses"]
        assert replay(http, "GET", path, API_VERSION).status == 404

    def test_alias_list(self, http: httpx.Client, plan: DrPlan) -> None:
        """SBAliasList: the namespace's configurations come as a ``value`` array shaped like the example's."""
        data = example(LIST)
        result = replay(http, "GET", path_of(CONFIGS_PATH, data, plan, plan.primary_region), API_VERSION)
        assert result.status == 200
        assert compare_shape(data["responses"]["200"]["body"], result.body) == []
        assert [c["name"] for c in result.body["value"]] == [plan.servicebus.alias]

    def test_alias_check_name_availability(self, http: httpx.Client, plan: DrPlan) -> None:
        """SBAliasCheckNameAvailability: a free name is available with reason None; the plan's alias is in use."""
        data = example(CHECK_NAME)
        path = path_of(CONFIGS_PATH + "/CheckNameAvailability", data, plan, plan.primary_region)
        free = replay(http, "POST", path, API_VERSION, request_body(data["parameters"]))
        assert free.status == 200
        assert free.body == data["responses"]["200"]["body"]
        taken = replay(http, "POST", path, API_VERSION, {"name": plan.servicebus.alias})
        assert compare_shape(data["responses"]["200"]["body"], taken.body) == []
        assert (taken.body["nameAvailable"], taken.body["reason"]) == (False, "NameInUse")

    def test_other_api_versions_are_refused(self, http: httpx.Client, plan: DrPlan) -> None:
        """The emulator speaks only the installed SDK's api-version, as a pinned SDK major expects."""
        data = example(GET)
        stale = replay(http, "GET", path_of(ALIAS_PATH, data, plan, plan.dr_region), "2017-04-01")
        assert stale.status == 400
        assert stale.body["error"]["code"] == "NoRegisteredProviderFound"
