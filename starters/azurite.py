"""Azurite, the Blob Storage emulator: how to start it on loopback and how clients reach it.

It is installed project-locally by scripts/bootstrap.sh (``npm ci`` into tools/azurite). Only the
blob service runs. The SDK code talks to it exactly as to a real account, through the well-known
development account over http, so no account key is ever configured or printed.
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx
from azure.storage.blob import BlobServiceClient

from activities.azure import AZURITE_ACCOUNT, azurite_connection_string

ROOT = Path(__file__).resolve().parent.parent
AZURITE_DIR = ROOT / "tools" / "azurite"
DEFAULT_BLOB_PORT = 10000
HOST = "127.0.0.1"


class AzuriteError(Exception):
    """Azurite is not installed or did not start; the message says why and what to do."""


def azurite_binary(tools_dir: Path = AZURITE_DIR) -> Path:
    """The project-local ``azurite-blob`` launcher."""
    binary = tools_dir / "node_modules" / ".bin" / "azurite-blob"
    if not binary.exists():
        raise AzuriteError(
            f"Azurite is not installed ({binary} is missing); run scripts/bootstrap.sh, which needs Node.js >= 20"
        )
    return binary


def azurite_api_version(tools_dir: Path = AZURITE_DIR) -> str | None:
    """The newest Blob Storage API version the installed Azurite accepts, read from its package;
    None when the package does not say (a layout this code does not know)."""
    constants = tools_dir / "node_modules" / "azurite" / "dist" / "src" / "blob" / "utils" / "constants.js"
    try:
        found = re.search(r'BLOB_API_VERSION\s*=\s*"([0-9-]+)"', constants.read_text(encoding="utf-8"))
    except OSError:
        return None
    return found.group(1) if found else None


def sdk_api_version() -> str:
    """The API version (x-ms-version) the installed azure-storage-blob sends by default."""
    return str(BlobServiceClient(f"http://{HOST}/{AZURITE_ACCOUNT}").api_version)


def needs_api_version_skip(tools_dir: Path = AZURITE_DIR) -> bool:
    """Whether the SDK speaks a newer API version than Azurite accepts (Azurite would answer 400
    InvalidHeaderValue to every call); unknown counts as newer. Dates in ISO form compare as text."""
    supported = azurite_api_version(tools_dir)
    return supported is None or sdk_api_version() > supported


def account_url(port: int) -> str:
    """Azurite's development account URL on loopback (path-style, as Azurite serves it)."""
    return f"http://{HOST}:{port}/{AZURITE_ACCOUNT}"


def azurite_argv(location: Path, port: int, *, tools_dir: Path = AZURITE_DIR) -> list[str]:
    """The command that serves Blob Storage on ``HOST:port`` with its data in ``location``.

    --loose is not needed: every call the project makes is one Azurite supports.
    """
    argv = [
        str(azurite_binary(tools_dir)),
        "--blobHost",
        HOST,
        "--blobPort",
        str(port),
        "--location",
        str(location),
        "--silent",
        "--disableTelemetry",
    ]
    if needs_api_version_skip(tools_dir):
        argv.append("--skipApiVersionCheck")
    return argv


def azurite_ready(port: int) -> bool:
    """Whether Azurite answers on ``port``; an unauthenticated call is refused, which proves it is up."""
    try:
        response = httpx.get(f"{account_url(port)}?comp=list", timeout=1)
    except httpx.HTTPError:
        return False
    server: str = response.headers.get("server", "")
    return server.startswith("Azurite-Blob")


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class AzuriteServer:
    """A foreground Azurite process (tests, scripts); the local stack runs it as a background Process.

    ``port=0`` picks a free port. Use as a context manager, or ``start()``/``stop()``.
    """

    location: Path
    port: int = 0
    log_file: Path | None = None
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def account_url(self) -> str:
        return account_url(self.port)

    @property
    def connection_string(self) -> str:
        """The development account's connection string (contains its key: never log it)."""
        return azurite_connection_string(self.account_url)

    def start(self, timeout: float = 30.0) -> AzuriteServer:
        self.location.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port()
        log_path = self.log_file or self.location / "azurite.log"
        with log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                azurite_argv(self.location, self.port),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not azurite_ready(self.port):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = log_path.read_text(errors="replace")[-2000:]
                raise AzuriteError(f"Azurite did not start on port {self.port}; {log_path} ends with:\n{tail}")
            time.sleep(0.1)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)

    def __enter__(self) -> AzuriteServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
