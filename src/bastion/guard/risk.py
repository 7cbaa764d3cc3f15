"""Risk caps v2: a pure review of every order intent against limits set in code.

Nothing an agent (or an LLM behind it) writes can widen these limits: the review runs after the
agent has decided, on plain numbers, and it is the only way an intent reaches the exchange. It
does no I/O and reads no clock: what it needs from the runtime (the recent order submits, the
time, whether the trading state is REDUCING, the intents a person approved) comes in as plain
arguments, so every verdict is reproducible from the trace.

Each intent gets one :class:`Verdict`: ``approved``, ``rejected`` (naming the cap, its limit and
the observed value) or ``needs_approval`` (within every hard cap, but a person must say yes
first). The checks, in order; the first that fails decides:

shape
    the index is a finite positive number; the instrument matches ``allowed_instruments``, is
    listed by the exchange (``listed_only``), settles in an ``allowed_currencies`` coin and is
    of an ``allowed_kinds`` kind (``option``, ``future``, ``perpetual``); direction and order
    type are known; the amount is finite and positive; a price, when given, is finite and
    positive (and a limit order has one); a limit price lies within the ``price_collar`` of the
    instrument's mark; the amount is within ``max_order_amount``.
exposure
    the order's notional (``max_order_notional_usd``); the position per instrument after it
    (``max_position``); the gross notional over every instrument (``max_total_notional_usd``).
flow
    in REDUCING only orders that shrink a position without flipping it (``reduce_only``); the
    order rate (``max_orders_per_minute``, NautilusTrader's ``max_order_submit_rate``).
approval
    notional above ``approval_notional_usd``, or an underlying or kind the account holds no
    position in (``approve_new_underlying``, ``approve_new_kind``): ``needs_approval``.

Amounts are judged in coin: an instrument whose amounts are USD (its ``amount_unit``, which the
venue adapter sets: Deribit's inverse perpetuals and futures) is converted at the index, so one
``max_order_amount`` and one ``max_position`` mean the same risk on every instrument. Exposure is
judged worst-case: the position after an intent counts what is held, what is still resting on
the book in the same direction, and the intents approved earlier in the same review. A
reduce-only intent that shrinks the position is never blocked by the position cap, and an intent
that lowers the gross notional is never blocked by the total cap, so a book above a lowered cap
can always be brought back under it.

Every cap added in v2 is off in a bare :class:`RiskLimits` (``None`` or empty), so code that
builds limits by hand keeps its meaning; the settings switch them on (``build.risk_limits``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from typing import Any, Literal

from bastion.agent import Decision, Observation, OrderIntent
from bastion.market import Instrument

__all__ = [
    "ORDER_RATE_WINDOW_SECONDS",
    "RiskLimits",
    "Verdict",
    "in_coin",
    "instrument_kind",
    "notional_usd",
    "review",
]

Status = Literal["approved", "rejected", "needs_approval"]

ORDER_RATE_WINDOW_SECONDS = 60.0
"""The window ``max_orders_per_minute`` counts submits over."""

_DIRECTIONS = ("buy", "sell")
_ORDER_TYPES = ("limit", "market")


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """The caps. Amounts and positions are in coin (USD-quoted amounts converted at the index).

    The first four are v1's and always apply. The rest are off when ``None`` (or, for the
    ``allowed_*`` tuples, empty: anything goes), except ``listed_only``, which fails closed.
    """

    max_order_amount: float
    max_order_notional_usd: float
    max_position: float
    allowed_instruments: tuple[str, ...]
    max_total_notional_usd: float | None = None
    max_orders_per_minute: int | None = None
    price_collar_pct: float | None = None
    price_collar_min_ticks: int = 0
    allowed_currencies: tuple[str, ...] = ()
    allowed_kinds: tuple[str, ...] = ()
    listed_only: bool = True
    approval_notional_usd: float | None = None
    approve_new_underlying: bool = False
    approve_new_kind: bool = False


@dataclass(frozen=True, slots=True)
class Verdict:
    """The review of one intent. A rejection (or a request for approval) names the cap, its
    limit and the observed value.

    ``intent`` is what may be sent: in REDUCING it carries ``reduce_only=True`` whatever the
    agent asked, so the exchange refuses a flip even if our book was stale.
    """

    intent: OrderIntent
    status: Status
    cap: str | None = None
    limit: float | str | None = None
    observed: float | str | None = None
    reason: str = ""

    @property
    def approved(self) -> bool:
        return self.status == "approved"

    @property
    def needs_approval(self) -> bool:
        return self.status == "needs_approval"

    def to_dict(self) -> dict[str, Any]:
        return {
            "instrument": self.intent.instrument_name,
            "direction": self.intent.direction,
            "amount": self.intent.amount,
            "price": self.intent.price,
            "order_type": self.intent.order_type,
            "reduce_only": self.intent.reduce_only,
            "status": self.status,
            "cap": self.cap,
            "limit": self.limit,
            "observed": self.observed,
            "reason": self.reason,
        }


def _reject(intent: OrderIntent, cap: str, limit: Any, observed: Any, reason: str) -> Verdict:
    return Verdict(intent, "rejected", cap=cap, limit=limit, observed=observed, reason=reason)


def _signed(intent: OrderIntent) -> float:
    return intent.amount if intent.direction == "buy" else -intent.amount


def _usd_quoted(obs: Observation, instrument_name: str) -> bool:
    instrument = obs.instruments.get(instrument_name)
    return instrument is not None and instrument.amount_unit == "usd"


def in_coin(obs: Observation, instrument_name: str, amount: float) -> float:
    """An amount in coin: a USD-quoted instrument's amount is divided by the index."""
    if _usd_quoted(obs, instrument_name):
        return amount / obs.index_price
    return amount


def notional_usd(intent: OrderIntent, obs: Observation) -> float:
    """USD notional: a USD-quoted amount is its own notional, a coin amount × the index."""
    if _usd_quoted(obs, intent.instrument_name):
        return intent.amount
    return intent.amount * obs.index_price


def instrument_kind(instrument: Instrument) -> str:
    """``option``, ``future`` or ``perpetual``: a perpetual is its own kind for the caps,
    since it has no expiry to end the exposure."""
    return "perpetual" if instrument.is_perpetual else instrument.kind


def _resting(obs: Observation, instrument_name: str, direction: str) -> float:
    return sum(
        o.amount - o.filled_amount
        for o in obs.open_orders
        if o.instrument_name == instrument_name and o.direction == direction
    )


def _finite_positive(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


@dataclass(slots=True)
class _Book:
    """What the review has approved so far in this call: signed amounts and submits."""

    pending: dict[str, float]
    submits: int = 0

    def add(self, intent: OrderIntent) -> None:
        name = intent.instrument_name
        self.pending[name] = self.pending.get(name, 0.0) + _signed(intent)
        self.submits += 1


def _check_listing(intent: OrderIntent, obs: Observation, limits: RiskLimits) -> Verdict | None:
    name = intent.instrument_name
    if not any(fnmatchcase(name, p) for p in limits.allowed_instruments):
        allowed = ", ".join(limits.allowed_instruments)
        return _reject(
            intent,
            "allowed_instruments",
            allowed,
            name,
            f"{name} is not in allowed_instruments ({allowed})",
        )
    instrument = obs.instruments.get(name)
    if instrument is None:
        if limits.listed_only:
            return _reject(
                intent,
                "listed_only",
                "listed",
                name,
                f"{name} is not listed by the exchange for {obs.currency}: an order on it "
                "cannot be judged",
            )
        return None
    if limits.allowed_currencies and instrument.currency not in limits.allowed_currencies:
        allowed = ", ".join(limits.allowed_currencies)
        return _reject(
            intent,
            "allowed_currencies",
            allowed,
            instrument.currency,
            f"{name} settles in {instrument.currency}, not in allowed_currencies ({allowed})",
        )
    kind = instrument_kind(instrument)
    if limits.allowed_kinds and kind not in limits.allowed_kinds:
        allowed = ", ".join(limits.allowed_kinds)
        return _reject(
            intent,
            "allowed_kinds",
            allowed,
            kind,
            f"{name} is a {kind}, not one of allowed_kinds ({allowed})",
        )
    return None


def _check_numbers(intent: OrderIntent) -> Verdict | None:
    if intent.direction not in _DIRECTIONS:
        return _reject(
            intent,
            "direction",
            "buy, sell",
            str(intent.direction),
            f"direction must be buy or sell (got {intent.direction!r})",
        )
    if intent.order_type not in _ORDER_TYPES:
        return _reject(
            intent,
            "order_type",
            "limit, market",
            str(intent.order_type),
            f"order_type must be limit or market (got {intent.order_type!r})",
        )
    if not _finite_positive(intent.amount):
        return _reject(
            intent,
            "amount",
            0,
            intent.amount,
            f"amount must be a finite positive number (got {intent.amount})",
        )
    needs_price = intent.order_type == "limit"
    if (needs_price or intent.price is not None) and not _finite_positive(intent.price):
        return _reject(
            intent,
            "price",
            0,
            intent.price,
            f"a {'limit order needs' if needs_price else 'price must be'} a finite positive "
            f"price (got {intent.price})",
        )
    return None


def _check_collar(intent: OrderIntent, obs: Observation, limits: RiskLimits) -> Verdict | None:
    """A limit price within ``price_collar_pct`` of the mark (at least the minimum ticks)."""
    pct = limits.price_collar_pct
    if pct is None or intent.order_type != "limit" or intent.price is None:
        return None
    name = intent.instrument_name
    ticker = obs.tickers.get(name)
    mark = ticker.mark_price if ticker is not None else None
    if mark is None or not _finite_positive(mark):
        return _reject(
            intent,
            "price_collar",
            f"{pct:g}%",
            "no mark",
            f"no mark price for {name} in this observation: a limit price cannot be collared",
        )
    instrument = obs.instruments.get(name)
    tick = instrument.tick_size if instrument is not None else 0.0
    band = max(mark * pct / 100.0, limits.price_collar_min_ticks * tick)
    off = abs(intent.price - mark)
    if off > band * (1 + 1e-9):
        off_pct = off / mark * 100.0
        return _reject(
            intent,
            "price_collar",
            f"{pct:g}%",
            f"{off_pct:.2f}%",
            f"limit price {intent.price:g} is {off_pct:.2f}% from the mark {mark:g}, outside "
            f"price_collar_pct {pct:g}% (band {band:g})",
        )
    return None


def _check_shape(intent: OrderIntent, obs: Observation, limits: RiskLimits) -> Verdict | None:
    verdict = (
        _check_listing(intent, obs, limits)
        or _check_numbers(intent)
        or _check_collar(intent, obs, limits)
    )
    if verdict is not None:
        return verdict
    coin = in_coin(obs, intent.instrument_name, intent.amount)
    if coin > limits.max_order_amount:
        return _reject(
            intent,
            "max_order_amount",
            limits.max_order_amount,
            round(coin, 8),
            f"amount {coin:g} {obs.currency} exceeds max_order_amount {limits.max_order_amount:g}",
        )
    return None


def _worst_coin(obs: Observation, name: str, pending: float, extra: float = 0.0) -> float:
    """The largest absolute position ``name`` can reach, in coin, if every resting order of
    ours fills: held + pending (+ ``extra``), plus the resting buys or the resting sells."""
    net = obs.position_size(name) + pending + extra
    long = net + _resting(obs, name, "buy")
    short = net - _resting(obs, name, "sell")
    return in_coin(obs, name, max(abs(long), abs(short)))


def _gross_usd(obs: Observation, pending: Mapping[str, float], intent: OrderIntent | None) -> float:
    names = {p.instrument_name for p in obs.positions}
    names |= {o.instrument_name for o in obs.open_orders}
    names |= set(pending)
    if intent is not None:
        names.add(intent.instrument_name)
    total = 0.0
    for name in names:
        extra = _signed(intent) if intent is not None and intent.instrument_name == name else 0.0
        total += _worst_coin(obs, name, pending.get(name, 0.0), extra)
    return total * obs.index_price


def _check_exposure(
    intent: OrderIntent, obs: Observation, limits: RiskLimits, book: _Book
) -> Verdict | None:
    notional = notional_usd(intent, obs)
    if notional > limits.max_order_notional_usd:
        return _reject(
            intent,
            "max_order_notional_usd",
            limits.max_order_notional_usd,
            round(notional, 2),
            f"notional ${notional:,.0f} exceeds max_order_notional_usd "
            f"${limits.max_order_notional_usd:,.0f}",
        )
    name = intent.instrument_name
    raw_pending = book.pending.get(name, 0.0)
    held = in_coin(obs, name, obs.position_size(name))
    pending = in_coin(obs, name, raw_pending)
    after = held + pending + in_coin(obs, name, _signed(intent))
    sign = 1.0 if intent.direction == "buy" else -1.0
    worst = after + sign * in_coin(obs, name, _resting(obs, name, intent.direction))
    shrinks = intent.reduce_only and abs(after) < abs(held + pending)
    if abs(worst) > limits.max_position and not shrinks:
        return _reject(
            intent,
            "max_position",
            limits.max_position,
            round(abs(worst), 8),
            f"position in {name} would reach {abs(worst):g} "
            f"(held {held:g}, resting and pending included), above max_position "
            f"{limits.max_position:g}",
        )
    cap = limits.max_total_notional_usd
    if cap is not None:
        before = _gross_usd(obs, book.pending, None)
        total = _gross_usd(obs, book.pending, intent)
        if total > cap and total > before:
            return _reject(
                intent,
                "max_total_notional_usd",
                cap,
                round(total, 2),
                f"gross notional over every instrument would reach ${total:,.0f} (resting and "
                f"pending included), above max_total_notional_usd ${cap:,.0f}",
            )
    return None


def _check_reducing(intent: OrderIntent, obs: Observation, book: _Book) -> Verdict | None:
    """REDUCING: the order must close part of a position and, with every resting order of
    ours on that side filled, never flip or grow it."""
    name = intent.instrument_name
    held = obs.position_size(name)
    net = held + book.pending.get(name, 0.0)
    sign = 1.0 if intent.direction == "buy" else -1.0
    worst = net + _signed(intent) + sign * _resting(obs, name, intent.direction)
    closes = net != 0 and sign * net < 0
    if closes and worst * net >= 0 and abs(worst) < abs(net):
        return None
    return _reject(
        intent,
        "reduce_only",
        "REDUCING",
        f"position {held:g} -> {worst:g}",
        f"trading state is REDUCING: only orders that shrink a position are allowed; this "
        f"{intent.direction} of {intent.amount:g} {name} would take the position (held {held:g},"
        f" resting and pending included) to {worst:g}",
    )


def _check_rate(
    intent: OrderIntent, limits: RiskLimits, book: _Book, now: float, submits: Sequence[float]
) -> Verdict | None:
    cap = limits.max_orders_per_minute
    if cap is None:
        return None
    recent = sum(1 for t in submits if now - ORDER_RATE_WINDOW_SECONDS < t <= now)
    count = recent + book.submits + 1
    if count > cap:
        return _reject(
            intent,
            "max_orders_per_minute",
            cap,
            count,
            f"this would be order {count} in the last {ORDER_RATE_WINDOW_SECONDS:g} s, above "
            f"max_orders_per_minute {cap}",
        )
    return None


def _held(obs: Observation) -> tuple[set[str], set[str]]:
    """The underlyings (settlement coins) and kinds the account holds a position in."""
    coins: set[str] = set()
    kinds: set[str] = set()
    for position in obs.positions:
        if position.size == 0:
            continue
        instrument = obs.instruments.get(position.instrument_name)
        coins.add(instrument.currency if instrument is not None else obs.currency)
        kinds.add(instrument_kind(instrument) if instrument is not None else position.kind)
    return coins, kinds


def _check_approval(intent: OrderIntent, obs: Observation, limits: RiskLimits) -> Verdict | None:
    def ask(cap: str, limit: Any, observed: Any, reason: str) -> Verdict:
        return Verdict(
            intent, "needs_approval", cap=cap, limit=limit, observed=observed, reason=reason
        )

    threshold = limits.approval_notional_usd
    notional = notional_usd(intent, obs)
    if threshold is not None and notional > threshold:
        return ask(
            "approval_notional_usd",
            threshold,
            round(notional, 2),
            f"notional ${notional:,.0f} is above approval_notional_usd ${threshold:,.0f}: a "
            "person must approve it",
        )
    instrument = obs.instruments.get(intent.instrument_name)
    if instrument is None or not (limits.approve_new_underlying or limits.approve_new_kind):
        return None
    coins, kinds = _held(obs)
    if limits.approve_new_underlying and instrument.currency not in coins:
        return ask(
            "approve_new_underlying",
            ", ".join(sorted(coins)) or "none held",
            instrument.currency,
            f"no position in {instrument.currency} yet: a person must approve the first one",
        )
    kind = instrument_kind(instrument)
    if limits.approve_new_kind and kind not in kinds:
        return ask(
            "approve_new_kind",
            ", ".join(sorted(kinds)) or "none held",
            kind,
            f"no {kind} position yet: a person must approve the first one",
        )
    return None


def review(
    decision: Decision,
    obs: Observation,
    limits: RiskLimits,
    *,
    now: float = 0.0,
    recent_submits: Sequence[float] = (),
    reducing: bool = False,
    approved: Sequence[OrderIntent] = (),
) -> list[Verdict]:
    """Judge each intent in order; approved intents count towards the ones after them.

    ``recent_submits`` are the times (on the same clock as ``now``, the loop's monotonic
    seconds) of the orders sent lately; ``reducing`` is True while the trading state is
    REDUCING. ``approved`` are intents a person approved: they are judged first, against every
    cap as things stand now but never sent back for approval, and their verdicts come first in
    the returned list, followed by one per ``decision.intents``. In REDUCING nothing asks for
    approval: shrinking a position must not wait for a person.
    """
    verdicts: list[Verdict] = []
    book = _Book(pending={})
    if not _finite_positive(obs.index_price):
        return [
            _reject(
                intent,
                "index_price",
                0,
                obs.index_price,
                f"the index price {obs.index_price} is not a finite positive number: nothing "
                "can be judged until the observation is sane",
            )
            for intent in (*approved, *decision.intents)
        ]
    judged = [(intent, True) for intent in approved]
    judged += [(intent, False) for intent in decision.intents]
    for asked, by_person in judged:
        intent = replace(asked, reduce_only=True) if reducing else asked
        verdict = (
            _check_shape(intent, obs, limits)
            or _check_exposure(intent, obs, limits, book)
            or (_check_reducing(intent, obs, book) if reducing else None)
            or _check_rate(intent, limits, book, now, recent_submits)
            or (None if by_person or reducing else _check_approval(intent, obs, limits))
        )
        if verdict is None:
            verdict = Verdict(intent, "approved")
            book.add(intent)
        verdicts.append(verdict)
    return verdicts
