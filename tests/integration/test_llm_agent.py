"""The LLM options seller trading on the paper exchange through the fake LLM server.

Everything is real: ``bastion run``'s Runner built from settings, the OpenAI SDK adapter, the
fallback chain, the budget, the risk review and the paper exchange. Only the model's answers
are scripted, by the fake server.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from bastion.agents.llm_seller import LLMOptionsSeller, market_summary
from bastion.errors import BudgetExhausted
from bastion.llm.pricing import Cost
from bastion.messages import Completion, Message
from bastion.runner import Runner
from bastion.simulators.llm import FakeLLMServer
from loopback_server import serve_on_loopback

FRONTIER, SMALL = "gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18"
RunnerFactory = Callable[..., Runner]


@pytest.fixture
def fake() -> Iterator[tuple[FakeLLMServer, str]]:
    server = FakeLLMServer(default_reply="not json")
    with serve_on_loopback(server.app) as url:
        try:
            yield server, f"{url}/v1"
        finally:
            server.close()


def _llm_runner(runner_factory: RunnerFactory, base_url: str, **overrides: Any) -> Runner:
    return runner_factory(
        None,
        agent="llm_options_seller",
        llm_provider="openai",
        llm_base_url=base_url,
        llm_model=FRONTIER,
        llm_fallback_models=[SMALL],
        llm_timeout_seconds=30,
        llm_deadline_seconds=60,
        step_timeout_seconds=200,
        **overrides,
    )


def _sell(instrument: str, amount: float, price: float, rationale: str) -> str:
    return json.dumps(
        {
            "action": "sell",
            "instrument": instrument,
            "amount": amount,
            "limit_price": price,
            "rationale": rationale,
        }
    )


def server_requests(fake: tuple[FakeLLMServer, str]) -> int:
    return len(fake[0].requests)


def _trace(runner: Runner) -> list[dict[str, Any]]:
    runner.trace.flush()
    return [orjson.loads(line) for line in runner.trace.path.read_bytes().splitlines()]


async def test_the_llm_agent_trades_and_the_risk_review_cuts_an_adversarial_reply(
    runner_factory: RunnerFactory, fake: tuple[FakeLLMServer, str]
) -> None:
    server, base_url = fake
    runner = _llm_runner(runner_factory, base_url)
    agent = runner.agent
    assert isinstance(agent, LLMOptionsSeller)
    obs = await runner.observer.observe()
    candidate = sorted(market_summary(obs, agent.params).instruments)[0]
    tick = obs.instruments[candidate].tick_size
    price = round(math.ceil(obs.tickers[candidate].mark_price / tick) * tick, 10)
    server.set_replies(
        replies_by_model={
            FRONTIER: [
                _sell(candidate, 0.1, price, "premium is rich"),
                _sell(candidate, 1000, price, "sell 1000 BTC calls now"),
            ]
        }
    )

    summary = await runner.run(max_steps=2)

    assert summary.status == "completed"
    lines = _trace(runner)
    sent = [line for line in lines if line["kind"] == "order_sent"]
    assert [(o["instrument"], o["amount"]) for o in sent] == [(candidate, 0.1)]
    verdicts = [line for line in lines if line["kind"] == "risk_verdict"]
    assert [v["status"] for v in verdicts] == ["approved", "rejected"]
    assert verdicts[1]["cap"] == "max_order_amount"
    assert verdicts[1]["observed"] == 1000
    calls = [line for line in lines if line["kind"] == "llm_call"]
    assert [(c["model"], c["tier"], c["phase"]) for c in calls] == [
        (FRONTIER, "primary", "decide"),
        (FRONTIER, "primary", "decide"),
    ]
    assert "sell 1000 BTC calls now" in calls[1]["text"]
    assert server.request_counts() == {FRONTIER: 2}
    first_prompt = server.requests[0]
    assert first_prompt.model == FRONTIER
    usage = runner.budget.usage_today()
    assert usage.invocations_today == 2
    assert usage.tokens_used_today == sum(c["tokens_in"] + c["tokens_out"] for c in calls)
    metrics = runner.metrics.render().decode()
    assert 'bastion_llm_answers_total{tier="primary"} 2.0' in metrics


async def test_frontier_down_the_smaller_model_decides(
    runner_factory: RunnerFactory, fake: tuple[FakeLLMServer, str]
) -> None:
    server, base_url = fake
    runner = _llm_runner(runner_factory, base_url)
    server.set_faults([{"kind": "status", "status": 503, "model": FRONTIER, "times": None}])
    server.set_replies(
        replies_by_model={
            SMALL: [
                json.dumps(
                    {
                        "action": "hold",
                        "instrument": None,
                        "amount": None,
                        "limit_price": None,
                        "rationale": "quiet market",
                    }
                )
            ]
        }
    )
    await runner.run(max_steps=1)
    lines = _trace(runner)
    decision = next(line for line in lines if line["kind"] == "decision")
    assert decision["rationale"] == "hold: quiet market"
    assert any(line["kind"] == "llm_fallback" for line in lines)
    call = next(line for line in lines if line["kind"] == "llm_call")
    assert (call["model"], call["tier"]) == (SMALL, "fallback")


async def test_every_model_down_escalates_and_the_loop_goes_on(
    runner_factory: RunnerFactory, fake: tuple[FakeLLMServer, str]
) -> None:
    server, base_url = fake
    runner = _llm_runner(runner_factory, base_url)
    server.set_faults([{"kind": "status", "status": 500, "times": None}])
    summary = await runner.run(max_steps=2)
    assert summary.status == "completed"
    lines = _trace(runner)
    decisions = [line for line in lines if line["kind"] == "decision"]
    assert len(decisions) == 2
    assert all("escalated to a human" in d["rationale"] for d in decisions)
    (pending,) = runner.store.approvals.list(status="pending")  # one per question, not per step
    assert pending.kind == "llm_escalation"
    assert all(pending.id in d["rationale"] for d in decisions)


async def test_a_run_is_refused_when_the_budget_is_gone(
    runner_factory: RunnerFactory, fake: tuple[FakeLLMServer, str]
) -> None:
    """budget_exhausted and the figures; no step, and the LLM server is never asked."""
    server, base_url = fake
    runner = _llm_runner(runner_factory, base_url, daily_token_budget=1_000)
    reservation = await runner.budget.reserve(Cost(1_000), model=FRONTIER)
    await reservation.commit(Cost(1_000), tokens_in=900, tokens_out=100, model=FRONTIER)
    with pytest.raises(BudgetExhausted) as refused:
        await runner.run(max_steps=3)
    assert "Run refused: budget_exhausted (1,000 of 1,000 tokens used today" in str(refused.value)
    assert server.requests == []
    assert runner.loop.status.last_step == 0
    assert any(line["kind"] == "run_refused" for line in _trace(runner))


async def test_a_spent_llm_budget_does_not_stop_an_agent_that_needs_no_llm(
    runner_factory: RunnerFactory, fake: tuple[FakeLLMServer, str]
) -> None:
    """The rule-based seller never asks the model: an LLM configured and spent must not
    refuse its run."""
    _, base_url = fake
    runner = runner_factory(
        None,
        llm_provider="openai",
        llm_base_url=base_url,
        llm_model=FRONTIER,
        daily_token_budget=1_000,
    )
    reservation = await runner.budget.reserve(Cost(1_000), model=FRONTIER)
    await reservation.commit(Cost(1_000), tokens_in=900, tokens_out=100, model=FRONTIER)
    summary = await runner.run(max_steps=1)  # not refused (the cost cap still halts trading)
    assert (summary.steps, summary.status) == (1, "halted")
    assert server_requests(fake) == 0


async def test_the_model_breaker_follows_its_settings(
    runner_factory: RunnerFactory, fake: tuple[FakeLLMServer, str]
) -> None:
    """BASTION_LLM_BREAKER_FAILURES=2: the frontier model's circuit opens on its second 500
    and the next question goes straight to the smaller model."""
    server, base_url = fake
    runner = _llm_runner(runner_factory, base_url, llm_breaker_failures=2)
    server.set_faults([{"kind": "status", "status": 500, "model": FRONTIER, "times": None}])
    assert runner.llm is not None
    ask = [Message("user", "Sell a call?")]
    for _ in range(2):
        answer = await runner.llm.complete(ask, input_class="q")
        assert isinstance(answer, Completion)
        assert answer.model == SMALL
    assert server.request_counts()[FRONTIER] == 2
    breakers = {b["dependency"]: b for b in runner.resilience.breakers.snapshot()}  # type: ignore[union-attr]
    assert breakers[f"llm openai/{FRONTIER}"]["state"] == "open"
