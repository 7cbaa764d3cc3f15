"""The store's events table as a journal sink: the events worth a row, redacted first.

Per-step observations, decisions and verdicts live in the trace only; the store keeps what an
operator queries across runs (orders, halts, failures, alerts). Every payload passes the
``redact`` function before it is written, in every process: a run, ``bastion kill`` and the
console all record through this one sink, so none of them can write a secret the others mask.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from bastion.clock import Clock
from bastion.events import Event, EventKind
from bastion.store.store import Store

__all__ = ["STORED_KINDS", "StoreSink"]

STORED_KINDS = frozenset(EventKind) - {
    EventKind.OBSERVATION,
    EventKind.DECISION,
    EventKind.RISK_VERDICT,
    EventKind.STEP_COMPLETED,
    EventKind.LLM_CALL,  # the ledger keeps every call's figures; the trace keeps its text
}
"""The kinds that get a row."""

Redact = Callable[[Mapping[str, Any]], Mapping[str, Any]]


class StoreSink:
    """Append the events of ``kinds`` to the store, each payload redacted."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock,
        redact: Redact,
        kinds: Iterable[EventKind] = STORED_KINDS,
    ) -> None:
        self._store = store
        self._clock = clock
        self._redact = redact
        self._kinds = frozenset(kinds)

    def __call__(self, event: Event) -> None:
        if event.kind in self._kinds:
            self._store.events.append(
                event.kind.value,
                dict(self._redact(dict(event.payload))),
                at=self._clock.now(),
                run_id=event.run_id,
            )
