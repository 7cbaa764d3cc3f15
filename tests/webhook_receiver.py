"""A webhook receiver for the alert notifier: records each body, fails on demand, or hangs.

Served on a real loopback socket (:func:`loopback_server.serve_on_loopback`), so the notifier's
requests cross httpx, a TCP connection and uvicorn like a Slack or Alertmanager-style receiver.
It answers ``POST <any path>``; ``fail`` answers that many requests with ``fail_status`` first,
``hang`` holds every request open until it is cleared (checked every few milliseconds, so the
server can always stop).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class Receiver:
    """What the far side got and how it answers."""

    fail: int = 0
    fail_status: int = 503
    hang: bool = False
    requests: int = 0
    hanging: int = 0
    """Requests held open right now."""
    bodies: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    async def _receive(self, request: Request) -> Response:
        self.requests += 1
        self.paths.append(request.url.path)
        body = await request.body()
        if self.hang:
            self.hanging += 1
            try:
                while self.hang:  # noqa: ASYNC110  cleared from the test's thread
                    await asyncio.sleep(0.005)
            finally:
                self.hanging -= 1
        if self.fail > 0:
            self.fail -= 1
            return JSONResponse({"error": "receiver down"}, status_code=self.fail_status)
        self.bodies.append(orjson.loads(body))
        return Response(b"ok", media_type="text/plain")

    @property
    def alerts(self) -> list[dict[str, Any]]:
        """Every alert of every generic body received, in order."""
        return [alert for body in self.bodies for alert in body.get("alerts", [])]

    @property
    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self._receive, methods=["POST"])])
