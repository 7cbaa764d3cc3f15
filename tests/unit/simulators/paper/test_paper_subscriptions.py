"""Subscriptions over the WebSocket face: channels, notification shapes, auth rules, the feed."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
from paper_support import PERP, START
from websockets.asyncio.client import ClientConnection, connect

from bastion.clock import SimClock
from bastion.simulators.paper import PaperExchangeApp, create_app
from loopback_server import serve_on_loopback

_BOUND_S = 5.0  # how long a missing notification is waited for before the test fails
_accounts = itertools.count(1)

TICKER = f"ticker.{PERP}.100ms"
BOOK = f"book.{PERP}.100ms"


class Stream:
    """A JSON-RPC socket that keeps notifications apart from replies."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self._ids = itertools.count(1)
        self.notes: list[dict[str, Any]] = []

    async def _frame(self) -> dict[str, Any]:
        frame: dict[str, Any] = orjson.loads(await asyncio.wait_for(self.conn.recv(), _BOUND_S))
        return frame

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """The reply to one request; notifications that arrive meanwhile are kept."""
        rpc_id = next(self._ids)
        message = {"jsonrpc": "2.0", "id": rpc_id, "method": method, "params": params}
        await self.conn.send(orjson.dumps(message).decode())
        while True:
            frame = await self._frame()
            if frame.get("id") == rpc_id:
                return frame
            self.notes.append(frame)

    async def result(self, method: str, **params: Any) -> Any:
        reply = await self.call(method, **params)
        assert "result" in reply, reply
        return reply["result"]

    async def login(self) -> str:
        client_id = f"sub-{next(_accounts)}"
        await self.result(
            "public/auth",
            grant_type="client_credentials",
            client_id=client_id,
            client_secret=f"{client_id}-secret",
        )
        return client_id

    async def next(self, channel: str) -> Any:
        """The ``data`` of the next notification on ``channel``."""
        for i, note in enumerate(self.notes):
            if note["params"]["channel"] == channel:
                return self.notes.pop(i)["params"]["data"]
        while True:
            frame = await self._frame()
            assert frame["method"] == "subscription", frame
            assert set(frame) == {"jsonrpc", "method", "params"}
            assert set(frame["params"]) == {"channel", "data"}
            if frame["params"]["channel"] == channel:
                return frame["params"]["data"]
            self.notes.append(frame)


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[PaperExchangeApp, SimClock, str]]:
    """A sandbox exchange on a SimClock, served on loopback, its feed ticking every 10 ms."""
    clock = SimClock(START)
    app = create_app(clock=clock, seed=1)
    app.feed.tick_seconds = 0.01
    with serve_on_loopback(app) as url:
        yield app, clock, url


@pytest.fixture
def clock(live: tuple[PaperExchangeApp, SimClock, str]) -> SimClock:
    return live[1]


@pytest.fixture
async def http(live: tuple[PaperExchangeApp, SimClock, str]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live[2]) as client:
        yield client


@pytest.fixture
async def open_stream(
    live: tuple[PaperExchangeApp, SimClock, str],
) -> AsyncIterator[Callable[[], Any]]:
    """Opens sockets to the live exchange; whatever is left open is closed at the end."""
    url = live[2].replace("http://", "ws://") + "/ws/api/v2"
    opened: list[ClientConnection] = []

    async def make() -> Stream:
        conn = await connect(url)
        opened.append(conn)
        return Stream(conn)

    yield make
    for conn in opened:
        await conn.close()


async def over_http(
    http: httpx.AsyncClient, method: str, token: str | None = None, **params: Any
) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    envelope: dict[str, Any] = (
        await http.post(f"/api/v2/{method}", json=body, headers=headers)
    ).json()
    return envelope


async def token_for(http: httpx.AsyncClient, client_id: str) -> str:
    reply = await over_http(
        http,
        "public/auth",
        grant_type="client_credentials",
        client_id=client_id,
        client_secret=f"{client_id}-secret",
    )
    return str(reply["result"]["access_token"])


def apply(book: dict[float, float], changes: list[list[Any]]) -> None:
    for action, price, amount in changes:
        if action == "delete":
            book.pop(price)
        else:
            book[price] = amount


# -- market channels --------------------------------------------------------------------------


async def test_ticker_notification_names_the_instrument(
    open_stream: Callable[[], Any], http: httpx.AsyncClient
) -> None:
    """public/subscribe answers the channel; the first notification is the ticker as over HTTP."""
    stream = await open_stream()
    assert await stream.result("public/subscribe", channels=[TICKER]) == [TICKER]
    data = await stream.next(TICKER)
    assert data["instrument_name"] == PERP
    assert data == (await over_http(http, "public/ticker", instrument_name=PERP))["result"]


async def test_ticker_follows_the_clock(
    open_stream: Callable[[], Any], clock: SimClock, http: httpx.AsyncClient
) -> None:
    """When the clock moves, the feed's tick brings the market along and notifies the ticker."""
    stream = await open_stream()
    await stream.result("public/subscribe", channels=[TICKER])
    first = await stream.next(TICKER)
    clock.advance(5)
    second = await stream.next(TICKER)
    assert second["timestamp"] == first["timestamp"] + 5000
    index = (await over_http(http, "public/get_index_price", index_name="btc_usd"))["result"]
    assert second["index_price"] == index["index_price"]


async def test_book_snapshot_then_changes_rebuild_the_book(
    open_stream: Callable[[], Any], clock: SimClock, http: httpx.AsyncClient
) -> None:
    """A snapshot, then changes chained by prev_change_id that rebuild the book exactly."""
    stream = await open_stream()
    await stream.result("public/subscribe", channels=[BOOK])
    snapshot = await stream.next(BOOK)
    assert (snapshot["type"], snapshot["instrument_name"]) == ("snapshot", PERP)
    assert "prev_change_id" not in snapshot
    assert all(action == "new" for action, _, _ in snapshot["bids"] + snapshot["asks"])
    bids = {price: amount for _, price, amount in snapshot["bids"]}
    asks = {price: amount for _, price, amount in snapshot["asks"]}
    previous = snapshot["change_id"]
    for _ in range(3):
        clock.advance(3)
        change = await stream.next(BOOK)
        assert change["type"] == "change"
        assert change["prev_change_id"] == previous
        assert change["change_id"] > previous
        previous = change["change_id"]
        apply(bids, change["bids"])
        apply(asks, change["asks"])
    book = (await over_http(http, "public/get_order_book", instrument_name=PERP))["result"]
    assert sorted(bids.items(), reverse=True) == [tuple(level) for level in book["bids"]]
    assert sorted(asks.items()) == [tuple(level) for level in book["asks"]]


async def test_grouped_book_is_whole_and_grouped(
    open_stream: Callable[[], Any], http: httpx.AsyncClient
) -> None:
    """book.{instrument}.10.10.100ms sends [price, amount] levels on multiples of 10."""
    channel = f"book.{PERP}.10.10.100ms"
    stream = await open_stream()
    assert await stream.result("public/subscribe", channels=[channel]) == [channel]
    data = await stream.next(channel)
    book = (await over_http(http, "public/get_order_book", instrument_name=PERP))["result"]
    assert data["instrument_name"] == PERP
    assert [price for price, _ in data["bids"]] == sorted(
        {price // 10 * 10 for price, _ in book["bids"]}, reverse=True
    )
    assert all(price % 10 == 0 for price, _ in data["bids"] + data["asks"])
    assert sum(a for _, a in data["bids"]) == sum(a for _, a in book["bids"])
    assert data["asks"][0][0] >= book["asks"][0][0]


async def test_trades_channel_shows_fills_without_their_owner(
    open_stream: Callable[[], Any], http: httpx.AsyncClient
) -> None:
    """An unauthenticated watcher sees another account's fill: price, size, taker side only."""
    channel = f"trades.{PERP}.100ms"
    watcher = await open_stream()
    assert await watcher.result("public/subscribe", channels=[channel]) == [channel]
    token = await token_for(http, f"sub-{next(_accounts)}")
    bought = await over_http(
        http, "private/buy", token, instrument_name=PERP, amount=100, type="market"
    )
    (fill,) = bought["result"]["trades"]
    (trade,) = await watcher.next(channel)
    assert (trade["trade_id"], trade["price"], trade["amount"], trade["direction"]) == (
        fill["trade_id"],
        fill["price"],
        100,
        "buy",
    )
    assert trade["instrument_name"] == PERP
    assert not {"order_id", "fee", "label", "profit_loss"} & set(trade)


# -- user channels ----------------------------------------------------------------------------


async def test_user_orders_raw_sends_each_change(open_stream: Callable[[], Any]) -> None:
    """user.orders.any.any.raw: one order object per change, placed then cancelled."""
    channel = "user.orders.any.any.raw"
    stream = await open_stream()
    await stream.login()
    assert await stream.result("private/subscribe", channels=[channel]) == [channel]
    placed = await stream.result("private/buy", instrument_name=PERP, amount=10, price=85_000)
    order_id = placed["order"]["order_id"]
    opened = await stream.next(channel)
    assert (opened["order_id"], opened["order_state"]) == (order_id, "open")
    await stream.result("private/cancel", order_id=order_id)
    cancelled = await stream.next(channel)
    assert (cancelled["order_id"], cancelled["order_state"]) == (order_id, "cancelled")


async def test_user_orders_interval_sends_lists_and_only_mine(
    open_stream: Callable[[], Any], http: httpx.AsyncClient
) -> None:
    """user.orders.future.BTC.100ms sends lists, and never another account's orders."""
    channel = "user.orders.future.BTC.100ms"
    stream = await open_stream()
    mine = await stream.login()
    await stream.result("private/subscribe", channels=[channel])
    other = await token_for(http, f"sub-{next(_accounts)}")
    await over_http(http, "private/buy", other, instrument_name=PERP, amount=10, price=85_000)
    token = await token_for(http, mine)
    placed = await over_http(
        http, "private/buy", token, instrument_name=PERP, amount=20, type="market"
    )
    orders = await stream.next(channel)
    assert isinstance(orders, list)
    assert [(o["order_id"], o["order_state"]) for o in orders] == [
        (placed["result"]["order"]["order_id"], "filled")
    ]


async def test_user_trades_and_portfolio(open_stream: Callable[[], Any]) -> None:
    """A fill reaches user.trades with its fee, and user.portfolio shows the fee paid."""
    trades, portfolio = f"user.trades.{PERP}.raw", "user.portfolio.btc"
    stream = await open_stream()
    await stream.login()
    assert await stream.result("private/subscribe", channels=[trades, portfolio]) == [
        trades,
        portfolio,
    ]
    before = await stream.next(portfolio)
    assert (before["currency"], before["balance"]) == ("BTC", 10.0)
    bought = await stream.result("private/buy", instrument_name=PERP, amount=100, type="market")
    (fill,) = await stream.next(trades)
    assert (fill["order_id"], fill["fee"]) == (
        bought["order"]["order_id"],
        bought["trades"][0]["fee"],
    )
    after = await stream.next(portfolio)
    assert after["balance"] == round(10.0 - fill["fee"], 10)


# -- rules ------------------------------------------------------------------------------------


async def test_private_channels_need_an_authenticated_session(
    open_stream: Callable[[], Any],
) -> None:
    """private/subscribe is 10000 without auth; public/subscribe leaves user channels out."""
    stream = await open_stream()
    reply = await stream.call("private/subscribe", channels=["user.portfolio.btc"])
    assert reply["error"]["code"] == 10000
    await stream.login()
    assert await stream.result("public/subscribe", channels=["user.portfolio.btc"]) == []


async def test_raw_market_channels_need_auth(open_stream: Callable[[], Any]) -> None:
    """A raw interval is 13778 for an anonymous session, and fine once it has authenticated."""
    channel = f"ticker.{PERP}.raw"
    stream = await open_stream()
    reply = await stream.call("public/subscribe", channels=[channel])
    assert (reply["error"]["code"], reply["error"]["message"]) == (
        13778,
        "raw_subscriptions_not_available_for_unauthorized",
    )
    await stream.login()
    assert await stream.result("public/subscribe", channels=[channel]) == [channel]
    assert (await stream.next(channel))["instrument_name"] == PERP


async def test_unservable_channels_are_left_out(open_stream: Callable[[], Any]) -> None:
    """Unknown instruments, intervals, currencies and shapes are left out of the result."""
    stream = await open_stream()
    await stream.login()
    names = [
        "ticker.BTC-1JAN20-1-C.100ms",
        f"ticker.{PERP}.1s",
        f"book.{PERP}.3.10.100ms",
        "user.portfolio.sol",
        "user.orders.swap.BTC.raw",
        "nonsense",
        TICKER,
    ]
    assert await stream.result("private/subscribe", channels=names) == [TICKER]


@pytest.mark.parametrize("channels", ["ticker.BTC-PERPETUAL.100ms", [1], None])
async def test_channels_must_be_a_list_of_names(
    open_stream: Callable[[], Any], channels: Any
) -> None:
    """channels that is not a list of strings is -32602 naming channels."""
    stream = await open_stream()
    params = {} if channels is None else {"channels": channels}
    reply = await stream.call("public/subscribe", **params)
    assert (reply["error"]["code"], reply["error"]["data"]["param"]) == (-32602, "channels")


async def test_unsubscribe_stops_notifications(
    open_stream: Callable[[], Any], clock: SimClock
) -> None:
    """After unsubscribing the ticker, the next step notifies the book and not the ticker."""
    stream = await open_stream()
    await stream.result("public/subscribe", channels=[TICKER, BOOK])
    await stream.next(TICKER)
    await stream.next(BOOK)
    assert await stream.result("public/unsubscribe", channels=[TICKER, "ticker.X.raw"]) == [TICKER]
    clock.advance(2)
    assert (await stream.next(BOOK))["type"] == "change"
    assert [n["params"]["channel"] for n in stream.notes] == []
    assert await stream.result("public/unsubscribe_all") == "ok"
    assert await stream.result("public/unsubscribe", channels=[BOOK]) == []


async def test_closing_the_last_socket_stops_the_feed(
    live: tuple[PaperExchangeApp, SimClock, str], open_stream: Callable[[], Any]
) -> None:
    """The feed lets go of a socket when it closes, and listens to nothing once none is left."""
    app = live[0]
    stream = await open_stream()
    await stream.result("public/subscribe", channels=[TICKER])
    await stream.next(TICKER)
    assert app.feed.subscribers >= 1
    await stream.conn.close()
    for _ in range(500):
        if app.feed.subscribers == 0:
            break
        await asyncio.sleep(0.01)
    assert app.feed.subscribers == 0
    assert not app.venue.events


@pytest.mark.parametrize(
    "method", ["public/subscribe", "private/subscribe", "public/unsubscribe_all"]
)
async def test_subscriptions_are_websocket_only(http: httpx.AsyncClient, method: str) -> None:
    """Over HTTP the subscription methods answer 10030 must_be_websocket_request."""
    token = await token_for(http, f"sub-{next(_accounts)}")
    reply = await over_http(http, method, token, channels=[TICKER])
    assert (reply["error"]["code"], reply["error"]["message"]) == (
        10030,
        "must_be_websocket_request",
    )
