"""The backup catalog: one row per recovery point, as the operations guide's BackupCatalog table,
plus the time range of the data, the manifest's location and a failure reason.

SQLite through the standard library, each call on a worker thread with its own connection (so
the event loop never blocks and several processes, worker and drctl, can share the file). The DDL
is portable: JSON columns hold JSON text and timestamps are ISO 8601 UTC text that sorts as time.
PostgreSQL URLs are refused with a clear error (no driver is shipped yet).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, TypeVar

from domain.errors import (
    CatalogError,
    PointInTimeBeyondRetention,
    PointInTimeInFuture,
    RecoveryPointConflict,
    RecoveryPointNotFound,
)
from domain.messages.backups import (
    STATUS_COMPLETED,
    STATUS_FAILED,
    STATUSES,
    Package,
    RecoveryPoint,
    parse_utc,
    utc_iso,
)

T = TypeVar("T")

SQLITE_PREFIX = "sqlite:///"

# The seed schema's columns and indexes (JSONB written as JSON for portability), then the additions.
SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS BackupCatalog (
        RecoveryPointId VARCHAR(128) PRIMARY KEY,
        TenantId VARCHAR(128) NOT NULL,
        Region VARCHAR(64) NOT NULL,
        BackupType VARCHAR(32) NOT NULL,
        CreatedAt TIMESTAMP NOT NULL,
        CompletedAt TIMESTAMP NULL,
        Status VARCHAR(32) NOT NULL,
        DataClasses JSON NOT NULL,
        Packages JSON NOT NULL,
        MerkleRoot VARCHAR(64) NULL,
        Signature TEXT NULL,
        KeyId VARCHAR(256) NULL,
        PolicyVersion VARCHAR(32) NOT NULL,
        TimeFrom TIMESTAMP NULL,
        TimeTo TIMESTAMP NULL,
        ManifestBlob VARCHAR(1024) NULL,
        ManifestUri VARCHAR(2048) NULL,
        Failure TEXT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS idx_tenant_created ON BackupCatalog (TenantId, CreatedAt)",
    "CREATE INDEX IF NOT EXISTS idx_region_status ON BackupCatalog (Region, Status, CreatedAt)",
)

COLUMNS = (
    "RecoveryPointId",
    "TenantId",
    "Region",
    "BackupType",
    "CreatedAt",
    "CompletedAt",
    "Status",
    "DataClasses",
    "Packages",
    "MerkleRoot",
    "Signature",
    "KeyId",
    "PolicyVersion",
    "TimeFrom",
    "TimeTo",
    "ManifestBlob",
    "ManifestUri",
    "Failure",
)
SELECT = f"SELECT {', '.join(COLUMNS)} FROM BackupCatalog"  # noqa: S608  (fixed column names, no input)

# Fields that name a recovery point: registering the same id with other values is a conflict.
IDENTITY = ("tenant_id", "region", "backup_type", "created_at", "policy_version")


def _moment(value: str, what: str) -> dt.datetime:
    try:
        return parse_utc(value)
    except ValueError:
        raise CatalogError(f"{what} {value!r} is not an ISO 8601 timestamp") from None


def _timestamp(value: str | None, what: str) -> str | None:
    """A timestamp in the catalog's one text form, so comparisons in SQL are comparisons of time."""
    return None if value is None else utc_iso(_moment(value, what))


def package_from_json(item: dict[str, Any]) -> Package:
    return Package(
        name=str(item["name"]),
        blob=str(item["blob"]),
        uri=str(item["uri"]),
        sha256=str(item["sha256"]),
        bytes=int(item["bytes"]),
        records=int(item["records"]),
        data_class=str(item["dataClass"]),
        time_from=item.get("timeFrom"),
        time_to=item.get("timeTo"),
    )


def package_to_json(package: Package) -> dict[str, Any]:
    return {
        "name": package.name,
        "blob": package.blob,
        "uri": package.uri,
        "sha256": package.sha256,
        "bytes": package.bytes,
        "records": package.records,
        "dataClass": package.data_class,
        "timeFrom": package.time_from,
        "timeTo": package.time_to,
    }


def _row_to_point(row: tuple[Any, ...]) -> RecoveryPoint:
    v = dict(zip(COLUMNS, row, strict=True))
    return RecoveryPoint(
        recovery_point_id=v["RecoveryPointId"],
        tenant_id=v["TenantId"],
        region=v["Region"],
        backup_type=v["BackupType"],
        created_at=v["CreatedAt"],
        completed_at=v["CompletedAt"],
        status=v["Status"],
        data_classes=tuple(json.loads(v["DataClasses"])),
        packages=tuple(package_from_json(p) for p in json.loads(v["Packages"])),
        merkle_root=v["MerkleRoot"],
        signature=v["Signature"],
        key_id=v["KeyId"],
        policy_version=v["PolicyVersion"],
        time_from=v["TimeFrom"],
        time_to=v["TimeTo"],
        manifest_blob=v["ManifestBlob"],
        manifest_uri=v["ManifestUri"],
        failure=v["Failure"],
    )


def _point_to_row(p: RecoveryPoint) -> tuple[Any, ...]:
    return (
        p.recovery_point_id,
        p.tenant_id,
        p.region,
        p.backup_type,
        p.created_at,
        p.completed_at,
        p.status,
        json.dumps(list(p.data_classes)),
        json.dumps([package_to_json(pkg) for pkg in p.packages]),
        p.merkle_root,
        p.signature,
        p.key_id,
        p.policy_version,
        p.time_from,
        p.time_to,
        p.manifest_blob,
        p.manifest_uri,
        p.failure,
    )


def sqlite_path(url: str) -> Path:
    """The database file of a ``sqlite:///path`` URL (``sqlite:////abs/path`` for an absolute one)."""
    if url.startswith(("postgresql://", "postgres://")):
        raise CatalogError(
            "PostgreSQL backup catalogs are not supported yet: set backup.catalog_url in the plan "
            '(or DR_CATALOG_URL) to "sqlite:///path/to/backup-catalog.db"'
        )
    if not url.startswith(SQLITE_PREFIX) or url == SQLITE_PREFIX or url.endswith(":memory:"):
        raise CatalogError(
            f"unsupported backup catalog URL {url!r}: use backup.catalog_url (or DR_CATALOG_URL) "
            '= "sqlite:///path/to/backup-catalog.db"'
        )
    return Path(url[len(SQLITE_PREFIX) :])


class BackupCatalog:
    """Recovery points by tenant and time; every method is safe to repeat (read, compare, then write)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = sqlite_path(url)
        self._ready = False

    def _connect(self) -> sqlite3.Connection:
        # Autocommit mode: each write below opens its own BEGIN IMMEDIATE transaction, so two
        # writers never both read "absent" and both insert.
        if not self._ready:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        if not self._ready:
            conn.execute("PRAGMA journal_mode=WAL")
            for statement in SCHEMA:
                conn.execute(statement)
            self._ready = True
        return conn

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def work() -> T:
            conn = self._connect()
            try:
                return fn(conn)
            finally:
                conn.close()

        return await asyncio.to_thread(work)

    @staticmethod
    def _select(conn: sqlite3.Connection, recovery_point_id: str) -> RecoveryPoint | None:
        row = conn.execute(f"{SELECT} WHERE RecoveryPointId = ?", (recovery_point_id,)).fetchone()
        return None if row is None else _row_to_point(row)

    @staticmethod
    def _write(conn: sqlite3.Connection, point: RecoveryPoint) -> None:
        placeholders = ", ".join("?" for _ in COLUMNS)
        conn.execute(
            f"INSERT OR REPLACE INTO BackupCatalog ({', '.join(COLUMNS)}) VALUES ({placeholders})",  # noqa: S608
            _point_to_row(point),
        )

    async def _transact(
        self, recovery_point_id: str, change: Callable[[RecoveryPoint | None], RecoveryPoint | None]
    ) -> tuple[RecoveryPoint, bool]:
        """Read the row, let ``change`` decide its new value (None: leave it), write it, in one transaction."""

        def work(conn: sqlite3.Connection) -> tuple[RecoveryPoint, bool]:
            conn.execute("BEGIN IMMEDIATE")
            try:
                current = self._select(conn, recovery_point_id)
                wanted = change(current)
                if wanted is not None and wanted != current:
                    self._write(conn, wanted)
                    conn.execute("COMMIT")
                    return wanted, True
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            if current is None:
                raise RecoveryPointNotFound(f"recovery point {recovery_point_id!r} is not in the catalog")
            return current, False

        return await self._run(work)

    async def register(self, point: RecoveryPoint) -> tuple[RecoveryPoint, bool]:
        """Add an in-progress recovery point; registering it again returns the row as it is."""
        if point.status not in STATUSES:
            raise CatalogError(f"unknown status {point.status!r}; use one of {', '.join(STATUSES)}")
        point = replace(
            point,
            created_at=_timestamp(point.created_at, "created_at") or "",
            completed_at=_timestamp(point.completed_at, "completed_at"),
            time_from=_timestamp(point.time_from, "time_from"),
            time_to=_timestamp(point.time_to, "time_to"),
        )

        def change(current: RecoveryPoint | None) -> RecoveryPoint | None:
            if current is None:
                return point
            _check_identity(current, point)
            return None

        return await self._transact(point.recovery_point_id, change)

    async def complete(
        self,
        recovery_point_id: str,
        *,
        packages: tuple[Package, ...],
        merkle_root: str,
        signature: str,
        key_id: str,
        manifest_blob: str,
        manifest_uri: str,
        time_from: str | None,
        time_to: str | None,
        completed_at: str | None = None,
    ) -> tuple[RecoveryPoint, bool]:
        """Mark a recovery point completed with its manifest; again with the same manifest is a no-op."""
        done = _timestamp(completed_at, "completed_at") or utc_iso(dt.datetime.now(dt.UTC))

        def change(current: RecoveryPoint | None) -> RecoveryPoint | None:
            if current is None:
                return None
            if current.status == STATUS_COMPLETED:
                if current.merkle_root != merkle_root or current.signature != signature:
                    raise RecoveryPointConflict(
                        f"recovery point {recovery_point_id!r} is already completed with Merkle root "
                        f"{current.merkle_root}; it cannot be completed again with {merkle_root}"
                    )
                return None
            if current.status == STATUS_FAILED:
                raise RecoveryPointConflict(
                    f"recovery point {recovery_point_id!r} failed ({current.failure}); start a new one instead"
                )
            return replace(
                current,
                status=STATUS_COMPLETED,
                completed_at=done,
                packages=packages,
                merkle_root=merkle_root,
                signature=signature,
                key_id=key_id,
                manifest_blob=manifest_blob,
                manifest_uri=manifest_uri,
                time_from=_timestamp(time_from, "time_from"),
                time_to=_timestamp(time_to, "time_to"),
            )

        return await self._transact(recovery_point_id, change)

    async def fail(self, recovery_point_id: str, reason: str, *, at: str | None = None) -> tuple[RecoveryPoint, bool]:
        """Mark an in-progress recovery point failed; a completed one is never downgraded."""
        when = _timestamp(at, "at") or utc_iso(dt.datetime.now(dt.UTC))

        def change(current: RecoveryPoint | None) -> RecoveryPoint | None:
            if current is None or current.status == STATUS_FAILED:
                return None
            if current.status == STATUS_COMPLETED:
                raise RecoveryPointConflict(
                    f"recovery point {recovery_point_id!r} is completed; it cannot be marked failed"
                )
            return replace(current, status=STATUS_FAILED, completed_at=when, failure=reason)

        return await self._transact(recovery_point_id, change)

    async def get(self, recovery_point_id: str) -> RecoveryPoint:
        point = await self._run(lambda conn: self._select(conn, recovery_point_id))
        if point is None:
            raise RecoveryPointNotFound(f"recovery point {recovery_point_id!r} is not in the catalog")
        return point

    async def list_for_tenant(
        self, tenant_id: str, *, status: str | None = None, limit: int | None = None
    ) -> list[RecoveryPoint]:
        """The tenant's recovery points, newest first."""
        query = f"{SELECT} WHERE TenantId = ?"
        args: list[Any] = [tenant_id]
        if status is not None:
            query += " AND Status = ?"
            args.append(status)
        query += " ORDER BY CreatedAt DESC, RecoveryPointId DESC"
        if limit is not None:
            query += " LIMIT ?"
            args.append(limit)

        def work(conn: sqlite3.Connection) -> list[RecoveryPoint]:
            return [_row_to_point(row) for row in conn.execute(query, args).fetchall()]

        return await self._run(work)

    async def list_recent(self, *, status: str | None = None, limit: int | None = None) -> list[RecoveryPoint]:
        """Every tenant's recovery points, newest first (what ``drctl backup list`` shows)."""
        query = SELECT
        args: list[Any] = []
        if status is not None:
            query += " WHERE Status = ?"
            args.append(status)
        query += " ORDER BY CreatedAt DESC, RecoveryPointId DESC"
        if limit is not None:
            query += " LIMIT ?"
            args.append(limit)

        def work(conn: sqlite3.Connection) -> list[RecoveryPoint]:
            return [_row_to_point(row) for row in conn.execute(query, args).fetchall()]

        return await self._run(work)

    async def newest_at_or_before(
        self, tenant_id: str, at: str, *, retention_days: int, now: dt.datetime | None = None
    ) -> RecoveryPoint:
        """The tenant's newest completed recovery point created at or before ``at``, within retention.

        Refuses a time in the future, a time older than ``retention_days``, and a time with no
        completed recovery point at or before it inside the retention window.
        """
        moment = _moment(at, "point in time")
        current = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
        oldest = current - dt.timedelta(days=retention_days)
        if moment > current:
            raise PointInTimeInFuture(
                f"point in time {utc_iso(moment)} for tenant {tenant_id!r} is in the future (now {utc_iso(current)})"
            )
        if moment < oldest:
            raise PointInTimeBeyondRetention(
                f"point in time {utc_iso(moment)} for tenant {tenant_id!r} is older than the retention window of "
                f"{retention_days} days (oldest restorable time {utc_iso(oldest)})"
            )

        def work(conn: sqlite3.Connection) -> tuple[RecoveryPoint | None, RecoveryPoint | None]:
            found = conn.execute(
                f"{SELECT} WHERE TenantId = ? AND Status = ? AND CreatedAt <= ? AND CreatedAt >= ? "
                "ORDER BY CreatedAt DESC, RecoveryPointId DESC LIMIT 1",
                (tenant_id, STATUS_COMPLETED, utc_iso(moment), utc_iso(oldest)),
            ).fetchone()
            first = conn.execute(
                f"{SELECT} WHERE TenantId = ? AND Status = ? AND CreatedAt >= ? ORDER BY CreatedAt LIMIT 1",
                (tenant_id, STATUS_COMPLETED, utc_iso(oldest)),
            ).fetchone()
            return (
                None if found is None else _row_to_point(found),
                None if first is None else _row_to_point(first),
            )

        point, first = await self._run(work)
        if point is None:
            after = (
                f"; its oldest completed one in the retention window is {first.recovery_point_id} "
                f"created {first.created_at}"
                if first
                else "; it has none in the retention window"
            )
            raise RecoveryPointNotFound(
                f"tenant {tenant_id!r} has no completed recovery point at or before {utc_iso(moment)}{after}"
            )
        return point


def _check_identity(current: RecoveryPoint, wanted: RecoveryPoint) -> None:
    have, want = asdict(current), asdict(wanted)
    differing = [f"{key} {have[key]!r} != {want[key]!r}" for key in IDENTITY if have[key] != want[key]]
    if differing:
        raise RecoveryPointConflict(
            f"recovery point {current.recovery_point_id!r} is already registered with other values: "
            + "; ".join(differing)
        )
