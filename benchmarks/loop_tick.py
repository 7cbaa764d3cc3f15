"""Loop ticks per second and paper-exchange orders per second; prints JSON.

Each figure and its baseline run in alternating rounds in one process (baseline, measured,
baseline, measured, ...), ``--repeats`` of each; rates and the per-pair ratio are reported as
min/median/max, with the settings they ran under.

1. Loop ticks per second with a no-op agent against the in-process paper exchange (SimClock,
   SQLite store and NDJSON trace in a scratch directory: the real per-step I/O). The baseline,
   in the same process, is the rate of bare ``public/get_time`` round trips through the same
   in-process transport, so ``tick_cost_in_requests`` says what one guarded step costs in units
   of the cheapest request.
2. Paper-exchange orders per second over loopback HTTP (uvicorn in a thread, the Deribit client
   in this one), sequential, each order resting. The baseline is ``public/get_time`` over the
   same connection.

Usage: ``.venv/bin/python benchmarks/loop_tick.py [--ticks N] [--orders N] [--repeats N]``
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from pydantic import SecretStr

from _support import free_port, interleaved, spread, sqlite_settings
from bastion.agent import Decision
from bastion.agents.scripted import ScriptedAgent
from bastion.clock import SimClock, WallClock
from bastion.config import load_settings
from bastion.exchange.deribit import DeribitClient
from bastion.market import OrderRequest
from bastion.runner import Runner
from bastion.simulators.paper import create_app


async def _rate(n: int, op: Callable[[], Awaitable[Any]]) -> float:
    for _ in range(min(20, n)):  # warm-up
        await op()
    t0 = time.perf_counter()
    for _ in range(n):
        await op()
    return n / (time.perf_counter() - t0)


async def loop_ticks(n: int, repeats: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(data_dir=Path(tmp), loop_interval_seconds=0.001)
        agent = ScriptedAgent(lambda obs, ctx: Decision())
        runner = Runner(settings, clock=SimClock(), agent=agent, console=False)
        try:
            store = sqlite_settings(runner.store.engine)
            await _rate(20, runner.exchange.get_time)  # warm both paths before the first round
            await _rate(20, runner.loop.step)
            steps = 0

            async def ticks() -> float:
                nonlocal steps
                steps += n + min(20, n)
                return await _rate(n, runner.loop.step)

            calls_before = _request_count(runner)
            baseline, tick = await interleaved(
                repeats, lambda: _rate(n, runner.exchange.get_time), ticks
            )
            gets = repeats * (n + min(20, n))
            requests_per_tick = (_request_count(runner) - calls_before - gets) / steps
        finally:
            await runner.aclose()
    return {
        "ticks_per_second": spread(tick),
        "baseline_get_time_per_second": spread(baseline),
        "tick_cost_in_requests": spread([b / t for b, t in zip(baseline, tick, strict=True)], 2),
        "exchange_requests_per_tick": round(requests_per_tick, 2),
        "settings": {
            "ticks_per_round": n,
            "repeats": repeats,
            "clock": "SimClock",
            "store": "sqlite",
            **store,
            "trace": "ndjson",
        },
    }


def _request_count(runner: Runner) -> float:
    total = 0.0
    for metric in runner.metrics.registry.collect():
        if metric.name == "bastion_external_calls":
            total += sum(s.value for s in metric.samples if s.name.endswith("_total"))
    return total


def _serve_paper(port: int) -> tuple[uvicorn.Server, threading.Thread]:
    """The paper exchange on loopback in a thread of its own, as `bastion exchange serve`."""
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(clock=WallClock(), seed=1),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    return server, thread


async def loopback_orders(n: int, repeats: int) -> dict[str, Any]:
    port = free_port()
    server, thread = _serve_paper(port)
    client = DeribitClient(
        base_url=f"http://127.0.0.1:{port}",
        client_id="bench",
        client_secret=SecretStr("bench-secret"),
        clock=WallClock(),
    )
    try:
        mark = (await client.get_ticker("BTC-PERPETUAL")).mark_price
        bid_far_below = float(round(mark * 0.95))  # rests: inside the price band, below ask

        async def place() -> Any:
            return await client.place_order(
                OrderRequest("BTC-PERPETUAL", "buy", 10.0, price=bid_far_below)
            )

        await _rate(20, client.get_time)  # warm the connection and both paths
        await _rate(20, place)
        baseline, orders = await interleaved(
            repeats, lambda: _rate(n, client.get_time), lambda: _rate(n, place)
        )
        await client.cancel_all()
    finally:
        await client.close()
        server.should_exit = True
        thread.join(timeout=10)
    return {
        "orders_per_second": spread(orders),
        "baseline_get_time_per_second": spread(baseline),
        "order_cost_in_requests": spread([b / o for b, o in zip(baseline, orders, strict=True)], 2),
        "settings": {
            "orders_per_round": n,
            "repeats": repeats,
            "transport": "HTTP/1.1 over loopback, one connection",
            "server": "uvicorn in a thread of this process",
        },
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=200, help="ticks per round")
    parser.add_argument("--orders", type=int, default=200, help="orders per round")
    parser.add_argument("--repeats", type=int, default=5, help="rounds of each side")
    args = parser.parse_args()
    result = {
        "python": sys.version.split()[0],
        "loop_tick_in_process": await loop_ticks(args.ticks, args.repeats),
        "paper_orders_loopback_http": await loopback_orders(args.orders, args.repeats),
    }
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    asyncio.run(main())
