"""The guarded loop: observe, judge, decide, review, send; one step at a time.

One step::

    halt active?        -> reconcile only: cancel what rests, look at the holdings, return
    health re-check     -> lightweight checks when due; the reading goes to the ledger
    observe()           -> the Observer's snapshot (every call through resilience.call), then
                           the OrderTracker reconciles our orders against it
    limits.check()      -> every halt trigger (health, cost cap, drift) -> halt.trip(reason)
    REDUCING and held?  -> the decision is the flatten (guard.flatten), the agent not asked
    agent.decide()      -> under the step timeout: a hung step is abandoned, the loop goes on
    approvals           -> the orders a person approved since are taken from the queue
    risk.review()       -> pure; rejections carry the cap and the observed value; approved
                           orders are reviewed again as things stand now
    needs_approval      -> queued for a person (bastion approvals, the console), never sent
    checkpoint          -> the labels about to be sent, durable before any send (write-ahead)
    send approved       -> halt re-checked right before each order; idempotency label per intent
    step_completed      -> with elapsed time and the halt flag as the step ended; checkpoint

The loop only *emits*: the trace, the store, the metrics (:class:`~bastion.telemetry.sink.
MetricsSink`) and the console's status (:class:`~bastion.runtime.status_sink.StatusSink`) are
sinks on the journal. The status sink is the loop's own (``Loop.status`` reads it); the
metrics sink is subscribed when ``metrics`` is given.

Observe and decide share one deadline, ``step_timeout_seconds`` from the start of observing.
The limits are checked between them, also when the observation failed (the ledger's triggers
still judge), and once more when :meth:`Loop.run` ends; see :mod:`bastion.guard.limits` for
when each trigger trips.

Sending is deliberately *outside* the step timeout: cancelling an in-flight order request would
leave us not knowing whether the exchange accepted it. Each send is bounded by the exchange
request timeout instead, and carries a label (``<run>-<step>-<n>``) so an order whose answer was
lost is recognisable on the book.

An order the review marks ``needs_approval`` becomes an entry in the approvals queue
(:class:`~bastion.guard.approvals.Approvals`), asked once however often the agent repeats it
(at whatever price).
The loop remembers what it asked: once a person approves, the next trading step reviews the
intent again against the caps and the account as they stand then (a price that left the collar,
a position that grew, a throttle that filled are all refused) and sends it only if it passes; a
rejected or expired entry is dropped. Only the run that asked acts on an answer, and a halt
ends the wait: on resuming, and when the run ends (:meth:`Loop.withdraw_approvals`), every
entry still waiting is rejected as ``bastion`` with the reason, so no one approves an order
that will never be sent and no approval given before a halt fires after it. Without a queue
such an intent is not sent.

The order-rate throttle reads the loop's own record of its recent sends (monotonic clock
times), kept here because the review itself is pure.

Between steps the loop waits in short slices and looks at the kill-switch flag each time, so a
``bastion kill`` from another process cancels resting orders within a fraction of a second.

Tracing (:mod:`bastion.telemetry.tracing`): the run is an ``invoke_agent <agent>`` span, each
step a ``bastion.step`` span under it, and a trading step's phases ``bastion.observe``,
``bastion.decide``, ``bastion.review`` and ``bastion.send`` spans under that; the calls made in
them (exchange, LLM, tools) are their children (phase spans are made only when the step's
span records, i.e. when spans are exported). The step span ends with the step's status, the
trading state and the halt as attributes, and an event per risk verdict and per halt trip.
The run's ``run_id`` and each step's ``step`` are bound as structlog context variables, so every
log line written meanwhile carries them (with the span's trace id).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Literal

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode, Tracer
from structlog.contextvars import bound_contextvars

from bastion.agent import Agent, Context, Decision, Observation, OrderIntent, StatefulAgent
from bastion.clock import Clock
from bastion.errors import BastionError, ErrorCode, HaltedError
from bastion.events import Event, EventKind, Journal
from bastion.exchange.base import Exchange
from bastion.guard.approvals import ApprovalAlreadyDecided, Approvals, ApprovalStatus
from bastion.guard.drift import PositionBook
from bastion.guard.flatten import FLATTEN_SOURCE, flatten_decision
from bastion.guard.halt import Halt
from bastion.guard.health_guard import HealthGuard
from bastion.guard.limits import Breach, Ledger, Limits
from bastion.guard.risk import ORDER_RATE_WINDOW_SECONDS, RiskLimits, Verdict, review
from bastion.market import Order
from bastion.messages import GuardedLLM
from bastion.runtime.checkpoint import Checkpoint, CheckpointFile, OutboxEntry
from bastion.runtime.flag_watch import FlagWatcher, FleetPoller
from bastion.runtime.observe import Observer
from bastion.runtime.orders import OrderTracker, order_request
from bastion.runtime.payloads import ObservationPayloads, book_payload, intent_payload
from bastion.runtime.recovery import Recovery, recover
from bastion.runtime.status_sink import StatusSink
from bastion.status import HaltState, RuntimeStatus, TradingState
from bastion.telemetry.metrics import Metrics
from bastion.telemetry.sink import MetricsSink
from bastion.tools import Toolbox

__all__ = ["MAX_WAITING_APPROVALS", "Loop", "LoopConfig", "StepOutcome"]

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

MAX_WAITING_APPROVALS = 20
"""Most order approvals one loop keeps waiting at once: an agent that asks for a different
order every step must not flood the people who answer. Past it, a new one is not sent."""

StepStatus = Literal["ok", "halted", "timeout", "failed"]


@dataclass(frozen=True, slots=True)
class LoopConfig:
    """How the loop paces and bounds itself (filled from Settings by the runner)."""

    currency: str = "BTC"
    interval_seconds: float = 2.0
    step_timeout_seconds: float = 15.0
    dry_run: bool = False
    halt_poll_seconds: float = 0.2
    watch_flag: bool = False
    """Watch the kill-switch flag and poll the store's fleet halt for the whole run
    (:mod:`bastion.runtime.flag_watch`), so a touch cancels resting orders at once, also in the
    middle of a step. On in real runs; off by default so a test's simulated clock decides alone
    when the loop looks."""
    instruments_refresh_seconds: float = 300.0
    ticker_concurrency: int = 8
    drift_dust_coin: float = 1e-4
    drift_observations: int = 2
    approval_ttl_seconds: float = 900.0


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """What one step did."""

    step: int
    status: StepStatus
    orders_sent: int = 0
    detail: str = ""


def _same_ask(a: OrderIntent, b: OrderIntent) -> bool:
    """The same question for a person: all but the limit price and the agent's wording."""
    return (a.instrument_name, a.direction, a.amount, a.order_type, a.reduce_only) == (
        b.instrument_name,
        b.direction,
        b.amount,
        b.order_type,
        b.reduce_only,
    )


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
        tracer: Tracer | None = None,
        health: HealthGuard | None = None,
        llm: GuardedLLM | None = None,
        observer: Observer | None = None,
        halt_limits: Limits | None = None,
        tools: Toolbox | None = None,
        approvals: Approvals | None = None,
        checkpoints: CheckpointFile | None = None,
    ) -> None:
        """``limits`` are the risk caps of every intent; ``halt_limits`` the halt triggers
        (:meth:`Limits.default` unless given). ``llm`` is lent to the agent every step as
        ``ctx.llm``, ``tools`` as ``ctx.tools`` (its allowlisted offer, bound to the step).
        ``observer`` defaults to one watching the agent's watchlist. ``approvals`` is the
        queue ``needs_approval`` orders wait in; without it they are not sent. ``checkpoints``
        is where the step's outbox and, once it completes, the step and the agent's state are
        made durable (:mod:`bastion.runtime.checkpoint`); the runner passes it when it holds
        the run lock. ``tracer`` makes the run's, steps' and phases' spans (none without)."""
        self.run_id = run_id
        self.tracer: Tracer = tracer or trace.NoOpTracer()
        self._span: Span = trace.INVALID_SPAN  # the step in progress
        self.health = health
        self.llm = llm
        self.tools = tools
        self.agent = agent
        self.exchange = exchange
        self.halt = halt
        self.journal = journal
        self.clock = clock
        self.limits = limits
        self.config = config
        self.halt_limits = halt_limits or Limits.default()
        self.observer = observer or Observer(
            exchange=exchange,
            clock=clock,
            currency=config.currency,
            watchlist=agent.watchlist,
            instruments_refresh_seconds=config.instruments_refresh_seconds,
            ticker_concurrency=config.ticker_concurrency,
        )
        book = PositionBook(
            dust_coin=config.drift_dust_coin, observations=config.drift_observations
        )
        self.orders = OrderTracker(
            exchange=exchange, journal=journal, book=book, currency=config.currency
        )
        self.ledger = Ledger(book=book)
        self._status = StatusSink(
            RuntimeStatus(
                run_id=run_id,
                agent=f"{agent.name} {agent.version}",
                currency=config.currency,
                dry_run=config.dry_run,
            )
        )
        journal.subscribe(self._status)
        journal.subscribe(self._count_tool_calls)
        if metrics is not None:
            journal.subscribe(MetricsSink(metrics))
        self.approvals = approvals
        self.checkpoints = checkpoints
        self._asked: dict[str, OrderIntent] = {}  # approval id -> the intent waiting for it
        self._submits: deque[float] = deque()  # monotonic times of recent sends (the throttle)
        self._steps = 0
        self._halted = False  # seen halted since the last trading step
        self._observation_payload = ObservationPayloads()  # each instrument traced once

    @property
    def status(self) -> RuntimeStatus:
        """The console's picture, folded from this loop's events by its status sink."""
        return self._status.status

    # -- running ------------------------------------------------------------------------
    async def run(
        self,
        *,
        max_steps: int | None = None,
        duration_seconds: float | None = None,
        stop: asyncio.Event | None = None,
    ) -> int:
        """Step until ``max_steps``, ``duration_seconds`` or ``stop``; returns steps taken.

        The limits are checked once more at the end, so a notice the last step recorded (a
        budget its LLM call used up) still halts; not after a halt seen since the last trading
        step, whose notices were judged already.
        """
        agent = self.agent
        attributes = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": agent.name,
            "gen_ai.agent.version": agent.version,
            "bastion.run_id": self.run_id,
        }
        with (
            self.tracer.start_as_current_span(f"invoke_agent {agent.name}", attributes=attributes),
            bound_contextvars(run_id=self.run_id),
        ):
            return await self._watched(max_steps, duration_seconds, stop)

    async def _watched(
        self, max_steps: int | None, duration_seconds: float | None, stop: asyncio.Event | None
    ) -> int:
        watchers: list[FlagWatcher | FleetPoller] = []
        if self.config.watch_flag:
            poll = self.config.halt_poll_seconds
            watchers.append(FlagWatcher(self.halt.flag_path, self._enforce_halt, poll_seconds=poll))
            if self.halt.shares_a_store:
                watchers.append(FleetPoller(self.halt.follow_fleet, poll_seconds=poll))
        for watcher in watchers:
            watcher.start()
        try:
            return await self._run(max_steps, duration_seconds, stop)
        finally:
            for watcher in watchers:
                await watcher.aclose()

    async def _run(
        self, max_steps: int | None, duration_seconds: float | None, stop: asyncio.Event | None
    ) -> int:
        started = self.clock.monotonic()
        while True:
            if max_steps is not None and self._steps >= max_steps:
                break
            tick_started = self.clock.monotonic()
            if duration_seconds is not None and tick_started - started >= duration_seconds:
                break
            await self.step()
            if max_steps is not None and self._steps >= max_steps:
                break
            deadline = tick_started + self.config.interval_seconds
            if duration_seconds is not None:
                deadline = min(deadline, started + duration_seconds)
            if await self._wait(deadline, stop):
                break
        if not self._halted and not self.halt.active():
            await self._check_limits(None)
        return self._steps

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
        self._steps += 1
        n = self._steps
        with (
            self.tracer.start_as_current_span(
                "bastion.step", attributes={"bastion.step": n}
            ) as span,
            bound_contextvars(step=n),
        ):
            self._span = span
            try:
                return await self._step(n, span)
            finally:
                self._span = trace.INVALID_SPAN

    async def _step(self, n: int, span: Span) -> StepOutcome:
        t0 = self.clock.monotonic()
        self.ledger.start_step(t0)
        book: dict[str, Any] | None = None
        if self.halt.trading_state() is TradingState.HALTED:
            outcome, book = await self._halted_step(n)
        else:
            outcome = await self._trading_step(n)
        elapsed = self.clock.monotonic() - t0
        halt = self.halt.state()
        payload: dict[str, Any] = {
            "step": n,
            "status": outcome.status,
            "orders_sent": outcome.orders_sent,
            "detail": outcome.detail,
            "elapsed_s": round(elapsed, 6),
            "at": self.clock.now().isoformat(),
            "halt": halt.to_dict() if halt is not None else None,
        }
        if book is not None:
            payload["book"] = book
        if self.ledger.book.gap_coin is not None:  # the drift check's, for the metrics sink
            payload["drift_coin"] = self.ledger.book.gap_coin
        self.journal.emit(EventKind.STEP_COMPLETED, payload)
        _log.debug("step %d %s in %.3f s", n, outcome.status, elapsed)  # BASTION_LOG_LEVEL=DEBUG
        if span.is_recording():
            _describe_step(span, outcome, self.halt.trading_state(), halt)
        self._checkpoint(n)
        return outcome

    def _phase(self, name: str) -> AbstractContextManager[object]:
        """A phase's span, only when the step's span records: a non-recording phase span
        would cost the step ~10 µs for nothing (its lines keep the step's span id instead)."""
        if self._span.is_recording():
            return self.tracer.start_as_current_span(name)
        return nullcontext()

    # -- durability ---------------------------------------------------------------------
    def _checkpoint(self, n: int, outbox: Sequence[OutboxEntry] = ()) -> None:
        """Make step ``n`` durable: completed (no outbox), or about to send ``outbox``.

        The write-ahead of an outbox raises, so nothing is sent that a restart could not find;
        a completed step's failure is logged and retried by the next step.
        """
        if self.checkpoints is None:
            return
        state = self.agent.snapshot() if isinstance(self.agent, StatefulAgent) else None
        checkpoint = Checkpoint(
            run_id=self.run_id,
            step=n - 1 if outbox else n,
            at=self.clock.now().isoformat(),
            agent=f"{self.agent.name} {self.agent.version}",
            agent_state=state,
            outbox=tuple(outbox),
        )
        if outbox:
            self.checkpoints.save(checkpoint)
            return
        try:
            self.checkpoints.save(checkpoint)
        except OSError:
            _log.exception("could not save the checkpoint of step %d", n)

    async def recover(self, crashed_run_id: str) -> Recovery:
        """Before the first step after a crash: restore the agent's state, adopt the crashed
        run's orders by their labels, record what was found (:mod:`bastion.runtime.recovery`)."""
        if self.checkpoints is None:
            raise RuntimeError("recovery needs the run's checkpoint file")
        return await recover(
            crashed_run_id=crashed_run_id,
            checkpoints=self.checkpoints,
            agent=self.agent,
            exchange=self.exchange,
            tracker=self.orders,
            currency=self.config.currency,
            journal=self.journal,
        )

    async def _halted_step(self, n: int) -> tuple[StepOutcome, dict[str, Any] | None]:
        """Reconcile only: cancel leftovers (an order in flight at the trip may have landed)."""
        await self._enforce_halt()
        try:
            if await self.exchange.get_open_orders(self.config.currency):
                await self.halt.enforce(always=True)
            held = await self.observer.holdings()
            await self.orders.reconcile(n, held.open_orders)
        except BastionError as exc:
            return StepOutcome(n, "halted", detail=f"halted; could not reconcile: {exc}"), None
        book = book_payload(held.account, held.positions, held.open_orders)
        return StepOutcome(n, "halted", detail="halted: reconcile only"), book

    async def _enforce_halt(self) -> None:
        """Cancel what rests, once per halt (cheap to call often); the halt emits what it did."""
        self._halted = True
        await self.halt.enforce()

    def _count_tool_calls(self, event: Event) -> None:
        """Feed the tool triggers: every call, a failed or refused one counted as failed."""
        if event.kind is EventKind.TOOL_CALL:
            failed = "error" in event.payload
        elif event.kind is EventKind.TOOL_REFUSED:
            failed = True
        else:
            return
        self.ledger.record_tool_call(self.clock.monotonic(), failed=failed)

    async def _trading_step(self, n: int) -> StepOutcome:
        """A step that may send: anything when ACTIVE, reduce-only orders when REDUCING."""
        if self._halted and self.halt.trading_state() is TradingState.ACTIVE:
            self._halted = False
            self.journal.emit(EventKind.TRADING_RESUMED, {"step": n})
            self.ledger.reset()  # resuming accepts the positions, spend and health as they stand
            await self.withdraw_approvals("the run halted before the order was sent", step=n)
        if self.health is not None:
            await self.health.maybe_recheck(self.ledger)
        deadline = asyncio.get_running_loop().time() + self.config.step_timeout_seconds
        with self._phase("bastion.observe"):
            observed = await self._observe_by(deadline, n)
        breach = await self._check_limits(observed if isinstance(observed, Observation) else None)
        reducing = self.halt.trading_state() is TradingState.REDUCING
        if breach is not None and not (reducing and isinstance(observed, Observation)):
            return StepOutcome(n, "halted", detail=f"halted by {breach.who}: {breach.reason}")
        if isinstance(observed, StepOutcome):
            return observed
        obs = observed
        if self.halt.trading_state() is TradingState.HALTED:  # raised while we observed
            return StepOutcome(n, "halted", detail="halted during observation")
        with self._phase("bastion.decide"):
            decided = await self._decide(n, obs, deadline, reducing=reducing)
        if isinstance(decided, StepOutcome):
            return decided
        return await self._review_and_send(n, obs, *decided)

    async def _review_and_send(
        self, n: int, obs: Observation, decision: Decision, flattening: bool
    ) -> StepOutcome:
        """Judge the decision against the caps as things stand now; send what passes."""
        # What the ledger learnt while the agent decided (a budget used up by its own LLM call)
        # halts before anything is sent; without an observation the drift trigger stays silent.
        breach = await self._check_limits(None)
        if breach is not None:
            return StepOutcome(n, "halted", detail=f"halted by {breach.who}: {breach.reason}")
        reducing = self.halt.trading_state() is TradingState.REDUCING
        if flattening and not reducing:  # a person resumed: the positions are theirs to keep
            return StepOutcome(n, "ok", detail="trading resumed before the flatten was sent")
        with self._phase("bastion.review"):
            verdicts = await self._review(n, obs, decision, reducing)
        with self._phase("bastion.send"):
            return await self._send_approved(n, verdicts)

    async def _review(
        self, n: int, obs: Observation, decision: Decision, reducing: bool
    ) -> list[Verdict]:
        """The verdicts on the decision (and on what people approved), recorded; the intents
        that need a person asked."""
        answered = await self._answered(n)
        now = self.clock.monotonic()
        while self._submits and self._submits[0] <= now - ORDER_RATE_WINDOW_SECONDS:
            self._submits.popleft()
        verdicts = review(
            decision,
            obs,
            self.limits,
            now=now,
            recent_submits=self._submits,
            reducing=reducing,
            approved=[intent for _, intent in answered],
        )
        for k, verdict in enumerate(verdicts):
            payload: dict[str, Any] = {"step": n, **verdict.to_dict()}
            if reducing:  # the replay audit reviews the step again under the same state
                payload["reducing"] = True
            if k < len(answered):
                payload["approval_id"] = answered[k][0]
            self.journal.emit(EventKind.RISK_VERDICT, payload)
            if self._span.is_recording():
                self._span.add_event("bastion.risk_verdict", _verdict_event(verdict))
        await self._ask(n, [v for v in verdicts[len(answered) :] if v.needs_approval])
        return list(verdicts)

    async def _decide(
        self, n: int, obs: Observation, deadline: float, *, reducing: bool
    ) -> tuple[Decision, bool] | StepOutcome:
        """The step's decision and whether it is a flatten, or the outcome of a failed decide.

        REDUCING means getting flat: while anything is held the loop closes it (in this very
        step when this step's observation tripped it) and the agent is not asked.
        """
        if reducing:
            flatten = flatten_decision(obs, why=self._flatten_why())
            if flatten.intents:
                self._record_decision(n, flatten, source=FLATTEN_SOURCE)
                return flatten, True
        try:
            async with asyncio.timeout_at(deadline):
                decision = await self.agent.decide(obs, self._context(n))
        except Exception as exc:  # an agent bug must not kill the loop; it is recorded
            return self._failure(n, exc)
        self._record_decision(n, decision)
        return decision, False

    async def _answered(self, n: int) -> list[tuple[str, OrderIntent]]:
        """The intents a person approved since the last step, as (approval id, intent).

        A rejected or expired entry is forgotten; a store that cannot be read leaves every
        entry waiting for the next step (recorded), so nothing is sent on a guess.
        """
        if self.approvals is None or not self._asked:
            return []
        answered: list[tuple[str, OrderIntent]] = []
        try:
            await self.approvals.expire()
            for approval_id in list(self._asked):
                record = await self.approvals.get(approval_id)
                if record is None or record.pending:
                    continue
                intent = self._asked.pop(approval_id)
                self.journal.emit(
                    EventKind.APPROVAL_RESOLVED,
                    {
                        "step": n,
                        "approval_id": approval_id,
                        "status": record.status.value,
                        "decided_by": record.decided_by,
                        **intent_payload(intent),
                    },
                )
                if record.status is ApprovalStatus.APPROVED:
                    answered.append((approval_id, intent))
        except Exception as exc:  # the store is I/O: its failure must not end the step
            self._approvals_failed(n, "read", exc)
        return answered

    async def withdraw_approvals(self, why: str, *, step: int | None = None) -> int:
        """Stop waiting for every order approval this loop asked for; returns how many.

        Each entry still pending is rejected as ``bastion`` with ``why`` (one a person answered
        meanwhile keeps that answer) and recorded as resolved ``withdrawn``; nothing is sent.
        """
        if self.approvals is None or not self._asked:
            return 0
        withdrawn = 0
        for approval_id, intent in list(self._asked.items()):
            try:
                await self.approvals.decide(approval_id, False, "bastion", why)
            except ApprovalAlreadyDecided:
                pass
            except Exception as exc:  # the entry expires at its TTL instead
                self._approvals_failed(step or self._steps, "withdraw", exc)
            del self._asked[approval_id]
            withdrawn += 1
            self.journal.emit(
                EventKind.APPROVAL_RESOLVED,
                {
                    "step": step,
                    "approval_id": approval_id,
                    **intent_payload(intent),
                    "status": "withdrawn",
                    "why": why,
                },
            )
        return withdrawn

    async def _ask(self, n: int, verdicts: Sequence[Verdict]) -> None:
        """Queue each intent that needs a person, once: a repeat of one already waiting (the
        same order at another price, as a mark moves) is not asked again."""
        for verdict in verdicts:
            intent = verdict.intent
            if self.approvals is None or self.config.dry_run:
                # A dry run (``bastion smoke`` beside a live run) must not ask people questions.
                self.journal.emit(
                    EventKind.ORDER_SKIPPED,
                    {
                        **intent_payload(intent),
                        "step": n,
                        "stage": "review",
                        "reason": "dry_run" if self.config.dry_run else "no_approvals_queue",
                    },
                )
                continue
            if any(_same_ask(intent, asked) for asked in self._asked.values()):
                continue
            if len(self._asked) >= MAX_WAITING_APPROVALS:
                self.journal.emit(
                    EventKind.ORDER_SKIPPED,
                    {
                        **intent_payload(intent),
                        "step": n,
                        "stage": "review",
                        "reason": "approvals_full",
                        "waiting": len(self._asked),
                    },
                )
                continue
            subject = {
                **intent_payload(intent),
                "cap": verdict.cap,
                "limit": verdict.limit,
                "observed": verdict.observed,
                "step": n,
            }
            try:
                record = await self.approvals.request(
                    "order",
                    subject,
                    verdict.reason,
                    run_id=self.run_id,
                    ttl_seconds=self.config.approval_ttl_seconds,
                )
            except Exception as exc:  # not queued: the intent is simply not sent
                self._approvals_failed(n, "request", exc)
                continue
            self._asked[record.id] = intent

    def _approvals_failed(self, n: int, stage: str, exc: Exception) -> None:
        error = exc.to_dict() if isinstance(exc, BastionError) else {"repr": repr(exc)[:500]}
        self.journal.emit(
            EventKind.STEP_FAILED,
            {"step": n, "stage": f"approvals_{stage}", "error": {"kind": "approvals", **error}},
        )

    def _failure(self, n: int, exc: Exception) -> StepOutcome:
        """Record why the step's observe or decide did not finish, as an outcome."""
        trace.get_current_span().record_exception(exc)  # the phase's span
        if isinstance(exc, TimeoutError):
            detail = f"step {n} abandoned after {self.config.step_timeout_seconds:g} s"
            self.journal.emit(EventKind.STEP_TIMEOUT, {"step": n, "detail": detail})
            return StepOutcome(n, "timeout", detail=detail)
        if isinstance(exc, BastionError):
            self.journal.emit(EventKind.STEP_FAILED, {"step": n, "error": exc.to_dict()})
            return StepOutcome(n, "failed", detail=str(exc))
        _log.error("step %d failed", n, exc_info=exc)
        self.journal.emit(
            EventKind.STEP_FAILED, {"step": n, "error": {"kind": "agent", "repr": repr(exc)}}
        )
        return StepOutcome(n, "failed", detail=f"agent error: {exc!r}")

    async def _check_limits(self, obs: Observation | None) -> Breach | None:
        """Ask every halt trigger; the first breach trips the halt (the rest ride along)."""
        self.ledger.now = self.clock.monotonic()
        breaches = self.halt_limits.check(obs, self.ledger)
        if not breaches:
            return None
        first, rest = breaches[0], breaches[1:]
        detail = dict(first.detail)
        if rest:
            detail["also"] = [b.to_dict() for b in rest]
        # The strictest stop asked for wins: any breach that wants a full halt makes it one,
        # and the halt lapses only if every breach lapses (then at the latest of them).
        full = any(b.state is TradingState.HALTED for b in breaches)
        if not full and self.halt.trading_state() is TradingState.REDUCING:
            return None  # already reducing: the step goes on, reduce-only, as the halt says
        lapses = [b.until for b in breaches]
        if self._span.is_recording():
            self._span.add_event(
                "bastion.halt_tripped",
                {"bastion.halt.reason": first.reason, "bastion.halt.who": first.who},
            )
        await self.halt.trip(
            first.reason,
            who=first.who,
            detail=detail,
            state=TradingState.HALTED if full else TradingState.REDUCING,
            until=max(u for u in lapses if u is not None) if None not in lapses else None,
        )
        self._halted = True
        return first

    async def _send_approved(self, n: int, verdicts: Sequence[Verdict]) -> StepOutcome:
        sent = 0
        approved = [v.intent for v in verdicts if v.approved]
        if approved and not self.config.dry_run:
            try:
                outbox = [OutboxEntry(self._label(n, k), i) for k, i in enumerate(approved)]
                self._checkpoint(n, outbox)
            except OSError as exc:  # a send a restart could not find is not sent
                return self._unwritable_outbox(n, approved, exc)
        for k, intent in enumerate(approved):
            try:
                if await self._send(n, k, intent):
                    sent += 1
            except HaltedError as exc:
                skipped = len(approved) - k
                self.journal.emit(
                    EventKind.ORDER_SKIPPED,
                    {
                        "step": n,
                        "stage": "send",
                        "reason": "halted",
                        "skipped": skipped,
                        "detail": str(exc),
                    },
                )
                return StepOutcome(n, "halted", orders_sent=sent, detail=str(exc))
        return StepOutcome(n, "ok", orders_sent=sent)

    def _unwritable_outbox(
        self, n: int, approved: Sequence[OrderIntent], exc: OSError
    ) -> StepOutcome:
        detail = (
            f"checkpoint {exc.filename or ''} could not be written ({exc.strerror or exc}): "
            "nothing sent, since a restart could not find the orders; free the disk"
        )
        for k, intent in enumerate(approved):
            self.journal.emit(
                EventKind.ORDER_SKIPPED,
                {
                    **intent_payload(intent),
                    "step": n,
                    "stage": "send",
                    "reason": "checkpoint_unwritable",
                    "label": self._label(n, k),
                    "detail": detail,
                },
            )
        return StepOutcome(n, "failed", detail=detail)

    def _label(self, n: int, k: int) -> str:
        """The idempotency label of the ``k``-th order of step ``n``: ``<run>-<step>-<k>``."""
        return f"{self.run_id}-{n}-{k}"[:64]  # Deribit labels hold 64 characters

    async def _send(self, n: int, k: int, intent: OrderIntent) -> bool:
        """Send one approved intent; True when the exchange accepted it."""
        self.halt.check(reduce_only=intent.reduce_only)
        label = self._label(n, k)
        if self.config.dry_run:
            self.journal.emit(
                EventKind.ORDER_SKIPPED,
                {
                    **intent_payload(intent),  # first: its "reason" is the agent's, not the skip's
                    "step": n,
                    "stage": "send",
                    "reason": "dry_run",
                    "label": label,
                },
            )
            return False
        self._submits.append(self.clock.monotonic())
        try:
            order = await self.exchange.place_order(order_request(intent, label))
        except HaltedError:
            raise
        except BastionError as exc:
            refused = exc.code in _REFUSALS
            unknown = exc.code in _UNKNOWN_OUTCOME
            if unknown:
                self.orders.unanswered(label)
            self.journal.emit(
                EventKind.ORDER_REJECTED if refused else EventKind.ORDER_FAILED,
                {
                    "step": n,
                    "stage": "send",
                    "label": label,
                    **intent_payload(intent),
                    "error": exc.to_dict(),
                    "outcome_unknown": unknown,
                },
            )
            return False
        self.orders.accepted(n, order)
        if not self.halt.permits(reduce_only=order.reduce_only) and order.order_state == "open":
            await self._cancel_raced(n, order)
        return True

    async def _cancel_raced(self, n: int, order: Order) -> None:
        """Cancel an order the exchange acknowledged after the halt rose (its send raced it).

        The halt's own cancel-all may have run while the order was in flight and missed it;
        this one cannot, since the order is known. A failure leaves it to the halted steps'
        sweep, which cancels whatever rests.
        """
        try:
            await self.exchange.cancel_order(order.order_id)
        except BastionError as exc:
            _log.warning("could not cancel order %s that raced the halt: %s", order.order_id, exc)
            return
        self.journal.emit(
            EventKind.ORDER_SKIPPED,
            {
                "step": n,
                "stage": "after_send",
                "reason": "halted",
                "label": order.label,
                "order_id": order.order_id,
                "detail": "acknowledged after the halt rose; cancelled",
            },
        )

    # -- observing ----------------------------------------------------------------------
    async def _observe_by(self, deadline: float, n: int) -> Observation | StepOutcome:
        """The step's observation, or the outcome of a step that could not observe."""
        try:
            async with asyncio.timeout_at(deadline):
                return await self._observe(n)
        except Exception as exc:  # classified and recorded like a failed decide
            return self._failure(n, exc)

    async def _observe(self, n: int) -> Observation:
        """The step's snapshot; our orders reconciled against it; recorded."""
        obs = await self.observer.observe()
        await self.orders.reconcile(n, obs.open_orders)
        self.orders.seed(obs.positions)
        self.journal.emit(EventKind.OBSERVATION, self._observation_payload(n, obs))
        return obs

    # -- helpers ------------------------------------------------------------------------
    def _context(self, n: int) -> Context:
        return Context(
            run_id=self.run_id,
            step=n,
            clock=self.clock,
            dry_run=self.config.dry_run,
            llm=self.llm,
            tools=self.tools.for_step(n) if self.tools is not None else None,
        )

    def _record_decision(self, n: int, decision: Decision, *, source: str | None = None) -> None:
        payload: dict[str, Any] = {
            "step": n,
            "rationale": decision.rationale,
            "intents": [intent_payload(i) for i in decision.intents],
        }
        if source is not None:  # not the agent's: the replay audit recomputes, not re-asks
            payload["source"] = source
        self.journal.emit(EventKind.DECISION, payload)

    def _flatten_why(self) -> str:
        halt = self.halt.state()
        return f"flatten ({halt.reason})" if halt is not None else "flatten"


def _describe_step(
    span: Span, outcome: StepOutcome, state: TradingState, halt: HaltState | None
) -> None:
    """The step's outcome on its span: status, orders sent, trading state, the halt."""
    span.set_attributes(
        {
            "bastion.step.status": outcome.status,
            "bastion.step.orders_sent": outcome.orders_sent,
            "bastion.trading_state": state.value,
        }
    )
    if halt is not None:
        span.set_attributes({"bastion.halt.reason": halt.reason, "bastion.halt.who": halt.who})
    if outcome.status in ("failed", "timeout"):
        span.set_attribute("error.type", outcome.status)
        span.set_status(Status(StatusCode.ERROR, outcome.detail[:500]))


def _verdict_event(verdict: Verdict) -> dict[str, str | float]:
    event: dict[str, str | float] = {
        "bastion.verdict.status": verdict.status,
        "bastion.instrument": verdict.intent.instrument_name,
    }
    if verdict.cap:
        event["bastion.verdict.cap"] = verdict.cap
    return event
