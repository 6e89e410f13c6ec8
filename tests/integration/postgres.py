"""PostgreSQL for the tests: one private cluster per test session (initdb + pg_ctl from Debian's
postgresql package, installed by scripts/bootstrap.sh), on a free loopback port with its data in a
temporary folder, and a fresh database per test (registered by tests/conftest.py).

PostgreSQL refuses to run as root, so as root (as in CI) the cluster belongs to the package's
``postgres`` user and its programs run through ``runuser``; no system service is involved."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

USER = "dr_catalog"
PASSWORD = "s3cret-Catalog-pw"  # a throwaway password of a throwaway cluster
START_TIMEOUT = 30
# Durability is of no use to a cluster that lives for one test session, and costs time.
SETTINGS = (
    "listen_addresses = '127.0.0.1'",
    "unix_socket_directories = ''",
    "fsync = off",
    "synchronous_commit = off",
    "full_page_writes = off",
    "max_connections = 50",
)


def postgres_bin() -> Path:
    """The newest installed PostgreSQL's bin folder (Debian keeps each major under /usr/lib/postgresql)."""
    found = sorted(
        (Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")),
        key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0,
    )
    if found and (found[-1] / "initdb").exists():
        return found[-1]
    on_path = shutil.which("pg_ctl")
    missing = (
        "PostgreSQL's initdb and pg_ctl were not found: run scripts/bootstrap.sh (it installs Debian's postgresql)"
    )
    assert on_path is not None, missing
    assert shutil.which("initdb") is not None, missing
    return Path(on_path).parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """A private PostgreSQL cluster: initdb into a temporary folder, pg_ctl start on a free port, stop."""

    def __init__(self) -> None:
        self.bin = postgres_bin()
        self.port = free_port()
        # Not under pytest's temporary folder: that is private to root, and the cluster's owner must reach it.
        self.root = Path(tempfile.mkdtemp(prefix="dr-postgres-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                self._owner = pwd.getpwnam("postgres")
            except KeyError:
                raise AssertionError(
                    "running as root needs the 'postgres' user (created by Debian's postgresql package) to own the "
                    "test cluster: run scripts/bootstrap.sh"
                ) from None

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin / program), *args]
        if self._owner is not None:
            command = ["runuser", "-u", self._owner.pw_name, "--", *command]
        # A clean environment: PG* variables of the caller must not redirect the private cluster.
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        done = subprocess.run(command, env=env, cwd=self.root, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise AssertionError(f"{program} failed ({done.returncode}): {done.stderr or done.stdout}\n{log}")

    def start(self) -> None:
        password_file = self.root / "password"
        password_file.write_text(PASSWORD + "\n")
        if self._owner is not None:
            for path in (self.root, password_file):
                os.chown(path, self._owner.pw_uid, self._owner.pw_gid)
        self._run(
            "initdb",
            "--pgdata",
            str(self.data),
            "--username",
            USER,
            "--pwfile",
            str(password_file),
            "--auth",
            "scram-sha-256",
            "--encoding",
            "UTF8",
            "--no-sync",
        )
        password_file.unlink()
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n".join((*SETTINGS, f"port = {self.port}", "")))
        self._run(
            "pg_ctl",
            "start",
            "--pgdata",
            str(self.data),
            "--log",
            str(self.log),
            "--wait",
            "--timeout",
            str(START_TIMEOUT),
        )

    def stop(self) -> None:
        with contextlib.suppress(AssertionError):
            self._run("pg_ctl", "stop", "--pgdata", str(self.data), "--mode", "immediate", "--wait")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres", *, password: str = PASSWORD, scheme: str = "postgresql") -> str:
        return f"{scheme}://{USER}:{password}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database's name, so tests sharing the session's cluster never meet."""
        name = f"catalog_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # a generated identifier, never input
        return name


class PostgresHandle:
    """A running private cluster: URLs of fresh databases in it, with its user's password."""

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        self.port = server.port
        self.password = PASSWORD

    def url(self, database: str = "postgres", *, password: str = PASSWORD, scheme: str = "postgresql") -> str:
        return self.server.url(database, password=password, scheme=scheme)

    def fresh_url(self, *, scheme: str = "postgresql") -> str:
        """The URL of a new empty database of its own."""
        return self.url(self.server.create_database(), scheme=scheme)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresHandle]:
    server = PostgresServer()
    try:
        server.start()
        yield PostgresHandle(server)
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres: PostgresHandle) -> str:
    """A ``postgresql://`` URL of an empty database for this test alone."""
    return postgres.fresh_url()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty backup catalog's URL on each backend in turn: a SQLite file, then a PostgreSQL database."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'catalog.db'}"
