"""The store's events table as a journal sink: the events worth a row, redacted first.

Per-step observations, decisions and verdicts live in the trace only; the store keeps what an
operator queries across runs (orders, halts, failures, alerts). Every payload passes the
``redact`` function before it is written, in every process: a run, ``bastion kill`` and the
console all record through this one sink, so none of them can write a secret the others mask.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, Protocol

from bastion.clock import Clock
from bastion.events import Event, EventKind

__all__ = ["STORED_KINDS", "EventLog", "StoreSink"]

STORED_KINDS = frozenset(EventKind) - {
    EventKind.OBSERVATION,
    EventKind.DECISION,
    EventKind.RISK_VERDICT,
    EventKind.STEP_COMPLETED,
    EventKind.LLM_CALL,  # the ledger keeps every call's figures; the trace keeps its text
    EventKind.TOOL_CALL,  # per step, like LLM calls; a failure is a call_failed row, a refusal
    # a tool_refused row
}
"""The kinds that get a row."""

Redact = Callable[[Mapping[str, Any]], Mapping[str, Any]]


class EventLog(Protocol):
    """The store's ``events`` table: :class:`~bastion.store.events.EventStore` in a run, and
    :class:`~bastion.store.emergency.EmergencyStore` for ``bastion kill``."""

    def append(
        self, kind: str, payload: Mapping[str, Any], *, at: datetime, run_id: str | None = None
    ) -> int: ...


class StoreSink:
    """Append the events of ``kinds`` to the store's event log, each payload redacted."""

    def __init__(
        self,
        events: EventLog,
        *,
        clock: Clock,
        redact: Redact,
        kinds: Iterable[EventKind] = STORED_KINDS,
    ) -> None:
        self._events = events
        self._clock = clock
        self._redact = redact
        self._kinds = frozenset(kinds)

    def __call__(self, event: Event) -> None:
        if event.kind in self._kinds:
            self._events.append(
                event.kind.value,
                dict(self._redact(dict(event.payload))),
                at=self._clock.now(),
                run_id=event.run_id,
            )
