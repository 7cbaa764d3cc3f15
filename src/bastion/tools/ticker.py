"""The read-only market tool: one instrument's top of book, mark and greeks from the exchange.

The model sees a summary of a few candidates each step; this lets it look at one more
instrument, or a fresher quote, without the agent widening its watchlist. It reads through the
:class:`~bastion.exchange.base.Exchange` the loop already has (whose own requests go through
the choke point as exchange calls) and changes nothing.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from bastion.errors import BastionError, ToolError
from bastion.exchange.base import Exchange
from bastion.messages import Tool
from bastion.tools.base import ToolArguments

__all__ = ["TickerArguments", "TickerTool"]


class TickerArguments(ToolArguments):
    """One instrument, by its exact exchange name (``BTC-27DEC26-100000-C``)."""

    instrument: str = Field(
        min_length=3, max_length=64, pattern=r"^[A-Z0-9][A-Z0-9_.-]*$", description="Exact name"
    )


class TickerTool:
    """``ticker``: mark, best bid and ask with sizes, index, mark IV and greeks."""

    name: ClassVar[str] = "ticker"
    read_only: ClassVar[bool] = True
    arguments: ClassVar[type[ToolArguments]] = TickerArguments

    def __init__(self, exchange: Exchange) -> None:
        self._exchange = exchange

    @property
    def definition(self) -> Tool:
        return Tool(
            name=self.name,
            description="Current top of book, mark price, index, mark IV and greeks of one "
            "instrument on the exchange, by its exact name. Read-only.",
            parameters=TickerArguments.model_json_schema(),
        )

    async def run(self, arguments: Any) -> Any:
        """The ticker as data; an exchange failure leaves as a ToolError with its code."""
        assert isinstance(arguments, TickerArguments)
        try:
            t = await self._exchange.get_ticker(arguments.instrument)
        except ToolError:
            raise
        except BastionError as exc:
            # One code per failure, whatever layer saw it first: the caller sees a tool failing.
            raise ToolError(
                exc.message,
                code=exc.code,
                dependency=exc.dependency,
                http_status=exc.http_status,
                exchange_code=exc.exchange_code,
                retry_after=exc.retry_after,
                timeout=exc.timeout,
            ) from exc
        return {
            "instrument": t.instrument_name,
            "timestamp_ms": t.timestamp_ms,
            "mark_price": t.mark_price,
            "index_price": t.index_price,
            "best_bid_price": t.best_bid_price,
            "best_bid_amount": t.best_bid_amount,
            "best_ask_price": t.best_ask_price,
            "best_ask_amount": t.best_ask_amount,
            "last_price": t.last_price,
            "mark_iv": t.mark_iv,
            "delta": t.delta,
            "gamma": t.gamma,
            "vega": t.vega,
            "theta": t.theta,
        }

    async def aclose(self) -> None:
        """The exchange is the loop's; nothing of ours to close."""
