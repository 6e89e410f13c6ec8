"""Azure SQL Database (``Microsoft.Sql``): failover groups, databases and their restores, restorable
dropped databases and long-term-retention backups, api-version 2025-01-01.

Built from each plan: one logical server per region, every failover group on both servers (its
databases primary on the plan's primary region, geo-secondary copies on the other server), a
dropped database per server and two weekly LTR backups per primary database.

Wire behaviour follows ``test_cli_mgmt_sql_failover_group.test_failover_group.yaml``: failover
POSTs answer 202 ``{"operation":"FailoverFailoverGroup","startTime"}`` with ``Azure-AsyncOperation``
(``.../failoverGroupAzureAsyncOperation/{id}``) and ``Location``
(``.../failoverGroupOperationResults/{id}``); polls answer ``{"name","status","startTime"}``; the
final GET on ``Location`` answers the group as seen from the new primary (the SDK deserializes the
poller's result from it). Database creates answer 202 the same way with ``databaseAzureAsyncOperation``
and ``databaseOperationResults``.

Rules enforced, with the codes listed in the 2025-01-01 specs' error tables:
- failover (planned, forced, try-planned) is POSTed on the secondary; on the primary it answers 400
  ``FailoverGroupFailoverRequestOnPrimary`` (the CLI's "already primary" no-op is client-side);
- a planned failover needs the partner (current primary): while its region is down it answers 400
  ``PlannedFailoverTimedOut``, and an accepted one whose partner goes down before it completes ends
  ``Failed`` with that code; a forced failover works and records the group's replication lag as
  the data-loss window; a second failover while one runs answers 409 ``FailoverGroupBusy``;
- point-in-time restore: source on the same server (``RestoreCrossServerDisabled``), not a
  geo-secondary (``RestoreNotSupportedForGeoDrSecondary``), point in ``[earliestRestoreDate, now]``
  (``InvalidPointInTime``); restores of dropped databases and LTR backups check their sources.

A database DELETE (``Databases_Delete``, an LRO with ``final-state-via: location``) answers 202
with ``{"operation":"DropLogicalDatabase","startTime"}`` and both headers as the creates do, or 204
when the database does not exist; the dropped database becomes a restorable dropped database. A
failover group's database answers 409 ``InvalidDatabaseStateForOperation`` (it has to leave the
group first), one still being created 409 ``OperationInterrupted``; a DELETE while the database's
drop runs answers 202 on that same operation.

Choices where Azure gives no single answer: ARM is global, so reads keep answering while a region
is down; a mutation on a server in a down region (a create, a delete, a failover onto it) answers
503 ``ServiceUnavailable``. Create modes other than Default, PointInTimeRestore, Restore and
RestoreLongTermRetentionBackup answer 400 ``InvalidCreateMode``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from domain.plan import DrPlan, FailoverGroupSpec
from domain.resource_ids import (
    ResourceId,
    sql_database,
    sql_failover_group,
    sql_ltr_backup,
    sql_restorable_dropped_database,
    sql_server,
)
from emulator.core import (
    ArmError,
    AsyncOperation,
    JsonDict,
    RequestContext,
    Router,
    arm_routes,
    iso,
    json_response,
    utc_now,
)
from emulator.providers.cosmos import display_region, normalize_region
from emulator.world import World

API_VERSION = "2025-01-01"
SQL = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Sql"
SERVER_PATH = SQL + "/servers/{serverName}"
GROUP_PATH = SERVER_PATH + "/failoverGroups/{failoverGroupName}"
DATABASE_PATH = SERVER_PATH + "/databases/{databaseName}"
DROPPED_PATH = SERVER_PATH + "/restorableDroppedDatabases"
LTR_PATH = (
    "/subscriptions/{subscriptionId}/providers/Microsoft.Sql/locations/{locationName}"
    "/longTermRetentionServers/{longTermRetentionServerName}"
    "/longTermRetentionDatabases/{longTermRetentionDatabaseName}/longTermRetentionBackups"
)
SUB_LOCATION = "/subscriptions/{subscriptionId}/providers/Microsoft.Sql/locations/{locationName}"
RG_LOCATION = SQL + "/locations/{locationName}"

PRIMARY = "Primary"
SECONDARY = "Secondary"
PLANNED = "planned"
FORCED = "forced"
TRY_PLANNED = "try_planned"

FAILOVER = "FailoverGroups_Failover"
FORCE_FAILOVER = "FailoverGroups_ForceFailoverAllowDataLoss"
TRY_PLANNED_FAILOVER = "FailoverGroups_TryPlannedBeforeForcedFailover"
CREATE_DATABASE = "Databases_CreateOrUpdate"
DELETE_DATABASE = "Databases_Delete"
DROP_OPERATION = "DropLogicalDatabase"

DEFAULT_LAG_SECONDS = 5.0
PITR_RETENTION = dt.timedelta(days=7)
SEEDED_AGE = dt.timedelta(days=30)
RESTORE_MODES = ("PointInTimeRestore", "Restore", "RestoreLongTermRetentionBackup")
SUPPORTED_MODES = ("Default", *RESTORE_MODES)
_TICKS_EPOCH = dt.datetime(1, 1, 1, tzinfo=dt.UTC)
LTR_TYPE = "Microsoft.Sql/locations/longTermRetentionServers/longTermRetentionDatabases/longTermRetentionBackups"
SKU: JsonDict = {"name": "GP_Gen5", "tier": "GeneralPurpose", "family": "Gen5", "capacity": 2}


def dotnet_ticks(moment: dt.datetime) -> int:
    """.NET ticks (100 ns since 0001-01-01), the suffix of restorable dropped database names."""
    delta = moment.astimezone(dt.UTC) - _TICKS_EPOCH
    return delta.days * 864_000_000_000 + delta.seconds * 10_000_000 + delta.microseconds * 10


def parse_time(value: Any, code: str, what: str) -> dt.datetime:
    """An ISO 8601 timestamp from a request body (naive means UTC), or 400 ``code``."""
    if not isinstance(value, str) or not value:
        raise ArmError(400, code, f"The {what} is missing or not a string.")
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ArmError(400, code, f"The {what} '{value}' is not a valid ISO 8601 timestamp.") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _key(*parts: str) -> tuple[str, ...]:
    return tuple(p.lower() for p in parts)


@dataclass
class SqlServer:
    subscription: str
    resource_group: str
    name: str
    region: str

    @property
    def id(self) -> str:
        return sql_server(self.subscription, self.resource_group, self.name)

    @property
    def key(self) -> tuple[str, ...]:
        return _key(self.subscription, self.resource_group, self.name)


@dataclass
class FailoverGroup:
    plan: str
    subscription: str
    resource_group: str
    name: str
    servers: dict[str, SqlServer]  # region -> server
    primary_region: str
    databases: tuple[str, ...]
    lag_seconds: float = DEFAULT_LAG_SECONDS
    busy: AsyncOperation | None = None
    failovers: list[JsonDict] = field(default_factory=list)

    def server_in(self, region: str) -> SqlServer:
        return self.servers[region]

    def other_region(self, region: str) -> str:
        return next(r for r in self.servers if r != region)

    @property
    def secondary_region(self) -> str:
        return self.other_region(self.primary_region)

    def holds(self, server: SqlServer) -> bool:
        return any(s.key == server.key for s in self.servers.values())


@dataclass
class Database:
    server: SqlServer
    name: str
    database_id: str
    created: dt.datetime
    status: str = "Online"
    tags: dict[str, str] = field(default_factory=dict)
    sku: JsonDict = field(default_factory=lambda: dict(SKU))
    failover_group: FailoverGroup | None = None
    create_request: JsonDict | None = None
    dropping: AsyncOperation | None = None

    @property
    def id(self) -> str:
        return sql_database(self.server.subscription, self.server.resource_group, self.server.name, self.name)

    @property
    def is_geo_secondary(self) -> bool:
        group = self.failover_group
        return group is not None and group.primary_region != self.server.region

    def earliest_restore(self) -> dt.datetime:
        return max(self.created, utc_now() - PITR_RETENTION)

    @property
    def is_dropping(self) -> bool:
        return self.dropping is not None and self.dropping.poll() == "InProgress"

    @property
    def is_available(self) -> bool:
        """Online and not being dropped: something an application may be pointed at."""
        return self.status == "Online" and not self.is_dropping


@dataclass
class DroppedDatabase:
    server: SqlServer
    database_name: str
    database_id: str
    created: dt.datetime
    deleted: dt.datetime
    sku: JsonDict = field(default_factory=lambda: dict(SKU))

    @property
    def dropped_name(self) -> str:
        return f"{self.database_name},{dotnet_ticks(self.deleted)}"

    @property
    def id(self) -> str:
        s = self.server
        return sql_restorable_dropped_database(s.subscription, s.resource_group, s.name, self.dropped_name)

    def earliest_restore(self) -> dt.datetime:
        return max(self.created, self.deleted - PITR_RETENTION)


@dataclass
class LtrBackup:
    server: SqlServer
    server_created: dt.datetime
    database_name: str
    database_id: str
    backup_time: dt.datetime
    expires: dt.datetime

    @property
    def name(self) -> str:
        return f"{self.database_id};{dotnet_ticks(self.backup_time)};Hot"

    @property
    def id(self) -> str:
        s = self.server
        return sql_ltr_backup(s.subscription, s.region, s.name, self.database_name, self.name)


class SqlProvider:
    """Every plan's logical servers, failover groups, databases and backups."""

    name = "sql"

    def __init__(self, world: World) -> None:
        self.world = world
        self.servers: dict[tuple[str, ...], SqlServer] = {}
        self.groups: list[FailoverGroup] = []
        self.databases: dict[tuple[str, ...], Database] = {}
        self.dropped: dict[tuple[str, ...], DroppedDatabase] = {}
        self.ltr: dict[str, LtrBackup] = {}  # lower-case id -> backup
        self.create_requests: list[JsonDict] = []
        self.subscriptions = {plan.subscription_id.lower() for plan in world.plans}
        self.started = utc_now()
        for plan in world.plans:
            self._build(plan)

    # ---------------------------------------------------------------- estate
    def _server(self, plan: DrPlan, spec: FailoverGroupSpec, region: str) -> SqlServer:
        server = SqlServer(plan.subscription_id, spec.resource_group, spec.servers[region], region)
        return self.servers.setdefault(server.key, server)

    def _build(self, plan: DrPlan) -> None:
        created = self.started - SEEDED_AGE
        for spec in plan.sql.failover_groups:
            servers = {region: self._server(plan, spec, region) for region in plan.regions}
            group = FailoverGroup(
                plan=plan.name,
                subscription=plan.subscription_id,
                resource_group=spec.resource_group,
                name=spec.name,
                servers=servers,
                primary_region=plan.primary_region,
                databases=spec.databases,
            )
            self.groups.append(group)
            for name in spec.databases:
                database_id = str(uuid.uuid4())
                for server in servers.values():
                    db = Database(server, name, database_id, created, failover_group=group)
                    self.databases[(*server.key, name.lower())] = db
                primary = servers[plan.primary_region]
                for weeks in (1, 2):
                    backup = LtrBackup(
                        server=primary,
                        server_created=created,
                        database_name=name,
                        database_id=database_id,
                        backup_time=self.started - dt.timedelta(weeks=weeks),
                        expires=self.started + dt.timedelta(weeks=52 - weeks),
                    )
                    self.ltr[backup.id.lower()] = backup
        for server in self.servers.values():
            names = sorted(db.name for db in self.databases.values() if db.server.key == server.key)
            if names and not any(d.server.key == server.key for d in self.dropped.values()):
                dropped = DroppedDatabase(
                    server=server,
                    database_name=f"{names[0]}-archive",
                    database_id=str(uuid.uuid4()),
                    created=self.started - dt.timedelta(days=40),
                    deleted=self.started - dt.timedelta(days=3),
                )
                self.dropped[(*server.key, dropped.dropped_name.lower())] = dropped

    def _down(self, region: str) -> bool:
        state = self.world.regions.get(normalize_region(region))
        return state is not None and state.is_down

    def _unavailable(self, server: SqlServer) -> ArmError:
        return ArmError(
            503,
            "ServiceUnavailable",
            f"The server '{server.name}' in region '{server.region}' is unavailable: the region is down. Retry later.",
        )

    # --------------------------------------------------------------- lookups
    def _check_subscription(self, ctx: RequestContext) -> None:
        sub = ctx.params["subscriptionId"]
        if sub.lower() not in self.subscriptions:
            raise ArmError(404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found.", gateway=True)

    def _find_server(self, ctx: RequestContext) -> SqlServer:
        self._check_subscription(ctx)
        p = ctx.params
        server = self.servers.get(_key(p["subscriptionId"], p["resourceGroupName"], p["serverName"]))
        if server is None:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.Sql/servers/{p['serverName']}' under resource group "
                f"'{p['resourceGroupName']}' was not found.",
            )
        return server

    def _find_group(self, server: SqlServer, name: str) -> FailoverGroup:
        for group in self.groups:
            if group.name.lower() == name.lower() and group.holds(server):
                return group
        raise ArmError(
            404,
            "ResourceNotFound",
            f"The requested resource of type 'Microsoft.Sql/servers/failoverGroups' with name '{name}' was not found.",
        )

    def _find_database(self, server: SqlServer, name: str) -> Database | None:
        return self.databases.get((*server.key, name.lower()))

    def _database_by_id(self, value: Any, code: str) -> Database:
        if not isinstance(value, str):
            raise ArmError(400, code, "The source database id is missing.")
        try:
            rid = ResourceId.parse(value)
        except ValueError as exc:
            raise ArmError(400, code, f"'{value}' is not a database resource id.") from exc
        kinds = [t.lower() for t, _ in rid.types_and_names]
        if rid.provider.lower() != "microsoft.sql" or kinds != ["servers", "databases"]:
            raise ArmError(400, code, f"'{value}' is not a Microsoft.Sql/servers/databases resource id.")
        server_key = _key(rid.subscription_id, rid.resource_group, rid.types_and_names[0][1])
        db = self.databases.get((*server_key, rid.name.lower()))
        if db is None:
            raise ArmError(400, "SourceDatabaseNotFound", f"The source database '{value}' does not exist.")
        return db

    # ---------------------------------------------------------------- bodies
    def group_body(self, group: FailoverGroup, server: SqlServer) -> JsonDict:
        """The group as seen from ``server``: its own role, and the partner's."""
        region = server.region
        partner = group.server_in(group.other_region(region))
        secondary = group.server_in(group.secondary_region)
        role = PRIMARY if group.primary_region == region else SECONDARY
        state = "SUSPENDED" if self._down(region) or self._down(partner.region) else "CATCH_UP"
        return {
            "id": sql_failover_group(group.subscription, group.resource_group, server.name, group.name),
            "name": group.name,
            "type": "Microsoft.Sql/servers/failoverGroups",
            "location": display_region(region),
            "tags": {},
            "properties": {
                "readWriteEndpoint": {"failoverPolicy": "Manual"},
                "readOnlyEndpoint": {"failoverPolicy": "Disabled", "targetServer": secondary.id},
                "replicationRole": role,
                "replicationState": state,
                "partnerServers": [
                    {
                        "id": partner.id,
                        "location": display_region(partner.region),
                        "replicationRole": SECONDARY if role == PRIMARY else PRIMARY,
                    }
                ],
                "databases": [
                    sql_database(group.subscription, group.resource_group, server.name, name)
                    for name in group.databases
                ],
                "secondaryType": "Geo",
            },
        }

    def _partner_region(self, server: SqlServer) -> str:
        for group in self.groups:
            if group.holds(server):
                return group.other_region(server.region)
        return server.region

    def database_body(self, db: Database) -> JsonDict:
        s = db.server
        props: JsonDict = {
            "collation": "SQL_Latin1_General_CP1_CI_AS",
            "maxSizeBytes": 34359738368,
            "status": db.status,
            "databaseId": db.database_id,
            "creationDate": iso(db.created),
            "currentServiceObjectiveName": "GP_Gen5_2",
            "requestedServiceObjectiveName": "GP_Gen5_2",
            "defaultSecondaryLocation": display_region(self._partner_region(s)),
            "catalogCollation": "SQL_Latin1_General_CP1_CI_AS",
            "licenseType": "LicenseIncluded",
            "maxLogSizeBytes": 68719476736,
            "isInfraEncryptionEnabled": False,
            "zoneRedundant": False,
            "readScale": "Disabled",
            "maintenanceConfigurationId": (
                f"/subscriptions/{s.subscription}/providers/Microsoft.Maintenance"
                "/publicMaintenanceConfigurations/SQL_Default"
            ),
            "currentSku": dict(db.sku),
            "currentBackupStorageRedundancy": "Geo",
            "requestedBackupStorageRedundancy": "Geo",
            "isLedgerOn": False,
        }
        if db.is_geo_secondary:
            props["secondaryType"] = "Geo"
        elif db.status == "Online":
            props["earliestRestoreDate"] = iso(db.earliest_restore())
        if db.failover_group is not None:
            props["failoverGroupId"] = sql_failover_group(
                s.subscription, s.resource_group, s.name, db.failover_group.name
            )
        return {
            "sku": dict(db.sku),
            "kind": "v12.0,user,vcore",
            "properties": props,
            "location": s.region,
            "tags": dict(db.tags),
            "id": db.id,
            "name": db.name,
            "type": "Microsoft.Sql/servers/databases",
        }

    def dropped_body(self, dropped: DroppedDatabase) -> JsonDict:
        return {
            "sku": dict(dropped.sku),
            "properties": {
                "databaseName": dropped.database_name,
                "maxSizeBytes": 34359738368,
                "creationDate": iso(dropped.created),
                "deletionDate": iso(dropped.deleted),
                "earliestRestoreDate": iso(dropped.earliest_restore()),
                "backupStorageRedundancy": "Geo",
            },
            "location": dropped.server.region,
            "id": dropped.id,
            "name": dropped.dropped_name,
            "type": "Microsoft.Sql/servers/restorableDroppedDatabases",
        }

    def ltr_body(self, backup: LtrBackup) -> JsonDict:
        return {
            "id": backup.id,
            "name": backup.name,
            "type": LTR_TYPE,
            "properties": {
                "serverName": backup.server.name,
                "serverCreateTime": iso(backup.server_created),
                "databaseName": backup.database_name,
                "databaseDeletionTime": None,
                "backupTime": iso(backup.backup_time),
                "backupExpirationTime": iso(backup.expires),
                "backupStorageRedundancy": "Geo",
                "requestedBackupStorageRedundancy": "Geo",
                "backupStorageAccessTier": "Hot",
                "isBackupImmutable": False,
                "timeBasedImmutability": "Disabled",
                "timeBasedImmutabilityMode": "Unlocked",
                "legalHoldImmutability": "Disabled",
            },
        }

    # ------------------------------------------------------------ LRO plumbing
    def _accepted(
        self, ctx: RequestContext, op: AsyncOperation, operation: str, location: str, *, kind: str, scoped: bool
    ) -> web.Response:
        """202 with the operation's status (Azure-AsyncOperation) and result (Location) URLs."""
        sub = ctx.params["subscriptionId"]
        base = f"/subscriptions/{sub}"
        if scoped:
            base += f"/resourceGroups/{ctx.params['resourceGroupName']}"
        base += f"/providers/Microsoft.Sql/locations/{location}"
        query = f"?api-version={API_VERSION}"
        headers = {
            "Azure-AsyncOperation": ctx.absolute(f"{base}/{kind}AzureAsyncOperation/{op.id}{query}"),
            "Location": ctx.absolute(f"{base}/{kind}OperationResults/{op.id}{query}"),
        }
        return json_response({"operation": operation, "startTime": iso(op.started)}, 202, headers)

    async def operation_status(self, ctx: RequestContext) -> web.StreamResponse:
        op = self.world.operations.get(ctx.params["operationId"])
        return json_response(self.world.operations.status_body(op))

    async def operation_result(self, ctx: RequestContext) -> web.StreamResponse:
        op = self.world.operations.get(ctx.params["operationId"])
        if op.status == "InProgress":
            return json_response(None, 202, {"Location": str(ctx.request.url)})
        if op.error is not None:
            return op.error.response()
        result = op.result() if op.result is not None else None
        return json_response(result, 200) if result is not None else json_response(None, 204)

    # --------------------------------------------------------- failover groups
    async def get_group(self, ctx: RequestContext) -> web.StreamResponse:
        server = self._find_server(ctx)
        return json_response(self.group_body(self._find_group(server, ctx.params["failoverGroupName"]), server))

    async def list_groups(self, ctx: RequestContext) -> web.StreamResponse:
        server = self._find_server(ctx)
        return json_response({"value": [self.group_body(g, server) for g in self.groups if g.holds(server)]})

    async def failover(self, ctx: RequestContext) -> web.StreamResponse:
        mode = {FAILOVER: PLANNED, FORCE_FAILOVER: FORCED, TRY_PLANNED_FAILOVER: TRY_PLANNED}[ctx.operation]
        server = self._find_server(ctx)
        group = self._find_group(server, ctx.params["failoverGroupName"])
        if group.primary_region == server.region:
            raise ArmError(
                400,
                "FailoverGroupFailoverRequestOnPrimary",
                f"The failover request should be initiated on the secondary server of failover group "
                f"'{group.name}'; '{server.name}' is its primary.",
            )
        if group.busy is not None and group.busy.poll() == "InProgress":
            raise ArmError(409, "FailoverGroupBusy", f"Failover Group '{group.name}' is busy with another operation.")
        if self._down(server.region):
            raise self._unavailable(server)
        partner = group.server_in(group.primary_region)
        if mode == PLANNED and self._down(partner.region):
            raise self._planned_timed_out(group, partner)
        requested = utc_now()

        def apply() -> None:
            group.busy = None
            effective = mode
            if mode == TRY_PLANNED:
                effective = FORCED if self._down(partner.region) else PLANNED
            if effective == PLANNED and self._down(partner.region):
                raise self._planned_timed_out(group, partner)
            group.failovers.append(
                {
                    "mode": effective,
                    "requested": mode,
                    "from_region": group.primary_region,
                    "to_region": server.region,
                    "requested_at": iso(requested),
                    "completed_at": iso(utc_now()),
                    "data_loss_seconds": group.lag_seconds if effective == FORCED else 0.0,
                    "partner_down": self._down(partner.region),
                }
            )
            group.primary_region = server.region

        op = self.world.operations.start(
            "FailoverFailoverGroup",
            self.world.latencies.get(ctx.operation),
            apply=apply,
            result=lambda: self.group_body(group, server),
        )
        group.busy = op
        return self._accepted(ctx, op, "FailoverFailoverGroup", server.region, kind="failoverGroup", scoped=False)

    @staticmethod
    def _planned_timed_out(group: FailoverGroup, partner: SqlServer) -> ArmError:
        return ArmError(
            400,
            "PlannedFailoverTimedOut",
            f"User invoked planned failover of failover group '{group.name}', and it timed out while trying to "
            f"contact the partner management service: the primary server '{partner.name}' in region "
            f"'{partner.region}' is unreachable. A planned failover needs the primary; use "
            "forceFailoverAllowDataLoss to fail over with possible data loss.",
        )

    # ------------------------------------------------------------- databases
    async def get_database(self, ctx: RequestContext) -> web.StreamResponse:
        server = self._find_server(ctx)
        db = self._find_database(server, ctx.params["databaseName"])
        if db is None:
            raise self._database_not_found(ctx.params["databaseName"])
        return json_response(self.database_body(db))

    @staticmethod
    def _database_not_found(name: str) -> ArmError:
        return ArmError(
            404,
            "ResourceNotFound",
            f"The requested resource of type 'Microsoft.Sql/servers/databases' with name '{name}' was not found.",
        )

    async def create_database(self, ctx: RequestContext) -> web.StreamResponse:
        server = self._find_server(ctx)
        name = ctx.params["databaseName"]
        body = ctx.body
        if not isinstance(body, dict):
            raise ArmError(400, "InvalidRequestContent", "The request body must be a database object.")
        props = body.get("properties") or {}
        if not isinstance(props, dict):
            raise ArmError(400, "InvalidRequestContent", "'properties' must be an object.")
        mode = props.get("createMode") or "Default"
        if mode not in SUPPORTED_MODES:
            raise ArmError(
                400,
                "InvalidCreateMode",
                f"createMode '{mode}' is not supported; use one of {', '.join(SUPPORTED_MODES)}.",
            )
        existing = self._find_database(server, name)
        if existing is not None and existing.status != "Online":
            raise ArmError(
                400,
                "DuplicateRestoreOperation",
                f"A restore request with the same target database name '{name}' on server '{server.name}' "
                "already exists.",
            )
        if existing is not None and existing.is_dropping:
            raise ArmError(
                409,
                "OperationInterrupted",
                f"Database '{name}' on server '{server.name}' is being dropped; retry when the drop has completed.",
            )
        if existing is not None and mode != "Default":
            raise ArmError(
                400, "DatabaseNameInUse", f"Database '{name}' already exists. Choose a different database name."
            )
        if self._down(server.region):
            raise self._unavailable(server)
        tags = body.get("tags") or {}
        if existing is not None:
            updated = existing
            updated.tags = {str(k): str(v) for k, v in tags.items()}
            if isinstance(body.get("sku"), dict):
                updated.sku = dict(body["sku"])
            op = self.world.operations.start(
                "UpdateLogicalDatabase",
                self.world.latencies.get(ctx.operation),
                result=lambda: self.database_body(updated),
            )
            return self._accepted(ctx, op, "UpdateLogicalDatabase", server.region, kind="database", scoped=True)

        record: JsonDict = {"createMode": mode}
        for key in (
            "sourceDatabaseId",
            "restorePointInTime",
            "restorableDroppedDatabaseId",
            "sourceResourceId",
            "sourceDatabaseDeletionDate",
            "longTermRetentionBackupResourceId",
        ):
            if props.get(key) is not None:
                record[key] = props[key]
        sku = self._validate_source(server, mode, props)
        if isinstance(body.get("sku"), dict):
            sku = dict(body["sku"])
        db = Database(
            server=server,
            name=name,
            database_id=str(uuid.uuid4()),
            created=utc_now(),
            status="Restoring" if mode in RESTORE_MODES else "Creating",
            tags={str(k): str(v) for k, v in tags.items()},
            sku=sku,
            create_request=record | {"requestedAt": iso(utc_now())},
        )
        self.databases[(*server.key, name.lower())] = db
        self.create_requests.append({"database": db.id, **(db.create_request or {})})

        def apply() -> None:
            db.status = "Online"
            db.created = utc_now()

        op = self.world.operations.start(
            "CreateLogicalDatabase",
            self.world.latencies.get(ctx.operation),
            apply=apply,
            result=lambda: self.database_body(db),
        )
        return self._accepted(ctx, op, "CreateLogicalDatabase", server.region, kind="database", scoped=True)

    def _validate_source(self, server: SqlServer, mode: str, props: JsonDict) -> JsonDict:
        """Checks the restore source of a create request; returns the sku the new database gets."""
        if mode == "PointInTimeRestore":
            if not props.get("sourceDatabaseId"):
                raise ArmError(400, "MissingSourceDatabaseId", "Missing source database identifier.")
            if not props.get("restorePointInTime"):
                raise ArmError(400, "MissingRestorePointInTime", "Missing restore point in time.")
            source = self._database_by_id(props["sourceDatabaseId"], "InvalidSourceDatabaseId")
            if source.server.key != server.key:
                raise ArmError(
                    400,
                    "RestoreCrossServerDisabled",
                    "For point-in-time restores, the target logical server must be the same as the source logical "
                    f"server '{source.server.name}'.",
                )
            if source.is_geo_secondary:
                raise ArmError(
                    400,
                    "RestoreNotSupportedForGeoDrSecondary",
                    f"Point-in-time restore is not supported on '{source.name}' on server '{server.name}': it is a "
                    "geo-secondary. Restore from the failover group's primary server.",
                )
            if source.status != "Online":
                raise ArmError(
                    400, "NoRestorePointAvailable", f"The source database '{source.name}' has no backups yet."
                )
            point = parse_time(props["restorePointInTime"], "InvalidPointInTime", "restore point in time")
            self._check_window(point, source.earliest_restore(), utc_now(), source.name)
            return dict(source.sku)
        if mode == "Restore":
            dropped = self._find_dropped(server, props)
            if props.get("restorePointInTime"):
                point = parse_time(props["restorePointInTime"], "InvalidPointInTime", "restore point in time")
                self._check_window(point, dropped.earliest_restore(), dropped.deleted, dropped.database_name)
            return dict(dropped.sku)
        if mode == "RestoreLongTermRetentionBackup":
            backup_id = props.get("longTermRetentionBackupResourceId")
            backup = self.ltr.get(str(backup_id).lower()) if backup_id else None
            if backup is None:
                raise ArmError(
                    400, "LtrBackupNotFound", f"The specified long term retention backup '{backup_id}' does not exist."
                )
            return dict(SKU)
        return dict(SKU)

    @staticmethod
    def _check_window(point: dt.datetime, earliest: dt.datetime, latest: dt.datetime, name: str) -> None:
        if not earliest <= point <= latest:
            raise ArmError(
                400,
                "InvalidPointInTime",
                f"The specified point in time {iso(point)} is not valid for the database '{name}': it must be between "
                f"{iso(earliest)} and {iso(latest)}.",
            )

    def _find_dropped(self, server: SqlServer, props: JsonDict) -> DroppedDatabase:
        dropped_id = props.get("restorableDroppedDatabaseId") or props.get("sourceResourceId")
        if dropped_id:
            for dropped in self.dropped.values():
                if dropped.id.lower() == str(dropped_id).lower():
                    return dropped
            raise ArmError(
                400,
                "InvalidRestorableDroppedDatabaseId",
                f"Invalid restorable dropped database identifier '{dropped_id}'.",
            )
        source_id = props.get("sourceDatabaseId")
        if not source_id:
            raise ArmError(400, "MissingRestorableDroppedDatabaseId", "Missing restorableDroppedDatabaseId.")
        if not props.get("sourceDatabaseDeletionDate"):
            raise ArmError(400, "MissingSourceDatabaseDeletionDate", "Missing source database deletion date.")
        deleted = parse_time(
            props["sourceDatabaseDeletionDate"], "InvalidRestorableDroppedDatabaseDeletionDate", "deletion date"
        )
        for dropped in self.dropped.values():
            original = sql_database(
                dropped.server.subscription, dropped.server.resource_group, dropped.server.name, dropped.database_name
            )
            if original.lower() == str(source_id).lower() and abs((dropped.deleted - deleted).total_seconds()) < 1:
                return dropped
        raise ArmError(
            400,
            "InvalidDroppedDatabase",
            f"Source database '{source_id}' dropped on {iso(deleted)} does not exist on server '{server.name}' within "
            "the supported recovery period.",
        )

    async def delete_database(self, ctx: RequestContext) -> web.StreamResponse:
        server = self._find_server(ctx)
        db = self._find_database(server, ctx.params["databaseName"])
        if db is None:
            return json_response(None, 204)
        if db.dropping is not None and db.is_dropping:
            return self._accepted(ctx, db.dropping, DROP_OPERATION, server.region, kind="database", scoped=True)
        if db.failover_group is not None:
            raise ArmError(
                409,
                "InvalidDatabaseStateForOperation",
                f"Database '{db.name}' is in failover group '{db.failover_group.name}'; "
                "remove it from the group first.",
            )
        if db.status != "Online":
            raise ArmError(
                409,
                "OperationInterrupted",
                f"Database '{db.name}' is still being created (status {db.status}); retry when it is Online.",
            )
        if self._down(server.region):
            raise self._unavailable(server)
        key = (*server.key, db.name.lower())

        def apply() -> None:
            if self.databases.get(key) is db:
                del self.databases[key]
            dropped = DroppedDatabase(server, db.name, db.database_id, db.created, utc_now(), dict(db.sku))
            self.dropped[(*server.key, dropped.dropped_name.lower())] = dropped

        op = self.world.operations.start(DROP_OPERATION, self.world.latencies.get(ctx.operation), apply=apply)
        if op.status == "InProgress":
            db.dropping = op
        return self._accepted(ctx, op, DROP_OPERATION, server.region, kind="database", scoped=True)

    # ---------------------------------------------------- backups and dropped
    async def get_dropped(self, ctx: RequestContext) -> web.StreamResponse:
        server = self._find_server(ctx)
        wanted = ctx.params["restorableDroppedDatabaseId"].lower()
        dropped = self.dropped.get((*server.key, wanted))
        if dropped is None:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The requested resource of type 'Microsoft.Sql/servers/restorableDroppedDatabases' with name "
                f"'{ctx.params['restorableDroppedDatabaseId']}' was not found.",
            )
        return json_response(self.dropped_body(dropped))

    async def list_dropped(self, ctx: RequestContext) -> web.StreamResponse:
        server = self._find_server(ctx)
        found = [d for d in self.dropped.values() if d.server.key == server.key]
        return json_response({"value": [self.dropped_body(d) for d in found]})

    def _ltr_matches(self, ctx: RequestContext) -> list[LtrBackup]:
        self._check_subscription(ctx)
        p = ctx.params
        return [
            b
            for b in self.ltr.values()
            if b.server.subscription.lower() == p["subscriptionId"].lower()
            and b.server.region == normalize_region(p["locationName"])
            and b.server.name.lower() == p["longTermRetentionServerName"].lower()
            and b.database_name.lower() == p["longTermRetentionDatabaseName"].lower()
        ]

    async def get_ltr(self, ctx: RequestContext) -> web.StreamResponse:
        wanted = ctx.params["backupName"].lower()
        for backup in self._ltr_matches(ctx):
            if backup.name.lower() == wanted:
                return json_response(self.ltr_body(backup))
        raise ArmError(
            404, "ResourceNotFound", f"The long term retention backup '{ctx.params['backupName']}' was not found."
        )

    async def list_ltr(self, ctx: RequestContext) -> web.StreamResponse:
        backups = sorted(self._ltr_matches(ctx), key=lambda b: b.backup_time)
        if ctx.request.query.get("onlyLatestPerDatabase", "").lower() == "true":
            backups = backups[-1:]
        return json_response({"value": [self.ltr_body(b) for b in backups]})

    # ------------------------------------------------------------- control
    async def set_lag(self, ctx: RequestContext) -> web.StreamResponse:
        body = ctx.body or {}
        name = body.get("failover_group") if isinstance(body, dict) else None
        seconds = body.get("seconds") if isinstance(body, dict) else None
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
            raise ArmError(400, "InvalidLag", 'expected {"failover_group": name, "seconds": x} with x >= 0')
        groups = [g for g in self.groups if isinstance(name, str) and g.name.lower() == name.lower()]
        if not groups:
            known = ", ".join(sorted({g.name for g in self.groups}))
            raise ArmError(404, "NotFound", f"no failover group {name!r}; known: {known}")
        for group in groups:
            group.lag_seconds = float(seconds)
        return json_response({"failover_group": groups[0].name, "seconds": float(seconds)})

    def register(self, router: Router, control: Router) -> None:
        add = arm_routes(router, API_VERSION)

        add("GET", SERVER_PATH + "/failoverGroups", "FailoverGroups_ListByServer", self.list_groups)
        add("GET", GROUP_PATH, "FailoverGroups_Get", self.get_group)
        add("POST", GROUP_PATH + "/failover", FAILOVER, self.failover, mutating=True)
        add("POST", GROUP_PATH + "/forceFailoverAllowDataLoss", FORCE_FAILOVER, self.failover, mutating=True)
        add("POST", GROUP_PATH + "/tryPlannedBeforeForcedFailover", TRY_PLANNED_FAILOVER, self.failover, mutating=True)
        add("GET", DATABASE_PATH, "Databases_Get", self.get_database)
        add("PUT", DATABASE_PATH, CREATE_DATABASE, self.create_database, mutating=True)
        add("DELETE", DATABASE_PATH, DELETE_DATABASE, self.delete_database, mutating=True)
        add("GET", DROPPED_PATH, "RestorableDroppedDatabases_ListByServer", self.list_dropped)
        add("GET", DROPPED_PATH + "/{restorableDroppedDatabaseId}", "RestorableDroppedDatabases_Get", self.get_dropped)
        add("GET", LTR_PATH, "LongTermRetentionBackups_ListByDatabase", self.list_ltr)
        add("GET", LTR_PATH + "/{backupName}", "LongTermRetentionBackups_Get", self.get_ltr)
        for base in (SUB_LOCATION, RG_LOCATION):
            for kind in ("failoverGroup", "database"):
                add(
                    "GET",
                    f"{base}/{kind}AzureAsyncOperation/{{operationId}}",
                    "Sql_AsyncOperation",
                    self.operation_status,
                )
                add(
                    "GET",
                    f"{base}/{kind}OperationResults/{{operationId}}",
                    "Sql_OperationResult",
                    self.operation_result,
                )
        control.add("PUT", "/sql/lag", "control.sql.lag", self.set_lag)

    def snapshot(self) -> JsonDict:
        return {
            "servers": {
                s.name: {"id": s.id, "region": s.region, "resourceGroup": s.resource_group}
                for s in self.servers.values()
            },
            "failover_groups": {
                g.name: {
                    "plan": g.plan,
                    "primary_region": g.primary_region,
                    "primary_server": g.server_in(g.primary_region).name,
                    "servers": {region: s.name for region, s in g.servers.items()},
                    "databases": list(g.databases),
                    "lag_seconds": g.lag_seconds,
                    "busy": g.busy is not None and g.busy.poll() == "InProgress",
                    "failovers": list(g.failovers),
                }
                for g in self.groups
            },
            "databases": {
                db.id: {
                    "server": db.server.name,
                    "name": db.name,
                    "region": db.server.region,
                    "status": db.status,
                    "tags": dict(db.tags),
                    "failover_group": db.failover_group.name if db.failover_group else None,
                    "geo_secondary": db.is_geo_secondary,
                    "dropping": db.is_dropping,
                    "create_request": db.create_request,
                }
                for db in self.databases.values()
            },
            "create_requests": list(self.create_requests),
            "restorable_dropped_databases": sorted(d.id for d in self.dropped.values()),
            "ltr_backups": sorted(b.id for b in self.ltr.values()),
        }
