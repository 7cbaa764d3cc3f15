"""The task records as a journal sink: one row per completed step, with its cost and tool calls.

``step_completed`` says how a step ended and how long it took; what it cost and how many tools
it called come from the events before it in the same journal: each ``llm_call`` carries the
call's ``usd`` (cache hits carry 0), each ``tool_call`` or ``tool_refused`` is one call. The
loop runs one step at a time and every event of a step is emitted before its
``step_completed``, so the sums since the previous step are the step's own.

Subscribe it before the SLO monitor (:mod:`bastion.telemetry.monitor`), so a step's row is
written before the monitor reads the window it falls in. ``observe_cost`` is given each step's
cost too: the runner passes ``bastion_step_cost_usd``'s ``observe``, the histogram the Prometheus
cost SLO reads (a callable, so the store does not import the telemetry beside it).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from bastion.clock import Clock
from bastion.events import Event, EventKind
from bastion.store.tasks import STEP, Task, TaskStore

__all__ = ["TaskSink"]


class TaskSink:
    """Write each of a run's completed steps as a :class:`~bastion.store.tasks.Task`."""

    def __init__(
        self,
        tasks: TaskStore,
        *,
        run_id: str,
        agent: str,
        clock: Clock,
        observe_cost: Callable[[float], None] | None = None,
    ) -> None:
        self._tasks = tasks
        self._run_id = run_id
        self._agent = agent
        self._clock = clock
        self._observe_cost = observe_cost
        self._cost = 0.0
        self._tool_calls = 0
        self.recorded = 0
        """Steps written by this sink."""

    def __call__(self, event: Event) -> None:
        kind = event.kind
        if kind is EventKind.LLM_CALL:
            self._cost += float(event.payload.get("usd") or 0.0)
        elif kind in (EventKind.TOOL_CALL, EventKind.TOOL_REFUSED):
            self._tool_calls += 1
        elif kind is EventKind.STEP_COMPLETED:
            self._record(event)

    def _record(self, event: Event) -> None:
        p = event.payload
        cost, calls = self._cost, self._tool_calls
        self._cost, self._tool_calls = 0.0, 0
        at = p.get("at")
        finished = datetime.fromisoformat(at) if isinstance(at, str) else self._clock.now()
        self._tasks.record(
            Task(
                run_id=event.run_id or self._run_id,
                agent=self._agent,
                finished_at=finished,
                outcome=str(p["status"]),
                duration_s=float(p["elapsed_s"]),
                cost_usd=cost,
                tool_calls=calls,
                step=int(p["step"]) if p.get("step") is not None else None,
                kind=STEP,
            )
        )
        self.recorded += 1
        if self._observe_cost is not None:
            self._observe_cost(cost)
