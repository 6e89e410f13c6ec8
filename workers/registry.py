"""What a dr-worker serves: the workflow classes and the activity methods bound to their clients."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from activities.azure import Estates
from activities.cosmos import CosmosActivities
from activities.frontdoor import FrontDoorActivities
from activities.health import HealthActivities
from activities.plans import PlanActivities
from activities.platform import PlatformActivities
from activities.readiness import ReadinessActivities
from activities.servicebus import ServiceBusActivities
from activities.sql import SqlActivities
from workflows import WORKFLOWS


def activity_objects(estates: Estates) -> list[object]:
    return [
        FrontDoorActivities(estates),
        ServiceBusActivities(estates),
        SqlActivities(estates),
        CosmosActivities(estates),
        PlatformActivities(estates),
        HealthActivities(estates),
        PlanActivities(estates),
        ReadinessActivities(estates),
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
