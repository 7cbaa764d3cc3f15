"""An alert Bastion raises itself: the one value its evaluators emit and its notifiers deliver.

The SLO burn-rate evaluator and the page-on thresholds decide *that* something is wrong; the
webhook notifier decides *who hears of it and how often*. They meet on the journal: an
evaluator emits :attr:`~bastion.events.EventKind.ALERT_FIRING` with :meth:`Alert.to_payload`
when a condition starts and :attr:`~bastion.events.EventKind.ALERT_RESOLVED` when it clears,
and every sink (trace, store, notifier, console) reads the same payload back with
:meth:`Alert.from_payload`.

``key`` identifies the condition, not the notification: the same condition firing again while
it is already firing carries the same key, which is what lets a notifier deduplicate and send
one resolved message for it. Labels follow Alertmanager's vocabulary (``alertname``,
``severity``) so that an alert raised in-process and one received from Alertmanager read alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = ["Alert", "Severity"]


class Severity(StrEnum):
    """How urgently a person must act: the SRE workbook's page and ticket, plus info."""

    PAGE = "page"
    TICKET = "ticket"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Alert:
    """One alerting condition at one moment.

    ``name`` is the alert's name (``alertname``), ``summary`` one sentence for a person that
    says what is wrong, ``value`` the observed figure that crossed ``threshold`` (both
    optional), ``since`` when the condition began (aware UTC).
    """

    key: str
    name: str
    severity: Severity
    summary: str
    since: datetime
    labels: Mapping[str, str] = field(default_factory=dict)
    value: float | None = None
    threshold: float | None = None

    def to_payload(self) -> dict[str, Any]:
        """The journal payload: JSON-ready, the same keys for firing and resolved."""
        return {
            "key": self.key,
            "alertname": self.name,
            "severity": self.severity.value,
            "summary": self.summary,
            "since": self.since.isoformat(),
            "labels": dict(self.labels),
            "value": self.value,
            "threshold": self.threshold,
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Alert:
        """Read an alert back from :meth:`to_payload`'s shape."""
        return cls(
            key=str(payload["key"]),
            name=str(payload["alertname"]),
            severity=Severity(payload["severity"]),
            summary=str(payload["summary"]),
            since=datetime.fromisoformat(str(payload["since"])),
            labels={str(k): str(v) for k, v in dict(payload.get("labels") or {}).items()},
            value=None if payload.get("value") is None else float(payload["value"]),
            threshold=None if payload.get("threshold") is None else float(payload["threshold"]),
        )
