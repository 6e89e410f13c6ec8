"""SLO readings of a plan's Front Door profile from Azure Monitor metrics (azure-mgmt-monitor).

Three Metrics_List calls per reading, because Azure only splits a metric by the dimensions it has:
RequestCount, Percentage5XX and TotalLatency for the whole profile; OriginRequestCount split by
Origin and HttpStatusGroup, and OriginLatency split by Origin, for each origin.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from azure.mgmt.monitor.models import MetadataValue, Metric, MetricValue, Response
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.azure import AzureClients, Estates, azure_call, iso_utc
from domain import resource_ids
from domain.messages.health import PROFILE_SCOPE, ReadSloInput, ReadSloResult, SloReading

ORIGIN_DIMENSION = "origin"
STATUS_GROUP_DIMENSION = "httpstatusgroup"
ERROR_GROUP = "5xx"
MAX_SERIES = 100


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class _Tally:
    """Running sums for one reading."""

    requests: float = 0.0
    errors: float = 0.0
    errors_missing: bool = False
    latency: float | None = None
    with_data: int = 0
    timestamps: set[dt.datetime] = field(default_factory=set)

    def worst_latency(self, value: float | None) -> None:
        if value is not None:
            self.latency = value if self.latency is None else max(self.latency, value)

    def reading(self, scope: str, origin: str | None, buckets: int) -> SloReading:
        has_data = self.requests > 0
        error_rate = None
        if has_data and not self.errors_missing:
            error_rate = self.errors / self.requests
        return SloReading(
            scope=scope,
            origin=origin,
            request_count=self.requests,
            error_count=self.errors,
            error_rate=error_rate,
            latency_ms=self.latency if has_data else None,
            has_data=has_data,
            buckets=buckets,
            buckets_with_data=self.with_data,
        )


def _metric(response: Response, name: str) -> Metric | None:
    """The named metric of a response, unless Azure reported an error for it (then: no data)."""
    for metric in response.value or []:
        if metric.name.value.lower() != name.lower():
            continue
        if metric.error_code not in (None, "Success"):
            activity.logger.warning("metric %s failed: %s %s", name, metric.error_code, metric.error_message)
            return None
        return metric
    return None


def _dimension(metadata: list[MetadataValue] | None, name: str) -> str:
    for item in metadata or []:
        if item.name is not None and str(item.name.value).lower() == name:
            return str(item.value or "")
    return ""


def _points(metric: Metric | None) -> dict[dt.datetime, MetricValue]:
    """The first (unsplit) time series of a metric, by timestamp."""
    if metric is None or not metric.timeseries:
        return {}
    return {point.time_stamp: point for point in metric.timeseries[0].data or []}


class HealthActivities:
    """Reads the SLO signals the failover and failback workflows decide on."""

    def __init__(self, estates: Estates, *, clock: Callable[[], dt.datetime] = _utc_now) -> None:
        self._estates = estates
        self._clock = clock

    @activity.defn(name="health.read_slo")
    async def read_slo(self, request: ReadSloInput) -> ReadSloResult:
        """Request count, 5xx rate and latency over a window ending now, for the profile and for
        each requested region's origin; a part without metric data says so (``has_data``)."""
        clients = self._estates[request.plan]
        plan = clients.plan
        if request.window_seconds <= 0:
            raise ApplicationError("window_seconds must be positive", type="InvalidInput", non_retryable=True)
        regions = request.regions or plan.regions
        unknown = [r for r in regions if r not in plan.frontdoor.origins]
        if unknown:
            raise ApplicationError(
                f"plan {plan.name!r} has no Front Door origin for region(s) {', '.join(unknown)}",
                type="InvalidInput",
                non_retryable=True,
            )
        end = self._clock()
        start = end - dt.timedelta(seconds=request.window_seconds)
        timespan = f"{iso_utc(start)}/{iso_utc(end)}"
        origins = {plan.frontdoor.origins[r].lower(): r for r in regions}

        overall_response, counts_response, latency_response = await self._query(
            clients, timespan, request.interval, origins
        )

        count_metric = _metric(overall_response, "RequestCount")
        counts = _points(count_metric)
        percent = _points(_metric(overall_response, "Percentage5XX"))
        latency = _points(_metric(overall_response, "TotalLatency"))
        buckets = len(counts)
        overall = _Tally()
        for stamp, point in counts.items():
            if not point.total:
                continue
            overall.with_data += 1
            overall.requests += point.total
            share = percent.get(stamp)
            if share is None or share.average is None:
                overall.errors_missing = True
            else:
                overall.errors += point.total * share.average / 100.0
            total_latency = latency.get(stamp)
            overall.worst_latency(total_latency.average if total_latency else None)

        tallies = {name: _Tally() for name in origins}
        origin_counts = _metric(counts_response, "OriginRequestCount")
        for element in origin_counts.timeseries if origin_counts else []:
            name = _dimension(element.metadatavalues, ORIGIN_DIMENSION).lower()
            if name not in tallies:
                continue
            is_error = _dimension(element.metadatavalues, STATUS_GROUP_DIMENSION).lower() == ERROR_GROUP
            tally = tallies[name]
            for point in element.data or []:
                if not point.total:
                    continue
                tally.timestamps.add(point.time_stamp)
                tally.requests += point.total
                if is_error:
                    tally.errors += point.total
        origin_latency = _metric(latency_response, "OriginLatency")
        for element in origin_latency.timeseries if origin_latency else []:
            name = _dimension(element.metadatavalues, ORIGIN_DIMENSION).lower()
            if name in tallies:
                for point in element.data or []:
                    tallies[name].worst_latency(point.average)

        readings = []
        for name, tally in tallies.items():
            tally.with_data = len(tally.timestamps)
            readings.append(tally.reading(origins[name], plan.frontdoor.origins[origins[name]], buckets))
        result = ReadSloResult(
            plan=plan.name,
            profile=plan.frontdoor.profile,
            window_start=iso_utc(start),
            window_end=iso_utc(end),
            interval=request.interval,
            overall=overall.reading(PROFILE_SCOPE, None, buckets),
            origins=tuple(readings),
        )
        activity.logger.info(
            "SLO reading for %s over %ss: %.0f requests, 5xx %s, latency %s ms",
            plan.name,
            request.window_seconds,
            result.overall.request_count,
            result.overall.error_rate,
            result.overall.latency_ms,
        )
        return result

    @staticmethod
    async def _query(
        clients: AzureClients, timespan: str, interval: str, origins: dict[str, str]
    ) -> tuple[Response, Response, Response]:
        plan = clients.plan
        fd = plan.frontdoor
        resource_uri = resource_ids.frontdoor_profile(plan.subscription_id, fd.resource_group, fd.profile).lstrip("/")
        origin_filter = " or ".join(f"Origin eq '{name}'" for name in origins) or "Origin eq '*'"
        description = f"metrics of Front Door profile {fd.profile} (resource group {fd.resource_group})"
        async with azure_call(description, "read"):
            overall = await clients.monitor.metrics.list(
                resource_uri,
                timespan=timespan,
                interval=interval,
                metricnames="RequestCount,Percentage5XX,TotalLatency",
                aggregation="Total,Average",
            )
            counts = await clients.monitor.metrics.list(
                resource_uri,
                timespan=timespan,
                interval=interval,
                metricnames="OriginRequestCount",
                aggregation="Total",
                filter=f"{origin_filter} and HttpStatusGroup eq '*'",
                top=MAX_SERIES,
            )
            latency = await clients.monitor.metrics.list(
                resource_uri,
                timespan=timespan,
                interval=interval,
                metricnames="OriginLatency",
                aggregation="Average",
                filter=origin_filter,
                top=MAX_SERIES,
            )
        return overall, counts, latency
