"""What the guarded chain adds to one LLM call, against the bare SDK adapter in the same process.

Both sides call the fake OpenAI-compatible server on a loopback port through the real OpenAI
adapter (official SDK). The baseline calls ``OpenAIChat.complete`` directly; the guarded side
calls ``FallbackChain.complete``: price the estimate, reserve it on a SQLite budget (one
transaction), run the call through ``resilience.call`` (breaker, timeout, metrics, span),
price the usage and commit it to the ledger, record the ``llm_call`` event. Prints JSON.

A real model answers in hundreds of milliseconds to seconds, so what matters is the added
milliseconds per call, not the ratio against a loopback server that answers at once.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable

import orjson
import uvicorn

from _support import free_port, spread, sqlite_settings
from bastion.clock import WallClock
from bastion.events import Journal
from bastion.guard.budget import Budget, BudgetLimits
from bastion.llm.chain import FallbackChain, Route
from bastion.llm.openai import OpenAIChat
from bastion.llm.pricing import PriceBook
from bastion.messages import Message
from bastion.resilience import Resilience
from bastion.simulators.llm import FakeLLMServer
from bastion.store import Store
from bastion.telemetry.metrics import Metrics

CALLS = 200
ROUNDS = 5
MODEL = "gpt-4o-mini"
ASK = [Message("system", "You trade options."), Message("user", "BTC 100000. Sell a call?")]


async def _rate(fn: Callable[[], Awaitable[object]]) -> float:
    """Seconds per call over CALLS sequential calls."""
    started = time.perf_counter()
    for _ in range(CALLS):
        await fn()
    return (time.perf_counter() - started) / CALLS


def _serve_fake(port: int) -> tuple[uvicorn.Server, threading.Thread]:
    """The fake server in a thread of its own, as a provider would be, off the measured loop."""
    fake = FakeLLMServer(default_reply='{"action": "hold"}')
    server = uvicorn.Server(
        uvicorn.Config(fake.app, port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    return server, thread


async def main(server_port: int) -> dict[str, object]:
    port = server_port
    adapter = OpenAIChat(base_url=f"http://127.0.0.1:{port}/v1")
    with tempfile.TemporaryDirectory() as tmp, Store.open(f"sqlite:///{tmp}/b.db") as store:
        clock = WallClock()
        metrics = Metrics()
        chain_budget = Budget(store, clock=clock, agent="bench", limits=BudgetLimits())
        chain = FallbackChain(
            [Route(adapter, MODEL)],
            resilience=Resilience(clock=clock, metrics=metrics),
            prices=PriceBook(),
            clock=clock,
            budget=chain_budget,
            metrics=metrics,
            journal=Journal(run_id="bench"),
            max_tokens=64,
        )

        async def bare() -> object:
            return await adapter.complete(ASK, model=MODEL, max_tokens=64, timeout=10)

        async def guarded() -> object:
            return await chain.complete(ASK, input_class="bench")

        await _rate(bare)  # warm both paths: connection pool, SQLite file, imports
        await _rate(guarded)
        bare_s: list[float] = []
        guarded_s: list[float] = []
        for _ in range(ROUNDS):  # interleaved: both sides see the same drift of the machine
            bare_s.append(await _rate(bare))
            guarded_s.append(await _rate(guarded))
        invocations = chain_budget.usage_today().invocations_today
        store_settings = sqlite_settings(store.engine)
    await adapter.aclose()
    pairs = list(zip(bare_s, guarded_s, strict=True))
    return {
        "settings": {
            "calls_per_round": CALLS,
            "rounds": ROUNDS,
            "store": "sqlite",
            **store_settings,
            "server": "FakeLLMServer on loopback, uvicorn in a thread",
        },
        "bare_adapter_ms_per_call": spread([b * 1000 for b in bare_s], 3),
        "guarded_chain_ms_per_call": spread([g * 1000 for g in guarded_s], 3),
        "added_ms_per_call": spread([(g - b) * 1000 for b, g in pairs], 3),
        "ratio": spread([g / b for b, g in pairs], 2),
        "ledger_rows": invocations,
    }


if __name__ == "__main__":
    fake_port = free_port()
    fake_server, fake_thread = _serve_fake(fake_port)
    try:
        result = asyncio.run(main(fake_port))
    finally:
        fake_server.should_exit = True
        fake_thread.join(timeout=10)
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
