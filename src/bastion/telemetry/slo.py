"""Bastion's three SLOs, their error budgets and multi-window, multi-burn-rate alerts (pure).

The SLOs are over task records (:mod:`bastion.store.tasks`; a task is a loop step for now):

==================  ==============================================  ==========  ==============
SLO                 a good task                                     objective   Prometheus slo
==================  ==============================================  ==========  ==============
``task_completion`` ended ok (``failed``/``timeout`` are bad;           99.5 %      step-completion
                    ``halted`` is neither and left out)
``latency``         took at most 5 s (every task counts)            99 %        step-latency
                    i.e. P99 <= 5 s
``cost``            its LLM calls cost at most $0.15 (every task)   99 %        step-cost
==================  ==============================================  ==========  ==============

The cost objective is 99 %: one step in a hundred may cost more than $0.15 (a long prompt, a
fallback to a dearer model) before the budget burns; a lower target would leave the fast page
unable to fire (the SRE Workbook's "low targets" caveat: below about 98.6 % a total outage never
burns 14.4x). The thresholds and objectives are settings (``slo_*``); the Prometheus rules in
``deploy/prometheus/`` are written for the defaults.

Burn rate = the window's bad ratio / (1 - objective). Each SLO has a 30-day error budget
(``slo_period_days``) and four alert conditions (SRE Workbook, ch. 5; Sloth's google-30d
windows), both windows of a pair above the factor:

========  =====  =====  ======  ==================
severity  long   short  factor  budget spent
========  =====  =====  ======  ==================
page      1h     5m     14.4    2 %
page      6h     30m    6       5 %
ticket    1d     2h     3       10 %
ticket    3d     6h     1       10 %
========  =====  =====  ======  ==================

One alert per SLO and severity (key ``slo:<name>:<severity>``), firing while either of its pairs
holds, named and labelled as the Prometheus alert is (``BastionStepErrorBudgetBurn`` with
``slo: step-completion`` and ``severity: page``...).

Low traffic: a window with no tasks has no burn rate (``None``, JSON null), and a condition with
a window without a rate is false, exactly as Prometheus' ``0/0`` is NaN and ``NaN > x`` is
false: an idle agent raises nothing, and an alert firing when the traffic stops resolves. A few
tasks an hour still make one failure a large burn (at ten steps an hour, one failed step is a
20x burn and pages); the objective or the traffic is the remedy, not a special case here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bastion.store.tasks import TaskTally
from bastion.telemetry.alert import Alert, Severity

__all__ = [
    "BURN_ALERTS",
    "WINDOWS",
    "BurnAlert",
    "SloSpec",
    "SloStatus",
    "burn_rate",
    "default_slos",
    "evaluate",
    "slo_alerts",
]

WINDOWS: tuple[tuple[str, timedelta], ...] = (
    ("5m", timedelta(minutes=5)),
    ("30m", timedelta(minutes=30)),
    ("1h", timedelta(hours=1)),
    ("2h", timedelta(hours=2)),
    ("6h", timedelta(hours=6)),
    ("1d", timedelta(days=1)),
    ("3d", timedelta(days=3)),
)
"""The burn-rate windows, as the recording rules name them (``ratio_rate5m`` ...)."""


@dataclass(frozen=True, slots=True)
class BurnAlert:
    """One window pair: fires while both windows burn faster than ``factor``."""

    severity: Severity
    long: str
    short: str
    factor: float


BURN_ALERTS: tuple[BurnAlert, ...] = (
    BurnAlert(Severity.PAGE, "1h", "5m", 14.4),
    BurnAlert(Severity.PAGE, "6h", "30m", 6.0),
    BurnAlert(Severity.TICKET, "1d", "2h", 3.0),
    BurnAlert(Severity.TICKET, "3d", "6h", 1.0),
)


@dataclass(frozen=True, slots=True)
class SloSpec:
    """One SLO: what it is called, how good it must be, and which tasks are bad."""

    name: str
    """``task_completion``, ``latency`` or ``cost`` (the API's name)."""
    alertname: str
    """The Prometheus alert's name, shared by the in-process alert."""
    label: str
    """The Prometheus alert's ``slo`` label."""
    description: str
    objective: float
    threshold: float | None
    unit: str | None
    counts: Callable[[TaskTally], tuple[int, int]]
    """(good, total) of a window's tally."""

    def __post_init__(self) -> None:
        if not 0.0 < self.objective < 1.0:
            raise ValueError(f"{self.name} objective must be between 0 and 1, got {self.objective}")


def _completion(t: TaskTally) -> tuple[int, int]:
    return t.counted - t.errors, t.counted


def _latency(t: TaskTally) -> tuple[int, int]:
    return t.total - t.slow, t.total


def _cost(t: TaskTally) -> tuple[int, int]:
    return t.total - t.costly, t.total


def default_slos(
    *,
    completion: float = 0.995,
    latency: float = 0.99,
    latency_s: float = 5.0,
    cost: float = 0.99,
    cost_usd: float = 0.15,
) -> tuple[SloSpec, SloSpec, SloSpec]:
    """The three SLOs with these objectives and thresholds (the ``slo_*`` settings)."""
    return (
        SloSpec(
            "task_completion",
            "BastionStepErrorBudgetBurn",
            "step-completion",
            "Steps that end without failing or timing out (halted steps are left out).",
            completion,
            None,
            None,
            _completion,
        ),
        SloSpec(
            "latency",
            "BastionStepLatencyBudgetBurn",
            "step-latency",
            f"Steps that finish within {latency_s:g} s.",
            latency,
            latency_s,
            "s",
            _latency,
        ),
        SloSpec(
            "cost",
            "BastionStepCostBudgetBurn",
            "step-cost",
            f"Steps whose LLM calls cost at most ${cost_usd:g}.",
            cost,
            cost_usd,
            "usd",
            _cost,
        ),
    )


def burn_rate(good: int, total: int, objective: float) -> float | None:
    """The bad ratio over the budget ratio; None for a window without tasks."""
    if total <= 0:
        return None
    return ((total - good) / total) / (1.0 - objective)


def _fires(rule: BurnAlert, rates: Mapping[str, float | None]) -> bool:
    long, short = rates.get(rule.long), rates.get(rule.short)
    return long is not None and short is not None and long > rule.factor and short > rule.factor


@dataclass(frozen=True, slots=True)
class SloStatus:
    """One SLO evaluated at one moment."""

    spec: SloSpec
    total: int
    good: int
    burn_rates: Mapping[str, float | None]
    firing_rules: tuple[BurnAlert, ...]

    @property
    def sli(self) -> float | None:
        return self.good / self.total if self.total else None

    @property
    def error_budget_remaining(self) -> float:
        """1 untouched, 0 spent, below 0 overspent (1 while nothing was counted)."""
        if not self.total:
            return 1.0
        return 1.0 - ((self.total - self.good) / self.total) / (1.0 - self.spec.objective)

    def to_dict(self) -> dict[str, Any]:
        """The API's shape of one SLO (``GET /api/slo``)."""
        spec = self.spec
        return {
            "name": spec.name,
            "description": spec.description,
            "objective": spec.objective,
            "threshold": spec.threshold,
            "unit": spec.unit,
            "total": self.total,
            "good": self.good,
            "sli": self.sli,
            "error_budget_remaining": self.error_budget_remaining,
            "burn_rates": {name: self.burn_rates.get(name) for name, _ in WINDOWS},
            "alerts": [
                {
                    "severity": rule.severity.value,
                    "long": rule.long,
                    "short": rule.short,
                    "factor": rule.factor,
                    "firing": rule in self.firing_rules,
                }
                for rule in BURN_ALERTS
            ],
        }


def evaluate(spec: SloSpec, period: TaskTally, windows: Mapping[str, TaskTally]) -> SloStatus:
    """``spec`` over the period's tally and one tally per window of :data:`WINDOWS`."""
    good, total = spec.counts(period)
    rates = {name: burn_rate(*spec.counts(windows[name]), spec.objective) for name, _ in WINDOWS}
    firing = tuple(rule for rule in BURN_ALERTS if _fires(rule, rates))
    return SloStatus(spec, total, good, rates, firing)


def slo_alerts(statuses: Sequence[SloStatus], since: datetime) -> list[Alert]:
    """The alerts the statuses raise now: one per SLO and severity with a firing pair.

    ``value`` is the long window's burn rate of the pair that burns fastest and ``threshold``
    that pair's factor. ``since`` is when the caller first saw it (the monitor keeps it).
    """
    alerts: list[Alert] = []
    for status in statuses:
        spec = status.spec
        for severity in (Severity.PAGE, Severity.TICKET):
            rules = [r for r in status.firing_rules if r.severity is severity]
            if not rules:
                continue
            worst = max(rules, key=lambda r: (status.burn_rates[r.long] or 0.0) / r.factor)
            rate = status.burn_rates[worst.long] or 0.0
            alerts.append(
                Alert(
                    key=f"slo:{spec.name}:{severity.value}",
                    name=spec.alertname,
                    severity=severity,
                    summary=(
                        f"The {spec.name} SLO ({spec.objective:.1%}) burns its error budget "
                        f"{rate:.1f}x over {worst.long} and {worst.short} "
                        f"(alert at {worst.factor:g}x)"
                    ),
                    since=since,
                    labels={
                        "alertname": spec.alertname,
                        "severity": severity.value,
                        "slo": spec.label,
                    },
                    value=round(rate, 6),
                    threshold=worst.factor,
                )
            )
    return alerts
