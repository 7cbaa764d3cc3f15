"""How a ``hang`` fault holds a request without holding the server hostage.

A hang must outlast any client timeout yet never outlive the test or the server: it ends when
the client disconnects, when the faults are cleared, or when the server shuts down. Tests arm
and clear faults from their own thread while uvicorn serves in another, so release is
thread-safe across event loops. Both simulators hang this way, so a hang ends alike on either.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

import anyio
from starlette.types import Receive

__all__ = ["Hangs"]


class Hangs:
    """Requests held by ``hang`` faults, and the switch that lets them go.

    A hang waits on a future of its own event loop (uvicorn's thread or a test's), settled
    thread-safely, so a test thread or the shutdown can release hangs served in another loop.
    After :meth:`close` a new hang drops at once: a server shutting down waits for every open
    request, so none may start waiting forever.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = set()
        self._closed = False

    def __len__(self) -> int:
        with self._lock:
            return len(self._waiting)

    def release(self) -> None:
        """End every hang waiting now; safe to call from any thread."""
        with self._lock:
            waiting = list(self._waiting)
        for loop, released in waiting:
            with contextlib.suppress(RuntimeError):  # a closed loop has no one waiting any more
                loop.call_soon_threadsafe(_settle, released)

    def close(self) -> None:
        """Release every hang, and end any later one at once."""
        with self._lock:
            self._closed = True
        self.release()

    async def wait(self, receive: Receive) -> bool:
        """Wait until the client disconnects (True) or the hang is released (False).

        Cancellation (a client timeout under an in-process transport) propagates. The watch for
        the disconnect runs in a task group, so nothing outlives the request.
        """
        loop = asyncio.get_running_loop()
        released: asyncio.Future[None] = loop.create_future()
        entry = (loop, released)
        disconnected = False
        with self._lock:
            if self._closed:
                return False
            self._waiting.add(entry)
        try:
            async with anyio.create_task_group() as group:

                async def watch_disconnect() -> None:
                    nonlocal disconnected
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    disconnected = True
                    group.cancel_scope.cancel()

                group.start_soon(watch_disconnect)
                await released
                group.cancel_scope.cancel()
        finally:
            with self._lock:
                self._waiting.discard(entry)
        return disconnected


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
