"""Structured logging: JSON lines, Temporal context on every line, secrets masked."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs
from temporalio import activity
from temporalio.testing import ActivityEnvironment

from observability.logging import configure_logging, get_logger, redact


class LogSink:
    """The stream logging writes to, read back as parsed JSON lines."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line.strip()]

    def last(self) -> dict[str, Any]:
        return self.lines()[-1]


@pytest.fixture
def sink() -> Iterator[LogSink]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    out = LogSink()
    configure_logging("DEBUG", json=True, stream=out.stream)
    try:
        yield out
    finally:
        for handler in root.handlers:
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)
        structlog.reset_defaults()


class TestJsonOutput:
    def test_structlog_lines_are_json_with_level_logger_and_utc_timestamp(self, sink: LogSink) -> None:
        """A structlog event is one JSON object carrying its fields, level, logger name and a UTC ISO timestamp."""
        get_logger("dr.test").info("origin updated", origin="app-eastus", weight=50)
        line = sink.last()
        assert line["event"] == "origin updated"
        assert (line["origin"], line["weight"]) == ("app-eastus", 50)
        assert (line["level"], line["logger"]) == ("info", "dr.test")
        assert line["timestamp"].endswith("Z")

    def test_stdlib_loggers_use_the_same_format(self, sink: LogSink) -> None:
        """A standard-library logger (as temporalio and azure use) is rendered as the same JSON."""
        logging.getLogger("temporalio.worker").warning("poller %s stopped", "activity")
        line = sink.last()
        assert line["event"] == "poller activity stopped"
        assert (line["level"], line["logger"]) == ("warning", "temporalio.worker")

    def test_exceptions_are_rendered_as_dicts(self, sink: LogSink) -> None:
        """An exception logged with its traceback is a structured list with type and message, not text."""
        log = get_logger("dr.test")
        try:
            raise ValueError("bad weight")
        except ValueError:
            log.exception("update failed")
        exc = sink.last()["exception"][0]
        assert (exc["exc_type"], exc["exc_value"]) == ("ValueError", "bad weight")
        assert exc["frames"][-1]["name"] == "test_exceptions_are_rendered_as_dicts"

    def test_azure_http_logging_policy_is_quieted(self, sink: LogSink) -> None:
        """The SDK's request-header logging stays silent at INFO even when the root logs DEBUG."""
        logging.getLogger("azure.core.pipeline.policies.http_logging_policy").info("Request headers: ...")
        logging.getLogger("azure.core.pipeline.policies.http_logging_policy").warning("kept")
        assert [line["event"] for line in sink.lines()] == ["kept"]

    def test_console_renderer_is_used_when_json_is_off(self) -> None:
        """With json=False lines are human-readable text rather than JSON."""
        stream = io.StringIO()
        root = logging.getLogger()
        handlers = list(root.handlers)
        try:
            configure_logging("INFO", json=False, stream=stream)
            get_logger("dr.test").info("console line", region="eastus")
        finally:
            for handler in root.handlers:
                if handler not in handlers:
                    root.removeHandler(handler)
            structlog.reset_defaults()
        text = stream.getvalue()
        assert "console line" in text
        assert "eastus" in text
        with pytest.raises(json.JSONDecodeError):
            json.loads(text)

    def test_unknown_level_is_refused(self) -> None:
        """A misspelt level is an error naming it, not a silent default."""
        with pytest.raises(ValueError, match="VERBOSE"):
            configure_logging("VERBOSE")

    def test_capture_logs_sees_events_from_get_logger(self) -> None:
        """Events from get_logger can be asserted with structlog's capture_logs helper."""
        with capture_logs() as captured:
            get_logger("dr.test").info("captured", plan="local")
        assert captured == [{"event": "captured", "plan": "local", "log_level": "info"}]


class TestTemporalContext:
    async def test_activity_ids_are_added_inside_an_activity(self, sink: LogSink) -> None:
        """Lines logged inside an activity carry its workflow, activity, attempt and task queue ids."""

        @activity.defn(name="test.log")
        async def log_something() -> None:
            get_logger("dr.activity").info("inside")
            activity.logger.info("via temporalio")

        env = ActivityEnvironment()
        await env.run(log_something)
        for line in sink.lines()[-2:]:
            assert line["activity_id"] == env.info.activity_id
            assert line["activity_type"] == env.info.activity_type
            assert line["workflow_id"] == env.info.workflow_id
            assert line["run_id"] == env.info.workflow_run_id
            assert line["attempt"] == env.info.attempt
            assert line["task_queue"] == env.info.task_queue
        assert sink.last()["event"] == "via temporalio"

    def test_no_temporal_ids_outside_temporal(self, sink: LogSink) -> None:
        """Outside workflows and activities no Temporal fields are invented."""
        get_logger("dr.test").info("plain")
        assert not {"activity_id", "workflow_id", "run_id"} & sink.last().keys()


class TestRedaction:
    def test_bearer_tokens_in_text_are_masked(self, sink: LogSink) -> None:
        """A bearer token inside a message or a value is replaced, the rest of the text kept."""
        get_logger("dr.test").info("calling with Authorization: Bearer eyJ0eXAi.payload.sig", note="Bearer abc123==")
        line = sink.last()
        assert line["event"] == "calling with Authorization: Bearer ***"
        assert line["note"] == "Bearer ***"
        assert "eyJ0eXAi" not in sink.stream.getvalue()

    def test_sas_signatures_are_masked(self, sink: LogSink) -> None:
        """The sig= part of a SAS URL is masked while the rest of the URL stays readable."""
        url = "https://acct.blob.core.windows.net/c/b?sv=2024-11-04&se=2026-01-01&sig=AbC%2Fdef%3D&sp=r"
        get_logger("dr.test").info("download", blob_url=url)
        assert sink.last()["blob_url"] == (
            "https://acct.blob.core.windows.net/c/b?sv=2024-11-04&se=2026-01-01&sig=***&sp=r"
        )

    def test_account_keys_in_connection_strings_are_masked(self, sink: LogSink) -> None:
        """AccountKey= in a connection string is masked in stdlib messages as well."""
        conn = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=c2VjcmV0a2V5;EndpointSuffix=core.windows.net"
        logging.getLogger("azure.storage").error("cannot connect with %s", conn)
        assert sink.last()["event"] == (
            "cannot connect with DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=***;"
            "EndpointSuffix=core.windows.net"
        )

    def test_secret_named_keys_are_masked_at_any_depth(self, sink: LogSink) -> None:
        """Values under keys such as password, client_secret or Authorization are masked, nested too."""
        get_logger("dr.test").info(
            "config", password="hunter2", request={"headers": {"Authorization": "x"}, "tenant": "t1"}, retries=3
        )
        line = sink.last()
        assert line["password"] == "***"
        assert line["request"] == {"headers": {"Authorization": "***"}, "tenant": "t1"}
        assert line["retries"] == 3
        assert "hunter2" not in sink.stream.getvalue()

    def test_exception_messages_are_masked(self, sink: LogSink) -> None:
        """A secret inside an exception message does not reach the rendered traceback."""
        try:
            raise RuntimeError("upload to https://a/b?sig=topsecret failed")
        except RuntimeError:
            get_logger("dr.test").exception("upload failed")
        assert sink.last()["exception"][0]["exc_value"] == "upload to https://a/b?sig=*** failed"

    def test_objects_whose_repr_leaks_a_secret_are_replaced(self) -> None:
        """An object is kept as is unless its repr would print a secret; then the masked repr is logged."""

        class Headers:
            def __repr__(self) -> str:
                return "Headers(Authorization='Bearer tok')"

        harmless = object()
        assert redact(harmless) is harmless
        assert redact(Headers()) == "Headers(Authorization='Bearer ***')"
