"""What changed in the venue: the events its subscribers (the WebSocket feed) hear about.

The venue stays a plain simulator that pushes nothing: it emits one small frozen event per
change to whoever registered on :attr:`PaperVenue.events <.venue.PaperVenue.events>`, and the
feed (:mod:`.feed`) decides which socket needs a notification. Three events cover every change
a Deribit channel reports:

- :class:`MarketMoved`: the index grid stepped, so every quote, book and valuation may differ;
- :class:`OrderChanged`: an order was placed, filled or cancelled (its Deribit shape *as it
  was* at that moment: the order object itself keeps changing);
- :class:`TradeExecuted`: a paper fill.

Listeners are called synchronously, inside the venue call that made the change; one that raises
is logged and the venue call goes on, because a broken socket must never fail an order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bastion.simulators.paper.instruments import Instrument
from bastion.simulators.paper.orders import Trade

__all__ = ["Listener", "Listeners", "MarketMoved", "OrderChanged", "TradeExecuted", "VenueEvent"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MarketMoved:
    """The index moved to grid step ``step`` at ``timestamp_ms``."""

    step: int
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class OrderChanged:
    """One of ``account_id``'s orders changed; ``data`` is its Deribit shape just after."""

    account_id: int
    instrument: Instrument
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TradeExecuted:
    """A paper fill (its account is ``trade.account_id``)."""

    trade: Trade


VenueEvent = MarketMoved | OrderChanged | TradeExecuted
Listener = Callable[[VenueEvent], None]


class Listeners:
    """The registered listeners of one venue; falsy while nobody listens.

    Emitters check truthiness first so that, with no WebSocket subscriber, a venue call pays
    nothing for events (not even rendering an order into its Deribit shape).
    """

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def __bool__(self) -> bool:
        return bool(self._listeners)

    def add(self, listener: Listener) -> None:
        if listener not in self._listeners:
            self._listeners.append(listener)

    def remove(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def emit(self, event: VenueEvent) -> None:
        """Tell every listener; a failing listener is logged, never propagated."""
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                logger.exception("paper exchange: a venue listener failed on %s", type(event))
