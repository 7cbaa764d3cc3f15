"""Logging set-up: one format, quiet libraries, and secrets redacted before a line is written.

The redaction is a ``logging.Filter`` on the handler, so it covers every logger in the process
(ours, httpx, uvicorn, SQLAlchemy): a secret that reaches a log message or an exception's text
is replaced by ``[REDACTED]`` whatever code produced it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from bastion.trace.redact import Redactor

__all__ = ["RedactingFilter", "configure_logging"]

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Libraries that log one line per request or per migration step at INFO.
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
)


class RedactingFilter(logging.Filter):
    """Renders each record's message and traceback with known secrets replaced."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._redactor = Redactor(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._redactor.redact_text(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self._redactor.redact_text(
                logging.Formatter().formatException(record.exc_info)
            )
            record.exc_info = None
        return True


def configure_logging(level: str, secrets: Iterable[str]) -> logging.Handler:
    """Log to stderr at ``level`` through a redacting handler; returns the handler."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    return handler
