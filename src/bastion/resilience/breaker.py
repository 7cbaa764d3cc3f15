"""Circuit breakers: stop calling a dependency that keeps failing, then probe it carefully.

States and moves::

    closed ──(threshold failures in the window)──▶ open ──(recovery timeout)──▶ half_open
       ▲                                             ▲                            │
       └──────────────(a probe succeeds)─────────────┼────────────────────────────┤
                                                     └──────(a probe fails)───────┘

While open, :meth:`CircuitBreaker.acquire` refuses, so the choke point fails fast with
``CIRCUIT_OPEN`` and the dependency is never reached. Half-open admits at most
``half_open_probes`` attempts at a time. What counts is the policy table's breaker column
(:class:`~bastion.resilience.policy.BreakerCount`): a broken dependency's failed attempt counts
as it happens (:meth:`~CircuitBreaker.on_failure`), and the choke point takes back the failures
of a call that then recovers (:meth:`~CircuitBreaker.withdraw`); a refusal such as a 404 proves
the dependency is alive and counts as a success; a rate limit counts as neither.
With ``window=None`` the threshold is of *consecutive* failures (the LLM layer); with a window it
is of failures within the last ``window`` seconds, successes in between notwithstanding. A
success slower than ``slow_call`` seconds counts as a failure.

One breaker per dependency, with defaults per layer (:data:`LAYER_DEFAULTS`):

========  ================================  ========  ======
layer     opens after                       recovery  probes
========  ================================  ========  ======
llm       5 consecutive failures, or one    30 s      1
          call slower than 30 s
tool      3 failures within 60 s            30 s      1
exchange  5 failures within 30 s            15 s      1
peer      5 failures within 30 s            15 s      1
webhook   3 failures within 60 s            30 s      1
========  ================================  ========  ======

The runtime tunes the ``llm`` row from settings (``BASTION_LLM_BREAKER_*``); the others are
fixed here. Five failed attempts is one more than an exchange call that spent all three of its
retries, so one bad call does not open the venue's breaker but a second does; rate limits never
count (they are waited out), and 15 s is about one Deribit rate-limit refill plus a settlement
blip. A peer agent is our own process on another host: it fails like an exchange (network,
restarts), so it shares the exchange's numbers. An alert webhook (:mod:`bastion.notify`) is
someone else's service, like a tool, and nothing waits on it: it shares the tool's numbers.

**Why our own and not pybreaker or purgatory.** Both keep time with the wall clock
(``datetime.now`` / ``time.time``), so a breaker cannot run on the injected
:class:`~bastion.clock.Clock` and a ``SimClock`` test cannot cross a recovery timeout; both count
consecutive failures only (no "3 in 60 s" window), neither bounds half-open probes nor counts a
slow success as a failure, pybreaker's async path needs Tornado and purgatory's state is shared
only through its own Redis layout. Bastion needs state that the console reads
(:meth:`BreakerRegistry.snapshot`) and that reaches the store through the Journal like every
other event (:class:`BreakerChange`), in one process and in a fleet. That is about 200 lines of
pure code, so we write it.

Time comes from the clock's ``monotonic``; an open breaker moves to half-open lazily, when the
next call or snapshot looks at it.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from bastion.clock import Clock
from bastion.errors import Layer
from bastion.telemetry.metrics import Metrics

__all__ = [
    "LAYER_DEFAULTS",
    "BreakerChange",
    "BreakerConfig",
    "BreakerRegistry",
    "BreakerState",
    "CircuitBreaker",
    "CountedFailure",
]

_log = logging.getLogger(__name__)


class BreakerState(StrEnum):
    """Where a breaker is; the gauge value is its position in the cycle."""

    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"

    @property
    def gauge(self) -> int:
        """0 closed, 1 half-open, 2 open: the ``bastion_breaker_state`` value."""
        return _GAUGE[self]


_GAUGE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """When a breaker opens and how it recovers (seconds). ``window=None``: consecutive."""

    failure_threshold: int = 5
    window: float | None = 30.0
    recovery_timeout: float = 15.0
    half_open_probes: int = 1
    slow_call: float | None = None


LAYER_DEFAULTS: Mapping[Layer, BreakerConfig] = {
    "llm": BreakerConfig(5, window=None, recovery_timeout=30.0, slow_call=30.0),
    "tool": BreakerConfig(3, window=60.0, recovery_timeout=30.0),
    "exchange": BreakerConfig(5, window=30.0, recovery_timeout=15.0),
    "peer": BreakerConfig(5, window=30.0, recovery_timeout=15.0),
    "webhook": BreakerConfig(3, window=60.0, recovery_timeout=30.0),
}


@dataclass(frozen=True, slots=True)
class BreakerChange:
    """A breaker moved from ``previous`` to ``state`` at ``at`` (epoch seconds), and why."""

    name: str
    layer: Layer
    previous: BreakerState
    state: BreakerState
    at: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


ChangeSink = Callable[[BreakerChange], None]


@dataclass(eq=False, slots=True)
class CountedFailure:
    """One failure counting towards the threshold; the handle a caller withdraws it by."""

    at: float


class CircuitBreaker:
    """The breaker of one dependency. Pure state on an injected clock; never does I/O."""

    def __init__(
        self,
        name: str,
        layer: Layer,
        config: BreakerConfig,
        *,
        clock: Clock,
        on_change: ChangeSink | None = None,
    ) -> None:
        self.name = name
        self.layer = layer
        self.config = config
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._failures: deque[CountedFailure] = deque()
        self._opened_at = 0.0
        self._opened_because: str | None = None
        self._probes = 0

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, layer={self.layer!r}, state={self.state.value!r})"

    @property
    def state(self) -> BreakerState:
        """The current state; an open breaker whose recovery timeout passed is half-open."""
        if (
            self._state is BreakerState.OPEN
            and self._clock.monotonic() >= self._opened_at + self.config.recovery_timeout
        ):
            self._probes = 0
            self._move(BreakerState.HALF_OPEN, "recovery timeout elapsed")
        return self._state

    def retry_after(self) -> float:
        """Seconds until an open breaker turns half-open (0 when it is not open)."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.config.recovery_timeout - self._clock.monotonic())

    def failures(self) -> int:
        """Failures that currently count towards the threshold."""
        self._expire()
        return len(self._failures)

    def acquire(self) -> bool:
        """May a call go ahead now? False means fail fast (open, or probes all taken)."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and self._probes < self.config.half_open_probes:
            self._probes += 1
            return True
        return False

    def on_success(self, duration: float = 0.0) -> None:
        """A call that was let through came back alive (took ``duration`` seconds)."""
        slow = self.config.slow_call
        if slow is not None and duration > slow:
            self.on_failure(f"call took {duration:.3g} s (> {slow:g} s)")
            return
        if self._state is BreakerState.HALF_OPEN:
            self._reset()
            self._move(BreakerState.CLOSED, "probe succeeded")
        elif self._state is BreakerState.CLOSED and self.config.window is None:
            self._failures.clear()

    def on_failure(self, reason: str = "failure") -> CountedFailure | None:
        """An attempt that was let through failed in a way that counts against the dependency.

        Returns the failure while it counts towards the threshold (None when it opened or
        reopened the breaker, or arrived while open), so its call can :meth:`withdraw` it.
        """
        if self._state is BreakerState.HALF_OPEN:
            self._open(f"probe failed: {reason}")
            return None
        if self._state is not BreakerState.CLOSED:
            return None  # a straggler admitted before the breaker opened
        failure = CountedFailure(self._clock.monotonic())
        self._failures.append(failure)
        self._expire()
        threshold = self.config.failure_threshold
        if len(self._failures) >= threshold:
            window = self.config.window
            within = f" within {window:g} s" if window is not None else " in a row"
            self._open(f"{threshold} failures{within}; last: {reason}")
            return None
        return failure

    def withdraw(self, failures: Iterable[CountedFailure]) -> None:
        """Stop counting ``failures``: the call that saw them recovered within its retries.

        Failures that no longer count (expired, or cleared when the breaker opened) are skipped.
        """
        for failure in failures:
            with contextlib.suppress(ValueError):
                self._failures.remove(failure)

    def release(self) -> None:
        """A let-through attempt ended without a verdict on the dependency (cancelled, or a
        failure that says nothing about its health, such as a rate limit): free its probe slot.
        """
        if self._state is BreakerState.HALF_OPEN and self._probes > 0:
            self._probes -= 1

    def snapshot(self) -> dict[str, Any]:
        """The breaker as JSON-able data for ``/api/status`` and the console."""
        state = self.state
        return {
            "dependency": self.name,
            "layer": self.layer,
            "state": state.value,
            "failures": self.failures(),
            "retry_after": round(self.retry_after(), 3) if state is BreakerState.OPEN else None,
            "opened_because": None if state is BreakerState.CLOSED else self._opened_because,
            "config": asdict(self.config),
        }

    def _expire(self) -> None:
        window = self.config.window
        if window is None:
            return
        horizon = self._clock.monotonic() - window
        while self._failures and self._failures[0].at <= horizon:
            self._failures.popleft()

    def _open(self, reason: str) -> None:
        self._reset()
        self._opened_at = self._clock.monotonic()
        self._opened_because = reason
        self._move(BreakerState.OPEN, reason)

    def _reset(self) -> None:
        self._failures.clear()
        self._probes = 0

    def _move(self, state: BreakerState, reason: str) -> None:
        previous, self._state = self._state, state
        if self._on_change is None or previous is state:
            return
        change = BreakerChange(self.name, self.layer, previous, state, self._clock.time(), reason)
        try:
            self._on_change(change)
        except Exception:
            _log.exception("breaker change sink failed for %s", self.name)


class BreakerRegistry:
    """One breaker per dependency, created on first use with its layer's defaults.

    Every state change sets ``bastion_breaker_state{dependency,layer}`` (when ``metrics`` is
    given) and is handed to ``on_change`` (the runtime forwards it to the Journal, hence the
    trace and the store). ``overrides`` sets the config of named dependencies.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        defaults: Mapping[Layer, BreakerConfig] | None = None,
        overrides: Mapping[str, BreakerConfig] | None = None,
        metrics: Metrics | None = None,
        on_change: ChangeSink | None = None,
    ) -> None:
        self._clock = clock
        self._defaults = dict(LAYER_DEFAULTS if defaults is None else defaults)
        self._overrides = dict(overrides or {})
        self._metrics = metrics
        self._on_change = on_change
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, name: str, layer: Layer) -> CircuitBreaker:
        """The breaker of ``name``; the first call fixes its layer."""
        breaker = self._breakers.get(name)
        if breaker is None:
            config = self._overrides.get(name) or self._defaults.get(layer) or BreakerConfig()
            breaker = CircuitBreaker(
                name, layer, config, clock=self._clock, on_change=self._changed
            )
            self._breakers[name] = breaker
            self._gauge(name, layer, BreakerState.CLOSED)
        return breaker

    def __iter__(self) -> Iterator[CircuitBreaker]:
        return iter(list(self._breakers.values()))

    def __len__(self) -> int:
        return len(self._breakers)

    def snapshot(self) -> list[dict[str, Any]]:
        """Every breaker as JSON-able data, sorted by dependency."""
        return [self._breakers[name].snapshot() for name in sorted(self._breakers)]

    def _changed(self, change: BreakerChange) -> None:
        self._gauge(change.name, change.layer, change.state)
        if self._on_change is not None:
            self._on_change(change)

    def _gauge(self, name: str, layer: Layer, state: BreakerState) -> None:
        if self._metrics is not None:
            self._metrics.breaker_state.labels(dependency=name, layer=layer).set(state.gauge)
