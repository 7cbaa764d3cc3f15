"""SimClock: time moves only when told, and sleeping advances it exactly."""

from __future__ import annotations

import pytest

from bastion.clock import Clock, SimClock, WallClock


async def test_sim_clock_sleep_advances_time_exactly() -> None:
    """Sleeping 2.5 s on a SimClock moves both clocks by exactly 2.5 s."""
    clock = SimClock(start=1000.0)
    await clock.sleep(2.5)
    assert clock.time() == 1002.5
    assert clock.monotonic() == 2.5
    assert clock.now().timestamp() == 1002.5


def test_sim_clock_refuses_to_go_backwards() -> None:
    """Time travel backwards is a bug, not a feature."""
    with pytest.raises(ValueError, match="backwards"):
        SimClock().advance(-1)


def test_both_clocks_satisfy_the_protocol() -> None:
    """WallClock and SimClock are interchangeable wherever a Clock is injected."""
    assert isinstance(WallClock(), Clock)
    assert isinstance(SimClock(), Clock)
