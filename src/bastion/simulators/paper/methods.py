"""The JSON-RPC method table: each handler turns typed params into one venue call.

Handlers hold no trading logic; they only name, type and default the parameters Deribit
defines for the method and pick the venue call. Unknown parameters are ignored (ccxt sends
``include_old`` and friends), and options the paper exchange does not model (``detailed`` on
``cancel_all``, ``subaccount_id``) are accepted and ignored.

The tables name every method the exchange knows, the :data:`WEBSOCKET_ONLY` ones included: over
HTTP those answer 10030 ``must_be_websocket_request`` (Deribit serves subscriptions,
heartbeats and cancel-on-disconnect on sockets only); the WebSocket endpoint (:mod:`.ws`)
serves them itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bastion.simulators.paper.auth import Authenticator
from bastion.simulators.paper.candles import RESOLUTIONS
from bastion.simulators.paper.errors import INTERNAL_SERVER_ERROR, RpcError, invalid_param
from bastion.simulators.paper.params import Params
from bastion.simulators.paper.rules import OrderRequest
from bastion.simulators.paper.venue import PaperVenue

__all__ = ["PRIVATE", "PUBLIC", "VERSION", "WEBSOCKET_ONLY", "Call", "Handler"]

VERSION = "1.2.26"
_CURRENCY_FILTERS = ("BTC", "ETH", "USDC", "USDT", "EURR", "any")
_KINDS = ("future", "option", "spot", "future_combo", "option_combo", "any")
_ORDER_TYPE_FILTERS = (
    "all", "limit", "trigger_all", "stop_all", "stop_limit", "stop_market",
    "take_all", "take_limit", "take_market", "trailing_all", "trailing_stop",
)  # fmt: skip
_SORTING = ("asc", "desc", "default")


@dataclass(frozen=True, slots=True)
class Call:
    """One authenticated call: the venue, the authenticator, its params and its caller."""

    venue: PaperVenue
    auth: Authenticator
    params: Params
    client_id: str = ""


Handler = Callable[[Call], Any]


def _kind(params: Params) -> str | None:
    kind = params.choice("kind", _KINDS, "any")
    return None if kind == "any" else kind


def _resting_types(params: Params) -> bool:
    """Only limit orders rest here, so a filter for trigger orders matches nothing."""
    return params.choice("type", _ORDER_TYPE_FILTERS, "all") in ("all", "limit")


WEBSOCKET_ONLY = frozenset({
    "public/subscribe", "public/unsubscribe", "public/unsubscribe_all",
    "public/set_heartbeat", "public/disable_heartbeat",
    "private/subscribe", "private/unsubscribe", "private/unsubscribe_all",
    "private/enable_cancel_on_disconnect", "private/disable_cancel_on_disconnect",
    "private/get_cancel_on_disconnect", "private/logout",
})  # fmt: skip
"""Methods only a socket can serve; listed in the tables so HTTP answers 10030 for them."""


def _websocket_only(call: Call) -> None:
    raise RpcError(10030, data={"reason": "this method is served over WebSocket only"})


def _served_by_sockets(scope: str) -> dict[str, Handler]:
    return {name: _websocket_only for name in sorted(WEBSOCKET_ONLY) if name.startswith(scope)}


# -- public -------------------------------------------------------------------------------
def _test(call: Call) -> dict[str, str]:
    if call.params.text("expected_result", "") == "exception":
        raise RpcError(INTERNAL_SERVER_ERROR, data={"reason": "expected_result=exception"})
    return {"version": VERSION}


def _status(call: Call) -> dict[str, Any]:
    call.venue.sync()
    return {"locked": "false", "locked_currencies": []}


def _instruments(call: Call) -> list[dict[str, Any]]:
    p = call.params
    currency = p.choice("currency", _CURRENCY_FILTERS, "any")
    return call.venue.instruments(currency=currency, kind=_kind(p), expired=p.flag("expired"))


def _index_price(call: Call) -> dict[str, float]:
    names = {spec.index_name: code for code, spec in call.venue.specs.items()}
    return call.venue.index_price(names[call.params.choice("index_name", list(names))])


def _order_book(call: Call) -> dict[str, Any]:
    p = call.params
    return call.venue.order_book(p.text("instrument_name"), p.integer("depth", 10))


def _chart(call: Call) -> dict[str, Any]:
    p = call.params
    return call.venue.chart(
        p.text("instrument_name"),
        resolution=p.choice("resolution", list(RESOLUTIONS)),
        start_ms=p.integer("start_timestamp"),
        end_ms=p.integer("end_timestamp"),
    )


PUBLIC: dict[str, Handler] = {
    "public/auth": lambda c: c.auth.grant(c.params),
    "public/test": _test,
    "public/get_time": lambda c: c.venue.sync(),
    "public/status": _status,
    "public/get_currencies": lambda c: c.venue.currencies(),
    "public/get_instruments": _instruments,
    "public/get_index_price": _index_price,
    "public/ticker": lambda c: c.venue.ticker(c.params.text("instrument_name")),
    "public/get_order_book": _order_book,
    "public/get_tradingview_chart_data": _chart,
    **_served_by_sockets("public/"),
}


# -- private ------------------------------------------------------------------------------
def _order(direction: str) -> Handler:
    def place(call: Call) -> dict[str, Any]:
        p, venue = call.params, call.venue
        name = p.text("instrument_name")
        if "amount" in p:
            amount = p.number("amount")
        elif "contracts" in p:
            amount = p.number("contracts") * venue.market.instrument(name).contract_size
        else:
            raise invalid_param("amount", "missing required parameter")
        request = OrderRequest(
            instrument_name=name,
            direction="buy" if direction == "buy" else "sell",
            amount=amount,
            order_type=p.text("type", "limit"),
            price=p.number("price", None),
            time_in_force=p.text("time_in_force", "good_til_cancelled"),
            label=p.text("label", ""),
            post_only=p.flag("post_only"),
            reject_post_only=p.flag("reject_post_only"),
            reduce_only=p.flag("reduce_only"),
        )
        return venue.place(call.client_id, request)

    return place


def _summary(call: Call) -> dict[str, Any]:
    p = call.params
    currency = p.choice("currency", list(call.venue.specs))
    return call.venue.account_summary(call.client_id, currency, extended=p.flag("extended"))


def _positions(call: Call) -> list[dict[str, Any]]:
    currency = call.params.choice("currency", [*call.venue.specs, "any"], "any")
    return call.venue.positions(call.client_id, currency=currency, kind=_kind(call.params))


def _cancel_all_by_currency(call: Call) -> int:
    currency = call.params.choice("currency", list(call.venue.specs))
    return call.venue.cancel_all(call.client_id, currency=currency, kind=_kind(call.params))


def _cancel_all_by_instrument(call: Call) -> int:
    name = call.params.text("instrument_name")
    return call.venue.cancel_all(call.client_id, instrument_name=name)


def _open_by_currency(call: Call) -> list[dict[str, Any]]:
    p = call.params
    currency = p.choice("currency", list(call.venue.specs))
    kind, resting = _kind(p), _resting_types(p)
    orders = call.venue.open_orders(call.client_id, currency=currency, kind=kind)
    return orders if resting else []


def _open_by_instrument(call: Call) -> list[dict[str, Any]]:
    p = call.params
    name, resting = p.text("instrument_name"), _resting_types(p)
    orders = call.venue.open_orders(call.client_id, instrument_name=name)
    return orders if resting else []


def _user_trades(*, by_instrument: bool) -> Handler:
    def trades(call: Call) -> dict[str, Any]:
        p, venue = call.params, call.venue
        currency = None if by_instrument else p.choice("currency", list(venue.specs))
        name = p.text("instrument_name") if by_instrument else None
        return venue.user_trades(
            call.client_id,
            currency=currency,
            instrument_name=name,
            kind=None if by_instrument else _kind(p),
            count=p.integer("count", 10),
            newest_first=p.choice("sorting", _SORTING, "default") != "asc",
            start_ms=p.integer("start_timestamp", None),
            end_ms=p.integer("end_timestamp", None),
        )

    return trades


def _order_history(*, by_instrument: bool) -> Handler:
    def history(call: Call) -> list[dict[str, Any]]:
        p, venue = call.params, call.venue
        return venue.order_history(
            call.client_id,
            currency=None if by_instrument else p.choice("currency", list(venue.specs)),
            instrument_name=p.text("instrument_name") if by_instrument else None,
            kind=None if by_instrument else _kind(p),
            count=p.integer("count", 20),
            offset=p.integer("offset", 0),
            include_old=p.flag("include_old"),
            include_unfilled=p.flag("include_unfilled"),
        )

    return history


PRIVATE: dict[str, Handler] = {
    "private/get_account_summary": _summary,
    "private/get_account_summaries": lambda c: c.venue.account_summaries(
        c.client_id, extended=c.params.flag("extended")
    ),
    "private/get_positions": _positions,
    "private/buy": _order("buy"),
    "private/sell": _order("sell"),
    "private/cancel": lambda c: c.venue.cancel(c.client_id, c.params.text("order_id")),
    "private/cancel_all": lambda c: c.venue.cancel_all(c.client_id),
    "private/cancel_all_by_currency": _cancel_all_by_currency,
    "private/cancel_all_by_instrument": _cancel_all_by_instrument,
    "private/get_open_orders_by_currency": _open_by_currency,
    "private/get_open_orders_by_instrument": _open_by_instrument,
    "private/get_order_state": lambda c: c.venue.order_state(
        c.client_id, c.params.text("order_id")
    ),
    "private/get_order_state_by_label": lambda c: c.venue.orders_by_label(
        c.client_id,
        currency=c.params.choice("currency", list(c.venue.specs)),
        label=c.params.text("label"),
    ),
    "private/get_user_trades_by_currency": _user_trades(by_instrument=False),
    "private/get_user_trades_by_currency_and_time": _user_trades(by_instrument=False),
    "private/get_user_trades_by_instrument": _user_trades(by_instrument=True),
    "private/get_user_trades_by_instrument_and_time": _user_trades(by_instrument=True),
    "private/get_order_history_by_currency": _order_history(by_instrument=False),
    "private/get_order_history_by_instrument": _order_history(by_instrument=True),
    **_served_by_sockets("private/"),
}
