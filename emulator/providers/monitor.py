"""Azure Monitor metrics (Metrics_List) for the Front Door profiles, computed from the traffic
simulation: exact integrals over each time bucket, in the shape of GetMetric.json.

Each request (or health probe) is one measurement: RequestCount and OriginRequestCount measure 1,
Percentage5XX measures 100 for a 5xx answer and 0 otherwise, the latencies measure milliseconds,
OriginHealthPercentage measures 100 for a passed probe. A bucket's total, count, average, minimum
and maximum follow from those; a bucket without measurements carries only its timestamp, as Azure
omits values when there is no data.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from domain.resource_ids import ResourceId
from emulator.core import ArmError, JsonDict, RequestContext, Router, json_response
from emulator.providers.frontdoor import EDGE_LATENCY_MS, FrontDoorProvider, ProbeSample, ProfileState, RequestSample
from emulator.world import World

API_VERSION = "2024-02-01"
NAMESPACE = "Microsoft.Cdn/profiles"
RESOURCE_REGION = "global"  # Front Door profiles are global resources
MAX_METRICS = 20
MAX_BUCKETS = 100_000
DEFAULT_TOP = 10
DEFAULT_TIMESPAN_SECONDS = 3600.0
AGGREGATIONS = ("average", "count", "maximum", "minimum", "total")

# Synthetic values for dimensions the simulation does not model (every client is in one place).
CLIENT_REGION = "North America"
CLIENT_COUNTRY = "United States"
STATUS_CODE = {"2XX": "200", "5XX": "503"}


@dataclass(frozen=True)
class MetricDef:
    name: str
    display: str
    description: str
    unit: str
    primary: str  # default aggregation
    dimensions: tuple[str, ...]
    source: str  # "requests" (every request), "origin" (requests that reached an origin), "probes"


_CLIENT_DIMS = ("HttpStatus", "HttpStatusGroup", "ClientRegion", "ClientCountry", "Endpoint")

# Names, units, default aggregations and dimensions as Azure lists them for Microsoft.Cdn/profiles.
METRICS = {
    m.name.lower(): m
    for m in (
        MetricDef(
            "RequestCount", "Request Count", "The number of client requests served by the HTTP/S proxy.",
            "Count", "total", _CLIENT_DIMS, "requests",
        ),
        MetricDef(
            "Percentage5XX", "Percentage of 5XX",
            "The percentage of all the client requests for which the response status code is 5XX.",
            "Percent", "average", ("Endpoint", "ClientRegion", "ClientCountry"), "requests",
        ),
        MetricDef(
            "TotalLatency", "Total Latency",
            "The time calculated from when the client request was received by the HTTP/S proxy until the "
            "client acknowledged the last response byte from the HTTP/S proxy.",
            "MilliSeconds", "average", _CLIENT_DIMS, "requests",
        ),
        MetricDef(
            "OriginRequestCount", "Origin Request Count", "The number of requests sent from AFDX to origin.",
            "Count", "total", ("HttpStatus", "HttpStatusGroup", "Origin", "Endpoint"), "origin",
        ),
        MetricDef(
            "OriginLatency", "Origin Latency",
            "The time calculated from when the request was sent by AFDX edge to the backend until AFDX "
            "received the last response byte from the backend.",
            "MilliSeconds", "average", ("Origin", "Endpoint"), "origin",
        ),
        MetricDef(
            "OriginHealthPercentage", "Origin Health Percentage",
            "The percentage of successful health probes from AFDX to backends.",
            "Percent", "average", ("Origin", "OriginGroup"), "probes",
        ),
    )
}  # fmt: skip


@dataclass(frozen=True)
class Measurement:
    dims: dict[str, str]  # lower-case dimension name -> value
    count: float
    value: float


@dataclass
class Constraint:
    include: set[str] | None  # None: every value ('*')
    exclude: set[str]

    def allows(self, value: str) -> bool:
        if value.lower() in self.exclude:
            return False
        return self.include is None or value.lower() in self.include


def bad_request(message: str) -> ArmError:
    return ArmError(400, "BadRequest", message)


_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$", re.IGNORECASE)


def parse_duration(text: str) -> float:
    """ISO 8601 duration (PT5S, PT1M, PT1H, P1D, PT1H30M) in seconds."""
    found = _DURATION.match(text.strip())
    if not found or not any(found.groups()):
        raise bad_request(f"Invalid ISO 8601 duration '{text}'.")
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in found.groups())
    total = days * 86400 + hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise bad_request(f"The duration '{text}' must be positive.")
    return total


def parse_time(text: str) -> float:
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise bad_request(f"Invalid timespan component '{text}': expected an ISO 8601 date and time.") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def parse_timespan(text: str | None, now: float) -> tuple[float, float]:
    """``start/end``, ``start/duration`` or ``duration`` (ending now); default the last hour."""
    if not text:
        return now - DEFAULT_TIMESPAN_SECONDS, now
    parts = text.split("/")
    if len(parts) == 1:
        return now - parse_duration(parts[0]), now
    if len(parts) != 2:
        raise bad_request(f"Invalid timespan '{text}': expected 'start/end'.")
    start = parse_time(parts[0])
    end = start + parse_duration(parts[1]) if parts[1].strip().upper().startswith("P") else parse_time(parts[1])
    if end <= start:
        raise bad_request(f"Invalid timespan '{text}': the end must be after the start.")
    return start, end


def stamp(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_ATOM = re.compile(r"^\s*\(?\s*([A-Za-z][A-Za-z0-9_]*)\s+(eq|ne)\s+'([^']*)'\s*\)?\s*$", re.IGNORECASE)


def parse_filter(text: str | None) -> dict[str, Constraint]:
    """``A eq 'a1' and B eq 'b1' or B eq 'b2' and C eq '*'``: 'and' separates dimensions, 'or'
    lists values of one dimension. Returns lower-case dimension -> constraint, in filter order."""
    constraints: dict[str, Constraint] = {}
    if not text or not text.strip():
        return constraints
    for clause in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        dimension: str | None = None
        include: set[str] | None = set()
        exclude: set[str] = set()
        for atom in re.split(r"\s+or\s+", clause, flags=re.IGNORECASE):
            found = _ATOM.match(atom)
            if not found:
                raise bad_request(f"Invalid $filter '{text}': cannot parse '{atom.strip()}'.")
            name, op, value = found.group(1).lower(), found.group(2).lower(), found.group(3)
            if dimension is not None and name != dimension:
                raise bad_request(f"Invalid $filter '{text}': 'or' cannot separate two different dimensions.")
            dimension = name
            if op == "ne":
                exclude.add(value.lower())
            elif value == "*":
                include = None
            elif include is not None:
                include.add(value.lower())
        assert dimension is not None
        if include is not None and not include and exclude:
            include = None  # only 'ne' terms: everything except those
        constraints[dimension] = Constraint(include, exclude)
    return constraints


def aggregate(measurements: list[Measurement]) -> dict[str, float] | None:
    live = [m for m in measurements if m.count > 0]
    if not live:
        return None
    total = sum(m.count * m.value for m in live)
    count = sum(m.count for m in live)
    return {
        "average": total / count,
        "minimum": min(m.value for m in live),
        "maximum": max(m.value for m in live),
        "total": total,
        "count": count,
    }


class MonitorProvider:
    """Metrics_List for Front Door profiles."""

    name = "monitor"

    def __init__(self, world: World, frontdoor: FrontDoorProvider) -> None:
        self.world = world
        self.frontdoor = frontdoor

    def _measurements(
        self,
        metric: MetricDef,
        profile: ProfileState,
        requests: list[RequestSample],
        probes: list[ProbeSample],
    ) -> list[Measurement]:
        out: list[Measurement] = []
        if metric.source == "probes":
            for probe in probes:
                dims = {"origin": probe.origin, "origingroup": profile.served_group}
                out.append(Measurement(dims, probe.probes, 100.0 if probe.healthy else 0.0))
            return out
        for sample in requests:
            if metric.source == "origin" and sample.origin is None:
                continue
            dims = {
                "httpstatus": STATUS_CODE[sample.status_group],
                "httpstatusgroup": sample.status_group,
                "clientregion": CLIENT_REGION,
                "clientcountry": CLIENT_COUNTRY,
                "endpoint": profile.endpoint_host,
            }
            if sample.origin is not None:
                dims["origin"] = sample.origin
            if metric.name in ("RequestCount", "OriginRequestCount"):
                value = 1.0
            elif metric.name == "Percentage5XX":
                value = 100.0 if sample.status_group == "5XX" else 0.0
            elif metric.name == "TotalLatency":
                value = sample.latency_ms + EDGE_LATENCY_MS
            else:  # OriginLatency
                value = sample.latency_ms
            out.append(Measurement(dims, sample.requests, value))
        return out

    async def list_metrics(self, ctx: RequestContext) -> web.StreamResponse:
        resource_uri = "/" + ctx.params["resourceUri"].strip("/")
        try:
            rid = ResourceId.parse(resource_uri)
        except ValueError as exc:
            raise bad_request(f"'{resource_uri}' is not a resource id.") from exc
        profile = self.frontdoor.profile_by_id(resource_uri)
        if profile is None:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource '{rid.provider}/{'/'.join(f'{t}/{n}' for t, n in rid.types_and_names)}' under "
                f"resource group '{rid.resource_group}' was not found.",
            )
        query = {k.lower(): v for k, v in ctx.request.query.items()}
        namespace = query.get("metricnamespace")
        if namespace and namespace.lower() != NAMESPACE.lower():
            raise bad_request(f"Metric namespace '{namespace}' is not valid for this resource; use '{NAMESPACE}'.")

        names = [n.replace("%2", ",").strip() for n in query.get("metricnames", "RequestCount").split(",")]
        names = [n for n in names if n]
        if len(names) > MAX_METRICS:
            raise bad_request(f"At most {MAX_METRICS} metric names can be requested.")
        metrics: list[MetricDef] = []
        for n in names:
            found = METRICS.get(n.lower())
            if found is None:
                valid = ", ".join(m.name for m in METRICS.values())
                raise bad_request(
                    f"Failed to find metric configuration for provider: Microsoft.Cdn, resource Type: profiles, "
                    f"metric: {n}, Valid metrics: {valid}"
                )
            metrics.append(found)

        aggregations: list[str] | None = None
        if query.get("aggregation"):
            aggregations = [a.strip().lower() for a in query["aggregation"].split(",") if a.strip()]
            for a in aggregations:
                if a not in AGGREGATIONS:
                    raise bad_request(
                        f"Invalid aggregation '{a}'; valid ones are Average, Count, Maximum, Minimum, Total."
                    )

        now = self.frontdoor.traffic.now()
        start, end = parse_timespan(query.get("timespan"), now)
        interval_text = (query.get("interval") or "PT1M").strip().upper()
        buckets: list[tuple[float, float]] = []
        if interval_text == "FULL":
            buckets.append((start, end))
        else:
            grain = parse_duration(interval_text)
            if grain != int(grain):
                raise bad_request(f"The interval '{interval_text}' must be a whole number of seconds.")
            first = math.floor(start / grain) * grain
            if (end - first) / grain > MAX_BUCKETS:
                raise bad_request(f"The query spans more than {MAX_BUCKETS} intervals; use a larger interval.")
            t = first
            while t < end:
                buckets.append((t, min(t + grain, end)))
                t += grain

        constraints = parse_filter(query.get("$filter"))
        rollup = {d.strip().lower() for d in query.get("rollupby", "").split(",") if d.strip()}
        metadata_only = query.get("resulttype", "").lower() == "metadata"
        top = DEFAULT_TOP
        if query.get("top"):
            try:
                top = int(query["top"])
            except ValueError as exc:
                raise bad_request(f"Invalid top '{query['top']}'.") from exc
        orderby = query.get("orderby", "").strip().lower().split()

        traffic = self.frontdoor.traffic
        request_samples = [traffic.samples(profile.id, b0, b1) for b0, b1 in buckets]
        probe_samples = [traffic.probes(profile.id, b0, b1) for b0, b1 in buckets]

        values: list[JsonDict] = []
        cost = 0
        for metric in metrics:
            supported = {d.lower(): d for d in metric.dimensions}
            unknown = [d for d in constraints if d not in supported]
            if unknown:
                raise bad_request(
                    f"Metric: {metric.name} does not support requested dimension combination: "
                    f"{','.join(unknown)}, supported ones are: {','.join(metric.dimensions)}"
                )
            split = [d for d in constraints if d not in rollup]
            per_bucket = [
                [
                    m
                    for m in self._measurements(metric, profile, reqs, probes)
                    if all(c.allows(m.dims.get(d, "")) for d, c in constraints.items())
                ]
                for reqs, probes in zip(request_samples, probe_samples, strict=True)
            ]
            keys: list[tuple[str, ...]]
            if split:
                found_keys = {tuple(m.dims.get(d, "") for d in split) for ms in per_bucket for m in ms if m.count > 0}
                keys = sorted(found_keys)
            else:
                keys = [()]
            wanted = aggregations or [metric.primary]
            order_agg = orderby[0] if orderby and orderby[0] in AGGREGATIONS else metric.primary
            descending = not (len(orderby) > 1 and orderby[1] == "asc")

            series: list[tuple[float, JsonDict]] = []
            for key in keys:
                selected = [[m for m in ms if tuple(m.dims.get(d, "") for d in split) == key] for ms in per_bucket]
                overall = aggregate([m for ms in selected for m in ms])
                rank = overall[order_agg] if overall else 0.0
                element: JsonDict = {
                    "metadatavalues": [
                        {"name": {"value": d, "localizedValue": d}, "value": v} for d, v in zip(split, key, strict=True)
                    ]
                }
                if not metadata_only:
                    data = []
                    for (b0, _), ms in zip(buckets, selected, strict=True):
                        point: JsonDict = {"timeStamp": stamp(b0)}
                        agg = aggregate(ms)
                        if agg is not None:
                            point.update({a: agg[a] for a in wanted})
                        data.append(point)
                    element["data"] = data
                    cost += len(data)
                series.append((rank, element))
            if split:
                series.sort(key=lambda item: item[0], reverse=descending)
                series = series[:top]
            values.append(
                {
                    "id": f"{profile.id}/providers/Microsoft.Insights/metrics/{metric.name}",
                    "type": "Microsoft.Insights/metrics",
                    "name": {"value": metric.name, "localizedValue": metric.display},
                    "displayDescription": metric.description,
                    "unit": metric.unit,
                    "timeseries": [element for _, element in series],
                    "errorCode": "Success",
                }
            )

        body: dict[str, Any] = {
            "cost": cost,
            "timespan": f"{stamp(start)}/{stamp(end)}",
            "interval": interval_text,
            "value": values,
            "namespace": NAMESPACE,
            "resourceregion": RESOURCE_REGION,
        }
        return json_response(body)

    def register(self, router: Router, control: Router) -> None:
        router.add(
            "GET", "/{resourceUri}/providers/Microsoft.Insights/metrics", "Metrics_List", self.list_metrics,
            api_version=API_VERSION,
        )  # fmt: skip

    def snapshot(self) -> JsonDict:
        return {"metrics": sorted(m.name for m in METRICS.values()), "namespace": NAMESPACE}
