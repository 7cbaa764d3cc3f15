"""End-to-end fixtures: real processes on loopback ports."""

from __future__ import annotations

import socket

import pytest


@pytest.fixture
def free_port() -> int:
    """A loopback port free at the time of asking (the process under test binds it next)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
