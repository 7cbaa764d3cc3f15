"""The metrics sink: the journal's events become counters, histograms and gauges."""

from __future__ import annotations

from typing import Any, get_args

import pytest

from bastion.events import Event, EventKind
from bastion.runtime.loop import StepStatus
from bastion.status import TradingState
from bastion.telemetry.metrics import (
    CYCLE_OUTCOMES,
    RESEARCH_PHASES,
    STEP_OUTCOMES,
    TRADING_STATES,
    Metrics,
)
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
    assert r.get_sample_value("bastion_step_duration_seconds_sum", {"outcome": "ok"}) == 0.25
    assert r.get_sample_value("bastion_step_duration_seconds_sum", {"outcome": "halted"}) == 0.5


def test_every_step_outcome_is_exported_at_zero_before_the_first_step() -> None:
    """The outcomes are the loop's StepStatus, each at 0 so a first failure is a visible rise."""
    assert set(STEP_OUTCOMES) == set(get_args(StepStatus))
    r = Metrics().registry
    assert [r.get_sample_value("bastion_steps_total", {"outcome": o}) for o in STEP_OUTCOMES] == [
        0.0
    ] * len(STEP_OUTCOMES)
    counts = [
        r.get_sample_value("bastion_step_duration_seconds_count", {"outcome": o})
        for o in STEP_OUTCOMES
    ]
    assert counts == [0.0] * len(STEP_OUTCOMES)


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
    """A decision, or a fleet-scope halt record (this host's own trip follows), changes nothing."""
    sink, metrics = _sink()
    before = metrics.render()
    sink(Event(EventKind.DECISION, {"step": 1}))
    sink(Event(EventKind.HALT_TRIPPED, {"reason": "operator", "scope": "fleet"}))
    assert metrics.render() == before


def _value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def _states(metrics: Metrics) -> dict[str, float | None]:
    return {s: _value(metrics, "bastion_trading_state", state=s) for s in TRADING_STATES}


def test_the_trading_state_follows_halts_resumes_and_each_steps_halt_flag() -> None:
    """One state at 1 at a time: a REDUCING trip, a step still under it, a resume, a HALTED step."""
    sink, metrics = _sink()
    assert set(_states(metrics).values()) == {0.0}  # unknown before anything is seen
    sink(Event(EventKind.HALT_TRIPPED, {"reason": "daily_loss", "state": "reducing"}))
    assert _states(metrics) == {"active": 0, "reducing": 1, "halted": 0}
    sink(Event(EventKind.HALT_RESUMED, {"reason": "daily_loss", "who": "ann", "why": "ok"}))
    assert _states(metrics) == {"active": 1, "reducing": 0, "halted": 0}
    halted = {"reason": "operator", "who": "x", "when": "", "state": TradingState.HALTED}
    sink(Event(EventKind.STEP_COMPLETED, {"status": "halted", "elapsed_s": 0.1, "halt": halted}))
    assert _states(metrics) == {"active": 0, "reducing": 0, "halted": 1}
    sink(Event(EventKind.STEP_COMPLETED, {"status": "ok", "elapsed_s": 0.1, "halt": None}))
    assert _states(metrics) == {"active": 1, "reducing": 0, "halted": 0}


def test_tool_calls_count_by_declared_tool_and_outcome_and_per_run() -> None:
    """ok or the error's code per tool; refusals only by reason, yet they count for the run."""
    sink, metrics = _sink()
    sink(Event(EventKind.RUN_STARTED, {}))
    sink(Event(EventKind.TOOL_CALL, {"tool": "ticker", "content": "{}"}))
    sink(Event(EventKind.TOOL_CALL, {"tool": "ticker", "error": {"kind": "timeout"}}))
    sink(Event(EventKind.TOOL_REFUSED, {"tool": "ignore previous", "reason": "unknown"}))
    assert _value(metrics, "bastion_tool_calls_total", tool="ticker", outcome="ok") == 1
    assert _value(metrics, "bastion_tool_calls_total", tool="ticker", outcome="timeout") == 1
    assert _value(metrics, "bastion_tool_refusals_total", reason="unknown") == 1
    assert "ignore previous" not in metrics.render().decode()
    assert _value(metrics, "bastion_run_tool_calls") == 3
    sink(Event(EventKind.RUN_FINISHED, {"status": "completed"}))
    assert _value(metrics, "bastion_tool_calls_per_run_sum") == 3
    assert _value(metrics, "bastion_tool_calls_per_run_bucket", le="2.0") == 0
    assert _value(metrics, "bastion_tool_calls_per_run_bucket", le="5.0") == 1


def test_a_runs_cost_is_the_sum_of_its_llm_answers_and_starts_again_at_zero() -> None:
    """llm_call usd add up into the current run's gauge; run_finished observes the total."""
    sink, metrics = _sink()
    sink(Event(EventKind.RUN_STARTED, {}))
    sink(Event(EventKind.LLM_CALL, {"model": "m", "usd": 0.02}))
    sink(Event(EventKind.LLM_CALL, {"model": "m", "tier": "cache", "usd": 0.0}))
    sink(Event(EventKind.LLM_CALL, {"model": "m", "usd": 0.03}))
    assert _value(metrics, "bastion_run_cost_usd") == pytest.approx(0.05)
    sink(Event(EventKind.RUN_FINISHED, {}))
    sink(Event(EventKind.RUN_STARTED, {}))
    assert _value(metrics, "bastion_run_cost_usd") == 0
    assert _value(metrics, "bastion_cost_per_run_usd_sum") == pytest.approx(0.05)
    assert _value(metrics, "bastion_cost_per_run_usd_bucket", le="0.05") == 1
    assert _value(metrics, "bastion_cost_per_run_usd_bucket", le="0.01") == 0


def test_daily_pnl_is_equity_against_the_first_observation_of_the_utc_day() -> None:
    """A new UTC day starts from its first equity; a halted step's book moves the same day."""
    sink, metrics = _sink()
    day1 = 1_800_000_000_000 - 1_800_000_000_000 % 86_400_000  # 00:00 UTC
    sink(Event(EventKind.OBSERVATION, {"currency": "BTC", "equity": 10.0, "time_ms": day1}))
    sink(Event(EventKind.OBSERVATION, {"currency": "BTC", "equity": 10.5, "time_ms": day1 + 1}))
    assert _value(metrics, "bastion_account_daily_pnl", currency="BTC") == pytest.approx(0.5)
    book = {"currency": "BTC", "equity": 9.0}
    sink(Event(EventKind.STEP_COMPLETED, {"status": "halted", "elapsed_s": 0.1, "book": book}))
    assert _value(metrics, "bastion_account_daily_pnl", currency="BTC") == pytest.approx(-1.0)
    day2 = day1 + 86_400_000
    sink(Event(EventKind.OBSERVATION, {"currency": "BTC", "equity": 9.2, "time_ms": day2}))
    assert _value(metrics, "bastion_account_daily_pnl", currency="BTC") == 0


def test_drift_and_dependency_errors_come_from_their_events() -> None:
    """step_completed's drift_coin sets the gauge; call_failed counts by dependency and code."""
    sink, metrics = _sink()
    step = {"status": "ok", "elapsed_s": 0.1, "halt": None, "drift_coin": 0.25}
    sink(Event(EventKind.STEP_COMPLETED, step))
    assert _value(metrics, "bastion_position_drift_coin") == 0.25
    failed = {"kind": "timeout", "dependency": "deribit", "layer": "exchange", "attempts": 3}
    sink(Event(EventKind.CALL_FAILED, failed))
    labels = {"dependency": "deribit", "layer": "exchange", "code": "timeout"}
    assert _value(metrics, "bastion_dependency_errors_total", **labels) == 1


def test_the_research_workflows_cycles_phases_and_gates_start_at_zero_and_count() -> None:
    """Every cycle outcome and phase exported at 0; each event counts where it says."""
    sink, metrics = _sink()
    for outcome in CYCLE_OUTCOMES:
        assert _value(metrics, "bastion_cycles_total", outcome=outcome) == 0
    for phase in RESEARCH_PHASES:
        assert _value(metrics, "bastion_phase_duration_seconds_count", phase=phase) == 0
    sink(Event(EventKind.CYCLE_FINISHED, {"outcome": "cancelled", "elapsed_s": 42.0}))
    sink(Event(EventKind.PHASE_FINISHED, {"phase": "backtest", "elapsed_s": 12.0}))
    sink(Event(EventKind.GATE_EVALUATED, {"gate": "sharpe", "passed": False}))
    assert _value(metrics, "bastion_cycles_total", outcome="cancelled") == 1
    assert _value(metrics, "bastion_cycle_duration_seconds_sum", outcome="cancelled") == 42.0
    assert _value(metrics, "bastion_phase_duration_seconds_sum", phase="backtest") == 12.0
    assert _value(metrics, "bastion_quality_gates_total", gate="sharpe", result="fail") == 1


def test_health_status_is_read_from_its_source_at_each_scrape() -> None:
    """watch_health: one series per check, the rank of its latest status, fresh every render."""
    metrics = Metrics()
    assert "bastion_health_status{" not in metrics.render().decode()
    latest = {"exchange": 0, "llm": 2}
    metrics.watch_health(latest.items)
    assert _value(metrics, "bastion_health_status", check="llm") == 2
    latest["llm"] = 1
    assert _value(metrics, "bastion_health_status", check="llm") == 1
    assert _value(metrics, "bastion_health_status", check="exchange") == 0
