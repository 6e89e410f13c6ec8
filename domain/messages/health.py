"""SLO readings from Azure Monitor and their evaluation against the plan's SLO.

Missing data is never good news: a reading without data, or with fewer requests than the plan
requires, evaluates to ``no_data``, which callers treat as not OK (fail closed).
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.plan import SloSpec

OK = "ok"
BREACH = "breach"
NO_DATA = "no_data"
PROFILE_SCOPE = "profile"


@dataclass(frozen=True)
class ReadSloInput:
    plan: str
    window_seconds: float = 300.0  # the window ends now
    interval: str = "PT1M"  # metrics time grain (ISO 8601 duration, or FULL for one bucket)
    regions: tuple[str, ...] = ()  # whose origins to read; empty: every region of the plan


@dataclass(frozen=True)
class SloReading:
    """Traffic over the window, for the whole profile or for one origin.

    ``latency_ms`` is the worst bucket's average latency (TotalLatency for the profile,
    OriginLatency for an origin): Azure Monitor has no percentile for Front Door, and the worst
    bucket's mean tracks a p95 more closely than the window's mean without being set by one slow
    request the way Maximum is.
    """

    scope: str  # "profile", or the origin's region
    origin: str | None
    request_count: float
    error_count: float
    error_rate: float | None  # 5xx fraction 0..1; None when unknown
    latency_ms: float | None
    has_data: bool  # at least one bucket carried values
    buckets: int
    buckets_with_data: int


@dataclass(frozen=True)
class ReadSloResult:
    plan: str
    profile: str
    window_start: str
    window_end: str
    interval: str
    overall: SloReading
    origins: tuple[SloReading, ...]

    def for_region(self, region: str) -> SloReading | None:
        return next((r for r in self.origins if r.scope == region), None)


@dataclass(frozen=True)
class SloVerdict:
    scope: str
    status: str  # ok, breach or no_data
    reasons: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return self.status == OK


def evaluate_slo(reading: SloReading, slo: SloSpec) -> SloVerdict:
    """Compare one reading with the plan's SLO; anything short of enough data is ``no_data``."""
    if not reading.has_data:
        return SloVerdict(reading.scope, NO_DATA, ("no metric data in the window",))
    if reading.request_count < slo.min_request_count:
        return SloVerdict(
            reading.scope,
            NO_DATA,
            (f"only {reading.request_count:.0f} requests (< {slo.min_request_count}): too few to judge",),
        )
    missing = []
    if reading.error_rate is None:
        missing.append("no 5xx data")
    if reading.latency_ms is None:
        missing.append("no latency data")
    breaches = []
    if reading.error_rate is not None and reading.error_rate > slo.max_error_rate:
        breaches.append(f"5xx rate {reading.error_rate:.2%} > {slo.max_error_rate:.2%}")
    if reading.latency_ms is not None and reading.latency_ms > slo.p95_latency_ms:
        breaches.append(f"latency {reading.latency_ms:.0f} ms > {slo.p95_latency_ms:.0f} ms")
    if breaches:
        return SloVerdict(reading.scope, BREACH, tuple(breaches + missing))
    if missing:
        return SloVerdict(reading.scope, NO_DATA, tuple(missing))
    return SloVerdict(reading.scope, OK, ())
