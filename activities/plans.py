"""The plan as the worker holds it, described to workflows (which cannot read files)."""

from __future__ import annotations

from collections import Counter

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.azure import Estates
from domain.messages.plan import DescribePlan, PlanSummary

SMALL_PLAN_TENANTS = 1000


class PlanActivities:
    def __init__(self, estates: Estates) -> None:
        self.estates = estates

    @activity.defn(name="plan.describe")
    async def describe(self, req: DescribePlan) -> PlanSummary:
        """The plan's decision-relevant facts; refuses if the worker holds another version of it."""
        plan = self.estates[req.plan].plan
        if req.expected_digest and req.expected_digest != plan.digest:
            raise ApplicationError(
                f"the worker holds a different version of plan {plan.name!r} ({plan.source}, "
                f"sha256 {plan.digest[:12]}) than the one you validated (sha256 {req.expected_digest[:12]}); "
                "deploy the same plan file to the workers and drctl, then retry",
                type="PlanMismatch",
                non_retryable=True,
            )
        return PlanSummary(
            name=plan.name,
            digest=plan.digest,
            environment=plan.environment,
            edition=plan.edition,
            primary_region=plan.primary_region,
            dr_region=plan.dr_region,
            origins=dict(plan.frontdoor.origins),
            servicebus_namespaces=dict(plan.servicebus.namespaces),
            servicebus_alias=plan.servicebus.alias,
            failover_groups=[g.name for g in plan.sql.failover_groups],
            cosmos_account=plan.cosmos.account,
            cosmos_regions=list(plan.cosmos.regions),
            allow_data_loss=plan.failover.allow_data_loss,
            data_loss_grace_minutes=plan.failover.data_loss_grace_minutes,
            extended_outage_minutes=plan.failover.extended_outage_minutes,
            repin_batch_size=plan.failover.repin_batch_size,
            slo_max_error_rate=plan.slo.max_error_rate,
            slo_p95_latency_ms=plan.slo.p95_latency_ms,
            slo_min_request_count=plan.slo.min_request_count,
            slo_validation_timeout_seconds=plan.slo.validation_timeout_seconds,
            slo_sample_interval_seconds=plan.slo.sample_interval_seconds,
            failback_steps=list(plan.failback.steps),
            failback_soak_seconds=plan.failback.soak_seconds,
            failback_interval_seconds=plan.failback.interval_seconds,
            approvals_required=plan.approvals_required,
            approvers=[a.name for a in plan.approvers],
            tenants_by_home=dict(Counter(t.home_region for t in plan.tenants)),
            tenant_ids=[t.id for t in plan.tenants] if len(plan.tenants) <= SMALL_PLAN_TENANTS else [],
        )
