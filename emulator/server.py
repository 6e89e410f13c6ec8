"""The estate emulator's HTTPS server: ARM providers, the platform ops API and the control API.

Runs as ``drctl emulator serve`` or in-process (``async with EmulatorServer(plans) as emu``).
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from domain.plan import DrPlan
from emulator.core import ArmError, FaultRule, RequestContext, Router, json_response, read_json
from emulator.tls import ServerCredentials, make_credentials
from emulator.world import Provider, World

log = logging.getLogger("emulator")

CONTROL_PREFIX = "/_emulator"


def build_providers(world: World) -> list[Provider]:
    from emulator.providers import all_providers  # noqa: PLC0415  (providers import the world module)

    return all_providers(world)


class Emulator:
    """The request dispatcher: auth, api-version, faults, latency, the handler, the journal."""

    def __init__(self, world: World, providers: list[Provider]) -> None:
        self.world = world
        self.providers = providers
        self.arm = Router()
        self.control = Router()
        for provider in providers:
            world.providers[provider.name] = provider
            provider.register(self.arm, self.control)
        self._register_control()

    def provider(self, name: str) -> Any:
        for provider in self.providers:
            if provider.name == name:
                return provider
        raise KeyError(name)

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith(CONTROL_PREFIX):
            return await self._dispatch_control(request)
        found = self.arm.match(request.method, request.path)
        if found is None:
            return ArmError(
                404,
                "InvalidResourceType",
                f"The resource type could not be found for {request.method} {request.path}.",
                gateway=True,
            ).response()
        route, params = found
        api_version = request.query.get("api-version")
        fault = False
        body: Any = None
        try:
            auth = request.headers.get("Authorization", "")
            if not auth.startswith("Bearer ") or len(auth) <= len("Bearer "):
                raise ArmError(
                    401,
                    "AuthenticationFailed",
                    "Authentication failed. The 'Authorization' header is missing or is not a bearer token.",
                    gateway=True,
                )
            if route.api_version is not None and api_version != route.api_version:
                raise ArmError(
                    400,
                    "NoRegisteredProviderFound",
                    f"No registered resource provider found for API version '{api_version}'. "
                    f"The supported api-versions are '{route.api_version}'.",
                    gateway=True,
                )
            rule = self.world.faults.take(route.operation, request.path)
            if rule is not None:
                await asyncio.sleep(rule.latency)
                if rule.status >= 400:
                    fault = True
                    raise self.world.faults.error_for(rule, request.path)
            body = await read_json(request)
            if route.latency_mode == "response":
                await asyncio.sleep(self.world.latencies.get(route.operation))
            response = await route.handler(RequestContext(request, params, body, route.operation))
        except ArmError as err:
            response = err.response()
        except Exception:
            log.exception("emulator handler failed: %s %s", request.method, request.path)
            response = ArmError(500, "InternalServerError", "The emulator failed to handle the request.").response()
        self.world.journal.record(
            method=request.method,
            path=request.path,
            api_version=api_version,
            operation=route.operation,
            status=response.status,
            mutating=route.mutating,
            fault=fault,
            body=body if route.mutating else None,
        )
        return response

    async def _dispatch_control(self, request: web.Request) -> web.StreamResponse:
        path = request.path[len(CONTROL_PREFIX) :] or "/"
        found = self.control.match(request.method, path)
        if found is None:
            return json_response(
                {"error": {"code": "NotFound", "message": f"no control route {request.method} {path}"}}, 404
            )
        route, params = found
        try:
            body = await read_json(request)
            return await route.handler(RequestContext(request, params, body, route.operation))
        except ArmError as err:
            return err.response()

    def _register_control(self) -> None:
        c = self.control
        world = self.world

        async def state(_: RequestContext) -> web.StreamResponse:
            snap = world.snapshot()
            for provider in self.providers:
                snap[provider.name] = provider.snapshot()
            return json_response(snap)

        async def region(ctx: RequestContext) -> web.StreamResponse:
            body = ctx.body or {}
            health = body.get("health", "healthy")
            health = {"up": "healthy"}.get(health, health)
            st = world.set_region_health(
                ctx.params["region"],
                health,
                error_rate=body.get("error_rate"),
                added_latency_ms=body.get("added_latency_ms"),
            )
            return json_response(
                {
                    "region": st.name,
                    "health": st.health,
                    "error_rate": st.error_rate,
                    "added_latency_ms": st.added_latency_ms,
                }
            )

        async def add_fault(ctx: RequestContext) -> web.StreamResponse:
            body = ctx.body or {}
            known = {r.operation for r in self.arm.routes}
            op = body.get("operation", "*")
            if op != "*" and not any(fnmatch.fnmatchcase(k, op) for k in known):
                raise ArmError(
                    400, "UnknownOperation", f"no operation matches {op!r}; known: {', '.join(sorted(known))}"
                )
            allowed = {"operation", "status", "count", "retry_after", "latency", "code", "message", "path_contains"}
            rule = world.faults.add(FaultRule(**{k: v for k, v in body.items() if k in allowed}))
            return json_response({"id": rule.id, "operation": rule.operation, "count": rule.count}, 201)

        async def list_faults(_: RequestContext) -> web.StreamResponse:
            return json_response([vars(r) for r in world.faults.rules])

        async def clear_faults(_: RequestContext) -> web.StreamResponse:
            world.faults.clear()
            return json_response(None, 204)

        async def set_latency(ctx: RequestContext) -> web.StreamResponse:
            body = ctx.body or {}
            if not isinstance(body, dict) or not all(isinstance(v, (int, float)) and v >= 0 for v in body.values()):
                raise ArmError(400, "InvalidLatency", 'expected {"OperationId": seconds, ...} with seconds >= 0')
            world.latencies.set({str(k): float(v) for k, v in body.items()})
            return json_response(world.latencies.by_operation)

        async def clear_latency(_: RequestContext) -> web.StreamResponse:
            world.latencies.clear()
            return json_response(None, 204)

        async def journal(ctx: RequestContext) -> web.StreamResponse:
            since = int(ctx.request.query.get("since", "0"))
            return json_response(world.journal.as_json(since))

        async def clear_journal(_: RequestContext) -> web.StreamResponse:
            world.journal.clear()
            return json_response(None, 204)

        async def operations(_: RequestContext) -> web.StreamResponse:
            return json_response(sorted({r.operation for r in self.arm.routes}))

        c.add("GET", "/state", "control.state", state)
        c.add("POST", "/regions/{region}", "control.region", region)
        c.add("GET", "/faults", "control.faults", list_faults)
        c.add("POST", "/faults", "control.faults.add", add_fault)
        c.add("DELETE", "/faults", "control.faults.clear", clear_faults)
        c.add("PUT", "/latency", "control.latency", set_latency)
        c.add("DELETE", "/latency", "control.latency.clear", clear_latency)
        c.add("GET", "/journal", "control.journal", journal)
        c.add("DELETE", "/journal", "control.journal.clear", clear_journal)
        c.add("GET", "/operations", "control.operations", operations)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        return app


class EmulatorServer:
    """Runs the emulator on 127.0.0.1 with a fresh CA; usable as an async context manager."""

    def __init__(
        self,
        plans: list[DrPlan],
        *,
        port: int = 0,
        ca_file: str | Path | None = None,
        credentials: ServerCredentials | None = None,
    ) -> None:
        self.world = World(plans)
        self.emulator = Emulator(self.world, build_providers(self.world))
        self.credentials = credentials or make_credentials()
        self._requested_port = port
        self._ca_file = Path(ca_file) if ca_file else None
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> str:
        assert self._ca_file is not None, "start the server first"
        return str(self._ca_file)

    def provider(self, name: str) -> Any:
        return self.emulator.provider(name)

    async def start(self) -> None:
        if self._ca_file is None:
            import tempfile  # noqa: PLC0415

            self._ca_file = Path(tempfile.mkdtemp(prefix="dr-emulator-")) / "ca.pem"
        self.credentials.write_ca(self._ca_file)
        self._runner = web.AppRunner(self.emulator.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self._requested_port))
        self.port = sock.getsockname()[1]
        site = web.SockSite(self._runner, sock, ssl_context=self.credentials.ssl_context())
        await site.start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> EmulatorServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


class ThreadedEmulator:
    """The emulator on its own event loop in a daemon thread, for synchronous callers and for
    tests whose event loop must not be blocked by the emulator's."""

    def __init__(self, plans: list[DrPlan], *, port: int = 0, ca_file: str | Path | None = None) -> None:
        self._plans = plans
        self._port = port
        self._ca_file = ca_file
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="dr-emulator", daemon=True)
        self.server: EmulatorServer | None = None

    def start(self) -> EmulatorServer:
        self._thread.start()

        async def _start() -> EmulatorServer:
            server = EmulatorServer(self._plans, port=self._port, ca_file=self._ca_file)
            await server.start()
            return server

        self.server = asyncio.run_coroutine_threadsafe(_start(), self._loop).result(timeout=30)
        return self.server

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the emulator's loop (the world is not thread-safe)."""

        async def _call() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(_call(), self._loop).result(timeout=30)

    def stop(self) -> None:
        if self.server is not None:
            asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
