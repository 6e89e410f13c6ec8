"""The platform's ops API: the tenant registry (modes, serving region), re-pinning and cache warm-up.

Served per region under ``/regions/{region}/ops/v1/...`` (each region has its own ops gateway; the
registry behind them is global). A gateway in a down region answers 503. Errors use Azure's shape
``{"error": {"code", "message"}}``. Request shapes are the ops runbook's:

- ``POST /ops/v1/tenants/mode {homeRegion | tenantIds, mode, reason}`` -> counts
- ``GET  /ops/v1/tenants?homeRegion=&servingRegion=&mode=&projectionDatabase=&ids=&cursor=&limit=``
  -> a page
- ``POST /ops/v1/tenants/database {tenantId, projectionDatabase, reason, expectedCurrent?}`` ->
  ``{tenantId, previous, projectionDatabase, changed}``: which database holds the tenant's
  projections (default ``projections``, the shared one; a promoted restore points one tenant at its
  restored copy). Setting the current value changes nothing; otherwise ``expectedCurrent``, when
  given, must match the current value (else 409 ``ProjectionDatabaseChanged``), and the database
  must be Online on a SQL server of the tenant's plan (else 409 ``DatabaseUnavailable``)
- ``POST /ops/v1/tenants/repin {tenantIds, targetRegion, reason}`` -> moved/unchanged, or 409
  naming the tenants whose residency policy forbids the target (nothing moves then)
- ``POST /ops/v1/cache/warmup {region, scope?}`` -> 202 + ``Operation-Location``;
  ``GET /ops/v1/operations/{id}`` polls it; ``GET /ops/v1/cache?region=`` reads a cache's state
- ``GET /ops/v1/replication/heartbeat?store=sql:<failover group>|cosmos[:<account>]`` -> the newest
  application heartbeat visible in the store's primary copy. The application writes one per
  second into every replicated store; ARM exposes no geo-replication lag, so this is how the data
  lost by a forced failover is measured: after one, the newest heartbeat is the failover's
  completion minus the lag it lost; otherwise replication is live and it is now minus the lag.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from domain.messages.platform import DEFAULT_PROJECTION_DATABASE
from emulator.core import ArmError, JsonDict, RequestContext, Router, iso, json_response, utc_now
from emulator.providers.cosmos import CosmosProvider
from emulator.providers.sql import SqlProvider
from emulator.world import World

BASE = "/regions/{region}/ops/v1"
MODES = ("read-write", "read-only")
MAX_PAGE = 1000
DEFAULT_PAGE = 100
WARMUP = "Ops_CacheWarmup"
HEARTBEAT = "Ops_ReplicationHeartbeat"
SET_PROJECTION_DATABASE = "Ops_SetTenantProjectionDatabase"
T = TypeVar("T")
SQL_STORE = "sql:"
COSMOS_STORE = "cosmos"


@dataclass
class TenantEntry:
    id: str
    plan: str
    home_region: str
    serving_region: str
    mode: str
    residency: str
    allowed_regions: tuple[str, ...]
    updated_at: str
    reason: str = ""
    projection_database: str = DEFAULT_PROJECTION_DATABASE

    def render(self) -> JsonDict:
        return {
            "id": self.id,
            "homeRegion": self.home_region,
            "servingRegion": self.serving_region,
            "mode": self.mode,
            "residency": self.residency,
            "allowedRegions": list(self.allowed_regions),
            "projectionDatabase": self.projection_database,
            "updatedAt": self.updated_at,
        }


@dataclass
class CacheState:
    region: str
    state: str  # "warm" | "warming" | "stale" | "cold"
    warmed_at: str | None = None
    operation_id: str | None = None

    def render(self) -> JsonDict:
        return {
            "region": self.region,
            "state": self.state,
            "warmedAt": self.warmed_at,
            "operationId": self.operation_id,
        }


@dataclass
class Warmup:
    id: str
    region: str
    scope: str
    started_at: str
    completed_at: str | None = None


def _error(status: int, code: str, message: str) -> ArmError:
    return ArmError(status, code, message)


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, value = raw.partition(":")
        offset = int(value)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _error(
            400, "InvalidCursor", f"The cursor '{cursor}' is not valid; pass the nextCursor of a previous page."
        ) from None
    if prefix != "offset" or offset < 0:
        raise _error(
            400, "InvalidCursor", f"The cursor '{cursor}' is not valid; pass the nextCursor of a previous page."
        )
    return offset


def _heartbeat(forced: JsonDict | None, lag_seconds: float, now: dt.datetime) -> dt.datetime:
    """The newest heartbeat in the primary copy: frozen at the forced failover's completion minus
    the lag it lost, or (replication live) ``lag_seconds`` behind now."""
    if forced is None:
        return now - dt.timedelta(seconds=lag_seconds)
    completed = dt.datetime.fromisoformat(str(forced["completed_at"]).replace("Z", "+00:00"))
    return completed - dt.timedelta(seconds=float(forced["data_loss_seconds"]))


class PlatformProvider:
    """The tenant registry of every plan and each region's cache, behind per-region gateways."""

    name = "platform"

    def __init__(self, world: World) -> None:
        self.world = world
        self.tenants: dict[str, TenantEntry] = {}
        self.caches: dict[str, CacheState] = {}
        self.warmups: dict[str, Warmup] = {}
        now = iso(utc_now())
        for plan in world.plans:
            for tenant in plan.tenants:
                self.tenants.setdefault(
                    tenant.id,
                    TenantEntry(
                        id=tenant.id,
                        plan=plan.name,
                        home_region=tenant.home_region,
                        serving_region=tenant.home_region,
                        mode="read-write",
                        residency=tenant.residency,
                        allowed_regions=tuple(plan.residency.get(tenant.residency, ())),
                        updated_at=now,
                    ),
                )
            self.caches.setdefault(plan.primary_region, CacheState(plan.primary_region, "warm", now))
            self.caches.setdefault(plan.dr_region, CacheState(plan.dr_region, "cold"))
        world.on_change(self._regions_changed)

    def _regions_changed(self) -> None:
        """A region that goes down loses its cache: it has to be warmed again after recovery."""
        for name, region in self.world.regions.items():
            cache = self.caches.get(name)
            if region.is_down and cache is not None and cache.state != "cold":
                self.caches[name] = CacheState(name, "cold")

    # ---- helpers -------------------------------------------------------------------------------

    def _gateway(self, ctx: RequestContext) -> str:
        region = ctx.params["region"].lower()
        state = self.world.regions.get(region)
        if state is None:
            raise _error(404, "UnknownRegion", f"There is no ops gateway in region '{ctx.params['region']}'.")
        if state.is_down:
            raise _error(503, "ServiceUnavailable", f"The ops gateway in region '{region}' is unavailable.")
        return region

    def _known_region(self, value: Any, field_name: str) -> str:
        if not isinstance(value, str) or value.lower() not in self.world.regions:
            known = ", ".join(sorted(self.world.regions))
            raise _error(
                400, "InvalidRequest", f"'{field_name}' must be one of the estate's regions ({known}), got {value!r}."
            )
        return value.lower()

    @staticmethod
    def _body(ctx: RequestContext) -> dict[str, Any]:
        if not isinstance(ctx.body, dict):
            raise _error(400, "InvalidRequest", "The request body must be a JSON object.")
        return ctx.body

    @staticmethod
    def _reason(body: dict[str, Any]) -> str:
        reason = body.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise _error(400, "InvalidRequest", "'reason' is required: the registry records why every change was made.")
        return reason.strip()

    def _tenant_ids(self, value: Any) -> list[str]:
        if not isinstance(value, list) or not value or not all(isinstance(t, str) and t for t in value):
            raise _error(400, "InvalidRequest", "'tenantIds' must be a non-empty list of tenant ids.")
        unknown = [t for t in value if t not in self.tenants]
        if unknown:
            raise _error(404, "TenantNotFound", f"Unknown tenant id(s): {', '.join(unknown)}.")
        return list(dict.fromkeys(value))

    # ---- handlers ------------------------------------------------------------------------------

    async def set_mode(self, ctx: RequestContext) -> web.StreamResponse:
        self._gateway(ctx)
        body = self._body(ctx)
        mode = body.get("mode")
        if mode not in MODES:
            raise _error(400, "InvalidRequest", f"'mode' must be one of {', '.join(MODES)}, got {mode!r}.")
        reason = self._reason(body)
        if "tenantIds" in body:
            selected = [self.tenants[t] for t in self._tenant_ids(body["tenantIds"])]
            scope: JsonDict = {"tenantIds": len(selected)}
        elif "homeRegion" in body:
            home = self._known_region(body["homeRegion"], "homeRegion")
            selected = [t for t in self.tenants.values() if t.home_region == home]
            scope = {"homeRegion": home}
        else:
            raise _error(400, "InvalidRequest", "Give either 'homeRegion' or 'tenantIds'.")
        changed = [t for t in selected if t.mode != mode]
        now = iso(utc_now())
        for tenant in changed:
            tenant.mode = mode
            tenant.updated_at = now
            tenant.reason = reason
        return json_response(
            scope
            | {
                "mode": mode,
                "matched": len(selected),
                "changed": len(changed),
                "unchanged": len(selected) - len(changed),
                "changedTenantIds": [t.id for t in changed],
            }
        )

    async def list_tenants(self, ctx: RequestContext) -> web.StreamResponse:
        self._gateway(ctx)
        query = ctx.request.query
        rows = sorted(self.tenants.values(), key=lambda t: t.id)
        if "homeRegion" in query:
            home = self._known_region(query["homeRegion"], "homeRegion")
            rows = [t for t in rows if t.home_region == home]
        if "servingRegion" in query:
            serving = self._known_region(query["servingRegion"], "servingRegion")
            rows = [t for t in rows if t.serving_region == serving]
        if "mode" in query:
            if query["mode"] not in MODES:
                raise _error(400, "InvalidRequest", f"'mode' must be one of {', '.join(MODES)}.")
            rows = [t for t in rows if t.mode == query["mode"]]
        if "projectionDatabase" in query:
            # SQL database names are case-insensitive.
            database = query["projectionDatabase"].lower()
            rows = [t for t in rows if t.projection_database.lower() == database]
        if "ids" in query:
            wanted = {i for i in query["ids"].split(",") if i}
            rows = [t for t in rows if t.id in wanted]
        try:
            limit = int(query.get("limit", DEFAULT_PAGE))
        except ValueError:
            limit = -1
        if not 1 <= limit <= MAX_PAGE:
            raise _error(400, "InvalidRequest", f"'limit' must be a whole number from 1 to {MAX_PAGE}.")
        offset = _decode_cursor(query["cursor"]) if query.get("cursor") else 0
        page = rows[offset : offset + limit]
        next_offset = offset + limit
        return json_response(
            {
                "value": [t.render() for t in page],
                "nextCursor": _encode_cursor(next_offset) if next_offset < len(rows) else None,
                "totalCount": len(rows),
            }
        )

    async def set_projection_database(self, ctx: RequestContext) -> web.StreamResponse:
        self._gateway(ctx)
        body = self._body(ctx)
        tenant_id = body.get("tenantId")
        if not isinstance(tenant_id, str) or not tenant_id:
            raise _error(400, "InvalidRequest", "'tenantId' must be a tenant id.")
        tenant = self.tenants.get(tenant_id)
        if tenant is None:
            raise _error(404, "TenantNotFound", f"Unknown tenant id(s): {tenant_id}.")
        database = body.get("projectionDatabase")
        if not isinstance(database, str) or not database.strip() or "/" in database or len(database) > 128:
            raise _error(
                400, "InvalidRequest", "'projectionDatabase' must be a SQL database name (1 to 128 characters, no '/')."
            )
        database = database.strip()
        expected = body.get("expectedCurrent")
        if expected is not None and not isinstance(expected, str):
            raise _error(400, "InvalidRequest", "'expectedCurrent' must be a database name or null.")
        reason = self._reason(body)
        previous = tenant.projection_database
        answer: JsonDict = {"tenantId": tenant.id, "previous": previous, "projectionDatabase": previous}
        if previous.lower() == database.lower():
            return json_response(answer | {"changed": False})
        if expected is not None and expected.lower() != previous.lower():
            raise _error(
                409,
                "ProjectionDatabaseChanged",
                f"Tenant '{tenant.id}' reads its projections from '{previous}', not the expected '{expected}'; "
                "nothing was changed.",
            )
        if not self._database_online(tenant.plan, database):
            raise _error(
                409,
                "DatabaseUnavailable",
                f"Cannot point tenant '{tenant.id}' at database '{database}': no SQL server of plan "
                f"'{tenant.plan}' holds an Online database of that name.",
            )
        tenant.projection_database = database
        tenant.updated_at = iso(utc_now())
        tenant.reason = reason
        return json_response(answer | {"projectionDatabase": database, "changed": True})

    def _database_online(self, plan: str, name: str) -> bool:
        sql = self._peer("sql", SqlProvider)
        servers = {s.key for g in sql.groups if g.plan == plan for s in g.servers.values()}
        return any(
            db.server.key in servers and db.name.lower() == name.lower() and db.is_available
            for db in sql.databases.values()
        )

    async def repin(self, ctx: RequestContext) -> web.StreamResponse:
        self._gateway(ctx)
        body = self._body(ctx)
        ids = self._tenant_ids(body.get("tenantIds"))
        target = self._known_region(body.get("targetRegion"), "targetRegion")
        reason = self._reason(body)
        if self.world.regions[target].is_down:
            raise _error(409, "RegionUnavailable", f"Cannot re-pin tenants to region '{target}': it is down.")
        refused = [self.tenants[t] for t in ids if target not in self.tenants[t].allowed_regions]
        if refused:
            names = ", ".join(
                f"{t.id} (residency '{t.residency}' allows {', '.join(t.allowed_regions)})" for t in refused
            )
            raise _error(
                409,
                "ResidencyViolation",
                f"Re-pinning to '{target}' refused; nothing was moved. These tenants may not be served from "
                f"'{target}': {names}.",
            )
        moved = [self.tenants[t] for t in ids if self.tenants[t].serving_region != target]
        now = iso(utc_now())
        for tenant in moved:
            tenant.serving_region = target
            tenant.updated_at = now
            tenant.reason = reason
        cache = self.caches.get(target)
        if moved and cache is not None and cache.state == "warm":
            cache.state = "stale"
        return json_response(
            {
                "targetRegion": target,
                "moved": [t.id for t in moved],
                "unchanged": [t for t in ids if t not in {m.id for m in moved}],
            }
        )

    async def warmup(self, ctx: RequestContext) -> web.StreamResponse:
        gateway = self._gateway(ctx)
        body = self._body(ctx)
        region = self._known_region(body.get("region"), "region")
        scope = body.get("scope", "all")
        if not isinstance(scope, str) or not scope:
            raise _error(400, "InvalidRequest", "'scope' must be a non-empty string (default 'all').")
        if self.world.regions[region].is_down:
            raise _error(409, "RegionUnavailable", f"Cannot warm the cache of region '{region}': it is down.")
        cache = self.caches.setdefault(region, CacheState(region, "cold"))
        running = self.warmups.get(cache.operation_id or "")
        if cache.state == "warming" and running is not None:
            return self._accepted(ctx, gateway, running)

        def warmed() -> None:
            current = self.caches.get(region)
            if current is not None and current.operation_id == op.id and current.state == "warming":
                current.state = "warm"
                current.warmed_at = iso(utc_now())
            self.warmups[op.id].completed_at = iso(utc_now())

        op = self.world.operations.start(WARMUP, self.world.latencies.get(WARMUP))
        warmup = Warmup(op.id, region, scope, iso(op.started))
        self.warmups[op.id] = warmup
        cache.state = "warming"
        cache.operation_id = op.id
        # Registered after the record exists: a zero-latency warm-up completes inside start().
        op.apply = warmed
        if op.status == "Succeeded":
            warmed()
        return self._accepted(ctx, gateway, warmup)

    def _accepted(self, ctx: RequestContext, gateway: str, warmup: Warmup) -> web.StreamResponse:
        url = ctx.absolute(BASE.format(region=gateway) + f"/operations/{warmup.id}")
        return json_response(self._render_op(warmup), 202, {"Operation-Location": url, "Location": url})

    def _render_op(self, warmup: Warmup) -> JsonDict:
        status = self.world.operations.get(warmup.id).status
        body: JsonDict = {
            "id": warmup.id,
            "kind": "cache-warmup",
            "status": status,
            "region": warmup.region,
            "scope": warmup.scope,
            "startedAt": warmup.started_at,
        }
        if warmup.completed_at is not None:
            body["completedAt"] = warmup.completed_at
        return body

    async def get_operation(self, ctx: RequestContext) -> web.StreamResponse:
        self._gateway(ctx)
        warmup = self.warmups.get(ctx.params["operationId"])
        if warmup is None:
            raise _error(404, "OperationNotFound", f"There is no operation '{ctx.params['operationId']}'.")
        return json_response(self._render_op(warmup))

    async def cache_status(self, ctx: RequestContext) -> web.StreamResponse:
        self._gateway(ctx)
        region = self._known_region(ctx.request.query.get("region"), "region")
        cache = self.caches.setdefault(region, CacheState(region, "cold"))
        return json_response(cache.render())

    async def replication_heartbeat(self, ctx: RequestContext) -> web.StreamResponse:
        self._gateway(ctx)
        store = ctx.request.query.get("store", "")
        if not store:
            raise _error(400, "InvalidRequest", "'store' is required: 'sql:<failover group>' or 'cosmos'.")
        now = utc_now()
        region, last = self._last_heartbeat(store, now)
        return json_response({"store": store, "region": region, "lastHeartbeatAt": iso(last), "measuredAt": iso(now)})

    def _last_heartbeat(self, store: str, now: dt.datetime) -> tuple[str, dt.datetime]:
        """(region of the primary copy, newest heartbeat in it) of a replicated store."""
        kind, _, name = store.partition(":")
        if kind == SQL_STORE.rstrip(":") and name:
            sql = self._peer("sql", SqlProvider)
            group = next((g for g in sql.groups if g.name.lower() == name.lower()), None)
            if group is not None:
                last = group.failovers[-1] if group.failovers else None
                forced = last is not None and last["mode"] == "forced"
                return group.primary_region, _heartbeat(last if forced else None, group.lag_seconds, now)
        elif kind == COSMOS_STORE:
            cosmos = self._peer("cosmos", CosmosProvider)
            accounts = [a for a in cosmos.accounts.values() if not name or a.name.lower() == name.lower()]
            if len(accounts) > 1:
                names = ", ".join(sorted(a.name for a in accounts))
                raise _error(
                    400, "AmbiguousStore", f"'cosmos' names several accounts ({names}); ask for 'cosmos:<account>'."
                )
            if accounts:
                account = accounts[0]
                last = account.failovers[-1] if account.failovers else None
                forced = last is not None and bool(last["previous_write_region_down"])
                return account.write_region.name, _heartbeat(last if forced else None, account.lag_seconds, now)
        raise _error(
            404,
            "StoreNotFound",
            f"There is no replicated store '{store}'; stores are 'sql:<failover group>' and 'cosmos'.",
        )

    def _peer(self, name: str, kind: type[T]) -> T:
        """Another provider of the same world (looked up when needed: providers are built in turn)."""
        provider = self.world.providers.get(name)
        if not isinstance(provider, kind):
            raise _error(500, "InternalServerError", f"The emulator runs without its {name} provider.")
        return provider

    # ---- provider protocol ---------------------------------------------------------------------

    def register(self, router: Router, control: Router) -> None:
        router.add("POST", BASE + "/tenants/mode", "Ops_SetTenantMode", self.set_mode, mutating=True)
        router.add("GET", BASE + "/tenants", "Ops_GetTenants", self.list_tenants)
        router.add("POST", BASE + "/tenants/repin", "Ops_RepinTenants", self.repin, mutating=True)
        router.add(
            "POST",
            BASE + "/tenants/database",
            SET_PROJECTION_DATABASE,
            self.set_projection_database,
            mutating=True,
        )
        router.add("POST", BASE + "/cache/warmup", WARMUP, self.warmup, mutating=True, latency_mode="operation")
        router.add("GET", BASE + "/cache", "Ops_GetCacheStatus", self.cache_status)
        router.add("GET", BASE + "/operations/{operationId}", "Ops_GetOperation", self.get_operation)
        router.add("GET", BASE + "/replication/heartbeat", HEARTBEAT, self.replication_heartbeat)

    def snapshot(self) -> JsonDict:
        modes: dict[str, int] = {}
        serving: dict[str, int] = {}
        databases: dict[str, int] = {}
        for tenant in self.tenants.values():
            modes[tenant.mode] = modes.get(tenant.mode, 0) + 1
            databases[tenant.projection_database] = databases.get(tenant.projection_database, 0) + 1
            serving[tenant.serving_region] = serving.get(tenant.serving_region, 0) + 1
        return {
            "tenants": {t.id: t.render() for t in self.tenants.values()},
            "modes": modes,
            "servingRegions": serving,
            "projectionDatabases": databases,
            "caches": {name: cache.render() for name, cache in self.caches.items()},
        }
