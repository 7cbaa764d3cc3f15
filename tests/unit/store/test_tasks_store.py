"""Task records: written once, counted per window by the database, summed per run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bastion.errors import UsageError
from bastion.store import Store
from bastion.store.tasks import Task, TaskTally

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _task(minutes: float, outcome: str = "ok", **kw: object) -> Task:
    values: dict[str, object] = {
        "run_id": "r1",
        "agent": "seller",
        "finished_at": T0 + timedelta(minutes=minutes),
        "outcome": outcome,
        "duration_s": 1.0,
    }
    values.update(kw)
    return Task(**values)  # type: ignore[arg-type]


def test_tallies_count_each_window_ending_now(store: Store) -> None:
    """Errors, halts, slow and costly tasks are counted in every window that holds them."""
    tasks = store.tasks
    tasks.record(_task(-100))  # outside both windows
    tasks.record(_task(-50, "failed"))
    tasks.record(_task(-20, "halted", duration_s=7.0))
    tasks.record(_task(-4, "timeout", duration_s=15.0))
    tasks.record(_task(-1, cost_usd=0.2, tool_calls=3))
    tasks.record(_task(0, cost_usd=0.15))  # at the threshold: good; at `until`: inside
    tasks.record(_task(1))  # after `until`
    hour, five = tasks.tallies(
        [T0 - timedelta(hours=1), T0 - timedelta(minutes=5)], T0, latency_s=5.0, cost_usd=0.15
    )
    assert hour == TaskTally(total=5, counted=4, errors=2, slow=2, costly=1)
    assert five == TaskTally(total=3, counted=3, errors=1, slow=1, costly=1)
    empty = tasks.tally(T0 + timedelta(hours=1), T0 + timedelta(hours=2), latency_s=5, cost_usd=1)
    assert empty == TaskTally()


def test_kinds_never_mix(store: Store) -> None:
    """A research cycle is a task of its own kind: a step tally does not see it."""
    store.tasks.record(_task(-1, "failed", kind="cycle", step=None))
    store.tasks.record(_task(-1, step=7))
    step = store.tasks.tally(T0 - timedelta(hours=1), T0, latency_s=5, cost_usd=1)
    cycle = store.tasks.tally(T0 - timedelta(hours=1), T0, latency_s=5, cost_usd=1, kind="cycle")
    assert (step.total, step.errors, cycle.total, cycle.errors) == (1, 0, 1, 1)
    assert store.tasks.count() == 2
    assert store.tasks.count(kind="step") == 1


def test_run_totals_and_durations_per_run(store: Store) -> None:
    """Per run: tasks, spend and tool calls summed, durations listed; one run on request."""
    store.tasks.record(_task(-3, cost_usd=0.01, tool_calls=2, duration_s=2.0))
    store.tasks.record(_task(-2, cost_usd=0.02, tool_calls=1, duration_s=3.0))
    store.tasks.record(_task(-2, run_id="r2", cost_usd=0.5, duration_s=9.0))
    since = T0 - timedelta(hours=1)
    totals = store.tasks.run_totals(since, T0)
    assert [(t.run_id, t.tasks, t.tool_calls) for t in totals] == [("r1", 2, 3), ("r2", 1, 0)]
    assert totals[0].cost_usd == pytest.approx(0.03)
    assert [t.run_id for t in store.tasks.run_totals(since, T0, run_id="r2")] == ["r2"]
    assert store.tasks.durations(since, T0) == {"r1": [2.0, 3.0], "r2": [9.0]}
    assert store.tasks.durations(since, T0, run_id="r1") == {"r1": [2.0, 3.0]}


def test_a_negative_figure_is_refused_naming_the_field(store: Store) -> None:
    with pytest.raises(UsageError, match="cost_usd"):
        store.tasks.record(_task(0, cost_usd=-0.1))
