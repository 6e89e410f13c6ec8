"""Service Bus Geo-DR aliases (``Microsoft.ServiceBus/namespaces/disasterRecoveryConfigs``).

Every call answers synchronously, as Azure does; pairing, fail-over and break-pairing then take
effect after the operation's configured latency, and callers poll GET for ``provisioningState``,
``role`` and ``pendingReplicationOperationsCount`` (compare the recording
``test_cli_mgmt_servicebus_namespace.test_disaster_recovery_configs.yaml``).

Choices where Azure gives no single answer, kept consistent across the emulator:
- ARM is global: GET and List keep answering (the last known state) while a namespace's region is
  down; a mutation on a namespace in a down region answers 503.
- Fail-over is accepted while the primary's region is down (that is its purpose). When it
  completes, the former secondary holds the alias as ``PrimaryNotReplicating`` with no partner and
  the old primary no longer holds it (the recording's later DELETE on it answers 404).
- Break-pairing leaves the primary ``PrimaryNotReplicating`` with no partner and removes the
  alias from the former secondary: an alias is one DNS name, so only one namespace can hold it.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from domain.plan import DrPlan
from domain.resource_ids import ResourceId, servicebus_alias, servicebus_namespace
from emulator.core import ArmError, JsonDict, RequestContext, Router, json_response
from emulator.world import World

API_VERSION = "2026-01-01"
NAMESPACE_PATH = (
    "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}"
    "/providers/Microsoft.ServiceBus/namespaces/{namespaceName}"
)
CONFIGS_PATH = NAMESPACE_PATH + "/disasterRecoveryConfigs"
ALIAS_PATH = CONFIGS_PATH + "/{alias}"
# The type the resource provider answers on the wire (the recording), not the example's spelling.
ALIAS_TYPE = "Microsoft.ServiceBus/Namespaces/disasterrecoveryconfigs"

PRIMARY = "Primary"
SECONDARY = "Secondary"
PRIMARY_NOT_REPLICATING = "PrimaryNotReplicating"
ACCEPTED = "Accepted"
SUCCEEDED = "Succeeded"

CREATE = "DisasterRecoveryConfigs_CreateOrUpdate"
FAIL_OVER = "DisasterRecoveryConfigs_FailOver"
BREAK_PAIRING = "DisasterRecoveryConfigs_BreakPairing"

DEFAULT_BACKLOG = 500
DEFAULT_RATE_PER_SECOND = 250.0

ALIAS_NAME = re.compile(r"^[A-Za-z]([A-Za-z0-9-]{0,48}[A-Za-z0-9])?$")


def _correlated(message: str) -> str:
    """Service Bus appends a correlation id to every error message."""
    return f"{message} CorrelationId: {uuid.uuid4()}"


def _properties(body: Any) -> dict[str, Any]:
    """The ``properties`` object of a request body, or an empty one."""
    props = body.get("properties") if isinstance(body, dict) else None
    return props if isinstance(props, dict) else {}


@dataclass
class ReplicationSettings:
    """How a new pairing's initial metadata replication goes: entities to copy and copy rate."""

    backlog: int = DEFAULT_BACKLOG
    rate_per_second: float = DEFAULT_RATE_PER_SECOND


@dataclass
class Replication:
    """One pairing's replication; the pending count follows from the time since it started."""

    backlog: int
    rate_per_second: float
    started: float | None = None  # monotonic; None until the pairing is provisioned

    def pending(self) -> int:
        if self.started is None:
            return self.backlog
        copied = (time.monotonic() - self.started) * self.rate_per_second
        return max(0, math.ceil(self.backlog - copied))


@dataclass
class AliasConfig:
    name: str
    role: str
    partner_id: str
    alternate_name: str | None
    provisioning_state: str
    replication: Replication | None
    # The operation in flight on this side ("pairing", "failover", "breakPairing"), if any.
    in_flight: str | None = None


@dataclass
class Namespace:
    plan: str
    subscription: str
    resource_group: str
    name: str
    region: str
    configs: dict[str, AliasConfig] = field(default_factory=dict)  # keyed by lower-case alias

    @property
    def id(self) -> str:
        return servicebus_namespace(self.subscription, self.resource_group, self.name)


def _unpaired_when_done(
    ns: Namespace,
    alias: str,
    cfg: AliasConfig,
    kind: str,
    *,
    partner: Namespace | None,
    partner_cfg: AliasConfig | None,
    spare_failing_over: bool = False,
) -> Callable[[], None]:
    """The completion of a fail-over or break-pairing (``kind``) started on ``ns``: unless the alias
    changed meanwhile, ``cfg`` becomes an unpaired primary and the partner's configuration of the alias
    is removed (with ``spare_failing_over``, not while that one is failing over itself)."""
    key = alias.lower()

    def done() -> None:
        if ns.configs.get(key) is not cfg or cfg.in_flight != kind:
            return
        cfg.role = PRIMARY_NOT_REPLICATING
        cfg.partner_id = ""
        cfg.replication = None
        cfg.provisioning_state = SUCCEEDED
        cfg.in_flight = None
        if partner is None or partner_cfg is None or partner.configs.get(key) is not partner_cfg:
            return
        if not (spare_failing_over and partner_cfg.in_flight == "failover"):
            del partner.configs[key]

    return done


def _key(subscription: str, group: str, name: str) -> tuple[str, str, str]:
    return (subscription.lower(), group.lower(), name.lower())


class ServiceBusProvider:
    """The Geo-DR aliases of every plan's two namespaces, initially paired primary -> DR."""

    name = "servicebus"

    def __init__(self, world: World) -> None:
        self.world = world
        self.namespaces: dict[tuple[str, str, str], Namespace] = {}
        self.settings: dict[str, ReplicationSettings] = {}
        for plan in world.plans:
            self._seed(plan)

    def _seed(self, plan: DrPlan) -> None:
        spec = plan.servicebus
        self.settings.setdefault(plan.name, ReplicationSettings())
        for region, name in spec.namespaces.items():
            self.namespaces.setdefault(
                _key(plan.subscription_id, spec.resource_group, name),
                Namespace(plan.name, plan.subscription_id, spec.resource_group, name, region),
            )
        primary = self._namespace(plan.subscription_id, spec.resource_group, spec.namespaces[plan.primary_region])
        secondary = self._namespace(plan.subscription_id, spec.resource_group, spec.namespaces[plan.dr_region])
        if self._holder(spec.alias) is not None:
            return
        replication = Replication(0, DEFAULT_RATE_PER_SECOND, started=time.monotonic())
        primary.configs[spec.alias.lower()] = AliasConfig(
            spec.alias, PRIMARY, secondary.id, None, SUCCEEDED, replication
        )
        secondary.configs[spec.alias.lower()] = AliasConfig(
            spec.alias, SECONDARY, primary.id, None, SUCCEEDED, replication
        )

    # ---- lookups -------------------------------------------------------------------------------

    def _namespace(self, subscription: str, group: str, name: str) -> Namespace:
        ns = self.namespaces.get(_key(subscription, group, name))
        if ns is None:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.ServiceBus/namespaces/{name}' under resource group '{group}' was not found. "
                "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
                gateway=True,
            )
        return ns

    def _from_params(self, ctx: RequestContext) -> Namespace:
        p = ctx.params
        return self._namespace(p["subscriptionId"], p["resourceGroupName"], p["namespaceName"])

    def _config(self, ns: Namespace, alias: str) -> AliasConfig:
        cfg = ns.configs.get(alias.lower())
        if cfg is None:
            raise ArmError(
                404,
                "NotFound",
                _correlated(f"Alias '{alias}' does not exist or is not associated with namespace '{ns.name}'."),
            )
        return cfg

    def _by_id(self, namespace_id: str) -> Namespace | None:
        try:
            rid = ResourceId.parse(namespace_id)
        except ValueError:
            return None
        return self.namespaces.get(_key(rid.subscription_id, rid.resource_group, rid.name))

    def _holder(self, alias: str) -> Namespace | None:
        """The namespace that holds ``alias`` as its primary (aliases are global DNS names)."""
        for ns in self.namespaces.values():
            cfg = ns.configs.get(alias.lower())
            if cfg is not None and cfg.role in (PRIMARY, PRIMARY_NOT_REPLICATING):
                return ns
        return None

    def _require_up(self, ns: Namespace) -> None:
        if self.world.region(ns.region).is_down:
            raise ArmError(
                503,
                "ServiceUnavailable",
                _correlated(
                    f"The namespace '{ns.name}' in region '{ns.region}' is unavailable; "
                    "the request could not be processed. Retry later."
                ),
            )

    # ---- rendering -----------------------------------------------------------------------------

    def render(self, ns: Namespace, cfg: AliasConfig) -> JsonDict:
        pending = (
            cfg.replication.pending() if cfg.replication is not None and cfg.role != PRIMARY_NOT_REPLICATING else 0
        )
        properties: JsonDict = {
            "provisioningState": cfg.provisioning_state,
            "partnerNamespace": cfg.partner_id,
            "role": cfg.role,
            "pendingReplicationOperationsCount": pending,
        }
        if cfg.alternate_name:
            properties["alternateName"] = cfg.alternate_name
        return {
            "id": servicebus_alias(ns.subscription, ns.resource_group, ns.name, cfg.name),
            "name": cfg.name,
            "type": ALIAS_TYPE,
            "properties": properties,
        }

    # ---- ARM handlers --------------------------------------------------------------------------

    async def list_configs(self, ctx: RequestContext) -> web.StreamResponse:
        ns = self._from_params(ctx)
        return json_response({"value": [self.render(ns, cfg) for cfg in ns.configs.values()]})

    async def get_config(self, ctx: RequestContext) -> web.StreamResponse:
        ns = self._from_params(ctx)
        return json_response(self.render(ns, self._config(ns, ctx.params["alias"])))

    async def create_or_update(self, ctx: RequestContext) -> web.StreamResponse:
        ns = self._from_params(ctx)
        alias = ctx.params["alias"]
        props = _properties(ctx.body)
        partner_ref = props.get("partnerNamespace")
        alternate = props.get("alternateName") or None
        if not ALIAS_NAME.match(alias):
            raise ArmError(400, "BadRequest", _correlated(f"The alias name '{alias}' is not valid."))
        if not isinstance(partner_ref, str) or not partner_ref:
            raise ArmError(
                400, "BadRequest", _correlated("The property 'partnerNamespace' is required to create a Geo-DR alias.")
            )
        if alias.lower() == ns.name.lower() and not alternate:
            raise ArmError(
                400,
                "BadRequest",
                _correlated(
                    f"The alias '{alias}' equals the primary namespace name; 'alternateName' is required in that case."
                ),
            )
        partner = (
            self._by_id(partner_ref)
            if partner_ref.startswith("/")
            else self.namespaces.get(_key(ns.subscription, ns.resource_group, partner_ref))
        )
        if partner is None:
            raise ArmError(400, "BadRequest", _correlated(f"The partner namespace '{partner_ref}' was not found."))
        if partner is ns:
            raise ArmError(400, "BadRequest", _correlated("A namespace cannot be paired with itself."))
        self._require_up(ns)
        key = alias.lower()
        existing = ns.configs.get(key)
        if existing is not None:
            if existing.role == SECONDARY:
                raise ArmError(
                    400,
                    "BadRequest",
                    _correlated(
                        f"Namespace '{ns.name}' is the secondary of alias '{alias}'; "
                        "create or update the alias on the primary namespace."
                    ),
                )
            if existing.role == PRIMARY:
                if existing.partner_id.lower() != partner.id.lower():
                    raise ArmError(
                        409,
                        "Conflict",
                        _correlated(
                            f"Alias '{alias}' on namespace '{ns.name}' is already paired with "
                            f"'{existing.partner_id}'; break the pairing first."
                        ),
                    )
                if existing.in_flight not in (None, "pairing"):
                    raise ArmError(
                        409,
                        "Conflict",
                        _correlated(f"An operation ({existing.in_flight}) is in progress on alias '{alias}'."),
                    )
                if alternate:
                    existing.alternate_name = alternate
                return json_response(self.render(ns, existing))
            if existing.in_flight is not None:
                raise ArmError(
                    409,
                    "Conflict",
                    _correlated(f"An operation ({existing.in_flight}) is in progress on alias '{alias}'."),
                )
        holder = self._holder(alias)
        if holder is not None and holder is not ns:
            raise ArmError(
                409,
                "Conflict",
                _correlated(f"The alias name '{alias}' is already in use by namespace '{holder.name}'."),
            )
        for side in (ns, partner):
            other = [c for k, c in side.configs.items() if k != key or side is partner]
            if other:
                raise ArmError(
                    409,
                    "Conflict",
                    _correlated(
                        f"Namespace '{side.name}' already has the Geo-DR configuration '{other[0].name}'; "
                        "a namespace can be part of one pairing only."
                    ),
                )
        if self.world.region(partner.region).is_down:
            raise ArmError(
                409,
                "Conflict",
                _correlated(
                    f"The partner namespace '{partner.name}' in region '{partner.region}' is unreachable; "
                    "pairing needs both namespaces available."
                ),
            )
        settings = self.settings.setdefault(ns.plan, ReplicationSettings())
        replication = Replication(settings.backlog, settings.rate_per_second)
        primary = AliasConfig(alias, PRIMARY, partner.id, alternate, ACCEPTED, replication, "pairing")
        secondary = AliasConfig(alias, SECONDARY, ns.id, alternate, ACCEPTED, replication, "pairing")
        ns.configs[key] = primary
        partner.configs[key] = secondary
        answer = self.render(ns, primary)

        def provisioned() -> None:
            if primary.in_flight == "pairing":
                primary.in_flight = None
                primary.provisioning_state = SUCCEEDED
            if secondary.in_flight == "pairing":
                secondary.in_flight = None
                secondary.provisioning_state = SUCCEEDED
            if replication.started is None:
                replication.started = time.monotonic()

        self.world.operations.start(CREATE, self.world.latencies.get(CREATE), provisioned)
        return json_response(answer)

    async def fail_over(self, ctx: RequestContext) -> web.StreamResponse:
        ns = self._from_params(ctx)
        alias = ctx.params["alias"]
        cfg = self._config(ns, alias)
        self._require_up(ns)
        if cfg.role == PRIMARY:
            raise ArmError(
                400,
                "BadRequest",
                _correlated(
                    f"Failover is only allowed on the secondary namespace of a Geo-DR pairing; namespace '{ns.name}' "
                    f"is the primary of alias '{alias}'. Invoke failover on '{ResourceId.parse(cfg.partner_id).name}'."
                ),
            )
        if cfg.role == PRIMARY_NOT_REPLICATING:
            raise ArmError(
                400,
                "BadRequest",
                _correlated(
                    f"Namespace '{ns.name}' is not paired (role PrimaryNotReplicating); "
                    "there is nothing to fail over to."
                ),
            )
        if cfg.in_flight == "failover":
            return json_response(None, 200)
        props = _properties(ctx.body)
        safe = bool(props.get("IsSafeFailover"))
        old_primary = self._by_id(cfg.partner_id)
        duration = self.world.latencies.get(FAIL_OVER)
        if safe:
            if old_primary is None or self.world.region(old_primary.region).is_down:
                raise ArmError(
                    400,
                    "BadRequest",
                    _correlated(
                        "Safe failover needs the primary namespace to be reachable; use a forced failover instead."
                    ),
                )
            if cfg.replication is not None and cfg.replication.started is not None:
                duration = max(duration, cfg.replication.pending() / cfg.replication.rate_per_second)
        cfg.in_flight = "failover"
        cfg.provisioning_state = ACCEPTED
        old_cfg = old_primary.configs.get(alias.lower()) if old_primary is not None else None
        if old_cfg is not None and old_cfg.partner_id.lower() == ns.id.lower():
            old_cfg.in_flight = "failover"

        failed_over = _unpaired_when_done(ns, alias, cfg, "failover", partner=old_primary, partner_cfg=old_cfg)
        self.world.operations.start(FAIL_OVER, duration, failed_over)
        return json_response(None, 200)

    async def break_pairing(self, ctx: RequestContext) -> web.StreamResponse:
        ns = self._from_params(ctx)
        alias = ctx.params["alias"]
        cfg = self._config(ns, alias)
        self._require_up(ns)
        if cfg.role == SECONDARY:
            raise ArmError(
                400,
                "BadRequest",
                _correlated(
                    f"Break pairing is only allowed on the primary namespace; namespace '{ns.name}' "
                    f"is the secondary of alias '{alias}'."
                ),
            )
        if cfg.role == PRIMARY_NOT_REPLICATING:
            raise ArmError(400, "BadRequest", _correlated(f"Alias '{alias}' on namespace '{ns.name}' is not paired."))
        if cfg.in_flight in ("breakPairing", "failover"):
            return json_response(None, 200)
        cfg.in_flight = "breakPairing"
        cfg.provisioning_state = ACCEPTED
        secondary = self._by_id(cfg.partner_id)
        secondary_cfg = secondary.configs.get(alias.lower()) if secondary is not None else None

        # A fail-over the secondary started meanwhile keeps its configuration (it becomes the primary).
        broken = _unpaired_when_done(
            ns, alias, cfg, "breakPairing", partner=secondary, partner_cfg=secondary_cfg, spare_failing_over=True
        )
        self.world.operations.start(BREAK_PAIRING, self.world.latencies.get(BREAK_PAIRING), broken)
        return json_response(None, 200)

    async def delete(self, ctx: RequestContext) -> web.StreamResponse:
        ns = self._from_params(ctx)
        alias = ctx.params["alias"]
        cfg = self._config(ns, alias)
        self._require_up(ns)
        if cfg.role == SECONDARY:
            raise ArmError(
                400,
                "BadRequest",
                _correlated(
                    "Delete operation is not allowed on a secondary namespace; break the pairing on the primary first."
                ),
            )
        if cfg.role == PRIMARY or cfg.in_flight is not None:
            raise ArmError(
                400,
                "BadRequest",
                _correlated(
                    "Delete operation is only allowed when primary namespace does not have secondary namespace."
                ),
            )
        del ns.configs[alias.lower()]
        return json_response(None, 200)

    async def check_name_availability(self, ctx: RequestContext) -> web.StreamResponse:
        self._from_params(ctx)
        body = ctx.body if isinstance(ctx.body, dict) else {}
        name = body.get("name")
        if not isinstance(name, str) or not ALIAS_NAME.match(name):
            return json_response(
                {
                    "message": "The specified name is not valid: use 1-50 letters, digits and hyphens, "
                    "starting with a letter and ending with a letter or digit.",
                    "nameAvailable": False,
                    "reason": "InvalidName",
                }
            )
        taken = any(name.lower() in ns.configs for ns in self.namespaces.values())
        if taken:
            return json_response(
                {
                    "message": f"The specified name '{name}' is already in use.",
                    "nameAvailable": False,
                    "reason": "NameInUse",
                }
            )
        return json_response({"message": "", "nameAvailable": True, "reason": "None"})

    # ---- control -------------------------------------------------------------------------------

    async def set_replication(self, ctx: RequestContext) -> web.StreamResponse:
        """``PUT /_emulator/servicebus/replication {"plan"?, "backlog", "rate_per_second", "restart"?}``:
        shapes the next pairing's replication; ``restart`` also restarts the current one now."""
        body = ctx.body if isinstance(ctx.body, dict) else {}
        plan_name = body.get("plan") or self.world.plans[0].name
        if plan_name not in self.settings:
            raise ArmError(400, "UnknownPlan", f"no plan {plan_name!r}; known: {', '.join(sorted(self.settings))}")
        settings = self.settings[plan_name]
        backlog = body.get("backlog", settings.backlog)
        rate = body.get("rate_per_second", settings.rate_per_second)
        if isinstance(backlog, bool) or not isinstance(backlog, int) or backlog < 0:
            raise ArmError(400, "InvalidBacklog", "backlog must be a whole number >= 0")
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate <= 0:
            raise ArmError(400, "InvalidRate", "rate_per_second must be a number > 0")
        settings.backlog = backlog
        settings.rate_per_second = float(rate)
        if body.get("restart"):
            replications = {
                id(cfg.replication): cfg.replication
                for ns in self.namespaces.values()
                if ns.plan == plan_name
                for cfg in ns.configs.values()
                if cfg.replication is not None and cfg.role == PRIMARY
            }
            for replication in replications.values():
                replication.backlog = backlog
                replication.rate_per_second = float(rate)
                replication.started = time.monotonic()
        return json_response(
            {"plan": plan_name, "backlog": settings.backlog, "rate_per_second": settings.rate_per_second}
        )

    # ---- provider protocol ---------------------------------------------------------------------

    def register(self, router: Router, control: Router) -> None:
        def arm(
            method: str,
            path: str,
            operation: str,
            handler: Callable[[RequestContext], Any],
            *,
            mutating: bool = False,
            latency_mode: str = "response",
        ) -> None:
            router.add(
                method, path, operation, handler, mutating=mutating, api_version=API_VERSION, latency_mode=latency_mode
            )

        arm("GET", CONFIGS_PATH, "DisasterRecoveryConfigs_List", self.list_configs)
        arm(
            "POST",
            CONFIGS_PATH + "/CheckNameAvailability",
            "DisasterRecoveryConfigs_CheckNameAvailability",
            self.check_name_availability,
        )
        arm("GET", ALIAS_PATH, "DisasterRecoveryConfigs_Get", self.get_config)
        arm("PUT", ALIAS_PATH, CREATE, self.create_or_update, mutating=True, latency_mode="operation")
        arm("DELETE", ALIAS_PATH, "DisasterRecoveryConfigs_Delete", self.delete, mutating=True)
        arm("POST", ALIAS_PATH + "/failover", FAIL_OVER, self.fail_over, mutating=True, latency_mode="operation")
        arm(
            "POST",
            ALIAS_PATH + "/breakPairing",
            BREAK_PAIRING,
            self.break_pairing,
            mutating=True,
            latency_mode="operation",
        )
        control.add("PUT", "/servicebus/replication", "control.servicebus.replication", self.set_replication)

    def snapshot(self) -> JsonDict:
        return {
            "namespaces": {
                ns.name: {
                    "plan": ns.plan,
                    "region": ns.region,
                    "resourceGroup": ns.resource_group,
                    "id": ns.id,
                    "aliases": {
                        cfg.name: self.render(ns, cfg)["properties"] | {"inFlight": cfg.in_flight}
                        for cfg in ns.configs.values()
                    },
                }
                for ns in self.namespaces.values()
            },
            "replication": {plan: vars(s).copy() for plan, s in self.settings.items()},
        }
