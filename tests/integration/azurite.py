"""Azurite for the tests: one real Blob Storage emulator process per test session, on a free
loopback port with its data in a temporary folder (registered by tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from activities.azure import AzureConnection
from starters.azurite import AzuriteServer


class AzuriteHandle:
    """A running Azurite: its development account URL and connections that use it."""

    def __init__(self, server: AzuriteServer) -> None:
        self.server = server
        self.account_url = server.account_url
        self.port = server.port

    def connection(self, base: AzureConnection | None = None) -> AzureConnection:
        """``base`` (default: plain Azure settings) with Blob Storage at this Azurite."""
        return (base or AzureConnection()).with_azurite(self.account_url)


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteHandle]:
    location: Path = tmp_path_factory.mktemp("azurite")
    with AzuriteServer(location) as server:
        yield AzuriteHandle(server)
