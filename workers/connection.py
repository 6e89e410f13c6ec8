"""How the worker and drctl reach Temporal: one settings type read from flags and environment,
so the task queue and the address are never spelled twice."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client, TLSConfig
from temporalio.runtime import Runtime

DEFAULT_ADDRESS = "127.0.0.1:7233"
DEFAULT_NAMESPACE = "default"
DEFAULT_TASK_QUEUE = "dr-orchestrator"


class TemporalUnreachable(Exception):
    """Temporal could not be reached; the message says what to do."""


@dataclass(frozen=True)
class TemporalSettings:
    """Temporal address, namespace, task queue and TLS (Temporal Cloud: mTLS or an API key)."""

    address: str = DEFAULT_ADDRESS
    namespace: str = DEFAULT_NAMESPACE
    task_queue: str = DEFAULT_TASK_QUEUE
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_ca: str | None = None
    api_key: str | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: str | None) -> TemporalSettings:
        """``TEMPORAL_ADDRESS``, ``TEMPORAL_NAMESPACE``, ``DR_TASK_QUEUE``, ``TEMPORAL_TLS_CERT``,
        ``TEMPORAL_TLS_KEY``, ``TEMPORAL_TLS_CA``, ``TEMPORAL_API_KEY``; explicit overrides win."""
        e = os.environ if env is None else env
        values: dict[str, str | None] = {
            "address": e.get("TEMPORAL_ADDRESS", DEFAULT_ADDRESS),
            "namespace": e.get("TEMPORAL_NAMESPACE", DEFAULT_NAMESPACE),
            "task_queue": e.get("DR_TASK_QUEUE", DEFAULT_TASK_QUEUE),
            "tls_cert": e.get("TEMPORAL_TLS_CERT") or None,
            "tls_key": e.get("TEMPORAL_TLS_KEY") or None,
            "tls_ca": e.get("TEMPORAL_TLS_CA") or None,
            "api_key": e.get("TEMPORAL_API_KEY") or None,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    def tls(self) -> TLSConfig | bool:
        if self.tls_cert or self.tls_key:
            if not (self.tls_cert and self.tls_key):
                raise ValueError("TLS needs both TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY (client certificate and key)")
            return TLSConfig(
                client_cert=Path(self.tls_cert).read_bytes(),
                client_private_key=Path(self.tls_key).read_bytes(),
                server_root_ca_cert=Path(self.tls_ca).read_bytes() if self.tls_ca else None,
            )
        # An API key (Temporal Cloud) always travels over TLS.
        return bool(self.api_key)

    async def connect(self, runtime: Runtime | None = None) -> Client:
        try:
            return await Client.connect(
                self.address,
                namespace=self.namespace,
                tls=self.tls(),
                api_key=self.api_key,
                runtime=runtime,
            )
        except RuntimeError as exc:
            raise TemporalUnreachable(
                f"cannot reach Temporal at {self.address} (namespace {self.namespace}): {exc}. "
                "Start the local stack with `drctl dev up`, or set TEMPORAL_ADDRESS / --address."
            ) from exc
