"""SLO readings through the real azure-mgmt-monitor client against the emulator's metrics, which
follow the traffic the emulated Front Door routes."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.monitor.models import MetricValue, Response
from temporalio.exceptions import ApplicationError

from activities.azure import AzureClients, Estates
from activities.frontdoor import FrontDoorActivities
from activities.health import HealthActivities
from domain import resource_ids
from domain.messages.frontdoor import DesiredOrigin, SetOriginsInput
from domain.messages.health import BREACH, NO_DATA, OK, ReadSloInput, evaluate_slo
from domain.plan import DrPlan
from emulator.providers.frontdoor import BASELINE_ERROR_RATE, BASELINE_LATENCY_MS, EDGE_LATENCY_MS
from tests.conftest import EmulatorHandle


@pytest.fixture
def health(estates: Estates) -> HealthActivities:
    return HealthActivities(estates)


def profile_uri(plan: DrPlan) -> str:
    fd = plan.frontdoor
    return resource_ids.frontdoor_profile(plan.subscription_id, fd.resource_group, fd.profile).lstrip("/")


def timespan(start: float, end: float) -> str:
    def fmt(seconds: float) -> str:
        return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")

    return f"{fmt(start)}/{fmt(end)}"


def points(response: Response) -> list[MetricValue]:
    """The data points of the first metric's first time series."""
    data = response.value[0].timeseries[0].data
    assert data is not None
    return data


class TestReadSlo:
    async def test_steady_state_reads_the_primary_only(self, health: HealthActivities, plan: DrPlan) -> None:
        """At rest the profile and the primary origin have data within the SLO; the passive DR origin has none."""
        result = await health.read_slo(ReadSloInput(plan.name, window_seconds=2, interval="FULL"))
        primary, dr = result.for_region(plan.primary_region), result.for_region(plan.dr_region)
        assert primary is not None
        assert dr is not None
        assert result.overall.request_count == pytest.approx(400, rel=0.05)
        assert result.overall.error_rate == pytest.approx(BASELINE_ERROR_RATE)
        assert result.overall.latency_ms == pytest.approx(BASELINE_LATENCY_MS + EDGE_LATENCY_MS)
        assert primary.has_data
        assert primary.latency_ms == pytest.approx(BASELINE_LATENCY_MS)
        assert (dr.has_data, dr.request_count, dr.error_rate) == (False, 0.0, None)
        assert evaluate_slo(result.overall, plan.slo).status == OK
        assert evaluate_slo(dr, plan.slo).status == NO_DATA

    async def test_requests_move_after_an_origin_change(
        self, estates: Estates, health: HealthActivities, plan: DrPlan
    ) -> None:
        """After the DR origin is promoted and the primary disabled, metrics show requests only at the DR origin."""
        await FrontDoorActivities(estates).set_origins(
            SetOriginsInput(
                plan.name,
                (DesiredOrigin(plan.primary_region, enabled=False), DesiredOrigin(plan.dr_region, priority=1)),
            )
        )
        await asyncio.sleep(1.2)
        result = await health.read_slo(ReadSloInput(plan.name, window_seconds=1, interval="FULL"))
        primary, dr = result.for_region(plan.primary_region), result.for_region(plan.dr_region)
        assert primary is not None
        assert dr is not None
        assert (primary.has_data, dr.has_data) == (False, True)
        assert dr.request_count == pytest.approx(result.overall.request_count)

    async def test_degraded_region_breaches_the_slo(
        self, health: HealthActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """A degraded primary raises the 5xx rate and latency read from the metrics into a breach."""
        emulator.region(plan.primary_region, "degraded", error_rate=0.3, added_latency_ms=1000)
        await asyncio.sleep(1.2)
        result = await health.read_slo(ReadSloInput(plan.name, window_seconds=1, interval="FULL"))
        primary = result.for_region(plan.primary_region)
        assert primary is not None
        assert result.overall.error_rate == pytest.approx(0.3)
        assert primary.error_rate == pytest.approx(0.3)
        assert primary.latency_ms == pytest.approx(BASELINE_LATENCY_MS + 1000)
        verdict = evaluate_slo(result.overall, plan.slo)
        assert verdict.status == BREACH
        assert len(verdict.reasons) == 2

    async def test_no_traffic_means_no_data(
        self, health: HealthActivities, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """Buckets without requests carry no values, so the reading has no data and fails closed."""
        emulator.control.put(
            "/frontdoor/load", json={"profile": plan.frontdoor.profile, "requests_per_second": 0}
        ).raise_for_status()
        await asyncio.sleep(1.2)
        result = await health.read_slo(ReadSloInput(plan.name, window_seconds=1, interval="FULL"))
        assert (result.overall.has_data, result.overall.buckets, result.overall.buckets_with_data) == (False, 1, 0)
        assert evaluate_slo(result.overall, plan.slo).status == NO_DATA

    async def test_buckets_are_counted(self, health: HealthActivities, plan: DrPlan) -> None:
        """A 3-second window at PT1S spans three or four whole buckets, each with data at rest."""
        result = await health.read_slo(ReadSloInput(plan.name, window_seconds=3, interval="PT1S"))
        assert result.overall.buckets in (3, 4)
        assert result.overall.buckets_with_data == result.overall.buckets

    async def test_unknown_region_is_refused(self, health: HealthActivities, plan: DrPlan) -> None:
        """Asking for a region the plan's Front Door does not serve is a non-retryable error."""
        with pytest.raises(ApplicationError, match="centralus") as caught:
            await health.read_slo(ReadSloInput(plan.name, regions=("centralus",)))
        assert caught.value.non_retryable

    async def test_unknown_profile_fails_at_once(self, plan: DrPlan, emulator: EmulatorHandle) -> None:
        """Metrics of a profile the estate does not have are a non-retryable 404 naming the profile."""
        other = dataclasses.replace(plan, frontdoor=dataclasses.replace(plan.frontdoor, profile="afd-missing"))
        estates = Estates([other], emulator.connection())
        try:
            with pytest.raises(ApplicationError) as caught:
                await HealthActivities(estates).read_slo(ReadSloInput(plan.name, window_seconds=5))
        finally:
            await estates.close()
        assert caught.value.non_retryable
        assert "afd-missing" in str(caught.value)


class TestMetricsApi:
    async def test_percentage_5xx_rises_for_a_degraded_region(
        self, clients: AzureClients, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """Percentage5XX reads the baseline before the degradation and the region's error rate after it."""
        asked = time.time()
        emulator.region(plan.primary_region, "degraded", error_rate=0.25)
        changed = time.time()  # the change happened between asked and changed
        await asyncio.sleep(1.0)
        uri = profile_uri(plan)
        before = await clients.monitor.metrics.list(
            uri, timespan=timespan(asked - 5, asked), interval="FULL", metricnames="Percentage5XX"
        )
        after = await clients.monitor.metrics.list(
            uri, timespan=timespan(changed, time.time()), interval="FULL", metricnames="Percentage5XX"
        )
        assert before.value[0].unit == "Percent"
        assert points(before)[0].average == pytest.approx(BASELINE_ERROR_RATE * 100)
        assert points(after)[0].average == pytest.approx(25.0)

    async def test_origin_split_returns_one_series_per_origin_with_data(
        self, clients: AzureClients, plan: DrPlan
    ) -> None:
        """'Origin eq *' splits OriginRequestCount by origin, listing only origins that received requests."""
        now = time.time()
        response = await clients.monitor.metrics.list(
            profile_uri(plan),
            timespan=timespan(now - 30, now),
            interval="PT10S",
            metricnames="OriginRequestCount",
            aggregation="Total,Count",
            filter="Origin eq '*'",
        )
        series = response.value[0].timeseries
        assert [(m.name.value, m.value) for s in series for m in s.metadatavalues or [] if m.name] == [
            ("origin", "app-eastus")
        ]
        totals = [point.total for point in points(response)]
        assert all(t is not None and t > 0 for t in totals)
        first_bucket = (now - 30) // 10 * 10  # buckets are aligned to the interval
        assert sum(t or 0 for t in totals) == pytest.approx(200 * (now - first_bucket), rel=0.01)

    async def test_empty_buckets_carry_only_a_timestamp(
        self, clients: AzureClients, plan: DrPlan, emulator: EmulatorHandle
    ) -> None:
        """Buckets in which no request arrived have no total, as Azure omits values without data."""
        emulator.control.put(
            "/frontdoor/load", json={"profile": plan.frontdoor.profile, "requests_per_second": 0}
        ).raise_for_status()
        start = time.time()
        await asyncio.sleep(1.1)
        response = await clients.monitor.metrics.list(
            profile_uri(plan), timespan=timespan(start + 0.05, time.time()), interval="FULL", metricnames="RequestCount"
        )
        point = points(response)[0]
        assert point.time_stamp is not None
        assert (point.total, point.average) == (None, None)

    async def test_unsupported_dimension_is_a_bad_request(self, clients: AzureClients, plan: DrPlan) -> None:
        """Azure has no Origin dimension on Percentage5XX, so splitting it by origin is a 400."""
        with pytest.raises(HttpResponseError) as caught:
            await clients.monitor.metrics.list(profile_uri(plan), metricnames="Percentage5XX", filter="Origin eq '*'")
        assert caught.value.status_code == 400
        assert "Percentage5XX" in str(caught.value)
