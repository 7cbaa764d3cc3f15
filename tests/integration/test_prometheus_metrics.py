"""`promtool check metrics` on the console's real /metrics, every metric family in it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bastion.agent import Decision
from bastion.agents.scripted import ScriptedAgent
from bastion.api.app import create_app
from bastion.clock import SimClock
from bastion.events import Event, EventKind
from bastion.guard.halt import Halt
from bastion.runner import Runner
from bastion.telemetry.metrics import Metrics
from bastion.telemetry.sink import MetricsSink
from prometheus_tools import run

UNBOUNDED_LABELS = {"run_id", "order_id", "decision_id", "trace_id", "label", "instrument"}
"""Label names that would grow a series per run or order (``tool`` is bounded: only a tool the
toolbox offered gets a series, a refused name is counted by reason)."""


def _exercise(metrics: Metrics) -> None:
    """Every instrument once, through the loop's events where the loop feeds it."""
    sink = MetricsSink(metrics)
    for kind, payload in [
        (EventKind.RUN_STARTED, {}),
        (EventKind.STEP_COMPLETED, {"step": 1, "status": "ok", "elapsed_s": 0.4, "halt": None}),
        (EventKind.STEP_COMPLETED, {"step": 2, "status": "failed", "elapsed_s": 7.0}),
        (EventKind.STEP_COMPLETED, {"step": 3, "status": "ok", "elapsed_s": 1, "drift_coin": 0}),
        (EventKind.OBSERVATION, {"currency": "BTC", "equity": 10.5, "time_ms": 1_800_000_000}),
        (EventKind.RISK_VERDICT, {"status": "rejected"}),
        (EventKind.ORDER_SENT, {}),
        (EventKind.ORDER_FILLED, {}),
        (EventKind.TOOL_CALL, {"tool": "ticker", "content": "{}"}),
        (EventKind.TOOL_REFUSED, {"reason": "not_allowed"}),
        (EventKind.LLM_CALL, {"model": "gpt-4o-mini", "usd": 0.0021}),
        (EventKind.CALL_FAILED, {"kind": "timeout", "dependency": "deribit", "layer": "exchange"}),
        (EventKind.RUN_FINISHED, {"status": "completed"}),
        (EventKind.CYCLE_FINISHED, {"outcome": "completed", "elapsed_s": 120.0}),
        (EventKind.PHASE_FINISHED, {"phase": "backtest", "elapsed_s": 30.0}),
        (EventKind.GATE_EVALUATED, {"gate": "sharpe", "passed": True}),
    ]:
        sink(Event(kind, payload))
    metrics.external_calls.labels("deribit", "exchange", "ok").inc()
    metrics.external_call_duration.labels("deribit", "exchange").observe(0.12)
    metrics.call_retries.labels("deribit", "exchange", "timeout").inc()
    metrics.breaker_state.labels(dependency="deribit", layer="exchange").set(0)
    metrics.llm_tokens.labels(model="gpt-4o-mini", type="input").inc(1200)
    metrics.llm_cost.labels(model="gpt-4o-mini").inc(0.0021)
    metrics.llm_latency.labels(model="gpt-4o-mini").observe(1.8)
    metrics.llm_answers.labels(tier="primary").inc()
    metrics.budget_remaining.labels(scope="daily", unit="usd").set(4.5)
    metrics.watch_health(lambda: [("exchange_public", 0), ("llm", 1)])
    metrics.alert_notifications.labels(target="webhook:0", outcome="sent").inc()
    metrics.alert_queue_depth.labels(target="webhook:0").set(0)


async def _scrape(tmp_path: Path) -> bytes:
    metrics = Metrics()
    halt = Halt(flag_path=tmp_path / "kill_switch.flag", clock=SimClock(), metrics=metrics)
    await halt.trip("daily_loss", who="test")  # bastion_halts_total, bastion_kill_switch_active
    _exercise(metrics)
    app = create_app(status=dict, halt=halt, metrics=metrics, token="t")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    return response.content


async def test_promtool_finds_nothing_to_lint_in_the_scraped_metrics(tmp_path: Path) -> None:
    """Names, units, _total and help pass promlint: exit 0 and not a line of output."""
    done = run("promtool", "check", "metrics", stdin=await _scrape(tmp_path))
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


async def test_every_metric_family_is_in_the_scrape(tmp_path: Path) -> None:
    """The lint saw all of them: each family the registry defines has a sample (bar _created)."""
    families = {
        f.name: f for f in text_string_to_metric_families((await _scrape(tmp_path)).decode())
    }
    defined = {f.name for f in Metrics().registry.collect()}
    empty = {
        name
        for name in defined
        if not any(not s.name.endswith("_created") for s in families[name].samples)
    }
    assert defined <= families.keys()
    assert empty == set(), "exercise these in _exercise so promtool sees them"


async def test_no_label_is_unbounded(tmp_path: Path) -> None:
    """No run id, order id, instrument or model text as a label: IDs belong in traces."""
    families = text_string_to_metric_families((await _scrape(tmp_path)).decode())
    names = {label for f in families for s in f.samples for label in s.labels}
    assert names & UNBOUNDED_LABELS == set()


async def test_the_step_histogram_has_the_latency_slo_bucket(tmp_path: Path) -> None:
    """deploy/prometheus reads le="5.0" for the 5 s latency SLO: the bucket must exist."""
    families = text_string_to_metric_families((await _scrape(tmp_path)).decode())
    (steps,) = (f for f in families if f.name == "bastion_step_duration_seconds")
    bounds = {s.labels["le"] for s in steps.samples if s.name.endswith("_bucket")}
    assert "5.0" in bounds


def test_promtool_does_report_a_badly_named_metric() -> None:
    """The check above can fail: a counter without _total is linted and exits 3."""
    bad = b"# HELP bastion_steps Steps.\n# TYPE bastion_steps counter\nbastion_steps 1\n"
    done = run("promtool", "check", "metrics", stdin=bad)
    assert done.returncode == 3
    assert 'counter metrics should have "_total" suffix' in done.stdout + done.stderr


async def test_a_real_runs_scraped_metrics_pass_promtool_and_show_the_run(
    runner_factory: Callable[..., Runner],
) -> None:
    """A paper run with its console: /metrics over HTTP lints clean and has the run in it."""
    runner = runner_factory(ScriptedAgent(lambda o, c: Decision()), console=True)
    await runner.__aenter__()
    await runner.run(max_steps=3)
    assert runner.console_url is not None
    base = runner.console_url.split("/?token=")[0]
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    done = run("promtool", "check", "metrics", stdin=response.content)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(response.text)
        for s in f.samples
    }
    assert samples["bastion_steps_total", (("outcome", "ok"),)] == 3
    assert samples["bastion_step_duration_seconds_count", (("outcome", "ok"),)] == 3
    assert samples["bastion_trading_state", (("state", "active"),)] == 1
    assert samples["bastion_tool_calls_per_run_count", ()] == 1
    assert samples["bastion_account_daily_pnl", (("currency", "BTC"),)] == 0
    health = {dict(k[1])["check"]: v for k, v in samples.items() if k[0] == "bastion_health_status"}
    assert health.get("exchange_public") == 0, health  # the start-up checks, read at the scrape
