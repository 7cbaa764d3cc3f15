"""The fallback chain: admission, tiers, cache TTL, escalation, ledger, breakers, records.

The models are :class:`ScriptedLLM` s (the real adapters against the fake server are in
tests/integration/test_llm_fake_server.py); budget, store, approvals, breakers and metrics are
the real ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bastion.clock import SimClock
from bastion.errors import BudgetExhausted, ErrorCode, LLMError
from bastion.events import Event, EventKind, Journal
from bastion.guard.approvals import Approvals
from bastion.guard.budget import Budget, BudgetLimits
from bastion.llm.chain import FallbackChain, Route
from bastion.llm.pricing import Price, PriceBook
from bastion.llm.scripted import ScriptedLLM
from bastion.messages import (
    Completion,
    Escalated,
    JsonSchema,
    Message,
    Usage,
    estimate_input_tokens,
)
from bastion.resilience import Resilience, RetrySettings
from bastion.store import Store
from bastion.telemetry.metrics import Metrics
from bastion.trace.record import TraceWriter

ASK = [Message("system", "You trade."), Message("user", "BTC at 100000. Sell a call?")]
CLASS = "seller.decide"
PRICES = PriceBook({"big": Price.of(10, 30), "small": Price.of(1, 3)})


def _server_error(model: str) -> LLMError:
    return LLMError(
        f"llm scripted/{model}: SERVER (HTTP 500)",
        code=ErrorCode.SERVER,
        dependency=f"llm scripted/{model}",
        http_status=500,
    )


@dataclass
class Rig:
    store: Store
    clock: SimClock
    metrics: Metrics
    events: list[Event]
    budget: Budget
    approvals: Approvals
    resilience: Resilience

    def chain(self, *routes: Route, cache_ttl: float = 900.0) -> FallbackChain:
        journal = Journal(run_id="r1")
        journal.subscribe(self.events.append)
        return FallbackChain(
            routes,
            resilience=self.resilience,
            prices=PRICES,
            clock=self.clock,
            budget=self.budget,
            escalations=self.approvals,
            timeout=5.0,
            max_tokens=100,
            cache_ttl=cache_ttl,
            metrics=self.metrics,
            journal=journal,
            run_id="r1",
        )

    def kinds(self) -> list[EventKind]:
        return [e.kind for e in self.events]

    def sample(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    clock = SimClock()
    metrics = Metrics()
    with Store.open(f"sqlite:///{tmp_path}/chain.db") as store:
        yield Rig(
            store=store,
            clock=clock,
            metrics=metrics,
            events=[],
            budget=Budget(
                store,
                clock=clock,
                agent="seller",
                limits=BudgetLimits(daily_tokens=10_000),
                metrics=metrics,
            ),
            approvals=Approvals(store, clock=clock, agent="seller"),
            resilience=Resilience(
                clock=clock, metrics=metrics, retry=RetrySettings(base=0.01, cap=0.05, seed=1)
            ),
        )


async def test_the_primary_answer_is_priced_committed_and_recorded(rig: Rig) -> None:
    """Actual usage is priced at the answering model's rate and lands in ledger and metrics."""
    big = ScriptedLLM(["sell"])
    answer = await rig.chain(Route(big, "big")).complete(ASK, input_class=CLASS, phase="decide")
    assert isinstance(answer, Completion)
    assert (answer.text, answer.tier, answer.model) == ("sell", "primary", "big")
    tokens_in, tokens_out = answer.usage.input_tokens, answer.usage.output_tokens
    assert answer.usd == pytest.approx((tokens_in * 10 + tokens_out * 30) / 1e6)
    usage = rig.budget.usage_today()
    assert usage.tokens_used_today == tokens_in + tokens_out
    assert usage.by_model["big"].invocations == 1
    assert rig.sample("bastion_llm_tokens_total", model="big", type="input") == tokens_in
    assert rig.sample("bastion_llm_answers_total", tier="primary") == 1
    assert rig.sample("bastion_budget_remaining", scope="daily", unit="tokens") == (
        10_000 - tokens_in - tokens_out
    )
    (call,) = [e for e in rig.events if e.kind is EventKind.LLM_CALL]
    assert call.payload["text"] == "sell"
    assert call.payload["requested_model"] == "big"
    assert call.payload["phase"] == "decide"
    assert call.payload["model_swapped"] is False
    assert big.requests[0].max_tokens == 100


async def test_admission_reserves_input_estimate_plus_max_tokens(rig: Rig) -> None:
    """A question the budget cannot cover is refused before any model is asked."""
    rig.budget.limits = BudgetLimits(daily_tokens=120)  # the estimate alone is > 120
    big = ScriptedLLM(["sell"])
    with pytest.raises(BudgetExhausted, match="Insufficient budget"):
        await rig.chain(Route(big, "big")).complete(ASK, input_class=CLASS)
    assert big.requests == []


async def test_exhausted_budget_refuses_and_asks_no_model_not_even_the_fallback(
    rig: Rig,
) -> None:
    """Budget refusal is not a model failure: neither link nor the cache is used."""
    rig.budget.limits = BudgetLimits(daily_tokens=300)
    big, small = ScriptedLLM(default="sell"), ScriptedLLM(default="sell")
    chain = rig.chain(Route(big, "big"), Route(small, "small"))
    await chain.complete(ASK, input_class=CLASS, max_tokens=10)
    with pytest.raises(BudgetExhausted) as refused:
        await chain.complete(ASK, input_class=CLASS, max_tokens=260)
    assert refused.value.code is ErrorCode.BUDGET_EXHAUSTED
    assert len(big.requests) == 1
    assert small.requests == []


async def test_a_failing_frontier_falls_back_to_the_smaller_model(rig: Rig) -> None:
    """Frontier 500s (retried per policy) → the smaller model answers, tier fallback."""
    big = ScriptedLLM(default=_server_error("big"))
    small = ScriptedLLM(["hold"])
    answer = await rig.chain(Route(big, "big"), Route(small, "small")).complete(
        ASK, input_class=CLASS
    )
    assert isinstance(answer, Completion)
    assert (answer.text, answer.tier, answer.model) == ("hold", "fallback", "small")
    assert len(big.requests) == 3  # first try + the policy's 2 retries for a 500
    assert EventKind.LLM_FALLBACK in rig.kinds()
    assert rig.sample("bastion_llm_answers_total", tier="fallback") == 1
    usage = rig.budget.usage_today()
    assert set(usage.by_model) == {"small"}  # the failed calls were released, not billed


async def test_all_models_down_serves_the_fresh_cached_answer(rig: Rig) -> None:
    """Both down → the last good answer for the same input class, at no cost."""
    big = ScriptedLLM(["sell"], default=_server_error("big"))
    chain = rig.chain(Route(big, "big"))
    await chain.complete(ASK, input_class=CLASS)
    used = rig.budget.usage_today().tokens_used_today
    rig.clock.advance(60)
    answer = await chain.complete(ASK, input_class=CLASS)
    assert isinstance(answer, Completion)
    assert (answer.text, answer.tier, answer.usd, answer.usage.total) == ("sell", "cache", 0, 0)
    assert rig.budget.usage_today().tokens_used_today == used
    other = await chain.complete(ASK, input_class="other.question")
    assert isinstance(other, Escalated)  # the cache is per input class


async def test_a_stale_cache_escalates_to_a_person(rig: Rig) -> None:
    """Past the TTL the cached answer is not used: an approvals entry is queued instead."""
    big = ScriptedLLM(["sell"], default=_server_error("big"))
    chain = rig.chain(Route(big, "big"), cache_ttl=30)
    await chain.complete(ASK, input_class=CLASS)
    rig.clock.advance(31)
    escalated = await chain.complete(ASK, input_class=CLASS, phase="decide")
    assert isinstance(escalated, Escalated)
    assert escalated.code == "server"
    record = await rig.approvals.get(escalated.approval_id)
    assert record is not None
    assert (record.kind, record.status, record.run_id) == ("llm_escalation", "pending", "r1")
    assert record.subject["input_class"] == CLASS
    assert record.subject["models"] == ["llm scripted/big"]
    assert "SERVER" in record.reason
    assert EventKind.LLM_ESCALATED in rig.kinds()
    assert rig.sample("bastion_llm_answers_total", tier="escalated") == 1


async def test_the_breaker_opens_after_five_consecutive_errors_and_stops_calls(
    rig: Rig,
) -> None:
    """Each model has its own breaker: once open, the frontier model is not asked at all."""
    big = ScriptedLLM(default=_server_error("big"))
    small = ScriptedLLM(default="hold")
    chain = rig.chain(Route(big, "big"), Route(small, "small"))
    for _ in range(4):
        await chain.complete(ASK, input_class=CLASS)
    assert len(big.requests) == 5  # 3 attempts, then 2 more and the circuit opened
    assert len(small.requests) == 4
    breaker = rig.resilience.breakers.get("llm scripted/big", "llm")  # type: ignore[union-attr]
    assert breaker.state.value == "open"


def _timeout(model: str) -> LLMError:
    return LLMError(
        f"llm scripted/{model}: TIMEOUT after 5 s", code=ErrorCode.TIMEOUT, dependency="llm"
    )


def _estimate_in() -> int:
    return estimate_input_tokens(ASK)


def _ledger(rig: Rig, model: str) -> dict[str, float]:
    row = rig.budget.usage_today().by_model.get(model)
    return (
        {}
        if row is None
        else {"invocations": row.invocations, "tokens": row.tokens, "usd": row.usd}
    )


async def test_every_timed_out_attempt_is_billed_its_prompt(rig: Rig) -> None:
    """A request whose answer never came may have been billed for its prompt: each attempt,
    retries included, keeps exactly its input estimate; the fallback answers."""
    big = ScriptedLLM(default=_timeout("big"))
    answer = await rig.chain(
        Route(big, "big"), Route(ScriptedLLM(default="hold"), "small")
    ).complete(ASK, input_class=CLASS)
    assert isinstance(answer, Completion)
    assert answer.tier == "fallback"
    attempts = len(big.requests)
    assert attempts > 1  # the timeout policy retried
    assert _ledger(rig, "big") == {
        "invocations": attempts,
        "tokens": attempts * _estimate_in(),
        "usd": pytest.approx(attempts * _estimate_in() * 10 / 1e6),
    }


class _Hanging:
    """A model that never answers; the chain's own timeout has to cut it off."""

    provider = "scripted"

    def __init__(self) -> None:
        self.requests = 0

    async def complete(self, messages: object, **kwargs: object) -> Completion:
        self.requests += 1
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        return None


async def test_a_request_cut_off_by_the_timeout_is_billed_its_prompt(rig: Rig) -> None:
    """The choke point cancels the hanging request; its hold becomes the prompt's cost."""
    hanging = _Hanging()
    chain = rig.chain(Route(hanging, "big"), Route(ScriptedLLM(default="hold"), "small"))  # type: ignore[arg-type]
    chain.timeout = chain.deadline = 0.05
    answer = await chain.complete(ASK, input_class=CLASS)
    assert isinstance(answer, Completion)
    assert answer.model == "small"
    assert _ledger(rig, "big")["tokens"] == hanging.requests * _estimate_in()


async def test_each_retry_is_admitted_and_an_unreadable_200_is_billed_in_full(rig: Rig) -> None:
    """An invalid reply (billed by the provider) keeps the whole estimate; the retry that
    answers is admitted and billed on its own."""
    invalid = LLMError("llm scripted/big: INVALID_RESPONSE", code=ErrorCode.INVALID_RESPONSE)
    big = ScriptedLLM([invalid, "sell"])
    answer = await rig.chain(Route(big, "big")).complete(ASK, input_class=CLASS)
    assert isinstance(answer, Completion)
    assert answer.text == "sell"
    ledger = _ledger(rig, "big")
    assert ledger["invocations"] == 2
    assert ledger["tokens"] == (_estimate_in() + 100) + answer.usage.total


async def test_an_unbillable_usage_figure_is_an_invalid_response_and_no_hold_is_left(
    rig: Rig,
) -> None:
    """Negative token counts cannot be billed: the reply is invalid, the estimate is kept,
    the fallback answers, and nothing stays reserved."""
    bad = Completion("sell", Usage(-5, 3), model="big", latency=0.0)
    answer = await rig.chain(
        Route(ScriptedLLM(default=bad), "big"), Route(ScriptedLLM(default="hold"), "small")
    ).complete(ASK, input_class=CLASS)
    assert isinstance(answer, Completion)
    assert answer.model == "small"
    usage = rig.budget.usage_today()
    assert usage.tokens_remaining == 10_000 - usage.tokens_used_today  # no hold left


async def test_a_call_too_dear_for_the_per_request_limit_goes_to_a_cheaper_model(
    rig: Rig,
) -> None:
    """A per-request USD cap refuses the frontier model's estimate; the smaller one fits."""
    rig.budget.limits = BudgetLimits(daily_tokens=10_000, request_usd=0.001)
    big, small = ScriptedLLM(default="sell"), ScriptedLLM(default="hold")
    answer = await rig.chain(Route(big, "big"), Route(small, "small")).complete(
        ASK, input_class=CLASS
    )
    assert isinstance(answer, Completion)
    assert (answer.model, answer.tier) == ("small", "fallback")
    assert big.requests == []
    rig.budget.limits = BudgetLimits(daily_tokens=10_000, request_usd=0.00001)
    with pytest.raises(BudgetExhausted, match="per-request"):
        await rig.chain(Route(big, "big"), Route(small, "small")).complete(ASK, input_class=CLASS)


async def test_one_escalation_per_question_until_a_person_answers(rig: Rig) -> None:
    """Models down every step must not flood the queue: the open entry is reused; once it is
    decided, the next failure asks again."""
    chain = rig.chain(Route(ScriptedLLM(default=_server_error("big")), "big"), cache_ttl=0)
    first = await chain.complete(ASK, input_class=CLASS)
    second = await chain.complete(ASK, input_class=CLASS)
    assert isinstance(first, Escalated)
    assert isinstance(second, Escalated)
    assert second.approval_id == first.approval_id
    assert len(await rig.approvals.pending()) == 1
    await rig.approvals.decide(first.approval_id, False, "alice", "models are down")
    third = await chain.complete(ASK, input_class=CLASS)
    assert isinstance(third, Escalated)
    assert third.approval_id != first.approval_id


async def test_a_swapped_model_is_flagged_and_priced_as_the_model_that_answered(
    rig: Rig,
) -> None:
    """The provider answering with another model than the pinned one shows in the trace."""
    swapped = Completion("sell", Usage(1000, 100), model="small", latency=0.1)
    answer = await rig.chain(Route(ScriptedLLM([swapped]), "big")).complete(ASK, input_class=CLASS)
    assert isinstance(answer, Completion)
    assert answer.usd == pytest.approx((1000 * 1 + 100 * 3) / 1e6)
    (call,) = [e for e in rig.events if e.kind is EventKind.LLM_CALL]
    assert call.payload["model_swapped"] is True
    assert (call.payload["model"], call.payload["requested_model"]) == ("small", "big")


async def test_a_dated_snapshot_of_the_pinned_alias_is_not_a_swap(rig: Rig) -> None:
    answer = Completion("sell", Usage(10, 1), model="big-2025-01-01", latency=0.1)
    await rig.chain(Route(ScriptedLLM([answer]), "big")).complete(ASK, input_class=CLASS)
    (call,) = [e for e in rig.events if e.kind is EventKind.LLM_CALL]
    assert call.payload["model_swapped"] is False


async def test_schema_and_tools_count_towards_the_admission_estimate(rig: Rig) -> None:
    """A big response schema is part of the prompt: admission reserves for it."""
    rig.budget.limits = BudgetLimits(daily_tokens=400)
    schema = JsonSchema("decision", {"type": "object", "description": "x" * 1500})
    with pytest.raises(BudgetExhausted):
        await rig.chain(Route(ScriptedLLM(["{}"]), "big")).complete(
            ASK, input_class=CLASS, response_format=schema
        )
    await rig.chain(Route(ScriptedLLM(["{}"]), "big")).complete(ASK, input_class=CLASS)


async def test_no_route_escalates_at_once(rig: Rig) -> None:
    escalated = await rig.chain().complete(ASK, input_class=CLASS)
    assert isinstance(escalated, Escalated)
    assert escalated.code == "config"
    assert "no model is configured" in escalated.reason


async def test_replay_reads_the_answers_a_run_received(rig: Rig, tmp_path: Path) -> None:
    """ScriptedLLM.from_trace gives back every answer the agent got, in order, cache included."""
    big = ScriptedLLM(["first", "second"], default=_server_error("big"))
    chain = rig.chain(Route(big, "big"))
    writer = TraceWriter(tmp_path / "traces", "r1", rig.clock, [])
    assert chain.journal is not None
    chain.journal.subscribe(lambda e: writer.write(e.kind.value, e.payload))
    for _ in range(3):
        await chain.complete(ASK, input_class=CLASS)
    writer.close()
    replay = ScriptedLLM.from_trace(writer.path)
    answers = [
        (await replay.complete(ASK, model="big", max_tokens=10, timeout=1)).text for _ in "abc"
    ]
    assert answers == ["first", "second", "second"]  # the third came from the cache
