"""Integrity of recovery points: streaming SHA-256, Merkle roots and proofs, Ed25519 signatures.

Built on hashlib and ``cryptography`` only (no Azure, no clock: callers pass times in, so workflow
validators can call ``verify_approval`` with ``workflow.now()``); the backup, restore and drill code
call these, and ``drctl`` uses them to create keys and check evidence.

Merkle tree over a recovery point's packages (the RFC 6962 tree shape, with its domain separation):

- leaves in canonical order: packages sorted by name (code-point order, which equals UTF-8 byte
  order), so the root does not depend on the order a writer listed the packages in;
- leaf  = SHA-256(0x00 || "leaf:" || name || ":" || sha256-hex)   (UTF-8);
- node  = SHA-256(0x01 || left || right)                          (raw 32-byte digests);
- an odd last node is promoted unchanged to the next level; never duplicated, which would let two
  different package lists share a root (Bitcoin's CVE-2012-2459). This yields exactly RFC 6962's
  MTH; the root of no packages is SHA-256 of the empty string.

Signed payloads are a context line naming what is signed (``dr-orchestrator/manifest/v1`` ...) and
the canonical JSON of the fields (sorted keys, no whitespace, UTF-8), so a signature over one kind of
record can never be replayed as another.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import hashlib
import json
import os
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from temporalio.exceptions import ApplicationError

from domain.errors import DrError
from domain.messages.integrity import (
    BAD_SIGNATURE,
    DECISIONS,
    DIGEST_MISMATCH,
    DUPLICATE_PACKAGE,
    ED25519,
    EXTRA_PACKAGE,
    MERKLE_ROOT_MISMATCH,
    MISSING_PACKAGE,
    PACKAGE_OK,
    SIZE_MISMATCH,
    UNKNOWN_KEY,
    UNSUPPORTED_ALGORITHM,
    Approval,
    IntegrityProblem,
    Manifest,
    MerkleProof,
    PackageCheck,
    PackageDigest,
    PackageEntry,
    Signature,
    VerificationResult,
)
from domain.messages.restore import RequestSignature, RestoreInput

CHUNK_SIZE = 1024 * 1024
INTEGRITY_ERROR_TYPE = "IntegrityVerificationFailed"

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").hexdigest()

MANIFEST_CONTEXT = b"dr-orchestrator/manifest/v1\n"
APPROVAL_CONTEXT = b"dr-orchestrator/approval/v1\n"
RESTORE_REQUEST_CONTEXT = b"dr-orchestrator/restore-request/v1\n"

KEY_ID_PREFIX = "ed25519:"
PRIVATE_KEY_MODE = 0o600


class KeyMaterialError(DrError):
    """A key file or public key cannot be used: wrong format, wrong passphrase, not Ed25519."""


# --- canonical encoding ----------------------------------------------------------------------


def canonical_json(value: Any) -> bytes:
    """The one byte form that is hashed and signed: sorted keys, no whitespace, UTF-8, no NaN."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def iso_utc(moment: datetime) -> str:
    """``moment`` as ``YYYY-MM-DDTHH:MM:SSZ``; naive datetimes are refused (their zone is a guess)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment!r} has no time zone; pass an aware datetime (UTC)")
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _parse_iso(value: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


# --- streaming SHA-256 -----------------------------------------------------------------------


async def sha256_stream(chunks: AsyncIterable[bytes]) -> tuple[str, int]:
    """Hex SHA-256 and byte count of an async stream of chunks, one chunk in memory at a time."""
    digest = hashlib.sha256()
    size = 0
    async for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def sha256_chunks(chunks: Iterable[bytes]) -> tuple[str, int]:
    """Hex SHA-256 and byte count of a stream of chunks, one chunk in memory at a time."""
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def sha256_file(path: str | Path, chunk_size: int = CHUNK_SIZE) -> tuple[str, int]:
    """Hex SHA-256 and size of a file, read into one reused buffer (memory stays at ``chunk_size``)."""
    digest = hashlib.sha256()
    buffer = bytearray(chunk_size)
    view = memoryview(buffer)
    size = 0
    with Path(path).open("rb", buffering=0) as fh:
        while n := fh.readinto(view):
            digest.update(view[:n])
            size += n
    return digest.hexdigest(), size


async def file_chunks(path: str | Path, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
    """The file's bytes as an async stream of ``chunk_size`` chunks, read off the event loop.

    The next chunk is read while the consumer works on the current one (at most two in memory), so
    reading and hashing overlap instead of taking turns.
    """
    loop = asyncio.get_running_loop()
    fh = await loop.run_in_executor(None, Path(path).open, "rb")
    pending = loop.run_in_executor(None, fh.read, chunk_size)
    try:
        while chunk := await pending:
            pending = loop.run_in_executor(None, fh.read, chunk_size)
            yield chunk
    finally:
        # A read may still be running in its thread when the consumer stops early.
        with contextlib.suppress(Exception):
            await pending
        fh.close()


# --- Merkle tree -----------------------------------------------------------------------------


def package_leaf(name: str, sha256_hex: str) -> str:
    """The leaf hash (hex) of one package: SHA-256(0x00 || "leaf:" || name || ":" || sha256-hex)."""
    return hashlib.sha256(LEAF_PREFIX + f"leaf:{name}:{sha256_hex}".encode()).hexdigest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _next_level(level: list[bytes]) -> list[bytes]:
    paired = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
    if len(level) % 2:
        paired.append(level[-1])
    return paired


def _leaf_bytes(leaves: Sequence[str]) -> list[bytes]:
    level = [bytes.fromhex(leaf) for leaf in leaves]
    if any(len(leaf) != 32 for leaf in level):
        raise ValueError("every leaf must be a 32-byte SHA-256 digest in hex")
    return level


def merkle_root(leaves: Sequence[str]) -> str:
    """The root (hex) over leaf hashes in the given order; SHA-256("") for no leaves."""
    if not leaves:
        return EMPTY_ROOT
    level = _leaf_bytes(leaves)
    while len(level) > 1:
        level = _next_level(level)
    return level[0].hex()


def merkle_proof(leaves: Sequence[str], index: int) -> MerkleProof:
    """The inclusion proof of ``leaves[index]``: its siblings from the bottom up."""
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf {index} is outside a tree of {len(leaves)} leaves")
    level = _leaf_bytes(leaves)
    path: list[str] = []
    position = index
    while len(level) > 1:
        sibling = position ^ 1
        if sibling < len(level):
            path.append(level[sibling].hex())
        level = _next_level(level)
        position //= 2
    return MerkleProof(leaf_index=index, tree_size=len(leaves), path=tuple(path))


def verify_proof(leaf: str, proof: MerkleProof, root: str) -> bool:
    """Whether ``leaf`` (hex leaf hash) sits at ``proof.leaf_index`` of a tree of ``proof.tree_size`` with ``root``.

    The tree's shape follows from index and size, so a proof moved to another position, or with a
    sibling too many or too few, fails as surely as one with an altered hash.
    """
    if not 0 <= proof.leaf_index < proof.tree_size:
        return False
    try:
        node = bytes.fromhex(leaf)
        siblings = [bytes.fromhex(h) for h in proof.path]
    except ValueError:
        return False
    if len(node) != 32 or any(len(s) != 32 for s in siblings):
        return False
    position, size, used = proof.leaf_index, proof.tree_size, 0
    while size > 1:
        if position % 2 == 1 or position + 1 < size:
            if used == len(siblings):
                return False
            sibling = siblings[used]
            used += 1
            node = _node(sibling, node) if position % 2 == 1 else _node(node, sibling)
        position //= 2
        size = (size + 1) // 2
    return used == len(siblings) and node.hex() == root


def package_leaves(packages: Iterable[PackageEntry]) -> list[str]:
    """The leaf hashes of ``packages`` in canonical order (sorted by name)."""
    return [package_leaf(p.name, p.sha256) for p in sorted(packages, key=lambda p: p.name)]


def manifest_merkle_root(packages: Iterable[PackageEntry]) -> str:
    """The Merkle root over the packages' names and digests, in canonical order."""
    return merkle_root(package_leaves(packages))


def package_proof(manifest: Manifest, name: str) -> MerkleProof:
    """The proof that package ``name`` belongs to the recovery point (KeyError if it does not)."""
    ordered = sorted(manifest.packages, key=lambda p: p.name)
    for index, package in enumerate(ordered):
        if package.name == name:
            return merkle_proof(package_leaves(ordered), index)
    raise KeyError(f"package {name!r} is not in recovery point {manifest.recovery_point_id}")


def verify_package_proof(name: str, sha256_hex: str, proof: MerkleProof, root: str) -> bool:
    """Whether a package with this name and digest is part of the tree with ``root``."""
    return verify_proof(package_leaf(name, sha256_hex), proof, root)


# --- keys ------------------------------------------------------------------------------------


def generate_private_key() -> Ed25519PrivateKey:
    """A new Ed25519 private key."""
    return Ed25519PrivateKey.generate()


def _public(key: Ed25519PrivateKey | Ed25519PublicKey) -> Ed25519PublicKey:
    return key.public_key() if isinstance(key, Ed25519PrivateKey) else key


def _raw_public(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    return _public(key).public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_b64(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """Base64 of the raw 32-byte public key: the form plans list approvers' keys in."""
    return base64.b64encode(_raw_public(key)).decode("ascii")


def load_public_key(b64: str) -> Ed25519PublicKey:
    """The public key from base64 of its raw 32 bytes; KeyMaterialError if it is not one."""
    try:
        raw = base64.b64decode(b64.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyMaterialError(f"public key {b64[:12]!r}... is not valid base64") from exc
    if len(raw) != 32:
        raise KeyMaterialError(f"an Ed25519 public key has 32 bytes, this one has {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def key_id_of(key: Ed25519PrivateKey | Ed25519PublicKey | str) -> str:
    """``ed25519:`` + the first 16 hex of SHA-256 of the raw public key (a key or its base64)."""
    public = load_public_key(key) if isinstance(key, str) else _public(key)
    raw = _raw_public(public)
    return KEY_ID_PREFIX + hashlib.sha256(raw).hexdigest()[:16]


def trusted_keys(public_keys: Iterable[str]) -> dict[str, str]:
    """``{key_id: base64}`` for public keys given as base64 (KeyMaterialError on a malformed one)."""
    return {key_id_of(b64): b64.strip() for b64 in public_keys}


def private_key_pem(key: Ed25519PrivateKey, passphrase: bytes | None = None) -> bytes:
    """PKCS#8 PEM of ``key``, encrypted with the best available scheme when a passphrase is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    # O_EXCL: never follow a planted symlink or reuse a file someone else can already read.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes, mode: int, *, overwrite: bool) -> None:
    if not overwrite:
        _write_new(path, data, mode)
        return
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    try:
        _write_new(temporary, data, mode)
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)


def save_private_key(
    key: Ed25519PrivateKey, path: str | Path, *, passphrase: bytes | None = None, overwrite: bool = False
) -> None:
    """Write ``key`` as PKCS#8 PEM, mode 0600; FileExistsError unless ``overwrite``."""
    _write_file(Path(path), private_key_pem(key, passphrase), PRIVATE_KEY_MODE, overwrite=overwrite)


def save_public_key(key: Ed25519PrivateKey | Ed25519PublicKey, path: str | Path, *, overwrite: bool = False) -> None:
    """Write the base64 raw public key and a newline (what plans and ``--trusted-key`` take)."""
    _write_file(Path(path), (public_key_b64(key) + "\n").encode("ascii"), 0o644, overwrite=overwrite)


def load_private_key(path: str | Path, passphrase: bytes | None = None) -> Ed25519PrivateKey:
    """The Ed25519 private key in a PEM file; KeyMaterialError naming the file if it cannot be used."""
    data = Path(path).read_bytes()
    try:
        key = serialization.load_pem_private_key(data, password=passphrase or None)
    except TypeError as exc:
        hint = (
            "it is encrypted: give its passphrase" if passphrase is None else "it is not encrypted: drop the passphrase"
        )
        raise KeyMaterialError(f"cannot load private key {path}: {hint}") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyMaterialError(f"cannot load private key {path}: not a PEM key, or a wrong passphrase") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyMaterialError(f"private key {path} is not an Ed25519 key")
    return key


def read_public_key_file(path: str | Path) -> str:
    """The base64 public key in a ``.pub`` file written by ``save_public_key``."""
    try:
        text = Path(path).read_text(encoding="ascii").strip()
    except UnicodeDecodeError as exc:
        raise KeyMaterialError(f"{path} does not hold a base64 public key") from exc
    load_public_key(text)
    return text


def passphrase_from_env(variable: str, env: Mapping[str, str] | None = None) -> bytes:
    """The passphrase held by environment variable ``variable``; KeyMaterialError if unset or empty."""
    value = (os.environ if env is None else env).get(variable, "")
    if not value:
        raise KeyMaterialError(f"environment variable {variable} holds no passphrase")
    return value.encode()


# --- signatures ------------------------------------------------------------------------------


def sign(payload: bytes, private_key: Ed25519PrivateKey) -> Signature:
    """An Ed25519 signature over ``payload`` with the signing key's id."""
    return Signature(
        key_id=key_id_of(private_key),
        signature=base64.b64encode(private_key.sign(payload)).decode("ascii"),
        algorithm=ED25519,
    )


def check_signature(payload: bytes, signature: Signature, trusted: Mapping[str, str]) -> IntegrityProblem | None:
    """None if ``signature`` is a valid Ed25519 signature over ``payload`` by a trusted key, else why not."""
    if signature.algorithm != ED25519:
        return IntegrityProblem(
            UNSUPPORTED_ALGORITHM, f"signature algorithm {signature.algorithm!r} is not supported (only Ed25519)"
        )
    public_b64 = trusted.get(signature.key_id)
    if public_b64 is None:
        known = ", ".join(sorted(trusted)) or "none"
        return IntegrityProblem(UNKNOWN_KEY, f"signed by unknown key {signature.key_id} (trusted: {known})")
    try:
        public = load_public_key(public_b64)
        public.verify(base64.b64decode(signature.signature, validate=True), payload)
    except (KeyMaterialError, binascii.Error, ValueError, InvalidSignature):
        return IntegrityProblem(
            BAD_SIGNATURE, f"bad signature: not made by key {signature.key_id} over this content (altered or forged)"
        )
    return None


def _load_invalid_signature() -> None:
    """Have cryptography's native code look up InvalidSignature now, at import, outside any workflow.

    Its Rust binding imports the exception class the first time a verification fails and keeps it.
    Inside the Temporal workflow sandbox, where the restore workflow checks request and approval
    signatures, that import cannot work and the binding aborts the whole worker process; once kept,
    a failed verification there raises InvalidSignature like anywhere else."""
    with contextlib.suppress(InvalidSignature):
        Ed25519PrivateKey.generate().public_key().verify(bytes(64), b"")


_load_invalid_signature()


# --- manifests -------------------------------------------------------------------------------


def build_manifest(
    *,
    tenant_id: str,
    recovery_point_id: str,
    created_at: str,
    time_from: str,
    time_to: str,
    policy_version: str,
    data_classes: Sequence[str],
    region: str,
    packages: Sequence[PackageEntry],
) -> Manifest:
    """A manifest over ``packages`` with its Merkle root computed."""
    return Manifest(
        tenant_id=tenant_id,
        recovery_point_id=recovery_point_id,
        created_at=created_at,
        time_from=time_from,
        time_to=time_to,
        policy_version=policy_version,
        data_classes=tuple(data_classes),
        region=region,
        packages=tuple(packages),
        merkle_root=manifest_merkle_root(packages),
    )


def manifest_payload(manifest: Manifest) -> bytes:
    """The bytes a manifest signature covers: context line + canonical JSON of every field."""
    return MANIFEST_CONTEXT + canonical_json(manifest.to_dict())


def sign_manifest(manifest: Manifest, private_key: Ed25519PrivateKey) -> Signature:
    """The orchestrator's signature over ``manifest``."""
    return sign(manifest_payload(manifest), private_key)


def _check_packages(
    manifest: Manifest, actual: Iterable[PackageDigest]
) -> tuple[list[PackageCheck], list[IntegrityProblem]]:
    checks: list[PackageCheck] = []
    problems: list[IntegrityProblem] = []
    streamed: dict[str, PackageDigest] = {}
    for digest in actual:
        if digest.name in streamed:
            problems.append(
                IntegrityProblem(DUPLICATE_PACKAGE, f"package {digest.name} was streamed twice", digest.name)
            )
        streamed[digest.name] = digest
    seen: set[str] = set()
    for expected in manifest.packages:
        name = expected.name
        if name in seen:
            problems.append(
                IntegrityProblem(DUPLICATE_PACKAGE, f"package {name} is listed twice in the manifest", name)
            )
            continue
        seen.add(name)
        got = streamed.get(name)
        if got is None:
            checks.append(PackageCheck(name, MISSING_PACKAGE, expected.bytes, None, expected.sha256, ""))
            problems.append(IntegrityProblem(MISSING_PACKAGE, f"package {name} is missing", name))
            continue
        found: list[IntegrityProblem] = []
        if got.bytes != expected.bytes:
            found.append(
                IntegrityProblem(
                    SIZE_MISMATCH, f"package {name} has {got.bytes} bytes, the manifest says {expected.bytes}", name
                )
            )
        if got.sha256 != expected.sha256:
            found.append(
                IntegrityProblem(
                    DIGEST_MISMATCH,
                    f"package {name} has SHA-256 {got.sha256}, the manifest says {expected.sha256}",
                    name,
                )
            )
        status = found[0].code if found else PACKAGE_OK
        checks.append(PackageCheck(name, status, expected.bytes, got.bytes, expected.sha256, got.sha256))
        problems.extend(found)
    for name in sorted(set(streamed) - seen):
        got = streamed[name]
        checks.append(PackageCheck(name, EXTRA_PACKAGE, None, got.bytes, "", got.sha256))
        problems.append(IntegrityProblem(EXTRA_PACKAGE, f"package {name} is not in the manifest", name))
    return checks, problems


def verify_manifest(
    manifest: Manifest,
    signature: Signature,
    trusted_public_keys: Mapping[str, str],
    actual: Iterable[PackageDigest] | None = None,
) -> VerificationResult:
    """Check the manifest's signature and Merkle root and, given the streamed digests of the actual
    blobs, every package; every problem is reported, each naming its package."""
    problems: list[IntegrityProblem] = []
    signature_problem = check_signature(manifest_payload(manifest), signature, trusted_public_keys)
    if signature_problem is not None:
        problems.append(signature_problem)
    computed = manifest_merkle_root(manifest.packages)
    if computed != manifest.merkle_root:
        problems.append(
            IntegrityProblem(
                MERKLE_ROOT_MISMATCH,
                f"Merkle root {manifest.merkle_root} does not match the packages' digests (computed {computed})",
            )
        )
    checks: list[PackageCheck] = []
    if actual is not None:
        checks, package_problems = _check_packages(manifest, actual)
        problems.extend(package_problems)
    return VerificationResult(
        recovery_point_id=manifest.recovery_point_id,
        key_id=signature.key_id,
        signature_ok=signature_problem is None,
        merkle_root_ok=computed == manifest.merkle_root,
        computed_merkle_root=computed,
        packages=tuple(checks),
        problems=tuple(problems),
        packages_checked=actual is not None,
    )


def verification_digest(result: VerificationResult) -> str:
    """SHA-256 (hex) of a verification result: what approvers saw, bound into their signatures."""
    return hashlib.sha256(canonical_json(dataclasses.asdict(result))).hexdigest()


def integrity_failure(result: VerificationResult) -> ApplicationError:
    """The non-retryable ApplicationError a restore fails with when ``result`` has problems."""
    count = len(result.problems)
    listed = "; ".join(p.message for p in result.problems)
    return ApplicationError(
        f"recovery point {result.recovery_point_id} failed verification ({count} problem(s)): {listed}",
        *[dataclasses.asdict(p) for p in result.problems],
        type=INTEGRITY_ERROR_TYPE,
        non_retryable=True,
    )


# --- approvals -------------------------------------------------------------------------------


def approval_payload(
    *,
    workflow_id: str,
    recovery_point_id: str,
    verification_digest: str,
    decision: str,
    approver: str,
    expires_at: datetime | str,
) -> bytes:
    """The bytes an approver signs: context line + canonical JSON of the decision and what it is about."""
    return APPROVAL_CONTEXT + canonical_json(
        {
            "workflow_id": workflow_id,
            "recovery_point_id": recovery_point_id,
            "verification_digest": verification_digest,
            "decision": decision,
            "approver": approver,
            "expires_at": iso_utc(expires_at) if isinstance(expires_at, datetime) else expires_at,
        }
    )


def sign_approval(
    private_key: Ed25519PrivateKey,
    *,
    workflow_id: str,
    recovery_point_id: str,
    verification_digest: str,
    decision: str,
    approver: str,
    expires_at: datetime,
) -> Approval:
    """An approver's signed decision (``approve`` or ``reject``) valid until ``expires_at``."""
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
    approval = Approval(
        workflow_id=workflow_id,
        recovery_point_id=recovery_point_id,
        verification_digest=verification_digest,
        decision=decision,
        approver=approver,
        expires_at=iso_utc(expires_at),
        key_id=key_id_of(private_key),
    )
    signature = sign(approval_signed_bytes(approval), private_key)
    return dataclasses.replace(approval, signature=signature.signature)


def approval_signed_bytes(approval: Approval) -> bytes:
    """The payload ``approval``'s signature must cover."""
    return approval_payload(
        workflow_id=approval.workflow_id,
        recovery_point_id=approval.recovery_point_id,
        verification_digest=approval.verification_digest,
        decision=approval.decision,
        approver=approval.approver,
        expires_at=approval.expires_at,
    )


def verify_approval(
    approval: Approval,
    public_key_b64: str,
    now: datetime,
    *,
    workflow_id: str,
    recovery_point_id: str,
    verification_digest: str,
    decision: str | None = None,
) -> list[str]:
    """Every reason to refuse ``approval`` (empty if it is valid) for this workflow, recovery point and
    verification, at ``now`` (pass ``workflow.now()``: no clock is read here)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (workflow.now() is)")
    who = approval.approver or "(no approver)"
    problems: list[str] = []
    if approval.decision not in DECISIONS:
        problems.append(f"decision {approval.decision!r} by {who} is neither approve nor reject")
    elif decision is not None and approval.decision != decision:
        problems.append(f"decision by {who} is {approval.decision!r}, expected {decision!r}")
    for label, got, expected in (
        ("workflow id", approval.workflow_id, workflow_id),
        ("recovery point", approval.recovery_point_id, recovery_point_id),
        ("verification digest", approval.verification_digest, verification_digest),
    ):
        if got != expected:
            problems.append(f"{label} {got!r} in the approval by {who} does not match {expected!r}")
    what = f"the approval by {who}"
    problems.extend(_expiry_problems(approval.expires_at, now, what))
    problems.extend(
        _signer_problems(
            approval_signed_bytes(approval),
            key_id=approval.key_id,
            signature=approval.signature,
            public_key_b64=public_key_b64,
            who=who,
            what=what,
        )
    )
    return problems


def _expiry_problems(expires_at: str, now: datetime, what: str) -> list[str]:
    """Why a signed record valid until ``expires_at`` is not valid at ``now`` (empty if it is)."""
    expiry = _parse_iso(expires_at)
    if expiry is None:
        return [f"expiry {expires_at!r} of {what} is not an ISO 8601 UTC time"]
    if now >= expiry:
        return [f"{what} expired at {expires_at}"]
    return []


def _signer_problems(
    payload: bytes, *, key_id: str, signature: str, public_key_b64: str, who: str, what: str
) -> list[str]:
    """Why ``signature`` over ``payload`` was not made with ``who``'s key (empty if it was)."""
    try:
        expected_key_id = key_id_of(public_key_b64)
    except KeyMaterialError as exc:
        return [f"the public key of {who} cannot be used: {exc}"]
    if key_id and key_id != expected_key_id:
        return [f"{what} was signed with key {key_id}, not {who}'s {expected_key_id}"]
    if check_signature(
        payload, Signature(key_id=expected_key_id, signature=signature), {expected_key_id: public_key_b64}
    ):
        return [f"bad signature: {what} was not signed by {who}'s key or was altered"]
    return []


# --- restore requests ------------------------------------------------------------------------


def restore_request_payload(request: RestoreInput, signed: RequestSignature) -> bytes:
    """The bytes a requester signs: context line + canonical JSON of every field of the request (all of
    them, so a field added later is signed too), the workflow it starts, and when the signature was made
    and stops being valid."""
    fields = {name: value for name, value in dataclasses.asdict(request).items() if name != "request_signature"}
    return RESTORE_REQUEST_CONTEXT + canonical_json(
        {
            **fields,
            "workflow_id": signed.workflow_id,
            "issued_at": signed.issued_at,
            "expires_at": signed.expires_at,
        }
    )


def sign_restore_request(
    private_key: Ed25519PrivateKey,
    request: RestoreInput,
    *,
    workflow_id: str,
    issued_at: datetime,
    expires_at: datetime,
) -> RestoreInput:
    """``request`` signed by its requester for the run ``workflow_id``, valid until ``expires_at``."""
    unsigned = RequestSignature(
        workflow_id=workflow_id,
        issued_at=iso_utc(issued_at),
        expires_at=iso_utc(expires_at),
        key_id=key_id_of(private_key),
    )
    signature = sign(restore_request_payload(request, unsigned), private_key)
    return dataclasses.replace(request, request_signature=dataclasses.replace(unsigned, signature=signature.signature))


def verify_restore_request(request: RestoreInput, public_key_b64: str, now: datetime, *, workflow_id: str) -> list[str]:
    """Every reason to refuse ``request``'s signature (empty if it is valid) as the requester's, for the
    run ``workflow_id``, at ``now`` (pass the workflow's start time: no clock is read here)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (workflow times are)")
    who = request.requested_by or "(no requester)"
    what = f"the restore request by {who}"
    signed = request.request_signature
    if signed is None:
        return [f"{what} is not signed"]
    problems: list[str] = []
    if signed.workflow_id != workflow_id:
        problems.append(f"workflow id {signed.workflow_id!r} in {what} does not match {workflow_id!r}")
    if _parse_iso(signed.issued_at) is None:
        problems.append(f"issue time {signed.issued_at!r} of {what} is not an ISO 8601 UTC time")
    problems.extend(_expiry_problems(signed.expires_at, now, what))
    problems.extend(
        _signer_problems(
            restore_request_payload(request, signed),
            key_id=signed.key_id,
            signature=signed.signature,
            public_key_b64=public_key_b64,
            who=who,
            what=what,
        )
    )
    return problems
