"""The paper exchange's WebSocket face: JSON-RPC frames, connection auth, cancel-on-disconnect."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
from paper_support import PERP, START
from websockets.asyncio.client import ClientConnection, connect

from bastion.clock import SimClock
from bastion.simulators.paper import PaperExchangeApp, create_app
from bastion.simulators.paper.auth import signature
from bastion.simulators.paper.ws import CANCEL_REASON, Disconnect, websocket_state
from loopback_server import serve_on_loopback

_LIVENESS_S = 5.0
_accounts = itertools.count(1)


class Socket:
    """A raw JSON-RPC WebSocket to the paper exchange, one request at a time."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self._ids = itertools.count(1)

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The whole reply envelope to one request."""
        message = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        return await self.raw(orjson.dumps(message).decode())

    async def raw(self, text: str) -> dict[str, Any]:
        await self.conn.send(text)
        while True:
            reply: dict[str, Any] = orjson.loads(await self.conn.recv())
            if reply.get("method") != "heartbeat":
                return reply

    async def result(self, method: str, **params: Any) -> Any:
        reply = await self.send(method, params)
        assert "result" in reply, reply
        return reply["result"]

    async def login(self, client_id: str) -> dict[str, Any]:
        return await self.result(  # type: ignore[no-any-return]
            "public/auth",
            grant_type="client_credentials",
            client_id=client_id,
            client_secret=f"{client_id}-secret",
        )

    def drop(self) -> None:
        """Cut the TCP connection with no close frame."""
        self.conn.transport.abort()


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[PaperExchangeApp, str]]:
    """A sandbox paper exchange on a frozen SimClock, served on loopback for this module."""
    app = create_app(clock=SimClock(START), seed=1)
    websocket_state(app).heartbeat_unit = 0.01  # interval 10 -> 0.1 s of wall time
    with serve_on_loopback(app) as url:
        yield app, url


@pytest.fixture
def app(live: tuple[PaperExchangeApp, str]) -> PaperExchangeApp:
    return live[0]


@pytest.fixture
def client_id() -> str:
    """A fresh sandbox account for each test."""
    return f"ws-{next(_accounts)}"


@pytest.fixture
async def http(live: tuple[PaperExchangeApp, str]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live[1]) as client:
        yield client


@pytest.fixture
async def open_socket(
    live: tuple[PaperExchangeApp, str],
) -> AsyncIterator[Callable[[], Any]]:
    """Opens sockets to the live exchange; whatever is left open is closed at the end."""
    url = live[1].replace("http://", "ws://") + "/ws/api/v2"
    opened: list[ClientConnection] = []

    async def make() -> Socket:
        conn = await connect(url)
        opened.append(conn)
        return Socket(conn)

    yield make
    for conn in opened:
        await conn.close()


async def http_call(
    http: httpx.AsyncClient, method: str, params: dict[str, Any], token: str | None = None
) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await http.post(f"/api/v2/{method}", json=body, headers=headers)
    envelope: dict[str, Any] = response.json()
    return envelope


async def rest_login(http: httpx.AsyncClient, client_id: str) -> str:
    params = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": f"{client_id}-secret",
    }
    token: str = (await http_call(http, "public/auth", params))["result"]["access_token"]
    return token


async def resting_buy(sock: Socket, price: float = 85_000) -> str:
    order = (await sock.result("private/buy", instrument_name=PERP, amount=10, price=price))[
        "order"
    ]
    assert order["order_state"] == "open"
    return str(order["order_id"])


async def wait_closed(app: PaperExchangeApp, client_id: str) -> Disconnect:
    """The server's record of ``client_id``'s socket closing (bounded by the liveness limit)."""
    state = websocket_state(app)
    record = await asyncio.to_thread(state.wait_for_close, client_id, _LIVENESS_S)
    assert record is not None, f"the server never saw {client_id}'s socket close"
    return record


async def order_state_over_http(http: httpx.AsyncClient, token: str, order_id: str) -> Any:
    reply = await http_call(http, "private/get_order_state", {"order_id": order_id}, token)
    return reply["result"]


# -- calls ------------------------------------------------------------------------------------


async def test_calls_answer_as_over_http(
    open_socket: Callable[[], Any], http: httpx.AsyncClient, client_id: str
) -> None:
    """A public and a private call over the socket give HTTP's result in HTTP's envelope."""
    sock = await open_socket()
    await sock.login(client_id)
    token = await rest_login(http, client_id)
    for method, params in [
        ("public/ticker", {"instrument_name": PERP}),
        ("private/get_account_summary", {"currency": "BTC"}),
    ]:
        over_ws = await sock.send(method, params)
        over_http = await http_call(http, method, params, token)
        assert list(over_ws) == ["jsonrpc", "id", "result", "usIn", "usOut", "usDiff", "testnet"]
        assert over_ws["result"] == over_http["result"]
        assert over_ws["testnet"] is True


@pytest.mark.parametrize("grant", ["client_credentials", "client_signature", "refresh_token"])
async def test_auth_authenticates_the_connection(
    grant: str, open_socket: Callable[[], Any], http: httpx.AsyncClient, client_id: str
) -> None:
    """Each grant type authenticates the socket; later private calls carry no token."""
    sock = await open_socket()
    secret = f"{client_id}-secret"
    if grant == "client_credentials":
        params: dict[str, Any] = {"client_id": client_id, "client_secret": secret}
    elif grant == "client_signature":
        await rest_login(http, client_id)  # the sandbox learns the secret on first use
        ts = round(START * 1000)
        params = {
            "client_id": client_id,
            "timestamp": ts,
            "nonce": str(ts),
            "data": "",
            "signature": signature(secret, ts, str(ts), ""),
        }
    else:
        first = await sock.login(client_id)
        sock = await open_socket()
        params = {"refresh_token": first["refresh_token"]}
    await sock.result("public/auth", grant_type=grant, **params)
    summary = await sock.result("private/get_account_summary", currency="BTC")
    assert summary["currency"] == "BTC"


async def test_access_token_param_is_accepted(
    open_socket: Callable[[], Any], http: httpx.AsyncClient, client_id: str
) -> None:
    """A private call on an unauthenticated socket may carry ``access_token`` instead."""
    token = await rest_login(http, client_id)
    sock = await open_socket()
    summary = await sock.result("private/get_account_summary", currency="BTC", access_token=token)
    assert summary["currency"] == "BTC"


@pytest.mark.parametrize(
    ("frame", "code", "has_id"),
    [
        ('{"jsonrpc":"2.0","id":1,"method":"private/get_positions","params":{}}', 10000, True),
        ('{"jsonrpc":"2.0","id":2,"method":"public/nope","params":{}}', -32601, True),
        ('{"jsonrpc":"2.0","id":3,"method":"public/ticker","params":{}}', -32602, True),
        ('{"jsonrpc":"2.0","id":4,"method":"public/ticker","params":[1]}', -32602, True),
        (
            '{"jsonrpc":"2.0","id":5,"method":"public/test","params":{"expected_result":'
            '"exception"}}',
            11094,
            True,
        ),
        ('{"jsonrpc":"2.0","method":"public/test","params":{}}', -32600, False),
        ("[1, 2]", -32600, False),
        ("not json", -32700, False),
    ],
)
async def test_errors_are_shaped_as_over_http(
    frame: str, code: int, has_id: bool, open_socket: Callable[[], Any]
) -> None:
    """Bad frames get Deribit's error object and code, echoing the id when there is one."""
    reply = await (await open_socket()).raw(frame)
    assert reply["error"]["code"] == code
    assert isinstance(reply["error"]["message"], str)
    assert ("id" in reply) is has_id
    assert "result" not in reply


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        "[1, 2]",
        '{"jsonrpc":"2.0","id":1,"method":5}',
        '{"jsonrpc":"2.0","id":2,"method":"public/nope","params":[1]}',
        '{"jsonrpc":"2.0","id":3,"method":"public/ticker","params":[1]}',
        '{"jsonrpc":"2.0","id":4,"method":"public/ticker","params":{}}',
        '{"jsonrpc":"2.0","id":5,"method":"public/test","params":{"label":"' + "x" * 33_000 + '"}}',
    ],
)
async def test_frames_and_bodies_are_refused_alike(
    frame: str, open_socket: Callable[[], Any], http: httpx.AsyncClient
) -> None:
    """The same bad request gets the same error code as a frame and as a POST body."""
    over_ws = await (await open_socket()).raw(frame)
    over_http = (await http.post("/api/v2", content=frame.encode())).json()
    assert over_ws["error"]["code"] == over_http["error"]["code"]
    assert over_ws.get("id") == over_http.get("id")


# -- cancel-on-disconnect: the switch ------------------------------------------------------


@pytest.mark.parametrize("scope", ["connection", "account"])
async def test_enable_get_disable(
    scope: str, open_socket: Callable[[], Any], client_id: str
) -> None:
    """enable/disable answer "ok" and get_cancel_on_disconnect reports the scope's state."""
    sock = await open_socket()
    await sock.login(client_id)
    assert await sock.result("private/get_cancel_on_disconnect", scope=scope) == {
        "scope": scope,
        "enabled": False,
    }
    assert await sock.result("private/enable_cancel_on_disconnect", scope=scope) == "ok"
    got = await sock.result("private/get_cancel_on_disconnect", scope=scope)
    assert got == {"scope": scope, "enabled": True}
    assert await sock.result("private/disable_cancel_on_disconnect", scope=scope) == "ok"
    got = await sock.result("private/get_cancel_on_disconnect", scope=scope)
    assert got["enabled"] is False


async def test_enable_needs_auth(open_socket: Callable[[], Any]) -> None:
    """Enabling cancel-on-disconnect on an unauthenticated socket is 10000."""
    reply = await (await open_socket()).send("private/enable_cancel_on_disconnect", {})
    assert reply["error"]["code"] == 10000


@pytest.mark.parametrize(
    "method", ["private/enable_cancel_on_disconnect", "private/disable_cancel_on_disconnect"]
)
async def test_rest_cannot_switch_cancel_on_disconnect(
    method: str, http: httpx.AsyncClient, client_id: str
) -> None:
    """Over REST the switch stays 10030 must_be_websocket_request."""
    token = await rest_login(http, client_id)
    reply = await http_call(http, method, {"scope": "account"}, token)
    assert reply["error"]["code"] == 10030


# -- cancel-on-disconnect: the acceptance ----------------------------------------------------


async def test_dropped_socket_with_cod_cancels_resting_orders(
    open_socket: Callable[[], Any],
    http: httpx.AsyncClient,
    app: PaperExchangeApp,
    client_id: str,
    request: pytest.FixtureRequest,
) -> None:
    """Dropping the TCP connection (no close frame) cancels the socket's resting orders."""
    sock = await open_socket()
    await sock.login(client_id)
    token = await rest_login(http, client_id)
    orders = [await resting_buy(sock, 85_000), await resting_buy(sock, 84_000)]
    await sock.result("private/enable_cancel_on_disconnect")

    dropped = time.monotonic()
    sock.drop()
    record = await wait_closed(app, client_id)
    seen_by_server = time.monotonic() - dropped
    deadline = dropped + _LIVENESS_S
    while (await order_state_over_http(http, token, orders[0]))["order_state"] == "open":
        assert time.monotonic() < deadline, "orders still resting after the liveness bound"
        await asyncio.sleep(0.01)
    seen_over_http = time.monotonic() - dropped
    # Observed, not asserted (wall clock on a shared box): the acceptance target is 1 s.
    request.node.user_properties += [
        ("disconnect_to_cancel_seconds", round(seen_by_server, 4)),
        ("disconnect_to_http_seconds", round(seen_over_http, 4)),
    ]

    assert record.scope == "connection"
    assert sorted(record.cancelled) == sorted(orders)
    for order_id in orders:
        order = await order_state_over_http(http, token, order_id)
        assert (order["order_state"], order["cancel_reason"]) == ("cancelled", CANCEL_REASON)


async def test_dropped_socket_without_cod_leaves_orders(
    open_socket: Callable[[], Any], http: httpx.AsyncClient, app: PaperExchangeApp, client_id: str
) -> None:
    """Without cancel-on-disconnect a dropped socket leaves its orders resting."""
    sock = await open_socket()
    await sock.login(client_id)
    order_id = await resting_buy(sock)
    sock.drop()
    record = await wait_closed(app, client_id)
    assert (record.scope, record.cancelled) == (None, ())
    token = await rest_login(http, client_id)
    assert (await order_state_over_http(http, token, order_id))["order_state"] == "open"


async def test_clean_close_with_cod_cancels(
    open_socket: Callable[[], Any], http: httpx.AsyncClient, app: PaperExchangeApp, client_id: str
) -> None:
    """A polite close frame cancels too: cancel-on-disconnect is about the socket ending."""
    sock = await open_socket()
    await sock.login(client_id)
    order_id = await resting_buy(sock)
    await sock.result("private/enable_cancel_on_disconnect")
    await sock.conn.close()
    assert (await wait_closed(app, client_id)).cancelled == (order_id,)
    token = await rest_login(http, client_id)
    order = await order_state_over_http(http, token, order_id)
    assert order["cancel_reason"] == CANCEL_REASON


async def test_connection_scope_spares_orders_placed_elsewhere(
    open_socket: Callable[[], Any], http: httpx.AsyncClient, app: PaperExchangeApp, client_id: str
) -> None:
    """Scope connection cancels only what this socket placed, not the account's HTTP orders."""
    token = await rest_login(http, client_id)
    params = {"instrument_name": PERP, "amount": 10, "price": 85_000}
    by_http = (await http_call(http, "private/buy", params, token))["result"]["order"]["order_id"]
    sock = await open_socket()
    await sock.login(client_id)
    by_ws = await resting_buy(sock, 84_000)
    await sock.result("private/enable_cancel_on_disconnect", scope="connection")
    sock.drop()
    assert (await wait_closed(app, client_id)).cancelled == (by_ws,)
    assert (await order_state_over_http(http, token, by_http))["order_state"] == "open"


async def test_account_scope_cancels_every_resting_order(
    open_socket: Callable[[], Any], http: httpx.AsyncClient, app: PaperExchangeApp, client_id: str
) -> None:
    """Scope account cancels all the account's resting orders, HTTP-placed ones included."""
    token = await rest_login(http, client_id)
    params = {"instrument_name": PERP, "amount": 10, "price": 85_000}
    by_http = (await http_call(http, "private/buy", params, token))["result"]["order"]["order_id"]
    sock = await open_socket()
    await sock.login(client_id)
    await sock.result("private/enable_cancel_on_disconnect", scope="account")
    sock.drop()
    record = await wait_closed(app, client_id)
    assert (record.scope, record.cancelled) == ("account", (by_http,))
    order = await order_state_over_http(http, token, by_http)
    assert order["cancel_reason"] == CANCEL_REASON
    websocket_state(app).account_cod.discard(client_id)


async def test_logout_does_not_cancel(
    open_socket: Callable[[], Any], http: httpx.AsyncClient, app: PaperExchangeApp, client_id: str
) -> None:
    """private/logout closes the socket without cancelling, as Deribit documents."""
    sock = await open_socket()
    await sock.login(client_id)
    order_id = await resting_buy(sock)
    await sock.result("private/enable_cancel_on_disconnect")
    await sock.conn.send(orjson.dumps({"jsonrpc": "2.0", "id": 99, "method": "private/logout"}))
    assert (await wait_closed(app, client_id)).cancelled == ()
    token = await rest_login(http, client_id)
    assert (await order_state_over_http(http, token, order_id))["order_state"] == "open"


# -- heartbeat --------------------------------------------------------------------------------


async def test_heartbeat_interval_below_ten_is_refused(open_socket: Callable[[], Any]) -> None:
    """public/set_heartbeat needs an interval of at least 10 s (11029 otherwise)."""
    reply = await (await open_socket()).send("public/set_heartbeat", {"interval": 5})
    assert (reply["error"]["code"], reply["error"]["data"]["param"]) == (11029, "interval")


async def test_unanswered_heartbeat_disconnects_and_cancels(
    open_socket: Callable[[], Any], app: PaperExchangeApp, client_id: str
) -> None:
    """A client that ignores test_request is disconnected, and cancel-on-disconnect fires."""
    sock = await open_socket()
    await sock.login(client_id)
    order_id = await resting_buy(sock)
    await sock.result("private/enable_cancel_on_disconnect")
    assert await sock.result("public/set_heartbeat", interval=10) == "ok"
    beat = orjson.loads(await asyncio.wait_for(sock.conn.recv(), _LIVENESS_S))
    assert beat == {"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": "test_request"}}
    assert (await wait_closed(app, client_id)).cancelled == (order_id,)
