"""Validation of an executed action: resolved and healthy within the window, or not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bastion.ops.operator.validation import judge

RAN = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=10)


def _at(minutes: float) -> datetime:
    return RAN + timedelta(minutes=minutes)


def test_resolved_and_healthy_within_the_window_is_effective() -> None:
    verdict = judge(
        executed_at=RAN, window=WINDOW, now=_at(4), resolved_at=_at(3), health_ok_at=_at(2)
    )
    assert (verdict.validated, verdict.effective) == (True, True)


def test_still_firing_inside_the_window_waits() -> None:
    verdict = judge(executed_at=RAN, window=WINDOW, now=_at(4), resolved_at=None, health_ok_at=None)
    assert (verdict.validated, verdict.effective) == (False, None)
    assert "the alert did not resolve" in verdict.detail


def test_the_window_closing_without_both_is_ineffective() -> None:
    resolved_late = judge(
        executed_at=RAN, window=WINDOW, now=_at(11), resolved_at=_at(10.5), health_ok_at=_at(1)
    )
    unhealthy = judge(
        executed_at=RAN, window=WINDOW, now=_at(10), resolved_at=_at(2), health_ok_at=None
    )
    assert (resolved_late.validated, resolved_late.effective) == (True, False)
    assert (unhealthy.validated, unhealthy.effective) == (True, False)
    assert unhealthy.detail == "within 10 min health was not OK"


def test_health_from_before_the_action_does_not_count() -> None:
    verdict = judge(
        executed_at=RAN, window=WINDOW, now=_at(10), resolved_at=_at(2), health_ok_at=_at(-1)
    )
    assert verdict.effective is False


def test_an_alert_resolved_before_the_action_says_nothing_about_it() -> None:
    verdict = judge(
        executed_at=RAN, window=WINDOW, now=_at(1), resolved_at=_at(-1), health_ok_at=_at(0.5)
    )
    assert (verdict.validated, verdict.effective) == (True, None)
