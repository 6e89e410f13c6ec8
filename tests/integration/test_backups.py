"""Backups and tenant-scoped restores against a real Azurite: seeded tenant data, packages and signed
manifests, the catalog's choice of recovery point, and the quarantine → promote → undo path."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import gzip
import hashlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from azure.storage.blob.aio import BlobServiceClient, ContainerClient
from temporalio.exceptions import ApplicationError

from activities.azure import BLOB_CHUNK, Estates
from activities.backups import BackupActivities
from activities.catalog import BackupCatalog
from activities.integrity import INTEGRITY_ERROR_TYPE, generate_private_key
from activities.restore import RestoreActivities
from domain.errors import (
    PointInTimeBeyondRetention,
    PointInTimeInFuture,
    RecoveryPointConflict,
    RecoveryPointNotFound,
)
from domain.messages.backups import (
    BACKUP_INCREMENTAL,
    META_READONLY,
    SEGMENTS_PREFIX,
    STATUS_COMPLETED,
    STATUS_FAILED,
    STATUS_IN_PROGRESS,
    CleanupQuarantineInput,
    CopyPackageInput,
    CopyToQuarantineInput,
    FindRecoveryPointInput,
    ListSegmentsInput,
    Package,
    PromoteInput,
    RecoveryPoint,
    RegisterRecoveryPointInput,
    SealQuarantineInput,
    UndoPromotionInput,
    VerifyManifestInput,
    VerifyPackageInput,
    WriteManifestInput,
    promotion_journal_blob,
    recovery_point_id,
    replaced_blob,
    utc_iso,
)
from domain.messages.integrity import DIGEST_MISMATCH
from domain.messages.restore import ValidateQuarantineInput
from domain.plan import DrPlan
from starters.seed_data import SeedSegment, build_segment, build_tenant, upload_segments
from tests.integration.azurite import AzuriteHandle

TENANT = "t0001-globex"
OTHER = "t0003-umbrella"
START = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)


@pytest.fixture
def blob_plan(plan: DrPlan) -> DrPlan:
    """The local plan with containers of its own, so tests sharing the session's Azurite never meet."""
    uid = uuid.uuid4().hex[:8]
    backup = dataclasses.replace(
        plan.backup,
        live_container_prefix=f"t{uid}-",
        backup_container=f"bk-{uid}",
        quarantine_container_prefix=f"q{uid}-",
    )
    return dataclasses.replace(plan, backup=backup)


@pytest.fixture
async def estates(blob_plan: DrPlan, azurite: AzuriteHandle) -> AsyncIterator[Estates]:
    found = Estates([blob_plan], azurite.connection())
    try:
        yield found
    finally:
        await found.close()


@pytest.fixture
def catalog(tmp_path: Path) -> BackupCatalog:
    return BackupCatalog(f"sqlite:///{tmp_path / 'catalog.db'}")


@pytest.fixture
def acts(estates: Estates, catalog: BackupCatalog) -> BackupActivities:
    return BackupActivities(estates, catalog, generate_private_key())


def blob_service(estates: Estates, plan: DrPlan) -> BlobServiceClient:
    return estates[plan.name].blob


async def seed(estates: Estates, plan: DrPlan, tenant: str = TENANT, segments: int = 3) -> list[SeedSegment]:
    built = build_tenant(tenant, segments=segments, start=START, instances=4)
    await upload_segments(blob_service(estates, plan), plan.backup, built)
    return built


async def back_up(
    acts: BackupActivities, plan: DrPlan, tenant: str = TENANT, created: dt.datetime = START
) -> RecoveryPoint:
    """What BackupWorkflow does: register, copy every segment, sign the manifest, complete."""
    rp = recovery_point_id(created, plan.primary_region, tenant)
    common = {
        "plan": plan.name,
        "recovery_point_id": rp,
        "tenant_id": tenant,
        "region": plan.primary_region,
        "backup_type": BACKUP_INCREMENTAL,
        "created_at": utc_iso(created),
    }
    await acts.register_recovery_point(RegisterRecoveryPointInput(**common))
    listed = await acts.list_segments(ListSegmentsInput(plan.name, tenant))
    copies = [
        await acts.copy_package(CopyPackageInput(plan.name, tenant, rp, segment.name)) for segment in listed.segments
    ]
    packages = tuple(c.package for c in copies)
    manifest = await acts.write_manifest(WriteManifestInput(packages=packages, **common))
    done = await acts.register_recovery_point(
        RegisterRecoveryPointInput(
            status=STATUS_COMPLETED,
            packages=packages,
            merkle_root=manifest.merkle_root,
            signature=manifest.signature,
            key_id=manifest.key_id,
            time_from=manifest.time_from,
            time_to=manifest.time_to,
            manifest_blob=manifest.manifest_blob,
            manifest_uri=manifest.manifest_uri,
            **common,
        )
    )
    return done.recovery_point


async def blob_bytes(container: ContainerClient, name: str) -> bytes:
    return await (await container.get_blob_client(name).download_blob()).readall()


async def segment_contents(container: ContainerClient) -> dict[str, bytes]:
    return {
        b.name: await blob_bytes(container, b.name)
        async for b in container.list_blobs(name_starts_with=SEGMENTS_PREFIX)
    }


async def flip_byte(container: ContainerClient, name: str, offset: int = 40) -> None:
    """Corrupt one byte of a blob in place, keeping its metadata (as silent bit rot would)."""
    blob = container.get_blob_client(name)
    metadata = (await blob.get_blob_properties()).metadata
    data = bytearray(await blob_bytes(container, name))
    data[offset] ^= 0x01
    await blob.upload_blob(bytes(data), overwrite=True, metadata=metadata)


def rp_at(tenant: str, created: dt.datetime, status: str = STATUS_COMPLETED) -> RecoveryPoint:
    return RecoveryPoint(
        recovery_point_id=recovery_point_id(created, "eastus", tenant),
        tenant_id=tenant,
        region="eastus",
        backup_type=BACKUP_INCREMENTAL,
        created_at=utc_iso(created),
        status=status,
        policy_version="1.0.0",
    )


class TestSeeding:
    async def test_segments_are_gzip_json_lines_of_the_tenant(self, estates: Estates, blob_plan: DrPlan) -> None:
        """Seeding writes several gzip JSON-lines segments per tenant; every record names its tenant and time."""
        seeded = await seed(estates, blob_plan, TENANT) + await seed(estates, blob_plan, OTHER)
        live = blob_service(estates, blob_plan).get_container_client(blob_plan.backup.live_container(TENANT))
        contents = await segment_contents(live)
        mine = [s for s in seeded if s.tenant_id == TENANT]
        assert sorted(contents) == sorted(s.name for s in mine)
        for segment in mine:
            records = [json.loads(line) for line in gzip.decompress(contents[segment.name]).splitlines()]
            assert len(records) == segment.records
            assert {r["tenantId"] for r in records} == {TENANT}
            assert {r["kind"] for r in records} == {"instance", "instanceEvent", "dataElement"}
            stamps = [r["timestamp"] for r in records]
            assert stamps == sorted(stamps)
            assert segment.time_from[:19] == stamps[0][:19]
            assert segment.time_to[:19] == stamps[-1][:19]

    async def test_seeding_is_deterministic_and_reseeding_writes_nothing(
        self, estates: Estates, blob_plan: DrPlan
    ) -> None:
        """The same seed gives byte-identical segments, and seeding again uploads none of them."""
        seeded = await seed(estates, blob_plan)
        again = build_tenant(TENANT, segments=3, start=START, instances=4)
        assert [s.data for s in again] == [s.data for s in seeded]
        assert await upload_segments(blob_service(estates, blob_plan), blob_plan.backup, again) == 0
        other_seed = build_segment(TENANT, 0, start=START, instances=4, seed=1)
        assert other_seed.data != seeded[0].data


class TestBackup:
    async def test_copy_and_register(
        self, acts: BackupActivities, estates: Estates, blob_plan: DrPlan, catalog: BackupCatalog
    ) -> None:
        """A backup copies every segment into signed packages with their hashes and record counts, and
        registers a completed recovery point with the manifest's Merkle root."""
        seeded = await seed(estates, blob_plan)
        point = await back_up(acts, blob_plan)
        stored = await catalog.get(point.recovery_point_id)
        assert stored == point
        assert stored.status == STATUS_COMPLETED
        assert stored.merkle_root
        assert stored.manifest_blob == f"recovery-points/{point.recovery_point_id}/manifest.json"
        assert {(p.name, p.sha256, p.records) for p in stored.packages} == {
            (s.name, s.sha256, s.records) for s in seeded
        }
        assert stored.time_from == min(s.time_from for s in seeded)
        assert stored.time_to == max(s.time_to for s in seeded)
        backups = blob_service(estates, blob_plan).get_container_client(blob_plan.backup.backup_container)
        for package in stored.packages:
            assert await blob_bytes(backups, package.blob) == next(s.data for s in seeded if s.name == package.name)
        verified = await acts.verify_manifest(VerifyManifestInput(blob_plan.name, point.recovery_point_id))
        assert verified.verification.ok, verified.verification.problems

    async def test_copy_twice_uploads_once(self, acts: BackupActivities, estates: Estates, blob_plan: DrPlan) -> None:
        """Copying the same segment again finds the package in place and writes nothing."""
        seeded = await seed(estates, blob_plan, segments=1)
        request = CopyPackageInput(blob_plan.name, TENANT, "RP-x", seeded[0].name)
        first = await acts.copy_package(request)
        backups = blob_service(estates, blob_plan).get_container_client(blob_plan.backup.backup_container)
        etag = (await backups.get_blob_client(first.package.blob).get_blob_properties()).etag
        second = await acts.copy_package(request)
        assert (first.uploaded, second.uploaded) == (True, False)
        assert second.package == first.package
        assert (await backups.get_blob_client(first.package.blob).get_blob_properties()).etag == etag

    async def test_large_segment_streams_in_blocks(
        self, acts: BackupActivities, estates: Estates, blob_plan: DrPlan
    ) -> None:
        """A segment larger than one download chunk is copied block by block with the right hash and record count."""
        noise = base64.b64encode(os.urandom(600 * 16000)).decode()
        lines = [json.dumps({"tenantId": TENANT, "n": i, "blob": noise[i * 800 : (i + 1) * 800]}) for i in range(16000)]
        data = gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0)
        assert len(data) > 2 * BLOB_CHUNK
        live = blob_service(estates, blob_plan).get_container_client(blob_plan.backup.live_container(TENANT))
        await live.create_container()
        await live.get_blob_client("segments/big.jsonl.gz").upload_blob(data)
        copied = await acts.copy_package(CopyPackageInput(blob_plan.name, TENANT, "RP-big", "segments/big.jsonl.gz"))
        assert (copied.package.sha256, copied.package.bytes) == (hashlib.sha256(data).hexdigest(), len(data))
        assert copied.package.records == len(lines)
        backups = blob_service(estates, blob_plan).get_container_client(blob_plan.backup.backup_container)
        committed, _ = await backups.get_blob_client(copied.package.blob).get_block_list()
        assert len(committed) == -(-len(data) // BLOB_CHUNK)

    async def test_a_changed_segment_is_copied_again(
        self, acts: BackupActivities, estates: Estates, blob_plan: DrPlan
    ) -> None:
        """A segment rewritten since its copy (new etag) is copied again, with its new hash."""
        seeded = await seed(estates, blob_plan, segments=1)
        request = CopyPackageInput(blob_plan.name, TENANT, "RP-y", seeded[0].name)
        first = await acts.copy_package(request)
        newer = build_segment(TENANT, 0, start=START, instances=5)
        await upload_segments(blob_service(estates, blob_plan), blob_plan.backup, [newer])
        second = await acts.copy_package(request)
        assert second.uploaded
        assert (first.package.sha256, second.package.sha256) == (seeded[0].sha256, newer.sha256)
        assert second.package.records == newer.records

    async def test_manifest_and_registration_are_idempotent(
        self, acts: BackupActivities, estates: Estates, blob_plan: DrPlan
    ) -> None:
        """Writing the manifest and registering a completed point again change nothing."""
        await seed(estates, blob_plan)
        point = await back_up(acts, blob_plan)
        common = {
            "plan": blob_plan.name,
            "recovery_point_id": point.recovery_point_id,
            "tenant_id": TENANT,
            "region": point.region,
            "backup_type": point.backup_type,
            "created_at": point.created_at,
        }
        again = await acts.write_manifest(WriteManifestInput(packages=point.packages, **common))
        assert not again.written
        assert again.signature == point.signature
        registered = await acts.register_recovery_point(
            RegisterRecoveryPointInput(
                status=STATUS_COMPLETED,
                packages=point.packages,
                merkle_root=again.merkle_root,
                signature=again.signature,
                key_id=again.key_id,
                manifest_blob=again.manifest_blob,
                manifest_uri=again.manifest_uri,
                **common,
            )
        )
        assert not registered.changed
        assert registered.recovery_point == point

    async def test_completed_point_cannot_be_marked_failed(self, acts: BackupActivities, blob_plan: DrPlan) -> None:
        """Marking a completed recovery point failed is refused, naming the point."""
        await acts.catalog.register(rp_at(TENANT, START))
        with pytest.raises(ApplicationError) as refused:
            await acts.register_recovery_point(
                RegisterRecoveryPointInput(
                    blob_plan.name,
                    recovery_point_id(START, "eastus", TENANT),
                    TENANT,
                    "eastus",
                    BACKUP_INCREMENTAL,
                    utc_iso(START),
                    status=STATUS_FAILED,
                    failure="disk full",
                )
            )
        assert refused.value.type == RecoveryPointConflict.__name__
        assert "is completed; it cannot be marked failed" in str(refused.value)


class TestCatalogChoice:
    NOW = dt.datetime(2026, 3, 30, 12, 0, tzinfo=dt.UTC)

    @pytest.fixture
    def catalog(self, any_catalog_url: str) -> BackupCatalog:
        """The catalog on each backend in turn (SQLite, then PostgreSQL): the choice must not depend on it."""
        return BackupCatalog(any_catalog_url)

    async def filled(self, catalog: BackupCatalog) -> list[RecoveryPoint]:
        """Completed points on days 1, 10 and 20 of the month, a newer one in progress, one failed, another tenant's."""
        points = [rp_at(TENANT, dt.datetime(2026, 3, day, 8, tzinfo=dt.UTC)) for day in (1, 10, 20)]
        points += [
            rp_at(TENANT, dt.datetime(2026, 3, 25, 8, tzinfo=dt.UTC), STATUS_IN_PROGRESS),
            rp_at(TENANT, dt.datetime(2026, 3, 15, 8, tzinfo=dt.UTC), STATUS_FAILED),
            rp_at(OTHER, dt.datetime(2026, 3, 21, 8, tzinfo=dt.UTC)),
        ]
        for point in points:
            await catalog.register(point)
        return points

    @pytest.mark.parametrize(
        ("at", "day"),
        [("2026-03-22T00:00:00Z", 20), ("2026-03-20T08:00:00Z", 20), ("2026-03-19T23:59:59+00:00", 10)],
    )
    async def test_newest_completed_at_or_before(self, catalog: BackupCatalog, at: str, day: int) -> None:
        """The newest completed point of the tenant created at or before the time is chosen."""
        await self.filled(catalog)
        point = await catalog.newest_at_or_before(TENANT, at, retention_days=35, now=self.NOW)
        assert point.created_at.startswith(f"2026-03-{day:02d}T08:00:00")
        assert point.tenant_id == TENANT

    async def test_no_point_before_the_first(self, catalog: BackupCatalog) -> None:
        """A time before the tenant's first completed point is refused, naming the oldest one there is."""
        await self.filled(catalog)
        with pytest.raises(RecoveryPointNotFound) as refused:
            await catalog.newest_at_or_before(TENANT, "2026-03-01T07:00:00Z", retention_days=35, now=self.NOW)
        assert "no completed recovery point at or before 2026-03-01T07:00:00" in str(refused.value)
        assert "RP-20260301T080000Z-eastus-t0001-globex" in str(refused.value)

    async def test_time_in_the_future(self, catalog: BackupCatalog) -> None:
        """A time after now is refused as in the future."""
        with pytest.raises(PointInTimeInFuture, match="is in the future"):
            await catalog.newest_at_or_before(TENANT, "2026-04-01T00:00:00Z", retention_days=35, now=self.NOW)

    async def test_time_older_than_retention(self, catalog: BackupCatalog) -> None:
        """A time older than the retention window is refused with the oldest restorable time."""
        await self.filled(catalog)
        with pytest.raises(PointInTimeBeyondRetention) as refused:
            await catalog.newest_at_or_before(TENANT, "2026-03-05T00:00:00Z", retention_days=20, now=self.NOW)
        assert "older than the retention window of 20 days" in str(refused.value)
        assert "2026-03-10T12:00:00" in str(refused.value)

    async def test_point_created_before_retention_is_not_offered(self, catalog: BackupCatalog) -> None:
        """A completed point older than the retention window is not chosen even for a time inside it."""
        await self.filled(catalog)
        with pytest.raises(RecoveryPointNotFound, match="oldest completed one in the retention window is RP-20260320"):
            await catalog.newest_at_or_before(TENANT, "2026-03-19T00:00:00Z", retention_days=12, now=self.NOW)

    async def test_activity_maps_catalog_errors(self, acts: BackupActivities, blob_plan: DrPlan) -> None:
        """find_recovery_point fails non-retryably with the catalog error's name as its type."""
        with pytest.raises(ApplicationError) as refused:
            await acts.find_recovery_point(FindRecoveryPointInput(blob_plan.name, TENANT, at="2999-01-01T00:00:00Z"))
        assert refused.value.type == PointInTimeInFuture.__name__
        assert refused.value.non_retryable

    async def test_registering_an_id_again_with_other_values_conflicts(self, catalog: BackupCatalog) -> None:
        """Re-registering a recovery point id for another tenant is refused; the same values are a no-op."""
        point = rp_at(TENANT, START)
        _, first = await catalog.register(point)
        _, second = await catalog.register(point)
        assert (first, second) == (True, False)
        with pytest.raises(RecoveryPointConflict, match="tenant_id"):
            await catalog.register(dataclasses.replace(point, tenant_id=OTHER))


class TestRestore:
    async def test_flipped_byte_is_detected_naming_the_package(
        self, acts: BackupActivities, estates: Estates, blob_plan: DrPlan
    ) -> None:
        """One flipped byte in a backup blob fails verify_package for that package only, by name, and
        the manifest verification with the measured digests reports it too."""
        await seed(estates, blob_plan)
        point = await back_up(acts, blob_plan)
        backups = blob_service(estates, blob_plan).get_container_client(blob_plan.backup.backup_container)
        bad = point.packages[1]
        await flip_byte(backups, bad.blob)
        results = [
            await acts.verify_package(VerifyPackageInput(blob_plan.name, point.recovery_point_id, p))
            for p in point.packages
        ]
        assert [r.verified for r in results] == [True, False, True]
        assert results[1].problem is not None
        assert bad.name in results[1].problem
        assert f"the manifest says {bad.sha256}" in results[1].problem
        digests = tuple(r.digest for r in results if r.digest is not None)
        verified = await acts.verify_manifest(VerifyManifestInput(blob_plan.name, point.recovery_point_id, digests))
        assert [p.package for p in verified.verification.problems_with(DIGEST_MISMATCH)] == [bad.name]

    async def test_quarantine_copy_is_idempotent(
        self, acts: BackupActivities, estates: Estates, blob_plan: DrPlan
    ) -> None:
        """Copying the packages into quarantine repeatedly, even concurrently, leaves each exactly once;
        sealing then refuses new writes."""
        seeded = await seed(estates, blob_plan)
        point = await back_up(acts, blob_plan)
        requests = [
            CopyToQuarantineInput(blob_plan.name, TENANT, "restore-1", point.recovery_point_id, p)
            for p in point.packages
        ]
        first = await asyncio.gather(*(acts.copy_to_quarantine(r) for r in requests + requests))
        again = [await acts.copy_to_quarantine(r) for r in requests]
        assert sum(r.copied for r in first) >= len(requests)
        assert not any(r.copied for r in again)
        quarantine = blob_service(estates, blob_plan).get_container_client(first[0].container)
        assert await segment_contents(quarantine) == {s.name: s.data for s in seeded}
        sealed = await acts.seal_quarantine(SealQuarantineInput(blob_plan.name, "restore-1", point.packages))
        assert (sealed.blobs, sealed.records, sealed.changed) == (3, sum(s.records for s in seeded), True)
        assert (await quarantine.get_container_properties()).metadata[META_READONLY] == "true"
        assert not (
            await acts.seal_quarantine(SealQuarantineInput(blob_plan.name, "restore-1", point.packages))
        ).changed
        assert not (await acts.copy_to_quarantine(requests[0])).copied
        stranger = dataclasses.replace(point.packages[0], name="segments/extra.jsonl.gz", sha256="0" * 64)
        with pytest.raises(ApplicationError, match="is sealed"):
            await acts.copy_to_quarantine(dataclasses.replace(requests[0], package=stranger))

    async def test_seal_refuses_a_missing_package(
        self, acts: BackupActivities, estates: Estates, blob_plan: DrPlan
    ) -> None:
        """A quarantine missing one of the packages is not sealed, and the missing package is named."""
        await seed(estates, blob_plan)
        point = await back_up(acts, blob_plan)
        for package in point.packages[:2]:
            await acts.copy_to_quarantine(
                CopyToQuarantineInput(blob_plan.name, TENANT, "restore-2", point.recovery_point_id, package)
            )
        with pytest.raises(ApplicationError) as refused:
            await acts.seal_quarantine(SealQuarantineInput(blob_plan.name, "restore-2", point.packages))
        assert f"package {point.packages[2].name} is missing" in str(refused.value)

    async def test_altered_package_never_reaches_quarantine(
        self, acts: BackupActivities, estates: Estates, blob_plan: DrPlan
    ) -> None:
        """A package whose bytes no longer match the manifest fails the copy and leaves no blob behind."""
        await seed(estates, blob_plan)
        point = await back_up(acts, blob_plan)
        backups = blob_service(estates, blob_plan).get_container_client(blob_plan.backup.backup_container)
        await flip_byte(backups, point.packages[0].blob)
        request = CopyToQuarantineInput(blob_plan.name, TENANT, "restore-3", point.recovery_point_id, point.packages[0])
        with pytest.raises(ApplicationError) as refused:
            await acts.copy_to_quarantine(request)
        assert refused.value.type == INTEGRITY_ERROR_TYPE
        assert point.packages[0].name in str(refused.value)
        quarantine = blob_service(estates, blob_plan).get_container_client(
            blob_plan.backup.quarantine_container("restore-3")
        )
        assert await segment_contents(quarantine) == {}

    async def test_promote_keeps_replaced_data_and_undo_brings_it_back(
        self, acts: BackupActivities, estates: Estates, blob_plan: DrPlan
    ) -> None:
        """Promotion makes the live segments the recovery point's, keeping the replaced ones under
        replaced/<restore id>/; undo gives back exactly the pre-promotion live data; both repeat as no-ops."""
        seeded = await seed(estates, blob_plan)
        point = await back_up(acts, blob_plan)
        service = blob_service(estates, blob_plan)
        live = service.get_container_client(blob_plan.backup.live_container(TENANT))
        # After the backup: one segment corrupted, one deleted, one new.
        await live.get_blob_client(seeded[0].name).upload_blob(b"corrupted", overwrite=True)
        await live.get_blob_client(seeded[1].name).delete_blob()
        newer = build_segment(TENANT, 3, start=START, instances=2)
        await upload_segments(service, blob_plan.backup, [newer])
        before = await segment_contents(live)
        for package in point.packages:
            await acts.copy_to_quarantine(
                CopyToQuarantineInput(blob_plan.name, TENANT, "restore-4", point.recovery_point_id, package)
            )
        await acts.seal_quarantine(SealQuarantineInput(blob_plan.name, "restore-4", point.packages))

        promoted = await acts.promote(PromoteInput(blob_plan.name, TENANT, "restore-4"))
        assert promoted.changed
        assert await segment_contents(live) == {s.name: s.data for s in seeded}
        assert set(promoted.kept) == set(before)
        assert promoted.removed == (newer.name,)
        for name, data in before.items():
            assert await blob_bytes(live, replaced_blob("restore-4", name)) == data
        assert not (await acts.promote(PromoteInput(blob_plan.name, TENANT, "restore-4"))).changed

        undone = await acts.undo_promotion(UndoPromotionInput(blob_plan.name, TENANT, "restore-4"))
        assert undone.changed
        assert await segment_contents(live) == before
        assert not (await acts.undo_promotion(UndoPromotionInput(blob_plan.name, TENANT, "restore-4"))).changed
        journal = json.loads(await blob_bytes(live, promotion_journal_blob("restore-4")))
        assert journal["state"] == "undone"

    async def test_promote_refuses_an_unsealed_quarantine(
        self, acts: BackupActivities, estates: Estates, blob_plan: DrPlan
    ) -> None:
        """A quarantine that was never sealed is not promoted and the live data is untouched."""
        seeded = await seed(estates, blob_plan)
        point = await back_up(acts, blob_plan)
        await acts.copy_to_quarantine(
            CopyToQuarantineInput(blob_plan.name, TENANT, "restore-5", point.recovery_point_id, point.packages[0])
        )
        live = blob_service(estates, blob_plan).get_container_client(blob_plan.backup.live_container(TENANT))
        await live.get_blob_client(seeded[0].name).upload_blob(b"today's data", overwrite=True)
        with pytest.raises(ApplicationError, match="is not sealed"):
            await acts.promote(PromoteInput(blob_plan.name, TENANT, "restore-5"))
        assert await blob_bytes(live, seeded[0].name) == b"today's data"

    async def test_cleanup_removes_the_quarantine_once(
        self, acts: BackupActivities, estates: Estates, blob_plan: DrPlan
    ) -> None:
        """Cleaning up deletes the quarantine container; a second clean-up finds nothing to do."""
        await seed(estates, blob_plan, segments=1)
        point = await back_up(acts, blob_plan)
        package: Package = point.packages[0]
        copied = await acts.copy_to_quarantine(
            CopyToQuarantineInput(blob_plan.name, TENANT, "restore-6", point.recovery_point_id, package)
        )
        first = await acts.cleanup_quarantine(CleanupQuarantineInput(blob_plan.name, "restore-6"))
        second = await acts.cleanup_quarantine(CleanupQuarantineInput(blob_plan.name, "restore-6"))
        assert (first.deleted, second.deleted) == (True, False)
        assert first.container == copied.container
        containers = [c.name async for c in blob_service(estates, blob_plan).list_containers()]
        assert copied.container not in containers


class TestQuarantineValidation:
    async def test_counts_samples_and_names_each_bad_package(self, estates: Estates, blob_plan: DrPlan) -> None:
        """Record counts are checked against the manifest and every sampled record must be the tenant's; a
        multi-member gzip package reads whole, while a foreign record, a truncated stream, a count mismatch
        and a missing package are each reported by name."""
        restore_id = f"restore-{uuid.uuid4().hex[:8]}"
        quarantine = blob_service(estates, blob_plan).get_container_client(
            blob_plan.backup.quarantine_container(restore_id)
        )
        await quarantine.create_container()

        def lines(tenant: str, count: int, start: int = 0) -> bytes:
            return b"".join(json.dumps({"tenantId": tenant, "id": i}).encode() + b"\n" for i in range(start, count))

        packages = {
            f"{SEGMENTS_PREFIX}a-good.jsonl.gz": gzip.compress(lines(TENANT, 10)),
            # Two gzip members, the second without a final newline: 10 records in all.
            f"{SEGMENTS_PREFIX}b-members.jsonl.gz": gzip.compress(lines(TENANT, 6))
            + gzip.compress(lines(TENANT, 10, 6).rstrip(b"\n")),
            f"{SEGMENTS_PREFIX}c-foreign.jsonl.gz": gzip.compress(lines(TENANT, 5) + lines(OTHER, 10, 5)),
            f"{SEGMENTS_PREFIX}d-truncated.jsonl.gz": gzip.compress(lines(TENANT, 10))[:-12],
            f"{SEGMENTS_PREFIX}e-short.jsonl.gz": gzip.compress(lines(TENANT, 9)),
        }
        for name, data in packages.items():
            await quarantine.get_blob_client(name).upload_blob(data)
        expected = dict.fromkeys([*packages, f"{SEGMENTS_PREFIX}f-missing.jsonl.gz"], 10)
        restore = RestoreActivities(estates, generate_private_key())

        result = await restore.validate_quarantine(
            ValidateQuarantineInput(blob_plan.name, TENANT, restore_id, expected, sample_share=1.0)
        )

        by_name = {p.name.removeprefix(SEGMENTS_PREFIX): p for p in result.packages}
        assert by_name["a-good.jsonl.gz"].problem is None
        assert (by_name["b-members.jsonl.gz"].actual_records, by_name["b-members.jsonl.gz"].problem) == (10, None)
        assert by_name["c-foreign.jsonl.gz"].foreign == 5
        assert f"5 of 10 sampled records do not belong to {TENANT}" in str(by_name["c-foreign.jsonl.gz"].problem)
        assert "d-truncated.jsonl.gz is a truncated gzip stream" in str(by_name["d-truncated.jsonl.gz"].problem)
        assert "e-short.jsonl.gz holds 9 records, the manifest says 10" in str(by_name["e-short.jsonl.gz"].problem)
        assert "f-missing.jsonl.gz is missing from quarantine" in str(by_name["f-missing.jsonl.gz"].problem)
        assert not result.ok
