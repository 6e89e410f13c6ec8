"""Readiness checks: can the plan's estate fail over from one region to the other right now?

Failover's pre-flight (``readiness.preflight``) and the scheduled readiness run
(``readiness.check``) share one implementation. Every check runs concurrently and turns its own
errors into a FAIL naming them, so one report lists every reason at once. Azure is read through
the other activity classes' read methods, so no Azure logic is repeated here; only the two
readings those classes lack are made here: a cheap GET on each region's ops gateway, and the
target origin's health-probe metric.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.monitor.models import Response
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.azure import (
    AzureClients,
    Estates,
    azure_call,
    check_http_response,
    heartbeat,
    is_authentication_error,
    iso_utc,
)
from activities.cosmos import CosmosActivities, short_region
from activities.frontdoor import FrontDoorActivities
from activities.servicebus import ServiceBusActivities
from activities.sql import SqlActivities
from domain import resource_ids
from domain.messages.cosmos import GetCosmosAccountInput
from domain.messages.frontdoor import GetOriginsInput, OriginState
from domain.messages.readiness import (
    CHECK_COSMOS,
    CHECK_CREDENTIALS,
    CHECK_FRONTDOOR,
    CHECK_SERVICEBUS,
    CHECK_SOURCE_REGION,
    CHECK_TARGET_REGION,
    FAIL,
    OK,
    WARN,
    PreflightInput,
    ReadinessCheck,
    ReadinessInput,
    ReadinessReport,
    sql_check_key,
)
from domain.messages.servicebus import PRIMARY_ROLES, ROLE_SECONDARY, GetAliasInput
from domain.messages.sql import GetFailoverGroupInput
from domain.plan import FailoverGroupSpec

# Replication states of a failover group (ReplicationState in Microsoft.Sql): only CATCH_UP means
# the secondary is transactionally consistent and keeping up; PENDING and SEEDING mean it is not
# yet a usable copy, SUSPENDED that replication has stopped.
SQL_HEALTHY_STATES = frozenset({"CATCH_UP"})
SQL_SUSPENDED = "SUSPENDED"
# Below this share of passed health probes Front Door itself routes around the origin.
ORIGIN_HEALTHY_PERCENT = 50.0
HEARTBEAT_SECONDS = 5.0


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _error_text(error: BaseException) -> str:
    if isinstance(error, ApplicationError):
        return error.message
    return f"{type(error).__name__}: {error}"


@dataclass(frozen=True)
class _Probe:
    """What one region's ops gateway answered."""

    region: str
    answered: bool  # false only on evidence of an outage: no answer, or 5xx every time
    usable: bool  # answered with success, so the workflows' calls to it can work
    detail: str
    auth_error: str | None = None  # this worker could not authenticate (no token, or 401)


@dataclass
class _Run:
    """One readiness run: the estate, the direction, and what the checks learnt on the way."""

    clients: AzureClients
    from_region: str
    to_region: str
    arm_reads: int = 0
    auth_errors: list[str] = field(default_factory=list)
    source_healthy: bool = False  # set by the source check; stays false if it never finished
    target_healthy: bool = False

    def arm_read_ok(self) -> None:
        self.arm_reads += 1


class ReadinessActivities:
    """The checks that decide whether a failover can start, composed from the read activities."""

    def __init__(
        self,
        estates: Estates,
        *,
        check_timeout_seconds: float = 60.0,
        probe_attempts: int = 3,
        probe_retry_seconds: float = 0.1,
        probe_timeout_seconds: float = 10.0,
        origin_health_window_seconds: float = 300.0,
        clock: Callable[[], dt.datetime] = _utc_now,
    ) -> None:
        self._estates = estates
        self._frontdoor = FrontDoorActivities(estates)
        self._servicebus = ServiceBusActivities(estates)
        self._sql = SqlActivities(estates)
        self._cosmos = CosmosActivities(estates)
        self._check_timeout = check_timeout_seconds
        self._probe_attempts = max(1, probe_attempts)
        self._probe_retry = probe_retry_seconds
        self._probe_timeout = probe_timeout_seconds
        self._origin_window = origin_health_window_seconds
        self._clock = clock

    @activity.defn(name="readiness.preflight")
    async def preflight(self, request: PreflightInput) -> ReadinessReport:
        """Every check for a failover from ``from_region`` to ``to_region``, all reasons at once."""
        return await self._report(request.plan, request.from_region, request.to_region)

    @activity.defn(name="readiness.check")
    async def check(self, request: ReadinessInput) -> ReadinessReport:
        """The scheduled run: the same checks for the plan's normal direction, primary to DR."""
        plan = self._estates[request.plan].plan
        return await self._report(request.plan, plan.primary_region, plan.dr_region)

    # ---- the run -------------------------------------------------------------------------------

    async def _report(self, plan_name: str, from_region: str, to_region: str) -> ReadinessReport:
        clients = self._estates[plan_name]
        plan = clients.plan
        for what, region in (("from_region", from_region), ("to_region", to_region)):
            if region not in plan.regions:
                raise ApplicationError(
                    f"{what} {region!r} is not a region of plan {plan.name!r} ({', '.join(plan.regions)})",
                    type="InvalidInput",
                    non_retryable=True,
                )
        if from_region == to_region:
            raise ApplicationError(
                f"from_region and to_region are both {from_region!r}", type="InvalidInput", non_retryable=True
            )
        run = _Run(clients, from_region, to_region)
        async with self._heartbeating():
            source = asyncio.ensure_future(self._probe(clients, from_region))
            target = asyncio.ensure_future(self._probe(clients, to_region))
            try:
                region_checks = [
                    self._guard(run, CHECK_TARGET_REGION, f"Target region {to_region}", self._target(run, target)),
                    self._guard(run, CHECK_SOURCE_REGION, f"Source region {from_region}", self._source(run, source)),
                ]
                resource_checks = [
                    self._guard(run, CHECK_FRONTDOOR, "Front Door origins", self._check_frontdoor(run)),
                    self._guard(run, CHECK_SERVICEBUS, "Service Bus alias", self._check_servicebus(run)),
                    *(
                        self._guard(
                            run,
                            sql_check_key(group.name),
                            f"SQL failover group {group.name}",
                            self._check_sql(run, group, source),
                        )
                        for group in plan.sql.failover_groups
                    ),
                    self._guard(run, CHECK_COSMOS, "Cosmos DB account", self._check_cosmos(run)),
                ]
                results = await asyncio.gather(*region_checks, *resource_checks)
            finally:
                for task in (source, target):
                    task.cancel()
        checks = (*results[:2], self._credentials(run), *results[2:])
        report = ReadinessReport(
            plan=plan.name,
            checks=checks,
            source_region_healthy=run.source_healthy,
            target_region_healthy=run.target_healthy,
            checked_at=iso_utc(self._clock()),
            from_region=from_region,
            to_region=to_region,
        )
        activity.logger.info(
            "readiness of %s for %s -> %s: %s",
            plan.name,
            from_region,
            to_region,
            ", ".join(f"{c.key}={c.status}" for c in checks),
        )
        return report

    @contextlib.asynccontextmanager
    async def _heartbeating(self) -> AsyncIterator[None]:
        """Heartbeat while the checks run: a slow region must not look like a dead worker."""

        async def beat() -> None:
            while True:
                heartbeat()
                await asyncio.sleep(HEARTBEAT_SECONDS)

        task = asyncio.ensure_future(beat())
        try:
            yield
        finally:
            task.cancel()

    async def _guard(self, run: _Run, key: str, title: str, check: Awaitable[tuple[str, str]]) -> ReadinessCheck:
        """Run one check within the time limit; any error becomes its FAIL, with the error's text."""
        try:
            async with asyncio.timeout(self._check_timeout):
                status, detail = await check
        except TimeoutError:
            return ReadinessCheck(key, title, FAIL, f"no result within {self._check_timeout:g} s")
        except Exception as err:  # noqa: BLE001  (every failure is a reason in the report, never a crash)
            if is_authentication_error(err):
                run.auth_errors.append(_error_text(err))
            return ReadinessCheck(key, title, FAIL, _error_text(err))
        return ReadinessCheck(key, title, status, detail)

    # ---- regions -------------------------------------------------------------------------------

    async def _probe(self, clients: AzureClients, region: str) -> _Probe:
        """GET one tenant from the region's ops gateway, retrying a few times so that one 5xx
        or dropped connection from a healthy gateway does not pass for an outage."""
        url = clients.connection.ops_api(clients.plan, region) + "/tenants"
        resource = f"ops gateway in {region} ({url})"
        last = ""
        for attempt in range(self._probe_attempts):
            if attempt:
                await asyncio.sleep(self._probe_retry)
            started = time.monotonic()
            try:
                async with azure_call(resource, "probe"):
                    headers = await clients.ops_headers()
                    response = await clients.http.get(
                        url, params={"limit": "1"}, headers=headers, timeout=self._probe_timeout
                    )
            except ApplicationError as err:
                if is_authentication_error(err):
                    return _Probe(region, answered=True, usable=False, detail=err.message, auth_error=err.message)
                last = err.message
                continue
            elapsed_ms = (time.monotonic() - started) * 1000
            answer = f"{url} answered {response.status_code} in {elapsed_ms:.0f} ms"
            if response.status_code == 429:
                return _Probe(region, answered=True, usable=True, detail=answer + " (throttled, but up)")
            try:
                check_http_response(response, resource, "probe")
            except ApplicationError as err:
                if response.status_code >= 500:
                    last = err.message
                    continue
                # A 4xx: the gateway is up but refuses this worker's calls.
                auth = err.message if is_authentication_error(err) else None
                return _Probe(region, answered=True, usable=False, detail=err.message, auth_error=auth)
            return _Probe(region, answered=True, usable=True, detail=answer)
        tries = f"{self._probe_attempts} attempt(s)"
        return _Probe(region, answered=False, usable=False, detail=f"no healthy answer after {tries}: {last}")

    async def _source(self, run: _Run, probe: Awaitable[_Probe]) -> tuple[str, str]:
        seen = await asyncio.shield(probe)
        run.source_healthy = seen.answered
        if seen.auth_error:
            run.auth_errors.append(seen.auth_error)
        if not seen.answered:
            return WARN, seen.detail + " (expected while that region is out)"
        if not seen.usable:
            return WARN, seen.detail
        return OK, seen.detail

    async def _target(self, run: _Run, probe: Awaitable[_Probe]) -> tuple[str, str]:
        seen, (percent, health) = await asyncio.gather(asyncio.shield(probe), self._origin_health(run))
        if seen.auth_error:
            run.auth_errors.append(seen.auth_error)
        origin_unhealthy = percent is not None and percent < ORIGIN_HEALTHY_PERCENT
        run.target_healthy = seen.answered and not origin_unhealthy
        status = OK if seen.usable and not origin_unhealthy else FAIL
        return status, f"{seen.detail}; {health}"

    async def _origin_health(self, run: _Run) -> tuple[float | None, str]:
        """The target origin's share of passed Front Door health probes over the recent window
        (OriginHealthPercentage); None when there is no data (a disabled origin is not probed)."""
        plan = run.clients.plan
        fd = plan.frontdoor
        origin = fd.origins.get(run.to_region)
        if origin is None:
            return None, f"plan has no Front Door origin for {run.to_region}"
        end = self._clock()
        start = end - dt.timedelta(seconds=self._origin_window)
        resource_uri = resource_ids.frontdoor_profile(plan.subscription_id, fd.resource_group, fd.profile).lstrip("/")
        try:
            async with azure_call(f"health probe metrics of Front Door profile {fd.profile}", "read"):
                response: Response = await run.clients.monitor.metrics.list(
                    resource_uri,
                    timespan=f"{iso_utc(start)}/{iso_utc(end)}",
                    interval="FULL",
                    metricnames="OriginHealthPercentage",
                    aggregation="Average",
                    filter=f"Origin eq '{origin}'",
                )
        except ApplicationError as err:
            # The probe metric only adds evidence; without it the gateway's answer decides.
            if is_authentication_error(err):
                run.auth_errors.append(err.message)
            return None, f"origin health metric unavailable: {err.message}"
        run.arm_read_ok()
        averages = [
            point.average
            for metric in response.value or []
            for series in metric.timeseries or []
            for point in series.data or []
            if point.average is not None
        ]
        window = f"over the last {self._origin_window:.0f} s"
        if not averages:
            return None, f"origin {origin}: no health probe data {window}"
        percent = min(averages)
        verdict = " (unhealthy)" if percent < ORIGIN_HEALTHY_PERCENT else ""
        return percent, f"origin {origin}: {percent:.0f}% of health probes passed {window}{verdict}"

    # ---- resources -----------------------------------------------------------------------------

    async def _check_frontdoor(self, run: _Run) -> tuple[str, str]:
        plan = run.clients.plan
        fd = plan.frontdoor
        result = await self._frontdoor.get_origins(GetOriginsInput(plan.name))
        run.arm_read_ok()
        missing = []
        found: list[OriginState] = []
        for role, region in (("target", run.to_region), ("source", run.from_region)):
            name = fd.origins.get(region)
            origin = result.for_region(region)
            if origin is None:
                what = f"origin {name!r}" if name else "no origin in the plan"
                missing.append(f"{role} region {region}: {what} not in origin group {fd.origin_group}")
            else:
                found.append(origin)
        described = "; ".join(
            f"{o.name} ({o.region}): {'enabled' if o.enabled else 'disabled'}, priority {o.priority}, weight {o.weight}"
            for o in found
        )
        if missing:
            present = ", ".join(o.name for o in result.origins) or "none"
            return FAIL, "; ".join(missing) + f" (the group has: {present})"
        return OK, described

    async def _check_servicebus(self, run: _Run) -> tuple[str, str]:
        plan = run.clients.plan
        spec = plan.servicebus
        target_ns = spec.namespaces.get(run.to_region)
        if target_ns is None:
            return FAIL, f"the plan has no Service Bus namespace for {run.to_region}"
        view = await self._servicebus.get_alias(GetAliasInput(plan.name))
        run.arm_read_ok()
        holders = [v for v in view.namespaces if v.exists]
        if not holders:
            names = ", ".join(v.namespace for v in view.namespaces)
            return FAIL, f"neither namespace ({names}) holds alias {spec.alias}"
        target = next(v for v in view.namespaces if v.region == run.to_region)
        if target.role in PRIMARY_ROLES:
            return OK, f"{target.namespace} is already the primary of alias {spec.alias} ({target.role}): nothing to do"
        if not (target.exists and target.role == ROLE_SECONDARY and view.paired):
            roles = ", ".join(f"{v.namespace}={v.role or 'no alias'}" for v in view.namespaces)
            return FAIL, (
                f"{target_ns} is neither the primary nor the paired secondary of alias {spec.alias} ({roles}); "
                "pair it first"
            )
        primary = next((v for v in view.namespaces if v.role in PRIMARY_ROLES), None)
        pending = max((v.pending_replication_operations_count or 0) for v in view.namespaces)
        source = primary.namespace if primary else "the primary"
        if pending > 0:
            return WARN, (
                f"{pending} replication operation(s) pending from {source} to {target_ns}: "
                "a fail-over now would lose them"
            )
        if target.provisioning_state not in (None, "Succeeded"):
            return WARN, f"pairing {source} -> {target_ns} is still {target.provisioning_state}"
        return OK, f"paired {source} -> {target_ns}, nothing pending"

    async def _check_sql(self, run: _Run, group: FailoverGroupSpec, source: Awaitable[_Probe]) -> tuple[str, str]:
        clients = run.clients
        target_server = group.servers.get(run.to_region)
        if target_server is None:
            return FAIL, f"the plan names no server in {run.to_region} for this group"
        view = await self._sql.get_failover_group(GetFailoverGroupInput(clients.plan.name, group.name))
        run.arm_read_ok()
        if view.primary_region == run.to_region:
            return OK, f"{view.primary_server} ({run.to_region}) is already primary: nothing to do"
        # The group view defaults servers missing from Azure's answer to Secondary, so ask the
        # target server itself whether it holds the group.
        resource = f"SQL failover group '{group.name}' on server '{target_server}'"
        async with azure_call(resource, "read"):
            try:
                await clients.sql.failover_groups.get(
                    resource_group_name=group.resource_group,
                    server_name=target_server,
                    failover_group_name=group.name,
                )
            except ResourceNotFoundError:
                return FAIL, f"server {target_server} ({run.to_region}) is not in failover group {group.name}"
        state = view.replication_state or "unknown"
        where = f"primary {view.primary_server} ({view.primary_region}), secondary {target_server} ({run.to_region})"
        if state in SQL_HEALTHY_STATES:
            return OK, f"{where}, replication {state}"
        if state == SQL_SUSPENDED and not (await asyncio.shield(source)).answered:
            if clients.plan.failover.allow_data_loss:
                return OK, (
                    f"{where}, replication {state} while {run.from_region} is out: "
                    "only a forced failover (with data loss) can proceed, which the plan allows"
                )
            return WARN, (
                f"{where}, replication {state} while {run.from_region} is out, and the plan does not allow "
                "data loss: the failover waits for the source region"
            )
        healthy = ", ".join(sorted(SQL_HEALTHY_STATES))
        return WARN, f"{where}, replication {state} (healthy: {healthy}): the secondary may not be a usable copy"

    async def _check_cosmos(self, run: _Run) -> tuple[str, str]:
        view = await self._cosmos.get_account(GetCosmosAccountInput(run.clients.plan.name))
        run.arm_read_ok()
        wanted = short_region(run.to_region)
        regions = [r.region for r in view.regions]
        if wanted not in regions:
            return FAIL, f"{run.to_region} is not a region of account {view.account} ({', '.join(regions)})"
        if view.provisioning_state not in ("", "Succeeded"):
            return WARN, f"account {view.account} is {view.provisioning_state}; it writes in {view.write_region}"
        if view.write_region == wanted:
            return OK, f"account {view.account} already writes in {wanted}: nothing to do"
        return OK, f"account {view.account} writes in {view.write_region}; {wanted} is one of its regions"

    def _credentials(self, run: _Run) -> ReadinessCheck:
        title = "Azure credentials"
        if run.auth_errors:
            return ReadinessCheck(CHECK_CREDENTIALS, title, FAIL, run.auth_errors[0])
        if run.arm_reads:
            return ReadinessCheck(CHECK_CREDENTIALS, title, OK, f"{run.arm_reads} ARM read(s) succeeded")
        return ReadinessCheck(
            CHECK_CREDENTIALS, title, WARN, "no ARM read succeeded, so the credentials could not be confirmed"
        )
