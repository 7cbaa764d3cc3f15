"""ApprovalsStore: queue, list, one atomic decision, expiry, on both backends."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from bastion.errors import ErrorCode, UsageError
from bastion.store import Store
from bastion.store.approvals import (
    ApprovalAlreadyDecided,
    ApprovalNotFound,
    ApprovalRecord,
    ApprovalStatus,
)

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _add(
    store: Store,
    minutes: int = 0,
    *,
    kind: str = "llm_escalation",
    agent: str = "seller",
    expires_in: float | None = None,
) -> ApprovalRecord:
    at = T0 + timedelta(minutes=minutes)
    return store.approvals.add(
        kind=kind,
        agent=agent,
        subject={"question": f"at {minutes}", "at": at},
        reason="no model could answer",
        at=at,
        run_id="run-1",
        expires_at=None if expires_in is None else at + timedelta(seconds=expires_in),
    )


def test_add_and_get_round_trip(store: Store) -> None:
    """A new entry is pending, has a uuid hex id and reads back exactly as returned."""
    record = _add(store, expires_in=60)
    assert len(record.id) == 32
    assert int(record.id, 16) >= 0
    assert record.status is ApprovalStatus.PENDING
    assert record.pending
    assert record.subject == {"question": "at 0", "at": "2026-01-01T12:00:00+00:00"}
    assert (record.created_at, record.expires_at) == (T0, T0 + timedelta(seconds=60))
    assert (record.decided_at, record.decided_by, record.note) == (None, None, None)
    assert store.approvals.get(record.id) == record
    assert store.approvals.get("0" * 32) is None


def test_to_dict_is_json_ready(store: Store) -> None:
    """to_dict gives the API every field, timestamps as ISO text and the status as a string."""
    record = _add(store)
    assert record.to_dict() == {
        "id": record.id,
        "created_at": "2026-01-01T12:00:00+00:00",
        "kind": "llm_escalation",
        "agent": "seller",
        "run_id": "run-1",
        "subject": {"question": "at 0", "at": "2026-01-01T12:00:00+00:00"},
        "reason": "no model could answer",
        "status": "pending",
        "decided_at": None,
        "decided_by": None,
        "note": None,
        "expires_at": None,
    }


def test_list_is_newest_first_and_filters(store: Store) -> None:
    """list orders by creation, newest first, and filters by status, kind and agent."""
    first = _add(store, 0)
    second = _add(store, 1, kind="order")
    third = _add(store, 2, agent="buyer")
    store.approvals.decide(second.id, approve=True, who="alice", note=None, at=T0)
    assert [r.id for r in store.approvals.list()] == [third.id, second.id, first.id]
    assert [r.id for r in store.approvals.list(limit=2)] == [third.id, second.id]
    assert [r.id for r in store.approvals.list("pending")] == [third.id, first.id]
    assert [r.id for r in store.approvals.list(ApprovalStatus.APPROVED)] == [second.id]
    assert [r.id for r in store.approvals.list(kind="order")] == [second.id]
    assert [r.id for r in store.approvals.list("pending", agent="seller")] == [first.id]
    assert store.approvals.count_pending() == 2


@pytest.mark.parametrize(
    ("status", "limit", "message"),
    [("maybe", 50, "status must be one of pending, approved"), (None, 0, "limit must be >= 1")],
)
def test_list_refuses_bad_arguments(
    store: Store, status: str | None, limit: int, message: str
) -> None:
    """An unknown status or a limit below 1 is a UsageError naming what is allowed."""
    with pytest.raises(UsageError, match=message):
        store.approvals.list(status, limit)


def test_add_refuses_an_entry_born_expired(store: Store) -> None:
    """expires_at at or before created_at is a UsageError, not a silently dead entry."""
    with pytest.raises(UsageError, match="born expired"):
        _add(store, expires_in=0)


@pytest.mark.parametrize(("approve", "status"), [(True, "approved"), (False, "rejected")])
def test_decide_once(store: Store, approve: bool, status: str) -> None:
    """A decision records status, who, when and the note, and is what get() reads back."""
    record = _add(store)
    at = T0 + timedelta(minutes=3)
    decided = store.approvals.decide(record.id, approve=approve, who="alice", note="ok", at=at)
    assert decided.status == status
    assert (decided.decided_by, decided.decided_at, decided.note) == ("alice", at, "ok")
    assert not decided.pending
    assert store.approvals.get(record.id) == decided
    assert store.approvals.count_pending() == 0


def test_second_decision_is_refused_and_names_the_winner(store: Store) -> None:
    """Deciding a decided entry changes nothing and says who decided it, when, and what to do."""
    record = _add(store)
    store.approvals.decide(record.id, approve=True, who="alice", note=None, at=T0)
    with pytest.raises(ApprovalAlreadyDecided) as caught:
        store.approvals.decide(record.id, approve=False, who="bob", note="no", at=T0)
    assert str(caught.value) == (
        f"approval {record.id} was already approved by alice at 2026-01-01T12:00:00+00:00; "
        "nothing to do"
    )
    assert caught.value.record.decided_by == "alice"
    assert caught.value.code is ErrorCode.CONFLICT
    assert caught.value.observed == "approved"
    stored = store.approvals.get(record.id)
    assert stored is not None
    assert (stored.status, stored.decided_by, stored.note) == ("approved", "alice", None)


def test_deciding_an_unknown_id_is_not_found(store: Store) -> None:
    """An id nobody queued is a NOT_FOUND error that tells the operator to check it."""
    with pytest.raises(ApprovalNotFound, match="no approval with id 'nope'; check the id") as c:
        store.approvals.decide("nope", approve=True, who="alice", note=None, at=T0)
    assert c.value.code is ErrorCode.NOT_FOUND
    assert c.value.to_dict()["kind"] == "not_found"


def test_concurrent_deciders_exactly_one_wins(store_url: str) -> None:
    """Deciders on separate connections race on one entry: one wins, the rest see the winner."""
    with Store.open(store_url) as opened:
        record = _add(opened)
    deciders = 6
    barrier = threading.Barrier(deciders)
    won: list[ApprovalRecord] = []
    lost: list[ApprovalAlreadyDecided] = []
    errors: list[BaseException] = []

    def decide(n: int) -> None:
        try:
            with Store.open(store_url) as mine:
                barrier.wait()
                won.append(
                    mine.approvals.decide(
                        record.id, approve=n % 2 == 0, who=f"person{n}", note=None, at=T0
                    )
                )
        except ApprovalAlreadyDecided as exc:
            lost.append(exc)
        except BaseException as exc:  # handed to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=decide, args=(n,)) for n in range(deciders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(won) == 1
    assert len(lost) == deciders - 1
    assert all(exc.record == won[0] for exc in lost)
    with Store.open(store_url) as opened:
        assert opened.approvals.get(record.id) == won[0]


def test_expire_marks_only_pending_entries_past_their_time(store: Store) -> None:
    """expire() sweeps pending entries whose expires_at has come, once, and nothing else."""
    soon = _add(store, 0, expires_in=60)
    later = _add(store, 0, expires_in=600)
    never = _add(store, 0)
    decided = _add(store, 0, expires_in=60)
    store.approvals.decide(decided.id, approve=False, who="alice", note=None, at=T0)
    assert store.approvals.expire(T0 + timedelta(seconds=59)) == 0
    assert store.approvals.expire(T0 + timedelta(seconds=60)) == 1
    assert store.approvals.expire(T0 + timedelta(seconds=60)) == 0
    expired = store.approvals.get(soon.id)
    assert expired is not None
    assert expired.status is ApprovalStatus.EXPIRED
    assert (expired.decided_at, expired.decided_by) == (soon.expires_at, None)
    assert {r.id for r in store.approvals.list("pending")} == {later.id, never.id}
    rejected = store.approvals.get(decided.id)
    assert rejected is not None
    assert rejected.status is ApprovalStatus.REJECTED


def test_deciding_past_expiry_is_refused_and_expires_the_entry(store: Store) -> None:
    """An entry whose time ran out cannot be approved, even before any sweep marked it."""
    record = _add(store, expires_in=60)
    with pytest.raises(ApprovalAlreadyDecided) as caught:
        store.approvals.decide(
            record.id, approve=True, who="alice", note=None, at=T0 + timedelta(seconds=60)
        )
    assert str(caught.value) == (
        f"approval {record.id} expired at 2026-01-01T12:01:00+00:00 before anyone decided it; "
        "nothing to do: it can no longer be approved or rejected, the requester must ask again"
    )
    assert caught.value.record.status is ApprovalStatus.EXPIRED
    stored = store.approvals.get(record.id)
    assert stored is not None
    assert stored.status is ApprovalStatus.EXPIRED


def test_count_pending_at_a_time_leaves_out_the_overdue(store: Store) -> None:
    """A read-only caller (bastion status) must not count an entry whose time ran out."""
    now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    store.approvals.add(
        kind="llm_escalation",
        agent="a",
        subject={},
        reason="r",
        at=now,
        expires_at=now + timedelta(minutes=5),
    )
    store.approvals.add(kind="llm_escalation", agent="a", subject={}, reason="r", at=now)
    assert store.approvals.count_pending() == 2
    assert store.approvals.count_pending(now=now + timedelta(minutes=10)) == 1
