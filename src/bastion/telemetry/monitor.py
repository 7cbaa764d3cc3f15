"""The in-process alert monitor: SLO burn rates and page-on thresholds, as journal alerts.

:class:`SloReader` reads one moment's figures from the task records (one pass for the seven
burn-rate windows and the period, a few per-run reads, baselines cached for an hour);
:mod:`bastion.telemetry.slo` and :mod:`bastion.telemetry.page_on` decide what they mean.
:class:`AlertMonitor` keeps which alerts are firing and says so on the journal: it emits
``alert_firing`` (``Alert.to_payload()``) when a key starts firing and ``alert_resolved`` with
the same payload when it stops, never a second ``alert_firing`` for a key already firing.

Schedule: a journal sink, driven by the run's own events and its injected clock (no timer task:
a sleeping task on a :class:`~bastion.clock.SimClock` would move simulated time for everyone).
The halt's alerts (kill switch, drift, runaway loop) follow every ``step_completed``,
``halt_tripped`` and ``halt_resumed`` at once, without a read; the store-fed ones are evaluated
at the first ``step_completed`` and then at the first one ``interval_seconds`` after the last
evaluation. In a run (``background=True``) the reads run in a worker thread and the alerts are
emitted back on the event loop, so a 30-day tally never stalls a step; one at a time.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bastion.clock import Clock
from bastion.events import Event, EventKind, Journal
from bastion.store.tasks import STEP, TaskStore, TaskTally
from bastion.telemetry.alert import Alert
from bastion.telemetry.page_on import (
    PageOnFigures,
    PageOnSettings,
    cost_baseline,
    halt_alerts,
    latency_baseline,
    p95,
    page_on_alerts,
)
from bastion.telemetry.slo import WINDOWS, SloSpec, SloStatus, default_slos, evaluate, slo_alerts

__all__ = ["AlertMonitor", "SloReader", "SloSnapshot"]

_log = logging.getLogger(__name__)

_CACHE_TTL_S = 3600.0
"""How long a baseline, or the period's older part, read from the store is kept: they move
over days, not minutes."""


@dataclass(frozen=True, slots=True)
class SloSnapshot:
    """One moment's SLO statuses and page-on figures."""

    evaluated_at: datetime
    period_days: float
    statuses: tuple[SloStatus, ...]
    page_on: PageOnFigures | None = None

    def alerts(self, settings: PageOnSettings | None = None) -> list[Alert]:
        """The SLO and store-fed page-on alerts that hold at this moment."""
        found = slo_alerts(self.statuses, self.evaluated_at)
        if settings is not None and self.page_on is not None:
            found += page_on_alerts(settings, self.page_on, self.evaluated_at)
        return found

    def to_dict(self, firing: Sequence[Alert]) -> dict[str, Any]:
        """``GET /api/slo``'s body (docs: the console contract), with ``firing`` alerts."""
        return {
            "period_days": self.period_days,
            "evaluated_at": self.evaluated_at.isoformat(),
            "slos": [status.to_dict() for status in self.statuses],
            "firing": [alert.to_payload() for alert in firing],
        }


@dataclass
class _Cached:
    at: float
    value: float | None


class SloReader:
    """Reads the task records for the SLOs and the page-on thresholds at a given moment."""

    def __init__(
        self,
        tasks: TaskStore,
        *,
        slos: Sequence[SloSpec] | None = None,
        page_on: PageOnSettings | None = None,
        period_days: float = 30.0,
        kind: str = STEP,
    ) -> None:
        self.tasks = tasks
        self.slos = tuple(slos) if slos is not None else default_slos()
        self.page_on = page_on or PageOnSettings()
        self.period_days = period_days
        self.kind = kind
        by_name = {spec.name: spec for spec in self.slos}
        latency, cost = by_name.get("latency"), by_name.get("cost")
        self._latency_s = latency.threshold if latency and latency.threshold is not None else 5.0
        self._cost_usd = cost.threshold if cost and cost.threshold is not None else 0.15
        self._baselines: dict[tuple[str, str], _Cached] = {}
        self._older_cache: tuple[float, datetime, TaskTally] | None = None

    def statuses(self, now: datetime, *, monotonic: float | None = None) -> tuple[SloStatus, ...]:
        """Every SLO over the period and the burn-rate windows ending at ``now``.

        The windows and the last 3 days are counted afresh; with ``monotonic`` (the monitor's
        clock) the rest of the period, the 27 days before them, is read once an hour and kept:
        at a step every 2 s that is over a million rows a read, and a budget over 30 days does
        not move in an hour. The fresh part then starts where the kept part ends, so no task is
        missed or counted twice, and the period reaches up to an hour further back.
        """
        longest = max(span for _, span in WINDOWS)
        period = timedelta(days=self.period_days)
        starts = [now - span for _, span in WINDOWS]
        older: TaskTally | None = None
        if period > longest:
            boundary, older = self._older(now - period, now - longest, monotonic)
            starts.append(boundary)  # the fresh part starts where the kept one ends: no gap
        else:
            starts.append(now - period)
        tallies = self.tasks.tallies(
            starts, now, latency_s=self._latency_s, cost_usd=self._cost_usd, kind=self.kind
        )
        windows = {name: tallies[i] for i, (name, _) in enumerate(WINDOWS)}
        total = tallies[-1] if older is None else tallies[-1] + older
        return tuple(evaluate(spec, total, windows) for spec in self.slos)

    def _older(
        self, since: datetime, until: datetime, monotonic: float | None
    ) -> tuple[datetime, TaskTally]:
        """The tally of ``(since, until]``, or the one kept from up to an hour ago (with the
        end it was read to)."""
        cached = self._older_cache
        if monotonic is not None and cached is not None and monotonic - cached[0] < _CACHE_TTL_S:
            return cached[1], cached[2]
        older = self.tasks.tally(
            since, until, latency_s=self._latency_s, cost_usd=self._cost_usd, kind=self.kind
        )
        if monotonic is not None:
            self._older_cache = (monotonic, until, older)
        return until, older

    def figures(self, now: datetime, run_id: str | None, monotonic: float) -> PageOnFigures:
        """The page-on figures at ``now``; the per-run ones for ``run_id`` (zero without one)."""
        s = self.page_on
        errors = self.tasks.tally(
            now - timedelta(seconds=s.error_window_s),
            now,
            latency_s=self._latency_s,
            cost_usd=self._cost_usd,
            kind=self.kind,
        )
        if run_id is None:
            return PageOnFigures(errors=errors)
        since = now - timedelta(days=self.period_days)
        totals = self.tasks.run_totals(since, now, kind=self.kind, run_id=run_id)
        run = totals[0] if totals else None
        recent = self.tasks.durations(
            now - timedelta(seconds=s.latency_window_s), now, kind=self.kind, run_id=run_id
        )
        return PageOnFigures(
            run_cost_usd=run.cost_usd if run else 0.0,
            run_tool_calls=run.tool_calls if run else 0,
            latency_p95_s=p95(recent.get(run_id, [])),
            errors=errors,
            cost_baseline_usd=self._baseline("cost", now, run_id, monotonic),
            latency_baseline_s=self._baseline("latency", now, run_id, monotonic),
        )

    def snapshot(
        self, now: datetime, run_id: str | None = None, *, monotonic: float = 0.0
    ) -> SloSnapshot:
        """The statuses and the figures at ``now`` (``monotonic`` ages the baseline cache)."""
        return SloSnapshot(
            now,
            self.period_days,
            self.statuses(now, monotonic=monotonic),
            self.figures(now, run_id, monotonic),
        )

    def _baseline(self, which: str, now: datetime, run_id: str, monotonic: float) -> float | None:
        """The median of the other runs of the last ``baseline_days``; cached an hour."""
        s = self.page_on
        if (which == "cost" and (s.cost_factor is None or s.cost_baseline_usd is not None)) or (
            which == "latency" and (s.latency_factor is None or s.latency_baseline_s is not None)
        ):
            return None  # not evaluated, or configured: no read
        cached = self._baselines.get((which, run_id))
        if cached is not None and monotonic - cached.at < _CACHE_TTL_S:
            return cached.value
        since = now - timedelta(days=s.baseline_days)
        if which == "cost":
            runs = self.tasks.run_totals(since, now, kind=self.kind)
            value = cost_baseline(r.cost_usd for r in runs if r.run_id != run_id)
        else:
            by_run = self.tasks.durations(since, now, kind=self.kind)
            by_run.pop(run_id, None)
            value = latency_baseline(by_run)
        self._baselines[(which, run_id)] = _Cached(monotonic, value)
        return value


@dataclass
class _State:
    firing: dict[str, Alert] = field(default_factory=dict)
    from_store: list[Alert] = field(default_factory=list)
    halt: Mapping[str, Any] | None = None


class AlertMonitor:
    """Emits ``alert_firing``/``alert_resolved`` for the SLOs and page-on thresholds of a run.

    Subscribe it to the run's journal after the :class:`~bastion.store.task_sink.TaskSink`.
    """

    def __init__(
        self,
        reader: SloReader,
        journal: Journal,
        clock: Clock,
        *,
        run_id: str | None = None,
        interval_seconds: float = 60.0,
        background: bool = True,
    ) -> None:
        self.reader = reader
        self._journal = journal
        self._clock = clock
        self._run_id = run_id
        self._interval = interval_seconds
        self._background = background
        self._last_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._state = _State()
        self._lock = threading.Lock()  # the console's thread reads what the loop's changes
        self.last: SloSnapshot | None = None
        """The last store evaluation."""

    @property
    def firing(self) -> list[Alert]:
        """The alerts firing now, in the order they started."""
        with self._lock:
            return list(self._state.firing.values())

    def __call__(self, event: Event) -> None:
        """A journal sink: follow the halt, and evaluate the store when due."""
        kind = event.kind
        if kind is EventKind.STEP_COMPLETED:
            self._state.halt = event.payload.get("halt")
            self._sync()
            if self._due():
                self._launch()
        elif kind is EventKind.HALT_TRIPPED:
            self._state.halt = event.payload
            self._sync()
        elif kind is EventKind.HALT_RESUMED:
            self._state.halt = None
            self._sync()

    def evaluate(self) -> SloSnapshot:
        """Read the store now, on this thread, and emit what changed."""
        self._last_at = self._clock.monotonic()
        snapshot = self.reader.snapshot(
            self._clock.now(), self._run_id, monotonic=self._clock.monotonic()
        )
        self._apply(snapshot)
        return snapshot

    async def idle(self) -> None:
        """Return once no background evaluation is running."""
        if self._task is not None:
            await asyncio.shield(self._task)

    def report(self) -> dict[str, Any]:
        """``GET /api/slo``: the last evaluation's SLOs with the alerts firing now.

        Read-only, so any thread may call it; before the first evaluation it reads the store
        (blocking I/O) and emits nothing.
        """
        snapshot = self.last
        if snapshot is None:
            now = self._clock.now()
            snapshot = SloSnapshot(now, self.reader.period_days, self.reader.statuses(now))
        return snapshot.to_dict(self.firing)

    # -- internals ---------------------------------------------------------------------
    def _due(self) -> bool:
        if self._task is not None and not self._task.done():
            return False
        return self._last_at is None or self._clock.monotonic() - self._last_at >= self._interval

    def _launch(self) -> None:
        if not self._background:
            self.evaluate()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # an emit outside the run's loop: evaluate here
            self.evaluate()
            return
        self._last_at = self._clock.monotonic()
        self._task = loop.create_task(self._evaluate_off_loop())

    async def _evaluate_off_loop(self) -> None:
        now, mono = self._clock.now(), self._clock.monotonic()
        try:
            snapshot = await asyncio.to_thread(
                self.reader.snapshot, now, self._run_id, monotonic=mono
            )
        except Exception:
            _log.exception("SLO evaluation failed; it is retried when the next one is due")
            return
        self._apply(snapshot)

    def _apply(self, snapshot: SloSnapshot) -> None:
        self.last = snapshot
        self._state.from_store = snapshot.alerts(self.reader.page_on)
        self._sync()

    def _sync(self) -> None:
        """Emit firing for new keys and resolved for keys gone, against the wanted set."""
        state = self._state
        wanted = {a.key: a for a in state.from_store}
        for alert in halt_alerts(state.halt, self._clock.now()):
            wanted[alert.key] = alert
        with self._lock:
            resolved = [a for key, a in state.firing.items() if key not in wanted]
            fired = [a for key, a in wanted.items() if key not in state.firing]
            for alert in resolved:
                del state.firing[alert.key]
            for alert in fired:
                state.firing[alert.key] = alert
        # Emitted outside the lock: a sink may read ``firing`` back.
        for alert in resolved:
            self._journal.emit(EventKind.ALERT_RESOLVED, alert.to_payload())
        for alert in fired:
            self._journal.emit(EventKind.ALERT_FIRING, alert.to_payload())
