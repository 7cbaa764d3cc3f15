"""Subscription channels: Deribit's channel names, read into what they cover.

Served channels (the ``{interval}`` is ``raw``, ``100ms`` or ``agg2``):

==========================================================  ===========================
channel                                                     notification ``data``
==========================================================  ===========================
``ticker.{instrument}.{interval}``                          the ``public/ticker`` result
``book.{instrument}.{interval}``                            a ``snapshot``, then ``change``
                                                            s with ``[action, price,
                                                            amount]`` levels and
                                                            ``change_id``/``prev_change_id``
``book.{instrument}.{group}.{depth}.{interval}``            the top ``depth`` levels
                                                            grouped by ``group``, as
                                                            ``[price, amount]``
``trades.{instrument}.{interval}``,                         a list of public trades
``trades.{kind}.{currency}.{interval}``
``user.orders.{instrument}.{interval}``,                    the order (``raw``) or a list
``user.orders.{kind}.{currency}.{interval}``                of orders
``user.trades.{instrument}.{interval}``,                    a list of the user's trades
``user.trades.{kind}.{currency}.{interval}``
``user.portfolio.{currency}``                               the account summary
==========================================================  ===========================

``kind`` is ``future``, ``option``, ``spot``, ``future_combo``, ``option_combo``, ``combo`` or
``any``; ``currency`` a listed currency or ``any`` (any letter case, as clients spell it
``BTC`` and ``btc``). ``group`` is ``none`` or one of Deribit's steps (for ETH divided by 100,
as Deribit does), ``depth`` is 1, 10 or 20. A name that does not parse, or names an instrument
or currency the paper exchange does not list, is not subscribable: Deribit leaves such a
channel out of the ``subscribe`` result rather than failing the request, and so does this.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from bastion.simulators.paper.instruments import Catalog, Instrument
from bastion.simulators.paper.specs import CurrencySpec

__all__ = ["INTERVALS", "Channel", "Scope", "Topic", "parse_channel"]

INTERVALS = ("raw", "100ms", "agg2")
Topic = Literal["ticker", "book", "grouped_book", "trades", "orders", "user_trades", "portfolio"]

_KINDS = ("future", "option", "spot", "future_combo", "option_combo", "combo", "any")
_GROUPS = ("none", "1", "2", "5", "10", "25", "100", "250")
_DEPTHS = ("1", "10", "20")
_GROUP_DIVISOR = {"ETH": 100.0}  # Deribit: "For ETH ... the real group is divided by 100"


@dataclass(frozen=True, slots=True)
class Scope:
    """The instruments a channel covers: one by name, or a kind and a currency (None: any)."""

    instrument: str | None = None
    kind: str | None = None
    currency: str | None = None

    def covers(self, instrument: Instrument) -> bool:
        if self.instrument is not None:
            return instrument.name == self.instrument
        return (self.kind is None or instrument.kind == self.kind) and (
            self.currency is None or instrument.currency == self.currency
        )


@dataclass(frozen=True, slots=True)
class Channel:
    """One subscribable channel, ``name`` spelled as the client sent it."""

    name: str
    topic: Topic
    interval: str
    scope: Scope
    group: float | None = None
    depth: int = 0

    @property
    def private(self) -> bool:
        """User channels need an authenticated session (``private/subscribe``)."""
        return self.topic in ("orders", "user_trades", "portfolio")

    @property
    def raw(self) -> bool:
        return self.interval == "raw"

    @property
    def currency(self) -> str | None:
        return self.scope.currency


def parse_channel(
    name: str, *, catalog: Catalog, specs: Mapping[str, CurrencySpec]
) -> Channel | None:
    """The channel ``name`` denotes, or None when the paper exchange cannot serve it."""
    group: float | None = None
    depth = 0
    match name.split("."):
        case ["ticker", instrument, interval]:
            topic: Topic = "ticker"
            scope = _instrument(instrument, catalog)
        case ["book", instrument, interval]:
            topic, scope = "book", _instrument(instrument, catalog)
        case ["book", instrument, grouping, levels, interval] if (
            grouping in _GROUPS and levels in _DEPTHS
        ):
            topic, scope, depth = "grouped_book", _instrument(instrument, catalog), int(levels)
            found = catalog.get(instrument)
            if found is not None and grouping != "none":
                group = float(grouping) / _GROUP_DIVISOR.get(found.currency, 1.0)
        case ["trades", *selector, interval]:
            topic, scope = "trades", _selection(selector, catalog, specs)
        case ["user", "orders", *selector, interval]:
            topic, scope = "orders", _selection(selector, catalog, specs)
        case ["user", "trades", *selector, interval]:
            topic, scope = "user_trades", _selection(selector, catalog, specs)
        case ["user", "portfolio", currency] if currency.upper() in specs:
            topic, scope, interval = "portfolio", Scope(currency=currency.upper()), "100ms"
        case _:
            return None
    if scope is None or interval not in INTERVALS:
        return None
    return Channel(name, topic, interval, scope, group=group, depth=depth)


def _instrument(name: str, catalog: Catalog) -> Scope | None:
    return None if catalog.get(name) is None else Scope(instrument=name)


def _selection(
    selector: list[str], catalog: Catalog, specs: Mapping[str, CurrencySpec]
) -> Scope | None:
    """``{instrument}`` or ``{kind}.{currency}``."""
    match selector:
        case [instrument]:
            return _instrument(instrument, catalog)
        case [kind, currency] if kind in _KINDS:
            code = currency.upper()
            if code != "ANY" and code not in specs:
                return None
            return Scope(
                kind=None if kind == "any" else kind,
                currency=None if code == "ANY" else code,
            )
        case _:
            return None
