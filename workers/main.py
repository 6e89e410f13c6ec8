"""dr-worker: connects to Temporal, serves the DR workflows and activities for the given plans,
exposes Prometheus metrics and shuts down gracefully on SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Worker

from activities.azure import AzureConnection, Estates
from activities.integrity import KeyMaterialError
from domain.errors import CatalogError, PlanError
from domain.plan import DrPlan, load_plan
from observability.logging import configure_logging, get_logger
from workers.connection import TemporalSettings, TemporalUnreachable
from workers.registry import WorkerConfigError, activity_objects, bound_activities, workflows

# Backups, restores and failovers take minutes to hours: buckets around the RTO/RPO targets
# (5 and 15 minutes, 30 minutes, 1, 2 and 4 hours) instead of the SDK's default milliseconds-scale ones.
DURATION_SECONDS = (5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800)
DURATION_BUCKETS = {
    name: [float(b) for b in DURATION_SECONDS]
    for name in ("restore_duration_seconds", "backup_duration_seconds", "failover_rto_seconds")
}

log = get_logger("dr-worker")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    env = os.environ
    p = argparse.ArgumentParser(prog="dr-worker", description=__doc__)
    p.add_argument("--address", default=None, help="Temporal host:port (env TEMPORAL_ADDRESS)")
    p.add_argument("--namespace", default=None, help="Temporal namespace (env TEMPORAL_NAMESPACE)")
    p.add_argument("--task-queue", default=None, help="task queue (env DR_TASK_QUEUE)")
    p.add_argument(
        "--plan",
        action="append",
        default=None,
        help="plan file to serve; repeat for several (env DR_PLANS, colon-separated)",
    )
    p.add_argument("--tls-cert", default=None, help="client certificate for mTLS (env TEMPORAL_TLS_CERT)")
    p.add_argument("--tls-key", default=None, help="client key for mTLS (env TEMPORAL_TLS_KEY)")
    p.add_argument("--tls-ca", default=None, help="server CA (env TEMPORAL_TLS_CA)")
    p.add_argument(
        "--metrics",
        default=env.get("DR_METRICS_ADDRESS", "127.0.0.1:9464"),
        help="Prometheus bind address host:port, or 'off' (env DR_METRICS_ADDRESS)",
    )
    p.add_argument("--max-concurrent-activities", type=int, default=int(env.get("DR_MAX_ACTIVITIES", "200")))
    p.add_argument("--shutdown-grace", type=float, default=float(env.get("DR_SHUTDOWN_GRACE", "30")))
    p.add_argument("--log-level", default=env.get("DR_LOG_LEVEL", "INFO"))
    args = p.parse_args(argv)
    if args.plan is None:
        args.plan = [p for p in env.get("DR_PLANS", "").split(":") if p]
    if not args.plan:
        p.error("no plan given: pass --plan PATH (or set DR_PLANS)")
    return args


def load_plans(paths: Sequence[str]) -> list[DrPlan]:
    plans = [load_plan(path) for path in paths]
    names = [plan.name for plan in plans]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise SystemExit(
            f"error: plan name(s) {', '.join(sorted(duplicates))} given more than once; plan names must be unique"
        )
    return plans


def make_runtime(metrics: str) -> Runtime | None:
    if metrics == "off":
        return None
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(bind_address=metrics, histogram_bucket_overrides=DURATION_BUCKETS)
        )
    )


def publish_targets(runtime: Runtime | None, plans: Sequence[DrPlan]) -> None:
    """Each served plan's RPO and RTO targets as gauges, so alert rules compare actuals against them."""
    if runtime is None:
        return
    meter = runtime.metric_meter
    rpo = meter.create_gauge("rpo_target_seconds", "the plan's recovery point objective", "s")
    rto = meter.create_gauge("rto_target_seconds", "the plan's recovery time objective", "s")
    for plan in plans:
        rpo.set(plan.rpo_target_seconds, {"plan": plan.name})
        rto.set(plan.rto_target_seconds, {"plan": plan.name})


async def run_worker(args: argparse.Namespace, *, stop: asyncio.Event | None = None) -> None:
    plans = load_plans(args.plan)
    settings = TemporalSettings.from_env(
        address=args.address,
        namespace=args.namespace,
        task_queue=args.task_queue,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_ca=args.tls_ca,
    )
    estates = Estates(plans, AzureConnection.from_env())
    try:
        # Built before connecting so that a half-configured worker stops at once with the reason.
        activities = bound_activities(activity_objects(estates))
    except BaseException:
        await estates.close()
        raise
    runtime = make_runtime(args.metrics)
    publish_targets(runtime, plans)
    client = await settings.connect(runtime)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        with ThreadPoolExecutor(max_workers=8) as executor:
            worker = Worker(
                client,
                task_queue=settings.task_queue,
                workflows=workflows(),
                activities=activities,
                activity_executor=executor,
                max_concurrent_activities=args.max_concurrent_activities,
                graceful_shutdown_timeout=timedelta(seconds=args.shutdown_grace),
            )
            log.info(
                "worker started",
                address=settings.address,
                namespace=settings.namespace,
                task_queue=settings.task_queue,
                plans=[p.name for p in plans],
                metrics=args.metrics,
                arm_endpoint=estates.connection.arm_endpoint,
            )
            run = asyncio.create_task(worker.run())
            stopper = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait({run, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if stopper in done:
                log.info("shutting down: finishing running activities", grace_seconds=args.shutdown_grace)
                await worker.shutdown()
            else:
                stopper.cancel()
            await run
    finally:
        await estates.close()
        log.info("worker stopped")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    configure_logging(args.log_level)
    try:
        asyncio.run(run_worker(args))
    except (PlanError, WorkerConfigError, CatalogError, KeyMaterialError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except TemporalUnreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
