"""The operator's rules: every alert gets an analysis, and only known actions are proposed."""

from __future__ import annotations

import pytest

from bastion.ops.operator.analysis import Analysis
from bastion.ops.operator.rules import analyse_by_rules


@pytest.mark.parametrize(
    ("alertname", "labels", "issue_type", "actions"),
    [
        ("BastionBreakerOpen", {"severity": "page"}, "dependency_down", ["healthcheck", "halt"]),
        ("TargetDown", {"severity": "ticket"}, "dependency_down", ["healthcheck"]),
        ("BastionStepErrorRateHigh", {"severity": "page"}, "error_spike", ["healthcheck", "halt"]),
        ("BastionStepLatencyHigh", {}, "latency", ["healthcheck"]),
        ("BastionDailyBudgetSpent", {"severity": "page"}, "budget", ["open_approval"]),
        ("BastionPositionDriftHalt", {"severity": "page"}, "drift", ["healthcheck", "flatten"]),
        ("BastionKillSwitchActive", {"severity": "page"}, "halt", ["healthcheck", "open_approval"]),
        ("BastionRunawayLoopHalt", {}, "halt", ["healthcheck", "open_approval"]),
        ("ErrorBudgetBurn", {"slo": "http"}, "slo_burn", ["healthcheck", "open_approval"]),
        ("AgentStepsFailing", {"sloth_slo": "x"}, "slo_burn", ["healthcheck", "open_approval"]),
        ("SomethingElse", {}, "unknown", ["healthcheck", "open_approval"]),
    ],
)
def test_each_kind_of_alert_reads_as_its_issue(
    alertname: str, labels: dict[str, str], issue_type: str, actions: list[str]
) -> None:
    analysis = analyse_by_rules(alertname, {"alertname": alertname, **labels})
    assert analysis.issue_detected is True
    assert analysis.issue_type == issue_type
    assert analysis.recommended_actions == actions
    assert analysis.proposed() == actions


def test_a_page_is_critical_and_urgent_a_ticket_is_not() -> None:
    paged = analyse_by_rules("BastionBreakerOpen", {"severity": "page"})
    ticket = analyse_by_rules("BastionBreakerOpen", {"severity": "ticket"})
    assert (paged.severity, paged.requires_immediate_action) == ("critical", True)
    assert (ticket.severity, ticket.requires_immediate_action) == ("medium", False)


def test_a_resolved_alert_is_no_issue_and_proposes_nothing() -> None:
    analysis = analyse_by_rules("BastionBreakerOpen", {"severity": "page"}, status="resolved")
    assert (analysis.issue_detected, analysis.recommended_actions) == (False, [])


def test_only_the_fixed_actions_are_proposed_from_free_text() -> None:
    """Whatever an LLM writes, only names in the fixed set become proposals, each once."""
    analysis = Analysis(
        issue_detected=True,
        severity="high",
        issue_type="x",
        description="",
        recommended_actions=["rm -rf /", "Halt", "halt", " silence ", "sell everything"],
        confidence=0.5,
        requires_immediate_action=False,
    )
    assert analysis.proposed() == ["halt", "silence"]
