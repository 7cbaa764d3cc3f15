"""Burn-rate alerts on a SimClock: synthetic streams raise exactly the expected alerts.

Every stream is 100 steps an hour (one every 36 s) after three days of clean history of the
same rate, so each window holds its full share: 8 steps in 5 minutes, 100 in an hour, 600 in
6 hours, 2,400 in a day, 7,200 in three days. The monitor evaluates at every step unless said.
"""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from bastion.store import Store
from bastion.store.tasks import Task
from bastion.telemetry.slo import BURN_ALERTS, burn_rate, default_slos
from slo_sim import STEP_S, SimRun, make_run

THREE_DAYS = 7200  # steps of history


def test_a_ten_minute_burst_of_failures_pages_once_and_resolves_when_it_stops(
    sim_run: SimRun,
) -> None:
    """15 failed steps in a row: the 1h/5m page fires at the 8th and resolves 5 minutes after.

    Completion's budget is 0.5 %: the page needs both windows over 14.4 x 0.5 % = 7.2 %, so the
    hour's 100 steps need 8 failures (the 5 minutes' 8 steps are all failing by then). The 6h
    pair needs 19 failures of 600, the tickets 37 of 2,400 and of 7,200: none fires. The last
    failure leaves the 5-minute window 9 steps (324 s) later, and the page resolves there.
    """
    run = sim_run
    run.history(THREE_DAYS)
    for _ in range(15):
        run.step("failed")
    for _ in range(30):
        run.step()
    eighth_failure = 8 * STEP_S
    last_failure = 15 * STEP_S
    assert run.timeline() == [
        (eighth_failure, "firing", "slo:task_completion:page"),
        (last_failure + 9 * STEP_S, "resolved", "slo:task_completion:page"),
    ]
    _, _, fired = run.alerts[0]
    assert fired.name == "BastionStepErrorBudgetBurn"
    assert dict(fired.labels) == {
        "alertname": "BastionStepErrorBudgetBurn",
        "severity": "page",
        "slo": "step-completion",
    }
    assert fired.value == pytest.approx(0.08 / 0.005)  # 8 of the hour's 100 steps
    assert fired.threshold == 14.4
    _, _, resolved = run.alerts[1]
    assert resolved.to_payload() == fired.to_payload()  # the same key and payload


def test_a_sustained_two_percent_failure_rate_opens_a_ticket_and_never_pages(
    sim_run: SimRun,
) -> None:
    """Every 50th step fails (2 %): a ticket once the day's 2,400 steps hold 37 failures.

    2 % is under both pages' ratios (7.2 %, 3 %) but over the 1d/2h ticket's 3 x 0.5 % = 1.5 %
    once the whole day burns it: 37 failures, the 1,850th step. The 3d/6h pair (1 x 0.5 % of
    7,200 steps) crosses at the same failure. Evaluated every 30 minutes (50 steps), the first
    evaluation after the crossing is the 1,851st step's.
    """
    run = sim_run
    run.monitor._interval = 1800.0
    run.history(THREE_DAYS)
    for n in range(1, 1901):
        run.step("failed" if n % 50 == 0 else "ok")
    assert run.timeline() == [(1851 * STEP_S, "firing", "slo:task_completion:ticket")]
    _, _, ticket = run.alerts[0]
    assert ticket.severity.value == "ticket"
    assert ticket.name == "BastionStepErrorBudgetBurn"


def test_slow_steps_page_the_latency_slo_alone(sim_run: SimRun) -> None:
    """Steps over 5 s burn latency's 1 % budget; failures are not involved, cost neither.

    14.4 x 1 % = 14.4 %: the hour's 100 steps need 15 slow ones. Halted steps count for latency
    (the histogram sees every step) even though completion leaves them out.
    """
    run = sim_run
    run.history(THREE_DAYS)
    for n in range(1, 31):
        run.step("halted" if n % 2 else "ok", elapsed_s=6.0)
    assert run.timeline() == [(15 * STEP_S, "firing", "slo:latency:page")]
    assert run.alerts[0][2].name == "BastionStepLatencyBudgetBurn"


def test_costly_steps_page_the_cost_slo(sim_run: SimRun) -> None:
    """Steps whose LLM calls cost over $0.15 burn the cost SLO's 1 % budget (15 in the hour)."""
    run = sim_run
    run.history(THREE_DAYS)
    for _ in range(14):
        run.step(usd=0.16)
    run.step(usd=0.15)  # at the threshold: a good step
    assert run.alerts == []
    run.step(usd=0.2)
    assert run.timeline() == [(16 * STEP_S, "firing", "slo:cost:page")]
    assert run.alerts[0][2].labels["slo"] == "step-cost"


def test_an_idle_window_raises_nothing_and_resolves_what_fired(sim_run: SimRun) -> None:
    """No tasks, no burn rate (null): a fresh store is quiet; a page resolves when steps stop.

    A first run has no history, so its first failure is a 100 % ratio in every window: it pages
    and tickets at once (the low-traffic caveat). Then the agent goes quiet. Once the 5-minute
    window is empty its rate is None and that pair cannot burn, but the 6h/30m pair still pages
    until the 30-minute window empties; the tickets' 2-hour and 6-hour windows keep the failure
    for 6 hours.
    """
    run = sim_run
    status = run.monitor.evaluate()
    assert all(s.total == 0 and s.sli is None for s in status.statuses)
    assert all(rate is None for s in status.statuses for rate in s.burn_rates.values())
    assert run.alerts == []
    run.step("failed")
    assert sorted(key for _, what, key in run.timeline()) == [
        "slo:task_completion:page",
        "slo:task_completion:ticket",
    ]
    for seconds in (301, 1499):  # 5 minutes, then 30
        run.clock.advance(seconds)
        run.monitor.evaluate()
    assert len(run.alerts) == 3
    assert run.timeline()[-1] == (STEP_S + 1800, "resolved", "slo:task_completion:page")
    run.clock.advance(6 * 3600 - 1800)
    run.monitor.evaluate()
    assert run.timeline()[-1] == (STEP_S + 6 * 3600, "resolved", "slo:task_completion:ticket")
    assert len(run.alerts) == 4


def test_a_firing_alert_is_never_fired_twice(sim_run: SimRun) -> None:
    """However many evaluations see the condition, one firing event per key until it resolves."""
    run = sim_run
    run.history(THREE_DAYS)
    for _ in range(40):
        run.step("failed")
    for _ in range(3):
        run.monitor.evaluate()
    keys = [key for _, what, key in run.timeline() if what == "firing"]
    assert len(keys) == len(set(keys))
    assert set(keys) == {"slo:task_completion:page", "slo:task_completion:ticket"}


def test_the_report_has_the_api_shape(sim_run: SimRun) -> None:
    """Every SLO lists all seven windows and the four pairs; budgets fall as failures come."""
    run = sim_run
    run.history(100)
    run.step("failed")
    report = run.monitor.report()
    assert report["period_days"] == 30
    completion, latency, cost = report["slos"]
    assert [s["name"] for s in report["slos"]] == ["task_completion", "latency", "cost"]
    assert list(completion["burn_rates"]) == ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]
    assert (completion["total"], completion["good"]) == (101, 100)
    assert completion["error_budget_remaining"] == pytest.approx(1 - (1 / 101) / 0.005)
    assert completion["burn_rates"]["1h"] == pytest.approx((1 / 100) / 0.005)
    assert [(a["severity"], a["long"], a["short"], a["factor"]) for a in completion["alerts"]] == [
        ("page", "1h", "5m", 14.4),
        ("page", "6h", "30m", 6.0),
        ("ticket", "1d", "2h", 3.0),
        ("ticket", "3d", "6h", 1.0),
    ]
    assert (latency["threshold"], latency["unit"], cost["threshold"], cost["unit"]) == (
        5.0,
        "s",
        0.15,
        "usd",
    )
    assert completion["threshold"] is None
    assert completion["unit"] is None
    assert [a["key"] for a in report["firing"]] == [a.key for a in run.monitor.firing]


def test_burn_rate_and_factors_follow_the_workbook() -> None:
    """Factor = budget share x period / long window, as the Workbook derives 14.4, 6, 3, 1."""
    assert burn_rate(0, 0, 0.995) is None
    assert burn_rate(95, 100, 0.995) == pytest.approx(10.0)
    shares = {("1h", "5m"): 0.02, ("6h", "30m"): 0.05, ("1d", "2h"): 0.10, ("3d", "6h"): 0.10}
    hours = {"1h": 1, "6h": 6, "1d": 24, "3d": 72}
    for rule in BURN_ALERTS:
        assert rule.factor == pytest.approx(shares[rule.long, rule.short] * 720 / hours[rule.long])
    with pytest.raises(ValueError, match="objective"):
        default_slos(completion=1.0)
    assert not math.isnan(default_slos()[2].objective)


def test_evaluation_waits_for_its_interval(sim_store: Store) -> None:
    """With a 60 s interval and a step every 36 s, the store is read at every other step."""
    run = make_run(sim_store, interval_seconds=60.0)
    reads: list[float] = []
    original = run.monitor.reader.snapshot

    def counting(*args: object, **kwargs: object) -> object:
        reads.append(run.seconds())
        return original(*args, **kwargs)  # type: ignore[arg-type]

    run.monitor.reader.snapshot = counting  # type: ignore[method-assign]
    for _ in range(5):
        run.step()
    assert reads == [36.0, 108.0, 180.0]


def test_the_period_counts_tasks_older_than_every_window(sim_run: SimRun) -> None:
    """A failure 10 days ago spends the 30-day budget but burns no window; 31 days ago, neither."""
    run = sim_run
    now = run.clock.now()
    for days, outcome in ((10, "failed"), (31, "failed"), (1, "ok")):
        run.store.tasks.record(
            Task("old", "seller", now - timedelta(days=days), outcome, duration_s=1.0)
        )
    completion = run.monitor.reader.statuses(now, monotonic=0.0)[0]
    assert (completion.total, completion.good) == (2, 1)
    assert completion.burn_rates["3d"] == 0.0
    assert completion.error_budget_remaining == pytest.approx(1 - 0.5 / 0.005)


def test_the_kept_older_part_leaves_no_gap_an_hour_later(sim_run: SimRun) -> None:
    """The period's older 27 days are read once an hour; tasks crossing the 3-day mark in
    between are still counted once, and a period shorter than 3 days is counted alone."""
    run = sim_run
    now = run.clock.now()
    for minutes in (3 * 24 * 60 - 10, 3 * 24 * 60 + 10, 10 * 24 * 60):
        run.store.tasks.record(
            Task("old", "seller", now - timedelta(minutes=minutes), "failed", duration_s=1.0)
        )
    reader = run.monitor.reader
    assert reader.statuses(now, monotonic=0.0)[0].total == 3
    later = now + timedelta(minutes=30)  # the first task is now past 3 days, the cache not
    assert reader.statuses(later, monotonic=1800.0)[0].total == 3
    short = make_run(run.store).monitor.reader
    short.period_days = 1
    assert short.statuses(now)[0].total == 0
