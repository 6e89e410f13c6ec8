"""The backup catalog on a real PostgreSQL (the session's private cluster) and, where the behaviour is
the backends' shared contract, on SQLite too: the recovery point life cycle, list order, many tenants'
newest points in one read, concurrent writers, the seed schema's column types, redacted errors, and
the backup activities over PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from typing import Any

import psycopg
import pytest
from temporalio.exceptions import ApplicationError

from activities.azure import Estates
from activities.backups import BackupActivities
from activities.catalog import BackupCatalog, redact_url
from activities.integrity import generate_private_key
from domain.errors import CatalogError, RecoveryPointConflict, RecoveryPointNotFound
from domain.messages.backups import (
    BACKUP_INCREMENTAL,
    STATUS_COMPLETED,
    STATUS_FAILED,
    STATUS_IN_PROGRESS,
    FindRecoveryPointInput,
    Package,
    RecoveryPoint,
    RecoveryPointAgesInput,
    RegisterRecoveryPointInput,
    recovery_point_id,
    utc_iso,
)
from domain.plan import DrPlan
from tests.integration.azurite import AzuriteHandle
from tests.integration.postgres import PostgresHandle, free_port

TENANT = "t0001-globex"
OTHER = "t0003-umbrella"
START = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
PACKAGE = Package(
    name="segments/2026/03/02/seg-0001.jsonl.gz",
    blob="RP-x/segments/2026/03/02/seg-0001.jsonl.gz",
    uri="https://example.blob.core.windows.net/backups/RP-x/seg-0001.jsonl.gz",
    sha256="ab" * 32,
    bytes=1234,
    records=42,
    data_class="hot",
    time_from="2026-03-02T07:00:00.000000Z",
    time_to="2026-03-02T07:59:59.000000Z",
)


def point_at(tenant: str, created: dt.datetime, status: str = STATUS_COMPLETED) -> RecoveryPoint:
    return RecoveryPoint(
        recovery_point_id=recovery_point_id(created, "eastus", tenant),
        tenant_id=tenant,
        region="eastus",
        backup_type=BACKUP_INCREMENTAL,
        created_at=utc_iso(created),
        status=status,
        policy_version="1.0.0",
    )


async def complete(catalog: BackupCatalog, point_id: str, merkle_root: str = "cd" * 32) -> tuple[RecoveryPoint, bool]:
    return await catalog.complete(
        point_id,
        packages=(PACKAGE,),
        merkle_root=merkle_root,
        signature="sig",
        key_id="key-1",
        manifest_blob=f"{point_id}/manifest.json",
        manifest_uri=f"https://example.blob.core.windows.net/backups/{point_id}/manifest.json",
        time_from="2026-03-02T09:00:00+02:00",
        time_to="2026-03-02T07:59:59Z",
        completed_at="2026-03-02T08:05:00Z",
    )


@pytest.fixture
def catalog(any_catalog_url: str) -> BackupCatalog:
    return BackupCatalog(any_catalog_url)


class TestLifeCycle:
    async def test_register_then_complete_keeps_every_field(self, catalog: BackupCatalog) -> None:
        """A registered then completed point reads back with its packages, manifest and UTC timestamps."""
        point = dataclasses.replace(
            point_at(TENANT, START, STATUS_IN_PROGRESS), created_at="2026-03-02T10:00:00+02:00", data_classes=("hot",)
        )
        registered, changed = await catalog.register(point)
        assert changed
        assert registered.created_at == "2026-03-02T08:00:00.000000Z"
        done, completed = await complete(catalog, point.recovery_point_id)
        assert completed
        stored = await catalog.get(point.recovery_point_id)
        assert stored == done
        assert stored.status == STATUS_COMPLETED
        assert stored.packages == (PACKAGE,)
        assert stored.data_classes == ("hot",)
        assert (stored.time_from, stored.time_to) == ("2026-03-02T07:00:00.000000Z", "2026-03-02T07:59:59.000000Z")
        assert stored.completed_at == "2026-03-02T08:05:00.000000Z"

    async def test_completing_again_is_a_no_op_and_another_manifest_conflicts(self, catalog: BackupCatalog) -> None:
        """Completing with the same manifest changes nothing; another Merkle root or failing it is refused."""
        point = point_at(TENANT, START, STATUS_IN_PROGRESS)
        await catalog.register(point)
        first, _ = await complete(catalog, point.recovery_point_id)
        again, changed = await complete(catalog, point.recovery_point_id)
        assert (again, changed) == (first, False)
        with pytest.raises(RecoveryPointConflict, match="already completed with Merkle root"):
            await complete(catalog, point.recovery_point_id, merkle_root="ef" * 32)
        with pytest.raises(RecoveryPointConflict, match="cannot be marked failed"):
            await catalog.fail(point.recovery_point_id, "disk full")

    async def test_failed_point_keeps_its_reason_and_cannot_complete(self, catalog: BackupCatalog) -> None:
        """A failed point records why; failing it again changes nothing and completing it is refused."""
        point = point_at(TENANT, START, STATUS_IN_PROGRESS)
        await catalog.register(point)
        failed, changed = await catalog.fail(point.recovery_point_id, "disk full", at="2026-03-02T08:01:00Z")
        assert changed
        assert (failed.status, failed.failure, failed.completed_at) == (
            STATUS_FAILED,
            "disk full",
            "2026-03-02T08:01:00.000000Z",
        )
        assert (await catalog.fail(point.recovery_point_id, "again"))[1] is False
        with pytest.raises(RecoveryPointConflict, match="failed \\(disk full\\)"):
            await complete(catalog, point.recovery_point_id)

    async def test_unknown_point_is_not_found(self, catalog: BackupCatalog) -> None:
        """Reading or completing a recovery point that was never registered names it as not in the catalog."""
        with pytest.raises(RecoveryPointNotFound, match="RP-missing"):
            await catalog.get("RP-missing")
        with pytest.raises(RecoveryPointNotFound, match="RP-missing"):
            await complete(catalog, "RP-missing")

    async def test_exists_only_after_the_first_write(self, catalog: BackupCatalog) -> None:
        """A new catalog does not exist until something is written, and asking does not create it."""
        assert not await catalog.exists()
        assert not await catalog.exists()
        await catalog.register(point_at(TENANT, START))
        assert await catalog.exists()


class TestListing:
    async def test_lists_are_newest_first_with_status_and_limit(self, catalog: BackupCatalog) -> None:
        """Tenant and catalog-wide lists are newest first (ties by id), filtered by status and cut at the limit."""
        days = (5, 1, 20, 10)
        for day in days:
            await catalog.register(point_at(TENANT, dt.datetime(2026, 3, day, 8, tzinfo=dt.UTC)))
        await catalog.register(point_at(TENANT, dt.datetime(2026, 3, 25, 8, tzinfo=dt.UTC), STATUS_IN_PROGRESS))
        # Same moment, two tenants: the id breaks the tie.
        await catalog.register(point_at(OTHER, dt.datetime(2026, 3, 20, 8, tzinfo=dt.UTC)))

        mine = await catalog.list_for_tenant(TENANT)
        assert [p.created_at[:10] for p in mine] == [
            "2026-03-25",
            "2026-03-20",
            "2026-03-10",
            "2026-03-05",
            "2026-03-01",
        ]
        completed = await catalog.list_for_tenant(TENANT, status=STATUS_COMPLETED, limit=2)
        assert [p.created_at[:10] for p in completed] == ["2026-03-20", "2026-03-10"]
        everyone = await catalog.list_recent(limit=3)
        assert [p.recovery_point_id for p in everyone] == [
            recovery_point_id(dt.datetime(2026, 3, 25, 8, tzinfo=dt.UTC), "eastus", TENANT),
            recovery_point_id(dt.datetime(2026, 3, 20, 8, tzinfo=dt.UTC), "eastus", OTHER),
            recovery_point_id(dt.datetime(2026, 3, 20, 8, tzinfo=dt.UTC), "eastus", TENANT),
        ]
        assert [p.status for p in await catalog.list_recent(status=STATUS_IN_PROGRESS)] == [STATUS_IN_PROGRESS]


class TestNewestForTenants:
    STATUSES = (None, STATUS_COMPLETED, STATUS_FAILED, STATUS_IN_PROGRESS)
    # Tenants with points of every kind, one with none, and one the catalog never heard of.
    TENANTS = (TENANT, OTHER, "t0004-stark", "t0005-wayne", "t0006-acme", "t0404-unknown")

    @pytest.fixture
    async def filled(self, catalog: BackupCatalog) -> BackupCatalog:
        """TENANT: completed points, then newer failed and in-progress ones; OTHER: two completed points
        created at the same moment in two regions; stark: only a failed one; wayne: only one in progress;
        acme: a completed point and an older failed one."""
        for day in (1, 5, 3):
            await catalog.register(point_at(TENANT, dt.datetime(2026, 3, day, 8, tzinfo=dt.UTC)))
        failed = point_at(TENANT, dt.datetime(2026, 3, 6, 8, tzinfo=dt.UTC), STATUS_IN_PROGRESS)
        await catalog.register(failed)
        await catalog.fail(failed.recovery_point_id, "disk full")
        await catalog.register(point_at(TENANT, dt.datetime(2026, 3, 7, 8, tzinfo=dt.UTC), STATUS_IN_PROGRESS))
        twin = point_at(OTHER, START)
        await catalog.register(twin)
        await catalog.register(
            dataclasses.replace(twin, recovery_point_id=recovery_point_id(START, "westus", OTHER), region="westus")
        )
        stark = point_at("t0004-stark", START, STATUS_IN_PROGRESS)
        await catalog.register(stark)
        await catalog.fail(stark.recovery_point_id, "timeout")
        await catalog.register(point_at("t0005-wayne", START, STATUS_IN_PROGRESS))
        acme = point_at("t0006-acme", START - dt.timedelta(hours=1), STATUS_IN_PROGRESS)
        await catalog.register(acme)
        await catalog.fail(acme.recovery_point_id, "throttled")
        done = point_at("t0006-acme", START, STATUS_IN_PROGRESS)
        await catalog.register(done)
        await complete(catalog, done.recovery_point_id)
        return catalog

    @staticmethod
    async def one_by_one(
        catalog: BackupCatalog, tenants: tuple[str, ...], status: str | None
    ) -> dict[str, RecoveryPoint]:
        """What a query per tenant finds: each tenant's first point of list_for_tenant, if it has one."""
        found = {t: await catalog.list_for_tenant(t, status=status, limit=1) for t in tenants}
        return {t: points[0] for t, points in found.items() if points}

    @pytest.mark.parametrize("status", STATUSES)
    async def test_finds_what_a_query_per_tenant_finds(self, filled: BackupCatalog, status: str | None) -> None:
        """For every status filter, each tenant's newest point is the one list_for_tenant puts first."""
        batch = await filled.newest_for_tenants(self.TENANTS, status=status)
        assert batch == await self.one_by_one(filled, self.TENANTS, status)
        assert list(batch) == [t for t in self.TENANTS if t in batch]
        assert all(point.tenant_id == tenant for tenant, point in batch.items())

    async def test_newest_completed_skips_newer_failed_and_in_progress_points(self, filled: BackupCatalog) -> None:
        """The newest completed point is chosen past newer failed or running ones; the id breaks a tie of times."""
        newest = await filled.newest_for_tenants(self.TENANTS, status=STATUS_COMPLETED)
        assert {t: p.recovery_point_id for t, p in newest.items()} == {
            TENANT: recovery_point_id(dt.datetime(2026, 3, 5, 8, tzinfo=dt.UTC), "eastus", TENANT),
            OTHER: recovery_point_id(START, "westus", OTHER),
            "t0006-acme": recovery_point_id(START, "eastus", "t0006-acme"),
        }
        assert newest["t0006-acme"].packages == (PACKAGE,)
        anything = await filled.newest_for_tenants([TENANT, "t0005-wayne"])
        assert [p.status for p in anything.values()] == [STATUS_IN_PROGRESS, STATUS_IN_PROGRESS]

    async def test_empty_list_is_an_empty_answer_and_creates_nothing(self, catalog: BackupCatalog) -> None:
        """No tenants means no points, on a catalog that does not exist yet (left uncreated) and on one that does."""
        assert await catalog.newest_for_tenants([]) == {}
        assert not await catalog.exists()
        await catalog.register(point_at(TENANT, START))
        assert await catalog.newest_for_tenants((), status=STATUS_COMPLETED) == {}

    async def test_a_list_longer_than_one_statement_is_read_in_chunks(
        self, filled: BackupCatalog, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Tenants beyond one statement's share, repeated ones included, are all answered over one connection."""
        db = filled._db
        monkeypatch.setattr(db, "tenants_per_statement", 2)
        sessions: list[dict[str, Any]] = []
        chunks: list[tuple[str, ...]] = []
        session, tenant_list = db.session, db.tenant_list

        def counted_session(**kwargs: Any) -> contextlib.AbstractAsyncContextManager[Any]:
            sessions.append(kwargs)
            return session(**kwargs)

        def recorded_list(tenant_ids: Sequence[str]) -> tuple[str, tuple[Any, ...]]:
            chunks.append(tuple(tenant_ids))
            return tenant_list(tenant_ids)

        tenants = (*self.TENANTS, TENANT, *reversed(self.TENANTS))
        for status in self.STATUSES:
            expected = await self.one_by_one(filled, self.TENANTS, status)
            sessions.clear()
            chunks.clear()
            with monkeypatch.context() as patch:
                patch.setattr(db, "session", counted_session)
                patch.setattr(db, "tenant_list", recorded_list)
                batch = await filled.newest_for_tenants(iter(tenants), status=status)
            assert batch == expected
            assert list(batch) == [t for t in self.TENANTS if t in batch]
            assert (len(sessions), chunks) == (1, [self.TENANTS[0:2], self.TENANTS[2:4], self.TENANTS[4:6]])

    async def test_one_string_is_refused(self, catalog: BackupCatalog) -> None:
        """A tenant id passed alone, not in a list, is refused rather than read as one tenant per character."""
        with pytest.raises(TypeError, match=r"pass \['t0001-globex'\]"):
            await catalog.newest_for_tenants(TENANT)


class TestConcurrentWriters:
    async def test_two_writers_register_one_point_once(self, any_catalog_url: str) -> None:
        """Two catalog objects registering the same point at once on a fresh catalog insert it exactly once."""
        writers = [BackupCatalog(any_catalog_url), BackupCatalog(any_catalog_url)]
        point = point_at(TENANT, START, STATUS_IN_PROGRESS)
        results = await asyncio.gather(*(writers[i % 2].register(point) for i in range(8)))
        assert sorted(changed for _, changed in results) == [False] * 7 + [True]
        assert {p for p, _ in results} == {await writers[0].get(point.recovery_point_id)}

    async def test_racing_complete_and_fail_leave_one_outcome(self, any_catalog_url: str) -> None:
        """When one writer completes a point as another fails it, exactly one wins and the other is refused."""
        first, second = BackupCatalog(any_catalog_url), BackupCatalog(any_catalog_url)
        point = point_at(TENANT, START, STATUS_IN_PROGRESS)
        await first.register(point)
        outcomes = await asyncio.gather(
            complete(first, point.recovery_point_id),
            second.fail(point.recovery_point_id, "cancelled"),
            return_exceptions=True,
        )
        refused = [o for o in outcomes if isinstance(o, RecoveryPointConflict)]
        won = [o for o in outcomes if isinstance(o, tuple)]
        assert (len(refused), len(won)) == (1, 1)
        assert await second.get(point.recovery_point_id) == won[0][0]

    async def test_two_writers_of_one_id_with_other_values_conflict(self, any_catalog_url: str) -> None:
        """Of two writers registering one id for different tenants at once, one wins and the other is refused."""
        point = point_at(TENANT, START, STATUS_IN_PROGRESS)
        outcomes = await asyncio.gather(
            BackupCatalog(any_catalog_url).register(point),
            BackupCatalog(any_catalog_url).register(dataclasses.replace(point, tenant_id=OTHER)),
            return_exceptions=True,
        )
        assert sorted(type(o).__name__ for o in outcomes) == ["RecoveryPointConflict", "tuple"]


class TestPostgres:
    async def test_columns_use_the_seed_schema_types(self, postgres_url: str) -> None:
        """On PostgreSQL the JSON columns are JSONB and the timestamps TIMESTAMPTZ, as the seed schema says."""
        await BackupCatalog(postgres_url).register(point_at(TENANT, START))
        async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
            cursor = await conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'backupcatalog'"
            )
            types: dict[str, str] = dict(await cursor.fetchall())
        assert types["packages"] == "jsonb"
        assert types["dataclasses"] == "jsonb"
        assert types["createdat"] == "timestamp with time zone"
        assert types["timeto"] == "timestamp with time zone"

    async def test_the_postgres_scheme_is_accepted(self, postgres: PostgresHandle) -> None:
        """A ``postgres://`` URL reaches the same server as ``postgresql://``."""
        catalog = BackupCatalog(postgres.fresh_url(scheme="postgres"))
        await catalog.register(point_at(TENANT, START))
        assert [p.tenant_id for p in await catalog.list_recent()] == [TENANT]

    async def test_wrong_password_is_a_catalog_error_without_the_password(self, postgres: PostgresHandle) -> None:
        """A wrong password fails with a CatalogError naming the setting to fix and showing the URL redacted."""
        wrong = "Not-The-Pw-1x"
        url = postgres.url(password=wrong)
        catalog = BackupCatalog(url)
        assert wrong not in catalog.url
        for attempt in (catalog.register(point_at(TENANT, START)), catalog.exists()):
            with pytest.raises(CatalogError) as refused:
                await attempt
            message = str(refused.value)
            assert "backup.catalog_url" in message
            assert "DR_CATALOG_URL" in message
            assert "password authentication failed" in message
            assert redact_url(url) in message
            assert wrong not in message
            assert postgres.password not in message

    async def test_unreachable_server_is_a_catalog_error(self) -> None:
        """A server that does not answer fails with a CatalogError naming the setting, not a driver error."""
        url = f"postgresql://dr:Secret-Pw-2@127.0.0.1:{free_port()}/catalog"
        with pytest.raises(CatalogError, match=r"cannot open the backup catalog .*DR_CATALOG_URL") as refused:
            await BackupCatalog(url).list_recent()
        assert "Secret-Pw-2" not in str(refused.value)

    @pytest.mark.parametrize(
        ("url", "shown"),
        [
            ("postgresql://dr:p%40ss/w@db:5432/cat", "postgresql://dr:***@db:5432/cat"),
            (
                "postgres://dr@db/cat?password=hunter2&sslmode=require",
                "postgres://dr@db/cat?password=***&sslmode=require",
            ),
            ("sqlite:///tmp/catalog.db", "sqlite:///tmp/catalog.db"),
        ],
    )
    def test_urls_are_redacted_for_messages(self, url: str, shown: str) -> None:
        """A password in the user info or in a ``password=`` parameter is hidden; a URL without one is unchanged."""
        assert redact_url(url) == shown


class TestBackupActivitiesOnPostgres:
    @pytest.fixture
    async def acts(self, plan: DrPlan, azurite: AzuriteHandle, postgres_url: str) -> AsyncIterator[BackupActivities]:
        estates = Estates([plan], azurite.connection())
        try:
            yield BackupActivities(estates, BackupCatalog(postgres_url), generate_private_key())
        finally:
            await estates.close()

    async def test_register_then_find_a_recovery_point(self, acts: BackupActivities, plan: DrPlan) -> None:
        """The activities register a point in progress, complete it, and a restore finds it by time on PostgreSQL."""
        tenant = plan.tenants[0].id
        ages = await acts.recovery_point_ages(RecoveryPointAgesInput(plan.name))
        assert not ages.catalog_found
        created = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=2)
        rp = recovery_point_id(created, plan.primary_region, tenant)
        common = RegisterRecoveryPointInput(
            plan=plan.name,
            recovery_point_id=rp,
            tenant_id=tenant,
            region=plan.primary_region,
            backup_type=BACKUP_INCREMENTAL,
            created_at=utc_iso(created),
        )
        started = await acts.register_recovery_point(common)
        assert (started.changed, started.recovery_point.status) == (True, STATUS_IN_PROGRESS)
        done = dataclasses.replace(
            common,
            status=STATUS_COMPLETED,
            packages=(PACKAGE,),
            merkle_root="cd" * 32,
            signature="sig",
            key_id="key-1",
            manifest_blob=f"{rp}/manifest.json",
            manifest_uri=f"https://example.blob.core.windows.net/backups/{rp}/manifest.json",
        )
        assert (await acts.register_recovery_point(done)).changed
        assert not (await acts.register_recovery_point(done)).changed

        at = utc_iso(created + dt.timedelta(minutes=30))
        found = await acts.find_recovery_point(FindRecoveryPointInput(plan.name, tenant, at=at))
        assert found.recovery_point.recovery_point_id == rp
        assert found.recovery_point.status == STATUS_COMPLETED
        ages = await acts.recovery_point_ages(RecoveryPointAgesInput(plan.name))
        assert ages.catalog_found
        assert [t.recovery_point_id for t in ages.tenants if t.tenant_id == tenant] == [rp]
        with pytest.raises(ApplicationError) as refused:
            await acts.find_recovery_point(
                FindRecoveryPointInput(plan.name, tenant, at=utc_iso(created - dt.timedelta(hours=1)))
            )
        assert refused.value.type == RecoveryPointNotFound.__name__
