"""The notifier: a journal sink that turns alerts into webhook messages without ever waiting.

It is subscribed to the run's :class:`~bastion.events.Journal`. Receiving an event costs the
loop a translation (:func:`~bastion.notify.notification.notification_for`) and a few dict
operations (:class:`~bastion.notify.dispatcher.Dispatcher`): nothing is sent from the sink.
Groups whose window has passed are put in each target's :class:`~bastion.notify.outbox.Outbox`,
and one background task per target delivers them, so a target that hangs holds up only
itself, and the loop keeps stepping.

Each delivery is one :meth:`~bastion.resilience.Resilience.call` to the dependency
``webhook:<n>`` / ``slack:<n>`` (layer ``webhook``): a per-attempt timeout, the target's
breaker, full-jitter retries within ``alert_webhook_deadline_seconds``, and the choke point's
``call_retried`` / ``call_failed`` journal events. A delivery that still fails stays queued and
is tried again with the next group, or after :data:`REDELIVER_SECONDS` (longer while its
breaker is open); one the target refuses for good (a 4xx) is dropped and logged, as
Alertmanager does. Every outcome is counted in ``bastion_alert_notifications_total{target,
outcome}``, the queue in ``bastion_alert_queue_depth{target}``, and each target's last success
and failure are in :meth:`Notifier.status` (the status report's ``notifications``).

Time: the group window and the repeat interval run on the injected clock (``SimClock`` tests
step through them; every journal event re-checks them, and a timer task does when the journal
is quiet). The waits between redeliveries and the bounded flush at shutdown are wall time, like
the choke point's per-attempt timeout: they bound real I/O.

Events may be emitted from worker threads (settlements, ledger pruning); the sink hands those
to the event loop's thread, where all of the notifier's state lives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bastion.clock import Clock
from bastion.errors import BastionError, ErrorCode
from bastion.events import Event
from bastion.notify.dispatcher import Dispatcher
from bastion.notify.message import MAX_ALERTS, Context
from bastion.notify.notification import Notification, notification_for
from bastion.notify.outbox import Outbox
from bastion.notify.webhook import WebhookTarget
from bastion.resilience import Resilience
from bastion.telemetry.metrics import Metrics

__all__ = ["REDELIVER_SECONDS", "Notifier", "NotifierSettings"]

_log = logging.getLogger(__name__)

REDELIVER_SECONDS = 30.0
"""Wall seconds before a failed delivery is tried again when no new alert comes first."""
_REFUSED = frozenset(
    {
        ErrorCode.BAD_REQUEST,
        ErrorCode.AUTH,
        ErrorCode.FORBIDDEN,
        ErrorCode.NOT_FOUND,
        ErrorCode.CONFLICT,
        ErrorCode.CONFIG,
    }
)
"""Failures that say the target will never take this message: dropped, not retried."""


@dataclass(frozen=True, slots=True)
class NotifierSettings:
    """The ``alert_*`` settings the notifier runs by (seconds; ``queue_size`` per target)."""

    group_wait: float = 10.0
    repeat_interval: float = 14_400.0
    timeout: float = 5.0
    deadline: float = 30.0
    queue_size: int = 500


class _Lane:
    """One target with its outbox and the wake-up its delivery task waits on."""

    def __init__(self, target: WebhookTarget, capacity: int) -> None:
        self.target = target
        self.outbox = Outbox(capacity)
        self.wake = asyncio.Event()
        self.busy = False


class Notifier:
    """Delivers the run's alerts to webhook targets; a journal sink (``journal.subscribe``)."""

    def __init__(
        self,
        targets: Sequence[WebhookTarget],
        *,
        clock: Clock,
        resilience: Resilience,
        settings: NotifierSettings | None = None,
        metrics: Metrics | None = None,
        context: Context | None = None,
    ) -> None:
        self.settings = settings or NotifierSettings()
        s = self.settings
        self._clock = clock
        self._resilience = resilience
        self._metrics = metrics
        self._context = context or Context()
        self._dispatcher = Dispatcher(
            group_wait=s.group_wait, repeat_interval=s.repeat_interval, capacity=s.queue_size
        )
        self._lanes = [_Lane(t, s.queue_size) for t in targets]
        self._timer_wake = asyncio.Event()
        self._moved = asyncio.Event()
        """Set whenever a delivery ends: what :meth:`flush` waits on."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self.bad_events = 0
        """Alert events whose payload could not be read (logged, never raised)."""
        for lane in self._lanes:
            self._depth(lane)

    @property
    def targets(self) -> list[WebhookTarget]:
        return [lane.target for lane in self._lanes]

    # -- the sink: on the journal's thread, never waits ---------------------------------
    def __call__(self, event: Event) -> None:
        """Take one journal event: maybe a notification, and a look at what is due."""
        if self._loop is not None and threading.get_ident() != self._thread:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the run is over
                self._loop.call_soon_threadsafe(self._receive, event)
            return
        self._receive(event)

    def _receive(self, event: Event) -> None:
        if self._closed:  # after shutdown nothing would deliver it
            return
        now = self._clock.now()
        try:
            notification = notification_for(event, now)
        except (KeyError, TypeError, ValueError):
            self.bad_events += 1
            _log.warning("alert notifier: unreadable %s payload; not notified", event.kind.value)
            notification = None
        if notification is not None:
            self.offer(notification)
        else:
            self.tick()

    def offer(self, notification: Notification) -> None:
        """Queue one notification (deduplicated, grouped) and release what is due."""
        offer = self._dispatcher.offer(notification, self._clock.time())
        if offer.dropped is not None:
            for lane in self._lanes:
                self._count(lane, "dropped")
        self.tick()
        self._timer_wake.set()

    def tick(self) -> None:
        """Release the group if its window has passed (the journal and the timer call this)."""
        due_at = self._dispatcher.next_due()
        if due_at is None or due_at > self._clock.time():
            return
        self._put(self._dispatcher.due(self._clock.time()))

    def _put(self, group: list[Notification]) -> None:
        if not group:
            return
        for lane in self._lanes:
            for _ in lane.outbox.put(group):
                self._count(lane, "dropped")
            self._depth(lane)
            lane.wake.set()

    # -- the tasks ------------------------------------------------------------------------
    def start(self) -> None:
        """Start the timer and one delivery task per target on the running loop."""
        if self._tasks:
            return
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._tasks.append(asyncio.create_task(self._timer(), name="notify timer"))
        for lane in self._lanes:
            name = f"notify {lane.target.name}"
            self._tasks.append(asyncio.create_task(self._deliver(lane), name=name))
            if len(lane.outbox):
                lane.wake.set()

    async def _timer(self) -> None:
        """Release groups when the journal is quiet: wake at the next due time or an offer."""
        while True:
            due_at = self._dispatcher.next_due()
            wait = None if due_at is None else max(0.0, due_at - self._clock.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._timer_wake.wait(), wait)
            self._timer_wake.clear()
            self.tick()

    async def _deliver(self, lane: _Lane) -> None:
        while True:
            await lane.wake.wait()
            lane.wake.clear()
            while len(lane.outbox):
                if not await self._send(lane):
                    await self._pause(lane)
                    break

    async def _pause(self, lane: _Lane) -> None:
        """After a failed delivery: until the next group arrives, or a while."""
        wait = REDELIVER_SECONDS
        breakers = self._resilience.breakers
        if breakers is not None:
            wait = max(wait, breakers.get(lane.target.name, "webhook").retry_after())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(lane.wake.wait(), wait)
        lane.wake.set()  # go round again either way: the outbox still holds the failed group

    async def _send(self, lane: _Lane) -> bool:
        """Deliver the oldest alerts of ``lane`` as one message; True when the outbox moved."""
        target = lane.target
        batch = lane.outbox.take(MAX_ALERTS)
        handles = [h for h, _ in batch]
        alerts = [n for _, n in batch]
        body = target.body(alerts, self._context, truncated=max(0, len(lane.outbox) - len(batch)))
        lane.busy = True
        try:
            await self._resilience.call(
                target.name,
                lambda: target.post(body),
                layer="webhook",
                timeout=self.settings.timeout,
                deadline=self.settings.deadline,
            )
        except BastionError as error:
            return self._failed(lane, handles, error)
        finally:
            lane.busy = False
            self._moved.set()
        lane.outbox.done(handles)
        target.delivery.sent += len(handles)
        target.delivery.last_success_at = self._clock.now()
        self._count(lane, "sent", len(handles))
        self._depth(lane)
        return True

    def _failed(self, lane: _Lane, handles: list[int], error: BastionError) -> bool:
        target = lane.target
        delivery = target.delivery
        delivery.last_failure_at = self._clock.now()
        delivery.last_error = error.message  # names the target and the code, never the URL
        if error.code in _REFUSED:
            lane.outbox.done(handles)
            delivery.rejected += len(handles)
            self._count(lane, "rejected", len(handles))
            self._depth(lane)
            _log.warning(
                "alert webhook %s refused %d alert(s): %s", target.name, len(handles), error
            )
            return True
        lane.outbox.release(handles)
        delivery.failed += len(handles)
        self._count(lane, "failed", len(handles))
        _log.warning(
            "alert webhook %s failed; %d alert(s) stay queued: %s", target.name, len(handles), error
        )
        return False

    # -- reporting --------------------------------------------------------------------------
    def _count(self, lane: _Lane, outcome: str, n: int = 1) -> None:
        if outcome == "dropped":
            lane.target.delivery.dropped += n
        if self._metrics is not None:
            self._metrics.alert_notifications.labels(target=lane.target.name, outcome=outcome).inc(
                n
            )

    def _depth(self, lane: _Lane) -> None:
        if self._metrics is not None:
            self._metrics.alert_queue_depth.labels(target=lane.target.name).set(len(lane.outbox))

    def status(self) -> list[dict[str, Any]]:
        """Each target's row for the status report: masked URL, queue, last success/failure."""
        return [{**lane.target.to_dict(), "queued": len(lane.outbox)} for lane in self._lanes]

    @property
    def idle(self) -> bool:
        """Nothing waits in a group or an outbox, and no delivery is under way."""
        return self._dispatcher.pending == 0 and all(
            not len(lane.outbox) and not lane.busy for lane in self._lanes
        )

    # -- shutdown ---------------------------------------------------------------------------
    async def flush(self) -> None:
        """Release the open group now and wait until every outbox is empty (unbounded: wrap
        it in a timeout; :meth:`aclose` does)."""
        self.start()
        self._put(self._dispatcher.flush(self._clock.time()))
        for lane in self._lanes:
            if len(lane.outbox):
                lane.wake.set()  # a lane pausing after a failure tries once more now
        while not self.idle:
            self._moved.clear()
            await self._moved.wait()

    async def aclose(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109  a bounded flush
        """Deliver what is queued for at most ``timeout`` wall seconds, then stop; what is
        still queued is counted as dropped and logged. Safe to call twice."""
        if self._closed:
            return
        self.start()
        self._put(self._dispatcher.flush(self._clock.time()))  # counted below if never sent
        if self._lanes:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.flush(), timeout)
        self._closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for lane in self._lanes:
            left = lane.outbox.drain()
            if left:
                self._count(lane, "dropped", len(left))
                _log.warning(
                    "alert webhook %s: %d alert(s) undelivered at shutdown",
                    lane.target.name,
                    len(left),
                )
            self._depth(lane)
            await lane.target.aclose()
