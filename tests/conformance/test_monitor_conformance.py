"""Microsoft's Metrics_List example (GetMetric.json) replayed against the emulator's Front Door
metrics: the response must have the example's shape, field for field."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import httpx
import pytest

from domain import resource_ids
from domain.plan import DrPlan
from tests.conformance.harness import compare_shape, example, path_from_template, replay
from tests.conftest import EmulatorHandle

API_VERSION = "2024-02-01"
EXAMPLE = (
    "azure-rest-api-specs/specification/monitor/resource-manager/Microsoft.Insights/stable/2024-02-01"
    "/examples/GetMetric.json"
)
TEMPLATE = "/{resourceUri}/providers/Microsoft.Insights/metrics"


@pytest.fixture
def http(emulator: EmulatorHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.url, verify=emulator.ssl_context, timeout=30) as client:
        yield client


def stamp(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def query(plan: DrPlan, parameters: dict[str, object]) -> dict[str, str]:
    """The example's query, mapped onto the Front Door profile. Only what cannot carry over changes:
    the storage metrics, namespace and Tier dimension become Front Door's (OriginRequestCount,
    OriginLatency, Microsoft.Cdn/profiles, Origin), and the 2021 five-hour window at PT6H becomes the
    last five minutes at PT1M, a window in which the simulated estate has served traffic."""
    now = time.time()
    mapped = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in parameters.items()}
    mapped.pop("resourceUri")
    mapped.pop("api-version")
    mapped.update(
        {
            "metricnames": "OriginRequestCount,OriginLatency",
            "metricnamespace": "Microsoft.Cdn/profiles",
            "$filter": "Origin eq '*'",
            "interval": "PT1M",
            "timespan": f"{stamp(now - 300)}/{stamp(now)}",
        }
    )
    return mapped


class TestGetMetric:
    def test_response_has_the_example_shape(self, http: httpx.Client, plan: DrPlan) -> None:
        """Metrics_List answers 200 with cost, timespan, interval, namespace, region and per-metric
        time series whose data points carry the requested aggregations, as in GetMetric.json."""
        ex = example(EXAMPLE)
        fd = plan.frontdoor
        uri = resource_ids.frontdoor_profile(plan.subscription_id, fd.resource_group, fd.profile).lstrip("/")
        path = path_from_template(TEMPLATE, ex["parameters"], {"resourceUri": uri})
        result = replay(http, "GET", path, API_VERSION, query=query(plan, ex["parameters"]))
        assert result.status == 200, result.body
        mismatches = compare_shape(ex["responses"]["200"]["body"], result.body)
        assert not mismatches, "\n".join(str(m) for m in mismatches)
        assert [m["name"]["value"] for m in result.body["value"]] == ["OriginRequestCount", "OriginLatency"]
        assert {m["type"] for m in result.body["value"]} == {"Microsoft.Insights/metrics"}
        assert {m["errorCode"] for m in result.body["value"]} == {"Success"}
        assert result.body["interval"] == "PT1M"

    def test_unknown_metric_is_a_bad_request(self, http: httpx.Client, plan: DrPlan) -> None:
        """A metric Front Door does not have answers 400 with Azure's error body."""
        fd = plan.frontdoor
        uri = resource_ids.frontdoor_profile(plan.subscription_id, fd.resource_group, fd.profile).lstrip("/")
        path = path_from_template(TEMPLATE, {}, {"resourceUri": uri})
        result = replay(http, "GET", path, API_VERSION, query={"metricnames": "BlobCount"})
        assert result.status == 400
        assert result.body["error"]["code"] == "BadRequest"
        assert "BlobCount" in result.body["error"]["message"]
