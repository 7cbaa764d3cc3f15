"""The bodies a webhook receives: Bastion's generic JSON and a Slack-compatible message.

**Generic JSON** (``alert_webhook_urls``), one POST per group, ``Content-Type:
application/json``::

    {"version": "1", "source": "bastion", "run_id": "...", "agent": "options_seller",
     "status": "firing" | "resolved",          # firing while any alert in it fires
     "firing": 1, "resolved": 1, "truncated": 0,
     "alerts": [{"key": "halt", "name": "BastionHalted", "severity": "page",
                 "status": "firing", "summary": "Trading halted (agent): ...",
                 "labels": {"alertname": "BastionHalted", "severity": "page", ...},
                 "since": "<iso8601>", "resolved_at": null | "<iso8601>",
                 "value": null | 1.2, "threshold": null | 1.0, "repeat": false}]}

Alerts are in arrival order; at most :data:`MAX_ALERTS` per message (the rest are counted in
``truncated`` and follow in the next message, like Alertmanager's ``max_alerts``).

**Slack** (``alert_slack_webhook_urls``): ``text`` (the notification line Slack shows, and what
clients without blocks read) and ``blocks``: a header, then one ``mrkdwn`` section per alert.
Every piece of text that did not come from Bastion's own code (summaries, label values, names:
an alert's summary may quote an LLM or an exchange) is escaped as Slack asks: ``&``, ``<`` and
``>`` become ``&amp;``, ``&lt;`` and ``&gt;``, so a summary cannot ping ``<!channel>`` or forge a
link. Slack allows 50 blocks and 3,000 characters per section; both are respected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bastion.notify.notification import Notification, Status

__all__ = ["MAX_ALERTS", "Context", "generic_body", "slack_body", "slack_escape"]

MAX_ALERTS = 20
"""Alerts per message: Slack's 50-block limit with room for the header, in both formats."""
_SECTION_CHARS = 3000
_HEADER_CHARS = 150
_ICONS = {"page": ":rotating_light:", "ticket": ":warning:", "info": ":information_source:"}


@dataclass(frozen=True, slots=True)
class Context:
    """Which run the alerts come from."""

    run_id: str | None = None
    agent: str | None = None


def _status(alerts: Sequence[Notification]) -> Status:
    firing = any(a.status is Status.FIRING for a in alerts)
    return Status.FIRING if firing else Status.RESOLVED


def generic_body(
    alerts: Sequence[Notification], context: Context, *, truncated: int = 0
) -> dict[str, Any]:
    """The generic JSON body of one group (see the module docstring)."""
    return {
        "version": "1",
        "source": "bastion",
        "run_id": context.run_id,
        "agent": context.agent,
        "status": _status(alerts).value,
        "firing": sum(a.status is Status.FIRING for a in alerts),
        "resolved": sum(a.status is Status.RESOLVED for a in alerts),
        "truncated": truncated,
        "alerts": [{**a.to_dict(), "repeat": a.repeat} for a in alerts],
    }


def slack_escape(text: str) -> str:
    """``text`` safe inside a Slack message: the three characters Slack reserves, escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _line(alert: Notification) -> str:
    state = "RESOLVED" if alert.status is Status.RESOLVED else alert.severity.value.upper()
    return f"[{state}] {alert.name}: {alert.summary}"


def _section(alert: Notification) -> dict[str, Any]:
    icon = ":white_check_mark:" if alert.status is Status.RESOLVED else _ICONS[alert.severity]
    state = "resolved" if alert.status is Status.RESOLVED else alert.severity.value
    lines = [
        f"{icon} *{slack_escape(alert.name)}* ({state}{', repeated' if alert.repeat else ''})",
        slack_escape(alert.summary),
    ]
    since = f"since {alert.since.isoformat()}"
    if alert.resolved_at is not None:
        since += f", resolved {alert.resolved_at.isoformat()}"
    lines.append(since)
    if alert.value is not None or alert.threshold is not None:
        lines.append(f"value {alert.value!s} (threshold {alert.threshold!s})")
    labels = {k: v for k, v in alert.labels.items() if k not in ("alertname", "severity")}
    if labels:
        shown = ", ".join(f"{slack_escape(k)}={slack_escape(v)}" for k, v in labels.items())
        lines.append(f"labels: {shown}")
    return {
        "type": "section",
        "text": {"type": "mrkdwn", "text": _clip("\n".join(lines), _SECTION_CHARS)},
    }


def slack_body(
    alerts: Sequence[Notification], context: Context, *, truncated: int = 0
) -> dict[str, Any]:
    """A Slack incoming-webhook message for one group (see the module docstring)."""
    firing = sum(a.status is Status.FIRING for a in alerts)
    resolved = len(alerts) - firing
    who = f" — {context.agent}" if context.agent else ""
    title = f"Bastion{who}: {firing} firing, {resolved} resolved"
    text = "\n".join([title, *(_line(a) for a in alerts)])
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(title, _HEADER_CHARS)}},
        *(_section(a) for a in alerts),
    ]
    if truncated:
        more = f"… and {truncated} more in the next message"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]})
    if context.run_id:
        run = f"run {slack_escape(context.run_id)}"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": run}]})
    return {"text": _clip(slack_escape(text), _SECTION_CHARS), "blocks": blocks}
