"""Rate limits that retries absorb leave the exchange breaker closed and the run trading.

The defect this guards: three Deribit 10028s and two HTTP 429s with Retry-After, each recovered
inside its own call, opened the exchange breaker, and the next 13 steps failed with
``circuit_open``. A rate limit is a throttle, not a broken dependency (the ``never`` row of the
policy table's breaker column): it is waited out, never counted.
"""

from __future__ import annotations

from collections.abc import Callable

from bastion.agent import Context, Decision, Observation, OrderIntent
from bastion.agents.scripted import ScriptedAgent
from bastion.events import Event, EventKind
from bastion.runner import Runner

RunnerFactory = Callable[..., Runner]
STEPS = 15
RETRY_AFTER = 1

# Both fault kinds fire on the next `times` matching calls; the first armed is checked first.
RATE_LIMITS = [
    {"kind": "error", "code": 10028, "method": "private/*", "times": 3},
    {
        "kind": "status",
        "status": 429,
        "retry_after": RETRY_AFTER,
        "method": "private/*",
        "times": 2,
    },
]


def _buy_the_perpetual(obs: Observation, ctx: Context) -> Decision:
    intent = OrderIntent("BTC-PERPETUAL", "buy", 10.0, order_type="market")
    return Decision((intent,), rationale="scripted")


async def test_recovered_rate_limits_leave_the_breaker_closed_and_the_run_trading(
    runner_factory: RunnerFactory,
) -> None:
    """Five rate-limited private calls, all recovered: no breaker move, every step trades."""
    runner = runner_factory(ScriptedAgent(_buy_the_perpetual), paper_faults=RATE_LIMITS)
    events: list[Event] = []
    runner.journal.subscribe(events.append)

    summary = await runner.run(max_steps=STEPS)

    assert runner.paper is not None
    assert runner.paper.faults.faults == []  # all five fired
    retried = [e.payload for e in events if e.kind is EventKind.CALL_RETRIED]
    assert [p["code"] for p in retried] == ["rate_limit"] * 5
    assert {p["dependency"].split()[1].split("/")[0] for p in retried} == {"private"}
    assert any(p["retry_after"] == RETRY_AFTER and p["wait"] >= RETRY_AFTER for p in retried)
    assert not [e for e in events if e.kind is EventKind.CALL_FAILED]

    assert not [e for e in events if e.kind is EventKind.BREAKER_STATE_CHANGED]
    assert runner.resilience.breakers is not None
    [breaker] = runner.resilience.breakers.snapshot()
    assert (breaker["state"], breaker["failures"]) == ("closed", 0)

    steps = [e.payload for e in events if e.kind is EventKind.STEP_COMPLETED]
    assert [s["status"] for s in steps] == ["ok"] * STEPS
    assert all(s["orders_sent"] == 1 for s in steps)
    assert (summary.status, summary.steps) == ("completed", STEPS)
    sent = [e for e in events if e.kind is EventKind.ORDER_SENT]
    assert len(sent) == STEPS
