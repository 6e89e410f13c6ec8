"""Fixtures of the end-to-end tests: a Temporal dev server persisted to a file, a dr-worker process
pointed at it and at the emulator, and a client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.client import Client

from tests.conftest import EmulatorHandle
from tests.integration.processes import DevServer, WorkerProcess


@pytest.fixture
def dev_server(tmp_path: Path) -> Iterator[DevServer]:
    server = DevServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def worker(tmp_path: Path, dev_server: DevServer, emulator: EmulatorHandle) -> Iterator[WorkerProcess]:
    proc = WorkerProcess(tmp_path, dev_server, emulator)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
async def client(dev_server: DevServer) -> Client:
    return await Client.connect(dev_server.address)
