"""DeribitClient against the real paper exchange in-process, and against scripted far sides.

The first part drives the real client and the real paper exchange through
``httpx.ASGITransport``. The second part answers with scripted replies (``httpx.MockTransport``:
a fake far side, not a mock of our code) to pin the envelope and re-auth rules that the paper
exchange has no reason to misbehave for.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from bastion.clock import SimClock
from bastion.errors import ErrorCode, ExchangeError, HaltedError
from bastion.events import Event, EventKind, Journal
from bastion.exchange.base import Exchange
from bastion.exchange.deribit import DeribitClient
from bastion.market import Instrument, OrderRequest
from bastion.resilience import BreakerState, Resilience
from bastion.simulators.paper import PaperExchangeApp, create_app
from bastion.telemetry.metrics import Metrics

SECRET = "s3cret-never-shown-7f3a"
CLIENT_ID = "bastion-test"
TTL = 900
MARGIN = 60.0


class Halt:
    """A kill switch a test can flip; the client's halt_check."""

    def __init__(self) -> None:
        self.active = False

    def __call__(self, *, reduce_only: bool = False) -> None:
        if self.active:
            raise HaltedError("halted: kill switch active")


def _calls(metrics: Metrics, method: str, outcome: str = "ok") -> float:
    value = metrics.registry.get_sample_value(
        "bastion_external_calls_total",
        {"dependency": f"deribit {method}", "layer": "exchange", "outcome": outcome},
    )
    return value or 0.0


@pytest.fixture
def clock() -> SimClock:
    return SimClock()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def halt() -> Halt:
    return Halt()


@pytest.fixture
def app(clock: SimClock) -> PaperExchangeApp:
    return create_app(clock=clock, seed=1, token_ttl_seconds=TTL)


@pytest.fixture
async def client(
    app: PaperExchangeApp, clock: SimClock, metrics: Metrics, halt: Halt
) -> AsyncIterator[DeribitClient]:
    deribit = DeribitClient(
        base_url="http://paper",
        client_id=CLIENT_ID,
        client_secret=SecretStr(SECRET),
        clock=clock,
        refresh_margin=MARGIN,
        transport=httpx.ASGITransport(app=app),
        metrics=metrics,
        halt_check=halt,
    )
    yield deribit
    await deribit.close()


def _on_tick(price: float, tick: float) -> float:
    return round(round(price / tick) * tick, 10)


async def _otm_call(client: DeribitClient) -> Instrument:
    """A call option well out of the money: a resting sell on it will not fill."""
    index = await client.get_index_price("BTC")
    calls = [
        i
        for i in await client.get_instruments("BTC", "option")
        if i.option_type == "call" and i.strike is not None and i.strike > index
    ]
    assert calls, "the paper exchange lists no OTM BTC calls"
    return max(calls, key=lambda i: i.strike or 0.0)


async def _resting_sell(client: DeribitClient, label: str) -> OrderRequest:
    """A limit sell on an OTM call priced far above the mark, so it rests on the book."""
    option = await _otm_call(client)
    ticker = await client.get_ticker(option.name)
    price = _on_tick(max(ticker.mark_price * 5, option.tick_size * 100), option.tick_size)
    return OrderRequest(
        instrument_name=option.name,
        direction="sell",
        amount=option.min_trade_amount,
        order_type="limit",
        price=price,
        label=label,
    )


# -- the real paper exchange ------------------------------------------------------------------


async def test_client_is_an_exchange(client: DeribitClient) -> None:
    """DeribitClient satisfies the Exchange protocol and carries its name."""
    assert isinstance(client, Exchange)
    assert client.name == "deribit"


async def test_auth_then_refresh_before_expiry(
    client: DeribitClient, clock: SimClock, metrics: Metrics
) -> None:
    """A token is fetched once, reused, and refreshed once the clock nears its expiry."""
    await client.get_account_summary("BTC")
    await client.get_account_summary("BTC")
    assert _calls(metrics, "public/auth") == 1

    clock.advance(TTL - MARGIN - 1)
    await client.get_account_summary("BTC")
    assert _calls(metrics, "public/auth") == 1

    clock.advance(2)
    summary = await client.get_account_summary("BTC")
    assert _calls(metrics, "public/auth") == 2
    assert _calls(metrics, "public/auth", "auth") == 0  # the refresh grant itself succeeded
    assert summary.balance > 0


async def test_auth_recovers_after_the_token_lapsed(
    client: DeribitClient, clock: SimClock, metrics: Metrics
) -> None:
    """Long after the token expired, the next private call still succeeds (refresh or re-login)."""
    await client.get_positions("BTC")
    clock.advance(TTL * 3)
    await client.get_positions("BTC")
    assert _calls(metrics, "public/auth") >= 2
    assert _calls(metrics, "private/get_positions", "auth") == 0


async def test_public_reads(client: DeribitClient, clock: SimClock) -> None:
    """Time, instruments, index and ticker come back as sane models."""
    now_ms = await client.get_time()
    assert abs(now_ms - clock.time() * 1000) < 60_000

    instruments = await client.get_instruments("BTC")
    names = {i.name for i in instruments}
    assert "BTC-PERPETUAL" in names
    assert any(i.kind == "option" for i in instruments)
    perpetual = next(i for i in instruments if i.name == "BTC-PERPETUAL")
    assert perpetual.is_perpetual
    assert perpetual.kind == "future"
    assert perpetual.amount_unit == "usd"  # an inverse perpetual trades in USD
    assert perpetual.contract_size > 0

    options = await client.get_instruments("BTC", "option")
    assert options
    assert all(i.kind == "option" and i.strike and i.option_type for i in options)
    assert {i.amount_unit for i in options} == {"coin"}

    index = await client.get_index_price("BTC")
    assert index > 0

    ticker = await client.get_ticker("BTC-PERPETUAL")
    assert ticker.instrument_name == "BTC-PERPETUAL"
    assert ticker.mark_price > 0
    assert ticker.index_price > 0

    option_ticker = await client.get_ticker(options[0].name)
    assert option_ticker.mark_price >= 0
    assert option_ticker.delta is not None
    assert -1 <= option_ticker.delta <= 1


async def test_private_reads(client: DeribitClient) -> None:
    """A fresh account has a positive balance, no open orders and no trades yet."""
    summary = await client.get_account_summary("BTC")
    assert summary.currency == "BTC"
    assert summary.balance > 0
    assert summary.equity > 0
    assert await client.get_open_orders("BTC") == []
    assert await client.get_user_trades("BTC") == []
    assert all(p.size == 0 for p in await client.get_positions("BTC"))


async def test_limit_sell_rests_then_cancels(client: DeribitClient) -> None:
    """A limit sell on an OTM option rests, shows in open orders and state, and cancels."""
    request = await _resting_sell(client, "test-rest-1")
    order = await client.place_order(request)
    assert order.order_state == "open"
    assert order.direction == "sell"
    assert order.price == request.price
    assert order.label == "test-rest-1"
    assert order.filled_amount == 0

    assert [o.order_id for o in await client.get_open_orders("BTC")] == [order.order_id]
    state = await client.get_order_state(order.order_id)
    assert state.order_state == "open"
    assert state.amount == pytest.approx(request.amount)

    cancelled = await client.cancel_order(order.order_id)
    assert cancelled.order_state == "cancelled"
    assert await client.get_open_orders("BTC") == []


async def test_market_buy_fills_into_position_and_trades(client: DeribitClient) -> None:
    """A market buy on the perpetual fills, opens a long position and is listed in user trades."""
    perpetual = next(
        i for i in await client.get_instruments("BTC", "future") if i.name == "BTC-PERPETUAL"
    )
    amount = perpetual.contract_size * 10
    order = await client.place_order(
        OrderRequest(
            instrument_name="BTC-PERPETUAL",
            direction="buy",
            amount=amount,
            order_type="market",
            label="test-mkt-1",
        )
    )
    assert order.order_state == "filled"
    assert order.price is None
    assert order.filled_amount == pytest.approx(amount)
    assert order.average_price > 0

    positions = {p.instrument_name: p for p in await client.get_positions("BTC")}
    assert positions["BTC-PERPETUAL"].size == pytest.approx(amount)
    assert positions["BTC-PERPETUAL"].direction == "buy"

    fills = [f for f in await client.get_user_trades("BTC") if f.order_id == order.order_id]
    assert fills
    assert math.fsum(f.amount for f in fills) == pytest.approx(amount)
    assert all(f.direction == "buy" and f.price > 0 for f in fills)


async def test_market_sell_gives_a_signed_short(client: DeribitClient) -> None:
    """A market sell on the perpetual shows as a position with negative size."""
    await client.place_order(
        OrderRequest(
            instrument_name="BTC-PERPETUAL", direction="sell", amount=100.0, order_type="market"
        )
    )
    positions = {p.instrument_name: p for p in await client.get_positions("BTC")}
    assert positions["BTC-PERPETUAL"].size == pytest.approx(-100.0)
    assert positions["BTC-PERPETUAL"].direction == "sell"


async def test_cancel_all_returns_the_count(client: DeribitClient) -> None:
    """cancel_all cancels every resting order and returns how many it cancelled."""
    for n in range(2):
        await client.place_order(await _resting_sell(client, f"test-all-{n}"))
    assert len(await client.get_open_orders("BTC")) == 2
    assert await client.cancel_all() == 2
    assert await client.get_open_orders("BTC") == []
    assert await client.cancel_all() == 0


async def test_unknown_instrument_is_not_found(client: DeribitClient) -> None:
    """An unknown instrument raises ExchangeError NOT_FOUND carrying Deribit's 10020."""
    with pytest.raises(ExchangeError) as info:
        await client.get_ticker("BTC-NOPE")
    error = info.value
    assert error.code is ErrorCode.NOT_FOUND
    assert error.exchange_code == 10020
    assert error.dependency == "deribit public/ticker"
    assert str(error).startswith("deribit public/ticker: NOT_FOUND (10020")


async def test_wrong_credentials_raise_auth(clock: SimClock) -> None:
    """With pinned credentials, a wrong secret fails with AUTH and the secret is nowhere in it."""
    app = create_app(clock=clock, allowed_credentials={CLIENT_ID: "the-right-one"})
    client = DeribitClient(
        base_url="http://paper",
        client_id=CLIENT_ID,
        client_secret=SecretStr(SECRET),
        clock=clock,
        transport=httpx.ASGITransport(app=app),
    )
    try:
        with pytest.raises(ExchangeError) as info:
            await client.get_account_summary("BTC")
    finally:
        await client.close()
    error = info.value
    assert error.code is ErrorCode.AUTH
    assert error.dependency == "deribit public/auth"
    for text in (str(error), repr(error), str(error.to_dict()), repr(client), str(client)):
        assert SECRET not in text


async def test_halt_blocks_orders_before_the_exchange(client: DeribitClient, halt: Halt) -> None:
    """While halted, place_order raises HaltedError and nothing reaches the exchange."""
    request = await _resting_sell(client, "test-halted")
    halt.active = True
    with pytest.raises(HaltedError):
        await client.place_order(request)
    assert await client.get_open_orders("BTC") == []
    assert await client.cancel_all() == 0  # cancelling stays possible while halted

    halt.active = False
    assert (await client.place_order(request)).order_state == "open"


async def test_secret_never_shown(client: DeribitClient) -> None:
    """The secret is absent from the client's repr/str and from errors it raises."""
    await client.get_account_summary("BTC")
    with pytest.raises(ExchangeError) as info:
        await client.get_order_state("no-such-order")
    for text in (repr(client), str(client), str(info.value), repr(info.value)):
        assert SECRET not in text
    assert info.value.code is ErrorCode.NOT_FOUND


async def test_refused_token_reauths_and_retries_once(
    client: DeribitClient, app: PaperExchangeApp, metrics: Metrics
) -> None:
    """A private read refused with 13009 re-authenticates and succeeds on its one retry."""
    await client.get_positions("BTC")
    app.faults.inject("private/get_positions", code=13009)
    await client.get_positions("BTC")
    assert _calls(metrics, "private/get_positions", "auth") == 1
    assert _calls(metrics, "private/get_positions") == 2
    assert _calls(metrics, "public/auth") == 2


async def test_refused_order_is_resent_exactly_once(
    client: DeribitClient, app: PaperExchangeApp, metrics: Metrics
) -> None:
    """An order refused for auth (so never accepted) is re-sent once and rests exactly once."""
    request = await _resting_sell(client, "test-reauth")
    app.faults.inject("private/sell", code=13009)
    order = await client.place_order(request)
    assert [o.order_id for o in await client.get_open_orders("BTC")] == [order.order_id]
    assert _calls(metrics, "private/sell", "auth") == 1


async def test_rate_limited_order_is_resent_once_accepted(
    client: DeribitClient, app: PaperExchangeApp, metrics: Metrics
) -> None:
    """An order refused with 10028 (so never accepted) is re-sent after backoff and rests once."""
    request = await _resting_sell(client, "test-429")
    app.faults.inject("private/sell", code=10028)
    order = await client.place_order(request)
    assert [o.order_id for o in await client.get_open_orders("BTC")] == [order.order_id]
    assert _calls(metrics, "private/sell", "rate_limit") == 1
    assert _calls(metrics, "private/sell") == 1


async def test_rate_limit_that_persists_is_raised(
    client: DeribitClient, app: PaperExchangeApp, metrics: Metrics
) -> None:
    """A rate limit that outlasts the retries raises RATE_LIMIT; nothing is left resting."""
    request = await _resting_sell(client, "test-429-forever")
    app.faults.inject("private/sell", code=10028, times=None)
    with pytest.raises(ExchangeError) as info:
        await client.place_order(request)
    app.faults.clear()
    assert (info.value.code, info.value.exchange_code) == (ErrorCode.RATE_LIMIT, 10028)
    assert info.value.http_status == 429
    assert _calls(metrics, "private/sell") == 0
    assert await client.get_open_orders("BTC") == []


# -- scripted far sides -----------------------------------------------------------------------

Handler = Callable[[httpx.Request], httpx.Response]


def _scripted(handler: Handler, clock: SimClock | None = None) -> DeribitClient:
    return DeribitClient(
        base_url="http://scripted",
        client_id=CLIENT_ID,
        client_secret=SecretStr(SECRET),
        clock=clock or SimClock(),
        transport=httpx.MockTransport(handler),
    )


def _rpc(request: httpx.Request) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(request.content)
    return body


def _result(request: httpx.Request, result: Any) -> httpx.Response:
    return httpx.Response(200, json={"jsonrpc": "2.0", "id": _rpc(request)["id"], "result": result})


def _auth_result(request: httpx.Request, token: str) -> httpx.Response:
    return _result(
        request,
        {"access_token": token, "refresh_token": f"r-{token}", "expires_in": TTL},
    )


async def test_request_shape() -> None:
    """Requests are JSON-RPC POSTs with increasing ids; private ones carry the bearer token."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/api/v2/public/auth":
            return _auth_result(request, "tok-1")
        return _result(request, 3)

    client = _scripted(handler)
    assert await client.cancel_all() == 3
    await client.close()
    auth, cancel = seen
    assert auth.method == cancel.method == "POST"
    assert _rpc(auth)["method"] == "public/auth"
    assert _rpc(auth)["params"]["grant_type"] == "client_credentials"
    assert "authorization" not in auth.headers
    assert _rpc(cancel) == {"jsonrpc": "2.0", "id": 2, "method": "private/cancel_all", "params": {}}
    assert cancel.headers["authorization"] == "Bearer tok-1"


async def test_expired_token_reauths_once_and_retries() -> None:
    """A private call refused with 13009 re-authenticates once and is retried once."""
    tokens = iter(["stale", "fresh"])
    methods: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        methods.append(_rpc(request)["method"])
        if request.url.path == "/api/v2/public/auth":
            return _auth_result(request, next(tokens))
        if request.headers["authorization"] == "Bearer stale":
            error = {"code": 13009, "message": "unauthorized"}
            return httpx.Response(401, json={"jsonrpc": "2.0", "id": 1, "error": error})
        return _result(request, 0)

    client = _scripted(handler)
    assert await client.cancel_all() == 0
    await client.close()
    assert methods == ["public/auth", "private/cancel_all", "public/auth", "private/cancel_all"]


async def test_refused_refresh_falls_back_to_credentials() -> None:
    """When the refresh_token grant is refused, the client logs in again with its credentials."""
    clock = SimClock()
    grants: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v2/public/auth":
            grant = _rpc(request)["params"]["grant_type"]
            grants.append(grant)
            if grant == "refresh_token":
                error = {"code": 13009, "message": "unauthorized"}
                return httpx.Response(401, json={"jsonrpc": "2.0", "id": 1, "error": error})
            return _auth_result(request, f"tok-{len(grants)}")
        return _result(request, 0)

    client = _scripted(handler, clock)
    await client.cancel_all()
    clock.advance(TTL)
    await client.cancel_all()
    await client.close()
    assert grants == ["client_credentials", "refresh_token", "client_credentials"]


@pytest.mark.parametrize(
    ("response", "code", "http_status"),
    [
        (httpx.Response(200, text="<html>hello</html>"), ErrorCode.INVALID_RESPONSE, 200),
        (httpx.Response(200, json={"jsonrpc": "2.0", "id": 1}), ErrorCode.INVALID_RESPONSE, 200),
        (
            httpx.Response(200, json={"jsonrpc": "2.0", "result": {}}),
            ErrorCode.INVALID_RESPONSE,
            200,
        ),
        (httpx.Response(502, text="bad gateway"), ErrorCode.SERVER, 502),
        (httpx.Response(404, text="no such route"), ErrorCode.NOT_FOUND, 404),
        (httpx.Response(401), ErrorCode.AUTH, 401),
    ],
)
async def test_envelope_failures(
    response: httpx.Response, code: ErrorCode, http_status: int
) -> None:
    """Bodies without a Deribit result or error are classified by shape or HTTP status."""
    client = _scripted(lambda request: response)
    with pytest.raises(ExchangeError) as info:
        await client.get_ticker("BTC-PERPETUAL")
    await client.close()
    assert (info.value.code, info.value.http_status) == (code, http_status)
    assert info.value.exchange_code is None


async def test_rate_limit_carries_retry_after() -> None:
    """A 429 with Deribit's 10028 body and Retry-After becomes RATE_LIMIT with retry_after set."""
    body = {"jsonrpc": "2.0", "id": 1, "error": {"code": 10028, "message": "too_many_requests"}}
    client = _scripted(lambda r: httpx.Response(429, json=body, headers={"Retry-After": "3"}))
    with pytest.raises(ExchangeError) as info:
        await client.get_time()
    await client.close()
    error = info.value
    assert (error.code, error.exchange_code, error.http_status) == (
        ErrorCode.RATE_LIMIT,
        10028,
        429,
    )
    assert error.retry_after == 3.0
    assert str(error) == (
        "deribit public/get_time: RATE_LIMIT (10028 too_many_requests) — slow down; "
        "retry after backoff"
    )


async def test_echoed_secret_is_redacted() -> None:
    """A server that echoes the secret in an error message does not get it into our message."""

    def handler(request: httpx.Request) -> httpx.Response:
        error = {"code": 13004, "message": "invalid_credentials", "data": {"reason": SECRET}}
        return httpx.Response(401, json={"jsonrpc": "2.0", "id": 1, "error": error})

    client = _scripted(handler)
    with pytest.raises(ExchangeError) as info:
        await client.get_positions("BTC")
    await client.close()
    assert info.value.code is ErrorCode.AUTH
    assert SECRET not in str(info.value)
    assert "[REDACTED]" in str(info.value)


async def test_malformed_result_is_invalid_response() -> None:
    """A result missing fields the model needs raises INVALID_RESPONSE, not a KeyError."""
    client = _scripted(lambda request: _result(request, {"instrument_name": "BTC-PERPETUAL"}))
    with pytest.raises(ExchangeError) as info:
        await client.get_ticker("BTC-PERPETUAL")
    await client.close()
    assert info.value.code is ErrorCode.INVALID_RESPONSE


async def test_order_is_never_resent_after_a_server_error() -> None:
    """A 502 on private/buy may hide an accepted order: it is sent exactly once."""
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v2/public/auth":
            return _auth_result(request, "tok")
        sent.append(_rpc(request)["method"])
        return httpx.Response(502, text="bad gateway")

    client = _scripted(handler)
    order = OrderRequest(
        instrument_name="BTC-PERPETUAL", direction="buy", amount=10.0, order_type="market"
    )
    with pytest.raises(ExchangeError) as info:
        await client.place_order(order)
    await client.close()
    assert (info.value.code, info.value.http_status) == (ErrorCode.SERVER, 502)
    assert sent == ["private/buy"]


async def test_breaker_fails_fast_and_recovers_through_the_client() -> None:
    """Repeated 503s open the venue's breaker; while open nothing is sent; a probe closes it."""
    clock = SimClock()
    metrics = Metrics()
    journal = Journal(run_id="r")
    events: list[Event] = []
    journal.subscribe(events.append)
    resilience = Resilience(clock=clock, metrics=metrics, journal=journal)
    down = True
    sent = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal sent
        sent += 1
        if down:
            return httpx.Response(503, text="maintenance")
        return _result(request, 1_767_225_600_000)

    client = DeribitClient(
        base_url="http://scripted",
        client_id=CLIENT_ID,
        client_secret=SecretStr(SECRET),
        clock=clock,
        transport=httpx.MockTransport(handler),
        resilience=resilience,
    )
    try:
        for _ in range(2):
            with pytest.raises(ExchangeError):
                await client.get_time()
        assert resilience.breakers is not None
        assert resilience.breakers.get("deribit", "exchange").state is BreakerState.OPEN
        before = sent
        with pytest.raises(ExchangeError) as info:
            await client.get_instruments("BTC")
        assert info.value.code is ErrorCode.CIRCUIT_OPEN
        assert info.value.retry_after is not None
        assert sent == before

        down = False
        clock.advance(info.value.retry_after)
        assert await client.get_time() == 1_767_225_600_000
    finally:
        await client.close()
    moves = [e.payload["state"] for e in events if e.kind is EventKind.BREAKER_STATE_CHANGED]
    assert moves == ["open", "half_open", "closed"]
    assert any(e.kind is EventKind.CALL_RETRIED for e in events)
    assert resilience.breakers.snapshot()[0]["state"] == "closed"
