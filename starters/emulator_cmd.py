"""``drctl emulator``: run the local Azure estate and steer it (regions, faults, latency, journal)."""

from __future__ import annotations

import asyncio
import errno
import signal
import ssl
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from domain.plan import DrPlan
from emulator.server import CONTROL_PREFIX, EmulatorServer
from observability.logging import get_logger
from starters.output import emit_json, fail, show, table
from starters.plan_cmd import load_or_exit

app = typer.Typer(help="Run and control the local Azure estate emulator.", no_args_is_help=True)
log = get_logger(__name__)

DEFAULT_PLAN = Path("plans/local.toml")
DEFAULT_PORT = 8443
DEFAULT_URL = f"https://127.0.0.1:{DEFAULT_PORT}"
# A stable place, so DR_CA_FILE stays valid across restarts of the emulator.
DEFAULT_CA_FILE = Path(".state/emulator/ca.pem")

UrlOption = Annotated[
    str, typer.Option("--url", envvar="DR_ARM_ENDPOINT", help="The running emulator's URL.", show_envvar=True)
]
CaOption = Annotated[
    Path, typer.Option("--ca-file", envvar="DR_CA_FILE", help="The emulator's CA certificate.", show_envvar=True)
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


class Health(StrEnum):
    up = "up"
    down = "down"
    degraded = "degraded"


@app.command()
def serve(
    plan: Annotated[
        list[Path] | None,
        typer.Option("--plan", help="Plan whose estate to emulate (repeatable; default plans/local.toml)."),
    ] = None,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.", min=0, max=65535)] = DEFAULT_PORT,
    ca_file: Annotated[Path, typer.Option("--ca-file", help="Where to write the CA certificate.")] = DEFAULT_CA_FILE,
) -> None:
    """Serve ARM, the ops API and the control API over HTTPS on 127.0.0.1 until SIGINT or SIGTERM."""
    plans = [load_or_exit(path) for path in plan or [DEFAULT_PLAN]]
    asyncio.run(_serve(plans, port, ca_file))


async def _serve(plans: list[DrPlan], port: int, ca_file: Path) -> None:
    server = EmulatorServer(plans, port=port, ca_file=ca_file)
    try:
        await server.start()
    except OSError as exc:
        await server.stop()
        if exc.errno == errno.EADDRINUSE:
            fail(f"port {port} on 127.0.0.1 is already in use (another emulator?); choose one with --port")
        fail(f"cannot start the emulator: {exc}")
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    typer.echo(f"emulator listening on {server.url} (CA: {server.ca_file}); Ctrl-C to stop")
    typer.echo(f"export DR_ARM_ENDPOINT={server.url}")
    typer.echo(f"export DR_CA_FILE={server.ca_file}")
    typer.echo(f"export DR_OPS_ENDPOINT='{server.url}/regions/{{region}}'")
    log.info("emulator started", url=server.url, ca_file=server.ca_file, plans=[p.name for p in plans])
    try:
        await stopping.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await server.stop()
        log.info("emulator stopped", url=server.url)


class Control:
    """The running emulator's /_emulator API; every failure becomes a one-line error and exit 1."""

    def __init__(self, url: str, ca_file: Path) -> None:
        self.url = url.rstrip("/")
        self.ca_file = ca_file

    def request(self, method: str, path: str, *, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        if not self.ca_file.is_file():
            fail(
                f"CA file {self.ca_file} not found: start the emulator with `drctl emulator serve` "
                "(it writes the CA), or pass --ca-file / set DR_CA_FILE"
            )
        try:
            verify = ssl.create_default_context(cafile=str(self.ca_file))
            with httpx.Client(base_url=self.url + CONTROL_PREFIX, verify=verify, timeout=30) as client:
                response = client.request(method, path, json=body, params=params)
        except httpx.ConnectError as exc:
            reason = (
                "TLS verification failed (stale CA file?)" if "CERTIFICATE" in str(exc).upper() else "connection failed"
            )
            fail(
                f"emulator not reachable at {self.url} ({reason}): start it with `drctl emulator serve` "
                "or point --url / DR_ARM_ENDPOINT and --ca-file / DR_CA_FILE at a running one"
            )
        except httpx.HTTPError as exc:
            fail(f"emulator at {self.url} did not answer: {exc}")
        except OSError as exc:  # ssl.SSLError included: the file is not a usable CA certificate
            fail(f"cannot use CA file {self.ca_file}: {exc}; restart `drctl emulator serve` to write a fresh one")
        if response.status_code >= 400:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text or response.reason_phrase
            fail(f"emulator refused {method} {path}: {response.status_code} {message}")
        return response.json() if response.content else None


@app.command()
def region(
    name: Annotated[str, typer.Argument(help="Region name, e.g. eastus.")],
    *,
    health: Annotated[Health, typer.Option(help="New health of the region.")],
    error_rate: Annotated[
        float | None, typer.Option(help="Share of requests failing with 5xx (0..1).", min=0, max=1)
    ] = None,
    latency_ms: Annotated[float | None, typer.Option(help="Latency added to each request.", min=0)] = None,
    url: UrlOption = DEFAULT_URL,
    ca_file: CaOption = DEFAULT_CA_FILE,
) -> None:
    """Take a region down, bring it up, or degrade it."""
    body: dict[str, Any] = {"health": health.value}
    if error_rate is not None:
        body["error_rate"] = error_rate
    if latency_ms is not None:
        body["added_latency_ms"] = latency_ms
    state = Control(url, ca_file).request("POST", f"/regions/{name}", body=body)
    typer.echo(
        f"{state['region']}: {state['health']} "
        f"(error rate {state['error_rate']:g}, +{state['added_latency_ms']:g} ms latency)"
    )


@app.command()
def fault(
    operation: Annotated[
        str, typer.Argument(help="Azure operationId or glob, e.g. AFDOrigins_Update or 'FailoverGroups_*'.")
    ],
    *,
    status: Annotated[int, typer.Option(help="HTTP status to answer.", min=100, max=599)],
    count: Annotated[int, typer.Option(help="How many matching requests fail.", min=1)] = 1,
    retry_after: Annotated[float | None, typer.Option(help="Retry-After seconds on the error.", min=0)] = None,
    latency: Annotated[float, typer.Option(help="Seconds before answering.", min=0)] = 0.0,
    code: Annotated[str | None, typer.Option(help="Error code in the body (default from the status).")] = None,
    path_contains: Annotated[str | None, typer.Option(help="Only requests whose path contains this.")] = None,
    url: UrlOption = DEFAULT_URL,
    ca_file: CaOption = DEFAULT_CA_FILE,
) -> None:
    """Make the next COUNT requests of an operation fail with STATUS."""
    body: dict[str, Any] = {"operation": operation, "status": status, "count": count, "latency": latency}
    if retry_after is not None:
        body["retry_after"] = retry_after
    if code is not None:
        body["code"] = code
    if path_contains is not None:
        body["path_contains"] = path_contains
    rule = Control(url, ca_file).request("POST", "/faults", body=body)
    typer.echo(f"fault {rule['id']}: next {rule['count']} {rule['operation']} request(s) answer {status}")


@app.command()
def faults(
    clear: Annotated[bool, typer.Option("--clear", help="Remove every fault rule.")] = False,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    ca_file: CaOption = DEFAULT_CA_FILE,
) -> None:
    """List the fault rules, or remove them all with --clear."""
    control = Control(url, ca_file)
    if clear:
        control.request("DELETE", "/faults")
        typer.echo("faults cleared")
        return
    rules: list[dict[str, Any]] = control.request("GET", "/faults")
    if as_json:
        emit_json(rules)
        return
    columns = ["id", "operation", "status", "count", "retry_after", "latency", "path_contains"]
    show(table("Fault rules", columns, [[rule.get(c) for c in columns] for rule in rules]))


@app.command()
def latency(
    settings: Annotated[
        list[str] | None, typer.Argument(help="OPERATION=SECONDS pairs; globs allowed ('FailoverGroups_*=5').")
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove every latency setting.")] = False,
    url: UrlOption = DEFAULT_URL,
    ca_file: CaOption = DEFAULT_CA_FILE,
) -> None:
    """Set how long operations take (an LRO's run time, or a synchronous answer's delay)."""
    control = Control(url, ca_file)
    if clear:
        control.request("DELETE", "/latency")
        typer.echo("latencies cleared")
        return
    if not settings:
        raise typer.BadParameter("give at least one OPERATION=SECONDS, or --clear", param_hint="SETTINGS")
    values: dict[str, float] = {}
    for item in settings:
        op, sep, seconds = item.partition("=")
        try:
            value = float(seconds)
        except ValueError:
            value = -1.0
        if not sep or not op or value < 0:
            raise typer.BadParameter(f"{item!r} is not OPERATION=SECONDS (seconds >= 0)", param_hint="SETTINGS")
        values[op] = value
    current: dict[str, float] = control.request("PUT", "/latency", body=values)
    show(table("Latencies (seconds)", ["operation", "seconds"], sorted(current.items())))


@app.command()
def state(as_json: JsonOption = False, url: UrlOption = DEFAULT_URL, ca_file: CaOption = DEFAULT_CA_FILE) -> None:
    """Show region health and every provider's state."""
    snapshot: dict[str, Any] = Control(url, ca_file).request("GET", "/state")
    if as_json:
        emit_json(snapshot)
        return
    regions = snapshot.get("regions", {})
    show(
        table(
            f"Regions (plans: {', '.join(snapshot.get('plans', []))})",
            ["region", "health", "error rate", "added latency ms", "outage s"],
            [
                (name, r["health"], f"{r['error_rate']:g}", f"{r['added_latency_ms']:g}", f"{r['outage_seconds']:.0f}")
                for name, r in sorted(regions.items())
            ],
        )
    )
    for name, provider_state in snapshot.items():
        if name in {"regions", "plans"}:
            continue
        typer.echo(f"\n{name}")
        emit_json(provider_state)


@app.command()
def journal(
    since: Annotated[int, typer.Option(help="Only entries after this sequence number.", min=0)] = 0,
    mutating: Annotated[bool, typer.Option("--mutating", help="Only state-changing requests.")] = False,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    ca_file: CaOption = DEFAULT_CA_FILE,
) -> None:
    """Show the requests the emulator answered, in order."""
    entries: list[dict[str, Any]] = Control(url, ca_file).request("GET", "/journal", params={"since": since})
    if mutating:
        entries = [e for e in entries if e["mutating"]]
    if as_json:
        emit_json(entries)
        return
    show(
        table(
            f"Journal ({len(entries)} requests)",
            ["seq", "time", "method", "operation", "status", "fault", "path"],
            [
                (e["seq"], e["time"], e["method"], e["operation"], e["status"], "yes" if e["fault"] else "", e["path"])
                for e in entries
            ],
        )
    )
