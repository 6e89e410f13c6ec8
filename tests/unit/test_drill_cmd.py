"""drctl drill schedule against a dev server (the time-skipping server has no schedule API): what it
prints for people and for scripts, and deleting the schedule."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner, Result

from domain.messages.drill import drill_schedule_id
from starters import drill_cmd

LOCAL = Path(__file__).resolve().parents[2] / "plans" / "local.toml"


async def drctl_at(env: WorkflowEnvironment, *args: str) -> Result:
    """``drctl drill ARGS`` against ``env``'s server, in a thread (the command runs its own event loop)."""
    argv = [*args, "--address", env.client.service_client.config.target_host]
    return await asyncio.to_thread(CliRunner().invoke, drill_cmd.app, argv, env={"COLUMNS": "250"})


class TestSchedule:
    async def test_create_update_and_delete_the_plans_drill_schedule(self, dev_env: WorkflowEnvironment) -> None:
        """`schedule` creates drill-local on the plan's calendar and lists its next runs and blackouts, a second
        call with --json updates it and reports the calendar and task queue, --delete removes it and a second
        --delete says the plan has none."""
        try:
            created = await drctl_at(dev_env, "schedule", "--plan", str(LOCAL), "--task-queue", "tq-drill")
            updated = await drctl_at(dev_env, "schedule", "--plan", str(LOCAL), "--calendar", "daily 03:00", "--json")
            deleted = await drctl_at(dev_env, "schedule", "--plan", str(LOCAL), "--delete", "--json")
            again = await drctl_at(dev_env, "schedule", "--plan", str(LOCAL), "--delete")
        finally:
            with contextlib.suppress(RPCError):
                await dev_env.client.get_schedule_handle(drill_schedule_id("local")).delete()
        assert created.exit_code == 0, created.output
        headline, runs, blackout, where = created.output.splitlines()
        assert (
            headline == "created schedule drill-local: first sunday 02:00 UTC, drill estate local-drill (overlap: skip)"
        )
        assert runs.startswith("  next runs: 20")
        assert (
            blackout
            == "  blackout:  2026-12-18T00:00:00Z to 2027-01-04T00:00:00Z (year-end change freeze): drills are skipped"
        )
        assert where == "  runs are:  drill-local-scheduled-<time> on task queue tq-drill"
        assert updated.exit_code == 0, updated.output
        facts = json.loads(updated.output)
        assert set(facts) == {"schedule_id", "created", "calendar", "next_runs", "task_queue"}
        assert (facts["schedule_id"], facts["created"], facts["calendar"]) == ("drill-local", False, "daily 03:00")
        assert all(run.endswith("T03:00:00Z") for run in facts["next_runs"])
        assert json.loads(deleted.output) == {"schedule_id": "drill-local", "deleted": True}
        assert again.exit_code == 1
        assert "plan local has no drill schedule (drill-local)" in again.output
