"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A loopback port free at the time of asking."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
