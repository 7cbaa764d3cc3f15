"""One webhook target: where a group of alerts is POSTed, in which format, and how it went.

The URL is a secret (a Slack incoming-webhook URL *is* its token), so it lives only inside the
:class:`~pydantic.SecretStr` it came in and the httpx request; everything else names the
target ``webhook:<n>`` or ``slack:<n>`` (its index in its setting): the dependency of its
``resilience.call``, its metric label, its log lines and its status row. Where a person needs
to tell targets apart, :func:`masked` shows the scheme and host only.

A status outside 2xx is classified by its code (the status table of
:func:`bastion.errors.classify`), never through ``raise_for_status``, whose message quotes the
URL. Redirects are not followed: a webhook that redirects is misconfigured, and following it
would send the alert (and perhaps the token) somewhere nobody configured.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import orjson
from pydantic import SecretStr

from bastion.errors import classify, error_class_for, parse_retry_after
from bastion.notify.message import Context, generic_body, slack_body
from bastion.notify.notification import Notification

__all__ = ["Delivery", "Format", "WebhookTarget", "masked"]

Format = Literal["json", "slack"]
Render = Callable[..., dict[str, Any]]
_RENDER: Mapping[Format, Render] = {"json": generic_body, "slack": slack_body}


class _HideUrl(logging.Filter):
    """httpx logs each request's full URL at INFO; for a webhook that line would carry the
    token, so it is rewritten with the masked URL before any handler sees it (the logging
    set-up's redactor would catch it too: this holds where that set-up is not in place)."""

    def __init__(self, url: str, shown: str) -> None:
        super().__init__()
        self._url, self._shown = url, shown

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self._url in message:
            record.msg, record.args = message.replace(self._url, self._shown), None
        return True


def masked(url: str) -> str:
    """``url`` as a person may see it: scheme and host, the rest (path, query: the token)
    hidden."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # not a number: shown as nothing rather than guessed at
        port = ""
    return f"{parts.scheme}://{host}{port}/***"


@dataclass(slots=True)
class Delivery:
    """How a target's deliveries went: what the status report shows (nothing secret)."""

    sent: int = 0
    failed: int = 0
    rejected: int = 0
    dropped: int = 0
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    last_error: str | None = None
    """The classified message of the last failure: dependency name, code, what to do."""


class WebhookTarget:
    """POSTs a group of notifications to one URL in one format."""

    def __init__(
        self,
        name: str,
        url: SecretStr,
        *,
        format: Format,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """``name`` is ``webhook:<n>`` or ``slack:<n>``; ``timeout`` backs up the choke
        point's own (a little above it); ``transport`` replaces the network (tests)."""
        self.name = name
        self.format: Format = format
        self._url = url
        self.shown_url = masked(url.get_secret_value())
        self.delivery = Delivery()
        self._hide = _HideUrl(url.get_secret_value(), self.shown_url)
        logging.getLogger("httpx").addFilter(self._hide)
        self._client = httpx.AsyncClient(
            timeout=timeout + 1.0, transport=transport, follow_redirects=False
        )

    def __repr__(self) -> str:
        return f"WebhookTarget({self.name!r}, {self.format!r}, {self.shown_url!r})"

    def body(self, alerts: list[Notification], context: Context, *, truncated: int = 0) -> bytes:
        """The request body for ``alerts`` in this target's format."""
        return orjson.dumps(_RENDER[self.format](alerts, context, truncated=truncated))

    async def post(self, body: bytes) -> None:
        """Send ``body`` once; any status outside 2xx raises, classified by its code."""
        response = await self._client.post(
            self._url.get_secret_value(),
            content=body,
            headers={"Content-Type": "application/json", "User-Agent": "bastion-notify"},
        )
        if response.is_success:
            return
        raise classify(
            dependency=self.name,
            http_status=response.status_code,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            error_class=error_class_for("webhook"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The target's row in the status report: name, format, masked URL, how it went."""
        d = self.delivery
        return {
            "target": self.name,
            "format": self.format,
            "url": self.shown_url,
            "sent": d.sent,
            "failed": d.failed,
            "rejected": d.rejected,
            "dropped": d.dropped,
            "last_success_at": d.last_success_at.isoformat() if d.last_success_at else None,
            "last_failure_at": d.last_failure_at.isoformat() if d.last_failure_at else None,
            "last_error": d.last_error,
        }

    async def aclose(self) -> None:
        await self._client.aclose()
        logging.getLogger("httpx").removeFilter(self._hide)
