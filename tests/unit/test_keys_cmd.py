"""drctl keys generate: a 0600 private key, its matching public key, and snippets that paste into a plan."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from activities.integrity import (
    KeyMaterialError,
    key_id_of,
    load_private_key,
    public_key_b64,
    read_public_key_file,
)
from domain.plan import _is_ed25519_public_key
from starters.cli import app


def drctl(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env={"DR_LOG_LEVEL": "ERROR", **(env or {})})


def toml_block(output: str, first_line: str) -> dict[str, Any]:
    """The TOML snippet in ``output`` that starts with ``first_line`` (up to the next blank line)."""
    start = output.index(first_line)
    end = output.find("\n\n", start)
    return tomllib.loads(output[start : end if end != -1 else None])


class TestGenerate:
    def test_writes_a_0600_private_key_and_its_public_key(self, tmp_path: Path) -> None:
        """NAME.key is mode 0600 and NAME.pub holds the public half of that same key."""
        out = tmp_path / "keys"
        result = drctl("keys", "generate", "alice", "--out-dir", str(out))
        assert result.exit_code == 0, result.output
        private = out / "alice.key"
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
        assert stat.S_IMODE(out.stat().st_mode) == 0o700
        key = load_private_key(private)
        assert read_public_key_file(out / "alice.pub") == public_key_b64(key)
        assert f"public key: {public_key_b64(key)}" in result.output
        assert f"key id:     {key_id_of(key)}" in result.output

    def test_prints_the_approver_snippet_the_plan_accepts(self, tmp_path: Path) -> None:
        """The printed [[approvers]] TOML parses, names the approver and carries a valid plan key."""
        result = drctl("keys", "generate", "bob", "--out-dir", str(tmp_path))
        snippet = toml_block(result.output, "[[approvers]]")
        approver = snippet["approvers"][0]
        assert approver["name"] == "bob"
        assert approver["public_key"] == read_public_key_file(tmp_path / "bob.pub")
        assert _is_ed25519_public_key(approver["public_key"])

    def test_prints_the_orchestrator_snippet_and_trusted_key_flag(self, tmp_path: Path) -> None:
        """The [backup] snippet names the private key file and the verify hint carries KEYID=BASE64."""
        result = drctl("keys", "generate", "orchestrator", "--out-dir", str(tmp_path))
        snippet = toml_block(result.output, "[backup]")
        assert snippet == {"backup": {"signing_key": str((tmp_path / "orchestrator.key").resolve())}}
        public = read_public_key_file(tmp_path / "orchestrator.pub")
        assert f"--trusted-key {key_id_of(public)}={public}" in result.output

    def test_refuses_to_overwrite_without_force(self, tmp_path: Path) -> None:
        """A second generate for the same name fails and leaves the first key in place; --force replaces it."""
        assert drctl("keys", "generate", "alice", "--out-dir", str(tmp_path)).exit_code == 0
        first = (tmp_path / "alice.key").read_bytes()
        again = drctl("keys", "generate", "alice", "--out-dir", str(tmp_path))
        assert again.exit_code == 1
        assert "--force" in again.output
        assert (tmp_path / "alice.key").read_bytes() == first
        forced = drctl("keys", "generate", "alice", "--out-dir", str(tmp_path), "--force")
        assert forced.exit_code == 0, forced.output
        assert (tmp_path / "alice.key").read_bytes() != first
        assert stat.S_IMODE((tmp_path / "alice.key").stat().st_mode) == 0o600
        assert read_public_key_file(tmp_path / "alice.pub") == public_key_b64(load_private_key(tmp_path / "alice.key"))

    def test_an_existing_public_key_alone_also_blocks(self, tmp_path: Path) -> None:
        """A leftover NAME.pub is not silently replaced either."""
        (tmp_path / "alice.pub").write_text("old\n")
        result = drctl("keys", "generate", "alice", "--out-dir", str(tmp_path))
        assert result.exit_code == 1
        assert not (tmp_path / "alice.key").exists()

    @pytest.mark.parametrize("name", ["../alice", "a b", ".hidden", 'x"y', ""])
    def test_names_that_are_not_plain_file_names_are_refused(self, tmp_path: Path, name: str) -> None:
        """Names with paths, spaces, quotes or a leading dot are invalid input (exit 2)."""
        result = drctl("keys", "generate", name, "--out-dir", str(tmp_path))
        assert result.exit_code == 2
        assert list(tmp_path.iterdir()) == []

    def test_passphrase_from_the_named_variable_encrypts_the_key(self, tmp_path: Path) -> None:
        """--passphrase-env VAR encrypts the PEM with VAR's value; loading then needs it."""
        result = drctl(
            "keys", "generate", "carol", "--out-dir", str(tmp_path), "--passphrase-env", "CAROL_PASS",
            env={"CAROL_PASS": "correct horse"},
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "correct horse" not in result.output
        with pytest.raises(KeyMaterialError):
            load_private_key(tmp_path / "carol.key")
        key = load_private_key(tmp_path / "carol.key", b"correct horse")
        assert public_key_b64(key) == read_public_key_file(tmp_path / "carol.pub")

    def test_unset_passphrase_variable_is_invalid_input(self, tmp_path: Path) -> None:
        """Naming an empty or unset variable fails before any file is written."""
        result = drctl("keys", "generate", "dave", "--out-dir", str(tmp_path), "--passphrase-env", "NOT_SET_ANYWHERE")
        assert result.exit_code == 2
        assert "NOT_SET_ANYWHERE" in result.output
        assert list(tmp_path.iterdir()) == []
