"""Task records: one row per finished unit of agent work, what the SLOs are computed from.

For the trading loop a task is one step (a decision): its outcome (``ok``, ``failed``,
``timeout``, ``halted``), how long it took, what its LLM calls cost and how many tools it called.
The research workflow's cycles will be tasks too, under another ``kind``; every query takes the
kind, so the two never mix in one SLO.

The queries are the SLO evaluator's and the page-on thresholds' (:mod:`bastion.telemetry.slo`,
:mod:`bastion.telemetry.page_on`): counts over a time window, computed by the database in one
pass (:meth:`TaskStore.tally`), and a run's totals. ``ix_tasks_kind_finished_at`` covers the
tally (kind, time, and the three columns it classifies by), so a 30-day tally reads the index
only; ``ix_tasks_run_id`` serves the per-run reads. Rows are never updated.

The table is declared here, on the shared :data:`~bastion.store.schema.metadata`, so the test
that compares ``schema.py``'s metadata with the migrations covers it too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bastion.errors import UsageError
from bastion.store.engine import reading, writing
from bastion.store.schema import metadata
from bastion.store.types import UtcDateTime, aware_utc

__all__ = [
    "ERROR_OUTCOMES",
    "STEP",
    "UNCOUNTED_OUTCOMES",
    "RunTotals",
    "Task",
    "TaskStore",
    "TaskTally",
    "tasks",
]

STEP = "step"
"""The kind of a trading loop step; a research cycle will be ``"cycle"``."""

ERROR_OUTCOMES = ("failed", "timeout")
"""Outcomes that count against task completion."""

UNCOUNTED_OUTCOMES = ("halted",)
"""Outcomes neither good nor bad for task completion: a guard stopped trading on purpose, and a
long halt must not dilute the ratio (the Prometheus recording rules leave them out the same way)."""

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("agent", sa.String(200), nullable=False),
    sa.Column("step", sa.Integer(), nullable=True),
    sa.Column("finished_at", UtcDateTime(), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("duration_s", sa.Float(), nullable=False),
    sa.Column("cost_usd", sa.Float(), nullable=False),
    sa.Column("tool_calls", sa.Integer(), nullable=False),
    sa.Index(
        "ix_tasks_kind_finished_at", "kind", "finished_at", "outcome", "duration_s", "cost_usd"
    ),
    sa.Index("ix_tasks_run_id", "run_id", "finished_at"),
)


@dataclass(frozen=True, slots=True)
class Task:
    """One finished task. ``step`` is the loop's step number (None for kinds without one)."""

    run_id: str
    agent: str
    finished_at: datetime
    outcome: str
    duration_s: float
    cost_usd: float = 0.0
    tool_calls: int = 0
    step: int | None = None
    kind: str = STEP


@dataclass(frozen=True, slots=True)
class TaskTally:
    """Counts of the tasks that finished in one window.

    ``total`` is every task; ``counted`` leaves out :data:`UNCOUNTED_OUTCOMES` (the completion
    SLI's denominator); ``errors`` are :data:`ERROR_OUTCOMES`; ``slow`` and ``costly`` count the
    tasks over the latency and cost thresholds, among all tasks (as the Prometheus histograms
    see every step).
    """

    total: int = 0
    counted: int = 0
    errors: int = 0
    slow: int = 0
    costly: int = 0

    def __add__(self, other: TaskTally) -> TaskTally:
        """The tally of two disjoint windows together."""
        return TaskTally(
            self.total + other.total,
            self.counted + other.counted,
            self.errors + other.errors,
            self.slow + other.slow,
            self.costly + other.costly,
        )


@dataclass(frozen=True, slots=True)
class RunTotals:
    """One run's tasks in a window: how many, their LLM spend and their tool calls."""

    run_id: str
    tasks: int
    cost_usd: float
    tool_calls: int


class TaskStore:
    """Record tasks and read the windows and run totals the SLOs and page-on alerts need."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def record(self, task: Task) -> int:
        """Store one finished task; returns its id."""
        for name in ("duration_s", "cost_usd", "tool_calls"):
            if getattr(task, name) < 0:
                raise UsageError(f"task {name} must be >= 0, got {getattr(task, name)!r}")
        values: Mapping[str, Any] = {
            "kind": task.kind,
            "run_id": task.run_id,
            "agent": task.agent,
            "step": task.step,
            "finished_at": aware_utc(task.finished_at),
            "outcome": task.outcome,
            "duration_s": float(task.duration_s),
            "cost_usd": float(task.cost_usd),
            "tool_calls": int(task.tool_calls),
        }
        with writing(self._engine) as conn:
            new_id = conn.execute(sa.insert(tasks).values(values).returning(tasks.c.id)).scalar()
        assert new_id is not None  # RETURNING of an INSERT always yields the row
        return int(new_id)

    def tallies(
        self,
        starts: Sequence[datetime],
        until: datetime,
        *,
        latency_s: float,
        cost_usd: float,
        kind: str = STEP,
    ) -> list[TaskTally]:
        """One :class:`TaskTally` per window ``(start, until]``, in the order of ``starts``.

        All windows end at ``until`` and are counted in one pass over the index from the
        earliest start: the SLO evaluator asks for its seven burn-rate windows and the 30-day
        period at once. Each row is put in the narrowest window that holds it (one ``CASE``)
        and counted per window; a wider window's figures are the sums of the narrower ones, so
        the cost per row does not grow with the number of windows. A task over ``latency_s``
        seconds is slow, one over ``cost_usd`` costly.
        """
        if not starts:
            return []
        until = aware_utc(until)
        order = sorted(range(len(starts)), key=lambda i: aware_utc(starts[i]), reverse=True)
        bounds = [aware_utc(starts[i]) for i in order]  # latest start (narrowest) first
        t = tasks.c
        band = sa.case(
            *((t.finished_at > start, index) for index, start in enumerate(bounds)),
            else_=len(bounds),
        ).label("band")
        statement = (
            sa.select(
                band,
                sa.func.count(),
                _count(t.outcome.not_in(UNCOUNTED_OUTCOMES)),
                _count(t.outcome.in_(ERROR_OUTCOMES)),
                _count(t.duration_s > latency_s),
                _count(t.cost_usd > cost_usd),
            )
            .where(t.kind == kind, t.finished_at > bounds[-1], t.finished_at <= until)
            .group_by(band)
        )
        with reading(self._engine) as conn:
            rows = conn.execute(statement).all()
        per_band = [[0] * 5 for _ in bounds]
        for row in rows:
            per_band[int(row[0])] = [int(v or 0) for v in row[1:]]
        results: list[TaskTally] = [TaskTally()] * len(bounds)
        running = [0] * 5
        for position, original in enumerate(order):
            running = [a + b for a, b in zip(running, per_band[position], strict=True)]
            results[original] = TaskTally(*running)
        return results

    def tally(
        self,
        since: datetime,
        until: datetime,
        *,
        latency_s: float,
        cost_usd: float,
        kind: str = STEP,
    ) -> TaskTally:
        """The tasks that finished in ``(since, until]``, classified (see :meth:`tallies`)."""
        return self.tallies([since], until, latency_s=latency_s, cost_usd=cost_usd, kind=kind)[0]

    def run_totals(
        self,
        since: datetime,
        until: datetime,
        *,
        kind: str = STEP,
        run_id: str | None = None,
    ) -> list[RunTotals]:
        """Per run, the tasks that finished in ``(since, until]``; only ``run_id``'s if given."""
        t = tasks.c
        statement = (
            sa.select(
                t.run_id,
                sa.func.count(),
                sa.func.coalesce(sa.func.sum(t.cost_usd), 0.0),
                sa.func.coalesce(sa.func.sum(t.tool_calls), 0),
            )
            .where(t.kind == kind, t.finished_at > aware_utc(since))
            .where(t.finished_at <= aware_utc(until))
            .group_by(t.run_id)
            .order_by(t.run_id)
        )
        if run_id is not None:
            statement = statement.where(t.run_id == run_id)
        with reading(self._engine) as conn:
            rows = conn.execute(statement).all()
        return [RunTotals(str(r[0]), int(r[1]), float(r[2]), int(r[3])) for r in rows]

    def durations(
        self,
        since: datetime,
        until: datetime,
        *,
        kind: str = STEP,
        run_id: str | None = None,
    ) -> dict[str, list[float]]:
        """Task durations (s) that finished in ``(since, until]``, by run; one run if given.

        For percentiles, which SQLite cannot compute: the caller sorts.
        """
        t = tasks.c
        statement = (
            sa.select(t.run_id, t.duration_s)
            .where(t.kind == kind, t.finished_at > aware_utc(since))
            .where(t.finished_at <= aware_utc(until))
        )
        if run_id is not None:
            statement = statement.where(t.run_id == run_id)
        by_run: dict[str, list[float]] = {}
        with reading(self._engine) as conn:
            for run, duration in conn.execute(statement):
                by_run.setdefault(str(run), []).append(float(duration))
        return by_run

    def count(self, *, kind: str | None = None) -> int:
        """How many tasks are stored (of ``kind``, if given)."""
        statement = sa.select(sa.func.count()).select_from(tasks)
        if kind is not None:
            statement = statement.where(tasks.c.kind == kind)
        with reading(self._engine) as conn:
            return int(conn.execute(statement).scalar_one())


def _count(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[Any]:
    """``SUM(CASE WHEN condition THEN 1 ELSE 0 END)``: a filtered count both backends run."""
    return sa.func.sum(sa.case((condition, 1), else_=0))
