"""The operator's rules: an analysis of any alert from its name and labels, always available.

The rules run for every alert, with or without an LLM, and stand in whenever the LLM cannot
answer. They read the ``alertname`` and labels the way Bastion's own Prometheus rules
(``deploy/prometheus/``) spell them and the way common exporters do, first match wins:

==================  ===============================================  ==========================
issue type          the alert's name (or labels)                     actions proposed
==================  ===============================================  ==========================
``drift``           ``drift``                                        healthcheck, flatten
``halt``            ``killswitch``, ``halt``, ``runaway``            healthcheck, open_approval
``slo_burn``        ``burn``, or an ``slo`` / ``sloth_slo`` label    healthcheck, open_approval
``budget``          ``budget``, ``cost``, ``spend``                  open_approval
``dependency_down`` ``breaker``, ``down``, ``unreachable``           healthcheck, halt (page)
``latency``         ``latency``, ``slow``                            healthcheck
``error_spike``     ``error``, ``fail``                              healthcheck, halt (page)
(anything else)     ``unknown``                                      healthcheck, open_approval
==================  ===============================================  ==========================

A halt is proposed only for a page (``severity`` page or critical): for anything less a person
looks first. Every action but a healthcheck still waits for a person in safety mode. A
resolved alert is no issue and proposes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bastion.ops.operator.analysis import ActionName, Analysis

__all__ = ["RULES", "Rule", "analyse_by_rules"]


@dataclass(frozen=True, slots=True)
class Rule:
    """One line of the table: what the name contains (or a label present), what it means."""

    issue_type: str
    words: tuple[str, ...]
    actions: tuple[ActionName, ...]
    meaning: str
    labels: tuple[str, ...] = ()
    page_actions: tuple[ActionName, ...] = ()
    urgent: bool = False


RULES: tuple[Rule, ...] = (
    Rule(
        "drift",
        ("drift",),
        ("healthcheck", "flatten"),
        "the exchange's positions differ from Bastion's book",
        urgent=True,
    ),
    Rule(
        "halt",
        ("killswitch", "halt", "runaway"),
        ("healthcheck", "open_approval"),
        "trading is halted; a person should look before it resumes",
    ),
    Rule(
        "slo_burn",
        ("burn",),
        ("healthcheck", "open_approval"),
        "an SLO's error budget is burning faster than it can last",
        labels=("slo", "sloth_slo"),
    ),
    Rule(
        "budget",
        ("budget", "cost", "spend"),
        ("open_approval",),
        "spending is past its budget or baseline",
    ),
    Rule(
        "dependency_down",
        ("breaker", "down", "unreachable"),
        ("healthcheck",),
        "a dependency is failing or its circuit breaker is open",
        page_actions=("halt",),
        urgent=True,
    ),
    Rule("latency", ("latency", "slow"), ("healthcheck",), "responses are slower than allowed"),
    Rule(
        "error_spike",
        ("error", "fail"),
        ("healthcheck",),
        "errors are above their threshold",
        page_actions=("halt",),
        urgent=True,
    ),
)

_SEVERITY = {"page": "critical", "critical": "critical", "ticket": "medium", "warning": "medium"}
_UNKNOWN = Rule(
    "unknown", (), ("healthcheck", "open_approval"), "an alert the rules do not recognise"
)


def analyse_by_rules(
    alertname: str,
    labels: Mapping[str, str],
    *,
    status: str = "firing",
    summary: str | None = None,
) -> Analysis:
    """The rules' analysis of one alert (see the module docstring). Pure."""
    rule = _match(alertname, labels)
    severity = _SEVERITY.get(
        labels.get("severity", "").lower(), "low" if rule is _UNKNOWN else "high"
    )
    paged = severity == "critical"
    what = f"{alertname}: {rule.meaning}"
    if summary:
        what = f"{what} ({summary[:500]})"
    if status == "resolved":
        return Analysis(
            issue_detected=False,
            severity="low",
            issue_type=rule.issue_type,
            description=f"{what}; the alert has resolved",
            recommended_actions=[],
            confidence=0.9 if rule is not _UNKNOWN else 0.5,
            requires_immediate_action=False,
        )
    actions = list(rule.actions) + (list(rule.page_actions) if paged else [])
    return Analysis(
        issue_detected=True,
        severity=severity,
        issue_type=rule.issue_type,
        description=what,
        recommended_actions=list(actions),
        confidence=0.7 if rule is not _UNKNOWN else 0.3,
        requires_immediate_action=paged and rule.urgent,
    )


def _match(alertname: str, labels: Mapping[str, str]) -> Rule:
    name = alertname.lower()
    for rule in RULES:
        if any(word in name for word in rule.words) or any(k in labels for k in rule.labels):
            return rule
    return _UNKNOWN
