"""Service Bus Geo-DR alias activities: read the pairing, fail over, re-pair, wait for replication.

Azure answers these calls synchronously and applies them over time, so each activity reads the
alias first, acts only when the desired state is not there yet, then polls ``get`` (heartbeating)
until ``provisioningState`` and ``role`` say it is done.
"""

from __future__ import annotations

import asyncio
import time

from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.servicebus.models import (
    ArmDisasterRecovery,
    ArmDisasterRecoveryProperties,
    FailoverPropertiesProperties,
    NamespaceFailoverProperties,
)
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.azure import AzureClients, Estates, azure_call, planned_call, poll_until, sdk_api_version, wire_text
from domain.messages.servicebus import (
    PRIMARY_ROLES,
    ROLE_PRIMARY,
    ROLE_PRIMARY_NOT_REPLICATING,
    ROLE_SECONDARY,
    AliasView,
    FailoverAliasInput,
    FailoverAliasResult,
    GetAliasInput,
    NamespaceAliasView,
    PairAliasInput,
    PairAliasResult,
    WaitReplicationInput,
    WaitReplicationResult,
)
from domain.resource_ids import resource_action, servicebus_alias, servicebus_namespace

SUCCEEDED = "Succeeded"


def _describe(clients: AzureClients, namespace: str) -> str:
    spec = clients.plan.servicebus
    return f"Service Bus alias '{spec.alias}' on namespace '{namespace}' (resource group '{spec.resource_group}')"


def _check_region(clients: AzureClients, region: str, what: str) -> None:
    if region not in clients.plan.servicebus.namespaces:
        known = ", ".join(sorted(clients.plan.servicebus.namespaces))
        raise ApplicationError(
            f"{what} {region!r} has no Service Bus namespace in plan {clients.plan.name!r} (regions: {known})",
            type="InvalidInput",
            non_retryable=True,
        )


def _progress(view: NamespaceAliasView) -> dict[str, object]:
    return {
        "namespace": view.namespace,
        "role": view.role,
        "provisioningState": view.provisioning_state,
        "pendingReplicationOperationsCount": view.pending_replication_operations_count,
    }


class ServiceBusActivities:
    """Activities on each plan's Service Bus Geo-DR alias, through the aio management SDK."""

    def __init__(self, estates: Estates) -> None:
        self._estates = estates

    async def _read(self, clients: AzureClients, region: str) -> NamespaceAliasView:
        """The alias as the namespace in ``region`` sees it (``exists=False`` when it does not hold it)."""
        plan = clients.plan
        spec = plan.servicebus
        namespace = spec.namespaces[region]
        namespace_id = servicebus_namespace(plan.subscription_id, spec.resource_group, namespace)
        async with azure_call(_describe(clients, namespace), "read"):
            try:
                config = await clients.servicebus.disaster_recovery_configs.get(
                    resource_group_name=spec.resource_group, namespace_name=namespace, alias=spec.alias
                )
            except ResourceNotFoundError as exc:
                # "ResourceNotFound" is ARM's answer for a missing namespace (a plan error, raised);
                # the resource provider answers "NotFound" when the namespace lacks the alias.
                if exc.error is not None and exc.error.code == "ResourceNotFound":
                    raise
                return NamespaceAliasView(region, namespace, namespace_id, exists=False)
        props = config.properties
        if props is None:
            return NamespaceAliasView(region, namespace, namespace_id, exists=True)
        return NamespaceAliasView(
            region=region,
            namespace=namespace,
            namespace_id=namespace_id,
            exists=True,
            role=wire_text(props.role),
            provisioning_state=wire_text(props.provisioning_state),
            pending_replication_operations_count=props.pending_replication_operations_count,
            partner_namespace=props.partner_namespace or None,
        )

    async def _view(self, clients: AzureClients) -> AliasView:
        plan = clients.plan
        regions = [r for r in plan.regions if r in plan.servicebus.namespaces]
        views = tuple(await asyncio.gather(*(self._read(clients, r) for r in regions)))
        primary = next((v.region for v in views if v.role == ROLE_PRIMARY), None) or next(
            (v.region for v in views if v.role in PRIMARY_ROLES), None
        )
        paired = any(v.role == ROLE_PRIMARY and v.partner_namespace for v in views)
        return AliasView(plan.name, plan.servicebus.alias, views, primary, paired)

    @activity.defn(name="servicebus.get_alias")
    async def get_alias(self, request: GetAliasInput) -> AliasView:
        """Both namespaces' view of the alias: role, provisioning state, pending count, partner."""
        return await self._view(self._estates[request.plan])

    @activity.defn(name="servicebus.failover_alias")
    async def failover_alias(self, request: FailoverAliasInput) -> FailoverAliasResult:
        """Make the namespace in ``target_region`` the alias's primary: fail over on it (it must be
        the secondary) unless it already is, then wait until Azure reports it done. A dry run
        reads the alias and reports the call it would make."""
        clients = self._estates[request.plan]
        _check_region(clients, request.target_region, "target region")
        spec = clients.plan.servicebus
        namespace = spec.namespaces[request.target_region]
        started = time.monotonic()
        current = await self._read(clients, request.target_region)
        if not current.exists:
            raise ApplicationError(
                f"{_describe(clients, namespace)}: the namespace does not hold the alias, so it cannot become its "
                "primary by fail-over; pair the alias again (servicebus.pair) with this namespace as primary",
                type="AliasNotOnNamespace",
                non_retryable=True,
            )
        changed = current.role not in PRIMARY_ROLES
        planned: list[str] = []
        if changed:
            parameters = (
                NamespaceFailoverProperties(properties=FailoverPropertiesProperties(is_safe_failover=True))
                if request.safe
                else None
            )
            alias_id = servicebus_alias(clients.plan.subscription_id, spec.resource_group, namespace, spec.alias)
            call = planned_call(
                "POST",
                resource_action(alias_id, "failover"),
                sdk_api_version(clients.servicebus),
                parameters.properties if parameters is not None else None,
            )
            planned.append(call)
            if request.dry_run:
                activity.logger.info("dry run: would call %s", call)
            else:
                activity.logger.info("failing over %s to %s", spec.alias, namespace)
                async with azure_call(_describe(clients, namespace), "fail over"):
                    await clients.servicebus.disaster_recovery_configs.fail_over(
                        resource_group_name=spec.resource_group,
                        namespace_name=namespace,
                        alias=spec.alias,
                        parameters=parameters,
                    )
        if request.dry_run:
            # A fail-over breaks the pairing: the namespace ends up primary without a partner.
            role = ROLE_PRIMARY_NOT_REPLICATING if changed else (current.role or "")
        elif current.role in PRIMARY_ROLES and current.provisioning_state == SUCCEEDED:
            role = current.role or ""
        else:
            final = await poll_until(
                f"{namespace} to become the primary of alias {spec.alias}",
                lambda: self._read(clients, request.target_region),
                lambda v: v.role in PRIMARY_ROLES and v.provisioning_state == SUCCEEDED,
                interval=clients.connection.polling_interval,
                timeout=request.timeout_seconds,
                progress=_progress,
            )
            role = final.role or ""
        return FailoverAliasResult(
            plan=request.plan,
            alias=spec.alias,
            primary_region=request.target_region,
            primary_namespace=namespace,
            role=role,
            changed=changed,
            duration_seconds=time.monotonic() - started,
            planned_calls=tuple(planned),
        )

    @activity.defn(name="servicebus.pair")
    async def pair(self, request: PairAliasInput) -> PairAliasResult:
        """Pair the alias from the namespace in ``primary_region`` (primary) to the plan's other
        namespace (secondary) unless it already is, then wait until the pairing is provisioned. A
        dry run reads the alias and reports the call it would make."""
        clients = self._estates[request.plan]
        plan = clients.plan
        spec = plan.servicebus
        _check_region(clients, request.primary_region, "primary region")
        secondary_region = plan.other_region(request.primary_region)
        primary_ns = spec.namespaces[request.primary_region]
        secondary_ns = spec.namespaces[secondary_region]
        secondary_id = servicebus_namespace(plan.subscription_id, spec.resource_group, secondary_ns)
        started = time.monotonic()
        current = await self._read(clients, request.primary_region)

        def paired_as_wanted(view: NamespaceAliasView) -> bool:
            return view.role == ROLE_PRIMARY and (view.partner_namespace or "").lower() == secondary_id.lower()

        changed = not paired_as_wanted(current)
        planned: list[str] = []
        if changed:
            body = ArmDisasterRecovery(properties=ArmDisasterRecoveryProperties(partner_namespace=secondary_id))
            call = planned_call(
                "PUT",
                servicebus_alias(plan.subscription_id, spec.resource_group, primary_ns, spec.alias),
                sdk_api_version(clients.servicebus),
                body.properties,
            )
            planned.append(call)
            if request.dry_run:
                activity.logger.info("dry run: would call %s", call)
            else:
                activity.logger.info("pairing %s: %s -> %s", spec.alias, primary_ns, secondary_ns)
                async with azure_call(_describe(clients, primary_ns), f"pair with {secondary_ns}"):
                    await clients.servicebus.disaster_recovery_configs.create_or_update(
                        resource_group_name=spec.resource_group,
                        namespace_name=primary_ns,
                        alias=spec.alias,
                        parameters=body,
                    )
        final = current
        if not request.dry_run and (changed or current.provisioning_state != SUCCEEDED):
            final = await poll_until(
                f"the pairing {primary_ns} -> {secondary_ns} of alias {spec.alias} to be provisioned",
                lambda: self._read(clients, request.primary_region),
                lambda v: paired_as_wanted(v) and v.provisioning_state == SUCCEEDED,
                interval=clients.connection.polling_interval,
                timeout=request.timeout_seconds,
                progress=_progress,
            )
        return PairAliasResult(
            plan=request.plan,
            alias=spec.alias,
            primary_namespace=primary_ns,
            secondary_namespace=secondary_ns,
            changed=changed,
            pending_replication_operations_count=final.pending_replication_operations_count or 0,
            duration_seconds=time.monotonic() - started,
            planned_calls=tuple(planned),
        )

    @activity.defn(name="servicebus.wait_replication")
    async def wait_replication(self, request: WaitReplicationInput) -> WaitReplicationResult:
        """Wait until the paired primary reports ``pendingReplicationOperationsCount`` 0."""
        clients = self._estates[request.plan]
        spec = clients.plan.servicebus
        started = time.monotonic()
        view = await self._view(clients)
        primary = next((v for v in view.namespaces if v.role == ROLE_PRIMARY), None)
        secondary = next((v for v in view.namespaces if v.role == ROLE_SECONDARY), None)
        if primary is None or secondary is None:
            raise ApplicationError(
                f"Service Bus alias '{spec.alias}' is not paired (roles: "
                f"{', '.join(f'{v.namespace}={v.role}' for v in view.namespaces)}); nothing replicates",
                type="AliasNotPaired",
                non_retryable=True,
            )
        initial = primary.pending_replication_operations_count

        def settled(v: NamespaceAliasView) -> bool:
            # A pairing broken meanwhile ends the wait too; it is reported below, not waited out.
            return v.role != ROLE_PRIMARY or v.pending_replication_operations_count == 0

        final = primary
        if not settled(primary):
            final = await poll_until(
                f"alias {spec.alias} replication {primary.namespace} -> {secondary.namespace} to drain",
                lambda: self._read(clients, primary.region),
                settled,
                interval=clients.connection.polling_interval,
                timeout=request.timeout_seconds,
                progress=_progress,
            )
        if final.role != ROLE_PRIMARY:
            raise ApplicationError(
                f"{_describe(clients, primary.namespace)}: the pairing ended while waiting for replication "
                f"(role is now {final.role or 'absent'})",
                type="AliasNotPaired",
                non_retryable=True,
            )
        return WaitReplicationResult(
            plan=request.plan,
            alias=spec.alias,
            primary_namespace=primary.namespace,
            initial_pending_count=initial if initial is not None else 0,
            pending_replication_operations_count=final.pending_replication_operations_count or 0,
            duration_seconds=time.monotonic() - started,
        )
