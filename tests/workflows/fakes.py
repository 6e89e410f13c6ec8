"""Same-named fakes of the Azure activities, recording what the workflows asked of them.

Only the outside world is faked: ``plan.describe`` is the real activity reading plans/local.toml,
so the workflow sees the real plan.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.api.failure.v1 import Failure
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.worker import Replayer

from activities.azure import AzureConnection, Estates
from activities.plans import PlanActivities
from domain.messages.cosmos import (
    CosmosAccountView,
    CosmosRegion,
    GetCosmosAccountInput,
    SetCosmosWriteRegionInput,
    SetCosmosWriteRegionResult,
)
from domain.messages.failback import SQL_CAUGHT_UP, primary_percent
from domain.messages.frontdoor import (
    GetOriginsInput,
    OriginsResult,
    OriginState,
    SetOriginsInput,
    SetOriginsResult,
    active_passive,
)
from domain.messages.health import ReadSloInput, ReadSloResult, SloReading
from domain.messages.platform import (
    DataLossWindowInput,
    DataLossWindowResult,
    RepinBatchInput,
    RepinBatchResult,
    SetTenantModeInput,
    SetTenantModeResult,
    WarmCacheInput,
    WarmCacheResult,
)
from domain.messages.readiness import FAIL, OK, WARN, PreflightInput, ReadinessCheck, ReadinessReport
from domain.messages.servicebus import (
    AliasView,
    FailoverAliasInput,
    FailoverAliasResult,
    GetAliasInput,
    NamespaceAliasView,
    PairAliasInput,
    PairAliasResult,
    WaitReplicationInput,
    WaitReplicationResult,
)
from domain.messages.sql import (
    FailoverGroupView,
    FailoverSqlGroupInput,
    FailoverSqlGroupResult,
    GetFailoverGroupInput,
    ServerRole,
)
from domain.plan import DrPlan
from workflows import WORKFLOWS

S = TypeVar("S")


@dataclass
class Call:
    name: str
    arg: Any
    started: float
    ended: float = 0.0


@dataclass
class FakeAzure:
    """Scriptable outside world: step latency, readiness verdicts, SLO readings, re-pin pages, and
    the estate's state (origins, alias, SQL primaries, Cosmos write region) that the mutating fakes
    change and the read fakes report."""

    plan: DrPlan
    step_seconds: float = 0.0
    checks: list[ReadinessCheck] = field(default_factory=list)
    source_healthy: bool = True
    target_healthy: bool = True
    slo_readings: list[SloReading] = field(default_factory=list)
    repin_pages: int = 3
    data_loss_seconds: float = 4.0
    fail: dict[str, ApplicationError] = field(default_factory=dict)
    gates: dict[str, asyncio.Event] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    # Where traffic, the alias, the SQL groups and Cosmos writes are at the start (default: the
    # plan's primary region; a failback starts from the DR region).
    estate_region: str = ""
    # The primary origin's reading per (region, primary % Front Door is set to); default: green.
    origin_slo: Callable[[str, int], SloReading] | None = None
    pending_replication: int = 25
    sql_states: list[str] = field(default_factory=list)  # replicationState per read, then CATCH_UP
    origins: dict[str, OriginState] = field(init=False)
    alias_primary: str = field(init=False)
    alias_paired: bool = field(init=False)
    sql_primary: dict[str, str] = field(init=False)
    cosmos_write: str = field(init=False)
    primary_percents: list[int] = field(init=False, default_factory=list)  # after each set_origins

    def __post_init__(self) -> None:
        region = self.estate_region = self.estate_region or self.plan.primary_region
        other = self.plan.other_region(region)
        self.origins = {
            o.region: OriginState(self.plan.frontdoor.origins[o.region], o.region, True, o.priority, o.weight)
            for o in active_passive(region, other)
        }
        self.alias_primary = region
        self.alias_paired = region == self.plan.primary_region
        self.sql_primary = {g.name: region for g in self.plan.sql.failover_groups}
        self.cosmos_write = region

    @property
    def primary_percent(self) -> int:
        """The primary region's share of traffic the origins give now."""
        return primary_percent(tuple(self.origins.values()), self.plan.primary_region)

    def origin_reading(self, region: str) -> SloReading:
        reading = self.origin_slo(region, self.primary_percent) if self.origin_slo else green()
        return dataclasses.replace(reading, scope=region, origin=self.plan.frontdoor.origins[region])

    def names(self) -> list[str]:
        return [c.name for c in self.calls]

    def of(self, name: str) -> list[Call]:
        return [c for c in self.calls if c.name == name]

    async def _step(self, name: str, arg: Any) -> Call:
        call = Call(name, arg, time.monotonic())
        self.calls.append(call)
        if name in self.gates:
            await self.gates[name].wait()
        if name in self.fail:
            call.ended = time.monotonic()
            raise self.fail[name]
        if self.step_seconds and not getattr(arg, "dry_run", False):
            await asyncio.sleep(self.step_seconds)
        call.ended = time.monotonic()
        return call

    @staticmethod
    def _planned(arg: Any, *calls: str) -> tuple[str, ...]:
        return tuple(calls) if getattr(arg, "dry_run", False) else ()

    def activities(self) -> list[Callable[..., Any]]:
        plan = self.plan
        now = "2026-11-28T10:00:00Z"

        @activity.defn(name="readiness.preflight")
        async def preflight(arg: PreflightInput) -> ReadinessReport:
            await self._step("readiness.preflight", arg)
            checks = self.checks or [ReadinessCheck("frontdoor", "Front Door", OK)]
            return ReadinessReport(arg.plan, tuple(checks), self.source_healthy, self.target_healthy, now)

        @activity.defn(name="frontdoor.set_origins")
        async def set_origins(arg: SetOriginsInput) -> SetOriginsResult:
            await self._step("frontdoor.set_origins", arg)
            origins = tuple(
                OriginState(plan.frontdoor.origins[o.region], o.region, bool(o.enabled), o.priority, o.weight)
                for o in arg.origins
            )
            if not arg.dry_run:
                self.origins.update({o.region: o for o in origins if o.region is not None})
                self.primary_percents.append(self.primary_percent)
            return SetOriginsResult(
                arg.plan,
                changed=tuple(o.name for o in origins),
                unchanged=(),
                origins=origins,
                planned_calls=self._planned(arg, "PATCH origins/app-eastus", "PATCH origins/app-westus"),
            )

        @activity.defn(name="servicebus.failover_alias")
        async def failover_alias(arg: FailoverAliasInput) -> FailoverAliasResult:
            await self._step("servicebus.failover_alias", arg)
            ns = plan.servicebus.namespaces[arg.target_region]
            if not arg.dry_run:
                self.alias_primary, self.alias_paired = arg.target_region, False
            return FailoverAliasResult(
                arg.plan,
                plan.servicebus.alias,
                arg.target_region,
                ns,
                "PrimaryNotReplicating",
                changed=True,
                duration_seconds=0.1,
                planned_calls=self._planned(arg, f"POST namespaces/{ns}/disasterRecoveryConfigs/failover"),
            )

        @activity.defn(name="platform.set_tenant_mode")
        async def set_tenant_mode(arg: SetTenantModeInput) -> SetTenantModeResult:
            await self._step("platform.set_tenant_mode", arg)
            return SetTenantModeResult(
                arg.plan,
                arg.home_region,
                arg.mode,
                matched=200,
                changed=200,
                planned_calls=self._planned(arg, "POST /ops/v1/tenants/mode"),
            )

        @activity.defn(name="sql.failover_group")
        async def sql_failover(arg: FailoverSqlGroupInput) -> FailoverSqlGroupResult:
            await self._step("sql.failover_group", arg)
            group = next(g for g in plan.sql.failover_groups if g.name == arg.failover_group)
            server = group.servers[arg.target_region]
            if not arg.dry_run:
                self.sql_primary[group.name] = arg.target_region
            return FailoverSqlGroupResult(
                arg.plan,
                arg.failover_group,
                arg.target_region,
                server,
                changed=True,
                mode=arg.mode,
                data_loss_possible=arg.mode == "forced",
                servers=(ServerRole(arg.target_region, server, "Primary"),),
                completed_at=now,
                planned_calls=self._planned(arg, f"POST servers/{server}/failoverGroups/{group.name}/failover"),
            )

        @activity.defn(name="cosmos.set_write_region")
        async def cosmos_write(arg: SetCosmosWriteRegionInput) -> SetCosmosWriteRegionResult:
            await self._step("cosmos.set_write_region", arg)
            if not arg.dry_run:
                self.cosmos_write = arg.region
            return SetCosmosWriteRegionResult(
                arg.plan,
                plan.cosmos.account,
                arg.region,
                changed=True,
                regions=(CosmosRegion(arg.region, 0, True),),
                completed_at=now,
                planned_calls=self._planned(arg, "POST databaseAccounts/cosmos-estate/failoverPriorityChange"),
            )

        @activity.defn(name="platform.warm_cache")
        async def warm_cache(arg: WarmCacheInput) -> WarmCacheResult:
            await self._step("platform.warm_cache", arg)
            return WarmCacheResult(
                arg.plan,
                arg.region,
                "warm",
                changed=True,
                operation_id="op-1",
                duration_seconds=0.1,
                planned_calls=self._planned(arg, "POST /ops/v1/cache/warmup"),
            )

        @activity.defn(name="platform.data_loss_window")
        async def data_loss(arg: DataLossWindowInput) -> DataLossWindowResult:
            await self._step("platform.data_loss_window", arg)
            return DataLossWindowResult(arg.plan, arg.store, now, arg.at, self.data_loss_seconds)

        @activity.defn(name="health.read_slo")
        async def read_slo(arg: ReadSloInput) -> ReadSloResult:
            await self._step("health.read_slo", arg)
            reading = self.slo_readings.pop(0) if self.slo_readings else green()
            origins = tuple(self.origin_reading(region) for region in arg.regions)
            return ReadSloResult(arg.plan, plan.frontdoor.profile, now, now, arg.interval, reading, origins)

        @activity.defn(name="frontdoor.get_origins")
        async def get_origins(arg: GetOriginsInput) -> OriginsResult:
            await self._step("frontdoor.get_origins", arg)
            fd = plan.frontdoor
            return OriginsResult(arg.plan, fd.profile, fd.origin_group, tuple(self.origins.values()))

        def alias_view() -> AliasView:
            spec = plan.servicebus
            views = []
            for region, ns in spec.namespaces.items():
                primary = region == self.alias_primary
                role = ("Primary" if self.alias_paired else "PrimaryNotReplicating") if primary else "Secondary"
                views.append(
                    NamespaceAliasView(
                        region,
                        ns,
                        f"/namespaces/{ns}",
                        exists=primary or self.alias_paired,
                        role=role if primary or self.alias_paired else None,
                        provisioning_state="Succeeded",
                        pending_replication_operations_count=0,
                    )
                )
            return AliasView(plan.name, spec.alias, tuple(views), self.alias_primary, self.alias_paired)

        @activity.defn(name="servicebus.get_alias")
        async def get_alias(arg: GetAliasInput) -> AliasView:
            await self._step("servicebus.get_alias", arg)
            return alias_view()

        @activity.defn(name="servicebus.pair")
        async def pair(arg: PairAliasInput) -> PairAliasResult:
            await self._step("servicebus.pair", arg)
            spec = plan.servicebus
            changed = not (self.alias_paired and self.alias_primary == arg.primary_region)
            if changed and not arg.dry_run:
                self.alias_primary, self.alias_paired = arg.primary_region, True
            primary_ns = spec.namespaces[arg.primary_region]
            return PairAliasResult(
                arg.plan,
                spec.alias,
                primary_ns,
                spec.namespaces[plan.other_region(arg.primary_region)],
                changed=changed,
                pending_replication_operations_count=self.pending_replication,
                duration_seconds=0.1,
                planned_calls=self._planned(arg, f"PUT namespaces/{primary_ns}/disasterRecoveryConfigs/{spec.alias}")
                if changed
                else (),
            )

        @activity.defn(name="servicebus.wait_replication")
        async def wait_replication(arg: WaitReplicationInput) -> WaitReplicationResult:
            await self._step("servicebus.wait_replication", arg)
            if not self.alias_paired:
                raise ApplicationError("alias not paired", type="AliasNotPaired", non_retryable=True)
            ns = plan.servicebus.namespaces[self.alias_primary]
            return WaitReplicationResult(arg.plan, plan.servicebus.alias, ns, self.pending_replication, 0, 0.5)

        @activity.defn(name="sql.get_failover_group")
        async def get_failover_group(arg: GetFailoverGroupInput) -> FailoverGroupView:
            await self._step("sql.get_failover_group", arg)
            group = next(g for g in plan.sql.failover_groups if g.name == arg.failover_group)
            primary = self.sql_primary[group.name]
            return FailoverGroupView(
                arg.plan,
                group.name,
                primary,
                group.servers[primary],
                tuple(ServerRole(r, s, "Primary" if r == primary else "Secondary") for r, s in group.servers.items()),
                self.sql_states.pop(0) if self.sql_states else SQL_CAUGHT_UP,
                "Manual",
                60,
                group.databases,
            )

        @activity.defn(name="cosmos.get_account")
        async def get_account(arg: GetCosmosAccountInput) -> CosmosAccountView:
            await self._step("cosmos.get_account", arg)
            order = [self.cosmos_write, *(r for r in plan.cosmos.regions if r != self.cosmos_write)]
            regions = tuple(CosmosRegion(r, i, i == 0) for i, r in enumerate(order))
            return CosmosAccountView(arg.plan, plan.cosmos.account, self.cosmos_write, regions, "Succeeded")

        @activity.defn(name="platform.repin_batch")
        async def repin_batch(arg: RepinBatchInput) -> RepinBatchResult:
            await self._step("platform.repin_batch", arg)
            page = int(arg.cursor or "0")
            following = str(page + 1) if page + 1 < self.repin_pages else None
            return RepinBatchResult(
                arg.plan, considered=10, moved=7, already_there=1, not_allowed=2, next_cursor=following
            )

        describe = PlanActivities(Estates([plan], AzureConnection.for_emulator("https://127.0.0.1:9", "unused")))
        return [
            describe.describe,
            preflight,
            set_origins,
            failover_alias,
            set_tenant_mode,
            sql_failover,
            cosmos_write,
            warm_cache,
            data_loss,
            read_slo,
            repin_batch,
            get_origins,
            get_alias,
            pair,
            wait_replication,
            get_failover_group,
            get_account,
        ]


def green(requests: float = 1000) -> SloReading:
    return SloReading("profile", None, requests, 0, 0.0, 120.0, True, 1, 1)


def breach(rate: float = 0.2) -> SloReading:
    return SloReading("profile", None, 1000, 1000 * rate, rate, 900.0, True, 1, 1)


def no_data() -> SloReading:
    return SloReading("profile", None, 0, 0, None, None, False, 1, 0)


def check(key: str, status: str, detail: str = "") -> ReadinessCheck:
    return ReadinessCheck(key, key, status, detail)


async def cancel_handled(handle: WorkflowHandle[Any, Any], reason: str) -> None:
    """Request the workflow's cancellation; return once a workflow task has handled it."""
    await handle.cancel(reason=reason)
    requested = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED
    for _ in range(400):
        events = [e.event_type for e in (await handle.fetch_history()).events]
        if requested in events and EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED in events[events.index(requested) :]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the cancel was never handled")


async def ended_cancelled(handle: WorkflowHandle[Any, Any], status_type: type[S]) -> S:
    """Assert the workflow ended Cancelled (a CancelledError, not a failure) and its history replays;
    return its last "status" query."""
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()
    assert isinstance(info.value.cause, CancelledError), info.value.cause
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    await Replayer(workflows=list(WORKFLOWS)).replay_workflow(await handle.fetch_history())
    last: S = await handle.query("status", result_type=status_type)
    return last


__all__ = [
    "FAIL",
    "OK",
    "WARN",
    "FakeAzure",
    "breach",
    "cancel_handled",
    "check",
    "ended_cancelled",
    "green",
    "no_data",
]


async def ended(handle: WorkflowHandle[Any, Any]) -> WorkflowExecutionStatus:
    """How the workflow ended, by polling. Never by awaiting its result: that lets the time-skipping server
    skip ahead, and other workflows waiting on a timer or a signal would move on or time out meanwhile."""
    async with asyncio.timeout(15):
        while True:
            status = (await handle.describe()).status
            if status != WorkflowExecutionStatus.RUNNING:
                assert status is not None
                return status
            await asyncio.sleep(0.05)


async def failure_of_closed(handle: WorkflowHandle[Any, Any]) -> Failure:
    """The failure a workflow that failed (awaited by polling, see ``ended``) ended with, from its history."""
    assert await ended(handle) == WorkflowExecutionStatus.FAILED
    history = await handle.fetch_history()
    failed = next(e for e in history.events if e.HasField("workflow_execution_failed_event_attributes"))
    return failed.workflow_execution_failed_event_attributes.failure
