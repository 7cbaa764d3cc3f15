"""The arming rules both simulators share: counts, seeded probabilities, options per kind."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from bastion.simulators.faults.arming import Arming, until_cleared
from bastion.simulators.faults.options import OptionTable, check_options


def test_a_counted_fault_fires_its_count_then_is_spent() -> None:
    """``count`` firings, each counted, then nothing more."""
    arming = Arming.seeded(2, None, "seed")
    assert [arming.fire() for _ in range(3)] == [True, True, False]
    assert (arming.remaining, arming.fired, arming.spent) == (0, 2, True)


def test_a_probabilistic_fault_is_reproducible_from_its_seed() -> None:
    """The same seed draws the same firings; an uncounted fault never runs out."""
    one, two = Arming.seeded(None, 0.5, "s/1/1"), Arming.seeded(None, 0.5, "s/1/1")
    assert [one.fire() for _ in range(50)] == [two.fire() for _ in range(50)]
    assert 0 < one.fired < 50
    assert one.remaining is None


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"probability": 0.5}, {"probability": 0.5, "times": None}),
        ({"probability": 0.5, "times": 3}, {"probability": 0.5, "times": 3}),
        ({"kind": "drop"}, {"kind": "drop"}),
        ("not a mapping", "not a mapping"),
    ],
)
def test_a_probability_alone_means_until_cleared(data: Any, expected: Any) -> None:
    """Only a probability without a count turns the count into None."""
    assert until_cleared(data, "times") == expected


class _Spec(BaseModel):
    kind: str
    count: int | None = 1
    seconds: float | None = None
    code: int | None = None


_TABLE: OptionTable = {
    "delay": (frozenset({"seconds"}), frozenset({"seconds"})),
    "error": (frozenset(), frozenset({"code"})),
}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (_Spec(kind="delay"), "a delay fault needs seconds"),
        (_Spec(kind="error", seconds=1.0), "seconds does not apply to an error fault"),
    ],
)
def test_options_that_do_not_fit_the_kind_are_refused(spec: _Spec, message: str) -> None:
    """A missing or foreign option is named, with the kind's article right."""
    with pytest.raises(ValueError, match=f"^{message}$"):
        check_options(spec, spec.kind, _TABLE, targeting=frozenset({"kind", "count"}))


def test_report_shows_the_count_even_when_unset() -> None:
    """A snapshot row: options set, the count (None for until cleared), remaining, fired."""
    arming = Arming.seeded(None, None, "seed")
    arming.fire()
    row = arming.report(_Spec(kind="error", count=None, code=7), "count")
    assert row == {"kind": "error", "code": 7, "count": None, "remaining": None, "fired": 1}
