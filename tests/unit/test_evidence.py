"""Evidence packs: hash chain and signature catch every alteration, secrets never get in, drctl checks them."""

from __future__ import annotations

import base64
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner, Result

from activities.evidence import (
    BROKEN_LINK,
    GENESIS_HASH,
    MALFORMED,
    OUT_OF_ORDER,
    TAMPERED_ENTRY,
    UNSIGNED,
    EvidenceFormatError,
    EvidenceHeader,
    EvidencePack,
    EvidenceRecorder,
    entry_hash,
    verify_pack,
)
from activities.integrity import generate_private_key, key_id_of, public_key_b64, save_private_key, trusted_keys
from domain.messages.integrity import BAD_SIGNATURE, UNKNOWN_KEY
from starters import evidence_cmd
from starters.cli import app
from starters.evidence_cmd import FetchError, fetch_https, fetch_pack

PLANS = Path(__file__).resolve().parents[2] / "plans"
START = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
APPROVAL_SIGNATURE = base64.b64encode(bytes(range(64))).decode()


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return generate_private_key()


@pytest.fixture(scope="module")
def trusted(key: Ed25519PrivateKey) -> dict[str, str]:
    return trusted_keys([public_key_b64(key)])


def record(key: Ed25519PrivateKey, entries: int = 5) -> EvidencePack:
    """A restore's pack: ``entries`` entries of the kinds a restore records, signed by ``key``."""
    recorder = EvidenceRecorder(
        EvidenceHeader(workflow_id="restore-t1-42", kind="restore", started_at="", tenant="t1", recovery_point="rp-1")
    )
    kinds = ["step", "verification", "approval", "call", "note", "validation"]
    for i in range(entries):
        kind = kinds[i % len(kinds)]
        recorder.add(kind, {"n": i, "what": f"{kind} {i}", "ok": True}, START + timedelta(seconds=i))
    return recorder.finish(key, finished_at=START + timedelta(minutes=5), rto_seconds=300.0)


def edit(pack: EvidencePack, change: Any) -> bytes:
    """The pack's JSON after ``change(raw_dict)`` edited it in place."""
    raw = json.loads(pack.to_json())
    change(raw)
    return json.dumps(raw).encode()


def codes(data: bytes, trusted: dict[str, str]) -> list[tuple[str, int | None]]:
    return [(p.code, p.position) for p in verify_pack(data, trusted).problems]


class TestChain:
    def test_recorded_pack_verifies(self, key: Ed25519PrivateKey, trusted: dict[str, str]) -> None:
        """A pack straight from the recorder is intact and signed by the trusted key."""
        pack = record(key)
        result = verify_pack(pack.to_json(), trusted)
        assert result.ok, result.problems
        assert (result.workflow_id, result.kind, result.entries, result.key_id) == (
            "restore-t1-42",
            "restore",
            5,
            key_id_of(key),
        )
        assert result.first_bad_entry is None

    def test_entries_are_chained_from_the_genesis_hash(self, key: Ed25519PrivateKey) -> None:
        """seq counts from 1, the first prev_hash is 64 zeros and each hash covers the entry and its link."""
        pack = record(key, entries=3)
        assert [e.seq for e in pack.entries] == [1, 2, 3]
        assert pack.entries[0].prev_hash == GENESIS_HASH == "0" * 64
        for before, after in zip(pack.entries, pack.entries[1:], strict=False):
            assert after.prev_hash == before.hash
        first = pack.entries[0]
        body = {"seq": 1, "at": first.at, "kind": first.kind, "data": first.data, "prev_hash": GENESIS_HASH}
        assert first.hash == entry_hash(body)
        assert first.at == "2026-05-01T12:00:00.000Z"

    def test_tampered_entry_is_named(self, key: Ed25519PrivateKey, trusted: dict[str, str]) -> None:
        """Changing an entry's data is reported as that entry being altered."""

        def change(raw: dict[str, Any]) -> None:
            raw["entries"][2]["data"]["ok"] = False

        data = edit(record(key), change)
        assert codes(data, trusted) == [(TAMPERED_ENTRY, 3)]
        assert verify_pack(data, trusted).first_bad_entry == 3
        assert "entry seq 3 (position 3) was altered" in verify_pack(data, trusted).problems[0].message

    def test_rehashed_tampered_entry_breaks_the_next_link(
        self, key: Ed25519PrivateKey, trusted: dict[str, str]
    ) -> None:
        """An altered entry whose hash was recomputed no longer matches the next entry's prev_hash."""

        def change(raw: dict[str, Any]) -> None:
            entry = raw["entries"][1]
            entry["data"]["what"] = "nothing happened"
            entry["hash"] = entry_hash(entry)

        assert codes(edit(record(key), change), trusted) == [(BROKEN_LINK, 3)]

    def test_removed_entry_is_named(self, key: Ed25519PrivateKey, trusted: dict[str, str]) -> None:
        """Deleting an entry shows at the position it left: the seq jumps and the link breaks there."""

        def change(raw: dict[str, Any]) -> None:
            del raw["entries"][1]

        found = codes(edit(record(key), change), trusted)
        assert found[:2] == [(OUT_OF_ORDER, 2), (BROKEN_LINK, 2)]
        assert verify_pack(edit(record(key), change), trusted).first_bad_entry == 2

    def test_reordered_entries_are_named(self, key: Ed25519PrivateKey, trusted: dict[str, str]) -> None:
        """Swapping two entries reports both positions as out of order and unlinked."""

        def change(raw: dict[str, Any]) -> None:
            raw["entries"][1], raw["entries"][2] = raw["entries"][2], raw["entries"][1]

        found = codes(edit(record(key), change), trusted)
        assert (OUT_OF_ORDER, 2) in found
        assert (OUT_OF_ORDER, 3) in found
        assert (BROKEN_LINK, 2) in found
        assert TAMPERED_ENTRY not in [code for code, _ in found]

    def test_dropping_the_last_entries_breaks_the_signature(
        self, key: Ed25519PrivateKey, trusted: dict[str, str]
    ) -> None:
        """Truncating the pack leaves a valid chain but a signature over another last hash."""

        def change(raw: dict[str, Any]) -> None:
            del raw["entries"][-2:]

        assert codes(edit(record(key), change), trusted) == [(BAD_SIGNATURE, None)]

    def test_edited_header_breaks_the_signature(self, key: Ed25519PrivateKey, trusted: dict[str, str]) -> None:
        """Changing the header (here the measured RTO) is caught by the signature."""

        def change(raw: dict[str, Any]) -> None:
            raw["header"]["rto_seconds"] = 60.0

        assert codes(edit(record(key), change), trusted) == [(BAD_SIGNATURE, None)]


class TestSignature:
    def test_altered_signature_is_bad(self, key: Ed25519PrivateKey, trusted: dict[str, str]) -> None:
        """A signature with one byte changed is reported as bad."""

        def change(raw: dict[str, Any]) -> None:
            sig = bytearray(base64.b64decode(raw["signature"]["signature"]))
            sig[0] ^= 0xFF
            raw["signature"]["signature"] = base64.b64encode(bytes(sig)).decode()

        assert codes(edit(record(key), change), trusted) == [(BAD_SIGNATURE, None)]

    def test_pack_signed_by_an_untrusted_key_is_refused(self, trusted: dict[str, str]) -> None:
        """A pack signed with a key the verifier does not trust reports the unknown key id."""
        other = generate_private_key()
        result = verify_pack(record(other).to_json(), trusted)
        assert [p.code for p in result.problems] == [UNKNOWN_KEY]
        assert key_id_of(other) in result.problems[0].message

    def test_unsigned_pack_is_refused(self, key: Ed25519PrivateKey, trusted: dict[str, str]) -> None:
        """A pack without a signature is reported as unsigned."""

        def change(raw: dict[str, Any]) -> None:
            del raw["signature"]

        assert codes(edit(record(key), change), trusted) == [(UNSIGNED, None)]

    @pytest.mark.parametrize("data", [b"not json", b"[]", b'{"format": "other/v9", "header": {}, "entries": []}'])
    def test_garbage_is_malformed(self, data: bytes, trusted: dict[str, str]) -> None:
        """Bytes that are not a pack are reported as malformed, never as intact."""
        result = verify_pack(data, trusted)
        assert not result.ok
        assert [p.code for p in result.problems] == [MALFORMED]

    def test_empty_pack_is_signed_over_the_genesis_hash(self, key: Ed25519PrivateKey, trusted: dict[str, str]) -> None:
        """A pack with no entries still verifies: its signature covers the header and the genesis hash."""
        pack = record(key, entries=0)
        assert pack.last_hash == GENESIS_HASH
        assert verify_pack(pack.to_json(), trusted).ok


class TestPackFormat:
    def test_json_round_trip_keeps_everything(self, key: Ed25519PrivateKey) -> None:
        """from_json(to_json()) gives the same pack."""
        pack = record(key)
        assert EvidencePack.from_json(pack.to_json()) == pack

    def test_from_json_refuses_non_packs(self) -> None:
        """Loading bytes that are not a pack raises EvidenceFormatError."""
        with pytest.raises(EvidenceFormatError):
            EvidencePack.from_json(b'{"format": "dr-evidence/v1", "header": {}, "entries": []}')

    def test_unknown_kinds_are_refused_when_recording(self) -> None:
        """Packs and entries only take the documented kinds."""
        with pytest.raises(ValueError, match="restore"):
            EvidenceRecorder(EvidenceHeader(workflow_id="w", kind="backup", started_at="t"))
        recorder = EvidenceRecorder(EvidenceHeader(workflow_id="w", kind="drill", started_at="t"))
        with pytest.raises(ValueError, match="step"):
            recorder.add("gossip", {}, START)

    def test_values_without_a_json_form_are_refused(self) -> None:
        """Objects and NaN cannot be recorded; datetimes, tuples and dataclasses are converted."""
        recorder = EvidenceRecorder(EvidenceHeader(workflow_id="w", kind="drill", started_at="t"))
        with pytest.raises(TypeError, match="object"):
            recorder.add("note", {"x": object()}, START)
        with pytest.raises(ValueError, match="NaN"):
            recorder.add("note", {"x": float("nan")}, START)
        entry = recorder.add("note", {"when": START, "regions": ("eastus", "westus")}, START)
        assert entry.data == {"when": "2026-05-01T12:00:00.000Z", "regions": ["eastus", "westus"]}

    def test_naive_timestamps_are_refused(self) -> None:
        """An entry time without a time zone is refused."""
        recorder = EvidenceRecorder(EvidenceHeader(workflow_id="w", kind="drill", started_at="t"))
        with pytest.raises(ValueError, match="time zone"):
            recorder.add("note", {}, datetime(2026, 5, 1, 12))  # noqa: DTZ001


class TestSecrets:
    SECRETS = (
        "hunter2",
        "eyJhbGciOiJSUzI1NiJ9.payload.sig",
        "c2VjcmV0LWFjY291bnQta2V5",
        "sv=2024&sig=Zm9vYmFy",
        "Zm9vYmFy",
    )

    def test_secret_values_never_reach_the_pack(self, key: Ed25519PrivateKey, trusted: dict[str, str]) -> None:
        """Values under secret-named keys and secrets inside text are masked before hashing and signing."""
        recorder = EvidenceRecorder(EvidenceHeader(workflow_id="w", kind="restore", started_at="t"))
        recorder.add(
            "call",
            {
                "password": "hunter2",
                "request": {"headers": {"Authorization": "Bearer eyJhbGciOiJSUzI1NiJ9.payload.sig"}},
                "connection_string": "DefaultEndpointsProtocol=https;AccountKey=c2VjcmV0LWFjY291bnQta2V5",
                "log": "copied https://acct.blob.core.windows.net/c/p?sv=2024&sig=Zm9vYmFy done",
                "sas_token": "sv=2024&sig=Zm9vYmFy",
                "signature": "Zm9vYmFy",
                "rows": 42,
            },
            START,
        )
        pack = recorder.finish(key, finished_at=START)
        text = pack.to_json().decode()
        for secret in self.SECRETS:
            assert secret not in text
        data = pack.entries[0].data
        assert data["password"] == "***"
        assert data["rows"] == 42
        assert data["log"] == "copied https://acct.blob.core.windows.net/c/p?sv=2024&sig=*** done"
        assert verify_pack(pack.to_json(), trusted).ok

    def test_public_key_material_of_the_right_shape_is_kept(self) -> None:
        """An approval's key id, public key and Ed25519 signature are evidence, not secrets."""
        recorder = EvidenceRecorder(EvidenceHeader(workflow_id="w", kind="restore", started_at="t"))
        approver = generate_private_key()
        approval = {
            "approver": "alice",
            "key_id": key_id_of(approver),
            "public_key": public_key_b64(approver),
            "signature": APPROVAL_SIGNATURE,
        }
        assert recorder.add("approval", approval, START).data == approval
        mislabelled = {"key_id": "hunter2", "public_key": "hunter2", "signature": "hunter2"}
        assert recorder.add("approval", mislabelled, START).data == dict.fromkeys(mislabelled, "***")


def drctl(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env={"DR_LOG_LEVEL": "ERROR", **(env or {})})


@pytest.fixture
def pack_file(tmp_path: Path, key: Ed25519PrivateKey) -> Path:
    path = tmp_path / "restore-t1-42.json"
    path.write_bytes(record(key).to_json())
    return path


def trusted_flag(key: Ed25519PrivateKey) -> str:
    return f"{key_id_of(key)}={public_key_b64(key)}"


class TestVerifyCommand:
    def test_intact_pack_prints_ok_and_exits_0(self, pack_file: Path, key: Ed25519PrivateKey) -> None:
        """drctl evidence verify prints OK with the workflow, entries and key id."""
        result = drctl("evidence", "verify", str(pack_file), "--trusted-key", trusted_flag(key))
        assert result.exit_code == 0, result.output
        assert result.output.startswith("OK evidence pack restore-t1-42 (restore, 5 entries)")
        assert key_id_of(key) in result.output

    def test_bare_base64_key_is_accepted(self, pack_file: Path, key: Ed25519PrivateKey) -> None:
        """A trusted key given without its id gets its id derived."""
        result = drctl("evidence", "verify", str(pack_file), "--trusted-key", public_key_b64(key))
        assert result.exit_code == 0, result.output

    def test_tampered_pack_prints_every_problem_and_exits_1(self, pack_file: Path, key: Ed25519PrivateKey) -> None:
        """A pack with an altered entry fails with each problem on its own line."""
        raw = json.loads(pack_file.read_bytes())
        raw["entries"][3]["data"]["n"] = 99
        del raw["signature"]
        pack_file.write_text(json.dumps(raw))
        result = drctl("evidence", "verify", str(pack_file), "--trusted-key", trusted_flag(key))
        assert result.exit_code == 1
        lines = result.output.splitlines()
        assert lines[0].startswith("FAILED evidence pack restore-t1-42")
        assert "  - entry seq 4 (position 4) was altered: its content does not match its hash" in lines
        assert "  - the pack is not signed" in lines

    def test_json_output_lists_problems_with_positions(self, pack_file: Path, key: Ed25519PrivateKey) -> None:
        """--json prints ok, the first bad entry and each problem's code and position."""
        raw = json.loads(pack_file.read_bytes())
        del raw["entries"][0]
        pack_file.write_text(json.dumps(raw))
        result = drctl("evidence", "verify", str(pack_file), "--trusted-key", trusted_flag(key), "--json")
        assert result.exit_code == 1
        out = json.loads(result.output)
        assert out["ok"] is False
        assert out["first_bad_entry"] == 1
        assert {"code": OUT_OF_ORDER, "position": 1}.items() <= out["problems"][0].items()

    def test_untrusted_signer_fails(self, pack_file: Path) -> None:
        """A pack checked against other keys fails as signed by an unknown key."""
        result = drctl("evidence", "verify", str(pack_file), "--trusted-key", trusted_flag(generate_private_key()))
        assert result.exit_code == 1
        assert "signed by unknown key" in result.output

    def test_no_trusted_keys_is_invalid_input(self, pack_file: Path) -> None:
        """Without --trusted-key or --plan nothing can be trusted: exit 2."""
        result = drctl("evidence", "verify", str(pack_file))
        assert result.exit_code == 2
        assert "no trusted keys" in result.output

    def test_key_id_that_does_not_match_its_key_is_refused(self, pack_file: Path, key: Ed25519PrivateKey) -> None:
        """--trusted-key with another key's id is a usage error naming the real id."""
        result = drctl(
            "evidence", "verify", str(pack_file), "--trusted-key", f"ed25519:0000000000000000={public_key_b64(key)}"
        )
        assert result.exit_code == 2
        assert key_id_of(key) in result.output

    def test_plan_approvers_and_orchestrator_key_are_trusted(
        self, tmp_path: Path, pack_file: Path, key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """--plan trusts the orchestrator's signing key named by [backup] signing_key, and its approvers."""
        monkeypatch.delenv("DR_SIGNING_KEY", raising=False)
        shutil.copy(PLANS / "local-tenants.csv", tmp_path / "local-tenants.csv")
        save_private_key(key, tmp_path / "orchestrator.key")
        text = (PLANS / "local.toml").read_text(encoding="utf-8")
        backup = '\nsigning_key = "orchestrator.key"\n'
        text = (
            text.replace("[backup]\n", "[backup]" + backup, 1) if "[backup]\n" in text else text + "\n[backup]" + backup
        )
        approvers = "".join(
            f'\n[[approvers]]\nname = "{n}"\npublic_key = "{public_key_b64(generate_private_key())}"\n'
            for n in ("dave", "erin")
        )
        (tmp_path / "plan.toml").write_text(text + approvers, encoding="utf-8")
        result = drctl("evidence", "verify", str(pack_file), "--plan", str(tmp_path / "plan.toml"))
        assert result.exit_code == 0, result.output
        (tmp_path / "orchestrator.key").unlink()
        result = drctl("evidence", "verify", str(pack_file), "--plan", str(tmp_path / "plan.toml"))
        assert result.exit_code == 1
        assert "signed by unknown key" in result.output

    def test_the_workers_signing_key_from_the_environment_is_trusted(
        self, tmp_path: Path, pack_file: Path, key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """--plan also trusts the key DR_SIGNING_KEY names, as the worker that signed the pack reads it."""
        save_private_key(key, tmp_path / "worker.key")
        monkeypatch.setenv("DR_SIGNING_KEY", str(tmp_path / "worker.key"))
        result = drctl("evidence", "verify", str(pack_file), "--plan", str(PLANS / "local.toml"))
        assert result.exit_code == 0, result.output

    def test_missing_file_fails_with_its_name(self, tmp_path: Path, key: Ed25519PrivateKey) -> None:
        """A pack path that does not exist is an error naming it, exit 1."""
        result = drctl("evidence", "verify", str(tmp_path / "nope.json"), "--trusted-key", trusted_flag(key))
        assert result.exit_code == 1
        assert "nope.json" in result.output

    def test_other_stores_plug_in_by_url_scheme(self, monkeypatch: pytest.MonkeyPatch, key: Ed25519PrivateKey) -> None:
        """A fetcher registered for a scheme serves URLs of that scheme to the command."""
        data = record(key).to_json()
        monkeypatch.setitem(evidence_cmd.FETCHERS, "azblob", lambda url: data if url == "azblob://c/p.json" else b"")
        result = drctl("evidence", "verify", "azblob://c/p.json", "--trusted-key", trusted_flag(key))
        assert result.exit_code == 0, result.output


class TestFetch:
    def test_https_fetch_returns_the_body(self, key: Ed25519PrivateKey) -> None:
        """An https URL is fetched with a GET and its body returned."""
        data = record(key).to_json()
        seen: list[str] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(f"{request.method} {request.url}")
            return httpx.Response(200, content=data)

        assert fetch_https("https://evidence.example/p.json", transport=httpx.MockTransport(handler)) == data
        assert seen == ["GET https://evidence.example/p.json"]

    def test_http_errors_name_the_url_without_its_sas_signature(self) -> None:
        """A failed fetch reports the status and the URL with its SAS signature masked."""
        transport = httpx.MockTransport(lambda request: httpx.Response(403))
        with pytest.raises(FetchError) as failed:
            fetch_https("https://acct.blob.core.windows.net/c/p.json?sv=1&sig=SECRETSIG", transport=transport)
        assert "HTTP 403" in str(failed.value)
        assert "SECRETSIG" not in str(failed.value)
        assert "sig=***" in str(failed.value)

    def test_unsupported_schemes_are_named(self) -> None:
        """A URL whose scheme has no fetcher is refused, listing the supported ones."""
        with pytest.raises(FetchError, match="https://"):
            fetch_pack("ftp://host/p.json")
