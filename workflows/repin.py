"""RepinTenantsWorkflow: re-pin the tenants of a failed region to the DR region, batch by batch.

History stays bounded whatever the tenant count: each batch is one activity that lists, filters by
residency and re-pins a page in the registry (tenant ids never pass through history), and the
workflow continues as new every ``batches_per_run`` batches, carrying its totals.
"""

from __future__ import annotations

from dataclasses import replace

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.messages.failover import RepinInput, RepinSummary
    from domain.messages.platform import RepinBatchInput, RepinBatchResult
    from workflows.common import activity_options


@workflow.defn(name="RepinTenantsWorkflow")
class RepinTenantsWorkflow:
    def __init__(self) -> None:
        self.summary = RepinSummary()

    @workflow.query(name="status")
    def status(self) -> RepinSummary:
        return self.summary

    @workflow.run
    async def run(self, inp: RepinInput) -> RepinSummary:
        self.summary = replace(inp.carried) if inp.carried else RepinSummary()
        cursor = inp.cursor
        for _ in range(inp.batches_per_run):
            batch = await workflow.execute_activity(
                "platform.repin_batch",
                RepinBatchInput(
                    plan=inp.plan,
                    from_region=inp.from_region,
                    to_region=inp.to_region,
                    cursor=cursor,
                    limit=inp.batch_size,
                    reason=inp.reason,
                ),
                result_type=RepinBatchResult,
                **activity_options(5, summary=f"re-pin batch {self.summary.batches + 1}"),
            )
            s = self.summary
            s.batches += 1
            s.considered += batch.considered
            s.moved += batch.moved
            s.already_there += batch.already_there
            s.not_allowed += batch.not_allowed
            workflow.set_current_details(
                f"re-pinning {inp.from_region} → {inp.to_region}: {s.moved} moved, {s.not_allowed} kept home by "
                f"residency, batch {s.batches}"
            )
            cursor = batch.next_cursor
            if cursor is None:
                return s
        return workflow.continue_as_new(replace(inp, cursor=cursor, carried=self.summary))
