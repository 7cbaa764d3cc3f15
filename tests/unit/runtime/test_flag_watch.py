"""The flag watcher wakes the halt when the flag appears, by file events or by polling.

Real files, real inotify (watchfiles) and real time: each test waits for the call it expects
with a generous bound that only a broken watcher reaches, never a latency limit.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from bastion.runtime.flag_watch import FlagWatcher

PATIENCE = 10.0  # seconds; a bound for a hung test, not a figure


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(PATIENCE):
        while not condition():  # noqa: ASYNC110  polls state outside this loop
            await asyncio.sleep(0.005)


@pytest.fixture(params=[False, True], ids=["inotify", "polling"])
def force_polling(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


async def test_it_fires_when_the_flag_is_created_and_when_it_is_replaced(
    tmp_path: Path, force_polling: bool
) -> None:
    flag = tmp_path / "kill_switch.flag"
    calls: list[bool] = []

    async def on_flag() -> None:
        calls.append(flag.exists())

    watcher = FlagWatcher(flag, on_flag, poll_seconds=0.02, force_polling=force_polling)
    watcher.start()
    try:
        await asyncio.sleep(0.1)  # the watch is up before the touch
        (tmp_path / "other.txt").write_text("not the flag")
        flag.write_text("")
        await _until(lambda: len(calls) >= 1)
        flag.unlink()
        await asyncio.sleep(0.1)
        assert len(calls) == 1, "neither another file nor the deletion fires"
        tmp = tmp_path / ".kill_switch.flag.tmp"  # how the halt writes it: a rename over
        tmp.write_text('{"reason": "again"}')
        os.replace(tmp, flag)
        await _until(lambda: len(calls) >= 2)
    finally:
        await watcher.aclose()
    assert calls == [True, True]
    assert watcher.mechanism == ("polling" if force_polling else "inotify")


async def test_a_flag_raised_before_the_watch_started_fires_at_once(tmp_path: Path) -> None:
    flag = tmp_path / "kill_switch.flag"
    flag.write_text("")
    fired = asyncio.Event()

    async def on_flag() -> None:
        fired.set()

    watcher = FlagWatcher(flag, on_flag, poll_seconds=60)
    watcher.start()
    try:
        async with asyncio.timeout(PATIENCE):
            await fired.wait()
    finally:
        await watcher.aclose()


async def test_a_failing_enforcement_does_not_end_the_watch(tmp_path: Path) -> None:
    flag = tmp_path / "kill_switch.flag"
    calls = 0

    async def on_flag() -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("exchange down")

    watcher = FlagWatcher(flag, on_flag, poll_seconds=0.02)
    watcher.start()
    try:
        await asyncio.sleep(0.1)
        flag.write_text("")
        await _until(lambda: calls >= 1)
        flag.unlink()
        await asyncio.sleep(0.05)
        flag.write_text("")
        await _until(lambda: calls >= 2)
    finally:
        await watcher.aclose()


async def test_a_watch_that_cannot_start_falls_back_to_polling(tmp_path: Path) -> None:
    """The flag's directory cannot be watched (here: a file stands where it should be)."""
    blocker = tmp_path / "data"
    blocker.write_text("a file, not a directory")
    watcher = FlagWatcher(blocker / "kill_switch.flag", _nothing, poll_seconds=0.02)
    watcher.start()
    try:
        await _until(lambda: watcher.mechanism == "polling")
    finally:
        await watcher.aclose()


async def _nothing() -> None:
    return None
