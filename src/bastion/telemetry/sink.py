"""The metrics sink: the loop's events counted into Prometheus instruments.

Subscribed to a run's :class:`~bastion.events.Journal`, it keeps the loop free of metric
calls: the loop says what happened and this sink decides what it counts.

===================  =========================================================================
event                instrument
===================  =========================================================================
step_completed       ``bastion_steps_total{outcome=status}``, ``bastion_step_duration_seconds``
                     (``elapsed_s``); a halted step's ``book`` sets the equity gauge
observation          ``bastion_account_equity{currency}``
risk_verdict         ``bastion_orders_total{outcome="risk_rejected"}`` unless approved;
                     ``outcome="awaiting_approval"`` for needs_approval
order_sent           ``outcome="sent"`` (not a late confirmation: that send counted as failed)
order_filled         ``outcome="filled"``
order_rejected       ``outcome="rejected"`` when the send was refused (``stage`` send)
order_failed         ``outcome="failed"`` when the send failed
order_skipped        ``outcome="halted"`` (by ``skipped``) or ``"dry_run"`` at the send
===================  =========================================================================

Orders the venue cancelled or rejected later (``stage`` reconcile) are traced but not counted:
the counter counts intents by what the send made of them. The payload keys read here are the
loop's (:mod:`bastion.runtime.payloads`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bastion.events import Event, EventKind
from bastion.telemetry.metrics import Metrics

__all__ = ["MetricsSink"]

Payload = Mapping[str, Any]


class MetricsSink:
    """Count the loop's events into ``metrics``."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._handlers: dict[EventKind, Callable[[Payload], None]] = {
            EventKind.STEP_COMPLETED: self._step,
            EventKind.OBSERVATION: self._equity,
            EventKind.RISK_VERDICT: self._verdict,
            EventKind.ORDER_SENT: self._sent,
            EventKind.ORDER_FILLED: lambda p: self._order("filled"),
            EventKind.ORDER_REJECTED: lambda p: self._at_send(p, "rejected"),
            EventKind.ORDER_FAILED: lambda p: self._at_send(p, "failed"),
            EventKind.ORDER_SKIPPED: self._skipped,
            EventKind.TOOL_REFUSED: self._refused,
        }

    def __call__(self, event: Event) -> None:
        handler = self._handlers.get(event.kind)
        if handler is not None:
            handler(event.payload)

    def _refused(self, p: Payload) -> None:
        # By reason only: the tool name is model-written text, unbounded as a label.
        self.metrics.tool_refusals.labels(reason=p["reason"]).inc()

    def _step(self, p: Payload) -> None:
        self.metrics.steps.labels(outcome=p["status"]).inc()
        self.metrics.step_duration.observe(p["elapsed_s"])
        if "book" in p:
            self._equity(p["book"])

    def _equity(self, p: Payload) -> None:
        self.metrics.equity.labels(currency=p["currency"]).set(p["equity"])

    def _verdict(self, p: Payload) -> None:
        if p["status"] == "needs_approval":
            self._order("awaiting_approval")
        elif p["status"] != "approved":
            self._order("risk_rejected")

    def _sent(self, p: Payload) -> None:
        if not p.get("confirmed_late"):
            self._order("sent")

    def _at_send(self, p: Payload, outcome: str) -> None:
        if p.get("stage") == "send":
            self._order(outcome)

    def _skipped(self, p: Payload) -> None:
        if p.get("stage") == "send" and p.get("reason") in {"halted", "dry_run"}:
            self._order(p["reason"], p.get("skipped", 1))

    def _order(self, outcome: str, n: float = 1) -> None:
        self.metrics.orders.labels(outcome=outcome).inc(n)
