"""Blob Storage settings: Azurite's development account on loopback, a real account by URL, and
the Azurite launcher's API-version check."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.azure import AZURITE_ACCOUNT_KEY, AzureConnection, is_azurite_url
from domain.plan import load_plan
from starters.azurite import azurite_argv, needs_api_version_skip, sdk_api_version
from starters.stack import StackConfig

LOCAL = Path(__file__).resolve().parents[2] / "plans" / "local.toml"


def fake_azurite(tmp_path: Path, api_version: str | None) -> Path:
    """A tools folder laid out like the npm install, declaring ``api_version``."""
    (tmp_path / "node_modules" / ".bin").mkdir(parents=True)
    (tmp_path / "node_modules" / ".bin" / "azurite-blob").write_text("#!/bin/sh\n")
    constants = tmp_path / "node_modules" / "azurite" / "dist" / "src" / "blob" / "utils" / "constants.js"
    constants.parent.mkdir(parents=True)
    if api_version is not None:
        constants.write_text(f'exports.BLOB_API_VERSION = "{api_version}";\n')
    return tmp_path


class TestConnectionFromEnv:
    def test_loopback_azurite_endpoint_uses_the_development_account(self) -> None:
        """DR_BLOB_ENDPOINT naming Azurite on loopback gives its well-known account, never shown in repr."""
        connection = AzureConnection.from_env({"DR_BLOB_ENDPOINT": "http://127.0.0.1:10000/devstoreaccount1"})
        assert connection.blob_connection_string is not None
        assert "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;" in connection.blob_connection_string
        assert AZURITE_ACCOUNT_KEY not in repr(connection)

    def test_real_account_url_uses_the_token_credential(self) -> None:
        """An https account URL is used as is, with no connection string (DefaultAzureCredential signs)."""
        connection = AzureConnection.from_env({"DR_BLOB_ENDPOINT": "https://stx.blob.core.windows.net"})
        assert connection.blob_connection_string is None
        assert connection.blob_url(load_plan(LOCAL)) == "https://stx.blob.core.windows.net"

    def test_no_account_anywhere_names_both_settings(self) -> None:
        """Without DR_BLOB_ENDPOINT and backup.account_url the error says where to set one."""
        with pytest.raises(ApplicationError) as refused:
            AzureConnection.from_env({}).blob_url(load_plan(LOCAL))
        assert "backup.account_url" in str(refused.value)
        assert "DR_BLOB_ENDPOINT" in str(refused.value)

    @pytest.mark.parametrize(
        ("url", "azurite"),
        [
            ("http://127.0.0.1:10000/devstoreaccount1", True),
            ("http://localhost:1234/devstoreaccount1/", True),
            ("http://[::1]:10000/devstoreaccount1", True),
            ("https://127.0.0.1:10000/devstoreaccount1", False),
            ("http://10.0.0.5:10000/devstoreaccount1", False),
            ("http://127.0.0.1:10000/otheraccount", False),
        ],
    )
    def test_only_plain_http_loopback_development_account_is_azurite(self, url: str, azurite: bool) -> None:
        """The well-known key is used only for http on loopback with the development account's path."""
        assert is_azurite_url(url) is azurite

    def test_stack_environment_names_azurite_without_a_key(self, tmp_path: Path) -> None:
        """The local stack hands clients Azurite's URL, the catalog and the signing key path, but no account key."""
        env = StackConfig(state_dir=tmp_path, plans=(LOCAL,), azurite_port=10123).client_env()
        assert env["DR_BLOB_ENDPOINT"] == "http://127.0.0.1:10123/devstoreaccount1"
        assert env["DR_CATALOG_URL"] == f"sqlite:///{tmp_path / 'backup-catalog.db'}"
        assert env["DR_SIGNING_KEY"] == str(tmp_path / "backup-signing.key")
        assert not any(AZURITE_ACCOUNT_KEY in value for value in env.values())


class TestAzuriteLauncher:
    def test_skip_when_the_sdk_is_newer(self, tmp_path: Path) -> None:
        """An SDK API version newer than Azurite's adds --skipApiVersionCheck (Azurite would refuse every call)."""
        tools = fake_azurite(tmp_path, "2020-02-10")
        assert needs_api_version_skip(tools)
        assert "--skipApiVersionCheck" in azurite_argv(tmp_path / "data", 10000, tools_dir=tools)

    def test_no_skip_when_azurite_accepts_the_sdk_version(self, tmp_path: Path) -> None:
        """When Azurite accepts the SDK's API version the check stays on."""
        tools = fake_azurite(tmp_path, sdk_api_version())
        argv = azurite_argv(tmp_path / "data", 10000, tools_dir=tools)
        assert "--skipApiVersionCheck" not in argv
        assert argv[1:5] == ["--blobHost", "127.0.0.1", "--blobPort", "10000"]
        assert {"--silent", "--disableTelemetry"} <= set(argv)

    def test_unknown_azurite_version_skips_the_check(self, tmp_path: Path) -> None:
        """An Azurite package that does not say its API version is treated as older than the SDK."""
        assert needs_api_version_skip(fake_azurite(tmp_path, None))
