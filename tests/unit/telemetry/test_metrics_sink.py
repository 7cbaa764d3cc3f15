"""The metrics sink: the loop's events become counters, a histogram and the equity gauge."""

from __future__ import annotations

from typing import Any, get_args

import pytest

from bastion.events import Event, EventKind
from bastion.runtime.loop import StepStatus
from bastion.telemetry.metrics import STEP_OUTCOMES, Metrics
from bastion.telemetry.sink import MetricsSink


def _orders(metrics: Metrics, outcome: str) -> float | None:
    return metrics.registry.get_sample_value("bastion_orders_total", {"outcome": outcome})


def _sink() -> tuple[MetricsSink, Metrics]:
    metrics = Metrics()
    return MetricsSink(metrics), metrics


def test_a_completed_step_counts_by_outcome_and_times_itself() -> None:
    """step_completed: one step of its outcome; elapsed_s into the duration histogram."""
    sink, metrics = _sink()
    sink(Event(EventKind.STEP_COMPLETED, {"step": 1, "status": "ok", "elapsed_s": 0.25}))
    sink(Event(EventKind.STEP_COMPLETED, {"step": 2, "status": "halted", "elapsed_s": 0.5}))
    r = metrics.registry
    assert r.get_sample_value("bastion_steps_total", {"outcome": "ok"}) == 1
    assert r.get_sample_value("bastion_steps_total", {"outcome": "halted"}) == 1
    assert r.get_sample_value("bastion_step_duration_seconds_sum") == pytest.approx(0.75)


def test_every_step_outcome_is_exported_at_zero_before_the_first_step() -> None:
    """The outcomes are the loop's StepStatus, each at 0 so a first failure is a visible rise."""
    assert set(STEP_OUTCOMES) == set(get_args(StepStatus))
    r = Metrics().registry
    assert [r.get_sample_value("bastion_steps_total", {"outcome": o}) for o in STEP_OUTCOMES] == [
        0.0
    ] * len(STEP_OUTCOMES)


def test_equity_follows_the_observation_and_a_halted_steps_book() -> None:
    """observation and a halted step's book set the equity gauge of their currency."""
    sink, metrics = _sink()
    sink(Event(EventKind.OBSERVATION, {"currency": "BTC", "equity": 10.5}))
    assert metrics.registry.get_sample_value("bastion_account_equity", {"currency": "BTC"}) == 10.5
    book = {"currency": "BTC", "equity": 9.0}
    sink(Event(EventKind.STEP_COMPLETED, {"status": "halted", "elapsed_s": 0.1, "book": book}))
    assert metrics.registry.get_sample_value("bastion_account_equity", {"currency": "BTC"}) == 9.0


@pytest.mark.parametrize(
    ("kind", "payload", "outcome", "count"),
    [
        (EventKind.RISK_VERDICT, {"status": "rejected"}, "risk_rejected", 1),
        (EventKind.RISK_VERDICT, {"status": "approved"}, "risk_rejected", None),
        (EventKind.ORDER_SENT, {"stage": "send"}, "sent", 1),
        (EventKind.ORDER_SENT, {"stage": "reconcile", "confirmed_late": True}, "sent", None),
        (EventKind.ORDER_FILLED, {"stage": "reconcile"}, "filled", 1),
        (EventKind.ORDER_REJECTED, {"stage": "send"}, "rejected", 1),
        (EventKind.ORDER_REJECTED, {"stage": "reconcile", "reason": "rejected"}, "rejected", None),
        (EventKind.ORDER_FAILED, {"stage": "send"}, "failed", 1),
        (EventKind.ORDER_SKIPPED, {"stage": "send", "reason": "dry_run"}, "dry_run", 1),
        (EventKind.ORDER_SKIPPED, {"stage": "send", "reason": "halted", "skipped": 3}, "halted", 3),
        (EventKind.ORDER_SKIPPED, {"stage": "reconcile", "reason": "cancelled"}, "cancelled", None),
    ],
)
def test_order_events_count_what_the_send_made_of_each_intent(
    kind: EventKind, payload: dict[str, Any], outcome: str, count: float | None
) -> None:
    """Send-time outcomes count; fates found later by reconciliation are traced, not counted."""
    sink, metrics = _sink()
    sink(Event(kind, payload))
    assert _orders(metrics, outcome) == count


def test_events_it_does_not_count_pass_by() -> None:
    """A halt or a decision changes no instrument of this sink."""
    sink, metrics = _sink()
    before = metrics.render()
    sink(Event(EventKind.DECISION, {"step": 1}))
    sink(Event(EventKind.HALT_TRIPPED, {"reason": "operator"}))
    assert metrics.render() == before
