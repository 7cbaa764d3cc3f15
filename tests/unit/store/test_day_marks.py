"""Day marks on both backends, and the daily-loss halt that keeps them across a restart."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from bastion.agent import Observation
from bastion.guard.drift import PositionBook
from bastion.guard.limits import DailyLossTrigger, HaltReason, Ledger
from bastion.market import AccountSummary
from bastion.store import Store
from bastion.store.day_marks import DayMark

DAY = 1_800_000_000_000 - 1_800_000_000_000 % 86_400_000  # a UTC midnight, in ms
ACCOUNT = "bastion@deribit.example:443/BTC"


def _nav(equity: float, at_ms: int) -> Observation:
    account = AccountSummary("BTC", 10.0, equity, equity, 0.0, 0.0)
    return Observation(at_ms, "BTC", 100_000.0, account, (), (), {}, {})


def _ledger() -> Ledger:
    book = PositionBook(dust_coin=1e-4)
    book.seed(())
    return Ledger(book=book)


def _trigger(store: Store) -> DailyLossTrigger:
    return DailyLossTrigger(
        max_loss_pct=3.0, max_drawdown_pct=5.0, marks=store.day_marks, account=ACCOUNT
    )


def test_a_mark_is_kept_per_account_and_replaced_by_a_later_day(store: Store) -> None:
    at = datetime(2027, 1, 15, 1, tzinfo=UTC)
    assert store.day_marks.get(ACCOUNT) is None
    store.day_marks.put(ACCOUNT, DayMark(date(2027, 1, 15), "BTC", 10.0, 10.5), at=at)
    store.day_marks.put("other@x/BTC", DayMark(date(2027, 1, 15), "BTC", 3.0, 3.0), at=at)
    assert store.day_marks.get(ACCOUNT) == DayMark(date(2027, 1, 15), "BTC", 10.0, 10.5)
    store.day_marks.put(ACCOUNT, DayMark(date(2027, 1, 16), "BTC", 9.8, 9.8), at=at)
    assert store.day_marks.get(ACCOUNT) == DayMark(date(2027, 1, 16), "BTC", 9.8, 9.8)
    assert store.day_marks.get("other@x/BTC") == DayMark(date(2027, 1, 15), "BTC", 3.0, 3.0)


def test_a_restart_mid_day_keeps_the_days_start(store: Store) -> None:
    """Down 2 % before the restart and 1.5 % more after it: 3.5 % on the day, a halt."""
    before = _trigger(store)
    assert before.check(_nav(10.0, DAY + 3_600_000), _ledger()) is None
    assert before.check(_nav(9.8, DAY + 7_200_000), _ledger()) is None
    after = _trigger(store)  # a new process: nothing in memory
    breach = after.check(_nav(9.65, DAY + 10_800_000), _ledger())
    assert breach is not None
    assert breach.reason is HaltReason.DAILY_LOSS
    assert (breach.detail["day_start_nav"], breach.detail["loss_pct"]) == (10.0, 3.5)


def test_a_restart_mid_day_keeps_the_days_peak(store: Store) -> None:
    before = _trigger(store)
    before.check(_nav(10.0, DAY + 1_000), _ledger())
    before.check(_nav(12.0, DAY + 2_000), _ledger())  # the peak
    breach = _trigger(store).check(_nav(11.3, DAY + 3_000), _ledger())  # 5.8 % off it
    assert breach is not None
    assert (breach.reason, breach.detail["day_peak_nav"]) == (HaltReason.DRAWDOWN, 12.0)


def test_the_next_day_starts_afresh_despite_yesterdays_mark(store: Store) -> None:
    _trigger(store).check(_nav(10.0, DAY + 1_000), _ledger())
    tomorrow = DAY + 86_400_000
    assert _trigger(store).check(_nav(9.0, tomorrow + 1_000), _ledger()) is None
    mark = store.day_marks.get(ACCOUNT)
    assert mark is not None
    assert (mark.start_nav, mark.peak_nav) == (9.0, 9.0)


def test_a_store_that_fails_leaves_the_trigger_working(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    trigger = _trigger(store)
    store.engine.dispose()
    store.day_marks._engine = None  # type: ignore[assignment]  # every read and write now fails
    assert trigger.check(_nav(10.0, DAY + 1_000), _ledger()) is None
    breach = trigger.check(_nav(9.6, DAY + 2_000), _ledger())
    assert breach is not None, "the figures this process saw still halt"
    assert "could not" in caplog.text
