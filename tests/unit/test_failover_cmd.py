"""drctl failover and drctl dev: argument checks and error paths that need no Temporal server."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.exceptions import ActivityError, ApplicationError, RetryState
from typer.testing import CliRunner, Result

from domain.messages.failover import FailoverResult, FailoverStatus
from domain.messages.progress import StepTable
from domain.plan import DrPlan
from starters.cli import app
from starters.dev_cmd import load_config, save_config, stack_env
from starters.failover_cmd import (
    EXIT_SLO_NOT_MET,
    FailoverView,
    failure_message,
    parse_outage_start,
    region_problem,
    result_from_failure,
    ui_url,
    workflow_id_for,
)
from starters.stack import StackConfig
from workers.connection import TemporalSettings

PLANS = Path(__file__).resolve().parents[2] / "plans"
LOCAL = PLANS / "local.toml"


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture
def unreachable_env() -> dict[str, str]:
    """Environment pointing drctl at a Temporal address that refuses connections."""
    return {"TEMPORAL_ADDRESS": f"127.0.0.1:{closed_port()}", "DR_LOG_LEVEL": "ERROR"}


def drctl(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env=env)


def start_args(*extra: str, plan: Path = LOCAL, frm: str = "eastus", to: str = "westus") -> list[str]:
    return ["failover", "start", "--plan", str(plan), "--from", frm, "--to", to, "--reason", "eastus down", *extra]


def result(outcome: str, *, dry_run: bool = False) -> FailoverResult:
    return FailoverResult(
        workflow_id="failover-local-20250131T091500",
        plan="local",
        from_region="eastus",
        to_region="westus",
        outcome=outcome,
        dry_run=dry_run,
        steps=StepTable(),
        started_at="2025-01-31T09:15:00Z",
        finished_at="2025-01-31T09:16:00Z",
        rto_seconds=42.0,
        rpo_seconds=0.0,
        slo_green=outcome == "succeeded",
        done=["frontdoor"],
        not_done=["cosmos"],
    )


def status(phase: str, *, slo_green: bool | None = None, dry_run: bool = False) -> FailoverStatus:
    return FailoverStatus(
        workflow_id="failover-local-20250131T091500",
        plan="local",
        from_region="eastus",
        to_region="westus",
        phase=phase,
        dry_run=dry_run,
        steps=StepTable(),
        started_at="2025-01-31T09:15:00Z",
        slo_green=slo_green,
    )


class TestStartRefusesBadInput:
    def test_invalid_plan_exits_2_naming_the_field(self, tmp_path: Path, unreachable_env: dict[str, str]) -> None:
        """An invalid plan prints its field and problem and exits 2 before contacting Temporal."""
        shutil.copy(PLANS / "local-tenants.csv", tmp_path / "local-tenants.csv")
        broken = tmp_path / "broken.toml"
        broken.write_text(
            LOCAL.read_text(encoding="utf-8").replace('primary_region = "eastus"', 'primary_region = "eastuss"'),
            encoding="utf-8",
        )
        res = drctl(*start_args(plan=broken), env=unreachable_env)
        assert res.exit_code == 2
        assert "plan.primary_region" in res.output
        assert "cannot reach Temporal" not in res.output

    def test_same_source_and_target_exits_2(self, unreachable_env: dict[str, str]) -> None:
        """--from equal to --to is refused with both options named and exit code 2."""
        res = drctl(*start_args(frm="eastus", to="eastus"), env=unreachable_env)
        assert res.exit_code == 2
        assert "--from and --to are both eastus" in res.output
        assert "cannot reach Temporal" not in res.output

    def test_unknown_region_exits_2_with_valid_choices(self, unreachable_env: dict[str, str]) -> None:
        """A region outside the plan names the option and lists the plan's regions."""
        res = drctl(*start_args(to="northeurope"), env=unreachable_env)
        assert res.exit_code == 2
        assert "--to 'northeurope' is not a region of plan local" in res.output
        assert "valid choices: eastus, westus" in res.output

    def test_outage_start_without_timezone_exits_2(self, unreachable_env: dict[str, str]) -> None:
        """--outage-started-at without a timezone is refused, naming the option."""
        res = drctl(*start_args("--outage-started-at", "2025-01-31T09:15:00"), env=unreachable_env)
        assert res.exit_code == 2
        assert "--outage-started-at" in res.output
        assert "no timezone" in res.output

    def test_blank_reason_exits_2(self, unreachable_env: dict[str, str]) -> None:
        """A reason of only spaces is refused: every failover must say why."""
        args = start_args()
        args[args.index("--reason") + 1] = "   "
        res = drctl(*args, env=unreachable_env)
        assert res.exit_code == 2
        assert "--reason is empty" in res.output


class TestTemporalUnreachable:
    def test_start_exits_1_with_the_hint(self, unreachable_env: dict[str, str]) -> None:
        """A valid request against a closed Temporal port exits 1 and says how to start the stack."""
        res = drctl(*start_args(), env=unreachable_env)
        assert res.exit_code == 1
        assert f"cannot reach Temporal at {unreachable_env['TEMPORAL_ADDRESS']}" in res.output
        assert "drctl dev up" in res.output

    @pytest.mark.parametrize(
        "args",
        [
            ["failover", "status", "failover-local-20250131T091500"],
            ["failover", "abort", "failover-local-20250131T091500", "--reason", "wrong plan"],
            ["failover", "recovered", "failover-local-20250131T091500"],
            ["failover", "list", "--all"],
        ],
        ids=["status", "abort", "recovered", "list"],
    )
    def test_other_commands_exit_1_with_the_hint(self, args: list[str], unreachable_env: dict[str, str]) -> None:
        """Every failover command reports an unreachable Temporal the same way, with exit code 1."""
        res = drctl(*args, env=unreachable_env)
        assert res.exit_code == 1
        assert "cannot reach Temporal" in res.output
        assert "Traceback" not in res.output

    def test_abort_with_blank_reason_exits_2_before_connecting(self, unreachable_env: dict[str, str]) -> None:
        """An abort without a reason is refused locally with exit code 2."""
        res = drctl("failover", "abort", "failover-local-20250131T091500", "--reason", " ", env=unreachable_env)
        assert res.exit_code == 2
        assert "--reason is empty" in res.output


class TestHelpers:
    def test_workflow_id_is_the_plan_and_utc_second(self) -> None:
        """The workflow id is failover-{plan}-{yyyymmddThhmmss} in UTC, whatever the caller's zone."""
        moment = datetime.fromisoformat("2025-01-31T10:15:07+01:00")
        assert workflow_id_for("local", moment) == "failover-local-20250131T091507"

    def test_ui_url_uses_dr_ui_url_and_quotes_the_id(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The UI link comes from DR_UI_URL with namespace and id path-quoted."""
        monkeypatch.setenv("DR_UI_URL", "https://temporal.example/")
        settings = TemporalSettings(namespace="dr prod")
        assert (
            ui_url(settings, "failover-a/b") == "https://temporal.example/namespaces/dr%20prod/workflows/failover-a%2Fb"
        )

    def test_ui_url_defaults_to_the_dev_server(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without DR_UI_URL the link points at the local dev server's UI."""
        monkeypatch.delenv("DR_UI_URL", raising=False)
        assert ui_url(TemporalSettings(), "w1") == "http://127.0.0.1:8233/namespaces/default/workflows/w1"

    def test_outage_start_is_normalised_to_utc(self) -> None:
        """An outage start with an offset is stored as UTC with a Z suffix."""
        assert parse_outage_start("2025-01-31T10:15:00+01:00") == "2025-01-31T09:15:00Z"

    def test_outage_start_in_the_future_is_refused(self) -> None:
        """An outage cannot start in the future."""
        now = datetime(2025, 1, 31, 9, 0, tzinfo=UTC)
        with pytest.raises(ValueError, match="in the future"):
            parse_outage_start("2025-01-31T10:00:00Z", now)

    def test_region_problem_accepts_a_real_failover(self, plan: DrPlan) -> None:
        """Both plan regions, different from each other, are a valid failover."""
        assert region_problem(plan, plan.primary_region, plan.dr_region) is None
        assert region_problem(plan, plan.dr_region, plan.primary_region) is None

    def test_region_problem_names_the_bad_option(self, plan: DrPlan) -> None:
        """An unknown source region is blamed on --from."""
        problem = region_problem(plan, "uksouth", plan.dr_region)
        assert problem is not None
        assert problem[0] == "--from"


class TestOutcomes:
    @pytest.mark.parametrize(
        ("outcome", "code"),
        [("succeeded", 0), ("dry-run", 0), ("slo-not-met", EXIT_SLO_NOT_MET), ("aborted", 1), ("failed", 1)],
    )
    def test_exit_code_follows_the_result(self, outcome: str, code: int) -> None:
        """A closed failover's exit code follows its outcome."""
        view = FailoverView("w", "Completed", result=result(outcome, dry_run=outcome == "dry-run"))
        assert view.exit_code() == code

    def test_watching_with_green_slo_is_success(self) -> None:
        """A failover past its cut-over with a green SLO exits 0 while it keeps watching."""
        assert FailoverView("w", "Running", status=status("watching", slo_green=True)).exit_code() == 0

    def test_watching_without_green_slo_exits_3(self) -> None:
        """A failover past its cut-over whose SLO never turned green exits 3."""
        view = FailoverView("w", "Running", status=status("watching", slo_green=False))
        assert view.exit_code() == EXIT_SLO_NOT_MET
        assert view.settled

    def test_terminated_without_result_exits_1(self) -> None:
        """A workflow that closed without a result (terminated) is a failure."""
        assert FailoverView("w", "Terminated", failure="terminated by admin").exit_code() == 1

    def test_result_is_recovered_from_failure_details(self) -> None:
        """The FailoverResult a failed workflow attaches (decoded as a dict) becomes a dataclass again."""
        detail = dataclasses.asdict(result("failed"))
        recovered = result_from_failure(ApplicationError("failover failed", detail, type="FailoverFailed"))
        assert recovered is not None
        assert recovered.outcome == "failed"
        assert recovered.done == ["frontdoor"]
        assert isinstance(recovered.steps, StepTable)

    def test_failure_without_result_details_gives_none(self) -> None:
        """A failure carrying some other detail (a readiness report) yields no result."""
        assert result_from_failure(ApplicationError("refused", {"checks": []})) is None

    def test_failure_message_is_the_innermost_application_error(self) -> None:
        """An activity failure's message is its ApplicationError's, not the wrapper's."""
        err = ActivityError(
            "activity failed",
            scheduled_event_id=1,
            started_event_id=2,
            identity="w",
            activity_type="plan.describe",
            activity_id="1",
            retry_state=RetryState.NON_RETRYABLE_FAILURE,
        )
        err.__cause__ = ApplicationError("plan local is not loaded by any worker", type="PlanNotLoaded")
        assert failure_message(err) == "plan local is not loaded by any worker"


class TestDevCommands:
    def test_env_prints_exports_of_the_saved_stack(self, tmp_path: Path) -> None:
        """`dev env` prints shell-quoted export lines for the stack `up` saved in the state folder."""
        config = StackConfig(state_dir=tmp_path.resolve(), plans=(LOCAL,), temporal_port=17233, emulator_port=18443)
        save_config(config)
        res = drctl("dev", "env", "--state-dir", str(tmp_path))
        assert res.exit_code == 0
        assert "export TEMPORAL_ADDRESS=127.0.0.1:17233" in res.output
        assert "export DR_OPS_ENDPOINT='https://127.0.0.1:18443/regions/{region}'" in res.output
        assert f"export DR_PLANS={LOCAL}" in res.output
        assert "export DR_BLOB_ENDPOINT=http://127.0.0.1:10000/devstoreaccount1" in res.output
        assert "AccountKey" not in res.output

    def test_saved_config_round_trips(self, tmp_path: Path) -> None:
        """What `up` saves is what `down`, `status` and `env` read back."""
        config = StackConfig(state_dir=tmp_path.resolve(), plans=(LOCAL,), ui_port=18233, task_queue="q1")
        save_config(config)
        assert load_config(tmp_path) == config
        assert stack_env(config)["DR_UI_URL"] == "http://127.0.0.1:18233"

    def test_status_of_a_stopped_stack(self, tmp_path: Path) -> None:
        """`dev status --json` reports every part stopped when nothing runs."""
        res = drctl("dev", "status", "--state-dir", str(tmp_path), "--json")
        assert res.exit_code == 0
        parts = json.loads(res.stdout)
        assert set(parts) == {"temporal", "emulator", "azurite", "worker"}
        assert not any(part["running"] for part in parts.values())

    def test_down_when_nothing_runs(self, tmp_path: Path) -> None:
        """`dev down` on an idle state folder says nothing was running and succeeds."""
        res = drctl("dev", "down", "--state-dir", str(tmp_path))
        assert res.exit_code == 0
        assert "nothing was running" in res.output

    def test_up_refuses_an_invalid_plan(self, tmp_path: Path) -> None:
        """`dev up` validates its plans before starting any process (exit 2, nothing started)."""
        broken = tmp_path / "broken.toml"
        broken.write_text("[plan]\nname = 'x'\n", encoding="utf-8")
        res = drctl("dev", "up", "--state-dir", str(tmp_path / "state"), "--plan", str(broken))
        assert res.exit_code == 2
        assert "invalid plan" in res.output
        assert not (tmp_path / "state" / "temporal.pid").exists()
