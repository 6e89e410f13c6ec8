"""FailoverWorkflow: move an estate from its failed region to its DR region, step by step,
with independent steps in parallel, and measure the RTO and RPO it achieved.

A cancelled failover stops like an abort, at the next safe point: the changes under way finish
(shielded: an ARM operation is never cut halfway), waits and reads stop at once (the forced-failover
grace, the SLO samples, the extended-outage watch and its re-pinning child), the steps not done are
marked, and the workflow ends Cancelled with its step table in the status query."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from domain.messages.cosmos import SetCosmosWriteRegionInput, SetCosmosWriteRegionResult
    from domain.messages.failover import (
        AbortAccepted,
        AbortRequest,
        FailoverInput,
        FailoverResult,
        FailoverStatus,
        PrimaryRecovered,
        RepinInput,
        RepinSummary,
    )
    from domain.messages.frontdoor import SetOriginsInput, SetOriginsResult, active_passive
    from domain.messages.health import ReadSloInput, ReadSloResult, SloVerdict, evaluate_slo
    from domain.messages.plan import PlanSummary
    from domain.messages.platform import (
        MODE_READ_ONLY,
        DataLossWindowInput,
        DataLossWindowResult,
        SetTenantModeInput,
        SetTenantModeResult,
        WarmCacheInput,
        WarmCacheResult,
    )
    from domain.messages.progress import DONE, FAILED, PENDING, PLANNED, RUNNING, SKIPPED
    from domain.messages.readiness import CHECK_TARGET_REGION, FAIL, PreflightInput, ReadinessReport
    from domain.messages.servicebus import FailoverAliasInput, FailoverAliasResult
    from domain.messages.sql import (
        MODE_FORCED,
        MODE_PLANNED,
        FailoverSqlGroupInput,
        FailoverSqlGroupResult,
    )
    from domain.plan import SloSpec
    from workflows.common import (
        DR_PLAN,
        Progress,
        activity_options,
        cancel_note,
        cancelled,
        describe_plan,
        desired_state_step,
        error_text,
        error_type,
        gather_steps,
        now_iso,
        raise_if_cancelled,
        shielded,
    )
    from workflows.lock import hold_plan, release_plan_lock
    from workflows.repin import RepinTenantsWorkflow


WORKFLOW_NAME = "FailoverWorkflow"
# Phases in which an abort has nothing left to stop.
ENDED_PHASES = ("completed", "watching", "failed", "aborted", "cancelled")


class Aborted(Exception):
    """Raised between steps once an operator asked to abort."""


def _iso_to_datetime(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@workflow.defn(name=WORKFLOW_NAME)
class FailoverWorkflow:
    @workflow.init
    def __init__(self, inp: FailoverInput) -> None:
        self.inp = inp
        self.progress = Progress(f"Failover {inp.plan}: {inp.from_region} → {inp.to_region}")
        self.abort_request: AbortRequest | None = None
        self.recovered: PrimaryRecovered | None = None
        self.started_at = ""
        self.rto_seconds: float | None = None
        self.rpo_seconds: float | None = None
        self.slo_green: bool | None = None
        self.last_slo = ""
        self.repin: RepinSummary | None = None
        self.extended_outage = "watching"
        self.repin_child: str | None = None  # the re-pinning child's workflow id, once started
        self.error: str | None = None
        self.planned_calls: list[str] = []

    # ---- messages -------------------------------------------------------------------------

    @workflow.query(name="status")
    def status(self) -> FailoverStatus:
        return FailoverStatus(
            workflow_id=workflow.info().workflow_id,
            plan=self.inp.plan,
            from_region=self.inp.from_region,
            to_region=self.inp.to_region,
            phase=self.progress.phase,
            dry_run=self.inp.dry_run,
            steps=self.progress.table,
            started_at=self.started_at,
            rto_seconds=self.rto_seconds,
            rpo_seconds=self.rpo_seconds,
            slo_green=self.slo_green,
            abort_requested=self.abort_request.reason if self.abort_request else None,
            repin=self.repin,
            extended_outage=self.extended_outage,
            last_slo=self.last_slo,
            error=self.error,
        )

    @workflow.signal(name="primary-recovered")
    def primary_recovered(self, sig: PrimaryRecovered) -> None:
        if self.recovered is None:
            self.recovered = sig

    @workflow.update(name="abort")
    def abort(self, req: AbortRequest) -> AbortAccepted:
        self.abort_request = req
        return AbortAccepted(
            True, f"abort requested: the failover stops after the step(s) now running ({self.progress.phase})"
        )

    @abort.validator
    def _validate_abort(self, req: AbortRequest) -> None:
        if not req.reason.strip():
            raise ValueError("an abort needs a reason (--reason)")
        if self.abort_request is not None:
            raise ValueError(f"abort already requested: {self.abort_request.reason}")
        if workflow.cancellation_reason() is not None:
            raise ValueError(f"nothing to abort: the failover is being {cancel_note()}")
        if self.progress.phase in ENDED_PHASES:
            raise ValueError(f"nothing to abort: the failover is {self.progress.phase}")

    # ---- the run ----------------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: FailoverInput) -> FailoverResult:
        self.started_at = now_iso()
        start = workflow.now()
        workflow.upsert_search_attributes([DR_PLAN.value_set(inp.plan)])
        plan = await describe_plan(self.progress, inp.plan, inp.plan_digest, cancelled_phase="cancelled")
        self._validate(inp, plan)
        self._declare_steps(plan)
        lock = await hold_plan(
            inp.plan, WORKFLOW_NAME, self.progress, first_step="preflight", failed_phase="failed", dry_run=inp.dry_run
        )
        try:
            return await self._fail_over(inp, plan, start)
        finally:
            await shielded(release_plan_lock(lock))

    async def _fail_over(self, inp: FailoverInput, plan: PlanSummary, start: datetime) -> FailoverResult:
        outage_start = _iso_to_datetime(inp.outage_started_at) if inp.outage_started_at else start
        watcher: asyncio.Task[None] | None = None
        try:
            source_healthy = await self._preflight(inp)
            self._check_abort()
            self.progress.set_phase("cutover")
            await gather_steps(
                self._frontdoor(inp),
                self._servicebus(inp),
                self._tenants_read_only(inp),
                passthrough=(Aborted,),
            )
            self._check_abort()
            self.progress.set_phase("data")
            await gather_steps(
                *[self._sql(inp, plan, g, source_healthy, outage_start) for g in plan.failover_groups],
                self._cosmos(inp),
                passthrough=(Aborted,),
            )
            self._check_abort()
            watcher = asyncio.create_task(self._extended_outage(inp, plan, outage_start))
            self.progress.set_phase("warmup")
            await self._warmup(inp)
            self._check_abort()
            self.progress.set_phase("validate")
            await self._validate_slo(inp, plan, start)
            if not inp.dry_run:
                self.progress.set_phase("watching")
            await watcher
        except Aborted:
            await self._stop_watch(watcher, "aborted")
            self.progress.set_phase("aborted")
            return self._result(inp, "aborted", start)
        except asyncio.CancelledError:
            if workflow.cancellation_reason() is None:  # not the workflow's cancel: the worker evicts it
                raise
            await self._wind_down(watcher)
            raise
        except (ActivityError, ChildWorkflowError, ApplicationError) as err:
            if cancelled(err):  # an SLO read or the re-pinning child, cancelled with the workflow
                await self._wind_down(watcher)
                raise
            if watcher is not None and not watcher.done():
                watcher.cancel()
            self.error = error_text(err)
            self.progress.set_phase("failed")
            result = self._result(inp, "failed", start)
            raise ApplicationError(
                f"failover {inp.from_region}→{inp.to_region} of plan {inp.plan} failed: {self.error}. "
                f"done: {', '.join(result.done) or 'nothing'}; not done: {', '.join(result.not_done) or 'nothing'}",
                result,
                type=error_type(err) or "FailoverFailed",
                non_retryable=True,
            ) from err
        outcome = "dry-run" if inp.dry_run else ("succeeded" if self.slo_green else "slo-not-met")
        self.progress.set_phase("completed")
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._result(inp, outcome, start)

    # ---- steps ------------------------------------------------------------------------------

    def _validate(self, inp: FailoverInput, plan: PlanSummary) -> None:
        regions = (plan.primary_region, plan.dr_region)
        problems = []
        for name, value in (("from_region", inp.from_region), ("to_region", inp.to_region)):
            if value not in regions:
                problems.append(f"{name} {value!r} is not a region of plan {plan.name} ({', '.join(regions)})")
        if inp.from_region == inp.to_region:
            problems.append(
                f"from_region and to_region are both {inp.from_region}: choose the failed region and its DR region"
            )
        if problems:
            raise ApplicationError("; ".join(problems), type="InvalidInput", non_retryable=True)

    def _declare_steps(self, plan: PlanSummary) -> None:
        p = self.progress
        p.add("preflight", "Pre-flight readiness")
        p.add("frontdoor", f"Front Door: traffic to {self.inp.to_region}")
        p.add("servicebus", f"Service Bus alias {plan.servicebus_alias} → {self.inp.to_region}")
        p.add("tenants", f"Tenants homed in {self.inp.from_region} read-only")
        for g in plan.failover_groups:
            p.add(f"sql:{g}", f"SQL failover group {g}")
        p.add("cosmos", f"Cosmos DB write region → {self.inp.to_region}")
        p.add("warmup", f"Cache warm-up in {self.inp.to_region}")
        p.add("slo", "SLO validation")
        p.add("repin", "Extended outage: re-pin tenants")
        p.publish()

    def _check_abort(self) -> None:
        """A safe point between steps: stop here once cancelled (a shielded step may have absorbed the
        cancel) or asked to abort."""
        raise_if_cancelled()
        if self.abort_request is not None:
            self.progress.skip_pending(f"aborted: {self.abort_request.reason}")
            raise Aborted

    async def _wind_down(self, watcher: asyncio.Task[None] | None) -> None:
        """After the workflow's cancel: the changes under way have finished (they are shielded) and the
        waits have stopped; stop the extended-outage watch, mark what was cut short or never started,
        and show phase cancelled. The run then re-raises the cancel, so Temporal shows Cancelled."""
        await self._stop_watch(watcher, "cancelled")
        note = cancel_note()
        self.progress.cut_short(note)
        self.progress.skip_pending(note)
        self.progress.set_phase("cancelled")
        await workflow.wait_condition(workflow.all_handlers_finished)

    async def _stop_watch(self, watcher: asyncio.Task[None] | None, why: str) -> None:
        """End the extended-outage watch early (``why``: aborted or cancelled). Before the threshold
        its timer is dropped. Past it, the re-pinning child is asked to cancel and awaited (a child
        workflow's default cancellation type waits for the child to close, so it ends Cancelled
        rather than terminated with this workflow): it stops within its current batch, and the tenants
        it moved stay re-pinned (each batch is idempotent, so a later re-pinning continues from there)."""
        if watcher is not None and not watcher.done():
            watcher.cancel()
            await workflow.wait([watcher])
        failure = None if watcher is None or watcher.cancelled() else watcher.exception()
        if self.extended_outage == "watching":
            self.extended_outage = why
        if self.progress.table.get("repin").status != RUNNING:
            return
        if failure is not None and not cancelled(failure):
            self.progress.mark("repin", FAILED, error_text(failure))
            return
        if self.repin_child is None:
            self.progress.mark("repin", SKIPPED, f"{why} before the extended-outage threshold")
        else:
            self.progress.mark(
                "repin",
                FAILED,
                f"{why} while re-pinning: the tenants moved so far stay in {self.inp.to_region} "
                f"(child workflow {self.repin_child})",
            )

    async def _preflight(self, inp: FailoverInput) -> bool:
        """Readiness checks; refuses with every failed reason at once (unless forced, and never
        when the target region itself is down). Returns whether the source region answers."""
        report: ReadinessReport = await self.progress.run(
            "preflight",
            lambda: workflow.execute_activity(
                "readiness.preflight",
                PreflightInput(inp.plan, inp.from_region, inp.to_region),
                result_type=ReadinessReport,
                **activity_options(2, summary="pre-flight readiness checks"),
            ),
            lambda r: f"{sum(1 for c in r.checks if c.status != FAIL)}/{len(r.checks)} checks OK",
        )
        failed = [c for c in report.checks if c.status == FAIL]
        blocking = [c for c in failed if c.key == CHECK_TARGET_REGION or not inp.force]
        if blocking:
            reasons = [f"{c.title}: {c.detail}" for c in blocking]
            self.progress.mark("preflight", FAILED, "; ".join(reasons))
            raise ApplicationError(
                "pre-flight refused the failover: "
                + "; ".join(reasons)
                + ("" if inp.force else " (fix them, or pass --force to override all but the target-region check)"),
                report,
                type="PreflightRefused",
                non_retryable=True,
            )
        if failed:
            self.progress.mark("preflight", DONE, "forced past: " + "; ".join(f"{c.title}: {c.detail}" for c in failed))
        return report.source_region_healthy

    async def _frontdoor(self, inp: FailoverInput) -> SetOriginsResult:
        return await desired_state_step(
            self.progress,
            "frontdoor",
            activity_name="frontdoor.set_origins",
            arg=SetOriginsInput(
                inp.plan, active_passive(inp.to_region, inp.from_region), reason=inp.reason, dry_run=inp.dry_run
            ),
            result_type=SetOriginsResult,
            describe=lambda r: f"changed {', '.join(r.changed) or 'nothing (already so)'}",
            summary=f"route traffic to {inp.to_region}",
            planned_calls=self.planned_calls,
        )

    async def _servicebus(self, inp: FailoverInput) -> FailoverAliasResult:
        return await desired_state_step(
            self.progress,
            "servicebus",
            activity_name="servicebus.failover_alias",
            arg=FailoverAliasInput(inp.plan, inp.to_region, dry_run=inp.dry_run),
            result_type=FailoverAliasResult,
            describe=lambda r: f"primary {r.primary_namespace} ({r.role})" + ("" if r.changed else ", already so"),
            summary=f"fail the Service Bus alias over to {inp.to_region}",
            planned_calls=self.planned_calls,
        )

    async def _tenants_read_only(self, inp: FailoverInput) -> SetTenantModeResult:
        return await desired_state_step(
            self.progress,
            "tenants",
            activity_name="platform.set_tenant_mode",
            arg=SetTenantModeInput(
                inp.plan,
                inp.from_region,
                MODE_READ_ONLY,
                f"DR failover: {inp.reason}",
                gateway_region=inp.to_region,
                dry_run=inp.dry_run,
            ),
            result_type=SetTenantModeResult,
            describe=lambda r: f"{r.changed} of {r.matched} tenants set read-only",
            summary=f"tenants of {inp.from_region} read-only",
            planned_calls=self.planned_calls,
        )

    async def _sql(
        self, inp: FailoverInput, plan: PlanSummary, group: str, source_healthy: bool, outage_start: datetime
    ) -> FailoverSqlGroupResult:
        """Planned failover when the partner answers; forced (data loss) only when the plan allows it
        and the outage has outlasted its grace period; the grace is a durable timer that a
        "primary recovered" signal cuts short, and a cancel drops (it is not shielded, unlike the
        failover itself)."""
        key = f"sql:{group}"
        mode = MODE_PLANNED
        if not source_healthy and not inp.dry_run:
            if not plan.allow_data_loss:
                self.progress.mark(key, FAILED, f"{inp.from_region} is down and the plan forbids data loss")
                raise ApplicationError(
                    f"SQL failover group {group}: planned failover needs {inp.from_region}, which is down, "
                    "and the plan forbids forced failover (failover.allow_data_loss = false); wait for the region "
                    "to recover and retry, or allow data loss in the plan",
                    type="DataLossNotAllowed",
                    non_retryable=True,
                )
            grace_end = outage_start + timedelta(minutes=plan.data_loss_grace_minutes)
            remaining = (grace_end - workflow.now()).total_seconds()
            if remaining > 0:
                self.progress.mark(
                    key, RUNNING, f"partner down: waiting {remaining / 60:.0f} min of grace before a forced failover"
                )
            mode = MODE_PLANNED if await self._recovered_within(remaining) else MODE_FORCED
        result = await desired_state_step(
            self.progress,
            key,
            activity_name="sql.failover_group",
            arg=FailoverSqlGroupInput(inp.plan, group, inp.to_region, mode=mode, dry_run=inp.dry_run),
            result_type=FailoverSqlGroupResult,
            describe=lambda r: (
                f"{r.mode} failover, primary {r.primary_server}"
                + (" (data loss possible)" if r.data_loss_possible else "")
            ),
            summary=f"{mode} failover of SQL group {group}",
            planned_calls=self.planned_calls,
            minutes=30,
        )
        if result.mode == MODE_FORCED and not inp.dry_run:
            # Part of the forced failover's step, and its evidence: measured even once cancelled.
            window = await shielded(
                workflow.start_activity(
                    "platform.data_loss_window",
                    DataLossWindowInput(
                        inp.plan, store=f"sql:{group}", failed_region=inp.from_region, at=result.completed_at
                    ),
                    result_type=DataLossWindowResult,
                    **activity_options(2, summary=f"data-loss window of {group}"),
                )
            )
            self._add_rpo(window.seconds)
            self.progress.mark(
                key, DONE, f"forced failover, primary {result.primary_server}, data-loss window {window.seconds:.1f}s"
            )
        elif not inp.dry_run:
            self._add_rpo(0.0)
        return result

    async def _cosmos(self, inp: FailoverInput) -> SetCosmosWriteRegionResult:
        return await desired_state_step(
            self.progress,
            "cosmos",
            activity_name="cosmos.set_write_region",
            arg=SetCosmosWriteRegionInput(inp.plan, inp.to_region, dry_run=inp.dry_run),
            result_type=SetCosmosWriteRegionResult,
            describe=lambda r: f"write region {r.write_region}" + ("" if r.changed else ", already so"),
            summary=f"Cosmos DB write region to {inp.to_region}",
            planned_calls=self.planned_calls,
            minutes=30,
        )

    async def _warmup(self, inp: FailoverInput) -> WarmCacheResult:
        return await desired_state_step(
            self.progress,
            "warmup",
            activity_name="platform.warm_cache",
            arg=WarmCacheInput(inp.plan, inp.to_region, gateway_region=inp.to_region, dry_run=inp.dry_run),
            result_type=WarmCacheResult,
            describe=lambda r: f"cache {r.state} in {r.duration_seconds:.1f}s",
            summary=f"warm the cache in {inp.to_region}",
            planned_calls=self.planned_calls,
        )

    async def _validate_slo(self, inp: FailoverInput, plan: PlanSummary, start: datetime) -> None:
        """Sample the SLO until green or timeout; RTO is the time from start to the first green."""
        if inp.dry_run:
            self.progress.mark("slo", PLANNED, "would read Azure Monitor metrics until the SLO is green")
            return
        slo = SloSpec(
            max_error_rate=plan.slo_max_error_rate,
            p95_latency_ms=plan.slo_p95_latency_ms,
            min_request_count=plan.slo_min_request_count,
            validation_timeout_seconds=plan.slo_validation_timeout_seconds,
            sample_interval_seconds=plan.slo_sample_interval_seconds,
        )
        interval = plan.slo_sample_interval_seconds
        timeout = inp.slo_timeout_seconds or plan.slo_validation_timeout_seconds
        deadline = workflow.now() + timedelta(seconds=timeout)
        self.progress.mark("slo", RUNNING, "waiting for the first sample")
        samples = 0
        while True:
            await workflow.sleep(timedelta(seconds=interval))
            samples += 1
            reading = await workflow.execute_activity(
                "health.read_slo",
                ReadSloInput(inp.plan, window_seconds=interval, interval=f"PT{interval}S"),
                result_type=ReadSloResult,
                **activity_options(2, summary="read SLO metrics"),
            )
            verdict: SloVerdict = evaluate_slo(reading.overall, slo)
            rate = f"{reading.overall.error_rate:.2%}" if reading.overall.error_rate is not None else "n/a"
            latency = f"{reading.overall.latency_ms:.0f} ms" if reading.overall.latency_ms is not None else "n/a"
            self.last_slo = f"{verdict.status}: {reading.overall.request_count:.0f} req, 5xx {rate}, latency {latency}"
            if verdict.ok:
                self.slo_green = True
                self.rto_seconds = (workflow.now() - start).total_seconds()
                workflow.metric_meter().create_gauge_float(
                    "failover_rto_seconds", "Measured RTO of the last failover: start to SLO green", "s"
                ).set(self.rto_seconds, {"plan": inp.plan, "drill": str(inp.drill).lower()})
                self.progress.mark(
                    "slo", DONE, f"green after {samples} sample(s): {self.last_slo}; RTO {self.rto_seconds:.1f}s"
                )
                return
            if workflow.now() >= deadline:
                self.slo_green = False
                self.progress.mark(
                    "slo", FAILED, f"not green within {timeout}s: {'; '.join(verdict.reasons)} ({self.last_slo})"
                )
                return
            self.progress.mark("slo", RUNNING, f"sample {samples}: {'; '.join(verdict.reasons)}")

    async def _extended_outage(self, inp: FailoverInput, plan: PlanSummary, outage_start: datetime) -> None:
        """A durable timer racing the "primary recovered" signal: past the threshold, tenants whose
        residency allows the DR region are re-pinned there, in batches, by a child workflow."""
        minutes = inp.extended_outage_minutes or plan.extended_outage_minutes
        if inp.dry_run:
            self.extended_outage = "not-applicable"
            self.progress.mark(
                "repin",
                PLANNED,
                f"after {minutes} min of outage unless the primary recovers: re-pin tenants of {inp.from_region} "
                f"whose residency allows {inp.to_region}, {plan.repin_batch_size} per batch",
            )
            return
        threshold = outage_start + timedelta(minutes=minutes)
        remaining = (threshold - workflow.now()).total_seconds()
        self.progress.mark("repin", RUNNING, f"re-pinning at {threshold.isoformat()} unless {inp.from_region} recovers")
        if await self._recovered_within(remaining):
            self.extended_outage = "recovered"
            self.progress.mark("repin", SKIPPED, f"{inp.from_region} recovered before the {minutes}-minute threshold")
            return
        self.repin_child = f"{workflow.info().workflow_id}-repin"
        self.progress.mark(
            "repin", RUNNING, f"re-pinning tenants of {inp.from_region} to {inp.to_region}: child {self.repin_child}"
        )
        self.repin = await workflow.execute_child_workflow(
            RepinTenantsWorkflow.run,
            RepinInput(
                plan=inp.plan,
                from_region=inp.from_region,
                to_region=inp.to_region,
                batch_size=plan.repin_batch_size,
                reason=f"extended outage of {inp.from_region}: {inp.reason}",
            ),
            id=self.repin_child,
            static_summary=f"re-pin tenants of {inp.from_region} to {inp.to_region}",
        )
        self.extended_outage = "repinned"
        r = self.repin
        self.progress.mark(
            "repin",
            DONE,
            f"{r.moved} moved, {r.already_there} already there, {r.not_allowed} kept home by residency, "
            f"in {r.batches} batches",
        )

    async def _recovered_within(self, seconds: float) -> bool:
        """A durable timer racing the "primary recovered" signal: True if the signal came first."""
        if seconds > 0 and self.recovered is None:
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: self.recovered is not None, timeout=timedelta(seconds=seconds))
        return self.recovered is not None

    def _add_rpo(self, seconds: float) -> None:
        self.rpo_seconds = max(self.rpo_seconds or 0.0, seconds)

    def _result(self, inp: FailoverInput, outcome: str, start: datetime) -> FailoverResult:
        table = self.progress.table
        return FailoverResult(
            workflow_id=workflow.info().workflow_id,
            plan=inp.plan,
            from_region=inp.from_region,
            to_region=inp.to_region,
            outcome=outcome,
            dry_run=inp.dry_run,
            steps=table,
            started_at=self.started_at,
            finished_at=now_iso(),
            rto_seconds=self.rto_seconds,
            rpo_seconds=self.rpo_seconds,
            slo_green=bool(self.slo_green),
            done=table.by_status(DONE),
            not_done=table.by_status(PENDING, RUNNING, FAILED, SKIPPED),
            planned_calls=list(self.planned_calls),
            repin=self.repin,
            reason=self.error or (self.abort_request.reason if self.abort_request else ""),
        )
