"""Journal events become notifications; notifications become the generic and Slack bodies."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bastion.events import Event, EventKind
from bastion.notify import Context, Status, generic_body, notification_for, slack_body
from bastion.notify.message import MAX_ALERTS
from bastion.telemetry.alert import Alert, Severity

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
ALERT = Alert(
    key="slo:latency:page",
    name="LatencyBudgetBurn",
    severity=Severity.PAGE,
    summary="P99 latency burning the budget at 14.4x",
    since=datetime(2026, 1, 1, 11, 55, tzinfo=UTC),
    labels={"slo": "latency"},
    value=15.2,
    threshold=14.4,
)


def event(kind_: EventKind, /, **payload: object) -> Event:
    return Event(kind=kind_, payload=payload, run_id="r1")


def test_an_evaluator_alert_keeps_its_key_and_fields() -> None:
    """ALERT_FIRING / ALERT_RESOLVED carry Alert.to_payload(): same key, both statuses."""
    fired = notification_for(event(EventKind.ALERT_FIRING, **ALERT.to_payload()), NOW)
    cleared = notification_for(event(EventKind.ALERT_RESOLVED, **ALERT.to_payload()), NOW)
    assert fired is not None
    assert cleared is not None
    assert (fired.key, fired.status, cleared.key, cleared.status) == (
        "slo:latency:page",
        Status.FIRING,
        "slo:latency:page",
        Status.RESOLVED,
    )
    assert fired.to_dict() == {
        "key": "slo:latency:page",
        "name": "LatencyBudgetBurn",
        "severity": "page",
        "status": "firing",
        "summary": "P99 latency burning the budget at 14.4x",
        "labels": {"alertname": "LatencyBudgetBurn", "severity": "page", "slo": "latency"},
        "since": "2026-01-01T11:55:00+00:00",
        "resolved_at": None,
        "value": 15.2,
        "threshold": 14.4,
    }
    assert cleared.resolved_at == NOW


@pytest.mark.parametrize(
    ("kind", "payload", "expected"),
    [
        (
            EventKind.HALT_TRIPPED,
            {"reason": "daily_loss", "who": "limits", "when": "2026-01-01T11:00:00+00:00"},
            ("halt", "BastionHalted", "page", "firing", True),
        ),
        (
            EventKind.HALT_RESUMED,
            {"reason": "daily_loss", "who": "ops", "why": "checked"},
            ("halt", "BastionHalted", "page", "resolved", True),
        ),
        (
            EventKind.HALT_ENFORCED,
            {"reason": "kill_switch", "who": "cli", "when": "2026-01-01T11:00:00+00:00"},
            ("halt", "BastionHalted", "page", "firing", True),
        ),
        (
            EventKind.TRADING_RESUMED,
            {"step": 12},
            ("halt", "BastionHalted", "page", "resolved", True),
        ),
        (
            EventKind.HALT_TRIPPED,
            {"reason": "x", "who": "y", "when": "2026-01-01T11:00:00+00:00", "scope": "fleet"},
            ("halt:fleet", "BastionHalted", "page", "firing", True),
        ),
        (
            EventKind.BREAKER_STATE_CHANGED,
            {"name": "deribit", "layer": "exchange", "state": "open", "at": 1.0, "reason": "5"},
            ("breaker:deribit", "BastionBreakerOpen", "ticket", "firing", True),
        ),
        (
            EventKind.BREAKER_STATE_CHANGED,
            {"name": "deribit", "layer": "exchange", "state": "closed", "at": 1.0, "reason": ""},
            ("breaker:deribit", "BastionBreakerOpen", "ticket", "resolved", True),
        ),
        (
            EventKind.BUDGET_ALERT,
            {
                "scope": "daily",
                "period": "2026-01-01",
                "label": "agent",
                "unit": "usd",
                "used": 7.5,
                "limit": 10.0,
                "ratio": 0.75,
            },
            (
                "budget:daily:2026-01-01:agent:usd:0.75",
                "BastionBudgetAlert",
                "ticket",
                "firing",
                False,
            ),
        ),
        (
            EventKind.APPROVAL_REQUESTED,
            {"approval_id": "ap1", "kind": "order", "reason": "notional over 1000"},
            ("approval:ap1", "BastionApprovalRequested", "info", "firing", False),
        ),
    ],
)
def test_halts_breakers_budgets_and_approvals_become_notifications(
    kind: EventKind, payload: dict[str, object], expected: tuple[object, ...]
) -> None:
    """Each alerting journal event maps to one key, name, severity, status and tracking."""
    n = notification_for(event(kind, **payload), NOW)
    assert n is not None
    assert (n.key, n.name, n.severity.value, n.status.value, n.tracked) == expected


def test_budget_alert_reports_the_share_used_against_the_ratio() -> None:
    """value is used/limit, threshold the alert ratio."""
    payload = {"scope": "daily", "period": "d", "label": "a", "unit": "usd"}
    n = notification_for(
        event(EventKind.BUDGET_ALERT, **payload, used=8, limit=10, ratio=0.75), NOW
    )
    assert n is not None
    assert (n.value, n.threshold) == (0.8, 0.75)


@pytest.mark.parametrize(
    "payload",
    [
        {"name": "webhook:0", "layer": "webhook", "state": "open", "at": 1.0, "reason": "x"},
        {"name": "deribit", "layer": "exchange", "state": "half_open", "at": 1.0, "reason": "x"},
    ],
)
def test_half_open_and_the_notifiers_own_breakers_are_not_notified(
    payload: dict[str, object],
) -> None:
    """A half-open probe is no news; a webhook's own breaker is for the status report."""
    assert notification_for(event(EventKind.BREAKER_STATE_CHANGED, **payload), NOW) is None


def test_other_events_call_for_nothing() -> None:
    """A completed step is not an alert."""
    assert notification_for(event(EventKind.STEP_COMPLETED, step=1), NOW) is None


def test_the_generic_body_groups_alerts_with_their_fields() -> None:
    """Status is firing while any alert fires; counts and each alert's fields are there."""
    fired = notification_for(event(EventKind.ALERT_FIRING, **ALERT.to_payload()), NOW)
    halt = notification_for(
        event(EventKind.HALT_RESUMED, reason="kill_switch", who="ops", why="ok"), NOW
    )
    assert fired is not None
    assert halt is not None
    body = generic_body([fired, halt], Context(run_id="r1", agent="seller"))
    assert {k: body[k] for k in ("version", "source", "run_id", "agent", "status")} == {
        "version": "1",
        "source": "bastion",
        "run_id": "r1",
        "agent": "seller",
        "status": "firing",
    }
    assert (body["firing"], body["resolved"], body["truncated"]) == (1, 1, 0)
    assert [(a["key"], a["status"]) for a in body["alerts"]] == [
        ("slo:latency:page", "firing"),
        ("halt", "resolved"),
    ]
    only_resolved = generic_body([halt], Context())
    assert only_resolved["status"] == "resolved"


def test_slack_text_is_escaped_so_untrusted_text_cannot_ping_or_link() -> None:
    """&, < and > in a summary and a label become entities in text and blocks alike."""
    hostile = Alert(
        key="k",
        name="Bad<Name>",
        severity=Severity.TICKET,
        summary="LLM said <!channel> & <https://evil.example|click>",
        since=NOW,
        labels={"model": "<@U123>"},
    )
    n = notification_for(event(EventKind.ALERT_FIRING, **hostile.to_payload()), NOW)
    assert n is not None
    body = slack_body([n], Context(run_id="r1", agent="seller"))
    rendered = str(body)
    for raw in ("<!channel>", "<https://evil", "<@U123>", "Bad<Name>"):
        assert raw not in rendered
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;" in body["text"]
    section = body["blocks"][1]["text"]
    assert section["type"] == "mrkdwn"
    assert "Bad&lt;Name&gt;" in section["text"]
    assert "model=&lt;@U123&gt;" in section["text"]
    assert body["blocks"][0]["type"] == "header"
    assert body["text"].startswith("Bastion — seller: 1 firing, 0 resolved")


def test_slack_stays_within_its_block_limit() -> None:
    """A full group is at most MAX_ALERTS sections plus header and context: under 50 blocks."""
    n = notification_for(event(EventKind.ALERT_FIRING, **ALERT.to_payload()), NOW)
    assert n is not None
    body = slack_body([n] * MAX_ALERTS, Context(run_id="r"), truncated=5)
    assert len(body["blocks"]) <= 50
    assert "5 more" in str(body["blocks"][-2])
