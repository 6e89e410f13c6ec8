"""TenantRestoreWorkflow's orchestration on the time-skipping test server, with faked Blob/SQL/Cosmos
activities and the real manifest, approval and evidence cryptography."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from temporalio.api.enums.v1 import EventType, IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.runtime import MetricBuffer, Runtime, TelemetryConfig
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.integrity import INTEGRITY_ERROR_TYPE, key_id_of, sign_approval, sign_restore_request
from domain.messages.backups import UndoPromotionInput, UndoPromotionResult
from domain.messages.integrity import APPROVE, REJECT, Approval
from domain.messages.progress import DONE, FAILED
from domain.messages.restore import (
    MODE_PRODUCTION,
    MODE_SANDBOX,
    OUTCOME_PROMOTED,
    OUTCOME_REJECTED,
    OUTCOME_SANDBOX,
    OUTCOME_TIMED_OUT,
    ApprovalAccepted,
    RejectRequest,
    RestoreInput,
    RestoreResult,
    RestoreStatus,
)
from starters.stack import SEARCH_ATTRIBUTES
from tests.conftest import venv_binary
from tests.workflows.restore_fakes import CREATED_AT, RECOVERY_POINT, REQUESTER, TENANT, FakeRestoreWorld, segment
from workflows import WORKFLOWS
from workflows.restore import (
    AWAITING_APPROVAL,
    PROJECTION_DATABASE_CHANGED,
    PROOF_FAILURES,
    REPLACED_DATABASE,
    REQUEST_NOT_AUTHENTICATED,
    REQUEST_STEP,
    TenantRestoreWorkflow,
    UndoPromotionWorkflow,
)

Handle = WorkflowHandle[Any, RestoreResult]
LATER_POINT = "RP-20261128T100000Z-eastus-tenant-0001"  # a second recovery point, with data of its own


@asynccontextmanager
async def worker(env: WorkflowEnvironment, world: FakeRestoreWorld, task_queue: str) -> AsyncIterator[None]:
    async with Worker(env.client, task_queue=task_queue, workflows=list(WORKFLOWS), activities=world.activities()):
        yield


async def start(
    env: WorkflowEnvironment,
    world: FakeRestoreWorld,
    task_queue: str,
    *,
    key: Ed25519PrivateKey | None = None,
    unsigned: bool = False,
    signed_for: str | None = None,
    hours: float = 1,
    **kwargs: Any,
) -> Handle:
    """Start a restore requested by alice (or ``requested_by``); a production request is signed as
    `drctl restore start --key` signs it, with the requester's key unless ``key`` is given."""
    fields: dict[str, Any] = {"recovery_point_id": RECOVERY_POINT, "requested_by": "alice"} | kwargs
    inp = RestoreInput(plan="local", tenant_id=TENANT, **fields)
    workflow_id = f"restore-local-{TENANT}-{uuid.uuid4().hex[:8]}"
    if inp.mode == MODE_PRODUCTION and not unsigned:
        now = await env.get_current_time()
        inp = sign_restore_request(
            key or world.key_of(inp.requested_by),
            inp,
            workflow_id=signed_for or workflow_id,
            issued_at=now,
            expires_at=now + dt.timedelta(hours=hours),
        )
    return await env.client.start_workflow(TenantRestoreWorkflow.run, inp, id=workflow_id, task_queue=task_queue)


async def status(handle: Handle) -> RestoreStatus:
    current: RestoreStatus = await handle.query("status", result_type=RestoreStatus)
    return current


async def wait_phase(handle: Handle, *phases: str) -> RestoreStatus:
    current = None
    for _ in range(400):
        current = await status(handle)
        if current.phase in phases:
            return current
        await asyncio.sleep(0.05)
    raise AssertionError(f"phase never reached {phases}; last {current.phase if current else None}")


async def signed(
    env: WorkflowEnvironment,
    handle: Handle,
    key: Ed25519PrivateKey,
    approver: str,
    *,
    decision: str = APPROVE,
    hours: float = 1,
    **override: str,
) -> Approval:
    """An approval as `drctl restore approve` makes it, for this workflow's recovery point and verification."""
    current = await status(handle)
    assert current.verification_digest is not None
    fields = {
        "workflow_id": handle.id,
        "recovery_point_id": RECOVERY_POINT,
        "verification_digest": current.verification_digest,
    } | override
    return sign_approval(
        key,
        decision=decision,
        approver=approver,
        expires_at=await env.get_current_time() + dt.timedelta(hours=hours),
        **fields,
    )


async def refused(handle: Handle, approval: Approval) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await handle.execute_update("approve", approval)
    assert isinstance(err.value.cause, ApplicationError)
    return err.value.cause.message


async def accepted_updates(handle: Handle) -> int:
    history = await handle.fetch_history()
    return sum(1 for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)


def failure(err: pytest.ExceptionInfo[WorkflowFailureError]) -> ApplicationError:
    assert isinstance(err.value.cause, ApplicationError)
    return err.value.cause


TAMPERINGS: dict[str, tuple[Callable[[FakeRestoreWorld], object], str]] = {
    "flipped byte": (lambda w: w.flip_byte(w.package_blobs()[1]), "segments/2026112808-0001.jsonl.gz"),
    "missing package": (lambda w: w.backups.pop(w.package_blobs()[2]), "segments/2026112808-0002.jsonl.gz"),
    "other key": (lambda w: w.resign_with_other_key(), "unknown key"),
    "bad Merkle root": (lambda w: w.corrupt_merkle_root(), "Merkle root"),
}


@pytest.fixture(scope="module")
async def metrics_env() -> AsyncIterator[tuple[WorkflowEnvironment, MetricBuffer]]:
    buffer = MetricBuffer(10000)
    runtime = Runtime(telemetry=TelemetryConfig(metrics=buffer))
    env = await WorkflowEnvironment.start_time_skipping(
        runtime=runtime, test_server_existing_path=venv_binary("temporal-test-server")
    )
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes=dict.fromkeys(SEARCH_ATTRIBUTES, IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD),
        )
    )
    try:
        yield env, buffer
    finally:
        await env.shutdown()


def proof_failures(buffer: MetricBuffer) -> float:
    return sum(u.value for u in buffer.retrieve_updates() if u.metric.name == PROOF_FAILURES)


def step_of(current: RestoreStatus, key: str) -> tuple[str, str]:
    """The status and detail of one step of the restore's step table."""
    step = next(s for s in current.steps.steps if s.key == key)
    return step.status, step.detail


def evidence_data(world: FakeRestoreWorld, handle: Handle, key: str) -> list[Any]:
    """What the restore's evidence pack recorded under ``key``, entry by entry."""
    pack = json.loads(world.evidence[f"evidence/{handle.id}.json"])
    return [entry["data"][key] for entry in pack["entries"] if key in entry["data"]]


# How a production request can fail to authenticate its requester: start() arguments (given the world)
# and what the error must say.
UNAUTHENTICATED: dict[str, tuple[Callable[[FakeRestoreWorld], dict[str, Any]], str]] = {
    "unsigned": (lambda w: {"unsigned": True}, "must be signed by its requester alice"),
    "unknown requester": (
        lambda w: {"requested_by": "mallory", "key": Ed25519PrivateKey.generate()},
        "'mallory' may not request restores of plan local",
    ),
    "unknown key": (
        lambda w: {"requested_by": REQUESTER, "key": Ed25519PrivateKey.generate()},
        f"the restore request by {REQUESTER} was signed with key",
    ),
    "bob's key as dave": (
        lambda w: {"requested_by": "dave", "key": w.approver_keys["bob"]},
        "the restore request by dave was signed with key {bob}, not dave's",
    ),
    "another workflow": (
        lambda w: {"signed_for": "restore-local-other"},
        "workflow id 'restore-local-other' in the restore request by alice does not match",
    ),
    "expired": (lambda w: {"hours": -1}, "the restore request by alice expired at"),
}


class TestRequester:
    @pytest.mark.parametrize("case", list(UNAUTHENTICATED))
    async def test_an_unauthenticated_production_request_is_refused_before_any_copy(
        self, time_env: WorkflowEnvironment, task_queue: str, case: str
    ) -> None:
        """A production request that is unsigned, by someone the plan does not list, signed with a key not the
        requester's (bob's key under dave's name), for another run or expired fails naming the problem before
        a recovery point is even chosen, and still cleans up and leaves its evidence."""
        world = FakeRestoreWorld()
        world.requester_keys["dave"] = Ed25519PrivateKey.generate()
        arguments, named = UNAUTHENTICATED[case]
        async with worker(time_env, world, task_queue):
            handle = await start(time_env, world, task_queue, mode=MODE_PRODUCTION, **arguments(world))
            with pytest.raises(WorkflowFailureError) as err:
                await handle.result()
            final = await status(handle)
        cause = failure(err)
        assert cause.type == REQUEST_NOT_AUTHENTICATED
        assert named.format(bob=key_id_of(world.approver_keys["bob"])) in cause.message
        assert "the restore request is not authenticated" in cause.message
        assert world.of("backups.find_recovery_point") == []
        assert world.of("backups.copy_to_quarantine") == []
        assert world.quarantine == {}
        assert world.of("sql.restore_database_pitr") == []
        assert world.of("backups.promote") == []
        assert world.of("backups.cleanup_quarantine"), "the failure path cleans up"
        assert world.evidence, "a refused restore still leaves its evidence pack"
        assert final.phase == "failed"
        assert final.requester_key_id is None
        assert step_of(final, REQUEST_STEP)[0] == FAILED

    async def test_an_altered_request_fails_its_signature(self, time_env: WorkflowEnvironment, task_queue: str) -> None:
        """A signed request whose fields changed after signing (here its approval window) is refused as a bad
        signature: the signature covers every field."""
        world = FakeRestoreWorld()
        workflow_id = f"restore-local-{TENANT}-{uuid.uuid4().hex[:8]}"
        now = await time_env.get_current_time()
        signed_request = sign_restore_request(
            world.approver_keys["alice"],
            RestoreInput("local", TENANT, "alice", recovery_point_id=RECOVERY_POINT, mode=MODE_PRODUCTION),
            workflow_id=workflow_id,
            issued_at=now,
            expires_at=now + dt.timedelta(hours=1),
        )
        altered = dataclasses.replace(signed_request, approval_timeout_seconds=365 * 24 * 3600)
        async with worker(time_env, world, task_queue):
            handle = await time_env.client.start_workflow(
                TenantRestoreWorkflow.run, altered, id=workflow_id, task_queue=task_queue
            )
            with pytest.raises(WorkflowFailureError) as err:
                await handle.result()
        assert failure(err).type == REQUEST_NOT_AUTHENTICATED
        assert "bad signature: the restore request by alice was not signed by alice's key" in failure(err).message
        assert world.of("backups.copy_to_quarantine") == []

    async def test_a_signed_request_proceeds_and_its_requester_shows_as_verified(
        self, time_env: WorkflowEnvironment, task_queue: str
    ) -> None:
        """A request signed by a listed requester (not an approver) runs as before: the status shows the
        verified key, the evidence records the signature, and two approvals promote it."""
        world = FakeRestoreWorld()
        async with worker(time_env, world, task_queue):
            handle = await start(time_env, world, task_queue, mode=MODE_PRODUCTION, requested_by=REQUESTER)
            waiting = await wait_phase(handle, AWAITING_APPROVAL)
            for name in ("bob", "carol"):
                await handle.execute_update("approve", await signed(time_env, handle, world.approver_keys[name], name))
            result = await handle.result()
        expected = key_id_of(world.requester_keys[REQUESTER])
        step, detail = step_of(waiting, REQUEST_STEP)
        assert waiting.requested_by == REQUESTER
        assert waiting.requester_key_id == expected
        assert step == DONE
        assert f"signed by {REQUESTER} with key {expected}" in detail
        assert result.outcome == OUTCOME_PROMOTED
        assert result.approvals == ("bob", "carol")
        assert world.live == world.restore_data
        (recorded,) = evidence_data(world, handle, "requester")
        assert (recorded["requested_by"], recorded["key_id"]) == (REQUESTER, expected)
        assert len(base64.b64decode(recorded["signature"], validate=True)) == 64, "recorded, not masked"

    async def test_an_approval_with_the_requesters_key_under_another_name_is_refused(
        self, time_env: WorkflowEnvironment, task_queue: str
    ) -> None:
        """When the key that signed the request is also an approver's, that approver's approval is refused by
        the validator (the requester cannot approve under another name) and never reaches history."""
        world = FakeRestoreWorld()
        world.requester_keys[REQUESTER] = world.approver_keys["carol"]
        async with worker(time_env, world, task_queue):
            handle = await start(time_env, world, task_queue, mode=MODE_PRODUCTION, requested_by=REQUESTER)
            await wait_phase(handle, AWAITING_APPROVAL)
            message = await refused(handle, await signed(time_env, handle, world.approver_keys["carol"], "carol"))
            updates = await accepted_updates(handle)
            await handle.execute_update("approve", await signed(time_env, handle, world.approver_keys["bob"], "bob"))
            await handle.cancel()
            with pytest.raises(WorkflowFailureError):
                await handle.result()
        assert f"signed this restore's request as {REQUESTER}" in message
        assert "the requester cannot decide on it" in message
        assert updates == 0
        assert world.of("backups.promote") == []


class TestIntegrityFailures:
    @pytest.mark.parametrize("tampering", list(TAMPERINGS))
    async def test_tampered_recovery_point_is_never_quarantined_or_promoted(
        self, metrics_env: tuple[WorkflowEnvironment, MetricBuffer], task_queue: str, tampering: str
    ) -> None:
        """A flipped byte, missing package, foreign signing key or bad Merkle root fails verification,
        names what is wrong, copies and promotes nothing, and counts a proof failure."""
        env, buffer = metrics_env
        proof_failures(buffer)  # drain earlier updates
        world = FakeRestoreWorld()
        tamper, named = TAMPERINGS[tampering]
        tamper(world)
        async with worker(env, world, task_queue):
            handle = await start(env, world, task_queue, mode=MODE_PRODUCTION)
            with pytest.raises(WorkflowFailureError) as err:
                await handle.result()
            final = await status(handle)
        cause = failure(err)
        assert cause.type == INTEGRITY_ERROR_TYPE
        assert named in cause.message
        assert world.of("backups.copy_to_quarantine") == []
        assert world.of("backups.promote") == []
        assert world.quarantine == {}
        assert world.of("sql.restore_database_pitr") == []
        assert proof_failures(buffer) == 1
        assert final.phase == "failed"
        assert final.verification_ok is False
        assert world.evidence, "a failed restore still leaves its evidence pack"


class TestApprovals:
    async def test_status_shows_what_an_approver_needs(self, time_env: WorkflowEnvironment, task_queue: str) -> None:
        """While awaiting approval the status names the tenant, recovery point, verification and validation."""
        world = FakeRestoreWorld()
        async with worker(time_env, world, task_queue):
            handle = await start(time_env, world, task_queue, mode=MODE_PRODUCTION)
            current = await wait_phase(handle, AWAITING_APPROVAL)
            await handle.cancel()
            with pytest.raises(WorkflowFailureError):
                await handle.result()  # its cleanup runs before the worker goes
        assert current.tenant_id == TENANT
        assert current.recovery_point is not None
        assert current.recovery_point.recovery_point_id == RECOVERY_POINT
        assert current.verification_ok is True
        assert current.verification_digest
        assert all(p.verified for p in current.packages)
        assert current.validation is not None
        assert current.validation.ok
        assert current.approvals_required == 2
        assert set(current.approvers) == {"alice", "bob", "carol"}
        assert current.approval_deadline


class TestNoPromotion:
    async def test_sandbox_never_promotes(self, time_env: WorkflowEnvironment, task_queue: str) -> None:
        """A sandbox restore verifies, quarantines, restores the databases and validates, then cleans up unpromoted."""
        world = FakeRestoreWorld()
        before = dict(world.live)
        async with worker(time_env, world, task_queue):
            handle = await start(time_env, world, task_queue, mode=MODE_SANDBOX)
            result = await handle.result()
        assert result.outcome == OUTCOME_SANDBOX
        assert world.of("backups.promote") == []
        assert world.live == before
        assert world.quarantine == {}
        assert len(world.of("backups.copy_to_quarantine")) == 3
        assert result.evidence_blob == f"evidence/{handle.id}.json"
        assert [d.database for d in world.of("sql.delete_database")] == [result.restored_database]
        assert [d.account for d in world.of("cosmos.delete_account")] == [result.restored_cosmos_account]
        assert world.of("platform.set_tenant_database") == []

    async def test_approval_timeout_cleans_up(self, time_env: WorkflowEnvironment, task_queue: str) -> None:
        """With no decision within 72 hours the restore cleans up and promotes nothing."""
        world = FakeRestoreWorld()
        async with worker(time_env, world, task_queue):
            handle = await start(time_env, world, task_queue, mode=MODE_PRODUCTION)
            await wait_phase(handle, AWAITING_APPROVAL)
            began = await time_env.get_current_time()
            result = await handle.result()
            ended = await time_env.get_current_time()
        assert result.outcome == OUTCOME_TIMED_OUT
        assert ended - began >= dt.timedelta(hours=72)
        assert world.of("backups.promote") == []
        assert world.quarantine == {}


class TestDatabaseRestores:
    async def test_sql_and_cosmos_restores_target_the_recovery_points_time(
        self, time_env: WorkflowEnvironment, task_queue: str
    ) -> None:
        """The projection database and the Cosmos account are restored as of the recovery point into new names."""
        world = FakeRestoreWorld()
        async with worker(time_env, world, task_queue):
            handle = await start(time_env, world, task_queue)
            result = await handle.result()
        (sql,) = world.of("sql.restore_database_pitr")
        (cosmos,) = world.of("cosmos.restore_account")
        assert (sql.failover_group, sql.source_database, sql.point_in_time) == (
            "fog-tenants",
            "projections",
            CREATED_AT,
        )
        assert sql.target_database != sql.source_database
        assert cosmos.point_in_time == CREATED_AT
        assert cosmos.target_account.startswith("cosmos-estate-r")
        assert result.restored_database == sql.target_database

    async def test_without_a_cosmos_account_only_sql_is_restored(
        self, time_env: WorkflowEnvironment, task_queue: str
    ) -> None:
        """A plan without a Cosmos DB account skips that restore."""
        world = FakeRestoreWorld(cosmos_account=None)
        async with worker(time_env, world, task_queue):
            result = await (await start(time_env, world, task_queue)).result()
        assert world.of("cosmos.restore_account") == []
        assert result.restored_cosmos_account is None


class TestRequest:
    async def test_a_bad_request_fails_before_any_activity(
        self, time_env: WorkflowEnvironment, task_queue: str
    ) -> None:
        """Both a time and a recovery point, or an unknown mode, are refused with the reason."""
        world = FakeRestoreWorld()
        async with worker(time_env, world, task_queue):
            handle = await start(time_env, world, task_queue, at="2026-11-28T09:00:00Z", mode="live")
            with pytest.raises(WorkflowFailureError) as err:
                await handle.result()
        message = failure(err).message
        assert "exactly one of" in message
        assert "mode must be one of" in message
        assert world.of("backups.find_recovery_point") == []

    async def test_a_time_in_the_future_fails_clearly(self, time_env: WorkflowEnvironment, task_queue: str) -> None:
        """The catalog's refusal of a future point in time is the restore's error."""
        world = FakeRestoreWorld()
        async with worker(time_env, world, task_queue):
            handle = await start(time_env, world, task_queue, recovery_point_id=None, at="2030-01-01T00:00:00Z")
            with pytest.raises(WorkflowFailureError) as err:
                await handle.result()
        assert failure(err).type == "PointInTimeInFuture"
        assert "in the future" in failure(err).message


class TestApprovalDecisions:
    async def test_invalid_approvals_are_refused_and_absent_from_history(
        self, time_env: WorkflowEnvironment, task_queue: str
    ) -> None:
        """The requester, an outsider, a repeat, a bad signature, another workflow's or an expired approval
        is each refused by the validator with its reason and leaves no trace in history; two valid ones promote."""
        world = FakeRestoreWorld()
        outsider = Ed25519PrivateKey.generate()
        async with worker(time_env, world, task_queue):
            handle = await start(time_env, world, task_queue, mode=MODE_PRODUCTION)
            await wait_phase(handle, AWAITING_APPROVAL)
            keys = world.approver_keys
            bob = await signed(time_env, handle, keys["bob"], "bob")
            reasons = {
                "requester": await refused(handle, await signed(time_env, handle, keys["alice"], "alice")),
                "outsider": await refused(handle, await signed(time_env, handle, outsider, "mallory")),
                "bad signature": await refused(handle, await signed(time_env, handle, outsider, "carol")),
                "other workflow": await refused(
                    handle, await signed(time_env, handle, keys["carol"], "carol", workflow_id="restore-other")
                ),
                "expired": await refused(handle, await signed(time_env, handle, keys["carol"], "carol", hours=-1)),
            }
            first = await handle.execute_update("approve", bob, result_type=ApprovalAccepted)
            reasons["twice"] = await refused(handle, bob)
            assert await accepted_updates(handle) == 1
            second = await handle.execute_update(
                "approve", await signed(time_env, handle, keys["carol"], "carol"), result_type=ApprovalAccepted
            )
            result = await handle.result()
        assert "requested this restore" in reasons["requester"]
        assert "'mallory' is not an approver" in reasons["outsider"]
        assert "signed with key" in reasons["bad signature"] or "bad signature" in reasons["bad signature"]
        assert "workflow id 'restore-other'" in reasons["other workflow"]
        assert "expired" in reasons["expired"]
        assert "already approved" in reasons["twice"]
        assert (first.approvals, second.approvals, second.required) == (1, 2, 2)
        assert result.outcome == OUTCOME_PROMOTED
        assert result.approvals == ("bob", "carol")
        (promote,) = world.of("backups.promote")
        assert promote.restore_id == handle.id
        assert world.projection_database == result.restored_database
        assert world.of("sql.delete_database") == [], "the promoted database is in use"
        assert world.live == world.restore_data
        assert world.quarantine == {}
        assert await accepted_updates(handle) == 2

    async def test_an_approval_altered_after_signing_is_refused(
        self, time_env: WorkflowEnvironment, task_queue: str
    ) -> None:
        """An approval whose expiry was extended after signing fails its signature check in the validator, and
        the worker goes on to take the valid approvals that follow."""
        world = FakeRestoreWorld()
        async with worker(time_env, world, task_queue):
            handle = await start(time_env, world, task_queue, mode=MODE_PRODUCTION)
            await wait_phase(handle, AWAITING_APPROVAL)
            bob = await signed(time_env, handle, world.approver_keys["bob"], "bob")
            message = await refused(handle, dataclasses.replace(bob, expires_at="9999-12-31T00:00:00Z"))
            for name in ("bob", "carol"):
                await handle.execute_update("approve", await signed(time_env, handle, world.approver_keys[name], name))
            result = await handle.result()
        assert "bad signature: the approval by bob was not signed by bob's key or was altered" in message
        assert result.outcome == OUTCOME_PROMOTED

    async def test_rejection_cleans_up_and_promotes_nothing(
        self, time_env: WorkflowEnvironment, task_queue: str
    ) -> None:
        """One signed rejection with a reason ends the restore: nothing promoted, quarantine removed."""
        world = FakeRestoreWorld()
        before = dict(world.live)
        async with worker(time_env, world, task_queue):
            handle = await start(time_env, world, task_queue, mode=MODE_PRODUCTION)
            await wait_phase(handle, AWAITING_APPROVAL)
            decision = await signed(time_env, handle, world.approver_keys["carol"], "carol", decision=REJECT)
            with pytest.raises(WorkflowUpdateFailedError) as empty:
                await handle.execute_update("reject", RejectRequest(decision, " "))
            await handle.execute_update("reject", RejectRequest(decision, "wrong tenant"), result_type=ApprovalAccepted)
            result = await handle.result()
        assert isinstance(empty.value.cause, ApplicationError)
        assert "needs a reason" in empty.value.cause.message
        assert result.outcome == OUTCOME_REJECTED
        assert world.of("backups.promote") == []
        assert world.projection_database == "projections"
        assert [d.database for d in world.of("sql.delete_database")] == [result.restored_database]
        assert world.live == before
        assert world.quarantine == {}

    async def test_sandbox_restores_take_no_approvals(self, time_env: WorkflowEnvironment, task_queue: str) -> None:
        """Approving a sandbox restore is refused: sandbox restores are never promoted."""
        world = FakeRestoreWorld()
        world.hold_validation = asyncio.Event()
        async with worker(time_env, world, task_queue):
            handle = await start(time_env, world, task_queue, mode=MODE_SANDBOX)
            await wait_phase(handle, "validate")
            message = await refused(
                handle,
                sign_approval(
                    world.approver_keys["bob"],
                    workflow_id=handle.id,
                    recovery_point_id=RECOVERY_POINT,
                    verification_digest="0" * 64,
                    decision=APPROVE,
                    approver="bob",
                    expires_at=await time_env.get_current_time() + dt.timedelta(hours=1),
                ),
            )
            world.hold_validation.set()
            result = await handle.result()
        assert "never promoted" in message
        assert result.outcome == OUTCOME_SANDBOX


class TestCleanupAndSafety:
    async def test_a_failed_database_restore_still_cleans_up_the_other_copy(
        self, time_env: WorkflowEnvironment, task_queue: str
    ) -> None:
        """When the Cosmos restore fails, the SQL copy (and the Cosmos account Azure may have begun) are deleted."""
        world = FakeRestoreWorld(fail_cosmos_restore=True)
        async with worker(time_env, world, task_queue):
            handle = await start(time_env, world, task_queue, mode=MODE_PRODUCTION)
            with pytest.raises(WorkflowFailureError):
                await handle.result()
        (sql,) = world.of("sql.restore_database_pitr")
        assert [d.database for d in world.of("sql.delete_database")] == [sql.target_database]
        (cosmos,) = world.of("cosmos.restore_account")
        assert [d.account for d in world.of("cosmos.delete_account")] == [cosmos.target_account]

    async def test_a_changed_registry_mapping_stops_promotion_before_live_data_changes(
        self, time_env: WorkflowEnvironment, task_queue: str
    ) -> None:
        """If the tenant's projections moved while the restore awaited approval, promotion is refused and
        the live data is untouched."""
        world = FakeRestoreWorld()
        before = dict(world.live)
        async with worker(time_env, world, task_queue):
            handle = await start(time_env, world, task_queue, mode=MODE_PRODUCTION)
            await wait_phase(handle, AWAITING_APPROVAL)
            world.projection_database = "projections-elsewhere"
            for name in ("bob", "carol"):
                await handle.execute_update("approve", await signed(time_env, handle, world.approver_keys[name], name))
            with pytest.raises(WorkflowFailureError):
                await handle.result()
        assert world.of("backups.promote") == []
        assert world.live == before
        assert world.projection_database == "projections-elsewhere"

    async def test_decisions_after_the_approval_window_are_refused(
        self, time_env: WorkflowEnvironment, task_queue: str
    ) -> None:
        """Once the approval window has closed, a late approval is refused and not recorded."""
        world = FakeRestoreWorld()
        world.hold_cleanup = asyncio.Event()
        async with worker(time_env, world, task_queue):
            handle = await start(time_env, world, task_queue, mode=MODE_PRODUCTION, approval_timeout_seconds=3600)
            await wait_phase(handle, AWAITING_APPROVAL)
            late = await signed(time_env, handle, world.approver_keys["bob"], "bob", hours=100)
            # Awaiting the result lets the test server skip time to the deadline; the cleanup then waits.
            outcome = asyncio.create_task(handle.result())
            await wait_phase(handle, "closing")
            message = await refused(handle, late)
            world.hold_cleanup.set()
            result = await outcome
        assert "decisions are accepted only while it awaits approval" in message
        assert result.outcome == OUTCOME_TIMED_OUT
        assert result.approvals == ()

    async def test_one_key_under_two_names_approves_once(self, time_env: WorkflowEnvironment, task_queue: str) -> None:
        """Two approver names sharing one key count as one approver."""
        world = FakeRestoreWorld()
        world.approver_keys["carol"] = world.approver_keys["bob"]
        async with worker(time_env, world, task_queue):
            handle = await start(time_env, world, task_queue, mode=MODE_PRODUCTION)
            await wait_phase(handle, AWAITING_APPROVAL)
            await handle.execute_update("approve", await signed(time_env, handle, world.approver_keys["bob"], "bob"))
            message = await refused(handle, await signed(time_env, handle, world.approver_keys["carol"], "carol"))
            await handle.cancel()
            with pytest.raises(WorkflowFailureError):
                await handle.result()
        assert "key has already approved" in message


async def promote(
    env: WorkflowEnvironment, world: FakeRestoreWorld, task_queue: str, point: str = RECOVERY_POINT
) -> tuple[Handle, RestoreResult]:
    """A production restore of ``point`` approved by bob and carol, run to its end."""
    handle = await start(env, world, task_queue, mode=MODE_PRODUCTION, recovery_point_id=point)
    await wait_phase(handle, AWAITING_APPROVAL)
    for name in ("bob", "carol"):
        approval = await signed(env, handle, world.approver_keys[name], name, recovery_point_id=point)
        await handle.execute_update("approve", approval)
    return handle, await handle.result()


async def promote_twice(
    env: WorkflowEnvironment, world: FakeRestoreWorld, task_queue: str
) -> tuple[tuple[Handle, RestoreResult], tuple[Handle, RestoreResult], dict[str, bytes]]:
    """Restore A (the first recovery point) promoted, then restore B (LATER_POINT, other data) promoted; and B's
    data."""
    later = {f"segments/2026112809-{i:04d}.jsonl.gz": segment(TENANT, 200 + i) for i in range(2)}
    world.make_recovery_point(LATER_POINT, later)
    first = await promote(env, world, task_queue)
    second = await promote(env, world, task_queue, LATER_POINT)
    assert (first[1].outcome, second[1].outcome) == (OUTCOME_PROMOTED, OUTCOME_PROMOTED)
    assert world.projection_database == second[1].restored_database
    assert world.live == later
    return first, second, later


async def undo(
    env: WorkflowEnvironment, task_queue: str, restored: RestoreResult, **fields: Any
) -> UndoPromotionResult:
    """UndoPromotionWorkflow for ``restored``, its input as ``drctl restore undo`` builds it unless ``fields``
    say otherwise."""
    defaults: dict[str, Any] = {"previous_database": restored.replaced_database, "database_swapped": True}
    inp = UndoPromotionInput(restored.plan, restored.tenant_id, restored.workflow_id, **(defaults | fields))
    return await env.client.execute_workflow(
        UndoPromotionWorkflow.run, inp, id=f"undo-{restored.workflow_id}", task_queue=task_queue
    )


class TestUndo:
    async def test_undoing_the_later_of_two_promotions_points_the_tenant_at_the_earlier_restores_database(
        self, time_env: WorkflowEnvironment, task_queue: str
    ) -> None:
        """Each promotion records the database its swap replaced (result and evidence pack); undoing the later
        one gives back the earlier restore's segments and points the projections at its database, not the
        shared one."""
        world = FakeRestoreWorld()
        async with worker(time_env, world, task_queue):
            (_, first), (second_handle, second), _ = await promote_twice(time_env, world, task_queue)
            undone = await undo(time_env, task_queue, second)
        assert first.replaced_database == "projections"
        assert second.replaced_database == first.restored_database
        assert evidence_data(world, second_handle, REPLACED_DATABASE) == [first.restored_database]
        assert world.projection_database == first.restored_database
        assert world.live == world.restore_data
        assert (undone.projection_database, undone.fell_back_to_shared) == (first.restored_database, False)
        last = world.of("platform.set_tenant_database")[-1]
        assert (last.database, last.expected_current) == (first.restored_database, second.restored_database)

    async def test_undoing_the_earlier_promotion_while_the_later_stands_is_refused_with_nothing_changed(
        self, time_env: WorkflowEnvironment, task_queue: str
    ) -> None:
        """Once a later restore's promotion has moved the tenant to its database, undoing the earlier one stops
        before touching anything, saying the tenant's projections moved since."""
        world = FakeRestoreWorld()
        async with worker(time_env, world, task_queue):
            (_, first), (_, second), later = await promote_twice(time_env, world, task_queue)
            with pytest.raises(WorkflowFailureError) as err:
                await undo(time_env, task_queue, first)
        cause = failure(err)
        assert cause.type == PROJECTION_DATABASE_CHANGED
        assert f"undo of restore {first.workflow_id} refused with nothing changed" in cause.message
        assert world.projection_database == second.restored_database
        assert world.live == later
        assert world.of("backups.undo_promotion") == []

    async def test_an_undo_without_the_replaced_database_falls_back_to_the_shared_one_and_says_so(
        self, time_env: WorkflowEnvironment, task_queue: str
    ) -> None:
        """A restore whose result does not carry the database its promotion replaced (an older version's) is
        undone to the plan's shared database, and the result says it fell back."""
        world = FakeRestoreWorld()
        async with worker(time_env, world, task_queue):
            _, (_, second), _ = await promote_twice(time_env, world, task_queue)
            undone = await undo(time_env, task_queue, second, previous_database=None)
        assert world.projection_database == "projections"
        assert (undone.projection_database, undone.fell_back_to_shared) == ("projections", True)
        assert world.live == world.restore_data

    async def test_an_undo_of_a_promotion_that_swapped_no_database_leaves_the_mapping_alone(
        self, time_env: WorkflowEnvironment, task_queue: str
    ) -> None:
        """A promotion without a projection database swaps nothing and records nothing; its undo gives back the
        segments and leaves the tenant's mapping as it is, even once the plan has a projection database and
        the tenant uses another restore's."""
        world = FakeRestoreWorld(sql_database=None)
        before = dict(world.live)
        async with worker(time_env, world, task_queue):
            _, promoted = await promote(time_env, world, task_queue)
            world.sql_database = "projections"
            world.projection_database = "projections-elsewhere"
            undone = await undo(time_env, task_queue, promoted, database_swapped=False)
        assert (promoted.restored_database, promoted.replaced_database) == (None, None)
        assert world.of("platform.set_tenant_database") == []
        assert world.projection_database == "projections-elsewhere"
        assert undone.projection_database is None
        assert world.live == before

    async def test_a_restore_that_failed_after_its_swap_names_the_replaced_database_in_its_failure(
        self, time_env: WorkflowEnvironment, task_queue: str
    ) -> None:
        """When promotion of the live segments fails after the registry swap, the restore's failure carries
        the database the swap replaced (a failed run has no result for undo to read)."""
        world = FakeRestoreWorld()
        async with worker(time_env, world, task_queue):
            handle = await start(time_env, world, task_queue, mode=MODE_PRODUCTION)
            await wait_phase(handle, AWAITING_APPROVAL)
            world.fail_promote = True
            for name in ("bob", "carol"):
                await handle.execute_update("approve", await signed(time_env, handle, world.approver_keys[name], name))
            with pytest.raises(WorkflowFailureError) as err:
                await handle.result()
        assert world.projection_database != "projections"
        assert failure(err).details == ({REPLACED_DATABASE: "projections"},)
        assert evidence_data(world, handle, REPLACED_DATABASE) == ["projections"]
