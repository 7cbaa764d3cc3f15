"""DeribitClient over its WebSocket session: the same Exchange API, with cancel-on-disconnect."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from bastion.clock import SimClock
from bastion.exchange.deribit import DeribitClient
from bastion.exchange.deribit_ws import DeribitWsSession
from bastion.market import OrderRequest
from bastion.resilience import Resilience
from bastion.simulators.paper import PaperExchangeApp, create_app
from bastion.simulators.paper.ws import websocket_state
from loopback_server import serve_on_loopback

START = 1_800_000_000.0


@pytest.fixture
def live() -> Iterator[tuple[PaperExchangeApp, str]]:
    """A paper exchange on loopback, HTTP and WebSocket on one port."""
    app = create_app(clock=SimClock(START), seed=5)
    with serve_on_loopback(app) as url:
        yield app, url


def _client(url: str, *, cancel_on_disconnect: bool) -> tuple[DeribitClient, DeribitWsSession]:
    clock = SimClock(START)
    session = DeribitWsSession(
        base_url=url,
        client_id="ws-client",
        client_secret=SecretStr("ws-secret"),
        cancel_on_disconnect=cancel_on_disconnect,
    )
    client = DeribitClient(
        base_url=url,
        client_id="ws-client",
        client_secret=SecretStr("ws-secret"),
        clock=clock,
        websocket=session,
        resilience=Resilience(clock=clock),
    )
    return client, session


async def test_the_client_trades_over_the_socket_and_cod_cancels_on_a_drop(
    live: tuple[PaperExchangeApp, str],
) -> None:
    """Orders placed through the Exchange API rest; dropping the socket cancels them."""
    app, url = live
    client, session = _client(url, cancel_on_disconnect=True)
    try:
        mark = (await client.get_ticker("BTC-PERPETUAL")).mark_price
        order = await client.place_order(
            OrderRequest("BTC-PERPETUAL", "buy", 10.0, price=float(round(mark * 0.95)))
        )
        assert session.connected
        assert [o.order_id for o in await client.get_open_orders("BTC")] == [order.order_id]
        await session.abort()  # the network drops; no close frame
        closed = await asyncio.to_thread(websocket_state(app).wait_for_close, "ws-client", 5.0)
        assert closed is not None
        assert closed.cancelled == (order.order_id,)
        after = await client.get_order_state(order.order_id)  # reconnects by itself
        assert (after.order_state, after.cancel_reason) == ("cancelled", "cancel_on_disconnect")
    finally:
        await client.close()


async def test_without_cod_a_drop_leaves_orders_resting(
    live: tuple[PaperExchangeApp, str],
) -> None:
    """Cancel-on-disconnect is opt-in: without it, the order survives the drop."""
    app, url = live
    client, session = _client(url, cancel_on_disconnect=False)
    try:
        mark = (await client.get_ticker("BTC-PERPETUAL")).mark_price
        order = await client.place_order(
            OrderRequest("BTC-PERPETUAL", "buy", 10.0, price=float(round(mark * 0.95)))
        )
        await session.abort()
        closed = await asyncio.to_thread(websocket_state(app).wait_for_close, "ws-client", 5.0)
        assert closed is not None
        assert closed.cancelled == ()
        assert (await client.get_order_state(order.order_id)).order_state == "open"
    finally:
        await client.close()
