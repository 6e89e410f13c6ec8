"""`drctl emulator serve` as a real process, steered by the drctl control commands."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

from starters.cli import app

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def accepts(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def drctl(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run drctl as a separate process (the module entry point of the console script)."""
    return subprocess.run(
        [sys.executable, "-m", "starters.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


@dataclass
class Served:
    """A running `drctl emulator serve` process and what it printed on start."""

    process: subprocess.Popen[str]
    port: int
    url: str
    ca_file: Path
    banner: list[str]

    def cli(self, *args: str) -> Result:
        """Run a drctl client command in-process against this emulator (through the env defaults)."""
        return CliRunner().invoke(
            app, list(args), env={"DR_ARM_ENDPOINT": self.url, "DR_CA_FILE": str(self.ca_file), "COLUMNS": "200"}
        )

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.process.send_signal(sig)
        return self.process.wait(timeout=30)


def start_serve(tmp_path: Path, *extra: str) -> Served:
    port = free_port()
    ca_file = tmp_path / "ca.pem"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "starters.cli",
            "emulator",
            "serve",
            "--port",
            str(port),
            "--ca-file",
            str(ca_file),
            *extra,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    banner: list[str] = []
    while len(banner) < 4:
        try:
            line = lines.get(timeout=READY_TIMEOUT)
        except queue.Empty:
            process.kill()
            pytest.fail("drctl emulator serve printed nothing within the timeout")
        if line is None:
            stderr = process.stderr.read() if process.stderr else ""
            pytest.fail(f"drctl emulator serve exited with {process.wait()}: {stderr}")
        banner.append(line)
    return Served(process, port, f"https://127.0.0.1:{port}", ca_file, banner)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    emulator = start_serve(tmp_path)
    try:
        yield emulator
    finally:
        if emulator.process.poll() is None:
            emulator.process.kill()
            emulator.process.wait(timeout=30)


class TestServe:
    def test_prints_url_ca_and_the_environment_to_export(self, served: Served) -> None:
        """The first line names the URL and CA file; the next lines are the exports clients need."""
        assert served.banner[0].startswith(f"emulator listening on {served.url} (CA: {served.ca_file})")
        assert served.banner[1:] == [
            f"export DR_ARM_ENDPOINT={served.url}",
            f"export DR_CA_FILE={served.ca_file}",
            f"export DR_OPS_ENDPOINT='{served.url}/regions/{{region}}'",
        ]
        assert served.ca_file.read_text(encoding="ascii").startswith("-----BEGIN CERTIFICATE-----")

    def test_serves_https_trusted_by_the_written_ca(self, served: Served) -> None:
        """The control API answers over TLS verified with the CA file the process wrote."""
        response = httpx.get(
            f"{served.url}/_emulator/state", verify=ssl.create_default_context(cafile=str(served.ca_file)), timeout=10
        )
        assert response.status_code == 200
        assert response.json()["plans"] == ["local"]

    def test_listens_on_loopback_127_0_0_1_only(self, served: Served) -> None:
        """Only 127.0.0.1 accepts connections; another loopback address on the same port does not."""
        assert accepts("127.0.0.1", served.port)
        assert not accepts("127.0.0.2", served.port)

    def test_sigterm_stops_cleanly(self, served: Served) -> None:
        """SIGTERM ends the process with exit code 0 and frees the port."""
        assert served.stop(signal.SIGTERM) == 0
        assert not accepts("127.0.0.1", served.port)
        assert served.process.stderr is not None
        assert "Traceback" not in served.process.stderr.read()

    def test_sigint_stops_cleanly(self, served: Served) -> None:
        """Ctrl-C (SIGINT) ends the process with exit code 0 rather than a KeyboardInterrupt traceback."""
        assert served.stop(signal.SIGINT) == 0
        assert served.process.stderr is not None
        assert "Traceback" not in served.process.stderr.read()

    def test_bad_plan_exits_2_naming_the_field_and_listens_nowhere(self, tmp_path: Path) -> None:
        """An invalid plan stops serve before it binds: exit 2, the field named, no port open, no CA written."""
        bad = tmp_path / "bad.toml"
        text = (ROOT / "plans" / "local.toml").read_text(encoding="utf-8")
        bad.write_text(text.replace('dr_region = "westus"', 'dr_region = "eastus"'), encoding="utf-8")
        port = free_port()
        ca_file = tmp_path / "ca.pem"
        result = drctl("emulator", "serve", "--plan", str(bad), "--port", str(port), "--ca-file", str(ca_file))
        assert result.returncode == 2
        assert "plan.dr_region: DR region equals the primary region (eastus)" in result.stderr
        assert "Traceback" not in result.stderr
        assert not accepts("127.0.0.1", port)
        assert not ca_file.exists()

    def test_port_in_use_is_a_one_line_error(self, served: Served, tmp_path: Path) -> None:
        """A second emulator on a taken port exits 1 with a hint instead of a traceback."""
        result = drctl("emulator", "serve", "--port", str(served.port), "--ca-file", str(tmp_path / "other.pem"))
        assert result.returncode == 1
        assert f"port {served.port} on 127.0.0.1 is already in use" in result.stderr
        assert "Traceback" not in result.stderr


class TestControlCommands:
    def test_region_down_shows_in_state(self, served: Served) -> None:
        """`region eastus --health down` takes eastus down, and `state --json` (a separate process) reports it."""
        result = served.cli("emulator", "region", "eastus", "--health", "down")
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith("eastus: down")
        state = drctl(
            "emulator", "state", "--json", env={"DR_ARM_ENDPOINT": served.url, "DR_CA_FILE": str(served.ca_file)}
        )
        assert state.returncode == 0, state.stderr
        regions = json.loads(state.stdout)["regions"]
        assert regions["eastus"]["health"] == "down"
        assert regions["westus"]["health"] == "healthy"

    def test_region_degraded_with_error_rate_and_latency(self, served: Served) -> None:
        """A degraded region takes the given error rate and added latency."""
        result = served.cli(
            "emulator", "region", "westus", "--health", "degraded", "--error-rate", "0.5", "--latency-ms", "250"
        )
        assert result.exit_code == 0, result.output
        assert "westus: degraded (error rate 0.5, +250 ms latency)" in result.stdout
        region = json.loads(served.cli("emulator", "state", "--json").stdout)["regions"]["westus"]
        assert (region["health"], region["error_rate"], region["added_latency_ms"]) == ("degraded", 0.5, 250)

    def test_state_table_lists_regions(self, served: Served) -> None:
        """Without --json, state prints a table with each region's health."""
        served.cli("emulator", "region", "eastus", "--health", "down")
        result = served.cli("emulator", "state")
        assert result.exit_code == 0, result.output
        eastus = next(line for line in result.stdout.splitlines() if "eastus" in line)
        assert "down" in eastus

    def test_fault_is_listed_then_cleared(self, served: Served) -> None:
        """A fault rule appears in `faults --json` with its settings and is gone after `faults --clear`."""
        added = served.cli(
            "emulator", "fault", "AFDOrigins_Update", "--status", "429", "--count", "2", "--retry-after", "1"
        )
        assert added.exit_code == 0, added.output
        assert "next 2 AFDOrigins_Update request(s) answer 429" in added.stdout
        rules = json.loads(served.cli("emulator", "faults", "--json").stdout)
        assert [(r["operation"], r["status"], r["count"], r["retry_after"]) for r in rules] == [
            ("AFDOrigins_Update", 429, 2, 1)
        ]
        assert served.cli("emulator", "faults", "--clear").exit_code == 0
        assert json.loads(served.cli("emulator", "faults", "--json").stdout) == []

    def test_fault_for_an_unknown_operation_is_refused(self, served: Served) -> None:
        """The emulator's refusal of an unknown operation is shown as one line with exit code 1."""
        result = served.cli("emulator", "fault", "NoSuch_Operation", "--status", "500")
        assert result.exit_code == 1
        assert "no operation matches 'NoSuch_Operation'" in result.stderr

    def test_latency_settings_are_applied(self, served: Served) -> None:
        """`latency OP=SECONDS` sets each operation's latency and shows the current settings."""
        result = served.cli("emulator", "latency", "AFDOrigins_Update=2.5", "FailoverGroups_*=10")
        assert result.exit_code == 0, result.output
        assert "AFDOrigins_Update" in result.stdout
        assert "2.5" in result.stdout
        assert "FailoverGroups_*" in result.stdout

    def test_malformed_latency_setting_is_a_usage_error(self, served: Served) -> None:
        """A setting without '=SECONDS' is rejected before anything is sent."""
        result = served.cli("emulator", "latency", "AFDOrigins_Update")
        assert result.exit_code == 2
        assert "is not OPERATION=SECONDS" in result.output

    def test_journal_shows_arm_requests(self, served: Served) -> None:
        """ARM requests appear in `journal --json`; --mutating keeps only state-changing ones."""
        path = (
            "/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/rg-dr-edge/providers/Microsoft.Cdn"
            "/profiles/afd-estate/originGroups/og-app/origins/app-eastus"
        )
        response = httpx.get(
            served.url + path,
            params={"api-version": "2026-10-01"},
            headers={"Authorization": "Bearer test"},
            verify=ssl.create_default_context(cafile=str(served.ca_file)),
            timeout=10,
        )
        assert response.status_code == 200, response.text
        entries = json.loads(served.cli("emulator", "journal", "--json").stdout)
        assert [(e["method"], e["operation"], e["status"]) for e in entries] == [("GET", "AFDOrigins_Get", 200)]
        assert json.loads(served.cli("emulator", "journal", "--json", "--mutating").stdout) == []
        since = json.loads(served.cli("emulator", "journal", "--json", "--since", str(entries[-1]["seq"])).stdout)
        assert since == []
        table = served.cli("emulator", "journal")
        assert "AFDOrigins_Get" in table.stdout

    def test_unreachable_emulator_is_a_one_line_error(self, served: Served) -> None:
        """With the emulator stopped, a control command exits 1 telling to start `drctl emulator serve`."""
        served.stop()
        result = served.cli("emulator", "state")
        assert result.exit_code == 1
        assert f"emulator not reachable at {served.url}" in result.stderr
        assert "drctl emulator serve" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert "Traceback" not in result.output

    def test_missing_ca_file_is_a_one_line_error(self, tmp_path: Path) -> None:
        """Without a CA file the command says how to get one instead of failing inside TLS set-up."""
        result = CliRunner().invoke(
            app, ["emulator", "state", "--url", "https://127.0.0.1:9", "--ca-file", str(tmp_path / "none.pem")]
        )
        assert result.exit_code == 1
        assert "CA file" in result.stderr
        assert "drctl emulator serve" in result.stderr
