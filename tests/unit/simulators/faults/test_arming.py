"""When one armed fault fires: its count of firings, or a seeded probability."""

from __future__ import annotations

from bastion.simulators.faults.arming import Arming


def test_a_counted_fault_fires_its_times_then_is_spent() -> None:
    """``times`` firings, each counted, then nothing more."""
    arming = Arming.seeded(2, None, "seed")
    assert [arming.fire() for _ in range(3)] == [True, True, False]
    assert (arming.remaining, arming.fired, arming.spent) == (0, 2, True)


def test_a_probabilistic_fault_is_reproducible_from_its_seed() -> None:
    """The same seed draws the same firings; an uncounted fault never runs out."""
    one, two = Arming.seeded(None, 0.5, "s/1/1"), Arming.seeded(None, 0.5, "s/1/1")
    assert [one.fire() for _ in range(50)] == [two.fire() for _ in range(50)]
    assert 0 < one.fired < 50
    assert one.remaining is None


def test_a_probabilistic_fault_with_times_stops_after_that_many_firings() -> None:
    """A probability and ``times`` together: random firings, at most ``times`` of them."""
    arming = Arming.seeded(3, 0.5, "s/1/1")
    assert sum(arming.fire() for _ in range(200)) == 3
    assert arming.spent
