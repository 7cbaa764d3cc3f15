"""The equity sink: the run's equity series, bounded however long the run."""

from __future__ import annotations

import itertools

import pytest

from bastion.events import Event, EventKind
from bastion.runtime.equity_sink import EquitySink


def _observed(sink: EquitySink, step: int, equity: float, time_ms: int | None = None) -> None:
    at = 1_800_000_000_000 + step * 1000 if time_ms is None else time_ms
    payload = {"step": step, "time_ms": at, "equity": equity, "currency": "BTC"}
    sink(Event(EventKind.OBSERVATION, payload))


def test_points_carry_pnl_from_the_first_observation() -> None:
    sink = EquitySink()
    for step, equity in enumerate([10.0, 10.5, 9.75], start=1):
        _observed(sink, step, equity)
    series = sink.series()
    assert series["currency"] == "BTC"
    assert series["start_equity"] == 10.0
    assert [(p["step"], p["equity"], p["pnl"]) for p in series["points"]] == [
        (1, 10.0, 0.0),
        (2, 10.5, 0.5),
        (3, 9.75, -0.25),
    ]


def test_a_halted_steps_book_is_a_point_and_other_events_are_not() -> None:
    sink = EquitySink()
    _observed(sink, 1, 10.0)
    book = {"currency": "BTC", "equity": 9.5, "positions": []}
    sink(
        Event(
            EventKind.STEP_COMPLETED, {"step": 2, "at": "2027-01-15T08:00:10+00:00", "book": book}
        )
    )
    sink(Event(EventKind.STEP_COMPLETED, {"step": 3, "status": "ok"}))  # no book: no equity
    sink(Event(EventKind.DECISION, {"step": 3, "equity": 1.0}))
    sink(Event(EventKind.OBSERVATION, {"step": 4, "equity": None, "time_ms": 1}))
    points = sink.series()["points"]
    assert [(p["step"], p["equity"]) for p in points] == [(1, 10.0), (2, 9.5)]
    assert points[1]["time_ms"] == 1_800_000_010_000


@pytest.mark.parametrize("samples", [99, 100, 101, 1000, 12_345])
def test_a_long_run_is_thinned_evenly_and_keeps_its_start_and_now(samples: int) -> None:
    """At most max_points (+ the latest), evenly spaced, from the first sample to the last."""
    sink = EquitySink(max_points=100)
    for step in range(1, samples + 1):
        _observed(sink, step, 10.0 + step)
    series = sink.series()
    steps = [p["step"] for p in series["points"]]
    assert len(steps) <= 101
    assert steps[0] == 1
    assert steps[-1] == samples
    gaps = {b - a for a, b in itertools.pairwise(steps[:-1])}
    assert gaps <= {series["stride"]}  # even, but for the latest point appended at the end
    assert series["samples"] == samples
    assert series["points"][-1]["pnl"] == samples - 1


def test_no_observation_yet_is_an_empty_series() -> None:
    assert EquitySink().series() == {
        "currency": None,
        "start_equity": None,
        "samples": 0,
        "stride": 1,
        "points": [],
    }
    with pytest.raises(ValueError, match="max_points"):
        EquitySink(max_points=1)
