"""drctl backup: argument checks that need no server, list against a SQLite catalog, run against
BackupWorkflow on the time-skipping test server with faked activities, and schedule on a dev server
(the test server has no schedule API)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import json
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from temporalio.client import WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from typer.testing import CliRunner, Result

from activities.catalog import BackupCatalog
from domain.messages.backups import BACKUP_FULL, STATUS_IN_PROGRESS, Package, RecoveryPoint, utc_iso
from domain.messages.restore import BackupInput, BackupResult, backup_schedule_id
from domain.plan import DrPlan
from starters import backup_cmd
from starters.backup_cmd import BackupView, result_from_failure, result_view, run_workflow_id
from tests.conftest import time_skipping
from tests.workflows.backup_fakes import Backups
from workflows.backup import BackupWorkflow
from workflows.common import DR_PLAN, TENANT_ID

LOCAL = Path(__file__).resolve().parents[2] / "plans" / "local.toml"
MERKLE = "ab" * 32
KEY_ID = "ed25519:0123456789abcdef"


def offline_env() -> dict[str, str]:
    """Environment pointing drctl at a Temporal address nothing listens on."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return {"TEMPORAL_ADDRESS": f"127.0.0.1:{port}", "DR_LOG_LEVEL": "ERROR", "COLUMNS": "250"}


def drctl(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(backup_cmd.app, list(args), env={"COLUMNS": "250"} | (env or {}))


async def drctl_at(env: WorkflowEnvironment, *args: str) -> Result:
    """``drctl backup ARGS`` against ``env``'s server, in a thread (the command runs its own event loop)."""
    argv = [*args, "--address", env.client.service_client.config.target_host]
    return await asyncio.to_thread(CliRunner().invoke, backup_cmd.app, argv, env={"COLUMNS": "250"})


def json_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


class TestRefusesBadInput:
    @pytest.mark.parametrize(
        ("calendar", "named"),
        [
            ("fortnightly", "is not understood"),
            ("every 30s", "shortest interval is 1 minute"),
            ("25 * * * * *", "5 fields"),
        ],
    )
    def test_a_bad_calendar_exits_2_naming_the_option(self, calendar: str, named: str) -> None:
        """A calendar that is not a phrase or a 5-field cron string is refused on --calendar before connecting."""
        res = drctl("schedule", "--plan", str(LOCAL), "--calendar", calendar, env=offline_env())
        assert res.exit_code == 2
        assert "--calendar" in res.output
        assert named in res.output
        assert "cannot reach Temporal" not in res.output

    def test_delete_with_a_calendar_is_refused(self) -> None:
        """--delete together with --calendar exits 2 naming both, before connecting."""
        res = drctl("schedule", "--plan", str(LOCAL), "--delete", "--calendar", "hourly", env=offline_env())
        assert res.exit_code == 2
        assert "--delete cannot be combined with --calendar" in res.output

    def test_an_unknown_tenant_exits_2_naming_it(self) -> None:
        """A --tenant outside the plan is refused with exit code 2 before Temporal is contacted."""
        res = drctl("run", "--plan", str(LOCAL), "--tenant", "t9999-nobody", env=offline_env())
        assert res.exit_code == 2
        assert "--tenant 't9999-nobody' is not a tenant of plan local" in res.output
        assert "cannot reach Temporal" not in res.output

    def test_an_unknown_data_class_exits_2(self) -> None:
        """A data class outside hot, warm and cold is refused on --data-class."""
        res = drctl("run", "--plan", str(LOCAL), "--data-class", "lukewarm", env=offline_env())
        assert res.exit_code == 2
        assert "--data-class 'lukewarm' is not one of hot, warm, cold" in res.output

    @pytest.mark.parametrize(
        "args",
        [
            ["run", "--plan", str(LOCAL)],
            ["schedule", "--plan", str(LOCAL)],
            ["status", "backup-local-all-20260101T000000"],
        ],
    )
    def test_unreachable_temporal_exits_1_with_the_hint(self, args: list[str]) -> None:
        """Without a Temporal server the command says where it looked and how to start one."""
        env = offline_env()
        res = drctl(*args, env=env)
        assert res.exit_code == 1
        assert f"cannot reach Temporal at {env['TEMPORAL_ADDRESS']}" in res.output


class TestHelpers:
    def test_workflow_ids_name_the_plan_and_the_tenants(self) -> None:
        """A run's workflow id names one tenant, 'all', or how many tenants, then the UTC second."""
        at = dt.datetime(2026, 3, 1, 9, 15, 30, tzinfo=dt.UTC)
        assert run_workflow_id("local", ["t1"], at) == "backup-local-t1-20260301T091530"
        assert run_workflow_id("local", [], at) == "backup-local-all-20260301T091530"
        assert run_workflow_id("local", ["t1", "t2"], at) == "backup-local-2-tenants-20260301T091530"

    def test_the_result_is_recovered_from_a_failure(self) -> None:
        """The BackupResult a failed workflow carries in its error details comes back typed."""
        carried = {"plan": "local", "recovery_points": ["RP-1"], "failed": ["t2: boom"], "tenants": 2}
        result = result_from_failure(ApplicationError("failed", carried, type="BackupFailed"))
        assert result is not None
        assert result.failed == ("t2: boom",)
        assert result_from_failure(ApplicationError("other")) is None

    def test_the_result_view_lists_failed_tenants_with_their_reasons(self) -> None:
        """A finished backup shows its counts, bytes copied, and a row per failed tenant with the reason."""
        result = BackupResult("local", ("RP-1", "RP-2"), ("t3: the copy was refused",), tenants=3, bytes_copied=3 << 20)
        buffer = io.StringIO()
        Console(file=buffer, width=200).print(result_view(result))
        text = buffer.getvalue()
        assert "Backup of plan local" in text
        assert "3.0 MiB" in text
        assert "failed tenants" in text
        assert "the copy was refused" in text

    def test_exit_codes(self) -> None:
        """Completed is 0; failed, terminated or closed without a result is 1; running is 0."""
        done = BackupResult("local", ("RP-1",))
        assert BackupView("w", "Completed", result=done).exit_code() == 0
        assert BackupView("w", "Failed", result=done).exit_code() == 1
        assert BackupView("w", "Terminated").exit_code() == 1
        assert BackupView("w", "Running").exit_code() == 0


def point(tenant: str, created: dt.datetime, **changes: Any) -> RecoveryPoint:
    packages = tuple(
        Package(f"segments/{i}.jsonl.gz", f"recovery-points/x/segments/{i}.jsonl.gz", "u", "0" * 64, 2048, 5, "hot")
        for i in range(3)
    )
    return RecoveryPoint(
        recovery_point_id=f"RP-{created:%Y%m%dT%H%M%SZ}-eastus-{tenant}",
        tenant_id=tenant,
        region="eastus",
        backup_type=BACKUP_FULL,
        created_at=utc_iso(created),
        status=STATUS_IN_PROGRESS,
        policy_version="1.0.0",
        data_classes=("hot",),
        packages=packages,
        **changes,
    )


@pytest.fixture
async def catalog(tmp_path: Path) -> tuple[str, list[RecoveryPoint]]:
    """A SQLite catalog with a completed point of t0001-globex and an in-progress one of t0002-initech."""
    url = f"sqlite:///{tmp_path / 'backup-catalog.db'}"
    store = BackupCatalog(url)
    first = point("t0001-globex", dt.datetime(2026, 3, 1, 9, tzinfo=dt.UTC))
    second = point("t0002-initech", dt.datetime(2026, 3, 1, 10, tzinfo=dt.UTC))
    await store.register(first)
    completed, _ = await store.complete(
        first.recovery_point_id,
        packages=first.packages,
        merkle_root=MERKLE,
        signature="c2ln",
        key_id=KEY_ID,
        manifest_blob="m",
        manifest_uri="https://m",
        time_from=None,
        time_to=None,
    )
    registered, _ = await store.register(second)
    return url, [completed, registered]


class TestList:
    async def test_lists_every_point_newest_first_with_its_manifest_facts(
        self, catalog: tuple[str, list[RecoveryPoint]]
    ) -> None:
        """The table shows each point's id, tenant, status, package count, size, Merkle root prefix and key id."""
        url, (completed, in_progress) = catalog
        res = await asyncio.to_thread(drctl, "list", "--plan", str(LOCAL), env={"DR_CATALOG_URL": url})
        assert res.exit_code == 0, res.output
        assert "2 recovery point(s) of plan local" in res.output
        assert res.output.index(in_progress.recovery_point_id) < res.output.index(completed.recovery_point_id)
        row = next(line for line in res.output.splitlines() if completed.recovery_point_id in line)
        for cell in ("t0001-globex", "completed", "2026-03-01 09:00:00", " 3 ", "6.0 KiB", MERKLE[:12], KEY_ID):
            assert cell in row
        assert MERKLE not in res.output

    async def test_tenant_and_json_filters(self, catalog: tuple[str, list[RecoveryPoint]]) -> None:
        """--tenant keeps that tenant's points and --json prints them as catalog rows."""
        url, (completed, _) = catalog
        res = await asyncio.to_thread(
            drctl, "list", "--plan", str(LOCAL), "--tenant", "t0001-globex", "--json", env={"DR_CATALOG_URL": url}
        )
        rows = json.loads(res.output)
        assert res.exit_code == 0
        assert [r["recovery_point_id"] for r in rows] == [completed.recovery_point_id]
        assert rows[0]["merkle_root"] == MERKLE

    def test_a_missing_catalog_is_reported_not_created(self, tmp_path: Path) -> None:
        """A catalog file that does not exist exits 1 naming it, and is not created by looking."""
        missing = tmp_path / "nowhere" / "catalog.db"
        res = drctl("list", "--plan", str(LOCAL), "--catalog-url", f"sqlite:///{missing}")
        assert res.exit_code == 1
        assert f"no backup catalog at sqlite:///{missing}" in res.output
        assert not missing.exists()

    def test_an_unknown_status_exits_2(self) -> None:
        """--status must be one of the catalog's states."""
        res = drctl("list", "--plan", str(LOCAL), "--status", "done")
        assert res.exit_code == 2
        assert "--status 'done' is not one of in_progress, completed, failed" in res.output


@pytest.fixture(scope="module")
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    async with time_skipping() as env:
        yield env


class TestRun:
    async def test_run_wait_json_backs_up_the_tenant_and_exits_0(
        self, time_env: WorkflowEnvironment, task_queue: str, plan: DrPlan
    ) -> None:
        """`run --tenant T --wait --json` starts a backup of T, streams its status and ends with its
        recovery point and exit code 0."""
        backups = Backups(plan)
        async with Worker(
            time_env.client, task_queue=task_queue, workflows=[BackupWorkflow], activities=backups.activities()
        ):
            res = await drctl_at(
                time_env,
                *("run", "--plan", str(LOCAL), "--tenant", "t0002-initech", "--wait", "--json"),
                *("--task-queue", task_queue),
            )
        events = json_lines(res.output)
        started, outcome = events[0], events[-1]
        assert res.exit_code == 0, res.output
        assert started["event"] == "started"
        assert started["workflow_id"].startswith("backup-local-t0002-initech-")
        assert "/namespaces/default/workflows/backup-local-t0002-initech-" in started["url"]
        assert outcome["event"] == "outcome"
        assert outcome["exit_code"] == 0
        assert len(outcome["result"]["recovery_points"]) == 1
        assert backups.points("t0002-initech")[0].status == "completed"
        assert backups.points("t0001-globex") == []

    async def test_a_failed_tenant_exits_1_and_names_it(
        self, time_env: WorkflowEnvironment, task_queue: str, plan: DrPlan
    ) -> None:
        """When a tenant's backup fails, --wait (JSON lines without a terminal) ends with the failed tenant,
        its reason and the other tenant's recovery point, and exits 1."""
        backups = Backups(plan, failing_copy={"t0003-umbrella"})
        async with Worker(
            time_env.client, task_queue=task_queue, workflows=[BackupWorkflow], activities=backups.activities()
        ):
            res = await drctl_at(
                time_env,
                *("run", "--plan", str(LOCAL), "--tenant", "t0003-umbrella", "--tenant", "t0004-hooli", "--wait"),
                *("--task-queue", task_queue),
            )
        outcome = json_lines(res.output)[-1]
        assert res.exit_code == 1, res.output
        assert "backup-local-2-tenants-" in outcome["workflow_id"]
        assert outcome["execution_status"] == "Failed"
        assert "failed for 1 of 2 tenant(s)" in outcome["failure"]
        assert outcome["result"]["failed"][0].startswith("t0003-umbrella: segment")
        assert len(outcome["result"]["recovery_points"]) == 1
        assert backups.points("t0004-hooli")[0].status == "completed"

    async def test_status_of_a_finished_backup(
        self, time_env: WorkflowEnvironment, task_queue: str, plan: DrPlan
    ) -> None:
        """`status ID --json` of a finished backup shows it completed with its recovery points."""
        backups = Backups(plan)
        async with Worker(
            time_env.client, task_queue=task_queue, workflows=[BackupWorkflow], activities=backups.activities()
        ):
            handle = await time_env.client.start_workflow(
                BackupWorkflow.run,
                BackupInput("local", ("t0001-globex",)),
                id=f"backup-local-t0001-globex-{uuid.uuid4().hex[:6]}",
                task_queue=task_queue,
            )
            await handle.result()
            res = await drctl_at(time_env, "status", handle.id, "--json")
        view = json.loads(res.output)
        assert res.exit_code == 0, res.output
        assert view["execution_status"] == "Completed"
        assert len(view["result"]["recovery_points"]) == 1


class TestSchedule:
    async def test_create_pause_and_delete_the_plans_schedule(self, dev_env: WorkflowEnvironment) -> None:
        """`schedule` creates backup-local hourly, a second call with --pause updates and pauses it,
        --unpause resumes it, and --delete removes it (a second --delete says there is none)."""
        created = await drctl_at(dev_env, "schedule", "--plan", str(LOCAL), "--task-queue", "tq-backup")
        handle = dev_env.client.get_schedule_handle(backup_schedule_id("local"))
        first = await handle.describe()
        paused = await drctl_at(dev_env, "schedule", "--plan", str(LOCAL), "--calendar", "every 2h", "--pause")
        second = await handle.describe()
        resumed = await drctl_at(dev_env, "schedule", "--plan", str(LOCAL), "--unpause", "--json")
        deleted = await drctl_at(dev_env, "schedule", "--plan", str(LOCAL), "--delete")
        again = await drctl_at(dev_env, "schedule", "--plan", str(LOCAL), "--delete")
        assert created.exit_code == 0, created.output
        assert "created schedule backup-local: hourly" in created.output
        assert [i.every for i in first.schedule.spec.intervals] == [dt.timedelta(hours=1)]
        assert paused.exit_code == 0, paused.output
        assert "updated schedule backup-local: every 2h" in paused.output
        assert "paused:    yes" in paused.output
        assert second.schedule.state.paused
        assert [i.every for i in second.schedule.spec.intervals] == [dt.timedelta(hours=2)]
        assert json.loads(resumed.output)["paused"] is False
        assert deleted.exit_code == 0
        assert "deleted schedule backup-local" in deleted.output
        assert again.exit_code == 1
        assert "plan local has no backup schedule (backup-local)" in again.output

    async def test_a_run_started_by_drctl_is_listed_as_a_backup_workflow(
        self, dev_env: WorkflowEnvironment, plan: DrPlan
    ) -> None:
        """`run` without --wait prints the workflow id and UI link and the run is a BackupWorkflow with DrPlan set."""
        queue = f"tq-{uuid.uuid4().hex[:8]}"
        backups = Backups(plan)
        async with Worker(
            dev_env.client, task_queue=queue, workflows=[BackupWorkflow], activities=backups.activities()
        ):
            res = await drctl_at(dev_env, "run", "--plan", str(LOCAL), "--tenant", "t0005-stark", "--task-queue", queue)
            workflow_id = next(line.split()[-1] for line in res.output.splitlines() if "workflow:" in line)
            handle = dev_env.client.get_workflow_handle(workflow_id, result_type=BackupResult)
            result = await handle.result()
            described = await handle.describe()
        assert res.exit_code == 0, res.output
        assert "UI:" in res.output
        assert described.status == WorkflowExecutionStatus.COMPLETED
        assert described.workflow_type == "BackupWorkflow"
        assert described.typed_search_attributes.get(DR_PLAN) == "local"
        assert described.typed_search_attributes.get(TENANT_ID) == "t0005-stark"
        assert len(result.recovery_points) == 1
