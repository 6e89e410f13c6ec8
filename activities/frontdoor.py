"""Front Door activities: read the plan's origins and bring them to a desired state (enabled,
priority, weight), which is how traffic fails over, fails back and shifts in steps."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from enum import Enum
from typing import Any

from azure.mgmt.cdn.models import (
    AFDOrigin,
    AFDOriginProperties,
    AFDOriginUpdateParameters,
    AFDOriginUpdatePropertiesParameters,
)
from temporalio import activity

from activities.azure import (
    AzureClients,
    Estates,
    await_lro,
    azure_call,
    invalid_input,
    planned_call,
    poll_until,
    sdk_api_version,
)
from domain.messages.frontdoor import (
    PRIORITY_MAX,
    PRIORITY_MIN,
    WEIGHT_MAX,
    WEIGHT_MIN,
    DesiredOrigin,
    GetOriginsInput,
    OriginsResult,
    OriginState,
    SetOriginsInput,
    SetOriginsResult,
)
from domain.plan import DrPlan
from domain.resource_ids import frontdoor_origin

# Provisioning states during which another update would be refused or lost.
BUSY_STATES = frozenset({"Updating", "Creating", "Deleting"})
BUSY_WAIT_SECONDS = 900.0


def _describe(plan: DrPlan, origin: str | None = None) -> str:
    fd = plan.frontdoor
    where = f"profile {fd.profile}, origin group {fd.origin_group}, resource group {fd.resource_group}"
    return f"Front Door origin {origin} ({where})" if origin else f"Front Door origins ({where})"


def _wire(value: object) -> str | None:
    """Azure's string for an SDK enum member or plain string (str() of a member names the member)."""
    if value is None:
        return None
    return str(value.value) if isinstance(value, Enum) else str(value)


def _state(origin: AFDOrigin, region: str | None) -> OriginState:
    props = origin.properties or AFDOriginProperties()
    return OriginState(
        name=str(origin.name),
        region=region,
        # Front Door treats an origin without enabledState as enabled.
        enabled=(_wire(props.enabled_state) or "Enabled") == "Enabled",
        priority=props.priority,
        weight=props.weight,
        host_name=props.host_name,
        provisioning_state=_wire(props.provisioning_state),
    )


def _targets(plan: DrPlan, desired: tuple[DesiredOrigin, ...]) -> list[tuple[str, DesiredOrigin]]:
    """(origin name, desired state) per requested region, after checking the request."""
    seen: set[str] = set()
    out = []
    for want in desired:
        if want.region not in plan.frontdoor.origins:
            known = ", ".join(sorted(plan.frontdoor.origins))
            raise invalid_input(
                f"plan {plan.name!r} has no Front Door origin for region {want.region!r} (known: {known})"
            )
        if want.region in seen:
            raise invalid_input(f"region {want.region!r} is listed twice")
        seen.add(want.region)
        if want.priority is not None and not PRIORITY_MIN <= want.priority <= PRIORITY_MAX:
            raise invalid_input(
                f"priority for {want.region} must be {PRIORITY_MIN}..{PRIORITY_MAX}, got {want.priority}"
            )
        if want.weight is not None and not WEIGHT_MIN <= want.weight <= WEIGHT_MAX:
            raise invalid_input(f"weight for {want.region} must be {WEIGHT_MIN}..{WEIGHT_MAX}, got {want.weight}")
        out.append((plan.frontdoor.origins[want.region], want))
    return out


def _difference(current: OriginState, want: DesiredOrigin) -> dict[str, Any]:
    """The SDK keyword arguments that would bring ``current`` to ``want`` (empty: nothing to do)."""
    change: dict[str, Any] = {}
    if want.enabled is not None and want.enabled != current.enabled:
        change["enabled_state"] = "Enabled" if want.enabled else "Disabled"
    if want.priority is not None and want.priority != current.priority:
        change["priority"] = want.priority
    if want.weight is not None and want.weight != current.weight:
        change["weight"] = want.weight
    return change


def _applied(current: OriginState, change: dict[str, Any]) -> OriginState:
    """The state ``current`` reaches once ``change`` (SDK keyword arguments) is applied."""
    return dataclasses.replace(
        current,
        enabled=current.enabled if "enabled_state" not in change else change["enabled_state"] == "Enabled",
        priority=change.get("priority", current.priority),
        weight=change.get("weight", current.weight),
    )


class FrontDoorActivities:
    """Origins of each plan's Front Door origin group, through azure-mgmt-cdn."""

    def __init__(self, estates: Estates) -> None:
        self._estates = estates

    async def _get(self, clients: AzureClients, name: str, region: str | None) -> OriginState:
        fd = clients.plan.frontdoor
        async with azure_call(_describe(clients.plan, name), "read"):
            origin = await clients.cdn.afd_origins.get(
                resource_group_name=fd.resource_group,
                profile_name=fd.profile,
                origin_group_name=fd.origin_group,
                origin_name=name,
            )
        return _state(origin, region)

    async def _settled(self, clients: AzureClients, name: str, region: str) -> OriginState:
        """The origin once no update is running on it (one from an earlier attempt, or anyone's)."""
        return await poll_until(
            f"{_describe(clients.plan, name)} to finish its running update",
            lambda: self._get(clients, name, region),
            lambda state: state.provisioning_state not in BUSY_STATES,
            interval=max(clients.connection.polling_interval, 0.05),
            timeout=BUSY_WAIT_SECONDS,
            progress=lambda state: {"origin": name, "provisioning_state": state.provisioning_state},
        )

    async def _update(self, clients: AzureClients, name: str, change: dict[str, Any], reason: str) -> AFDOrigin:
        plan = clients.plan
        fd = plan.frontdoor
        activity.logger.info("updating %s: %s (%s)", _describe(plan, name), change, reason or "no reason given")
        body = AFDOriginUpdateParameters(properties=AFDOriginUpdatePropertiesParameters(**change))
        async with azure_call(_describe(plan, name), "update"):
            # A fresh key per PATCH: a retried attempt has already waited out the previous
            # attempt's update (_settled) and compared again, so resuming that poller could only
            # re-await a finished, possibly failed, operation instead of sending the change.
            updated: AFDOrigin = await await_lro(
                f"frontdoor.update_origin:{name}:{uuid.uuid4().hex[:12]}",
                clients.cdn.afd_origins.begin_update,
                resource_group_name=fd.resource_group,
                profile_name=fd.profile,
                origin_group_name=fd.origin_group,
                origin_name=name,
                origin_update_properties=body,
            )
        return updated

    @activity.defn(name="frontdoor.get_origins")
    async def get_origins(self, request: GetOriginsInput) -> OriginsResult:
        """Every origin of the plan's origin group, with the plan region each one serves."""
        clients = self._estates[request.plan]
        plan = clients.plan
        fd = plan.frontdoor
        regions = {name.lower(): region for region, name in fd.origins.items()}
        origins: list[OriginState] = []
        async with azure_call(_describe(plan), "list"):
            async for origin in clients.cdn.afd_origins.list_by_origin_group(
                resource_group_name=fd.resource_group, profile_name=fd.profile, origin_group_name=fd.origin_group
            ):
                origins.append(_state(origin, regions.get(str(origin.name).lower())))
        return OriginsResult(plan.name, fd.profile, fd.origin_group, tuple(origins))

    @activity.defn(name="frontdoor.set_origins")
    async def set_origins(self, request: SetOriginsInput) -> SetOriginsResult:
        """Bring the named regions' origins to the desired state, patching only those that differ
        (a dry run reads them and reports the PATCHes it would send, sending none)."""
        clients = self._estates[request.plan]
        plan = clients.plan
        fd = plan.frontdoor
        targets = _targets(plan, request.origins)
        currents = await asyncio.gather(*(self._settled(clients, name, want.region) for name, want in targets))
        final: dict[str, OriginState] = {}
        pending: list[tuple[str, str, dict[str, Any]]] = []
        for (name, want), current in zip(targets, currents, strict=True):
            final[name] = current
            change = _difference(current, want)
            if change:
                pending.append((name, want.region, change))
        # Two waves, each patched concurrently: enables and re-weights first, disables last, so the
        # group never passes through a moment with no enabled origin.
        disabling = [p for p in pending if p[2].get("enabled_state") == "Disabled"]
        waves = [[p for p in pending if p not in disabling], disabling]
        pending = waves[0] + waves[1]
        api_version = sdk_api_version(clients.cdn)
        planned = [
            planned_call(
                "PATCH",
                frontdoor_origin(plan.subscription_id, fd.resource_group, fd.profile, fd.origin_group, name),
                api_version,
                AFDOriginUpdatePropertiesParameters(**change),
            )
            for name, _, change in pending
        ]
        if request.dry_run:
            for call in planned:
                activity.logger.info("dry run: would call %s", call)
            for name, _, change in pending:
                final[name] = _applied(final[name], change)
        else:
            for wave in waves:
                updated = await asyncio.gather(
                    *(self._update(clients, name, change, request.reason) for name, _, change in wave)
                )
                for (name, region, _), origin in zip(wave, updated, strict=True):
                    final[name] = _state(origin, region)
        changed = tuple(name for name, _, _ in pending)
        return SetOriginsResult(
            plan=plan.name,
            changed=changed,
            unchanged=tuple(name for name, _ in targets if name not in changed),
            origins=tuple(final[name] for name, _ in targets),
            planned_calls=tuple(planned),
        )
