"""DeribitWsSession against a real paper exchange on loopback: ids, errors, close, COD."""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager

import orjson
import pytest
from pydantic import SecretStr
from websockets.asyncio.server import ServerConnection, serve

from bastion.clock import SimClock
from bastion.errors import ErrorCode, ExchangeError, UsageError
from bastion.exchange.deribit_ws import DeribitWsSession, websocket_url
from bastion.simulators.paper import PaperExchangeApp, create_app
from bastion.simulators.paper.ws import CANCEL_REASON, websocket_state
from loopback_server import serve_on_loopback

START = 1_767_225_600.0
PERP = "BTC-PERPETUAL"
PINNED = {f"ws-client-{n}": f"ws-secret-{n}-do-not-leak" for n in range(1, 40)}
_keys = itertools.count(1)


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[PaperExchangeApp, str]]:
    """A paper exchange pinned to PINNED on a frozen SimClock, served on loopback."""
    app = create_app(clock=SimClock(START), seed=3, allowed_credentials=PINNED)
    websocket_state(app).heartbeat_unit = 0.01  # interval 10 -> 0.1 s of wall time
    with serve_on_loopback(app) as url:
        yield app, url


@pytest.fixture
async def make_session(
    live: tuple[PaperExchangeApp, str],
) -> AsyncIterator[Callable[..., DeribitWsSession]]:
    """Builds sessions on fresh pinned keys; all are closed at the end."""
    made: list[DeribitWsSession] = []

    def make(secret: str | None = None, timeout: float = 5.0) -> DeribitWsSession:
        key = f"ws-client-{next(_keys)}"
        session = DeribitWsSession(
            base_url=live[1],
            client_id=key,
            client_secret=SecretStr(secret if secret is not None else PINNED[key]),
            timeout=timeout,
        )
        made.append(session)
        return session

    yield make
    for session in made:
        await session.close()


async def test_concurrent_requests_are_matched_by_id(
    make_session: Callable[..., DeribitWsSession],
) -> None:
    """Many requests in flight at once each get their own reply, matched by id."""
    session = make_session()
    await session.connect()
    instruments = await session.request("public/get_instruments", {"currency": "BTC"})
    names = [i["instrument_name"] for i in instruments[:15]]
    tickers = await asyncio.gather(
        *(session.request("public/ticker", {"instrument_name": n}) for n in names),
        session.request("public/test"),
        session.request("private/get_account_summary", {"currency": "ETH"}),
    )
    assert [t["instrument_name"] for t in tickers[: len(names)]] == names
    assert set(tickers[-2]) == {"version"}
    assert tickers[-1]["currency"] == "ETH"


@pytest.mark.parametrize(
    ("method", "params", "exchange_code", "code"),
    [
        ("public/ticker", {"instrument_name": "BTC-NOPE"}, 10020, ErrorCode.NOT_FOUND),
        ("public/ticker", {}, -32602, ErrorCode.BAD_REQUEST),
        ("public/nope", {}, -32601, ErrorCode.NOT_FOUND),
        ("public/test", {"expected_result": "exception"}, 11094, ErrorCode.SERVER),
        (
            "private/buy",
            {"instrument_name": PERP, "amount": 15, "price": 85_000},
            10021,
            ErrorCode.BAD_REQUEST,
        ),
    ],
)
async def test_rpc_errors_map_to_exchange_errors(
    method: str,
    params: dict[str, object],
    exchange_code: int,
    code: ErrorCode,
    make_session: Callable[..., DeribitWsSession],
) -> None:
    """A JSON-RPC error becomes ExchangeError with Deribit's code and our taxonomy's code."""
    session = make_session()
    with pytest.raises(ExchangeError) as caught:
        await session.request(method, params)
    assert (caught.value.exchange_code, caught.value.code) == (exchange_code, code)
    assert caught.value.dependency == f"deribit {method}"
    assert await session.request("public/test")  # the session survives an error reply


@asynccontextmanager
async def _scripted_server(
    script: Callable[[ServerConnection], Awaitable[None]],
) -> AsyncIterator[str]:
    """A bare WebSocket server: answers public/auth, then hands the socket to ``script``."""

    async def handler(conn: ServerConnection) -> None:
        auth = orjson.loads(await conn.recv())
        await conn.send(orjson.dumps({"jsonrpc": "2.0", "id": auth["id"], "result": {}}).decode())
        await script(conn)

    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"http://127.0.0.1:{port}"


async def test_replies_out_of_order_reach_their_callers() -> None:
    """Replies sent in reverse order still reach the request that asked, by id."""

    async def reverse(conn: ServerConnection) -> None:
        requests = [orjson.loads(await conn.recv()) for _ in range(3)]
        for request in reversed(requests):
            reply = {"jsonrpc": "2.0", "id": request["id"], "result": request["params"]["n"]}
            await conn.send(orjson.dumps(reply).decode())
        await conn.wait_closed()

    async with _scripted_server(reverse) as url:
        session = DeribitWsSession(base_url=url, client_id="c", client_secret=SecretStr("s"))
        await session.connect()
        results = await asyncio.gather(
            *(session.request("public/echo", {"n": n}) for n in range(3))
        )
        assert results == [0, 1, 2]
        await session.close()


async def test_drop_mid_request_is_network() -> None:
    """A request in flight when the server drops the connection fails NETWORK, not a hang."""

    async def drop(conn: ServerConnection) -> None:
        await conn.recv()
        conn.transport.abort()

    async with _scripted_server(drop) as url:
        session = DeribitWsSession(base_url=url, client_id="c", client_secret=SecretStr("s"))
        await session.connect()
        with pytest.raises(ExchangeError) as caught:
            await session.request("public/test")
        assert caught.value.code is ErrorCode.NETWORK
        await session.close()


async def test_wrong_secret_is_auth_and_never_shown(
    make_session: Callable[..., DeribitWsSession],
) -> None:
    """Refused credentials are AUTH (13004); the secret is in no message or repr."""
    session = make_session(secret="wrong-secret-do-not-leak")
    with pytest.raises(ExchangeError) as caught:
        await session.connect()
    assert (caught.value.code, caught.value.exchange_code) == (ErrorCode.AUTH, 13004)
    assert not session.connected
    for text in (str(caught.value), repr(caught.value), repr(session)):
        assert "do-not-leak" not in text


async def test_unreachable_exchange_is_network() -> None:
    """A port nobody listens on is ExchangeError NETWORK, not a raw OSError."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    session = DeribitWsSession(
        base_url=f"http://127.0.0.1:{port}",
        client_id="nobody",
        client_secret=SecretStr("s"),
        timeout=2.0,
    )
    with pytest.raises(ExchangeError) as caught:
        await session.request("public/test")
    assert caught.value.code is ErrorCode.NETWORK
    await session.close()


async def test_close_is_clean_and_final(
    make_session: Callable[..., DeribitWsSession], live: tuple[PaperExchangeApp, str]
) -> None:
    """close() sends a close frame the server sees; the session cannot be reused after it."""
    session = make_session()
    await session.connect()
    await session.close()
    await session.close()  # idempotent
    assert not session.connected
    state = websocket_state(live[0])
    closed = await asyncio.to_thread(state.wait_for_close, session._client_id, 5.0)
    assert closed is not None
    with pytest.raises(UsageError):
        await session.request("public/test")


async def test_abort_cancels_with_cod_then_reconnects(
    make_session: Callable[..., DeribitWsSession], live: tuple[PaperExchangeApp, str]
) -> None:
    """abort() drops TCP: COD cancels the order; the next request reconnects with COD back on."""
    session = make_session()
    await session.connect()
    await session.enable_cancel_on_disconnect()
    placed = await session.request(
        "private/buy", {"instrument_name": PERP, "amount": 10, "price": 85_000}
    )
    order_id = placed["order"]["order_id"]
    await session.abort()
    assert not session.connected
    state = websocket_state(live[0])
    closed = await asyncio.to_thread(state.wait_for_close, session._client_id, 5.0)
    assert closed is not None
    assert closed.cancelled == (order_id,)

    order = await session.request("private/get_order_state", {"order_id": order_id})
    assert (order["order_state"], order["cancel_reason"]) == ("cancelled", CANCEL_REASON)
    assert session.connects == 2
    cod = await session.request("private/get_cancel_on_disconnect")
    assert cod == {"scope": "connection", "enabled": True}


async def test_heartbeats_are_answered(make_session: Callable[..., DeribitWsSession]) -> None:
    """The reader answers test_request with public/test, so the exchange keeps the socket."""
    session = make_session()
    await session.set_heartbeat(10)
    await asyncio.sleep(0.5)  # five beats at 0.1 s; one unanswered beat would close it
    assert session.connected
    assert session.connects == 1
    await session.request("public/disable_heartbeat")


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("http://127.0.0.1:8000", "ws://127.0.0.1:8000/ws/api/v2"),
        ("https://test.deribit.com/", "wss://test.deribit.com/ws/api/v2"),
        ("wss://www.deribit.com/ws/api/v2", "wss://www.deribit.com/ws/api/v2"),
    ],
)
def test_websocket_url(base_url: str, expected: str) -> None:
    """The socket URL is derived from the REST base URL's scheme and host."""
    assert websocket_url(base_url) == expected


def test_plain_str_secret_is_refused() -> None:
    """The secret must be a SecretStr, as for the HTTP client."""
    with pytest.raises(UsageError):
        DeribitWsSession(base_url="http://x", client_id="a", client_secret="s")  # type: ignore[arg-type]
