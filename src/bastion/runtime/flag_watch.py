"""Notice the kill-switch flag the moment it appears, whatever the loop is doing.

The loop looks at the flag between steps (its wait polls every ``halt_poll_seconds``) and right
before each order. A flag touched during a long step (an LLM call, a slow exchange, a 30 s
interval's wait) used to leave resting orders on the book until the loop looked again. A
:class:`FlagWatcher` task runs beside the loop for the whole run and calls ``on_flag`` as soon as
the file is created or replaced: through the operating system's file events (inotify, by
watchfiles) where it offers them, and by polling every ``poll_seconds`` where it does not (or
when the watch cannot start, for instance at the inotify watch limit). Both paths only ever call
``on_flag``, which is the halt's own idempotent enforcement: a flag seen twice cancels once.

watchfiles groups events for ``step`` milliseconds before it reports them; :data:`STEP_MS` keeps
that wait well inside the 100 ms the halt has from the touch to the cancelled orders.

The fleet's flag is a row in the shared store, which no file event announces: a
:class:`FleetPoller` reads it every ``poll_seconds`` for the whole run and lets the halt follow
it (:meth:`bastion.guard.halt.Halt.follow_fleet`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path

from watchfiles import Change, awatch

__all__ = ["STEP_MS", "FlagWatcher", "FleetPoller"]

STEP_MS = 5
"""How long watchfiles waits for more events before reporting a change."""

_log = logging.getLogger(__name__)


class _Background:
    """``run`` as a task beside the loop for the whole run: :meth:`start` it, :meth:`aclose` it."""

    def __init__(self, run: Callable[[], Coroutine[object, object, None]], name: str) -> None:
        self._run = run
        self._name = name
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start in a background task of the running event loop (idempotent)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self._name)

    async def aclose(self) -> None:
        """Stop, and wait for the task (and any watch thread) to let go."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class FlagWatcher(_Background):
    """Call ``on_flag`` whenever ``path`` appears or is rewritten, until :meth:`aclose`."""

    def __init__(
        self,
        path: Path,
        on_flag: Callable[[], Awaitable[object]],
        *,
        poll_seconds: float,
        force_polling: bool = False,
    ) -> None:
        super().__init__(self._watch, "bastion-flag-watch")
        self._path = path
        self._on_flag = on_flag
        self._poll_seconds = poll_seconds
        self._force_polling = force_polling
        self.mechanism = "none"
        """``inotify``/``polling`` once started: what the watch runs on (shown by the runner)."""

    async def _watch(self) -> None:
        if not self._force_polling:
            try:
                await self._watch_events()
            except (OSError, RuntimeError) as exc:  # no inotify, watch limit, directory gone
                _log.warning("flag watch falls back to polling: %s", exc)
        await self._poll()

    async def _watch_events(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self.mechanism = "inotify"
        await self._fire_if_present()  # raised before the watch started
        async for _ in awatch(
            self._path.parent,
            watch_filter=self._concerns_flag,
            step=STEP_MS,
            recursive=False,
            force_polling=False,
        ):
            await self._fire_if_present()

    async def _poll(self) -> None:
        self.mechanism = "polling"
        seen = False
        while True:
            present = self._path.exists()
            if present and not seen:
                await self._fire()
            seen = present
            await asyncio.sleep(self._poll_seconds)

    def _concerns_flag(self, change: Change, path: str) -> bool:
        return change != Change.deleted and Path(path).name == self._path.name

    async def _fire_if_present(self) -> None:
        if self._path.exists():
            await self._fire()

    async def _fire(self) -> None:
        try:
            await self._on_flag()
        except Exception:  # the watch must outlive a failed enforcement; the loop retries
            _log.exception("enforcing the halt the flag raised failed")


class FleetPoller(_Background):
    """Call ``follow`` every ``poll_seconds`` until :meth:`aclose` (the fleet halt's poll)."""

    def __init__(self, follow: Callable[[], Awaitable[object]], *, poll_seconds: float) -> None:
        super().__init__(self._poll_forever, "bastion-fleet-poll")
        self._follow = follow
        self._poll_seconds = poll_seconds

    async def _poll_forever(self) -> None:
        while True:
            try:
                await self._follow()
            except Exception:  # a store outage must not end the poll; the next one retries
                _log.exception("following the fleet halt failed")
            await asyncio.sleep(self._poll_seconds)
