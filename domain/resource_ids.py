"""ARM resource ids, built and parsed in one place."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ResourceId:
    """A parsed ARM resource id: subscription, resource group and the provider path below it."""

    subscription_id: str
    resource_group: str
    provider: str
    types_and_names: tuple[tuple[str, str], ...]

    def __str__(self) -> str:
        path = "/".join(f"{t}/{n}" for t, n in self.types_and_names)
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/{self.provider}/{path}"
        )

    @property
    def name(self) -> str:
        return self.types_and_names[-1][1]

    @classmethod
    def parse(cls, value: str) -> ResourceId:
        parts = [p for p in value.strip("/").split("/") if p]
        if (
            len(parts) < 8
            or parts[0].lower() != "subscriptions"
            or parts[2].lower() != "resourcegroups"
            or parts[4].lower() != "providers"
            or len(parts[6:]) % 2
        ):
            raise ValueError(f"not an ARM resource id: {value!r}")
        rest = parts[6:]
        pairs = tuple((rest[i], rest[i + 1]) for i in range(0, len(rest), 2))
        return cls(parts[1], parts[3], parts[5], pairs)


def _rid(subscription: str, group: str, provider: str, *pairs: tuple[str, str]) -> str:
    return str(ResourceId(subscription, group, provider, tuple(pairs)))


def frontdoor_profile(subscription: str, group: str, profile: str) -> str:
    return _rid(subscription, group, "Microsoft.Cdn", ("profiles", profile))


def frontdoor_origin_group(subscription: str, group: str, profile: str, origin_group: str) -> str:
    return _rid(subscription, group, "Microsoft.Cdn", ("profiles", profile), ("originGroups", origin_group))


def frontdoor_origin(subscription: str, group: str, profile: str, origin_group: str, origin: str) -> str:
    return _rid(
        subscription,
        group,
        "Microsoft.Cdn",
        ("profiles", profile),
        ("originGroups", origin_group),
        ("origins", origin),
    )


def servicebus_namespace(subscription: str, group: str, namespace: str) -> str:
    return _rid(subscription, group, "Microsoft.ServiceBus", ("namespaces", namespace))


def sql_server(subscription: str, group: str, server: str) -> str:
    return _rid(subscription, group, "Microsoft.Sql", ("servers", server))


def sql_database(subscription: str, group: str, server: str, database: str) -> str:
    return _rid(subscription, group, "Microsoft.Sql", ("servers", server), ("databases", database))


def sql_failover_group(subscription: str, group: str, server: str, failover_group: str) -> str:
    return _rid(subscription, group, "Microsoft.Sql", ("servers", server), ("failoverGroups", failover_group))


def cosmos_account(subscription: str, group: str, account: str) -> str:
    return _rid(subscription, group, "Microsoft.DocumentDB", ("databaseAccounts", account))


def servicebus_alias(subscription: str, group: str, namespace: str, alias: str) -> str:
    return _rid(
        subscription,
        group,
        "Microsoft.ServiceBus",
        ("namespaces", namespace),
        ("disasterRecoveryConfigs", alias),
    )


def _subscription_rid(subscription: str, provider: str, *pairs: tuple[str, str]) -> str:
    """An id that lives under the subscription, not a resource group (location-scoped resources)."""
    path = "/".join(f"{t}/{n}" for t, n in pairs)
    return f"/subscriptions/{subscription}/providers/{provider}/{path}"


def sql_restorable_dropped_database(subscription: str, group: str, server: str, dropped: str) -> str:
    """``dropped`` is Azure's ``{databaseName},{deletionTicks}`` name."""
    return _rid(subscription, group, "Microsoft.Sql", ("servers", server), ("restorableDroppedDatabases", dropped))


def sql_ltr_backup(subscription: str, location: str, server: str, database: str, backup: str) -> str:
    return _subscription_rid(
        subscription,
        "Microsoft.Sql",
        ("locations", location),
        ("longTermRetentionServers", server),
        ("longTermRetentionDatabases", database),
        ("longTermRetentionBackups", backup),
    )


def cosmos_restorable_account(subscription: str, location: str, instance_id: str) -> str:
    return _subscription_rid(
        subscription, "Microsoft.DocumentDB", ("locations", location), ("restorableDatabaseAccounts", instance_id)
    )


def resource_action(resource_id: str, action: str) -> str:
    """The ARM path of a POST action on a resource (``.../failoverGroups/fog/failover``)."""
    return f"{resource_id.rstrip('/')}/{action}"
