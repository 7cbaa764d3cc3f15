"""Page-on thresholds on a SimClock: each fires when its figure crosses, once, and resolves.

The burn-rate SLOs are left on but never burn here (steps are fast, cheap and succeed unless a
test says otherwise), so every alert seen is a page-on one.
"""

from __future__ import annotations

from bastion.events import EventKind
from bastion.store import Store
from bastion.telemetry.page_on import PageOnSettings, p95
from slo_sim import STEP_S, SimRun, make_run

OFF = {"cost_factor": None, "tool_calls_per_run": None, "latency_factor": None, "error_rate": None}


def _run(store: Store, **on: object) -> SimRun:
    return make_run(store, page_on=PageOnSettings(**{**OFF, **on}))  # type: ignore[arg-type]


def test_over_one_percent_failing_in_five_minutes_pages_until_the_failure_leaves(
    sim_store: Store,
) -> None:
    """At 100 steps an hour one failure is 1 in 8 of the 5 minutes' steps: it pages at once and
    resolves when it leaves the window, 9 steps later; the SLOs, with a long clean history, do
    not burn."""
    run = _run(sim_store, error_rate=0.01)
    run.history(7200)
    run.step()
    run.step("timeout")
    for _ in range(12):
        run.step()
    assert run.timeline() == [
        (2 * STEP_S, "firing", "page_on:error_rate"),
        (11 * STEP_S, "resolved", "page_on:error_rate"),
    ]
    fired = run.alerts[0][2]
    assert fired.name == "BastionStepErrorRateHigh"
    assert fired.value is not None
    assert fired.value > fired.threshold  # type: ignore[operator]


def test_a_failure_under_one_percent_of_the_window_does_not_page(sim_store: Store) -> None:
    """At a step a second, one failure is 1 in the 5 minutes' 300 steps: under 1 %, no page."""
    run = _run(sim_store, error_rate=0.01)
    run.history(299, every=1.0)
    run.step("failed", every=1.0)
    assert run.monitor.last is not None
    assert run.monitor.last.page_on is not None
    assert run.monitor.last.page_on.errors.counted == 300
    assert run.alerts == []


def test_tool_calls_per_run_over_thirty_page(sim_store: Store) -> None:
    """Four tool calls a step: the 8th step makes 32, over 30."""
    run = _run(sim_store, tool_calls_per_run=30)
    for _ in range(10):
        run.step(tool_calls=4)
    assert run.timeline() == [(8 * STEP_S, "firing", "page_on:run_tool_calls")]
    assert run.alerts[0][2].value == 32.0


def test_cost_per_run_over_twice_the_baseline_pages(sim_store: Store) -> None:
    """Five runs of the last week spent $0.08-0.12 (median $0.10); at $0.03 a step this run
    passes $0.20 on its 7th step. A run of 8 days ago is not in the baseline."""
    for i, cost in enumerate((0.08, 0.12, 0.10, 0.09, 0.11)):
        sim_store.tasks.record(_old_task(f"old-{i}", days=i + 1, cost_usd=cost))
    sim_store.tasks.record(_old_task("older", days=8, cost_usd=10.0))
    run = _run(sim_store, cost_factor=2.0)
    for _ in range(8):
        run.step(usd=0.03)
    assert run.timeline() == [(7 * STEP_S, "firing", "page_on:run_cost")]
    alert = run.alerts[0][2]
    assert alert.name == "BastionRunCostHigh"
    assert alert.threshold is not None
    assert round(alert.threshold, 6) == 0.2


def test_no_baseline_means_cost_and_latency_are_not_evaluated(sim_store: Store) -> None:
    """A first run has nothing to be twice of: however dear and slow, no page-on fires."""
    run = _run(sim_store, cost_factor=2.0, latency_factor=2.0)
    for _ in range(30):
        run.step(usd=0.1, elapsed_s=4.0)
    assert [key for _, _, key in run.timeline()] == []


def test_a_configured_baseline_needs_no_history(sim_store: Store) -> None:
    run = _run(sim_store, cost_factor=2.0, cost_baseline_usd=0.05)
    for _ in range(3):
        run.step(usd=0.04)
    assert run.timeline() == [(3 * STEP_S, "firing", "page_on:run_cost")]


def test_latency_p95_over_twice_the_baseline_pages_once_the_hour_holds_twenty_steps(
    sim_store: Store,
) -> None:
    """Other runs' steps took 1 s (P95 1 s); this run's take 2.5 s: over 2 s, judged from its
    20th step (a P95 of fewer is only the slowest step)."""
    run = _run(sim_store, latency_factor=2.0)
    run.history(100, run_id="yesterday")
    for _ in range(25):
        run.step(elapsed_s=2.5)
    assert run.timeline() == [(20 * STEP_S, "firing", "page_on:latency_p95")]
    assert run.alerts[0][2].name == "BastionStepLatencyP95High"


def test_the_halt_pages_by_reason_and_resolves_on_resume(sim_store: Store) -> None:
    """A drift halt raises the kill switch and the drift page, once for however many halted
    steps; a resume resolves both; a runaway halt then raises its own."""
    run = _run(sim_store)
    drift = {"reason": "position_drift", "who": "drift guard", "when": "t", "state": "halted"}
    run.journal.emit(EventKind.HALT_TRIPPED, drift)
    for _ in range(3):
        run.step("halted", halt=drift)
    run.journal.emit(EventKind.HALT_RESUMED, {"reason": "position_drift", "who": "me"})
    run.step()
    runaway = {**drift, "reason": "runaway_loop"}
    run.step("halted", halt=runaway)
    assert run.timeline() == [
        (0.0, "firing", "page_on:kill_switch"),
        (0.0, "firing", "page_on:position_drift"),
        (3 * STEP_S, "resolved", "page_on:kill_switch"),
        (3 * STEP_S, "resolved", "page_on:position_drift"),
        (5 * STEP_S, "firing", "page_on:kill_switch"),
        (5 * STEP_S, "firing", "page_on:runaway_loop"),
    ]
    names = {alert.key: alert.name for _, _, alert in run.alerts}
    assert names["page_on:runaway_loop"] == "BastionRunawayLoopHalt"
    assert names["page_on:kill_switch"] == "BastionKillSwitchActive"


def test_p95_is_nearest_rank_and_needs_twenty_values() -> None:
    assert p95([1.0] * 19) is None
    assert p95([float(n) for n in range(1, 21)]) == 19.0
    assert p95([float(n) for n in range(1, 101)]) == 95.0


def _old_task(run_id: str, *, days: int, cost_usd: float) -> object:
    from datetime import timedelta  # noqa: PLC0415

    from bastion.clock import SimClock  # noqa: PLC0415
    from bastion.store.tasks import Task  # noqa: PLC0415

    return Task(
        run_id,
        "seller",
        SimClock().now() - timedelta(days=days),
        "ok",
        duration_s=1.0,
        cost_usd=cost_usd,
    )
