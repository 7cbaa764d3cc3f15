"""The operator's alerts, analyses and actions on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bastion.errors import UsageError
from bastion.store import Store
from bastion.store.alerts import Received

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def _receive(store: Store, **overrides: Any) -> Received:
    values: dict[str, Any] = {
        "fingerprint": "3f2c9a8b7d6e5f41",
        "starts_at": T0,
        "alertname": "BastionBreakerOpen",
        "status": "firing",
        "severity": "page",
        "summary": "breaker open",
        "labels": {"alertname": "BastionBreakerOpen", "severity": "page"},
        "annotations": {"summary": "breaker open"},
        "generator_url": None,
        "ends_at": None,
        "at": T0 + timedelta(seconds=5),
    }
    values.update(overrides)
    return store.alerts.receive(**values)


def test_repeats_and_the_resolve_update_one_row(store: Store) -> None:
    """Alertmanager's repeat and its resolve land on the first notification's row."""
    first = _receive(store)
    repeat = _receive(store, at=T0 + timedelta(hours=1))
    resolved = _receive(
        store, status="resolved", ends_at=T0 + timedelta(hours=2), at=T0 + timedelta(hours=2)
    )
    assert (first.created, repeat.created, resolved.created) == (True, False, False)
    assert (repeat.status_changed, resolved.status_changed) == (False, True)
    assert first.alert.id == repeat.alert.id == resolved.alert.id
    (only,) = store.alerts.alerts()
    assert (only.status, only.ends_at, only.received_at) == (
        "resolved",
        T0 + timedelta(hours=2),
        T0 + timedelta(seconds=5),
    )
    assert store.alerts.alerts("firing") == []


def test_the_same_labels_firing_again_later_are_a_new_occurrence(store: Store) -> None:
    first = _receive(store)
    later = _receive(store, starts_at=T0 + timedelta(days=1), at=T0 + timedelta(days=1))
    assert later.created
    assert later.alert.id != first.alert.id
    assert [a.id for a in store.alerts.alerts("firing")] == [later.alert.id, first.alert.id]


def test_the_latest_analysis_is_the_one_shown(store: Store) -> None:
    alert = _receive(store).alert
    assert [a.id for a in store.alerts.unanalysed()] == [alert.id]
    store.alerts.add_analysis(alert.id, source="rules", analysis={"n": 1}, at=T0)
    store.alerts.add_analysis(alert.id, source="llm", analysis={"n": 2}, at=T0, note=None)
    latest = store.alerts.latest_analyses([alert.id])[alert.id]
    assert (latest.source, latest.analysis) == ("llm", {"n": 2})
    assert store.alerts.unanalysed() == []


def test_an_action_moves_once_and_keeps_its_audit_trail(store: Store) -> None:
    """Of two executors claiming one approved action, exactly one wins."""
    alert = _receive(store).alert
    action = store.alerts.add_action(
        alert.id,
        action="halt",
        params={"reason": "operator"},
        status="proposed",
        at=T0,
        approval_id="a" * 32,
    )
    approved = store.alerts.move_action(
        action.id,
        from_status="proposed",
        to_status="approved",
        decided_by="alice",
        decided_at=T0 + timedelta(minutes=1),
    )
    assert approved is not None
    assert approved.decided_by == "alice"
    claims = [
        store.alerts.move_action(
            action.id,
            from_status="approved",
            to_status="executed",
            executed_at=T0 + timedelta(minutes=2),
        )
        for _ in range(2)
    ]
    assert [c is not None for c in claims] == [True, False]
    store.alerts.set_outcome(action.id, {"validated": True, "effective": True, "detail": "ok"})
    ((alertname, done),) = store.alerts.executed()
    assert alertname == "BastionBreakerOpen"
    assert (done.status, done.decided_by, done.approval_id) == ("executed", "alice", "a" * 32)
    assert done.outcome == {"validated": True, "effective": True, "detail": "ok"}
    counts = store.alerts.counts()
    assert counts["alerts"] == {"firing": 1, "resolved": 0}
    assert counts["actions"]["executed"] == 1


def test_bad_statuses_are_refused(store: Store) -> None:
    with pytest.raises(UsageError, match="firing or resolved"):
        _receive(store, status="pending")
    alert = _receive(store).alert
    with pytest.raises(UsageError, match="action status"):
        store.alerts.add_action(alert.id, action="halt", params={}, status="done", at=T0)
