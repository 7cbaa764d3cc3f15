"""Serve an ASGI app (the paper exchange) with uvicorn on a free loopback port in a thread.

Shared by every test that needs a real socket: ccxt conformance, WebSocket sessions, dropped
connections. The server stops cleanly at the end of the block, as filterwarnings=error demands.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp


@contextmanager
def serve_on_loopback(app: ASGIApp, *, log_level: str = "warning") -> Iterator[str]:
    """Yield ``http://127.0.0.1:<port>`` while ``app`` is served there (HTTP and WebSocket)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level=log_level, lifespan="off", access_log=False, ws="websockets-sansio"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            sock.close()
            raise RuntimeError("uvicorn could not start")
        time.sleep(0.005)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        assert not thread.is_alive(), "uvicorn did not stop"
