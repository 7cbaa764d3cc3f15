"""How a ``hang`` fault holds a request without holding the server hostage.

A hang must outlast any client timeout yet never outlive the test or the server: it ends when
the client disconnects, when the faults are cleared, or when the server shuts down. Tests arm
and clear faults from their own thread while uvicorn serves in another, so release is
thread-safe across event loops. Both simulators hang this way, so a hang ends alike on either.

A hang may carry a key (the id of the fault that holds it), so disarming one fault lets go of
its own requests and leaves another fault's hangs in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

import anyio
from starlette.types import Receive

__all__ = ["Hangs"]

_Waiting = tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]", int | None]
"""A held request: the loop it waits in, the future that releases it, and its key."""


class Hangs:
    """Requests held by ``hang`` faults, and the switch that lets them go.

    A hang waits on a future of its own event loop (uvicorn's thread or a test's), settled
    thread-safely, so a test thread or the shutdown can release hangs served in another loop.
    After :meth:`close` a new hang drops at once: a server shutting down waits for every open
    request, so none may start waiting forever.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: set[_Waiting] = set()
        self._closed = False

    def __len__(self) -> int:
        with self._lock:
            return len(self._waiting)

    def release(self, key: int | None = None) -> None:
        """End every hang waiting now (only those held under ``key``, if given); thread-safe."""
        with self._lock:
            waiting = [entry for entry in self._waiting if key is None or entry[2] == key]
        for loop, released, _ in waiting:
            with contextlib.suppress(RuntimeError):  # a closed loop has no one waiting any more
                loop.call_soon_threadsafe(_settle, released)

    def close(self) -> None:
        """Release every hang, and end any later one at once."""
        with self._lock:
            self._closed = True
        self.release()

    async def wait(self, receive: Receive, key: int | None = None) -> bool:
        """Wait until the client disconnects (True) or the hang is released (False).

        ``key`` (a fault's id) lets :meth:`release` end this hang with the others of that key.

        Cancellation (a client timeout under an in-process transport) propagates. The watch for
        the disconnect runs in a task group, so nothing outlives the request.
        """
        loop = asyncio.get_running_loop()
        released: asyncio.Future[None] = loop.create_future()
        entry = (loop, released, key)
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
