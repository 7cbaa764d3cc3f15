"""Page-on thresholds: single conditions a person should look at now (pure).

The SLO burn alerts (:mod:`bastion.telemetry.slo`) page when a budget goes; these page on one
figure crossing a line. Each is an :class:`~bastion.telemetry.alert.Alert` of severity page,
named as its Prometheus rule in ``deploy/prometheus/bastion-page-on.yml``:

=============================  ===========================================================
alert (key ``page_on:<name>``)  fires while
=============================  ===========================================================
BastionRunCostHigh             this run's LLM spend > ``cost_factor`` x the cost baseline
BastionRunToolCallsHigh        this run's tool calls > ``tool_calls_per_run`` (30)
BastionStepLatencyP95High      this run's step P95 over the last hour > ``latency_factor`` x
                               the latency baseline (once the hour holds 20 steps)
BastionStepErrorRateHigh       over 1 % of the steps of the last 5 minutes failed or timed
                               out (halted steps left out; none in the window: no alert)
BastionKillSwitchActive        a halt is on (any reason)
BastionPositionDriftHalt       the halt's reason is ``position_drift`` (drift over dust for
                               several observations: the drift guard's own definition)
BastionRunawayLoopHalt         the halt's reason is ``runaway_loop``
=============================  ===========================================================

Baselines: configured (``page_on_cost_baseline_usd``, ``page_on_latency_baseline_seconds``) or
else the median, over the other runs with steps in the last 7 days, of each run's LLM spend and
of each run's step P95. With neither (a first run, a fresh store), that threshold is not
evaluated: there is nothing to be twice of. A run's P95 needs :data:`MIN_P95_STEPS` steps to
mean anything, so a run with fewer neither gives a baseline nor is compared to one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from statistics import median
from typing import Any

from bastion.store.tasks import TaskTally
from bastion.telemetry.alert import Alert, Severity

__all__ = [
    "MIN_P95_STEPS",
    "PageOnFigures",
    "PageOnSettings",
    "cost_baseline",
    "halt_alerts",
    "latency_baseline",
    "p95",
    "page_on_alerts",
]

MIN_P95_STEPS = 20
"""Steps a P95 needs: with fewer, the 95th percentile is just the slowest step."""


@dataclass(frozen=True, slots=True)
class PageOnSettings:
    """The thresholds (the ``page_on_*`` settings); a None threshold is not evaluated."""

    cost_factor: float | None = 2.0
    cost_baseline_usd: float | None = None
    tool_calls_per_run: int | None = 30
    latency_factor: float | None = 2.0
    latency_baseline_s: float | None = None
    error_rate: float | None = 0.01
    error_window_s: float = 300.0
    baseline_days: float = 7.0
    latency_window_s: float = 3600.0


@dataclass(frozen=True, slots=True)
class PageOnFigures:
    """What the thresholds are compared with, read at one moment."""

    run_cost_usd: float = 0.0
    run_tool_calls: int = 0
    latency_p95_s: float | None = None
    """This run's step P95 over the latency window; None below :data:`MIN_P95_STEPS` steps."""
    errors: TaskTally = field(default_factory=TaskTally)
    """The steps of the error-rate window."""
    cost_baseline_usd: float | None = None
    latency_baseline_s: float | None = None


def p95(durations: Sequence[float]) -> float | None:
    """The nearest-rank 95th percentile; None below :data:`MIN_P95_STEPS` values."""
    if len(durations) < MIN_P95_STEPS:
        return None
    ordered = sorted(durations)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


def cost_baseline(run_costs: Iterable[float]) -> float | None:
    """The median of the other runs' spend; None without runs (or when all spent nothing)."""
    costs = list(run_costs)
    if not costs:
        return None
    value = median(costs)
    return value if value > 0 else None


def latency_baseline(durations_by_run: Mapping[str, Sequence[float]]) -> float | None:
    """The median of the other runs' step P95s; None without a run of :data:`MIN_P95_STEPS`."""
    values = [v for v in map(p95, durations_by_run.values()) if v is not None]
    return median(values) if values else None


def _page(  # noqa: PLR0917  one parameter per Alert field it sets
    name: str, key: str, summary: str, since: datetime, value: float | None, threshold: float | None
) -> Alert:
    return Alert(
        key=f"page_on:{key}",
        name=name,
        severity=Severity.PAGE,
        summary=summary,
        since=since,
        labels={"alertname": name, "severity": Severity.PAGE.value},
        value=value,
        threshold=threshold,
    )


def page_on_alerts(
    settings: PageOnSettings, figures: PageOnFigures, since: datetime
) -> list[Alert]:
    """The store-fed page-on alerts whose condition holds now (``since``: when first seen)."""
    found: list[Alert] = []

    def add(
        name: str, key: str, summary: str, value: float | None, threshold: float | None
    ) -> None:
        found.append(_page(name, key, summary, since, value, threshold))

    s, f = settings, figures
    cost_base = s.cost_baseline_usd if s.cost_baseline_usd is not None else f.cost_baseline_usd
    if s.cost_factor is not None and cost_base is not None:
        limit = s.cost_factor * cost_base
        if f.run_cost_usd > limit:
            add(
                "BastionRunCostHigh",
                "run_cost",
                f"This run spent ${f.run_cost_usd:.4f} on LLM calls, over {s.cost_factor:g}x "
                f"the baseline of ${cost_base:.4f} a run",
                f.run_cost_usd,
                limit,
            )
    if s.tool_calls_per_run is not None and f.run_tool_calls > s.tool_calls_per_run:
        add(
            "BastionRunToolCallsHigh",
            "run_tool_calls",
            f"This run made {f.run_tool_calls} tool calls, over {s.tool_calls_per_run}",
            float(f.run_tool_calls),
            float(s.tool_calls_per_run),
        )
    lat_base = s.latency_baseline_s if s.latency_baseline_s is not None else f.latency_baseline_s
    if s.latency_factor is not None and lat_base is not None and f.latency_p95_s is not None:
        limit = s.latency_factor * lat_base
        if f.latency_p95_s > limit:
            add(
                "BastionStepLatencyP95High",
                "latency_p95",
                f"Steps' P95 is {f.latency_p95_s:.2f} s, over {s.latency_factor:g}x the "
                f"baseline of {lat_base:.2f} s",
                f.latency_p95_s,
                limit,
            )
    if s.error_rate is not None and f.errors.counted > 0:
        rate = f.errors.errors / f.errors.counted
        if rate > s.error_rate:
            add(
                "BastionStepErrorRateHigh",
                "error_rate",
                f"{rate:.1%} of the steps of the last {s.error_window_s / 60:g} minutes failed "
                f"or timed out (over {s.error_rate:.0%})",
                rate,
                s.error_rate,
            )
    return found


def halt_alerts(halt: Mapping[str, Any] | None, since: datetime) -> list[Alert]:
    """The halt's page-on alerts: the kill switch, and drift or a runaway loop by its reason.

    ``halt`` is the active halt as ``HaltState.to_dict()`` spells it (the ``halt`` of a
    ``step_completed``, a ``halt_tripped`` payload), None while trading.
    """
    if halt is None:
        return []
    reason = str(halt.get("reason", ""))
    found = [
        _page(
            "BastionKillSwitchActive",
            "kill_switch",
            f"Bastion is halted ({reason}): the kill switch is active",
            since,
            1.0,
            None,
        )
    ]
    if reason == "position_drift":
        found.append(
            _page(
                "BastionPositionDriftHalt",
                "position_drift",
                "Bastion halted on position drift: the exchange's positions differ from its "
                "book by more than dust",
                since,
                1.0,
                None,
            )
        )
    elif reason == "runaway_loop":
        found.append(
            _page(
                "BastionRunawayLoopHalt",
                "runaway_loop",
                "Bastion halted a runaway loop (tool calls without end, or past the step cap)",
                since,
                1.0,
                None,
            )
        )
    return found
