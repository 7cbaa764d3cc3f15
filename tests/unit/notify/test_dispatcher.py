"""The notifier's rules on explicit clock times: dedupe, group window, repeat, resolve, bounds."""

from __future__ import annotations

from datetime import UTC, datetime

from bastion.notify import Dispatcher, Notification, Outbox, Status
from bastion.telemetry.alert import Severity

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def note(
    key: str,
    status: Status = Status.FIRING,
    severity: Severity = Severity.PAGE,
    *,
    tracked: bool = True,
) -> Notification:
    return Notification(
        key=key,
        name=f"Alert_{key}",
        severity=severity,
        status=status,
        summary=f"{key} is {status.value}",
        since=T0,
        tracked=tracked,
    )


def keys(group: list[Notification]) -> list[tuple[str, str]]:
    return [(n.key, n.status.value) for n in group]


def make(group_wait: float = 10.0, repeat: float = 3600.0, capacity: int = 100) -> Dispatcher:
    return Dispatcher(group_wait=group_wait, repeat_interval=repeat, capacity=capacity)


def test_alerts_within_the_group_window_leave_together_and_not_before() -> None:
    """The first alert opens a 10 s window; the second, 4 s later, joins it; nothing leaves
    until the window has passed, then both leave as one group."""
    d = make()
    d.offer(note("a"), 100.0)
    d.offer(note("b"), 104.0)
    assert d.due(109.9) == []
    assert keys(d.due(110.0)) == [("a", "firing"), ("b", "firing")]
    assert d.due(200.0) == []


def test_a_key_already_firing_is_not_sent_again_until_the_repeat_interval() -> None:
    """Firing twice is one notification; an hour later, still firing, it is sent once more,
    marked as a repeat."""
    d = make(group_wait=0.0, repeat=3600.0)
    assert d.offer(note("a"), 0.0).accepted
    assert keys(d.due(0.0)) == [("a", "firing")]
    assert not d.offer(note("a"), 5.0).accepted
    assert d.due(3599.0) == []
    assert d.next_due() == 3600.0
    group = d.due(3600.0)
    assert keys(group) == [("a", "firing")]
    assert group[0].repeat
    assert d.due(3600.0 + 3599.0) == []


def test_a_resolve_is_sent_once_and_a_stray_resolve_never() -> None:
    """A firing key's resolve is sent; resolving it again, or a key that never fired, is not."""
    d = make(group_wait=0.0)
    d.offer(note("a"), 0.0)
    d.due(0.0)
    assert d.offer(note("a", Status.RESOLVED), 10.0).accepted
    assert not d.offer(note("a", Status.RESOLVED), 11.0).accepted
    assert not d.offer(note("never", Status.RESOLVED), 11.0).accepted
    assert keys(d.due(11.0)) == [("a", "resolved")]
    assert d.firing == []
    assert d.next_due() is None


def test_a_condition_that_clears_inside_the_window_is_sent_once_as_resolved() -> None:
    """Fired and cleared within one group window: one entry, resolved; and it may fire anew."""
    d = make(group_wait=10.0)
    d.offer(note("a"), 0.0)
    d.offer(note("a", Status.RESOLVED), 3.0)
    assert keys(d.due(10.0)) == [("a", "resolved")]
    assert d.offer(note("a"), 20.0).accepted


def test_one_off_events_are_grouped_but_never_tracked() -> None:
    """An approval request is sent with its group, never repeated; the same key twice in one
    group is one entry."""
    d = make(group_wait=5.0, repeat=10.0)
    info = note("approval:1", severity=Severity.INFO, tracked=False)
    d.offer(info, 0.0)
    d.offer(info, 1.0)
    assert keys(d.due(5.0)) == [("approval:1", "firing")]
    assert d.firing == []
    assert d.due(1000.0) == []


def test_a_full_group_drops_the_oldest_info_first() -> None:
    """At capacity, room is made by dropping the oldest info notification, not a page."""
    d = make(capacity=3)
    d.offer(note("page"), 0.0)
    d.offer(note("i1", severity=Severity.INFO, tracked=False), 0.0)
    d.offer(note("i2", severity=Severity.INFO, tracked=False), 0.0)
    offer = d.offer(note("ticket", severity=Severity.TICKET), 0.0)
    assert offer.dropped is not None
    assert offer.dropped.key == "i1"
    assert [k for k, _ in keys(d.flush(0.0))] == ["page", "i2", "ticket"]


def test_the_outbox_coalesces_keeps_what_is_in_flight_and_drops_info_first() -> None:
    """A newer word on a key replaces one not yet sent; one being sent stays until done; when
    full, the oldest info goes."""
    box = Outbox(capacity=3)
    box.put([note("a"), note("i", severity=Severity.INFO, tracked=False)])
    taken = box.take(1)
    assert [n.key for _, n in taken] == ["a"]
    box.put([note("a", Status.RESOLVED)])  # "a" is in flight: the resolve waits behind it
    assert len(box) == 3
    dropped = box.put([note("b")])
    assert [n.key for n in dropped] == ["i"]
    box.done(h for h, _ in taken)
    assert [(n.key, n.status.value) for _, n in box.take(10)] == [
        ("a", "resolved"),
        ("b", "firing"),
    ]


def test_a_failed_delivery_keeps_its_place() -> None:
    """Released after a failure, the same entries come out first again."""
    box = Outbox(capacity=10)
    box.put([note("a"), note("b")])
    first = box.take(1)
    box.release(h for h, _ in first)
    assert [n.key for _, n in box.take(2)] == ["a", "b"]


def test_a_new_info_never_pushes_out_a_waiting_page() -> None:
    """Full of pages, the group and the outbox drop the newcomer info, not a page."""
    d = make(capacity=2)
    d.offer(note("p1"), 0.0)
    d.offer(note("p2"), 0.0)
    info = note("i", severity=Severity.INFO, tracked=False)
    assert d.offer(info, 0.0).dropped is info
    assert [k for k, _ in keys(d.flush(0.0))] == ["p1", "p2"]
    box = Outbox(capacity=2)
    assert box.put([note("p1"), note("p2"), info]) == [info]
    assert [n.key for _, n in box.take(5)] == ["p1", "p2"]


def test_a_page_dropped_unsent_is_forgotten_so_its_resolve_is_not_sent() -> None:
    """When only pages wait, the oldest goes; nobody heard it fire, so nobody hears it clear."""
    d = make(capacity=1)
    d.offer(note("old"), 0.0)
    assert d.offer(note("new"), 0.0).dropped is not None
    assert d.firing == ["new"]
    assert not d.offer(note("old", Status.RESOLVED), 1.0).accepted
