"""Risk caps v1: a pure review of every order intent against limits set in code.

Nothing an agent (or an LLM behind it) writes can widen these limits: the review runs after the
agent has decided, on plain numbers, and it is the only way an intent reaches the exchange. It
does no I/O, so every rejection is reproducible from the trace.

Amounts are judged in coin: an instrument whose amounts are USD (its ``amount_unit``, which the
venue adapter sets: Deribit's inverse perpetuals and futures) is converted at the index, so one
``max_order_amount`` and one ``max_position`` mean the same risk on every instrument. An
instrument the observation does not list is taken as coin-quoted, the stricter reading.
Exposure is judged worst-case: the position after an intent counts what is held, what is still
resting on the book in the same direction, and the intents approved earlier in the same
decision. A reduce-only intent that shrinks the position is never blocked by the position cap.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Literal

from bastion.agent import Decision, Observation, OrderIntent

__all__ = ["RiskLimits", "Verdict", "review"]

Status = Literal["approved", "rejected"]


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """The caps. Amounts and positions are in coin (USD-quoted amounts converted at the index)."""

    max_order_amount: float
    max_order_notional_usd: float
    max_position: float
    allowed_instruments: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Verdict:
    """The review of one intent. A rejection names the cap, its limit and the observed value."""

    intent: OrderIntent
    status: Status
    cap: str | None = None
    limit: float | str | None = None
    observed: float | str | None = None
    reason: str = ""

    @property
    def approved(self) -> bool:
        return self.status == "approved"

    def to_dict(self) -> dict[str, Any]:
        return {
            "instrument": self.intent.instrument_name,
            "direction": self.intent.direction,
            "amount": self.intent.amount,
            "price": self.intent.price,
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


def _resting(obs: Observation, instrument_name: str, direction: str) -> float:
    return sum(
        o.amount - o.filled_amount
        for o in obs.open_orders
        if o.instrument_name == instrument_name and o.direction == direction
    )


def _check_shape(intent: OrderIntent, obs: Observation, limits: RiskLimits) -> Verdict | None:
    if not any(fnmatchcase(intent.instrument_name, p) for p in limits.allowed_instruments):
        return _reject(
            intent,
            "allowed_instruments",
            ", ".join(limits.allowed_instruments),
            intent.instrument_name,
            f"{intent.instrument_name} is not in allowed_instruments "
            f"({', '.join(limits.allowed_instruments)})",
        )
    if not intent.amount > 0:
        return _reject(
            intent, "amount", 0, intent.amount, f"amount must be positive (got {intent.amount})"
        )
    if intent.order_type == "limit" and (intent.price is None or not intent.price > 0):
        return _reject(intent, "price", 0, intent.price, "a limit order needs a positive price")
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


def _check_exposure(
    intent: OrderIntent, obs: Observation, limits: RiskLimits, pending: float
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
    held = in_coin(obs, name, obs.position_size(name))
    pending = in_coin(obs, name, pending)
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
            f"position in {intent.instrument_name} would reach {abs(worst):g} "
            f"(held {held:g}, resting and pending included), above max_position "
            f"{limits.max_position:g}",
        )
    return None


def review(decision: Decision, obs: Observation, limits: RiskLimits) -> list[Verdict]:
    """Judge each intent in order; approved intents count towards the ones after them."""
    verdicts: list[Verdict] = []
    pending: dict[str, float] = {}
    for intent in decision.intents:
        verdict = _check_shape(intent, obs, limits) or _check_exposure(
            intent, obs, limits, pending.get(intent.instrument_name, 0.0)
        )
        if verdict is None:
            verdict = Verdict(intent, "approved")
            pending[intent.instrument_name] = pending.get(intent.instrument_name, 0.0) + _signed(
                intent
            )
        verdicts.append(verdict)
    return verdicts
