"""Evidence packs: the signed, hash-chained record auditors get of a restore, drill or failover.

A pack is JSON::

    {"format": "dr-evidence/v1",
     "header": {"workflow_id", "kind", "tenant", "recovery_point", "started_at", "finished_at", "rto_seconds"},
     "entries": [{"seq", "at", "kind", "data", "prev_hash", "hash"}, ...],
     "signature": {"key_id", "algorithm", "signature"}}

``seq`` counts from 1; each entry's ``hash`` is SHA-256 over the canonical JSON of the entry without
``hash`` (so it covers ``prev_hash``), and the first ``prev_hash`` is 64 zeros. The signature is
Ed25519 over ``dr-orchestrator/evidence/v1`` + newline + the canonical JSON of format, header and the
last entry's hash, so altering, removing, reordering or appending an entry, or editing the header,
breaks either the chain or the signature. Recorded data never holds secrets: values under
secret-named keys and secrets inside text are masked with the same rules as the logs.

Building and verifying are pure (no clock, no storage): callers pass timestamps and store the bytes.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import PurePath
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from activities.integrity import KEY_ID_PREFIX, canonical_json, check_signature, sign
from domain.errors import DrError
from domain.messages.integrity import ED25519, Signature
from observability.logging import REDACTED, SECRET_KEY, redact

FORMAT = "dr-evidence/v1"
EVIDENCE_CONTEXT = b"dr-orchestrator/evidence/v1\n"
GENESIS_HASH = "0" * 64

PACK_KINDS = ("restore", "drill", "failover")
ENTRY_KINDS = ("step", "call", "verification", "validation", "approval", "note")

# Codes of the problems ``verify_pack`` reports.
MALFORMED = "malformed"
OUT_OF_ORDER = "out-of-order"
BROKEN_LINK = "broken-link"
TAMPERED_ENTRY = "tampered-entry"
UNSIGNED = "unsigned"

# Public key material that secret-named keys may hold: recorded only when the value has exactly that
# shape, so a SAS ``signature`` or an account ``key`` is still masked.
_KEY_ID = re.compile(rf"^{KEY_ID_PREFIX}[0-9a-f]{{16}}$")
_PUBLIC_FIELDS_BYTES = {"public_key": 32, "signature": 64}

_ENTRY_FIELDS = ("seq", "at", "kind", "data", "prev_hash", "hash")
_HEADER_FIELDS = ("workflow_id", "kind", "tenant", "recovery_point", "started_at", "finished_at", "rto_seconds")


class EvidenceFormatError(DrError):
    """Bytes that are not an evidence pack (not JSON, or missing its parts)."""


@dataclass(frozen=True)
class EvidenceHeader:
    """What the pack is about; signed together with the last entry's hash."""

    workflow_id: str
    kind: str  # restore | drill | failover
    started_at: str
    finished_at: str = ""
    tenant: str | None = None
    recovery_point: str | None = None
    rto_seconds: float | None = None


@dataclass(frozen=True)
class EvidenceEntry:
    """One recorded fact, chained to the one before it by ``prev_hash``."""

    seq: int
    at: str
    kind: str  # step | call | verification | validation | approval | note
    data: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class EvidencePack:
    """A finished pack: header, chained entries and the signature over both."""

    header: EvidenceHeader
    entries: tuple[EvidenceEntry, ...]
    signature: Signature | None = None

    @property
    def last_hash(self) -> str:
        return self.entries[-1].hash if self.entries else GENESIS_HASH

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (see the module docstring)."""
        result: dict[str, Any] = {
            "format": FORMAT,
            "header": dataclasses.asdict(self.header),
            "entries": [dataclasses.asdict(entry) for entry in self.entries],
        }
        if self.signature is not None:
            result["signature"] = dataclasses.asdict(self.signature)
        return result

    def to_json(self) -> bytes:
        """UTF-8 JSON, indented for people; verification recomputes canonical forms, so layout is free."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False).encode()

    @classmethod
    def from_json(cls, data: bytes) -> EvidencePack:
        """The pack in ``data`` (not verified: use ``verify_pack``); EvidenceFormatError if malformed."""
        raw = _load(data)
        try:
            header = EvidenceHeader(**{name: raw["header"][name] for name in _HEADER_FIELDS})
            entries = tuple(EvidenceEntry(**{name: e[name] for name in _ENTRY_FIELDS}) for e in raw["entries"])
            sig = raw.get("signature")
            signature = None if sig is None else Signature(sig["key_id"], sig["signature"], sig["algorithm"])
        except (KeyError, TypeError) as exc:
            raise EvidenceFormatError(f"not an evidence pack: missing or malformed {exc}") from exc
        return cls(header=header, entries=entries, signature=signature)


def timestamp(moment: datetime | str) -> str:
    """An entry or header time as ISO 8601 UTC with milliseconds; strings are taken as given."""
    if isinstance(moment, str):
        return moment
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} has no time zone; pass an aware datetime (UTC)")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def entry_hash(entry: Mapping[str, Any]) -> str:
    """SHA-256 (hex) over the canonical JSON of ``entry`` without its ``hash`` field."""
    return hashlib.sha256(canonical_json({k: v for k, v in entry.items() if k != "hash"})).hexdigest()


def signed_payload(header: Mapping[str, Any], last_hash: str) -> bytes:
    """The bytes the pack signature covers."""
    return EVIDENCE_CONTEXT + canonical_json({"format": FORMAT, "header": dict(header), "last_hash": last_hash})


def _is_public_value(key: str, value: Any) -> bool:
    if not isinstance(value, str):
        return False
    if key == "key_id":
        return bool(_KEY_ID.match(value))
    size = _PUBLIC_FIELDS_BYTES.get(key)
    if size is None:
        return False
    try:
        return len(base64.b64decode(value, validate=True)) == size
    except (binascii.Error, ValueError):
        return False


def sanitize(value: Any, *, _key: str = "") -> Any:
    """``value`` as plain JSON with secrets masked: values under secret-named keys (except public key
    material of the exact expected shape) and secrets embedded in text. TypeError if not JSON-able."""
    if _key and value is not None and SECRET_KEY.search(_key) and not _is_public_value(_key, value):
        return REDACTED
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("evidence cannot record NaN or infinity")
        return value
    if isinstance(value, Enum):
        return sanitize(value.value)
    if isinstance(value, datetime):
        return timestamp(value)
    if isinstance(value, PurePath):
        return redact(str(value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sanitize(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        result: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise TypeError(f"evidence keys must be strings, found {k!r}")
            result[str(k)] = sanitize(v, _key=str(k))
        return result
    if isinstance(value, (list, tuple)):
        return [sanitize(v) for v in value]
    raise TypeError(f"evidence cannot record a {type(value).__name__}: convert it to JSON types first")


class EvidenceRecorder:
    """Collects entries of one workflow run in order, chaining each to the last, then signs the pack."""

    def __init__(self, header: EvidenceHeader) -> None:
        if header.kind not in PACK_KINDS:
            raise ValueError(f"evidence pack kind must be one of {', '.join(PACK_KINDS)}, not {header.kind!r}")
        self.header = header
        self._entries: list[EvidenceEntry] = []

    @property
    def entries(self) -> tuple[EvidenceEntry, ...]:
        return tuple(self._entries)

    def add(self, kind: str, data: Mapping[str, Any], at: datetime | str) -> EvidenceEntry:
        """Record ``data`` (secrets masked) as the next entry."""
        if kind not in ENTRY_KINDS:
            raise ValueError(f"evidence entry kind must be one of {', '.join(ENTRY_KINDS)}, not {kind!r}")
        body: dict[str, Any] = {
            "seq": len(self._entries) + 1,
            "at": timestamp(at),
            "kind": kind,
            "data": sanitize(dict(data)),
            "prev_hash": self._entries[-1].hash if self._entries else GENESIS_HASH,
        }
        entry = EvidenceEntry(**body, hash=entry_hash(body))
        self._entries.append(entry)
        return entry

    def finish(
        self,
        private_key: Ed25519PrivateKey,
        *,
        finished_at: datetime | str,
        rto_seconds: float | None = None,
    ) -> EvidencePack:
        """The signed pack of everything recorded, with the run's end time (and measured RTO)."""
        header = dataclasses.replace(
            self.header,
            finished_at=timestamp(finished_at),
            rto_seconds=self.header.rto_seconds if rto_seconds is None else rto_seconds,
        )
        pack = EvidencePack(header=header, entries=tuple(self._entries))
        signature = sign(signed_payload(dataclasses.asdict(header), pack.last_hash), private_key)
        return dataclasses.replace(pack, signature=signature)


@dataclass(frozen=True)
class PackProblem:
    """One reason a pack cannot be trusted; ``position`` is the entry's 1-based place in the pack."""

    code: str
    message: str
    position: int | None = None

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class PackVerification:
    """The outcome of ``verify_pack``: every problem found, the first bad entry, and what the pack is."""

    problems: tuple[PackProblem, ...]
    workflow_id: str = ""
    kind: str = ""
    entries: int = 0
    key_id: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad_entry(self) -> int | None:
        """The position of the first entry that is altered, out of place or unlinked."""
        positions = [p.position for p in self.problems if p.position is not None]
        return min(positions) if positions else None


def _load(data: bytes) -> dict[str, Any]:
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvidenceFormatError(f"not an evidence pack: not JSON ({exc})") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("header"), dict) or not isinstance(raw.get("entries"), list):
        raise EvidenceFormatError("not an evidence pack: expected an object with a header and a list of entries")
    if raw.get("format") != FORMAT:
        raise EvidenceFormatError(f"unsupported evidence format {raw.get('format')!r} (expected {FORMAT})")
    return raw


def _check_entries(entries: Sequence[Any]) -> tuple[list[PackProblem], str]:
    problems: list[PackProblem] = []
    previous = GENESIS_HASH
    for position, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or any(name not in entry for name in _ENTRY_FIELDS):
            problems.append(PackProblem(MALFORMED, f"entry at position {position} lacks {', '.join(_ENTRY_FIELDS)}"))
            previous = ""
            continue
        seq = entry["seq"]
        if seq != position:
            problems.append(
                PackProblem(
                    OUT_OF_ORDER,
                    f"entry at position {position} has seq {seq}: entries were removed, inserted or reordered",
                    position,
                )
            )
        if entry["prev_hash"] != previous:
            problems.append(
                PackProblem(
                    BROKEN_LINK,
                    f"chain broken at entry seq {seq} (position {position}): its prev_hash is not the hash "
                    f"of the entry before it",
                    position,
                )
            )
        try:
            actual = entry_hash(entry)
        except (TypeError, ValueError):
            actual = ""
        if actual != entry["hash"]:
            problems.append(
                PackProblem(
                    TAMPERED_ENTRY,
                    f"entry seq {seq} (position {position}) was altered: its content does not match its hash",
                    position,
                )
            )
        if entry["kind"] not in ENTRY_KINDS:
            problems.append(PackProblem(MALFORMED, f"entry seq {seq} has unknown kind {entry['kind']!r}", position))
        previous = str(entry["hash"])
    return problems, previous


def verify_pack(data: bytes, trusted_keys: Mapping[str, str]) -> PackVerification:
    """Check a stored pack: every entry's hash and link in order, then the signature by a trusted key
    (``{key_id: base64 public key}``). Every problem is reported, each naming the entry's position."""
    try:
        raw = _load(data)
    except EvidenceFormatError as exc:
        return PackVerification(problems=(PackProblem(MALFORMED, str(exc)),))
    header: dict[str, Any] = raw["header"]
    entries: list[Any] = raw["entries"]
    problems, last_hash = _check_entries(entries)
    missing = [name for name in _HEADER_FIELDS if name not in header]
    if missing:
        problems.append(PackProblem(MALFORMED, f"header lacks {', '.join(missing)}"))
    elif header["kind"] not in PACK_KINDS:
        problems.append(PackProblem(MALFORMED, f"header has unknown kind {header['kind']!r}"))
    sig = raw.get("signature")
    key_id = ""
    if sig is None:
        problems.append(PackProblem(UNSIGNED, "the pack is not signed"))
    elif not isinstance(sig, dict) or not all(isinstance(sig.get(k), str) for k in ("key_id", "signature")):
        problems.append(PackProblem(MALFORMED, "the signature lacks key_id or signature"))
    else:
        key_id = sig["key_id"]
        signature = Signature(key_id=key_id, signature=sig["signature"], algorithm=str(sig.get("algorithm", ED25519)))
        try:
            payload = signed_payload(header, last_hash)
        except (TypeError, ValueError):
            payload = b""
        problem = check_signature(payload, signature, trusted_keys)
        if problem is not None:
            problems.append(PackProblem(problem.code, problem.message))
    return PackVerification(
        problems=tuple(problems),
        workflow_id=str(header.get("workflow_id", "")),
        kind=str(header.get("kind", "")),
        entries=len(entries),
        key_id=key_id,
    )
