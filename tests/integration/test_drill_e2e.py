"""A DR drill end to end: DrillWorkflow with the real failover, backup, restore and failback workflows
and the worker's activities (its registry, Blob Storage in Azurite, a catalog and a signing key) on a
Temporal dev server, against an emulator serving the local estate and its drill estate side by side."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob.aio import ContainerClient
from temporalio.client import Client
from temporalio.worker import Worker
from typer.testing import CliRunner

from activities.azure import Estates
from activities.drill import read_report
from activities.integrity import generate_private_key, key_id_of, load_private_key, public_key_b64, save_private_key
from domain.messages.drill import STATUS_PASSED, DrillInput, DrillReport, report_blobs
from domain.messages.failover import FailoverResult
from domain.plan import DrPlan
from starters import drill_cmd
from starters.seed_data import build_tenant, upload_segments
from tests.conftest import LOCAL_PLAN, EmulatorHandle
from tests.integration.azurite import AzuriteHandle
from tests.integration.processes import DevServer
from workers.connection import TemporalSettings
from workers.registry import activity_objects, bound_activities, workflows

pytestmark = pytest.mark.integration

START = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=3)
DRILL_TIMEOUT = dt.timedelta(minutes=3)


@dataclass
class Rig:
    plan: DrPlan
    drill_plan: DrPlan
    emulator: EmulatorHandle
    client: Client
    estates: Estates
    task_queue: str
    signing_key: Path
    blob_endpoint: str

    def container(self, plan: DrPlan, name: str) -> ContainerClient:
        return self.estates[plan.name].blob.get_container_client(name)

    async def drill(self) -> DrillReport:
        """A drill of plan local with a one-step, one-second failback soak."""
        report: DrillReport = await self.client.execute_workflow(
            "DrillWorkflow",
            DrillInput(
                plan=self.plan.name,
                requested_by="e2e",
                plan_digest=self.plan.digest,
                failback_steps=[100],
                failback_soak_seconds=1,
                failback_interval_seconds=1,
            ),
            id=f"drill-local-{uuid.uuid4().hex[:8]}",
            task_queue=self.task_queue,
            result_type=DrillReport,
            execution_timeout=DRILL_TIMEOUT,
        )
        return report


@pytest.fixture
async def rig(
    *,
    tmp_path: Path,
    plan: DrPlan,
    drill_plan: DrPlan,
    drill_emulator: EmulatorHandle,
    dev_server: DevServer,
    azurite: AzuriteHandle,
) -> AsyncIterator[Rig]:
    """The drill estate's tenants seeded in Azurite, and a worker serving both plans with what dr-worker
    registers."""
    key_file = tmp_path / "orchestrator.key"
    save_private_key(generate_private_key(), key_file)
    estates = Estates([plan, drill_plan], azurite.connection(drill_emulator.connection()))
    env = {"DR_CATALOG_URL": f"sqlite:///{tmp_path / 'catalog.db'}", "DR_SIGNING_KEY": str(key_file)}
    objects = activity_objects(estates, env)
    segments = [s for t in drill_plan.tenants for s in build_tenant(t.id, segments=2, start=START, instances=2)]
    await upload_segments(estates[drill_plan.name].blob, drill_plan.backup, segments)
    client = await Client.connect(dev_server.address)
    task_queue = f"drill-e2e-{uuid.uuid4().hex[:8]}"
    try:
        with ThreadPoolExecutor(max_workers=8) as executor:
            async with Worker(
                client,
                task_queue=task_queue,
                workflows=workflows(),
                activities=bound_activities(objects),
                activity_executor=executor,
            ):
                yield Rig(plan, drill_plan, drill_emulator, client, estates, task_queue, key_file, azurite.account_url)
    finally:
        await estates.close()


def production_view(state: dict[str, Any], plan: DrPlan) -> dict[str, Any]:
    """What the production estate looks like: traffic, alias, SQL primaries, Cosmos writes, tenant modes."""
    return {
        "origins": state["frontdoor"]["profiles"][plan.frontdoor.profile],
        "aliases": {n: ns["aliases"] for n, ns in state["servicebus"]["namespaces"].items() if ns["plan"] == plan.name},
        "sql": {
            name: (g["primary_region"], g["failovers"])
            for name, g in state["sql"]["failover_groups"].items()
            if g["plan"] == plan.name
        },
        "cosmos": {
            name: (a["write_region"], a["regions"], a["failovers"])
            for name, a in state["cosmos"]["accounts"].items()
            if a["plan"] == plan.name
        },
        "tenants": {
            t.id: (state["platform"]["tenants"][t.id]["mode"], state["platform"]["tenants"][t.id]["servingRegion"])
            for t in plan.tenants
        },
    }


def touches(entry: dict[str, Any], plan: DrPlan) -> bool:
    """Whether a journal entry addresses one of ``plan``'s resources or its regions' ops gateways."""
    path = str(entry["path"]).lower()
    gateways = tuple(f"/regions/{region}/" for region in plan.regions)
    return f"/subscriptions/{plan.subscription_id}/" in path or path.startswith(gateways)


class TestDrill:
    async def test_drill_leaves_production_untouched_and_reports_the_failovers_rto(self, rig: Rig) -> None:
        """A drill fails the drill estate over and back with no mutating call on production, and its report's
        RTO and RPO are the failover's measured ones."""
        before = production_view(rig.emulator.state(), rig.plan)
        since = rig.emulator.last_seq()

        report = await rig.drill()

        assert report.status == STATUS_PASSED, report.reasons
        failover: FailoverResult = await rig.client.get_workflow_handle(
            f"{report.workflow_id}-failover", result_type=FailoverResult
        ).result()
        assert failover.plan == rig.drill_plan.name
        assert failover.rto_seconds is not None
        assert report.rto_actual_seconds == failover.rto_seconds
        assert report.rpo_actual_seconds == failover.rpo_seconds
        assert all(p.status == "done" for p in report.phases), report.phases

        mutations = rig.emulator.mutations(since)
        assert [e for e in mutations if touches(e, rig.plan)] == []
        drill_ops = {e["operation"] for e in mutations if touches(e, rig.drill_plan)}
        assert {"AFDOrigins_Update", "FailoverGroups_Failover", "DatabaseAccounts_FailoverPriorityChange"} <= drill_ops
        after = rig.emulator.state()
        assert production_view(after, rig.plan) == before
        # The drill estate is back on its primary region.
        assert {g["primary_region"] for g in after["sql"]["failover_groups"].values()} == {"eastus", "centralus"}
        assert after["cosmos"]["accounts"][rig.drill_plan.cosmos.account]["write_region"] == "centralus"

    async def test_report_is_signed_stored_and_shown_by_drctl(self, rig: Rig) -> None:
        """A drill started with drctl's helper is watched phase by phase; its report is stored as signed JSON and
        Markdown in the plan's backup container, where `drctl drill report` reads the newest and verifies it."""
        settings = TemporalSettings(address=rig.client.service_client.config.target_host, task_queue=rig.task_queue)
        handle = await drill_cmd.start_drill(
            rig.client,
            settings,
            rig.plan,
            requested_by="e2e",
            failback_steps=[100],
            failback_soak_seconds=1,
            failback_interval_seconds=1,
        )
        phases: list[str] = []
        report = await drill_cmd.wait_for_report(handle, lambda s: phases.append(s.phase), interval=0.2)
        assert report.status == STATUS_PASSED, report.reasons
        assert {"failover", "restore", "failback"} <= set(phases)
        json_name, markdown_name = report_blobs(report.workflow_id)
        container = rig.container(rig.plan, rig.plan.backup.backup_container)
        data = await (await container.get_blob_client(json_name).download_blob()).readall()
        public = public_key_b64(load_private_key(rig.signing_key))
        stored, problem = read_report(data, {key_id_of(public): public})
        assert problem is None
        assert (stored.workflow_id, stored.status, stored.rto_actual_seconds) == (
            report.workflow_id,
            report.status,
            report.rto_actual_seconds,
        )
        markdown = await (await container.get_blob_client(markdown_name).download_blob()).readall()
        assert markdown.decode().startswith(f"# DR drill {report.workflow_id}: PASSED")
        assert report.pass_rate == 1.0

        env = {"DR_BLOB_ENDPOINT": rig.blob_endpoint, "DR_SIGNING_KEY": str(rig.signing_key)}
        shown = await asyncio.to_thread(
            CliRunner().invoke, drill_cmd.app, ["report", "--plan", str(LOCAL_PLAN), "--json"], env=env
        )
        assert shown.exit_code == 0, shown.output
        assert f'"workflow_id": "{report.workflow_id}"' in shown.output
        assert '"signature_problem": null' in shown.output
