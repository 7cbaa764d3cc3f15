"""One target's queue of notifications waiting for delivery: bounded, coalescing, in order.

A target that is slow or down must not hold the others back, so each has its own outbox and
its own delivery task. While it waits, newer words on a key replace older ones (a resolve
replaces the firing it clears, if that was never sent), and when it is full the oldest of the
lowest severity is dropped, info first (:func:`~bastion.notify.dispatcher.victim`), so pages
survive a long outage and the drops are counted.

What is being delivered stays in the outbox until the delivery ends: :meth:`Outbox.take` hands
out the oldest entries and :meth:`Outbox.done` removes exactly those, so a newer word on a key
that arrived meanwhile is kept for the next message.
"""

from __future__ import annotations

from collections.abc import Iterable

from bastion.notify.dispatcher import victim
from bastion.notify.notification import Notification

__all__ = ["Outbox"]


class Outbox:
    """Notifications for one target, oldest first, at most ``capacity``."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: dict[int, Notification] = {}
        self._by_key: dict[str, int] = {}
        self._taken: set[int] = set()
        self._next = 0

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, notifications: Iterable[Notification]) -> list[Notification]:
        """Queue a group; returns the notifications dropped to make room."""
        dropped: list[Notification] = []
        for notification in notifications:
            handle = self._by_key.get(notification.key)
            if handle is not None and handle not in self._taken:
                del self._entries[handle]  # superseded before it was sent
            elif len(self._entries) >= self.capacity:
                waiting = {h: n for h, n in self._entries.items() if h not in self._taken}
                loser = victim({**waiting, self._next: notification})  # the newcomer last
                if loser == self._next:
                    dropped.append(notification)
                    continue
                dropped.append(self._entries[loser])
                self._forget(loser)
            self._entries[self._next] = notification
            self._by_key[notification.key] = self._next
            self._next += 1
        return dropped

    def take(self, limit: int) -> list[tuple[int, Notification]]:
        """The oldest ``limit`` entries not already being delivered, marked as being delivered."""
        batch = [(h, n) for h, n in self._entries.items() if h not in self._taken][:limit]
        self._taken.update(h for h, _ in batch)
        return batch

    def done(self, handles: Iterable[int]) -> None:
        """The delivery of these entries ended (sent, or refused for good): forget them."""
        for handle in handles:
            self._forget(handle)

    def release(self, handles: Iterable[int]) -> None:
        """The delivery failed: these entries wait for the next attempt, in their place."""
        self._taken.difference_update(handles)

    def drain(self) -> list[Notification]:
        """Empty the outbox (shutdown), returning what was never delivered."""
        left = list(self._entries.values())
        self._entries.clear()
        self._by_key.clear()
        self._taken.clear()
        return left

    def _forget(self, handle: int) -> None:
        notification = self._entries.pop(handle, None)
        self._taken.discard(handle)
        if notification is not None and self._by_key.get(notification.key) == handle:
            del self._by_key[notification.key]
