"""Recovery-point integrity: manifests, signatures, Merkle proofs, verification results, approvals.

Standard library only, so workflows can carry these through the sandbox; the hashing and the
Ed25519 cryptography that produce and check them live in ``activities.integrity``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ED25519 = "Ed25519"

# Codes of the problems a manifest verification reports (``IntegrityProblem.code``).
BAD_SIGNATURE = "bad-signature"
UNKNOWN_KEY = "unknown-key"
UNSUPPORTED_ALGORITHM = "unsupported-algorithm"
MERKLE_ROOT_MISMATCH = "merkle-root-mismatch"
DUPLICATE_PACKAGE = "duplicate-package"
MISSING_PACKAGE = "missing-package"
EXTRA_PACKAGE = "extra-package"
SIZE_MISMATCH = "size-mismatch"
DIGEST_MISMATCH = "digest-mismatch"

# Outcomes of one package's check (``PackageCheck.status``).
PACKAGE_OK = "ok"

APPROVE = "approve"
REJECT = "reject"
DECISIONS = (APPROVE, REJECT)


@dataclass(frozen=True)
class PackageEntry:
    """One package of a recovery point as the manifest records it."""

    name: str
    bytes: int
    records: int
    sha256: str  # lowercase hex


@dataclass(frozen=True)
class Manifest:
    """What a recovery point holds; its canonical JSON is what the backup's signature covers."""

    tenant_id: str
    recovery_point_id: str
    created_at: str  # ISO 8601, UTC
    time_from: str
    time_to: str
    policy_version: str
    data_classes: tuple[str, ...]
    region: str
    packages: tuple[PackageEntry, ...]
    merkle_root: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the form that is signed and stored beside the packages)."""
        return {
            "tenant_id": self.tenant_id,
            "recovery_point_id": self.recovery_point_id,
            "created_at": self.created_at,
            "time_from": self.time_from,
            "time_to": self.time_to,
            "policy_version": self.policy_version,
            "data_classes": list(self.data_classes),
            "region": self.region,
            "packages": [
                {"name": p.name, "bytes": p.bytes, "records": p.records, "sha256": p.sha256} for p in self.packages
            ],
            "merkle_root": self.merkle_root,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        """The manifest in ``data`` (as ``to_dict`` wrote it); KeyError/TypeError/ValueError if malformed."""
        packages = tuple(
            PackageEntry(name=str(p["name"]), bytes=int(p["bytes"]), records=int(p["records"]), sha256=str(p["sha256"]))
            for p in data["packages"]
        )
        return cls(
            tenant_id=str(data["tenant_id"]),
            recovery_point_id=str(data["recovery_point_id"]),
            created_at=str(data["created_at"]),
            time_from=str(data["time_from"]),
            time_to=str(data["time_to"]),
            policy_version=str(data["policy_version"]),
            data_classes=tuple(str(c) for c in data["data_classes"]),
            region=str(data["region"]),
            packages=packages,
            merkle_root=str(data["merkle_root"]),
        )


@dataclass(frozen=True)
class Signature:
    """An Ed25519 signature and the id of the key that made it (``ed25519:`` + 16 hex)."""

    key_id: str
    signature: str  # base64 of the 64-byte signature
    algorithm: str = ED25519


@dataclass(frozen=True)
class PackageDigest:
    """What streaming an actual package blob measured."""

    name: str
    bytes: int
    sha256: str


@dataclass(frozen=True)
class PackageCheck:
    """One package compared with the manifest: ``ok`` or the problem code."""

    name: str
    status: str
    expected_bytes: int | None = None
    actual_bytes: int | None = None
    expected_sha256: str = ""
    actual_sha256: str = ""


@dataclass(frozen=True)
class IntegrityProblem:
    """One failed check; ``package`` names the package when the check concerns one."""

    code: str
    message: str
    package: str = ""

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class VerificationResult:
    """Every check of one recovery point: signature, Merkle root and (when streamed) each package."""

    recovery_point_id: str
    key_id: str
    signature_ok: bool
    merkle_root_ok: bool
    computed_merkle_root: str
    packages: tuple[PackageCheck, ...] = ()
    problems: tuple[IntegrityProblem, ...] = ()
    packages_checked: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def problems_with(self, code: str) -> tuple[IntegrityProblem, ...]:
        """The problems of one kind (``MISSING_PACKAGE``, ``BAD_SIGNATURE``...)."""
        return tuple(p for p in self.problems if p.code == code)


@dataclass(frozen=True)
class MerkleProof:
    """The sibling hashes from one leaf up to the root, bottom first (RFC 6962's audit path)."""

    leaf_index: int
    tree_size: int
    path: tuple[str, ...]


@dataclass(frozen=True)
class Approval:
    """One person's signed decision on a restore; the signature covers every other field."""

    workflow_id: str
    recovery_point_id: str
    verification_digest: str
    decision: str  # approve | reject
    approver: str
    expires_at: str  # ISO 8601 UTC, seconds precision, "Z" suffix
    signature: str = ""  # base64 of the Ed25519 signature over ``approval_payload``
    key_id: str = ""
