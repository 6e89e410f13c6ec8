"""A DR drill end to end against the sum of its phases' critical paths.

Runs a Temporal dev server (in memory), Azurite (Blob Storage), the estate emulator in-process on
its own thread serving the local estate and its drill estate, and a worker in-process (what
dr-worker registers). With the emulator latencies of
``failover_rto.py`` it runs ``--runs`` drills of plan local (a fresh emulator and worker each) and
compares the wall time from ``start_workflow`` to the report with the phases' critical paths:

    failover   max(FD, SB, tenants) + max(SQL, Cosmos) + warm-up + one SLO sample interval
    backup, restore, integrity
               no emulator latency on their path (Blob Storage is Azurite; the restores' SQL and
               Cosmos creates have none set): their whole time is I/O and orchestration
    failback   max(SB drain + SB, SQL, Cosmos) + steps x (FD + soak) + tenants
               (no warm-up: in a drill the primary never went down, so its cache stayed warm)

The SLO check is inside the failover (it ends when the SLO is green). Everything above the sum is
orchestration: the drill's own activities (facts, recovery-point age, manifest and evidence checks,
the signed report), child workflow starts, the children's plan reads and pre-flight checks.

    .venv/bin/python bench/drill.py --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import re
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from failover_rto import (
    COSMOS,
    DEFAULT_LATENCIES,
    FD,
    SB,
    SLO_INTERVAL_SECONDS,
    SQL_PLANNED,
    TENANTS,
    WARMUP,
    dev_server,
    parse_latencies,
    render_steps,
)
from temporalio.client import Client
from temporalio.worker import Worker

from activities.azure import AzureConnection, Estates
from activities.integrity import generate_private_key, save_private_key
from domain.messages.drill import DrillInput, DrillReport, report_markdown
from domain.messages.failback import FailbackResult
from domain.plan import DrPlan, load_plan
from emulator.providers.servicebus import DEFAULT_BACKLOG, DEFAULT_RATE_PER_SECOND
from emulator.server import ThreadedEmulator
from observability.logging import configure_logging
from starters.azurite import AzuriteServer
from starters.seed_data import build_tenant, upload_segments
from workers.registry import activity_objects, bound_activities, workflows

ROOT = Path(__file__).resolve().parents[1]
PLANS = ROOT / "plans"
FAILBACK_STEPS = [50, 100]
FAILBACK_SOAK_SECONDS = 2
FAILBACK_INTERVAL_SECONDS = 1
RUN_TIMEOUT_SECONDS = 300
START = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=3)


def write_plans(directory: Path) -> tuple[DrPlan, DrPlan]:
    """plans/local.toml and plans/local-drill.toml with a 1 s SLO sample interval, with their tenants."""
    directory.mkdir(parents=True, exist_ok=True)
    loaded = []
    for name in ("local", "local-drill"):
        text = (PLANS / f"{name}.toml").read_text(encoding="utf-8")
        text, count = re.subn(
            r"^sample_interval_seconds = .*$", f"sample_interval_seconds = {SLO_INTERVAL_SECONDS}", text, flags=re.M
        )
        tenants = re.search(r'^tenants_file = "([^"]+)"$', text, re.MULTILINE)
        if count != 1 or tenants is None:
            raise SystemExit(f"error: plans/{name}.toml needs one sample_interval_seconds and a tenants_file")
        shutil.copyfile(PLANS / tenants.group(1), directory / tenants.group(1))
        path = directory / f"{name}.toml"
        path.write_text(text, encoding="utf-8")
        loaded.append(load_plan(path))
    return loaded[0], loaded[1]


@dataclass
class Bench:
    client: Client
    plan: DrPlan
    drill_plan: DrPlan
    blob_url: str
    catalog_url: str
    key_file: Path


@asynccontextmanager
async def estate(bench: Bench, latencies: dict[str, float]) -> AsyncIterator[str]:
    """A fresh emulator of both estates with ``latencies`` and a worker for it; yields the task queue."""
    threaded = ThreadedEmulator([bench.plan, bench.drill_plan])
    server = threaded.start()
    threaded.call(lambda: server.world.latencies.set(latencies))
    connection = AzureConnection.for_emulator(server.url, server.ca_file, polling_interval=0.05)
    estates = Estates([bench.plan, bench.drill_plan], connection.with_azurite(bench.blob_url))
    env = {"DR_CATALOG_URL": bench.catalog_url, "DR_SIGNING_KEY": str(bench.key_file)}
    objects = activity_objects(estates, env)
    task_queue = f"bench-drill-{uuid.uuid4().hex[:8]}"
    try:
        with ThreadPoolExecutor(max_workers=8) as executor:
            async with Worker(
                bench.client,
                task_queue=task_queue,
                workflows=workflows(),
                activities=bound_activities(objects),
                activity_executor=executor,
            ):
                yield task_queue
    finally:
        await estates.close()
        threaded.stop()


@dataclass
class DrillRun:
    wall_seconds: float
    report: DrillReport
    failback: FailbackResult


async def drill_once(bench: Bench, latencies: dict[str, float]) -> DrillRun:
    async with estate(bench, latencies) as task_queue:
        started = time.perf_counter()
        report: DrillReport = await bench.client.execute_workflow(
            "DrillWorkflow",
            DrillInput(
                plan=bench.plan.name,
                requested_by="bench",
                failback_steps=FAILBACK_STEPS,
                failback_soak_seconds=FAILBACK_SOAK_SECONDS,
                failback_interval_seconds=FAILBACK_INTERVAL_SECONDS,
            ),
            id=f"drill-local-bench-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
            result_type=DrillReport,
            execution_timeout=dt.timedelta(seconds=RUN_TIMEOUT_SECONDS),
        )
        wall = time.perf_counter() - started
        failback: FailbackResult = await bench.client.get_workflow_handle(
            f"{report.workflow_id}-failback", result_type=FailbackResult
        ).result()
    return DrillRun(wall, report, failback)


def critical_paths(lat: dict[str, float], steps: int) -> dict[str, tuple[float, str]]:
    """Each phase's critical path under ``lat``: (seconds, the formula with its terms)."""
    fd, sb, tenants = lat.get(FD, 0.0), lat.get(SB, 0.0), lat.get(TENANTS, 0.0)
    sql, cosmos, warm = lat.get(SQL_PLANNED, 0.0), lat.get(COSMOS, 0.0), lat.get(WARMUP, 0.0)
    drain = DEFAULT_BACKLOG / DEFAULT_RATE_PER_SECOND
    failover = max(fd, sb, tenants) + max(sql, cosmos) + warm + SLO_INTERVAL_SECONDS
    soak = FAILBACK_SOAK_SECONDS
    failback = max(drain + sb, sql, cosmos) + steps * (fd + soak) + tenants
    return {
        "failover": (
            failover,
            f"max(FD {fd:g}, SB {sb:g}, tenants {tenants:g}) + max(SQL {sql:g}, Cosmos {cosmos:g}) "
            f"+ warm-up {warm:g} + SLO interval {SLO_INTERVAL_SECONDS}",
        ),
        "backup": (0.0, "no emulator latency (Azurite)"),
        "restore": (0.0, "no emulator latency (Azurite; restores' creates have none set)"),
        "integrity": (0.0, "no emulator latency (Azurite)"),
        "failback": (
            failback,
            f"max(SB drain {drain:g} + SB {sb:g}, SQL {sql:g}, Cosmos {cosmos:g}) + {steps} x (FD {fd:g} "
            f"+ soak {soak}) + tenants {tenants:g} (primary cache still warm)",
        ),
    }


def _fmt(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "n/a"


def print_phases(run: DrillRun, paths: dict[str, tuple[float, str]]) -> None:
    print(f"    {'phase':<32} {'status':<8} {'took s':>8} {'critical s':>10}  critical path")
    for phase in run.report.phases:
        kind = phase.key.split(":", 1)[0]
        if kind == "slo":
            took = _fmt(phase.duration_seconds)
            print(f"    {phase.key:<32} {phase.status:<8} {took:>8} {'-':>10}  inside the failover")
            continue
        seconds, formula = paths.get(kind, (0.0, ""))
        print(f"    {phase.key:<32} {phase.status:<8} {_fmt(phase.duration_seconds):>8} {seconds:>10.2f}  {formula}")


async def bench_drills(bench: Bench, latencies: dict[str, float], runs: int, *, show_report: bool) -> None:
    print(f"== DR drill of plan {bench.plan.name} on its drill estate {bench.drill_plan.name} ({runs} run(s))")
    print("   latencies: " + ", ".join(f"{k}={v:g}s" for k, v in latencies.items()))
    print(
        f"   failback: steps {FAILBACK_STEPS}, soak {FAILBACK_SOAK_SECONDS}s, SLO sampled every "
        f"{FAILBACK_INTERVAL_SECONDS}s; SLO sample interval of the failover {SLO_INTERVAL_SECONDS}s"
    )
    results: list[DrillRun] = []
    for i in range(1, runs + 1):
        run = await drill_once(bench, latencies)
        results.append(run)
        r = run.report
        print(
            f"   run {i}: end to end {run.wall_seconds:.2f}s, report {r.status}, tenant {', '.join(r.tenants)}, "
            f"RTO {_fmt(r.rto_actual_seconds)}s (target {r.rto_target_seconds}s), "
            f"RPO {_fmt(r.rpo_actual_seconds)}s (target {r.rpo_target_seconds}s)"
        )
        for reason in r.reasons:
            print(f"      reason: {reason}")
    last = results[-1]
    paths = critical_paths(latencies, len(FAILBACK_STEPS))
    kinds = {p.key.split(":", 1)[0] for p in last.report.phases} - {"slo"}
    critical = sum(paths[k][0] for k in kinds if k in paths)
    wall = statistics.median(r.wall_seconds for r in results)
    phases = sum(p.duration_seconds or 0.0 for p in last.report.phases if not p.key.startswith("slo"))
    print("   phases of the last run (workflow time) against their critical paths:")
    print_phases(last, paths)
    print("   the failback's own steps (last run, workflow time):")
    print("\n".join(render_steps(last.failback.steps)))
    print(f"   sum of the phases' critical paths {critical:.2f}s; sum of the phases as measured {phases:.2f}s")
    print(
        f"   median end to end {wall:.2f}s: {wall / critical:.3f} x the critical paths, "
        f"{wall - critical:.2f}s above them ({wall - phases:.2f}s between and around the phases)"
    )
    if show_report:
        print("\n" + report_markdown(last.report))


async def bench(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="dr-bench-drill-") as tmp:
        root = Path(tmp)
        plan, drill_plan = write_plans(root / "plans")
        key_file = root / "orchestrator.key"
        save_private_key(generate_private_key(), key_file)
        with dev_server(root) as address, AzuriteServer(root / "azurite") as azurite:
            client = await Client.connect(address)
            blob = AzureConnection().with_azurite(azurite.account_url)
            seeding = Estates([drill_plan], blob)
            try:
                segments = [s for t in drill_plan.tenants for s in build_tenant(t.id, segments=3, start=START)]
                await upload_segments(seeding[drill_plan.name].blob, drill_plan.backup, segments)
            finally:
                await seeding.close()
            print(f"Temporal dev server {address}; Azurite {azurite.account_url}; emulator and worker in-process\n")
            await bench_drills(
                Bench(client, plan, drill_plan, azurite.account_url, f"sqlite:///{root / 'catalog.db'}", key_file),
                args.latencies,
                args.runs,
                show_report=args.report,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3, help="drills to run (default 3)")
    parser.add_argument(
        "--latencies",
        type=parse_latencies,
        default=dict(DEFAULT_LATENCIES),
        help="override emulator latencies as in failover_rto.py, e.g. 'AFDOrigins_Update=2'",
    )
    parser.add_argument("--report", action="store_true", help="print the last drill's report (Markdown)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    configure_logging("WARNING")
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
