"""Microsoft's AFD origin and origin-group examples replayed against the emulator: status codes,
LRO headers and body shapes must match, with the examples' names mapped onto the local estate."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from domain.plan import DrPlan
from tests.conformance.harness import compare_shape, example, path_from_template, replay, request_body
from tests.conftest import EmulatorHandle

API_VERSION = "2026-10-01"  # what azure-mgmt-cdn 14.1.0 sends, whatever version the example was taken from
EXAMPLES = "azure-rest-api-specs/specification/cdn/resource-manager/Microsoft.Cdn/Cdn/stable"
PROFILE = (
    "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Cdn/profiles/{profileName}"
)
GROUPS = PROFILE + "/originGroups"
GROUP = GROUPS + "/{originGroupName}"
ORIGINS = GROUP + "/origins"
ORIGIN = ORIGINS + "/{originName}"

# The examples' origin groups authenticate to their origins with a user-assigned managed identity;
# the local estate's group has no origin authentication configured (an optional property).
NO_ORIGIN_AUTH = frozenset({"properties.authentication"})
ASYNC_OPERATION = re.compile(
    r"^https://[^/]+/subscriptions/[^/]+/resourcegroups/[^/]+/providers/Microsoft\.Cdn/operationresults/[^/?]+\?api-version=",
    re.IGNORECASE,
)


@pytest.fixture
def http(emulator: EmulatorHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.url, verify=emulator.ssl_context, timeout=30) as client:
        yield client


def names(plan: DrPlan) -> dict[str, str]:
    fd = plan.frontdoor
    return {
        "subscriptionId": plan.subscription_id,
        "resourceGroupName": fd.resource_group,
        "profileName": fd.profile,
        "originGroupName": fd.origin_group,
        "originName": fd.origins[plan.primary_region],
    }


def assert_shape(expected: object, actual: object, ignore: frozenset[str] = frozenset()) -> None:
    mismatches = compare_shape(expected, actual, ignore=ignore)
    assert not mismatches, "\n".join(str(m) for m in mismatches)


class TestOrigins:
    def test_get(self, http: httpx.Client, plan: DrPlan) -> None:
        """AFDOrigins_Get answers 200 with the example's origin shape and resource type."""
        ex = example(f"{EXAMPLES}/2025-06-01/examples/AFDOrigins_Get.json")
        result = replay(http, "GET", path_from_template(ORIGIN, ex["parameters"], names(plan)), API_VERSION)
        expected = ex["responses"]["200"]["body"]
        assert result.status == 200
        assert_shape(expected, result.body)
        assert result.body["type"] == expected["type"]

    def test_list_by_origin_group(self, http: httpx.Client, plan: DrPlan) -> None:
        """AFDOrigins_ListByOriginGroup answers 200 with a value list of origins shaped like the example's."""
        ex = example(f"{EXAMPLES}/2025-12-01/examples/AFDOrigins_ListByOriginGroup.json")
        result = replay(http, "GET", path_from_template(ORIGINS, ex["parameters"], names(plan)), API_VERSION)
        assert result.status == 200
        assert_shape(ex["responses"]["200"]["body"], result.body)
        assert len(result.body["value"]) == len(plan.frontdoor.origins)

    def test_update(self, http: httpx.Client, plan: DrPlan) -> None:
        """AFDOrigins_Update answers 202 with Azure-AsyncOperation, polls to Succeeded, then reads as
        the 200 example."""
        ex = example(f"{EXAMPLES}/2026-10-01/examples/AFDOrigins_Update.json")
        path = path_from_template(ORIGIN, ex["parameters"], names(plan))
        result = replay(http, "PATCH", path, API_VERSION, request_body(ex["parameters"]))
        assert result.status == 202
        assert ASYNC_OPERATION.match(result.headers["Azure-AsyncOperation"])
        assert_shape(ex["responses"]["202"]["body"], result.body)
        assert result.body["properties"]["provisioningState"] == "Updating"
        assert [body["status"] for status, body in result.polls if status == 200][-1] == "Succeeded"
        final = replay(http, "GET", path, API_VERSION)
        assert_shape(ex["responses"]["200"]["body"], final.body)
        assert final.body["properties"]["hostName"] == "host1.blob.core.windows.net"


class TestOriginGroups:
    def test_get(self, http: httpx.Client, plan: DrPlan) -> None:
        """AFDOriginGroups_Get answers 200 with the example's origin group shape."""
        ex = example(f"{EXAMPLES}/2026-10-01/examples/AFDOriginGroups_Get.json")
        result = replay(http, "GET", path_from_template(GROUP, ex["parameters"], names(plan)), API_VERSION)
        expected = ex["responses"]["200"]["body"]
        assert result.status == 200
        assert_shape(expected, result.body, NO_ORIGIN_AUTH)
        assert result.body["type"] == expected["type"]

    def test_list_by_profile(self, http: httpx.Client, plan: DrPlan) -> None:
        """AFDOriginGroups_ListByProfile answers 200 with a value list shaped like the example's."""
        ex = example(f"{EXAMPLES}/2025-12-01/examples/AFDOriginGroups_ListByProfile.json")
        result = replay(http, "GET", path_from_template(GROUPS, ex["parameters"], names(plan)), API_VERSION)
        assert result.status == 200
        assert_shape(ex["responses"]["200"]["body"], result.body, frozenset({"value[0].properties.authentication"}))

    def test_update(self, http: httpx.Client, plan: DrPlan) -> None:
        """AFDOriginGroups_Update answers 202 with Azure-AsyncOperation and then reads as the 200 example,
        authentication included since the example's body sets it."""
        ex = example(f"{EXAMPLES}/2025-12-01/examples/AFDOriginGroups_Update.json")
        path = path_from_template(GROUP, ex["parameters"], names(plan))
        result = replay(http, "PATCH", path, API_VERSION, request_body(ex["parameters"]))
        assert result.status == 202
        assert ASYNC_OPERATION.match(result.headers["Azure-AsyncOperation"])
        assert_shape(ex["responses"]["202"]["body"], result.body)
        assert [body["status"] for status, body in result.polls if status == 200][-1] == "Succeeded"
        final = replay(http, "GET", path, API_VERSION)
        assert_shape(ex["responses"]["200"]["body"], final.body)
        assert final.body["properties"]["healthProbeSettings"]["probePath"] == "/path2"


class TestErrors:
    def test_missing_origin_is_an_arm_404(self, http: httpx.Client, plan: DrPlan) -> None:
        """A missing origin answers 404 with Azure's error body naming it."""
        path = path_from_template(ORIGIN, {}, {**names(plan), "originName": "no-such-origin"})
        result = replay(http, "GET", path, API_VERSION)
        assert result.status == 404
        assert result.body["error"]["code"] == "ResourceNotFound"
        assert "no-such-origin" in result.body["error"]["message"]

    def test_out_of_range_weight_is_a_400(self, http: httpx.Client, plan: DrPlan) -> None:
        """Front Door weights must be 1..1000; anything else is a 400 with an error body."""
        path = path_from_template(ORIGIN, {}, names(plan))
        result = replay(http, "PATCH", path, API_VERSION, {"properties": {"weight": 0}})
        assert result.status == 400
        assert set(result.body["error"]) >= {"code", "message"}
