"""Rich views of a DR workflow's progress: the step table every workflow keeps, and the status
and result of a failover. Failback and restore reuse ``steps_table`` and ``facts``."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from domain.messages.failover import FailoverResult, FailoverStatus, RepinSummary
from domain.messages.progress import DONE, FAILED, PENDING, PLANNED, RUNNING, SKIPPED, StepTable

# Icon and style per step status; the icons match StepTable.markdown() in the Temporal UI.
STATUS_STYLES: dict[str, tuple[str, str]] = {
    PENDING: ("·", "dim"),
    RUNNING: ("▶", "bold yellow"),
    DONE: ("✓", "green"),
    FAILED: ("✗", "bold red"),
    SKIPPED: ("–", "dim"),  # noqa: RUF001 - the same en dash as StepTable.markdown()
    PLANNED: ("○", "cyan"),
}

OUTCOME_STYLES = {
    "succeeded": "bold green",
    "dry-run": "bold cyan",
    "slo-not-met": "bold yellow",
    "aborted": "bold yellow",
    "failed": "bold red",
}


def parse_time(value: str | None) -> datetime | None:
    """An ISO 8601 timestamp as the workflows write it (``...Z``), or None when absent or malformed."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_seconds(seconds: float | None) -> str:
    """``12.3s`` under a minute, ``4m05s`` under an hour, ``2h03m`` beyond; ``n/a`` when unknown."""
    if seconds is None:
        return "n/a"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{(whole % 3600) // 60:02d}m"


def step_duration(started_at: str | None, finished_at: str | None, now: datetime) -> str:
    """How long a step took, or has been running for; empty when it has not started."""
    start = parse_time(started_at)
    if start is None:
        return ""
    end = parse_time(finished_at) or now
    return format_seconds(max((end - start).total_seconds(), 0.0))


def steps_table(
    table: StepTable, *, title: str | None = None, show_calls: bool = False, now: datetime | None = None
) -> Table:
    """One row per step: icon, title, status, time taken and detail (plus the ARM calls when asked)."""
    moment = now or datetime.now(UTC)
    result = Table(title=title, title_justify="left", header_style="bold", expand=False)
    result.add_column("", width=1, no_wrap=True)
    result.add_column("step", overflow="fold")
    result.add_column("status", no_wrap=True)
    result.add_column("time", justify="right", no_wrap=True)
    result.add_column("detail", overflow="fold")
    for step in table.steps:
        icon, style = STATUS_STYLES.get(step.status, ("?", ""))
        detail = Text(step.detail)
        if show_calls and step.calls:
            detail.append("\n" + "\n".join(f"  {call}" for call in step.calls), style="cyan")
        result.add_row(
            Text(icon, style=style),
            Text(step.title),
            Text(step.status, style=style),
            Text(step_duration(step.started_at, step.finished_at, moment), style="dim"),
            detail,
        )
    return result


def facts(rows: Iterable[tuple[str, Any]]) -> Table:
    """Label/value lines without borders; rows whose value is None are left out."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for label, value in rows:
        if value is None:
            continue
        grid.add_row(label, value if isinstance(value, Text) else Text(str(value)))
    return grid


def rpo_text(rpo_seconds: float | None) -> str:
    """The data-loss window; zero means every committed write reached the DR region."""
    if rpo_seconds is None:
        return "n/a"
    if rpo_seconds == 0:
        return "0s (no data loss)"
    return f"{format_seconds(rpo_seconds)} (data-loss window)"


def slo_text(green: bool | None, last: str = "") -> Text | None:
    if green is None and not last:
        return None
    if green is None:
        return Text(last)
    label = Text("green", style="green") if green else Text("not green", style="bold yellow")
    return label + Text(f" ({last})" if last else "")


def repin_text(repin: RepinSummary | None) -> str | None:
    if repin is None:
        return None
    return (
        f"{repin.moved} moved, {repin.already_there} already there, {repin.not_allowed} kept home by residency "
        f"({repin.considered} considered, {repin.batches} batches)"
    )


def header(title: str, *, dry_run: bool = False, badge: str | None = None, badge_style: str = "bold") -> Text:
    text = Text(title, style="bold")
    if dry_run:
        text.append("  [dry run]", style="cyan")
    if badge:
        text.append(f"  {badge}", style=badge_style)
    return text


def failover_title(plan: str, from_region: str, to_region: str) -> str:
    return f"Failover {plan}: {from_region} → {to_region}"


def status_view(status: FailoverStatus, *, now: datetime | None = None) -> RenderableType:
    """A running (or just finished) failover: phase, step table, RTO/RPO/SLO so far."""
    phase_style = "bold red" if status.phase == "failed" else "bold"
    return Group(
        header(
            failover_title(status.plan, status.from_region, status.to_region),
            dry_run=status.dry_run,
            badge=f"phase: {status.phase}",
            badge_style=phase_style,
        ),
        facts([("workflow", status.workflow_id), ("started", status.started_at or None)]),
        steps_table(status.steps, show_calls=status.dry_run, now=now),
        facts(
            [
                ("RTO", format_seconds(status.rto_seconds) if status.rto_seconds is not None else None),
                ("RPO", rpo_text(status.rpo_seconds) if status.rpo_seconds is not None else None),
                ("SLO", slo_text(status.slo_green, status.last_slo)),
                ("abort requested", status.abort_requested),
                ("extended outage", None if status.dry_run else status.extended_outage),
                ("re-pinning", repin_text(status.repin)),
                ("error", Text(status.error, style="red") if status.error else None),
            ]
        ),
    )


def result_view(result: FailoverResult, *, now: datetime | None = None) -> RenderableType:
    """A finished failover: outcome, measured RTO and RPO, what was done and what was not."""
    parts: list[RenderableType] = [
        header(
            failover_title(result.plan, result.from_region, result.to_region),
            dry_run=result.dry_run,
            badge=f"outcome: {result.outcome}",
            badge_style=OUTCOME_STYLES.get(result.outcome, "bold"),
        ),
        facts(
            [
                ("workflow", result.workflow_id),
                ("started", result.started_at or None),
                ("finished", result.finished_at or None),
            ]
        ),
        steps_table(result.steps, now=now or parse_time(result.finished_at)),
    ]
    rows: list[tuple[str, Any]] = []
    if not result.dry_run:
        validated = result.outcome in ("succeeded", "slo-not-met")
        rows += [
            ("RTO", format_seconds(result.rto_seconds)),
            ("RPO", rpo_text(result.rpo_seconds)),
            ("SLO", slo_text(result.slo_green) if validated else None),
        ]
    rows += [
        ("done", ", ".join(result.done) or "nothing"),
        ("not done", ", ".join(result.not_done) or "nothing"),
        ("re-pinning", repin_text(result.repin)),
        (
            "failure" if result.outcome == "failed" else "reason",
            Text(result.reason, style="red" if result.outcome == "failed" else "") if result.reason else None,
        ),
    ]
    parts.append(facts(rows))
    if result.dry_run:
        parts.append(planned_calls_view(result.planned_calls))
    return Group(*parts)


def planned_calls_view(calls: Sequence[str]) -> RenderableType:
    """What a dry run would have changed, one call per line."""
    if not calls:
        return Text("planned calls: none (the estate is already in the target state)", style="cyan")
    text = Text(f"planned calls ({len(calls)}):\n", style="bold cyan")
    text.append("\n".join(f"  {call}" for call in calls))
    return text


def as_dict(value: Any) -> Any:
    """A message dataclass as plain JSON-ready data (None stays None)."""
    if value is None:
        return None
    return dataclasses.asdict(value)
