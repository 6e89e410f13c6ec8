"""Recovery-point verification: throughput against plain SHA-256, and memory, over 1 GiB of packages.

Writes ``--gib`` GiB of package files (``--packages`` files; blocks of one random MiB made distinct by
a counter, so generating them costs little) into a temporary folder, building their signed manifest
as a backup would, then measures in one run:

1. baseline: ``hashlib.sha256`` over each file read in 1 MiB chunks, nothing else;
2. verification, sync: ``sha256_file`` per package, then ``verify_manifest`` (every package against
   the manifest, the Merkle root recomputed, the Ed25519 signature checked);
3. verification, async: ``file_chunks`` (reads off the event loop) into ``sha256_stream``, then the
   same ``verify_manifest``; with 1 MiB chunks and with 4 MiB chunks, the size a Blob Storage
   download delivers (azure-storage-blob's ``max_chunk_get_size`` default).

Rounds alternate the three so page cache and CPU clock treat them alike; the median round is shown
with its MB/s (10^6 bytes) and the ratio to the baseline (target >= 0.8). Memory growth during
verification is measured in separate passes: the tracemalloc peak, and the growth of the peak RSS
(VmHWM, reset through /proc/self/clear_refs; ru_maxrss when that is unavailable) (target < 64 MiB).

Then the restore half: a Temporal dev server, the estate emulator and Azurite on loopback, and one
worker in this process (the dr-worker's workflows and activities). ``--restores`` small tenants are
seeded and backed up (BackupWorkflow), then TenantRestoreWorkflow runs in sandbox mode for one
tenant alone (median of three), and for all of them at once; it prints both wall times, their
ratio, and the restores per second each way. Emulator latencies are zero, so the figures are the
orchestration's and Blob Storage's own cost.

    .venv/bin/python bench/verify_throughput.py --gib 1 --rounds 3 --restores 200
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import hashlib
import os
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from failover_rto import Estate, dev_server, serving, write_plan
from temporalio.client import Client

from activities.azure import Estates
from activities.integrity import (
    CHUNK_SIZE,
    build_manifest,
    file_chunks,
    generate_private_key,
    public_key_b64,
    save_private_key,
    sha256_file,
    sha256_stream,
    sign_manifest,
    trusted_keys,
    verify_manifest,
)
from domain.messages.integrity import Manifest, PackageDigest, PackageEntry, Signature, VerificationResult
from domain.messages.restore import (
    MODE_SANDBOX,
    OUTCOME_SANDBOX,
    BackupInput,
    BackupResult,
    RestoreInput,
    RestoreResult,
)
from starters.azurite import AzuriteServer
from starters.seed_data import build_tenant, default_start, upload_segments

MiB = 1024 * 1024
RATIO_TARGET = 0.8
MEMORY_TARGET = 64 * MiB
BLOB_DOWNLOAD_CHUNK = 4 * MiB


@dataclass(frozen=True)
class RecoveryPoint:
    """Package files on disk with the manifest and signature a backup would have written."""

    files: dict[str, Path]
    manifest: Manifest
    signature: Signature
    trusted: dict[str, str]

    @property
    def total_bytes(self) -> int:
        return sum(p.bytes for p in self.manifest.packages)


def write_packages(folder: Path, gib: float, count: int, key: Ed25519PrivateKey) -> RecoveryPoint:
    """``gib`` GiB split over ``count`` files, hashed while written, and their signed manifest."""
    block = bytearray(os.urandom(MiB))
    blocks_total = max(count, round(gib * 1024))
    per_file = blocks_total // count
    files: dict[str, Path] = {}
    entries: list[PackageEntry] = []
    counter = 0
    for i in range(count):
        name = f"packages/part-{i:04d}.bin"
        path = folder / f"part-{i:04d}.bin"
        digest = hashlib.sha256()
        with path.open("wb") as fh:
            for _ in range(per_file if i < count - 1 else blocks_total - per_file * (count - 1)):
                block[:8] = counter.to_bytes(8, "little")
                counter += 1
                fh.write(block)
                digest.update(block)
        size = path.stat().st_size
        files[name] = path
        entries.append(PackageEntry(name=name, bytes=size, records=size // 512, sha256=digest.hexdigest()))
    manifest = build_manifest(
        tenant_id="bench-tenant",
        recovery_point_id="rp-bench",
        created_at="2026-05-01T11:00:00Z",
        time_from="2026-05-01T10:00:00Z",
        time_to="2026-05-01T11:00:00Z",
        policy_version="1.0.0",
        data_classes=("hot",),
        region="eastus",
        packages=entries,
    )
    return RecoveryPoint(files, manifest, sign_manifest(manifest, key), trusted_keys([public_key_b64(key)]))


def baseline(point: RecoveryPoint) -> int:
    """Plain hashlib.sha256 over every file in 1 MiB reads; returns the bytes hashed."""
    total = 0
    for path in point.files.values():
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            while chunk := fh.read(CHUNK_SIZE):
                digest.update(chunk)
                total += len(chunk)
        digest.hexdigest()
    return total


def verify_sync(point: RecoveryPoint) -> VerificationResult:
    """The streaming verification path: digest every file, then check manifest, root and signature."""
    actual = []
    for name, path in point.files.items():
        sha, size = sha256_file(path)
        actual.append(PackageDigest(name=name, bytes=size, sha256=sha))
    return verify_manifest(point.manifest, point.signature, point.trusted, actual)


async def verify_async(point: RecoveryPoint, chunk_size: int) -> VerificationResult:
    """The same verification fed by an async chunk iterator, as blob downloads feed it."""
    actual = []
    for name, path in point.files.items():
        sha, size = await sha256_stream(file_chunks(path, chunk_size))
        actual.append(PackageDigest(name=name, bytes=size, sha256=sha))
    return verify_manifest(point.manifest, point.signature, point.trusted, actual)


def timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_growth(run: Callable[[], object]) -> tuple[int, str]:
    """Bytes the peak RSS grew by while ``run`` ran, and how that was measured."""
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        rss_before = _status_kib("VmRSS")
        run()
        hwm_after = _status_kib("VmHWM")
        if rss_before is not None and hwm_after is not None:
            return (hwm_after - rss_before) * 1024, "VmHWM after reset - VmRSS before"
    except OSError:
        pass
    # ru_maxrss only grows past the process's earlier peak, so this is a lower bound.
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024, "ru_maxrss delta (lower bound)"


def traced_peak(run: Callable[[], object]) -> int:
    """The tracemalloc peak of Python allocations made while ``run`` ran."""
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - base


def mb_per_s(size: int, seconds: float) -> float:
    return size / seconds / 1e6


def run_verification(args: argparse.Namespace) -> None:
    """Baseline vs sync and async verification throughput, and verification memory growth."""
    with tempfile.TemporaryDirectory(prefix="dr-verify-bench-") as tmp:
        started = time.perf_counter()
        point = write_packages(Path(tmp), args.gib, args.packages, generate_private_key())
        size = point.total_bytes
        print(
            f"wrote {len(point.files)} packages, {size / MiB:.0f} MiB, in {time.perf_counter() - started:.1f} s "
            f"(root {point.manifest.merkle_root[:16]}...)"
        )
        paths: dict[str, tuple[str, Callable[[], object]]] = {
            "sync": ("sha256_file + verify_manifest", lambda: verify_sync(point)),
            "async-1M": (
                "file_chunks(1 MiB) + sha256_stream + verify",
                lambda: asyncio.run(verify_async(point, CHUNK_SIZE)),
            ),
            "async-4M": (
                "file_chunks(4 MiB) + sha256_stream + verify",
                lambda: asyncio.run(verify_async(point, BLOB_DOWNLOAD_CHUNK)),
            ),
        }
        for name, (_, run) in paths.items():
            check = run()
            if not isinstance(check, VerificationResult) or not check.ok:
                sys.exit(f"{name}: verification of untouched packages failed: {check}")
        runs: dict[str, list[float]] = {"baseline": [], **{name: [] for name in paths}}
        for _ in range(args.rounds):
            runs["baseline"].append(timed(lambda: baseline(point)))
            for name, (_, run) in paths.items():
                runs[name].append(timed(run))
        medians = {name: statistics.median(seconds) for name, seconds in runs.items()}
        base_rate = mb_per_s(size, medians["baseline"])
        print(f"\nthroughput over {size / MiB:.0f} MiB, median of {args.rounds} round(s):")
        label = "hashlib.sha256, 1 MiB reads"
        print(f"  {'baseline':<9} {label:<44} {base_rate:8.1f} MB/s  ({medians['baseline']:.2f} s)")
        for name, (label, _) in paths.items():
            rate = mb_per_s(size, medians[name])
            ratio = rate / base_rate
            verdict = "meets" if ratio >= RATIO_TARGET else "MISSES"
            print(
                f"  {name:<9} {label:<44} {rate:8.1f} MB/s  ({medians[name]:.2f} s)  "
                f"ratio {ratio:.3f} ({verdict} >= {RATIO_TARGET})"
            )
        print("\nmemory growth during verification:")
        for name, (_, run) in paths.items():
            traced = traced_peak(run)
            rss, how = peak_rss_growth(run)
            verdict = "meets" if max(traced, rss) < MEMORY_TARGET else "MISSES"
            print(
                f"  {name:<9} tracemalloc peak {traced / MiB:6.2f} MiB   peak RSS growth {rss / MiB:6.2f} MiB "
                f"({how})  {verdict} < {MEMORY_TARGET // MiB} MiB"
            )


async def _restore(client: Client, task_queue: str, plan: str, tenant: str, at: str) -> float:
    started = time.perf_counter()
    result: RestoreResult = await client.execute_workflow(
        "TenantRestoreWorkflow",
        RestoreInput(plan=plan, tenant_id=tenant, requested_by="bench", at=at, mode=MODE_SANDBOX),
        id=f"restore-bench-{tenant}-{uuid.uuid4().hex[:6]}",
        task_queue=task_queue,
        result_type=RestoreResult,
    )
    if result.outcome != OUTCOME_SANDBOX:
        sys.exit(f"restore of {tenant} ended {result.outcome}")
    return time.perf_counter() - started


async def _restores(args: argparse.Namespace, root: Path) -> None:
    plan = write_plan(root / "plan")
    tenants = [t.id for t in plan.tenants[: args.restores]]
    if len(tenants) < args.restores:
        sys.exit(f"--restores {args.restores}: the local plan has {len(tenants)} tenants")
    key = root / "signing.key"
    save_private_key(generate_private_key(), key)
    os.environ["DR_SIGNING_KEY"] = str(key)
    os.environ["DR_CATALOG_URL"] = f"sqlite:///{root / 'catalog.db'}"
    with AzuriteServer(root / "azurite") as azurite, dev_server(root) as address:
        estate = Estate(plan)
        connection = estate.connection().with_azurite(azurite.account_url)
        try:
            client = await Client.connect(address)
            async with serving(client, plan, estate, connection) as task_queue:
                blob = Estates([plan], connection)
                try:
                    start = default_start(2, dt.timedelta(hours=1))
                    for tenant in tenants:
                        segments = build_tenant(tenant, segments=2, start=start, instances=2)
                        await upload_segments(blob[plan.name].blob, plan.backup, segments)
                finally:
                    await blob.close()
                started = time.perf_counter()
                backup: BackupResult = await client.execute_workflow(
                    "BackupWorkflow",
                    BackupInput(plan=plan.name, tenant_ids=tuple(tenants)),
                    id=f"backup-bench-{uuid.uuid4().hex[:6]}",
                    task_queue=task_queue,
                    result_type=BackupResult,
                )
                if backup.failed:
                    sys.exit(f"backups failed: {backup.failed[:3]}")
                print(
                    f"\nseeded and backed up {len(tenants)} tenants (2 segments each) in "
                    f"{time.perf_counter() - started:.1f} s"
                )
                at = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
                singles = [await _restore(client, task_queue, plan.name, tenants[i], at) for i in range(3)]
                one = statistics.median(singles)
                started = time.perf_counter()
                await asyncio.gather(*[_restore(client, task_queue, plan.name, t, at) for t in tenants])
                many = time.perf_counter() - started
        finally:
            estate.close()
    print("sandbox restores on one worker (emulator latencies 0):")
    print(f"  one restore alone        {one:7.2f} s   (median of 3: {', '.join(f'{x:.2f}' for x in singles)})")
    print(f"  {len(tenants)} restores at once    {many:7.2f} s   = {many / one:.1f}x the time of one")
    print(f"  throughput               {1 / one:7.2f} restores/s alone, {len(tenants) / many:.2f} restores/s together")


def run_restores(args: argparse.Namespace) -> None:
    """One sandbox restore against ``--restores`` concurrent ones on one in-process worker."""
    if args.restores <= 0:
        return
    with tempfile.TemporaryDirectory(prefix="dr-restore-bench-") as tmp:
        asyncio.run(_restores(args, Path(tmp)))


# Each section prints its own figures.
SECTIONS: dict[str, Callable[[argparse.Namespace], None]] = {
    "verification": run_verification,
    "restores": run_restores,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gib", type=float, default=1.0, help="total package size in GiB (default 1)")
    parser.add_argument("--packages", type=int, default=16, help="number of package files (default 16)")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds of each path (default 3)")
    parser.add_argument(
        "--restores", type=int, default=200, help="concurrent sandbox restores (default 200; 0 skips them)"
    )
    parser.add_argument("--skip-verification", action="store_true", help="only the restore benchmark")
    args = parser.parse_args()
    if args.packages < 1 or args.rounds < 1 or args.gib <= 0:
        parser.error("--gib, --packages and --rounds must be positive")
    for name, section in SECTIONS.items():
        if name == "verification" and args.skip_verification:
            continue
        section(args)


if __name__ == "__main__":
    main()
