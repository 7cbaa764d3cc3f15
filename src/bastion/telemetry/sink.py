"""The metrics sink: the journal's events counted into Prometheus instruments.

Subscribed to a run's :class:`~bastion.events.Journal`, it keeps the loop free of metric
calls: the loop says what happened and this sink decides what it counts.

=====================  =======================================================================
event                  instrument
=====================  =======================================================================
run_started            the current run's ``bastion_run_cost_usd`` and ``bastion_run_tool_calls``
                       back to 0
run_finished           ``bastion_cost_per_run_usd`` and ``bastion_tool_calls_per_run`` observe
                       the run's totals
step_completed         ``bastion_steps_total{outcome=status}``,
                       ``bastion_step_duration_seconds{outcome}`` (``elapsed_s``);
                       ``bastion_trading_state`` from its ``halt`` (none: active);
                       ``bastion_position_drift_coin`` from ``drift_coin``; a halted step's
                       ``book`` sets equity and daily P&L
observation            ``bastion_account_equity{currency}``, ``bastion_account_daily_pnl``
risk_verdict           ``bastion_orders_total{outcome="risk_rejected"}`` unless approved;
                       ``outcome="awaiting_approval"`` for needs_approval
order_sent             ``outcome="sent"`` (not a late confirmation: that send counted as failed)
order_filled           ``outcome="filled"``
order_rejected         ``outcome="rejected"`` when the send was refused (``stage`` send)
order_failed           ``outcome="failed"`` when the send failed
order_skipped          ``outcome="halted"`` (by ``skipped``) or ``"dry_run"`` at the send
halt_tripped,          ``bastion_trading_state`` from the halt's ``state`` (a fleet-scope
halt_enforced          record is not this runtime's state: its own trip follows)
halt_resumed           ``bastion_trading_state{state="active"}`` (this host's resume)
tool_call              ``bastion_tool_calls_total{tool, outcome}`` (``ok`` or the error's code),
                       the run's tool calls
tool_refused           ``bastion_tool_refusals_total{reason}``, the run's tool calls
llm_call               the run's cost (``usd``)
call_failed            ``bastion_dependency_errors_total{dependency, layer, code}``
cycle_finished         ``bastion_cycles_total{outcome}``, ``bastion_cycle_duration_seconds``
phase_finished         ``bastion_phase_duration_seconds{phase}`` (``elapsed_s``)
gate_evaluated         ``bastion_quality_gates_total{gate, result}`` (``passed``: pass or fail)
=====================  =======================================================================

Orders the venue cancelled or rejected later (``stage`` reconcile) are traced but not counted:
the counter counts intents by what the send made of them. The payload keys read here are the
loop's (:mod:`bastion.runtime.payloads`). A ``tool_call`` names a tool the toolbox offered (a
name outside its offer is a ``tool_refused``, counted by reason only), so the ``tool`` label
stays within the agent's declared tools. Daily P&L starts from this process's first observation
of the UTC day (``time_ms``): after a restart mid-day it counts from the restart, where the
daily-loss guard reads the day's start back from the store.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from bastion.events import Event, EventKind
from bastion.telemetry.metrics import TRADING_STATES, Metrics

__all__ = ["MetricsSink"]

Payload = Mapping[str, Any]


class MetricsSink:
    """Count the journal's events into ``metrics``."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._run_cost = 0.0
        self._run_tool_calls = 0
        self._day_start: dict[str, tuple[date, float]] = {}  # currency -> (UTC day, equity)
        self._handlers: dict[EventKind, Callable[[Payload], None]] = {
            EventKind.RUN_STARTED: self._run_started,
            EventKind.RUN_FINISHED: self._run_finished,
            EventKind.STEP_COMPLETED: self._step,
            EventKind.OBSERVATION: self._observed,
            EventKind.RISK_VERDICT: self._verdict,
            EventKind.ORDER_SENT: self._sent,
            EventKind.ORDER_FILLED: lambda p: self._order("filled"),
            EventKind.ORDER_REJECTED: lambda p: self._at_send(p, "rejected"),
            EventKind.ORDER_FAILED: lambda p: self._at_send(p, "failed"),
            EventKind.ORDER_SKIPPED: self._skipped,
            EventKind.HALT_TRIPPED: self._halt,
            EventKind.HALT_ENFORCED: self._halt,
            EventKind.HALT_RESUMED: self._resumed,
            EventKind.TOOL_CALL: self._tool_call,
            EventKind.TOOL_REFUSED: self._refused,
            EventKind.LLM_CALL: self._llm_call,
            EventKind.CALL_FAILED: self._call_failed,
            EventKind.CYCLE_FINISHED: self._cycle,
            EventKind.PHASE_FINISHED: self._phase,
            EventKind.GATE_EVALUATED: self._gate,
        }

    def __call__(self, event: Event) -> None:
        handler = self._handlers.get(event.kind)
        if handler is not None:
            handler(event.payload)

    # -- the run ------------------------------------------------------------------------
    def _run_started(self, p: Payload) -> None:
        self._run_cost = 0.0
        self._run_tool_calls = 0
        self.metrics.run_cost.set(0)
        self.metrics.run_tool_calls.set(0)

    def _run_finished(self, p: Payload) -> None:
        self.metrics.cost_per_run.observe(self._run_cost)
        self.metrics.tool_calls_per_run.observe(self._run_tool_calls)

    def _llm_call(self, p: Payload) -> None:
        self._run_cost += p.get("usd") or 0.0
        self.metrics.run_cost.set(self._run_cost)

    def _count_tool_call(self) -> None:
        self._run_tool_calls += 1
        self.metrics.run_tool_calls.set(self._run_tool_calls)

    def _tool_call(self, p: Payload) -> None:
        error = p.get("error")
        outcome = "ok" if error is None else str(error.get("kind", "unknown"))
        self.metrics.tool_calls.labels(tool=p["tool"], outcome=outcome).inc()
        self._count_tool_call()

    def _refused(self, p: Payload) -> None:
        # By reason only: the tool name is model-written text, unbounded as a label.
        self.metrics.tool_refusals.labels(reason=p["reason"]).inc()
        self._count_tool_call()

    def _call_failed(self, p: Payload) -> None:
        self.metrics.dependency_errors.labels(
            dependency=p.get("dependency", "unknown"),
            layer=p.get("layer", "unknown"),
            code=p.get("kind", "unknown"),
        ).inc()

    # -- the loop -----------------------------------------------------------------------
    def _step(self, p: Payload) -> None:
        status = p["status"]
        self.metrics.steps.labels(outcome=status).inc()
        self.metrics.step_duration.labels(outcome=status).observe(p["elapsed_s"])
        if "halt" in p:
            halt = p["halt"]
            self._state(halt.get("state", "halted") if halt else "active")
        if p.get("drift_coin") is not None:
            self.metrics.position_drift.set(p["drift_coin"])
        if "book" in p:
            self._account(p["book"], None)

    def _observed(self, p: Payload) -> None:
        time_ms = p.get("time_ms")
        day = datetime.fromtimestamp(time_ms / 1000, tz=UTC).date() if time_ms else None
        self._account(p, day)

    def _account(self, p: Payload, day: date | None) -> None:
        """Equity, and its change since the day's first observation (``day``: None keeps the
        day already started, as a halted step's book carries no time)."""
        currency, equity = p["currency"], p["equity"]
        self.metrics.equity.labels(currency=currency).set(equity)
        start = self._day_start.get(currency)
        if day is not None and (start is None or start[0] != day):
            start = self._day_start[currency] = (day, equity)
        if start is not None:
            self.metrics.daily_pnl.labels(currency=currency).set(equity - start[1])

    def _halt(self, p: Payload) -> None:
        if p.get("scope", "host") == "host" and "state" in p:
            self._state(str(p["state"]))

    def _resumed(self, p: Payload) -> None:
        if p.get("scope", "host") == "host":
            self._state("active")

    def _state(self, state: str) -> None:
        if state not in TRADING_STATES:
            state = "halted"  # what an unreadable halt means (guard.halt fails safe)
        for known in TRADING_STATES:
            self.metrics.trading_state.labels(state=known).set(1 if known == state else 0)

    def _verdict(self, p: Payload) -> None:
        if p["status"] == "needs_approval":
            self._order("awaiting_approval")
        elif p["status"] != "approved":
            self._order("risk_rejected")

    def _sent(self, p: Payload) -> None:
        if not p.get("confirmed_late"):
            self._order("sent")

    def _at_send(self, p: Payload, outcome: str) -> None:
        if p.get("stage") == "send":
            self._order(outcome)

    def _skipped(self, p: Payload) -> None:
        if p.get("stage") == "send" and p.get("reason") in {"halted", "dry_run"}:
            self._order(p["reason"], p.get("skipped", 1))

    def _order(self, outcome: str, n: float = 1) -> None:
        self.metrics.orders.labels(outcome=outcome).inc(n)

    # -- the research workflow ------------------------------------------------------------
    def _cycle(self, p: Payload) -> None:
        outcome = p["outcome"]
        self.metrics.cycles.labels(outcome=outcome).inc()
        self.metrics.cycle_duration.labels(outcome=outcome).observe(p["elapsed_s"])

    def _phase(self, p: Payload) -> None:
        self.metrics.phase_duration.labels(phase=p["phase"]).observe(p["elapsed_s"])

    def _gate(self, p: Payload) -> None:
        result = "pass" if p["passed"] else "fail"
        self.metrics.quality_gates.labels(gate=p["gate"], result=result).inc()
