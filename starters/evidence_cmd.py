"""``drctl evidence``: check that an evidence pack is complete, unaltered and signed by a trusted key.

Packs are read from a file or fetched by URL; ``FETCHERS`` maps a URL scheme to the function that
fetches it, so other stores (Blob Storage, Azurite) plug in beside https.

Exit codes: 0 the pack verifies, 1 it does not (or could not be fetched), 2 invalid arguments.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import httpx
import typer

from activities.evidence import PackVerification, verify_pack
from activities.integrity import (
    KEY_ID_PREFIX,
    KeyMaterialError,
    key_id_of,
    load_private_key,
    public_key_b64,
    read_public_key_file,
    trusted_keys,
)
from domain.errors import DrError
from domain.plan import DrPlan
from observability.logging import redact
from starters.output import EXIT_FAILED, EXIT_INVALID, emit_json, fail
from starters.plan_cmd import load_or_exit

app = typer.Typer(help="Verify evidence packs.", no_args_is_help=True)

FETCH_TIMEOUT_SECONDS = 60.0


class FetchError(DrError):
    """A pack could not be read from where it was said to be."""


def fetch_https(url: str, *, ca_file: str | None = None, transport: httpx.BaseTransport | None = None) -> bytes:
    """GET ``url`` over TLS (trusting ``ca_file`` too when given); FetchError with the URL's secrets masked."""
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
    try:
        with httpx.Client(verify=verify, transport=transport, timeout=FETCH_TIMEOUT_SECONDS) as client:
            response = client.get(url)
            response.raise_for_status()
            return response.content
    except httpx.HTTPStatusError as exc:
        raise FetchError(f"GET {redact(url)}: HTTP {exc.response.status_code}") from None
    except httpx.HTTPError as exc:
        raise FetchError(f"GET {redact(url)}: {type(exc).__name__}: {redact(str(exc))}") from None


def _fetch_https_with_env_ca(url: str) -> bytes:
    # DR_CA_FILE is the extra CA every drctl command trusts (the emulator's, a private CA).
    return fetch_https(url, ca_file=os.environ.get("DR_CA_FILE") or None)


FETCHERS: dict[str, Callable[[str], bytes]] = {"https": _fetch_https_with_env_ca}


def fetch_pack(location: str) -> bytes:
    """The bytes of the pack at ``location``: a URL with a scheme in ``FETCHERS``, or a file path."""
    scheme, sep, _ = location.partition("://")
    if sep:
        fetcher = FETCHERS.get(scheme.lower())
        if fetcher is None:
            supported = ", ".join(f"{s}://" for s in sorted(FETCHERS))
            raise FetchError(f"cannot fetch {redact(location)}: supported are file paths and {supported} URLs")
        return fetcher(location)
    try:
        return Path(location).read_bytes()
    except OSError as exc:
        raise FetchError(f"cannot read {location}: {exc.strerror or exc}") from None


def parse_trusted_key(value: str) -> tuple[str, str]:
    """``KEYID=BASE64`` (the id must match the key) or a bare ``BASE64`` as ``(key_id, base64)``."""
    if value.startswith(KEY_ID_PREFIX):
        claimed, sep, public_b64 = value.partition("=")
        if not sep:
            raise typer.BadParameter(f"{value!r}: expected KEYID=BASE64", param_hint="--trusted-key")
    else:
        claimed, public_b64 = "", value
    try:
        key_id = key_id_of(public_b64)
    except KeyMaterialError as exc:
        raise typer.BadParameter(f"{value!r}: {exc}", param_hint="--trusted-key") from None
    if claimed and claimed != key_id:
        raise typer.BadParameter(
            f"key id {claimed} does not belong to this public key (its id is {key_id})", param_hint="--trusted-key"
        )
    return key_id, public_b64.strip()


def _public_half(path: Path) -> str | None:
    """The base64 public key of the private key at ``path``: from the ``.pub`` beside it, else from the
    key itself when readable; None when neither can be read."""
    try:
        return read_public_key_file(path.with_suffix(".pub"))
    except (OSError, KeyMaterialError):
        try:
            return public_key_b64(load_private_key(path))
        except (OSError, KeyMaterialError):
            return None


def plan_trusted_keys(plan: DrPlan, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The keys a plan vouches for: its approvers', the orchestrator's (``[backup] signing_key``) and
    the one ``DR_SIGNING_KEY`` names in ``env`` (default: this process's environment), as a worker
    reads it."""
    keys = trusted_keys(a.public_key for a in plan.approvers)
    configured = (plan.backup.signing_key, (os.environ if env is None else env).get("DR_SIGNING_KEY", ""))
    for path in dict.fromkeys(p for p in configured if p):
        public_b64 = _public_half(Path(path))
        if public_b64 is not None:
            keys[key_id_of(public_b64)] = public_b64
    return keys


def print_verification(location: str, result: PackVerification) -> None:
    """OK with what was verified, or every problem, one per line."""
    what = f"evidence pack {result.workflow_id or '?'} ({result.kind or '?'}, {result.entries} entries)"
    if result.ok:
        typer.echo(f"OK {what} from {redact(location)} is intact and signed by {result.key_id}")
        return
    typer.echo(f"FAILED {what} from {redact(location)}: {len(result.problems)} problem(s)")
    for problem in result.problems:
        typer.echo(f"  - {problem.message}")


@app.command()
def verify(
    location: Annotated[str, typer.Argument(metavar="PATH|URL", help="Pack file, or an https:// URL.")],
    trusted_key: Annotated[
        list[str] | None,
        typer.Option(
            "--trusted-key",
            metavar="KEYID=BASE64",
            help="A public key allowed to sign packs (as printed by `drctl keys generate`); repeatable.",
        ),
    ] = None,
    plan: Annotated[
        Path | None,
        typer.Option("--plan", help="Also trust this plan's approvers and its orchestrator signing key."),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Check every entry's hash and link and the pack's signature; print OK or every problem."""
    keys = dict(parse_trusted_key(value) for value in trusted_key or [])
    if plan is not None:
        keys.update(plan_trusted_keys(load_or_exit(plan)))
    if not keys:
        fail(
            "no trusted keys: pass --trusted-key KEYID=BASE64, or a --plan with [[approvers]] or [backup] signing_key",
            EXIT_INVALID,
        )
    try:
        data = fetch_pack(location)
    except FetchError as exc:
        fail(str(exc))
    result = verify_pack(data, keys)
    if json_output:
        emit_json(
            {
                "ok": result.ok,
                "location": redact(location),
                "workflow_id": result.workflow_id,
                "kind": result.kind,
                "entries": result.entries,
                "key_id": result.key_id,
                "first_bad_entry": result.first_bad_entry,
                "problems": [asdict(p) for p in result.problems],
            }
        )
    else:
        print_verification(location, result)
    if not result.ok:
        raise typer.Exit(EXIT_FAILED)
