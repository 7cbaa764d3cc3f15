"""A scriptable news feed for the news tool: the far side, served over ASGI or a socket.

It answers ``GET /headlines`` with the headlines it holds, or fails the way a feed does (a
status, a body that is not the documented JSON, a hang), and counts the requests it got.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class NewsFeed:
    """The feed's state: what it says, how it fails, what it was asked."""

    headlines: list[dict[str, Any]] = field(default_factory=list)
    status: int | None = None
    malformed: bool = False
    hang_seconds: float = 0.0
    requests: list[dict[str, str]] = field(default_factory=list)

    def say(self, *titles: str, source: str = "wire") -> None:
        self.headlines = [{"title": t, "source": source, "published_ms": 0} for t in titles]

    async def _headlines(self, request: Request) -> Response:
        self.requests.append(dict(request.query_params))
        if self.hang_seconds:
            await asyncio.sleep(self.hang_seconds)
        if self.status is not None:
            return JSONResponse({"error": "feed down"}, status_code=self.status)
        if self.malformed:
            return Response(b'{"headlines": [{"title": ', media_type="application/json")
        return JSONResponse({"headlines": self.headlines})

    @property
    def app(self) -> Starlette:
        return Starlette(routes=[Route("/headlines", self._headlines)])
