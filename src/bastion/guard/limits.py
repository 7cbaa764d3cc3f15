"""Halt triggers: every automatic reason to stop trading, judged in one place, once per step.

A :class:`Trigger` looks at the step's :class:`~bastion.agent.Observation` and at the
:class:`Ledger` (what the runtime knows beyond the observation) and answers with a
:class:`Breach` or None. It does no I/O and trips nothing itself: :meth:`Limits.check` asks
every trigger in turn, and the loop turns the first breach into ``halt.trip(breach.reason,
who=breach.who, detail=breach.detail)``, the one halt path (any further breaches of the same
check ride along in the detail as ``also``). Adding a trigger is one class with a ``check``
method and a place in :meth:`Limits.default`.

When the loop checks (see :mod:`bastion.runtime.loop`): once per trading step, right after it
observes and before the agent decides; also when the observation failed (with no observation:
triggers that need one stay silent, the ledger's still judge); and once more when a run ends,
so a budget used up by the last step's call still halts. The three triggers built here:

* **position drift** (:class:`DriftTrigger`): the expected book of our own fills
  (:class:`~bastion.guard.drift.PositionBook`, kept by the order tracker) against the
  positions observed; it trips at the check of the observation where the drift has persisted
  for ``observations`` looks.
* **cost cap** (:class:`CostCapTrigger`): the budget's ``on_exhausted`` callback records the
  reason in the ledger the moment a call is refused for, or settled into, an exhausted daily or
  USD budget. The loop checks the ledger again right after the decision (with no observation,
  so only ledger notices count), so a step whose own LLM call used the budget up, or was
  refused, trips the halt before any of its orders is sent.
* **health** (:class:`HealthTrigger`): the health guard's re-check runs at the top of a step
  and records its :class:`HealthReading`; an OK/WARN → FAIL reading with
  ``auto_kill_on_health_fail`` on trips at the same step's check, before any decision.

What the ledger records is a notice for the next check; when trading resumes the loop calls
:meth:`Ledger.reset`: the person who resumed has accepted the book, the spend and the health as
they stand, so none of them trips again until something new happens.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from bastion.guard.health import HealthStatus
from bastion.status import TradingState

if TYPE_CHECKING:
    from bastion.agent import Observation
    from bastion.guard.drift import PositionBook
    from bastion.store.day_marks import DayMark

__all__ = [
    "Breach",
    "CostCapTrigger",
    "DailyLossTrigger",
    "DayMarkBook",
    "DriftTrigger",
    "HaltReason",
    "HealthReading",
    "HealthTrigger",
    "Ledger",
    "Limits",
    "Trigger",
]

_log = logging.getLogger(__name__)


class HaltReason(StrEnum):
    """Why trading stopped, as the flag file, the ``halts`` rows and the metrics spell it.

    The values are the strings written since the first release, so stored rows and flag files
    stay readable; a person may still give any text as the reason of ``bastion kill``.
    """

    OPERATOR = "operator"
    """A person: ``bastion kill`` (its default reason) or the console."""
    POSITION_DRIFT = "position_drift"
    COST_CAP = "cost_cap"
    HEALTH_FAIL = "health_fail"
    KILL_SWITCH_FILE = "kill_switch_file"
    """A flag file that is empty, unreadable or not a halt record: halted all the same."""
    DAILY_LOSS = "daily_loss"
    DRAWDOWN = "drawdown"
    ERROR_RATE = "error_rate"
    """Too many tool calls failing over a sliding window."""
    RUNAWAY_LOOP = "runaway_loop"
    """An agent calling tools without end inside one step, or a run past its step cap."""
    FLEET_FLAG = "fleet_flag"


@dataclass(frozen=True, slots=True)
class Breach:
    """A trigger's verdict that trading must stop: why, who says so, and the figures."""

    reason: HaltReason
    who: str
    detail: Mapping[str, Any] = field(default_factory=dict)
    state: TradingState = TradingState.HALTED
    """The halt it asks for: HALTED, or REDUCING (only orders that shrink a position)."""
    until: datetime | None = None
    """When that halt lapses; None: until a person resumes."""

    def to_dict(self) -> dict[str, Any]:
        return {"reason": self.reason.value, "who": self.who, "detail": dict(self.detail)}


@dataclass(frozen=True, slots=True)
class HealthReading:
    """One runtime re-check of System Health as the health guard recorded it.

    ``auto_kill`` is the guard's ``auto_kill_on_health_fail``: it travels with the reading so
    that one setting, on the guard, decides whether health may stop trading.
    """

    status: HealthStatus
    previous: HealthStatus | None
    summary: str
    report: Mapping[str, Any]
    auto_kill: bool

    @property
    def halts(self) -> bool:
        """True for the OK/WARN → FAIL transition under ``auto_kill`` (FAIL → FAIL is not new)."""
        return (
            self.auto_kill
            and self.status is HealthStatus.FAIL
            and self.previous is not HealthStatus.FAIL
        )


@dataclass(slots=True)
class Ledger:
    """What the runtime knows beyond the observation, for the triggers to judge.

    ``book`` is the expected positions from our own fills (the order tracker feeds it);
    ``budget_exhausted`` the first exhaustion the budget reported since trading (re)started;
    ``health`` the health guard's latest reading.
    """

    book: PositionBook
    budget_exhausted: str | None = None
    health: HealthReading | None = None
    now: float = 0.0
    """The runtime's monotonic seconds at this check (the loop sets it)."""
    tool_outcomes: deque[tuple[float, bool]] = field(default_factory=deque)
    """(monotonic seconds, failed) of recent tool calls, refusals counted as failures."""
    tool_calls_in_step: int = 0
    steps: int = 0
    """Steps started since the run began or trading last resumed (the runaway step cap)."""

    def record_tool_call(self, at: float, *, failed: bool) -> None:
        """A tool call answered, failed or refused (the loop feeds it from the journal)."""
        self.tool_outcomes.append((at, failed))
        self.tool_calls_in_step += 1

    def start_step(self, now: float) -> None:
        """A new step: its own tool-call count; the error window keeps the last hour at most."""
        self.now = now
        self.steps += 1
        self.tool_calls_in_step = 0
        while self.tool_outcomes and self.tool_outcomes[0][0] < now - 3600:
            self.tool_outcomes.popleft()

    def record_budget_exhausted(self, reason: str) -> None:
        """The budget's ``on_exhausted`` callback: keep the first reason until it is judged."""
        if self.budget_exhausted is None:
            self.budget_exhausted = reason

    def record_health(self, reading: HealthReading) -> None:
        """The health guard's re-check: the latest reading replaces the one before."""
        self.health = reading

    def reset(self) -> None:
        """Trading resumes: forget the notices and the expected book (re-seeded next look)."""
        self.book.reset()
        self.budget_exhausted = None
        self.health = None
        self.tool_outcomes.clear()
        self.tool_calls_in_step = 0
        self.steps = 0  # a person who resumes a runaway grants a fresh allowance of steps


class Trigger(Protocol):
    """One reason to halt. ``check`` is pure (no I/O) and called once per check."""

    def check(self, observation: Observation | None, ledger: Ledger) -> Breach | None:
        """A breach, or None; ``observation`` is None when the step could not observe."""
        ...


class DriftTrigger:
    """Positions the exchange reports that our own fills do not explain, persistently."""

    def check(self, observation: Observation | None, ledger: Ledger) -> Breach | None:
        book = ledger.book
        if observation is None or not book.seeded:
            return None
        drift = book.check(
            observation.positions,
            observation.instruments,
            now_ms=observation.time_ms,
            index_price=observation.index_price,
        )
        if not drift:
            return None
        return Breach(HaltReason.POSITION_DRIFT, "bastion", {"drift": [d.to_dict() for d in drift]})


class CostCapTrigger:
    """A daily or USD budget the budget reported as used up."""

    def check(self, observation: Observation | None, ledger: Ledger) -> Breach | None:
        if ledger.budget_exhausted is None:
            return None
        return Breach(HaltReason.COST_CAP, "budget", {"reason": ledger.budget_exhausted})


class HealthTrigger:
    """System Health turning FAIL at a runtime re-check, with ``auto_kill_on_health_fail``."""

    def check(self, observation: Observation | None, ledger: Ledger) -> Breach | None:
        reading = ledger.health
        if reading is None or not reading.halts:
            return None
        return Breach(
            HaltReason.HEALTH_FAIL,
            "health guard (auto_kill_on_health_fail)",
            {"summary": reading.summary, "report": dict(reading.report)},
        )


class DayMarkBook(Protocol):
    """Where a :class:`DailyLossTrigger` keeps the day's start and peak across restarts
    (:class:`~bastion.store.day_marks.DayMarkStore`)."""

    def get(self, account: str) -> DayMark | None: ...

    def put(self, account: str, mark: DayMark, *, at: datetime) -> None: ...


class DailyLossTrigger:
    """NAV down too far from the UTC day's start, or from the day's peak.

    NAV is the account's equity as the exchange marks it at every observation (open positions
    at their mark price), in the account's currency. The day's start is the first observation
    of the UTC day; the peak the highest since. A breach asks for a halt until the next UTC
    day: HALTED, or REDUCING with ``flatten`` (the loop then closes the positions).

    With ``marks`` the start and peak are written there whenever they change and read back by
    the first observation after a restart, so a run restarted mid-day keeps the day's real start
    and peak (``account`` names the row). A store that cannot be read or written is logged and
    the trigger goes on from what this process saw: it never stops a halt check.
    """

    def __init__(
        self,
        *,
        max_loss_pct: float | None,
        max_drawdown_pct: float | None,
        flatten: bool = False,
        marks: DayMarkBook | None = None,
        account: str = "",
    ) -> None:
        self._max_loss_pct = max_loss_pct
        self._max_drawdown_pct = max_drawdown_pct
        self._state = TradingState.REDUCING if flatten else TradingState.HALTED
        self._marks = marks
        self._account = account
        self._day: date | None = None
        self._start = 0.0
        self._peak = 0.0

    def check(self, observation: Observation | None, ledger: Ledger) -> Breach | None:
        if observation is None:
            return None
        nav = observation.account.equity
        now = datetime.fromtimestamp(observation.time_ms / 1000, tz=UTC)
        changed = self._mark(now, nav, observation.account.currency)
        if changed:
            self._save(now, observation.account.currency)
        loss = _percent_below(self._start, nav)
        drawdown = _percent_below(self._peak, nav)
        figures = {
            "currency": observation.account.currency,
            "nav": nav,
            "day_start_nav": self._start,
            "day_peak_nav": self._peak,
            "loss_pct": round(loss, 4),
            "drawdown_pct": round(drawdown, 4),
        }
        until = datetime.combine(now.date() + timedelta(days=1), time(), tzinfo=UTC)
        if self._max_loss_pct is not None and loss > self._max_loss_pct:
            detail = {**figures, "limit_pct": self._max_loss_pct}
            return Breach(HaltReason.DAILY_LOSS, "limits", detail, self._state, until)
        if self._max_drawdown_pct is not None and drawdown > self._max_drawdown_pct:
            detail = {**figures, "limit_pct": self._max_drawdown_pct}
            return Breach(HaltReason.DRAWDOWN, "limits", detail, self._state, until)
        return None

    def _mark(self, now: datetime, nav: float, currency: str) -> bool:
        """Move the day's start and peak to ``nav`` as needed; True when they changed."""
        if now.date() != self._day:
            self._day, self._start, self._peak = now.date(), nav, nav
            stored = self._load()
            if stored is not None and stored.day == now.date() and stored.currency == currency:
                self._start, self._peak = stored.start_nav, max(stored.peak_nav, nav)
                return self._peak != stored.peak_nav
            return True
        if nav > self._peak:
            self._peak = nav
            return True
        return False

    def _load(self) -> DayMark | None:
        if self._marks is None:
            return None
        try:
            return self._marks.get(self._account)
        except Exception as exc:  # the store is I/O: this process's own figures still hold
            _log.warning("could not read the day's NAV marks: %s", exc)
            return None

    def _save(self, now: datetime, currency: str) -> None:
        if self._marks is None or self._day is None:
            return
        # Lazy: the store's module pulls in SQLAlchemy, which `bastion kill` must not import.
        from bastion.store.day_marks import DayMark  # noqa: PLC0415

        mark = DayMark(self._day, currency, self._start, self._peak)
        try:
            self._marks.put(self._account, mark, at=now)
        except Exception as exc:  # retried at the next change; the halt check goes on
            _log.warning("could not record the day's NAV marks: %s", exc)


class ToolErrorRateTrigger:
    """More than ``max_rate_pct`` of tool calls failing over the last ``window_seconds``, once
    at least ``min_calls`` were made (two failures out of three calls prove little)."""

    def __init__(self, *, max_rate_pct: float, window_seconds: float, min_calls: int) -> None:
        self._max_rate_pct = max_rate_pct
        self._window = window_seconds
        self._min_calls = min_calls

    def check(self, observation: Observation | None, ledger: Ledger) -> Breach | None:
        since = ledger.now - self._window
        recent = [failed for at, failed in ledger.tool_outcomes if at >= since]
        if len(recent) < self._min_calls:
            return None
        rate = sum(recent) / len(recent) * 100
        if rate <= self._max_rate_pct:
            return None
        detail = {
            "calls": len(recent),
            "failed": sum(recent),
            "error_rate_pct": round(rate, 2),
            "limit_pct": self._max_rate_pct,
            "window_seconds": self._window,
        }
        return Breach(HaltReason.ERROR_RATE, "limits", detail)


class RunawayTrigger:
    """An agent that will not stop: more than ``max_tool_calls`` tool calls inside one step, or
    more than ``max_steps`` steps in one run (counted afresh when a person resumes).

    The step cap is a backstop for runs meant to go on until stopped (``BASTION_MAX_STEPS``
    ends a bounded run normally; this one halts it, on the one halt path, so someone looks).
    """

    def __init__(self, *, max_tool_calls: int | None = None, max_steps: int | None = None) -> None:
        self._max = max_tool_calls
        self._max_steps = max_steps

    def check(self, observation: Observation | None, ledger: Ledger) -> Breach | None:
        if self._max is not None and ledger.tool_calls_in_step > self._max:
            detail = {"tool_calls": ledger.tool_calls_in_step, "limit": self._max}
            return Breach(HaltReason.RUNAWAY_LOOP, "limits", detail)
        if self._max_steps is not None and ledger.steps > self._max_steps:
            detail = {"steps": ledger.steps, "limit": self._max_steps}
            return Breach(HaltReason.RUNAWAY_LOOP, "limits", detail)
        return None


def _percent_below(reference: float, value: float) -> float:
    """How far ``value`` is below ``reference``, in percent of it (0 when not below)."""
    if reference <= 0:
        return 0.0
    return max(0.0, (reference - value) / reference * 100)


class Limits:
    """Every trigger, asked in order; the first breach is the one the halt records."""

    def __init__(self, triggers: Sequence[Trigger]) -> None:
        self.triggers = tuple(triggers)

    @classmethod
    def default(cls) -> Limits:
        """Health first (a failing dependency often explains the rest), cost cap, drift."""
        return cls([HealthTrigger(), CostCapTrigger(), DriftTrigger()])

    def check(self, observation: Observation | None, ledger: Ledger) -> list[Breach]:
        """Every breach of this check, in trigger order (each trigger asked exactly once)."""
        breaches = (t.check(observation, ledger) for t in self.triggers)
        return [b for b in breaches if b is not None]
