"""The console's HTTP hardening: three pure ASGI middlewares around the FastAPI app.

The console listens on loopback, but a loopback port is still reachable from any web page the
operator opens, so the server defends itself rather than trusting its address:

- :class:`HostGuard` answers 400 to a ``Host`` that is not one of ours. A DNS-rebinding page
  (``evil.example`` re-pointed at 127.0.0.1) reaches the socket with its own name in ``Host``,
  so refusing foreign names keeps it from reading ``/metrics``, ``/healthz`` or the page. The
  token already guards ``/api``; this guards what is open without it.
- :class:`BodyLimit` counts request body bytes as they arrive and answers 413 once they pass the
  cap, so a 20 MB body (declared or chunked) is never held in memory. The console's bodies are
  small JSON objects; the paper exchange caps its JSON-RPC bodies the same way.
- :class:`SecurityHeaders` adds a self-only Content-Security-Policy (no inline script, no
  framing) and its companions to every answer, refusals included.

They are ASGI middlewares rather than FastAPI dependencies so that they run before routing and
body parsing, and so that FastAPI's own body reader (which turns any receive error into a 400)
never sees an oversize body. Refusals are JSON ``{"detail": reason}`` like every console error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "LOOPBACK_HOSTS",
    "MAX_BODY_BYTES",
    "BodyLimit",
    "HostGuard",
    "SecurityHeaders",
    "host_name",
]

_log = logging.getLogger(__name__)
_INTERNAL_ERROR = "internal error: the console could not answer; the run's log says why"

MAX_BODY_BYTES = 64 * 1024
"""The largest request body the console reads; its JSON bodies are a few hundred bytes."""

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
"""Names a browser or probe on this machine uses for the console; always allowed."""

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
"""Everything from the console itself, nothing inline, never inside another site's frame."""

_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
)


async def _refuse(send: Send, status: int, reason: str) -> None:
    """Answer ``{"detail": reason}`` and close: the client may still be sending a body."""
    body = orjson.dumps({"detail": reason})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def host_name(host: str) -> str | None:
    """The name in a ``Host`` value, lower-case, without port or brackets; None if malformed.

    ``"LOCALHOST.:8787"`` → ``"localhost"``, ``"[::1]:8787"`` → ``"::1"``. A trailing dot names
    the same host, so it is dropped rather than letting ``localhost.`` through as foreign.
    """
    host = host.strip().lower()
    if host.startswith("["):
        name, bracket, rest = host[1:].partition("]")
        if not bracket or (rest and not _is_port(rest)):
            return None
    else:
        name, colon, port = host.partition(":")
        if colon and not port.isdecimal():
            return None
    name = name.rstrip(".")
    return name or None


def _is_port(text: str) -> bool:
    return text.startswith(":") and text[1:].isdecimal()


def _address_name(address: str) -> str | None:
    """A configured name or a bound address, which may be a bare IPv6 address (``fd00::5``)."""
    if address.count(":") > 1 and not address.startswith("["):
        return address.strip().lower() or None
    return host_name(address)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None


class HostGuard:
    """Serve only requests whose ``Host`` names this console; others get 400 with the fix.

    Allowed: :data:`LOOPBACK_HOSTS`, the address the connection reached (ASGI ``server``: the
    address uvicorn is bound to, so an operator who bound a LAN address and typed it is served;
    an address is never a rebinding name), and ``allowed`` (``console_allowed_hosts`` and the
    bound host name). Ports are ignored: a rebinding page must use our port anyway.
    """

    def __init__(self, app: ASGIApp, *, allowed: Iterable[str] = ()) -> None:
        self.app = app
        names = (_address_name(host) for host in allowed)
        self._allowed = LOOPBACK_HOSTS | {name for name in names if name}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = _header(scope, b"host") or ""
        name = host_name(offered)
        server = scope.get("server")
        bound = _address_name(str(server[0])) if server else None
        if name is not None and (name in self._allowed or name == bound):
            await self.app(scope, receive, send)
            return
        shown = repr(offered) if offered else "missing"
        await _refuse(
            send,
            400,
            f"Host header {shown} is not a name of this console (served: "
            f"{', '.join(sorted(self._allowed))}). Open it by one of those, or add the name to "
            "BASTION_CONSOLE_ALLOWED_HOSTS if a proxy serves it under another.",
        )


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413, counting bytes as they arrive.

    A declared ``Content-Length`` over the cap is refused before a byte is read; a chunked body
    is read into memory up to the cap and refused the moment it passes it. A body within the
    cap is handed to the app as one message, so the app's own reader sees a whole body.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.strip().isdecimal():
                await _refuse(send, 400, f"Content-Length {declared!r} is not a number of bytes")
                return
            if int(declared) > self.max_bytes:
                await _refuse(send, 413, self._too_large(f"declares {int(declared)} bytes"))
                return
        chunks: list[bytes] = []
        size = 0
        ended: Message | None = None
        while True:
            message = await receive()
            if message["type"] != "http.request":
                ended = message  # the client left; the app learns it on its first receive
                break
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _refuse(send, 413, self._too_large(f"passed {self.max_bytes} bytes"))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        pending: list[Message] = [
            ended or {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        ]

        async def replay() -> Message:
            return pending.pop() if pending else await receive()

        await self.app(scope, replay, send)

    def _too_large(self, observed: str) -> str:
        return (
            f"request body too large: it {observed}, and the console reads at most "
            f"{self.max_bytes} bytes (its requests are small JSON objects)"
        )


class SecurityHeaders:
    """Add the CSP, ``X-Frame-Options: DENY``, ``Referrer-Policy: no-referrer`` and ``nosniff``
    to every HTTP answer that does not set its own, a failure's 500 included.

    A route that raises would otherwise be answered by Starlette's outermost error middleware,
    outside this one and without the headers; so an exception that reaches here before any
    answer began is logged (through the redacting log filter) and answered as a JSON 500 here.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def hardened(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", ()))
                present = {key.lower() for key, _ in headers}
                headers.extend(item for item in _HEADERS if item[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, hardened)
        except Exception:
            if started:  # half an answer is on the wire: nothing sound can follow it
                raise
            _log.exception("console route %s failed", scope.get("path", "?"))
            await _refuse(hardened, 500, _INTERNAL_ERROR)
