"""Temporal Schedules for the recurring DR work (hourly backups, half-hourly readiness, monthly drills):
operator-friendly calendar phrases turned into Temporal schedule specs, and create-or-update of a
schedule by id so that running a ``schedule`` command twice leaves one schedule with the newest spec."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleIntervalSpec,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.client import ScheduleOverlapPolicy as Overlap

WEEKDAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4}
INTERVAL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

_ORDINAL_WEEKDAY = re.compile(
    r"^(?P<ordinal>first|second|third|fourth)\s+(?P<day>[a-z]+)\s+(?P<hour>\d{1,2}):(?P<minute>\d{2})(\s+utc)?$"
)
_DAILY = re.compile(r"^daily\s+(?P<hour>\d{1,2}):(?P<minute>\d{2})(\s+utc)?$")
_EVERY = re.compile(r"^every\s+(?P<count>\d+)\s*(?P<unit>[smhd])$")


class ScheduleSpecError(ValueError):
    """A calendar phrase or cron string that cannot become a schedule; the message says what is accepted."""


ACCEPTED = (
    "use a cron string (5 fields, UTC, e.g. '0 2 1-7 * 0'), 'first|second|third|fourth <weekday> HH:MM UTC', "
    "'daily HH:MM UTC', 'hourly' or 'every N(s|m|h|d)'"
)


def _time(hour: str, minute: str, text: str) -> tuple[int, int]:
    h, m = int(hour), int(minute)
    if not (0 <= h <= 23 and 0 <= m <= 59):
        raise ScheduleSpecError(f"calendar {text!r}: {hour}:{minute} is not a time of day (00:00 to 23:59)")
    return h, m


def parse_calendar(text: str) -> ScheduleSpec:
    """The Temporal spec for ``text``: a cron string or one of the phrases in ``ACCEPTED`` (all UTC)."""
    phrase = " ".join(text.strip().lower().split())
    if not phrase:
        raise ScheduleSpecError(f"calendar is empty: {ACCEPTED}")
    if phrase == "hourly":
        return ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(hours=1))])
    if match := _EVERY.match(phrase):
        seconds = int(match["count"]) * INTERVAL_UNITS[match["unit"]]
        if seconds < 60:
            raise ScheduleSpecError(f"calendar {text!r}: the shortest interval is 1 minute")
        return ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=seconds))])
    if match := _DAILY.match(phrase):
        hour, minute = _time(match["hour"], match["minute"], text)
        return ScheduleSpec(
            calendars=[ScheduleCalendarSpec(hour=[ScheduleRange(hour)], minute=[ScheduleRange(minute)], comment=text)]
        )
    if match := _ORDINAL_WEEKDAY.match(phrase):
        day = match["day"]
        weekday = next((i for i, name in enumerate(WEEKDAYS) if name.startswith(day) and len(day) >= 3), None)
        if weekday is None:
            raise ScheduleSpecError(f"calendar {text!r}: {day!r} is not a weekday (sunday … saturday)")
        hour, minute = _time(match["hour"], match["minute"], text)
        nth = ORDINALS[match["ordinal"]]
        # Temporal matches a calendar only when every field matches, so "first Sunday" is
        # "a Sunday that falls on day 1 to 7" (cron's day-of-month/day-of-week OR does not apply).
        return ScheduleSpec(
            calendars=[
                ScheduleCalendarSpec(
                    day_of_week=[ScheduleRange(weekday)],
                    day_of_month=[ScheduleRange(7 * nth - 6, 7 * nth)],
                    hour=[ScheduleRange(hour)],
                    minute=[ScheduleRange(minute)],
                    comment=text,
                )
            ]
        )
    fields = phrase.split()
    if len(fields) == 5 and all(re.fullmatch(r"[\d*/,\-a-z]+", f) for f in fields):
        return ScheduleSpec(cron_expressions=[phrase])
    raise ScheduleSpecError(f"calendar {text!r} is not understood: {ACCEPTED}")


@dataclass(frozen=True)
class ScheduleOutcome:
    schedule_id: str
    created: bool  # False: an existing schedule was updated in place


async def upsert_schedule(
    client: Client,
    schedule_id: str,
    action: ScheduleActionStartWorkflow,
    spec: ScheduleSpec,
    *,
    note: str,
    catchup: timedelta = timedelta(minutes=10),
) -> ScheduleOutcome:
    """Create the schedule, or replace the action and spec of the one with this id; overlap: skip
    (a run still going when the next is due means the next is skipped, never two at once)."""
    schedule = Schedule(
        action=action,
        spec=spec,
        policy=SchedulePolicy(overlap=Overlap.SKIP, catchup_window=catchup),
        state=ScheduleState(note=note),
    )
    try:
        await client.create_schedule(schedule_id, schedule)
        return ScheduleOutcome(schedule_id, created=True)
    except ScheduleAlreadyRunningError:

        def replace(current: ScheduleUpdateInput) -> ScheduleUpdate:
            state = current.description.schedule.state
            return ScheduleUpdate(
                schedule=Schedule(
                    action=action,
                    spec=spec,
                    policy=schedule.policy,
                    state=ScheduleState(note=note, paused=state.paused),
                )
            )

        await client.get_schedule_handle(schedule_id).update(replace)
        return ScheduleOutcome(schedule_id, created=False)
