"""A notification: one thing a person should hear about, read off the run's journal.

Bastion's alerting conditions arrive on the journal in several shapes: an
:class:`~bastion.telemetry.alert.Alert` from the SLO and page-on evaluators, a halt tripped or
resumed, a budget crossing its alert ratio, a circuit breaker opening or closing, an approval
waiting for a person. :func:`notification_for` turns each into one :class:`Notification` with
the fields every webhook body carries, so the dispatcher and the bodies know one shape only.

Halts and breakers are *conditions*: they fire and later resolve, under one ``key``
(``halt``, ``breaker:<name>``), exactly like an evaluator's alert. A halt raised in this process
fires on ``halt_tripped``; one raised elsewhere (``bastion kill``, the console of another
process) on the ``halt_enforced`` that the run records when it first enforces it, which a halt
of this process's own repeats (deduplicated). It resolves on ``halt_resumed`` or, for a resume
made elsewhere, on ``trading_resumed``, when the loop trades again. A budget crossing and an
approval request are *events*: sent once, never resolved (``tracked`` is False).

The payloads are read as the plain dicts the journal carries (``guard/halt.py``,
``guard/budget.py``, ``resilience/breaker.py``, ``runner.py``), not through the classes that
build them: this package sits on the adapters floor, below the guard, and a journal payload is
data by design. Breakers of the ``webhook`` layer are the notifier's own and are not notified:
telling a target that it is down is the status report's and the metrics' job.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from bastion.events import Event, EventKind
from bastion.telemetry.alert import Alert, Severity

__all__ = ["Notification", "Status", "notification_for"]


class Status(StrEnum):
    """Whether the condition holds (firing) or has cleared (resolved)."""

    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Notification:
    """One alert as it is sent: an evaluator's :class:`Alert` plus its status.

    ``since`` is when the condition began; ``resolved_at`` when it cleared (resolved only);
    ``tracked`` says whether a resolve is expected (a condition) or not (a one-off event);
    ``repeat`` marks a re-send of an alert still firing after the repeat interval.
    """

    key: str
    name: str
    severity: Severity
    status: Status
    summary: str
    since: datetime
    labels: Mapping[str, str] = field(default_factory=dict)
    value: float | None = None
    threshold: float | None = None
    resolved_at: datetime | None = None
    tracked: bool = True
    repeat: bool = False

    @classmethod
    def of(cls, alert: Alert, status: Status, *, at: datetime) -> Notification:
        """``alert`` as a notification; a resolved one cleared ``at``."""
        return cls(
            key=alert.key,
            name=alert.name,
            severity=alert.severity,
            status=status,
            summary=alert.summary,
            since=alert.since,
            labels={"alertname": alert.name, "severity": alert.severity.value, **alert.labels},
            value=alert.value,
            threshold=alert.threshold,
            resolved_at=at if status is Status.RESOLVED else None,
        )

    def repeated(self) -> Notification:
        """The same firing alert, sent again because it still fires."""
        return replace(self, repeat=True)

    def to_dict(self) -> dict[str, Any]:
        """The alert in the generic JSON body (documented in the README)."""
        return {
            "key": self.key,
            "name": self.name,
            "severity": self.severity.value,
            "status": self.status.value,
            "summary": self.summary,
            "labels": dict(self.labels),
            "since": self.since.isoformat(),
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            "value": self.value,
            "threshold": self.threshold,
        }


Reader = Callable[[Mapping[str, Any], datetime], "Notification | None"]


def _when(payload: Mapping[str, Any], name: str, default: datetime) -> datetime:
    raw = payload.get(name)
    if isinstance(raw, str):
        try:
            return datetime.fromisoformat(raw)
        except ValueError:
            return default
    return default


def _text(value: Any) -> str:
    return "" if value is None else str(value)


RESTATES_HALT = frozenset(
    {"BastionKillSwitchActive", "BastionPositionDriftHalt", "BastionRunawayLoopHalt"}
)
"""The page-on alerts that restate a halt (``telemetry/page_on.py``'s ``halt_alerts``). The
halt itself is already sent, under ``halt``, with who raised it, its reason and its scope, also
when another process raised it: sending these too would page twice for one halt. It is the
in-process form of an Alertmanager inhibit rule (``deploy/alertmanager`` inhibits the kill
switch's page under a drift or runaway halt's); the console and ``/api/slo`` still show them."""


def _firing_alert(payload: Mapping[str, Any], now: datetime) -> Notification | None:
    alert = Alert.from_payload(payload)
    return None if alert.name in RESTATES_HALT else Notification.of(alert, Status.FIRING, at=now)


def _resolved_alert(payload: Mapping[str, Any], now: datetime) -> Notification | None:
    alert = Alert.from_payload(payload)
    return None if alert.name in RESTATES_HALT else Notification.of(alert, Status.RESOLVED, at=now)


def _halt_key(payload: Mapping[str, Any]) -> str:
    return "halt:fleet" if payload.get("scope") == "fleet" else "halt"


def _halt_tripped(payload: Mapping[str, Any], now: datetime) -> Notification:
    state = _text(payload.get("state") or "halted")
    reason = _text(payload.get("reason"))
    scope = "fleet" if payload.get("scope") == "fleet" else "agent"
    alert = Alert(
        key=_halt_key(payload),
        name="BastionHalted",
        severity=Severity.PAGE,
        summary=f"Trading {state} ({scope}): {reason}, by {_text(payload.get('who'))}",
        since=_when(payload, "when", now),
        labels={"reason": reason, "state": state, "scope": scope},
    )
    return Notification.of(alert, Status.FIRING, at=now)


def _halt_resumed(payload: Mapping[str, Any], now: datetime) -> Notification:
    reason = _text(payload.get("reason"))
    scope = "fleet" if payload.get("scope") == "fleet" else "agent"
    alert = Alert(
        key=_halt_key(payload),
        name="BastionHalted",
        severity=Severity.PAGE,
        summary=f"Trading resumed ({scope}) by {_text(payload.get('who'))}: "
        f"{_text(payload.get('why'))} (was halted: {reason})",
        since=now,
        labels={"reason": reason, "scope": scope},
    )
    return Notification.of(alert, Status.RESOLVED, at=now)


def _trading_resumed(payload: Mapping[str, Any], now: datetime) -> Notification:
    alert = Alert(
        key="halt",
        name="BastionHalted",
        severity=Severity.PAGE,
        summary=f"Trading resumed at step {_text(payload.get('step'))}",
        since=now,
        labels={"scope": "agent"},
    )
    return Notification.of(alert, Status.RESOLVED, at=now)


def _budget(payload: Mapping[str, Any], now: datetime) -> Notification:
    scope, unit = _text(payload.get("scope")), _text(payload.get("unit"))
    used, limit = float(payload.get("used") or 0), float(payload.get("limit") or 0)
    ratio = float(payload.get("ratio") or 0)
    label = _text(payload.get("label"))
    alert = Alert(
        key=f"budget:{scope}:{_text(payload.get('period'))}:{label}:{unit}:{ratio:g}",
        name="BastionBudgetAlert",
        severity=Severity.TICKET,
        summary=f"{scope} {unit} budget {label} past {ratio:.0%}: {used:,.6g} of {limit:,.6g}",
        since=now,
        labels={"scope": scope, "unit": unit},
        value=used / limit if limit else None,
        threshold=ratio,
    )
    return replace(Notification.of(alert, Status.FIRING, at=now), tracked=False)


def _breaker(payload: Mapping[str, Any], now: datetime) -> Notification | None:
    layer, state = _text(payload.get("layer")), _text(payload.get("state"))
    if layer == "webhook" or state not in ("open", "closed"):
        return None
    name = _text(payload.get("name"))
    at = payload.get("at")
    since = datetime.fromtimestamp(float(at), tz=now.tzinfo) if at is not None else now
    opened = state == "open"
    alert = Alert(
        key=f"breaker:{name}",
        name="BastionBreakerOpen",
        severity=Severity.TICKET,
        summary=f"Circuit breaker {name} ({layer}) "
        + (f"opened: {_text(payload.get('reason'))}" if opened else "closed again"),
        since=since if opened else now,
        labels={"dependency": name, "layer": layer},
    )
    return Notification.of(alert, Status.FIRING if opened else Status.RESOLVED, at=now)


def _approval(payload: Mapping[str, Any], now: datetime) -> Notification:
    approval_id, kind = _text(payload.get("approval_id")), _text(payload.get("kind"))
    alert = Alert(
        key=f"approval:{approval_id}",
        name="BastionApprovalRequested",
        severity=Severity.INFO,
        summary=f"Approval {approval_id} waits for a person ({kind}): "
        f"{_text(payload.get('reason'))}",
        since=now,
        labels={"kind": kind, "approval_id": approval_id},
    )
    return replace(Notification.of(alert, Status.FIRING, at=now), tracked=False)


_READERS: dict[EventKind, Reader] = {
    EventKind.ALERT_FIRING: _firing_alert,
    EventKind.ALERT_RESOLVED: _resolved_alert,
    EventKind.HALT_TRIPPED: _halt_tripped,
    EventKind.HALT_ENFORCED: _halt_tripped,
    EventKind.HALT_RESUMED: _halt_resumed,
    EventKind.TRADING_RESUMED: _trading_resumed,
    EventKind.BUDGET_ALERT: _budget,
    EventKind.BREAKER_STATE_CHANGED: _breaker,
    EventKind.APPROVAL_REQUESTED: _approval,
}


def notification_for(event: Event, now: datetime) -> Notification | None:
    """The notification ``event`` calls for, or None (most events call for none).

    A payload that cannot be read raises (``KeyError``, ``ValueError``): the notifier reports
    it as a bad event rather than sending half an alert.
    """
    reader = _READERS.get(event.kind)
    return None if reader is None else reader(event.payload, now)
