"""Fakes of the activities BackupWorkflow calls: FakeRestoreWorld's backup activities (blobs in dicts,
the real manifest signing) with per-tenant faults and empty tenants, the real plan.describe of a
chosen plan, and a paged tenant registry."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.azure import AzureConnection, Estates
from activities.plans import PlanActivities
from domain.messages.backups import (
    CopyPackageInput,
    CopyPackageResult,
    ListSegmentsInput,
    ListSegmentsResult,
    RecoveryPoint,
)
from domain.messages.plan import DescribePlan, PlanSummary
from domain.messages.platform import ListTenantsInput, ListTenantsResult, TenantRecord
from domain.plan import DrPlan
from tests.workflows.restore_fakes import FakeRestoreWorld


def definition_name(fn: Callable[..., Any]) -> str:
    name: str = getattr(fn, "__temporal_activity_definition").name
    return name


@dataclass
class Backups:
    """FakeRestoreWorld's backup activities with per-tenant faults and empty tenants, the real
    plan.describe of a small plan, and a paged tenant registry."""

    plan: DrPlan
    world: FakeRestoreWorld = field(default_factory=FakeRestoreWorld)
    failing_copy: set[str] = field(default_factory=set)
    empty: set[str] = field(default_factory=set)  # tenants whose live container holds no segment
    missing: set[str] = field(default_factory=set)  # tenants without a live container
    registry: list[str] | None = None  # set: plan.describe lists no tenant ids, the registry pages them
    registry_cursors: list[str | None] = field(default_factory=list)

    def points(self, tenant: str) -> list[RecoveryPoint]:
        return [p for p in self.world.catalog.values() if p.tenant_id == tenant]

    def registrations(self, tenant: str) -> list[str]:
        return [a.status for a in self.world.of("backups.register_recovery_point") if a.tenant_id == tenant]

    def copied(self, tenant: str) -> list[str]:
        return [a.segment for a in self.world.of("backups.copy_package") if a.tenant_id == tenant]

    def activities(self) -> list[Callable[..., Any]]:
        base: dict[str, Callable[..., Any]] = {definition_name(fn): fn for fn in self.world.activities()}
        real_describe = PlanActivities(
            Estates([self.plan], AzureConnection.for_emulator("https://127.0.0.1:9", "unused"))
        ).describe

        @activity.defn(name="plan.describe")
        async def describe(arg: DescribePlan) -> PlanSummary:
            summary = await real_describe(arg)
            return dataclasses.replace(summary, tenant_ids=[]) if self.registry is not None else summary

        @activity.defn(name="platform.list_tenants")
        async def list_tenants(arg: ListTenantsInput) -> ListTenantsResult:
            assert self.registry is not None
            self.registry_cursors.append(arg.cursor)
            start = int(arg.cursor or 0)
            page = self.registry[start : start + arg.limit]
            after = start + arg.limit
            return ListTenantsResult(
                arg.plan,
                tuple(TenantRecord(t, "eastus", "eastus", "read-write", "us") for t in page),
                str(after) if after < len(self.registry) else None,
                len(self.registry),
            )

        @activity.defn(name="backups.list_segments")
        async def list_segments(arg: ListSegmentsInput) -> ListSegmentsResult:
            listed: ListSegmentsResult = await base["backups.list_segments"](arg)
            if arg.tenant_id in self.empty | self.missing:
                return dataclasses.replace(listed, segments=(), container_exists=arg.tenant_id not in self.missing)
            return listed

        @activity.defn(name="backups.copy_package")
        async def copy_package(arg: CopyPackageInput) -> CopyPackageResult:
            if arg.tenant_id in self.failing_copy:
                self.world.calls.append(("backups.copy_package", arg))
                raise ApplicationError(
                    f"segment '{arg.segment}' of tenant {arg.tenant_id}: the storage account refused the copy",
                    type="AzureNonRetryableError",
                    non_retryable=True,
                )
            result: CopyPackageResult = await base["backups.copy_package"](arg)
            return result

        overrides: list[Callable[..., Any]] = [describe, list_tenants, list_segments, copy_package]
        return list((base | {definition_name(fn): fn for fn in overrides}).values())


def small_plan(plan: DrPlan, tenants: int) -> DrPlan:
    """The local plan with its first ``tenants`` tenants and a name no other test uses."""
    return dataclasses.replace(plan, name=f"bk{uuid.uuid4().hex[:8]}", tenants=plan.tenants[:tenants])


def tenant_ids(plan: DrPlan) -> list[str]:
    return [t.id for t in plan.tenants]
