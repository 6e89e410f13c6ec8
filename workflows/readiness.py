"""ReadinessWorkflow: every 30 minutes (a Temporal Schedule, ``readiness-{plan}``) and on demand
(``drctl plan check``), run the checks failover's pre-flight uses, plus the age of each tenant's
newest recovery point, and keep the verdict where operators look: the returned table, the
``DrReadiness`` search attribute, the UI's current details and the worker's Prometheus metrics."""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain.messages.plan import DescribePlan, PlanSummary
    from domain.messages.readiness import (
        FAIL,
        STATUS_VALUES,
        ReadinessInput,
        ReadinessReport,
        ReadinessResult,
        ReadinessStatus,
        ReadinessWorkflowInput,
    )
    from workflows.common import DR_PHASE, DR_PLAN, activity_options, error_text, error_type

DR_READINESS = SearchAttributeKey.for_keyword("DrReadiness")
SCHEDULE_PREFIX = "readiness-"
CHECK_STATUS_METRIC = "readiness_check_status"
RPO_EFFECTIVE_METRIC = "rpo_effective_seconds"


def schedule_id(plan: str) -> str:
    """The id of a plan's readiness schedule (its runs are ``readiness-{plan}-<scheduled time>``)."""
    return f"{SCHEDULE_PREFIX}{plan}"


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(result: ReadinessResult) -> str:
    """The readiness table as markdown, for the Temporal UI's current details."""
    lines = [
        f"**Readiness of {result.plan}: {result.status}** ({result.from_region} → {result.to_region}, "
        f"checked {result.checked_at})",
        "",
        "| check | status | detail | fix |",
        "|---|---|---|---|",
    ]
    lines += [f"| {_cell(r.title)} | {r.status} | {_cell(r.detail)} | {_cell(r.fix)} |" for r in result.rows]
    return "\n".join(lines)


@workflow.defn(name="ReadinessWorkflow")
class ReadinessWorkflow:
    @workflow.init
    def __init__(self, inp: ReadinessWorkflowInput) -> None:
        self.inp = inp
        self.phase = "starting"
        self.result: ReadinessResult | None = None
        self.error: str | None = None

    @workflow.query(name="status")
    def status(self) -> ReadinessStatus:
        return ReadinessStatus(plan=self.inp.plan, phase=self.phase, result=self.result, error=self.error)

    def _set_phase(self, phase: str) -> None:
        self.phase = phase
        workflow.upsert_search_attributes([DR_PHASE.value_set(phase)])

    @workflow.run
    async def run(self, inp: ReadinessWorkflowInput) -> ReadinessResult:
        workflow.upsert_search_attributes([DR_PLAN.value_set(inp.plan)])
        self._set_phase("checking")
        workflow.set_current_details(f"**Readiness of {inp.plan}**: checking (requested by {inp.requested_by})")
        try:
            # The plan first: a drctl run names the version it validated, and the worker must hold it.
            plan: PlanSummary = await workflow.execute_activity(
                "plan.describe",
                DescribePlan(inp.plan, inp.plan_digest),
                result_type=PlanSummary,
                **activity_options(1, summary=f"load plan {inp.plan}"),
            )
            # One activity runs every check concurrently (the same functions as failover's
            # pre-flight), each turning its own errors into a FAIL row, so one slow or failing
            # service never hides the others' verdicts.
            report: ReadinessReport = await workflow.execute_activity(
                "readiness.check",
                ReadinessInput(inp.plan),
                result_type=ReadinessReport,
                **activity_options(3, summary=f"readiness checks of {inp.plan}"),
            )
        except (ActivityError, ApplicationError) as err:
            self.error = error_text(err)
            self._set_phase("failed")
            # A run that could not check at all is no evidence of readiness.
            workflow.upsert_search_attributes([DR_READINESS.value_set(FAIL)])
            workflow.set_current_details(f"**Readiness of {inp.plan}: could not run**: {self.error}")
            raise ApplicationError(
                f"readiness run of plan {inp.plan} could not run: {self.error}",
                type=error_type(err) or "ReadinessFailed",
                non_retryable=True,
            ) from err
        result = ReadinessResult.from_report(report, environment=plan.environment, edition=plan.edition)
        self.result = result
        workflow.upsert_search_attributes([DR_READINESS.value_set(result.status)])
        self._record_metrics(result)
        workflow.set_current_details(markdown_table(result))
        self._set_phase("completed")
        return result

    def _record_metrics(self, result: ReadinessResult) -> None:
        """readiness_check_status{plan,check}: 0 OK, 1 WARN, 2 FAIL; rpo_effective_seconds{plan}: the
        age of the oldest of the tenants' newest recovery points (not recorded when no tenant has one)."""
        meter = workflow.metric_meter().with_additional_attributes({"plan": result.plan})
        status = meter.create_gauge(CHECK_STATUS_METRIC, "Readiness check result: 0 OK, 1 WARN, 2 FAIL")
        for row in result.rows:
            status.set(STATUS_VALUES.get(row.status, STATUS_VALUES[FAIL]), {"check": row.key})
        if result.rpo_effective_seconds is not None:
            meter.create_gauge_float(
                RPO_EFFECTIVE_METRIC, "Age of the oldest of the tenants' newest recovery points", "s"
            ).set(result.rpo_effective_seconds)
