"""Deterministic orchestration only: no I/O, clocks or randomness outside Temporal's APIs."""

from __future__ import annotations

from workflows.backup import BackupWorkflow
from workflows.drill import DrillWorkflow
from workflows.failback import FailbackWorkflow
from workflows.failover import FailoverWorkflow
from workflows.lock import PlanLockWorkflow
from workflows.readiness import ReadinessWorkflow
from workflows.repin import RepinTenantsWorkflow
from workflows.restore import TenantRestoreWorkflow, UndoPromotionWorkflow

WORKFLOWS: tuple[type, ...] = (
    FailoverWorkflow,
    RepinTenantsWorkflow,
    FailbackWorkflow,
    TenantRestoreWorkflow,
    UndoPromotionWorkflow,
    ReadinessWorkflow,
    BackupWorkflow,
    DrillWorkflow,
    PlanLockWorkflow,
)
