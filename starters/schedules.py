"""Temporal Schedules for the recurring DR work (hourly backups, half-hourly readiness, monthly drills):
operator-friendly calendar phrases turned into Temporal schedule specs, create-or-update of a
schedule by id so that running a ``schedule`` command twice leaves one schedule with the newest spec,
and the core the ``schedule`` commands share: delete, create or update, pause or unpause a schedule,
then print it (its state and next runs) for people or as JSON."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import typer
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleDescription,
    ScheduleIntervalSpec,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.client import ScheduleOverlapPolicy as Overlap
from temporalio.service import RPCError

from starters.output import EXIT_INVALID, emit_json, fail
from starters.temporal_cli import CommandError, not_found, rpc_message

WEEKDAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4}
INTERVAL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
SHOWN_RUNS = 3  # how many upcoming and recent runs of a schedule the commands show
SETTLE_ATTEMPTS, SETTLE_PAUSE = 50, 0.1  # how long a command waits for a pause or unpause to show: 5 s
T = TypeVar("T")

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


def calendar_or_exit(text: str) -> ScheduleSpec:
    """``--calendar``'s spec, or what is wrong with it printed and exit code 2."""
    try:
        return parse_calendar(text)
    except ScheduleSpecError as exc:
        fail(f"--calendar: {exc}", EXIT_INVALID)


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
    paused: bool | None = None,
    catchup: timedelta = timedelta(minutes=10),
) -> ScheduleOutcome:
    """Create the schedule, or replace the action and spec of the one with this id; overlap: skip
    (a run still going when the next is due means the next is skipped, never two at once).
    ``paused`` pauses or unpauses it in the same request; None leaves an existing schedule's state
    alone (a new one starts running). One request, because a pause sent apart from an update can be
    applied before it and then undone by the update's state."""
    schedule = Schedule(
        action=action,
        spec=spec,
        policy=SchedulePolicy(overlap=Overlap.SKIP, catchup_window=catchup),
        state=ScheduleState(note=note, paused=bool(paused)),
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
                    state=ScheduleState(note=note, paused=state.paused if paused is None else paused),
                )
            )

        await client.get_schedule_handle(schedule_id).update(replace)
        return ScheduleOutcome(schedule_id, created=False)


# ---- the core of the ``schedule`` commands ------------------------------------------------------------


class ScheduleCommandError(CommandError):
    """A request to Temporal about a schedule could not be carried out; the message says why."""


@dataclass(frozen=True)
class ScheduleChange:
    """What a ``schedule`` command did to one schedule, and the schedule as it is afterwards."""

    schedule_id: str
    outcome: ScheduleOutcome | None = None  # created or updated; None: deleted, or only paused or unpaused
    description: ScheduleDescription | None = None  # None once deleted

    @property
    def deleted(self) -> bool:
        return self.description is None

    @property
    def created(self) -> bool:
        """Whether the command created the schedule (rather than updating, pausing or deleting one)."""
        return self.outcome is not None and self.outcome.created

    def upcoming(self, count: int = SHOWN_RUNS) -> list[datetime]:
        """When the schedule fires next."""
        return [] if self.description is None else list(self.description.info.next_action_times[:count])

    def next_runs(self, count: int = SHOWN_RUNS) -> list[str]:
        """When the schedule fires next (ISO 8601 UTC)."""
        return [t.astimezone(UTC).isoformat().replace("+00:00", "Z") for t in self.upcoming(count)]

    def facts(self, *, state: bool = True) -> dict[str, Any]:
        """The schedule as drctl prints it: id and next runs; with ``state`` also paused, note and recent runs."""
        facts: dict[str, Any] = {"schedule_id": self.schedule_id, "next_runs": self.next_runs()}
        if state and self.description is not None:
            schedule, info = self.description.schedule, self.description.info
            facts |= {
                "paused": schedule.state.paused,
                "note": schedule.state.note,
                "recent_runs": [
                    a.action.workflow_id
                    for a in info.recent_actions[-SHOWN_RUNS:]
                    if isinstance(a.action, ScheduleActionExecutionStartWorkflow)
                ],
            }
        return facts


async def _schedule_call(call: Awaitable[T], schedule_id: str, verb: str, missing: str) -> T:
    """``call`` with Temporal's refusals as ScheduleCommandError: ``missing`` when there is no such schedule."""
    try:
        return await call
    except RPCError as exc:
        if not_found(exc):
            raise ScheduleCommandError(missing) from exc
        raise ScheduleCommandError(rpc_message(exc, f"cannot {verb} schedule {schedule_id}")) from exc


async def apply_schedule(
    client: Client,
    schedule_id: str,
    upsert: Callable[[bool | None], Awaitable[ScheduleOutcome]] | None,
    *,
    delete: bool = False,
    paused: bool | None = None,
    missing: str | None = None,
) -> ScheduleChange:
    """Delete the schedule; or create or update it with ``upsert(paused)`` (None: leave its action and
    spec alone), pause or unpause it when ``paused`` is given (in the same request as the update when
    there is one), and describe it. ScheduleCommandError when Temporal refuses, saying ``missing`` when
    the schedule to delete, pause or describe does not exist."""
    handle = client.get_schedule_handle(schedule_id)
    gone = missing or f"there is no schedule {schedule_id}"
    if delete:
        await _schedule_call(handle.delete(), schedule_id, "delete", gone)
        return ScheduleChange(schedule_id)
    outcome = None
    if upsert is not None:
        try:
            outcome = await upsert(paused)
        except RPCError as exc:
            raise ScheduleCommandError(rpc_message(exc, f"cannot create or update schedule {schedule_id}")) from exc
    elif paused is not None:
        note = f"{'paused' if paused else 'unpaused'} by drctl"
        await _schedule_call(
            handle.pause(note=note) if paused else handle.unpause(note=note), schedule_id, "change", gone
        )
    description = await _schedule_call(handle.describe(), schedule_id, "describe", gone)
    # Pause, unpause and update reach the schedule as signals; a describe right after them may be
    # answered before they are applied, so wait (briefly) until it shows the state asked for.
    for _ in range(SETTLE_ATTEMPTS):
        if paused is None or description.schedule.state.paused == paused:
            break
        await asyncio.sleep(SETTLE_PAUSE)
        description = await _schedule_call(handle.describe(), schedule_id, "describe", gone)
    return ScheduleChange(schedule_id, outcome, description)


def print_schedule(
    change: ScheduleChange,
    *,
    as_json: bool,
    calendar: str,
    task_queue: str,
    runs: str,
    summary: str,
    state: bool = True,
    notes: Sequence[str] = (),
) -> None:
    """What a ``schedule`` command prints: that the schedule was deleted; or, as JSON, its facts
    (with ``state``: paused, note and recent runs) plus the calendar and task queue when it was
    created or updated; for people, what was done (``summary`` says what each run does), whether it
    is paused (with ``state``), its next runs, ``notes`` and the workflow ids ``runs``-<time> its runs get."""
    if change.deleted:
        if as_json:
            emit_json({"schedule_id": change.schedule_id, "deleted": True})
        else:
            typer.echo(f"deleted schedule {change.schedule_id}")
        return
    facts = change.facts(state=state)
    if change.outcome is not None:
        facts |= {"created": change.created, "calendar": calendar, "task_queue": task_queue}
    if as_json:
        emit_json(facts)
        return
    if change.outcome is not None:
        verb = "created" if change.created else "updated"
        typer.echo(f"{verb} schedule {change.schedule_id}: {calendar}, {summary} (overlap: skip)")
    if state:
        typer.echo(f"  paused:    {'yes' if facts['paused'] else 'no'}")
    typer.echo(f"  next runs: {', '.join(facts['next_runs']) or 'none'}")
    for note in notes:
        typer.echo(note)
    typer.echo(f"  runs are:  {runs}-<time> on task queue {task_queue}")
