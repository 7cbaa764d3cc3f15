"""Runs: start, finish, look-up, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from bastion.errors import UsageError
from bastion.store import RunRecord, RunStatus, Store

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _start(store: Store, run_id: str, at: datetime = T0) -> RunRecord:
    return store.runs.start(
        run_id,
        agent_name="options-seller",
        agent_version="1.2.0",
        mode="paper",
        config_hash="abc123",
        started_at=at,
    )


def test_a_run_goes_from_running_to_its_final_status(store: Store) -> None:
    """start() records a running run; finish() stores status, steps, detail and end time."""
    started = _start(store, "run-1")
    assert started == store.runs.get("run-1")
    assert started.status is RunStatus.RUNNING
    assert (started.steps, started.ended_at, started.detail) == (0, None, None)
    assert started.started_at == T0

    ended = store.runs.finish(
        "run-1", RunStatus.HALTED, 42, {"reason": "daily_loss"}, ended_at=T0 + timedelta(hours=1)
    )
    assert ended == store.runs.get("run-1")
    assert ended.status is RunStatus.HALTED
    assert ended.steps == 42
    assert ended.detail == {"reason": "daily_loss"}
    assert ended.ended_at == T0 + timedelta(hours=1)
    assert (ended.agent_name, ended.agent_version, ended.mode, ended.config_hash) == (
        "options-seller",
        "1.2.0",
        "paper",
        "abc123",
    )


def test_timestamps_come_back_aware_and_in_utc(store: Store) -> None:
    """A time given in another zone is stored as the same instant and read back in UTC."""
    paris = timezone(timedelta(hours=1))
    record = _start(store, "run-tz", at=datetime(2026, 1, 1, 13, 0, 0, 123456, tzinfo=paris))
    fetched = store.runs.get("run-tz")
    assert fetched is not None
    assert fetched.started_at == record.started_at == T0.replace(microsecond=123456)
    assert fetched.started_at.utcoffset() == timedelta(0)


def test_naive_datetimes_are_refused(store: Store) -> None:
    """A timestamp without a zone is a bug; the store says so instead of guessing."""
    with pytest.raises(UsageError, match="naive datetime"):
        _start(store, "run-naive", at=datetime(2026, 1, 1, 12, 0))


def test_finish_accepts_status_strings(store: Store) -> None:
    """finish() takes the status as plain text too ("completed")."""
    _start(store, "run-s")
    assert store.runs.finish("run-s", "completed", 3, ended_at=T0).status is RunStatus.COMPLETED


def test_latest_is_the_most_recently_started_run(store: Store) -> None:
    """latest() and recent() order by start time, newest first."""
    assert store.runs.latest() is None
    _start(store, "old", at=T0)
    _start(store, "new", at=T0 + timedelta(minutes=5))
    _start(store, "middle", at=T0 + timedelta(minutes=1))
    latest = store.runs.latest()
    assert latest is not None
    assert latest.run_id == "new"
    assert [r.run_id for r in store.runs.recent(2)] == ["new", "middle"]


def test_get_unknown_run_is_none(store: Store) -> None:
    """Looking up a run that never started answers None."""
    assert store.runs.get("nope") is None


@pytest.mark.parametrize(
    ("status", "steps", "message"),
    [
        ("running", 1, "final status"),
        ("exploded", 1, "exploded"),
        ("completed", -1, "steps must be >= 0"),
    ],
)
def test_finish_rejects_nonsense(store: Store, status: str, steps: int, message: str) -> None:
    """A non-final or unknown status, or negative steps, is a developer error."""
    _start(store, "run-x")
    with pytest.raises((UsageError, ValueError), match=message):
        store.runs.finish("run-x", status, steps, ended_at=T0)


def test_run_ids_are_unique_and_must_exist_to_finish(store: Store) -> None:
    """Starting a run id twice, or finishing one never started, is a UsageError."""
    _start(store, "dup")
    with pytest.raises(UsageError, match="already exists"):
        _start(store, "dup")
    with pytest.raises(UsageError, match="start\\(\\) it first"):
        store.runs.finish("ghost", RunStatus.FAILED, 0, ended_at=T0)


def _begin(store: Store, run_id: str) -> None:
    store.runs.start(
        run_id,
        agent_name="a",
        agent_version="1",
        mode="paper",
        config_hash="h",
        started_at=datetime(2026, 12, 2, 4, 0, tzinfo=UTC),
    )


def test_steps_are_counted_while_running_and_a_crash_keeps_them(store: Store) -> None:
    """record_step counts as steps happen; mark_crashed finishes only a run still running."""
    _begin(store, "r-crash")
    store.runs.record_step("r-crash", 3, at=datetime(2026, 12, 2, 4, 1, tzinfo=UTC))
    running = store.runs.get("r-crash")
    assert running is not None
    assert (running.status.value, running.steps) == ("running", 3)
    assert running.detail == {"last_step_at": "2026-12-02T04:01:00+00:00"}
    crashed = store.runs.mark_crashed("r-crash", detected_at=datetime(2026, 12, 2, 5, tzinfo=UTC))
    assert crashed is not None
    assert (crashed.status.value, crashed.steps) == ("crashed", 3)
    assert crashed.detail is not None
    assert crashed.detail["detected_at"] == "2026-12-02T05:00:00+00:00"
    assert (
        store.runs.mark_crashed("r-crash", detected_at=datetime(2026, 12, 2, 6, tzinfo=UTC)) is None
    )


def test_a_finished_run_is_never_marked_crashed(store: Store) -> None:
    """A run that finished (or counts steps after finishing) keeps its final record."""
    _begin(store, "r-done")
    store.runs.finish("r-done", "completed", 2, ended_at=datetime(2026, 12, 2, 4, 5, tzinfo=UTC))
    store.runs.record_step("r-done", 9, at=datetime(2026, 12, 2, 4, 6, tzinfo=UTC))
    assert (
        store.runs.mark_crashed("r-done", detected_at=datetime(2026, 12, 2, 5, tzinfo=UTC)) is None
    )
    done = store.runs.get("r-done")
    assert done is not None
    assert (done.status.value, done.steps) == ("completed", 2)
