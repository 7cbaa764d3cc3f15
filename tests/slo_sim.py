"""A simulated run for the alert monitor's tests: steps into a real store through the real task
sink, on a SimClock, with every alert event collected."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from bastion.clock import SimClock
from bastion.events import Event, EventKind, Journal
from bastion.store import Store
from bastion.store.task_sink import TaskSink
from bastion.store.tasks import tasks as tasks_table
from bastion.telemetry.alert import Alert
from bastion.telemetry.monitor import AlertMonitor, SloReader
from bastion.telemetry.page_on import PageOnSettings

STEP_S = 36.0
"""100 steps an hour."""

QUIET = PageOnSettings(
    cost_factor=None, tool_calls_per_run=None, latency_factor=None, error_rate=None
)
"""Every page-on threshold off: the SLO tests see the burn alerts alone."""


@dataclass
class SimRun:
    """One run on a SimClock: ``step()`` advances 36 s (or ``every``) and completes a step."""

    store: Store
    clock: SimClock
    journal: Journal
    monitor: AlertMonitor
    run_id: str = "run-live"
    steps: int = 0
    alerts: list[tuple[float, str, Alert]] = field(default_factory=list)
    """(seconds since the start, ``firing``/``resolved``, the alert) in emission order."""
    start: float = 0.0

    def step(
        self,
        status: str = "ok",
        *,
        elapsed_s: float = 1.0,
        usd: float = 0.0,
        tool_calls: int = 0,
        halt: Mapping[str, Any] | None = None,
        every: float = STEP_S,
    ) -> None:
        self.clock.advance(every)
        self.steps += 1
        if usd:
            self.journal.emit(EventKind.LLM_CALL, {"usd": usd, "model": "m"})
        for _ in range(tool_calls):
            self.journal.emit(EventKind.TOOL_CALL, {"step": self.steps, "tool": "t"})
        self.journal.emit(
            EventKind.STEP_COMPLETED,
            {
                "step": self.steps,
                "status": status,
                "orders_sent": 0,
                "detail": "",
                "elapsed_s": elapsed_s,
                "at": self.clock.now().isoformat(),
                "halt": dict(halt) if halt is not None else None,
            },
        )

    def seconds(self) -> float:
        return self.clock.time() - self.start

    def history(
        self, steps: int, *, run_id: str = "run-old", every: float = STEP_S, **columns: Any
    ) -> None:
        """``steps`` finished tasks of another run, one every 36 s (or ``every``) up to now."""
        now = self.clock.now()
        rows = [
            {
                "kind": "step",
                "run_id": run_id,
                "agent": "seller",
                "step": k,
                "finished_at": now - timedelta(seconds=every * k),
                "outcome": "ok",
                "duration_s": 1.0,
                "cost_usd": 0.0,
                "tool_calls": 0,
                **columns,
            }
            for k in range(steps)
        ]
        with self.store.engine.begin() as conn:
            conn.execute(sa.insert(tasks_table), rows)

    def timeline(self) -> list[tuple[float, str, str]]:
        """(seconds, firing/resolved, key) of every alert event."""
        return [(at, what, alert.key) for at, what, alert in self.alerts]


def make_run(
    store: Store,
    *,
    page_on: PageOnSettings = QUIET,
    interval_seconds: float = 0.0,
    run_id: str = "run-live",
) -> SimRun:
    """A run whose monitor evaluates in-line, every ``interval_seconds`` of simulated time."""
    clock = SimClock()
    journal = Journal(run_id=run_id)
    journal.subscribe(TaskSink(store.tasks, run_id=run_id, agent="seller", clock=clock))
    monitor = AlertMonitor(
        SloReader(store.tasks, page_on=page_on),
        journal,
        clock,
        run_id=run_id,
        interval_seconds=interval_seconds,
        background=False,
    )
    journal.subscribe(monitor)
    run = SimRun(store, clock, journal, monitor, run_id=run_id, start=clock.time())

    def collect(event: Event) -> None:
        if event.kind is EventKind.ALERT_FIRING:
            run.alerts.append((run.seconds(), "firing", Alert.from_payload(event.payload)))
        elif event.kind is EventKind.ALERT_RESOLVED:
            run.alerts.append((run.seconds(), "resolved", Alert.from_payload(event.payload)))

    journal.subscribe(collect)
    return run
