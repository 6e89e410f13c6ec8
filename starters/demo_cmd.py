"""``drctl demo``: the local demo on the embedded default. Brings the stack up (Temporal dev
server with its UI, estate emulator, Azurite, worker) with a fresh estate, takes eastus down, fails
over to westus while showing the step table, brings eastus back and fails back gradually, printing
each step's SLO readings; then backs up one tenant, damages its data and restores it in production
mode (the request signed by the incident commander) with two signed approvals and verifies the
evidence pack; ends with a DR drill of the drill estate and its report, and prints where to look in
the Temporal UI."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path
from typing import Annotated

import httpx
import typer
from temporalio.client import Client

from activities.azure import AzureClients, AzureConnection
from activities.evidence import verify_pack
from activities.integrity import load_private_key, public_key_b64, trusted_keys
from domain.messages.restore import MODE_PRODUCTION, OUTCOME_PROMOTED
from domain.plan import DrPlan
from starters import backup_cmd, drill_cmd, failback_cmd, failover_cmd, restore_cmd
from starters.dev_cmd import DEFAULT_STATE_DIR, load_config, save_config
from starters.output import fail
from starters.plan_cmd import load_or_exit
from starters.seed_data import build_tenant, default_start, upload_segments
from starters.stack import Stack, StackConfig, StackError
from workers.connection import TemporalSettings

DEMO_REASON = "demo: eastus declared down by the incident commander"
# Short soaks so the demo's failback takes about a minute; production plans soak for minutes.
DEMO_STEPS = (10, 25, 50, 75, 100)
DEMO_SOAK_SECONDS = 10
DEMO_INTERVAL_SECONDS = 5
DEMO_DRILL_STEPS = (50, 100)  # the drill's failback: two steps, same soak and interval as above
DEMO_APPROVERS = ("bob", "carol")  # plans/demo-keys holds their keys; the requester is not an approver
DEMO_REQUESTER = "incident-commander"  # the local plan's [[requesters]]; signs with plans/demo-keys/ too


def say(message: str) -> None:
    typer.secho(f"==> {message}", bold=True)


def _control(config: StackConfig, method: str, path: str, json: object | None = None) -> None:
    ctx = ssl.create_default_context(cafile=str(config.ca_file))
    with httpx.Client(base_url=f"{config.emulator_url}/_emulator", verify=ctx, timeout=30) as http:
        http.request(method, path, json=json).raise_for_status()


async def _clear_previous_runs(client: Client, plan: DrPlan) -> None:
    """A demo rerun starts over: earlier demo failovers of the local plan are terminated."""
    for kind, workflow_id in await failover_cmd.running_exclusive(client, plan.name):
        say(f"terminating the previous demo's {kind} {workflow_id}")
        await client.get_workflow_handle(workflow_id).terminate(reason="drctl demo starts over")


async def _run_demo(config: StackConfig, plan: DrPlan, as_json: bool) -> int:
    settings = TemporalSettings.from_env(address=config.temporal_address, task_queue=config.task_queue)
    client = await failover_cmd.connect(settings)
    await _clear_previous_runs(client, plan)
    say(f"taking {plan.primary_region} down in the emulator (its origin fails health probes, its APIs time out)")
    _control(config, "POST", f"/regions/{plan.primary_region}", {"health": "down"})
    say(f"failing over {plan.name}: {plan.primary_region} → {plan.dr_region}")
    handle = await failover_cmd.start_failover(
        client,
        settings,
        plan,
        from_region=plan.primary_region,
        to_region=plan.dr_region,
        reason=DEMO_REASON,
        requested_by="drctl demo",
    )
    url = failover_cmd.ui_url(settings, handle.id, config.ui_url)
    say(f"workflow {handle.id}; watch it in the Temporal UI: {url}")
    code = await failover_cmd.watch_and_report(handle, as_json)
    if code != 0:
        return code
    say(f"{plan.primary_region} is back: bringing it up in the emulator and telling the failover")
    _control(config, "POST", f"/regions/{plan.primary_region}", {"health": "healthy"})
    await failover_cmd.signal_recovered(client, handle.id, note="region recovered", by="drctl demo")
    await handle.result()
    say(
        f"failing back gradually: {', '.join(f'{s}%' for s in DEMO_STEPS)} of traffic to {plan.primary_region}, "
        f"{DEMO_SOAK_SECONDS}s soak per step, SLO sampled every {DEMO_INTERVAL_SECONDS}s"
    )
    back = await failback_cmd.start_failback(
        client,
        settings,
        plan,
        reason=f"demo: {plan.primary_region} recovered",
        steps=list(DEMO_STEPS),
        soak_seconds=DEMO_SOAK_SECONDS,
        interval_seconds=DEMO_INTERVAL_SECONDS,
        requested_by="drctl demo",
    )
    say(f"workflow {back.id}: {failover_cmd.ui_url(settings, back.id, config.ui_url)}")
    code = await failback_cmd.watch_and_report(back, as_json)
    if code != 0:
        return code
    code = await _demo_restore(client, settings, config, plan, as_json)
    if code != 0:
        return code
    code = await _demo_drill(client, settings, config, plan, as_json)
    say(f"Temporal UI: {config.ui_url} (filter with: DrPlan = '{plan.name}')")
    say("the stack keeps running for you to explore; stop it with `drctl dev down`")
    return code


async def _verify_evidence(clients: AzureClients, config: StackConfig, blob: str, workflow_id: str) -> None:
    """Download the restore's evidence pack and check its hash chain and signature."""
    container = clients.blob.get_container_client(clients.plan.backup.backup_container)
    data = await (await container.get_blob_client(blob).download_blob()).readall()
    path = config.state_dir / "evidence" / f"{workflow_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    orchestrator = public_key_b64(load_private_key(config.signing_key))
    result = verify_pack(data, trusted_keys([orchestrator]))
    verdict = "verified" if result.ok else "FAILED: " + "; ".join(str(p) for p in result.problems)
    say(f"evidence pack {path}: {result.entries} hash-chained entries, signature by {result.key_id} {verdict}")
    say(f"check it yourself: drctl evidence verify {path} --trusted-key {result.key_id}={orchestrator}")


async def _demo_restore(
    client: Client, settings: TemporalSettings, config: StackConfig, plan: DrPlan, as_json: bool
) -> int:
    """Back up one tenant, damage its live data, restore it in production mode with two approvals."""
    # Blob Storage as the platform and an operator see it: Azurite's development account.
    clients = AzureClients(plan, AzureConnection().with_azurite(config.blob_endpoint))
    try:
        return await _restore_one_tenant(client, settings, config, clients, as_json)
    finally:
        await clients.close()


async def _restore_one_tenant(
    client: Client, settings: TemporalSettings, config: StackConfig, clients: AzureClients, as_json: bool
) -> int:
    plan = clients.plan
    tenant = plan.tenants[0].id
    say(f"seeding {tenant}'s data in Blob Storage (Azurite) and backing it up with BackupWorkflow")
    segments = build_tenant(tenant, segments=4, start=default_start(4, dt.timedelta(hours=1)))
    await upload_segments(clients.blob, plan.backup, segments)
    backup = await backup_cmd.start_backup(client, settings, plan, tenants=[tenant], requested_by="drctl demo")
    backed_up = await backup.result()
    if backed_up.failed or not backed_up.recovery_points:
        say(f"backup failed: {'; '.join(backed_up.failed)}")
        return 1
    point = backed_up.recovery_points[0]
    say(f"recovery point {point}: every package hashed, Merkle root and manifest signed with Ed25519")
    say(f"one of {tenant}'s live segments is overwritten; {DEMO_REQUESTER} asks for a production restore")
    live = clients.blob.get_container_client(plan.backup.live_container(tenant))
    await live.get_blob_client(segments[-1].name).upload_blob(b"half-written garbage", overwrite=True)
    request, _ = restore_cmd.build_request(
        plan=plan.name,
        tenant_id=tenant,
        at=None,
        recovery_point_id=point,
        mode=MODE_PRODUCTION,
        requested_by=DEMO_REQUESTER,
        reason="demo: a live segment was overwritten",
    )
    keys = Path(plan.source).parent / "demo-keys"
    requester_key = keys / f"{DEMO_REQUESTER}.key"
    say(
        f"drctl restore start --plan {plan.source} --tenant {tenant} --recovery-point {point} --mode production "
        f"--as {DEMO_REQUESTER} --key {requester_key}"
    )
    handle = await restore_cmd.start_restore(
        client, request, task_queue=settings.task_queue, key=load_private_key(requester_key)
    )
    say(f"workflow {handle.id}: {failover_cmd.ui_url(settings, handle.id, config.ui_url)}")
    await restore_cmd.watch_and_report(client, handle.id, as_json)
    for name in DEMO_APPROVERS:
        say(f"drctl restore approve {handle.id} --as {name} --key {keys / f'{name}.key'}")
        decision = await restore_cmd.decide(
            client, handle.id, approver=name, key=load_private_key(keys / f"{name}.key")
        )
        say(decision.accepted.message)
    result = await handle.result()
    restore_cmd.print_view(await restore_cmd.restore_view(client, handle.id))
    if result.outcome != OUTCOME_PROMOTED:
        return 1
    say(
        f"{len(result.promoted)} segment(s) promoted; the replaced ones are kept: "
        f"`drctl restore undo {handle.id}` gives them back"
    )
    if result.evidence_blob:
        await _verify_evidence(clients, config, result.evidence_blob, handle.id)
    return 0


async def _demo_drill(
    client: Client, settings: TemporalSettings, config: StackConfig, plan: DrPlan, as_json: bool
) -> int:
    """A DR drill of the plan's drill estate, as the monthly schedule runs it, and its stored report."""
    estate = plan.drill.estate if plan.drill else "?"
    say(
        f"DR drill of {plan.name} on its drill estate {estate}: failover, SLO check, a sampled tenant's backup, "
        "sandbox restore and integrity checks, failback, report"
    )
    handle = await drill_cmd.start_drill(
        client,
        settings,
        plan,
        requested_by="drctl demo",
        reason="demo",
        failback_steps=list(DEMO_DRILL_STEPS),
        failback_soak_seconds=DEMO_SOAK_SECONDS,
        failback_interval_seconds=DEMO_INTERVAL_SECONDS,
    )
    say(f"workflow {handle.id}: {failover_cmd.ui_url(settings, handle.id, config.ui_url)}")
    report = await drill_cmd.wait_for_report(
        handle, lambda status: None if as_json else say(f"drill phase: {status.phase}"), interval=5
    )
    # The report is signed by the local worker's key, which the stack keeps in its state folder.
    stored = await drill_cmd.read_stored_report(
        plan,
        AzureConnection().with_azurite(config.blob_endpoint),
        workflow_id=handle.id,
        env={"DR_SIGNING_KEY": str(config.signing_key)},
    )
    drill_cmd.print_report(stored or drill_cmd.StoredReport(report, f"workflow {handle.id}", "not stored"), as_json)
    say(f"the report again at any time: drctl drill report {handle.id} --plan {plan.source}")
    return drill_cmd.exit_code(report)


def demo(
    *,
    state_dir: Annotated[Path, typer.Option("--state-dir", envvar="DR_STATE_DIR")] = DEFAULT_STATE_DIR,
    json_output: Annotated[bool, typer.Option("--json", help="JSON lines instead of the live table.")] = False,
) -> None:
    """Run the local DR demo: fresh estate, eastus down, failover to westus (RTO, RPO), gradual failback,
    then a tenant's production restore with two signed approvals, and a DR drill with its report."""
    config = load_config(state_dir)
    plan = load_or_exit(config.plans[0])
    stack = Stack(config)
    save_config(config)
    try:
        if stack.emulator.running():
            # A new emulator serves with a new CA: the worker must restart to trust it.
            say("restarting the estate emulator (fresh estate) and the worker")
            stack.worker.stop()
            stack.emulator.stop()
        stack.up(progress=say)
    except StackError as exc:
        fail(str(exc))
    failover_cmd.run_command(lambda: _run_demo(config, plan, json_output))
