"""The events journal in the store (named apart from tests/unit/test_events.py, the Journal)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from bastion.errors import UsageError
from bastion.store import EventRecord, Store

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Fill:
    instrument: str
    price: float


def test_append_returns_growing_ids_and_list_reads_newest_first(store: Store) -> None:
    """Ids grow in append order and list() returns the last appended first."""
    ids = [store.events.append("tick", {"n": n}, at=T0 + timedelta(seconds=n)) for n in range(3)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3
    listed = store.events.list()
    assert [e.id for e in listed] == ids[::-1]
    assert listed[0] == EventRecord(
        id=ids[2], at=T0 + timedelta(seconds=2), kind="tick", payload={"n": 2}, run_id=None
    )


def test_list_filters_by_run_and_kind_and_limits(store: Store) -> None:
    """run_id and kind filter together; limit keeps the newest."""
    store.events.append("order", {"i": 1}, at=T0, run_id="a")
    store.events.append("halt", {"i": 2}, at=T0, run_id="a")
    store.events.append("order", {"i": 3}, at=T0, run_id="b")
    store.events.append("order", {"i": 4}, at=T0, run_id="a")
    store.events.append("order", {"i": 5}, at=T0)

    def payloads(events: list[EventRecord]) -> list[int]:
        return [e.payload["i"] for e in events]

    assert payloads(store.events.list(run_id="a")) == [4, 2, 1]
    assert payloads(store.events.list(kind="order")) == [5, 4, 3, 1]
    assert payloads(store.events.list(run_id="a", kind="order")) == [4, 1]
    assert payloads(store.events.list(limit=2)) == [5, 4]
    assert store.events.list(run_id="zzz") == []


def test_payloads_round_trip_as_plain_json(store: Store) -> None:
    """Nested payloads come back as dicts; datetimes and dataclasses as their JSON form."""
    payload = {
        "fill": Fill("BTC-PERPETUAL", 97000.5),
        "at": T0,
        "tags": ("a", "b"),
        "nested": {"list": [1, 2.5, None, True], "empty": {}},
        "unicode": "Δ hedge ✓",
    }
    store.events.append("fill", payload, at=T0)
    (event,) = store.events.list()
    assert event.payload == {
        "fill": {"instrument": "BTC-PERPETUAL", "price": 97000.5},
        "at": "2026-01-01T12:00:00+00:00",
        "tags": ["a", "b"],
        "nested": {"list": [1, 2.5, None, True], "empty": {}},
        "unicode": "Δ hedge ✓",
    }


def test_an_unserialisable_payload_fails_at_the_caller(store: Store) -> None:
    """A payload orjson cannot write is a UsageError naming the event, and nothing is stored."""
    with pytest.raises(UsageError, match="payload of event 'bad'"):
        store.events.append("bad", {"x": object()}, at=T0)
    assert store.events.list() == []


def test_limit_must_be_positive(store: Store) -> None:
    """limit=0 is a developer error, not an empty answer."""
    with pytest.raises(UsageError, match="limit"):
        store.events.list(limit=0)
