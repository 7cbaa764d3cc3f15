"""The run lock: one holder per data directory, named to whoever is refused, remembered after."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bastion.errors import ErrorCode
from bastion.runtime.lock import Holder, RunLock, RunLocked, is_held, read_holder


def _holder(run_id: str, **extra: object) -> Holder:
    return Holder(
        pid=os.getpid(), run_id=run_id, since="2026-12-02T04:00:00+00:00", host="h", **extra
    )  # type: ignore[arg-type]


def test_a_second_holder_is_refused_naming_the_first(tmp_path: Path) -> None:
    """While one lock is held, another acquire raises CONFLICT naming run, pid and host."""
    first = RunLock(tmp_path)
    first.acquire(_holder("run-a"))
    with pytest.raises(RunLocked) as refused:
        RunLock(tmp_path).acquire(_holder("run-b"))
    assert refused.value.code is ErrorCode.CONFLICT
    assert f"run run-a (pid {os.getpid()} on h" in str(refused.value)
    assert refused.value.holder == read_holder(tmp_path)
    assert read_holder(tmp_path) == _holder("run-a")  # the refused one wrote nothing
    first.release()


def test_the_record_outlives_the_lock_and_is_handed_to_the_next_holder(tmp_path: Path) -> None:
    """After release nobody holds it, run.json still names the last run, the next gets it."""
    lock = RunLock(tmp_path)
    assert lock.acquire(_holder("run-a")) is None
    lock.update(console_host="127.0.0.1", console_port=8787)
    assert is_held(tmp_path)
    lock.release()
    lock.release()  # twice is harmless
    assert not is_held(tmp_path)
    assert read_holder(tmp_path) == _holder("run-a", console_host="127.0.0.1", console_port=8787)
    nxt = RunLock(tmp_path)
    previous = nxt.acquire(_holder("run-b"))
    assert previous is not None
    assert previous.run_id == "run-a"
    assert read_holder(tmp_path) == _holder("run-b")
    nxt.release()


def test_an_unreadable_record_is_no_holder(tmp_path: Path) -> None:
    """A torn or foreign run.json reads as no previous run, and locking still works."""
    lock = RunLock(tmp_path)
    lock.acquire(_holder("run-a"))
    lock.release()
    (tmp_path / "run.json").write_text("{not json")
    assert read_holder(tmp_path) is None
    assert not is_held(tmp_path)  # the lock file exists, nobody holds it
    assert RunLock(tmp_path).acquire(_holder("run-b")) is None


def test_a_start_that_fails_gives_the_record_back(tmp_path: Path) -> None:
    """abandon() restores the previous holder, so a crash before it is still found next time."""
    crashed = RunLock(tmp_path)
    crashed.acquire(_holder("run-crashed"))
    crashed.release()  # what the kernel does when the process dies
    failed = RunLock(tmp_path)
    failed.acquire(_holder("run-that-failed-to-start"))
    failed.abandon()
    assert not is_held(tmp_path)
    assert read_holder(tmp_path) == _holder("run-crashed")
    nxt = RunLock(tmp_path)
    previous = nxt.acquire(_holder("run-c"))
    assert previous is not None
    assert previous.run_id == "run-crashed"
    nxt.release()
