"""BackupWorkflow: a signed recovery point per tenant (list the live segments, copy each into a
package, sign the manifest, complete the catalog row) for one tenant or every tenant of a plan,
a bounded number at a time. One tenant's failure never stops the others: the run fails at the end,
naming them. History stays bounded: a run backs up at most ``tenants_per_run`` tenants, then
continues as new carrying what it did.

A recovery point is a full copy (a promotion makes the live data exactly its packages), made for
every tenant with data on every run: the age of a tenant's newest recovery point is its effective
RPO. A tenant with no segments gets none (an empty point would erase its data if ever promoted).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain.messages.backups import (
        BACKUP_FULL,
        DATA_CLASSES,
        STATUS_COMPLETED,
        STATUS_FAILED,
        CopyPackageInput,
        CopyPackageResult,
        ListSegmentsInput,
        ListSegmentsResult,
        RegisterRecoveryPointInput,
        RegisterRecoveryPointResult,
        Segment,
        WriteManifestInput,
        WriteManifestResult,
        recovery_point_id,
        utc_iso,
    )
    from domain.messages.plan import DescribePlan, PlanSummary
    from domain.messages.platform import ListTenantsInput, ListTenantsResult
    from domain.messages.progress import DONE, FAILED, RUNNING, SKIPPED
    from domain.messages.restore import BackupInput, BackupResult, BackupStatus
    from workflows.common import DR_PLAN, TENANT_ID, Progress, activity_options, error_text, now_iso

T = TypeVar("T")
R = TypeVar("R")

BACKUP_RUNS = "backup_runs_total"
BACKUP_DURATION = "backup_duration_seconds"
BACKUP_BYTES = "backup_bytes_total"
# The operations guide's labels (its alert rule matches result="failed").
RESULT_SUCCESS = "success"
RESULT_FAILED = "failed"
BACKUP_FAILED = "BackupFailed"
REGISTRY_PAGE_MAX = 1000
NAMED_FAILURES = 10


def tenant_step(tenant: str) -> str:
    """The step-table key of one tenant's backup."""
    return f"tenant:{tenant}"


async def bounded(
    items: Sequence[T],
    limit: int,
    work: Callable[[T], Awaitable[R]],
    *,
    stop: Callable[[], bool] | None = None,
) -> list[R]:
    """Run ``work`` over ``items`` in order, at most ``limit`` at once.

    No item is started after the first failure (raised once the running ones end) or, after the
    first item, once ``stop()`` is true. Returns the results of the items started: a prefix of ``items``."""
    results: dict[int, R] = {}
    failures: list[BaseException] = []
    started = 0

    async def lane() -> None:
        nonlocal started
        while started < len(items) and not failures and not (started and stop is not None and stop()):
            index = started
            started += 1
            try:
                results[index] = await work(items[index])
            except (ActivityError, ApplicationError) as err:
                failures.append(err)

    await asyncio.gather(*(lane() for _ in range(min(limit, len(items)))))
    if failures:
        raise failures[0]
    return [results[i] for i in range(started)]


def human_bytes(count: int) -> str:
    """Bytes for people: ``512 B``, ``12.3 KiB``, ``4.0 MiB``, ``1.2 GiB``."""
    if count < 1024:
        return f"{count} B"
    value = count / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


@workflow.defn(name="BackupWorkflow")
class BackupWorkflow:
    @workflow.init
    def __init__(self, inp: BackupInput) -> None:
        self.inp = inp
        self.progress = Progress(f"Backup of plan {inp.plan}")
        self.started_at = inp.started_at or ""
        self.region = ""
        self.total = inp.total
        self.remaining = 0
        self.done: list[str] = list(inp.done)
        self.failed: list[str] = list(inp.failed)
        self.skipped: list[str] = list(inp.skipped)
        # Counts are whole; the lists name at most names_kept (max: an input from before the counts).
        self.points_made = max(inp.points_made, len(self.done))
        self.failures = max(inp.failures, len(self.failed))
        self.skips = max(inp.skips, len(self.skipped))
        self.running: list[str] = []
        self.bytes_copied = inp.bytes_copied

    @workflow.query(name="status")
    def status(self) -> BackupStatus:
        return BackupStatus(
            workflow_id=workflow.info().workflow_id,
            plan=self.inp.plan,
            phase=self.progress.phase,
            steps=self.progress.table,
            started_at=self.started_at,
            run=self.inp.runs + 1,
            total=self.total,
            recovery_points=tuple(self.done),
            failed=tuple(self.failed),
            skipped=tuple(self.skipped),
            running=tuple(self.running),
            points_made=self.points_made,
            failures=self.failures,
            skips=self.skips,
            remaining=self.remaining,
            bytes_copied=self.bytes_copied,
        )

    @workflow.run
    async def run(self, inp: BackupInput) -> BackupResult:
        self.started_at = inp.started_at or now_iso()
        self._check(inp)
        attributes = [DR_PLAN.value_set(inp.plan)]
        if inp.runs == 0 and len(inp.tenant_ids) == 1:
            attributes.append(TENANT_ID.value_set(inp.tenant_ids[0]))
        workflow.upsert_search_attributes(attributes)
        self.progress.add("describe", "Find the tenants to back up")
        self.progress.set_phase("starting")
        queue, cursor = await self.progress.run(
            "describe", lambda: self._queue(inp), lambda q: self._describe_queue(inp, q[0], q[1])
        )
        batch = queue[: inp.tenants_per_run]
        self.remaining = len(queue) - len(batch)
        for tenant in batch:
            self.progress.add(tenant_step(tenant), f"Back up {tenant}")
        self.progress.set_phase("backing-up")
        started = await bounded(
            batch,
            inp.concurrency,
            lambda tenant: self._tenant(inp, tenant),
            stop=lambda: workflow.info().is_continue_as_new_suggested(),
        )
        rest = queue[len(started) :]
        for tenant in batch[len(started) :]:
            self.progress.mark(tenant_step(tenant), SKIPPED, "left for the next run (history is full)")
        if rest or cursor:
            self.remaining = len(rest)
            self.progress.set_phase("continuing")
            await workflow.wait_condition(workflow.all_handlers_finished)
            workflow.continue_as_new(
                replace(
                    inp,
                    tenant_ids=rest,
                    cursor=cursor,
                    done=tuple(self.done),
                    failed=tuple(self.failed),
                    skipped=tuple(self.skipped),
                    points_made=self.points_made,
                    failures=self.failures,
                    skips=self.skips,
                    runs=inp.runs + 1,
                    total=self.total,
                    bytes_copied=self.bytes_copied,
                    started_at=self.started_at,
                )
            )
        result = BackupResult(
            plan=inp.plan,
            recovery_points=tuple(self.done),
            failed=tuple(self.failed),
            skipped=tuple(self.skipped),
            tenants=self.points_made + self.failures + self.skips,
            points_made=self.points_made,
            failures=self.failures,
            skips=self.skips,
            bytes_copied=self.bytes_copied,
            runs=inp.runs + 1,
            started_at=self.started_at,
            finished_at=now_iso(),
        )
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self.failures:
            self.progress.set_phase("failed")
            named = "; ".join(self.failed[:NAMED_FAILURES])
            more = self.failures - min(len(self.failed), NAMED_FAILURES)
            raise ApplicationError(
                f"backup of plan {inp.plan} failed for {self.failures} of {result.tenants} tenant(s) "
                f"({self.points_made} recovery point(s) made): {named}" + (f"; and {more} more" if more > 0 else ""),
                result,
                type=BACKUP_FAILED,
                non_retryable=True,
            )
        self.progress.set_phase("completed")
        return result

    # ---- which tenants ----------------------------------------------------------------------

    @staticmethod
    def _check(inp: BackupInput) -> None:
        problems = []
        if inp.data_class not in DATA_CLASSES:
            problems.append(f"data class must be one of {', '.join(DATA_CLASSES)}, not {inp.data_class!r}")
        for name, value in (
            ("tenants_per_run", inp.tenants_per_run),
            ("concurrency", inp.concurrency),
            ("copy_concurrency", inp.copy_concurrency),
            ("names_kept", inp.names_kept),
        ):
            if value < 1:
                problems.append(f"{name} must be at least 1, not {value}")
        if problems:
            raise ApplicationError("; ".join(problems), type="InvalidInput", non_retryable=True)

    async def _queue(self, inp: BackupInput) -> tuple[tuple[str, ...], str | None]:
        """This run's tenants in order, and the registry cursor to read after them (None: no more).

        Explicit or carried-over tenants first; else the plan's tenants (plan.describe lists them for
        plans up to its limit); else, for larger plans, one page of the tenant registry."""
        summary: PlanSummary = await workflow.execute_activity(
            "plan.describe", DescribePlan(inp.plan), result_type=PlanSummary, **activity_options(2, summary="plan")
        )
        self.region = summary.primary_region
        cursor: str | None = None
        if inp.tenant_ids:
            queue = tuple(dict.fromkeys(inp.tenant_ids))
            cursor = inp.cursor
        elif inp.cursor is None and (summary.tenant_ids or not sum(summary.tenants_by_home.values())):
            queue = tuple(summary.tenant_ids)
        else:
            page: ListTenantsResult = await workflow.execute_activity(
                "platform.list_tenants",
                ListTenantsInput(inp.plan, cursor=inp.cursor, limit=min(inp.tenants_per_run, REGISTRY_PAGE_MAX)),
                result_type=ListTenantsResult,
                **activity_options(5, summary="tenant registry page"),
            )
            queue = tuple(dict.fromkeys(t.id for t in page.tenants))
            cursor = page.next_cursor
            self.total = self.total or page.total
        self.total = self.total or len(queue)
        return queue, cursor

    def _describe_queue(self, inp: BackupInput, queue: tuple[str, ...], cursor: str | None) -> str:
        later = len(queue) - min(len(queue), inp.tenants_per_run)
        text = f"{min(len(queue), inp.tenants_per_run)} tenant(s) in this run (run {inp.runs + 1}) of {self.total}"
        if later or cursor:
            text += f"; {later} more" + (" and further registry pages" if cursor else "") + " in later runs"
        return text + f"; region {self.region}"

    # ---- one tenant -------------------------------------------------------------------------

    async def _tenant(self, inp: BackupInput, tenant: str) -> None:
        """Back up one tenant; a failure is recorded (and the catalog row marked failed), never raised."""
        key = tenant_step(tenant)
        self.running.append(tenant)
        self.progress.mark(key, RUNNING, "listing live segments")
        begin = workflow.now()
        point_id: str | None = None
        common: dict[str, Any] = {}
        try:
            listed: ListSegmentsResult = await workflow.execute_activity(
                "backups.list_segments",
                ListSegmentsInput(inp.plan, tenant),
                result_type=ListSegmentsResult,
                **activity_options(5, summary=f"list segments of {tenant}"),
            )
            if not listed.segments:
                state = "has no segments" if listed.container_exists else "does not exist"
                why_not = f"no data: container '{listed.container}' {state}"
                self.skips += 1
                self._name(self.skipped, f"{tenant}: {why_not}")
                self.progress.mark(key, SKIPPED, why_not)
                return
            created = workflow.now()
            point_id = recovery_point_id(created, self.region, tenant)
            common = {
                "plan": inp.plan,
                "recovery_point_id": point_id,
                "tenant_id": tenant,
                "region": self.region,
                "backup_type": BACKUP_FULL,
                "created_at": utc_iso(created),
                "data_classes": (inp.data_class,),
            }
            await self._register(RegisterRecoveryPointInput(**common), "register")
            segments = listed.segments
            self.progress.mark(key, RUNNING, f"{point_id}: copying {len(segments)} segment(s)")
            copies = await bounded(segments, inp.copy_concurrency, lambda s: self._copy(inp, tenant, point_id, s))
            packages = tuple(sorted((c.package for c in copies), key=lambda p: p.name))
            self.progress.mark(key, RUNNING, f"{point_id}: signing the manifest of {len(packages)} package(s)")
            manifest: WriteManifestResult = await workflow.execute_activity(
                "backups.write_manifest",
                WriteManifestInput(packages=packages, **common),
                result_type=WriteManifestResult,
                **activity_options(5, summary=f"manifest of {point_id}"),
            )
            await self._register(
                RegisterRecoveryPointInput(
                    status=STATUS_COMPLETED,
                    packages=packages,
                    merkle_root=manifest.merkle_root,
                    signature=manifest.signature,
                    key_id=manifest.key_id,
                    time_from=manifest.time_from,
                    time_to=manifest.time_to,
                    manifest_blob=manifest.manifest_blob,
                    manifest_uri=manifest.manifest_uri,
                    **common,
                ),
                "complete",
            )
            uploaded = sum(c.package.bytes for c in copies if c.uploaded)
            self.bytes_copied += uploaded
            self.points_made += 1
            self._name(self.done, point_id)
            self._measure(inp, begin, RESULT_SUCCESS, uploaded)
            self.progress.mark(
                key,
                DONE,
                f"{point_id}: {len(packages)} package(s), {human_bytes(sum(p.bytes for p in packages))}, "
                f"Merkle root {manifest.merkle_root[:12]}",
            )
        except (ActivityError, ApplicationError) as err:
            reason = error_text(err)
            if point_id is not None:
                reason = await self._mark_failed(common, reason)
            self.failures += 1
            self._name(self.failed, f"{tenant}: {reason}")
            self._measure(inp, begin, RESULT_FAILED)
            self.progress.mark(key, FAILED, reason)
        finally:
            self.running.remove(tenant)

    def _name(self, names: list[str], name: str) -> None:
        """Keep ``name`` while fewer than names_kept are kept: what continue-as-new carries stays bounded."""
        if len(names) < self.inp.names_kept:
            names.append(name)

    async def _copy(self, inp: BackupInput, tenant: str, point_id: str, segment: Segment) -> CopyPackageResult:
        result: CopyPackageResult = await workflow.execute_activity(
            "backups.copy_package",
            CopyPackageInput(inp.plan, tenant, point_id, segment.name, inp.data_class),
            result_type=CopyPackageResult,
            **activity_options(30, summary=f"copy {segment.name} of {tenant}"),
        )
        return result

    async def _register(self, request: RegisterRecoveryPointInput, verb: str) -> RegisterRecoveryPointResult:
        result: RegisterRecoveryPointResult = await workflow.execute_activity(
            "backups.register_recovery_point",
            request,
            result_type=RegisterRecoveryPointResult,
            **activity_options(5, summary=f"{verb} {request.recovery_point_id}"),
        )
        return result

    async def _mark_failed(self, common: dict[str, Any], reason: str) -> str:
        """Record the failure on the catalog row; the reason, noting if even that failed."""
        try:
            await self._register(RegisterRecoveryPointInput(status=STATUS_FAILED, failure=reason, **common), "fail")
        except (ActivityError, ApplicationError) as err:
            return f"{reason} (and marking {common['recovery_point_id']} failed: {error_text(err)})"
        return reason

    @staticmethod
    def _measure(inp: BackupInput, begin: datetime, result: str, uploaded: int = 0) -> None:
        meter = workflow.metric_meter()
        meter.create_counter(BACKUP_RUNS, "tenant backups by result").add(1, {"plan": inp.plan, "result": result})
        meter.create_histogram_float(BACKUP_DURATION, "wall time of one tenant's backup", "s").record(
            (workflow.now() - begin).total_seconds(), {"plan": inp.plan, "result": result}
        )
        if uploaded:
            meter.create_counter(BACKUP_BYTES, "bytes copied into recovery points", "By").add(
                uploaded, {"plan": inp.plan}
            )
