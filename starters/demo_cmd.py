"""``drctl demo``: the local demo on the embedded default. Brings the stack up (Temporal dev
server with its UI, estate emulator, worker) with a fresh estate, takes eastus down, fails over to
westus while showing the step table, brings eastus back and fails back gradually, printing each
step's SLO readings, and prints where to look in the Temporal UI."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Annotated

import httpx
import typer
from temporalio.client import Client

from domain.plan import DrPlan
from starters import failback_cmd, failover_cmd
from starters.dev_cmd import DEFAULT_STATE_DIR, load_config, save_config
from starters.output import fail
from starters.plan_cmd import load_or_exit
from starters.stack import Stack, StackConfig, StackError
from workers.connection import TemporalSettings

DEMO_REASON = "demo: eastus declared down by the incident commander"
# Short soaks so the demo's failback takes about a minute; production plans soak for minutes.
DEMO_STEPS = (10, 25, 50, 75, 100)
DEMO_SOAK_SECONDS = 10
DEMO_INTERVAL_SECONDS = 5


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
    say(f"Temporal UI: {config.ui_url} (filter with: DrPlan = '{plan.name}')")
    say("the stack keeps running for you to explore; stop it with `drctl dev down`")
    return code


def demo(
    *,
    state_dir: Annotated[Path, typer.Option("--state-dir", envvar="DR_STATE_DIR")] = DEFAULT_STATE_DIR,
    json_output: Annotated[bool, typer.Option("--json", help="JSON lines instead of the live table.")] = False,
) -> None:
    """Run the local DR demo: fresh estate, eastus down, failover to westus (RTO, RPO), gradual failback."""
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
