"""The journal fans events out to every sink, and a failing sink loses nothing for the others."""

from __future__ import annotations

from bastion.events import Event, EventKind, Journal


def test_every_sink_receives_every_event_in_order() -> None:
    """Two sinks see the same events with the journal's run id."""
    journal = Journal(run_id="r1")
    a: list[Event] = []
    b: list[Event] = []
    journal.subscribe(a.append)
    journal.subscribe(b.append)
    journal.emit(EventKind.RUN_STARTED, {"x": 1})
    journal.emit(EventKind.RUN_FINISHED)
    assert [e.kind for e in a] == [EventKind.RUN_STARTED, EventKind.RUN_FINISHED]
    assert a == b
    assert a[0].run_id == "r1"
    assert a[0].payload == {"x": 1}


def test_a_failing_sink_is_reported_to_the_others_and_does_not_stop_them() -> None:
    """A broken sink becomes a sink_failed event; the next sink still gets the original."""
    journal = Journal()
    seen: list[Event] = []

    def broken(_: Event) -> None:
        raise OSError("disk full")

    journal.subscribe(broken)
    journal.subscribe(seen.append)
    journal.emit(EventKind.ORDER_SENT, {"order_id": "BTC-1"})
    kinds = [e.kind for e in seen]
    assert kinds == [EventKind.SINK_FAILED, EventKind.ORDER_SENT]
    assert "disk full" in seen[0].payload["error"]
