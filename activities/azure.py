"""The boundary to Azure: where the SDK clients are built, errors are mapped and long-running
operations are awaited. Every activity class goes through here, so the same code runs against
real Azure (``DefaultAzureCredential``) and against the estate emulator (its URL and CA file)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from enum import Enum
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp
import httpx
from azure.core.credentials import AccessToken
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline.transport import AioHttpTransport
from azure.core.polling import AsyncLROPoller
from azure.mgmt.cdn.aio import CdnManagementClient
from azure.mgmt.cosmosdb.aio import CosmosDBManagementClient
from azure.mgmt.monitor.aio import MonitorManagementClient
from azure.mgmt.servicebus.aio import ServiceBusManagementClient
from azure.mgmt.sql.aio import SqlManagementClient
from azure.storage.blob.aio import BlobServiceClient
from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain.errors import AzureNonRetryableError, AzureRetryableError
from domain.plan import DrPlan

T = TypeVar("T")

AZURE_ARM_ENDPOINT = "https://management.azure.com"
ARM_SCOPE = "https://management.azure.com/.default"

# Azurite's built-in development account, published in Microsoft's Azurite documentation and the
# same on every machine; used only for http endpoints on loopback (see azurite_connection_string).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_ACCOUNT_KEY = (  # a public, well-known development key, not a credential
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
BLOB_CHUNK = 4 * 1024 * 1024


def azurite_connection_string(account_url: str) -> str:
    """The connection string of Azurite's development account at ``account_url``
    (``http://127.0.0.1:PORT/devstoreaccount1``); a secret in form, so never log it."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
        f"AccountKey={AZURITE_ACCOUNT_KEY};BlobEndpoint={account_url.rstrip('/')};"
    )


def is_azurite_url(account_url: str) -> bool:
    """An http account URL on loopback naming the development account: Azurite, never Azure."""
    scheme, _, rest = account_url.partition("://")
    host_port, _, path = rest.partition("/")
    host = host_port.rsplit(":", 1)[0] if not host_port.startswith("[") else host_port.split("]")[0] + "]"
    return scheme == "http" and host in _LOOPBACK_HOSTS and path.strip("/").split("/")[0] == AZURITE_ACCOUNT


@dataclass(frozen=True)
class AzureConnection:
    """Where Azure is and how to trust and authenticate to it; the plan says *what* to touch.

    Against real Azure only ``arm_endpoint`` matters (credentials come from DefaultAzureCredential).
    Against the emulator: its URL, its CA file, and ops endpoints under the same host.
    Blob Storage: ``blob_connection_string`` (Azurite's development account) or ``blob_account_url``
    (a real account, reached with the token credential); both override the plan's backup.account_url.
    """

    arm_endpoint: str = AZURE_ARM_ENDPOINT
    ca_file: str | None = None
    ops_endpoint: str | None = None  # template with {region}; overrides the plan's platform endpoints
    ops_scope: str = "api://dr-platform-ops/.default"
    polling_interval: float = 5.0
    sdk_retries: int = 3
    blob_account_url: str | None = None
    blob_connection_string: str | None = field(default=None, repr=False)  # holds an account key

    @property
    def is_emulator(self) -> bool:
        return self.arm_endpoint.rstrip("/") != AZURE_ARM_ENDPOINT

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> AzureConnection:
        """``DR_ARM_ENDPOINT``, ``DR_CA_FILE``, ``DR_OPS_ENDPOINT``, ``DR_OPS_SCOPE``, ``DR_POLLING_INTERVAL``,
        ``DR_BLOB_ENDPOINT`` (an account URL; Azurite's on loopback http) and ``DR_BLOB_CONNECTION_STRING``."""
        e = os.environ if env is None else env
        arm = e.get("DR_ARM_ENDPOINT", AZURE_ARM_ENDPOINT)
        emulator = arm.rstrip("/") != AZURE_ARM_ENDPOINT
        blob_url = e.get("DR_BLOB_ENDPOINT") or None
        blob_connection = e.get("DR_BLOB_CONNECTION_STRING") or None
        if blob_connection is None and blob_url and is_azurite_url(blob_url):
            blob_connection = azurite_connection_string(blob_url)
        return cls(
            arm_endpoint=arm,
            ca_file=e.get("DR_CA_FILE") or None,
            ops_endpoint=e.get("DR_OPS_ENDPOINT") or None,
            ops_scope=e.get("DR_OPS_SCOPE", cls.ops_scope),
            polling_interval=float(e.get("DR_POLLING_INTERVAL", "0.2" if emulator else "5")),
            blob_account_url=blob_url,
            blob_connection_string=blob_connection,
        )

    @classmethod
    def for_emulator(cls, url: str, ca_file: str, *, polling_interval: float = 0.1) -> AzureConnection:
        return cls(
            arm_endpoint=url,
            ca_file=ca_file,
            ops_endpoint=url.rstrip("/") + "/regions/{region}",
            polling_interval=polling_interval,
        )

    def with_azurite(self, account_url: str) -> AzureConnection:
        """This connection with Blob Storage at Azurite's development account ``account_url``."""
        return replace(
            self, blob_account_url=account_url, blob_connection_string=azurite_connection_string(account_url)
        )

    def blob_url(self, plan: DrPlan) -> str:
        """The Blob Storage account URL: the connection's override, else the plan's backup.account_url."""
        url = self.blob_account_url or plan.backup.account_url
        if not url:
            raise ApplicationError(
                f"plan {plan.name!r} names no Blob Storage account: set backup.account_url in the plan "
                "or DR_BLOB_ENDPOINT for the worker",
                type="InvalidInput",
                non_retryable=True,
            )
        return url.rstrip("/")

    def ops_url(self, plan: DrPlan, region: str) -> str:
        if self.ops_endpoint:
            return self.ops_endpoint.format(region=region).rstrip("/")
        return plan.platform.endpoints[region].rstrip("/")

    def ops_api(self, plan: DrPlan, region: str) -> str:
        """The ``/ops/v1`` root of a region's ops API. Endpoints are either the region's root (the
        emulator's ``.../regions/eastus``) or the ops API's own root (``https://ops.example/ops``)."""
        endpoint = self.ops_url(plan, region)
        return endpoint + ("/v1" if endpoint.endswith("/ops") else "/ops/v1")


class EmulatorCredential(AsyncTokenCredential):
    """A token for the emulator, which checks only that a bearer token is present."""

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("emulator-token", int(time.time()) + 3600)

    async def close(self) -> None:
        return None

    async def __aexit__(self, *args: object) -> None:
        return None


def make_credential(connection: AzureConnection) -> AsyncTokenCredential:
    if connection.is_emulator:
        return EmulatorCredential()
    from azure.identity.aio import DefaultAzureCredential  # noqa: PLC0415  (not needed against the emulator)

    return DefaultAzureCredential()


@dataclass
class AzureClients:
    """The aio SDK clients for one plan, built once per worker and closed at shutdown."""

    plan: DrPlan
    connection: AzureConnection
    credential: AsyncTokenCredential = field(init=False)
    _clients: dict[str, Any] = field(default_factory=dict, init=False)
    _http: httpx.AsyncClient | None = field(default=None, init=False)
    _session: aiohttp.ClientSession | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.credential = make_credential(self.connection)

    def _transport(self) -> AioHttpTransport:
        """One TLS context and connection pool trusting the connection's CA, shared by the ARM clients.
        Given the CA as ``connection_verify`` instead, azure-core builds an SSL context per request,
        which also keeps aiohttp from reusing connections: a TLS handshake on every call."""
        if self._session is None:
            context = ssl.create_default_context(cafile=self.connection.ca_file)
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context), trust_env=True)
        return AioHttpTransport(session=self._session, session_owner=False)

    def _kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "base_url": self.connection.arm_endpoint,
            "polling_interval": self.connection.polling_interval,
            "retry_total": self.connection.sdk_retries,
            "retry_backoff_factor": 0.2 if self.connection.is_emulator else 0.8,
            "retry_backoff_max": 30,
        }
        if self.connection.ca_file:
            kwargs["transport"] = self._transport()
        return kwargs

    def _get(self, name: str, factory: Callable[..., Any]) -> Any:
        client = self._clients.get(name)
        if client is None:
            client = factory(self.credential, self.plan.subscription_id, **self._kwargs())
            self._clients[name] = client
        return client

    @property
    def cdn(self) -> CdnManagementClient:
        client: CdnManagementClient = self._get("cdn", CdnManagementClient)
        return client

    @property
    def servicebus(self) -> ServiceBusManagementClient:
        client: ServiceBusManagementClient = self._get("servicebus", ServiceBusManagementClient)
        return client

    @property
    def sql(self) -> SqlManagementClient:
        client: SqlManagementClient = self._get("sql", SqlManagementClient)
        return client

    @property
    def cosmos(self) -> CosmosDBManagementClient:
        client: CosmosDBManagementClient = self._get("cosmos", CosmosDBManagementClient)
        return client

    @property
    def monitor(self) -> MonitorManagementClient:
        client: MonitorManagementClient = self._get("monitor", MonitorManagementClient)
        return client

    @property
    def blob(self) -> BlobServiceClient:
        """Blob Storage of the plan (tenants' live data, backups, quarantines): Azurite's development
        account by connection string, or a real account with the token credential."""
        client: BlobServiceClient | None = self._clients.get("blob")
        if client is None:
            # Downloads come in BLOB_CHUNK pieces from the first byte on (the SDK's first GET would
            # otherwise take 32 MiB at once), so streaming copies hold one block in memory.
            options: dict[str, Any] = {
                "retry_total": self.connection.sdk_retries,
                "max_single_get_size": BLOB_CHUNK,
                "max_chunk_get_size": BLOB_CHUNK,
            }
            if self.connection.blob_connection_string:
                client = BlobServiceClient.from_connection_string(self.connection.blob_connection_string, **options)
            else:
                client = BlobServiceClient(self.connection.blob_url(self.plan), credential=self.credential, **options)
            self._clients["blob"] = client
        return client

    @property
    def http(self) -> httpx.AsyncClient:
        """HTTPS client for the platform's ops API (TLS verified with the connection's CA)."""
        if self._http is None:
            verify: Any = (
                ssl.create_default_context(cafile=self.connection.ca_file) if self.connection.ca_file else True
            )
            self._http = httpx.AsyncClient(verify=verify, timeout=httpx.Timeout(30.0))
        return self._http

    async def ops_headers(self) -> dict[str, str]:
        token = await self.credential.get_token(self.connection.ops_scope)
        return {"Authorization": f"Bearer {token.token}"}

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self.credential.close()


def public_url(url: str) -> str:
    """``url`` without its query string: a blob client's URL carries the SAS token it was built with,
    which must not reach results, histories, catalogs or evidence."""
    return urlsplit(url)._replace(query="", fragment="").geturl()


NON_RETRYABLE_STATUSES = frozenset({400, 401, 403, 404, 405, 409, 412, 422})

# The detail that marks a mapped error as an authentication failure (no or rejected token).
AUTHENTICATION_FAILED = "authentication-failed"


def is_authentication_error(error: BaseException) -> bool:
    """Whether ``error`` is a mapped authentication failure (ARM or the ops API)."""
    return isinstance(error, ApplicationError) and AUTHENTICATION_FAILED in error.details


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (the delta-seconds form ARM uses); None if absent or odd."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _retry_after(error: HttpResponseError) -> float | None:
    response = getattr(error, "response", None)
    return None if response is None else parse_retry_after(response.headers.get("Retry-After"))


def _code(error: HttpResponseError) -> str | None:
    err = getattr(error, "error", None)
    # Blob Storage errors carry their code as ``error_code`` (from x-ms-error-code), not in ``error``.
    code = getattr(err, "code", None) or getattr(error, "error_code", None)
    return str(code) if code else None


def _azure_message(error: HttpResponseError) -> str:
    err = getattr(error, "error", None)
    message = getattr(err, "message", None)
    return str(message) if message else str(error.reason or error).splitlines()[0]


def status_error(
    status: int, code: str | None, azure_message: str, *, retry_after: float | None, resource: str, action: str
) -> ApplicationError:
    """The status rules, shared by SDK errors and plain HTTPS answers (the ops API): 429 and 5xx
    are retried (after Retry-After), every other error status stops at once."""
    detail = f"{status} {code or ''}".strip()
    message = f"{action} {resource}: {detail}: {azure_message}"
    if status == 429 or status >= 500:
        return ApplicationError(
            message,
            type=AzureRetryableError.__name__,
            non_retryable=False,
            next_retry_delay=timedelta(seconds=retry_after) if retry_after else None,
        )
    hints = {
        403: " The worker's identity lacks an RBAC role on this resource.",
        404: " Check the resource names in the plan.",
        409: " Another operation is in progress on this resource, or its state forbids this action.",
    }
    return ApplicationError(
        message + hints.get(status, ""),
        type=AzureNonRetryableError.__name__,
        non_retryable=status in NON_RETRYABLE_STATUSES or 400 <= status < 500,
    )


def check_http_response(response: httpx.Response, resource: str, action: str) -> None:
    """Raise the mapped ApplicationError for an error answer of a non-SDK HTTPS call; read
    ``{"error": {"code", "message"}}`` and Retry-After the way the SDK path does."""
    if response.status_code < 400:
        return
    code: str | None = None
    azure_message = response.reason_phrase or f"HTTP {response.status_code}"
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = str(error["code"]) if error.get("code") else None
        azure_message = str(error.get("message") or azure_message)
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if response.status_code == 401:
        raise ApplicationError(
            f"{action} {resource}: authentication failed (401). Check the worker's credentials for the ops API scope.",
            AUTHENTICATION_FAILED,
            type=AzureNonRetryableError.__name__,
            non_retryable=True,
        )
    raise status_error(
        response.status_code, code, azure_message, retry_after=retry_after, resource=resource, action=action
    )


# Codes inside a Failed long-running operation that say "try again", not "this cannot work".
TRANSIENT_OPERATION_CODES = frozenset(
    {"InternalServerError", "ServiceUnavailable", "OperationTimedOut", "TooManyRequests", "GatewayTimeout"}
)


def _operation_failed(error: HttpResponseError, resource: str, action: str) -> ApplicationError:
    """An LRO that ended Failed or Canceled: azure-core raises with the (2xx) status poll, whose
    body carries the operation's error. Non-retryable unless that error is a transient one."""
    code = _code(error) or "OperationFailed"
    transient = code in TRANSIENT_OPERATION_CODES
    return ApplicationError(
        f"{action} {resource}: the operation failed: {code}: {_azure_message(error)}",
        type=(AzureRetryableError if transient else AzureNonRetryableError).__name__,
        non_retryable=not transient,
    )


def to_application_error(error: Exception, resource: str, action: str) -> ApplicationError:
    """Map an SDK error once: auth, 400, 403, 404 and 409 stop at once; 429 and 5xx are retried."""
    if isinstance(error, ClientAuthenticationError):
        status = error.status_code
        return ApplicationError(
            f"{action} {resource}: authentication failed ({status or 'no token'}). "
            "Check the worker's Azure credentials (DefaultAzureCredential: environment, managed identity or az login).",
            AUTHENTICATION_FAILED,
            type=AzureNonRetryableError.__name__,
            non_retryable=True,
        )
    if isinstance(error, HttpResponseError) and error.status_code is not None and error.status_code < 400:
        return _operation_failed(error, resource, action)
    if isinstance(error, HttpResponseError) and error.status_code is not None:
        return status_error(
            error.status_code,
            _code(error),
            _azure_message(error),
            retry_after=_retry_after(error),
            resource=resource,
            action=action,
        )
    if isinstance(error, (ServiceRequestError, ServiceResponseError, httpx.TransportError)):
        return ApplicationError(
            f"{action} {resource}: connection failed: {error}",
            type=AzureRetryableError.__name__,
            non_retryable=False,
        )
    return ApplicationError(f"{action} {resource}: {error}", type=type(error).__name__)


@contextlib.asynccontextmanager
async def azure_call(resource: str, action: str) -> AsyncIterator[None]:
    """Turns SDK and HTTP errors inside the block into the project's ApplicationErrors."""
    try:
        yield
    except ApplicationError:
        raise
    except (
        HttpResponseError,
        ClientAuthenticationError,
        ServiceRequestError,
        ServiceResponseError,
        httpx.TransportError,
    ) as exc:
        raise to_application_error(exc, resource, action) from None


@dataclass
class LroHeartbeat:
    """Heartbeat details of an activity waiting for an Azure long-running operation."""

    operation: str
    continuation_token: str
    started: float


def _in_activity() -> bool:
    try:
        activity.info()
    except RuntimeError:
        return False
    return True


def heartbeat(details: Any = None) -> None:
    if _in_activity():
        if details is None:
            activity.heartbeat()
        else:
            activity.heartbeat(details)


def resumed_lro(operation: str) -> str | None:
    """The continuation token a previous attempt of this activity heartbeated for ``operation``."""
    if not _in_activity():
        return None
    for detail in activity.info().heartbeat_details:
        if isinstance(detail, dict) and detail.get("operation") == operation and detail.get("continuation_token"):
            return str(detail["continuation_token"])
    return None


async def await_lro(
    operation: str,
    begin: Callable[..., Awaitable[AsyncLROPoller[T]]],
    *,
    heartbeat_every: float = 2.0,
    **kwargs: Any,
) -> T:
    """Start (or resume from the last attempt's continuation token) an LRO and wait for it,
    heartbeating its continuation token so a retried activity picks up the same operation."""
    token = resumed_lro(operation)
    if token is not None:
        activity.logger.info("resuming %s from its continuation token", operation)
        poller = await begin(continuation_token=token, **kwargs)
    else:
        poller = await begin(**kwargs)
    details = LroHeartbeat(operation, poller.continuation_token(), time.time())
    heartbeat(details)
    result_task: asyncio.Task[T] = asyncio.ensure_future(poller.result())
    try:
        while True:
            done, _ = await asyncio.wait({result_task}, timeout=heartbeat_every)
            if done:
                return result_task.result()
            heartbeat(details)
    finally:
        if not result_task.done():
            result_task.cancel()


async def poll_until(
    what: str,
    probe: Callable[[], Awaitable[T]],
    ready: Callable[[T], bool],
    *,
    interval: float,
    timeout: float,  # noqa: ASYNC109  (a polling deadline, not a cancellation scope)
    progress: Callable[[T], Any] | None = None,
) -> T:
    """Poll ``probe`` until ``ready``; heartbeats each round (with ``progress`` of the last reading)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if ready(value):
            return value
        heartbeat(progress(value) if progress else None)
        if time.monotonic() >= deadline:
            raise ApplicationError(
                f"timed out after {timeout:.0f}s waiting for {what}",
                type="Timeout",
                non_retryable=False,
            )
        await asyncio.sleep(interval)


# Lists longer than this are abridged in planned calls: a re-pin batch of 500 tenant ids would
# otherwise make one line of kilobytes, and a dry run's plan must stay readable and small.
PLANNED_LIST_ITEMS = 20


def _plain(value: Any) -> Any:
    """An SDK model, mapping, sequence or enum as plain JSON values (SDK models by their wire names)."""
    as_dict = getattr(value, "as_dict", None)
    if callable(as_dict):
        value = as_dict()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_plain(v) for v in value[:PLANNED_LIST_ITEMS]]
        if len(value) > PLANNED_LIST_ITEMS:
            items.append(f"... {len(value) - PLANNED_LIST_ITEMS} more")
        return items
    if isinstance(value, Enum):
        return value.value
    return value


def sdk_api_version(client: Any) -> str:
    """The api-version an SDK management client sends, so planned calls name the one really used."""
    # The SDK exposes it only on its (private) config.
    return str(client._config.api_version)


def planned_call(method: str, path: str, api_version: str | None = None, body: Any = None) -> str:
    """One mutating call as a line for dry-run plans, journals and evidence:
    ``METHOD path?api-version=V {"essential": "body"}`` (``path`` is an ARM path or an ops URL)."""
    line = f"{method.upper()} {path}"
    if api_version:
        line += f"{'&' if '?' in path else '?'}api-version={api_version}"
    if body is not None:
        line += " " + json.dumps(_plain(body), default=str)
    return line


class Estates:
    """The plans a worker serves, each with its own SDK clients, looked up by plan name."""

    def __init__(self, plans: list[DrPlan], connection: AzureConnection) -> None:
        self.connection = connection
        self._by_name = {plan.name: AzureClients(plan, connection) for plan in plans}

    def __getitem__(self, plan_name: str) -> AzureClients:
        clients = self._by_name.get(plan_name)
        if clients is None:
            loaded = ", ".join(sorted(self._by_name)) or "none"
            raise ApplicationError(
                f"plan {plan_name!r} is not loaded by this worker (loaded: {loaded}); "
                "start dr-worker with --plan pointing at that plan file",
                type="PlanNotLoaded",
                non_retryable=True,
            )
        return clients

    @property
    def names(self) -> list[str]:
        return sorted(self._by_name)

    async def close(self) -> None:
        for clients in self._by_name.values():
            await clients.close()


# ---- small conversions every activity class needs ----------------------------------------------


def invalid_input(message: str, error_type: str = "InvalidInput") -> ApplicationError:
    """Bad input from a workflow or a plan: retrying cannot help."""
    return ApplicationError(message, type=error_type, non_retryable=True)


def wire_text(value: object) -> str | None:
    """An SDK enum or string as its wire text (``str()`` of a str-Enum is its member name)."""
    if value is None:
        return None
    return str(value.value) if isinstance(value, Enum) else str(value)


def utc_time(value: str, what: str = "point in time") -> dt.datetime:
    """An ISO 8601 timestamp as an aware UTC datetime (naive input means UTC)."""
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise invalid_input(f"{what} {value!r} is not an ISO 8601 timestamp") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def iso_utc(moment: dt.datetime) -> str:
    """ARM's timestamp form: ISO 8601 UTC, milliseconds, trailing Z."""
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
