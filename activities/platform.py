"""Platform ops API activities: tenant modes, re-pinning, registry reads, the database holding a
tenant's projections, and cache warm-up.

The ops API lives per region (``AzureConnection.ops_url``); each activity calls a gateway in a
region that is up (the DR region during a failover). Answers are mapped with the same status
rules as Azure calls: 429 and 5xx are retried, every other error stops at once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.azure import (
    AzureClients,
    Estates,
    azure_call,
    check_http_response,
    heartbeat,
    invalid_input,
    planned_call,
    poll_until,
    utc_time,
)
from domain.messages.platform import (
    DEFAULT_PROJECTION_DATABASE,
    STORE_COSMOS,
    STORE_SQL_PREFIX,
    TENANT_MODES,
    DataLossWindowInput,
    DataLossWindowResult,
    ListTenantsInput,
    ListTenantsResult,
    RepinBatchInput,
    RepinBatchResult,
    RepinTenantsInput,
    RepinTenantsResult,
    SetTenantDatabaseInput,
    SetTenantDatabaseResult,
    SetTenantModeInput,
    SetTenantModeResult,
    TenantRecord,
    WarmCacheInput,
    WarmCacheResult,
)

# Tenant ids per registry read: keeps the query string well under common URL limits.
IDS_PER_READ = 100
# Tenant ids named in a refusal: enough to act on, short enough for an error message.
IDS_NAMED = 10
DONE_STATUSES = ("Succeeded", "Failed", "Canceled")


def _plan_region(clients: AzureClients, region: str, what: str) -> str:
    if region not in clients.plan.regions:
        raise invalid_input(
            f"{what} {region!r} is not a region of plan {clients.plan.name!r} ({', '.join(clients.plan.regions)})"
        )
    return region


def _record(raw: dict[str, Any]) -> TenantRecord:
    return TenantRecord(
        id=str(raw["id"]),
        home_region=str(raw["homeRegion"]),
        serving_region=str(raw["servingRegion"]),
        mode=str(raw["mode"]),
        residency=str(raw.get("residency", "")),
        allowed_regions=tuple(str(r) for r in raw.get("allowedRegions", ())),
        projection_database=str(raw.get("projectionDatabase") or DEFAULT_PROJECTION_DATABASE),
    )


async def ops_call(
    clients: AzureClients,
    gateway: str,
    method: str,
    path: str,
    *,
    resource: str,
    action: str,
    params: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
) -> Any:
    """One ops API request to the gateway in ``gateway``; the JSON answer, errors mapped."""
    target = clients.connection.ops_api(clients.plan, gateway) + path
    async with azure_call(f"{resource} (ops gateway {gateway})", action):
        response = await clients.http.request(
            method, target, params=params, json=body, headers=await clients.ops_headers()
        )
        check_http_response(response, f"{resource} (ops gateway {gateway})", action)
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise ApplicationError(
            f"{action} {resource}: the ops gateway in {gateway} answered {response.status_code} without JSON",
            type="OpsProtocolError",
            non_retryable=True,
        ) from None


async def ops_call_any(
    clients: AzureClients,
    gateways: Sequence[str],
    method: str,
    path: str,
    *,
    resource: str,
    action: str,
    params: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
) -> tuple[str, Any]:
    """The same request to each gateway in turn until one answers: (its region, the answer). A
    gateway that fails retryably (its region down) is skipped; any other error stops at once."""
    last: ApplicationError | None = None
    for gateway in gateways:
        try:
            answer = await ops_call(
                clients, gateway, method, path, resource=resource, action=action, params=params, body=body
            )
        except ApplicationError as err:
            if err.non_retryable:
                raise
            last = err
            continue
        return gateway, answer
    if last is None:
        raise invalid_input(f"{action} {resource}: no ops gateway region given")
    raise last


def gateways_for(clients: AzureClients, preferred: str | None = None) -> tuple[str, ...]:
    """The plan's ops gateways to try: ``preferred`` alone when given, else the plan's regions."""
    if preferred is not None:
        return (_plan_region(clients, preferred, "gateway region"),)
    return clients.plan.regions


async def tenants_reading_from(clients: AzureClients, database: str) -> tuple[int, tuple[str, ...]]:
    """How many tenants the registry maps to ``database`` for their projections, and the first few ids."""
    _, page = await ops_call_any(
        clients,
        gateways_for(clients),
        "GET",
        "/tenants",
        resource=f"tenants whose projections are in database '{database}'",
        action="list",
        params={"projectionDatabase": database, "limit": str(IDS_NAMED)},
    )
    return int(page["totalCount"]), tuple(str(t["id"]) for t in page["value"])


async def tenant_projection_database(clients: AzureClients, tenant_id: str, gateways: Sequence[str]) -> tuple[str, str]:
    """(the gateway of ``gateways`` that answered, the database the tenant registry serves
    ``tenant_id``'s projections from)."""
    gateway, page = await ops_call_any(
        clients,
        gateways,
        "GET",
        "/tenants",
        resource=f"projection database of tenant {tenant_id}",
        action="read",
        params={"ids": tenant_id, "limit": "1"},
    )
    found = [r for r in map(_record, page["value"]) if r.id == tenant_id]
    if not found:
        raise ApplicationError(
            f"tenant {tenant_id!r} is not in the tenant registry of plan {clients.plan.name!r}",
            type="TenantNotFound",
            non_retryable=True,
        )
    return gateway, found[0].projection_database


def _check_store(clients: AzureClients, store: str) -> None:
    """``sql:<failover group of the plan>``, ``cosmos`` or ``cosmos:<the plan's account>``."""
    plan = clients.plan
    groups = [g.name for g in plan.sql.failover_groups]
    kind, _, name = store.partition(":")
    if store.startswith(STORE_SQL_PREFIX) and name in groups:
        return
    if kind == STORE_COSMOS and name in ("", plan.cosmos.account):
        return
    known = ", ".join([*(STORE_SQL_PREFIX + g for g in groups), STORE_COSMOS])
    raise ApplicationError(
        f"unknown replicated store {store!r} in plan {plan.name!r} (stores: {known})",
        type="UnknownStore",
        non_retryable=True,
    )


class PlatformActivities:
    """Activities on the platform's ops API, over HTTPS with the worker's bearer token."""

    def __init__(self, estates: Estates) -> None:
        self._estates = estates

    async def _call(
        self,
        clients: AzureClients,
        gateway: str,
        method: str,
        path: str,
        *,
        resource: str,
        action: str,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        """One ops API request to the gateway in ``gateway``; the JSON answer, errors mapped."""
        return await ops_call(
            clients, gateway, method, path, resource=resource, action=action, params=params, body=body
        )

    @staticmethod
    def _planned(clients: AzureClients, gateway: str, method: str, path: str, body: dict[str, Any]) -> str:
        """The planned-call line of one mutating ops API request (its full URL, as sent)."""
        return planned_call(method, clients.connection.ops_api(clients.plan, gateway) + path, body=body)

    async def _count(self, clients: AzureClients, gateway: str, params: dict[str, str], resource: str) -> int:
        page = await self._call(
            clients, gateway, "GET", "/tenants", resource=resource, action="count", params=params | {"limit": "1"}
        )
        return int(page["totalCount"])

    @activity.defn(name="platform.set_tenant_mode")
    async def set_tenant_mode(self, request: SetTenantModeInput) -> SetTenantModeResult:
        """Give every tenant homed in ``home_region`` the mode ``mode``; posts only if some differ."""
        clients = self._estates[request.plan]
        home = _plan_region(clients, request.home_region, "home region")
        if request.mode not in TENANT_MODES:
            raise invalid_input(f"mode must be one of {', '.join(TENANT_MODES)}, got {request.mode!r}")
        gateway = _plan_region(clients, request.gateway_region or clients.plan.other_region(home), "gateway region")
        resource = f"tenants homed in {home}"
        other_mode = next(m for m in TENANT_MODES if m != request.mode)
        differing = await self._count(clients, gateway, {"homeRegion": home, "mode": other_mode}, resource)
        if differing == 0 or request.dry_run:
            matched = await self._count(clients, gateway, {"homeRegion": home}, resource)
        if differing == 0:
            return SetTenantModeResult(request.plan, home, request.mode, matched=matched, changed=0)
        body = {"homeRegion": home, "mode": request.mode, "reason": request.reason}
        call = self._planned(clients, gateway, "POST", "/tenants/mode", body)
        if request.dry_run:
            activity.logger.info("dry run: would call %s", call)
            return SetTenantModeResult(
                request.plan, home, request.mode, matched=matched, changed=differing, planned_calls=(call,)
            )
        activity.logger.info("setting %d tenant(s) homed in %s to %s", differing, home, request.mode)
        answer = await self._call(
            clients, gateway, "POST", "/tenants/mode", resource=resource, action=f"set mode {request.mode}", body=body
        )
        return SetTenantModeResult(
            request.plan,
            home,
            request.mode,
            matched=int(answer["matched"]),
            changed=int(answer["changed"]),
            planned_calls=(call,),
        )

    @activity.defn(name="platform.repin_tenants")
    async def repin_tenants(self, request: RepinTenantsInput) -> RepinTenantsResult:
        """Serve a batch of tenants from ``target_region``: skips those already there, refuses those
        whose residency policy forbids it, and re-pins the rest in one request."""
        clients = self._estates[request.plan]
        target = _plan_region(clients, request.target_region, "target region")
        gateway = _plan_region(clients, request.gateway_region or target, "gateway region")
        ids = list(dict.fromkeys(request.tenant_ids))
        records: dict[str, TenantRecord] = {}
        for start in range(0, len(ids), IDS_PER_READ):
            chunk = ids[start : start + IDS_PER_READ]
            page = await self._call(
                clients,
                gateway,
                "GET",
                "/tenants",
                resource=f"{len(chunk)} tenant(s) starting at {chunk[0]}",
                action="read",
                params={"ids": ",".join(chunk), "limit": str(len(chunk))},
            )
            records.update((r.id, r) for r in map(_record, page["value"]))
        unknown = [t for t in ids if t not in records]
        if unknown:
            raise ApplicationError(
                f"re-pin to {target}: unknown tenant id(s) in the registry: {', '.join(unknown)}",
                type="TenantNotFound",
                non_retryable=True,
            )
        moved, skipped, refused, _ = await self._repin_records(
            clients, gateway, target, [records[t] for t in ids], request.reason
        )
        return RepinTenantsResult(request.plan, target, tuple(moved), tuple(skipped), tuple(refused))

    async def _repin_records(
        self,
        clients: AzureClients,
        gateway: str,
        target: str,
        records: list[TenantRecord],
        reason: str,
        *,
        dry_run: bool = False,
    ) -> tuple[list[str], list[str], list[str], tuple[str, ...]]:
        """Re-pin the given tenants to ``target``: (moved, already there, refused by residency, the
        call made); a dry run reports those it would move and makes no call."""
        skipped = [r.id for r in records if r.serving_region == target]
        refused = [r.id for r in records if r.serving_region != target and target not in r.allowed_regions]
        to_move = [r.id for r in records if r.serving_region != target and target in r.allowed_regions]
        if not to_move:
            return [], skipped, refused, ()
        body = {"tenantIds": to_move, "targetRegion": target, "reason": reason}
        call = self._planned(clients, gateway, "POST", "/tenants/repin", body)
        if dry_run:
            activity.logger.info("dry run: would re-pin %d tenant(s) to %s", len(to_move), target)
            return to_move, skipped, refused, (call,)
        activity.logger.info("re-pinning %d tenant(s) to %s", len(to_move), target)
        answer = await self._call(
            clients,
            gateway,
            "POST",
            "/tenants/repin",
            resource=f"{len(to_move)} tenant(s) to {target}",
            action="re-pin",
            body=body,
        )
        moved = [str(t) for t in answer["moved"]]
        skipped += [str(t) for t in answer.get("unchanged", ())]
        return moved, skipped, refused, (call,)

    @activity.defn(name="platform.repin_batch")
    async def repin_batch(self, request: RepinBatchInput) -> RepinBatchResult:
        """One page of the tenants homed in ``from_region``: those whose residency allows
        ``to_region`` are re-pinned there. Tenant ids stay inside the activity, so a workflow
        re-pinning 100,000 tenants keeps a small history."""
        clients = self._estates[request.plan]
        source = _plan_region(clients, request.from_region, "from region")
        target = _plan_region(clients, request.to_region, "to region")
        params = {"limit": str(request.limit), "homeRegion": source}
        if request.cursor:
            params["cursor"] = request.cursor
        page = await self._call(
            clients, target, "GET", "/tenants", resource=f"tenants homed in {source}", action="list", params=params
        )
        records = [_record(r) for r in page["value"]]
        moved, skipped, refused, calls = await self._repin_records(
            clients, target, target, records, request.reason, dry_run=request.dry_run
        )
        heartbeat({"cursor": request.cursor, "moved": len(moved)})
        return RepinBatchResult(
            plan=request.plan,
            considered=len(records),
            moved=len(moved),
            already_there=len(skipped),
            not_allowed=len(refused),
            next_cursor=page.get("nextCursor"),
            planned_calls=calls,
        )

    @activity.defn(name="platform.list_tenants")
    async def list_tenants(self, request: ListTenantsInput) -> ListTenantsResult:
        """One filtered page of the tenant registry (pass ``next_cursor`` back for the next)."""
        clients = self._estates[request.plan]
        gateway = _plan_region(clients, request.gateway_region or clients.plan.dr_region, "gateway region")
        params = {"limit": str(request.limit)}
        for key, value in (
            ("homeRegion", request.home_region),
            ("servingRegion", request.serving_region),
            ("mode", request.mode),
            ("cursor", request.cursor),
        ):
            if value:
                params[key] = value
        page = await self._call(
            clients, gateway, "GET", "/tenants", resource="tenant registry", action="list", params=params
        )
        return ListTenantsResult(
            plan=request.plan,
            tenants=tuple(_record(r) for r in page["value"]),
            next_cursor=page.get("nextCursor"),
            total=int(page["totalCount"]),
        )

    @activity.defn(name="platform.set_tenant_database")
    async def set_tenant_database(self, request: SetTenantDatabaseInput) -> SetTenantDatabaseResult:
        """Point the tenant's projections at ``database`` (promotion of a restore, or its undo):
        reads the registry first and writes only when it differs, conditioned on the value read."""
        clients = self._estates[request.plan]
        if not request.database.strip():
            raise invalid_input("database must be a SQL database name")
        if not request.reason.strip():
            raise invalid_input("reason is required: the registry records why every change was made")
        resource = f"projection database of tenant {request.tenant_id}"
        gateways = gateways_for(clients, request.gateway_region)
        gateway, current = await tenant_projection_database(clients, request.tenant_id, gateways)
        if current.lower() == request.database.lower():
            activity.logger.info("tenant %s already reads its projections from %s", request.tenant_id, current)
            return SetTenantDatabaseResult(request.plan, request.tenant_id, current, current, changed=False)
        if request.expected_current is not None and request.expected_current.lower() != current.lower():
            raise ApplicationError(
                f"tenant {request.tenant_id!r} reads its projections from {current!r}, not the expected "
                f"{request.expected_current!r}: refusing to point it at {request.database!r}",
                type="ProjectionDatabaseChanged",
                non_retryable=True,
            )
        # Conditioned on the value just read: a concurrent change makes the registry answer 409.
        body = {
            "tenantId": request.tenant_id,
            "projectionDatabase": request.database,
            "reason": request.reason,
            "expectedCurrent": current,
        }
        activity.logger.info(
            "pointing tenant %s's projections from %s to %s", request.tenant_id, current, request.database
        )
        gateway, answer = await ops_call_any(
            clients,
            (gateway, *(g for g in gateways if g != gateway)),
            "POST",
            "/tenants/database",
            resource=resource,
            action=f"set to {request.database!r} the",
            body=body,
        )
        after = str(answer["projectionDatabase"])
        return SetTenantDatabaseResult(
            plan=request.plan,
            tenant_id=request.tenant_id,
            previous=current,
            current=after,
            changed=after.lower() != current.lower(),
            planned_calls=(self._planned(clients, gateway, "POST", "/tenants/database", body),),
        )

    @activity.defn(name="platform.warm_cache")
    async def warm_cache(self, request: WarmCacheInput) -> WarmCacheResult:
        """Make the cache of ``region`` warm: starts a warm-up unless it is warm (or one is running),
        then polls the warm-up operation to its end. A dry run reads the cache's state and reports
        the warm-up it would start."""
        clients = self._estates[request.plan]
        region = _plan_region(clients, request.region, "region")
        gateway = _plan_region(clients, request.gateway_region or region, "gateway region")
        resource = f"cache of {region}"
        started = time.monotonic()
        status = await self._call(
            clients, gateway, "GET", "/cache", resource=resource, action="read", params={"region": region}
        )
        if status["state"] == "warm" and not request.force:
            return WarmCacheResult(request.plan, region, "warm", False, None, time.monotonic() - started)
        changed = False
        calls: tuple[str, ...] = ()
        operation_id = status.get("operationId") if status["state"] == "warming" else None
        if operation_id is None:
            body = {"region": region, "scope": request.scope}
            calls = (self._planned(clients, gateway, "POST", "/cache/warmup", body),)
            changed = True
            if request.dry_run:
                activity.logger.info("dry run: would call %s", calls[0])
                return WarmCacheResult(
                    request.plan, region, "warm", changed, None, time.monotonic() - started, planned_calls=calls
                )
            activity.logger.info("warming the cache of %s (scope %s)", region, request.scope)
            accepted = await self._call(
                clients, gateway, "POST", "/cache/warmup", resource=resource, action="warm up", body=body
            )
            operation_id = str(accepted["id"])
        elif request.dry_run:
            # A warm-up is already running: a real run would only wait for it.
            return WarmCacheResult(request.plan, region, "warm", False, operation_id, time.monotonic() - started)

        async def probe() -> dict[str, Any]:
            answer: dict[str, Any] = await self._call(
                clients, gateway, "GET", f"/operations/{operation_id}", resource=resource, action="poll warm-up"
            )
            return answer

        final = await poll_until(
            f"the cache warm-up of {region}",
            probe,
            lambda op: op.get("status") in DONE_STATUSES,
            interval=clients.connection.polling_interval,
            timeout=request.timeout_seconds,
            progress=lambda op: {"operation": operation_id, "status": op.get("status")},
        )
        if final.get("status") != "Succeeded":
            raise ApplicationError(
                f"the cache warm-up {operation_id} of {region} ended {final.get('status')}",
                type="CacheWarmupFailed",
                non_retryable=False,
            )
        return WarmCacheResult(
            request.plan, region, "warm", changed, operation_id, time.monotonic() - started, planned_calls=calls
        )

    @activity.defn(name="platform.data_loss_window")
    async def data_loss_window(self, request: DataLossWindowInput) -> DataLossWindowResult:
        """The data-loss window (effective RPO) of a failover of ``store`` that completed at ``at``:
        ``at`` minus the newest application heartbeat the new primary holds (never negative)."""
        clients = self._estates[request.plan]
        failed = _plan_region(clients, request.failed_region, "failed region")
        _check_store(clients, request.store)
        at = utc_time(request.at, "failover completion time")
        answer = await self._call(
            clients,
            clients.plan.other_region(failed),
            "GET",
            "/replication/heartbeat",
            resource=f"replication heartbeat of {request.store}",
            action="read",
            params={"store": request.store},
        )
        last = utc_time(str(answer["lastHeartbeatAt"]), "lastHeartbeatAt")
        seconds = max(0.0, (at - last).total_seconds())
        activity.logger.info("data-loss window of %s: %.1fs (last heartbeat %s)", request.store, seconds, last)
        return DataLossWindowResult(
            plan=request.plan,
            store=request.store,
            last_heartbeat_at=str(answer["lastHeartbeatAt"]),
            at=request.at,
            seconds=seconds,
        )
