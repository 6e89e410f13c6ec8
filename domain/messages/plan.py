"""What a workflow learns about its plan from the worker that holds it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DescribePlan:
    plan: str
    expected_digest: str = ""  # empty: accept whatever version the worker holds


@dataclass(frozen=True)
class PlanSummary:
    """The parts of a plan that orchestration decisions need (no tenant list: that can be huge)."""

    name: str
    digest: str
    environment: str
    edition: str
    primary_region: str
    dr_region: str
    origins: dict[str, str]
    servicebus_namespaces: dict[str, str]
    servicebus_alias: str
    failover_groups: list[str]
    cosmos_account: str
    cosmos_regions: list[str]
    allow_data_loss: bool
    data_loss_grace_minutes: int
    extended_outage_minutes: int
    repin_batch_size: int
    slo_max_error_rate: float
    slo_p95_latency_ms: float
    slo_min_request_count: int
    slo_validation_timeout_seconds: int
    slo_sample_interval_seconds: int
    failback_steps: list[int]
    failback_soak_seconds: int
    failback_interval_seconds: int
    approvals_required: int
    approvers: list[str]
    tenants_by_home: dict[str, int] = field(default_factory=dict)
    tenant_ids: list[str] = field(default_factory=list)  # only for plans small enough (<= 1000 tenants)
