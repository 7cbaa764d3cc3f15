"""Trading states: ACTIVE, REDUCING (reduce-only orders) and HALTED, with who, why and until.

The halt is read from the flag file and recorded in the store (both backends, and the emergency
store ``bastion kill`` writes through); an expiry lifts it only when configured.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from bastion.clock import SimClock
from bastion.errors import HaltedError
from bastion.events import Event, EventKind, Journal
from bastion.guard.halt import Halt
from bastion.status import TradingState
from bastion.store import Store
from bastion.store.emergency import EmergencyStore

T0 = datetime(2027, 1, 15, 0, 30, tzinfo=UTC)  # a daily-loss trip early in the UTC day
NEXT_DAY = datetime(2027, 1, 16, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(f"sqlite:///{tmp_path / 'bastion.db'}") as opened:
        yield opened


def _halt(
    tmp_path: Path, clock: SimClock, *, store: Store | None = None, auto_resume: bool = False
) -> tuple[Halt, list[Event]]:
    events: list[Event] = []
    journal = Journal(run_id="r1")
    journal.subscribe(events.append)
    halt = Halt(
        flag_path=tmp_path / "kill_switch.flag",
        clock=clock,
        halts=store.halts if store is not None else None,
        journal=journal,
        auto_resume=auto_resume,
    )
    return halt, events


async def test_reducing_lets_only_reduce_only_orders_out(tmp_path: Path) -> None:
    halt, _ = _halt(tmp_path, SimClock(start=T0.timestamp()))
    assert halt.trading_state() is TradingState.ACTIVE
    await halt.trip("daily_loss", who="limits", state=TradingState.REDUCING, until=NEXT_DAY)
    assert halt.trading_state() is TradingState.REDUCING
    halt.check(reduce_only=True)  # a closing order goes out
    with pytest.raises(HaltedError, match="reduce-only"):
        halt.check()
    assert (halt.permits(reduce_only=True), halt.permits(reduce_only=False)) == (True, False)
    flag = orjson.loads((tmp_path / "kill_switch.flag").read_bytes())
    assert (flag["state"], flag["until"]) == ("reducing", NEXT_DAY.isoformat())


async def test_a_full_halt_replaces_a_reducing_one_and_not_the_other_way(
    tmp_path: Path, store: Store
) -> None:
    halt, events = _halt(tmp_path, SimClock(start=T0.timestamp()), store=store)
    await halt.trip("daily_loss", who="limits", state=TradingState.REDUCING, until=NEXT_DAY)
    await halt.trip("operator", who="alice")
    assert halt.trading_state() is TradingState.HALTED
    with pytest.raises(HaltedError):
        halt.check(reduce_only=True)
    await halt.trip("daily_loss", who="limits", state=TradingState.REDUCING)  # stays halted
    assert halt.trading_state() is TradingState.HALTED
    newest, first = store.halts.history()
    assert (newest.reason, newest.state, newest.active) == ("operator", "halted", True)
    assert (first.reason, first.state, first.until) == ("daily_loss", "reducing", NEXT_DAY)
    assert first.resume_reason == "escalated to halted: operator"
    assert [e.kind for e in events].count(EventKind.HALT_TRIPPED) == 2


async def test_a_lapsed_halt_stays_until_a_person_resumes_unless_configured(
    tmp_path: Path,
) -> None:
    clock = SimClock(start=T0.timestamp())
    halt, _ = _halt(tmp_path, clock)
    await halt.trip("daily_loss", who="limits", until=NEXT_DAY)
    clock.advance(23 * 3600)
    assert halt.trading_state() is TradingState.HALTED  # 23 h later: still the same UTC day
    clock.advance(3600)
    state = halt.state()
    assert state is not None, "lapsed, but nobody configured it to lift itself"
    assert state.until == NEXT_DAY.isoformat()


async def test_a_lapsed_halt_lifts_itself_when_configured(tmp_path: Path, store: Store) -> None:
    clock = SimClock(start=T0.timestamp())
    halt, events = _halt(tmp_path, clock, store=store, auto_resume=True)
    await halt.trip("daily_loss", who="limits", until=NEXT_DAY)
    clock.advance(23 * 3600)
    assert halt.trading_state() is TradingState.HALTED
    clock.advance(3600)
    assert halt.trading_state() is TradingState.ACTIVE
    assert not (tmp_path / "kill_switch.flag").exists()
    [record] = store.halts.history()
    assert (record.resumed_by, record.active) == ("bastion", False)
    resumed = [e for e in events if e.kind is EventKind.HALT_RESUMED]
    assert [e.payload["why"] for e in resumed] == [f"the halt lapsed at {NEXT_DAY.isoformat()}"]


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"state": "sideways"}, TradingState.HALTED),  # unknown: the stricter reading
        ({"state": "active"}, TradingState.HALTED),  # a flag is never "trade freely"
        ({"state": "reducing"}, TradingState.REDUCING),
        ({}, TradingState.HALTED),  # a flag from before trading states
    ],
)
def test_the_flag_file_fails_safe(
    tmp_path: Path, record: dict[str, str], expected: TradingState
) -> None:
    flag = tmp_path / "kill_switch.flag"
    flag.write_bytes(orjson.dumps({"reason": "r", "who": "w", "when": "now", **record}))
    halt, _ = _halt(tmp_path, SimClock(start=T0.timestamp()), auto_resume=True)
    assert halt.trading_state() is expected


def test_an_expiry_nobody_can_read_never_lifts_a_halt(tmp_path: Path) -> None:
    flag = tmp_path / "kill_switch.flag"
    flag.write_bytes(orjson.dumps({"reason": "r", "who": "w", "when": "now", "until": "soon"}))
    halt, _ = _halt(tmp_path, SimClock(start=NEXT_DAY.timestamp() + 86400), auto_resume=True)
    assert halt.trading_state() is TradingState.HALTED


def test_the_emergency_store_and_the_store_agree_on_state_and_until(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bastion.db'}"
    with Store.open(url) as store:
        emergency = EmergencyStore.open(url)
        assert emergency is not None
        tripped = emergency.trip("daily_loss", "limits", T0, state="reducing", until=NEXT_DAY)
        assert store.halts.active() == tripped
        assert (tripped.state, tripped.until) == ("reducing", NEXT_DAY)
        store.halts.resume("ops", "checked", T0 + timedelta(hours=1))
        again = store.halts.trip("operator", "ops", T0 + timedelta(hours=2))
        assert emergency.active() == again
        assert (again.state, again.until) == ("halted", None)
        emergency.close()
