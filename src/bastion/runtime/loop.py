"""The guarded loop: observe, decide, review, send; one step at a time.

One step::

    halt active?        -> cancel what rests (once per halt), record, return
    health re-check     -> lightweight checks when due; OK/WARN -> FAIL trips the halt
    observe()           -> one exchange snapshot (every call through resilience.call)
    agent.decide()      -> under the step timeout: a hung step is abandoned, the loop goes on
    risk.review()       -> pure; rejections carry the cap and the observed value
    send approved       -> halt re-checked right before each order; idempotency label per intent
    step_completed      -> the trace sink flushes; metrics and status updated

Sending is deliberately *outside* the step timeout: cancelling an in-flight order request would
leave us not knowing whether the exchange accepted it. Each send is bounded by the exchange
request timeout instead, and carries a label (``<run>-<step>-<n>``) so an order whose answer was
lost is recognisable on the book.

Between steps the loop waits in short slices and looks at the kill-switch flag each time, so a
``bastion kill`` from another process cancels resting orders within a fraction of a second.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from bastion.agent import Agent, Context, Decision, Observation, OrderIntent
from bastion.clock import Clock
from bastion.errors import BastionError, ErrorCode, HaltedError
from bastion.events import EventKind, Journal
from bastion.exchange.base import Exchange
from bastion.guard.drift import PositionBook
from bastion.guard.halt import Halt
from bastion.guard.health_guard import HealthGuard
from bastion.guard.risk import RiskLimits, Verdict, review
from bastion.market import Instrument, Order, OrderRequest, Ticker
from bastion.messages import GuardedLLM
from bastion.status import RuntimeStatus
from bastion.telemetry.metrics import Metrics

__all__ = ["Loop", "LoopConfig", "StepOutcome"]

_log = logging.getLogger(__name__)

# Exchange answers that mean "the venue refused this order" rather than "we could not ask".
_REFUSALS = {
    ErrorCode.BAD_REQUEST,
    ErrorCode.INSUFFICIENT_FUNDS,
    ErrorCode.NOT_FOUND,
    ErrorCode.FORBIDDEN,
}
# Failures after which we cannot tell whether the exchange accepted an order.
_UNKNOWN_OUTCOME = {ErrorCode.TIMEOUT, ErrorCode.NETWORK, ErrorCode.SERVER, ErrorCode.UNKNOWN}

StepStatus = Literal["ok", "halted", "timeout", "failed"]


@dataclass(frozen=True, slots=True)
class LoopConfig:
    """How the loop paces and bounds itself (filled from Settings by the runner)."""

    currency: str = "BTC"
    interval_seconds: float = 2.0
    step_timeout_seconds: float = 15.0
    dry_run: bool = False
    halt_poll_seconds: float = 0.2
    instruments_refresh_seconds: float = 300.0
    ticker_concurrency: int = 8
    drift_dust_coin: float = 1e-4
    drift_observations: int = 2


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """What one step did."""

    step: int
    status: StepStatus
    orders_sent: int = 0
    detail: str = ""


@dataclass(slots=True)
class _Counters:
    orders_sent: int = 0
    orders_filled: int = 0
    orders_rejected: int = 0
    steps: int = 0
    tracked: set[str] = field(default_factory=set)
    unconfirmed: set[str] = field(default_factory=set)  # labels of sends with no answer
    filled: dict[str, float] = field(default_factory=dict)  # order id -> filled amount seen


class Loop:
    """Runs an agent against an exchange inside the guard rails."""

    def __init__(
        self,
        *,
        run_id: str,
        agent: Agent,
        exchange: Exchange,
        halt: Halt,
        journal: Journal,
        clock: Clock,
        limits: RiskLimits,
        config: LoopConfig,
        metrics: Metrics | None = None,
        health: HealthGuard | None = None,
        llm: GuardedLLM | None = None,
    ) -> None:
        """``llm`` is lent to the agent every step as ``ctx.llm``."""
        self.run_id = run_id
        self.health = health
        self.llm = llm
        self.agent = agent
        self.exchange = exchange
        self.halt = halt
        self.journal = journal
        self.clock = clock
        self.limits = limits
        self.config = config
        self.metrics = metrics or Metrics()
        self._counts = _Counters()
        self._instruments: dict[str, Instrument] = {}
        self._instruments_at = float("-inf")
        self.book = PositionBook(
            dust_coin=config.drift_dust_coin, observations=config.drift_observations
        )
        self.status = RuntimeStatus(
            run_id=run_id,
            agent=f"{agent.name} {agent.version}",
            currency=config.currency,
            dry_run=config.dry_run,
        )

    # -- running ------------------------------------------------------------------------
    async def run(
        self,
        *,
        max_steps: int | None = None,
        duration_seconds: float | None = None,
        stop: asyncio.Event | None = None,
    ) -> int:
        """Step until ``max_steps``, ``duration_seconds`` or ``stop``; returns steps taken."""
        started = self.clock.monotonic()
        self._set_status(state="running")
        while True:
            if max_steps is not None and self._counts.steps >= max_steps:
                break
            tick_started = self.clock.monotonic()
            if duration_seconds is not None and tick_started - started >= duration_seconds:
                break
            await self.step()
            if max_steps is not None and self._counts.steps >= max_steps:
                break
            deadline = tick_started + self.config.interval_seconds
            if duration_seconds is not None:
                deadline = min(deadline, started + duration_seconds)
            if await self._wait(deadline, stop):
                break
        self._set_status(state="stopped")
        return self._counts.steps

    async def _wait(self, deadline: float, stop: asyncio.Event | None) -> bool:
        """Sleep until ``deadline`` in slices, enforcing a halt as soon as its flag appears.

        Returns True when ``stop`` was set.
        """
        while True:
            if stop is not None and stop.is_set():
                return True
            if self.halt.active():
                await self._enforce_halt()
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                return False
            await self.clock.sleep(min(self.config.halt_poll_seconds, remaining))

    async def step(self) -> StepOutcome:
        """One guarded step. Never raises for trading conditions; they become outcomes."""
        self._counts.steps += 1
        n = self._counts.steps
        t0 = self.clock.monotonic()
        if self.halt.active():
            outcome = await self._halted_step(n)
        else:
            outcome = await self._trading_step(n)
        elapsed = self.clock.monotonic() - t0
        self.metrics.steps.labels(outcome=outcome.status).inc()
        self.metrics.step_duration.observe(elapsed)
        self.journal.emit(
            EventKind.STEP_COMPLETED,
            {
                "step": n,
                "status": outcome.status,
                "orders_sent": outcome.orders_sent,
                "detail": outcome.detail,
                "elapsed_s": round(elapsed, 6),
            },
        )
        self._set_status(
            last_step=n,
            last_step_at=self.clock.now().isoformat(),
            last_outcome=outcome.status,
            last_detail=outcome.detail,
        )
        return outcome

    async def _halted_step(self, n: int) -> StepOutcome:
        """Reconcile only: cancel leftovers (an order in flight at the trip may have landed)."""
        await self._enforce_halt()
        ex, cur = self.exchange, self.config.currency
        try:
            if await ex.get_open_orders(cur):
                await self.halt.enforce(always=True)
            open_orders = tuple(await ex.get_open_orders(cur))
            await self._reconcile(open_orders)
            account = await ex.get_account_summary(cur)
            positions = tuple(await ex.get_positions(cur))
        except BastionError as exc:
            return StepOutcome(n, "halted", detail=f"halted; could not reconcile: {exc}")
        self._set_status(
            open_orders=open_orders,
            positions=positions,
            equity=account.equity,
            balance=account.balance,
        )
        return StepOutcome(n, "halted", detail="halted: reconcile only")

    async def _enforce_halt(self) -> None:
        """Mark the status halted and cancel what rests, once per halt (cheap to call often)."""
        self._set_status(state="halted", halt=self.halt.state())
        await self.halt.enforce()

    async def _trading_step(self, n: int) -> StepOutcome:
        if self.status.state == "halted":
            self.journal.emit(EventKind.TRADING_RESUMED, {"step": n})
            self.book.reset()  # resuming accepts the positions as they stand
        self._set_status(state="running", halt=None)
        if self.health is not None:
            await self.health.maybe_recheck()
            if self.halt.active():
                return StepOutcome(n, "halted", detail="halted by the health guard")
        try:
            async with asyncio.timeout(self.config.step_timeout_seconds):
                obs = await self.observe()
                if self.halt.active():  # observe() found drift and tripped the halt
                    return StepOutcome(n, "halted", detail="halted during observation")
                decision = await self.agent.decide(obs, self._context(n))
        except TimeoutError:
            detail = f"step {n} abandoned after {self.config.step_timeout_seconds:g} s"
            self.journal.emit(EventKind.STEP_TIMEOUT, {"step": n, "detail": detail})
            return StepOutcome(n, "timeout", detail=detail)
        except BastionError as exc:
            self.journal.emit(EventKind.STEP_FAILED, {"step": n, "error": exc.to_dict()})
            return StepOutcome(n, "failed", detail=str(exc))
        except Exception as exc:  # an agent bug must not kill the loop; it is recorded
            _log.exception("step %d failed", n)
            self.journal.emit(
                EventKind.STEP_FAILED, {"step": n, "error": {"kind": "agent", "repr": repr(exc)}}
            )
            return StepOutcome(n, "failed", detail=f"agent error: {exc!r}")
        self._record_decision(n, decision)
        verdicts = review(decision, obs, self.limits)
        for verdict in verdicts:
            self.journal.emit(EventKind.RISK_VERDICT, {"step": n, **verdict.to_dict()})
            if not verdict.approved:
                self.metrics.orders.labels(outcome="risk_rejected").inc()
        return await self._send_approved(n, verdicts)

    async def _send_approved(self, n: int, verdicts: Sequence[Verdict]) -> StepOutcome:
        sent = 0
        approved = [v.intent for v in verdicts if v.approved]
        for k, intent in enumerate(approved):
            try:
                if await self._send(n, k, intent):
                    sent += 1
            except HaltedError as exc:
                skipped = len(approved) - k
                self.journal.emit(
                    EventKind.ORDER_SKIPPED,
                    {"step": n, "reason": "halted", "skipped": skipped, "detail": str(exc)},
                )
                self.metrics.orders.labels(outcome="halted").inc(skipped)
                return StepOutcome(n, "halted", orders_sent=sent, detail=str(exc))
        return StepOutcome(n, "ok", orders_sent=sent)

    async def _send(self, n: int, k: int, intent: OrderIntent) -> bool:
        """Send one approved intent; True when the exchange accepted it."""
        self.halt.check()
        label = f"{self.run_id}-{n}-{k}"[:64]  # Deribit labels hold 64 characters
        if self.config.dry_run:
            self.journal.emit(
                EventKind.ORDER_SKIPPED,
                {"step": n, "reason": "dry_run", "label": label, **_intent_dict(intent)},
            )
            self.metrics.orders.labels(outcome="dry_run").inc()
            return False
        request = OrderRequest(
            instrument_name=intent.instrument_name,
            direction=intent.direction,
            amount=intent.amount,
            order_type=intent.order_type,
            price=intent.price,
            label=label,
            reduce_only=intent.reduce_only,
        )
        try:
            order = await self.exchange.place_order(request)
        except HaltedError:
            raise
        except BastionError as exc:
            refused = exc.code in _REFUSALS
            kind = EventKind.ORDER_REJECTED if refused else EventKind.ORDER_FAILED
            unknown = exc.code in _UNKNOWN_OUTCOME
            if unknown:
                self._counts.unconfirmed.add(label)
            self.journal.emit(
                kind,
                {
                    "step": n,
                    "label": label,
                    **_intent_dict(intent),
                    "error": exc.to_dict(),
                    "outcome_unknown": unknown,
                },
            )
            self.metrics.orders.labels(outcome="rejected" if refused else "failed").inc()
            self._counts.orders_rejected += 1
            return False
        self._counts.orders_sent += 1
        self._counts.tracked.add(order.order_id)
        self._apply_fill(order)
        self.metrics.orders.labels(outcome="sent").inc()
        self.journal.emit(EventKind.ORDER_SENT, {"step": n, **_order_dict(order)})
        if order.order_state == "filled":
            self._record_fill(n, order)
        self._set_status(orders_sent=self._counts.orders_sent)
        return True

    # -- observing ----------------------------------------------------------------------
    async def build_observation(self) -> Observation:
        """One snapshot of account and market, with no side effect (the health check uses it)."""
        ex, cur = self.exchange, self.config.currency
        now_ms = await ex.get_time()
        instruments = await self._current_instruments(now_ms)
        index_price = await ex.get_index_price(cur)
        account = await ex.get_account_summary(cur)
        positions = tuple(await ex.get_positions(cur))
        open_orders = tuple(await ex.get_open_orders(cur))
        names = self.agent.watchlist(list(instruments.values()), index_price, now_ms)
        names = list(dict.fromkeys([*names, *(p.instrument_name for p in positions)]))
        return Observation(
            time_ms=now_ms,
            currency=cur,
            index_price=index_price,
            account=account,
            positions=positions,
            open_orders=open_orders,
            tickers=await self._tickers(names),
            instruments=instruments,
        )

    async def observe(self) -> Observation:
        """The step's snapshot: reconciles orders that left the book, checks drift, records."""
        obs = await self.build_observation()
        cur, account = self.config.currency, obs.account
        index_price, positions, open_orders = obs.index_price, obs.positions, obs.open_orders
        await self._reconcile(open_orders)
        await self._check_drift(obs)
        self.metrics.equity.labels(currency=cur).set(account.equity)
        self._set_status(
            equity=account.equity,
            balance=account.balance,
            index_price=index_price,
            positions=positions,
            open_orders=open_orders,
        )
        self.journal.emit(EventKind.OBSERVATION, _observation_dict(self._counts.steps, obs))
        return obs

    async def _check_drift(self, obs: Observation) -> None:
        """Seed the expected book on the first look; afterwards, persistent drift halts."""
        if not self.book.seeded:
            self.book.seed(obs.positions)
            return
        drift = self.book.check(
            obs.positions, obs.instruments, now_ms=obs.time_ms, index_price=obs.index_price
        )
        if drift:
            await self.halt.trip(
                "position_drift", who="bastion", detail={"drift": [d.to_dict() for d in drift]}
            )

    def _apply_fill(self, order: Order) -> None:
        """Move the expected book by what this order filled since we last looked."""
        seen = self._counts.filled.get(order.order_id, 0.0)
        delta = order.filled_amount - seen
        if delta > 0:
            self.book.apply_fill(order.instrument_name, order.direction, delta)
            self._counts.filled[order.order_id] = order.filled_amount

    async def _current_instruments(self, now_ms: int) -> dict[str, Instrument]:
        stale = self.clock.monotonic() - self._instruments_at > (
            self.config.instruments_refresh_seconds
        )
        expired = any(i.expiration_ms <= now_ms for i in self._instruments.values())
        if stale or expired or not self._instruments:
            listed = await self.exchange.get_instruments(self.config.currency)
            self._instruments = {i.name: i for i in listed}
            self._instruments_at = self.clock.monotonic()
        return self._instruments

    async def _tickers(self, names: Sequence[str]) -> dict[str, Ticker]:
        gate = asyncio.Semaphore(self.config.ticker_concurrency)

        async def one(name: str) -> Ticker:
            async with gate:
                return await self.exchange.get_ticker(name)

        results = await asyncio.gather(*(one(n) for n in names))
        return {t.instrument_name: t for t in results}

    async def _reconcile(self, open_orders: Sequence[Order]) -> None:
        """Record what became of our orders since the last step.

        An order whose send got no answer is recognised on the book by its label and recorded
        as sent after all. An order that left the book is looked up: a fill is recorded, as is
        a cancel from outside. An id is forgotten only once its fate is recorded, so a failed
        lookup is retried next step instead of losing the fill from the trace.
        """
        for order in open_orders:
            if order.order_id in self._counts.tracked:
                self._apply_fill(order)  # a partial fill while resting
            if order.label in self._counts.unconfirmed:
                self._counts.unconfirmed.discard(order.label)
                self._counts.tracked.add(order.order_id)
                self._apply_fill(order)
                self.journal.emit(
                    EventKind.ORDER_SENT,
                    {"step": self._counts.steps, "confirmed_late": True, **_order_dict(order)},
                )
        still_open = {o.order_id for o in open_orders}
        for order_id in sorted(self._counts.tracked - still_open):
            order = await self.exchange.get_order_state(order_id)
            self._counts.tracked.discard(order_id)
            self._apply_fill(order)
            self._counts.filled.pop(order_id, None)
            if order.order_state == "filled":
                self._record_fill(self._counts.steps, order)
            else:
                self.journal.emit(
                    EventKind.ORDER_REJECTED
                    if order.order_state == "rejected"
                    else EventKind.ORDER_SKIPPED,
                    {"step": self._counts.steps, "reason": order.order_state, **_order_dict(order)},
                )

    def _record_fill(self, n: int, order: Order) -> None:
        self._counts.orders_filled += 1
        self.metrics.orders.labels(outcome="filled").inc()
        self.journal.emit(EventKind.ORDER_FILLED, {"step": n, **_order_dict(order)})
        self._set_status(orders_filled=self._counts.orders_filled)

    # -- helpers ------------------------------------------------------------------------
    def _context(self, n: int) -> Context:
        return Context(
            run_id=self.run_id,
            step=n,
            clock=self.clock,
            dry_run=self.config.dry_run,
            llm=self.llm,
        )

    def _record_decision(self, n: int, decision: Decision) -> None:
        self.journal.emit(
            EventKind.DECISION,
            {
                "step": n,
                "rationale": decision.rationale,
                "intents": [_intent_dict(i) for i in decision.intents],
            },
        )

    def _set_status(self, **changes: Any) -> None:
        self.status = replace(self.status, **changes)


def _intent_dict(intent: OrderIntent) -> dict[str, Any]:
    return {
        "instrument": intent.instrument_name,
        "direction": intent.direction,
        "amount": intent.amount,
        "order_type": intent.order_type,
        "price": intent.price,
        "reduce_only": intent.reduce_only,
        "reason": intent.reason,
    }


def _order_dict(order: Order) -> dict[str, Any]:
    return {
        "order_id": order.order_id,
        "instrument": order.instrument_name,
        "direction": order.direction,
        "amount": order.amount,
        "filled_amount": order.filled_amount,
        "price": order.price,
        "average_price": order.average_price,
        "order_state": order.order_state,
        "label": order.label,
    }


def _observation_dict(n: int, obs: Observation) -> dict[str, Any]:
    return {
        "step": n,
        "time_ms": obs.time_ms,
        "index_price": obs.index_price,
        "equity": obs.account.equity,
        "balance": obs.account.balance,
        "available_funds": obs.account.available_funds,
        "positions": [
            {"instrument": p.instrument_name, "size": p.size, "mark_price": p.mark_price}
            for p in obs.positions
        ],
        "open_orders": [o.order_id for o in obs.open_orders],
        "tickers": {
            name: {
                "mark": t.mark_price,
                "bid": t.best_bid_price,
                "ask": t.best_ask_price,
                "delta": t.delta,
            }
            for name, t in obs.tickers.items()
        },
    }
