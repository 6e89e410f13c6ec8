"""Azure Front Door Standard/Premium (Microsoft.Cdn): origin groups and origins over ARM, and the
traffic simulation that decides which origin serves the estate's clients, and how well.

Routing follows Front Door's rules: among enabled origins that pass health probes, the lowest
priority value wins and traffic is split by weight; when no origin passes, the enabled ones get
the traffic anyway (and fail). Every change is recorded as a piecewise-constant history, so request
counts, errors and latency over any window are exact integrals, which the metrics API serves.
"""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from domain import resource_ids
from emulator.core import ArmError, JsonDict, RequestContext, Router, json_response, not_found
from emulator.world import RegionState, World

API_VERSION = "2026-10-01"

PROFILE_PATH = (
    "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Cdn/profiles/{profileName}"
)
GROUPS_PATH = PROFILE_PATH + "/originGroups"
GROUP_PATH = GROUPS_PATH + "/{originGroupName}"
ORIGINS_PATH = GROUP_PATH + "/origins"
ORIGIN_PATH = ORIGINS_PATH + "/{originName}"
# The path AFDOrigins_Update.json's Azure-AsyncOperation header points at.
OPERATION_PATH = (
    "/subscriptions/{subscriptionId}/resourcegroups/{resourceGroupName}"
    "/providers/Microsoft.Cdn/operationresults/{operationId}"
)

ORIGIN_TYPE = "Microsoft.Cdn/profiles/origingroups/origins"
GROUP_TYPE = "Microsoft.Cdn/profiles/origingroups"

# Front Door's defaults when an origin leaves priority or weight unset.
DEFAULT_PRIORITY = 1
DEFAULT_WEIGHT = 50
PRIORITY_RANGE = (1, 5)
WEIGHT_RANGE = (1, 1000)

DEFAULT_REQUESTS_PER_SECOND = 200.0
BASELINE_ERROR_RATE = 0.001
BASELINE_LATENCY_MS = 80.0  # an origin's p95 when its region is healthy
EDGE_LATENCY_MS = 5.0  # what the edge adds on top of the origin (TotalLatency - OriginLatency)
# The estate was serving before the emulator started: metrics windows that reach back before the
# start still hold data, as they would in Azure.
DEFAULT_WARMUP_SECONDS = 600.0

ORIGIN_UPDATABLE = (
    "hostName",
    "httpPort",
    "httpsPort",
    "originHostHeader",
    "priority",
    "weight",
    "enabledState",
    "enforceCertificateNameCheck",
    "sharedPrivateLinkResource",
    "azureOrigin",
    "certificateNameCheckValidationMode",
    "customCertificateSubjects",
)
GROUP_UPDATABLE = (
    "loadBalancingSettings",
    "healthProbeSettings",
    "trafficRestorationTimeToHealedOrNewEndpointsInMinutes",
    "sessionAffinityState",
    "authentication",
)


def merge_patch(target: Any, patch: Any) -> Any:
    """JSON merge patch (RFC 7386), except that null sets the field to null instead of removing it,
    which is how ARM shows properties that fell back to their default."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        result[key] = None if value is None else merge_patch(result.get(key), value)
    return result


@dataclass
class OriginState:
    name: str
    region: str
    properties: JsonDict
    updating: bool = False

    @property
    def enabled(self) -> bool:
        return bool(self.properties.get("enabledState", "Enabled") == "Enabled")

    @property
    def priority(self) -> int:
        value = self.properties.get("priority")
        return DEFAULT_PRIORITY if value is None else int(value)

    @property
    def weight(self) -> int:
        value = self.properties.get("weight")
        return DEFAULT_WEIGHT if value is None else int(value)


@dataclass
class OriginGroupState:
    name: str
    properties: JsonDict
    origins: dict[str, OriginState] = field(default_factory=dict)  # lower-case name -> origin
    updating: bool = False

    @property
    def probe_interval(self) -> float | None:
        """Seconds between health probes to each origin; None when probes are off."""
        probe = self.properties.get("healthProbeSettings")
        if not isinstance(probe, dict):
            return None
        interval = probe.get("probeIntervalInSeconds")
        return float(interval) if isinstance(interval, (int, float)) and interval > 0 else None


@dataclass
class ProfileState:
    subscription_id: str
    resource_group: str
    name: str
    served_group: str  # the origin group the profile's client traffic is routed to
    groups: dict[str, OriginGroupState] = field(default_factory=dict)  # lower-case name -> group

    @property
    def id(self) -> str:
        return resource_ids.frontdoor_profile(self.subscription_id, self.resource_group, self.name)

    @property
    def endpoint_host(self) -> str:
        digest = hashlib.sha256(self.id.lower().encode()).hexdigest()[:16]
        return f"{self.name}-{digest}.z01.azurefd.net"

    def group(self, name: str) -> OriginGroupState:
        found = self.groups.get(name.lower())
        if found is None:
            raise not_found(f"Microsoft.Cdn/profiles/{self.name}/originGroups", name)
        return found

    def origin(self, group_name: str, name: str) -> tuple[OriginGroupState, OriginState]:
        group = self.group(group_name)
        found = group.origins.get(name.lower())
        if found is None:
            raise not_found(f"Microsoft.Cdn/profiles/{self.name}/originGroups/{group.name}/origins", name)
        return group, found


# ---------------------------------------------------------------------------------------------
# Traffic simulation


@dataclass(frozen=True)
class Flow:
    """One origin's part of a profile's traffic while nothing changes."""

    origin: str
    region: str
    health: str  # the region's health: healthy, degraded or down
    enabled: bool
    passes_probes: bool
    share: float  # fraction of the profile's client requests sent to this origin
    error_rate: float  # fraction of those answered 5xx
    latency_ms: float  # origin latency of each request (the p95 figure of the model)


@dataclass(frozen=True)
class Segment:
    """The traffic of one profile from ``start`` until the next segment starts."""

    start: float  # wall-clock seconds (epoch), as metrics timestamps are
    requests_per_second: float
    flows: tuple[Flow, ...]
    unrouted: float  # fraction answered by the edge itself because no origin is enabled
    probe_interval: float | None

    def same_traffic(self, other: Segment) -> bool:
        return (
            self.requests_per_second == other.requests_per_second
            and self.flows == other.flows
            and self.unrouted == other.unrouted
            and self.probe_interval == other.probe_interval
        )


@dataclass(frozen=True)
class RequestSample:
    """Requests of one origin and status class during one segment (or part of it)."""

    origin: str | None  # None: answered by the edge, no origin enabled
    region: str | None
    status_group: str  # "2XX" or "5XX"
    requests: float
    latency_ms: float  # origin latency; 0 for edge answers


@dataclass(frozen=True)
class ProbeSample:
    origin: str
    region: str
    probes: float
    healthy: bool


@dataclass
class OriginTotals:
    requests: float = 0.0
    errors: float = 0.0
    latency_ms_sum: float = 0.0

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests > 0 else None

    @property
    def mean_latency_ms(self) -> float | None:
        return self.latency_ms_sum / self.requests if self.requests > 0 else None


@dataclass(frozen=True)
class Exposure:
    """Traffic sent to unhealthy regions: ``seconds`` is the time integral of their share (one
    second at 100 % counts 1), ``requests`` the number of requests they received."""

    seconds: float
    requests: float


def route(group: OriginGroupState, regions: dict[str, RegionState]) -> tuple[dict[str, float], float]:
    """Front Door's choice for one origin group: each origin's share of traffic, and the share no
    origin can take (nothing enabled)."""
    enabled = [o for o in group.origins.values() if o.enabled]
    if not enabled:
        return {o.name: 0.0 for o in group.origins.values()}, 1.0
    probes_on = group.probe_interval is not None
    # Without health probes Front Door cannot tell that an origin is down and keeps using it.
    healthy = [o for o in enabled if not probes_on or not regions[o.region].is_down]
    candidates = healthy or enabled
    best = min(o.priority for o in candidates)
    chosen = [o for o in candidates if o.priority == best]
    total_weight = sum(o.weight for o in chosen)
    shares = {o.name: 0.0 for o in group.origins.values()}
    for o in chosen:
        shares[o.name] = o.weight / total_weight
    return shares, 0.0


def origin_quality(region: RegionState) -> tuple[float, float]:
    """(5xx rate, latency in ms) of requests served from ``region`` in its current health."""
    latency = BASELINE_LATENCY_MS + region.added_latency_ms
    if region.is_down:
        return 1.0, latency
    return max(BASELINE_ERROR_RATE, region.error_rate), latency


class TrafficModel:
    """Client traffic per profile and its history; the source of the Front Door metrics."""

    def __init__(
        self,
        world: World,
        profiles: list[ProfileState],
        *,
        clock: Callable[[], float] = time.time,
        warmup_seconds: float = DEFAULT_WARMUP_SECONDS,
        requests_per_second: float = DEFAULT_REQUESTS_PER_SECOND,
    ) -> None:
        self._world = world
        self._clock = clock
        self.profiles = {p.id.lower(): p for p in profiles}
        self._load = dict.fromkeys(self.profiles, requests_per_second)
        start = clock() - warmup_seconds
        self._history: dict[str, list[Segment]] = {key: [self._segment(key, start)] for key in self.profiles}

    def now(self) -> float:
        return self._clock()

    def profile(self, key: str) -> ProfileState:
        """A profile by name or ARM id (case-insensitive)."""
        wanted = key.lower()
        if wanted in self.profiles:
            return self.profiles[wanted]
        for profile in self.profiles.values():
            if profile.name.lower() == wanted:
                return profile
        raise ArmError(404, "ResourceNotFound", f"The Resource 'Microsoft.Cdn/profiles/{key}' was not found.")

    def _segment(self, key: str, start: float) -> Segment:
        profile = self.profiles[key]
        group = profile.group(profile.served_group)
        shares, unrouted = route(group, self._world.regions)
        flows = []
        for origin in group.origins.values():
            region = self._world.regions[origin.region]
            error_rate, latency = origin_quality(region)
            flows.append(
                Flow(
                    origin=origin.name,
                    region=origin.region,
                    health=region.health,
                    enabled=origin.enabled,
                    passes_probes=origin.enabled and not region.is_down,
                    share=shares[origin.name],
                    error_rate=error_rate,
                    latency_ms=latency,
                )
            )
        return Segment(start, self._load[key], tuple(flows), unrouted, group.probe_interval)

    def record(self) -> None:
        """Start a new segment for every profile whose traffic changed (world.on_change listener)."""
        now = self._clock()
        for key, history in self._history.items():
            segment = self._segment(key, now)
            last = history[-1]
            if last.same_traffic(segment):
                continue
            if last.start >= now and len(history) > 1:
                history[-1] = segment  # two changes at the same instant: only the last one counts
            else:
                history.append(segment)

    def set_load(self, profile: str, requests_per_second: float) -> None:
        if requests_per_second < 0:
            raise ArmError(400, "InvalidLoad", "requests_per_second must be >= 0")
        self._load[self.profile(profile).id.lower()] = float(requests_per_second)
        self.record()

    def load(self, profile: str) -> float:
        return self._load[self.profile(profile).id.lower()]

    def current(self, profile: str) -> Segment:
        return self._history[self.profile(profile).id.lower()][-1]

    def history(self, profile: str) -> list[Segment]:
        return list(self._history[self.profile(profile).id.lower()])

    def shares(self, profile: str) -> dict[str, float]:
        return {flow.origin: flow.share for flow in self.current(profile).flows}

    def spans(self, profile: str, t0: float, t1: float) -> Iterator[tuple[Segment, float]]:
        """Each segment overlapping [t0, t1) with the seconds of overlap; nothing after now."""
        history = self._history[self.profile(profile).id.lower()]
        t1 = min(t1, self._clock())
        for i, segment in enumerate(history):
            end = history[i + 1].start if i + 1 < len(history) else t1
            lo, hi = max(segment.start, t0), min(end, t1)
            if hi > lo:
                yield segment, hi - lo

    def samples(self, profile: str, t0: float, t1: float) -> list[RequestSample]:
        out: list[RequestSample] = []
        for segment, seconds in self.spans(profile, t0, t1):
            requests = segment.requests_per_second * seconds
            if requests <= 0:
                continue
            for flow in segment.flows:
                sent = requests * flow.share
                if sent <= 0:
                    continue
                failed = sent * flow.error_rate
                if sent - failed > 0:
                    out.append(RequestSample(flow.origin, flow.region, "2XX", sent - failed, flow.latency_ms))
                if failed > 0:
                    out.append(RequestSample(flow.origin, flow.region, "5XX", failed, flow.latency_ms))
            if segment.unrouted > 0:
                out.append(RequestSample(None, None, "5XX", requests * segment.unrouted, 0.0))
        return out

    def probes(self, profile: str, t0: float, t1: float) -> list[ProbeSample]:
        out: list[ProbeSample] = []
        for segment, seconds in self.spans(profile, t0, t1):
            if segment.probe_interval is None:
                continue
            for flow in segment.flows:
                if flow.enabled:
                    out.append(
                        ProbeSample(flow.origin, flow.region, seconds / segment.probe_interval, flow.passes_probes)
                    )
        return out

    def totals(self, profile: str, t0: float, t1: float) -> dict[str | None, OriginTotals]:
        """Requests, 5xx and latency per origin over [t0, t1); key None holds edge answers."""
        out: dict[str | None, OriginTotals] = {}
        for sample in self.samples(profile, t0, t1):
            totals = out.setdefault(sample.origin, OriginTotals())
            totals.requests += sample.requests
            totals.latency_ms_sum += sample.requests * sample.latency_ms
            if sample.status_group == "5XX":
                totals.errors += sample.requests
        return out

    def exposure(
        self, profile: str, t0: float, t1: float, unhealthy: tuple[str, ...] = ("down", "degraded")
    ) -> Exposure:
        """How much traffic went to origins whose region was in an ``unhealthy`` state."""
        seconds = requests = 0.0
        for segment, span in self.spans(profile, t0, t1):
            share = sum(flow.share for flow in segment.flows if flow.health in unhealthy)
            seconds += share * span
            requests += share * span * segment.requests_per_second
        return Exposure(seconds, requests)

    def describe(self) -> JsonDict:
        """The current traffic per profile, as the control API shows it."""
        out: JsonDict = {}
        for key, profile in self.profiles.items():
            segment = self._history[key][-1]
            group = profile.group(profile.served_group)
            origins = {}
            for flow in segment.flows:
                state = group.origins[flow.origin.lower()]
                origins[flow.origin] = {
                    "region": flow.region,
                    "health": flow.health,
                    "enabled": flow.enabled,
                    "priority": state.priority,
                    "weight": state.weight,
                    "share": flow.share,
                    "percent": round(flow.share * 100, 6),
                    "error_rate": flow.error_rate,
                    "latency_ms": flow.latency_ms,
                }
            out[profile.name] = {
                "id": profile.id,
                "origin_group": group.name,
                "requests_per_second": segment.requests_per_second,
                "unrouted": segment.unrouted,
                "since": segment.start,
                "origins": origins,
            }
        return out


# ---------------------------------------------------------------------------------------------
# ARM provider


def _initial_group_properties() -> JsonDict:
    return {
        "loadBalancingSettings": {
            "sampleSize": 4,
            "successfulSamplesRequired": 3,
            "additionalLatencyInMilliseconds": 50,
        },
        "healthProbeSettings": {
            "probePath": "/healthz",
            "probeRequestType": "HEAD",
            "probeProtocol": "Https",
            "probeIntervalInSeconds": 30,
        },
        "trafficRestorationTimeToHealedOrNewEndpointsInMinutes": 10,
        "sessionAffinityState": "Disabled",
    }


def _initial_origin_properties(name: str, priority: int) -> JsonDict:
    host = f"{name}.azurewebsites.net"
    return {
        "hostName": host,
        "httpPort": 80,
        "httpsPort": 443,
        "originHostHeader": host,
        "priority": priority,
        "weight": 1000,
        "enabledState": "Enabled",
        "enforceCertificateNameCheck": True,
        "sharedPrivateLinkResource": None,
        "originCapacityResource": None,
    }


def _int_in(props: JsonDict, key: str, low: int, high: int) -> None:
    value = props.get(key)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ArmError(
            400, "BadRequest", f"Property '{key}' must be an integer between {low} and {high}, got {value!r}."
        )


def _validate_origin_patch(body: Any) -> JsonDict:
    if not isinstance(body, dict) or not isinstance(body.get("properties", {}), dict):
        raise ArmError(400, "BadRequest", "The request body must be an object with a 'properties' object.")
    props = {k: v for k, v in (body.get("properties") or {}).items() if k in ORIGIN_UPDATABLE}
    _int_in(props, "priority", *PRIORITY_RANGE)
    _int_in(props, "weight", *WEIGHT_RANGE)
    _int_in(props, "httpPort", 1, 65535)
    _int_in(props, "httpsPort", 1, 65535)
    state = props.get("enabledState")
    if state is not None and state not in ("Enabled", "Disabled"):
        raise ArmError(400, "BadRequest", f"Property 'enabledState' must be 'Enabled' or 'Disabled', got {state!r}.")
    host = props.get("hostName", "x")
    if not isinstance(host, str) or not host:
        raise ArmError(400, "BadRequest", "Property 'hostName' must be a non-empty string.")
    return props


def _validate_group_patch(body: Any) -> JsonDict:
    if not isinstance(body, dict) or not isinstance(body.get("properties", {}), dict):
        raise ArmError(400, "BadRequest", "The request body must be an object with a 'properties' object.")
    props = {k: v for k, v in (body.get("properties") or {}).items() if k in GROUP_UPDATABLE}
    probe = props.get("healthProbeSettings")
    if isinstance(probe, dict):
        _int_in(probe, "probeIntervalInSeconds", 1, 255)
    return props


class FrontDoorProvider:
    """Profiles, origin groups and origins of every plan, and the traffic they shape."""

    name = "frontdoor"

    def __init__(self, world: World, *, clock: Callable[[], float] = time.time) -> None:
        self.world = world
        profiles: dict[tuple[str, str, str], ProfileState] = {}
        for plan in world.plans:
            fd = plan.frontdoor
            key = (plan.subscription_id.lower(), fd.resource_group.lower(), fd.profile.lower())
            profile = profiles.setdefault(
                key, ProfileState(plan.subscription_id, fd.resource_group, fd.profile, served_group=fd.origin_group)
            )
            group = profile.groups.setdefault(
                fd.origin_group.lower(), OriginGroupState(fd.origin_group, _initial_group_properties())
            )
            for region, origin in fd.origins.items():
                priority = 1 if region == plan.primary_region else 2
                group.origins.setdefault(
                    origin.lower(), OriginState(origin, region, _initial_origin_properties(origin, priority))
                )
        self._profiles = profiles
        self.traffic = TrafficModel(world, list(profiles.values()), clock=clock)
        world.on_change(self.traffic.record)

    # -- lookups --------------------------------------------------------------------------------

    def profile(self, ctx: RequestContext) -> ProfileState:
        p = ctx.params
        found = self._profiles.get(
            (p["subscriptionId"].lower(), p["resourceGroupName"].lower(), p["profileName"].lower())
        )
        if found is None:
            raise not_found("Microsoft.Cdn/profiles", p["profileName"])
        return found

    def profile_by_id(self, resource_id: str) -> ProfileState | None:
        for profile in self._profiles.values():
            if profile.id.lower() == resource_id.rstrip("/").lower():
                return profile
        return None

    # -- bodies ---------------------------------------------------------------------------------

    @staticmethod
    def origin_body(
        profile: ProfileState, group: OriginGroupState, origin: OriginState, properties: JsonDict | None = None
    ) -> JsonDict:
        props = copy.deepcopy(origin.properties if properties is None else properties)
        props["originGroupName"] = group.name
        props["provisioningState"] = "Updating" if origin.updating or properties is not None else "Succeeded"
        props["deploymentStatus"] = "NotStarted"
        return {
            "name": origin.name,
            "type": ORIGIN_TYPE,
            "id": resource_ids.frontdoor_origin(
                profile.subscription_id, profile.resource_group, profile.name, group.name, origin.name
            ),
            "properties": props,
        }

    @staticmethod
    def group_body(profile: ProfileState, group: OriginGroupState, properties: JsonDict | None = None) -> JsonDict:
        props = copy.deepcopy(group.properties if properties is None else properties)
        props["provisioningState"] = "Updating" if group.updating or properties is not None else "Succeeded"
        props["deploymentStatus"] = "NotStarted"
        return {
            "name": group.name,
            "type": GROUP_TYPE,
            "id": resource_ids.frontdoor_origin_group(
                profile.subscription_id, profile.resource_group, profile.name, group.name
            ),
            "properties": props,
        }

    def _operation_url(self, ctx: RequestContext, op_id: str) -> str:
        p = ctx.params
        return ctx.absolute(
            f"/subscriptions/{p['subscriptionId']}/resourcegroups/{p['resourceGroupName']}"
            f"/providers/Microsoft.Cdn/operationresults/{op_id}?api-version={API_VERSION}"
        )

    # -- ARM handlers ---------------------------------------------------------------------------

    async def get_group(self, ctx: RequestContext) -> web.StreamResponse:
        profile = self.profile(ctx)
        return json_response(self.group_body(profile, profile.group(ctx.params["originGroupName"])))

    async def list_groups(self, ctx: RequestContext) -> web.StreamResponse:
        profile = self.profile(ctx)
        return json_response({"value": [self.group_body(profile, g) for g in profile.groups.values()]})

    async def update_group(self, ctx: RequestContext) -> web.StreamResponse:
        profile = self.profile(ctx)
        group = profile.group(ctx.params["originGroupName"])
        patch = _validate_group_patch(ctx.body)
        if group.updating:
            raise ArmError(409, "Conflict", f"Another operation is in progress on origin group '{group.name}'.")

        def apply() -> None:
            group.properties = merge_patch(group.properties, patch)
            group.updating = False
            self.world.changed()

        group.updating = True
        op = self.world.operations.start(ctx.operation, self.world.latencies.get(ctx.operation), apply)
        body = self.group_body(profile, group, merge_patch(group.properties, patch))
        return json_response(body, 202, {"Azure-AsyncOperation": self._operation_url(ctx, op.id)})

    async def get_origin(self, ctx: RequestContext) -> web.StreamResponse:
        profile = self.profile(ctx)
        group, origin = profile.origin(ctx.params["originGroupName"], ctx.params["originName"])
        return json_response(self.origin_body(profile, group, origin))

    async def list_origins(self, ctx: RequestContext) -> web.StreamResponse:
        profile = self.profile(ctx)
        group = profile.group(ctx.params["originGroupName"])
        return json_response({"value": [self.origin_body(profile, group, o) for o in group.origins.values()]})

    async def update_origin(self, ctx: RequestContext) -> web.StreamResponse:
        profile = self.profile(ctx)
        group, origin = profile.origin(ctx.params["originGroupName"], ctx.params["originName"])
        patch = _validate_origin_patch(ctx.body)
        if origin.updating:
            raise ArmError(409, "Conflict", f"Another operation is in progress on origin '{origin.name}'.")

        def apply() -> None:
            origin.properties = merge_patch(origin.properties, patch)
            origin.updating = False
            self.world.changed()

        origin.updating = True
        op = self.world.operations.start(ctx.operation, self.world.latencies.get(ctx.operation), apply)
        body = self.origin_body(profile, group, origin, merge_patch(origin.properties, patch))
        return json_response(body, 202, {"Azure-AsyncOperation": self._operation_url(ctx, op.id)})

    async def operation_status(self, ctx: RequestContext) -> web.StreamResponse:
        op = self.world.operations.get(ctx.params["operationId"])
        return json_response(self.world.operations.status_body(op))

    # -- control handlers -----------------------------------------------------------------------

    async def control_traffic(self, _: RequestContext) -> web.StreamResponse:
        return json_response(self.traffic.describe())

    async def control_load(self, ctx: RequestContext) -> web.StreamResponse:
        body = ctx.body if isinstance(ctx.body, dict) else {}
        rate = body.get("requests_per_second")
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate < 0:
            raise ArmError(400, "InvalidLoad", 'expected {"profile": NAME, "requests_per_second": N >= 0}')
        names = [body["profile"]] if body.get("profile") else [p.name for p in self.traffic.profiles.values()]
        for name in names:
            self.traffic.set_load(str(name), float(rate))
        return json_response(self.traffic.describe())

    async def control_window(self, ctx: RequestContext) -> web.StreamResponse:
        """Exact totals over [start, end) (epoch seconds), for benchmarks outside the process."""
        query = ctx.request.query
        try:
            profile = query["profile"]
            start = float(query["start"])
            end = float(query.get("end", self.traffic.now()))
        except (KeyError, ValueError) as exc:
            raise ArmError(400, "InvalidWindow", "expected ?profile=NAME&start=EPOCH[&end=EPOCH]") from exc
        totals = self.traffic.totals(profile, start, end)
        exposure = self.traffic.exposure(profile, start, end)
        return json_response(
            {
                "profile": profile,
                "start": start,
                "end": end,
                "origins": {
                    (name if name is not None else "(edge)"): {
                        "requests": t.requests,
                        "errors": t.errors,
                        "error_rate": t.error_rate,
                        "mean_latency_ms": t.mean_latency_ms,
                    }
                    for name, t in totals.items()
                },
                "unhealthy_exposure": {"seconds": exposure.seconds, "requests": exposure.requests},
            }
        )

    def register(self, router: Router, control: Router) -> None:
        v = API_VERSION
        router.add("GET", GROUPS_PATH, "AFDOriginGroups_ListByProfile", self.list_groups, api_version=v)
        router.add("GET", GROUP_PATH, "AFDOriginGroups_Get", self.get_group, api_version=v)
        router.add(
            "PATCH", GROUP_PATH, "AFDOriginGroups_Update", self.update_group,
            mutating=True, api_version=v, latency_mode="operation",
        )  # fmt: skip
        router.add("GET", ORIGINS_PATH, "AFDOrigins_ListByOriginGroup", self.list_origins, api_version=v)
        router.add("GET", ORIGIN_PATH, "AFDOrigins_Get", self.get_origin, api_version=v)
        router.add(
            "PATCH", ORIGIN_PATH, "AFDOrigins_Update", self.update_origin,
            mutating=True, api_version=v, latency_mode="operation",
        )  # fmt: skip
        router.add("GET", OPERATION_PATH, "AFDOperationResults_Get", self.operation_status, api_version=v)
        control.add("GET", "/frontdoor/traffic", "control.frontdoor.traffic", self.control_traffic)
        control.add("PUT", "/frontdoor/load", "control.frontdoor.load", self.control_load)
        control.add("GET", "/frontdoor/window", "control.frontdoor.window", self.control_window)

    def snapshot(self) -> JsonDict:
        return {
            "profiles": {
                profile.name: {
                    "id": profile.id,
                    "origin_groups": {
                        group.name: {
                            "properties": copy.deepcopy(group.properties),
                            "updating": group.updating,
                            "origins": {
                                origin.name: {
                                    "region": origin.region,
                                    "updating": origin.updating,
                                    "properties": copy.deepcopy(origin.properties),
                                }
                                for origin in group.origins.values()
                            },
                        }
                        for group in profile.groups.values()
                    },
                }
                for profile in self._profiles.values()
            },
            "traffic": self.traffic.describe(),
        }
