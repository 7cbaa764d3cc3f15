"""Per-call overhead of ``Resilience.call`` around a no-op coroutine; prints JSON.

Three ways to await the same no-op coroutine, each timed over ``--calls`` sequential calls in one
event loop, in interleaved rounds (bare, bastion, pybreaker_tenacity, bare, bastion, ...) so all
three see the same drift of the machine; every figure is min/median/max over ``--repeats``
rounds, and the ratios are taken within a round before they are summarised:

* ``bare``: ``await noop()``.
* ``bastion``: ``await resilience.call("dep", noop, layer="exchange", timeout=5)`` with a
  breaker, the retrier, Prometheus metrics and the (no-op) OpenTelemetry span all in the path.
* ``pybreaker_tenacity``: the usual stack assembled by hand, ``tenacity.AsyncRetrying`` (3
  attempts, exponential jitter) around ``pybreaker.CircuitBreaker.calling()`` around
  ``asyncio.timeout``, with no metrics or span. pybreaker's own ``call_async`` needs Tornado, so
  its documented context manager is the asyncio-compatible way to use it.

``overhead_ns`` subtracts the bare cost; ``ratio_vs_bare`` is the guarded cost over the bare
cost; ``overhead_ratio_vs_pybreaker_tenacity`` compares the two overheads (below 1: Bastion adds
less than that stack). The breaker, timeout and metrics give Bastion more work per call than the
comparison stack; it stays cheaper because the success path never builds a tenacity retry
object: tenacity takes over only after a first failure, and the (no-op) span is not made
current unless an SDK records it. About half of what remains is ``asyncio.timeout`` itself (a
timer scheduled and cancelled per call), which both stacks pay.

Usage: ``.venv/bin/python benchmarks/call_overhead.py [--calls N] [--repeats N]``
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable

import orjson
import pybreaker
from tenacity import AsyncRetrying, stop_after_attempt, wait_random_exponential

from _support import spread
from bastion.clock import WallClock
from bastion.resilience import Resilience
from bastion.telemetry.metrics import Metrics


async def noop() -> int:
    return 1


async def _time(fn: Callable[[], Awaitable[int]], calls: int) -> float:
    """ns per call of ``fn`` over ``calls`` sequential calls."""
    started = time.perf_counter_ns()
    for _ in range(calls):
        await fn()
    return (time.perf_counter_ns() - started) / calls


async def main(calls: int, repeats: int) -> dict[str, object]:
    resilience = Resilience(clock=WallClock(), metrics=Metrics())
    breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=15)

    async def bastion() -> int:
        return await resilience.call("dep", noop, layer="exchange", timeout=5)

    async def pybreaker_tenacity() -> int:
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(3),
            wait=wait_random_exponential(multiplier=0.5, max=30),
            reraise=True,
        ):
            with attempt, breaker.calling():
                async with asyncio.timeout(5):
                    return await noop()
        raise AssertionError("unreachable")

    for fn in (noop, bastion, pybreaker_tenacity):  # warm caches and label children
        await _time(fn, 1000)
    bare: list[float] = []
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(repeats):
        bare.append(await _time(noop, calls))
        ours.append(await _time(bastion, calls))
        theirs.append(await _time(pybreaker_tenacity, calls))
    rounds = list(zip(bare, ours, theirs, strict=True))
    return {
        "benchmark": "call_overhead",
        "settings": {
            "calls_per_round": calls,
            "repeats": repeats,
            "python": sys.version.split()[0],
            "timeout_seconds": 5,
            "metrics": "Metrics() (Prometheus)",
            "tracing": "OpenTelemetry API, no SDK (no-op span)",
        },
        "bare_ns_per_call": spread(bare),
        "bastion_ns_per_call": spread(ours),
        "pybreaker_tenacity_ns_per_call": spread(theirs),
        "bastion_overhead_ns": spread([o - b for b, o, _ in rounds]),
        "pybreaker_tenacity_overhead_ns": spread([t - b for b, _, t in rounds]),
        "bastion_ratio_vs_bare": spread([o / b for b, o, _ in rounds], 2),
        "pybreaker_tenacity_ratio_vs_bare": spread([t / b for b, _, t in rounds], 2),
        "overhead_ratio_vs_pybreaker_tenacity": spread(
            [(o - b) / (t - b) for b, o, t in rounds], 3
        ),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000, help="calls per round")
    parser.add_argument("--repeats", type=int, default=7, help="rounds of each side")
    args = parser.parse_args()
    result = asyncio.run(main(args.calls, args.repeats))
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
