"""The trace as a journal sink: every event becomes a redacted NDJSON line.

Subscribed to a run's :class:`~bastion.events.Journal`, it writes each event through the
:class:`~bastion.trace.record.TraceWriter` (which redacts) and fsyncs at the end of each step
and on anything about a run's start, end or a halt, so a crash loses at most the step in
progress and never a halt. Each line carries the ``trace_id`` and ``span_id`` of the span
current when the event was emitted (the step's, or the phase or call inside it).
"""

from __future__ import annotations

from collections.abc import Iterable

from bastion.events import Event, EventKind
from bastion.span_ids import current_ids
from bastion.trace.record import TraceWriter

__all__ = ["FLUSH_KINDS", "TraceSink"]

FLUSH_KINDS = frozenset(
    {
        EventKind.STEP_COMPLETED,
        EventKind.RUN_STARTED,
        EventKind.RUN_FINISHED,
        EventKind.RUN_REFUSED,
        EventKind.HALT_TRIPPED,
        EventKind.HALT_ENFORCED,
        EventKind.HALT_RESUMED,
    }
)
"""Events after which the trace is fsynced."""


class TraceSink:
    """Write events to a trace; fsync after the kinds in ``flush_kinds``."""

    def __init__(self, writer: TraceWriter, flush_kinds: Iterable[EventKind] = FLUSH_KINDS) -> None:
        self.writer = writer
        self._flush_kinds = frozenset(flush_kinds)

    def __call__(self, event: Event) -> None:
        ids = current_ids()
        span = (ids[0], ids[1]) if ids is not None else None
        self.writer.write(event.kind.value, event.payload, span=span)
        if event.kind in self._flush_kinds:
            self.writer.flush()
