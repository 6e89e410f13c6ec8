"""Recovery points in Blob Storage: copy a tenant's live segments into signed packages, register
them in the backup catalog, and restore them through a read-only quarantine.

Every blob copy streams through the worker in blocks (constant memory), hashing on the way and
committing the block list only when the hash is right, so a copy is all or nothing. Every activity
reads first and writes only what is missing, so a retry or a second run changes nothing.

Read-only quarantines: a sealed quarantine carries container metadata ``readonly=true``. Azurite does
not enforce immutability policies, and a real account's policy would also stop the clean-up, so the
orchestrator enforces the flag itself: copy_to_quarantine refuses to write into a sealed quarantine
and promote refuses to read from one that is not sealed.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
import os
import zlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import BlobBlock, BlobProperties, ContentSettings
from azure.storage.blob.aio import BlobClient, ContainerClient
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.azure import AzureClients, Estates, azure_call, heartbeat, invalid_input, public_url
from activities.catalog import BackupCatalog
from activities.integrity import (
    INTEGRITY_ERROR_TYPE,
    build_manifest,
    canonical_json,
    key_id_of,
    load_private_key,
    passphrase_from_env,
    public_key_b64,
    sha256_stream,
    sign_manifest,
    trusted_keys,
    verify_manifest,
)
from domain.errors import CatalogError, CatalogUnavailable, QuarantineError, RecoveryPointNotFound
from domain.messages.backups import (
    CATALOG_MISMATCH,
    META_DATA_CLASS,
    META_FROM,
    META_READONLY,
    META_RECORDS,
    META_RECOVERY_POINT,
    META_RESTORE,
    META_SHA256,
    META_SOURCE_ETAG,
    META_TENANT,
    META_TO,
    SEGMENTS_PREFIX,
    STATUS_COMPLETED,
    STATUS_FAILED,
    STATUS_IN_PROGRESS,
    CleanupQuarantineInput,
    CleanupQuarantineResult,
    CopyPackageInput,
    CopyPackageResult,
    CopyToQuarantineInput,
    CopyToQuarantineResult,
    FindRecoveryPointInput,
    FindRecoveryPointResult,
    ListSegmentsInput,
    ListSegmentsResult,
    Package,
    PromoteInput,
    PromoteResult,
    RecoveryPoint,
    RecoveryPointAgesInput,
    RecoveryPointAgesResult,
    RegisterRecoveryPointInput,
    RegisterRecoveryPointResult,
    SealQuarantineInput,
    SealQuarantineResult,
    Segment,
    TenantRecoveryPointAge,
    UndoPromotionInput,
    UndoPromotionResult,
    VerifyManifestInput,
    VerifyManifestResult,
    VerifyPackageInput,
    VerifyPackageResult,
    WriteManifestInput,
    WriteManifestResult,
    manifest_blob,
    package_blob,
    parse_utc,
    promotion_journal_blob,
    replaced_blob,
    signature_blob,
    utc_iso,
)
from domain.messages.integrity import IntegrityProblem, Manifest, PackageEntry, Signature
from domain.plan import DrPlan

# Decompressed bytes looked at per step when counting records, whatever a block inflates to.
INFLATE_STEP = 1 << 20
PROMOTION_STARTED = "started"
PROMOTION_DONE = "promoted"
PROMOTION_UNDONE = "undone"
# Catalog reads in flight at once when looking up every tenant's newest recovery point.


def _catalog_error(error: CatalogError) -> ApplicationError:
    """A refusal is final; a catalog that could not be reached is retried by the activity's policy."""
    return ApplicationError(
        str(error), type=type(error).__name__, non_retryable=not isinstance(error, CatalogUnavailable)
    )


def _quarantine_error(message: str) -> ApplicationError:
    return ApplicationError(message, type=QuarantineError.__name__, non_retryable=True)


class RecordCounter:
    """Counts the JSON lines of a gzip stream as its blocks pass, inflating a bounded piece at a time,
    and hands each line to ``on_line`` (numbered from 0) when given one.

    A malformed stream is reported by ``finish``, after the copy's hash check, so an altered package
    is reported as altered rather than as undecodable."""

    def __init__(self, what: str, on_line: Callable[[int, bytes], None] | None = None) -> None:
        self.what = what
        self.records = 0
        self._on_line = on_line
        self._partial = b""  # the unfinished last line, kept only when lines are handed on
        self._inflate = zlib.decompressobj(wbits=31)
        self._open_line = False
        self._in_member = False
        self._error: str | None = None

    def _lines(self, out: bytes) -> None:
        if self._on_line is None:
            self.records += out.count(b"\n")
            return
        *lines, self._partial = (self._partial + out).split(b"\n")
        for line in lines:
            self._on_line(self.records, line)
            self.records += 1

    def feed(self, data: bytes) -> None:
        pending = b"" if self._error else data
        try:
            while pending:
                out = self._inflate.decompress(pending, INFLATE_STEP)
                if out:
                    self._lines(out)
                    self._open_line = not out.endswith(b"\n")
                self._in_member = not self._inflate.eof
                if self._inflate.eof:  # several gzip members, one after the other
                    pending = self._inflate.unused_data
                    self._inflate = zlib.decompressobj(wbits=31)
                else:
                    pending = self._inflate.unconsumed_tail
        except zlib.error as exc:
            self._error = str(exc)

    def finish(self) -> int:
        if self._error is not None:
            raise invalid_input(f"{self.what} is not gzip-compressed JSON lines: {self._error}", "InvalidSegment")
        if self._in_member:
            raise invalid_input(f"{self.what} is a truncated gzip stream", "InvalidSegment")
        if self._open_line:
            if self._on_line is not None:
                self._on_line(self.records, self._partial)
            self.records += 1
            self._open_line = False
        return self.records


@dataclasses.dataclass(frozen=True)
class _Copied:
    sha256: str
    bytes: int
    records: int | None


def _block_id(index: int) -> str:
    # Every block id of a blob must have the same length.
    return base64.b64encode(f"{index:08d}".encode()).decode("ascii")


async def _stream_copy(
    source: BlobClient,
    target: BlobClient,
    *,
    what: str,
    metadata: Mapping[str, str],
    source_etag: str | None = None,
    expect_sha256: str | None = None,
    count_records: bool = False,
    content_type: str | None = None,
) -> _Copied:
    """Copy ``source`` to ``target`` through this worker, block by block, hashing on the way.

    The target appears only at the final commit, and only when the hash is ``expect_sha256`` (if
    given); a source changed since ``source_etag`` fails the copy instead of mixing versions.
    """
    digest = hashlib.sha256()
    size = 0
    counter = RecordCounter(what) if count_records else None
    blocks: list[BlobBlock] = []
    conditions: dict[str, Any] = (
        {"etag": source_etag, "match_condition": MatchConditions.IfNotModified} if source_etag else {}
    )
    try:
        async with azure_call(what, "copy"):
            downloader = await source.download_blob(**conditions)
            async for chunk in downloader.chunks():
                digest.update(chunk)
                size += len(chunk)
                if counter is not None:
                    counter.feed(chunk)
                block = BlobBlock(block_id=_block_id(len(blocks)))
                await target.stage_block(block.id, chunk, length=len(chunk))
                blocks.append(block)
                heartbeat({"copying": what, "bytes": size})
    except ResourceModifiedError:
        # Written to while being read: a retry copies the new version whole.
        raise ApplicationError(
            f"{what} changed while it was being copied; nothing was written", type="SourceChanged"
        ) from None
    actual = digest.hexdigest()
    if expect_sha256 is not None and actual != expect_sha256:
        raise ApplicationError(
            f"{what}: SHA-256 {actual} does not match the expected {expect_sha256}; nothing was written",
            type=INTEGRITY_ERROR_TYPE,
            non_retryable=True,
        )
    records = counter.finish() if counter is not None else None
    stamped = dict(metadata) | {META_SHA256: actual}
    if records is not None:
        stamped[META_RECORDS] = str(records)
    settings = ContentSettings(content_type=content_type) if content_type else None
    async with azure_call(f"blob '{target.blob_name}' in container '{target.container_name}'", "write"):
        await target.commit_block_list(blocks, metadata=stamped, content_settings=settings)
    return _Copied(actual, size, records)


async def _properties(blob: BlobClient) -> BlobProperties | None:
    """The blob's properties and metadata, or None if it does not exist."""
    async with azure_call(f"blob '{blob.blob_name}' in container '{blob.container_name}'", "read"):
        try:
            return await blob.get_blob_properties()
        except ResourceNotFoundError:
            return None


async def _container_metadata(container: ContainerClient) -> dict[str, str] | None:
    async with azure_call(f"container '{container.container_name}'", "read"):
        try:
            properties = await container.get_container_properties()
        except ResourceNotFoundError:
            return None
    return dict(properties.metadata or {})


async def _ensure_container(container: ContainerClient, metadata: Mapping[str, str] | None = None) -> bool:
    """Create the container if it is missing; True if this call created it."""
    async with azure_call(f"container '{container.container_name}'", "create"):
        try:
            await container.create_container(metadata=dict(metadata or {}))
        except ResourceExistsError:
            return False
    return True


async def _read_blob(blob: BlobClient) -> bytes | None:
    async with azure_call(f"blob '{blob.blob_name}' in container '{blob.container_name}'", "read"):
        try:
            downloader = await blob.download_blob()
        except ResourceNotFoundError:
            return None
        return await downloader.readall()


async def _write_blob(blob: BlobClient, data: bytes, *, content_type: str = "application/json") -> None:
    async with azure_call(f"blob '{blob.blob_name}' in container '{blob.container_name}'", "write"):
        await blob.upload_blob(data, overwrite=True, content_settings=ContentSettings(content_type=content_type))


async def _list_blobs(container: ContainerClient, prefix: str) -> dict[str, BlobProperties]:
    async with azure_call(f"container '{container.container_name}'", "list blobs of"):
        return {b.name: b async for b in container.list_blobs(name_starts_with=prefix, include=["metadata"])}


def _meta(properties: BlobProperties | None, key: str) -> str | None:
    if properties is None:
        return None
    value = (properties.metadata or {}).get(key)
    return str(value) if value is not None else None


def _iso(value: dt.datetime | None) -> str:
    return utc_iso(value) if value is not None else ""


def _package_entry(package: Package) -> PackageEntry:
    return PackageEntry(name=package.name, bytes=package.bytes, records=package.records, sha256=package.sha256)


def _time_range(packages: tuple[Package, ...], fallback: str) -> tuple[str, str]:
    starts = [p.time_from for p in packages if p.time_from]
    ends = [p.time_to for p in packages if p.time_to]
    return (min(starts) if starts else fallback, max(ends) if ends else fallback)


class BackupActivities:
    """Backups and restores of tenant data: Blob Storage through each plan's clients, the catalog,
    and the orchestrator's manifest-signing key."""

    def __init__(
        self,
        estates: Estates,
        catalog: BackupCatalog,
        signing_key: Ed25519PrivateKey,
        extra_trusted_keys: tuple[str, ...] = (),
    ) -> None:
        self.estates = estates
        self.catalog = catalog
        self.signing_key = signing_key
        self.key_id = key_id_of(signing_key)
        self._trusted = trusted_keys((public_key_b64(signing_key), *extra_trusted_keys))

    @classmethod
    def from_env(cls, estates: Estates, env: Mapping[str, str] | None = None) -> BackupActivities:
        """Catalog and signing key from ``DR_CATALOG_URL`` / ``DR_SIGNING_KEY`` (passphrase in
        ``DR_SIGNING_KEY_PASSPHRASE`` if the key is encrypted), else from the first plan's [backup]."""
        e = os.environ if env is None else env
        plans = [estates[name].plan for name in estates.names]
        first = plans[0].backup if plans else None
        catalog_url = e.get("DR_CATALOG_URL") or (first.catalog_url if first else "")
        key_path = e.get("DR_SIGNING_KEY") or (first.signing_key if first else "")
        if not key_path:
            raise CatalogError("no manifest-signing key: set backup.signing_key in the plan or DR_SIGNING_KEY")
        passphrase = passphrase_from_env("DR_SIGNING_KEY_PASSPHRASE", e) if e.get("DR_SIGNING_KEY_PASSPHRASE") else None
        extra = tuple(key for plan in plans for key in plan.backup.trusted_keys)
        return cls(estates, BackupCatalog(catalog_url), load_private_key(key_path, passphrase), extra)

    def _clients(self, plan: str) -> AzureClients:
        return self.estates[plan]

    def _live(self, clients: AzureClients, tenant_id: str) -> ContainerClient:
        try:
            clients.plan.tenant(tenant_id)
        except KeyError:
            raise invalid_input(f"tenant {tenant_id!r} is not in plan {clients.plan.name!r}") from None
        return clients.blob.get_container_client(clients.plan.backup.live_container(tenant_id))

    def _backups(self, clients: AzureClients) -> ContainerClient:
        return clients.blob.get_container_client(clients.plan.backup.backup_container)

    def _quarantine(self, clients: AzureClients, restore_id: str) -> ContainerClient:
        return clients.blob.get_container_client(clients.plan.backup.quarantine_container(restore_id))

    # --- backup ----------------------------------------------------------------------------

    @activity.defn(name="backups.list_segments")
    async def list_segments(self, request: ListSegmentsInput) -> ListSegmentsResult:
        """The tenant's live segments (blobs under segments/), by name; none when its live container
        does not exist (a tenant that never wrote data has nothing to back up, which is no error)."""
        clients = self._clients(request.plan)
        live = self._live(clients, request.tenant_id)
        if await _container_metadata(live) is None:
            return ListSegmentsResult(request.plan, request.tenant_id, live.container_name, (), container_exists=False)
        found = await _list_blobs(live, SEGMENTS_PREFIX)
        segments = tuple(
            Segment(
                name=name,
                bytes=int(blob.size or 0),
                etag=str(blob.etag),
                last_modified=_iso(blob.last_modified),
                data_class=_meta(blob, META_DATA_CLASS) or "hot",
                records=int(records) if (records := _meta(blob, META_RECORDS)) else None,
                time_from=_meta(blob, META_FROM),
                time_to=_meta(blob, META_TO),
            )
            for name, blob in sorted(found.items())
        )
        return ListSegmentsResult(request.plan, request.tenant_id, live.container_name, segments)

    @activity.defn(name="backups.copy_package")
    async def copy_package(self, request: CopyPackageInput) -> CopyPackageResult:
        """Copy one live segment into the recovery point, hashing and counting its records on the way;
        skipped when the package already holds the same version of the segment."""
        if not request.segment.startswith(SEGMENTS_PREFIX):
            raise invalid_input(f"segment {request.segment!r} is not under {SEGMENTS_PREFIX}")
        clients = self._clients(request.plan)
        live = self._live(clients, request.tenant_id)
        backups = self._backups(clients)
        source = live.get_blob_client(request.segment)
        target = backups.get_blob_client(package_blob(request.recovery_point_id, request.segment))
        what = f"segment '{request.segment}' of tenant {request.tenant_id}"
        source_props = await _properties(source)
        if source_props is None:
            raise invalid_input(f"{what} does not exist in container '{live.container_name}'", "SegmentNotFound")
        existing = await _properties(target)
        recorded_sha, recorded_records = _meta(existing, META_SHA256), _meta(existing, META_RECORDS)
        unchanged = _meta(existing, META_SOURCE_ETAG) == str(source_props.etag)
        if existing is not None and recorded_sha and recorded_records is not None and unchanged:
            package = Package(
                name=request.segment,
                blob=target.blob_name,
                uri=public_url(target.url),
                sha256=recorded_sha,
                bytes=int(existing.size or 0),
                records=int(recorded_records),
                data_class=_meta(existing, META_DATA_CLASS) or request.data_class,
                time_from=_meta(existing, META_FROM),
                time_to=_meta(existing, META_TO),
            )
            return CopyPackageResult(request.plan, request.recovery_point_id, package, uploaded=False)
        await _ensure_container(backups)
        time_from, time_to = _meta(source_props, META_FROM), _meta(source_props, META_TO)
        metadata = {
            META_SOURCE_ETAG: str(source_props.etag),
            META_DATA_CLASS: request.data_class,
            META_TENANT: request.tenant_id,
            META_RECOVERY_POINT: request.recovery_point_id,
        }
        metadata |= {k: v for k, v in ((META_FROM, time_from), (META_TO, time_to)) if v}
        copied = await _stream_copy(
            source,
            target,
            what=what,
            metadata=metadata,
            source_etag=str(source_props.etag),
            count_records=True,
            content_type="application/gzip",
        )
        activity.logger.info("copied %s into %s (%d bytes)", what, target.blob_name, copied.bytes)
        package = Package(
            name=request.segment,
            blob=target.blob_name,
            uri=public_url(target.url),
            sha256=copied.sha256,
            bytes=copied.bytes,
            records=copied.records or 0,
            data_class=request.data_class,
            time_from=time_from,
            time_to=time_to,
        )
        return CopyPackageResult(request.plan, request.recovery_point_id, package, uploaded=True)

    @activity.defn(name="backups.write_manifest")
    async def write_manifest(self, request: WriteManifestInput) -> WriteManifestResult:
        """Write the recovery point's manifest (canonical JSON) and its detached Ed25519 signature;
        unchanged blobs are not rewritten (Ed25519 signatures are deterministic)."""
        clients = self._clients(request.plan)
        backups = self._backups(clients)
        time_from, time_to = _time_range(request.packages, request.created_at)
        manifest = build_manifest(
            tenant_id=request.tenant_id,
            recovery_point_id=request.recovery_point_id,
            created_at=request.created_at,
            time_from=time_from,
            time_to=time_to,
            policy_version=clients.plan.backup.policy_version,
            data_classes=request.data_classes,
            region=request.region,
            packages=[_package_entry(p) for p in sorted(request.packages, key=lambda p: p.name)],
        )
        signature = sign_manifest(manifest, self.signing_key)
        manifest_bytes = canonical_json(manifest.to_dict())
        signature_bytes = canonical_json(dataclasses.asdict(signature))
        manifest_client = backups.get_blob_client(manifest_blob(request.recovery_point_id))
        signature_client = backups.get_blob_client(signature_blob(request.recovery_point_id))
        stale = [
            (client, data)
            for client, data in ((manifest_client, manifest_bytes), (signature_client, signature_bytes))
            if await _read_blob(client) != data
        ]
        if stale:
            await self._refuse_rewrite_of_completed(request.recovery_point_id)
            await _ensure_container(backups)
            # The manifest first: a reader needs both, and the signature names what it covers.
            for client, data in stale:
                await _write_blob(client, data)
        written = bool(stale)
        return WriteManifestResult(
            plan=request.plan,
            recovery_point_id=request.recovery_point_id,
            manifest_blob=manifest_client.blob_name,
            manifest_uri=public_url(manifest_client.url),
            signature_blob=signature_client.blob_name,
            manifest_sha256=hashlib.sha256(manifest_bytes).hexdigest(),
            merkle_root=manifest.merkle_root,
            signature=signature.signature,
            key_id=signature.key_id,
            time_from=time_from,
            time_to=time_to,
            written=written,
        )

    async def _refuse_rewrite_of_completed(self, recovery_point_id: str) -> None:
        try:
            point = await self.catalog.get(recovery_point_id)
        except RecoveryPointNotFound:
            return
        if point.status == STATUS_COMPLETED:
            raise invalid_input(
                f"recovery point {recovery_point_id} is completed; its manifest cannot be replaced",
                "RecoveryPointConflict",
            )

    @activity.defn(name="backups.register_recovery_point")
    async def register_recovery_point(self, request: RegisterRecoveryPointInput) -> RegisterRecoveryPointResult:
        """Bring the catalog row to the requested status: registered in progress, then completed
        with its manifest, or failed with a reason."""
        clients = self._clients(request.plan)
        wanted = RecoveryPoint(
            recovery_point_id=request.recovery_point_id,
            tenant_id=request.tenant_id,
            region=request.region,
            backup_type=request.backup_type,
            created_at=request.created_at,
            status=STATUS_IN_PROGRESS,
            policy_version=clients.plan.backup.policy_version,
            data_classes=request.data_classes,
            packages=request.packages,
        )
        try:
            point, changed = await self.catalog.register(wanted)
            if request.status == STATUS_COMPLETED:
                missing = [
                    name
                    for name, value in (
                        ("merkle_root", request.merkle_root),
                        ("signature", request.signature),
                        ("key_id", request.key_id),
                        ("manifest_blob", request.manifest_blob),
                        ("manifest_uri", request.manifest_uri),
                    )
                    if not value
                ]
                if missing:
                    raise invalid_input(f"completing {request.recovery_point_id} needs {', '.join(missing)}")
                point, completed = await self.catalog.complete(
                    request.recovery_point_id,
                    packages=request.packages,
                    merkle_root=request.merkle_root or "",
                    signature=request.signature or "",
                    key_id=request.key_id or "",
                    manifest_blob=request.manifest_blob or "",
                    manifest_uri=request.manifest_uri or "",
                    time_from=request.time_from,
                    time_to=request.time_to,
                )
                changed = changed or completed
            elif request.status == STATUS_FAILED:
                point, failed = await self.catalog.fail(request.recovery_point_id, request.failure or "unknown failure")
                changed = changed or failed
            elif request.status != STATUS_IN_PROGRESS:
                raise invalid_input(f"unknown recovery point status {request.status!r}")
        except CatalogError as exc:
            raise _catalog_error(exc) from None
        return RegisterRecoveryPointResult(request.plan, point, changed)

    # --- restore: choose and verify ----------------------------------------------------------

    @activity.defn(name="backups.find_recovery_point")
    async def find_recovery_point(self, request: FindRecoveryPointInput) -> FindRecoveryPointResult:
        """The completed recovery point a restore uses: the one named, the newest at or before a time
        (within the plan's retention), or the newest."""
        clients = self._clients(request.plan)
        tenant = request.tenant_id
        try:
            if request.recovery_point_id:
                point = await self.catalog.get(request.recovery_point_id)
                if point.tenant_id != tenant:
                    owner = point.tenant_id
                    raise invalid_input(
                        f"recovery point {point.recovery_point_id} belongs to tenant {owner!r}, not {tenant!r}"
                    )
                if point.status != STATUS_COMPLETED:
                    raise invalid_input(
                        f"recovery point {point.recovery_point_id} is {point.status}, not completed",
                        "RecoveryPointNotFound",
                    )
            elif request.at:
                point = await self.catalog.newest_at_or_before(
                    tenant, request.at, retention_days=clients.plan.backup.retention_days
                )
            else:
                newest = await self.catalog.list_for_tenant(tenant, status=STATUS_COMPLETED, limit=1)
                if not newest:
                    raise RecoveryPointNotFound(f"tenant {tenant!r} has no completed recovery point")
                point = newest[0]
        except CatalogError as exc:
            raise _catalog_error(exc) from None
        return FindRecoveryPointResult(request.plan, point)

    @activity.defn(name="backups.recovery_point_ages")
    async def recovery_point_ages(self, request: RecoveryPointAgesInput) -> RecoveryPointAgesResult:
        """Each tenant's newest completed recovery point, its age now and the tenant's RPO target."""
        plan = self._clients(request.plan).plan
        try:
            return await tenant_recovery_point_ages(self.catalog, plan, dt.datetime.now(dt.UTC))
        except CatalogError as exc:
            raise _catalog_error(exc) from None

    @activity.defn(name="backups.verify_manifest")
    async def verify_manifest(self, request: VerifyManifestInput) -> VerifyManifestResult:
        """Check the manifest's signature (by a trusted key) and Merkle root, that the catalog agrees
        with it, and the measured package digests if given; every problem is listed."""
        clients = self._clients(request.plan)
        try:
            point = await self.catalog.get(request.recovery_point_id)
        except CatalogError as exc:
            raise _catalog_error(exc) from None
        backups = self._backups(clients)
        manifest_client = backups.get_blob_client(point.manifest_blob or manifest_blob(point.recovery_point_id))
        manifest_bytes = await _read_blob(manifest_client)
        signature_bytes = await _read_blob(backups.get_blob_client(signature_blob(point.recovery_point_id)))
        if manifest_bytes is None or signature_bytes is None:
            missing = "manifest" if manifest_bytes is None else "signature"
            raise ApplicationError(
                f"recovery point {point.recovery_point_id}: its {missing} blob is missing from container "
                f"'{backups.container_name}'",
                type=INTEGRITY_ERROR_TYPE,
                non_retryable=True,
            )
        try:
            manifest = Manifest.from_dict(json.loads(manifest_bytes))
            signature = Signature(**json.loads(signature_bytes))
        except (ValueError, KeyError, TypeError) as exc:
            raise ApplicationError(
                f"recovery point {point.recovery_point_id}: its manifest or signature blob is malformed ({exc})",
                type=INTEGRITY_ERROR_TYPE,
                non_retryable=True,
            ) from None
        result = verify_manifest(manifest, signature, self._trusted, request.actual)
        extra = [
            IntegrityProblem(CATALOG_MISMATCH, f"the catalog's {label} differs from the manifest's")
            for label, matches in (
                ("recovery point id", manifest.recovery_point_id == point.recovery_point_id),
                ("tenant", manifest.tenant_id == point.tenant_id),
                ("Merkle root", manifest.merkle_root == point.merkle_root),
                ("signature", signature.signature == point.signature),
                (
                    "package list",
                    sorted((p.name, p.sha256, p.bytes) for p in point.packages)
                    == sorted((p.name, p.sha256, p.bytes) for p in manifest.packages),
                ),
            )
            if not matches
        ]
        if extra:
            result = dataclasses.replace(result, problems=(*result.problems, *extra))
        return VerifyManifestResult(
            request.plan, point.recovery_point_id, hashlib.sha256(manifest_bytes).hexdigest(), result
        )

    @activity.defn(name="backups.verify_package")
    async def verify_package(self, request: VerifyPackageInput) -> VerifyPackageResult:
        """Stream one package blob and compare its SHA-256 and size with the manifest's (constant memory)."""
        clients = self._clients(request.plan)
        package = request.package
        blob = self._backups(clients).get_blob_client(package.blob)
        what = f"package {package.name} of recovery point {request.recovery_point_id}"

        async def chunks() -> AsyncIterator[bytes]:
            async for chunk in downloader.chunks():
                heartbeat({"verifying": package.name})
                yield chunk

        async with azure_call(f"blob '{package.blob}' in container '{blob.container_name}'", "verify"):
            try:
                downloader = await blob.download_blob()
            except ResourceNotFoundError:
                return VerifyPackageResult(
                    request.plan,
                    request.recovery_point_id,
                    package.name,
                    verified=False,
                    expected_sha256=package.sha256,
                    actual_sha256=None,
                    bytes=0,
                    problem=f"{what} is missing (blob '{package.blob}')",
                )
            actual, size = await sha256_stream(chunks())
        problems = []
        if actual != package.sha256:
            problems.append(f"has SHA-256 {actual}, the manifest says {package.sha256}")
        if size != package.bytes:
            problems.append(f"has {size} bytes, the manifest says {package.bytes}")
        problem = f"{what} {' and '.join(problems)}" if problems else None
        if problem:
            activity.logger.warning("integrity check failed: %s", problem)
        return VerifyPackageResult(
            request.plan,
            request.recovery_point_id,
            package.name,
            verified=not problems,
            expected_sha256=package.sha256,
            actual_sha256=actual,
            bytes=size,
            problem=problem,
        )

    # --- restore: quarantine, promotion, undo -------------------------------------------------

    @activity.defn(name="backups.copy_to_quarantine")
    async def copy_to_quarantine(self, request: CopyToQuarantineInput) -> CopyToQuarantineResult:
        """Copy one verified package into the restore's quarantine under its live name, checking its
        SHA-256 on the way; refused once the quarantine is sealed (unless it is already there)."""
        clients = self._clients(request.plan)
        self._live(clients, request.tenant_id)
        package = request.package
        quarantine = self._quarantine(clients, request.restore_id)
        metadata = await _container_metadata(quarantine)
        if metadata is None:
            await _ensure_container(
                quarantine,
                {
                    META_READONLY: "false",
                    META_RESTORE: request.restore_id,
                    META_TENANT: request.tenant_id,
                    META_RECOVERY_POINT: request.recovery_point_id,
                },
            )
            metadata = await _container_metadata(quarantine) or {}
        self._check_owner(quarantine, metadata, request.restore_id, request.tenant_id)
        target = quarantine.get_blob_client(package.name)
        existing = await _properties(target)
        result = CopyToQuarantineResult(
            request.plan, request.restore_id, quarantine.container_name, package.name, package.sha256, copied=False
        )
        if _meta(existing, META_SHA256) == package.sha256:
            return result
        if metadata.get(META_READONLY) == "true":
            raise _quarantine_error(
                f"quarantine '{quarantine.container_name}' of restore {request.restore_id} is sealed (read-only); "
                f"refusing to write package {package.name} into it"
            )
        source = self._backups(clients).get_blob_client(package.blob)
        copied = await _stream_copy(
            source,
            target,
            what=f"package {package.name} of recovery point {request.recovery_point_id}",
            metadata={META_RECOVERY_POINT: request.recovery_point_id, META_DATA_CLASS: package.data_class},
            expect_sha256=package.sha256,
            count_records=True,
            content_type="application/gzip",
        )
        if copied.records != package.records:
            raise ApplicationError(
                f"package {package.name} holds {copied.records} records, the manifest says {package.records}",
                type=INTEGRITY_ERROR_TYPE,
                non_retryable=True,
            )
        return dataclasses.replace(result, copied=True)

    @staticmethod
    def _check_owner(container: ContainerClient, metadata: Mapping[str, str], restore_id: str, tenant: str) -> None:
        if metadata.get(META_RESTORE) != restore_id or metadata.get(META_TENANT) != tenant:
            raise _quarantine_error(
                f"container '{container.container_name}' is not the quarantine of restore {restore_id} for tenant "
                f"{tenant} (it belongs to restore {metadata.get(META_RESTORE)!r}, tenant {metadata.get(META_TENANT)!r})"
            )

    @activity.defn(name="backups.seal_quarantine")
    async def seal_quarantine(self, request: SealQuarantineInput) -> SealQuarantineResult:
        """Check the quarantine holds exactly the packages (no missing, extra or altered blob) and mark it read-only."""
        clients = self._clients(request.plan)
        quarantine = self._quarantine(clients, request.restore_id)
        metadata = await _container_metadata(quarantine)
        if metadata is None:
            raise _quarantine_error(f"restore {request.restore_id} has no quarantine ('{quarantine.container_name}')")
        found = await _list_blobs(quarantine, "")
        wanted = {p.name: p for p in request.packages}
        problems = [f"package {name} is missing" for name in sorted(set(wanted) - set(found))]
        problems += [f"blob {name} is not a package of the restore" for name in sorted(set(found) - set(wanted))]
        problems += [
            f"package {name} has SHA-256 {_meta(found[name], META_SHA256)}, expected {wanted[name].sha256}"
            for name in sorted(set(found) & set(wanted))
            if _meta(found[name], META_SHA256) != wanted[name].sha256
        ]
        if problems:
            raise _quarantine_error(f"quarantine '{quarantine.container_name}' cannot be sealed: {'; '.join(problems)}")
        records = sum(int(_meta(blob, META_RECORDS) or 0) for blob in found.values())
        changed = metadata.get(META_READONLY) != "true"
        if changed:
            async with azure_call(f"container '{quarantine.container_name}'", "seal"):
                await quarantine.set_container_metadata(metadata | {META_READONLY: "true"})
        return SealQuarantineResult(
            request.plan, request.restore_id, quarantine.container_name, len(found), records, changed
        )

    @activity.defn(name="backups.promote")
    async def promote(self, request: PromoteInput) -> PromoteResult:
        """Make the sealed quarantine's segments the tenant's live segments, first keeping every live
        segment it replaces or removes under replaced/<restore id>/ (with a journal for undo)."""
        clients = self._clients(request.plan)
        live = self._live(clients, request.tenant_id)
        quarantine = self._quarantine(clients, request.restore_id)
        metadata = await _container_metadata(quarantine)
        if metadata is None or metadata.get(META_READONLY) != "true":
            state = "does not exist" if metadata is None else "is not sealed (read-only)"
            raise _quarantine_error(
                f"quarantine '{quarantine.container_name}' of restore {request.restore_id} {state}; "
                "only a verified, sealed quarantine is promoted"
            )
        self._check_owner(quarantine, metadata, request.restore_id, request.tenant_id)
        journal_client = live.get_blob_client(promotion_journal_blob(request.restore_id))
        journal = await self._journal(journal_client)
        changed = False
        if journal is None:
            before = await _list_blobs(live, SEGMENTS_PREFIX)
            incoming = await _list_blobs(quarantine, SEGMENTS_PREFIX)
            journal = {
                "restoreId": request.restore_id,
                "tenantId": request.tenant_id,
                "quarantine": quarantine.container_name,
                "state": PROMOTION_STARTED,
                "startedAt": utc_iso(dt.datetime.now(dt.UTC)),
                "live": sorted(before),
                "incoming": {name: _meta(blob, META_SHA256) for name, blob in sorted(incoming.items())},
            }
            await _write_blob(journal_client, canonical_json(journal))
            changed = True
        elif journal["state"] == PROMOTION_UNDONE:
            raise _quarantine_error(
                f"the promotion of restore {request.restore_id} was undone; start a new restore to promote again"
            )
        live_before: list[str] = list(journal["live"])
        incoming_sha: dict[str, str] = dict(journal["incoming"])
        if journal["state"] == PROMOTION_STARTED:
            # Keep every current live segment first: a retry after a partial run finds them saved
            # (saved copies are never overwritten), and nothing live has been touched before that.
            for name in live_before:
                saved = live.get_blob_client(replaced_blob(request.restore_id, name))
                if await _properties(saved) is not None:
                    continue
                current = live.get_blob_client(name)
                current_props = await _properties(current)
                if current_props is None:
                    continue
                await _stream_copy(
                    current,
                    saved,
                    what=f"live segment {name} of tenant {request.tenant_id}",
                    metadata=dict(current_props.metadata or {}) | {META_RESTORE: request.restore_id},
                    source_etag=str(current_props.etag),
                    content_type=current_props.content_settings.content_type,
                )
                changed = True
            for name, sha in incoming_sha.items():
                target = live.get_blob_client(name)
                if _meta(await _properties(target), META_SHA256) == sha:
                    continue
                await _stream_copy(
                    quarantine.get_blob_client(name),
                    target,
                    what=f"restored segment {name} of restore {request.restore_id}",
                    metadata={META_RESTORE: request.restore_id},
                    expect_sha256=sha,
                    content_type="application/gzip",
                )
                changed = True
            for name in sorted(set(live_before) - set(incoming_sha)):
                changed = await self._delete(live.get_blob_client(name)) or changed
            journal = journal | {"state": PROMOTION_DONE, "promotedAt": utc_iso(dt.datetime.now(dt.UTC))}
            await _write_blob(journal_client, canonical_json(journal))
            activity.logger.info("promoted restore %s into %s", request.restore_id, live.container_name)
        return PromoteResult(
            plan=request.plan,
            tenant_id=request.tenant_id,
            restore_id=request.restore_id,
            container=live.container_name,
            promoted=tuple(sorted(incoming_sha)),
            kept=tuple(live_before),
            removed=tuple(sorted(set(live_before) - set(incoming_sha))),
            changed=changed,
        )

    @activity.defn(name="backups.undo_promotion")
    async def undo_promotion(self, request: UndoPromotionInput) -> UndoPromotionResult:
        """Give the tenant back the live segments a promotion replaced, and remove the ones it added."""
        clients = self._clients(request.plan)
        live = self._live(clients, request.tenant_id)
        journal_client = live.get_blob_client(promotion_journal_blob(request.restore_id))
        journal = await self._journal(journal_client)
        if journal is None:
            raise invalid_input(
                f"restore {request.restore_id} promoted nothing into '{live.container_name}' (no promotion journal)",
                "PromotionNotFound",
            )
        live_before: list[str] = list(journal["live"])
        added = sorted(set(journal["incoming"]) - set(live_before))
        if journal["state"] == PROMOTION_UNDONE:
            return UndoPromotionResult(
                request.plan, request.tenant_id, request.restore_id, tuple(live_before), tuple(added), changed=False
            )
        for name in live_before:
            saved = live.get_blob_client(replaced_blob(request.restore_id, name))
            saved_props = await _properties(saved)
            if saved_props is None:
                continue  # the promotion stopped before touching it: the live blob is still the original
            sha = _meta(saved_props, META_SHA256)
            target = live.get_blob_client(name)
            if sha and _meta(await _properties(target), META_SHA256) == sha:
                continue
            original = {k: v for k, v in (saved_props.metadata or {}).items() if k != META_RESTORE}
            await _stream_copy(
                saved,
                target,
                what=f"kept segment {name} of restore {request.restore_id}",
                metadata=original,
                expect_sha256=sha,
                content_type=saved_props.content_settings.content_type,
            )
        for name in added:
            await self._delete(live.get_blob_client(name))
        journal = journal | {"state": PROMOTION_UNDONE, "undoneAt": utc_iso(dt.datetime.now(dt.UTC))}
        await _write_blob(journal_client, canonical_json(journal))
        activity.logger.info("undid the promotion of restore %s in %s", request.restore_id, live.container_name)
        return UndoPromotionResult(
            request.plan, request.tenant_id, request.restore_id, tuple(live_before), tuple(added), changed=True
        )

    @activity.defn(name="backups.cleanup_quarantine")
    async def cleanup_quarantine(self, request: CleanupQuarantineInput) -> CleanupQuarantineResult:
        """Delete the restore's quarantine container (nothing to do if it is gone)."""
        clients = self._clients(request.plan)
        quarantine = self._quarantine(clients, request.restore_id)
        async with azure_call(f"container '{quarantine.container_name}'", "delete"):
            try:
                await quarantine.delete_container()
            except ResourceNotFoundError:
                return CleanupQuarantineResult(request.plan, request.restore_id, quarantine.container_name, False)
        return CleanupQuarantineResult(request.plan, request.restore_id, quarantine.container_name, True)

    @staticmethod
    async def _journal(blob: BlobClient) -> dict[str, Any] | None:
        data = await _read_blob(blob)
        if data is None:
            return None
        journal: dict[str, Any] = json.loads(data)
        return journal

    @staticmethod
    async def _delete(blob: BlobClient) -> bool:
        async with azure_call(f"blob '{blob.blob_name}' in container '{blob.container_name}'", "delete"):
            try:
                await blob.delete_blob()
            except ResourceNotFoundError:
                return False
        return True


async def tenant_recovery_point_ages(catalog: BackupCatalog, plan: DrPlan, now: dt.datetime) -> RecoveryPointAgesResult:
    """Every tenant's newest completed recovery point in ``catalog`` and how old it is at ``now``
    (shared by backups.recovery_point_ages and the readiness checks), read for the whole plan over one
    catalog connection rather than a query per tenant. A catalog that does not exist yet (no SQLite
    file, no PostgreSQL table) means no tenant has one; looking does not create it."""
    measured_at = utc_iso(now)
    found = await catalog.exists()
    newest = await catalog.newest_for_tenants((t.id for t in plan.tenants), status=STATUS_COMPLETED) if found else {}
    ages: list[TenantRecoveryPointAge] = []
    for tenant in plan.tenants:
        target = plan.tenant_rpo_seconds(tenant)
        point = newest.get(tenant.id)
        if point is None:
            ages.append(TenantRecoveryPointAge(tenant.id, target))
            continue
        age = max(0.0, (now - parse_utc(point.created_at)).total_seconds())
        ages.append(TenantRecoveryPointAge(tenant.id, target, point.recovery_point_id, point.created_at, age))
    return RecoveryPointAgesResult(plan.name, measured_at, catalog_found=found, tenants=tuple(ages))
