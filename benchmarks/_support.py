"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import socket
import statistics
from collections.abc import Awaitable, Callable
from typing import Any

_SYNCHRONOUS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def free_port() -> int:
    """A loopback port free at the time of asking."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def spread(values: list[float], digits: int = 1) -> dict[str, float]:
    """``{"min", "median", "max"}`` of repeated measurements, rounded to ``digits``."""
    return {
        "min": round(min(values), digits),
        "median": round(statistics.median(values), digits),
        "max": round(max(values), digits),
    }


async def interleaved(
    rounds: int, a: Callable[[], Awaitable[float]], b: Callable[[], Awaitable[float]]
) -> tuple[list[float], list[float]]:
    """Run ``a`` and ``b`` in alternating rounds (A, B, A, B, ...); each list of their results.

    Alternating puts both sides under the same drift of a shared machine, so the ratio of a pair
    holds up where two blocks measured one after the other would not.
    """
    first: list[float] = []
    second: list[float] = []
    for _ in range(rounds):
        first.append(await a())
        second.append(await b())
    return first, second


def sqlite_settings(engine: Any) -> dict[str, str]:
    """journal_mode and synchronous of a SQLite engine's connections, as the store set them."""
    with engine.connect() as conn:
        journal = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        synchronous = conn.exec_driver_sql("PRAGMA synchronous").scalar()
    return {
        "journal_mode": str(journal),
        "synchronous": _SYNCHRONOUS.get(int(synchronous or 0), str(synchronous)),
    }
