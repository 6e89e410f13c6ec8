"""The traffic simulation's routing and integrals, the metrics helpers, and SLO evaluation."""

from __future__ import annotations

import datetime as dt

import pytest

from domain.messages.frontdoor import DesiredOrigin, active_passive, weighted_split
from domain.messages.health import BREACH, NO_DATA, OK, SloReading, evaluate_slo
from domain.plan import DrPlan, SloSpec
from emulator.core import ArmError
from emulator.providers.frontdoor import (
    BASELINE_ERROR_RATE,
    BASELINE_LATENCY_MS,
    DEFAULT_WARMUP_SECONDS,
    FrontDoorProvider,
    OriginState,
    merge_patch,
)
from emulator.providers.monitor import Measurement, aggregate, parse_duration, parse_filter, parse_timespan
from emulator.world import World

T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def world(plan: DrPlan) -> World:
    return World([plan])


@pytest.fixture
def frontdoor(world: World, clock: Clock) -> FrontDoorProvider:
    return FrontDoorProvider(world, clock=clock)


def origin(frontdoor: FrontDoorProvider, plan: DrPlan, region: str) -> OriginState:
    profile = frontdoor.traffic.profile(plan.frontdoor.profile)
    return profile.group(plan.frontdoor.origin_group).origins[plan.frontdoor.origins[region]]


def configure(frontdoor: FrontDoorProvider, world: World, plan: DrPlan, region: str, **props: object) -> None:
    origin(frontdoor, plan, region).properties.update(props)
    world.changed()


class TestRouting:
    def test_active_passive_sends_everything_to_the_primary(self, frontdoor: FrontDoorProvider, plan: DrPlan) -> None:
        """The initial estate routes all traffic to the primary origin (priority 1)."""
        shares = frontdoor.traffic.shares(plan.frontdoor.profile)
        assert shares == {"app-eastus": 1.0, "app-westus": 0.0}

    def test_equal_priority_splits_by_weight(self, frontdoor: FrontDoorProvider, world: World, plan: DrPlan) -> None:
        """Origins sharing the lowest priority split traffic in proportion to their weights."""
        configure(frontdoor, world, plan, "eastus", weight=250)
        configure(frontdoor, world, plan, "westus", priority=1, weight=750)
        assert frontdoor.traffic.shares(plan.frontdoor.profile) == {"app-eastus": 0.25, "app-westus": 0.75}

    def test_down_region_fails_probes_and_loses_its_traffic(
        self, frontdoor: FrontDoorProvider, world: World, plan: DrPlan
    ) -> None:
        """A down primary fails health probes, so the priority-2 origin takes all traffic."""
        world.set_region_health("eastus", "down")
        assert frontdoor.traffic.shares(plan.frontdoor.profile) == {"app-eastus": 0.0, "app-westus": 1.0}

    def test_degraded_region_keeps_its_traffic_with_its_error_rate(
        self, frontdoor: FrontDoorProvider, world: World, plan: DrPlan
    ) -> None:
        """A degraded region still passes probes: it keeps the traffic and answers its error rate."""
        world.set_region_health("eastus", "degraded", error_rate=0.3, added_latency_ms=200)
        flow = next(f for f in frontdoor.traffic.current(plan.frontdoor.profile).flows if f.region == "eastus")
        assert (flow.share, flow.error_rate, flow.latency_ms) == (1.0, 0.3, BASELINE_LATENCY_MS + 200)

    def test_no_healthy_origin_sends_traffic_to_enabled_origins_that_fail(
        self, frontdoor: FrontDoorProvider, world: World, plan: DrPlan
    ) -> None:
        """With every region down, Front Door still uses the enabled origins by priority, and all requests fail."""
        world.set_region_health("eastus", "down")
        world.set_region_health("westus", "down")
        flows = {f.origin: f for f in frontdoor.traffic.current(plan.frontdoor.profile).flows}
        assert (flows["app-eastus"].share, flows["app-eastus"].error_rate) == (1.0, 1.0)

    def test_disabled_origins_get_nothing(self, frontdoor: FrontDoorProvider, world: World, plan: DrPlan) -> None:
        """Disabling the primary moves all traffic to the DR origin even at a worse priority."""
        configure(frontdoor, world, plan, "eastus", enabledState="Disabled")
        assert frontdoor.traffic.shares(plan.frontdoor.profile) == {"app-eastus": 0.0, "app-westus": 1.0}

    def test_no_enabled_origin_leaves_traffic_unrouted(
        self, frontdoor: FrontDoorProvider, world: World, plan: DrPlan
    ) -> None:
        """With every origin disabled the edge answers all requests itself."""
        configure(frontdoor, world, plan, "eastus", enabledState="Disabled")
        configure(frontdoor, world, plan, "westus", enabledState="Disabled")
        assert frontdoor.traffic.current(plan.frontdoor.profile).unrouted == 1.0

    def test_without_health_probes_a_down_origin_keeps_traffic(
        self, frontdoor: FrontDoorProvider, world: World, plan: DrPlan
    ) -> None:
        """An origin group without health probes cannot notice an outage and keeps routing to it."""
        profile = frontdoor.traffic.profile(plan.frontdoor.profile)
        profile.group(plan.frontdoor.origin_group).properties["healthProbeSettings"] = None
        world.set_region_health("eastus", "down")
        assert frontdoor.traffic.shares(plan.frontdoor.profile)["app-eastus"] == 1.0

    def test_unset_priority_and_weight_use_front_door_defaults(
        self, frontdoor: FrontDoorProvider, world: World, plan: DrPlan
    ) -> None:
        """An origin with null priority and weight counts as priority 1, weight 50."""
        configure(frontdoor, world, plan, "westus", priority=None, weight=None)
        configure(frontdoor, world, plan, "eastus", weight=150)
        assert frontdoor.traffic.shares(plan.frontdoor.profile) == {"app-eastus": 0.75, "app-westus": 0.25}


class TestIntegrals:
    def test_requests_are_rate_times_seconds_times_share(
        self, frontdoor: FrontDoorProvider, world: World, plan: DrPlan, clock: Clock
    ) -> None:
        """Requests per origin over a window are the exact integral of rate x share across changes."""
        profile = plan.frontdoor.profile
        configure(frontdoor, world, plan, "westus", priority=1, weight=1000)  # 50/50 from T0
        clock.now = T0 + 10
        world.set_region_health("eastus", "down")  # 0/100 from T0+10
        clock.now = T0 + 30
        totals = frontdoor.traffic.totals(profile, T0, T0 + 30)
        assert totals["app-eastus"].requests == pytest.approx(200 * 10 * 0.5)
        assert totals["app-westus"].requests == pytest.approx(200 * 10 * 0.5 + 200 * 20)

    def test_errors_follow_each_segment_error_rate(
        self, frontdoor: FrontDoorProvider, world: World, plan: DrPlan, clock: Clock
    ) -> None:
        """5xx counts integrate the baseline rate, then the degraded rate after the change."""
        clock.now = T0 + 10
        world.set_region_health("eastus", "degraded", error_rate=0.2)
        clock.now = T0 + 20
        totals = frontdoor.traffic.totals(plan.frontdoor.profile, T0, T0 + 20)
        assert totals["app-eastus"].errors == pytest.approx(2000 * BASELINE_ERROR_RATE + 2000 * 0.2)

    def test_window_stops_at_now(self, frontdoor: FrontDoorProvider, plan: DrPlan, clock: Clock) -> None:
        """A window reaching into the future counts only the requests already sent."""
        clock.now = T0 + 5
        totals = frontdoor.traffic.totals(plan.frontdoor.profile, T0, T0 + 60)
        assert totals["app-eastus"].requests == pytest.approx(200 * 5)

    def test_history_reaches_back_over_the_warmup(self, frontdoor: FrontDoorProvider, plan: DrPlan) -> None:
        """The estate was already serving before the emulator started, for the warm-up period."""
        totals = frontdoor.traffic.totals(plan.frontdoor.profile, T0 - DEFAULT_WARMUP_SECONDS - 100, T0)
        assert totals["app-eastus"].requests == pytest.approx(200 * DEFAULT_WARMUP_SECONDS)

    def test_load_change_scales_requests(self, frontdoor: FrontDoorProvider, plan: DrPlan, clock: Clock) -> None:
        """Setting the load to zero stops requests from that moment on."""
        clock.now = T0 + 4
        frontdoor.traffic.set_load(plan.frontdoor.profile, 0)
        clock.now = T0 + 10
        totals = frontdoor.traffic.totals(plan.frontdoor.profile, T0, T0 + 10)
        assert totals["app-eastus"].requests == pytest.approx(800)
        assert frontdoor.traffic.samples(plan.frontdoor.profile, T0 + 5, T0 + 10) == []

    def test_negative_load_is_refused(self, frontdoor: FrontDoorProvider, plan: DrPlan) -> None:
        """A negative request rate is a 400, not a silent change."""
        with pytest.raises(ArmError) as caught:
            frontdoor.traffic.set_load(plan.frontdoor.profile, -1)
        assert caught.value.status == 400

    def test_exposure_counts_traffic_sent_to_unhealthy_regions(
        self, frontdoor: FrontDoorProvider, world: World, plan: DrPlan, clock: Clock
    ) -> None:
        """Traffic served by a degraded region counts as exposure; after failover it stops."""
        clock.now = T0 + 5
        world.set_region_health("eastus", "degraded")
        clock.now = T0 + 15
        configure(frontdoor, world, plan, "eastus", enabledState="Disabled")
        clock.now = T0 + 25
        exposure = frontdoor.traffic.exposure(plan.frontdoor.profile, T0, T0 + 25)
        assert exposure.seconds == pytest.approx(10)
        assert exposure.requests == pytest.approx(2000)

    def test_unchanged_traffic_adds_no_segment(
        self, frontdoor: FrontDoorProvider, world: World, plan: DrPlan, clock: Clock
    ) -> None:
        """A change that does not alter routing leaves the history as it was."""
        clock.now = T0 + 1
        world.set_region_health("westus", "healthy")
        assert len(frontdoor.traffic.history(plan.frontdoor.profile)) == 1


class TestMergePatch:
    def test_nested_objects_merge_and_null_resets(self) -> None:
        """A PATCH merges nested objects and sets null fields to null."""
        merged = merge_patch({"a": {"x": 1, "y": 2}, "b": 3}, {"a": {"y": 5}, "b": None})
        assert merged == {"a": {"x": 1, "y": 5}, "b": None}


class TestDesiredStates:
    def test_weighted_split_gives_weights_per_percent(self) -> None:
        """A 25 % primary step is weights 250/750 at equal priority."""
        assert weighted_split("eastus", "westus", 25) == (
            DesiredOrigin("eastus", enabled=True, priority=1, weight=250),
            DesiredOrigin("westus", enabled=True, priority=1, weight=750),
        )

    def test_full_split_is_active_passive(self) -> None:
        """100 % to the primary keeps the DR origin as a priority-2 fallback, as weights cannot be 0."""
        assert weighted_split("eastus", "westus", 100) == active_passive("eastus", "westus")

    def test_out_of_range_percent_is_refused(self) -> None:
        """A split above 100 % is an error."""
        with pytest.raises(ValueError, match="between 0 and 100"):
            weighted_split("eastus", "westus", 120)


class TestMetricsHelpers:
    def test_filter_and_separates_dimensions_or_lists_values(self) -> None:
        """'and' separates dimensions and 'or' lists values of one dimension."""
        parsed = parse_filter("Origin eq 'a' or Origin eq 'B' and HttpStatusGroup eq '*'")
        assert parsed["origin"].include == {"a", "b"}
        assert parsed["httpstatusgroup"].include is None

    def test_filter_refuses_or_across_dimensions(self) -> None:
        """'or' between two different dimensions is invalid, as in Azure."""
        with pytest.raises(ArmError):
            parse_filter("Origin eq 'a' or Endpoint eq 'b'")

    def test_durations_and_timespans(self) -> None:
        """ISO 8601 durations and start/duration timespans resolve to seconds."""
        assert parse_duration("PT1H30M5S") == 5405
        start = dt.datetime(2027, 1, 15, 8, tzinfo=dt.UTC).timestamp()
        assert parse_timespan("2027-01-15T08:00:00Z/PT5M", now=0) == (start, start + 300)
        assert parse_timespan("PT10S", now=T0) == (T0 - 10, T0)

    def test_aggregate_weights_by_count(self) -> None:
        """A bucket's average weighs each measurement by its count; an empty bucket has no values."""
        agg = aggregate([Measurement({}, 3, 100.0), Measurement({}, 1, 0.0)])
        assert agg == {"average": 75.0, "minimum": 0.0, "maximum": 100.0, "total": 300.0, "count": 4}
        assert aggregate([Measurement({}, 0, 5.0)]) is None


class TestSloEvaluation:
    SLO = SloSpec(max_error_rate=0.01, p95_latency_ms=800, min_request_count=50)

    @staticmethod
    def reading(**fields: object) -> SloReading:
        base: dict[str, object] = {
            "scope": "profile",
            "origin": None,
            "request_count": 1000.0,
            "error_count": 1.0,
            "error_rate": 0.001,
            "latency_ms": 85.0,
            "has_data": True,
            "buckets": 5,
            "buckets_with_data": 5,
        }
        base.update(fields)
        return SloReading(**base)  # type: ignore[arg-type]

    def test_healthy_reading_is_ok(self) -> None:
        """Low errors and latency with enough requests is OK."""
        assert evaluate_slo(self.reading(), self.SLO).status == OK

    def test_high_error_rate_breaches(self) -> None:
        """A 5xx rate above the SLO is a breach naming the rate."""
        verdict = evaluate_slo(self.reading(error_rate=0.2), self.SLO)
        assert verdict.status == BREACH
        assert "5xx rate 20.00%" in verdict.reasons[0]

    def test_slow_latency_breaches(self) -> None:
        """Latency above the p95 target is a breach."""
        assert evaluate_slo(self.reading(latency_ms=900.0), self.SLO).status == BREACH

    def test_missing_data_fails_closed(self) -> None:
        """No data at all is not OK."""
        verdict = evaluate_slo(self.reading(has_data=False, request_count=0.0), self.SLO)
        assert (verdict.status, verdict.ok) == (NO_DATA, False)

    def test_too_few_requests_fail_closed(self) -> None:
        """Fewer requests than the plan's minimum cannot prove health."""
        assert evaluate_slo(self.reading(request_count=10.0), self.SLO).status == NO_DATA

    def test_missing_latency_fails_closed(self) -> None:
        """Requests without latency data are not OK."""
        assert evaluate_slo(self.reading(latency_ms=None), self.SLO).status == NO_DATA
