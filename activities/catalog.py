"""The backup catalog: one row per recovery point, as the operations guide's BackupCatalog table,
plus the time range of the data, the manifest's location and a failure reason.

Two databases behind one class, chosen by the URL: SQLite (``sqlite:///path``, the default; the
standard library on worker threads, so several processes, worker and drctl, can share the file) and
PostgreSQL (``postgresql://user:password@host:port/database``; psycopg 3). The queries are written
once; a small backend layer holds what differs: the driver, placeholders, column types (JSON text and
ISO 8601 UTC text that sorts as time on SQLite, the seed schema's JSONB and TIMESTAMPTZ on PostgreSQL),
how a write keeps other writers out, how a list of tenant ids reaches a query, and how driver errors
become CatalogError. Each call opens its own connection, so a catalog object needs no closing and may
be used from any event loop. Passwords stay in this module: every message shows the URL redacted.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import re
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar
from urllib.parse import unquote

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Jsonb

from domain.errors import (
    CatalogError,
    CatalogUnavailable,
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

SQLITE_PREFIX = "sqlite:///"
POSTGRES_PREFIXES = ("postgresql://", "postgres://")
WHERE_TO_FIX = "check backup.catalog_url in the plan (or DR_CATALOG_URL)"
URL_FORMS = '"sqlite:///path/to/backup-catalog.db" or "postgresql://user:password@host:5432/database"'
# Seconds to wait for a PostgreSQL server, unless the URL says (libpq's default is to wait forever).
CONNECT_TIMEOUT = 10

T = TypeVar("T")

# The seed schema's columns and indexes, then the additions; {timestamp} and {json} are the backend's types.
SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS BackupCatalog (
        RecoveryPointId VARCHAR(128) PRIMARY KEY,
        TenantId VARCHAR(128) NOT NULL,
        Region VARCHAR(64) NOT NULL,
        BackupType VARCHAR(32) NOT NULL,
        CreatedAt {timestamp} NOT NULL,
        CompletedAt {timestamp} NULL,
        Status VARCHAR(32) NOT NULL,
        DataClasses {json} NOT NULL,
        Packages {json} NOT NULL,
        MerkleRoot VARCHAR(64) NULL,
        Signature TEXT NULL,
        KeyId VARCHAR(256) NULL,
        PolicyVersion VARCHAR(32) NOT NULL,
        TimeFrom {timestamp} NULL,
        TimeTo {timestamp} NULL,
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
TIMESTAMP_COLUMNS = frozenset({"CreatedAt", "CompletedAt", "TimeFrom", "TimeTo"})
JSON_COLUMNS = frozenset({"DataClasses", "Packages"})

# Every statement below uses ``?`` placeholders and no literal ``?`` or ``%`` (backends may rewrite them).
SELECT = f"SELECT {', '.join(COLUMNS)} FROM BackupCatalog"  # noqa: S608  (fixed column names, no input)
NEWEST_FIRST = " ORDER BY CreatedAt DESC, RecoveryPointId DESC"
UPSERT = (
    f"INSERT INTO BackupCatalog ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)}) "  # noqa: S608
    "ON CONFLICT (RecoveryPointId) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[1:])
)

# Each listed tenant's newest recovery point: for every id of {tenants} (the backend's one-column
# relation ``id``) one probe of idx_tenant_created, however many points the catalog holds. {status}
# is empty or a status filter, whose parameter comes before the ids'.
NEWEST_OF_TENANTS = (
    f"{SELECT} WHERE RecoveryPointId IN (SELECT (SELECT RecoveryPointId FROM BackupCatalog "  # noqa: S608  (no input)
    f"WHERE TenantId = wanted.id{{status}}{NEWEST_FIRST} LIMIT 1) FROM ({{tenants}}) AS wanted)"
)

# Fields that name a recovery point: registering the same id with other values is a conflict.
IDENTITY = ("tenant_id", "region", "backup_type", "created_at", "policy_version")

_PASSWORD_PARAMETER = re.compile(r"(?i)([?&]password=)([^&]*)")


def _split_user_info(url: str) -> tuple[str, str, str, str] | None:
    """``scheme://``, user, password and the rest (from ``@``) of a URL with a password in it, else None.

    The last ``@`` ends the user info, so an unescaped ``@`` or ``/`` in a password is still hidden."""
    scheme, sep, rest = url.partition("://")
    at = rest.rfind("@")
    if not sep or at < 0:
        return None
    user, colon, password = rest[:at].partition(":")
    return (scheme + sep, user, password, rest[at:]) if colon else None


def redact_url(url: str) -> str:
    """``url`` fit for messages and logs: its password (user info or ``password=``) shown as ``***``."""
    parts = _split_user_info(url)
    if parts is not None:
        scheme, user, _, rest = parts
        url = f"{scheme}{user}:***{rest}"
    return _PASSWORD_PARAMETER.sub(r"\1***", url)


def _secrets(url: str) -> tuple[str, ...]:
    """The passwords in ``url``, as written and decoded, to scrub from drivers' messages."""
    found: list[str] = []
    parts = _split_user_info(url)
    if parts is not None:
        found.append(parts[2])
    found += [m.group(2) for m in _PASSWORD_PARAMETER.finditer(url)]
    return tuple(sorted({s for p in found if p for s in (p, unquote(p))}, key=len, reverse=True))


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


def sqlite_path(url: str) -> Path:
    """The database file of a ``sqlite:///path`` URL (``sqlite:////abs/path`` for an absolute one)."""
    if url.startswith(POSTGRES_PREFIXES):
        raise CatalogError(f"backup catalog {redact_url(url)} is a PostgreSQL database, not a SQLite file")
    if not url.startswith(SQLITE_PREFIX) or url == SQLITE_PREFIX or url.endswith(":memory:"):
        raise CatalogError(f"unsupported backup catalog URL {redact_url(url)!r}: {WHERE_TO_FIX}; use {URL_FORMS}")
    return Path(url[len(SQLITE_PREFIX) :])


# ---- the backends: what differs between SQLite and PostgreSQL -----------------------------------


class _Session(Protocol):
    """Statements inside one transaction, with ``?`` placeholders."""

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> None: ...


class _Backend(ABC):
    """One catalog database: sessions (transactions), column types and value forms, error mapping."""

    timestamp_type: ClassVar[str]
    json_type: ClassVar[str]
    driver_errors: ClassVar[tuple[type[Exception], ...]]
    tenants_per_statement: ClassVar[int]  # how many tenant ids one statement of tenant_list() carries

    def __init__(self, url: str) -> None:
        self.shown = redact_url(url)
        self._secrets = _secrets(url)
        self._ready = False  # the schema exists (created once per catalog object)

    def schema(self) -> tuple[str, ...]:
        return tuple(s.format(timestamp=self.timestamp_type, json=self.json_type) for s in SCHEMA)

    @abstractmethod
    async def exists(self) -> bool:
        """Whether the catalog has been created; looking creates nothing."""

    @abstractmethod
    def session(self, *, lock: str | None = None) -> contextlib.AbstractAsyncContextManager[_Session]:
        """One transaction, committed when the block ends normally and rolled back otherwise. ``lock``:
        a recovery point id that no other writer may read-and-write until this transaction ends."""

    @abstractmethod
    def tenant_list(self, tenant_ids: Sequence[str]) -> tuple[str, tuple[Any, ...]]:
        """A subquery whose one column ``id`` holds ``tenant_ids``, and its arguments."""

    @abstractmethod
    def encode_json(self, value: Any) -> Any: ...

    @abstractmethod
    def decode_json(self, value: Any) -> Any: ...

    @abstractmethod
    def decode_timestamp(self, value: Any) -> str | None: ...

    @abstractmethod
    def is_conflict(self, error: Exception) -> bool:
        """Whether the driver's error is a uniqueness violation (two writers of one recovery point)."""

    def error(self, error: Exception, *, opening: bool) -> CatalogError:
        """A driver's error as CatalogError naming the catalog, without its password."""
        detail = " ".join(str(error).split()) or type(error).__name__
        for secret in self._secrets:
            detail = detail.replace(secret, "***")
        if opening:
            return CatalogUnavailable(f"cannot open the backup catalog {self.shown}: {detail}; {WHERE_TO_FIX}")
        kind = RecoveryPointConflict if self.is_conflict(error) else CatalogError
        return kind(f"backup catalog {self.shown}: {detail}")

    def encode(self, point: RecoveryPoint) -> tuple[Any, ...]:
        return (
            point.recovery_point_id,
            point.tenant_id,
            point.region,
            point.backup_type,
            point.created_at,
            point.completed_at,
            point.status,
            self.encode_json(list(point.data_classes)),
            self.encode_json([package_to_json(pkg) for pkg in point.packages]),
            point.merkle_root,
            point.signature,
            point.key_id,
            point.policy_version,
            point.time_from,
            point.time_to,
            point.manifest_blob,
            point.manifest_uri,
            point.failure,
        )

    def decode(self, row: tuple[Any, ...]) -> RecoveryPoint:
        v: dict[str, Any] = dict(zip(COLUMNS, row, strict=True))
        for column in TIMESTAMP_COLUMNS:
            v[column] = self.decode_timestamp(v[column])
        for column in JSON_COLUMNS:
            v[column] = self.decode_json(v[column])
        return RecoveryPoint(
            recovery_point_id=v["RecoveryPointId"],
            tenant_id=v["TenantId"],
            region=v["Region"],
            backup_type=v["BackupType"],
            created_at=v["CreatedAt"],
            completed_at=v["CompletedAt"],
            status=v["Status"],
            data_classes=tuple(v["DataClasses"]),
            packages=tuple(package_from_json(p) for p in v["Packages"]),
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


class _SqliteSession:
    """Statements on the session's own thread, where its connection lives."""

    def __init__(self, thread: ThreadPoolExecutor, conn: sqlite3.Connection) -> None:
        self._thread = thread
        self._conn = conn

    async def _call(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn)

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return await self._call(lambda: self._conn.execute(sql, args).fetchall())

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        await self._call(lambda: self._conn.execute(sql, args))


class _SqliteBackend(_Backend):
    """A file; JSON as text and timestamps as ISO 8601 UTC text (which sorts as time)."""

    timestamp_type = "TIMESTAMP"
    json_type = "JSON"
    driver_errors = (sqlite3.Error, OSError)
    # A parameter per id: with the status, far below the 999 a statement may have before SQLite 3.32.
    tenants_per_statement = 400

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.path = sqlite_path(url)

    async def exists(self) -> bool:
        return self.path.exists()

    def _connect(self) -> sqlite3.Connection:
        if not self._ready:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode, so the session's own BEGIN decides the locking.
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        if not self._ready:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                for statement in self.schema():
                    conn.execute(statement)
            except BaseException:
                conn.close()
                raise
            self._ready = True
        return conn

    @contextlib.asynccontextmanager
    async def session(self, *, lock: str | None = None) -> AsyncIterator[_Session]:
        # A thread of its own per session: a writer waiting for SQLite's lock then blocks only its
        # own thread, never one that the lock's holder needs for its next statement.
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="backup-catalog")
        try:
            try:
                conn = await asyncio.get_running_loop().run_in_executor(thread, self._connect)
            except self.driver_errors as exc:
                raise self.error(exc, opening=True) from None
            session = _SqliteSession(thread, conn)
            try:
                # BEGIN IMMEDIATE takes the database's write lock before the read, so two writers
                # never both read "absent" and both insert.
                await session.execute("BEGIN" if lock is None else "BEGIN IMMEDIATE")
                yield session
                await session.execute("COMMIT")
            except self.driver_errors as exc:
                raise self.error(exc, opening=False) from None
            finally:
                # Closing rolls back whatever was not committed; queued behind any statement still running.
                thread.submit(conn.close)
        finally:
            thread.shutdown(wait=False)

    def tenant_list(self, tenant_ids: Sequence[str]) -> tuple[str, tuple[Any, ...]]:
        rows = ", ".join("(?)" for _ in tenant_ids)
        return f"SELECT column1 AS id FROM (VALUES {rows})", tuple(tenant_ids)  # noqa: S608  (placeholders only)

    def encode_json(self, value: Any) -> Any:
        return json.dumps(value)

    def decode_json(self, value: Any) -> Any:
        return json.loads(value)

    def decode_timestamp(self, value: Any) -> str | None:
        return None if value is None else str(value)

    def is_conflict(self, error: Exception) -> bool:
        return isinstance(error, sqlite3.IntegrityError)


class _PostgresSession:
    def __init__(self, conn: psycopg.AsyncConnection[tuple[Any, ...]]) -> None:
        self._conn = conn

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cursor = await self._conn.execute(sql.replace("?", "%s"), args)
        return await cursor.fetchall()

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        await self._conn.execute(sql.replace("?", "%s"), args)


class _PostgresBackend(_Backend):
    """A server; the seed schema's JSONB and TIMESTAMPTZ columns, timestamps read back as ISO 8601 UTC."""

    timestamp_type = "TIMESTAMPTZ"
    json_type = "JSONB"
    driver_errors = (psycopg.Error,)
    # One array parameter however many ids; the limit only keeps each answer to a few megabytes.
    tenants_per_statement = 10_000
    # Serializes schema creation: concurrent CREATE TABLE IF NOT EXISTS can still collide in PostgreSQL.
    SCHEMA_LOCK = 0x0DCA7A1060

    def __init__(self, url: str) -> None:
        super().__init__(url)
        try:
            given = conninfo_to_dict(url)
        except psycopg.Error:
            # libpq's message may quote the URL, password and all.
            raise CatalogError(
                f"invalid PostgreSQL backup catalog URL {self.shown!r}: {WHERE_TO_FIX}; "
                'use "postgresql://user:password@host:5432/database"'
            ) from None
        self._url = url
        self._options: dict[str, Any] = {
            key: value
            for key, value in (("connect_timeout", CONNECT_TIMEOUT), ("application_name", "dr-backup-catalog"))
            if key not in given
        }

    async def _connect(self) -> psycopg.AsyncConnection[tuple[Any, ...]]:
        try:
            return await psycopg.AsyncConnection.connect(self._url, **self._options)
        except psycopg.Error as exc:
            raise self.error(exc, opening=True) from None

    async def exists(self) -> bool:
        conn = await self._connect()
        try:
            async with conn:
                cursor = await conn.execute("SELECT to_regclass('backupcatalog') IS NOT NULL")
                row = await cursor.fetchone()
        except psycopg.Error as exc:
            raise self.error(exc, opening=False) from None
        return bool(row and row[0])

    @contextlib.asynccontextmanager
    async def session(self, *, lock: str | None = None) -> AsyncIterator[_Session]:
        conn = await self._connect()
        try:
            # Leaving the block commits, or rolls back on an error, and closes the connection.
            async with conn:
                if not self._ready:
                    async with conn.transaction():
                        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (self.SCHEMA_LOCK,))
                        for statement in self.schema():
                            await conn.execute(statement)
                    self._ready = True
                if lock is not None:
                    # A row lock cannot hold a row that does not exist yet; this holds its id instead.
                    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (lock,))
                yield _PostgresSession(conn)
        except psycopg.Error as exc:
            raise self.error(exc, opening=False) from None

    def tenant_list(self, tenant_ids: Sequence[str]) -> tuple[str, tuple[Any, ...]]:
        return "SELECT unnest(?::text[]) AS id", (list(tenant_ids),)

    def encode_json(self, value: Any) -> Any:
        return Jsonb(value)

    def decode_json(self, value: Any) -> Any:
        return value

    def decode_timestamp(self, value: Any) -> str | None:
        return None if value is None else utc_iso(value)

    def is_conflict(self, error: Exception) -> bool:
        return isinstance(error, psycopg.errors.UniqueViolation)


def _backend_for(url: str) -> _Backend:
    if url.startswith(POSTGRES_PREFIXES):
        return _PostgresBackend(url)
    return _SqliteBackend(url)


# ---- the catalog ---------------------------------------------------------------------------------


class BackupCatalog:
    """Recovery points by tenant and time; every method is safe to repeat (read, compare, then write)."""

    def __init__(self, url: str) -> None:
        self._db = _backend_for(url)
        # For messages: the URL with its password hidden.
        self.url = self._db.shown

    async def exists(self) -> bool:
        """Whether the catalog has been created (the SQLite file, the PostgreSQL table); looking creates nothing."""
        return await self._db.exists()

    async def _query(self, sql: str, args: Sequence[Any]) -> list[RecoveryPoint]:
        async with self._db.session() as session:
            rows = await session.fetch(sql, args)
        return [self._db.decode(row) for row in rows]

    async def _transact(
        self, recovery_point_id: str, change: Callable[[RecoveryPoint | None], RecoveryPoint | None]
    ) -> tuple[RecoveryPoint, bool]:
        """Read the row, let ``change`` decide its new value (None: leave it), write it, in one transaction."""
        async with self._db.session(lock=recovery_point_id) as session:
            rows = await session.fetch(f"{SELECT} WHERE RecoveryPointId = ?", (recovery_point_id,))
            current = self._db.decode(rows[0]) if rows else None
            wanted = change(current)
            if wanted is not None and wanted != current:
                await session.execute(UPSERT, self._db.encode(wanted))
                return wanted, True
        if current is None:
            raise RecoveryPointNotFound(f"recovery point {recovery_point_id!r} is not in the catalog")
        return current, False

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
        found = await self._query(f"{SELECT} WHERE RecoveryPointId = ?", (recovery_point_id,))
        if not found:
            raise RecoveryPointNotFound(f"recovery point {recovery_point_id!r} is not in the catalog")
        return found[0]

    async def list_for_tenant(
        self, tenant_id: str, *, status: str | None = None, limit: int | None = None
    ) -> list[RecoveryPoint]:
        """The tenant's recovery points, newest first."""
        return await self._newest_first(["TenantId = ?"], [tenant_id], status=status, limit=limit)

    async def newest_for_tenants(
        self, tenant_ids: Iterable[str], *, status: str | None = None
    ) -> dict[str, RecoveryPoint]:
        """Each tenant's newest recovery point (of ``status`` if given), the one ``list_for_tenant(tenant,
        status=status, limit=1)`` returns, for many tenants at once: one connection and one statement per
        ``tenants_per_statement`` tenants instead of a connection and a query per tenant. Tenants
        without one are left out; the others keep the order of ``tenant_ids``."""
        if isinstance(tenant_ids, str):
            raise TypeError(f"tenant_ids takes a collection of tenant ids, not one string: pass [{tenant_ids!r}]")
        wanted = list(dict.fromkeys(tenant_ids))
        if not wanted:
            return {}
        step = self._db.tenants_per_statement
        status_filter, status_args = ("", ()) if status is None else (" AND Status = ?", (status,))
        found: dict[str, RecoveryPoint] = {}
        async with self._db.session() as session:
            for start in range(0, len(wanted), step):
                tenants, tenant_args = self._db.tenant_list(wanted[start : start + step])
                sql = NEWEST_OF_TENANTS.format(status=status_filter, tenants=tenants)
                for row in await session.fetch(sql, (*status_args, *tenant_args)):
                    point = self._db.decode(row)
                    found[point.tenant_id] = point
        return {tenant: found[tenant] for tenant in wanted if tenant in found}

    async def list_recent(self, *, status: str | None = None, limit: int | None = None) -> list[RecoveryPoint]:
        """Every tenant's recovery points, newest first (what ``drctl backup list`` shows)."""
        return await self._newest_first([], [], status=status, limit=limit)

    async def _newest_first(
        self, conditions: list[str], args: list[Any], *, status: str | None, limit: int | None
    ) -> list[RecoveryPoint]:
        """The recovery points meeting ``conditions`` (and of ``status`` if given), newest first, at most ``limit``."""
        if status is not None:
            conditions = [*conditions, "Status = ?"]
            args = [*args, status]
        query = SELECT + (" WHERE " + " AND ".join(conditions) if conditions else "") + NEWEST_FIRST
        if limit is not None:
            query += " LIMIT ?"
            args = [*args, limit]
        return await self._query(query, args)

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

        async with self._db.session() as session:
            found = await session.fetch(
                f"{SELECT} WHERE TenantId = ? AND Status = ? AND CreatedAt <= ? AND CreatedAt >= ?"
                f"{NEWEST_FIRST} LIMIT 1",
                (tenant_id, STATUS_COMPLETED, utc_iso(moment), utc_iso(oldest)),
            )
            first = await session.fetch(
                f"{SELECT} WHERE TenantId = ? AND Status = ? AND CreatedAt >= ? ORDER BY CreatedAt LIMIT 1",
                (tenant_id, STATUS_COMPLETED, utc_iso(oldest)),
            )
        if not found:
            oldest_point = self._db.decode(first[0]) if first else None
            after = (
                f"; its oldest completed one in the retention window is {oldest_point.recovery_point_id} "
                f"created {oldest_point.created_at}"
                if oldest_point
                else "; it has none in the retention window"
            )
            raise RecoveryPointNotFound(
                f"tenant {tenant_id!r} has no completed recovery point at or before {utc_iso(moment)}{after}"
            )
        return self._db.decode(found[0])


def _check_identity(current: RecoveryPoint, wanted: RecoveryPoint) -> None:
    have, want = asdict(current), asdict(wanted)
    differing = [f"{key} {have[key]!r} != {want[key]!r}" for key in IDENTITY if have[key] != want[key]]
    if differing:
        raise RecoveryPointConflict(
            f"recovery point {current.recovery_point_id!r} is already registered with other values: "
            + "; ".join(differing)
        )
