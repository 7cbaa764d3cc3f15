"""Who hears of an alert and how often: dedupe, group window, repeat interval, resolve.

The rules are Alertmanager's, kept small and pure (every method takes ``now``, clock seconds,
and does no I/O, so a ``SimClock`` test steps through them exactly):

* **Deduplicated.** A key already firing is not sent again when it fires again; it is sent
  again only after ``repeat_interval`` seconds, while it still fires (``repeat_interval``).
* **Grouped.** The first notification opens a group; everything that arrives within
  ``group_wait`` seconds of it is released with it, as one message (``group_wait``).
* **Resolved.** A firing key's resolve is sent once, in the next group; a resolve for a key
  that is not firing is ignored. A condition that fires and clears inside one group window is
  sent once, as resolved (it happened, and it is over).
* **Bounded.** At most ``capacity`` notifications wait in the open group; past that the oldest
  of the lowest severity is dropped (info first), and :meth:`Dispatcher.offer` says so.

One-off events (budget crossings, approval requests: ``tracked=False``) are grouped and
deduplicated within their group by key, and never resolved or repeated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from bastion.notify.notification import Notification, Status
from bastion.telemetry.alert import Severity

__all__ = ["Dispatcher", "Offer", "victim"]

_RANK = {Severity.INFO: 0, Severity.TICKET: 1, Severity.PAGE: 2}

K = TypeVar("K")


def victim(entries: Mapping[K, Notification]) -> K:
    """The handle of the oldest notification of the lowest severity in ``entries``.

    ``entries`` keeps arrival order (a dict does), so the first of the lowest rank is the
    oldest: info notifications go first, a page only when nothing else is left. Callers put a
    newcomer last, so a new info notification never pushes out a waiting page: it is the one
    dropped instead.
    """
    lowest = min(_RANK[n.severity] for n in entries.values())
    return next(h for h, n in entries.items() if _RANK[n.severity] == lowest)


@dataclass(frozen=True, slots=True)
class Offer:
    """What :meth:`Dispatcher.offer` did: ``accepted`` (False: a duplicate or a stray resolve)
    and the notification dropped to make room, if any."""

    accepted: bool
    dropped: Notification | None = None


@dataclass(slots=True)
class _Firing:
    notification: Notification
    sent_at: float | None = None
    """When it last left in a group (None: not yet)."""


class Dispatcher:
    """The pure core of the notifier: notifications in, groups out."""

    def __init__(self, *, group_wait: float, repeat_interval: float, capacity: int) -> None:
        self.group_wait = group_wait
        self.repeat_interval = repeat_interval
        self.capacity = capacity
        self._firing: dict[str, _Firing] = {}
        self._pending: dict[str, Notification] = {}
        self._opened_at: float | None = None

    @property
    def firing(self) -> list[str]:
        """The keys currently firing, oldest first."""
        return list(self._firing)

    @property
    def pending(self) -> int:
        """Notifications waiting in the open group."""
        return len(self._pending)

    def offer(self, notification: Notification, now: float) -> Offer:
        """Take one notification; it leaves with the open group (or opens one)."""
        key = notification.key
        if notification.tracked and notification.status is Status.FIRING:
            if key in self._firing:
                return Offer(accepted=False)
            self._firing[key] = _Firing(notification)
        elif notification.status is Status.RESOLVED and self._firing.pop(key, None) is None:
            return Offer(accepted=False)
        return Offer(accepted=True, dropped=self._add(notification, now))

    def _add(self, notification: Notification, now: float) -> Notification | None:
        """Put ``notification`` in the open group; returns what was dropped for room."""
        key = notification.key
        dropped = None
        if key in self._pending:
            del self._pending[key]  # the newest word on a key, at the back
        elif len(self._pending) >= self.capacity:
            loser = victim({**self._pending, key: notification})
            dropped = notification if loser == key else self._pending.pop(loser)
            firing = self._firing.get(dropped.key)
            if firing is not None and firing.sent_at is None:
                del self._firing[dropped.key]  # never sent: nobody waits for its resolve
            if dropped is notification:
                return dropped
        self._pending[key] = notification
        if self._opened_at is None:
            self._opened_at = now
        return dropped

    def next_due(self) -> float | None:
        """The clock time at which :meth:`due` will next release something (None: never)."""
        times = [
            firing.sent_at + self.repeat_interval
            for key, firing in self._firing.items()
            if firing.sent_at is not None and key not in self._pending
        ]
        if self._opened_at is not None:
            times.append(self._opened_at + self.group_wait)
        return min(times) if times else None

    def due(self, now: float) -> list[Notification]:
        """The group to send now, if its window has passed (else an empty list).

        Firing alerts whose repeat interval has elapsed join a group here, as repeats.
        """
        for key, firing in self._firing.items():
            if (
                firing.sent_at is not None
                and key not in self._pending
                and now >= firing.sent_at + self.repeat_interval
            ):
                self._add(firing.notification.repeated(), now)
        if self._opened_at is None or now < self._opened_at + self.group_wait:
            return []
        return self.flush(now)

    def flush(self, now: float) -> list[Notification]:
        """Release the open group whatever its window (shutdown), marking its alerts sent."""
        group = list(self._pending.values())
        self._pending.clear()
        self._opened_at = None
        for notification in group:
            firing = self._firing.get(notification.key)
            if firing is not None and notification.status is Status.FIRING:
                firing.sent_at = now
        return group
