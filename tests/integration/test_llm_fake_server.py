"""The real OpenAI SDK adapter and fallback chain against the fake server on a loopback port.

Acceptance of issue 5: frontier 500s → the smaller model answers; both down → the cached
answer; no cache → an escalation is queued; the breaker opens after 5 consecutive errors and
stops calls reaching the server; an exhausted budget sends the server zero requests and resets
at UTC midnight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bastion.clock import SimClock
from bastion.errors import BastionError, BudgetExhausted, ErrorCode, LLMError
from bastion.guard.approvals import Approvals
from bastion.guard.budget import Budget, BudgetLimits
from bastion.llm.chain import FallbackChain, Route
from bastion.llm.openai import OpenAIChat
from bastion.llm.pricing import PriceBook
from bastion.messages import Completion, Escalated, JsonSchema, Message, Tool
from bastion.resilience import Resilience, RetrySettings
from bastion.simulators.llm import FakeLLMServer
from bastion.store import Store
from loopback_server import serve_on_loopback

ASK = [Message("system", "You trade."), Message("user", "Sell a call?")]
FRONTIER, SMALL = "gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18"
DAY = 86_400.0


@dataclass
class Fake:
    server: FakeLLMServer
    base_url: str

    def adapter(self) -> OpenAIChat:
        return OpenAIChat(base_url=self.base_url)

    def count(self, model: str) -> int:
        return self.server.request_counts().get(model, 0)


@pytest.fixture
def fake() -> Iterator[Fake]:
    server = FakeLLMServer(
        replies_by_model={FRONTIER: ["from the frontier"], SMALL: ["from the small model"]},
        default_reply="default",
    )
    with serve_on_loopback(server.app) as url:
        try:
            yield Fake(server, f"{url}/v1")
        finally:
            server.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path}/llm.db") as opened:
        yield opened


def _chain(
    fake: Fake, store: Store, clock: SimClock, *, daily_tokens: int | None = None
) -> FallbackChain:
    adapter = fake.adapter()
    return FallbackChain(
        [Route(adapter, FRONTIER), Route(adapter, SMALL)],
        resilience=Resilience(clock=clock, retry=RetrySettings(base=0.01, cap=0.05, seed=3)),
        prices=PriceBook(),
        clock=clock,
        budget=Budget(
            store, clock=clock, agent="seller", limits=BudgetLimits(daily_tokens=daily_tokens)
        ),
        escalations=Approvals(store, clock=clock, agent="seller"),
        timeout=5.0,
        max_tokens=64,
        cache_ttl=600,
        run_id="run-1",
    )


# -- the adapter ------------------------------------------------------------------------------
async def test_the_adapter_returns_text_usage_and_the_model_that_answered(fake: Fake) -> None:
    fake.server.set_replies(replies_by_model={FRONTIER: [{"content": "hi", "model": "other"}]})
    adapter = fake.adapter()
    try:
        answer = await adapter.complete(ASK, model=FRONTIER, max_tokens=16, timeout=5)
    finally:
        await adapter.aclose()
    assert (answer.text, answer.model, answer.provider) == ("hi", "other", "openai")
    assert answer.usage.input_tokens >= 1
    assert answer.usage.output_tokens == 1
    assert answer.latency > 0
    (request,) = fake.server.requests
    assert request.model == FRONTIER


async def test_the_adapter_sends_tools_and_the_json_schema_and_reads_tool_calls(
    fake: Fake,
) -> None:
    fake.server.set_replies(
        [{"tool_calls": [{"name": "get_ticker", "arguments": {"instrument": "BTC-PERPETUAL"}}]}]
    )
    adapter = fake.adapter()
    tool = Tool("get_ticker", "A ticker.", {"type": "object", "properties": {}})
    schema = JsonSchema("decision", {"type": "object", "properties": {}})
    try:
        answer = await adapter.complete(
            ASK, model=FRONTIER, tools=[tool], response_format=schema, max_tokens=16, timeout=5
        )
    finally:
        await adapter.aclose()
    (call,) = answer.tool_calls
    assert call.name == "get_ticker"
    assert '"BTC-PERPETUAL"' in call.arguments


@pytest.mark.parametrize(
    ("fault", "code", "status"),
    [
        ({"kind": "status", "status": 429, "retry_after": 3}, ErrorCode.RATE_LIMIT, 429),
        ({"kind": "status", "status": 500}, ErrorCode.SERVER, 500),
        ({"kind": "status", "status": 401}, ErrorCode.AUTH, 401),
        ({"kind": "status", "status": 400}, ErrorCode.BAD_REQUEST, 400),
        ({"kind": "malformed"}, ErrorCode.INVALID_RESPONSE, None),
        ({"kind": "truncated"}, ErrorCode.INVALID_RESPONSE, None),
        ({"kind": "drop"}, ErrorCode.NETWORK, None),
    ],
)
async def test_provider_failures_become_coded_llm_errors(
    fake: Fake, fault: dict[str, object], code: ErrorCode, status: int | None
) -> None:
    """Every way the server fails is one code; a 429 carries its Retry-After."""
    fake.server.set_faults([fault])
    adapter = fake.adapter()
    try:
        with pytest.raises(LLMError) as failed:
            await adapter.complete(ASK, model=FRONTIER, max_tokens=16, timeout=5)
    finally:
        await adapter.aclose()
    assert failed.value.code is code, failed.value.message
    assert failed.value.http_status == status
    assert failed.value.message.startswith(f"llm openai/{FRONTIER}: {code.name}")
    if status == 429:
        assert failed.value.retry_after == 3


async def test_a_hang_is_a_classified_timeout_and_the_caller_goes_on(fake: Fake) -> None:
    """The choke point's timeout ends a hanging request: ``llm ... TIMEOUT after 0.3 s``."""
    # One hang, on a connection already open: a first request in a big test process can take
    # longer than 0.3 s to connect, and would be given up before it reached the server at all.
    # The test then waits for it to hang before releasing it; the next request is served.
    adapter = fake.adapter()
    resilience = Resilience(retry=RetrySettings(deadline=0.3))
    try:
        warm = await adapter.complete(ASK, model=SMALL, max_tokens=16, timeout=5)
        assert warm.text == "from the small model"
        fake.server.set_faults([{"kind": "hang", "times": 1}])
        with pytest.raises(BastionError) as failed:
            await resilience.call(
                f"llm openai/{FRONTIER}",
                lambda: adapter.complete(ASK, model=FRONTIER, max_tokens=16, timeout=0.3),
                layer="llm",
                timeout=0.3,
            )
        for _ in range(600):  # a liveness bound (60 s), not a performance figure
            if fake.server.hanging:
                break
            await asyncio.sleep(0.1)
        fake.server.release_hangs()
        answer = await adapter.complete(ASK, model=FRONTIER, max_tokens=16, timeout=5)
    finally:
        await adapter.aclose()
    assert failed.value.code is ErrorCode.TIMEOUT
    assert f"llm openai/{FRONTIER}: TIMEOUT after 0.3 s" in failed.value.message
    assert answer.text == "from the frontier"


async def test_an_unreachable_server_is_a_network_error() -> None:
    adapter = OpenAIChat(base_url="http://127.0.0.1:9/v1")
    try:
        with pytest.raises(LLMError) as failed:
            await adapter.complete(ASK, model=FRONTIER, max_tokens=16, timeout=2)
    finally:
        await adapter.aclose()
    assert failed.value.code is ErrorCode.NETWORK


# -- the chain ------------------------------------------------------------------------------
async def test_frontier_500s_then_the_smaller_model_answers(fake: Fake, store: Store) -> None:
    fake.server.set_faults([{"kind": "status", "status": 500, "model": FRONTIER, "times": None}])
    chain = _chain(fake, store, SimClock())
    try:
        answer = await chain.complete(ASK, input_class="q")
    finally:
        await chain.aclose()
    assert isinstance(answer, Completion)
    assert (answer.text, answer.tier, answer.model) == ("from the small model", "fallback", SMALL)
    assert fake.count(FRONTIER) == 3  # the 500 policy: two retries


async def test_both_down_serves_the_cached_answer_then_escalates_without_one(
    fake: Fake, store: Store
) -> None:
    clock = SimClock()
    chain = _chain(fake, store, clock)
    try:
        first = await chain.complete(ASK, input_class="q")
        fake.server.set_faults([{"kind": "status", "status": 503, "times": None}])
        cached = await chain.complete(ASK, input_class="q")
        escalated = await chain.complete(ASK, input_class="never answered")
    finally:
        await chain.aclose()
    assert isinstance(first, Completion)
    assert isinstance(cached, Completion)
    assert (cached.text, cached.tier) == ("from the frontier", "cache")
    assert isinstance(escalated, Escalated)
    assert escalated.code == "circuit_open"  # both breakers opened on the 503s
    (entry,) = store.approvals.list(status="pending")
    assert entry.id == escalated.approval_id
    assert entry.kind == "llm_escalation"


async def test_the_breaker_opens_after_five_errors_and_no_call_reaches_the_server(
    fake: Fake, store: Store
) -> None:
    fake.server.set_faults([{"kind": "status", "status": 500, "model": FRONTIER, "times": None}])
    chain = _chain(fake, store, SimClock())
    try:
        for _ in range(2):
            await chain.complete(ASK, input_class="q")
        assert fake.count(FRONTIER) == 5
        for _ in range(5):
            answer = await chain.complete(ASK, input_class="q")
            assert isinstance(answer, Completion)
            assert answer.model == SMALL
    finally:
        await chain.aclose()
    assert fake.count(FRONTIER) == 5  # open: the frontier model was not asked again
    assert fake.count(SMALL) == 7


async def test_an_exhausted_budget_sends_nothing_and_resets_at_utc_midnight(
    fake: Fake, store: Store
) -> None:
    clock = SimClock(start=1_800_000_000)  # 2027-01-15T08:00:00Z
    chain = _chain(fake, store, clock, daily_tokens=150)
    try:
        await chain.complete(ASK, input_class="q")  # ~30 in + 4 out of 150
        fake.server.reset_requests()
        with pytest.raises(BudgetExhausted, match="Insufficient budget"):
            await chain.complete(ASK, input_class="q", max_tokens=140)
        assert fake.server.requests == []
        clock.advance(DAY - 8 * 3600)  # to the next UTC midnight
        answer = await chain.complete(ASK, input_class="q", max_tokens=100)
    finally:
        await chain.aclose()
    assert isinstance(answer, Completion)
    assert answer.tier == "primary"
    assert len(fake.server.requests) == 1


async def test_a_base_url_the_client_cannot_use_is_a_config_error() -> None:
    """Not a network failure to retry and fall back from: the setting is wrong."""
    adapter = OpenAIChat(base_url="localhost:8765/v1")
    try:
        with pytest.raises(LLMError) as failed:
            await adapter.complete(ASK, model=FRONTIER, max_tokens=16, timeout=2)
    finally:
        await adapter.aclose()
    assert failed.value.code is ErrorCode.CONFIG
    assert "the base URL cannot be used" in failed.value.message
