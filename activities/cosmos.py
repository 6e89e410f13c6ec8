"""Azure Cosmos DB activities: read the account, move its write region, restore it to a point in
time, and delete a restored account that was not promoted.

Each mutating activity reads first and acts only when the desired state is missing, then waits
for Azure's long-running operation with ``await_lro`` (heartbeating its continuation token, so a
retried attempt resumes the same operation instead of starting a second one).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.cosmosdb.models import (
    DatabaseAccountCreateUpdateParameters,
    DatabaseAccountCreateUpdateProperties,
    DatabaseAccountGetResults,
    FailoverPolicies,
    FailoverPolicy,
    Location,
    RestorableDatabaseAccountGetResult,
    RestoreParameters,
)
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
)
from domain.messages.cosmos import (
    CosmosAccountView,
    CosmosRegion,
    DeleteCosmosAccountInput,
    DeleteCosmosAccountResult,
    GetCosmosAccountInput,
    RestoreCosmosAccountInput,
    RestoreCosmosAccountResult,
    SetCosmosWriteRegionInput,
    SetCosmosWriteRegionResult,
)
from domain.resource_ids import cosmos_account, resource_action

SUCCEEDED = "Succeeded"
DELETING = "Deleting"
# An account answers 412 while another operation holds its lock; a delete waits and tries again.
BUSY = 412
DELETE_ATTEMPTS = 3
RESTORE_WAIT_SECONDS = 4 * 3600.0
BUSY_WAIT_SECONDS = 900.0


def short_region(name: str) -> str:
    """ARM's display name or short name of a region as the short name (``East US`` -> ``eastus``)."""
    return name.replace(" ", "").lower()


def _describe(clients: AzureClients, account: str) -> str:
    return f"Cosmos DB account '{account}' (resource group '{clients.plan.cosmos.resource_group}')"


def _view(plan: str, account: DatabaseAccountGetResults) -> CosmosAccountView:
    props = account.properties
    if props is None:
        raise ApplicationError(
            f"Cosmos DB account {account.name!r}: Azure answered without properties", type="AzureBadAnswer"
        )
    writes = [short_region(loc.location_name or "") for loc in props.write_locations or []]
    policies = sorted(props.failover_policies or [], key=lambda p: p.failover_priority or 0)
    write = writes[0] if writes else (short_region(policies[0].location_name or "") if policies else "")
    regions = tuple(
        CosmosRegion(
            short_region(p.location_name or ""), p.failover_priority or 0, short_region(p.location_name or "") == write
        )
        for p in policies
    )
    return CosmosAccountView(
        plan=plan,
        account=account.name or "",
        write_region=write,
        regions=regions,
        provisioning_state=props.provisioning_state or "",
    )


class CosmosActivities:
    """Activities on each plan's Cosmos DB account, through the aio management SDK."""

    def __init__(self, estates: Estates) -> None:
        self._estates = estates

    async def _get(self, clients: AzureClients, name: str) -> DatabaseAccountGetResults:
        async with azure_call(_describe(clients, name), "read"):
            account: DatabaseAccountGetResults = await clients.cosmos.database_accounts.get(
                resource_group_name=clients.plan.cosmos.resource_group, account_name=name
            )
        return account

    async def _find(self, clients: AzureClients, name: str) -> DatabaseAccountGetResults | None:
        async with azure_call(_describe(clients, name), "read"):
            try:
                account: DatabaseAccountGetResults = await clients.cosmos.database_accounts.get(
                    resource_group_name=clients.plan.cosmos.resource_group, account_name=name
                )
            except ResourceNotFoundError:
                return None
        return account

    @activity.defn(name="cosmos.get_account")
    async def get_account(self, input: GetCosmosAccountInput) -> CosmosAccountView:
        """The account's regions in failover priority order and its write region."""
        clients = self._estates[input.plan]
        return _view(input.plan, await self._get(clients, clients.plan.cosmos.account))

    @activity.defn(name="cosmos.set_write_region")
    async def set_write_region(self, input: SetCosmosWriteRegionInput) -> SetCosmosWriteRegionResult:
        """Give ``region`` failover priority 0; the other regions keep their order behind it. A dry
        run reads the account and reports the failover priority change it would request."""
        clients = self._estates[input.plan]
        name = clients.plan.cosmos.account
        wanted = short_region(input.region)
        before = _view(input.plan, await self._get(clients, name))
        order = [r.region for r in before.regions]
        if wanted not in order:
            raise invalid_input(
                f"region {input.region!r} is not a region of Cosmos DB account {name!r} ({', '.join(order)})"
            )
        if before.write_region == wanted and order[0] == wanted:
            activity.logger.info("Cosmos DB account %s already writes in %s", name, wanted)
            return self._write_result(before, changed=False)

        new_order = [wanted, *(r for r in order if r != wanted)]
        policies = FailoverPolicies(
            failover_policies=[
                FailoverPolicy(location_name=region, failover_priority=priority)
                for priority, region in enumerate(new_order)
            ]
        )
        plan = clients.plan
        call = planned_call(
            "POST",
            resource_action(
                cosmos_account(plan.subscription_id, plan.cosmos.resource_group, name), "failoverPriorityChange"
            ),
            sdk_api_version(clients.cosmos),
            policies,
        )
        if input.dry_run:
            activity.logger.info("dry run: would call %s", call)
            would = dataclasses.replace(
                before,
                write_region=wanted,
                regions=tuple(CosmosRegion(r, i, r == wanted) for i, r in enumerate(new_order)),
            )
            return self._write_result(would, changed=True, calls=(call,))
        activity.logger.info("moving the write region of %s from %s to %s", name, before.write_region, wanted)
        busy = False
        async with azure_call(_describe(clients, name), f"change the write region to {wanted} of"):
            try:
                await await_lro(
                    f"cosmos.set_write_region/{name}/{wanted}",
                    clients.cosmos.database_accounts.begin_failover_priority_change,
                    resource_group_name=clients.plan.cosmos.resource_group,
                    account_name=name,
                    failover_parameters=policies,
                )
            except HttpResponseError as err:
                # An earlier attempt's change still running (its heartbeat never reached the
                # server): Cosmos answers 412; wait for the account instead of failing.
                if err.status_code != 412:
                    raise
                busy = True
                activity.logger.info("Cosmos DB account %s is busy; waiting for the running operation", name)
        if busy:
            after = await poll_until(
                f"{_describe(clients, name)} to finish its running operation writing in {wanted}",
                lambda: self._view_now(clients, input.plan, name),
                lambda view: view.write_region == wanted,
                interval=clients.connection.polling_interval,
                timeout=BUSY_WAIT_SECONDS,
                progress=lambda view: {"write_region": view.write_region},
            )
        else:
            after = _view(input.plan, await self._get(clients, name))
        if after.write_region != wanted:
            raise ApplicationError(
                f"failover priority change of {name!r} completed but Azure still writes in {after.write_region!r}",
                type="FailoverNotApplied",
            )
        return self._write_result(after, changed=True, calls=(call,))

    async def _view_now(self, clients: AzureClients, plan: str, name: str) -> CosmosAccountView:
        return _view(plan, await self._get(clients, name))

    @staticmethod
    def _write_result(
        view: CosmosAccountView, *, changed: bool, calls: tuple[str, ...] = ()
    ) -> SetCosmosWriteRegionResult:
        return SetCosmosWriteRegionResult(
            plan=view.plan,
            account=view.account,
            write_region=view.write_region,
            changed=changed,
            regions=view.regions,
            completed_at=iso_utc(dt.datetime.now(dt.UTC)),
            planned_calls=calls,
        )

    async def _restorable(
        self, clients: AzureClients, source: str, moment: dt.datetime
    ) -> RestorableDatabaseAccountGetResult:
        """The restorable (continuous-backup) account named ``source`` whose window holds ``moment``."""
        async with azure_call(f"restorable Cosmos DB accounts of subscription {clients.plan.subscription_id}", "list"):
            found = [r async for r in clients.cosmos.restorable_database_accounts.list()]
        candidates = [
            r for r in found if r.properties is not None and (r.properties.account_name or "").lower() == source.lower()
        ]
        now = dt.datetime.now(dt.UTC)
        windows: list[str] = []
        for candidate in sorted(
            candidates, key=lambda r: r.properties.deletion_time is not None if r.properties else True
        ):
            props = candidate.properties
            assert props is not None
            oldest = props.oldest_restorable_time or props.creation_time
            latest = props.deletion_time or now
            windows.append(f"{iso_utc(oldest) if oldest else '?'} to {iso_utc(latest)}")
            if oldest is not None and oldest <= moment <= latest:
                return candidate
        detail = f"restorable windows: {'; '.join(windows)}" if windows else "no restorable account has that name"
        raise ApplicationError(
            f"cannot restore Cosmos DB account {source!r} to {iso_utc(moment)}: {detail}",
            type="RestorePointUnavailable",
            non_retryable=True,
        )

    @activity.defn(name="cosmos.restore_account")
    async def restore_account(self, input: RestoreCosmosAccountInput) -> RestoreCosmosAccountResult:
        """Create ``target_account`` as a point-in-time restore (createMode Restore), once."""
        clients = self._estates[input.plan]
        source = input.source_account or clients.plan.cosmos.account
        moment = utc_time(input.point_in_time)
        point = iso_utc(moment)
        restorable = await self._restorable(clients, source, moment)
        restore_source = restorable.id or ""
        location = short_region(input.location or restorable.location or clients.plan.cosmos.regions[0])
        resource = _describe(clients, input.target_account)

        existing = await self._find(clients, input.target_account)
        if existing is not None:
            params = existing.properties.restore_parameters if existing.properties else None
            same = (
                params is not None
                and (params.restore_source or "").lower() == restore_source.lower()
                and params.restore_timestamp_in_utc is not None
                and iso_utc(params.restore_timestamp_in_utc) == point
            )
            if not same:
                raise ApplicationError(
                    f"{resource} already exists and is not a restore of {restore_source} at {point}; "
                    "choose another name",
                    type="RestoreTargetExists",
                    non_retryable=True,
                )
            activity.logger.info("%s was already restored by an earlier attempt", resource)
            if existing.properties is None or existing.properties.provisioning_state != SUCCEEDED:
                existing = await self._wait_provisioned(clients, input.target_account)
            return self._restore_result(input, existing, restore_source, point, location, created=False)

        parameters = DatabaseAccountCreateUpdateParameters(
            location=location,
            kind="GlobalDocumentDB",
            properties=DatabaseAccountCreateUpdateProperties(
                locations=[Location(location_name=location, failover_priority=0, is_zone_redundant=False)],
                create_mode="Restore",
                restore_parameters=RestoreParameters(
                    restore_mode="PointInTime", restore_source=restore_source, restore_timestamp_in_utc=moment
                ),
            ),
        )
        activity.logger.info("restoring %s from %s at %s", resource, restore_source, point)
        async with azure_call(resource, "point-in-time restore of"):
            account: DatabaseAccountGetResults = await await_lro(
                f"cosmos.restore_account/{input.target_account}",
                clients.cosmos.database_accounts.begin_create_or_update,
                resource_group_name=clients.plan.cosmos.resource_group,
                account_name=input.target_account,
                create_update_parameters=parameters,
            )
        return self._restore_result(input, account, restore_source, point, location, created=True)

    @activity.defn(name="cosmos.delete_account")
    async def delete_account(self, input: DeleteCosmosAccountInput) -> DeleteCosmosAccountResult:
        """Delete the account ``account`` (a restore's copy that was not promoted); one already gone is
        a no-op. Refuses the plan's own account."""
        clients = self._estates[input.plan]
        plan = clients.plan
        name = input.account
        if name.lower() == plan.cosmos.account.lower():
            raise ApplicationError(
                f"refusing to delete Cosmos DB account {name!r}: it is plan {plan.name!r}'s own account, "
                "not a restored copy",
                type="AccountProtected",
                non_retryable=True,
            )
        account_id = cosmos_account(plan.subscription_id, plan.cosmos.resource_group, name)
        operation = f"cosmos.delete_account/{name}"
        resource = _describe(clients, name)
        deleted = False
        for attempt in range(1, DELETE_ATTEMPTS + 1):
            existing = await self._find(clients, name)
            if existing is None:
                break
            created = existing.properties.create_mode if existing.properties else None
            mode = str(getattr(created, "value", created) or "Default")  # the SDK's enum, or its text
            if mode.lower() != "restore":
                raise ApplicationError(
                    f"refusing to delete Cosmos DB account {name!r}: it was not created by a restore "
                    f"(createMode {mode}), so it is not a restored copy",
                    type="AccountProtected",
                    non_retryable=True,
                )
            state = existing.properties.provisioning_state if existing.properties else None
            if state == DELETING:
                activity.logger.info("%s is already being deleted; waiting for it to go", resource)
                await self._wait_gone(clients, name)
                break
            if state != SUCCEEDED:
                activity.logger.info("%s is %s; waiting for it to settle before deleting it", resource, state)
                await self._wait_provisioned(clients, name)
            activity.logger.info("deleting %s", resource)
            busy = False
            async with azure_call(resource, "delete"):
                try:
                    await await_lro(
                        operation,
                        clients.cosmos.database_accounts.begin_delete,
                        resource_group_name=plan.cosmos.resource_group,
                        account_name=name,
                    )
                except HttpResponseError as err:
                    # Another operation holds the account's lock: read again and retry.
                    if err.status_code != BUSY or attempt == DELETE_ATTEMPTS:
                        raise
                    busy = True
            if not busy:
                deleted = True
                break
            await asyncio.sleep(clients.connection.polling_interval)
        if await self._find(clients, name) is not None:
            raise ApplicationError(
                f"delete {resource}: the operation succeeded but Azure still has the account",
                type="DeleteNotApplied",
            )
        if not deleted and resumed_lro(operation) is not None:
            # A retried attempt whose first try's delete completed meanwhile: report it as this activity's.
            deleted = True
        return DeleteCosmosAccountResult(plan=input.plan, account=name, account_id=account_id, deleted=deleted)

    async def _wait_gone(self, clients: AzureClients, name: str) -> None:
        await poll_until(
            f"{_describe(clients, name)} to finish being deleted",
            lambda: self._find(clients, name),
            lambda found: found is None,
            interval=clients.connection.polling_interval,
            timeout=RESTORE_WAIT_SECONDS,
        )

    async def _wait_provisioned(self, clients: AzureClients, name: str) -> DatabaseAccountGetResults:
        return await poll_until(
            f"{_describe(clients, name)} to finish provisioning",
            lambda: self._get(clients, name),
            lambda a: a.properties is not None and a.properties.provisioning_state == SUCCEEDED,
            interval=clients.connection.polling_interval,
            timeout=RESTORE_WAIT_SECONDS,
            progress=lambda a: {"provisioningState": a.properties.provisioning_state if a.properties else None},
        )

    @staticmethod
    def _restore_result(
        input: RestoreCosmosAccountInput,
        account: DatabaseAccountGetResults,
        restore_source: str,
        point: str,
        location: str,
        *,
        created: bool,
    ) -> RestoreCosmosAccountResult:
        return RestoreCosmosAccountResult(
            plan=input.plan,
            account=input.target_account,
            account_id=account.id or "",
            location=short_region(account.location or location),
            restore_source=restore_source,
            point_in_time=point,
            provisioning_state=(account.properties.provisioning_state if account.properties else None) or "",
            created=created,
        )
