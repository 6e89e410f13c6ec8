"""How long readiness and the drill take to read every tenant's newest completed recovery point from
the backup catalog: one batched read (``tenant_recovery_point_ages``, ``BackupCatalog.newest_for_tenants``)
against a ``list_for_tenant(limit=1)`` query per tenant, on SQLite and on a private PostgreSQL
cluster (started like the test suite's, from Debian's postgresql that scripts/bootstrap.sh installs).

Each tenant gets ``--points`` hourly recovery points, the newest in progress and some failed, so the
newest completed one is not always the newest row. Both ways must give the same answer; the figures
are medians.

    .venv/bin/python bench/catalog_ages.py --tenants 300,3000 --points 12
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from activities.backups import tenant_recovery_point_ages  # noqa: E402
from activities.catalog import BackupCatalog  # noqa: E402
from domain.messages.backups import (  # noqa: E402
    STATUS_COMPLETED,
    STATUS_FAILED,
    STATUS_IN_PROGRESS,
    Package,
    RecoveryPoint,
    utc_iso,
)
from domain.plan import DrPlan, load_plan  # noqa: E402
from tests.integration.postgres import PostgresServer  # noqa: E402

NOW = dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)
PLAN = ROOT / "plans" / "local.toml"


def points_of(tenant: str, count: int) -> list[RecoveryPoint]:
    """``count`` hourly points of ``tenant``, newest first: the newest in progress, every 11th failed."""
    points = []
    for k in range(count):
        created = NOW - dt.timedelta(hours=k)
        status = STATUS_IN_PROGRESS if k == 0 else STATUS_FAILED if k % 11 == 5 else STATUS_COMPLETED
        point_id = f"RP-{created:%Y%m%dT%H%M%SZ}-eastus-{tenant}"
        packages = tuple(
            Package(f"segments/seg-{i}.jsonl.gz", f"{point_id}/seg-{i}", f"https://b/{i}", "ab" * 32, 1, 1, "hot")
            for i in range(3)
        )
        points.append(
            RecoveryPoint(
                recovery_point_id=point_id,
                tenant_id=tenant,
                region="eastus",
                backup_type="incremental",
                created_at=utc_iso(created),
                completed_at=utc_iso(created) if status != STATUS_IN_PROGRESS else None,
                status=status,
                data_classes=("hot",),
                packages=packages,
                merkle_root="cd" * 32,
                signature="sig",
                key_id="bench-key",
                policy_version="1.0.0",
            )
        )
    return points


async def fill(catalog: BackupCatalog, tenants: list[str], points: int) -> None:
    gate = asyncio.Semaphore(8)

    async def one(tenant: str) -> None:
        async with gate:
            for point in points_of(tenant, points):
                await catalog.register(point)

    await asyncio.gather(*(one(t) for t in tenants))


async def per_tenant(catalog: BackupCatalog, tenants: list[str]) -> dict[str, str]:
    """The way before: a connection and a query per tenant, eight at a time."""
    gate = asyncio.Semaphore(8)

    async def newest(tenant: str) -> tuple[str, str | None]:
        async with gate:
            found = await catalog.list_for_tenant(tenant, status=STATUS_COMPLETED, limit=1)
        return tenant, found[0].recovery_point_id if found else None

    return {t: p for t, p in await asyncio.gather(*(newest(t) for t in tenants)) if p is not None}


async def batched(catalog: BackupCatalog, plan: DrPlan) -> dict[str, str]:
    ages = await tenant_recovery_point_ages(catalog, plan, NOW)
    return {a.tenant_id: a.recovery_point_id for a in ages.tenants if a.recovery_point_id is not None}


async def median_seconds(body: Callable[[], Awaitable[object]], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        await body()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


async def measure(backend: str, url: str, plan: DrPlan, points: int, repeats: int) -> None:
    tenants = [t.id for t in plan.tenants]
    catalog = BackupCatalog(url)
    started = time.perf_counter()
    await fill(catalog, tenants, points)
    filled = time.perf_counter() - started
    before, after = await per_tenant(catalog, tenants), await batched(catalog, plan)
    if before != after:
        raise SystemExit(f"{backend}: the batched read differs from the per-tenant queries")
    old = await median_seconds(lambda: per_tenant(catalog, tenants), repeats)
    new = await median_seconds(lambda: batched(catalog, plan), repeats)
    print(
        f"{backend:10s} {len(tenants):6d} tenants x {points} points (filled in {filled:5.1f} s): "
        f"query per tenant {old:7.3f} s   one read {new:7.3f} s   ratio {old / new:6.1f}x",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenants", default="300,3000", help="comma-separated tenant counts")
    parser.add_argument("--points", type=int, default=12, help="recovery points per tenant")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    base = load_plan(PLAN)
    server = None if args.skip_postgres else PostgresServer()
    try:
        if server is not None:
            server.start()
        for count in (int(n) for n in args.tenants.split(",")):
            tenants = tuple(
                dataclasses.replace(base.tenants[i % len(base.tenants)], id=f"t{i:06d}-bench") for i in range(count)
            )
            plan = dataclasses.replace(base, tenants=tenants)
            with tempfile.TemporaryDirectory() as tmp:
                asyncio.run(measure("sqlite", f"sqlite:///{tmp}/catalog.db", plan, args.points, args.repeats))
            if server is not None:
                url = server.url(server.create_database())
                asyncio.run(measure("postgresql", url, plan, args.points, args.repeats))
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
