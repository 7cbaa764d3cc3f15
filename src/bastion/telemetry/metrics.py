"""Prometheus metrics: one registry per runtime, names per Prometheus conventions.

Each :class:`Metrics` owns its own ``CollectorRegistry`` instead of the process-global default,
so two runtimes (or two tests) in one process never collide, and ``/metrics`` serves exactly the
runtime it belongs to. Names carry the ``bastion_`` prefix and base units (seconds), counters end
in ``_total``.

The loop's instruments (steps, step duration, orders, equity) are not set by the loop: the
:class:`~bastion.telemetry.sink.MetricsSink` counts them from the loop's events.

Labels are bounded sets (a status, a reason, a configured dependency, a model, a currency); run
ids, order ids, instruments and model-written text belong in traces and logs, never in a label.
The Prometheus rules in ``deploy/prometheus/`` are written against these names: the latency SLO
reads the step histogram's 5 s bucket, which ``_STEP_BUCKETS`` must therefore keep.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["CONTENT_TYPE", "STEP_OUTCOMES", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

STEP_OUTCOMES = ("ok", "halted", "timeout", "failed")
"""The loop's step statuses (``bastion.runtime.loop.StepStatus``), each exported from the start."""

_LLM_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
_STEP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0)
"""Up to past the default step timeout (15 s) and the slowest LLM answers; 5.0 is the SLO's."""
_CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """The runtime's instruments. Components get this object injected; nothing is global."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.steps = Counter(
            "bastion_steps", "Loop steps completed, by outcome.", ["outcome"], registry=r
        )
        for outcome in STEP_OUTCOMES:
            # At 0 before the first step: a first failure is an increase the SLO's rate() sees.
            self.steps.labels(outcome=outcome)
        self.step_duration = Histogram(
            "bastion_step_duration_seconds",
            "Wall time of one loop step.",
            buckets=_STEP_BUCKETS,
            registry=r,
        )
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
        self.llm_latency = Histogram(
            "bastion_llm_latency_seconds",
            "Wall time of answered LLM requests, by model.",
            ["model"],
            buckets=_LLM_BUCKETS,
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

    def render(self) -> bytes:
        """The Prometheus text exposition of this registry."""
        return generate_latest(self.registry)
