"""Logging set-up: structlog JSON lines (a readable console in a terminal), secrets redacted.

Every record, ours (stdlib ``logging`` or ``structlog.get_logger``) and every library's (httpx,
uvicorn, SQLAlchemy, the OpenTelemetry exporter), goes through one stdlib handler whose
formatter is structlog's ``ProcessorFormatter``, so they all come out in the same shape:

``{"timestamp": "...Z", "level": "warning", "logger": "bastion.runtime.loop", "event": "...",
"run_id": "...", "step": 7, "trace_id": "<32 hex>", "span_id": "<16 hex>", "trace_flags": "01"}``

* ``run_id`` and ``step`` come from structlog's context variables, bound by the runner and the
  loop at the start of each run and step (``structlog.contextvars.bound_contextvars``);
* ``trace_id``, ``span_id`` and ``trace_flags`` are the current OpenTelemetry span's, at the
  top level as the specification's "Trace Context in non-OTLP Log Formats" asks (not nested
  under ``span`` as structlog's own example does); absent outside a span;
* an exception's traceback is rendered into ``exception``.

**Redaction is the last step before rendering**, inside the formatter, for every record: every
string in the event (the message, the traceback, any bound value) goes through the same
:class:`~bastion.trace.redact.Redactor` as the NDJSON trace (known secret values, secret-named
keys, URL passwords), so a secret that reaches a log line is ``[REDACTED]`` whatever code
produced it. The OTLP header values (``OTEL_EXPORTER_OTLP_HEADERS``) count as secrets.

``BASTION_LOG_FORMAT`` picks the rendering: ``json``, ``console`` (structlog's readable
columns), or ``auto`` (the default): console when stderr is a terminal, JSON otherwise.
structlog is imported when logging is configured, not with this module, so a CLI command that
only prints its help does not pay for it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import TYPE_CHECKING, Any, Literal

from bastion.trace.redact import Redactor

if TYPE_CHECKING:
    from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = ["LogFormat", "RedactingProcessor", "add_trace_context", "configure_logging"]

LogFormat = Literal["auto", "json", "console"]

# Libraries that log one line per request or per migration step at INFO.
_OWN_HANDLERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
"""Loggers uvicorn's ``LOGGING_CONFIG`` gives their own handlers; ours takes them back."""
_CHATTY = (
    "httpx",
    "httpcore",
    "httpx2",
    "watchfiles",  # "1 change detected" at INFO whenever the flag watcher wakes
    "httpcore2",
    "openai",
    "anthropic",
    "alembic",
    "uvicorn.access",
    "urllib3",  # the OTLP exporter's HTTP client: a line per export at DEBUG
)


def _otlp_header_secrets() -> list[str]:
    # Imported when logging is configured, not when this module is: the OpenTelemetry API costs
    # about 25 ms, and `bastion kill` imports this module (through the CLI) but logs nothing.
    from bastion.telemetry.tracing import header_secrets  # noqa: PLC0415

    return header_secrets()


def add_trace_context(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Put the current span's ids at the top level of the event (when there is a span)."""
    from bastion.span_ids import current_ids  # noqa: PLC0415  see _otlp_header_secrets

    ids = current_ids()
    if ids is not None:
        event_dict["trace_id"], event_dict["span_id"], event_dict["trace_flags"] = ids
    return event_dict


class RedactingProcessor:
    """A structlog processor: the event with every known secret and secret-named value redacted."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._redactor = Redactor(secrets)

    def __call__(self, _: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        redacted: MutableMapping[str, Any] = self._redactor.redact(event_dict)
        return dict(redacted)


def configure_logging(
    level: str, secrets: Iterable[str], *, fmt: LogFormat = "auto"
) -> logging.Handler:
    """Log to stderr at ``level`` through one redacting structlog handler; returns the handler.

    Replaces the root logger's handlers, and configures structlog so ``structlog.get_logger()``
    writes through the same handler.
    """
    import structlog  # noqa: PLC0415  ~60 ms: not at import time of every CLI command

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        add_trace_context,
    ]
    console = fmt == "console" or (fmt == "auto" and _is_terminal())
    renderer: Processor = (
        structlog.dev.ConsoleRenderer(colors=_is_terminal())
        if console
        else structlog.processors.JSONRenderer()
    )
    handler = logging.StreamHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                RedactingProcessor([*secrets, *_otlp_header_secrets()]),
                renderer,
            ],
        )
    )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    for name in _OWN_HANDLERS:
        # A server started with uvicorn's default log config gave these loggers handlers of
        # their own and stopped them propagating: their lines would skip the redaction and JSON.
        foreign = logging.getLogger(name)
        for old in list(foreign.handlers):
            foreign.removeHandler(old)
        foreign.propagate = True
    return handler


def _is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False
