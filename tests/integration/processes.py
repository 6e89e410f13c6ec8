"""Real processes for end-to-end tests: a Temporal dev server persisted to a file (so it can be
killed and restarted) and dr-worker processes pointed at it and at the emulator."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from contextlib import closing
from pathlib import Path

from starters.stack import SEARCH_ATTRIBUTES
from tests.conftest import LOCAL_PLAN, EmulatorHandle, venv_binary


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _stop(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM, timeout: float = 20) -> int | None:
    if proc is None or proc.poll() is not None:
        return proc.returncode if proc else None
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=10)


class DevServer:
    """``temporal server start-dev`` on free ports with a SQLite file that survives restarts."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.port = free_port()
        self.db = state_dir / "temporal.db"
        self.log = state_dir / "temporal.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        argv = [
            venv_binary("temporal"),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--headless",
            "--db-filename",
            str(self.db),
            "--log-level",
            "error",
        ]
        for key, kind in SEARCH_ATTRIBUTES.items():
            argv += ["--search-attribute", f"{key}={kind}"]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while not port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Temporal dev server did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no chance to flush anything but what SQLite already committed."""
        _stop(self.proc, signal.SIGKILL)

    def stop(self) -> None:
        _stop(self.proc)


class WorkerProcess:
    """A real dr-worker for the local plan, talking to the emulator over HTTPS."""

    def __init__(
        self,
        state_dir: Path,
        temporal: DevServer,
        emulator: EmulatorHandle,
        task_queue: str | None = None,
        *,
        extra_env: dict[str, str] | None = None,
        extra_args: tuple[str, ...] = (),
    ):
        self.state_dir = state_dir
        self.extra_args = extra_args
        self.task_queue = task_queue or f"dr-e2e-{uuid.uuid4().hex[:8]}"
        self.env = (
            os.environ
            | {
                "TEMPORAL_ADDRESS": temporal.address,
                "DR_TASK_QUEUE": self.task_queue,
                "DR_ARM_ENDPOINT": emulator.url,
                "DR_CA_FILE": emulator.ca_file,
                "DR_OPS_ENDPOINT": emulator.url + "/regions/{region}",
                "DR_POLLING_INTERVAL": "0.1",
            }
            | (extra_env or {})
        )
        self.metrics_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def log(self) -> Path:
        return self.state_dir / f"worker-{self.starts}.log"

    def start(self) -> None:
        self.starts += 1
        argv = [
            venv_binary("dr-worker"),
            "--plan",
            str(LOCAL_PLAN),
            "--metrics",
            f"127.0.0.1:{self.metrics_port}",
            "--shutdown-grace",
            "5",
            *self.extra_args,
        ]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
            )
        deadline = time.monotonic() + 60
        while not port_open(self.metrics_port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dr-worker did not start: {self.log.read_text()[-3000:]}")
            time.sleep(0.1)

    def kill(self) -> None:
        _stop(self.proc, signal.SIGKILL)

    def stop(self) -> int | None:
        return _stop(self.proc)
