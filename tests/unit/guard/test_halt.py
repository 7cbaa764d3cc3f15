"""The one halt path: flag, cancel, alert — idempotent, visible across processes, resumable."""

from __future__ import annotations

import errno
import os
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

import bastion.guard.halt as halt_module
from bastion.clock import SimClock
from bastion.errors import ErrorCode, ExchangeError, HaltedError
from bastion.events import Event, EventKind, Journal
from bastion.guard.halt import Halt
from bastion.guard.limits import HaltReason
from bastion.store import Store
from bastion.telemetry.metrics import Metrics


class Book:
    """A stand-in for the exchange's cancel-all that counts what it cancelled.

    It also checks the first step of the halt path happened before it: a cancel must never
    run while the flag is down (an order could slip in after it).
    """

    def __init__(self, resting: int, flag: Path | None = None, fail: bool = False) -> None:
        self.resting = resting
        self.calls = 0
        self.flag = flag
        self.fail = fail

    async def cancel_all(self) -> int:
        self.calls += 1
        if self.flag is not None:
            assert self.flag.exists(), "cancel ran before the flag was raised"
        if self.fail:
            raise ExchangeError("deribit private/cancel_all: NETWORK", code=ErrorCode.NETWORK)
        cancelled, self.resting = self.resting, 0
        return cancelled


@pytest.fixture
def events() -> list[Event]:
    return []


def _halt(
    tmp_path: Path,
    events: list[Event],
    book: Book | None = None,
    metrics: Metrics | None = None,
    store: Store | None = None,
) -> Halt:
    journal = Journal(run_id="r1")
    journal.subscribe(events.append)
    return Halt(
        flag_path=tmp_path / "kill_switch.flag",
        clock=SimClock(start=1_800_000_000),
        journal=journal,
        metrics=metrics,
        halts=store.halts if store is not None else None,
        canceller=book.cancel_all if book else None,
    )


async def test_trip_raises_the_flag_cancels_and_alerts_in_that_order(
    tmp_path: Path, events: list[Event]
) -> None:
    """The flag holds reason, who and when; resting orders are cancelled; one event says so."""
    book = Book(resting=3, flag=tmp_path / "kill_switch.flag")
    metrics = Metrics()
    halt = _halt(tmp_path, events, book, metrics)
    state = await halt.trip("daily_loss", who="alice")
    flag = orjson.loads((tmp_path / "kill_switch.flag").read_bytes())
    assert flag == {
        "reason": "daily_loss",
        "who": "alice",
        "when": "2027-01-15T08:00:00+00:00",
        "state": "halted",
        "until": None,
    }
    assert state.reason == "daily_loss"
    assert book.resting == 0
    assert [e.kind for e in events] == [EventKind.HALT_TRIPPED]
    assert events[0].payload["cancelled_orders"] == 3
    assert metrics.registry.get_sample_value("bastion_kill_switch_active") == 1.0
    assert metrics.registry.get_sample_value("bastion_halts_total", {"reason": "daily_loss"}) == 1


async def test_a_free_text_reason_counts_as_operator_in_the_metric(
    tmp_path: Path, events: list[Event]
) -> None:
    """A person's own wording stays in the flag but is no label: the labels are the known ones."""
    metrics = Metrics()
    halt = _halt(tmp_path, events, Book(resting=0), metrics)
    state = await halt.trip("ETH looks wrong, stopping until Bob checks", who="alice")
    assert state.reason == "ETH looks wrong, stopping until Bob checks"
    assert metrics.registry.get_sample_value("bastion_halts_total", {"reason": "operator"}) == 1
    reasons = {
        sample.labels["reason"]
        for family in metrics.registry.collect()
        if family.name == "bastion_halts"
        for sample in family.samples
    }
    assert reasons == {reason.value for reason in HaltReason}


async def test_tripping_twice_keeps_the_first_halt_on_record(
    tmp_path: Path, events: list[Event]
) -> None:
    """A second trigger does not overwrite the first reason nor alert twice."""
    book = Book(resting=1)
    halt = _halt(tmp_path, events, book)
    await halt.trip("operator", who="alice")
    book.resting = 2  # something slipped in: cancelling again is safe and done
    again = await halt.trip("cost_cap", who="bastion")
    assert again.reason == "operator"
    assert book.resting == 0
    assert [e.kind for e in events] == [EventKind.HALT_TRIPPED]


async def test_check_refuses_to_send_while_halted(tmp_path: Path, events: list[Event]) -> None:
    """check() raises a catchable HaltedError naming the reason and the way out."""
    halt = _halt(tmp_path, events)
    halt.check()
    await halt.trip("operator", who="bob")
    with pytest.raises(HaltedError, match="bastion resume") as info:
        halt.check()
    assert info.value.code is ErrorCode.HALTED


async def test_a_flag_raised_by_another_process_is_enforced_once(
    tmp_path: Path, events: list[Event]
) -> None:
    """The runner's Halt cancels resting orders when `bastion kill` wrote the flag elsewhere."""
    book = Book(resting=2)
    runner_side = _halt(tmp_path, events, book)
    await _halt(tmp_path, []).trip("operator", who="cli")
    assert await runner_side.enforce() == 2
    assert await runner_side.enforce() is None
    assert book.calls == 1
    assert [e.kind for e in events] == [EventKind.HALT_ENFORCED]


async def test_resume_clears_the_flag_and_records_who_and_why(
    tmp_path: Path, events: list[Event]
) -> None:
    """Resume is a human act with a reason; afterwards orders may be sent again."""
    halt = _halt(tmp_path, events)
    assert halt.resume(who="alice", why="nothing to resume") is None
    await halt.trip("operator", who="bob")
    cleared = halt.resume(who="alice", why="limits reviewed")
    assert cleared is not None
    assert cleared.reason == "operator"
    assert not halt.active()
    halt.check()
    assert events[-1].kind is EventKind.HALT_RESUMED
    assert events[-1].payload == {"reason": "operator", "who": "alice", "why": "limits reviewed"}


def test_an_unreadable_flag_still_halts(tmp_path: Path, events: list[Event]) -> None:
    """A person who types garbage into the flag file still stops trading."""
    (tmp_path / "kill_switch.flag").write_text("stop!")
    halt = _halt(tmp_path, events)
    state = halt.state()
    assert state is not None
    assert (state.reason, state.who) == ("kill_switch_file", "the flag file (not a halt record)")
    with pytest.raises(HaltedError):
        halt.check()


async def test_a_failing_cancel_still_leaves_the_system_halted(
    tmp_path: Path, events: list[Event]
) -> None:
    """An exchange outage during the cancel is reported in the alert, never raised."""
    halt = _halt(tmp_path, events, Book(resting=2, fail=True))
    state = await halt.trip("drift", who="bastion")
    assert halt.active()
    assert state.reason == "drift"
    assert "NETWORK" in events[0].payload["cancel_error"]


async def test_a_store_outage_does_not_stop_the_flag(tmp_path: Path, events: list[Event]) -> None:
    """The database failing mid-halt: the flag is up, resting orders cancelled, alert says so."""
    store = Store.open(f"sqlite:///{tmp_path / 'bastion.db'}")
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE halts")
    book = Book(resting=1)
    halt = _halt(tmp_path, events, book, store=store)
    await halt.trip("operator", who="alice")
    store.close()
    assert halt.active()
    assert book.resting == 0
    assert "halts" in events[0].payload["store_error"]


async def test_resume_closes_a_store_halt_whose_flag_was_deleted_by_hand(
    tmp_path: Path, events: list[Event]
) -> None:
    """Flag and store never disagree for long: resume closes the open row and new halts record."""
    with Store.open(f"sqlite:///{tmp_path / 'bastion.db'}") as store:
        halt = _halt(tmp_path, events, store=store)
        await halt.trip("first", who="alice")
        (tmp_path / "kill_switch.flag").unlink()
        cleared = halt.resume(who="bob", why="flag was removed by hand")
        assert cleared is not None
        assert cleared.reason == "first"
        assert store.halts.active() is None
        await halt.trip("second", who="carol")
        active = store.halts.active()
        assert active is not None
        assert active.reason == "second"


def test_a_flag_that_cannot_be_read_still_halts(tmp_path: Path, events: list[Event]) -> None:
    """A flag path that is a directory (or unreadable) fails safe: halted."""
    (tmp_path / "kill_switch.flag").mkdir()
    with pytest.raises(HaltedError):
        _halt(tmp_path, events).check()


def test_an_empty_flag_file_halts_and_says_so(tmp_path: Path, events: list[Event]) -> None:
    """`touch kill_switch.flag` halts; the state names the empty file and when it appeared."""
    flag = tmp_path / "kill_switch.flag"
    flag.touch()
    os.utime(flag, (1_800_000_000, 1_800_000_000))
    halt = _halt(tmp_path, events)
    state = halt.state()
    assert state is not None
    assert (state.reason, state.who, state.when) == (
        "kill_switch_file",
        "the flag file (empty)",
        "2027-01-15T08:00:00+00:00",
    )
    with pytest.raises(HaltedError, match=r"kill_switch_file, by the flag file \(empty\)"):
        halt.check()


def test_a_flag_path_that_cannot_be_read_names_the_problem(
    tmp_path: Path, events: list[Event]
) -> None:
    """A directory where the flag should be: halted, and the state says why and since when."""
    flag = tmp_path / "kill_switch.flag"
    flag.mkdir()
    os.utime(flag, (1_800_000_000, 1_800_000_000))
    state = _halt(tmp_path, events).state()
    assert state is not None
    assert state.reason == "kill_switch_file"
    assert state.who.startswith("the flag file (unreadable: ")
    assert state.when == "2027-01-15T08:00:00+00:00"


async def test_a_flag_that_cannot_be_written_still_halts_cancels_records_and_says_so(
    tmp_path: Path, events: list[Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk at the first step of the halt path: this process halts in memory, resting
    orders are cancelled, the store records the halt and the alert names the flag's failure."""
    real_write = halt_module._write_atomically

    def disk_full(path: Path, data: bytes, *, durable: bool) -> None:
        if path.name == "kill_switch.flag":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write(path, data, durable=durable)

    monkeypatch.setattr(halt_module, "_write_atomically", disk_full)
    store = Store.open(f"sqlite:///{tmp_path / 'bastion.db'}")
    book = Book(resting=2)
    halt = _halt(tmp_path, events, book, store=store)

    state = await halt.trip("daily_loss", who="limits")

    assert not (tmp_path / "kill_switch.flag").exists()
    current = halt.state()
    assert current is not None
    assert replace(current, enforced=False) == replace(state, enforced=False)
    with pytest.raises(HaltedError):
        halt.check()
    assert book.resting == 0
    assert store.halts.active() is not None
    [tripped] = [e for e in events if e.kind is EventKind.HALT_TRIPPED]
    assert "No space left on device" in tripped.payload["flag_error"]

    halt.resume(who="alice", why="disk freed")
    assert not halt.active()
    assert store.halts.active() is None
    store.close()
