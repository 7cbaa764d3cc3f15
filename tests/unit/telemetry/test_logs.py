"""Logs never carry a secret, and each line says which run, step and span it belongs to."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from structlog.contextvars import bound_contextvars

from bastion.telemetry.logs import LogFormat, configure_logging
from bastion.telemetry.tracing import Tracing, current_ids

SECRET = "s3cr3t-client-value"
Capture = Callable[..., io.StringIO]


@pytest.fixture
def capture() -> Iterator[Capture]:
    """``capture(fmt=...)``: configure logging at INFO into a buffer; restored afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)

    def configure(fmt: LogFormat = "json", level: str = "INFO") -> io.StringIO:
        handler = configure_logging(level, [SECRET], fmt=fmt)
        buffer = io.StringIO()
        handler.setStream(buffer)  # type: ignore[attr-defined]
        return buffer

    yield configure
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    structlog.reset_defaults()


@pytest.fixture
def captured(capture: Capture) -> io.StringIO:
    return capture()


def _lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_secret_in_message_arguments_and_traceback_is_redacted(captured: io.StringIO) -> None:
    """Whatever logs it (ours or a library), the secret value never reaches the stream."""
    log = logging.getLogger("some.library")
    log.info("auth with %s", SECRET)
    try:
        raise ValueError(f"bad secret {SECRET}")
    except ValueError:
        log.exception("request failed")
    text = captured.getvalue()
    assert SECRET not in text
    assert text.count("[REDACTED]") == 2  # the message and the exception text
    assert "ValueError" in text
    first, second = _lines(captured)
    assert first["event"] == "auth with [REDACTED]"
    assert second["exception"].startswith("Traceback")


def test_every_logger_writes_json_lines_with_level_logger_and_time(captured: io.StringIO) -> None:
    """Ours, uvicorn's, SQLAlchemy's and structlog's own loggers: one shape for all."""
    logging.getLogger("bastion.runtime.loop").warning("step %d slow", 3)
    logging.getLogger("uvicorn.error").error("Exception in ASGI application")
    logging.getLogger("sqlalchemy.pool").warning("connection invalidated")
    structlog.get_logger("bastion.native").info("order sent", label="run-1-0")
    lines = _lines(captured)
    assert [(e["logger"], e["level"], e["event"]) for e in lines] == [
        ("bastion.runtime.loop", "warning", "step 3 slow"),
        ("uvicorn.error", "error", "Exception in ASGI application"),
        ("sqlalchemy.pool", "warning", "connection invalidated"),
        ("bastion.native", "info", "order sent"),
    ]
    assert lines[3]["label"] == "run-1-0"
    assert all(e["timestamp"].endswith("Z") for e in lines)
    assert all("trace_id" not in e and "run_id" not in e for e in lines)  # no span, no run


def test_a_line_carries_the_run_the_step_and_the_current_span(captured: io.StringIO) -> None:
    """run_id and step from the context variables; trace_id, span_id, trace_flags at the top
    level, as the OpenTelemetry spec for non-OTLP log formats has them."""
    tracing = Tracing.from_env({})
    with (
        bound_contextvars(run_id="20260101T000000-abcd1234"),
        tracing.tracer.start_as_current_span("bastion.step"),
        bound_contextvars(step=7),
    ):
        ids = current_ids()
        logging.getLogger("httpx").warning("pool full")
        structlog.get_logger().warning("native")
    assert ids is not None
    for line in _lines(captured):
        assert (line["run_id"], line["step"]) == ("20260101T000000-abcd1234", 7)
        assert (line["trace_id"], line["span_id"], line["trace_flags"]) == ids
        assert len(line["trace_id"]) == 32
        assert len(line["span_id"]) == 16


def test_structlog_values_and_secret_named_keys_are_redacted(captured: io.StringIO) -> None:
    structlog.get_logger("bastion.x").warning(
        "login", api_key="not-known-but-named", detail=f"used {SECRET}", token_count=12
    )
    (line,) = _lines(captured)
    assert line["api_key"] == "[REDACTED]"
    assert line["detail"] == "used [REDACTED]"
    assert line["token_count"] == 12


def test_otlp_header_values_are_secrets_too(
    capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20otlp-token-5e6f7a")
    buffer = capture()
    logging.getLogger("opentelemetry.exporter").warning("export to x with Bearer otlp-token-5e6f7a")
    assert "otlp-token-5e6f7a" not in buffer.getvalue()


def test_console_format_is_readable_and_redacted(capture: Capture) -> None:
    buffer = capture(fmt="console")
    logging.getLogger("bastion.runner").warning("could not reach %s", SECRET)
    text = buffer.getvalue()
    assert "could not reach [REDACTED]" in text
    assert SECRET not in text
    assert not text.lstrip().startswith("{")


def test_auto_is_json_when_stderr_is_not_a_terminal(capture: Capture) -> None:
    buffer = capture(fmt="auto")  # pytest's captured stderr is no terminal
    logging.getLogger("bastion.runner").warning("hello")
    assert _lines(buffer)[0]["event"] == "hello"


def test_per_request_library_chatter_is_quiet_at_info(captured: io.StringIO) -> None:
    """httpx's one line per request is not shown at INFO; its warnings still are."""
    logging.getLogger("httpx").info("HTTP Request: POST ...")
    logging.getLogger("httpx").warning("connection pool full")
    text = captured.getvalue()
    assert "HTTP Request" not in text
    assert "connection pool full" in text
