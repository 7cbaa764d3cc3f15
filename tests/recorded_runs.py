"""A short real run to look at: the LLM seller on the fake OpenAI server, the embedded paper
exchange, the real loop, trace and journal; shared by the console's API and browser tests.

The model's first answer sells the seller's first candidate at its mark with a hostile
rationale (markup a console must show as text); every later answer holds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.agents.llm_seller import LLMSellerParams, market_summary
from bastion.clock import SimClock
from bastion.config import Settings, load_settings
from bastion.runner import Runner
from bastion.runtime.equity_sink import EquitySink
from bastion.simulators.llm import FakeLLMServer
from loopback_server import serve_on_loopback

MODEL = "gpt-4o-2024-08-06"
HOSTILE = '<img src=x onerror="window.pwned=1"><b>sell</b>'
"""Markup in the model's rationale: the console must print it, never parse it."""


@dataclass(frozen=True)
class RecordedRun:
    """What a test needs of the finished run: its settings, trace, equity series, first order."""

    settings: Settings
    trace: Path
    equity: EquitySink
    label: str
    run_id: str
    steps: int
    status: dict[str, Any]
    """The loop's status as the run ended (``/api/status``'s live part)."""


def run_settings(data_dir: Path, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "data_dir": data_dir,
        "exchange_client_secret": "paper-secret-console-9f3a",
        "console_port": 0,
        "loop_interval_seconds": 600.0,
        "agent": "llm_options_seller",
        "llm_provider": "openai",
        "llm_api_key": "sk-test-console",
        "llm_model": MODEL,
        "llm_timeout_seconds": 5,
        "llm_deadline_seconds": 10,
        "llm_cache_ttl_seconds": 0,
        "step_timeout_seconds": 60,
    }
    return load_settings(**{**base, **overrides})


def _reply(action: str, instrument: str | None = None, price: float | None = None) -> str:
    trade = action != "hold"
    return json.dumps(
        {
            "action": action,
            "instrument": instrument,
            "amount": 0.1 if trade else None,
            "limit_price": price,
            "rationale": HOSTILE if trade else "nothing to do",
        }
    )


async def record_llm_sale(data_dir: Path, steps: int = 6) -> RecordedRun:
    """Run ``steps`` steps; the first sells one option through the model's answer."""
    server = FakeLLMServer(default_reply=_reply("hold"))
    try:
        with serve_on_loopback(server.app) as url:
            settings = run_settings(data_dir, llm_base_url=f"{url}/v1")
            probe = Runner(settings, clock=SimClock(start=1_800_000_000), console=False)
            try:
                obs = await probe.observer.observe()
            finally:
                await probe.aclose()
            candidate = sorted(market_summary(obs, LLMSellerParams()).instruments)[0]
            bid = obs.tickers[candidate].best_bid_price or obs.tickers[candidate].mark_price
            server.set_replies([_reply("sell", candidate, bid)])  # at the bid: it fills
            runner = Runner(settings, clock=SimClock(start=1_800_000_000), console=False)
            try:
                await runner.run(max_steps=steps)
                runner.trace.flush()
            finally:
                await runner.aclose()
    finally:
        server.close()
    return RecordedRun(
        settings=settings,
        trace=runner.trace.path,
        equity=runner.equity,
        label=f"{runner.run_id}-1-0",
        run_id=runner.run_id,
        steps=steps,
        status=runner.loop.status.to_dict(),
    )
