"""The emulator's machinery shared by every provider: routing, Azure error bodies, the request
journal, fault injection, per-operation latency and Azure's long-running-operation protocol."""

from __future__ import annotations

import asyncio
import datetime as dt
import fnmatch
import itertools
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web

JsonDict = dict[str, Any]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(moment: dt.datetime) -> str:
    """ARM's timestamp form: ISO 8601 in UTC with a trailing Z."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class ArmError(Exception):
    """An error answered in Azure's shape: ``{"error": {"code", "message"}}``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        gateway: bool = False,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.gateway = gateway
        self.headers = headers or {}

    def response(self) -> web.Response:
        headers = dict(self.headers)
        if self.gateway:
            headers["x-ms-failure-cause"] = "gateway"
        return json_response({"error": {"code": self.code, "message": self.message}}, self.status, headers)


def not_found(kind: str, name: str) -> ArmError:
    return ArmError(404, "ResourceNotFound", f"The Resource '{kind}/{name}' under the resource group was not found.")


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(body).encode() if body is not None else b"",
        content_type="application/json" if body is not None else None,
        headers=headers,
    )


@dataclass
class RequestContext:
    """What a provider handler gets: the request, its path parameters and the parsed body."""

    request: web.Request
    params: dict[str, str]
    body: Any
    operation: str

    @property
    def base_url(self) -> str:
        return f"{self.request.scheme}://{self.request.host}"

    def absolute(self, path: str) -> str:
        return self.base_url + path


Handler = Callable[[RequestContext], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    operation: str
    handler: Handler
    mutating: bool
    api_version: str | None
    # "response": the configured latency delays the answer (synchronous calls);
    # "operation": the handler uses it as the operation's run time (LROs, Service Bus role changes).
    latency_mode: str


def _compile(template: str) -> re.Pattern[str]:
    """``/a/{name}/b`` -> a case-insensitive regex with named groups (ARM paths are case-insensitive)."""
    parts = re.split(r"(\{[A-Za-z]+\})", template)
    out = []
    for part in parts:
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1]
            out.append(f"(?P<{name}>[^/]+)" if name != "resourceUri" else f"(?P<{name}>.+)")
        else:
            out.append(re.escape(part))
    return re.compile("^" + "".join(out) + "/?$", re.IGNORECASE)


class Router:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(
        self,
        method: str,
        template: str,
        operation: str,
        handler: Handler,
        *,
        mutating: bool = False,
        api_version: str | None = None,
        latency_mode: str = "response",
    ) -> None:
        if latency_mode not in ("response", "operation"):
            raise ValueError(f"latency_mode must be 'response' or 'operation', not {latency_mode!r}")
        self.routes.append(
            Route(method.upper(), _compile(template), operation, handler, mutating, api_version, latency_mode)
        )

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            if route.method != method:
                continue
            found = route.pattern.match(path)
            if found:
                return route, found.groupdict()
        return None


def arm_routes(router: Router, api_version: str) -> Callable[..., None]:
    """An ``add`` for one provider whose mutating calls are long-running: every route checks the
    provider's api-version, and a mutating one takes the configured latency as its run time."""

    def add(method: str, path: str, operation: str, handler: Handler, *, mutating: bool = False) -> None:
        router.add(
            method,
            path,
            operation,
            handler,
            mutating=mutating,
            api_version=api_version,
            latency_mode="operation" if mutating else "response",
        )

    return add


@dataclass
class JournalEntry:
    seq: int
    time: str
    method: str
    path: str
    api_version: str | None
    operation: str
    status: int
    mutating: bool
    fault: bool
    body: Any = None


class Journal:
    """Every request the emulator answered, in order: the proof of idempotency and ordering."""

    def __init__(self) -> None:
        self._entries: list[JournalEntry] = []
        self._seq = itertools.count(1)

    def record(self, **fields: Any) -> JournalEntry:
        entry = JournalEntry(seq=next(self._seq), time=iso(utc_now()), **fields)
        self._entries.append(entry)
        return entry

    def entries(self, since: int = 0) -> list[JournalEntry]:
        return [e for e in self._entries if e.seq > since]

    def as_json(self, since: int = 0) -> list[JsonDict]:
        return [asdict(e) for e in self.entries(since)]

    def clear(self) -> None:
        self._entries.clear()


@dataclass
class FaultRule:
    """Answer ``status`` to the next ``count`` requests matching ``operation`` (and ``path_contains``)."""

    operation: str
    status: int = 503
    count: int = 1
    retry_after: float | None = None
    latency: float = 0.0
    code: str | None = None
    message: str | None = None
    path_contains: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def matches(self, operation: str, path: str) -> bool:
        if self.count <= 0:
            return False
        if not fnmatch.fnmatchcase(operation, self.operation):
            return False
        return self.path_contains is None or self.path_contains.lower() in path.lower()


_DEFAULT_CODES = {
    400: "BadRequest",
    401: "AuthenticationFailed",
    403: "AuthorizationFailed",
    404: "ResourceNotFound",
    409: "Conflict",
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


class Faults:
    def __init__(self) -> None:
        self.rules: list[FaultRule] = []

    def add(self, rule: FaultRule) -> FaultRule:
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        self.rules.clear()

    def take(self, operation: str, path: str) -> FaultRule | None:
        for rule in self.rules:
            if rule.matches(operation, path):
                rule.count -= 1
                return rule
        return None

    @staticmethod
    def error_for(rule: FaultRule, path: str) -> ArmError:
        headers = {}
        if rule.retry_after is not None:
            headers["Retry-After"] = (
                str(int(rule.retry_after)) if rule.retry_after == int(rule.retry_after) else str(rule.retry_after)
            )
        code = rule.code or _DEFAULT_CODES.get(rule.status, "Error")
        message = rule.message or f"Injected fault {rule.status} {code} for {path}."
        return ArmError(rule.status, code, message, headers=headers)


class Latencies:
    """Seconds an operation takes: the LRO's run time, or the answer's delay for synchronous calls."""

    def __init__(self) -> None:
        self.by_operation: dict[str, float] = {}

    def get(self, operation: str) -> float:
        """The exact operation's setting, else the first matching glob (``FailoverGroups_*``), else 0."""
        if operation in self.by_operation:
            return self.by_operation[operation]
        for pattern, seconds in self.by_operation.items():
            if fnmatch.fnmatchcase(operation, pattern):
                return seconds
        return 0.0

    def set(self, values: dict[str, float]) -> None:
        self.by_operation.update(values)

    def clear(self) -> None:
        self.by_operation.clear()


@dataclass
class AsyncOperation:
    id: str
    name: str
    started: dt.datetime
    done_at: float  # monotonic
    apply: Callable[[], None] | None
    result: Callable[[], Any] | None
    status: str = "InProgress"
    error: ArmError | None = None

    def poll(self) -> str:
        """Completes the operation once its time has come; applies its effect exactly once."""
        if self.status == "InProgress" and time.monotonic() >= self.done_at:
            try:
                if self.apply is not None:
                    self.apply()
                self.status = "Succeeded"
            except ArmError as err:
                self.status = "Failed"
                self.error = err
        return self.status


class Operations:
    """Azure's LRO protocol: operation records polled through Azure-AsyncOperation and Location."""

    def __init__(self) -> None:
        self._ops: dict[str, AsyncOperation] = {}

    def start(
        self,
        name: str,
        duration: float,
        apply: Callable[[], None] | None = None,
        result: Callable[[], Any] | None = None,
    ) -> AsyncOperation:
        op = AsyncOperation(
            id=str(uuid.uuid4()),
            name=name,
            started=utc_now(),
            done_at=time.monotonic() + duration,
            apply=apply,
            result=result,
        )
        self._ops[op.id] = op
        if duration <= 0:
            op.poll()
        else:
            asyncio.get_running_loop().call_later(duration, op.poll)
        return op

    def get(self, op_id: str) -> AsyncOperation:
        op = self._ops.get(op_id)
        if op is None:
            raise ArmError(404, "ResourceNotFound", f"Operation {op_id} was not found.")
        op.poll()
        return op

    def status_body(self, op: AsyncOperation) -> JsonDict:
        body: JsonDict = {"name": op.id, "status": op.status, "startTime": iso(op.started)}
        if op.error is not None:
            body["error"] = {"code": op.error.code, "message": op.error.message}
        return body

    def pending(self) -> int:
        return sum(1 for op in self._ops.values() if op.poll() == "InProgress")


async def read_json(request: web.Request) -> Any:
    if not request.can_read_body:
        return None
    raw = await request.read()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ArmError(
            400, "InvalidRequestContent", f"The request content was invalid and could not be deserialized: {exc}"
        ) from exc


def monotonic_sleep(seconds: float) -> Awaitable[None]:
    return asyncio.sleep(max(0.0, seconds))
