"""The guarded loop end to end on the real paper exchange, through the real Deribit client."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import httpx
import pytest

from bastion.agent import Context, Decision, Observation, OrderIntent
from bastion.agents.scripted import ScriptedAgent
from bastion.clock import SimClock
from bastion.config import Settings
from bastion.events import Event, EventKind
from bastion.exchange.deribit import DeribitClient
from bastion.guard.halt import Halt
from bastion.market import OrderRequest
from bastion.resilience import Resilience
from bastion.runner import Runner
from bastion.simulators.paper import PaperExchangeApp, create_app
from bastion.trace.record import read_trace

RunnerFactory = Callable[..., Runner]


def perp_buy(amount: float = 10.0, *, market: bool = True) -> Callable[..., Decision]:
    """Decide to buy the perpetual every step (market orders fill at once on paper)."""

    def decide(obs: Observation, ctx: Context) -> Decision:
        ticker = obs.tickers["BTC-PERPETUAL"]
        intent = OrderIntent(
            "BTC-PERPETUAL",
            "buy",
            amount,
            order_type="market" if market else "limit",
            price=None if market else round(ticker.mark_price * 0.9 * 2) / 2,
        )
        return Decision((intent,), rationale="scripted")

    return decide


def kinds(events: Sequence[Event]) -> list[str]:
    return [e.kind.value for e in events]


def _collect(runner: Runner) -> list[Event]:
    seen: list[Event] = []
    runner.journal.subscribe(seen.append)
    return seen


async def test_reference_agent_places_an_order_on_the_paper_exchange(
    runner_factory: RunnerFactory,
) -> None:
    """Out of the box, the options seller sends a sale that rests on the paper book."""
    runner = runner_factory()
    events = _collect(runner)
    summary = await runner.run(max_steps=3)
    sent = [e for e in events if e.kind is EventKind.ORDER_SENT]
    assert sent, kinds(events)
    order = sent[0].payload
    assert order["direction"] == "sell"
    assert order["instrument"].startswith("BTC-")
    assert order["instrument"].endswith(("-C", "-P"))
    assert order["label"] == f"{runner.run_id}-{order['step']}-0"
    book = await runner.exchange.get_open_orders("BTC")
    assert order["order_id"] in {o.order_id for o in book} | {
        e.payload["order_id"] for e in events if e.kind is EventKind.ORDER_FILLED
    }
    assert summary.status == "completed"
    assert summary.steps == 3


async def test_kill_stops_sending_cancels_resting_and_resume_trades_again(
    runner_factory: RunnerFactory,
) -> None:
    """A flag from another process: resting orders cancelled, nothing sent, then resume."""
    runner = runner_factory(ScriptedAgent(perp_buy(10.0, market=False)))
    events = _collect(runner)
    await runner.loop.step()
    assert len(await runner.exchange.get_open_orders("BTC")) == 1

    cli = Halt(flag_path=runner.settings.kill_switch_path, clock=runner.clock)
    await cli.trip("operator drill", who="ops")  # like `bastion kill`: no exchange of its own
    flagged_at = len(events)
    for _ in range(3):
        outcome = await runner.loop.step()
        assert outcome.status == "halted"
    after_flag = events[flagged_at:]
    assert EventKind.ORDER_SENT.value not in kinds(after_flag)
    assert kinds(after_flag).count(EventKind.HALT_ENFORCED.value) == 1
    assert await runner.exchange.get_open_orders("BTC") == []
    status = runner.loop.status.to_dict()
    assert (status["state"], status["halt_reason"]) == ("halted", "operator drill")

    cli.resume(who="ops", why="drill over")
    outcome = await runner.loop.step()
    assert outcome.status == "ok"
    assert outcome.orders_sent == 1
    assert runner.loop.status.state == "running"


async def test_a_halt_raised_mid_step_stops_the_send(runner_factory: RunnerFactory) -> None:
    """The flag appearing after decide() but before the send blocks that very order."""
    holder: dict[str, Runner] = {}

    def decide_then_flag(obs: Observation, ctx: Context) -> Decision:
        flag = holder["r"].settings.kill_switch_path
        flag.parent.mkdir(parents=True, exist_ok=True)
        flag.write_text('{"reason": "mid-step", "who": "ops", "when": "now"}')
        return perp_buy(10.0)(obs, ctx)

    runner = runner_factory(ScriptedAgent(decide_then_flag))
    holder["r"] = runner
    events = _collect(runner)
    outcome = await runner.loop.step()
    assert outcome.status == "halted"
    assert outcome.orders_sent == 0
    assert EventKind.ORDER_SENT.value not in kinds(events)
    skipped = [e for e in events if e.kind is EventKind.ORDER_SKIPPED]
    assert skipped
    assert skipped[0].payload["reason"] == "halted"
    assert await runner.exchange.get_positions("BTC") == []


async def test_a_hung_agent_is_abandoned_and_the_loop_goes_on(
    runner_factory: RunnerFactory,
) -> None:
    """decide() that never returns costs one step, recorded as a timeout; the next step runs."""
    hang = asyncio.Event()

    async def hang_once(obs: Observation, ctx: Context) -> Decision:
        if ctx.step == 2:
            await hang.wait()
        return Decision()

    agent = ScriptedAgent(hang_once)
    runner = runner_factory(agent, step_timeout_seconds=1.5)
    events = _collect(runner)
    outcomes = [(await runner.loop.step()).status for _ in range(3)]
    assert outcomes == ["ok", "timeout", "ok"]
    [timeout] = [e.payload for e in events if e.kind is EventKind.STEP_TIMEOUT]
    assert timeout["step"] == 2
    assert agent.calls == 3


async def test_risk_rejection_is_recorded_and_nothing_is_sent(
    runner_factory: RunnerFactory,
) -> None:
    """$180,000 of perpetual at the 90,000 index is 2 BTC, over a 1.5 BTC cap: refused in code."""
    runner = runner_factory(ScriptedAgent(perp_buy(180_000.0)), risk_max_order_amount=1.5)
    events = _collect(runner)
    await runner.loop.step()
    [verdict] = [e.payload for e in events if e.kind is EventKind.RISK_VERDICT]
    assert (verdict["status"], verdict["cap"], verdict["limit"], verdict["observed"]) == (
        "rejected",
        "max_order_amount",
        1.5,
        2.0,
    )
    assert EventKind.ORDER_SENT.value not in kinds(events)


async def test_dry_run_decides_and_records_but_never_sends(
    runner_factory: RunnerFactory,
) -> None:
    """dry_run: the decision and verdict are traced; the exchange sees no order."""
    runner = runner_factory(ScriptedAgent(perp_buy(10.0)), dry_run=True)
    events = _collect(runner)
    await runner.run(max_steps=2)
    assert kinds(events).count(EventKind.ORDER_SKIPPED.value) == 2
    assert EventKind.ORDER_SENT.value not in kinds(events)
    assert await runner.exchange.get_positions("BTC") == []


async def test_the_trace_holds_the_run_and_never_the_secret(
    runner_factory: RunnerFactory, secret: str
) -> None:
    """Run start (config hash, agent), observation, decision, verdict, order, fill; no secret."""
    runner = runner_factory(ScriptedAgent(perp_buy(10.0)))
    await runner.run(max_steps=2)
    lines = read_trace(runner.trace.path)
    seen = [line["kind"] for line in lines]
    for kind in (
        "run_started",
        "observation",
        "decision",
        "risk_verdict",
        "order_sent",
        "order_filled",
        "step_completed",
        "run_finished",
    ):
        assert kind in seen, kind
    start = lines[0]
    assert start["config_hash"] == runner.settings.config_hash()
    assert (start["agent"], start["agent_version"]) == ("scripted", "0")
    raw = runner.trace.path.read_text()
    assert secret not in raw
    assert "[REDACTED]" in raw
    stored = runner.store.events.list(run_id=runner.run_id, limit=1000)
    assert {e.kind for e in stored} >= {"run_started", "order_sent", "run_finished"}
    assert all(secret not in str(e.payload) for e in stored)
    runs = runner.store.runs.get(runner.run_id)
    assert runs is not None
    assert runs.status == "completed"
    assert runs.steps == 2


@pytest.mark.parametrize("steps", [1, 4])
async def test_max_steps_bounds_a_run(runner_factory: RunnerFactory, steps: int) -> None:
    """--steps N runs exactly N steps and records the run as completed."""
    runner = runner_factory(ScriptedAgent(lambda o, c: Decision()))
    summary = await runner.run(max_steps=steps)
    assert summary.steps == steps
    assert runner.store.runs.get(runner.run_id).status == "completed"  # type: ignore[union-attr]


async def test_duration_bounds_a_run_on_the_injected_clock(
    runner_factory: RunnerFactory,
) -> None:
    """--for 10s at a 1 s interval is ten steps of simulated time, instantly."""
    runner = runner_factory(ScriptedAgent(lambda o, c: Decision()))
    summary = await runner.run(duration_seconds=10)
    assert summary.steps == 10


async def test_halted_steps_sweep_up_an_order_that_landed_after_the_trip(
    settings_factory: Callable[..., Settings],
) -> None:
    """An order in flight when the halt was tripped lands later; the next step cancels it."""
    runner, paper, clock, settings = _explicit_runner(
        settings_factory, ScriptedAgent(lambda o, c: Decision())
    )
    in_flight = _client(paper, clock, settings)  # its request left before the flag went up
    try:
        events = _collect(runner)
        await runner.halt.trip("operator", who="ops")
        mark = (await in_flight.get_ticker("BTC-PERPETUAL")).mark_price
        await in_flight.place_order(
            OrderRequest("BTC-PERPETUAL", "buy", 10.0, price=float(round(mark * 0.95)))
        )
        outcome = await runner.loop.step()
        assert outcome.status == "halted"
        assert await runner.exchange.get_open_orders("BTC") == []
        swept = [e.payload for e in events if e.kind is EventKind.HALT_ENFORCED]
        assert [p["cancelled_orders"] for p in swept] == [1]
    finally:
        await in_flight.close()
        await runner.aclose()


async def test_the_trace_records_when_trading_resumes(runner_factory: RunnerFactory) -> None:
    """After `bastion resume` in another process, the run's own trace says trading resumed."""
    runner = runner_factory(ScriptedAgent(lambda o, c: Decision()))
    await runner.halt.trip("operator", who="ops")
    await runner.loop.step()
    Halt(flag_path=runner.settings.kill_switch_path, clock=runner.clock).resume(
        who="ops", why="done"
    )
    await runner.loop.step()
    await runner.loop.step()
    seen = [line["kind"] for line in read_trace(runner.trace.path)]
    assert seen.count("trading_resumed") == 1


async def test_a_failed_order_lookup_is_retried_not_forgotten(
    settings_factory: Callable[..., Settings],
) -> None:
    """When the lookup of an order that left the book fails, the next step records its fate."""
    runner, paper, _, _ = _explicit_runner(
        settings_factory, ScriptedAgent(_once(perp_buy(10.0, market=False)))
    )
    client = runner.exchange
    try:
        events = _collect(runner)
        await runner.loop.step()  # the order rests
        await client.cancel_all()  # someone cancels it outside the runtime
        paper.faults.inject("private/get_order_state", code=10040, times=None)
        failed = await runner.loop.step()  # retried per policy, still failing
        assert failed.status == "failed"
        paper.faults.clear()
        await runner.loop.step()
        fates = [e.payload for e in events if e.kind is EventKind.ORDER_SKIPPED]
        assert [(f["reason"], f["order_id"]) for f in fates] == [("cancelled", "BTC-1")]
    finally:
        await runner.aclose()


def _once(decide: Callable[..., Decision]) -> Callable[..., Decision]:
    """Decide ``decide`` on the first step only, then nothing."""

    def first_only(obs: Observation, ctx: Context) -> Decision:
        return decide(obs, ctx) if ctx.step == 1 else Decision()

    return first_only


def _client(paper: PaperExchangeApp, clock: SimClock, settings: Settings) -> DeribitClient:
    return DeribitClient(
        base_url="http://paper",
        client_id=settings.exchange_client_id,
        client_secret=settings.exchange_client_secret,
        clock=clock,
        transport=httpx.ASGITransport(app=paper),
        resilience=Resilience(clock=clock),  # backoff waits pass on the simulated clock
    )


def _explicit_runner(
    settings_factory: Callable[..., Settings], agent: ScriptedAgent
) -> tuple[Runner, PaperExchangeApp, SimClock, Settings]:
    """A runner on a paper exchange the test holds, to inject faults or trade beside it."""
    clock = SimClock(start=1_800_000_000)
    paper = create_app(clock=clock, seed=1)
    settings = settings_factory()
    client = _client(paper, clock, settings)
    runner = Runner(settings, clock=clock, agent=agent, exchange=client, console=False)
    return runner, paper, clock, settings


async def test_a_trade_by_hand_on_the_account_halts_for_position_drift(
    settings_factory: Callable[..., Settings],
) -> None:
    """Someone trades the same account outside the runtime: drift halts, resume re-seeds."""
    runner, paper, clock, settings = _explicit_runner(
        settings_factory, ScriptedAgent(_once(perp_buy(10.0)))
    )
    by_hand = _client(paper, clock, settings)
    try:
        events = _collect(runner)
        assert (await runner.loop.step()).orders_sent == 1  # our own fill: expected
        assert (await runner.loop.step()).status == "ok"
        await by_hand.place_order(OrderRequest("BTC-PERPETUAL", "buy", 20.0, order_type="market"))
        outcomes = [(await runner.loop.step()).status for _ in range(3)]
        assert outcomes == ["ok", "halted", "halted"]
        [tripped] = [e.payload for e in events if e.kind is EventKind.HALT_TRIPPED]
        assert tripped["reason"] == "position_drift"
        [drift] = tripped["detail"]["drift"]
        assert (drift["instrument"], drift["expected"], drift["reported"]) == (
            "BTC-PERPETUAL",
            10.0,
            30.0,
        )
        runner.halt.resume(who="ops", why="manual hedge, accepted")
        assert [(await runner.loop.step()).status for _ in range(3)] == ["ok"] * 3
    finally:
        await by_hand.close()
        await runner.aclose()


async def test_the_status_shows_the_book_after_the_steps_sends(
    runner_factory: RunnerFactory,
) -> None:
    """An order sent and resting this step is in status.open_orders when the step returns;
    once it fills, it leaves them."""

    def bid_at_the_touch(obs: Observation, ctx: Context) -> Decision:
        if ctx.step > 1:
            return Decision()
        bid = obs.tickers["BTC-PERPETUAL"].best_bid_price
        return Decision((OrderIntent("BTC-PERPETUAL", "buy", 10.0, price=bid),))

    runner = runner_factory(ScriptedAgent(bid_at_the_touch))
    await runner.loop.step()
    [resting] = await runner.exchange.get_open_orders("BTC")
    status = runner.loop.status
    assert [o.order_id for o in status.open_orders] == [resting.order_id]
    assert status.to_dict()["open_orders"][0]["label"] == f"{runner.run_id}-1-0"
    assert status.orders_sent == 1

    assert isinstance(runner.clock, SimClock)
    for _ in range(500):  # the index wanders until the ask comes down to our bid
        runner.clock.advance(1)
        if not await runner.exchange.get_open_orders("BTC"):
            break
    await runner.loop.step()
    status = runner.loop.status
    assert status.open_orders == ()
    assert status.orders_filled == 1


def _spends_the_budget(holder: dict[str, Runner]) -> Callable[..., Decision]:
    """Step 1 uses the budget up (as the chain's settlement would) and rests a bid."""

    def decide(obs: Observation, ctx: Context) -> Decision:
        if ctx.step == 1:
            ledger = holder["r"].loop.ledger
            ledger.record_budget_exhausted("Daily budget exhausted (1,000 of 1,000)")
            return perp_buy(10.0, market=False)(obs, ctx)
        return Decision()

    return decide


async def test_a_budget_used_up_while_deciding_halts_before_anything_is_sent(
    runner_factory: RunnerFactory,
) -> None:
    """The decision whose LLM call used the budget up trips cost_cap before its order goes out;
    the next step is a halted one and the agent is not asked again."""
    holder: dict[str, Runner] = {}
    agent = ScriptedAgent(_spends_the_budget(holder))
    runner = holder["r"] = runner_factory(agent)
    events = _collect(runner)
    first = await runner.loop.step()
    assert (first.status, first.orders_sent) == ("halted", 0)
    assert not [e for e in events if e.kind is EventKind.ORDER_SENT]
    [tripped] = [e.payload for e in events if e.kind is EventKind.HALT_TRIPPED]
    assert (tripped["reason"], tripped["who"]) == ("cost_cap", "budget")
    assert tripped["detail"] == {"reason": "Daily budget exhausted (1,000 of 1,000)"}
    outcome = await runner.loop.step()
    assert (outcome.status, agent.calls) == ("halted", 1)
    assert runner.loop.status.state == "halted"


async def test_a_budget_used_up_by_the_last_step_still_halts_the_run(
    runner_factory: RunnerFactory,
) -> None:
    """run() checks the limits once more at its end: the run is recorded as halted."""
    holder: dict[str, Runner] = {}
    runner = holder["r"] = runner_factory(ScriptedAgent(_spends_the_budget(holder)))
    summary = await runner.run(max_steps=1)
    state = runner.halt.state()
    assert state is not None
    assert (state.reason, summary.status) == ("cost_cap", "halted")


async def test_a_step_that_cannot_observe_still_trips_a_pending_halt(
    runner_factory: RunnerFactory,
) -> None:
    """The exchange answers garbage: the step fails to observe, the ledger's triggers judge."""
    agent = ScriptedAgent(lambda o, c: Decision())
    runner = runner_factory(agent)
    events = _collect(runner)
    runner.loop.ledger.record_budget_exhausted("spent")
    assert runner.paper is not None
    runner.paper.faults.arm({"kind": "malformed", "method": "private/get_positions", "times": None})
    outcome = await runner.loop.step()
    assert (outcome.status, agent.calls) == ("halted", 0)
    assert [k for k in kinds(events) if k in {"step_failed", "halt_tripped"}] == [
        "step_failed",
        "halt_tripped",
    ]


async def test_the_runs_metrics_come_from_its_events(runner_factory: RunnerFactory) -> None:
    """Steps by outcome, their duration, orders sent and filled, equity, trading state, drift
    and the run's tool calls: all counted by the metrics sink on the run's journal."""
    runner = runner_factory(ScriptedAgent(perp_buy(10.0)))
    await runner.run(max_steps=2)
    r = runner.metrics.registry
    assert r.get_sample_value("bastion_steps_total", {"outcome": "ok"}) == 2
    assert r.get_sample_value("bastion_step_duration_seconds_count", {"outcome": "ok"}) == 2
    assert r.get_sample_value("bastion_trading_state", {"state": "active"}) == 1
    assert r.get_sample_value("bastion_position_drift_coin") == 0  # our fills explain the book
    assert r.get_sample_value("bastion_run_tool_calls") == 0
    assert r.get_sample_value("bastion_tool_calls_per_run_count") == 1
    assert r.get_sample_value("bastion_orders_total", {"outcome": "sent"}) == 2
    assert r.get_sample_value("bastion_orders_total", {"outcome": "filled"}) == 2
    assert r.get_sample_value("bastion_account_equity", {"currency": "BTC"}) > 0  # type: ignore[operator]
    assert runner.loop.status.orders_filled == 2


async def test_a_dry_run_skip_is_counted_as_dry_run(runner_factory: RunnerFactory) -> None:
    """The skip's reason survives the intent's own (empty) reason in the event and the metric."""
    runner = runner_factory(ScriptedAgent(perp_buy(10.0)), dry_run=True)
    events = _collect(runner)
    await runner.loop.step()
    [skipped] = [e.payload for e in events if e.kind is EventKind.ORDER_SKIPPED]
    assert skipped["reason"] == "dry_run"
    assert 'bastion_orders_total{outcome="dry_run"} 1.0' in runner.metrics.render().decode()
