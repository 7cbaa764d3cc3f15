"""Prometheus metrics: one registry per runtime, names per Prometheus conventions.

Each :class:`Metrics` owns its own ``CollectorRegistry`` instead of the process-global default,
so two runtimes (or two tests) in one process never collide, and ``/metrics`` serves exactly the
runtime it belongs to. Names carry the ``bastion_`` prefix and base units (seconds; money in
``_usd`` as the LLM bill is kept, account figures in the account's coin), counters end in
``_total``.

The loop's instruments (steps, orders, tool calls, trading state, equity, P&L, drift, cost
and tool calls per run, cycles, phases and gates) are not set by the loop: the
:class:`~bastion.telemetry.sink.MetricsSink` counts them from the journal's events, and its
docstring maps each event to its instrument. The resilience layer (calls, retries, breakers),
the halt (halts, kill switch), the budget and the LLM chain (tokens, cost, request duration)
set theirs where the figure is known; System Health is read from the checker's cache at each
scrape (:meth:`Metrics.watch_health`).

Labels are bounded sets: an outcome or a state from a fixed list, a halt reason, a configured
dependency or health check, a tool the agent's toolbox declares, a model, a currency. Run ids,
order ids, instruments and model-written text belong in traces and logs, never in a label. The
Prometheus rules in ``deploy/prometheus/`` and the dashboard in ``deploy/grafana/`` are written
against these names: the latency SLO reads the step histogram's 5 s bucket, which
``_STEP_BUCKETS`` must therefore keep.

The research workflow's instruments (cycles, phases, quality gates) are defined here before the
workflow exists, each exported at 0, so its dashboard panels and rules need no second release.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = [
    "CONTENT_TYPE",
    "CYCLE_OUTCOMES",
    "RESEARCH_PHASES",
    "STEP_OUTCOMES",
    "TRADING_STATES",
    "HealthSource",
    "Metrics",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

STEP_OUTCOMES = ("ok", "halted", "timeout", "failed")
"""The loop's step statuses (``bastion.runtime.loop.StepStatus``), each exported from the start."""

CYCLE_OUTCOMES = ("completed", "failed", "cancelled")
"""How a research cycle ends (``cycle_finished`` events), each exported from the start."""

RESEARCH_PHASES = ("design", "train", "backtest", "assess")
"""The research workflow's phases (``phase_finished`` events), each exported from the start."""

TRADING_STATES = ("active", "reducing", "halted")
"""``bastion.status.TradingState``'s values: one ``bastion_trading_state`` series each."""

GENAI_DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
"""OpenTelemetry GenAI's ``gen_ai.client.operation.duration`` buckets (semconv v1.41)."""
_STEP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0)
"""Up to past the default step timeout (15 s) and the slowest LLM answers; 5.0 is the SLO's."""
_CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_CYCLE_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0)
"""A research cycle or phase: seconds (a quick assessment) to hours (a training run)."""
_TOOL_CALLS_BUCKETS = (0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 50.0, 100.0, 200.0, 500.0)
"""30 is the page-on threshold of tool calls per run."""
_RUN_COST_BUCKETS = (0.0, 0.001, 0.005, 0.01, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""USD; 0.15 is the cost SLO's threshold."""

HealthSource = Callable[[], Iterable[tuple[str, int]]]
"""The latest result of each health check as (check name, rank: 0 OK, 1 WARN, 2 FAIL)."""


class _HealthCollector(Collector):
    """``bastion_health_status{check}``, read from the health checker's cache at each scrape.

    Health runs are not journal events (the checker caches and stores them), and a reading
    taken at scrape time is as fresh as the cache, so nothing has to push it.
    """

    _NAME = "bastion_health_status"
    _HELP = "Latest result of each configured health check: 0 OK, 1 WARN, 2 FAIL."

    def __init__(self) -> None:
        self.source: HealthSource | None = None

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(self._NAME, self._HELP, labels=["check"])

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(self._NAME, self._HELP, labels=["check"])
        if self.source is not None:
            for check, rank in self.source():
                family.add_metric([check], rank)
        yield family


class Metrics:
    """The runtime's instruments. Components get this object injected; nothing is global."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.steps = Counter(
            "bastion_steps", "Loop steps completed, by outcome.", ["outcome"], registry=r
        )
        self.step_duration = Histogram(
            "bastion_step_duration_seconds",
            "Wall time of one loop step, by outcome.",
            ["outcome"],
            buckets=_STEP_BUCKETS,
            registry=r,
        )
        for outcome in STEP_OUTCOMES:
            # At 0 before the first step: a first failure is an increase the SLO's rate() sees.
            self.steps.labels(outcome=outcome)
            self.step_duration.labels(outcome=outcome)
        self.orders = Counter(
            "bastion_orders",
            "Order intents by what became of them (sent, filled, rejected, failed, dry_run).",
            ["outcome"],
            registry=r,
        )
        self.halts = Counter(
            "bastion_halts", "Times the halt path was tripped, by reason.", ["reason"], registry=r
        )
        self.kill_switch_active = Gauge(
            "bastion_kill_switch_active", "1 while the kill switch is active.", registry=r
        )
        self.external_calls = Counter(
            "bastion_external_calls",
            "Calls through resilience.call, by dependency, layer and outcome code.",
            ["dependency", "layer", "outcome"],
            registry=r,
        )
        self.external_call_duration = Histogram(
            "bastion_external_call_duration_seconds",
            "Duration of calls through resilience.call.",
            ["dependency", "layer"],
            buckets=_CALL_BUCKETS,
            registry=r,
        )
        self.call_retries = Counter(
            "bastion_call_retries",
            "Retries made by resilience.call, by dependency, layer and the code retried.",
            ["dependency", "layer", "code"],
            registry=r,
        )
        self.breaker_state = Gauge(
            "bastion_breaker_state",
            "Circuit breaker state per dependency: 0 closed, 1 half-open, 2 open.",
            ["dependency", "layer"],
            registry=r,
        )
        self.llm_tokens = Counter(
            "bastion_llm_tokens",
            "LLM tokens billed, by the model that answered and type (input, output).",
            ["model", "type"],
            registry=r,
        )
        self.llm_cost = Counter(
            "bastion_llm_cost_usd", "USD spent on LLM calls, by model.", ["model"], registry=r
        )
        # The attribute keeps the name the LLM chain observes it by.
        self.llm_latency = Histogram(
            "bastion_llm_request_duration_seconds",
            "Wall time of answered LLM requests, by model (OpenTelemetry GenAI buckets).",
            ["model"],
            buckets=GENAI_DURATION_BUCKETS,
            registry=r,
        )
        self.tool_refusals = Counter(
            "bastion_tool_refusals",
            "Tool calls the allowlist refused (each a tool_refused security event), by reason: "
            "unknown, not_declared or not_allowed.",
            ["reason"],
            registry=r,
        )
        self.llm_answers = Counter(
            "bastion_llm_answers",
            "LLM questions by the fallback tier that answered: primary, fallback, cache or "
            "escalated.",
            ["tier"],
            registry=r,
        )
        self.budget_remaining = Gauge(
            "bastion_budget_remaining",
            "Budget left by scope (daily, monthly, fleet_daily, run, workflow) and unit "
            "(tokens, usd); absent for unlimited scopes.",
            ["scope", "unit"],
            registry=r,
        )
        self.equity = Gauge(
            "bastion_account_equity", "Account equity in coin.", ["currency"], registry=r
        )
        self._issue12(r)

    def _issue12(self, r: CollectorRegistry) -> None:
        """Issue 12's instruments: what every running agent should emit, beyond the above."""
        self.trading_state = Gauge(
            "bastion_trading_state",
            "1 for the trading state the runtime is in (active, reducing, halted), 0 for the "
            "others; all 0 before the first step.",
            ["state"],
            registry=r,
        )
        for state in TRADING_STATES:
            self.trading_state.labels(state=state)
        self.dependency_errors = Counter(
            "bastion_dependency_errors",
            "Calls that failed for good (retries spent or not retryable), by dependency, layer "
            "and error code.",
            ["dependency", "layer", "code"],
            registry=r,
        )
        self.tool_calls = Counter(
            "bastion_tool_calls",
            "Tool calls the toolbox ran, by tool (one the agent declares) and outcome (ok or "
            "the error code).",
            ["tool", "outcome"],
            registry=r,
        )
        self.run_tool_calls = Gauge(
            "bastion_run_tool_calls",
            "Tool calls (refused ones included) the current run made so far.",
            registry=r,
        )
        self.tool_calls_per_run = Histogram(
            "bastion_tool_calls_per_run",
            "Tool calls (refused ones included) each finished run made.",
            buckets=_TOOL_CALLS_BUCKETS,
            registry=r,
        )
        self.run_cost = Gauge(
            "bastion_run_cost_usd", "USD the current run's LLM answers cost so far.", registry=r
        )
        self.cost_per_run = Histogram(
            "bastion_cost_per_run_usd",
            "USD the LLM answers of each finished run cost.",
            buckets=_RUN_COST_BUCKETS,
            registry=r,
        )
        self.daily_pnl = Gauge(
            "bastion_account_daily_pnl",
            "Equity change since this process's first observation of the UTC day, in coin.",
            ["currency"],
            registry=r,
        )
        self.position_drift = Gauge(
            "bastion_position_drift_coin",
            "Largest gap between the positions the exchange reports and those our own fills "
            "explain, at the last drift check, in coin.",
            registry=r,
        )
        self.cycles = Counter(
            "bastion_cycles",
            "Research cycles finished, by outcome (completed, failed, cancelled).",
            ["outcome"],
            registry=r,
        )
        self.cycle_duration = Histogram(
            "bastion_cycle_duration_seconds",
            "Wall time of one research cycle, by outcome.",
            ["outcome"],
            buckets=_CYCLE_BUCKETS,
            registry=r,
        )
        for outcome in CYCLE_OUTCOMES:
            self.cycles.labels(outcome=outcome)
            self.cycle_duration.labels(outcome=outcome)
        self.phase_duration = Histogram(
            "bastion_phase_duration_seconds",
            "Wall time of one phase of a research cycle, by phase.",
            ["phase"],
            buckets=_CYCLE_BUCKETS,
            registry=r,
        )
        for phase in RESEARCH_PHASES:
            self.phase_duration.labels(phase=phase)
        self.quality_gates = Counter(
            "bastion_quality_gates",
            "Quality-gate evaluations, by gate (named in the workflow's code) and result "
            "(pass, fail).",
            ["gate", "result"],
            registry=r,
        )
        self.step_cost = Histogram(
            "bastion_step_cost_usd",
            'USD of LLM calls one loop step made (the cost SLO\'s le="0.15" bucket).',
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        # Alerts out (bastion.notify): one series per configured target, named webhook:<n>.
        self.alert_notifications = Counter(
            "bastion_alert_notifications",
            "Alert notifications by webhook target and outcome: sent, failed (will be retried), "
            "rejected (the target refused it: not retried) or dropped (queue full, or unsent at "
            "shutdown).",
            ["target", "outcome"],
            registry=r,
        )
        self.alert_queue_depth = Gauge(
            "bastion_alert_queue_depth",
            "Alert notifications waiting for delivery, by webhook target.",
            ["target"],
            registry=r,
        )
        self._health = _HealthCollector()
        r.register(self._health)

    def watch_health(self, source: HealthSource) -> None:
        """Export ``bastion_health_status{check}`` from ``source`` at every scrape."""
        self._health.source = source

    def render(self) -> bytes:
        """The Prometheus text exposition of this registry."""
        return generate_latest(self.registry)
