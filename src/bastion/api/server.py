"""The console's HTTP server: uvicorn on a socket we bind ourselves, started beside the loop.

Binding first turns a busy port into a :class:`~bastion.errors.ConfigError` with the fix instead
of uvicorn's exit, and lets the caller learn the real port when it asked for 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from bastion.errors import ConfigError

__all__ = ["ConsoleServer"]


class _QuietServer(uvicorn.Server):
    """uvicorn without signal handling of its own.

    uvicorn's ``serve`` captures SIGINT/SIGTERM and re-raises them once it has stopped, which
    would end the process in the middle of a step. The runner's owner (``bastion run``) handles
    those signals by asking the loop to stop after the current step instead.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    """Bind the console socket ourselves so a busy port is a clear error, not an exit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"console_port {port} on {host} cannot be used ({exc.strerror}). Fix: stop the "
            "other process or set BASTION_CONSOLE_PORT to a free port (0 picks one)."
        ) from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


class ConsoleServer:
    """The console app served on ``host:port`` until :meth:`stop`."""

    def __init__(self, app: FastAPI, *, host: str, port: int) -> None:
        self._sock = _bind(host, port)
        self.host, self.port = self._sock.getsockname()[:2]
        # log_config=None: uvicorn's loggers propagate to the process's handler, which redacts
        # secrets (telemetry/logs.py), instead of its own stderr handler, which would print the
        # traceback of a failing route (and any secret its message quotes) as it is.
        config = uvicorn.Config(
            app, log_level="warning", lifespan="off", access_log=False, log_config=None
        )
        _through_the_process_handler()
        self._server = _QuietServer(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def base_url(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}"

    def start(self) -> None:
        """Serve in a task of the running event loop."""
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]))

    async def stop(self) -> None:
        """Ask uvicorn to finish its requests and wait for it; safe to call twice."""
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._sock.close()


def _through_the_process_handler() -> None:
    """Undo what another uvicorn in this process may have configured (its default log config
    gives the ``uvicorn`` logger its own handler and stops propagation), so this server's
    errors reach the redacting handler too."""
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
