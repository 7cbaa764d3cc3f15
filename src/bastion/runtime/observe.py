"""The Observer: one snapshot of account and market, built from exchange reads only.

It asks the exchange for the time, the instruments (cached), the index, the account, the
positions and the resting orders, then the tickers of the watchlist plus every instrument held,
at most ``ticker_concurrency`` at a time. Every read goes through the exchange client (and so
through ``resilience.call``); nothing is written, sent or recorded, which is why the health
check can observe with it as freely as the loop does.

The instrument list is cached: it is fetched again every ``instruments_refresh_seconds`` of the
injected clock, as soon as a cached instrument has expired, or after :meth:`Observer.refresh`.

The watchlist is an agent's ``watchlist`` method, a fixed list of names, or nothing (an
observer built without an agent still ticks the instruments the account holds).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from bastion.agent import Observation
from bastion.clock import Clock
from bastion.exchange.base import Exchange
from bastion.market import AccountSummary, Instrument, Order, Position, Ticker

__all__ = ["Holdings", "Observer", "Watchlist"]

Watchlist = Callable[[Sequence[Instrument], float, int], Sequence[str]]
"""``(instruments, index_price, now_ms) -> names``: the shape of ``Agent.watchlist``."""


@dataclass(frozen=True, slots=True)
class Holdings:
    """What the account holds right now: balances, positions, resting orders."""

    account: AccountSummary
    positions: tuple[Position, ...]
    open_orders: tuple[Order, ...]


class Observer:
    """Builds :class:`~bastion.agent.Observation` s for one currency, without side effects."""

    def __init__(
        self,
        *,
        exchange: Exchange,
        clock: Clock,
        currency: str = "BTC",
        watchlist: Watchlist | Iterable[str] = (),
        instruments_refresh_seconds: float = 300.0,
        ticker_concurrency: int = 8,
    ) -> None:
        self.exchange = exchange
        self.currency = currency
        self._clock = clock
        if callable(watchlist):
            self._watchlist: Watchlist = watchlist
        else:
            names = (watchlist,) if isinstance(watchlist, str) else tuple(watchlist)
            self._watchlist = lambda instruments, index_price, now_ms: names
        self._refresh_seconds = instruments_refresh_seconds
        self._concurrency = ticker_concurrency
        self._instruments: dict[str, Instrument] = {}
        self._instruments_at = float("-inf")

    async def observe(self) -> Observation:
        """One snapshot: time, instruments, index, holdings, then the tickers to watch."""
        ex, cur = self.exchange, self.currency
        now_ms = await ex.get_time()
        instruments = await self.instruments(now_ms)
        index_price = await ex.get_index_price(cur)
        account = await ex.get_account_summary(cur)
        positions = tuple(await ex.get_positions(cur))
        open_orders = tuple(await ex.get_open_orders(cur))
        names = self._watchlist(list(instruments.values()), index_price, now_ms)
        names = list(dict.fromkeys([*names, *(p.instrument_name for p in positions)]))
        return Observation(
            time_ms=now_ms,
            currency=cur,
            index_price=index_price,
            account=account,
            positions=positions,
            open_orders=open_orders,
            tickers=await self.tickers(names),
            instruments=instruments,
        )

    async def holdings(self) -> Holdings:
        """Resting orders, balances and positions only (a halted step looks at no market)."""
        ex, cur = self.exchange, self.currency
        open_orders = tuple(await ex.get_open_orders(cur))
        account = await ex.get_account_summary(cur)
        positions = tuple(await ex.get_positions(cur))
        return Holdings(account, positions, open_orders)

    async def instruments(self, now_ms: int) -> dict[str, Instrument]:
        """The cached instrument list, fetched again when stale, expired or refreshed."""
        stale = self._clock.monotonic() - self._instruments_at > self._refresh_seconds
        expired = any(i.expiration_ms <= now_ms for i in self._instruments.values())
        if stale or expired or not self._instruments:
            listed = await self.exchange.get_instruments(self.currency)
            self._instruments = {i.name: i for i in listed}
            self._instruments_at = self._clock.monotonic()
        return self._instruments

    def refresh(self) -> None:
        """Fetch the instrument list again at the next observation."""
        self._instruments_at = float("-inf")

    async def tickers(self, names: Sequence[str]) -> dict[str, Ticker]:
        """Tickers of ``names``, at most ``ticker_concurrency`` requests in flight."""
        gate = asyncio.Semaphore(self._concurrency)

        async def one(name: str) -> Ticker:
            async with gate:
                return await self.exchange.get_ticker(name)

        results = await asyncio.gather(*(one(n) for n in names))
        return {t.instrument_name: t for t in results}
