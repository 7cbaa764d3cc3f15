"""When a run prunes the budget ledger: once at start, then about once a day while it runs.

:class:`~bastion.store.retention.LedgerRetention` does the deleting; this decides when, for a
process that may run for weeks. The pass at start catches up on whatever aged out while no run
was up; after that a pass is due every ``interval_seconds`` of the run's clock and starts at the
next completed step. It is driven by the journal's ``step_completed`` events rather than a
timer task of its own because a timer would sleep on the injected clock, and a sleeping task on
a :class:`~bastion.clock.SimClock` moves simulated time for everyone.

A pass runs in a worker thread (the delete is blocking I/O, batched so the database's write lock
is taken in short turns) and never more than one at a time, so the loop's steps go on while it
works. A failed pass is logged and retried when the next one is due: retention is housekeeping,
and trading must not stop over it. :meth:`LedgerPruning.stop` asks a pass in flight to end after
its current batch and waits for it, so a run shuts down promptly.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import datetime

from bastion.clock import Clock
from bastion.events import Event, EventKind
from bastion.store.retention import LedgerRetention

__all__ = ["DAY_SECONDS", "LedgerPruning"]

_log = logging.getLogger(__name__)

DAY_SECONDS = 86_400.0


class LedgerPruning:
    """Runs ``retention`` at :meth:`start` and then each ``interval_seconds`` at a step's end."""

    def __init__(
        self, retention: LedgerRetention, clock: Clock, *, interval_seconds: float = DAY_SECONDS
    ) -> None:
        self.retention = retention
        self._clock = clock
        self._interval = interval_seconds
        self._last_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = threading.Event()
        self.passes = 0
        """Passes that finished, failed ones included."""
        self.deleted = 0
        """Ledger rows deleted by this run's passes."""

    def start(self) -> None:
        """Start the first pass now, in the background (call it inside the run's event loop)."""
        self._stopping.clear()
        self._launch()

    def __call__(self, event: Event) -> None:
        """A journal sink: at a step's end, start a pass if one is due and none is running."""
        if event.kind is not EventKind.STEP_COMPLETED or self._stopping.is_set():
            return
        if self._last_at is None or self._clock.monotonic() - self._last_at < self._interval:
            return
        if self._task is not None and not self._task.done():
            return
        self._launch()

    async def idle(self) -> None:
        """Return once no pass is running."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def stop(self) -> None:
        """Ask a pass in flight to end after its batch, wait for it; start no new one."""
        self._stopping.set()
        await self.idle()

    def _launch(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # an emit outside the run's loop: the next step tries again
            return
        self._last_at = self._clock.monotonic()
        # "now" is read here, on the loop, not in the worker: the cut-off is the one of the
        # moment the pass was due, whatever the clock does while the pass runs.
        self._task = loop.create_task(asyncio.to_thread(self._pass, self._clock.now()))

    def _pass(self, now: datetime) -> None:
        try:
            deleted = self.retention.prune(now, should_stop=self._stopping.is_set)
        except Exception:
            _log.exception("budget ledger prune failed; it is retried when the next one is due")
        else:
            self.deleted += deleted
            _log.info(
                "budget ledger: %d row(s) older than %s deleted (retention %d days); the "
                "running totals are unchanged",
                deleted,
                self.retention.cutoff(now).isoformat(),
                self.retention.days,
            )
        finally:
            self.passes += 1
