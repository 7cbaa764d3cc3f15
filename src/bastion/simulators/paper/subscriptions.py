"""One socket's subscriptions: which channels it follows and what each owes it next.

A :class:`Subscriptions` set serves ``public/subscribe``, ``private/subscribe``, their
``unsubscribe`` and ``unsubscribe_all`` (shapes as Deribit's: the result lists the channels
now subscribed, or unsubscribed, in request order). Its rules:

- a channel the paper exchange cannot serve is left out of the result (:mod:`.channels`);
- ``public/subscribe`` takes public channels only: user channels are left out (use
  ``private/subscribe``, which needs an authenticated session, 10000 otherwise);
- a ``raw`` channel needs an authenticated session even on ``public/subscribe``: without one
  the request fails with Deribit's 13778 ``raw_subscriptions_not_available_for_unauthorized``.

Each subscription hears every venue event (:mod:`.events`) and keeps what it will report:

- state channels (ticker, book, portfolio) send the current state once on subscribing (a
  book's ``snapshot``) and again after each change that can affect it: an index step for all
  of them, a trade in the instrument for the ticker, the account's own orders and fills in the
  currency for the portfolio; a book then sends only the levels that changed, and a book or
  portfolio that came out identical sends nothing;
- event channels (trades, user orders, user trades) send nothing on subscribing (Deribit sends
  no snapshot of them) and then every event since their last notification, in order.

When each one is flushed is the feed's business (:mod:`.feed`).
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any

import orjson

from bastion.simulators.paper.channels import Channel, parse_channel
from bastion.simulators.paper.errors import RpcError
from bastion.simulators.paper.events import MarketMoved, OrderChanged, TradeExecuted, VenueEvent
from bastion.simulators.paper.market import BOOK_LEVELS
from bastion.simulators.paper.orders import Trade
from bastion.simulators.paper.venue import PaperVenue

__all__ = ["RAW_NEEDS_AUTH", "Subscription", "Subscriptions", "notification"]

logger = logging.getLogger(__name__)

RAW_NEEDS_AUTH = 13778
_RAW_NEEDS_AUTH_MESSAGE = "raw_subscriptions_not_available_for_unauthorized"
_PRICE_DECIMALS = 8

Levels = dict[float, float]


def notification(channel: str, data: Any) -> bytes:
    """A Deribit notification frame: method ``subscription``, params ``{channel, data}``."""
    params = {"channel": channel, "data": data}
    return orjson.dumps({"jsonrpc": "2.0", "method": "subscription", "params": params})


class Subscription(ABC):
    """One followed channel; each subclass renders what its topic reports."""

    def __init__(self, channel: Channel, client_id: str | None, account_id: int | None) -> None:
        self.channel = channel
        self.client_id = client_id
        self.account_id = account_id
        self.fresh = True
        self._dirty = True

    @property
    def due(self) -> bool:
        return self._dirty

    @abstractmethod
    def hear(self, event: VenueEvent) -> None:
        """Note an event that affects this channel (cheap: the venue is waiting)."""

    def take(self, venue: PaperVenue) -> list[Any]:
        """The notification payloads owed now, each one frame's ``data``; resets the debt."""
        self._dirty = False
        self.fresh = False
        return self._render(venue)

    @abstractmethod
    def _render(self, venue: PaperVenue) -> list[Any]:
        """The payloads this channel reports now."""

    def _mine(self, account_id: int) -> bool:
        return self.account_id is not None and account_id == self.account_id


class _Ticker(Subscription):
    def hear(self, event: VenueEvent) -> None:
        if isinstance(event, MarketMoved) or (
            isinstance(event, TradeExecuted) and self.channel.scope.covers(event.trade.instrument)
        ):
            self._dirty = True

    def _render(self, venue: PaperVenue) -> list[Any]:
        return [venue.ticker(_name(self.channel))]


class _Book(Subscription):
    """``book.{instrument}.{interval}``: a snapshot, then the levels that changed."""

    def __init__(self, channel: Channel, client_id: str | None, account_id: int | None) -> None:
        super().__init__(channel, client_id, account_id)
        self._bids: Levels = {}
        self._asks: Levels = {}
        self._change_id: int | None = None

    def hear(self, event: VenueEvent) -> None:
        if isinstance(event, MarketMoved):
            self._dirty = True

    def _render(self, venue: PaperVenue) -> list[Any]:
        book = venue.order_book(_name(self.channel), BOOK_LEVELS)
        bids, asks = _levels(book["bids"]), _levels(book["asks"])
        previous = self._change_id
        change_id = (
            int(book["change_id"])
            if previous is None
            else max(int(book["change_id"]), previous + 1)
        )
        head: dict[str, Any] = {"timestamp": book["timestamp"]}
        if previous is None:
            data = head | {
                "type": "snapshot",
                "instrument_name": book["instrument_name"],
                "change_id": change_id,
                "bids": [["new", p, a] for p, a in _sorted(bids, descending=True)],
                "asks": [["new", p, a] for p, a in _sorted(asks, descending=False)],
            }
        else:
            bid_changes = _diff(self._bids, bids, descending=True)
            ask_changes = _diff(self._asks, asks, descending=False)
            if not bid_changes and not ask_changes:
                return []
            data = head | {
                "type": "change",
                "prev_change_id": previous,
                "instrument_name": book["instrument_name"],
                "change_id": change_id,
                "bids": bid_changes,
                "asks": ask_changes,
            }
        self._bids, self._asks, self._change_id = bids, asks, change_id
        return [data]


class _GroupedBook(Subscription):
    """``book.{instrument}.{group}.{depth}.{interval}``: the grouped top of book, whole."""

    def __init__(self, channel: Channel, client_id: str | None, account_id: int | None) -> None:
        super().__init__(channel, client_id, account_id)
        self._last: tuple[Any, Any] | None = None
        self._change_id = 0

    def hear(self, event: VenueEvent) -> None:
        if isinstance(event, MarketMoved):
            self._dirty = True

    def _render(self, venue: PaperVenue) -> list[Any]:
        book = venue.order_book(_name(self.channel), BOOK_LEVELS)
        depth, group = self.channel.depth, self.channel.group
        bids = _grouped(book["bids"], group, descending=True)[:depth]
        asks = _grouped(book["asks"], group, descending=False)[:depth]
        if self._last == (bids, asks):
            return []
        self._last = (bids, asks)
        self._change_id = max(int(book["change_id"]), self._change_id + 1)
        return [
            {
                "timestamp": book["timestamp"],
                "instrument_name": book["instrument_name"],
                "change_id": self._change_id,
                "bids": bids,
                "asks": asks,
            }
        ]


class _Trades(Subscription):
    """``trades.*``: the public tape, every trade since the last notification."""

    def __init__(self, channel: Channel, client_id: str | None, account_id: int | None) -> None:
        super().__init__(channel, client_id, account_id)
        self._dirty = False
        self._pending: list[Trade] = []

    @property
    def due(self) -> bool:
        return bool(self._pending)

    def hear(self, event: VenueEvent) -> None:
        if isinstance(event, TradeExecuted) and self.channel.scope.covers(event.trade.instrument):
            self._pending.append(event.trade)

    def _render(self, venue: PaperVenue) -> list[Any]:
        trades, self._pending = self._pending, []
        return [[public_trade(t) for t in trades]] if trades else []


class _UserTrades(_Trades):
    """``user.trades.*``: the account's own fills, with fees and order ids."""

    def hear(self, event: VenueEvent) -> None:
        if (
            isinstance(event, TradeExecuted)
            and self._mine(event.trade.account_id)
            and self.channel.scope.covers(event.trade.instrument)
        ):
            self._pending.append(event.trade)

    def _render(self, venue: PaperVenue) -> list[Any]:
        trades, self._pending = self._pending, []
        return [[t.to_deribit() for t in trades]] if trades else []


class _Orders(Subscription):
    """``user.orders.*``: each order change; one object a frame on ``raw``, else a list."""

    def __init__(self, channel: Channel, client_id: str | None, account_id: int | None) -> None:
        super().__init__(channel, client_id, account_id)
        self._dirty = False
        self._pending: list[dict[str, Any]] = []

    @property
    def due(self) -> bool:
        return bool(self._pending)

    def hear(self, event: VenueEvent) -> None:
        if (
            isinstance(event, OrderChanged)
            and self._mine(event.account_id)
            and self.channel.scope.covers(event.instrument)
        ):
            self._pending.append(event.data)

    def _render(self, venue: PaperVenue) -> list[Any]:
        orders, self._pending = self._pending, []
        if not orders:
            return []
        return list(orders) if self.channel.raw else [orders]


class _Portfolio(Subscription):
    """``user.portfolio.{currency}``: the account summary, when it came out different."""

    def __init__(self, channel: Channel, client_id: str | None, account_id: int | None) -> None:
        super().__init__(channel, client_id, account_id)
        self._last: dict[str, Any] | None = None

    def hear(self, event: VenueEvent) -> None:
        currency = self.channel.currency
        match event:
            case MarketMoved():
                self._dirty = True
            case OrderChanged() if self._mine(event.account_id):
                self._dirty = self._dirty or event.instrument.currency == currency
            case TradeExecuted() if self._mine(event.trade.account_id):
                self._dirty = self._dirty or event.trade.instrument.currency == currency

    def _render(self, venue: PaperVenue) -> list[Any]:
        if self.client_id is None or self.channel.currency is None:
            return []
        summary = venue.account_summary(self.client_id, self.channel.currency)
        if summary == self._last:
            return []
        self._last = summary
        return [summary]


_KINDS: dict[str, type[Subscription]] = {
    "ticker": _Ticker,
    "book": _Book,
    "grouped_book": _GroupedBook,
    "trades": _Trades,
    "orders": _Orders,
    "user_trades": _UserTrades,
    "portfolio": _Portfolio,
}


class Subscriptions:
    """The channels one socket follows, keyed by the name the client used."""

    def __init__(self, venue: PaperVenue) -> None:
        self._venue = venue
        self._subscriptions: dict[str, Subscription] = {}

    def __bool__(self) -> bool:
        return bool(self._subscriptions)

    @property
    def channels(self) -> list[str]:
        return list(self._subscriptions)

    def subscribe(self, names: Iterable[str], *, client_id: str | None, private: bool) -> list[str]:
        """Follow ``names``; ``client_id`` is the session's (None: not authenticated) and
        ``private`` says the request was ``private/subscribe``. Returns what is now followed."""
        venue = self._venue
        chosen: dict[str, Channel] = {}
        for name in names:
            channel = parse_channel(name, catalog=venue.market.catalog, specs=venue.specs)
            if channel is None or (channel.private and not private):
                continue
            if channel.raw and client_id is None:
                reason = {"reason": f"{name}: raw channels need an authenticated session"}
                raise RpcError(RAW_NEEDS_AUTH, _RAW_NEEDS_AUTH_MESSAGE, data=reason)
            chosen[name] = channel
        for name, channel in chosen.items():
            if name not in self._subscriptions:
                account_id = None
                if channel.private and client_id is not None:
                    account_id = venue.account(client_id).account_id
                kind = _KINDS[channel.topic]
                self._subscriptions[name] = kind(channel, client_id, account_id)
        return list(chosen)

    def unsubscribe(self, names: Iterable[str]) -> list[str]:
        """Stop following ``names``; returns those that were followed."""
        return [name for name in dict.fromkeys(names) if self._subscriptions.pop(name, None)]

    def clear(self) -> None:
        self._subscriptions.clear()

    def hear(self, event: VenueEvent) -> None:
        for subscription in list(self._subscriptions.values()):
            subscription.hear(event)

    def frames(self, *, timer: bool) -> list[bytes]:
        """Notifications owed now: new and ``raw`` subscriptions always, the interval ones only
        when the feed's timer asks (``timer``)."""
        frames: list[bytes] = []
        for name, subscription in list(self._subscriptions.items()):
            now = timer or subscription.fresh or subscription.channel.raw
            if not (now and subscription.due):
                continue
            try:
                payloads = subscription.take(self._venue)
            except RpcError:
                # The instrument expired or the account is gone: Deribit just goes quiet.
                self._subscriptions.pop(name, None)
                continue
            except Exception:
                logger.exception("paper exchange: rendering %s failed", name)
                continue
            frames.extend(notification(name, payload) for payload in payloads)
        return frames


def public_trade(trade: Trade) -> dict[str, Any]:
    """A paper fill as the public tape shows it: no account, order or fee; the taker's side."""
    taker_side = trade.direction
    if trade.liquidity == "M":
        taker_side = "sell" if trade.direction == "buy" else "buy"
    data: dict[str, Any] = {
        "trade_seq": trade.trade_seq,
        "trade_id": trade.trade_id,
        "timestamp": trade.timestamp,
        "tick_direction": trade.tick_direction,
        "price": trade.price,
        "mark_price": trade.mark_price,
        "instrument_name": trade.instrument.name,
        "index_price": trade.index_price,
        "direction": taker_side,
        "amount": trade.amount,
        "contracts": round(trade.amount / trade.instrument.contract_size, 8),
    }
    if trade.iv is not None:
        data["iv"] = trade.iv
    return data


def _name(channel: Channel) -> str:
    name = channel.scope.instrument
    if name is None:
        raise RpcError(10020, data={"reason": f"{channel.name} names no instrument"})
    return name


def _levels(rows: list[list[float]]) -> Levels:
    return {float(price): float(amount) for price, amount in rows}


def _sorted(levels: Levels, *, descending: bool) -> list[tuple[float, float]]:
    return sorted(levels.items(), reverse=descending)


def _diff(old: Levels, new: Levels, *, descending: bool) -> list[list[Any]]:
    """Deribit's ``[action, price, amount]`` changes from ``old`` levels to ``new``."""
    changes: list[tuple[float, str, float]] = []
    for price, amount in new.items():
        if price not in old:
            changes.append((price, "new", amount))
        elif old[price] != amount:
            changes.append((price, "change", amount))
    changes.extend((price, "delete", 0.0) for price in old if price not in new)
    changes.sort(key=lambda change: change[0], reverse=descending)
    return [[action, price, amount] for price, action, amount in changes]


def _grouped(
    rows: list[list[float]], group: float | None, *, descending: bool
) -> list[list[float]]:
    """Levels summed into buckets of ``group`` (bids down, asks up), best first."""
    buckets: Levels = {}
    for price, amount in rows:
        if group is None:
            bucket = float(price)
        else:
            steps = price / group
            bucket = round((math.floor(steps) if descending else math.ceil(steps)) * group, 8)
        buckets[bucket] = buckets.get(bucket, 0.0) + float(amount)
    return [
        [price, round(amount, _PRICE_DECIMALS)]
        for price, amount in sorted(buckets.items(), reverse=descending)
    ]
