"""Azure SQL activities: read a failover group, fail it over (planned or forced), restore a
database to a point in time, and delete a restored database that was not promoted.

Each mutating activity reads first and acts only when the desired state is missing, then waits
for Azure's long-running operation with ``await_lro`` (heartbeating its continuation token, so a
retried attempt resumes the same operation instead of starting a second one).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.sql.models import Database, DatabaseProperties, FailoverGroup
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.azure import (
    AzureClients,
    Estates,
    await_lro,
    azure_call,
    invalid_input,
    iso_utc,
    planned_call,
    poll_until,
    resumed_lro,
    sdk_api_version,
    utc_time,
    wire_text,
)
from activities.platform import tenants_reading_from
from domain.messages.sql import (
    FAILOVER_MODES,
    MODE_FORCED,
    MODE_NONE,
    MODE_PLANNED,
    MODE_TRY_PLANNED,
    ROLE_PRIMARY,
    ROLE_SECONDARY,
    DeleteDatabaseInput,
    DeleteDatabaseResult,
    FailoverGroupView,
    FailoverSqlGroupInput,
    FailoverSqlGroupResult,
    GetFailoverGroupInput,
    RestoreDatabasePitrInput,
    RestoreDatabasePitrResult,
    ServerRole,
)
from domain.plan import FailoverGroupSpec
from domain.resource_ids import ResourceId, resource_action, sql_database, sql_failover_group

# Tags on a restored database naming its source and point in time: Azure does not return
# createMode/sourceDatabaseId/restorePointInTime on GET, so they are how a rerun recognises its work.
TAG_SOURCE = "dr-restore-source"
TAG_POINT = "dr-restore-point"
ONLINE = "Online"
# Database states a delete waits out (a restore or copy still running) instead of failing on.
SETTLING = ("Creating", "Restoring", "Copying", "Scaling")
BUSY = "FailoverGroupBusy"
RESTORE_WAIT_SECONDS = 4 * 3600.0
BUSY_WAIT_SECONDS = 900.0
# The failover group action each mode POSTs (on the server that is to become primary).
FAILOVER_ACTIONS = {
    MODE_PLANNED: "failover",
    MODE_FORCED: "forceFailoverAllowDataLoss",
    MODE_TRY_PLANNED: "tryPlannedBeforeForcedFailover",
}


def _now() -> str:
    return iso_utc(dt.datetime.now(dt.UTC))


def _group_spec(clients: AzureClients, name: str) -> FailoverGroupSpec:
    for spec in clients.plan.sql.failover_groups:
        if spec.name == name:
            return spec
    known = ", ".join(g.name for g in clients.plan.sql.failover_groups)
    raise invalid_input(f"failover group {name!r} is not in plan {clients.plan.name!r} (groups: {known})")


def _server_group(clients: AzureClients, server: str) -> str:
    """The resource group of one of the plan's SQL servers (named in its failover groups)."""
    for spec in clients.plan.sql.failover_groups:
        if any(name.lower() == server.lower() for name in spec.servers.values()):
            return spec.resource_group
    known = sorted({name for spec in clients.plan.sql.failover_groups for name in spec.servers.values()})
    raise invalid_input(f"SQL server {server!r} is not in plan {clients.plan.name!r} (servers: {', '.join(known)})")


def _describe(spec: FailoverGroupSpec, server: str) -> str:
    return f"SQL failover group '{spec.name}' on server '{server}' (resource group '{spec.resource_group}')"


def _server_name(resource_id: str | None) -> str | None:
    if not resource_id:
        return None
    try:
        return ResourceId.parse(resource_id).types_and_names[0][1]
    except ValueError:
        return None


def _database_text(group: str, server: str, database: str) -> str:
    return f"SQL database '{database}' on server '{server}' (resource group '{group}')"


def _drop_operation(server: str, database: str) -> str:
    return f"sql.delete_database/{server}/{database}"


def _view(plan: str, spec: FailoverGroupSpec, group: FailoverGroup) -> FailoverGroupView:
    """Both servers' roles from one server's answer: its own role and its partner's."""
    region_of = {server.lower(): region for region, server in spec.servers.items()}
    props = group.properties
    if props is None:
        raise ApplicationError(
            f"failover group {spec.name!r}: Azure answered without properties", type="AzureBadAnswer"
        )
    roles: dict[str, str] = {}
    own = _server_name(group.id)
    if own and own.lower() in region_of:
        roles[region_of[own.lower()]] = wire_text(props.replication_role) or ROLE_SECONDARY
    for partner in props.partner_servers or []:
        name = _server_name(partner.id)
        if name and name.lower() in region_of:
            roles[region_of[name.lower()]] = wire_text(partner.replication_role) or ROLE_SECONDARY
    servers = tuple(
        ServerRole(region, server, roles.get(region, ROLE_SECONDARY)) for region, server in spec.servers.items()
    )
    primaries = [s for s in servers if s.role == ROLE_PRIMARY]
    if len(primaries) != 1:
        raise ApplicationError(
            f"failover group {spec.name!r}: expected one primary server, Azure reports {[vars(s) for s in servers]}",
            type="AzureBadAnswer",
        )
    endpoint = props.read_write_endpoint
    return FailoverGroupView(
        plan=plan,
        failover_group=spec.name,
        primary_region=primaries[0].region,
        primary_server=primaries[0].server,
        servers=servers,
        replication_state=props.replication_state or "",
        read_write_failover_policy=(wire_text(endpoint.failover_policy) or "") if endpoint is not None else "",
        grace_period_minutes=endpoint.failover_with_data_loss_grace_period_minutes if endpoint is not None else None,
        databases=tuple(ResourceId.parse(d).name for d in props.databases or []),
    )


def _promoted(view: FailoverGroupView, region: str) -> FailoverGroupView:
    """The group as it would be once the server in ``region`` is its primary."""
    servers = tuple(
        dataclasses.replace(s, role=ROLE_PRIMARY if s.region == region else ROLE_SECONDARY) for s in view.servers
    )
    primary = next(s for s in servers if s.role == ROLE_PRIMARY)
    return dataclasses.replace(view, primary_region=region, primary_server=primary.server, servers=servers)


class SqlActivities:
    """Activities on each plan's Azure SQL failover groups and databases, through the aio SDK."""

    def __init__(self, estates: Estates) -> None:
        self._estates = estates

    async def _read(self, clients: AzureClients, spec: FailoverGroupSpec) -> FailoverGroupView:
        """Ask each server in turn; one answer names both roles. A server whose region is out
        (retryable error) is skipped; a wrong name or missing permission stops at once."""
        last: ApplicationError | None = None
        for server in spec.servers.values():
            try:
                async with azure_call(_describe(spec, server), "read"):
                    group = await clients.sql.failover_groups.get(
                        resource_group_name=spec.resource_group, server_name=server, failover_group_name=spec.name
                    )
            except ApplicationError as err:
                if err.non_retryable:
                    raise
                last = err
                continue
            return _view(clients.plan.name, spec, group)
        assert last is not None
        raise last

    @activity.defn(name="sql.get_failover_group")
    async def get_failover_group(self, input: GetFailoverGroupInput) -> FailoverGroupView:
        """Each server's role, the replication state and the group's databases."""
        clients = self._estates[input.plan]
        return await self._read(clients, _group_spec(clients, input.failover_group))

    @activity.defn(name="sql.failover_group")
    async def failover_group(self, input: FailoverSqlGroupInput) -> FailoverSqlGroupResult:
        """Make the server in ``target_region`` the group's primary (planned, forced or try-planned);
        a dry run reads the group and reports the failover it would request."""
        clients = self._estates[input.plan]
        spec = _group_spec(clients, input.failover_group)
        if input.mode not in FAILOVER_MODES:
            raise invalid_input(f"failover mode {input.mode!r} is not one of {', '.join(FAILOVER_MODES)}")
        target = spec.servers.get(input.target_region)
        if target is None:
            raise invalid_input(
                f"region {input.target_region!r} has no server in failover group {spec.name!r} "
                f"(regions: {', '.join(spec.servers)})"
            )
        operation = f"sql.failover_group/{spec.name}/{target}/{input.mode}"
        call = planned_call(
            "POST",
            resource_action(
                sql_failover_group(clients.plan.subscription_id, spec.resource_group, target, spec.name),
                FAILOVER_ACTIONS[input.mode],
            ),
            sdk_api_version(clients.sql),
        )
        before = await self._read(clients, spec)
        if before.primary_region == input.target_region:
            if not input.dry_run and resumed_lro(operation) is not None:
                # An earlier attempt of this activity started the failover, which finished meanwhile.
                return self._result(input, before, changed=True, mode=input.mode, calls=(call,))
            activity.logger.info("failover group %s already primary in %s", spec.name, input.target_region)
            return self._result(input, before, changed=False, mode=MODE_NONE)
        if input.dry_run:
            activity.logger.info("dry run: would call %s", call)
            return self._result(
                input, _promoted(before, input.target_region), changed=True, mode=input.mode, calls=(call,)
            )

        operations = clients.sql.failover_groups
        begin: Callable[..., Awaitable[Any]] = {
            MODE_PLANNED: operations.begin_failover,
            MODE_FORCED: operations.begin_force_failover_allow_data_loss,
        }.get(input.mode, operations.begin_try_planned_before_forced_failover)
        activity.logger.info(
            "%s failover of %s from %s to %s", input.mode, spec.name, before.primary_region, input.target_region
        )
        group: FailoverGroup | None = None
        async with azure_call(_describe(spec, target), f"{input.mode} failover to"):
            try:
                group = await await_lro(
                    operation,
                    begin,
                    resource_group_name=spec.resource_group,
                    server_name=target,
                    failover_group_name=spec.name,
                )
            except HttpResponseError as err:
                # An earlier attempt's failover still running (its heartbeat never reached the
                # server): wait for the group instead of failing the activity.
                if err.status_code != 409 or err.error is None or err.error.code != BUSY:
                    raise
                activity.logger.info("failover group %s is busy; waiting for the running operation", spec.name)
        after: FailoverGroupView | None
        if group is None:
            after = await poll_until(
                f"failover group {spec.name!r} to finish its running operation with {target!r} primary",
                lambda: self._read(clients, spec),
                lambda view: view.primary_region == input.target_region,
                interval=clients.connection.polling_interval,
                timeout=BUSY_WAIT_SECONDS,
                progress=lambda view: {"primary_region": view.primary_region},
            )
        else:
            after = _view(clients.plan.name, spec, group) if group.properties is not None else None
        if after is None or after.primary_region != input.target_region:
            after = await self._read(clients, spec)
        if after.primary_region != input.target_region:
            raise ApplicationError(
                f"{input.mode} failover of {spec.name!r} completed but Azure still reports "
                f"{after.primary_server!r} ({after.primary_region}) as primary",
                type="FailoverNotApplied",
            )
        return self._result(input, after, changed=True, mode=input.mode, calls=(call,))

    @staticmethod
    def _result(
        input: FailoverSqlGroupInput,
        view: FailoverGroupView,
        *,
        changed: bool,
        mode: str,
        calls: tuple[str, ...] = (),
    ) -> FailoverSqlGroupResult:
        return FailoverSqlGroupResult(
            plan=input.plan,
            failover_group=view.failover_group,
            primary_region=view.primary_region,
            primary_server=view.primary_server,
            changed=changed,
            mode=mode,
            data_loss_possible=changed and mode != MODE_PLANNED,
            servers=view.servers,
            completed_at=_now(),
            planned_calls=calls,
        )

    @activity.defn(name="sql.restore_database_pitr")
    async def restore_database_pitr(self, input: RestoreDatabasePitrInput) -> RestoreDatabasePitrResult:
        """Create ``target_database`` as a point-in-time restore of ``source_database`` (once)."""
        clients = self._estates[input.plan]
        spec = _group_spec(clients, input.failover_group)
        point = iso_utc(utc_time(input.point_in_time))
        region = input.region or (await self._read(clients, spec)).primary_region
        server = spec.servers.get(region)
        if server is None:
            raise invalid_input(f"region {region!r} has no server in failover group {spec.name!r}")
        plan = clients.plan
        source_id = sql_database(plan.subscription_id, spec.resource_group, server, input.source_database)
        wanted_tags = {TAG_SOURCE: source_id, TAG_POINT: point}
        resource = (
            f"SQL database '{input.target_database}' on server '{server}' (resource group '{spec.resource_group}')"
        )

        async with azure_call(resource, "read"):
            try:
                existing: Database | None = await clients.sql.databases.get(
                    resource_group_name=spec.resource_group, server_name=server, database_name=input.target_database
                )
            except ResourceNotFoundError:
                existing = None
        if existing is not None:
            tags = existing.tags or {}
            if tags.get(TAG_SOURCE, "").lower() != source_id.lower() or tags.get(TAG_POINT) != point:
                raise ApplicationError(
                    f"{resource} already exists and is not a restore of {source_id} at {point} "
                    f"(its restore tags: {tags.get(TAG_SOURCE)!r} at {tags.get(TAG_POINT)!r}); choose another name",
                    type="RestoreTargetExists",
                    non_retryable=True,
                )
            activity.logger.info("%s was already restored by an earlier attempt", resource)
            if wire_text(existing.properties.status if existing.properties else None) != ONLINE:
                existing = await self._wait_online(clients, spec, server, input.target_database, resource)
            return self._restore_result(
                input, region, server, existing, source_id=source_id, point=point, created=False
            )

        parameters = Database(
            location=region,
            tags=wanted_tags,
            properties=DatabaseProperties(
                create_mode="PointInTimeRestore",
                source_database_id=source_id,
                restore_point_in_time=utc_time(point),
            ),
        )
        activity.logger.info("restoring %s from %s at %s", resource, source_id, point)
        async with azure_call(resource, "point-in-time restore of"):
            restored: Database = await await_lro(
                f"sql.restore_database_pitr/{server}/{input.target_database}",
                clients.sql.databases.begin_create_or_update,
                resource_group_name=spec.resource_group,
                server_name=server,
                database_name=input.target_database,
                parameters=parameters,
            )
        return self._restore_result(input, region, server, restored, source_id=source_id, point=point, created=True)

    async def _wait_online(
        self, clients: AzureClients, spec: FailoverGroupSpec, server: str, database: str, resource: str
    ) -> Database:
        async def probe() -> Database:
            async with azure_call(resource, "read"):
                db: Database = await clients.sql.databases.get(
                    resource_group_name=spec.resource_group, server_name=server, database_name=database
                )
            return db

        return await poll_until(
            f"{resource} to come online",
            probe,
            lambda db: wire_text(db.properties.status if db.properties else None) == ONLINE,
            interval=clients.connection.polling_interval,
            timeout=RESTORE_WAIT_SECONDS,
            progress=lambda db: {"status": wire_text(db.properties.status if db.properties else None)},
        )

    @activity.defn(name="sql.delete_database")
    async def delete_database(self, input: DeleteDatabaseInput) -> DeleteDatabaseResult:
        """Delete ``database`` (a restore's copy that was not promoted) from its server, or from every
        server of ``failover_group``; a database already gone is a no-op. Refuses, before deleting
        anything, the plan's replicated databases, failover group members and geo-secondaries, and a
        database the tenant registry maps any tenant's projections to."""
        clients = self._estates[input.plan]
        plan = clients.plan
        protected = {name.lower(): spec.name for spec in plan.sql.failover_groups for name in spec.databases}
        if input.database.lower() in protected:
            raise ApplicationError(
                f"refusing to delete SQL database {input.database!r}: it is one of plan {plan.name!r}'s replicated "
                f"databases (failover group {protected[input.database.lower()]!r}), a restore's source, not a "
                "restored copy",
                type="DatabaseProtected",
                non_retryable=True,
            )
        if input.server is not None:
            servers: tuple[tuple[str, str], ...] = ((_server_group(clients, input.server), input.server),)
        elif input.failover_group is not None:
            spec = _group_spec(clients, input.failover_group)
            servers = tuple((spec.resource_group, server) for server in spec.servers.values())
        else:
            raise invalid_input("delete_database needs the database's server or its failover group")

        found: list[tuple[str, str, Database]] = []
        for group, server in servers:
            db = await self._find_database(clients, group, server, input.database)
            if db is not None:
                found.append((group, server, db))
        for group, server, db in found:
            props = db.properties
            if props is not None and (props.failover_group_id or props.secondary_type):
                why = (
                    f"failover group {ResourceId.parse(props.failover_group_id).name!r}"
                    if props.failover_group_id
                    else f"a {wire_text(props.secondary_type)} secondary"
                )
                raise ApplicationError(
                    f"refusing to delete {_database_text(group, server, input.database)}: Azure reports it is in "
                    f"{why}; only restored copies outside any failover group are deleted",
                    type="DatabaseProtected",
                    non_retryable=True,
                )
        deleted: list[str] = []
        if found:
            count, tenants = await tenants_reading_from(clients, input.database)
            if count:
                raise ApplicationError(
                    f"refusing to delete SQL database {input.database!r}: the tenant registry maps {count} "
                    f"tenant(s) to it for their projections ({', '.join(tenants)}); point them back first",
                    type="DatabaseInUse",
                    non_retryable=True,
                )
        for group, server, db in found:
            if await self._drop(clients, group, server, input.database, db):
                deleted.append(db.id or sql_database(plan.subscription_id, group, server, input.database))
        for group, server in servers:
            # A retried attempt whose first try's delete completed meanwhile: report it as this activity's.
            if (
                not any(s == server for _, s, _ in found)
                and resumed_lro(_drop_operation(server, input.database)) is not None
            ):
                deleted.append(sql_database(plan.subscription_id, group, server, input.database))
        return DeleteDatabaseResult(
            plan=input.plan,
            database=input.database,
            servers=tuple(server for _, server in servers),
            deleted=tuple(deleted),
            changed=bool(deleted),
        )

    async def _find_database(self, clients: AzureClients, group: str, server: str, database: str) -> Database | None:
        async with azure_call(_database_text(group, server, database), "read"):
            try:
                db: Database = await clients.sql.databases.get(
                    resource_group_name=group, server_name=server, database_name=database
                )
            except ResourceNotFoundError:
                return None
        return db

    async def _drop(self, clients: AzureClients, group: str, server: str, database: str, db: Database) -> bool:
        """Delete one database (once its restore has settled) and confirm Azure no longer has it;
        false when it vanished while settling (someone else deleted it)."""
        resource = _database_text(group, server, database)
        status = wire_text(db.properties.status if db.properties else None)
        if status in SETTLING:
            activity.logger.info("%s is %s; waiting for it to settle before deleting it", resource, status)
            settled = await poll_until(
                f"{resource} to settle before it is deleted",
                lambda: self._find_database(clients, group, server, database),
                lambda found: (
                    found is None or wire_text(found.properties.status if found.properties else None) not in SETTLING
                ),
                interval=clients.connection.polling_interval,
                timeout=RESTORE_WAIT_SECONDS,
            )
            if settled is None:
                return False
        activity.logger.info("deleting %s", resource)
        async with azure_call(resource, "delete"):
            await await_lro(
                _drop_operation(server, database),
                clients.sql.databases.begin_delete,
                resource_group_name=group,
                server_name=server,
                database_name=database,
            )
        if await self._find_database(clients, group, server, database) is not None:
            raise ApplicationError(
                f"delete {resource}: the operation succeeded but Azure still has the database",
                type="DeleteNotApplied",
            )
        return True

    @staticmethod
    def _restore_result(
        input: RestoreDatabasePitrInput,
        region: str,
        server: str,
        db: Database,
        *,
        source_id: str,
        point: str,
        created: bool,
    ) -> RestoreDatabasePitrResult:
        return RestoreDatabasePitrResult(
            plan=input.plan,
            region=region,
            server=server,
            database=input.target_database,
            database_id=db.id or "",
            source_database_id=source_id,
            point_in_time=point,
            status=wire_text(db.properties.status if db.properties else None) or "",
            created=created,
        )
