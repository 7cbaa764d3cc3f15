"""Runs: one row per agent session, from start to its final status.

A run is the unit an operator reasons about ("the 14:00 run halted after 312 steps"); every event
and trace line carries its ``run_id``. A run that is still ``running`` when nothing is executing
it was cut short by a crash: the next run on the same data directory finds it (the run lock
is free but ``run.json`` still names it) and records it as ``crashed``. ``steps`` is counted as
steps happen, so a crashed run still says how far it got.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, RowMapping

from bastion.errors import UsageError
from bastion.store.engine import reading, writing
from bastion.store.schema import runs
from bastion.store.types import aware_utc, to_document

__all__ = ["RunRecord", "RunStatus", "RunStore"]


class RunStatus(StrEnum):
    """Where a run stands; every status but ``running`` is final."""

    RUNNING = "running"
    COMPLETED = "completed"
    HALTED = "halted"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    CRASHED = "crashed"


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run as stored."""

    run_id: str
    agent_name: str
    agent_version: str
    mode: str
    config_hash: str
    started_at: datetime
    ended_at: datetime | None
    status: RunStatus
    steps: int
    detail: dict[str, Any] | None


class RunStore:
    """Start, finish and look up runs."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def start(
        self,
        run_id: str,
        *,
        agent_name: str,
        agent_version: str,
        mode: str,
        config_hash: str,
        started_at: datetime,
    ) -> RunRecord:
        """Record a new ``running`` run; a ``run_id`` used before is a :class:`UsageError`."""
        values = {
            "run_id": run_id,
            "agent_name": agent_name,
            "agent_version": agent_version,
            "mode": mode,
            "config_hash": config_hash,
            "started_at": aware_utc(started_at),
            "ended_at": None,
            "status": RunStatus.RUNNING.value,
            "steps": 0,
            "detail": None,
        }
        try:
            with writing(self._engine) as conn:
                row = conn.execute(sa.insert(runs).values(values).returning(*runs.c)).one()
        except sa.exc.IntegrityError:
            raise UsageError(f"run {run_id!r} already exists; run ids are unique") from None
        return _record(row._mapping)

    def finish(
        self,
        run_id: str,
        status: RunStatus | str,
        steps: int,
        detail: Mapping[str, Any] | None = None,
        *,
        ended_at: datetime,
    ) -> RunRecord:
        """Record how a run ended: its final status, when, and after how many steps.

        ``ended_at`` is required rather than read from the database's clock so a run on a
        :class:`~bastion.clock.SimClock` records simulated time throughout.
        """
        final = RunStatus(status)
        if final is RunStatus.RUNNING:
            raise UsageError("finish() needs a final status, not 'running'")
        if steps < 0:
            raise UsageError(f"steps must be >= 0, got {steps}")
        values = {
            "status": final.value,
            "steps": steps,
            "ended_at": aware_utc(ended_at),
            "detail": None if detail is None else to_document(detail, "run detail"),
        }
        statement = sa.update(runs).where(runs.c.run_id == run_id).values(values).returning(*runs.c)
        with writing(self._engine) as conn:
            row = conn.execute(statement).first()
        if row is None:
            raise UsageError(f"no run {run_id!r} to finish; start() it first")
        return _record(row._mapping)

    def record_step(self, run_id: str, steps: int, *, at: datetime) -> None:
        """Count a step as it happens (``detail.last_step_at`` says when), while running."""
        statement = (
            sa.update(runs)
            .where(runs.c.run_id == run_id, runs.c.status == RunStatus.RUNNING.value)
            .values(steps=steps, detail={"last_step_at": aware_utc(at).isoformat()})
        )
        with writing(self._engine) as conn:
            conn.execute(statement)

    def mark_crashed(self, run_id: str, *, detected_at: datetime) -> RunRecord | None:
        """Finish a run left ``running`` by a dead process as ``crashed``; None if it was not.

        The update is conditional, so a run that did finish (or was marked by another process
        first) is left as it is.
        """
        previous = self.get(run_id)
        if previous is None or previous.status is not RunStatus.RUNNING:
            return None
        detail = {**(previous.detail or {}), "detected_at": aware_utc(detected_at).isoformat()}
        statement = (
            sa.update(runs)
            .where(runs.c.run_id == run_id, runs.c.status == RunStatus.RUNNING.value)
            .values(status=RunStatus.CRASHED.value, detail=detail)
            .returning(*runs.c)
        )
        with writing(self._engine) as conn:
            row = conn.execute(statement).first()
        return None if row is None else _record(row._mapping)

    def get(self, run_id: str) -> RunRecord | None:
        """The run called ``run_id``, if any."""
        with reading(self._engine) as conn:
            row = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).first()
        return None if row is None else _record(row._mapping)

    def latest(self) -> RunRecord | None:
        """The most recently started run, if any."""
        return next(iter(self.recent(1)), None)

    def recent(self, limit: int = 20) -> list[RunRecord]:
        """The last ``limit`` runs, most recently started first."""
        if limit < 1:
            raise UsageError(f"limit must be >= 1, got {limit}")
        statement = (
            sa.select(runs).order_by(runs.c.started_at.desc(), runs.c.run_id.desc()).limit(limit)
        )
        with reading(self._engine) as conn:
            rows = conn.execute(statement).all()
        return [_record(row._mapping) for row in rows]


def _record(row: RowMapping) -> RunRecord:
    return RunRecord(
        run_id=row["run_id"],
        agent_name=row["agent_name"],
        agent_version=row["agent_version"],
        mode=row["mode"],
        config_hash=row["config_hash"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        status=RunStatus(row["status"]),
        steps=row["steps"],
        detail=row["detail"],
    )
