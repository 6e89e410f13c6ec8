"""Azure Cosmos DB (``Microsoft.DocumentDB``): database accounts, their failover priorities and
regions, point-in-time restores and restorable accounts, api-version 2026-03-15.

One account per plan, in the plan's Cosmos regions in priority order (the first is the write
region), single-write, automatic failover off, continuous backup (30 days), plus a deleted
account (``{account}-old``) still inside its restore window. New accounts get the backup policy
they ask for, else Azure's default (periodic); restored ones default to continuous. Only
continuous-backup accounts are restorable. Bodies follow ``CosmosDBDatabaseAccountGet.json`` and
the fork's ``restorable.json`` examples; ``HEAD .../databaseAccountNames/{name}`` answers 200/404.

Wire behaviour follows ``test_mgmt_cosmosdb.test_accounts_create.yaml``: an account PUT answers
200 with ``provisioningState: Creating`` plus ``azure-asyncoperation`` (``.../operationsStatus/{id}``)
and ``location`` (``.../operationResults/{id}``); polls answer ``{"status":"Dequeued"}`` until
``{"status":"Succeeded"}``. ``failoverPriorityChange``, ``offlineRegion`` and ``onlineRegion``
answer 202 with both headers on the ``operationsStatus`` URL, as their examples do.

An account DELETE (``DatabaseAccounts_Delete``; the SDK accepts 202 and 204) answers 202 with
``azure-asyncoperation`` (``.../operationsStatus/{id}``) and ``location``
(``.../operationResults/{id}``) as the account PUT does, with the account reading
``provisioningState: Deleting`` until the operation completes; an account that does not exist
answers 204. A deleted continuous-backup account stays restorable until its window ends.

Rules enforced: a failover priority change must list every region of the account exactly once
with priorities 0..n-1 (else 400 ``BadRequest``) and takes effect when the operation completes
(the write region is priority 0); a restore needs ``restoreParameters`` naming a restorable
account and a timestamp inside its restorable window (else 400 ``BadRequest``); an account
already undergoing an operation answers 412 ``PreconditionFailed``. Changing the write region
away from a region that is down records the account's replication lag as the data-loss window.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from domain.plan import DrPlan
from domain.resource_ids import cosmos_account, cosmos_restorable_account
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
from emulator.world import World

API_VERSION = "2026-03-15"
ACCOUNT_PATH = (
    "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}"
    "/providers/Microsoft.DocumentDB/databaseAccounts/{accountName}"
)
NAME_PATH = "/providers/Microsoft.DocumentDB/databaseAccountNames/{accountName}"
LOCATIONS = "/subscriptions/{subscriptionId}/providers/Microsoft.DocumentDB/locations/{location}"
RESTORABLE_LIST = "/subscriptions/{subscriptionId}/providers/Microsoft.DocumentDB/restorableDatabaseAccounts"

CREATE = "DatabaseAccounts_CreateOrUpdate"
DELETE = "DatabaseAccounts_Delete"
PRIORITY_CHANGE = "DatabaseAccounts_FailoverPriorityChange"
OFFLINE = "DatabaseAccounts_OfflineRegion"
ONLINE = "DatabaseAccounts_OnlineRegion"

DEFAULT_LAG_SECONDS = 2.0
CONTINUOUS_RETENTION = dt.timedelta(days=30)
SEEDED_AGE = dt.timedelta(days=45)
KEY_GENERATED = "2022-02-25T20:30:11Z"
CONTINUOUS_BACKUP: JsonDict = {"type": "Continuous", "continuousModeProperties": {"tier": "Continuous30Days"}}
# Azure's default for a new account that names no backup policy.
PERIODIC_BACKUP: JsonDict = {
    "type": "Periodic",
    "periodicModeProperties": {
        "backupIntervalInMinutes": 240,
        "backupRetentionIntervalInHours": 8,
        "backupStorageRedundancy": "Geo",
    },
}

_RESTORABLE_ID = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.DocumentDB/locations/(?P<location>[^/]+)"
    r"/restorableDatabaseAccounts/(?P<instance>[^/]+)/?$",
    re.IGNORECASE,
)

REGION_DISPLAY_NAMES = {
    "australiacentral": "Australia Central",
    "australiacentral2": "Australia Central 2",
    "australiaeast": "Australia East",
    "australiasoutheast": "Australia Southeast",
    "austriaeast": "Austria East",
    "belgiumcentral": "Belgium Central",
    "brazilsouth": "Brazil South",
    "brazilsoutheast": "Brazil Southeast",
    "canadacentral": "Canada Central",
    "canadaeast": "Canada East",
    "centralindia": "Central India",
    "centralus": "Central US",
    "centraluseuap": "Central US EUAP",
    "chilecentral": "Chile Central",
    "eastasia": "East Asia",
    "eastus": "East US",
    "eastus2": "East US 2",
    "eastus2euap": "East US 2 EUAP",
    "francecentral": "France Central",
    "francesouth": "France South",
    "germanynorth": "Germany North",
    "germanywestcentral": "Germany West Central",
    "indonesiacentral": "Indonesia Central",
    "israelcentral": "Israel Central",
    "italynorth": "Italy North",
    "japaneast": "Japan East",
    "japanwest": "Japan West",
    "jioindiacentral": "Jio India Central",
    "jioindiawest": "Jio India West",
    "koreacentral": "Korea Central",
    "koreasouth": "Korea South",
    "malaysiawest": "Malaysia West",
    "mexicocentral": "Mexico Central",
    "newzealandnorth": "New Zealand North",
    "northcentralus": "North Central US",
    "northeurope": "North Europe",
    "norwayeast": "Norway East",
    "norwaywest": "Norway West",
    "polandcentral": "Poland Central",
    "qatarcentral": "Qatar Central",
    "southafricanorth": "South Africa North",
    "southafricawest": "South Africa West",
    "southcentralus": "South Central US",
    "southindia": "South India",
    "southeastasia": "Southeast Asia",
    "spaincentral": "Spain Central",
    "swedencentral": "Sweden Central",
    "swedensouth": "Sweden South",
    "switzerlandnorth": "Switzerland North",
    "switzerlandwest": "Switzerland West",
    "uaecentral": "UAE Central",
    "uaenorth": "UAE North",
    "uksouth": "UK South",
    "ukwest": "UK West",
    "westcentralus": "West Central US",
    "westeurope": "West Europe",
    "westindia": "West India",
    "westus": "West US",
    "westus2": "West US 2",
    "westus3": "West US 3",
}


def normalize_region(name: str) -> str:
    """``"East US"`` / ``"eastus"`` -> ``"eastus"``: ARM accepts both spellings of a location."""
    return name.replace(" ", "").lower()


def display_region(name: str) -> str:
    """The display name ARM answers in ``location`` fields (``eastus`` -> ``East US``)."""
    short = normalize_region(name)
    return REGION_DISPLAY_NAMES.get(short, name)


def _parse_time(value: Any, what: str) -> dt.datetime:
    if not isinstance(value, str) or not value:
        raise ArmError(400, "BadRequest", f"{what} is required.")
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ArmError(400, "BadRequest", f"{what} '{value}' is not a valid ISO 8601 timestamp.") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@dataclass
class Region:
    name: str  # normalized, e.g. "eastus"
    priority: int
    online: bool = True
    instance_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class Account:
    plan: str
    subscription: str
    resource_group: str
    name: str
    location: str  # normalized home region
    regions: list[Region]
    created: dt.datetime
    instance_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    provisioning_state: str = "Succeeded"
    create_mode: str = "Default"
    restore_parameters: JsonDict | None = None
    tags: dict[str, str] = field(default_factory=dict)
    backup_policy: JsonDict = field(default_factory=lambda: dict(CONTINUOUS_BACKUP))
    lag_seconds: float = DEFAULT_LAG_SECONDS
    busy: AsyncOperation | None = None
    failovers: list[JsonDict] = field(default_factory=list)

    @property
    def id(self) -> str:
        return cosmos_account(self.subscription, self.resource_group, self.name)

    @property
    def continuous_backup(self) -> bool:
        return str(self.backup_policy.get("type", "")).lower() == "continuous"

    def ordered(self) -> list[Region]:
        return sorted(self.regions, key=lambda r: r.priority)

    @property
    def write_region(self) -> Region:
        return next(r for r in self.ordered() if r.online)

    def region(self, name: str) -> Region | None:
        wanted = normalize_region(name)
        return next((r for r in self.regions if r.name == wanted), None)


@dataclass
class RestorableAccount:
    subscription: str
    account_name: str
    location: str  # normalized
    instance_id: str
    created: dt.datetime
    regions: list[Region]
    deleted: dt.datetime | None = None

    @property
    def id(self) -> str:
        return cosmos_restorable_account(self.subscription, self.location, self.instance_id)

    def window(self, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        latest = self.deleted or now
        return max(self.created, latest - CONTINUOUS_RETENTION), latest


class CosmosProvider:
    """Every plan's Cosmos DB account, plus the restorable (continuous-backup) accounts."""

    name = "cosmos"

    def __init__(self, world: World) -> None:
        self.world = world
        self.accounts: dict[tuple[str, str, str], Account] = {}
        self.retired: list[RestorableAccount] = []
        self.restore_requests: list[JsonDict] = []
        self.subscriptions = {plan.subscription_id.lower() for plan in world.plans}
        self.started = utc_now()
        for plan in world.plans:
            self._build(plan)

    def _build(self, plan: DrPlan) -> None:
        spec = plan.cosmos
        account = Account(
            plan=plan.name,
            subscription=plan.subscription_id,
            resource_group=spec.resource_group,
            name=spec.account,
            location=spec.regions[0],
            regions=[Region(region, i) for i, region in enumerate(spec.regions)],
            created=self.started - SEEDED_AGE,
        )
        self.accounts[self._key(account.subscription, account.resource_group, account.name)] = account
        self.retired.append(
            RestorableAccount(
                subscription=plan.subscription_id,
                account_name=f"{spec.account}-old",
                location=spec.regions[0],
                instance_id=str(uuid.uuid4()),
                created=self.started - dt.timedelta(days=60),
                regions=[Region(spec.regions[0], 0)],
                deleted=self.started - dt.timedelta(days=10),
            )
        )

    @staticmethod
    def _key(subscription: str, group: str, name: str) -> tuple[str, str, str]:
        return (subscription.lower(), group.lower(), name.lower())

    def _down(self, region: str) -> bool:
        state = self.world.regions.get(normalize_region(region))
        return state is not None and state.is_down

    # --------------------------------------------------------------- lookups
    def _check_subscription(self, ctx: RequestContext) -> None:
        sub = ctx.params["subscriptionId"]
        if sub.lower() not in self.subscriptions:
            raise ArmError(404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found.", gateway=True)

    def _find(self, ctx: RequestContext) -> Account:
        self._check_subscription(ctx)
        p = ctx.params
        account = self.accounts.get(self._key(p["subscriptionId"], p["resourceGroupName"], p["accountName"]))
        if account is None:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.DocumentDB/databaseAccounts/{p['accountName']}' under resource group "
                f"'{p['resourceGroupName']}' was not found.",
            )
        return account

    def restorables(self, subscription: str | None = None) -> list[RestorableAccount]:
        live = [
            RestorableAccount(a.subscription, a.name, a.location, a.instance_id, a.created, a.regions)
            for a in self.accounts.values()
            if a.provisioning_state == "Succeeded" and a.continuous_backup
        ]
        found = live + self.retired
        if subscription is not None:
            found = [r for r in found if r.subscription.lower() == subscription.lower()]
        return found

    def _busy(self, account: Account) -> None:
        if account.busy is not None and account.busy.poll() == "InProgress":
            raise ArmError(
                412,
                "PreconditionFailed",
                f"There is already an operation in progress which requires exclusive lock on database account "
                f"'{account.name}'. Please retry the operation after sometime.",
            )

    # ---------------------------------------------------------------- bodies
    def _location(self, account: Account, region: Region) -> JsonDict:
        return {
            "id": f"{account.name}-{region.name}",
            "locationName": display_region(region.name),
            "documentEndpoint": f"https://{account.name}-{region.name}.documents.azure.com:443/",
            "provisioningState": (
                account.provisioning_state if account.provisioning_state in ("Creating", "Deleting") else "Succeeded"
            ),
            "failoverPriority": region.priority,
            "isZoneRedundant": False,
        }

    def account_body(self, account: Account) -> JsonDict:
        ordered = account.ordered()
        online = [r for r in ordered if r.online]
        props: JsonDict = {
            "provisioningState": account.provisioning_state,
            "documentEndpoint": f"https://{account.name}.documents.azure.com:443/",
            "publicNetworkAccess": "Enabled",
            "enableAutomaticFailover": False,
            "enableMultipleWriteLocations": False,
            "ipRules": [],
            "isVirtualNetworkFilterEnabled": False,
            "virtualNetworkRules": [],
            "databaseAccountOfferType": "Standard",
            "disableKeyBasedMetadataWriteAccess": False,
            "defaultIdentity": "FirstPartyIdentity",
            "consistencyPolicy": {
                "defaultConsistencyLevel": "Session",
                "maxIntervalInSeconds": 5,
                "maxStalenessPrefix": 100,
            },
            "writeLocations": [self._location(account, online[0])] if online else [],
            "readLocations": [self._location(account, r) for r in online],
            "locations": [self._location(account, r) for r in ordered],
            "failoverPolicies": [
                {
                    "id": f"{account.name}-{r.name}",
                    "locationName": display_region(r.name),
                    "failoverPriority": r.priority,
                }
                for r in ordered
            ],
            "privateEndpointConnections": [],
            "cors": [],
            "capabilities": [],
            "enableFreeTier": False,
            "apiProperties": {},
            "enableAnalyticalStorage": False,
            "enableBurstCapacity": False,
            "enablePriorityBasedExecution": False,
            "defaultPriorityLevel": "High",
            "enablePerRegionPerPartitionAutoscale": False,
            "analyticalStorageConfiguration": {"schemaType": "WellDefined"},
            "instanceId": account.instance_id,
            "createMode": account.create_mode,
            "backupPolicy": dict(account.backup_policy),
            "networkAclBypass": "None",
            "networkAclBypassResourceIds": [],
            "keysMetadata": {
                key: {"generationTime": KEY_GENERATED}
                for key in (
                    "primaryMasterKey",
                    "secondaryMasterKey",
                    "primaryReadonlyMasterKey",
                    "secondaryReadonlyMasterKey",
                )
            },
            "enablePartitionMerge": False,
            "minimalTlsVersion": "Tls12",
        }
        if account.restore_parameters is not None:
            props["restoreParameters"] = dict(account.restore_parameters)
        return {
            "id": account.id,
            "name": account.name,
            "location": display_region(account.location),
            "type": "Microsoft.DocumentDB/databaseAccounts",
            "kind": "GlobalDocumentDB",
            "tags": dict(account.tags),
            "systemData": {"createdAt": iso(account.created)},
            "identity": {"type": "None"},
            "properties": props,
        }

    def restorable_body(self, restorable: RestorableAccount) -> JsonDict:
        oldest, _ = restorable.window(utc_now())
        props: JsonDict = {
            "accountName": restorable.account_name,
            "creationTime": iso(restorable.created),
            "oldestRestorableTime": iso(oldest),
            "apiType": "Sql",
            "restorableLocations": [
                {
                    "locationName": display_region(r.name),
                    "regionalDatabaseAccountInstanceId": r.instance_id,
                    "creationTime": iso(restorable.created),
                }
                for r in sorted(restorable.regions, key=lambda r: r.priority)
            ],
        }
        if restorable.deleted is not None:
            props["deletionTime"] = iso(restorable.deleted)
            for loc in props["restorableLocations"]:
                loc["deletionTime"] = iso(restorable.deleted)
        return {
            "id": restorable.id,
            "name": restorable.instance_id,
            "location": display_region(restorable.location),
            "type": "Microsoft.DocumentDB/locations/restorableDatabaseAccounts",
            "properties": props,
        }

    # ------------------------------------------------------------ LRO plumbing
    def _headers(
        self, ctx: RequestContext, account: Account, op: AsyncOperation, *, result_url: bool
    ) -> dict[str, str]:
        query = f"?api-version={API_VERSION}"
        status = ctx.absolute(
            f"/subscriptions/{ctx.params['subscriptionId']}/providers/Microsoft.DocumentDB/locations/"
            f"{account.location}/operationsStatus/{op.id}{query}"
        )
        location = status
        if result_url:
            p = ctx.params
            location = ctx.absolute(
                f"/subscriptions/{p['subscriptionId']}/resourceGroups/{p['resourceGroupName']}/providers/"
                f"Microsoft.DocumentDB/databaseAccounts/{p['accountName']}/operationResults/{op.id}{query}"
            )
        return {"Azure-AsyncOperation": status, "Location": location}

    async def operation_status(self, ctx: RequestContext) -> web.StreamResponse:
        op = self.world.operations.get(ctx.params["operationId"])
        status = op.poll()
        if status == "InProgress":
            return json_response({"status": "Dequeued"})
        body: JsonDict = {"status": status}
        if op.error is not None:
            body["error"] = {"code": op.error.code, "message": op.error.message}
        return json_response(body)

    async def operation_result(self, ctx: RequestContext) -> web.StreamResponse:
        op = self.world.operations.get(ctx.params["operationId"])
        if op.poll() == "InProgress":
            return json_response(None, 202, {"Location": str(ctx.request.url)})
        if op.error is not None:
            return op.error.response()
        return json_response(None, 204)

    def _start(self, ctx: RequestContext, account: Account, name: str, apply: Any) -> AsyncOperation:
        def guarded() -> None:
            account.busy = None
            apply()

        op = self.world.operations.start(name, self.world.latencies.get(ctx.operation), apply=guarded)
        if op.status == "InProgress":
            account.busy = op
        return op

    # ---------------------------------------------------------------- routes
    async def get_account(self, ctx: RequestContext) -> web.StreamResponse:
        return json_response(self.account_body(self._find(ctx)))

    async def failover_priority_change(self, ctx: RequestContext) -> web.StreamResponse:
        account = self._find(ctx)
        body = ctx.body if isinstance(ctx.body, dict) else {}
        policies = body.get("failoverPolicies")
        if not isinstance(policies, list) or not policies:
            raise ArmError(400, "BadRequest", "failoverPolicies is required and must list every region of the account.")
        wanted: dict[str, int] = {}
        for policy in policies:
            name = policy.get("locationName") if isinstance(policy, dict) else None
            priority = policy.get("failoverPriority") if isinstance(policy, dict) else None
            if not isinstance(name, str) or not isinstance(priority, int) or isinstance(priority, bool):
                raise ArmError(
                    400, "BadRequest", "Each failover policy needs a locationName and an integer failoverPriority."
                )
            region = account.region(name)
            if region is None:
                raise ArmError(
                    400, "BadRequest", f"Location '{name}' is not a region of database account '{account.name}'."
                )
            if region.name in wanted:
                raise ArmError(400, "BadRequest", f"Location '{name}' is listed more than once in failoverPolicies.")
            wanted[region.name] = priority
        missing = [r.name for r in account.regions if r.name not in wanted]
        if missing:
            raise ArmError(
                400,
                "BadRequest",
                "Failover priority change must list every region of the account exactly once; missing: "
                + ", ".join(display_region(m) for m in missing)
                + ".",
            )
        if sorted(wanted.values()) != list(range(len(account.regions))):
            raise ArmError(
                400,
                "BadRequest",
                f"Failover priorities must be unique and between 0 and {len(account.regions) - 1}; got "
                f"{sorted(wanted.values())}.",
            )
        self._busy(account)
        requested = utc_now()

        def apply() -> None:
            before = account.write_region.name
            for region in account.regions:
                region.priority = wanted[region.name]
            after = account.write_region.name
            if after != before:
                self._record_failover(account, before, after, requested, "failoverPriorityChange")

        op = self._start(ctx, account, "FailoverPriorityChange", apply)
        return json_response(None, 202, self._headers(ctx, account, op, result_url=False))

    def _record_failover(self, account: Account, before: str, after: str, requested: dt.datetime, how: str) -> None:
        old_down = self._down(before)
        account.failovers.append(
            {
                "via": how,
                "from_region": before,
                "to_region": after,
                "requested_at": iso(requested),
                "completed_at": iso(utc_now()),
                "previous_write_region_down": old_down,
                "data_loss_seconds": account.lag_seconds if old_down else 0.0,
            }
        )

    def _region_param(self, ctx: RequestContext, account: Account) -> Region:
        body = ctx.body if isinstance(ctx.body, dict) else {}
        name = body.get("region")
        if not isinstance(name, str) or not name:
            raise ArmError(400, "BadRequest", "region is required.")
        region = account.region(name)
        if region is None:
            raise ArmError(400, "BadRequest", f"Region '{name}' is not a region of database account '{account.name}'.")
        return region

    async def offline_region(self, ctx: RequestContext) -> web.StreamResponse:
        account = self._find(ctx)
        region = self._region_param(ctx, account)
        if not region.online:
            raise ArmError(400, "BadRequest", f"Region '{display_region(region.name)}' is already offline.")
        if sum(1 for r in account.regions if r.online) < 2:
            raise ArmError(400, "BadRequest", "Cannot take the only online region of the account offline.")
        self._busy(account)
        requested = utc_now()

        def apply() -> None:
            before = account.write_region.name
            region.online = False
            if before == region.name:
                promoted = account.write_region
                rest = [r for r in account.ordered() if r is not promoted]
                for i, r in enumerate([promoted, *rest]):
                    r.priority = i
                self._record_failover(account, before, promoted.name, requested, "offlineRegion")

        op = self._start(ctx, account, "OfflineRegion", apply)
        return json_response(None, 202, self._headers(ctx, account, op, result_url=False))

    async def online_region(self, ctx: RequestContext) -> web.StreamResponse:
        account = self._find(ctx)
        region = self._region_param(ctx, account)
        if region.online:
            raise ArmError(400, "BadRequest", f"Region '{display_region(region.name)}' is not offline.")
        self._busy(account)

        def apply() -> None:
            region.online = True

        op = self._start(ctx, account, "OnlineRegion", apply)
        return json_response(None, 202, self._headers(ctx, account, op, result_url=False))

    async def create_or_update(self, ctx: RequestContext) -> web.StreamResponse:
        self._check_subscription(ctx)
        p = ctx.params
        body = ctx.body
        if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
            raise ArmError(400, "BadRequest", "The request body must be a database account with properties.")
        props: JsonDict = body["properties"]
        mode = props.get("createMode") or "Default"
        key = self._key(p["subscriptionId"], p["resourceGroupName"], p["accountName"])
        existing = self.accounts.get(key)
        if existing is not None:
            if mode != existing.create_mode and mode == "Restore":
                raise ArmError(
                    400,
                    "BadRequest",
                    f"Database account '{existing.name}' already exists; createMode Restore only creates new accounts.",
                )
            self._busy(existing)
            if isinstance(body.get("tags"), dict):
                existing.tags = {str(k): str(v) for k, v in body["tags"].items()}
            op = self._start(ctx, existing, "UpdateDatabaseAccount", lambda: None)
            return json_response(self.account_body(existing), 200, self._headers(ctx, existing, op, result_url=True))
        if mode not in ("Default", "Restore"):
            raise ArmError(400, "BadRequest", f"createMode '{mode}' is not supported; use Default or Restore.")
        location = body.get("location")
        if not isinstance(location, str) or not location:
            raise ArmError(400, "BadRequest", "location is required.")
        regions = self._requested_regions(props, location)
        restore: JsonDict | None = None
        if mode == "Restore":
            restore = self._validate_restore(p["subscriptionId"], props.get("restoreParameters"))
        account = Account(
            plan="",
            subscription=p["subscriptionId"],
            resource_group=p["resourceGroupName"],
            name=p["accountName"],
            location=normalize_region(location),
            regions=regions,
            created=utc_now(),
            provisioning_state="Creating",
            create_mode=mode,
            restore_parameters=restore,
            tags={str(k): str(v) for k, v in (body.get("tags") or {}).items()},
            backup_policy=self._backup_policy(props.get("backupPolicy"), mode),
        )
        self.accounts[key] = account
        if restore is not None:
            self.restore_requests.append(
                {
                    "account": account.name,
                    "id": account.id,
                    "createMode": mode,
                    "location": account.location,
                    "restoreParameters": dict(restore),
                    "requestedAt": iso(utc_now()),
                }
            )
        answer = self.account_body(account)

        def apply() -> None:
            account.provisioning_state = "Succeeded"
            account.created = utc_now()

        op = self._start(ctx, account, "CreateDatabaseAccount", apply)
        return json_response(answer, 200, self._headers(ctx, account, op, result_url=True))

    async def delete_account(self, ctx: RequestContext) -> web.StreamResponse:
        self._check_subscription(ctx)
        p = ctx.params
        key = self._key(p["subscriptionId"], p["resourceGroupName"], p["accountName"])
        account = self.accounts.get(key)
        if account is None:
            return json_response(None, 204)
        self._busy(account)
        account.provisioning_state = "Deleting"

        def apply() -> None:
            if self.accounts.get(key) is account:
                del self.accounts[key]
            if account.continuous_backup:
                self.retired.append(
                    RestorableAccount(
                        subscription=account.subscription,
                        account_name=account.name,
                        location=account.location,
                        instance_id=account.instance_id,
                        created=account.created,
                        regions=[Region(r.name, r.priority, instance_id=r.instance_id) for r in account.regions],
                        deleted=utc_now(),
                    )
                )

        op = self._start(ctx, account, "DeleteDatabaseAccount", apply)
        return json_response(None, 202, self._headers(ctx, account, op, result_url=True))

    @staticmethod
    def _backup_policy(requested: Any, mode: str) -> JsonDict:
        """The request's policy; else Azure's default (periodic), continuous for a restore's target."""
        if isinstance(requested, dict) and requested.get("type") in ("Continuous", "Periodic"):
            return dict(requested)
        return dict(CONTINUOUS_BACKUP if mode == "Restore" else PERIODIC_BACKUP)

    @staticmethod
    def _requested_regions(props: JsonDict, location: str) -> list[Region]:
        raw = props.get("locations")
        if not isinstance(raw, list) or not raw:
            return [Region(normalize_region(location), 0)]
        regions: list[Region] = []
        for item in raw:
            name = item.get("locationName") if isinstance(item, dict) else None
            if not isinstance(name, str) or not name:
                raise ArmError(400, "BadRequest", "Each location needs a locationName.")
            priority = item.get("failoverPriority", len(regions))
            regions.append(Region(normalize_region(name), int(priority)))
        if sorted(r.priority for r in regions) != list(range(len(regions))):
            raise ArmError(
                400, "BadRequest", "Failover priorities must be unique and between 0 and the number of regions - 1."
            )
        return regions

    def _validate_restore(self, subscription: str, params: Any) -> JsonDict:
        if not isinstance(params, dict):
            raise ArmError(400, "BadRequest", "restoreParameters are required when createMode is Restore.")
        if params.get("restoreMode", "PointInTime") != "PointInTime":
            raise ArmError(
                400, "BadRequest", f"restoreMode '{params.get('restoreMode')}' is not supported; use PointInTime."
            )
        source = params.get("restoreSource")
        found = _RESTORABLE_ID.match(source) if isinstance(source, str) else None
        if found is None:
            raise ArmError(
                400,
                "BadRequest",
                f"restoreSource '{source}' is not a restorable database account id "
                "(/subscriptions/{sub}/providers/Microsoft.DocumentDB/locations/{location}/restorableDatabaseAccounts/{id}).",
            )
        restorable = next(
            (
                r
                for r in self.restorables(subscription)
                if r.instance_id.lower() == found["instance"].lower()
                and r.location == normalize_region(found["location"])
            ),
            None,
        )
        if restorable is None:
            raise ArmError(400, "BadRequest", f"Restorable database account '{source}' was not found.")
        moment = _parse_time(params.get("restoreTimestampInUtc"), "restoreTimestampInUtc")
        oldest, latest = restorable.window(utc_now())
        if not oldest <= moment <= latest:
            raise ArmError(
                400,
                "BadRequest",
                f"restoreTimestampInUtc {iso(moment)} is outside the restorable window of account "
                f"'{restorable.account_name}': {iso(oldest)} to {iso(latest)}.",
            )
        recorded = {k: v for k, v in params.items() if v is not None}
        recorded["restoreMode"] = "PointInTime"
        return recorded

    async def list_restorable(self, ctx: RequestContext) -> web.StreamResponse:
        self._check_subscription(ctx)
        found = self.restorables(ctx.params["subscriptionId"])
        return json_response({"value": [self.restorable_body(r) for r in found]})

    async def list_restorable_by_location(self, ctx: RequestContext) -> web.StreamResponse:
        self._check_subscription(ctx)
        location = normalize_region(ctx.params["location"])
        found = [r for r in self.restorables(ctx.params["subscriptionId"]) if r.location == location]
        return json_response({"value": [self.restorable_body(r) for r in found]})

    async def get_restorable(self, ctx: RequestContext) -> web.StreamResponse:
        self._check_subscription(ctx)
        location = normalize_region(ctx.params["location"])
        wanted = ctx.params["instanceId"].lower()
        for restorable in self.restorables(ctx.params["subscriptionId"]):
            if restorable.location == location and restorable.instance_id.lower() == wanted:
                return json_response(self.restorable_body(restorable))
        raise ArmError(
            404,
            "NotFound",
            f"Restorable database account with instance id '{ctx.params['instanceId']}' was not found in "
            f"location '{ctx.params['location']}'.",
        )

    async def check_name_exists(self, ctx: RequestContext) -> web.StreamResponse:
        """HEAD on the global account name: 200 when any subscription's account has it, else 404."""
        wanted = ctx.params["accountName"].lower()
        taken = any(a.name.lower() == wanted for a in self.accounts.values())
        return json_response(None, 200 if taken else 404)

    # ------------------------------------------------------------- control
    async def set_lag(self, ctx: RequestContext) -> web.StreamResponse:
        body = ctx.body if isinstance(ctx.body, dict) else {}
        seconds = body.get("seconds")
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
            raise ArmError(400, "InvalidLag", 'expected {"account": name (optional), "seconds": x} with x >= 0')
        name = body.get("account")
        accounts = [a for a in self.accounts.values() if name is None or a.name.lower() == str(name).lower()]
        if not accounts:
            raise ArmError(404, "NotFound", f"no Cosmos DB account {name!r}")
        for account in accounts:
            account.lag_seconds = float(seconds)
        return json_response({"accounts": [a.name for a in accounts], "seconds": float(seconds)})

    def register(self, router: Router, control: Router) -> None:
        add = arm_routes(router, API_VERSION)

        add("GET", ACCOUNT_PATH, "DatabaseAccounts_Get", self.get_account)
        add("HEAD", NAME_PATH, "DatabaseAccounts_CheckNameExists", self.check_name_exists)
        add("PUT", ACCOUNT_PATH, CREATE, self.create_or_update, mutating=True)
        add("DELETE", ACCOUNT_PATH, DELETE, self.delete_account, mutating=True)
        add(
            "POST",
            ACCOUNT_PATH + "/failoverPriorityChange",
            PRIORITY_CHANGE,
            self.failover_priority_change,
            mutating=True,
        )
        add("POST", ACCOUNT_PATH + "/offlineRegion", OFFLINE, self.offline_region, mutating=True)
        add("POST", ACCOUNT_PATH + "/onlineRegion", ONLINE, self.online_region, mutating=True)
        add(
            "GET",
            ACCOUNT_PATH + "/operationResults/{operationId}",
            "DatabaseAccounts_OperationResult",
            self.operation_result,
        )
        add(
            "GET",
            LOCATIONS + "/operationsStatus/{operationId}",
            "DatabaseAccounts_OperationStatus",
            self.operation_status,
        )
        add("GET", RESTORABLE_LIST, "RestorableDatabaseAccounts_List", self.list_restorable)
        add(
            "GET",
            LOCATIONS + "/restorableDatabaseAccounts",
            "RestorableDatabaseAccounts_ListByLocation",
            self.list_restorable_by_location,
        )
        add(
            "GET",
            LOCATIONS + "/restorableDatabaseAccounts/{instanceId}",
            "RestorableDatabaseAccounts_GetByLocation",
            self.get_restorable,
        )
        control.add("PUT", "/cosmos/lag", "control.cosmos.lag", self.set_lag)

    def snapshot(self) -> JsonDict:
        return {
            "accounts": {
                a.name: {
                    "id": a.id,
                    "plan": a.plan,
                    "location": a.location,
                    "provisioning_state": a.provisioning_state,
                    "create_mode": a.create_mode,
                    "restore_parameters": a.restore_parameters,
                    "write_region": a.write_region.name,
                    "regions": [{"region": r.name, "priority": r.priority, "online": r.online} for r in a.ordered()],
                    "lag_seconds": a.lag_seconds,
                    "busy": a.busy is not None and a.busy.poll() == "InProgress",
                    "failovers": list(a.failovers),
                }
                for a in self.accounts.values()
            },
            "restore_requests": list(self.restore_requests),
            "restorable_accounts": [
                {"id": r.id, "account": r.account_name, "deleted": r.deleted is not None} for r in self.restorables()
            ],
        }
