"""How fast the estate emulator serves the real aio SDK: Front Door origin GETs and full LRO PATCHes.

Runs the emulator in-process on its own thread (plans/local.toml) and drives it over HTTPS with
``AzureClients`` exactly as activities do, ``polling_interval=0`` so LRO figures measure the
emulator and the SDK rather than poll sleeps. Prints ops/s, HTTP requests/s and latency percentiles.

    .venv/bin/python bench/emulator_ops.py --seconds 5 --concurrency 8
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from azure.core.exceptions import HttpResponseError
from azure.mgmt.cdn.models import AFDOriginUpdateParameters, AFDOriginUpdatePropertiesParameters

from activities.azure import AzureClients, AzureConnection
from domain.plan import DrPlan, load_plan
from emulator.server import EmulatorServer, ThreadedEmulator
from observability.logging import configure_logging

PLAN = Path(__file__).resolve().parents[1] / "plans" / "local.toml"


@dataclass
class Result:
    name: str
    seconds: float
    concurrency: int
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    requests: int = 0

    @property
    def ops(self) -> int:
        return len(self.latencies_ms)

    def percentile(self, q: int) -> float:
        if len(self.latencies_ms) < 2:
            return self.latencies_ms[0] if self.latencies_ms else float("nan")
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[q - 1]

    def row(self) -> list[str]:
        per_op = self.requests / self.ops if self.ops else float("nan")
        return [
            self.name,
            str(self.concurrency),
            str(self.ops),
            f"{self.ops / self.seconds:.0f}",
            f"{self.requests / self.seconds:.0f}",
            f"{per_op:.1f}",
            f"{self.percentile(50):.1f}",
            f"{self.percentile(95):.1f}",
            str(self.errors),
        ]


def journal_seq(threaded: ThreadedEmulator, server: EmulatorServer) -> int:
    """The journal's last sequence number (read on the emulator's own loop)."""
    entries = threaded.call(server.world.journal.entries)
    return int(entries[-1].seq) if entries else 0


async def run_for(
    name: str,
    seconds: float,
    concurrency: int,
    operation: Callable[[int], Awaitable[object]],
    count_requests: Callable[[], int],
) -> Result:
    """Call ``operation(worker)`` from ``concurrency`` workers until ``seconds`` have passed."""
    result = Result(name, seconds, concurrency)
    first = count_requests()
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()

    async def worker(index: int) -> None:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                await operation(index)
            except HttpResponseError:
                result.errors += 1
                continue
            result.latencies_ms.append((time.perf_counter() - t0) * 1000)

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    result.seconds = time.perf_counter() - started
    result.requests = count_requests() - first
    return result


async def bench(plan: DrPlan, seconds: float, concurrency: int) -> list[Result]:
    threaded = ThreadedEmulator([plan])
    server = threaded.start()
    clients = AzureClients(plan, AzureConnection.for_emulator(server.url, server.ca_file, polling_interval=0))
    fd = plan.frontdoor
    origins = [fd.origins[region] for region in plan.regions]

    async def get(worker: int) -> object:
        return await clients.cdn.afd_origins.get(
            resource_group_name=fd.resource_group,
            profile_name=fd.profile,
            origin_group_name=fd.origin_group,
            origin_name=origins[worker % len(origins)],
        )

    calls = 0

    async def patch(worker: int) -> object:
        nonlocal calls
        calls += 1
        poller = await clients.cdn.afd_origins.begin_update(
            resource_group_name=fd.resource_group,
            profile_name=fd.profile,
            origin_group_name=fd.origin_group,
            origin_name=origins[worker % len(origins)],
            origin_update_properties=AFDOriginUpdateParameters(
                properties=AFDOriginUpdatePropertiesParameters(weight=500 + calls % 2)
            ),
        )
        return await poller.result()

    def requests() -> int:
        return journal_seq(threaded, server)

    try:
        await get(0)  # connection set-up and first-use costs stay out of the figures
        return [
            await run_for("GET afd_origins.get", seconds, concurrency, get, requests),
            await run_for("LRO afd_origins.begin_update", seconds, concurrency, patch, requests),
        ]
    finally:
        await clients.close()
        threaded.stop()


def render(results: list[Result]) -> str:
    header = ["operation", "conc", "ops", "ops/s", "req/s", "req/op", "p50 ms", "p95 ms", "errors"]
    rows = [header, *(r.row() for r in results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each measurement (default 5)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent requests in flight (default 8)")
    args = parser.parse_args()
    if args.seconds <= 0 or args.concurrency < 1:
        parser.error("--seconds must be > 0 and --concurrency >= 1")
    configure_logging("WARNING")
    results = asyncio.run(bench(load_plan(PLAN), args.seconds, args.concurrency))
    print(render(results))
    print(
        "\nreq/op: HTTP requests the emulator journaled per SDK operation (an LRO = PATCH + status polls + final GET)."
    )


if __name__ == "__main__":
    main()
