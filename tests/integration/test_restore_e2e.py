"""Tenant restores end to end: a real dr-worker process on a Temporal dev server, Blob Storage in
Azurite, the SQL and Cosmos restores through the SDKs against the emulator, production requests
signed with the demo requester's key and approvals with the demo approvers' keys."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.storage.blob.aio import BlobServiceClient, ContainerClient
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError

from activities.azure import Estates
from activities.evidence import verify_pack
from activities.integrity import (
    INTEGRITY_ERROR_TYPE,
    generate_private_key,
    key_id_of,
    load_private_key,
    public_key_b64,
    save_private_key,
    sign_approval,
    sign_restore_request,
    trusted_keys,
)
from activities.platform import PlatformActivities
from activities.sql import SqlActivities
from domain.messages.backups import SEGMENTS_PREFIX, package_blob
from domain.messages.integrity import APPROVE
from domain.messages.platform import SetTenantDatabaseInput
from domain.messages.restore import (
    MODE_PRODUCTION,
    MODE_SANDBOX,
    OUTCOME_PROMOTED,
    OUTCOME_SANDBOX,
    BackupInput,
    BackupResult,
    RestoreInput,
    RestoreResult,
    RestoreStatus,
)
from domain.messages.sql import RestoreDatabasePitrInput
from domain.plan import DrPlan
from emulator.providers.platform import SET_PROJECTION_DATABASE
from starters.restore_cmd import start_undo
from starters.seed_data import build_tenant, upload_segments
from tests.conftest import EmulatorHandle
from tests.integration.azurite import AzuriteHandle
from tests.integration.processes import DevServer, WorkerProcess
from workflows.restore import AWAITING_APPROVAL, PROOF_FAILURES, REQUEST_NOT_AUTHENTICATED

DEMO_KEYS = Path(__file__).resolve().parents[2] / "plans" / "demo-keys"
REQUESTER = "incident-commander"  # the local plan's [[requesters]]
START = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=6)

Handle = WorkflowHandle[Any, RestoreResult]


@pytest.fixture
def signing_key_file(tmp_path: Path) -> Path:
    path = tmp_path / "orchestrator.key"
    save_private_key(generate_private_key(), path)
    return path


@pytest.fixture
def recovery_worker(
    tmp_path: Path,
    dev_server: DevServer,
    emulator: EmulatorHandle,
    azurite: AzuriteHandle,
    signing_key_file: Path,
) -> Iterator[WorkerProcess]:
    """A dr-worker with Blob Storage (Azurite), a catalog of its own and a signing key: it backs up and restores."""
    proc = WorkerProcess(
        tmp_path,
        dev_server,
        emulator,
        extra_env={
            "DR_BLOB_ENDPOINT": azurite.account_url,
            "DR_CATALOG_URL": f"sqlite:///{tmp_path / 'catalog.db'}",
            "DR_SIGNING_KEY": str(signing_key_file),
        },
        # Two activity slots: quarantine copies go one or two at a time, so a kill lands mid-copy.
        extra_args=("--max-concurrent-activities", "2"),
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
async def blob_estates(plan: DrPlan, azurite: AzuriteHandle) -> AsyncIterator[Estates]:
    found = Estates([plan], azurite.connection())
    try:
        yield found
    finally:
        await found.close()


@dataclass
class Rig:
    """What every test here drives: the plan, the emulator, Azurite, a recovery worker and a client."""

    plan: DrPlan
    emulator: EmulatorHandle
    worker: WorkerProcess
    client: Client
    estates: Estates

    @property
    def service(self) -> BlobServiceClient:
        return self.estates[self.plan.name].blob

    def container(self, name: str) -> ContainerClient:
        return self.service.get_container_client(name)


@pytest.fixture
def rig(
    plan: DrPlan, emulator: EmulatorHandle, recovery_worker: WorkerProcess, client: Client, blob_estates: Estates
) -> Rig:
    return Rig(plan, emulator, recovery_worker, client, blob_estates)


def a_tenant(plan: DrPlan) -> str:
    """A tenant of the local plan no other test in this session touches (tenants share one Azurite)."""
    taken = a_tenant.__dict__.setdefault("taken", set())
    tenant = next(t.id for t in plan.tenants[200:] if t.id not in taken)
    taken.add(tenant)
    return tenant


async def seed_and_back_up(rig: Rig, tenant: str, segments: int = 3) -> str:
    """Seed the tenant's live data, back it up through BackupWorkflow, and return the recovery point id."""
    built = build_tenant(tenant, segments=segments, start=START, instances=3)
    await upload_segments(rig.service, rig.plan.backup, built)
    result: BackupResult = await rig.client.execute_workflow(
        "BackupWorkflow",
        BackupInput(plan=rig.plan.name, tenant_ids=(tenant,)),
        id=f"backup-{tenant}-{uuid.uuid4().hex[:6]}",
        task_queue=rig.worker.task_queue,
        result_type=BackupResult,
        execution_timeout=dt.timedelta(minutes=3),
    )
    assert result.failed == (), result.failed
    (point,) = result.recovery_points
    return point


async def start_restore(rig: Rig, tenant: str, **fields: Any) -> Handle:
    """Start a restore requested by the incident commander, production requests signed with their demo key."""
    inp = RestoreInput(plan=rig.plan.name, tenant_id=tenant, requested_by=REQUESTER, **fields)
    workflow_id = f"restore-{rig.plan.name}-{tenant}-{uuid.uuid4().hex[:8]}"
    if inp.mode == MODE_PRODUCTION:
        now = dt.datetime.now(dt.UTC)
        inp = sign_restore_request(
            load_private_key(DEMO_KEYS / f"{REQUESTER}.key"),
            inp,
            workflow_id=workflow_id,
            issued_at=now,
            expires_at=now + dt.timedelta(minutes=10),
        )
    return await rig.client.start_workflow(
        "TenantRestoreWorkflow",
        inp,
        id=workflow_id,
        task_queue=rig.worker.task_queue,
        result_type=RestoreResult,
        execution_timeout=dt.timedelta(minutes=5),
    )


async def status(handle: Handle) -> RestoreStatus:
    current: RestoreStatus = await handle.query("status", result_type=RestoreStatus)
    return current


async def wait_phase(handle: Handle, phase: str, seconds: float = 90) -> RestoreStatus:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        current = await status(handle)
        if current.phase == phase:
            return current
        assert current.phase not in {"failed", "completed"}, f"restore ended in {current.phase}: {current.error}"
        assert asyncio.get_running_loop().time() < deadline, f"still {current.phase} after {seconds} s"
        await asyncio.sleep(0.05)


async def approve(handle: Handle, name: str) -> None:
    current = await status(handle)
    assert current.recovery_point is not None
    assert current.verification_digest is not None
    approval = sign_approval(
        load_private_key(DEMO_KEYS / f"{name}.key"),
        workflow_id=handle.id,
        recovery_point_id=current.recovery_point.recovery_point_id,
        verification_digest=current.verification_digest,
        decision=APPROVE,
        approver=name,
        expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
    )
    await handle.execute_update("approve", approval)


async def blobs(container: ContainerClient) -> dict[str, str]:
    """Every blob of a container with its SHA-256, read from its bytes (empty if the container is gone)."""
    found: dict[str, str] = {}
    if not await container.exists():
        return found
    async for item in container.list_blobs():
        data = await (await container.get_blob_client(item.name).download_blob()).readall()
        found[item.name] = hashlib.sha256(data).hexdigest()
    return found


def restore_requests(emulator: EmulatorHandle, since: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The SQL database and Cosmos account create requests the restore sent, with their bodies."""
    return (
        emulator.mutations(since, "Databases_CreateOrUpdate"),
        emulator.mutations(since, "DatabaseAccounts_CreateOrUpdate"),
    )


def projection_database(emulator: EmulatorHandle, tenant: str) -> str:
    """The database the tenant registry serves ``tenant``'s projections from now."""
    return str(emulator.state()["platform"]["tenants"][tenant]["projectionDatabase"])


async def on_an_earlier_restores_database(estates: Estates, plan: DrPlan, tenant: str) -> str:
    """Point ``tenant``'s projections at a point-in-time copy of the shared database, as an earlier
    restore's promotion leaves them; returns the copy."""
    copy = await SqlActivities(estates).restore_database_pitr(
        RestoreDatabasePitrInput(
            plan.name,
            "fog-tenants",
            "projections",
            f"projections-{tenant}-earlier",
            (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat(),
        )
    )
    await PlatformActivities(estates).set_tenant_database(
        SetTenantDatabaseInput(plan.name, tenant, copy.database, "an earlier restore promoted", "projections")
    )
    return copy.database


def projection_switches(emulator: EmulatorHandle, since: int, tenant: str) -> list[str]:
    """The databases the tenant registry was told to serve ``tenant``'s projections from, in order."""
    return [
        e["body"]["projectionDatabase"]
        for e in emulator.mutations(since, SET_PROJECTION_DATABASE)
        if e["status"] < 300 and e["body"]["tenantId"] == tenant
    ]


def metric_total(text: str, name: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#") and "_created" not in line.split("{")[0]
    )


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def same_instant(wire: str, recorded: str) -> bool:
    """``wire`` (as the SDK sent it, to the millisecond) is the time ``recorded`` (to the microsecond)."""
    return abs(parse_time(wire) - parse_time(recorded)) < dt.timedelta(milliseconds=1)


class TestProductionRestore:
    async def test_two_approvals_promote_and_the_promotion_can_be_undone(
        self, rig: Rig, estates: Estates, signing_key_file: Path
    ) -> None:
        """Backup, then a production restore approved by bob and carol replaces the live data (kept for undo),
        restores the projection database and Cosmos account as of the recovery point, leaves a verifiable
        evidence pack; undo (as `drctl restore undo` starts it) gives the tenant its data back and points its
        projections back at the database they used before the promotion: here an earlier restore's."""
        plan = rig.plan
        tenant = a_tenant(plan)
        point = await seed_and_back_up(rig, tenant)
        earlier = await on_an_earlier_restores_database(estates, plan, tenant)
        mapped_before = projection_database(rig.emulator, tenant)
        live = rig.container(plan.backup.live_container(tenant))
        restored_content = await blobs(live)
        # After the backup the tenant's data is damaged: one segment rewritten, one added.
        names = sorted(restored_content)
        await live.get_blob_client(names[0]).upload_blob(b"corrupted", overwrite=True)
        await live.get_blob_client(f"{SEGMENTS_PREFIX}zz-late.jsonl.gz").upload_blob(b"late", overwrite=True)
        damaged = await blobs(live)
        since = rig.emulator.last_seq()

        handle = await start_restore(rig, tenant, recovery_point_id=point, mode=MODE_PRODUCTION)
        waiting = await wait_phase(handle, AWAITING_APPROVAL)
        quarantine = rig.container(plan.backup.quarantine_container(handle.id))
        assert set(await blobs(quarantine)) == set(names)
        assert waiting.verification_ok is True
        assert waiting.validation is not None
        assert waiting.validation.ok
        assert waiting.requester_key_id == key_id_of(load_private_key(DEMO_KEYS / f"{REQUESTER}.key"))
        await approve(handle, "bob")
        await approve(handle, "carol")
        result = await handle.result()

        assert result.outcome == OUTCOME_PROMOTED
        assert result.approvals == ("bob", "carol")
        assert result.replaced_database == mapped_before == earlier
        assert projection_database(rig.emulator, tenant) == result.restored_database
        now_live = await blobs(live)
        assert {n: now_live[n] for n in names} == restored_content
        assert f"{SEGMENTS_PREFIX}zz-late.jsonl.gz" not in now_live
        assert not await quarantine.exists()

        (sql_create,), (cosmos_create,) = restore_requests(rig.emulator, since)
        props = sql_create["body"]["properties"]
        assert props["createMode"] == "PointInTimeRestore"
        assert props["sourceDatabaseId"].endswith("/databases/projections")
        assert waiting.recovery_point is not None
        assert same_instant(props["restorePointInTime"], waiting.recovery_point.created_at)
        assert sql_create["path"].endswith(f"/databases/{result.restored_database}")
        restore = cosmos_create["body"]["properties"]
        assert restore["createMode"] == "Restore"
        assert "/restorableDatabaseAccounts/" in restore["restoreParameters"]["restoreSource"]
        assert same_instant(restore["restoreParameters"]["restoreTimestampInUtc"], waiting.recovery_point.created_at)

        assert result.evidence_blob is not None
        evidence = rig.container(plan.backup.backup_container).get_blob_client(result.evidence_blob)
        pack = await (await evidence.download_blob()).readall()
        orchestrator = public_key_b64(load_private_key(signing_key_file))
        checked = verify_pack(pack, trusted_keys([orchestrator]))
        assert checked.ok, checked.problems
        assert checked.key_id == key_id_of(orchestrator)
        compact = pack.replace(b" ", b"")
        assert b'"approver":"bob"' in compact
        assert b'"approver":"carol"' in compact

        undo, _ = await start_undo(rig.client, handle.id, task_queue=rig.worker.task_queue)
        undone = await asyncio.wait_for(undo.result(), 120)
        assert undone.changed
        back = await blobs(live)
        assert {n: back[n] for n in damaged} == damaged
        assert projection_database(rig.emulator, tenant) == mapped_before
        assert (undone.projection_database, undone.fell_back_to_shared) == (mapped_before, False)
        assert projection_switches(rig.emulator, since, tenant) == [result.restored_database, mapped_before]
        assert rig.emulator.mutations(since, "Databases_Delete") == [], "the promoted database is kept"


class TestRequester:
    async def test_an_altered_request_is_refused_and_the_worker_stays_up(self, rig: Rig) -> None:
        """A production request whose tenant was changed after the incident commander signed it fails its
        signature check in the real worker: refused before a recovery point is chosen, with nothing
        quarantined, and the worker process keeps running."""
        signed_for, other = a_tenant(rig.plan), a_tenant(rig.plan)
        workflow_id = f"restore-{rig.plan.name}-{other}-{uuid.uuid4().hex[:8]}"
        now = dt.datetime.now(dt.UTC)
        request = sign_restore_request(
            load_private_key(DEMO_KEYS / f"{REQUESTER}.key"),
            RestoreInput(rig.plan.name, signed_for, REQUESTER, recovery_point_id="RP-none", mode=MODE_PRODUCTION),
            workflow_id=workflow_id,
            issued_at=now,
            expires_at=now + dt.timedelta(minutes=10),
        )
        handle: Handle = await rig.client.start_workflow(
            "TenantRestoreWorkflow",
            dataclasses.replace(request, tenant_id=other),
            id=workflow_id,
            task_queue=rig.worker.task_queue,
            result_type=RestoreResult,
            execution_timeout=dt.timedelta(minutes=2),
        )
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()
        cause = err.value.cause
        assert isinstance(cause, ApplicationError)
        assert cause.type == REQUEST_NOT_AUTHENTICATED
        assert f"bad signature: the restore request by {REQUESTER} was not signed by {REQUESTER}'s key" in cause.message
        assert not await rig.container(rig.plan.backup.quarantine_container(workflow_id)).exists()
        assert rig.worker.proc is not None
        assert rig.worker.proc.poll() is None, "the worker survived the failed verification"


class TestIntegrityFailure:
    async def test_a_flipped_byte_stops_the_restore_before_quarantine(self, rig: Rig) -> None:
        """One flipped byte in one backed-up package: verification fails naming it, nothing is quarantined,
        restored or promoted, and backup_proof_failures_total goes up on the worker's metrics endpoint."""
        plan = rig.plan
        tenant = a_tenant(plan)
        point = await seed_and_back_up(rig, tenant)
        backups = rig.container(plan.backup.backup_container)
        packages = [b.name async for b in backups.list_blobs(name_starts_with=package_blob(point, SEGMENTS_PREFIX))]
        victim = sorted(packages)[1]
        blob = backups.get_blob_client(victim)
        props = await blob.get_blob_properties()
        data = bytearray(await (await blob.download_blob()).readall())
        data[len(data) // 2] ^= 0x01
        await blob.upload_blob(bytes(data), overwrite=True, metadata=props.metadata)
        live = rig.container(plan.backup.live_container(tenant))
        live_before = await blobs(live)
        since = rig.emulator.last_seq()

        handle = await start_restore(rig, tenant, recovery_point_id=point, mode=MODE_PRODUCTION)
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()
        cause = err.value.cause
        assert isinstance(cause, ApplicationError)
        assert cause.type == INTEGRITY_ERROR_TYPE
        assert victim.rsplit("/", 1)[-1] in cause.message
        assert not await rig.container(plan.backup.quarantine_container(handle.id)).exists()
        assert await blobs(live) == live_before
        assert restore_requests(rig.emulator, since) == ([], [])
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://127.0.0.1:{rig.worker.metrics_port}/metrics")).text
        assert metric_total(text, PROOF_FAILURES) >= 1, f"{PROOF_FAILURES} not on /metrics"


class TestCrashSafety:
    async def test_worker_killed_during_quarantine_copy_leaves_each_package_once(self, rig: Rig) -> None:
        """SIGKILL of the worker while packages are copied into quarantine: after a restart the quarantine holds
        exactly the recovery point's packages, none missing, none doubled, each with the backed-up bytes."""
        plan = rig.plan
        tenant = a_tenant(plan)
        point = await seed_and_back_up(rig, tenant, segments=24)
        handle = await start_restore(rig, tenant, recovery_point_id=point, mode=MODE_PRODUCTION)
        await wait_phase(handle, "quarantine")
        quarantine = rig.container(plan.backup.quarantine_container(handle.id))
        copied_at_kill = 0
        for _ in range(2000):
            if await quarantine.exists():
                copied_at_kill = len([b async for b in quarantine.list_blobs()])
                if copied_at_kill >= 2:
                    break
            await asyncio.sleep(0.01)
        rig.worker.kill()
        await asyncio.sleep(1)
        rig.worker.start()
        waiting = await wait_phase(handle, AWAITING_APPROVAL, seconds=120)
        assert 0 < copied_at_kill < 24, "the kill did not land during the copy"
        assert waiting.recovery_point is not None
        expected = {p.name: p.sha256 for p in waiting.recovery_point.packages}
        assert await blobs(quarantine) == expected
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        assert not await quarantine.exists()


class TestSandbox:
    async def test_a_sandbox_restore_validates_and_never_promotes(self, rig: Rig) -> None:
        """A sandbox restore by point in time validates, then cleans up with the live data untouched."""
        tenant = a_tenant(rig.plan)
        await seed_and_back_up(rig, tenant)
        live = rig.container(rig.plan.backup.live_container(tenant))
        before = await blobs(live)
        at = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
        await asyncio.sleep(1.5)
        since = rig.emulator.last_seq()
        handle = await start_restore(rig, tenant, at=at, mode=MODE_SANDBOX)
        result = await handle.result()
        assert result.outcome == OUTCOME_SANDBOX
        assert result.promoted == ()
        assert await blobs(live) == before
        assert projection_switches(rig.emulator, since, tenant) == []
        (dropped,) = rig.emulator.mutations(since, "Databases_Delete")
        assert dropped["path"].endswith(f"/databases/{result.restored_database}")
        (account,) = rig.emulator.mutations(since, "DatabaseAccounts_Delete")
        assert account["path"].endswith(f"/databaseAccounts/{result.restored_cosmos_account}")
