"""drctl restore: request checks that need no server, then start, status, approve, reject and undo
against TenantRestoreWorkflow on the time-skipping test server with faked activities and the real
approval cryptography (list on a dev server: the test server has no visibility queries)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from typer.testing import CliRunner, Result

from activities.integrity import generate_private_key, key_id_of, save_private_key
from domain.messages.backups import UndoPromotionInput
from domain.messages.integrity import REJECT
from domain.messages.restore import (
    MODE_PRODUCTION,
    MODE_SANDBOX,
    OUTCOME_PROMOTED,
    OUTCOME_REJECTED,
    OUTCOME_SANDBOX,
    RestoreInput,
    RestoreResult,
)
from domain.plan import DrPlan
from starters import restore_cmd
from starters.restore_cmd import (
    InvalidRequest,
    RestoreCommandError,
    build_request,
    decide,
    list_restores,
    load_signing_key,
    parse_point_in_time,
    plan_problems,
    restore_id_for,
    restore_view,
    start_restore,
    watch_restore,
)
from tests.conftest import time_skipping
from tests.workflows.restore_fakes import RECOVERY_POINT, TENANT, FakeRestoreWorld
from workflows import WORKFLOWS
from workflows.restore import AWAITING_APPROVAL, restored_database_name

LOCAL = Path(__file__).resolve().parents[2] / "plans" / "local.toml"
DEMO_KEYS = LOCAL.parent / "demo-keys"
REQUESTER = "alice"  # an approver of the fake plan, so only the requester rule can refuse her


@workflow.defn(name="TenantRestoreWorkflow", sandboxed=False)
class PromotedByAnOlderVersion:
    """A promoted restore as an older version of TenantRestoreWorkflow ended: its result has no
    replaced_database (the test sets the fake world as its promotion left it)."""

    @workflow.run
    async def run(self, inp: RestoreInput) -> dict[str, Any]:
        wid = workflow.info().workflow_id
        result = RestoreResult(
            workflow_id=wid,
            plan=inp.plan,
            tenant_id=inp.tenant_id,
            outcome=OUTCOME_PROMOTED,
            recovery_point_id=RECOVERY_POINT,
            verification_digest="0" * 64,
            records=60,
            approvals=("bob", "carol"),
            restored_database=restored_database_name("projections", inp.tenant_id, wid),
            calls=("restore.describe", "platform.set_tenant_database", "backups.promote"),
        )
        return {k: v for k, v in dataclasses.asdict(result).items() if k != "replaced_database"}


# ---- fixtures and helpers -----------------------------------------------------------------------


@pytest.fixture(scope="module")
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    async with time_skipping() as env:
        yield env


@pytest.fixture
def world() -> FakeRestoreWorld:
    return FakeRestoreWorld()


@pytest.fixture
def keys(tmp_path: Path, world: FakeRestoreWorld) -> dict[str, Path]:
    """Each approver's private key as drctl reads it: a PEM file."""
    paths = {}
    for name, key in world.approver_keys.items():
        paths[name] = tmp_path / f"{name}.key"
        save_private_key(key, paths[name])
    return paths


@asynccontextmanager
async def worker(env: WorkflowEnvironment, world: FakeRestoreWorld, task_queue: str) -> AsyncIterator[None]:
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=list(WORKFLOWS),
        activities=world.activities(),
    ):
        yield


def address(env: WorkflowEnvironment) -> str:
    return env.client.service_client.config.target_host


async def drctl(env: WorkflowEnvironment, *args: str) -> Result:
    """``drctl restore ARGS`` against ``env``'s server, in a thread (the command runs its own event loop)."""
    argv = [*args, "--address", address(env)]
    return await asyncio.to_thread(CliRunner().invoke, restore_cmd.app, argv, env={"COLUMNS": "200"})


def drctl_offline(*args: str) -> Result:
    """``drctl restore ARGS`` pointed at a port nothing listens on."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return CliRunner().invoke(restore_cmd.app, list(args), env={"TEMPORAL_ADDRESS": f"127.0.0.1:{port}"})


def request(mode: str = MODE_PRODUCTION) -> RestoreInput:
    return RestoreInput(
        plan="local", tenant_id=TENANT, requested_by=REQUESTER, recovery_point_id=RECOVERY_POINT, mode=mode
    )


async def start(env: WorkflowEnvironment, world: FakeRestoreWorld, task_queue: str, mode: str = MODE_PRODUCTION) -> str:
    """A restore requested by REQUESTER, signed with her key as `drctl restore start --key` signs it."""
    handle = await start_restore(
        env.client,
        request(mode),
        task_queue=task_queue,
        workflow_id=f"restore-local-{TENANT}-{uuid.uuid4().hex[:8]}",
        key=world.key_of(REQUESTER),
        now=await env.get_current_time(),
    )
    return handle.id


async def until_awaiting(env: WorkflowEnvironment, workflow_id: str) -> restore_cmd.RestoreView:
    view = await asyncio.wait_for(watch_restore(env.client, workflow_id, lambda _: None, interval=0.05), 30)
    assert view.awaiting_approval, view
    return view


async def finish(env: WorkflowEnvironment, workflow_id: str, *, cancel: bool = False) -> RestoreResult | None:
    """Let the restore end before its worker goes (cancelled if asked): its cleanup must not outlive the test."""
    handle = env.client.get_workflow_handle(workflow_id, result_type=RestoreResult)
    if cancel:
        await handle.cancel()
    try:
        result: RestoreResult = await handle.result()
    except WorkflowFailureError:
        if cancel:
            return None
        raise
    return result


async def promoted(env: WorkflowEnvironment, world: FakeRestoreWorld, task_queue: str) -> str:
    """A production restore approved by two approvers (not the requester), run to its end."""
    wid = await start(env, world, task_queue)
    await until_awaiting(env, wid)
    now = await env.get_current_time()
    for name in ("bob", "carol"):
        await decide(env.client, wid, approver=name, key=world.approver_keys[name], now=now)
    result = await finish(env, wid)
    assert result is not None
    assert result.outcome == OUTCOME_PROMOTED
    return wid


def start_args(*extra: str) -> list[str]:
    return ["start", "--plan", "local", "--tenant", TENANT, "--mode", MODE_PRODUCTION, "--as", REQUESTER, *extra]


def local_production_args(plan: DrPlan, requester: str, *extra: str) -> list[str]:
    """A production request against the plan file plans/local.toml, for one of its tenants."""
    return [
        "start",
        "--plan",
        str(LOCAL),
        "--tenant",
        plan.tenants[0].id,
        "--recovery-point",
        RECOVERY_POINT,
        "--mode",
        MODE_PRODUCTION,
        "--as",
        requester,
        *extra,
    ]


# ---- no server needed ---------------------------------------------------------------------------


class TestStartRefusesBadRequests:
    def test_both_a_time_and_a_recovery_point_are_refused(self) -> None:
        """--at together with --recovery-point exits 2 naming both options, before contacting Temporal."""
        res = drctl_offline(*start_args("--at", "2026-11-28T09:00:00Z", "--recovery-point", RECOVERY_POINT))
        assert res.exit_code == 2
        assert "give exactly one of --at TIME or --recovery-point ID (both were given)" in res.output
        assert "cannot reach Temporal" not in res.output

    def test_neither_a_time_nor_a_recovery_point_is_refused(self) -> None:
        """A request naming no point to restore exits 2 naming both options."""
        res = drctl_offline(*start_args())
        assert res.exit_code == 2
        assert "(neither was given)" in res.output
        assert "cannot reach Temporal" not in res.output

    def test_a_malformed_time_is_refused(self) -> None:
        """An --at that is not ISO 8601 exits 2 naming --at and showing the expected form."""
        res = drctl_offline(*start_args("--at", "yesterday 9am"))
        assert res.exit_code == 2
        assert "--at 'yesterday 9am' is not an ISO 8601 time such as 2026-11-28T09:00:00Z" in res.output
        assert "cannot reach Temporal" not in res.output

    def test_an_unknown_mode_is_refused(self) -> None:
        """A mode other than sandbox or production exits 2 naming --mode and the choices."""
        res = drctl_offline("start", "--plan", "local", "--tenant", TENANT, "--at", "2026-11-28", "--mode", "live")
        assert res.exit_code == 2
        assert "--mode must be one of sandbox, production, not 'live'" in res.output
        assert "cannot reach Temporal" not in res.output

    def test_a_tenant_missing_from_the_plan_file_is_refused(self) -> None:
        """Given a plan file, a tenant it does not list exits 2 naming --tenant and the plan."""
        res = drctl_offline("start", "--plan", str(LOCAL), "--tenant", "nobody", "--at", "2026-11-28T09:00:00Z")
        assert res.exit_code == 2
        assert "--tenant 'nobody' is not a tenant of plan local" in res.output
        assert "cannot reach Temporal" not in res.output

    def test_production_without_a_key_is_refused(self) -> None:
        """A production request without --key exits 2 naming --key and how to make one, before contacting
        Temporal; the same request in sandbox mode needs no key."""
        res = drctl_offline(*start_args("--recovery-point", RECOVERY_POINT))
        sandbox = drctl_offline("start", "--plan", "local", "--tenant", TENANT, "--recovery-point", RECOVERY_POINT)
        assert res.exit_code == 2
        assert "--mode production needs --key: the request is signed with the requester's Ed25519" in res.output
        assert f"--as {REQUESTER} --key {REQUESTER}.key; `drctl keys generate {REQUESTER}` makes one" in res.output
        assert "cannot reach Temporal" not in res.output
        assert sandbox.exit_code == 1
        assert "cannot reach Temporal" in sandbox.output

    def test_a_key_not_the_requesters_is_refused(self, plan: DrPlan) -> None:
        """Given the plan file, signing as incident-commander with bob's key exits 2 naming both key ids."""
        res = drctl_offline(*local_production_args(plan, "incident-commander", "--key", str(DEMO_KEYS / "bob.key")))
        assert res.exit_code == 2
        bob = plan.approver("bob")
        requester = plan.requester("incident-commander")
        assert bob is not None
        assert requester is not None
        assert (
            f"--key is key {key_id_of(bob.public_key)}, not incident-commander's: plan local lists "
            f"{key_id_of(requester.public_key)} for incident-commander"
        ) in res.output
        assert "cannot reach Temporal" not in res.output

    def test_a_requester_the_plan_does_not_list_is_refused(self, plan: DrPlan) -> None:
        """Given the plan file, a name that is neither an approver nor a requester exits 2 listing who may."""
        res = drctl_offline(*local_production_args(plan, "dave", "--key", str(DEMO_KEYS / "bob.key")))
        assert res.exit_code == 2
        assert "--as dave: plan local lets only its [[approvers]] and [[requesters]] request restores" in res.output
        assert "(alice, bob, carol, incident-commander)" in res.output
        assert "cannot reach Temporal" not in res.output

    def test_the_requesters_own_key_goes_on_to_connect(self, plan: DrPlan) -> None:
        """incident-commander with the demo key the plan lists passes the local checks and then needs Temporal."""
        key = DEMO_KEYS / "incident-commander.key"
        res = drctl_offline(*local_production_args(plan, "incident-commander", "--key", str(key)))
        assert res.exit_code == 1
        assert "cannot reach Temporal" in res.output

    def test_a_valid_request_goes_on_to_connect(self) -> None:
        """A valid request passes the local checks, notes the UTC assumption, and then needs Temporal (exit 1)."""
        res = drctl_offline("start", "--plan", "local", "--tenant", TENANT, "--at", "2026-11-28T09:00:00")
        assert res.exit_code == 1
        assert "--at 2026-11-28T09:00:00 has no UTC offset: taken as UTC (2026-11-28T09:00:00Z)" in res.output
        assert "cannot reach Temporal" in res.output


class TestRequestHelpers:
    def test_a_time_without_offset_is_taken_as_utc_and_flagged(self) -> None:
        """A naive --at is read as UTC and reported as assumed; an offset is converted to UTC."""
        assert parse_point_in_time("2026-11-28T09:00:00") == ("2026-11-28T09:00:00Z", True)
        assert parse_point_in_time("2026-11-28T10:00:00+01:00") == ("2026-11-28T09:00:00Z", False)

    def test_a_time_in_the_future_is_refused(self) -> None:
        """An --at after now cannot have a recovery point and is refused naming the option."""
        with pytest.raises(ValueError, match=r"--at .* is in the future"):
            parse_point_in_time("2026-11-28T12:00:00Z", now=datetime(2026, 11, 28, 9, 0, tzinfo=UTC))

    def test_every_problem_is_reported_at_once(self) -> None:
        """An empty tenant, a bad mode and a bad approval timeout are all named in one refusal."""
        with pytest.raises(InvalidRequest) as err:
            build_request(
                plan="local",
                tenant_id=" ",
                at=None,
                recovery_point_id=RECOVERY_POINT,
                mode="prod",
                requested_by="rita",
                approval_timeout="3 days",
            )
        assert [p.split(" ")[0] for p in err.value.problems] == ["--tenant", "--mode", "--approval-timeout:"]

    def test_the_workflow_id_is_plan_tenant_and_utc_second(self) -> None:
        """The restore id is restore-{plan}-{tenant}-{yyyymmddThhmmss} in UTC, whatever the caller's zone."""
        moment = datetime.fromisoformat("2026-11-28T10:15:07+01:00")
        assert restore_id_for("local", TENANT, moment) == f"restore-local-{TENANT}-20261128T091507"

    def test_production_needs_enough_approvers_besides_the_requester(self, plan: DrPlan) -> None:
        """A production restore nobody could approve (too few approvers other than the requester) is refused."""
        tenant = plan.tenants[0].id
        inp = RestoreInput(plan.name, tenant, requested_by="alice", at="2026-11-28T09:00:00Z", mode=MODE_PRODUCTION)
        assert plan_problems(plan, inp) == []
        strict = dataclasses.replace(plan, approvals_required=3)
        (problem,) = plan_problems(strict, inp)
        assert "needs 3 approval(s)" in problem
        assert "lists 2 (bob, carol)" in problem

    def test_an_encrypted_key_needs_its_passphrase(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """An encrypted key without --passphrase-env is refused naming the option; with it, it loads."""
        path = tmp_path / "bob.key"
        save_private_key(generate_private_key(), path, passphrase=b"s3cret")
        with pytest.raises(ValueError, match="--passphrase-env VAR"):
            load_signing_key(path, None)
        monkeypatch.setenv("BOB_PASS", "s3cret")
        assert load_signing_key(path, "BOB_PASS") is not None


# ---- against TenantRestoreWorkflow ----------------------------------------------------------------


class TestStartAndStatus:
    async def test_start_wait_stops_when_approval_is_awaited(
        self, time_env: WorkflowEnvironment, world: FakeRestoreWorld, task_queue: str, keys: dict[str, Path]
    ) -> None:
        """`start --key --wait` signs the request, starts the restore under its business id and stops once it
        awaits approval, naming the approvers who may decide and the requester as verified."""
        async with worker(time_env, world, task_queue):
            res = await drctl(
                time_env,
                *start_args(
                    "--recovery-point",
                    RECOVERY_POINT,
                    "--key",
                    str(keys[REQUESTER]),
                    "--wait",
                    "--task-queue",
                    task_queue,
                ),
            )
            events = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
            wid = events[0]["workflow_id"]
            await finish(time_env, wid, cancel=True)
        assert res.exit_code == 0, res.output
        assert wid.startswith(f"restore-local-{TENANT}-")
        assert events[0]["url"].endswith(wid)
        outcome = events[-1]
        assert outcome["event"] == "outcome"
        assert outcome["status"]["phase"] == AWAITING_APPROVAL
        assert outcome["request"]["requested_by"] == REQUESTER
        assert outcome["request"]["request_signature"]["workflow_id"] == wid
        assert outcome["status"]["requester_key_id"] == key_id_of(world.approver_keys[REQUESTER])
        assert set(outcome["status"]["approvers"]) == {"alice", "bob", "carol"}

    async def test_status_shows_the_verification_and_every_package(
        self, time_env: WorkflowEnvironment, world: FakeRestoreWorld, task_queue: str
    ) -> None:
        """While awaiting approval, status shows the verification digest, each package verified and its
        records validated against the manifest, and what approvers must run."""
        async with worker(time_env, world, task_queue):
            wid = await start(time_env, world, task_queue)
            expected = (await until_awaiting(time_env, wid)).status
            as_json = await drctl(time_env, "status", wid, "--json")
            human = await drctl(time_env, "status", wid)
            await finish(time_env, wid, cancel=True)
        assert expected is not None
        assert expected.verification_digest
        assert as_json.exit_code == 0, as_json.output
        shown = json.loads(as_json.stdout)
        assert shown["status"]["verification_digest"] == expected.verification_digest
        assert shown["status"]["verification_ok"] is True
        assert [(p["name"], p["verified"]) for p in shown["status"]["packages"]] == [
            (p.name, True) for p in world.catalog[RECOVERY_POINT].packages
        ]
        assert [(v["actual_records"], v["foreign"]) for v in shown["status"]["validation"]["packages"]] == [(20, 0)] * 3
        assert human.exit_code == 0, human.output
        assert expected.verification_digest in human.output
        assert RECOVERY_POINT in human.output
        assert human.output.count("✓ verified") == 3
        assert "20 of 20" in human.output
        assert "0 of 2 required" in human.output
        assert "awaiting 2 more approval(s)" in human.output
        assert "from: bob, carol (alice requested it and cannot decide)" in human.output
        assert f"{REQUESTER} (signature verified, key {key_id_of(world.approver_keys[REQUESTER])})" in human.output
        assert f"drctl restore approve {wid} --as NAME --key NAME.key" in human.output

    async def test_status_of_a_closed_restore_shows_its_outcome(
        self, time_env: WorkflowEnvironment, world: FakeRestoreWorld, task_queue: str
    ) -> None:
        """A finished sandbox restore's status reports its result and the step table."""
        async with worker(time_env, world, task_queue):
            wid = await start(time_env, world, task_queue, mode=MODE_SANDBOX)
            await finish(time_env, wid)
            view = await restore_view(time_env.client, wid)
            res = await drctl(time_env, "status", wid)
        assert view.closed
        assert view.result is not None
        assert view.result.outcome == OUTCOME_SANDBOX
        assert res.exit_code == 0, res.output
        assert "outcome: sandbox-validated" in res.output
        assert "Remove the quarantine" in res.output

    async def test_an_unsigned_production_request_is_not_started(
        self, time_env: WorkflowEnvironment, task_queue: str
    ) -> None:
        """start_restore refuses a production request without the requester's key, and nothing is started."""
        wid = f"restore-local-{TENANT}-{uuid.uuid4().hex[:8]}"
        with pytest.raises(RestoreCommandError, match=f"must be signed by its requester {REQUESTER}"):
            await start_restore(time_env.client, request(), task_queue=task_queue, workflow_id=wid)
        with pytest.raises(RestoreCommandError, match=f"no workflow with id {wid}"):
            await restore_view(time_env.client, wid)

    async def test_status_of_an_unknown_id_says_so(self, time_env: WorkflowEnvironment) -> None:
        """An id no workflow has exits 1 with a hint to list restores."""
        res = await drctl(time_env, "status", "restore-local-nobody-20260101T000000")
        assert res.exit_code == 1
        assert "no workflow with id restore-local-nobody-20260101T000000" in res.output
        assert "drctl restore list" in res.output


class TestDecisions:
    async def test_two_approvers_promote(
        self, time_env: WorkflowEnvironment, world: FakeRestoreWorld, task_queue: str, keys: dict[str, Path]
    ) -> None:
        """Approvals by two approvers other than the requester, each signed with their key file, promote the
        restore and replace the tenant's live data."""
        async with worker(time_env, world, task_queue):
            wid = await start(time_env, world, task_queue)
            await until_awaiting(time_env, wid)
            first = await drctl(time_env, "approve", wid, "--as", "bob", "--key", str(keys["bob"]))
            second = await drctl(time_env, "approve", wid, "--as", "carol", "--key", str(keys["carol"]))
            result = await finish(time_env, wid)
        assert first.exit_code == 0, first.output
        assert "approval by bob recorded (1 of 2)" in first.output
        assert second.exit_code == 0, second.output
        assert "approval by carol recorded (2 of 2)" in second.output
        assert result is not None
        assert result.outcome == OUTCOME_PROMOTED
        assert result.approvals == ("bob", "carol")
        assert world.live == world.restore_data

    async def test_the_requester_is_refused_with_the_validators_message(
        self, time_env: WorkflowEnvironment, world: FakeRestoreWorld, task_queue: str, keys: dict[str, Path]
    ) -> None:
        """The requester's own approval is refused by the workflow's validator; drctl prints its message and
        exits non-zero, and nothing is recorded."""
        async with worker(time_env, world, task_queue):
            wid = await start(time_env, world, task_queue)
            await until_awaiting(time_env, wid)
            res = await drctl(time_env, "approve", wid, "--as", REQUESTER, "--key", str(keys[REQUESTER]))
            after = await restore_view(time_env.client, wid)
            await finish(time_env, wid, cancel=True)
        assert res.exit_code == 1
        assert f"approve refused: {REQUESTER} requested this restore and cannot decide on it" in res.output
        assert after.status is not None
        assert after.status.approvals == ()

    async def test_a_key_not_the_approvers_is_refused(
        self, time_env: WorkflowEnvironment, world: FakeRestoreWorld, task_queue: str, keys: dict[str, Path]
    ) -> None:
        """An approval signed with someone else's key fails the validator's signature check."""
        async with worker(time_env, world, task_queue):
            wid = await start(time_env, world, task_queue)
            await until_awaiting(time_env, wid)
            res = await drctl(time_env, "approve", wid, "--as", "bob", "--key", str(keys["carol"]))
            await finish(time_env, wid, cancel=True)
        assert res.exit_code == 1
        assert "approve refused: the approval by bob was signed with key" in res.output

    async def test_reject_ends_the_restore_rejected(
        self, time_env: WorkflowEnvironment, world: FakeRestoreWorld, task_queue: str, keys: dict[str, Path]
    ) -> None:
        """A signed rejection with a reason ends the restore rejected, promoting nothing."""
        before = dict(world.live)
        async with worker(time_env, world, task_queue):
            wid = await start(time_env, world, task_queue)
            await until_awaiting(time_env, wid)
            res = await drctl(
                time_env, "reject", wid, "--as", "bob", "--key", str(keys["bob"]), "--reason", "wrong recovery point"
            )
            result = await finish(time_env, wid)
        assert res.exit_code == 0, res.output
        assert "rejected by bob" in res.output
        assert result is not None
        assert result.outcome == OUTCOME_REJECTED
        assert world.of("backups.promote") == []
        assert world.live == before

    async def test_a_decision_before_approval_is_awaited_is_refused_locally(
        self, time_env: WorkflowEnvironment, world: FakeRestoreWorld, task_queue: str, keys: dict[str, Path]
    ) -> None:
        """While the restore still validates, approve refuses (exit 1) naming the phase, and sends nothing."""
        world.hold_validation = asyncio.Event()
        async with worker(time_env, world, task_queue):
            wid = await start(time_env, world, task_queue)
            await asyncio.wait_for(
                watch_restore(
                    time_env.client,
                    wid,
                    lambda _: None,
                    until=lambda v: v.status is not None and v.status.phase == "validate",
                    interval=0.05,
                ),
                30,
            )
            res = await drctl(time_env, "approve", wid, "--as", "bob", "--key", str(keys["bob"]))
            world.hold_validation.set()
            await until_awaiting(time_env, wid)
            await finish(time_env, wid, cancel=True)
        assert res.exit_code == 1
        assert f"{wid} is not awaiting approval (phase validate)" in res.output
        history = await time_env.client.get_workflow_handle(wid).fetch_history()
        assert not any(e.HasField("workflow_execution_update_accepted_event_attributes") for e in history.events)

    async def test_a_decision_on_a_finished_restore_is_refused_locally(
        self, time_env: WorkflowEnvironment, world: FakeRestoreWorld, task_queue: str
    ) -> None:
        """A restore that no longer awaits approval is refused before anything is signed or sent."""
        async with worker(time_env, world, task_queue):
            wid = await start(time_env, world, task_queue, mode=MODE_SANDBOX)
            await finish(time_env, wid)
            with pytest.raises(RestoreCommandError, match="is no longer running \\(Completed\\)"):
                await decide(time_env.client, wid, approver="bob", key=world.approver_keys["bob"], decision=REJECT)


class TestUndo:
    async def test_undo_gives_the_tenant_its_replaced_data_back(
        self, time_env: WorkflowEnvironment, world: FakeRestoreWorld, task_queue: str
    ) -> None:
        """`undo --wait` on a promoted restore runs UndoPromotionWorkflow as undo-<id> for its plan and tenant:
        the live data is what it was before the promotion and the projections use the shared database again."""
        before = dict(world.live)
        async with worker(time_env, world, task_queue):
            wid = await promoted(time_env, world, task_queue)
            assert world.live != before
            assert world.projection_database != "projections"
            res = await drctl(time_env, "undo", wid, "--wait", "--task-queue", task_queue)
        assert res.exit_code == 0, res.output
        assert f"workflow: undo-{wid}" in res.output
        assert "has its data back: 3 segment(s) restored" in res.output
        assert "its projections are served from projections again" in res.output
        assert world.of("backups.undo_promotion") == [
            UndoPromotionInput("local", TENANT, wid, previous_database="projections", database_swapped=True)
        ]
        assert world.live == before
        assert world.projection_database == "projections"

    async def test_undo_of_the_later_of_two_promotions_points_the_tenant_at_the_earlier_restores_database(
        self, time_env: WorkflowEnvironment, world: FakeRestoreWorld, task_queue: str
    ) -> None:
        """After two promotions, `undo` of the later one passes the database its promotion replaced: the
        tenant's projections go back to the earlier restore's database, and the output says which."""
        async with worker(time_env, world, task_queue):
            await promoted(time_env, world, task_queue)
            earlier = world.projection_database
            second = await promoted(time_env, world, task_queue)
            res = await drctl(time_env, "undo", second, "--wait", "--task-queue", task_queue)
        assert earlier != "projections"
        assert res.exit_code == 0, res.output
        assert f"the tenant's projections go back to {earlier}, the database the promotion replaced" in res.output
        assert f"its projections are served from {earlier} again" in res.output
        assert world.projection_database == earlier
        (inp,) = world.of("backups.undo_promotion")
        assert (inp.restore_id, inp.previous_database) == (second, earlier)

    async def test_undo_of_a_restore_promoted_by_an_older_version_falls_back_to_the_shared_database(
        self, time_env: WorkflowEnvironment, world: FakeRestoreWorld, task_queue: str
    ) -> None:
        """A promoted restore whose result has no replaced database (an older version wrote it) is undone to
        the plan's shared database, and both the start and the outcome say the undo fell back."""
        wid = f"restore-local-{TENANT}-{uuid.uuid4().hex[:8]}"
        before = dict(world.live)
        world.replaced[wid] = before
        world.live = dict(world.restore_data)
        world.projection_database = restored_database_name("projections", TENANT, wid)
        legacy_queue = f"{task_queue}-older"
        async with (
            worker(time_env, world, task_queue),
            Worker(time_env.client, task_queue=legacy_queue, workflows=[PromotedByAnOlderVersion]),
        ):
            await time_env.client.execute_workflow(
                PromotedByAnOlderVersion.run, request(), id=wid, task_queue=legacy_queue
            )
            res = await drctl(time_env, "undo", wid, "--wait", "--task-queue", task_queue)
        assert res.exit_code == 0, res.output
        assert f"restore {wid} did not record which database its promotion replaced" in res.output
        assert "its projections are served from the plan's shared database projections" in res.output
        assert world.of("backups.undo_promotion") == [
            UndoPromotionInput("local", TENANT, wid, previous_database=None, database_swapped=True)
        ]
        assert world.projection_database == "projections"
        assert world.live == before

    async def test_undo_of_a_restore_that_failed_after_its_swap_points_back_at_the_replaced_database(
        self, time_env: WorkflowEnvironment, world: FakeRestoreWorld, task_queue: str
    ) -> None:
        """A later restore that swapped the tenant's database and then failed promoting its segments has no
        result: undo reads the replaced database from its failure and points the tenant back at it."""
        async with worker(time_env, world, task_queue):
            await promoted(time_env, world, task_queue)
            earlier = world.projection_database
            wid = await start(time_env, world, task_queue)
            await until_awaiting(time_env, wid)
            world.fail_promote = True
            now = await time_env.get_current_time()
            for name in ("bob", "carol"):
                await decide(time_env.client, wid, approver=name, key=world.approver_keys[name], now=now)
            with pytest.raises(WorkflowFailureError):
                await finish(time_env, wid)
            assert world.projection_database != earlier
            view = await restore_view(time_env.client, wid)
            res = await drctl(time_env, "undo", wid, "--wait", "--task-queue", task_queue)
        assert (view.result, view.replaced_database) == (None, earlier)
        assert res.exit_code == 0, res.output
        assert world.projection_database == earlier

    async def test_undo_of_a_restore_that_was_not_promoted_is_refused(
        self, time_env: WorkflowEnvironment, world: FakeRestoreWorld, task_queue: str
    ) -> None:
        """A sandbox restore never replaced live data: undo refuses, saying so, and starts nothing."""
        async with worker(time_env, world, task_queue):
            wid = await start(time_env, world, task_queue, mode=MODE_SANDBOX)
            await finish(time_env, wid)
            res = await drctl(time_env, "undo", wid, "--task-queue", task_queue)
        assert res.exit_code == 1
        assert f"restore {wid} was not promoted (outcome sandbox-validated)" in res.output
        assert world.of("backups.undo_promotion") == []


class TestList:
    async def test_list_finds_the_run_by_plan_and_tenant(
        self, dev_env: WorkflowEnvironment, world: FakeRestoreWorld, task_queue: str
    ) -> None:
        """A finished restore is listed under its plan and tenant with its phase, and left out by --open."""
        async with worker(dev_env, world, task_queue):
            wid = await start(dev_env, world, task_queue, mode=MODE_SANDBOX)
            await finish(dev_env, wid)
        rows: list[restore_cmd.RestoreListing] = []
        for _ in range(100):  # visibility is eventually consistent
            rows = [
                r for r in await list_restores(dev_env.client, plan="local", tenant_id=TENANT) if r.workflow_id == wid
            ]
            if rows and rows[0].phase == "completed":
                break
            await asyncio.sleep(0.1)
        res = await drctl(dev_env, "list", "--plan", "local", "--tenant", TENANT, "--json")
        running = await drctl(dev_env, "list", "--tenant", TENANT, "--open", "--json")
        assert [(r.plan, r.tenant_id, r.phase, r.status) for r in rows] == [("local", TENANT, "completed", "Completed")]
        assert res.exit_code == 0, res.output
        assert wid in [r["workflow_id"] for r in json.loads(res.stdout)]
        assert running.exit_code == 0, running.output
        assert wid not in [r["workflow_id"] for r in json.loads(running.stdout)]
