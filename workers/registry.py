"""What a dr-worker serves: the workflow classes and the activity methods bound to their clients."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from activities.azure import Estates
from activities.backups import BackupActivities
from activities.cosmos import CosmosActivities
from activities.drill import DrillActivities
from activities.frontdoor import FrontDoorActivities
from activities.health import HealthActivities
from activities.plans import PlanActivities
from activities.platform import PlatformActivities
from activities.readiness import ReadinessActivities
from activities.restore import RestoreActivities
from activities.servicebus import ServiceBusActivities
from activities.sql import SqlActivities
from domain.errors import DrError
from workflows import WORKFLOWS

log = structlog.get_logger("dr.worker")


class WorkerConfigError(DrError):
    """The worker was given part of a configuration it needs whole (named in the message)."""


def backup_settings(estates: Estates, env: Mapping[str, str]) -> dict[str, bool]:
    """Which of the settings backups and restores need are present: Blob Storage, the signing key."""
    plans = [estates[name].plan for name in estates.names]
    return {
        "Blob Storage (DR_BLOB_ENDPOINT or backup.account_url)": bool(estates.connection.blob_account_url)
        or all(p.backup.account_url for p in plans),
        "manifest-signing key (DR_SIGNING_KEY or backup.signing_key)": bool(env.get("DR_SIGNING_KEY"))
        or all(p.backup.signing_key for p in plans),
    }


def recovery_activities(estates: Estates, env: Mapping[str, str] | None = None) -> list[object]:
    """Backup and restore activities when Blob Storage and a signing key are configured; none when
    neither is (a failover-only worker); a clear error when only one is, rather than a worker that
    starts restores it cannot finish."""
    e = os.environ if env is None else env
    present = backup_settings(estates, e)
    if not any(present.values()):
        log.warning("backups and restores disabled: no Blob Storage and no signing key configured")
        return []
    missing = [name for name, ok in present.items() if not ok]
    if missing:
        raise WorkerConfigError(
            f"backups and restores need {' and '.join(missing)}; the other setting is present. "
            "Set the missing one, or remove both to run a failover-only worker"
        )
    backups = BackupActivities.from_env(estates, e)
    return [backups, RestoreActivities(estates, backups.signing_key), DrillActivities(estates, backups.signing_key)]


def activity_objects(estates: Estates, env: Mapping[str, str] | None = None) -> list[object]:
    recovery = recovery_activities(estates, env)
    backups = next((o for o in recovery if isinstance(o, BackupActivities)), None)
    return [
        FrontDoorActivities(estates),
        ServiceBusActivities(estates),
        SqlActivities(estates),
        CosmosActivities(estates),
        PlatformActivities(estates),
        HealthActivities(estates),
        PlanActivities(estates),
        # With a catalog the readiness checks include each tenant's newest recovery point.
        ReadinessActivities(estates, catalog=backups.catalog if backups else None),
        *recovery,
    ]


def bound_activities(objects: list[object]) -> list[Callable[..., Any]]:
    """Every ``@activity.defn`` method of the given objects, bound to its instance."""
    found: list[Callable[..., Any]] = []
    for obj in objects:
        for name in dir(type(obj)):
            member = getattr(type(obj), name, None)
            if callable(member) and hasattr(member, "__temporal_activity_definition"):
                found.append(getattr(obj, name))
    return found


def workflows() -> list[type]:
    return list(WORKFLOWS)
