"""The breaker state machine on a SimClock, its events, gauge and snapshot."""

from __future__ import annotations

import orjson
import pytest

from bastion.clock import SimClock
from bastion.resilience.breaker import (
    LAYER_DEFAULTS,
    BreakerChange,
    BreakerConfig,
    BreakerRegistry,
    BreakerState,
    CircuitBreaker,
)
from bastion.telemetry.metrics import Metrics

CONFIG = BreakerConfig(failure_threshold=3, window=10.0, recovery_timeout=5.0, half_open_probes=2)


@pytest.fixture
def clock() -> SimClock:
    return SimClock()


@pytest.fixture
def changes() -> list[BreakerChange]:
    return []


@pytest.fixture
def breaker(clock: SimClock, changes: list[BreakerChange]) -> CircuitBreaker:
    return CircuitBreaker("deribit", "exchange", CONFIG, clock=clock, on_change=changes.append)


def _trip(breaker: CircuitBreaker, n: int = 3) -> None:
    for _ in range(n):
        assert breaker.acquire()
        breaker.on_failure()


def test_opens_at_the_threshold(breaker: CircuitBreaker) -> None:
    """Two failures keep it closed; the third within the window opens it and refuses calls."""
    _trip(breaker, 2)
    assert breaker.state is BreakerState.CLOSED
    _trip(breaker, 1)
    assert breaker.state is BreakerState.OPEN
    assert not breaker.acquire()
    assert breaker.retry_after() == 5.0


def test_failures_outside_the_window_expire(breaker: CircuitBreaker, clock: SimClock) -> None:
    """Failures older than the window no longer count towards the threshold."""
    _trip(breaker, 2)
    clock.advance(10.5)
    _trip(breaker, 2)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.failures() == 2


def test_half_opens_after_recovery(breaker: CircuitBreaker, clock: SimClock) -> None:
    """Once the recovery timeout has passed, the breaker is half-open and admits a probe."""
    _trip(breaker)
    clock.advance(4.9)
    assert breaker.state is BreakerState.OPEN
    clock.advance(0.1)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.acquire()


def test_half_open_admits_a_bounded_number_of_probes(
    breaker: CircuitBreaker, clock: SimClock
) -> None:
    """Half-open admits half_open_probes calls at once and refuses the next; release frees one."""
    _trip(breaker)
    clock.advance(5)
    assert breaker.acquire()
    assert breaker.acquire()
    assert not breaker.acquire()
    breaker.release()
    assert breaker.acquire()


def test_probe_success_closes(
    breaker: CircuitBreaker, clock: SimClock, changes: list[BreakerChange]
) -> None:
    """A successful probe closes the breaker, with one event per move."""
    _trip(breaker)
    clock.advance(5)
    assert breaker.acquire()
    breaker.on_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.failures() == 0
    assert [(c.previous, c.state) for c in changes] == [
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    ]
    assert changes[0].reason.startswith("3 failures within 10 s")
    assert changes[0].at == clock.time() - 5


def test_probe_failure_reopens(breaker: CircuitBreaker, clock: SimClock) -> None:
    """A failed probe opens the breaker again for a full recovery timeout."""
    _trip(breaker)
    clock.advance(5)
    assert breaker.acquire()
    breaker.on_failure()
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_after() == 5.0


def test_consecutive_mode_resets_on_success(clock: SimClock) -> None:
    """The LLM default counts failures in a row: a success in between starts again."""
    llm = CircuitBreaker("openai", "llm", LAYER_DEFAULTS["llm"], clock=clock)
    for _ in range(4):
        llm.on_failure()
    llm.on_success()
    for _ in range(4):
        llm.on_failure()
    assert llm.state is BreakerState.CLOSED
    llm.on_failure()
    assert llm.state is BreakerState.OPEN


def test_slow_success_counts_as_failure(clock: SimClock) -> None:
    """An LLM call slower than 30 s counts as a failure, even though it answered."""
    config = BreakerConfig(failure_threshold=1, window=None, slow_call=30.0)
    llm = CircuitBreaker("openai", "llm", config, clock=clock)
    llm.on_success(duration=29.0)
    assert llm.state is BreakerState.CLOSED
    llm.on_success(duration=31.0)
    assert llm.state is BreakerState.OPEN


@pytest.mark.parametrize(
    ("layer", "threshold", "window", "recovery"),
    [
        ("llm", 5, None, 30.0),
        ("tool", 3, 60.0, 30.0),
        ("exchange", 5, 30.0, 15.0),
        ("peer", 5, 30.0, 15.0),
    ],
)
def test_layer_defaults(layer: str, threshold: int, window: float | None, recovery: float) -> None:
    """Each layer has its documented defaults."""
    config = LAYER_DEFAULTS[layer]  # type: ignore[index]
    assert (config.failure_threshold, config.window, config.recovery_timeout) == (
        threshold,
        window,
        recovery,
    )


def test_tool_breaker_opens_that_tool_only(clock: SimClock) -> None:
    """Three failures of one tool open its breaker; another tool stays closed."""
    registry = BreakerRegistry(clock=clock)
    search = registry.get("tool search", "tool")
    for _ in range(3):
        search.on_failure()
    assert search.state is BreakerState.OPEN
    assert registry.get("tool calc", "tool").state is BreakerState.CLOSED


def test_registry_sets_the_gauge_and_reports(clock: SimClock) -> None:
    """Each move sets bastion_breaker_state (0/1/2) and reaches the registry's sink."""
    metrics = Metrics()
    seen: list[BreakerChange] = []
    registry = BreakerRegistry(
        clock=clock, metrics=metrics, on_change=seen.append, overrides={"deribit": CONFIG}
    )
    breaker = registry.get("deribit", "exchange")

    def gauge() -> float | None:
        return metrics.registry.get_sample_value(
            "bastion_breaker_state", {"dependency": "deribit", "layer": "exchange"}
        )

    assert gauge() == 0
    _trip(breaker)
    assert gauge() == 2
    clock.advance(5)
    assert breaker.state is BreakerState.HALF_OPEN
    assert gauge() == 1
    assert [c.state for c in seen] == [BreakerState.OPEN, BreakerState.HALF_OPEN]


def test_snapshot_is_json(clock: SimClock) -> None:
    """snapshot() lists every breaker as JSON-able data, open ones with their retry_after."""
    registry = BreakerRegistry(clock=clock, overrides={"deribit": CONFIG})
    _trip(registry.get("deribit", "exchange"))
    registry.get("openai", "llm")
    snapshot = orjson.loads(orjson.dumps(registry.snapshot()))
    assert [(s["dependency"], s["state"]) for s in snapshot] == [
        ("deribit", "open"),
        ("openai", "closed"),
    ]
    assert snapshot[0]["retry_after"] == 5.0
    assert snapshot[1]["config"]["slow_call"] == 30.0
    assert len(registry) == 2


def test_a_failing_sink_does_not_break_the_breaker(clock: SimClock) -> None:
    """A sink that raises is logged; the breaker still moves."""

    def broken(change: BreakerChange) -> None:
        raise RuntimeError("sink down")

    breaker = CircuitBreaker("x", "exchange", CONFIG, clock=clock, on_change=broken)
    _trip(breaker)
    assert breaker.state is BreakerState.OPEN


def test_withdrawn_failures_stop_counting(breaker: CircuitBreaker, clock: SimClock) -> None:
    """A call that recovered takes its own failures back; expired ones are skipped quietly."""
    first = breaker.on_failure()
    clock.advance(10.5)
    second = breaker.on_failure()
    assert first is not None
    assert second is not None
    breaker.withdraw([first, second])
    assert breaker.failures() == 0
    assert breaker.state is BreakerState.CLOSED


def test_the_failure_that_opens_is_not_returned(breaker: CircuitBreaker) -> None:
    """Only failures still counting towards the threshold can be withdrawn."""
    assert breaker.on_failure() is not None
    assert breaker.on_failure() is not None
    assert breaker.on_failure() is None
    assert breaker.state is BreakerState.OPEN
    assert breaker.on_failure() is None  # a straggler while open
