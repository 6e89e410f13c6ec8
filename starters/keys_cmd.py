"""``drctl keys``: create the Ed25519 key pairs requesters and approvers sign restores with and the worker
signs evidence with.

The private key stays with its owner (PKCS#8 PEM, mode 0600, optionally encrypted); only the public
key, printed as base64 of its raw 32 bytes, goes into a plan or a verifier's trusted keys.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

import typer

from activities.integrity import (
    KeyMaterialError,
    generate_private_key,
    key_id_of,
    passphrase_from_env,
    public_key_b64,
    save_private_key,
    save_public_key,
)
from starters.output import EXIT_INVALID, fail

app = typer.Typer(help="Create signing keys for requesters, approvers and evidence packs.", no_args_is_help=True)

# A key's name becomes a file name and a TOML string: no paths, quotes or spaces.
KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def approver_snippet(name: str, public_b64: str) -> str:
    """The TOML to paste into a plan so that ``name`` may approve restores."""
    return f'[[approvers]]\nname = "{name}"\npublic_key = "{public_b64}"'


def requester_snippet(name: str, public_b64: str) -> str:
    """The TOML to paste into a plan so that ``name`` may request production restores (but not approve them)."""
    return f'[[requesters]]\nname = "{name}"\npublic_key = "{public_b64}"'


def orchestrator_snippet(private_path: Path) -> str:
    """The TOML that makes the orchestrator sign manifests and evidence with the key at ``private_path``."""
    return f"[backup]\nsigning_key = {json.dumps(str(private_path.resolve()))}"


@app.command()
def generate(
    name: Annotated[
        str, typer.Argument(help="Whose key: the approver's or requester's name in the plan, or e.g. orchestrator.")
    ],
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Directory for NAME.key and NAME.pub.")] = Path("keys"),
    force: Annotated[bool, typer.Option("--force", help="Replace an existing NAME.key and NAME.pub.")] = False,
    passphrase_env: Annotated[
        str | None,
        typer.Option(
            "--passphrase-env",
            metavar="VAR",
            help="Encrypt the private key with the passphrase held by environment variable VAR.",
        ),
    ] = None,
) -> None:
    """Write NAME.key (private, mode 0600) and NAME.pub; print the public key and the plan snippet."""
    if not KEY_NAME.match(name):
        fail(f"key name {name!r}: use letters, digits, '.', '_' or '-' (at most 64)", EXIT_INVALID)
    try:
        passphrase = passphrase_from_env(passphrase_env) if passphrase_env else None
    except KeyMaterialError as exc:
        fail(f"--passphrase-env: {exc}", EXIT_INVALID)
    private_path = out_dir / f"{name}.key"
    public_path = out_dir / f"{name}.pub"
    existing = [str(p) for p in (private_path, public_path) if p.exists() or p.is_symlink()]
    if existing and not force:
        fail(f"{' and '.join(existing)} already exist(s); pass --force to replace (the old key stops being valid)")
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = generate_private_key()
    save_private_key(key, private_path, passphrase=passphrase, overwrite=force)
    save_public_key(key, public_path, overwrite=force)
    public_b64 = public_key_b64(key)
    key_id = key_id_of(key)
    encrypted = f", encrypted with the passphrase in {passphrase_env}" if passphrase_env else ""
    typer.echo(f"wrote {private_path} (private key, mode 0600{encrypted}): keep it secret, never commit it")
    typer.echo(f"wrote {public_path}")
    typer.echo(f"key id:     {key_id}")
    typer.echo(f"public key: {public_b64}")
    typer.echo("")
    typer.echo("For an approver: add to the plan (the private key stays with them)")
    typer.echo("")
    typer.echo(approver_snippet(name, public_b64))
    typer.echo("")
    typer.echo("For someone who requests production restores but does not approve them: add to the plan instead")
    typer.echo("")
    typer.echo(requester_snippet(name, public_b64))
    typer.echo("")
    typer.echo("For the orchestrator's signing key: set in the plan (or DR_SIGNING_KEY for the worker)")
    typer.echo("")
    typer.echo(orchestrator_snippet(private_path))
    typer.echo("")
    typer.echo(f"Evidence packs it signs verify with: drctl evidence verify PACK --trusted-key {key_id}={public_b64}")
