"""The feed: fans the venue's changes out to the sockets that subscribed to them.

One :class:`Feed` per app listens on the venue (:mod:`.events`) while any socket is attached,
hands each event to every socket's :class:`~.subscriptions.Subscriptions`, and flushes the
notifications they owe:

- **``raw`` channels, and any subscription's first notification**, right after the venue
  call that caused them returns (the flush is scheduled on the event loop, so a reply to the
  request that caused it goes out first): one notification per change, as Deribit's ``raw``;
- **``100ms`` and ``agg2`` channels** on the feed's timer, every :attr:`Feed.tick_seconds`
  (0.1 s): everything since the previous tick coalesced into one notification per channel.
  ``agg2`` is served like ``100ms``.

The timer runs on wall time, like the WebSocket heartbeat, not on the injected clock: it paces
the transport, and sleeping on a :class:`~bastion.clock.SimClock` would advance the market
itself. What a notification *says* comes from the venue at the injected clock's time: each tick
first brings the venue up to the clock (:meth:`PaperVenue.sync <.venue.PaperVenue.sync>`), so
with a wall clock the market moves, matches resting orders and notifies at every index step
while someone watches (a frozen SimClock yields nothing new until the test advances it). The
content is therefore deterministic for a seed and clock; only how changes are grouped into
notifications depends on the timer.

The venue is single-threaded: drive it from the server's event loop (events raised from
another thread are still handed over with ``call_soon_threadsafe``, but the subscription state
they touch is not locked).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from bastion.simulators.paper.events import VenueEvent
from bastion.simulators.paper.subscriptions import Subscriptions
from bastion.simulators.paper.venue import PaperVenue

__all__ = ["DEFAULT_TICK_SECONDS", "Feed", "Subscriber"]

logger = logging.getLogger(__name__)

DEFAULT_TICK_SECONDS = 0.1


class Subscriber(Protocol):
    """A socket the feed delivers to: its subscriptions and a non-blocking send."""

    @property
    def subscriptions(self) -> Subscriptions: ...

    def deliver(self, frames: list[bytes]) -> None: ...


class Feed:
    """Delivers one venue's changes to attached subscribers (see the module docstring)."""

    def __init__(self, venue: PaperVenue, *, tick_seconds: float = DEFAULT_TICK_SECONDS) -> None:
        self.venue = venue
        self.tick_seconds = tick_seconds
        self._subscribers: list[Subscriber] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.Task[None] | None = None
        self._flush_scheduled = False

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def attach(self, subscriber: Subscriber) -> None:
        """Start delivering to ``subscriber`` (from a coroutine on the serving loop)."""
        if subscriber in self._subscribers:
            return
        self._loop = asyncio.get_running_loop()
        self._subscribers.append(subscriber)
        self.venue.events.add(self._hear)
        if self._timer is None or self._timer.done():
            self._timer = self._loop.create_task(self._tick(), name="paper-feed-timer")

    def detach(self, subscriber: Subscriber) -> None:
        """Stop delivering to ``subscriber``; the last one out stops the listener and timer."""
        if subscriber in self._subscribers:
            self._subscribers.remove(subscriber)
        if not self._subscribers:
            self.venue.events.remove(self._hear)
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def flush_soon(self) -> None:
        """Schedule a flush of what is owed now (``raw`` and first notifications)."""
        if self._flush_scheduled or self._loop is None or self._loop.is_closed():
            return
        self._flush_scheduled = True
        self._loop.call_soon_threadsafe(self._flush_now)

    def _hear(self, event: VenueEvent) -> None:
        for subscriber in list(self._subscribers):
            subscriber.subscriptions.hear(event)
        self.flush_soon()

    def _flush_now(self) -> None:
        self._flush_scheduled = False
        self._flush(timer=False)

    def _flush(self, *, timer: bool) -> None:
        for subscriber in list(self._subscribers):
            frames = subscriber.subscriptions.frames(timer=timer)
            if frames:
                subscriber.deliver(frames)

    async def _tick(self) -> None:
        while self._subscribers:
            await asyncio.sleep(self.tick_seconds)
            if not any(s.subscriptions for s in self._subscribers):
                continue
            try:
                self.venue.sync()  # the market catches up with the clock; events follow
                self._flush(timer=True)
            except Exception:
                logger.exception("paper exchange: the subscription feed's tick failed")
