"""The one halt path.

Every stop trigger (operator kill, and later daily loss, cost cap, error rate, drift, health)
calls :meth:`Halt.trip`. It always does the same three things in the same order:

1. **raise the flag**: ``data/kill_switch.flag`` (JSON: reason, who, when) written atomically,
   and a ``halts`` row in the store, so nothing new is sent from this moment on;
2. **cancel resting orders** through the injected canceller;
3. **alert**: a ``halt_tripped`` event through the journal.

Tripping twice is harmless: the first halt stays the one on record, cancelling again is safe.

The flag is a file so that a person (or ``bastion kill`` in another process) can stop a running
agent without any API. The running loop notices the file at the top of each tick, right before
each order and while it waits between ticks, and then calls :meth:`enforce`, which cancels what
is still resting. Resume is a human act: :meth:`resume` records who resumed and why.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from bastion.clock import Clock
from bastion.errors import HaltedError
from bastion.events import EventKind, Journal
from bastion.store import Store
from bastion.telemetry.metrics import Metrics

__all__ = ["Halt", "HaltState"]

Canceller = Callable[[], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class HaltState:
    """What the flag file says: why trading stopped, who stopped it and when."""

    reason: str
    who: str
    when: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Halt:
    """Raise, enforce and clear the kill switch."""

    def __init__(
        self,
        *,
        flag_path: Path,
        clock: Clock,
        store: Store | None = None,
        journal: Journal | None = None,
        metrics: Metrics | None = None,
        canceller: Canceller | None = None,
    ) -> None:
        self.flag_path = flag_path
        self._clock = clock
        self._store = store
        self._journal = journal
        self._metrics = metrics
        self._canceller = canceller
        self._enforced_for: HaltState | None = None

    def set_canceller(self, canceller: Canceller | None) -> None:
        """Attach the exchange's cancel-all once it exists (the halt outlives reconnects)."""
        self._canceller = canceller

    # -- reading ------------------------------------------------------------------------
    def state(self) -> HaltState | None:
        """The active halt, or None. A flag that cannot be parsed still counts as a halt."""
        try:
            raw = self.flag_path.read_bytes()
        except FileNotFoundError:
            self._set_gauge(active=False)
            return None
        self._set_gauge(active=True)
        try:
            data = orjson.loads(raw)
            return HaltState(reason=str(data["reason"]), who=str(data["who"]), when=data["when"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return HaltState(reason="kill_switch_flag_unreadable", who="unknown", when="")

    def active(self) -> bool:
        return self.state() is not None

    def check(self) -> None:
        """Raise :class:`HaltedError` if the kill switch is on; called before every order."""
        state = self.state()
        if state is not None:
            raise HaltedError(
                f"trading halted ({state.reason}, by {state.who}); run `bastion resume` to "
                "continue",
                observed=state.reason,
            )

    # -- the halt path ------------------------------------------------------------------
    async def trip(
        self, reason: str, *, who: str = "bastion", detail: dict[str, Any] | None = None
    ) -> HaltState:
        """Stop trading: flag, cancel, alert. Idempotent; returns the halt on record."""
        existing = self.state()
        state = existing or HaltState(reason=reason, who=who, when=self._now().isoformat())
        if existing is None:
            self._write_flag(state)
            if self._store is not None:
                self._store.halts.trip(reason, who, self._now(), detail or {})
            if self._metrics is not None:
                self._metrics.halts.labels(reason=reason).inc()
        cancelled = await self._cancel_resting()
        if existing is None and self._journal is not None:
            self._journal.emit(
                EventKind.HALT_TRIPPED,
                {**state.to_dict(), "cancelled_orders": cancelled, "detail": detail or {}},
            )
        self._enforced_for = state
        return state

    async def enforce(self) -> int | None:
        """Cancel resting orders once per halt seen on the flag (e.g. raised by another process).

        Returns how many orders were cancelled, or None when there was nothing new to enforce.
        """
        state = self.state()
        if state is None or state == self._enforced_for:
            return None
        cancelled = await self._cancel_resting()
        self._enforced_for = state
        if self._journal is not None:
            self._journal.emit(
                EventKind.HALT_ENFORCED, {**state.to_dict(), "cancelled_orders": cancelled}
            )
        return cancelled

    def resume(self, *, who: str, why: str) -> HaltState | None:
        """Clear the flag and record who resumed and why. Returns the halt that was cleared."""
        state = self.state()
        if state is None:
            return None
        self.flag_path.unlink(missing_ok=True)
        self._set_gauge(active=False)
        self._enforced_for = None
        if self._store is not None:
            self._store.halts.resume(who, why, self._now())
        if self._journal is not None:
            self._journal.emit(
                EventKind.HALT_RESUMED, {"reason": state.reason, "who": who, "why": why}
            )
        return state

    # -- helpers ------------------------------------------------------------------------
    async def _cancel_resting(self) -> int:
        if self._canceller is None:
            return 0
        return await self._canceller()

    def _write_flag(self, state: HaltState) -> None:
        """Write the flag atomically: a reader sees no flag or a whole one, never half."""
        self.flag_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.flag_path.parent, prefix=".kill_switch.")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(orjson.dumps(state.to_dict()))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.flag_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._set_gauge(active=True)

    def _set_gauge(self, *, active: bool) -> None:
        if self._metrics is not None:
            self._metrics.kill_switch_active.set(1 if active else 0)

    def _now(self) -> datetime:
        return self._clock.now()
