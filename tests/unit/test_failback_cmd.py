"""drctl failback: argument checks, error paths and views that need no Temporal server."""

from __future__ import annotations

import contextlib
import dataclasses
import socket
from datetime import datetime
from pathlib import Path

import pytest
from rich.console import Console
from temporalio.exceptions import ApplicationError
from typer.testing import CliRunner, Result

from domain.messages.failback import FailbackResult, FailbackStatus, StepReading
from domain.messages.progress import StepTable
from starters.cli import app
from starters.failback_cmd import (
    EXIT_PAUSED,
    FailbackView,
    outcome_lines,
    parse_duration,
    parse_steps,
    result_from_failure,
    result_view,
    schedule_problems,
    status_view,
    workflow_id_for,
)

LOCAL = Path(__file__).resolve().parents[2] / "plans" / "local.toml"
WID = "failback-local-20250131T091500"


@pytest.fixture
def unreachable_env() -> dict[str, str]:
    """Environment pointing drctl at a Temporal address that refuses connections."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return {"TEMPORAL_ADDRESS": f"127.0.0.1:{port}", "DR_LOG_LEVEL": "ERROR"}


def drctl(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env=env)


def start_args(*extra: str) -> list[str]:
    return ["failback", "start", "--plan", str(LOCAL), *extra]


def readings() -> list[StepReading]:
    return [
        StepReading(25, "passed", 1, 5, 5, 0, 300.0, "ok", [], 1200.0, 0.001, 85.0, "2025-01-31T09:20:00Z"),
        StepReading(
            50, "rolled-back", 1, 2, 1, 1, 60.0, "breach", ["5xx rate 30.00% > 1.00%"], 2400.0, 0.3, 85.0, None
        ),
        StepReading(100),
    ]


def status(phase: str = "paused", **changes: object) -> FailbackStatus:
    base = FailbackStatus(
        workflow_id=WID,
        plan="local",
        primary_region="eastus",
        dr_region="westus",
        phase=phase,
        dry_run=False,
        steps=StepTable(),
        started_at="2025-01-31T09:15:00Z",
        schedule=[25, 50, 100],
        soak_seconds=300,
        interval_seconds=60,
        current_step=50,
        primary_percent=25,
        last_good_percent=25,
        readings=readings(),
        paused="SLO breach at 50 %: 5xx rate 30.00% > 1.00%; traffic rolled back to 25 %",
        breaches=1,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def result(outcome: str) -> FailbackResult:
    return FailbackResult(
        workflow_id=WID,
        plan="local",
        primary_region="eastus",
        dr_region="westus",
        outcome=outcome,
        dry_run=False,
        steps=StepTable(),
        started_at="2025-01-31T09:15:00Z",
        finished_at="2025-01-31T09:45:00Z",
        schedule=[25, 50, 100],
        primary_percent=0 if outcome == "aborted" else 100,
        readings=readings(),
        breaches=1,
    )


def rendered(renderable: object) -> str:
    out = Console(record=True, width=220)
    out.print(renderable)
    return out.export_text()


class TestStartRefusesBadInput:
    @pytest.mark.parametrize(
        ("args", "expected"),
        [
            (["--steps", "50,25,100"], "--steps: steps must strictly increase, found [50, 25, 100]"),
            (["--steps", "10,50,150"], "--steps: every step must be between 1 and 100 %"),
            (["--soak", "30s", "--interval", "1m"], "--soak: soak (30s) is shorter than the sampling interval (60s)"),
            (["--steps", "10,50"], "the last step must be 100 %"),
            (["--steps", "10,half,100"], "is not a list of whole percentages"),
            (["--soak", "5 minutes"], "is not a duration such as 60s, 5m"),
            (["--interval", "0s"], "--interval: must be at least 1s"),
        ],
        ids=["not-increasing", "over-100", "soak-shorter", "not-ending-at-100", "not-a-number", "bad-duration", "zero"],
    )
    def test_bad_schedule_exits_2_before_connecting(
        self, args: list[str], expected: str, unreachable_env: dict[str, str]
    ) -> None:
        """A schedule the plan's rules reject names the option and the rule, exits 2 and contacts no server."""
        res = drctl(*start_args(*args), env=unreachable_env)
        assert res.exit_code == 2
        assert expected in res.output
        assert "cannot reach Temporal" not in res.output

    def test_soak_shorter_than_the_plans_interval_is_refused(self, unreachable_env: dict[str, str]) -> None:
        """--soak alone is checked against the plan's 60 s interval."""
        res = drctl(*start_args("--soak", "45"), env=unreachable_env)
        assert res.exit_code == 2
        assert "soak (45s) is shorter than the sampling interval (60s)" in res.output

    def test_blank_reason_exits_2(self, unreachable_env: dict[str, str]) -> None:
        """A reason of only spaces is refused."""
        res = drctl(*start_args("--reason", "  "), env=unreachable_env)
        assert res.exit_code == 2
        assert "--reason is empty" in res.output


class TestTemporalUnreachable:
    @pytest.mark.parametrize(
        "args",
        [
            start_args("--steps", "25,50,100", "--soak", "3s", "--interval", "1s"),
            ["failback", "status", WID],
            ["failback", "pause", WID],
            ["failback", "resume", WID],
            ["failback", "abort", WID, "--reason", "5xx"],
            ["failback", "promote", WID],
        ],
        ids=["start", "status", "pause", "resume", "abort", "promote"],
    )
    def test_every_command_exits_1_with_the_hint(self, args: list[str], unreachable_env: dict[str, str]) -> None:
        """Each failback command reports an unreachable Temporal with exit code 1 and how to start it."""
        res = drctl(*args, env=unreachable_env)
        assert res.exit_code == 1
        assert "cannot reach Temporal" in res.output
        assert "drctl dev up" in res.output
        assert "Traceback" not in res.output

    def test_abort_with_blank_reason_exits_2_before_connecting(self, unreachable_env: dict[str, str]) -> None:
        """An abort without a reason is refused locally with exit code 2."""
        res = drctl("failback", "abort", WID, "--reason", " ", env=unreachable_env)
        assert res.exit_code == 2
        assert "--reason is empty" in res.output


class TestHelpers:
    def test_workflow_id_is_the_plan_and_utc_second(self) -> None:
        """The workflow id is failback-{plan}-{yyyymmddThhmmss} in UTC."""
        assert workflow_id_for("local", datetime.fromisoformat("2025-01-31T10:15:07+01:00")) == (
            "failback-local-20250131T091507"
        )

    @pytest.mark.parametrize(
        ("text", "seconds"), [("300", 300), ("60s", 60), ("5m", 300), ("1m30s", 90), ("1h", 3600), (" 2M ", 120)]
    )
    def test_durations(self, text: str, seconds: int) -> None:
        """Durations are plain seconds or h/m/s parts."""
        assert parse_duration(text) == seconds

    @pytest.mark.parametrize("text", ["", "m", "5 m", "1.5m", "-5s", "5d"])
    def test_bad_durations_are_refused(self, text: str) -> None:
        """Anything else is not a duration."""
        with pytest.raises(ValueError, match="is not a duration"):
            parse_duration(text)

    def test_steps_accept_spaces_and_percent_signs(self) -> None:
        """Steps are comma-separated whole percentages; spaces and % signs are allowed."""
        assert parse_steps("10, 25%,50 ,75,100") == [10, 25, 50, 75, 100]

    def test_schedule_problems_name_the_options(self) -> None:
        """Every broken rule is listed at once, with the option to change."""
        problems = schedule_problems([50, 20], 10, 60)
        assert len(problems) == 3
        assert problems[0].startswith("--steps: steps must strictly increase")
        assert problems[2].startswith("--soak:")
        assert schedule_problems([10, 25, 50, 75, 100], 300, 60) == []

    def test_result_is_recovered_from_a_failure(self) -> None:
        """A workflow failure's attached result (as JSON data) comes back as a FailbackResult."""
        err = ApplicationError("nothing to fail back", dataclasses.asdict(result("failed")), type="NothingToFailBack")
        recovered = result_from_failure(err)
        assert recovered is not None
        assert recovered.readings[1].last_verdict == "breach"
        assert result_from_failure(ApplicationError("x")) is None


class TestViews:
    def test_paused_status_shows_weights_readings_and_what_to_do(self) -> None:
        """A paused failback shows the current split, each step's last reading, and the three commands."""
        view = FailbackView(WID, "Running", status=status())
        text = rendered(status_view(status()))
        assert "eastus 25 % · westus 75 %" in text
        assert "SLO breach at 50 %" in text
        assert "rolled-back" in text
        assert "5xx rate 30.00% > 1.00%" in text
        assert "1200" in text
        assert "25 % → 50 % → 100 % (soak 300s, sample every 60s)" in text
        lines = "\n".join(outcome_lines(view))
        for command in ("resume", "promote", "abort"):
            assert f"drctl failback {command} {WID}" in lines
        assert view.exit_code() == EXIT_PAUSED

    def test_exit_codes_follow_the_outcome(self) -> None:
        """Succeeded is 0, aborted or failed is 1, a running shift 0, a closed one without result 1."""
        assert FailbackView(WID, "Completed", result=result("succeeded")).exit_code() == 0
        assert FailbackView(WID, "Completed", result=result("aborted")).exit_code() == 1
        assert FailbackView(WID, "Failed", result=result("failed")).exit_code() == 1
        assert FailbackView(WID, "Running", status=status("shifting", paused=None)).exit_code() == 0
        assert FailbackView(WID, "Terminated").exit_code() == 1

    def test_result_view_shows_the_final_split(self) -> None:
        """A finished failback shows its outcome and where traffic ended."""
        text = rendered(result_view(result("aborted")))
        assert "outcome: aborted" in text
        assert "eastus 0 % · westus 100 %" in text
