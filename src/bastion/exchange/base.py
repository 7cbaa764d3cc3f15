"""The Exchange protocol: what the runtime needs from a venue, in the market vocabulary.

A second venue is a second adapter behind this protocol and nothing else changes; the models it
speaks (:mod:`bastion.market`) sit on the ground floor so every layer can use them.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from bastion.market import (
    AccountSummary,
    Fill,
    Instrument,
    InstrumentKind,
    Order,
    OrderRequest,
    Position,
    Ticker,
)

__all__ = ["Exchange"]


@runtime_checkable
class Exchange(Protocol):
    """What the runtime needs from a venue. Every method is one round trip (or none)."""

    name: str

    async def get_time(self) -> int:
        """Exchange time in epoch milliseconds."""
        ...

    async def get_instruments(
        self, currency: str, kind: InstrumentKind | None = None
    ) -> list[Instrument]: ...

    async def get_index_price(self, currency: str) -> float: ...

    async def get_ticker(self, instrument_name: str) -> Ticker: ...

    async def get_account_summary(self, currency: str) -> AccountSummary: ...

    async def get_positions(self, currency: str) -> list[Position]: ...

    async def get_open_orders(self, currency: str) -> list[Order]: ...

    async def get_order_state(self, order_id: str) -> Order: ...

    async def get_order_state_by_label(self, currency: str, label: str) -> list[Order]:
        """Every order carrying ``label`` (open or closed): idempotency keys, looked up."""
        ...

    async def get_user_trades(self, currency: str, count: int = 100) -> list[Fill]: ...

    async def place_order(self, request: OrderRequest) -> Order: ...

    async def cancel_order(self, order_id: str) -> Order: ...

    async def cancel_all(self) -> int:
        """Cancel every resting order on the account; returns how many were cancelled."""
        ...

    async def close(self) -> None: ...
