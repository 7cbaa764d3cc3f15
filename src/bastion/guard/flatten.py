"""Flattening: the orders that close positions, as a decision the risk review judges.

Pure, like :mod:`bastion.guard.risk`: the plan is a function of one observation, so the loop
(which flattens every step it spends in REDUCING while something is held), ``bastion flatten``
(which flattens from another terminal) and the replay audit (which checks a recorded flatten
step) all compute the same orders from the same snapshot.

Each open position gets one market order in the opposite direction for its whole size, marked
``reduce_only``: the exchange itself then refuses to flip or grow the position, whatever else
happened meanwhile (Deribit caps a reduce-only order at what is held). A market order, because
flattening is about getting out, not about the price; the review's caps still apply (the
instrument's shape, the order rate, REDUCING's shrink-only rule), and a flatten order the review
rejects is not sent: the next step tries again with what is then held.
"""

from __future__ import annotations

from collections.abc import Collection

from bastion.agent import Decision, Observation, OrderIntent

__all__ = ["FLATTEN_SOURCE", "flatten_decision"]

FLATTEN_SOURCE = "flatten"
"""The ``source`` a flatten step's ``decision`` trace line carries (the agent was not asked)."""


def flatten_decision(
    obs: Observation, *, instruments: Collection[str] | None = None, why: str = "flatten"
) -> Decision:
    """Close every position held in ``obs`` (or only those in ``instruments``).

    Positions are taken in instrument order, so the same snapshot always gives the same
    decision (the replay audit compares them). An empty decision means nothing is held.
    """
    intents = tuple(
        OrderIntent(
            instrument_name=position.instrument_name,
            direction="sell" if position.size > 0 else "buy",
            amount=abs(position.size),
            order_type="market",
            reduce_only=True,
            reason=f"{why}: close {position.size:g} {position.instrument_name}",
        )
        for position in sorted(obs.positions, key=lambda p: p.instrument_name)
        if position.size != 0 and (instruments is None or position.instrument_name in instruments)
    )
    held = ", ".join(f"{i.instrument_name} {i.amount:g}" for i in intents) or "nothing held"
    return Decision(intents=intents, rationale=f"{why}: {held}")
