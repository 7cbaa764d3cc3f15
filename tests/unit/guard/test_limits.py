"""Halt triggers: pure verdicts on the observation and the ledger, asked once per check."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bastion.agent import Observation
from bastion.guard.drift import PositionBook
from bastion.guard.health import HealthStatus
from bastion.guard.limits import (
    Breach,
    CostCapTrigger,
    DailyLossTrigger,
    DriftTrigger,
    HaltReason,
    HealthReading,
    HealthTrigger,
    Ledger,
    Limits,
    RunawayTrigger,
    ToolErrorRateTrigger,
)
from bastion.market import AccountSummary, Instrument, Position
from bastion.status import TradingState

PERP = "BTC-PERPETUAL"
INSTRUMENTS = {
    PERP: Instrument(
        PERP, "future", "BTC", 32503708800000, 0.5, 10, 10, settlement_period="perpetual"
    )
}
OK, WARN, FAIL = HealthStatus.OK, HealthStatus.WARN, HealthStatus.FAIL


def _obs(*positions: Position) -> Observation:
    account = AccountSummary("BTC", 10.0, 10.0, 10.0, 0.0, 0.0)
    return Observation(
        time_ms=1_000,
        currency="BTC",
        index_price=100_000.0,
        account=account,
        positions=positions,
        open_orders=(),
        tickers={},
        instruments=INSTRUMENTS,
    )


def _perp(size: float) -> Position:
    return Position(PERP, "future", size, 100_000.0, 100_000.0)


def _ledger(observations: int = 1) -> Ledger:
    book = PositionBook(dust_coin=1e-4, observations=observations)
    book.seed(())
    return Ledger(book=book)


def _reading(
    status: HealthStatus, previous: HealthStatus | None, *, auto_kill: bool = True
) -> HealthReading:
    return HealthReading(status, previous, f"scripted {status.value}", {}, auto_kill)


@pytest.mark.parametrize(
    ("reason", "value"),
    [
        (HaltReason.OPERATOR, "operator"),
        (HaltReason.POSITION_DRIFT, "position_drift"),
        (HaltReason.COST_CAP, "cost_cap"),
        (HaltReason.HEALTH_FAIL, "health_fail"),
        (HaltReason.KILL_SWITCH_FILE, "kill_switch_file"),
    ],
)
def test_reasons_are_the_strings_already_on_record(reason: HaltReason, value: str) -> None:
    """Flag files and halts rows written before the enum still compare equal."""
    assert reason == value
    assert str(reason) == value


def test_nothing_wrong_is_no_breach() -> None:
    """A quiet ledger and an explained book: every trigger silent."""
    assert Limits.default().check(_obs(), _ledger()) == []


def test_drift_is_a_breach_with_the_figures() -> None:
    """Positions our fills do not explain: position_drift, by bastion, with the drift."""
    [breach] = Limits.default().check(_obs(_perp(50)), _ledger())
    assert (breach.reason, breach.who) == (HaltReason.POSITION_DRIFT, "bastion")
    [drift] = breach.detail["drift"]
    assert (drift["instrument"], drift["expected"], drift["reported"]) == (PERP, 0.0, 50)


def test_drift_waits_for_a_seeded_book_and_an_observation() -> None:
    """Before the first look, or when the step could not observe, drift says nothing."""
    unseeded = Ledger(book=PositionBook(dust_coin=1e-4, observations=1))
    assert DriftTrigger().check(_obs(_perp(50)), unseeded) is None
    assert DriftTrigger().check(None, _ledger()) is None


def test_drift_must_persist_across_checks() -> None:
    """With observations=2 the first disagreeing check is forgiven, the second trips."""
    ledger = _ledger(observations=2)
    limits = Limits.default()
    assert limits.check(_obs(_perp(50)), ledger) == []
    assert [b.reason for b in limits.check(_obs(_perp(50)), ledger)] == ["position_drift"]


def test_a_used_up_budget_is_a_cost_cap_breach_even_without_an_observation() -> None:
    """The budget's notice trips on its own: by budget, with the budget's reason."""
    ledger = _ledger()
    ledger.record_budget_exhausted("Daily budget exhausted (1,000 of 1,000 tokens used)")
    ledger.record_budget_exhausted("a later one")
    [breach] = Limits.default().check(None, ledger)
    assert breach == Breach(
        HaltReason.COST_CAP,
        "budget",
        {"reason": "Daily budget exhausted (1,000 of 1,000 tokens used)"},
    )


@pytest.mark.parametrize(
    ("status", "previous", "auto_kill", "halts"),
    [
        (FAIL, OK, True, True),
        (FAIL, WARN, True, True),
        (FAIL, None, True, True),
        (FAIL, FAIL, True, False),  # still failing is not news
        (FAIL, OK, False, False),  # auto_kill_on_health_fail off
        (WARN, OK, True, False),
        (OK, FAIL, True, False),
    ],
)
def test_health_trips_on_the_turn_to_fail_under_auto_kill(
    status: HealthStatus, previous: HealthStatus | None, auto_kill: bool, halts: bool
) -> None:
    """Only an OK/WARN -> FAIL reading with auto_kill on is a health_fail breach."""
    ledger = _ledger()
    ledger.record_health(_reading(status, previous, auto_kill=auto_kill))
    breach = HealthTrigger().check(None, ledger)
    assert (breach is not None) == halts
    if breach is not None:
        assert (breach.reason, breach.who) == (
            HaltReason.HEALTH_FAIL,
            "health guard (auto_kill_on_health_fail)",
        )
        assert breach.detail["summary"] == "scripted FAIL"


def test_every_breach_is_reported_in_trigger_order() -> None:
    """Health first, then cost cap, then drift; each trigger is asked once."""
    ledger = _ledger()
    ledger.record_health(_reading(FAIL, OK))
    ledger.record_budget_exhausted("spent")
    reasons = [b.reason for b in Limits.default().check(_obs(_perp(50)), ledger)]
    assert reasons == ["health_fail", "cost_cap", "position_drift"]


def test_reset_forgets_the_notices_and_the_book() -> None:
    """Resuming accepts what stands: no notice left, the book to be seeded again."""
    ledger = _ledger()
    ledger.record_health(_reading(FAIL, OK))
    ledger.record_budget_exhausted("spent")
    ledger.book.apply_fill(PERP, "buy", 10)
    ledger.reset()
    assert (ledger.health, ledger.budget_exhausted, ledger.book.seeded) == (None, None, False)
    assert CostCapTrigger().check(None, ledger) is None


def test_a_trigger_is_any_object_with_check() -> None:
    """Adding a trigger is one class: Limits asks it like the built-in ones."""

    class Always:
        def check(self, observation: Observation | None, ledger: Ledger) -> Breach | None:
            return Breach(HaltReason.DAILY_LOSS, "test", {"loss": 1.0})

    [breach] = Limits([Always()]).check(None, _ledger())
    assert breach.to_dict() == {"reason": "daily_loss", "who": "test", "detail": {"loss": 1.0}}


DAY = 1_800_000_000_000 - 1_800_000_000_000 % 86_400_000  # a UTC midnight, in ms


def _nav(equity: float, at_ms: int) -> Observation:
    account = AccountSummary("BTC", 10.0, equity, equity, 0.0, 0.0)
    return Observation(at_ms, "BTC", 100_000.0, account, (), (), {}, INSTRUMENTS)


def test_daily_loss_is_measured_from_the_utc_days_start_and_halts_until_the_next() -> None:
    trigger = DailyLossTrigger(max_loss_pct=3.0, max_drawdown_pct=None)
    ledger = _ledger()
    assert trigger.check(_nav(10.0, DAY + 3_600_000), ledger) is None  # the day's start
    assert trigger.check(_nav(9.71, DAY + 7_200_000), ledger) is None  # 2.9 % down
    breach = trigger.check(_nav(9.69, DAY + 10_800_000), ledger)
    assert breach is not None
    assert (breach.reason, breach.state) == (HaltReason.DAILY_LOSS, TradingState.HALTED)
    assert breach.until == datetime.fromtimestamp((DAY + 86_400_000) / 1000, tz=UTC)
    assert breach.detail["day_start_nav"] == 10.0
    assert breach.detail["loss_pct"] == pytest.approx(3.1)
    assert breach.detail["limit_pct"] == 3.0


def test_a_new_utc_day_starts_from_its_own_first_nav() -> None:
    trigger = DailyLossTrigger(max_loss_pct=3.0, max_drawdown_pct=None)
    ledger = _ledger()
    trigger.check(_nav(10.0, DAY + 1000), ledger)
    assert trigger.check(_nav(9.0, DAY + 86_400_000 + 1000), ledger) is None  # new day, new start
    assert trigger.check(_nav(8.9, DAY + 86_400_000 + 2000), ledger) is None  # 1.1 % of 9.0


def test_drawdown_is_measured_from_the_days_peak_and_flatten_asks_for_reducing() -> None:
    trigger = DailyLossTrigger(max_loss_pct=None, max_drawdown_pct=5.0, flatten=True)
    ledger = _ledger()
    trigger.check(_nav(10.0, DAY + 1000), ledger)
    trigger.check(_nav(12.0, DAY + 2000), ledger)  # the peak
    assert trigger.check(_nav(11.5, DAY + 3000), ledger) is None  # 4.2 % off the peak
    breach = trigger.check(_nav(11.3, DAY + 4000), ledger)  # 5.8 % off it, still above start
    assert breach is not None
    assert (breach.reason, breach.state) == (HaltReason.DRAWDOWN, TradingState.REDUCING)
    assert breach.detail["day_peak_nav"] == 12.0


def test_daily_loss_needs_an_observation() -> None:
    trigger = DailyLossTrigger(max_loss_pct=3.0, max_drawdown_pct=3.0)
    assert trigger.check(None, _ledger()) is None


def _calls(ledger: Ledger, outcomes: list[tuple[float, bool]]) -> Ledger:
    for at, failed in outcomes:
        ledger.record_tool_call(at, failed=failed)
    return ledger


def test_tool_error_rate_halts_over_the_window_once_enough_calls_were_made() -> None:
    trigger = ToolErrorRateTrigger(max_rate_pct=5.0, window_seconds=300, min_calls=20)
    ledger = _calls(_ledger(), [(float(t), t % 10 == 0) for t in range(1, 20)])  # 1 of 19
    ledger.now = 20.0
    assert trigger.check(None, ledger) is None, "19 calls are below the minimum"
    ledger.record_tool_call(20.0, failed=True)  # 2 of 20: 10 %
    breach = trigger.check(None, ledger)
    assert breach is not None
    assert breach.reason is HaltReason.ERROR_RATE
    assert (breach.detail["calls"], breach.detail["failed"]) == (20, 2)
    assert breach.detail["error_rate_pct"] == 10.0


def test_tool_failures_older_than_the_window_no_longer_count() -> None:
    trigger = ToolErrorRateTrigger(max_rate_pct=5.0, window_seconds=300, min_calls=20)
    ledger = _calls(_ledger(), [(0.0, True)] * 5 + [(400.0, False)] * 20)
    ledger.now = 400.0
    assert trigger.check(None, ledger) is None
    ledger.now = 200.0  # seen from inside the window, the failures count again
    assert trigger.check(None, ledger) is not None


def test_a_resume_forgets_the_tool_failures() -> None:
    ledger = _calls(_ledger(), [(1.0, True)] * 30)
    ledger.reset()
    ledger.now = 2.0
    trigger = ToolErrorRateTrigger(max_rate_pct=5.0, window_seconds=300, min_calls=20)
    assert trigger.check(None, ledger) is None


def test_a_runaway_counts_the_calls_of_one_step() -> None:
    trigger = RunawayTrigger(max_tool_calls=3)
    ledger = _calls(_ledger(), [(1.0, False)] * 3)
    assert trigger.check(None, ledger) is None
    ledger.record_tool_call(1.5, failed=True)
    breach = trigger.check(None, ledger)
    assert breach is not None
    assert (breach.reason, breach.detail["tool_calls"]) == (HaltReason.RUNAWAY_LOOP, 4)
    ledger.start_step(2.0)
    assert trigger.check(None, ledger) is None


def test_a_runaway_run_halts_past_its_step_cap_and_a_resume_grants_a_fresh_allowance() -> None:
    trigger = RunawayTrigger(max_steps=3)
    ledger = _ledger()
    for t in range(3):
        ledger.start_step(float(t))
        assert trigger.check(None, ledger) is None
    ledger.start_step(3.0)
    breach = trigger.check(None, ledger)
    assert breach is not None
    assert (breach.reason, dict(breach.detail)) == (
        HaltReason.RUNAWAY_LOOP,
        {"steps": 4, "limit": 3},
    )
    ledger.reset()
    ledger.start_step(4.0)
    assert trigger.check(None, ledger) is None


def test_a_step_cap_alone_leaves_tool_calls_unbounded() -> None:
    trigger = RunawayTrigger(max_steps=100)
    ledger = _calls(_ledger(), [(1.0, False)] * 500)
    assert trigger.check(None, ledger) is None
