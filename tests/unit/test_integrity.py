"""Recovery-point integrity: streamed digests, Merkle roots and proofs, manifest signatures, keys, approvals."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import stat
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from activities.integrity import (
    INTEGRITY_ERROR_TYPE,
    KeyMaterialError,
    approval_payload,
    build_manifest,
    canonical_json,
    file_chunks,
    generate_private_key,
    integrity_failure,
    iso_utc,
    key_id_of,
    load_private_key,
    load_public_key,
    manifest_merkle_root,
    merkle_proof,
    merkle_root,
    package_leaf,
    package_proof,
    passphrase_from_env,
    public_key_b64,
    read_public_key_file,
    save_private_key,
    save_public_key,
    sha256_chunks,
    sha256_file,
    sha256_stream,
    sign_approval,
    sign_manifest,
    trusted_keys,
    verification_digest,
    verify_approval,
    verify_manifest,
    verify_package_proof,
    verify_proof,
)
from domain.messages.integrity import (
    BAD_SIGNATURE,
    DIGEST_MISMATCH,
    DUPLICATE_PACKAGE,
    EXTRA_PACKAGE,
    MERKLE_ROOT_MISMATCH,
    MISSING_PACKAGE,
    PACKAGE_OK,
    SIZE_MISMATCH,
    UNKNOWN_KEY,
    UNSUPPORTED_ALGORITHM,
    Approval,
    Manifest,
    MerkleProof,
    PackageDigest,
    PackageEntry,
)
from domain.plan import _is_ed25519_public_key

MiB = 1024 * 1024
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def rfc6962_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1 MTH over already-hashed leaves, written recursively as the RFC states it."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + rfc6962_root(leaves[:k]) + rfc6962_root(leaves[k:])).digest()


def leaves_of(count: int) -> list[str]:
    return [package_leaf(f"p{i:03d}", hashlib.sha256(str(i).encode()).hexdigest()) for i in range(count)]


@pytest.fixture(scope="module")
def signer() -> Ed25519PrivateKey:
    return generate_private_key()


@pytest.fixture(scope="module")
def trusted(signer: Ed25519PrivateKey) -> dict[str, str]:
    return trusted_keys([public_key_b64(signer)])


@pytest.fixture
def packages(tmp_path: Path) -> dict[str, Path]:
    """Three package files of different sizes."""
    files = {}
    for name, size in (("sql/orders.bak", 300_000), ("cosmos/events.json", 70_001), ("blobs/docs.tar", 1)):
        path = tmp_path / name.replace("/", "_")
        path.write_bytes(hashlib.sha256(name.encode()).digest() * (size // 32) + b"x" * (size % 32))
        files[name] = path
    return files


def manifest_for(files: dict[str, Path]) -> Manifest:
    entries = []
    for name, path in files.items():
        digest, size = sha256_file(path)
        entries.append(PackageEntry(name=name, bytes=size, records=size // 100, sha256=digest))
    return build_manifest(
        tenant_id="t1",
        recovery_point_id="rp-t1-20260501T1100Z",
        created_at="2026-05-01T11:00:00Z",
        time_from="2026-05-01T10:00:00Z",
        time_to="2026-05-01T11:00:00Z",
        policy_version="1.0.0",
        data_classes=("hot", "warm"),
        region="eastus",
        packages=entries,
    )


def streamed(files: dict[str, Path]) -> list[PackageDigest]:
    result = []
    for name, path in files.items():
        digest, size = sha256_file(path)
        result.append(PackageDigest(name=name, bytes=size, sha256=digest))
    return result


class TestStreamingDigest:
    async def test_async_stream_matches_hashlib_over_the_whole_content(self) -> None:
        """sha256_stream returns the same hex digest and byte count as hashing the joined bytes."""
        parts = [b"alpha", b"", b"beta" * 1000, bytes(range(256))]

        async def chunks() -> AsyncIterator[bytes]:
            for part in parts:
                yield part

        assert await sha256_stream(chunks()) == (hashlib.sha256(b"".join(parts)).hexdigest(), len(b"".join(parts)))

    async def test_file_chunks_feed_the_stream_like_the_sync_file_digest(self, tmp_path: Path) -> None:
        """The async file iterator and sha256_file agree on a file larger than one chunk."""
        path = tmp_path / "p.bin"
        path.write_bytes(b"0123456789" * 300_001)
        expected = (hashlib.sha256(path.read_bytes()).hexdigest(), 3_000_010)
        assert await sha256_stream(file_chunks(path, chunk_size=65_536)) == expected
        assert sha256_file(path, chunk_size=65_536) == expected

    def test_empty_input_hashes_to_the_empty_digest(self, tmp_path: Path) -> None:
        """An empty file and an empty stream give SHA-256 of nothing and zero bytes."""
        (tmp_path / "empty").write_bytes(b"")
        empty = (hashlib.sha256(b"").hexdigest(), 0)
        assert sha256_file(tmp_path / "empty") == empty
        assert sha256_chunks([]) == empty

    async def test_memory_stays_at_one_chunk_whatever_the_stream_size(self) -> None:
        """Hashing 64 MiB streamed as 1 MiB chunks never holds more than a couple of chunks."""
        block = b"\xa5" * MiB

        async def chunks() -> AsyncIterator[bytes]:
            for i in range(64):
                yield i.to_bytes(8, "big") + block[8:]

        tracemalloc.start()
        try:
            _, size = await sha256_stream(chunks())
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert size == 64 * MiB
        assert peak < 4 * MiB

    def test_sync_chunks_are_consumed_lazily(self) -> None:
        """sha256_chunks reads a generator one chunk at a time and counts every byte."""

        def chunks() -> Iterator[bytes]:
            for _ in range(10):
                yield b"z" * 1000

        assert sha256_chunks(chunks()) == (hashlib.sha256(b"z" * 10_000).hexdigest(), 10_000)


class TestMerkleTree:
    @pytest.mark.parametrize("count", range(1, 18))
    def test_root_is_rfc6962_mth(self, count: int) -> None:
        """Promoting an odd last node gives exactly RFC 6962's recursive tree hash."""
        leaves = leaves_of(count)
        assert merkle_root(leaves) == rfc6962_root([bytes.fromhex(x) for x in leaves]).hex()

    def test_no_leaves_give_the_hash_of_nothing(self) -> None:
        """A recovery point without packages has SHA-256("") as its root, as RFC 6962 defines."""
        assert merkle_root([]) == hashlib.sha256(b"").hexdigest()

    def test_odd_node_is_promoted_not_duplicated(self) -> None:
        """Three leaves and the same three with the last repeated have different roots (no CVE-2012-2459)."""
        leaves = leaves_of(3)
        assert merkle_root(leaves) != merkle_root([*leaves, leaves[-1]])

    def test_leaf_hash_is_domain_separated(self) -> None:
        """A leaf is SHA-256(0x00 || "leaf:" || name || ":" || digest), never the bare digest."""
        digest = "ab" * 32
        assert package_leaf("a.bin", digest) == hashlib.sha256(b"\x00leaf:a.bin:" + digest.encode()).hexdigest()

    def test_root_does_not_depend_on_listing_order(self) -> None:
        """Packages are sorted by name, so the same packages listed in any order have one root."""
        entries = [PackageEntry(f"n{i}", i, i, hashlib.sha256(bytes([i])).hexdigest()) for i in range(5)]
        assert manifest_merkle_root(entries) == manifest_merkle_root(list(reversed(entries)))

    @pytest.mark.parametrize("count", [1, 2, 3, 5, 8, 13])
    def test_every_leaf_has_a_proof_that_verifies(self, count: int) -> None:
        """Each leaf's inclusion proof leads to the root."""
        leaves = leaves_of(count)
        root = merkle_root(leaves)
        for index, leaf in enumerate(leaves):
            assert verify_proof(leaf, merkle_proof(leaves, index), root)

    def test_tampered_proofs_fail(self) -> None:
        """An altered sibling, another position, another size, a missing or extra sibling all fail."""
        leaves = leaves_of(7)
        root = merkle_root(leaves)
        proof = merkle_proof(leaves, 2)
        flipped = ("00" if proof.path[0][:2] != "00" else "11") + proof.path[0][2:]
        tampered = [
            dataclasses.replace(proof, path=(flipped, *proof.path[1:])),
            dataclasses.replace(proof, leaf_index=3),
            dataclasses.replace(proof, tree_size=3),
            dataclasses.replace(proof, path=proof.path[:-1]),
            dataclasses.replace(proof, path=(*proof.path, proof.path[-1])),
            dataclasses.replace(proof, path=("zz", *proof.path[1:])),
            MerkleProof(leaf_index=9, tree_size=7, path=proof.path),
        ]
        assert verify_proof(leaves[2], proof, root)
        for bad in tampered:
            assert not verify_proof(leaves[2], bad, root), bad
        assert not verify_proof(leaves[3], proof, root)
        assert not verify_proof(leaves[2], proof, merkle_root(leaves[:6]))

    def test_proof_of_a_leaf_outside_the_tree_is_refused(self) -> None:
        """Asking for the proof of a position the tree does not have raises IndexError."""
        with pytest.raises(IndexError):
            merkle_proof(leaves_of(3), 3)

    def test_package_proof_shows_one_package_belongs_to_the_recovery_point(self, packages: dict[str, Path]) -> None:
        """A package's proof verifies against the manifest's root, and fails for a different digest."""
        manifest = manifest_for(packages)
        package = next(p for p in manifest.packages if p.name == "cosmos/events.json")
        proof = package_proof(manifest, package.name)
        assert verify_package_proof(package.name, package.sha256, proof, manifest.merkle_root)
        assert not verify_package_proof(package.name, "0" * 64, proof, manifest.merkle_root)
        assert not verify_package_proof("sql/orders.bak", package.sha256, proof, manifest.merkle_root)
        with pytest.raises(KeyError, match="not-there"):
            package_proof(manifest, "not-there")


class TestManifestVerification:
    def test_intact_recovery_point_verifies(
        self, packages: dict[str, Path], signer: Ed25519PrivateKey, trusted: dict[str, str]
    ) -> None:
        """Untouched packages, a valid signature and the right root give no problems."""
        manifest = manifest_for(packages)
        result = verify_manifest(manifest, sign_manifest(manifest, signer), trusted, streamed(packages))
        assert result.ok, result.problems
        assert result.signature_ok
        assert result.merkle_root_ok
        assert result.packages_checked
        assert [c.status for c in result.packages] == [PACKAGE_OK] * 3
        assert result.key_id == key_id_of(signer)

    def test_one_flipped_byte_is_a_digest_mismatch_naming_the_package(
        self, packages: dict[str, Path], signer: Ed25519PrivateKey, trusted: dict[str, str]
    ) -> None:
        """Flipping one byte of one package reports a digest mismatch for that package only."""
        manifest = manifest_for(packages)
        signature = sign_manifest(manifest, signer)
        path = packages["sql/orders.bak"]
        data = bytearray(path.read_bytes())
        data[123_456] ^= 0x01
        path.write_bytes(bytes(data))
        result = verify_manifest(manifest, signature, trusted, streamed(packages))
        assert not result.ok
        assert [(p.code, p.package) for p in result.problems] == [(DIGEST_MISMATCH, "sql/orders.bak")]
        assert "sql/orders.bak" in result.problems[0].message
        assert result.signature_ok
        assert result.merkle_root_ok

    def test_missing_package_is_named(
        self, packages: dict[str, Path], signer: Ed25519PrivateKey, trusted: dict[str, str]
    ) -> None:
        """A package listed in the manifest but not found is reported as missing, by name."""
        manifest = manifest_for(packages)
        actual = [d for d in streamed(packages) if d.name != "blobs/docs.tar"]
        result = verify_manifest(manifest, sign_manifest(manifest, signer), trusted, actual)
        assert [(p.code, p.package) for p in result.problems] == [(MISSING_PACKAGE, "blobs/docs.tar")]

    def test_extra_package_is_named(
        self, packages: dict[str, Path], signer: Ed25519PrivateKey, trusted: dict[str, str]
    ) -> None:
        """A blob present but not in the manifest is reported as extra, by name."""
        manifest = manifest_for(packages)
        actual = [*streamed(packages), PackageDigest("sql/planted.bak", 10, "ab" * 32)]
        result = verify_manifest(manifest, sign_manifest(manifest, signer), trusted, actual)
        assert [(p.code, p.package) for p in result.problems] == [(EXTRA_PACKAGE, "sql/planted.bak")]

    def test_truncated_package_is_a_size_and_digest_mismatch(
        self, packages: dict[str, Path], signer: Ed25519PrivateKey, trusted: dict[str, str]
    ) -> None:
        """A package cut short reports its size and its digest as wrong, both naming it."""
        manifest = manifest_for(packages)
        signature = sign_manifest(manifest, signer)
        path = packages["cosmos/events.json"]
        path.write_bytes(path.read_bytes()[:-1])
        result = verify_manifest(manifest, signature, trusted, streamed(packages))
        assert [(p.code, p.package) for p in result.problems] == [
            (SIZE_MISMATCH, "cosmos/events.json"),
            (DIGEST_MISMATCH, "cosmos/events.json"),
        ]
        check = next(c for c in result.packages if c.name == "cosmos/events.json")
        assert (check.status, check.expected_bytes, check.actual_bytes) == (SIZE_MISMATCH, 70_001, 70_000)

    def test_manifest_signed_by_another_key_is_unknown(
        self, packages: dict[str, Path], trusted: dict[str, str]
    ) -> None:
        """A manifest signed with a key that is not trusted reports the unknown key id."""
        manifest = manifest_for(packages)
        other = generate_private_key()
        result = verify_manifest(manifest, sign_manifest(manifest, other), trusted, streamed(packages))
        assert [p.code for p in result.problems] == [UNKNOWN_KEY]
        assert key_id_of(other) in result.problems[0].message
        assert not result.signature_ok

    def test_forged_signature_under_a_trusted_key_id_is_bad(
        self, packages: dict[str, Path], signer: Ed25519PrivateKey, trusted: dict[str, str]
    ) -> None:
        """Another key's signature presented under the trusted key's id is a bad signature."""
        manifest = manifest_for(packages)
        forged = dataclasses.replace(sign_manifest(manifest, generate_private_key()), key_id=key_id_of(signer))
        result = verify_manifest(manifest, forged, trusted)
        assert [p.code for p in result.problems] == [BAD_SIGNATURE]

    def test_manifest_altered_after_signing_has_a_bad_signature(
        self, packages: dict[str, Path], signer: Ed25519PrivateKey, trusted: dict[str, str]
    ) -> None:
        """Changing any field after signing (here a record count) breaks the signature."""
        manifest = manifest_for(packages)
        signature = sign_manifest(manifest, signer)
        first = dataclasses.replace(manifest.packages[0], records=manifest.packages[0].records + 1)
        altered = dataclasses.replace(manifest, packages=(first, *manifest.packages[1:]))
        assert [p.code for p in verify_manifest(altered, signature, trusted).problems] == [BAD_SIGNATURE]

    def test_merkle_root_that_does_not_match_the_packages_is_reported(
        self, packages: dict[str, Path], signer: Ed25519PrivateKey, trusted: dict[str, str]
    ) -> None:
        """A validly signed manifest whose root is not the packages' root reports the mismatch."""
        manifest = dataclasses.replace(manifest_for(packages), merkle_root="cd" * 32)
        result = verify_manifest(manifest, sign_manifest(manifest, signer), trusted, streamed(packages))
        assert [p.code for p in result.problems] == [MERKLE_ROOT_MISMATCH]
        assert result.signature_ok
        assert not result.merkle_root_ok
        assert result.computed_merkle_root == manifest_merkle_root(manifest.packages)

    def test_every_problem_is_reported_at_once(self, packages: dict[str, Path], trusted: dict[str, str]) -> None:
        """Unknown key, wrong root, a missing and an extra package all appear in one result."""
        manifest = dataclasses.replace(manifest_for(packages), merkle_root="00" * 32)
        actual = [*streamed(packages)[1:], PackageDigest("x", 1, "ee" * 32)]
        result = verify_manifest(manifest, sign_manifest(manifest, generate_private_key()), trusted, actual)
        assert {p.code for p in result.problems} == {UNKNOWN_KEY, MERKLE_ROOT_MISMATCH, MISSING_PACKAGE, EXTRA_PACKAGE}

    def test_duplicate_package_names_are_refused(
        self, packages: dict[str, Path], signer: Ed25519PrivateKey, trusted: dict[str, str]
    ) -> None:
        """A manifest listing a package twice reports the duplicate by name."""
        base = manifest_for(packages)
        manifest = build_manifest(
            **{k: v for k, v in dataclasses.asdict(base).items() if k not in ("packages", "merkle_root")},
            packages=[*base.packages, base.packages[0]],
        )
        result = verify_manifest(manifest, sign_manifest(manifest, signer), trusted, streamed(packages))
        assert [(p.code, p.package) for p in result.problems] == [(DUPLICATE_PACKAGE, base.packages[0].name)]

    def test_only_ed25519_is_accepted(
        self, packages: dict[str, Path], signer: Ed25519PrivateKey, trusted: dict[str, str]
    ) -> None:
        """A signature claiming another algorithm is refused before any key is used."""
        manifest = manifest_for(packages)
        signature = dataclasses.replace(sign_manifest(manifest, signer), algorithm="RS256")
        assert [p.code for p in verify_manifest(manifest, signature, trusted).problems] == [UNSUPPORTED_ALGORITHM]

    def test_failure_becomes_a_non_retryable_application_error(
        self, packages: dict[str, Path], signer: Ed25519PrivateKey, trusted: dict[str, str]
    ) -> None:
        """integrity_failure names every problem and is a non-retryable IntegrityVerificationFailed."""
        manifest = manifest_for(packages)
        actual = [d for d in streamed(packages) if d.name != "blobs/docs.tar"]
        error = integrity_failure(verify_manifest(manifest, sign_manifest(manifest, signer), trusted, actual))
        assert error.type == INTEGRITY_ERROR_TYPE == "IntegrityVerificationFailed"
        assert error.non_retryable
        assert "blobs/docs.tar is missing" in error.message
        assert error.details[0]["code"] == MISSING_PACKAGE

    def test_manifest_round_trips_through_its_json_form(self, packages: dict[str, Path]) -> None:
        """from_dict(to_dict()) gives the same manifest, and its canonical JSON is compact and sorted."""
        manifest = manifest_for(packages)
        assert Manifest.from_dict(json.loads(json.dumps(manifest.to_dict()))) == manifest
        encoded = canonical_json({"b": 1, "a": ["é", 2.5]})
        assert encoded == '{"a":["é",2.5],"b":1}'.encode()

    def test_canonical_json_refuses_nan(self) -> None:
        """NaN has no canonical JSON form, so it cannot be signed."""
        with pytest.raises(ValueError, match="JSON"):
            canonical_json({"x": float("nan")})


class TestKeys:
    def test_private_key_is_saved_0600_and_loads_back(self, tmp_path: Path) -> None:
        """A saved key is readable only by its owner and loads as the same key."""
        key = generate_private_key()
        path = tmp_path / "k.key"
        save_private_key(key, path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert public_key_b64(load_private_key(path)) == public_key_b64(key)

    def test_existing_key_is_not_overwritten_unless_asked(self, tmp_path: Path) -> None:
        """Saving over an existing file raises FileExistsError; overwrite=True replaces it, still 0600."""
        path = tmp_path / "k.key"
        first, second = generate_private_key(), generate_private_key()
        save_private_key(first, path)
        with pytest.raises(FileExistsError):
            save_private_key(second, path)
        assert public_key_b64(load_private_key(path)) == public_key_b64(first)
        path.chmod(0o644)
        save_private_key(second, path, overwrite=True)
        assert public_key_b64(load_private_key(path)) == public_key_b64(second)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert sorted(p.name for p in tmp_path.iterdir()) == ["k.key"]

    def test_encrypted_key_needs_its_passphrase(self, tmp_path: Path) -> None:
        """A passphrase-protected key loads with it and is refused without it or with another."""
        key = generate_private_key()
        path = tmp_path / "k.key"
        save_private_key(key, path, passphrase=b"correct horse")
        assert b"ENCRYPTED PRIVATE KEY" in path.read_bytes()
        assert public_key_b64(load_private_key(path, b"correct horse")) == public_key_b64(key)
        with pytest.raises(KeyMaterialError, match="encrypted"):
            load_private_key(path)
        with pytest.raises(KeyMaterialError, match="passphrase"):
            load_private_key(path, b"wrong")

    def test_passphrase_comes_from_the_named_environment_variable(self) -> None:
        """The passphrase is read from the variable given; an unset one is an error naming it."""
        assert passphrase_from_env("P", {"P": "s3cret"}) == b"s3cret"
        with pytest.raises(KeyMaterialError, match="NOPE"):
            passphrase_from_env("NOPE", {})

    def test_public_key_is_the_plans_base64_raw_format(self, tmp_path: Path) -> None:
        """The public key is base64 of 32 raw bytes, accepted by the plan's approver check, and its .pub file."""
        key = generate_private_key()
        b64 = public_key_b64(key)
        assert _is_ed25519_public_key(b64)
        save_public_key(key, tmp_path / "k.pub")
        assert read_public_key_file(tmp_path / "k.pub") == b64
        assert load_public_key(b64) == key.public_key()

    def test_key_id_is_derived_from_the_public_key(self) -> None:
        """A key id is ed25519: and 16 hex of SHA-256 of the raw public key, equal for key and base64."""
        key = generate_private_key()
        raw = key.public_key().public_bytes_raw()
        expected = "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]
        assert key_id_of(key) == key_id_of(key.public_key()) == key_id_of(public_key_b64(key)) == expected

    @pytest.mark.parametrize("bad", ["not base64!", "AAAA", ""])
    def test_malformed_public_keys_are_refused(self, bad: str) -> None:
        """Public keys that are not base64 of exactly 32 bytes raise KeyMaterialError."""
        with pytest.raises(KeyMaterialError):
            load_public_key(bad)

    def test_a_non_key_file_is_refused_with_its_name(self, tmp_path: Path) -> None:
        """Loading a file that is not a PEM key names the file."""
        path = tmp_path / "notes.txt"
        path.write_text("hello")
        with pytest.raises(KeyMaterialError, match=r"notes\.txt"):
            load_private_key(path)


def approval_by(
    key: Ed25519PrivateKey,
    *,
    workflow_id: str = "restore-t1-42",
    recovery_point_id: str = "rp-1",
    decision: str = "approve",
    expires_at: datetime = NOW + timedelta(hours=1),
) -> Approval:
    """Alice's signed decision on restore-t1-42 (fields overridable)."""
    return sign_approval(
        key,
        workflow_id=workflow_id,
        recovery_point_id=recovery_point_id,
        verification_digest="ab" * 32,
        decision=decision,
        approver="alice",
        expires_at=expires_at,
    )


def approval_problems(
    approval: Approval, key: Ed25519PrivateKey, now: datetime = NOW, decision: str | None = None
) -> list[str]:
    """verify_approval as restore-t1-42's validator calls it, with alice's public key."""
    return verify_approval(
        approval,
        public_key_b64(key),
        now,
        workflow_id="restore-t1-42",
        recovery_point_id="rp-1",
        verification_digest="ab" * 32,
        decision=decision,
    )


class TestApprovals:
    @pytest.fixture
    def alice(self) -> Ed25519PrivateKey:
        return generate_private_key()

    def test_valid_approval_has_no_problems(self, alice: Ed25519PrivateKey) -> None:
        """A fresh approval signed by the approver for this workflow and verification is accepted."""
        approval = approval_by(alice)
        assert approval_problems(approval, alice, decision="approve") == []
        assert approval.expires_at == "2026-05-01T13:00:00Z"
        assert approval.key_id == key_id_of(alice)

    def test_expired_approval_is_refused(self, alice: Ed25519PrivateKey) -> None:
        """An approval checked at or after its expiry is refused, saying when it expired."""
        approval = approval_by(alice)
        problems = approval_problems(approval, alice, now=NOW + timedelta(hours=1))
        assert problems == ["the approval by alice expired at 2026-05-01T13:00:00Z"]

    def test_approval_for_another_workflow_is_refused(self, alice: Ed25519PrivateKey) -> None:
        """An approval signed for another restore does not count for this one."""
        approval = approval_by(alice, workflow_id="restore-t2-7")
        problems = approval_problems(approval, alice)
        assert len(problems) == 1
        assert "workflow id 'restore-t2-7'" in problems[0]

    def test_wrong_decision_is_refused(self, alice: Ed25519PrivateKey) -> None:
        """A rejection offered where an approval is expected is refused, and so is an unknown decision."""
        rejection = approval_by(alice, decision="reject")
        assert approval_problems(rejection, alice, decision="approve") == [
            "decision by alice is 'reject', expected 'approve'"
        ]
        unknown = dataclasses.replace(rejection, decision="maybe")
        problems = approval_problems(unknown, alice)
        assert "decision 'maybe' by alice is neither approve nor reject" in problems
        with pytest.raises(ValueError, match="decision"):
            approval_by(alice, decision="maybe")

    def test_bad_signature_is_refused(self, alice: Ed25519PrivateKey) -> None:
        """A decision changed after signing, or signed by someone else, has a bad signature."""
        approval = approval_by(alice, decision="reject")
        flipped = dataclasses.replace(approval, decision="approve")
        assert approval_problems(flipped, alice) == [
            "bad signature: the approval by alice was not signed by alice's key or was altered"
        ]
        mallory = generate_private_key()
        forged = dataclasses.replace(approval_by(mallory), key_id="")
        assert approval_problems(forged, alice) == [
            "bad signature: the approval by alice was not signed by alice's key or was altered"
        ]
        claimed = approval_by(mallory)
        assert "signed with key" in approval_problems(claimed, alice)[0]

    def test_every_problem_is_reported(self, alice: Ed25519PrivateKey) -> None:
        """Expired, for another workflow and recovery point, altered: all four are listed together."""
        approval = approval_by(alice, workflow_id="w2")
        altered = dataclasses.replace(approval, recovery_point_id="rp-9")
        problems = approval_problems(altered, alice, now=NOW + timedelta(days=1))
        assert len(problems) == 4
        assert any("workflow id" in p for p in problems)
        assert any("recovery point" in p for p in problems)
        assert any("expired" in p for p in problems)
        assert any(p.startswith("bad signature") for p in problems)

    def test_payload_is_deterministic_and_binds_every_field(self) -> None:
        """The same fields give the same bytes; changing any one field changes them."""
        fields: dict[str, str] = {
            "workflow_id": "w",
            "recovery_point_id": "rp",
            "verification_digest": "d",
            "decision": "approve",
            "approver": "alice",
            "expires_at": "2026-05-01T13:00:00Z",
        }
        payload = approval_payload(**fields)
        same_time = datetime(2026, 5, 1, 13, tzinfo=UTC)
        assert payload == approval_payload(
            **{k: v for k, v in fields.items() if k != "expires_at"}, expires_at=same_time
        )
        for name, value in fields.items():
            assert approval_payload(**{**fields, name: value + "x"}) != payload

    def test_naive_times_are_refused(self, alice: Ed25519PrivateKey) -> None:
        """Expiry and now must carry a time zone: a naive datetime is ambiguous."""
        approval = approval_by(alice)
        with pytest.raises(ValueError, match="time"):
            approval_problems(approval, alice, now=datetime(2026, 5, 1, 12))  # noqa: DTZ001
        with pytest.raises(ValueError, match="time zone"):
            iso_utc(datetime(2026, 5, 1, 12))  # noqa: DTZ001

    def test_verification_digest_changes_with_the_result(
        self, packages: dict[str, Path], signer: Ed25519PrivateKey, trusted: dict[str, str]
    ) -> None:
        """Approvers sign the digest of what they saw: a different verification result has another digest."""
        manifest = manifest_for(packages)
        signature = sign_manifest(manifest, signer)
        good = verify_manifest(manifest, signature, trusted, streamed(packages))
        partial = verify_manifest(manifest, signature, trusted, streamed(packages)[1:])
        assert verification_digest(good) == verification_digest(good)
        assert verification_digest(good) != verification_digest(partial)
