"""Readiness checks: can the plan's estate fail over from one region to the other right now?

Failover's pre-flight (``readiness.preflight``) and the scheduled readiness run
(``readiness.check``, which ReadinessWorkflow and ``drctl plan check`` use) share one
implementation: the same check functions, in the same order. Every check runs concurrently and
turns its own errors into a FAIL naming them, so one report lists every reason at once; each
WARN or FAIL says what to do about it. Azure is read through the other activity classes' read
methods, so no Azure logic is repeated here; only the two readings those classes lack are made
here: a cheap GET on each region's ops gateway, and the target origin's health-probe metric.

The readiness run adds one check the pre-flight leaves out: how old each tenant's newest recovery
point is against its RPO target (from the backup catalog). Recovery points serve restores, not a
failover, so a late backup must neither block a failover nor need ``--force``, which would also
override the checks that matter for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import NamedTuple

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
from activities.backups import tenant_recovery_point_ages
from activities.catalog import BackupCatalog
from activities.cosmos import CosmosActivities, short_region
from activities.frontdoor import FrontDoorActivities
from activities.servicebus import ServiceBusActivities
from activities.sql import SqlActivities
from domain import resource_ids
from domain.errors import CatalogError
from domain.messages.backups import RecoveryPointAgesResult, TenantRecoveryPointAge
from domain.messages.cosmos import GetCosmosAccountInput
from domain.messages.frontdoor import GetOriginsInput, OriginState
from domain.messages.readiness import (
    CHECK_COSMOS,
    CHECK_CREDENTIALS,
    CHECK_FRONTDOOR,
    CHECK_RECOVERY_POINTS,
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
    worst_status,
)
from domain.messages.servicebus import PRIMARY_ROLES, ROLE_SECONDARY, GetAliasInput
from domain.messages.sql import GetFailoverGroupInput
from domain.plan import DrPlan, FailoverGroupSpec

# Replication states of a failover group (ReplicationState in Microsoft.Sql): only CATCH_UP means
# the secondary is transactionally consistent and keeping up; PENDING and SEEDING mean it is not
# yet a usable copy, SUSPENDED that replication has stopped.
SQL_HEALTHY_STATES = frozenset({"CATCH_UP"})
SQL_SUSPENDED = "SUSPENDED"
SQL_SEEDING_STATES = frozenset({"PENDING", "SEEDING"})
# Below this share of passed health probes Front Door itself routes around the origin.
ORIGIN_HEALTHY_PERCENT = 50.0
HEARTBEAT_SECONDS = 5.0
# A recovery point older than its tenant's RPO target WARNs (the next backup may be running late);
# older than this many targets it FAILs: backups of that tenant have stopped.
RPO_FAIL_FACTOR = 2.0
# Tenants named in the recovery-points detail, the most overdue first.
RPO_NAMED_TENANTS = 5

# Fix hints shared by several checks.
FIX_CREDENTIALS = (
    "give the worker an Azure identity that gets a token (DefaultAzureCredential: AZURE_CLIENT_ID/"
    "AZURE_TENANT_ID/AZURE_CLIENT_SECRET, workload or managed identity, or az login) and grant it the "
    "roles listed in plans/example-azure.toml on the plan's resource groups"
)
FIX_FORBIDDEN = (
    "grant the worker's identity the RBAC role plans/example-azure.toml lists for this resource "
    "(az role assignment create --assignee <identity> --role <role> --scope <resource group>)"
)
FIX_NOT_FOUND = "create the resource, or correct its name in the plan (drctl plan check --offline validates the file)"
FIX_SLOW = "the service answered too slowly: check Azure status for the region and retry the check"
FIX_ERROR = "read the error; the check runs again on the next readiness run (or drctl plan check)"
_FORBIDDEN = re.compile(r": 403\b")


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _error_text(error: BaseException) -> str:
    if isinstance(error, ApplicationError):
        return error.message
    return f"{type(error).__name__}: {error}"


def _is_forbidden(error: BaseException) -> bool:
    """Whether ``error`` is a mapped 403: a token was obtained but the identity may not read."""
    return isinstance(error, ApplicationError) and bool(_FORBIDDEN.search(error.message))


def _error_fix(error: BaseException) -> str:
    if is_authentication_error(error):
        return FIX_CREDENTIALS
    if _is_forbidden(error):
        return FIX_FORBIDDEN
    if isinstance(error, ApplicationError) and re.search(r": 404\b", error.message):
        return FIX_NOT_FOUND
    return FIX_ERROR


def duration_text(seconds: float) -> str:
    """``42s``, ``15m``, ``2h05m``, ``3d04h``: an age or target, short enough for a table cell."""
    total = round(seconds)
    if total < 60:
        return f"{total}s"
    minutes, _ = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h" if hours else f"{days}d"


class _Verdict(NamedTuple):
    """What one check concluded, and what to do about a WARN or FAIL."""

    status: str
    detail: str
    fix: str = ""


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
    forbidden: list[str] = field(default_factory=list)
    source_healthy: bool = False  # set by the source check; stays false if it never finished
    target_healthy: bool = False
    rpo_effective_seconds: float | None = None  # set by the recovery-points check

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
        catalog: BackupCatalog | None = None,
    ) -> None:
        """``catalog``: the backup catalog whose recovery points the readiness run ages; None on a
        worker without backups, where that check WARNs that it could not look."""
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
        self._catalog = catalog

    @activity.defn(name="readiness.preflight")
    async def preflight(self, request: PreflightInput) -> ReadinessReport:
        """Every check for a failover from ``from_region`` to ``to_region``, all reasons at once."""
        return await self._report(request.plan, request.from_region, request.to_region)

    @activity.defn(name="readiness.check")
    async def check(self, request: ReadinessInput) -> ReadinessReport:
        """The scheduled run: the same checks for the plan's normal direction, primary to DR, and
        the age of each tenant's newest recovery point against its RPO target."""
        plan = self._estates[request.plan].plan
        return await self._report(request.plan, plan.primary_region, plan.dr_region, recovery_points=True)

    # ---- the run -------------------------------------------------------------------------------

    async def _report(
        self, plan_name: str, from_region: str, to_region: str, *, recovery_points: bool = False
    ) -> ReadinessReport:
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
                            self._check_sql(run, group, source, target),
                        )
                        for group in plan.sql.failover_groups
                    ),
                    self._guard(run, CHECK_COSMOS, "Cosmos DB account", self._check_cosmos(run)),
                ]
                if recovery_points:
                    resource_checks.append(
                        self._guard(
                            run, CHECK_RECOVERY_POINTS, "Tenant recovery points", self._check_recovery_points(run)
                        )
                    )
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
            rpo_effective_seconds=run.rpo_effective_seconds,
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

    async def _guard(self, run: _Run, key: str, title: str, check: Awaitable[_Verdict]) -> ReadinessCheck:
        """Run one check within the time limit; any error becomes its FAIL, with the error's text."""
        try:
            async with asyncio.timeout(self._check_timeout):
                verdict = await check
        except TimeoutError:
            return ReadinessCheck(key, title, FAIL, f"no result within {self._check_timeout:g} s", FIX_SLOW)
        except Exception as err:  # noqa: BLE001  (every failure is a reason in the report, never a crash)
            if is_authentication_error(err):
                run.auth_errors.append(_error_text(err))
            elif _is_forbidden(err):
                run.forbidden.append(_error_text(err))
            return ReadinessCheck(key, title, FAIL, _error_text(err), _error_fix(err))
        return ReadinessCheck(key, title, verdict.status, verdict.detail, verdict.fix if verdict.status != OK else "")

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

    async def _source(self, run: _Run, probe: Awaitable[_Probe]) -> _Verdict:
        seen = await asyncio.shield(probe)
        run.source_healthy = seen.answered
        if seen.auth_error:
            run.auth_errors.append(seen.auth_error)
        region = run.from_region
        if not seen.answered:
            return _Verdict(
                WARN,
                seen.detail + " (expected while that region is out)",
                f"if {region} is not known to be out, check its ops gateway and Azure status for {region}",
            )
        if not seen.usable:
            return _Verdict(
                WARN, seen.detail, FIX_CREDENTIALS if seen.auth_error else f"check the ops gateway in {region}"
            )
        return _Verdict(OK, seen.detail)

    async def _target(self, run: _Run, probe: Awaitable[_Probe]) -> _Verdict:
        seen, (percent, health) = await asyncio.gather(asyncio.shield(probe), self._origin_health(run))
        if seen.auth_error:
            run.auth_errors.append(seen.auth_error)
        origin_unhealthy = percent is not None and percent < ORIGIN_HEALTHY_PERCENT
        run.target_healthy = seen.answered and not origin_unhealthy
        detail = f"{seen.detail}; {health}"
        if seen.usable and not origin_unhealthy:
            return _Verdict(OK, detail)
        if seen.auth_error:
            fix = FIX_CREDENTIALS
        else:
            fix = (
                f"the DR region {run.to_region} cannot take the traffic: check Azure status for {run.to_region}, "
                "its ops gateway and the app behind its Front Door origin; a failover there would land on an "
                "unhealthy region"
            )
        return _Verdict(FAIL, detail, fix)

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

    async def _check_frontdoor(self, run: _Run) -> _Verdict:
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
            return _Verdict(
                FAIL,
                "; ".join(missing) + f" (the group has: {present})",
                f"add the origin to origin group {fd.origin_group} of profile {fd.profile}, "
                "or correct frontdoor.origins in the plan",
            )
        return _Verdict(OK, described)

    async def _check_servicebus(self, run: _Run) -> _Verdict:
        plan = run.clients.plan
        spec = plan.servicebus
        target_ns = spec.namespaces.get(run.to_region)
        if target_ns is None:
            return _Verdict(
                FAIL,
                f"the plan has no Service Bus namespace for {run.to_region}",
                f"add servicebus.namespaces.{run.to_region} to the plan",
            )
        view = await self._servicebus.get_alias(GetAliasInput(plan.name))
        run.arm_read_ok()
        pair_fix = (
            f"pair the namespaces: az servicebus georecovery-alias set --resource-group {spec.resource_group} "
            f"--namespace-name <primary namespace> --alias {spec.alias} --partner-namespace <{target_ns} resource id>"
        )
        holders = [v for v in view.namespaces if v.exists]
        if not holders:
            names = ", ".join(v.namespace for v in view.namespaces)
            return _Verdict(FAIL, f"neither namespace ({names}) holds alias {spec.alias}", pair_fix)
        target = next(v for v in view.namespaces if v.region == run.to_region)
        if target.role in PRIMARY_ROLES:
            return _Verdict(
                OK, f"{target.namespace} is already the primary of alias {spec.alias} ({target.role}): nothing to do"
            )
        if not (target.exists and target.role == ROLE_SECONDARY and view.paired):
            roles = ", ".join(f"{v.namespace}={v.role or 'no alias'}" for v in view.namespaces)
            return _Verdict(
                FAIL,
                f"{target_ns} is neither the primary nor the paired secondary of alias {spec.alias} ({roles}); "
                "pair it first",
                pair_fix,
            )
        primary = next((v for v in view.namespaces if v.role in PRIMARY_ROLES), None)
        pending = max((v.pending_replication_operations_count or 0) for v in view.namespaces)
        source = primary.namespace if primary else "the primary"
        if pending > 0:
            return _Verdict(
                WARN,
                f"{pending} replication operation(s) pending from {source} to {target_ns}: "
                "a fail-over now would lose them",
                "wait until pendingReplicationOperationsCount is 0 (az servicebus georecovery-alias show); "
                "if it does not fall, check the primary namespace's health and throttling",
            )
        if target.provisioning_state not in (None, "Succeeded"):
            return _Verdict(
                WARN,
                f"pairing {source} -> {target_ns} is still {target.provisioning_state}",
                "wait for the pairing to finish (provisioningState Succeeded)",
            )
        return _Verdict(OK, f"paired {source} -> {target_ns}, nothing pending")

    async def _check_sql(
        self, run: _Run, group: FailoverGroupSpec, source: Awaitable[_Probe], target: Awaitable[_Probe]
    ) -> _Verdict:
        clients = run.clients
        target_server = group.servers.get(run.to_region)
        if target_server is None:
            return _Verdict(
                FAIL,
                f"the plan names no server in {run.to_region} for this group",
                f"add servers.{run.to_region} to the group in the plan",
            )
        view = await self._sql.get_failover_group(GetFailoverGroupInput(clients.plan.name, group.name))
        run.arm_read_ok()
        in_group = {d.lower() for d in view.databases}
        left_out = [d for d in group.databases if d.lower() not in in_group]
        if left_out:
            return _Verdict(
                FAIL,
                f"database(s) {', '.join(left_out)} of the plan are not in failover group {group.name} "
                f"(it has: {', '.join(view.databases) or 'none'}): a failover would leave them behind",
                f"add them: az sql failover-group update --name {group.name} --resource-group {group.resource_group} "
                f"--server {view.primary_server} --add-db {' '.join(left_out)}; or correct the plan's databases",
            )
        if view.primary_region == run.to_region:
            return _Verdict(OK, f"{view.primary_server} ({run.to_region}) is already primary: nothing to do")
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
                return _Verdict(
                    FAIL,
                    f"server {target_server} ({run.to_region}) is not in failover group {group.name}",
                    f"make {target_server} the group's partner server, or correct the group's servers in the plan",
                )
        state = view.replication_state or "unknown"
        where = f"primary {view.primary_server} ({view.primary_region}), secondary {target_server} ({run.to_region})"
        if state in SQL_HEALTHY_STATES:
            return _Verdict(OK, f"{where}, replication {state}")
        if state == SQL_SUSPENDED:
            return await self._suspended_sql(run, where, state, source, target)
        healthy = ", ".join(sorted(SQL_HEALTHY_STATES))
        if state in SQL_SEEDING_STATES:
            fix = "wait for the initial seeding of the secondary to finish (replicationState CATCH_UP)"
        else:
            fix = "check the group's replication in the Azure portal (Failover groups) before relying on it"
        return _Verdict(
            WARN, f"{where}, replication {state} (healthy: {healthy}): the secondary may not be a usable copy", fix
        )

    async def _suspended_sql(
        self, run: _Run, where: str, state: str, source: Awaitable[_Probe], target: Awaitable[_Probe]
    ) -> _Verdict:
        """Replication SUSPENDED: expected while either region is out, a FAIL while both answer."""
        if not (await asyncio.shield(source)).answered:
            if run.clients.plan.failover.allow_data_loss:
                return _Verdict(
                    OK,
                    f"{where}, replication {state} while {run.from_region} is out: "
                    "only a forced failover (with data loss) can proceed, which the plan allows",
                )
            return _Verdict(
                WARN,
                f"{where}, replication {state} while {run.from_region} is out, and the plan does not allow "
                "data loss: the failover waits for the source region",
                "wait for the source region, or allow data loss in the plan (failover.allow_data_loss)",
            )
        if not (await asyncio.shield(target)).answered:
            return _Verdict(
                WARN,
                f"{where}, replication {state} while {run.to_region} is out",
                f"replication resumes when {run.to_region} is back; see the target-region check",
            )
        return _Verdict(
            FAIL,
            f"{where}, replication {state} although both regions answer: the secondary receives no changes, "
            "so its data ages and a planned failover cannot complete",
            "find why replication stopped (Azure portal: the group's replication state, the servers' activity "
            "log) and resume it; until then a failover loses every change since it stopped",
        )

    async def _check_cosmos(self, run: _Run) -> _Verdict:
        plan = run.clients.plan
        view = await self._cosmos.get_account(GetCosmosAccountInput(plan.name))
        run.arm_read_ok()
        wanted = short_region(run.to_region)
        regions = [r.region for r in view.regions]
        planned = [short_region(r) for r in plan.cosmos.regions]
        add_fix = (
            f"add the region to account {view.account} (az cosmosdb update --locations ...), "
            "or correct cosmos.regions in the plan"
        )
        if wanted not in regions:
            return _Verdict(
                FAIL, f"{run.to_region} is not a region of account {view.account} ({', '.join(regions)})", add_fix
            )
        missing = [r for r in planned if r not in regions]
        if missing:
            return _Verdict(
                FAIL,
                f"planned region(s) {', '.join(missing)} are not regions of account {view.account} "
                f"(it has: {', '.join(regions)})",
                add_fix,
            )
        if view.provisioning_state not in ("", "Succeeded"):
            return _Verdict(
                WARN,
                f"account {view.account} is {view.provisioning_state}; it writes in {view.write_region}",
                "wait for the account's current operation to finish",
            )
        extra = [r for r in regions if r not in planned]
        if extra:
            return _Verdict(
                WARN,
                f"account {view.account} also has region(s) {', '.join(extra)}, which the plan does not list "
                f"(planned: {', '.join(planned)})",
                "list every account region in cosmos.regions (a failover priority change must name them all), "
                "or remove the extra ones from the account",
            )
        if view.write_region == wanted:
            return _Verdict(OK, f"account {view.account} already writes in {wanted}: nothing to do")
        return _Verdict(
            OK,
            f"account {view.account} writes in {view.write_region}; regions {', '.join(regions)} as planned",
        )

    # ---- recovery points -----------------------------------------------------------------------

    async def _check_recovery_points(self, run: _Run) -> _Verdict:
        plan = run.clients.plan
        if self._catalog is None:
            return _Verdict(
                WARN,
                "backups are not configured on this worker (no backup catalog), so recovery points were not checked",
                "configure backups for the workers (Blob Storage: DR_BLOB_ENDPOINT or backup.account_url; signing "
                "key: DR_SIGNING_KEY or backup.signing_key) and schedule the hourly BackupWorkflow",
            )
        if not plan.tenants:
            return _Verdict(OK, "the plan has no tenants")
        try:
            ages = await tenant_recovery_point_ages(self._catalog, plan, self._clock())
        except CatalogError as err:
            return _Verdict(FAIL, f"backup catalog {self._catalog.url}: {err}", "fix the catalog URL (DR_CATALOG_URL)")
        run.rpo_effective_seconds = ages.worst_age_seconds
        return recovery_point_verdict(plan, ages, self._catalog.url)

    def _credentials(self, run: _Run) -> ReadinessCheck:
        title = "Azure credentials"
        if run.auth_errors:
            return ReadinessCheck(CHECK_CREDENTIALS, title, FAIL, run.auth_errors[0], FIX_CREDENTIALS)
        if run.forbidden:
            return ReadinessCheck(
                CHECK_CREDENTIALS,
                title,
                FAIL,
                f"a token was obtained but {len(run.forbidden)} read(s) were refused (403): {run.forbidden[0]}",
                FIX_FORBIDDEN,
            )
        if run.arm_reads:
            return ReadinessCheck(CHECK_CREDENTIALS, title, OK, f"{run.arm_reads} ARM read(s) succeeded")
        return ReadinessCheck(
            CHECK_CREDENTIALS,
            title,
            WARN,
            "no ARM read succeeded, so the credentials could not be confirmed",
            "see the other checks' errors",
        )


def _rpo_state(tenant: TenantRecoveryPointAge) -> str:
    """OK within the tenant's target, WARN beyond it, FAIL beyond RPO_FAIL_FACTOR targets or with none."""
    if tenant.age_seconds is None:
        return FAIL
    if tenant.age_seconds > RPO_FAIL_FACTOR * tenant.rpo_target_seconds:
        return FAIL
    if tenant.age_seconds > tenant.rpo_target_seconds:
        return WARN
    return OK


def _overdue(tenant: TenantRecoveryPointAge) -> float:
    """How far past its target a tenant is (no recovery point at all comes first)."""
    if tenant.age_seconds is None:
        return float("inf")
    return tenant.age_seconds / tenant.rpo_target_seconds


def recovery_point_verdict(plan: DrPlan, ages: RecoveryPointAgesResult, catalog_url: str) -> _Verdict:
    """The recovery-points check from each tenant's newest recovery point: the worst tenant decides;
    the detail counts each state and names the most overdue tenants."""
    states = {t.tenant_id: _rpo_state(t) for t in ages.tenants}
    total = len(ages.tenants)
    within = sum(1 for s in states.values() if s == OK)
    none = [t for t in ages.tenants if t.age_seconds is None]
    late = [t for t in ages.tenants if states[t.tenant_id] != OK and t.age_seconds is not None]
    status = worst_status(states.values())
    parts = [f"{within}/{total} tenant(s) within their RPO target"]
    if late:
        parts.append(f"{len(late)} older than it")
    if none:
        parts.append(f"{len(none)} without any completed recovery point")
    detail = ", ".join(parts)
    if not ages.catalog_found:
        detail += f" (no backup catalog at {catalog_url} yet: no backup has run there)"
    if status == OK:
        worst = max(ages.tenants, key=_overdue, default=None)
        if worst is not None and worst.age_seconds is not None:
            detail += (
                f"; oldest {duration_text(worst.age_seconds)} ({worst.tenant_id}, "
                f"target {duration_text(worst.rpo_target_seconds)})"
            )
        return _Verdict(OK, detail)
    named = sorted((t for t in ages.tenants if states[t.tenant_id] != OK), key=_overdue, reverse=True)
    shown = [
        f"{t.tenant_id} none"
        if t.age_seconds is None
        else f"{t.tenant_id} {duration_text(t.age_seconds)} > {duration_text(t.rpo_target_seconds)}"
        for t in named[:RPO_NAMED_TENANTS]
    ]
    more = len(named) - len(shown)
    detail += ": " + ", ".join(shown) + (f" and {more} more" if more > 0 else "")
    fix = (
        f"back up the late tenants now and find why the hourly BackupWorkflow missed them (Temporal UI: "
        f"WorkflowType = 'BackupWorkflow' AND DrPlan = '{plan.name}')"
    )
    if not ages.catalog_found:
        fix = (
            "run the BackupWorkflow for the plan; if backups do run, point this worker at their catalog "
            "(DR_CATALOG_URL or backup.catalog_url)"
        )
    return _Verdict(status, detail, fix)
