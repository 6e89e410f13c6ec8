"""The worker's Prometheus endpoint after the workflows ran: a real dr-worker process serving the local
estate and its drill estate (Blob Storage in Azurite, a catalog, a signing key) runs a drill (failover,
backup, sandbox restore, failback) and a readiness check; every DR metric is then on /metrics."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from activities.azure import Estates
from activities.integrity import generate_private_key, save_private_key
from domain.messages.drill import STATUS_PASSED, DrillInput, DrillReport
from domain.messages.readiness import ReadinessResult, ReadinessWorkflowInput
from domain.plan import DrPlan
from starters.seed_data import build_tenant, upload_segments
from tests.conftest import DRILL_PLAN, EmulatorHandle
from tests.integration.azurite import AzuriteHandle
from tests.integration.processes import DevServer, WorkerProcess

# Each metric with the series name it is exported under (histograms as their _count).
EXPECTED = {
    "failover_rto_seconds": "failover_rto_seconds",
    "failback_step": "failback_step",
    "backup_runs_total": "backup_runs_total",
    "backup_duration_seconds": "backup_duration_seconds_count",
    "restore_duration_seconds": "restore_duration_seconds_count",
    "rto_drill_pass_rate": "rto_drill_pass_rate",
    "readiness_check_status": "readiness_check_status",
    "rpo_effective_seconds": "rpo_effective_seconds",
    "rpo_target_seconds": "rpo_target_seconds",
    "rto_target_seconds": "rto_target_seconds",
}


@pytest.fixture
def drill_worker(
    tmp_path: Path, dev_server: DevServer, drill_emulator: EmulatorHandle, azurite: AzuriteHandle
) -> Iterator[WorkerProcess]:
    key = tmp_path / "orchestrator.key"
    save_private_key(generate_private_key(), key)
    proc = WorkerProcess(
        tmp_path,
        dev_server,
        drill_emulator,
        extra_env={
            "DR_BLOB_ENDPOINT": azurite.account_url,
            "DR_CATALOG_URL": f"sqlite:///{tmp_path / 'catalog.db'}",
            "DR_SIGNING_KEY": str(key),
        },
        extra_args=("--plan", str(DRILL_PLAN)),
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def series(text: str) -> dict[str, list[str]]:
    """Exported samples by series name (label sets kept as text)."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = line.split("{", 1)[0].split(" ", 1)[0]
            found.setdefault(name, []).append(line)
    return found


@pytest.fixture
async def seeded(drill_plan: DrPlan, azurite: AzuriteHandle, drill_emulator: EmulatorHandle) -> DrPlan:
    """The drill estate with live data for each of its tenants in Azurite."""
    estates = Estates([drill_plan], azurite.connection(drill_emulator.connection()))
    try:
        start = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=2)
        segments = [s for t in drill_plan.tenants for s in build_tenant(t.id, segments=2, start=start, instances=2)]
        await upload_segments(estates[drill_plan.name].blob, drill_plan.backup, segments)
    finally:
        await estates.close()
    return drill_plan


class TestMetricsEndpoint:
    async def test_each_dr_metric_is_exported_after_its_workflow_ran(
        self, plan: DrPlan, seeded: DrPlan, drill_worker: WorkerProcess
    ) -> None:
        """After a drill and a readiness run on a real worker, /metrics carries every DR metric with its plan."""
        drill_plan = seeded
        client = await Client.connect(drill_worker.env["TEMPORAL_ADDRESS"])
        report: DrillReport = await client.execute_workflow(
            "DrillWorkflow",
            DrillInput(
                plan=plan.name,
                requested_by="e2e",
                failback_steps=[100],
                failback_soak_seconds=1,
                failback_interval_seconds=1,
            ),
            id=f"drill-local-{uuid.uuid4().hex[:8]}",
            task_queue=drill_worker.task_queue,
            result_type=DrillReport,
            execution_timeout=dt.timedelta(minutes=3),
        )
        assert report.status == STATUS_PASSED, report.reasons
        readiness: ReadinessResult = await client.execute_workflow(
            "ReadinessWorkflow",
            ReadinessWorkflowInput(plan=drill_plan.name, requested_by="e2e"),
            id=f"readiness-{uuid.uuid4().hex[:8]}",
            task_queue=drill_worker.task_queue,
            result_type=ReadinessResult,
            execution_timeout=dt.timedelta(minutes=2),
        )
        assert readiness.rows, "the readiness run reported no checks"

        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://127.0.0.1:{drill_worker.metrics_port}/metrics")).text
        exported = series(text)
        missing = [metric for metric, name in EXPECTED.items() if name not in exported]
        assert missing == [], f"not on /metrics: {missing}"
        assert any(f'plan="{plan.name}"' in line for line in exported["rto_drill_pass_rate"])
        assert any(f'plan="{drill_plan.name}"' in line for line in exported["readiness_check_status"])
        assert any('result="success"' in line for line in exported["backup_runs_total"])
        assert any(f'plan="{drill_plan.name}"' in line for line in exported["failover_rto_seconds"])
