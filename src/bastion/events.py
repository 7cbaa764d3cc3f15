"""Events and the Journal that fans them out.

Components do not call the trace writer, the store and the metrics one by one: they emit an
:class:`Event` to the :class:`Journal`, and the journal hands it to every registered sink. That
keeps the guard code free of I/O detail and lets a test, a console or an alerter subscribe
without touching the loop (the hook style of stamina's ``RetryHook``).

A sink that fails must not stop trading or lose the other sinks' copy, so the journal catches a
sink's exception and reports it to the remaining sinks as a ``sink_failed`` event instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["Event", "EventKind", "Journal", "Sink"]

_log = logging.getLogger(__name__)


class EventKind(StrEnum):
    """Every kind of event a run records. Traces and the store use these exact strings."""

    RUN_STARTED = "run_started"
    RUN_FINISHED = "run_finished"
    RUN_REFUSED = "run_refused"
    RUN_CRASHED = "run_crashed"
    RUN_RECOVERED = "run_recovered"
    OBSERVATION = "observation"
    DECISION = "decision"
    RISK_VERDICT = "risk_verdict"
    ORDER_SENT = "order_sent"
    ORDER_FILLED = "order_filled"
    ORDER_REJECTED = "order_rejected"
    ORDER_FAILED = "order_failed"
    ORDER_SKIPPED = "order_skipped"
    STEP_COMPLETED = "step_completed"
    STEP_FAILED = "step_failed"
    STEP_TIMEOUT = "step_timeout"
    BUDGET_ALERT = "budget_alert"
    HALT_TRIPPED = "halt_tripped"
    HALT_ENFORCED = "halt_enforced"
    HALT_RESUMED = "halt_resumed"
    TRADING_RESUMED = "trading_resumed"
    SINK_FAILED = "sink_failed"
    CALL_RETRIED = "call_retried"
    CALL_FAILED = "call_failed"
    BREAKER_STATE_CHANGED = "breaker_state_changed"
    LLM_CALL = "llm_call"
    LLM_FALLBACK = "llm_fallback"
    LLM_ESCALATED = "llm_escalated"
    APPROVAL_REQUESTED = "approval_requested"
    TOOL_CALL = "tool_call"
    TOOL_REFUSED = "tool_refused"
    """A security event: an agent (or the model behind it) asked for a tool it may not call."""
    APPROVAL_RESOLVED = "approval_resolved"
    ALERT_FIRING = "alert_firing"
    """An alerting condition Bastion evaluates itself began (payload: ``telemetry.alert``)."""
    ALERT_RESOLVED = "alert_resolved"
    """That condition cleared; the payload repeats the firing alert's ``key``."""
    CYCLE_FINISHED = "cycle_finished"
    """A research cycle ended: ``outcome`` (completed, failed, cancelled), ``elapsed_s``."""
    PHASE_FINISHED = "phase_finished"
    """A phase of a research cycle ended: ``phase`` (design, train, backtest, assess),
    ``elapsed_s``."""
    GATE_EVALUATED = "gate_evaluated"
    """A quality gate judged a result: ``gate`` (a name from the workflow's code), ``passed``."""


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened, with its data. ``run_id`` is None outside a run (CLI kill)."""

    kind: EventKind
    payload: Mapping[str, Any] = field(default_factory=dict)
    run_id: str | None = None


Sink = Callable[[Event], None]


class Journal:
    """Fan-out of events to sinks, in registration order."""

    def __init__(self, run_id: str | None = None) -> None:
        self.run_id = run_id
        self._sinks: list[Sink] = []

    def subscribe(self, sink: Sink) -> None:
        self._sinks.append(sink)

    def emit(self, kind: EventKind, payload: Mapping[str, Any] | None = None) -> Event:
        event = Event(kind=kind, payload=dict(payload or {}), run_id=self.run_id)
        for sink in list(self._sinks):
            try:
                sink(event)
            except Exception as exc:
                _log.exception("journal sink %r failed on %s", sink, kind)
                if kind is not EventKind.SINK_FAILED:
                    self._report(sink, kind, exc)
        return event

    def _report(self, failed: Sink, kind: EventKind, exc: Exception) -> None:
        notice = Event(
            kind=EventKind.SINK_FAILED,
            payload={"sink": repr(failed), "event": kind.value, "error": repr(exc)},
            run_id=self.run_id,
        )
        for sink in self._sinks:
            if sink is not failed:
                try:
                    sink(notice)
                except Exception:
                    _log.exception("journal sink %r failed on sink_failed", sink)
