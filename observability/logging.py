"""Structured logging for the worker, drctl and the emulator: one format for every logger.

JSON lines when stderr is not a terminal (CI, containers, log shippers), colours on a terminal.
Standard-library loggers (temporalio, azure, aiohttp) are rendered by the same processors, every
line inside a workflow or activity carries its Temporal ids, and secrets are masked before any
renderer sees them.

In workflow code prefer ``temporalio.workflow.logger`` (replay-aware, sandbox-safe); it is rendered
here with the workflow's ids. ``get_logger`` works in workflows too when ``observability`` and
``structlog`` are passed through the sandbox; its lines are dropped while the workflow replays.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import structlog
from structlog.dev import ConsoleRenderer, RichTracebackFormatter
from structlog.processors import ExceptionRenderer
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, Processor, WrappedLogger
from temporalio import activity, workflow

__all__ = [
    "REDACTED",
    "add_temporal_context",
    "configure_logging",
    "get_logger",
    "redact",
    "redact_secrets",
]

REDACTED = "***"

# Any key naming a credential has its whole value masked, whatever its type.
SECRET_KEY = re.compile(
    r"token|secret|password|authorization|key|sas|signature|credential|connection_string", re.IGNORECASE
)

# Secrets embedded in free text: bearer tokens, SAS signatures, connection-string keys and passwords.
_SECRET_TEXT: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b(Bearer)\s+[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE), rf"\1 {REDACTED}"),
    (re.compile(r"(?<![A-Za-z0-9_])(sig=)[^&\s'\"]+", re.IGNORECASE), rf"\1{REDACTED}"),
    (
        re.compile(r"\b(AccountKey|SharedAccessKey|Password|Pwd)=[^;\s'\"]+", re.IGNORECASE),
        rf"\1={REDACTED}",
    ),
)

# Keys structlog and ProcessorFormatter use for their own bookkeeping; never rewritten.
_INTERNAL_KEYS = frozenset({"event", "exc_info", "stack_info", "_record", "_from_structlog", "positional_args"})

# The Azure SDK's HTTP logging policy logs every request's headers at INFO.
_NOISY_LOGGERS = {"azure.core.pipeline.policies.http_logging_policy": logging.WARNING}

_handler: logging.Handler | None = None


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is at emit time (as logging's last-resort handler does), so a
    test runner swapping stderr for one command never leaves the handler holding a closed stream."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        return None


def redact(value: Any) -> Any:
    """``value`` with secrets masked: secret-named keys in mappings, secret patterns in text."""
    if isinstance(value, str):
        for pattern, replacement in _SECRET_TEXT:
            value = pattern.sub(replacement, value)
        return value
    if isinstance(value, Mapping):
        return {k: _redact_item(str(k), v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, tuple):
        return tuple(redact(v) for v in value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    # Objects are rendered through repr(); replace one only if its repr would leak a secret.
    text = repr(value)
    masked = redact(text)
    return masked if masked != text else value


def _redact_item(key: str, value: Any) -> Any:
    if value is not None and SECRET_KEY.search(key):
        return REDACTED
    return redact(value)


def redact_secrets(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask secrets in every value of the event dict (see ``redact``)."""
    for key, value in event_dict.items():
        if key in _INTERNAL_KEYS:
            if key == "event" and isinstance(value, str):
                event_dict[key] = redact(value)
            continue
        event_dict[key] = _redact_item(key, value)
    return event_dict


def add_temporal_context(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: add the current activity's or workflow's ids; drop workflow lines on replay."""
    if activity.in_activity():
        info = activity.info()
        fields: dict[str, Any] = {
            "workflow_id": info.workflow_id,
            "run_id": info.workflow_run_id,
            "workflow_type": info.workflow_type,
            "activity_id": info.activity_id,
            "activity_type": info.activity_type,
            "attempt": info.attempt,
            "task_queue": info.task_queue,
        }
    elif workflow.in_workflow():
        # Lines logged through structlog in workflow code would repeat on every replay; stdlib
        # records (``workflow.logger``) are filtered by temporalio itself and cannot be dropped here.
        if "_record" not in event_dict and workflow.unsafe.is_replaying():
            raise structlog.DropEvent
        winfo = workflow.info()
        fields = {
            "workflow_id": winfo.workflow_id,
            "run_id": winfo.run_id,
            "workflow_type": winfo.workflow_type,
            "attempt": winfo.attempt,
            "task_queue": winfo.task_queue,
        }
    else:
        return event_dict
    for key, value in fields.items():
        if value is not None:
            event_dict.setdefault(key, value)
    return event_dict


def _shared_processors(json_output: bool) -> list[Processor]:
    processors: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_temporal_context,
        structlog.processors.StackInfoRenderer(),
    ]
    if json_output:
        # dict_tracebacks without locals: a frame's locals can hold tokens and keys.
        processors.append(ExceptionRenderer(ExceptionDictTransformer(show_locals=False)))
    processors.append(redact_secrets)
    return processors


def configure_logging(level: str = "INFO", json: bool | None = None, *, stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging to ``stream`` (stderr) as JSON lines or coloured text.

    ``json=None`` picks JSON unless the stream is a terminal. Safe to call again (e.g. from tests):
    the handler installed by a previous call is replaced, handlers installed by others are kept.
    """
    global _handler  # noqa: PLW0603  (the one handler this module owns on the root logger)
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r}; use DEBUG, INFO, WARNING or ERROR")
    out = stream if stream is not None else sys.stderr
    json_output = json if json is not None else not (hasattr(out, "isatty") and out.isatty())
    shared = _shared_processors(json_output)
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if json_output
        else ConsoleRenderer(colors=True, exception_formatter=RichTracebackFormatter(show_locals=False))
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    root.addHandler(handler)
    root.setLevel(numeric)
    _handler = handler
    for name, minimum in _NOISY_LOGGERS.items():
        logging.getLogger(name).setLevel(max(minimum, numeric))
    # The ids are added as fields by add_temporal_context; temporalio would also append them to the text.
    activity.logger.activity_info_on_message = False
    workflow.logger.workflow_info_on_message = False
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger named ``name`` (usually ``__name__``), rendered as configured above."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
