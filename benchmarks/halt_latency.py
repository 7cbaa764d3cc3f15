"""From a halt to an empty book: how long resting orders outlive the kill switch; prints JSON.

Issue #11's acceptance: with a 30 s loop interval on ``bastion exchange serve``, touching the
flag cancels resting orders at the exchange within 100 ms. The exchange runs as its own process
(``python -m bastion exchange serve``), a guarded run with a do-nothing agent runs here against
it over HTTP, and a second client on the same account places one resting order per trial and
watches the book. Each trial is timed from the trigger to the first look that finds the book
empty:

* ``file_flag``: ``touch data/kill_switch.flag``, as a person would (the run's flag watcher
  sees it and cancels);
* ``cli``: ``bastion kill`` run as a process with the exchange URL (kill cancels itself; the
  run's watcher races it): this includes the interpreter's start;
* ``fleet_flag``: the store's fleet halt raised from another connection to the store, as
  ``bastion kill --fleet`` on another host does (the run polls it every ``halt_poll_seconds``);
* the baseline, interleaved with both: the second client's own ``private/cancel_all``, the
  fastest the book can possibly empty.

Between trials the halt is resumed. The run steps every 30 s and a step takes milliseconds, so
nearly every trial lands while the loop waits between steps (``steps_during_trials`` says how
many steps ran meanwhile), where it used to look only every ``halt_poll_seconds``.

Usage: ``.venv/bin/python benchmarks/halt_latency.py [--trials N]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

from _support import free_port, spread
from bastion.agent import Decision
from bastion.agents.scripted import ScriptedAgent
from bastion.clock import WallClock
from bastion.config import load_settings
from bastion.exchange.deribit import DeribitClient
from bastion.guard.halt import Halt
from bastion.market import OrderRequest
from bastion.runner import Runner
from bastion.store import Store

INTERVAL_SECONDS = 30.0
LOOK_EVERY_SECONDS = 0.001


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {**spread(values, 2), "p50": round(statistics.median(values), 2), "p99": round(p99, 2)}


async def _wait_for_exchange(url: str) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(500):
            try:
                await http.get(f"{url}/api/v2/public/get_time")
                return
            except httpx.TransportError:
                await asyncio.sleep(0.02)
    raise SystemExit(f"the paper exchange at {url} did not start")


async def _rest_one(client: DeribitClient, price: float) -> None:
    request = OrderRequest("BTC-PERPETUAL", "buy", 10.0, order_type="limit", price=price)
    await client.place_order(request)


async def _until_empty(client: DeribitClient, t0: float) -> float:
    while await client.get_open_orders("BTC"):  # noqa: ASYNC110  the book is another process's
        await asyncio.sleep(LOOK_EVERY_SECONDS)
    return (time.perf_counter() - t0) * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
        serve = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "bastion", "exchange", "serve", "--port", str(port)),
            env={**env, "BASTION_DATA_DIR": str(Path(tmp) / "exchange")},
            stdout=asyncio.subprocess.DEVNULL,
        )
        try:
            await _wait_for_exchange(url)
            print(orjson.dumps(await _measure(Path(tmp), url, env, args.trials)).decode())
        finally:
            serve.terminate()
            await serve.wait()


async def _measure(tmp: Path, url: str, env: dict[str, str], trials: int) -> dict[str, Any]:
    data = tmp / "run"
    settings = load_settings(
        data_dir=data,
        exchange_url=url,
        loop_interval_seconds=INTERVAL_SECONDS,
        console_port=0,
    )
    runner = Runner(settings, clock=WallClock(), agent=ScriptedAgent(lambda obs, ctx: Decision(())))
    other = DeribitClient(base_url=url, clock=WallClock(), **_credentials(settings))
    halt = Halt(flag_path=settings.kill_switch_path, clock=WallClock())
    elsewhere = Store.open(settings.resolved_store_url)  # another host's connection
    operator = Halt(flag_path=tmp / "elsewhere.flag", clock=WallClock(), halts=elsewhere.halts)
    kill_env = {
        **env,
        "BASTION_DATA_DIR": str(data),
        "BASTION_EXCHANGE_URL": url,
        "BASTION_CONSOLE_PORT": "0",
    }
    stop = asyncio.Event()
    run = asyncio.create_task(runner.run(stop=stop))
    try:
        mark = (await other.get_ticker("BTC-PERPETUAL")).mark_price
        price = round(mark * 0.95 * 2) / 2  # rests: under the market, inside the 10 % band
        await asyncio.sleep(1.0)  # the first step is done; the run waits out its interval

        async def file_flag() -> Callable[[], Awaitable[object]]:
            settings.kill_switch_path.touch()
            return _nothing

        async def cli() -> Callable[[], Awaitable[object]]:
            kill = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "bastion", "kill", "--reason", "bench"),
                env=kill_env,
                stdout=asyncio.subprocess.DEVNULL,
            )
            return kill.wait  # before the resume: kill must have finished its own record

        async def baseline() -> Callable[[], Awaitable[object]]:
            await other.cancel_all()
            return _nothing

        async def fleet_flag() -> Callable[[], Awaitable[object]]:
            await operator.trip_fleet("bench", who="bench")

            async def lowered() -> None:  # the run lifts the halt it followed
                operator.resume_fleet(who="bench", why="next trial")
                while runner.halt.state() is not None:  # noqa: ASYNC110  another task's state
                    await asyncio.sleep(LOOK_EVERY_SECONDS)

            return lowered

        triggers: dict[str, Callable[[], Awaitable[Callable[[], Awaitable[object]]]]] = {
            "baseline_cancel_all_ms": baseline,
            "file_flag_ms": file_flag,
            "cli_ms": cli,
            "fleet_flag_ms": fleet_flag,
        }
        times: dict[str, list[float]] = {name: [] for name in triggers}
        for _ in range(trials):
            for name, trigger in triggers.items():
                await _rest_one(other, price)
                t0 = time.perf_counter()
                finish = await trigger()
                times[name].append(await _until_empty(other, t0))
                await finish()
                halt.resume(who="bench", why="next trial")
        steps = runner.loop.status.last_step
    finally:
        stop.set()
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
        await other.close()
        await runner.aclose()
        elsewhere.close()
    result: dict[str, Any] = {
        "settings": {
            "trials": trials,
            "loop_interval_seconds": INTERVAL_SECONDS,
            "halt_poll_seconds": settings.halt_poll_seconds,
            "look_every_ms": LOOK_EVERY_SECONDS * 1000,
            "exchange": "bastion exchange serve over loopback HTTP",
            "python": sys.version.split()[0],
        },
        "steps_during_trials": steps,
    }
    for name, values in times.items():
        result[name] = _percentiles(values)
    base = statistics.median(times["baseline_cancel_all_ms"])
    result["file_flag_ratio"] = round(statistics.median(times["file_flag_ms"]) / base, 2)
    result["cli_ratio"] = round(statistics.median(times["cli_ms"]) / base, 2)
    result["fleet_flag_ratio"] = round(statistics.median(times["fleet_flag_ms"]) / base, 2)
    result["file_flag_meets_goal"] = result["file_flag_ms"]["p99"] <= 100.0
    return result


async def _nothing() -> None:
    return None


def _credentials(settings: Any) -> dict[str, Any]:
    return {
        "client_id": settings.exchange_client_id,
        "client_secret": settings.exchange_client_secret,
    }


if __name__ == "__main__":
    asyncio.run(main())
