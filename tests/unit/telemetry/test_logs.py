"""Logs never carry a secret: messages, arguments and tracebacks are redacted on the way out."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from bastion.telemetry.logs import configure_logging

SECRET = "s3cr3t-client-value"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    handler = configure_logging("INFO", [SECRET])
    buffer = io.StringIO()
    handler.setStream(buffer)  # type: ignore[attr-defined]
    yield buffer
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


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


def test_per_request_library_chatter_is_quiet_at_info(captured: io.StringIO) -> None:
    """httpx's one line per request is not shown at INFO; its warnings still are."""
    logging.getLogger("httpx").info("HTTP Request: POST ...")
    logging.getLogger("httpx").warning("connection pool full")
    text = captured.getvalue()
    assert "HTTP Request" not in text
    assert "connection pool full" in text
