"""Failback health gate: how fast a breach during a soak is rolled back, and what it costs.

Runs a Temporal dev server (in memory), the estate emulator in-process on its own thread and a
worker in-process (the helpers of ``failover_rto.py``). Each of ``--runs`` runs takes a fresh
emulator estate and worker and:

1. gets the estate onto westus with a real FailoverWorkflow (eastus down, fail over, eastus
   healthy again, signal primary-recovered);
2. starts FailbackWorkflow through drctl's helper with short settings (``--steps``, ``--soak``,
   ``--interval``) and ``--rps`` client requests per second, so that even the smallest step
   clears the plan's minimum request count in one sample;
3. at a step drawn with a seeded random generator, ``offset`` seconds into its soak (also drawn),
   degrades eastus (5xx rate ``--error-rate``) through the emulator's control API;
4. once the failback has rolled back and paused, reads the detection delay (breach to the first
   AFDOrigins_Update PATCH after it, from the emulator's journal) and the traffic Front Door sent
   to the degraded region from the breach until the rollback took effect (the traffic model's
   exposure over that window), then aborts the failback to end the run.

The breach moment is the emulator's own: the start of the traffic segment the degradation opened.
Detection is expected within one sample interval plus one second, since the next sample's window
holds the breach; a breach landing just after a sample boundary may only show in the sample after.

    .venv/bin/python bench/failback_gate.py --runs 5 --seed 7
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from failover_rto import FROM_REGION, TO_REGION, Estate, _until_watching, dev_server, serving, write_plan
from temporalio.client import Client, WorkflowHandle

from domain.messages.failback import ABORT, FINISHED_PHASES, PAUSED, SHIFTING, FailbackResult, FailbackStatus
from domain.messages.failover import FailoverInput, FailoverResult, PrimaryRecovered
from domain.plan import DrPlan
from observability.logging import configure_logging
from starters import failback_cmd
from workers.connection import TemporalSettings

FD_UPDATE = "AFDOrigins_Update"
POLL_SECONDS = 0.02  # status-query period while waiting for a step to start soaking
RUN_TIMEOUT_SECONDS = 180
TARGET_SLACK_SECONDS = 1.0  # the target: detection within one interval plus this

FailbackHandle = WorkflowHandle[Any, FailbackResult]


@dataclass
class GateRun:
    step: int
    offset: float
    detected: bool
    phase: str  # the failback's phase once the breach was (or was not) acted on
    outcome: str  # the failback's outcome after the abort
    last_good: int = 0
    breach_at: float = 0.0  # epoch seconds, emulator clock
    rollback_at: float | None = None  # journal time of the first origin PATCH after the breach
    effective_at: float | None = None  # when Front Door's traffic took the rolled-back split
    samples_before: int = 0  # samples the step took before the breach
    exposure_seconds: float = 0.0
    exposure_requests: float = 0.0
    errors: float = 0.0  # 5xx answered by the degraded origin in the window
    extra_seconds: float = 0.0  # exposure above the share rolled back to
    extra_requests: float = 0.0
    patches: str = ""
    reasons: str = ""

    @property
    def delay(self) -> float | None:
        return self.rollback_at - self.breach_at if self.rollback_at is not None else None


def _epoch(stamp: str) -> float:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


# ---- the estate and the workflows -----------------------------------------------------------------


def set_region(estate: Estate, region: str, health: str, error_rate: float | None = None) -> None:
    body: dict[str, Any] = {"health": health}
    if error_rate is not None:
        body |= {"error_rate": error_rate, "added_latency_ms": 0}
    estate.control.post(f"/regions/{region}", json=body).raise_for_status()


def journal(estate: Estate, since: int = 0) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = estate.control.get("/journal", params={"since": since}).raise_for_status().json()
    return entries


def last_seq(estate: Estate) -> int:
    entries = journal(estate)
    return int(entries[-1]["seq"]) if entries else 0


def traffic(estate: Estate, plan: DrPlan) -> dict[str, Any]:
    """The profile's current traffic segment: ``since`` (epoch) and the share per origin."""
    described: dict[str, Any] = estate.control.get("/frontdoor/traffic").raise_for_status().json()
    profile: dict[str, Any] = described[plan.frontdoor.profile]
    return profile


def window(estate: Estate, plan: DrPlan, start: float, end: float) -> dict[str, Any]:
    params = {"profile": plan.frontdoor.profile, "start": repr(start), "end": repr(end)}
    totals: dict[str, Any] = estate.control.get("/frontdoor/window", params=params).raise_for_status().json()
    return totals


async def failed_over(client: Client, plan: DrPlan, estate: Estate, task_queue: str) -> None:
    """A real failover to westus while eastus is down; then eastus recovers and the failover ends."""
    set_region(estate, FROM_REGION, "down")
    handle = await client.start_workflow(
        "FailoverWorkflow",
        FailoverInput(
            plan=plan.name,
            from_region=FROM_REGION,
            to_region=TO_REGION,
            reason="bench: eastus down",
            requested_by="bench",
            plan_digest=plan.digest,
        ),
        id=f"bench-failover-{os.urandom(4).hex()}",
        task_queue=task_queue,
        result_type=FailoverResult,
    )
    await _until_watching(handle)
    set_region(estate, FROM_REGION, "healthy")
    await handle.signal("primary-recovered", PrimaryRecovered(by="bench"))
    result: FailoverResult = await asyncio.wait_for(handle.result(), RUN_TIMEOUT_SECONDS)
    if result.outcome != "succeeded":
        raise SystemExit(f"error: the failover before the failback ended {result.outcome}: {result.reason}")


async def start_failback(
    client: Client, address: str, task_queue: str, plan: DrPlan, args: argparse.Namespace
) -> FailbackHandle:
    """drctl's start helper; retried briefly while visibility still lists the finished failover."""
    settings = TemporalSettings(address=address, task_queue=task_queue)
    deadline = time.monotonic() + 15
    while True:
        try:
            return await failback_cmd.start_failback(
                client,
                settings,
                plan,
                reason="bench: eastus recovered",
                requested_by="bench",
                steps=args.steps,
                soak_seconds=args.soak,
                interval_seconds=args.interval,
                workflow_id=f"bench-failback-{os.urandom(4).hex()}",
            )
        except failback_cmd.FailbackCommandError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def until(handle: FailbackHandle, done: Callable[[FailbackStatus], bool], within: float) -> FailbackStatus:
    deadline = time.monotonic() + within
    while True:
        status: FailbackStatus = await handle.query("status", result_type=FailbackStatus)
        if done(status):
            return status
        if status.phase in FINISHED_PHASES:
            raise SystemExit(f"error: the failback ended {status.phase}: {status.error}")
        if time.monotonic() > deadline:
            raise SystemExit(f"error: not reached within {within}s (phase {status.phase})")
        await asyncio.sleep(POLL_SECONDS)


def soaking(percent: int) -> Callable[[FailbackStatus], bool]:
    """The step's weights are set (the activity waited for the PATCHes to complete) and it soaks."""

    def check(s: FailbackStatus) -> bool:
        return s.phase == SHIFTING and s.current_step == percent and s.primary_percent == percent

    return check


def acted(step: int) -> Callable[[FailbackStatus], bool]:
    """Paused by the breach's rollback (the weights restored), or past the step without noticing it."""

    def check(s: FailbackStatus) -> bool:
        return s.phase != SHIFTING or s.current_step != step

    return check


# ---- one run -------------------------------------------------------------------------------------


async def inject(estate: Estate, plan: DrPlan, error_rate: float) -> float:
    """Degrade eastus; returns the emulator's moment of the change (the segment it opened)."""
    before = time.time()
    set_region(estate, FROM_REGION, "degraded", error_rate)
    after = time.time()
    current = traffic(estate, plan)
    primary = current["origins"][plan.frontdoor.origins[FROM_REGION]]
    since = float(current["since"])
    # Anything else that changed traffic in between would have opened a later segment.
    return since if primary["health"] == "degraded" and before <= since <= after else before


def describe_patches(entries: list[dict[str, Any]]) -> str:
    parts = []
    for e in entries:
        props = (e.get("body") or {}).get("properties", {})
        shown = ", ".join(f"{k}={v}" for k, v in sorted(props.items()))
        parts.append(f"{e['path'].rsplit('/', 1)[-1]} {{{shown}}}")
    return "; ".join(parts)


async def gate_once(
    client: Client, address: str, plan: DrPlan, args: argparse.Namespace, *, step: int, offset: float
) -> GateRun:
    estate = Estate(plan)
    try:
        if args.fd_latency > 0:
            estate.set_latencies({FD_UPDATE: args.fd_latency})
        estate.control.put("/frontdoor/load", json={"requests_per_second": args.rps}).raise_for_status()
        async with serving(client, plan, estate) as task_queue:
            await failed_over(client, plan, estate, task_queue)
            handle = await start_failback(client, address, task_queue, plan, args)
            await until(handle, soaking(step), RUN_TIMEOUT_SECONDS)
            await asyncio.sleep(offset)
            seq = last_seq(estate)
            status: FailbackStatus = await handle.query("status", result_type=FailbackStatus)
            samples_before = next(r.samples for r in status.readings if r.percent == step)
            breach_at = await inject(estate, plan, args.error_rate)
            held = await until(handle, acted(step), args.soak + 10 * args.interval + 30)
            run = GateRun(
                step=step,
                offset=offset,
                detected=held.phase == PAUSED and held.breaches > 0,
                phase=held.phase,
                outcome="",
                last_good=held.last_good_percent,
                breach_at=breach_at,
                samples_before=samples_before,
            )
            if run.detected:
                measure(estate, plan, args, run=run, held=held, seq=seq)
            run.outcome = await end(client, handle)
        return run
    finally:
        estate.close()


def measure(
    estate: Estate, plan: DrPlan, args: argparse.Namespace, *, run: GateRun, held: FailbackStatus, seq: int
) -> None:
    """The rollback request from the journal; the exposure until Front Door took the rollback."""
    patches = [e for e in journal(estate, seq) if e["operation"] == FD_UPDATE and e["status"] < 400 and not e["fault"]]
    if patches:
        run.rollback_at = _epoch(patches[0]["time"])
        run.patches = describe_patches(patches)
    current = traffic(estate, plan)
    share = float(current["origins"][plan.frontdoor.origins[FROM_REGION]]["share"])
    if round(share * 100, 6) == held.last_good_percent:
        run.effective_at = float(current["since"])
        totals = window(estate, plan, run.breach_at, run.effective_at)
        run.exposure_seconds = float(totals["unhealthy_exposure"]["seconds"])
        run.exposure_requests = float(totals["unhealthy_exposure"]["requests"])
        run.errors = float(totals["origins"].get(plan.frontdoor.origins[FROM_REGION], {}).get("errors", 0.0))
        kept = held.last_good_percent / 100 * (run.effective_at - run.breach_at)
        run.extra_seconds = run.exposure_seconds - kept
        run.extra_requests = run.extra_seconds * args.rps
    reading = next((r for r in held.readings if r.percent == run.step), None)
    run.reasons = "; ".join(reading.reasons) if reading else ""


async def end(client: Client, handle: FailbackHandle) -> str:
    """Abort the failback (all traffic back to westus) and wait for it to end."""
    status: FailbackStatus = await handle.query("status", result_type=FailbackStatus)
    if status.phase not in FINISHED_PHASES:
        try:
            await failback_cmd.send_command(client, handle.id, ABORT, reason="bench run over", by="bench")
        except failback_cmd.FailbackCommandError as err:
            print(f"   (abort refused: {err}; letting the failback finish)")
    result = await asyncio.wait_for(handle.result(), RUN_TIMEOUT_SECONDS)
    return result.outcome


# ---- report ----------------------------------------------------------------------------------------


def _fmt(value: float | None, unit: str = "s") -> str:
    return f"{value:.3f}{unit}" if value is not None else "n/a"


def print_run(i: int, run: GateRun, interval: int) -> None:
    print(
        f"   run {i}: breach at the {run.step} % step, {run.offset:.2f}s into its soak "
        f"({run.samples_before} sample(s) ok before it)"
    )
    if not run.detected:
        print(f"      NOT detected: the failback went on to phase {run.phase}; outcome after abort {run.outcome}")
        return
    delay = run.delay
    target = interval + TARGET_SLACK_SECONDS
    verdict = "n/a" if delay is None else ("met" if delay <= target else "NOT met")
    in_intervals = f"{delay / interval:.2f} intervals" if delay is not None else "n/a"
    print(
        f"      breach -> rollback PATCH {_fmt(delay)} = {in_intervals} "
        f"(target <= {interval}s interval + {TARGET_SLACK_SECONDS:g}s: {verdict}); rolled back to {run.last_good} %"
    )
    took = run.effective_at - run.rollback_at if run.effective_at is not None and run.rollback_at else None
    print(f"      rollback PATCHes: {run.patches or 'none found'}; took effect {_fmt(took)} after the request")
    print(
        f"      to the degraded region from the breach until the rollback took effect: "
        f"{run.exposure_seconds:.3f} request-seconds, {run.exposure_requests:.0f} requests "
        f"({run.errors:.0f} answered 5xx); above the rolled-back-to {run.last_good} % share: "
        f"{run.extra_seconds:.3f} request-seconds, {run.extra_requests:.0f} requests"
    )
    print(f"      breach reading: {run.reasons or 'n/a'}; outcome after abort {run.outcome}")


def print_summary(runs: list[GateRun], interval: int) -> None:
    delays = [d for d in (r.delay for r in runs if r.detected) if d is not None]
    missed = sum(1 for r in runs if not r.detected)
    print(f"   detected {len(runs) - missed}/{len(runs)} breaches")
    if not delays:
        return
    worst = max(delays)
    target = interval + TARGET_SLACK_SECONDS
    print(
        f"   breach -> rollback PATCH: max {worst:.3f}s = {worst / interval:.2f} intervals "
        f"(target <= {target:g}s: {'met' if worst <= target else 'NOT met'}), "
        f"median {statistics.median(delays):.3f}s, min {min(delays):.3f}s"
    )
    measured = [r for r in runs if r.detected and r.effective_at is not None]
    if measured:
        print(
            f"   exposure until the rollback took effect: max {max(r.exposure_seconds for r in measured):.3f} "
            f"request-seconds / {max(r.exposure_requests for r in measured):.0f} requests; above the "
            f"rolled-back-to share: max {max(r.extra_seconds for r in measured):.3f} request-seconds / "
            f"{max(r.extra_requests for r in measured):.0f} requests; total above it over all runs "
            f"{sum(r.extra_requests for r in measured):.0f} requests"
        )


async def bench(args: argparse.Namespace, seed: int) -> None:
    rng = random.Random(seed)
    # The offset leaves the step at least two intervals of soak to notice the breach in.
    latest = max(args.soak - 2 * args.interval, 0)
    draws = [(rng.choice(args.steps), round(rng.uniform(0, latest), 3)) for _ in range(args.runs)]
    with tempfile.TemporaryDirectory(prefix="dr-bench-") as tmp:
        root = Path(tmp)
        plan = write_plan(root / "local")
        with dev_server(root) as address:
            client = await Client.connect(address)
            print(f"Temporal dev server {address}; emulator and worker in this process (pid {os.getpid()})")
            print(
                f"failback {TO_REGION} -> {FROM_REGION}: steps {','.join(map(str, args.steps))}, soak {args.soak}s, "
                f"interval {args.interval}s, {args.rps:g} requests/s, {FD_UPDATE} latency {args.fd_latency:g}s; "
                f"breach: {FROM_REGION} degraded with 5xx rate {args.error_rate:g}"
            )
            print(
                f"seed {seed} (--seed {seed} repeats the draws): "
                + ", ".join(f"run {i} at {s} % +{o:.2f}s" for i, (s, o) in enumerate(draws, 1))
            )
            print(
                f"SLO: 5xx <= {plan.slo.max_error_rate:.2%}, p95 <= {plan.slo.p95_latency_ms:g} ms; exposure in "
                "request-seconds is the degraded region's share integrated over time (1 s at 100 % = 1)\n"
            )
            runs: list[GateRun] = []
            for i, (step, offset) in enumerate(draws, 1):
                run = await gate_once(client, address, plan, args, step=step, offset=offset)
                runs.append(run)
                print_run(i, run, args.interval)
            print()
            print_summary(runs, args.interval)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5, help="failbacks with a breach (default 5)")
    parser.add_argument("--steps", type=failback_cmd.parse_steps, default=[10, 25, 50, 75, 100])
    parser.add_argument("--soak", type=int, default=4, help="soak seconds per step (default 4)")
    parser.add_argument("--interval", type=int, default=1, help="SLO sampling interval seconds (default 1)")
    parser.add_argument("--error-rate", type=float, default=0.3, help="5xx rate of the degraded eastus")
    parser.add_argument("--rps", type=float, default=2000, help="client requests per second (default 2000)")
    parser.add_argument("--fd-latency", type=float, default=0.0, help=f"{FD_UPDATE} run time in seconds")
    parser.add_argument("--seed", type=int, default=None, help="random seed for the breach step and offset")
    args = parser.parse_args()
    problems = failback_cmd.schedule_problems(args.steps, args.soak, args.interval)
    if args.runs < 1 or not 0 < args.error_rate <= 1 or args.rps <= 0 or args.fd_latency < 0:
        problems.append("--runs >= 1, 0 < --error-rate <= 1, --rps > 0 and --fd-latency >= 0")
    if problems:
        parser.error("; ".join(problems))
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1_000_000)
    configure_logging("WARNING")
    asyncio.run(bench(args, seed))


if __name__ == "__main__":
    main()
