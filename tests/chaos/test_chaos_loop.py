"""Chaos through the real client and loop: faults injected at the paper exchange, never by
patching our code. Every case ends classified, recorded, and with the loop still stepping."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bastion.agent import Decision
from bastion.agents.scripted import ScriptedAgent
from bastion.clock import SimClock
from bastion.config import load_settings
from bastion.events import Event, EventKind
from bastion.runner import Runner
from bastion.simulators.paper import PaperExchangeApp
from bastion.trace.record import read_trace

RunnerFactory = Callable[..., Runner]


@pytest.fixture
async def make_runner(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[RunnerFactory]:
    for key in list(os.environ):
        if key.startswith("BASTION_"):
            monkeypatch.delenv(key)
    made: list[Runner] = []

    def make(**overrides: Any) -> Runner:
        settings = load_settings(data_dir=tmp_path / "data", **overrides)
        runner = Runner(
            settings,
            clock=SimClock(start=1_800_000_000),
            agent=ScriptedAgent(lambda obs, ctx: Decision()),
            console=False,
        )
        made.append(runner)
        return runner

    yield make
    for runner in made:
        await runner.aclose()


def _paper(runner: Runner) -> PaperExchangeApp:
    assert runner.paper is not None
    return runner.paper


def _events(runner: Runner) -> list[Event]:
    seen: list[Event] = []
    runner.journal.subscribe(seen.append)
    return seen


async def test_a_429_with_retry_after_is_waited_out_and_the_wait_is_traced(
    make_runner: RunnerFactory,
) -> None:
    """Rate-limited once with Retry-After: 3: the call waits at least 3 s, then succeeds."""
    runner = make_runner()
    _paper(runner).faults.arm(
        {"kind": "error", "code": 10028, "method": "public/get_index_price", "retry_after": 3}
    )
    outcome = await runner.loop.step()
    assert outcome.status == "ok"
    [retry] = [line for line in read_trace(runner.trace.path) if line["kind"] == "call_retried"]
    assert retry["dependency"] == "deribit public/get_index_price"
    assert retry["code"] == "rate_limit"
    assert retry["wait"] >= 3


async def test_a_breaker_opens_fails_fast_and_closes_after_a_probe(
    make_runner: RunnerFactory,
) -> None:
    """503s open the exchange breaker; while open, zero calls reach the exchange; a good
    half-open probe closes it again."""
    runner = make_runner()
    paper = _paper(runner)
    events = _events(runner)
    assert (await runner.loop.step()).status == "ok"
    paper.faults.arm({"kind": "status", "status": 503, "method": "*", "times": None})
    paper.faults.reset_calls()
    for _ in range(5):  # each failing step makes up to 4 attempts (503: 3 retries)
        assert (await runner.loop.step()).status == "failed"
        [breaker] = runner.resilience.breakers.snapshot()  # type: ignore[union-attr]
        if breaker["state"] == "open":
            break
    assert breaker["state"] == "open"
    assert paper.faults.calls() == breaker["config"]["failure_threshold"]

    paper.faults.reset_calls()
    failed_fast = await runner.loop.step()
    assert failed_fast.status == "failed"
    assert "CIRCUIT_OPEN" in failed_fast.detail
    assert paper.faults.calls() == 0, "an open breaker must not reach the exchange"

    paper.faults.clear()
    assert isinstance(runner.clock, SimClock)
    runner.clock.advance(breaker["config"]["recovery_timeout"] + 1)
    assert (await runner.loop.step()).status == "ok"
    [breaker] = runner.resilience.breakers.snapshot()  # type: ignore[union-attr]
    assert breaker["state"] == "closed"
    changes = [e.payload["state"] for e in events if e.kind is EventKind.BREAKER_STATE_CHANGED]
    assert changes == ["open", "half_open", "closed"]
    stored = runner.store.events.list(kind="breaker_state_changed", limit=10)
    assert len(stored) == 3


async def test_a_hang_ends_at_the_configured_timeout(make_runner: RunnerFactory) -> None:
    """A ticker that never answers costs one failed step, classified as a timeout."""
    runner = make_runner(exchange_timeout_seconds=0.1, call_deadline_seconds=0.5)
    paper = _paper(runner)
    paper.faults.arm({"kind": "hang", "method": "public/ticker", "times": None})
    outcome = await runner.loop.step()
    assert outcome.status == "failed"
    assert "TIMEOUT" in outcome.detail
    paper.faults.clear()
    assert (await runner.loop.step()).status == "ok"


async def test_a_malformed_body_is_an_invalid_response(make_runner: RunnerFactory) -> None:
    """A body that is not JSON is classified invalid_response, recorded, and the loop goes on."""
    runner = make_runner()
    events = _events(runner)
    _paper(runner).faults.arm(
        {"kind": "malformed", "method": "private/get_positions", "times": None}
    )
    outcome = await runner.loop.step()
    assert outcome.status == "failed"
    [failure] = [e.payload for e in events if e.kind is EventKind.STEP_FAILED]
    assert failure["error"]["kind"] == "invalid_response"
    _paper(runner).faults.clear()
    assert (await runner.loop.step()).status == "ok"


@pytest.mark.parametrize(
    "fault",
    [
        {
            "kind": "status",
            "status": 403,
            "body": "<html>Forbidden</html>",
            "content_type": "text/html",
        },
        {"kind": "error", "code": 10009},
        {"kind": "drop"},
        {"kind": "crash"},
        {"kind": "truncated"},
    ],
    ids=["403-html", "10009", "drop", "crash", "truncated"],
)
async def test_the_loop_survives_every_fault_with_a_classified_event(
    make_runner: RunnerFactory, fault: dict[str, Any]
) -> None:
    """Whatever the exchange does, the step ends as an outcome with a code, never a crash."""
    runner = make_runner()
    events = _events(runner)
    _paper(runner).faults.arm({**fault, "method": "private/get_account_summary", "times": None})
    outcome = await runner.loop.step()
    assert outcome.status == "failed"
    [failure] = [e.payload for e in events if e.kind is EventKind.STEP_FAILED]
    assert failure["error"]["kind"] != "unknown"
    _paper(runner).faults.clear()
    assert isinstance(runner.clock, SimClock)
    runner.clock.advance(60)  # past any breaker's recovery timeout
    assert (await runner.loop.step()).status == "ok"
