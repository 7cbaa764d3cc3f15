"""The one halt path.

Every stop calls :meth:`Halt.trip`: a person (``bastion kill``, the console) directly, and the
automatic triggers (drift, cost cap, health; see :mod:`bastion.guard.limits`) through the loop's
limits check. It always does the same three things in the same order:

1. **raise the flag**: ``data/kill_switch.flag`` (JSON: reason, who, when) written atomically,
   and a ``halts`` row in the store, so nothing new is sent from this moment on;
2. **cancel resting orders** through the injected canceller;
3. **alert**: a ``halt_tripped`` event through the journal.

Tripping twice is harmless: the first halt stays the one on record, cancelling again is safe.
The flag comes first and nothing after it can undo it: a store that is down or a cancel that
fails is reported in the alert, never raised.

The flag is a file so that a person (or ``bastion kill`` in another process) can stop a running
agent without any API. The running loop watches the file for the whole run
(:mod:`bastion.runtime.flag_watch`) and looks at it at the top of each tick and right before
each order; when it appears the loop calls :meth:`enforce`, which cancels what is still
resting. Every halted step sweeps again, and an order acknowledged after the flag rose is
cancelled by the loop as soon as the answer arrives. Until a cancel has succeeded under the
halt the system is *halting*, not yet *halted*: :attr:`marker_path` records the confirmation.
Resume is a human act: :meth:`resume` records who resumed and why.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from bastion.clock import Clock
from bastion.errors import BastionError, HaltedError, UsageError
from bastion.events import EventKind, Journal
from bastion.guard.limits import HaltReason
from bastion.status import HaltState, TradingState
from bastion.store.halt_record import HaltRecord

if TYPE_CHECKING:
    from bastion.telemetry.metrics import Metrics

__all__ = ["Halt", "HaltBook"]

Canceller = Callable[[], Awaitable[int]]
_log = logging.getLogger(__name__)
_KNOWN_REASONS = frozenset(HaltReason)


def _reason_label(reason: str) -> str:
    """The ``reason`` label of ``bastion_halts_total``: a :class:`HaltReason`, never free text.

    A person may give any text as a halt's reason (``bastion kill --reason``, the console); as a
    label that would be a new series per wording, so anything but a known reason counts as
    ``operator``. The text itself stays in the flag, the ``halts`` row and the event.
    """
    return reason if reason in _KNOWN_REASONS else HaltReason.OPERATOR.value


class HaltBook(Protocol):
    """Where halts are recorded for every process on the database: the store's ``halts``.

    :class:`~bastion.store.halts.HaltStore` is the one a run uses;
    :class:`~bastion.store.emergency.EmergencyStore` writes the same rows for ``bastion kill``
    without the database layer's import time.
    """

    def trip(
        self,
        reason: str,
        who: str,
        at: datetime,
        detail: Mapping[str, Any] | None = None,
        *,
        state: str = "halted",
        until: datetime | None = None,
        scope: str = "host",
    ) -> HaltRecord: ...

    def resume(
        self, who: str, why: str, at: datetime, *, scope: str = "host"
    ) -> HaltRecord | None: ...

    def active(self, *, scope: str = "host") -> HaltRecord | None: ...


class Halt:
    """Raise, enforce and clear the kill switch."""

    def __init__(
        self,
        *,
        flag_path: Path,
        clock: Clock,
        halts: HaltBook | None = None,
        journal: Journal | None = None,
        metrics: Metrics | None = None,
        canceller: Canceller | None = None,
        auto_resume: bool = False,
    ) -> None:
        """``auto_resume``: a halt with an expiry (``until``) lifts itself once it lapses;
        without it a lapsed halt stays until a person resumes (the default: a daily-loss halt
        should be looked at before the next day trades)."""
        self.flag_path = flag_path
        self._auto_resume = auto_resume
        self._clock = clock
        self._halts = halts
        self._journal = journal
        self._metrics = metrics
        if metrics is not None:
            # Every reason exported at 0 from the start: a first halt is then an increase that
            # Prometheus sees (a series born at 1 has no increase()), and the rules can alert on it.
            for known in HaltReason:
                metrics.halts.labels(reason=known.value)
        self._canceller = canceller
        self._enforced_for: tuple[str, str, str] | None = None
        self._unflagged: HaltState | None = None
        """A halt this process tripped whose flag file could not be written (a full disk, a
        read-only directory): this process stays halted by it until a resume."""
        self._enforcing = asyncio.Lock()  # the flag watcher and the loop may enforce at once
        self.marker_path = flag_path.with_name(flag_path.name + ".enforced")
        """Written once resting orders were cancelled under the flag's halt: *halted*, not
        *halting* (see :attr:`HaltState.enforced`)."""

    def set_canceller(self, canceller: Canceller | None) -> None:
        """Attach the exchange's cancel-all once it exists (the halt outlives reconnects)."""
        self._canceller = canceller

    # -- reading ------------------------------------------------------------------------
    def state(self) -> HaltState | None:
        """The active halt, or None.

        A flag file that is empty (``touch kill_switch.flag``), cannot be read or is not a halt
        record still halts: failing open would let a person's stop be ignored. Such a halt has
        reason ``kill_switch_file``, names what is wrong with the file as ``who`` and dates
        itself by the file's modification time.
        """
        try:
            raw = self.flag_path.read_bytes()
        except FileNotFoundError:
            self._set_gauge(active=self._unflagged is not None)
            return self._unflagged
        except OSError as exc:  # a directory, no permission...: fail safe, not open
            self._set_gauge(active=True)
            return self._file_halt(f"unreadable: {exc.strerror or exc}")
        self._set_gauge(active=True)
        if not raw.strip():
            return self._file_halt("empty")
        try:
            state = _parse_flag(orjson.loads(raw))
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            return self._file_halt("not a halt record")
        if self._lapsed(state) and self._auto_resume:
            self._lift(state, who="bastion", why=f"the halt lapsed at {state.until}")
            return None
        return replace(state, enforced=self._confirmed(state))

    def active(self) -> bool:
        """Whether any halt is on (HALTED or REDUCING)."""
        return self.state() is not None

    def trading_state(self) -> TradingState:
        """ACTIVE, REDUCING or HALTED, as the flag says now."""
        state = self.state()
        return TradingState.ACTIVE if state is None else state.state

    def permits(self, *, reduce_only: bool) -> bool:
        """Whether an order may go out now: anything when ACTIVE, only a reduce-only order when
        REDUCING, nothing when HALTED."""
        state = self.trading_state()
        return state is TradingState.ACTIVE or (state is TradingState.REDUCING and reduce_only)

    def check(self, *, reduce_only: bool = False) -> None:
        """Raise :class:`HaltedError` unless the order may go out; called before every order."""
        state = self.state()
        if state is None or (state.state is TradingState.REDUCING and reduce_only):
            return
        what = "trading halted" if state.state is TradingState.HALTED else "reduce-only"
        raise HaltedError(
            f"{what} ({state.reason}, by {state.who}); run `bastion resume` to continue",
            observed=state.reason,
        )

    # -- the halt path ------------------------------------------------------------------
    async def trip(
        self,
        reason: str,
        *,
        who: str = "bastion",
        detail: dict[str, Any] | None = None,
        state: TradingState = TradingState.HALTED,
        until: datetime | None = None,
    ) -> HaltState:
        """Stop trading: flag, cancel, alert. Idempotent; returns the halt on record.

        ``state`` is HALTED (nothing but cancels) or REDUCING (only orders that shrink a
        position); ``until`` is when the halt lapses (see ``auto_resume``). A halt already on
        stays the one on record, except that a HALTED trip replaces a REDUCING halt: the
        stricter stop always wins.

        Nothing after the flag can undo it: a store that is down or a cancel that fails is
        reported in the alert, never raised, so the caller (a CLI, a console route, a guard)
        always gets a halted system back. Not even the flag itself: one that cannot be written
        halts this process in memory, and the alert carries ``flag_error``.
        """
        if state is TradingState.ACTIVE:
            raise UsageError("a halt is HALTED or REDUCING; to trade again, resume")
        reason = str(reason)  # a HaltReason is recorded as its plain value
        existing = self.state()
        escalates = existing is not None and existing.state is TradingState.REDUCING
        if existing is not None and escalates and state is TradingState.HALTED:
            self._lift(existing, who=who, why=f"escalated to halted: {reason}")
            existing = None
        fresh = HaltState(
            reason=reason,
            who=who,
            when=self._now().isoformat(),
            state=state,
            until=until.astimezone(UTC).isoformat() if until is not None else None,
        )
        state_now = existing or fresh
        problems: dict[str, str] = {}
        if existing is None:
            problems.update(self._raise_flag(state_now))
            problems.update(self._record_trip(state_now, detail or {}))
            if self._metrics is not None:
                self._metrics.halts.labels(reason=_reason_label(reason)).inc()
        async with self._enforcing:
            self._enforced_for = state_now.key  # a watcher woken by our own flag finds it handled
            cancelled, cancel_error = await self._cancel_resting()
            self._confirm(state_now, cancel_error)
        if cancel_error:
            problems["cancel_error"] = cancel_error
        if existing is None and self._journal is not None:
            self._journal.emit(
                EventKind.HALT_TRIPPED,
                {
                    **state_now.to_dict(),
                    "cancelled_orders": cancelled,
                    "detail": detail or {},
                    **problems,
                },
            )
        return state_now

    async def enforce(self, *, always: bool = False) -> int | None:
        """Cancel resting orders under a halt raised anywhere (this process or `bastion kill`).

        The first call for a halt cancels and records a ``halt_enforced`` event; later calls do
        nothing unless ``always`` (the loop's halted steps pass it, to sweep up an order that
        was in flight when the halt was tripped). Returns how many orders were cancelled, or
        None when nothing was attempted.
        """
        async with self._enforcing:
            state = self.state()
            if state is None:
                return None
            first = state.key != self._enforced_for
            if not first and not always:
                return None
            self._enforced_for = state.key
            cancelled, cancel_error = await self._cancel_resting()
            self._confirm(state, cancel_error)
        if first and self._metrics is not None:
            self._metrics.halts.labels(reason=_reason_label(state.reason)).inc()  # another process
        if (first or cancelled or cancel_error) and self._journal is not None:
            payload: dict[str, Any] = {**state.to_dict(), "cancelled_orders": cancelled}
            if cancel_error:
                payload["cancel_error"] = cancel_error
            self._journal.emit(EventKind.HALT_ENFORCED, payload)
        return cancelled

    def resume(self, *, who: str, why: str) -> HaltState | None:
        """Clear the flag and record who resumed and why. Returns the halt that was cleared.

        A halt still open in the store is closed even when the flag was deleted by hand, so the
        record never keeps a halt open that nobody can see.
        """
        state = self.state()
        if state is None:
            record = self._recorded_active()
            if record is None:
                return None
            state = HaltState(record.reason, record.who, record.tripped_at.isoformat())
        self._lift(state, who=who, why=why)
        return state

    def _lift(self, state: HaltState, *, who: str, why: str) -> None:
        """Clear the flag, close the store's record, say so: a resume, a lapse, an escalation."""
        self.flag_path.unlink(missing_ok=True)
        self.marker_path.unlink(missing_ok=True)
        self._unflagged = None
        self._set_gauge(active=False)
        self._enforced_for = None
        problems: dict[str, str] = {}
        if self._halts is not None:
            try:
                self._halts.resume(who, why, self._now())
            except Exception as exc:  # the flag is already gone; report, do not undo
                _log.exception("could not record the resume in the store")
                problems["store_error"] = str(exc)
        if self._journal is not None:
            self._journal.emit(
                EventKind.HALT_RESUMED,
                {"reason": state.reason, "who": who, "why": why, **problems},
            )

    # -- the fleet --------------------------------------------------------------------
    @property
    def shares_a_store(self) -> bool:
        """Whether halts are recorded in a store (where the fleet's halt lives)."""
        return self._halts is not None

    def fleet_halt(self) -> HaltRecord | None:
        """The fleet-wide halt on the store, if any (None without a store or when it is down)."""
        if self._halts is None:
            return None
        try:
            return self._halts.active(scope="fleet")
        except Exception:
            _log.exception("could not read the fleet halt from the store")
            return None

    async def trip_fleet(
        self, reason: str, *, who: str, detail: dict[str, Any] | None = None
    ) -> HaltRecord:
        """Halt every agent on this store: the fleet's row, which each running agent follows
        with a halt of its own within one poll (:meth:`follow_fleet`). Idempotent."""
        if self._halts is None:
            raise UsageError(
                "a fleet halt lives in the store, and the store is unavailable. Fix: check "
                "BASTION_STORE_URL, or stop each agent with `bastion kill` on its host"
            )
        existing = self._halts.active(scope="fleet")
        record = existing or self._halts.trip(
            str(reason), who, self._now(), detail or {}, scope="fleet"
        )
        if existing is None and self._journal is not None:
            self._journal.emit(
                EventKind.HALT_TRIPPED,
                {
                    "reason": record.reason,
                    "who": record.who,
                    "when": record.tripped_at.isoformat(),
                    "scope": "fleet",
                    "detail": detail or {},
                },
            )
        return record

    def resume_fleet(self, *, who: str, why: str) -> HaltRecord | None:
        """Lower the fleet halt; each agent that followed it lifts its own within one poll."""
        if self._halts is None:
            raise UsageError("a fleet halt lives in the store, and the store is unavailable")
        record = self._halts.resume(who, why, self._now(), scope="fleet")
        if record is not None and self._journal is not None:
            self._journal.emit(
                EventKind.HALT_RESUMED,
                {"reason": record.reason, "who": who, "why": why, "scope": "fleet"},
            )
        return record

    async def follow_fleet(self) -> None:
        """Halt here while the fleet is halted; lift a halt that only followed it once the fleet
        halt is resumed. A halt of this host's own is never lifted by the fleet."""
        fleet = self.fleet_halt()
        local = self.state()
        if fleet is not None and (local is None or local.state is TradingState.REDUCING):
            detail = {"fleet_reason": fleet.reason, "fleet_halt_id": fleet.id}
            await self.trip(
                HaltReason.FLEET_FLAG, who=f"the fleet halt by {fleet.who}", detail=detail
            )
        elif fleet is None and local is not None and local.reason == HaltReason.FLEET_FLAG:
            self.resume(who="bastion", why="the fleet halt was resumed")

    # -- helpers ------------------------------------------------------------------------
    async def _cancel_resting(self) -> tuple[int, str | None]:
        """Cancel everything resting; a failure is returned, never raised (see trip)."""
        if self._canceller is None:
            return 0, None
        try:
            return await self._canceller(), None
        except BastionError as exc:
            _log.warning("halt could not cancel resting orders: %s", exc)
            return 0, str(exc)

    def _record_trip(self, state: HaltState, detail: dict[str, Any]) -> dict[str, str]:
        if self._halts is None:
            return {}
        try:
            until = datetime.fromisoformat(state.until) if state.until is not None else None
            self._halts.trip(
                state.reason, state.who, self._now(), detail, state=state.state, until=until
            )
        except Exception as exc:  # the flag is up already: a store outage must not undo it
            _log.exception("could not record the halt in the store")
            return {"store_error": str(exc)}
        return {}

    def _recorded_active(self) -> HaltRecord | None:
        if self._halts is None:
            return None
        try:
            return self._halts.active()
        except Exception:
            _log.exception("could not read the active halt from the store")
            return None

    def _raise_flag(self, state: HaltState) -> dict[str, str]:
        """Write the flag; when it cannot be written, halt this process in memory instead and
        say so (as ``flag_error``): the cancels, the store's record and the alert still follow,
        since a stop that gives up at its first step is no stop."""
        try:
            self._write_flag(state)
        except OSError as exc:
            _log.exception("could not write the kill-switch flag %s", self.flag_path)
            self._unflagged = state
            self._set_gauge(active=True)
            return {"flag_error": f"{self.flag_path}: {exc.strerror or exc}"}
        return {}

    def _write_flag(self, state: HaltState) -> None:
        """Write the flag atomically: a reader sees no flag or a whole one, never half."""
        record = {
            "reason": state.reason,
            "who": state.who,
            "when": state.when,
            "state": state.state.value,
            "until": state.until,
        }
        _write_atomically(self.flag_path, orjson.dumps(record), durable=True)
        self._set_gauge(active=True)

    def _confirm(self, state: HaltState, cancel_error: str | None) -> None:
        """Mark the halt enforced once its resting orders are known cancelled.

        Nothing is confirmed without a canceller (``bastion kill`` with no exchange to reach:
        the running loop confirms when it has cancelled) or after a failed cancel. The marker
        names its halt, so one left behind by an earlier halt confirms nothing.
        """
        if self._canceller is None or cancel_error is not None:
            return
        try:
            _write_atomically(self.marker_path, orjson.dumps(list(state.key)), durable=False)
        except OSError:
            _log.exception("could not mark the halt enforced")  # status says halting; harmless

    def _lapsed(self, state: HaltState) -> bool:
        if state.until is None:
            return False
        try:
            return self._now() >= datetime.fromisoformat(state.until)
        except (TypeError, ValueError):
            return False  # an expiry nobody can read never lifts a halt

    def _confirmed(self, state: HaltState) -> bool:
        try:
            return bool(orjson.loads(self.marker_path.read_bytes()) == list(state.key))
        except (OSError, orjson.JSONDecodeError):
            return False

    def _file_halt(self, problem: str) -> HaltState:
        """The halt a flag file stands for when it does not say who raised it."""
        try:
            mtime = self.flag_path.stat().st_mtime
        except OSError:
            when = ""
        else:
            when = datetime.fromtimestamp(mtime, tz=UTC).isoformat()
        return HaltState(
            reason=HaltReason.KILL_SWITCH_FILE, who=f"the flag file ({problem})", when=when
        )

    def _set_gauge(self, *, active: bool) -> None:
        if self._metrics is not None:
            self._metrics.kill_switch_active.set(1 if active else 0)

    def _now(self) -> datetime:
        return self._clock.now()


def _write_atomically(path: Path, data: bytes, *, durable: bool) -> None:
    """Replace ``path`` with ``data`` in one rename; ``durable`` fsyncs before it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _parse_flag(data: Any) -> HaltState:
    """The halt a flag record describes; a state it does not know is a full halt (fail safe)."""
    try:
        state = TradingState(data.get("state") or TradingState.HALTED)
    except ValueError:
        state = TradingState.HALTED
    if state is TradingState.ACTIVE:
        state = TradingState.HALTED
    until = data.get("until")
    return HaltState(
        reason=str(data["reason"]),
        who=str(data["who"]),
        when=str(data["when"]),
        state=state,
        until=str(until) if until is not None else None,
    )
