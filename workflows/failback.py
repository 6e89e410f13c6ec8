"""FailbackWorkflow: bring an estate back to its recovered primary region. Data first (Service Bus
re-pairing and fail-over, SQL planned failover, Cosmos DB write region), then traffic in steps,
each soaked while its SLO is sampled; a breach, or missing data, rolls the weights back to the
last good step and waits for an operator to resume, promote or abort.

A cancel (the Temporal UI's "Request Cancellation", ``temporal workflow cancel``, a cancelled parent)
is an abort with the reason "cancelled[: <reason>]": the change under way finishes (every change is
shielded from the cancel: traffic is never left at a weight nobody chose), waits and reads stop, all
traffic returns to the DR region, and the workflow ends Cancelled. Once all traffic is on the primary
(tenants, warm-up), where an abort is refused as too late, traffic stays there."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from domain.messages.cosmos import (
        CosmosAccountView,
        GetCosmosAccountInput,
        SetCosmosWriteRegionInput,
        SetCosmosWriteRegionResult,
    )
    from domain.messages.failback import (
        ABORT,
        ABORTED,
        COMPLETED,
        FINISHED_PHASES,
        GATE,
        PAUSE,
        PAUSED,
        PROMOTE,
        RESUME,
        RESYNC,
        SHIFTING,
        SQL_CAUGHT_UP,
        STARTING,
        STEP_PASSED,
        STEP_PENDING,
        STEP_PLANNED,
        STEP_PROMOTED,
        STEP_ROLLED_BACK,
        STEP_SKIPPED,
        STEP_SOAKING,
        TENANTS,
        WARMUP,
        CommandAccepted,
        FailbackCommand,
        FailbackInput,
        FailbackResult,
        FailbackStatus,
        StepReading,
        primary_percent,
    )
    from domain.messages.failback import FAILED as FAILED_PHASE
    from domain.messages.frontdoor import (
        GetOriginsInput,
        OriginsResult,
        SetOriginsInput,
        SetOriginsResult,
        weighted_split,
    )
    from domain.messages.health import NO_DATA, ReadSloInput, ReadSloResult, SloReading, SloVerdict, evaluate_slo
    from domain.messages.plan import PlanSummary
    from domain.messages.platform import (
        MODE_READ_WRITE,
        SetTenantModeInput,
        SetTenantModeResult,
        WarmCacheInput,
        WarmCacheResult,
    )
    from domain.messages.progress import DONE, FAILED, PENDING, PLANNED, RUNNING, SKIPPED
    from domain.messages.readiness import CHECK_TARGET_REGION, FAIL, PreflightInput, ReadinessReport
    from domain.messages.servicebus import (
        AliasView,
        FailoverAliasInput,
        FailoverAliasResult,
        GetAliasInput,
        PairAliasInput,
        PairAliasResult,
        WaitReplicationInput,
        WaitReplicationResult,
    )
    from domain.messages.sql import (
        MODE_PLANNED,
        FailoverGroupView,
        FailoverSqlGroupInput,
        FailoverSqlGroupResult,
        GetFailoverGroupInput,
    )
    from domain.plan import SloSpec, validate_failback_steps
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

WORKFLOW_NAME = "FailbackWorkflow"
# Errors that refuse the failback before anything changed: reported as they are.
REFUSALS = ("InvalidInput", "PrimaryUnhealthy", "NothingToFailBack")
SQL_POLL_SECONDS = 10
SQL_CATCH_UP_MINUTES = 30
REPLICATION_TIMEOUT_SECONDS = 1800.0
HISTORY_READINGS = 12  # readings kept in the UI's traffic table
CANCELLED = "cancelled"  # the phase a cancelled failback ends in
ENDED_PHASES = (*FINISHED_PHASES, CANCELLED)


class Aborted(Exception):
    """Raised at a safe point once an operator asked to abort."""


def _step_key(percent: int) -> str:
    return f"traffic:{percent}"


def _rate(value: float | None) -> str:
    return f"{value:.2%}" if value is not None else "n/a"


def _latency(value: float | None) -> str:
    return f"{value:.0f} ms" if value is not None else "n/a"


def _same_region(a: str, b: str) -> bool:
    return a.replace(" ", "").lower() == b.replace(" ", "").lower()


class _ShiftProgress(Progress):
    """The step table, with the current weights and the SLO readings per step above it."""

    def __init__(self, title: str, traffic: Callable[[], str]) -> None:
        super().__init__(title)
        self._traffic = traffic

    def publish(self) -> None:
        parts = [f"**{self.title}** — phase: `{self.phase}`", self._traffic(), self.table.markdown()]
        workflow.set_current_details("\n\n".join(p for p in parts if p))


@workflow.defn(name=WORKFLOW_NAME)
class FailbackWorkflow:
    @workflow.init
    def __init__(self, inp: FailbackInput) -> None:
        self.inp = inp
        self.progress = _ShiftProgress(f"Failback {inp.plan}", self._traffic_markdown)
        self.primary = ""
        self.dr = ""
        self.schedule: list[int] = []
        self.soak = 0
        self.interval = 0
        self.readings: list[StepReading] = []
        self.current_step: int | None = None
        self.primary_percent = 0
        self.last_good = 0
        self.paused: str | None = None
        self.paused_by_breach = False
        self.pause_request: FailbackCommand | None = None
        self.resume_request: FailbackCommand | None = None
        self.abort_request: FailbackCommand | None = None
        self.promote_request: FailbackCommand | None = None
        self.promoted_at: int | None = None
        self.breaches = 0
        self.started_at = ""
        self.error: str | None = None
        self.planned_calls: list[str] = []

    # ---- queries and operator commands ------------------------------------------------------

    @workflow.query(name="status")
    def status(self) -> FailbackStatus:
        return FailbackStatus(
            workflow_id=workflow.info().workflow_id,
            plan=self.inp.plan,
            primary_region=self.primary,
            dr_region=self.dr,
            phase=self.progress.phase,
            dry_run=self.inp.dry_run,
            steps=self.progress.table,
            started_at=self.started_at,
            schedule=list(self.schedule),
            soak_seconds=self.soak,
            interval_seconds=self.interval,
            current_step=self.current_step,
            primary_percent=self.primary_percent,
            last_good_percent=self.last_good,
            readings=self.readings,
            paused=self.paused,
            pending_command=self._pending_command(),
            breaches=self.breaches,
            promoted_at=self.promoted_at,
            error=self.error,
        )

    @workflow.update(name=PAUSE)
    def pause(self, cmd: FailbackCommand) -> CommandAccepted:
        self.pause_request = cmd
        return CommandAccepted(
            PAUSE,
            f"pausing at {self.primary} {self.primary_percent} %: no further sample or step until "
            "resume, promote or abort",
            self.progress.phase,
        )

    @pause.validator
    def _validate_pause(self, cmd: FailbackCommand) -> None:
        self._refuse_unless_shifting(PAUSE)
        if self.progress.phase == PAUSED:
            raise ValueError(f"already paused: {self.paused}")
        if self.pause_request is not None:
            raise ValueError("a pause is already requested")
        self._refuse_if_ending(PAUSE)

    @workflow.update(name=RESUME)
    def resume(self, cmd: FailbackCommand) -> CommandAccepted:
        if self.progress.phase != PAUSED:
            self.pause_request = None
            return CommandAccepted(RESUME, "pause request withdrawn: the shift goes on", self.progress.phase)
        self.resume_request = cmd
        step = f"the {self.current_step} % step" if self.current_step is not None else "the next step"
        action = f"retrying {step} from the start" if self.paused_by_breach else f"continuing {step}"
        return CommandAccepted(RESUME, f"resuming: {action}", self.progress.phase)

    @resume.validator
    def _validate_resume(self, cmd: FailbackCommand) -> None:
        phase = self.progress.phase
        if phase != PAUSED and self.pause_request is None:
            raise ValueError(f"not paused (phase {phase}): nothing to resume")
        if self.resume_request is not None:
            raise ValueError("a resume is already requested")
        self._refuse_if_ending(RESUME)

    @workflow.update(name=ABORT)
    def abort(self, cmd: FailbackCommand) -> CommandAccepted:
        self.abort_request = cmd
        return CommandAccepted(
            ABORT,
            f"aborting: all traffic returns to {self.dr or 'the DR region'} and the failback ends "
            f"(phase {self.progress.phase})",
            self.progress.phase,
        )

    @abort.validator
    def _validate_abort(self, cmd: FailbackCommand) -> None:
        if not cmd.reason.strip():
            raise ValueError("an abort needs a reason (--reason)")
        phase = self.progress.phase
        if phase in ENDED_PHASES:
            raise ValueError(f"nothing to abort: the failback is {phase}")
        if phase in (TENANTS, WARMUP):
            raise ValueError(
                f"too late to abort: all traffic is already on {self.primary} (phase {phase}); "
                "start a failover if the primary must be left again"
            )
        self._refuse_if_ending(ABORT)

    @workflow.update(name=PROMOTE)
    def promote(self, cmd: FailbackCommand) -> CommandAccepted:
        self.promote_request = cmd
        return CommandAccepted(
            PROMOTE, f"promoting: 100 % to {self.primary} now, without the remaining soak", self.progress.phase
        )

    @promote.validator
    def _validate_promote(self, cmd: FailbackCommand) -> None:
        self._refuse_unless_shifting(PROMOTE)
        self._refuse_if_ending(PROMOTE)

    def _refuse_unless_shifting(self, command: str) -> None:
        phase = self.progress.phase
        if self.inp.dry_run:
            raise ValueError(f"a dry run shifts no traffic: nothing to {command}")
        if phase in ENDED_PHASES:
            raise ValueError(f"the failback is {phase}: nothing to {command}")
        if phase in (STARTING, GATE, RESYNC):
            raise ValueError(f"nothing to {command} yet: traffic shifting has not started (phase {phase})")
        if phase in (TENANTS, WARMUP):
            raise ValueError(f"nothing to {command}: all traffic is already on {self.primary} (phase {phase})")

    def _refuse_if_ending(self, command: str) -> None:
        if workflow.cancellation_reason() is not None:
            raise ValueError(f"the failback is being {cancel_note()}: too late to {command}")
        if self.abort_request is not None:
            raise ValueError(f"an abort is under way ({self.abort_request.reason}): too late to {command}")
        if self.promote_request is not None:
            raise ValueError(f"a promote is under way: too late to {command}")

    def _pending_command(self) -> str | None:
        for name, request in (
            (ABORT, self.abort_request),
            (PROMOTE, self.promote_request),
            (RESUME, self.resume_request),
            (PAUSE, self.pause_request),
        ):
            if request is not None:
                return name
        return None

    # ---- the run ----------------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: FailbackInput) -> FailbackResult:
        self.started_at = now_iso()
        workflow.upsert_search_attributes([DR_PLAN.value_set(inp.plan)])
        plan = await describe_plan(self.progress, inp.plan, inp.plan_digest, cancelled_phase=CANCELLED)
        self.primary, self.dr = plan.primary_region, plan.dr_region
        self.progress.title = f"Failback {inp.plan}: {self.dr} → {self.primary}"
        self._configure(inp, plan)
        self._declare_steps(plan)
        lock = await hold_plan(
            inp.plan, WORKFLOW_NAME, self.progress, first_step="gate", failed_phase=FAILED_PHASE, dry_run=inp.dry_run
        )
        try:
            return await self._fail_back(inp, plan)
        finally:
            await shielded(release_plan_lock(lock))

    async def _fail_back(self, inp: FailbackInput, plan: PlanSummary) -> FailbackResult:
        try:
            self.progress.set_phase(GATE)
            await self._gate(inp)
            await self._estate(inp, plan)
            self._check_abort()
            self.progress.set_phase(RESYNC)
            await gather_steps(
                self._servicebus(inp, plan),
                *(self._sql(inp, group) for group in plan.failover_groups),
                self._cosmos(inp),
            )
            self._check_abort()
            self.progress.set_phase(SHIFTING)
            await self._shift(inp, plan)
            self._check_abort()  # an abort or cancel that came during the last weight change
            self.current_step = None
            self.progress.set_phase(TENANTS)
            await self._tenants_read_write(inp)
            raise_if_cancelled()
            self.progress.set_phase(WARMUP)
            await self._warmup(inp)
            raise_if_cancelled()
        except Aborted:
            cmd = self.abort_request or FailbackCommand()
            await self._stop(inp, f"aborted{' by ' + cmd.by if cmd.by else ''}: {cmd.reason}", cut_short=SKIPPED)
            self.progress.set_phase(ABORTED)
            await workflow.wait_condition(workflow.all_handlers_finished)
            return self._result(inp, "aborted")
        except asyncio.CancelledError:
            if workflow.cancellation_reason() is None:  # not the workflow's cancel: the worker evicts it
                raise
            await self._wind_down(inp)
            raise
        except (ActivityError, ChildWorkflowError, ApplicationError) as err:
            if cancelled(err):  # a read cancelled with the workflow
                await self._wind_down(inp)
                raise
            raise self._failure(inp, err) from err
        self.progress.set_phase(COMPLETED)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._result(inp, "dry-run" if inp.dry_run else "succeeded")

    def _failure(self, inp: FailbackInput, err: BaseException) -> ApplicationError:
        """The workflow's failure: the reason, what was done and not done, and the result."""
        self.error = error_text(err)
        self.progress.set_phase(FAILED_PHASE)
        result = self._result(inp, "failed")
        kind = error_type(err)
        if isinstance(err, ApplicationError) and kind in REFUSALS:
            message = self.error
        else:
            message = (
                f"failback of plan {inp.plan} to {self.primary} failed: {self.error}. traffic now: "
                f"{self.primary} {self.primary_percent} % / {self.dr} {100 - self.primary_percent} %; "
                f"done: {', '.join(result.done) or 'nothing'}; not done: {', '.join(result.not_done) or 'nothing'}"
            )
        return ApplicationError(message, result, type=kind or "FailbackFailed", non_retryable=True)

    # ---- set-up -----------------------------------------------------------------------------

    def _configure(self, inp: FailbackInput, plan: PlanSummary) -> None:
        """The traffic schedule: the input's overrides on the plan's, checked with the plan's rules."""
        steps = list(inp.steps) if inp.steps is not None else list(plan.failback_steps)
        soak = inp.soak_seconds if inp.soak_seconds is not None else plan.failback_soak_seconds
        interval = inp.interval_seconds if inp.interval_seconds is not None else plan.failback_interval_seconds
        problems = [str(issue) for issue in validate_failback_steps(steps, soak, interval)]
        if interval < 1:
            problems.append(f"interval: must be at least 1 second, found {interval}")
        if problems:
            raise ApplicationError(
                f"invalid failback schedule for plan {inp.plan}: " + "; ".join(problems),
                type="InvalidInput",
                non_retryable=True,
            )
        self.schedule, self.soak, self.interval = steps, soak, interval
        self.readings = [StepReading(percent) for percent in steps]

    def _declare_steps(self, plan: PlanSummary) -> None:
        p = self.progress
        p.add("gate", f"Primary health gate: {self.primary}")
        p.add("estate", f"Estate runs on {self.dr}: something to fail back")
        p.add("servicebus", f"Service Bus alias {plan.servicebus_alias}: re-pair, drain, fail over → {self.primary}")
        for group in plan.failover_groups:
            p.add(f"sql:{group}", f"SQL failover group {group}: planned failover → {self.primary}")
        p.add("cosmos", f"Cosmos DB write region → {self.primary}")
        for percent in self.schedule:
            p.add(_step_key(percent), f"Traffic {percent} % to {self.primary}")
        p.add("tenants", f"Tenants homed in {self.primary} read-write")
        p.add("warmup", f"Cache warm-up in {self.primary}")
        p.publish()

    async def _gate(self, inp: FailbackInput) -> None:
        """Refuse while the primary region is unhealthy: readiness as if failing over to it."""
        report: ReadinessReport = await self.progress.run(
            "gate",
            lambda: workflow.execute_activity(
                "readiness.preflight",
                PreflightInput(inp.plan, self.dr, self.primary),
                result_type=ReadinessReport,
                **activity_options(2, summary=f"health of {self.primary}"),
            ),
            self._gate_detail,
        )
        target = report.check(CHECK_TARGET_REGION)
        if report.target_region_healthy and (target is None or target.status != FAIL):
            return
        detail = target.detail if target is not None else "no health answer"
        self.progress.mark("gate", FAILED, f"{self.primary} is unhealthy: {detail}")
        raise ApplicationError(
            f"failback refused: the primary region {self.primary} is not healthy ({detail}); "
            "wait until it is, then start the failback again",
            report,
            type="PrimaryUnhealthy",
            non_retryable=True,
        )

    def _gate_detail(self, report: ReadinessReport) -> str:
        target = report.check(CHECK_TARGET_REGION)
        return target.detail if target is not None and target.detail else f"{self.primary} healthy"

    async def _estate(self, inp: FailbackInput, plan: PlanSummary) -> None:
        """Read where traffic and data are; refuse when everything already is on the primary."""
        self.progress.mark("estate", RUNNING)
        try:
            reads = await gather_steps(
                self._read("frontdoor.get_origins", GetOriginsInput(inp.plan), OriginsResult),
                self._read("servicebus.get_alias", GetAliasInput(inp.plan), AliasView),
                self._read("cosmos.get_account", GetCosmosAccountInput(inp.plan), CosmosAccountView),
                *(
                    self._read("sql.get_failover_group", GetFailoverGroupInput(inp.plan, g), FailoverGroupView)
                    for g in plan.failover_groups
                ),
            )
        except (ActivityError, ApplicationError) as err:
            self.progress.mark("estate", FAILED, error_text(err))
            raise
        origins: OriginsResult = reads[0]
        alias: AliasView = reads[1]
        account: CosmosAccountView = reads[2]
        groups: list[FailoverGroupView] = reads[3:]
        self.primary_percent = primary_percent(origins.origins, self.primary)
        facts = [
            (self.primary_percent == 100, f"Front Door sends {self.primary_percent} % to {self.primary}"),
            (
                alias.primary_region == self.primary,
                f"alias {alias.alias} primary in {alias.primary_region or 'no region'}"
                + ("" if alias.paired else " (not paired)"),
            ),
            *(
                (g.primary_region == self.primary, f"SQL {g.failover_group} primary in {g.primary_region}")
                for g in groups
            ),
            (_same_region(account.write_region, self.primary), f"Cosmos DB writes in {account.write_region}"),
        ]
        detail = "; ".join(text for _, text in facts)
        if all(on_primary for on_primary, _ in facts):
            self.progress.mark("estate", FAILED, f"already on {self.primary}: {detail}")
            raise ApplicationError(
                f"nothing to fail back: plan {inp.plan} already runs on its primary region {self.primary} "
                f"({detail}); a failback only follows a failover to {self.dr}",
                type="NothingToFailBack",
                non_retryable=True,
            )
        self.progress.mark("estate", DONE, detail)

    async def _read(self, name: str, arg: Any, result_type: type[Any]) -> Any:
        return await workflow.execute_activity(
            name, arg, result_type=result_type, **activity_options(2, summary=f"read {name}")
        )

    def _check_abort(self) -> None:
        """A safe point: stop here once cancelled (a shielded change may have absorbed the cancel) or
        asked to abort."""
        raise_if_cancelled()
        if self.abort_request is not None:
            raise Aborted

    # ---- data resync ------------------------------------------------------------------------

    async def _servicebus(self, inp: FailbackInput, plan: PlanSummary) -> None:
        """Re-pair the alias from the DR namespace (now primary) to the recovered one, wait until
        nothing is pending, fail over to it, then pair it back towards the DR region, so the
        estate is protected as before the failover."""
        key = "servicebus"
        self.progress.mark(key, RUNNING, "reading the alias")
        try:
            await self._servicebus_steps(inp, plan, key)
        except (ActivityError, ApplicationError) as err:
            if not cancelled(err):  # a step the cancel stopped is marked by the wind-down
                self.progress.mark(key, FAILED, error_text(err))
            raise

    async def _servicebus_steps(self, inp: FailbackInput, plan: PlanSummary, key: str) -> None:
        dry = inp.dry_run
        primary_ns = plan.servicebus_namespaces.get(self.primary, self.primary)
        alias: AliasView = await self._read("servicebus.get_alias", GetAliasInput(inp.plan), AliasView)
        calls: list[str] = []
        notes: list[str] = []
        if alias.primary_region != self.primary:
            if not alias.paired:
                self.progress.mark(key, RUNNING, f"pairing {self.dr} → {self.primary}")
                paired: PairAliasResult = await shielded(
                    workflow.start_activity(
                        "servicebus.pair",
                        PairAliasInput(inp.plan, self.dr, dry_run=dry),
                        result_type=PairAliasResult,
                        **activity_options(
                            20, summary=f"pair alias {plan.servicebus_alias}: {self.dr} → {self.primary}"
                        ),
                    )
                )
                calls += paired.planned_calls
                notes.append(f"paired {paired.primary_namespace} → {paired.secondary_namespace}")
                self.progress.mark(key, RUNNING, "; ".join(notes))
                raise_if_cancelled()  # paired, the DR namespace still primary: a safe place to stop
            if dry and not alias.paired:
                calls.append(
                    f"then, once pendingReplicationOperationsCount is 0: fail alias {plan.servicebus_alias} over "
                    f"to {primary_ns}, and pair it back towards {self.dr}"
                )
                self._planned(key, calls)
                return
            if not dry:
                self.progress.mark(key, RUNNING, "; ".join([*notes, "waiting for replication to drain"]))
                drained: WaitReplicationResult = await workflow.execute_activity(
                    "servicebus.wait_replication",
                    WaitReplicationInput(inp.plan, timeout_seconds=REPLICATION_TIMEOUT_SECONDS),
                    result_type=WaitReplicationResult,
                    **activity_options(
                        REPLICATION_TIMEOUT_SECONDS / 60 + 5,
                        summary=f"wait for alias {plan.servicebus_alias} replication to drain",
                    ),
                )
                notes.append(
                    f"replication drained ({drained.initial_pending_count} pending → 0 "
                    f"in {drained.duration_seconds:.1f}s)"
                )
                self.progress.mark(key, RUNNING, "; ".join([*notes, f"failing over to {primary_ns}"]))
            # Once failed over, the alias is paired back even if the failback is cancelled meanwhile:
            # an unpaired alias would leave Service Bus without geo-DR.
            moved: FailoverAliasResult = await shielded(
                workflow.start_activity(
                    "servicebus.failover_alias",
                    FailoverAliasInput(inp.plan, self.primary, safe=True, dry_run=dry),
                    result_type=FailoverAliasResult,
                    **activity_options(20, summary=f"fail alias {plan.servicebus_alias} over to {self.primary}"),
                )
            )
            calls += moved.planned_calls
            notes.append(f"primary {moved.primary_namespace}")
        else:
            notes.append(f"{primary_ns} already primary")
        protected: PairAliasResult = await shielded(
            workflow.start_activity(
                "servicebus.pair",
                PairAliasInput(inp.plan, self.primary, dry_run=dry),
                result_type=PairAliasResult,
                **activity_options(20, summary=f"pair alias {plan.servicebus_alias}: {self.primary} → {self.dr}"),
            )
        )
        calls += protected.planned_calls
        notes.append(f"paired again {protected.primary_namespace} → {protected.secondary_namespace}")
        if dry:
            self._planned(key, calls)
        else:
            self.progress.mark(key, DONE, "; ".join(notes), calls)

    async def _sql(self, inp: FailbackInput, group: str) -> None:
        """Planned failover back (never with data loss), once the group's replication has caught up."""
        key = f"sql:{group}"
        self.progress.mark(key, RUNNING, "reading the group")
        deadline = workflow.now() + timedelta(minutes=SQL_CATCH_UP_MINUTES)
        try:
            while True:
                view: FailoverGroupView = await self._read(
                    "sql.get_failover_group", GetFailoverGroupInput(inp.plan, group), FailoverGroupView
                )
                if view.primary_region == self.primary or view.replication_state == SQL_CAUGHT_UP or inp.dry_run:
                    break
                if workflow.now() >= deadline:
                    raise ApplicationError(
                        f"SQL failover group {group}: replication is {view.replication_state or 'unknown'}, not "
                        f"caught up after {SQL_CATCH_UP_MINUTES} min; a planned failover back to {self.primary} "
                        "needs a caught-up secondary (no data loss), so the failback stops here",
                        type="ReplicationNotCaughtUp",
                        non_retryable=True,
                    )
                self.progress.mark(
                    key, RUNNING, f"waiting for replication to catch up (now {view.replication_state or 'unknown'})"
                )
                await workflow.sleep(timedelta(seconds=SQL_POLL_SECONDS))
        except (ActivityError, ApplicationError) as err:
            if not cancelled(err):
                self.progress.mark(key, FAILED, error_text(err))
            raise
        await desired_state_step(
            self.progress,
            key,
            activity_name="sql.failover_group",
            arg=FailoverSqlGroupInput(inp.plan, group, self.primary, mode=MODE_PLANNED, dry_run=inp.dry_run),
            result_type=FailoverSqlGroupResult,
            describe=lambda r: (
                f"planned failover, primary {r.primary_server}" if r.changed else f"{r.primary_server} already primary"
            ),
            summary=f"planned failover of SQL group {group} to {self.primary}",
            planned_calls=self.planned_calls,
            minutes=30,
        )

    async def _cosmos(self, inp: FailbackInput) -> None:
        await desired_state_step(
            self.progress,
            "cosmos",
            activity_name="cosmos.set_write_region",
            arg=SetCosmosWriteRegionInput(inp.plan, self.primary, dry_run=inp.dry_run),
            result_type=SetCosmosWriteRegionResult,
            describe=lambda r: f"write region {r.write_region}" + ("" if r.changed else ", already so"),
            summary=f"Cosmos DB write region to {self.primary}",
            planned_calls=self.planned_calls,
            minutes=30,
        )

    def _planned(self, key: str, calls: list[str]) -> None:
        self.planned_calls.extend(calls)
        self.progress.mark(key, PLANNED, "; ".join(calls) or "nothing to do: already in the target state", calls)

    # ---- traffic ----------------------------------------------------------------------------

    async def _shift(self, inp: FailbackInput, plan: PlanSummary) -> None:
        """Every step in turn: set the weights, soak; a breach pauses with the last good weights."""
        if inp.dry_run:
            await self._plan_shift(inp)
            return
        if self.primary_percent == 100:
            for index, percent in enumerate(self.schedule):
                self.readings[index].status = STEP_SKIPPED
                self.progress.mark(_step_key(percent), SKIPPED, f"Front Door already sends 100 % to {self.primary}")
            self.last_good = 100
            return
        slo = SloSpec(
            max_error_rate=plan.slo_max_error_rate,
            p95_latency_ms=plan.slo_p95_latency_ms,
            min_request_count=plan.slo_min_request_count,
        )
        index = 0
        while index < len(self.schedule):
            if self._command_pending() and await self._on_command() == PROMOTE:
                await self._promote(inp, index)
                return
            outcome = await self._run_step(inp, index, slo)
            if outcome == PROMOTE:
                await self._promote(inp, index)
                return
            if outcome == STEP_PASSED:
                index += 1

    async def _plan_shift(self, inp: FailbackInput) -> None:
        for index, percent in enumerate(self.schedule):
            result: SetOriginsResult = await workflow.execute_activity(
                "frontdoor.set_origins",
                SetOriginsInput(inp.plan, weighted_split(self.primary, self.dr, percent), dry_run=True),
                result_type=SetOriginsResult,
                **activity_options(5, summary=f"plan traffic {percent} % to {self.primary}"),
            )
            calls = [
                *result.planned_calls,
                f"then soak {self.soak}s, sampling the SLO of {self.primary} every {self.interval}s",
            ]
            self.readings[index].status = STEP_PLANNED
            self._planned(_step_key(percent), calls)

    async def _run_step(self, inp: FailbackInput, index: int, slo: SloSpec) -> str:
        """One attempt at one step; STEP_PASSED once soaked, else RESUME (retry) or PROMOTE."""
        percent = self.schedule[index]
        reading = self.readings[index]
        key = _step_key(percent)
        self.current_step = percent
        reading.attempts += 1
        reading.soaked_seconds = 0.0
        reading.status = STEP_SOAKING
        self.progress.mark(key, RUNNING, f"setting {self._split(percent)}")
        await self._set_weights(inp, percent, key)
        self._mark_soak(key, reading)
        while reading.soaked_seconds < self.soak:
            if not await self._wait_interval():
                if await self._on_command() == PROMOTE:
                    return PROMOTE
                self._mark_soak(key, reading)
                continue
            verdict, sample = await self._sample(inp, slo)
            self._record(reading, verdict, sample)
            if verdict.ok:
                reading.soaked_seconds += self.interval
                self._mark_soak(key, reading)
                continue
            return await self._roll_back(inp, index, verdict)
        reading.status = STEP_PASSED
        self.last_good = percent
        self.progress.mark(
            key,
            DONE,
            f"healthy for {self.soak}s ({reading.ok_samples}/{reading.samples} samples ok); "
            f"last: {self._last(reading)}",
        )
        return STEP_PASSED

    async def _roll_back(self, inp: FailbackInput, index: int, verdict: SloVerdict) -> str:
        """A breach (or no data): back to the last good weights at once, then wait for an operator."""
        percent = self.schedule[index]
        reading = self.readings[index]
        key = _step_key(percent)
        reasons = "; ".join(verdict.reasons) or verdict.status
        self.breaches += 1
        reading.breaches += 1
        reading.status = STEP_ROLLED_BACK
        self._meter().create_counter(
            "slo_breach_total", "SLO breaches (or samples without data) that rolled a failback step back"
        ).add(1)
        self.progress.mark(
            key, FAILED, f"{verdict.status} at {percent} %: {reasons}; rolling back to {self.last_good} %"
        )
        await self._set_weights(inp, self.last_good, key)
        self.progress.mark(
            key,
            FAILED,
            f"{verdict.status} at {percent} %: {reasons}; rolled back to {self._split(self.last_good)}; paused: "
            f"resume retries the step, promote sends 100 % to {self.primary}, abort returns all traffic to {self.dr}",
        )
        return await self._hold(
            f"SLO {verdict.status} at {percent} %: {reasons}; traffic rolled back to {self.last_good} %",
            breach=True,
        )

    async def _set_weights(self, inp: FailbackInput, percent: int, key: str) -> None:
        """Set the weights, shielded from a cancel: cut short, Front Door's weights would be unknown."""
        try:
            await shielded(
                workflow.start_activity(
                    "frontdoor.set_origins",
                    SetOriginsInput(
                        inp.plan,
                        weighted_split(self.primary, self.dr, percent),
                        reason=f"failback of {inp.plan}: {percent} % to {self.primary}",
                    ),
                    result_type=SetOriginsResult,
                    **activity_options(10, summary=f"traffic: {self._split(percent)}"),
                )
            )
        except (ActivityError, ApplicationError) as err:
            self.progress.mark(key, FAILED, f"setting {self._split(percent)} failed: {error_text(err)}")
            raise
        self.primary_percent = percent
        self._meter().create_gauge("failback_step", "The primary region's share of traffic set by a failback", "%").set(
            percent
        )

    async def _wait_interval(self) -> bool:
        """True once a whole interval has passed; False as soon as an operator command arrives."""
        if self._command_pending():
            return False
        try:
            await workflow.wait_condition(self._command_pending, timeout=timedelta(seconds=self.interval))
        except TimeoutError:
            return True
        return False

    async def _sample(self, inp: FailbackInput, slo: SloSpec) -> tuple[SloVerdict, SloReading | None]:
        """The primary origin's SLO over the last interval; no answer is no data (fail closed)."""
        options = activity_options(1, summary=f"SLO of {self.primary} over the last {self.interval}s")
        # Bounded by the interval, so a silent metrics API turns into a rollback, not a long wait.
        options["start_to_close_timeout"] = timedelta(seconds=max(self.interval, 10))
        options["schedule_to_close_timeout"] = timedelta(seconds=max(2 * self.interval, 20))
        try:
            result: ReadSloResult = await workflow.execute_activity(
                "health.read_slo",
                ReadSloInput(
                    inp.plan,
                    window_seconds=float(self.interval),
                    interval=f"PT{self.interval}S",
                    regions=(self.primary,),
                ),
                result_type=ReadSloResult,
                **options,
            )
        except ActivityError as err:
            if cancelled(err):  # not missing data: no rollback, the cancel returns all traffic anyway
                raise
            return SloVerdict(self.primary, NO_DATA, (f"no metrics: {error_text(err)}",)), None
        reading = result.for_region(self.primary)
        if reading is None:
            return SloVerdict(self.primary, NO_DATA, (f"no reading for the origin of {self.primary}",)), None
        return evaluate_slo(reading, slo), reading

    def _record(self, reading: StepReading, verdict: SloVerdict, sample: SloReading | None) -> None:
        reading.samples += 1
        if verdict.ok:
            reading.ok_samples += 1
        reading.last_verdict = verdict.status
        reading.reasons = list(verdict.reasons)
        reading.request_count = sample.request_count if sample else None
        reading.error_rate = sample.error_rate if sample else None
        reading.latency_ms = sample.latency_ms if sample else None
        reading.sampled_at = now_iso()

    def _mark_soak(self, key: str, reading: StepReading) -> None:
        detail = f"{self._split(reading.percent)}; soaked {reading.soaked_seconds:.0f}/{self.soak}s"
        if reading.samples:
            detail += f"; last: {self._last(reading)}"
        self.progress.mark(key, RUNNING, detail)

    async def _on_command(self) -> str:
        """Act on an operator command (or the workflow's cancel) at a safe point: abort and cancel
        raise, promote is returned, pause holds here until resume (RESUME), promote or abort."""
        self._check_abort()
        if self.promote_request is not None:
            return PROMOTE
        if self.pause_request is not None:
            cmd = self.pause_request
            by = f" by {cmd.by}" if cmd.by else ""
            return await self._hold(f"paused{by}" + (f": {cmd.reason}" if cmd.reason else ""), breach=False)
        return RESUME

    async def _hold(self, why: str, *, breach: bool) -> str:
        self.pause_request = None
        self.paused = why
        self.paused_by_breach = breach
        self.progress.set_phase(PAUSED)
        # A cancel cancels this wait; one absorbed before it (by the rollback's weight change) ends it.
        await workflow.wait_condition(
            lambda: (
                workflow.cancellation_reason() is not None
                or any(r is not None for r in (self.resume_request, self.abort_request, self.promote_request))
            )
        )
        self.paused = None
        self.paused_by_breach = False
        self.resume_request = None
        self._check_abort()
        self.progress.set_phase(SHIFTING)
        return PROMOTE if self.promote_request is not None else RESUME

    async def _promote(self, inp: FailbackInput, index: int) -> None:
        """100 % to the primary now: the steps not yet soaked are skipped."""
        cmd = self.promote_request or FailbackCommand()
        self.promote_request = None
        self.promoted_at = self.primary_percent
        who = f" by {cmd.by}" if cmd.by else ""
        why = f" ({cmd.reason})" if cmd.reason else ""
        for i in range(index, len(self.schedule) - 1):
            if self.readings[i].status not in (STEP_PASSED, STEP_ROLLED_BACK):
                self.readings[i].status = STEP_SKIPPED
            self.progress.mark(_step_key(self.schedule[i]), SKIPPED, f"promoted to 100 %{who}{why}")
        final = self.readings[-1]
        key = _step_key(final.percent)
        self.current_step = final.percent
        self.progress.mark(key, RUNNING, f"promoting{who}: 100 % to {self.primary} without soak")
        await self._set_weights(inp, 100, key)
        final.status = STEP_PROMOTED
        self.last_good = 100
        self.progress.mark(key, DONE, f"promoted{who} at {self.promoted_at} %: 100 % to {self.primary}{why}")

    async def _stop(self, inp: FailbackInput, note: str, *, cut_short: str) -> None:
        """Abort or cancel (``note`` says which and why): the steps under way end ``cut_short``, those
        not started are skipped, and all traffic goes back to the DR region. A failure to set the
        weights fails the workflow, saying where the traffic is."""
        self.paused = None
        self.paused_by_breach = False
        for reading in self.readings:
            if reading.status in (STEP_PENDING, STEP_SOAKING):
                reading.status = STEP_SKIPPED
        self.progress.cut_short(note, cut_short)
        self.progress.skip_pending(note)
        if self.primary_percent != 0 and not inp.dry_run:
            self.progress.add("abort", f"Abort: all traffic back to {self.dr}")
            self.progress.mark("abort", RUNNING, f"from {self._split(self.primary_percent)}")
            try:
                await self._set_weights(inp, 0, "abort")
            except (ActivityError, ApplicationError) as err:
                raise self._failure(inp, err) from err
            self.progress.mark("abort", DONE, f"{self._split(0)}; {note}")
        self.current_step = None

    async def _wind_down(self, inp: FailbackInput) -> None:
        """After the workflow's cancel: stop as an abort would, with the reason "cancelled[: <reason>]"
        (the steps cut short fail, the rest are skipped, traffic returns to the DR region); once all
        traffic is on the primary, where an abort is too late, it stays there and only the remaining
        steps are marked. The run then re-raises the cancel, so Temporal shows Cancelled."""
        note = cancel_note()
        if self.progress.phase in (TENANTS, WARMUP):
            self.progress.cut_short(note)
            self.progress.skip_pending(f"{note}; all traffic was already on {self.primary} and stays there")
        else:
            await self._stop(inp, note, cut_short=FAILED)
        self.progress.set_phase(CANCELLED)
        await workflow.wait_condition(workflow.all_handlers_finished)

    # ---- after the traffic ------------------------------------------------------------------

    async def _tenants_read_write(self, inp: FailbackInput) -> None:
        await desired_state_step(
            self.progress,
            "tenants",
            activity_name="platform.set_tenant_mode",
            arg=SetTenantModeInput(
                inp.plan,
                self.primary,
                MODE_READ_WRITE,
                f"DR failback: {inp.reason}" if inp.reason else "DR failback",
                gateway_region=self.primary,
                dry_run=inp.dry_run,
            ),
            result_type=SetTenantModeResult,
            describe=lambda r: f"{r.changed} of {r.matched} tenants set read-write",
            summary=f"tenants of {self.primary} read-write",
            planned_calls=self.planned_calls,
        )

    async def _warmup(self, inp: FailbackInput) -> None:
        await desired_state_step(
            self.progress,
            "warmup",
            activity_name="platform.warm_cache",
            arg=WarmCacheInput(inp.plan, self.primary, gateway_region=self.primary, dry_run=inp.dry_run),
            result_type=WarmCacheResult,
            describe=lambda r: f"cache {r.state} in {r.duration_seconds:.1f}s",
            summary=f"warm the cache in {self.primary}",
            planned_calls=self.planned_calls,
        )

    # ---- helpers ----------------------------------------------------------------------------

    def _command_pending(self) -> bool:
        """An operator command to act on, or the workflow's cancel (which a shielded weight change
        may have absorbed before the soak's wait began)."""
        return workflow.cancellation_reason() is not None or any(
            r is not None for r in (self.pause_request, self.abort_request, self.promote_request)
        )

    def _meter(self) -> Any:
        return workflow.metric_meter().with_additional_attributes({"plan": self.inp.plan})

    def _split(self, percent: int) -> str:
        return f"{self.primary} {percent} % / {self.dr} {100 - percent} %"

    @staticmethod
    def _last(reading: StepReading) -> str:
        if not reading.last_verdict:
            return "no sample yet"
        requests = f"{reading.request_count:.0f} req" if reading.request_count is not None else "no requests"
        return (
            f"{reading.last_verdict}: {requests}, 5xx {_rate(reading.error_rate)}, "
            f"latency {_latency(reading.latency_ms)}"
        )

    def _traffic_markdown(self) -> str:
        """Current weights and the readings per step, for the Temporal UI's current details."""
        if not self.schedule or not self.primary:
            return ""
        lines = [f"**Traffic:** {self._split(self.primary_percent)}"]
        if self.current_step is not None:
            lines[0] += f" · step {self.current_step} %"
        if self.paused:
            lines.append(f"**Paused:** {self.paused}")
        rows = [
            "| step | status | samples ok | breaches | last | requests | 5xx | latency |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in self.readings[:HISTORY_READINGS]:
            requests = f"{r.request_count:.0f}" if r.request_count is not None else "n/a"
            rows.append(
                f"| {r.percent} % | {r.status} | {r.ok_samples}/{r.samples} | {r.breaches} | "
                f"{r.last_verdict or '-'} | {requests} | {_rate(r.error_rate)} | {_latency(r.latency_ms)} |"
            )
        return "\n\n".join([*lines, "\n".join(rows)])

    def _result(self, inp: FailbackInput, outcome: str) -> FailbackResult:
        table = self.progress.table
        return FailbackResult(
            workflow_id=workflow.info().workflow_id,
            plan=inp.plan,
            primary_region=self.primary,
            dr_region=self.dr,
            outcome=outcome,
            dry_run=inp.dry_run,
            steps=table,
            started_at=self.started_at,
            finished_at=now_iso(),
            schedule=list(self.schedule),
            primary_percent=self.primary_percent,
            readings=self.readings,
            breaches=self.breaches,
            promoted_at=self.promoted_at,
            done=table.by_status(DONE),
            not_done=table.by_status(PENDING, RUNNING, FAILED, SKIPPED),
            planned_calls=list(self.planned_calls),
            reason=self.error or (self.abort_request.reason if self.abort_request else ""),
        )
