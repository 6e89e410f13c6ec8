"""Rich views of a failover: step table, status while running, result when done."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from rich.console import Console, RenderableType

from domain.messages.failover import FailoverResult, FailoverStatus, RepinSummary
from domain.messages.progress import DONE, FAILED, PENDING, PLANNED, RUNNING, SKIPPED, StepTable
from starters.progress_view import format_seconds, result_view, status_view, steps_table

NOW = datetime(2025, 1, 31, 9, 16, 0, tzinfo=UTC)


def render(renderable: RenderableType) -> str:
    """The text a 160-column terminal would show."""
    console = Console(record=True, width=160, color_system=None)
    console.print(renderable)
    return console.export_text()


def table_with(*rows: tuple[str, str, str, str]) -> StepTable:
    """A step table of (key, title, status, detail) rows."""
    table = StepTable()
    for key, title, status, detail in rows:
        step = table.add(key, title)
        step.status = status
        step.detail = detail
    return table


def line_of(text: str, needle: str, *, starts: bool = False) -> str:
    """The one rendered line containing (or, with ``starts``, beginning with) ``needle``."""
    lines = [line for line in text.splitlines() if (line.startswith(needle) if starts else needle in line)]
    assert len(lines) == 1, f"{needle!r} on {len(lines)} lines:\n{text}"
    return lines[0]


class TestStepsTable:
    def test_every_step_shows_title_status_and_icon(self) -> None:
        """Each step renders on its own row with its title, status word and icon."""
        table = table_with(
            ("frontdoor", "Front Door: traffic to westus", DONE, "changed app-westus"),
            ("sql:fog", "SQL failover group fog", RUNNING, "planned failover"),
            ("cosmos", "Cosmos DB write region", PENDING, ""),
            ("slo", "SLO validation", FAILED, "not green within 300s"),
            ("repin", "Extended outage: re-pin tenants", SKIPPED, "aborted"),
        )
        text = render(steps_table(table, now=NOW))
        for title, status, icon in [
            ("Front Door: traffic to westus", "done", "✓"),
            ("SQL failover group fog", "running", "▶"),
            ("Cosmos DB write region", "pending", "·"),
            ("SLO validation", "failed", "✗"),
            ("Extended outage: re-pin tenants", "skipped", "–"),  # noqa: RUF001 - the table's en dash
        ]:
            row = line_of(text, title)
            assert status in row
            assert icon in row
        assert "changed app-westus" in line_of(text, "Front Door")

    def test_time_is_duration_or_elapsed(self) -> None:
        """A finished step shows how long it took; a running one how long it has run until now."""
        table = table_with(("a", "Step A", DONE, ""), ("b", "Step B", RUNNING, ""))
        table.steps[0].started_at, table.steps[0].finished_at = "2025-01-31T09:15:00Z", "2025-01-31T09:15:12.5Z"
        table.steps[1].started_at = "2025-01-31T09:14:00Z"
        text = render(steps_table(table, now=NOW))
        assert "12.5s" in line_of(text, "Step A")
        assert "2m00s" in line_of(text, "Step B")

    def test_planned_calls_shown_when_asked(self) -> None:
        """A dry run's planned ARM calls appear under their step."""
        table = table_with(("cosmos", "Cosmos DB write region", PLANNED, "1 call"))
        table.steps[0].calls.append("POST /cosmos/failoverPriorityChange")
        assert "POST /cosmos/failoverPriorityChange" in render(steps_table(table, show_calls=True, now=NOW))
        assert "POST /cosmos/failoverPriorityChange" not in render(steps_table(table, now=NOW))

    def test_details_are_not_rich_markup(self) -> None:
        """Square brackets in a detail (Azure messages have them) print literally."""
        table = table_with(("x", "Step X", FAILED, "[bold]not markup[/bold]"))
        assert "[bold]not markup[/bold]" in render(steps_table(table, now=NOW))


class TestStatusView:
    def test_running_failover_shows_phase_steps_and_rto(self) -> None:
        """A status shows the route, phase, step rows, RTO, RPO and the SLO reading."""
        status = FailoverStatus(
            workflow_id="failover-local-20250131T091500",
            plan="local",
            from_region="eastus",
            to_region="westus",
            phase="watching",
            dry_run=False,
            steps=table_with(
                ("frontdoor", "Front Door: traffic to westus", DONE, ""),
                ("repin", "Extended outage: re-pin tenants", RUNNING, ""),
            ),
            started_at="2025-01-31T09:15:00Z",
            rto_seconds=42.3,
            rpo_seconds=0.0,
            slo_green=True,
            last_slo="ok: 120 req, 5xx 0.00%",
        )
        text = render(status_view(status, now=NOW))
        assert "Failover local: eastus → westus" in text
        assert "phase: watching" in text
        assert "Front Door: traffic to westus" in text
        assert "RTO" in line_of(text, "42.3s")
        assert "0s (no data loss)" in text
        assert "green (ok: 120 req" in text

    def test_unknown_rto_is_left_out_while_running(self) -> None:
        """Before the SLO is green the status has no RTO line rather than a misleading zero."""
        status = FailoverStatus(
            "w", "local", "eastus", "westus", "cutover", False, StepTable(), "", abort_requested="wrong plan"
        )
        text = render(status_view(status, now=NOW))
        assert "RTO" not in text
        assert "abort requested" in line_of(text, "wrong plan")


class TestResultView:
    def result(self, outcome: str, **changes: object) -> FailoverResult:
        base = FailoverResult(
            workflow_id="failover-local-20250131T091500",
            plan="local",
            from_region="eastus",
            to_region="westus",
            outcome=outcome,
            dry_run=False,
            steps=table_with(("frontdoor", "Front Door: traffic to westus", DONE, "")),
            started_at="2025-01-31T09:15:00Z",
            finished_at="2025-01-31T09:16:00Z",
            rto_seconds=61.0,
            rpo_seconds=4.5,
            slo_green=outcome == "succeeded",
            done=["frontdoor", "servicebus"],
            not_done=["repin"],
            repin=RepinSummary(considered=10, moved=7, already_there=1, not_allowed=2, batches=1),
        )
        for key, value in changes.items():
            setattr(base, key, value)
        return base

    def test_success_shows_outcome_rto_rpo_and_what_was_done(self) -> None:
        """A finished failover shows its outcome, RTO, the data-loss window and done / not done."""
        text = render(result_view(self.result("succeeded")))
        assert "outcome: succeeded" in text
        assert "1m01s" in line_of(text, "RTO")
        assert "4.5s (data-loss window)" in line_of(text, "RPO")
        assert "frontdoor, servicebus" in line_of(text, "done ", starts=True)
        assert "repin" in line_of(text, "not done", starts=True)
        assert "7 moved" in text

    def test_failure_shows_the_reason_as_failure(self) -> None:
        """A failed failover labels its reason as the failure and hides the SLO it never reached."""
        text = render(result_view(self.result("failed", reason="Cosmos DB refused: region offline")))
        assert "Cosmos DB refused: region offline" in line_of(text, "failure")
        assert "SLO" not in text

    def test_dry_run_lists_planned_calls(self) -> None:
        """A dry run prints every call it would make and no RTO."""
        calls = ["PATCH /origins/app-westus {priority: 1}", "POST /failoverGroups/fog/failover"]
        text = render(result_view(self.result("dry-run", dry_run=True, planned_calls=calls)))
        assert "planned calls (2)" in text
        for call in calls:
            assert call in text
        assert "RTO" not in text


class TestFormatSeconds:
    @pytest.mark.parametrize(
        ("seconds", "text"), [(None, "n/a"), (0.04, "0.0s"), (59.94, "59.9s"), (125, "2m05s"), (7380, "2h03m")]
    )
    def test_human_durations(self, seconds: float | None, text: str) -> None:
        """Durations read as seconds, minutes or hours depending on size."""
        assert format_seconds(seconds) == text
