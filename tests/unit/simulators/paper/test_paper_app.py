"""The JSON-RPC layer through the real app: envelope, GET and POST forms, every bad input."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from paper_support import CALL, PERP, START, Rpc

from bastion.clock import SimClock
from bastion.simulators.paper import PaperExchangeApp, create_app
from bastion.simulators.paper.errors import http_status_for

US = int(START * 1_000_000)


async def test_get_envelope_has_no_id(rpc: Rpc) -> None:
    """A GET without id: jsonrpc, result, usIn/usOut/usDiff from the clock, testnet; no id."""
    response = await rpc.get("public/get_time")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert list(response.json()) == ["jsonrpc", "result", "usIn", "usOut", "usDiff", "testnet"]
    assert response.json() == {
        "jsonrpc": "2.0",
        "result": int(START * 1000),
        "usIn": US,
        "usOut": US,
        "usDiff": 0,
        "testnet": True,
    }


async def test_get_with_id_echoes_it(rpc: Rpc) -> None:
    """An id in the query string is echoed (as a number when it is one)."""
    response = await rpc.get("public/test", id=42)
    assert response.json()["id"] == 42
    assert response.json()["result"] == {"version": "1.2.26"}


@pytest.mark.parametrize("raw_id", ["99999999999999999999999", "²", "-1"])
async def test_get_ids_that_are_not_small_integers_are_echoed_as_text(
    rpc: Rpc, raw_id: str
) -> None:
    """A huge or non-ASCII-digit id is echoed as a string: never a 500 or a runaway error."""
    response = await rpc.get("public/test", id=raw_id)
    assert response.status_code == 200
    assert response.json()["id"] == raw_id


async def test_post_echoes_any_id(rpc: Rpc) -> None:
    """A POST body's id is echoed exactly, whatever its JSON type."""
    for rpc_id in (7, "abc", None):
        response = await rpc.post("public/get_time", rpc_id=rpc_id)
        assert response.status_code == 200
        assert response.json()["id"] == rpc_id
        assert list(response.json())[:3] == ["jsonrpc", "id", "result"]


async def test_post_to_the_api_root_names_the_method_in_the_body(rpc: Rpc) -> None:
    """POST /api/v2 with the method in the body works like the path form."""
    body = {
        "jsonrpc": "2.0",
        "id": 3,
        "method": "public/get_index_price",
        "params": {"index_name": "btc_usd"},
    }
    response = await rpc.client.post("/api/v2", json=body)
    assert response.json()["result"] == {
        "index_price": 90_000.0,
        "estimated_delivery_price": 90_000.0,
    }


async def test_empty_post_reads_the_query_string(rpc: Rpc) -> None:
    """A POST without a body takes its params from the query, like a GET."""
    response = await rpc.client.post("/api/v2/public/ticker", params={"instrument_name": PERP})
    assert response.json()["result"]["instrument_name"] == PERP


async def test_testnet_flag_follows_the_app(clock: SimClock) -> None:
    """testnet=False shows in every envelope."""
    app = create_app(clock=clock, testnet=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://p"
    ) as client:
        response = await client.get("/api/v2/public/get_time")
    assert response.json()["testnet"] is False


async def test_get_values_are_coerced(rpc: Rpc) -> None:
    """Query text becomes numbers and booleans: amount=10, reduce_only=false, post_only=true."""
    await rpc.login()
    bid = (await rpc.result("public/ticker", instrument_name=PERP))["best_bid_price"]
    order = await rpc.result(
        "private/buy",
        instrument_name=PERP,
        amount="10",
        price=str(bid),
        post_only="true",
        reduce_only="false",
    )
    assert order["order"]["amount"] == 10.0
    assert order["order"]["post_only"] is True
    assert order["order"]["reduce_only"] is False


async def test_public_methods_return_deribit_shapes(rpc: Rpc) -> None:
    """Currencies, instruments (filters), index, ticker and book answer with Deribit's fields."""
    currencies = await rpc.result("public/get_currencies")
    assert [c["currency"] for c in currencies] == ["BTC", "ETH"]
    everything = await rpc.result("public/get_instruments")
    options = await rpc.result("public/get_instruments", currency="BTC", kind="option")
    assert {i["kind"] for i in options} == {"option"}
    assert {i["base_currency"] for i in options} == {"BTC"}
    assert len(everything) > len(options) > 100
    assert await rpc.result("public/get_instruments", currency="USDC") == []
    ticker = await rpc.result("public/ticker", instrument_name=CALL)
    assert ticker["best_bid_price"] < ticker["mark_price"] < ticker["best_ask_price"]
    assert set(ticker["greeks"]) == {"delta", "gamma", "vega", "theta", "rho"}
    assert 0.45 < ticker["greeks"]["delta"] < 0.55
    assert ticker["mark_iv"] == 50.0
    book = await rpc.result("public/get_order_book", instrument_name=PERP, depth=2)
    assert book["bids"] == [[90_000.0, 10_000.0], [89_999.5, 20_000.0]]
    assert book["change_id"] == 1


async def test_private_methods_round_trip(rpc: Rpc, clock: SimClock) -> None:
    """buy, open orders, order state, cancel, trades and positions agree with each other."""
    await rpc.login()
    resting = (
        await rpc.result("private/buy", instrument_name=PERP, amount=10, price=85_000, label="mine")
    )["order"]
    assert resting["label"] == "mine"
    by_currency = await rpc.result("private/get_open_orders_by_currency", currency="BTC")
    by_instrument = await rpc.result("private/get_open_orders_by_instrument", instrument_name=PERP)
    assert by_currency == by_instrument == [resting]
    assert (
        await rpc.result("private/get_open_orders_by_currency", currency="BTC", type="stop_all")
        == []
    )
    assert await rpc.result("private/get_order_state", order_id=resting["order_id"]) == resting
    cancelled = await rpc.result("private/cancel", order_id=resting["order_id"])
    assert cancelled["order_state"] == "cancelled"
    filled = await rpc.result("private/sell", instrument_name=CALL, amount=0.3, type="market")
    clock.advance(1)
    trades = await rpc.result(
        "private/get_user_trades_by_currency", currency="BTC", include_old="true"
    )
    assert trades == {"trades": filled["trades"], "has_more": False}
    by_instrument_trades = await rpc.result(
        "private/get_user_trades_by_instrument", instrument_name=CALL
    )
    assert by_instrument_trades["trades"] == filled["trades"]
    (position,) = await rpc.result("private/get_positions", currency="BTC")
    assert (position["instrument_name"], position["size"]) == (CALL, -0.3)
    summaries = await rpc.result("private/get_account_summaries")
    assert [s["currency"] for s in summaries["summaries"]] == ["BTC", "ETH"]
    assert await rpc.result("private/cancel_all") == 0
    assert await rpc.result("private/cancel_all_by_instrument", instrument_name=PERP) == 0


async def error_of(response: Any) -> tuple[int, dict[str, Any]]:
    return response.status_code, response.json()["error"]


async def test_malformed_json_is_a_parse_error(rpc: Rpc) -> None:
    """A body that is not JSON gets -32700 Parse error, HTTP 400, no id."""
    response = await rpc.client.post("/api/v2/public/get_time", content=b'{"id": 1,')
    status, error = await error_of(response)
    assert (status, error["code"], error["message"]) == (400, -32700, "Parse error")
    assert "id" not in response.json()


@pytest.mark.parametrize("body", [b"[]", b'[{"id":1,"method":"public/test"}]', b'"text"', b"12"])
async def test_non_object_body_is_an_invalid_request(rpc: Rpc, body: bytes) -> None:
    """Batches and scalars are -32600 Invalid Request."""
    status, error = await error_of(await rpc.client.post("/api/v2/public/test", content=body))
    assert (status, error["code"]) == (400, -32600)


async def test_params_must_be_named(rpc: Rpc) -> None:
    """Positional params are -32602; the id of the request is still echoed."""
    body = {"jsonrpc": "2.0", "id": 9, "method": "public/ticker", "params": ["BTC-PERPETUAL"]}
    response = await rpc.client.post("/api/v2/public/ticker", json=body)
    assert response.json()["id"] == 9
    assert response.json()["error"]["code"] == -32602


async def test_body_method_must_match_the_path(rpc: Rpc) -> None:
    """A body naming another method than the path is -32600."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "public/test", "params": {}}
    status, error = await error_of(await rpc.client.post("/api/v2/public/get_time", json=body))
    assert (status, error["code"]) == (400, -32600)


async def test_oversized_body_is_refused(rpc: Rpc) -> None:
    """A body over 32 kB is -32600 request entity too large."""
    body = orjson.dumps({"id": 1, "params": {"label": "x" * 40_000}})
    _, error = await error_of(await rpc.client.post("/api/v2/public/test", content=body))
    assert error == {"message": "request entity too large", "code": -32600}


@pytest.mark.parametrize(
    "path",
    [
        "/api/v2/public/nope",
        "/api/v2/private/get_time",
        "/api/v2/other/x",
        "/",
        "/api/v3/public/test",
    ],
)
async def test_unknown_method_or_path(rpc: Rpc, path: str) -> None:
    """Anything that is not a served method is -32601 Method not found, HTTP 400."""
    status, error = await error_of(await rpc.client.get(path))
    assert (status, error["code"], error["message"]) == (400, -32601, "Method not found")


async def test_unsupported_http_method_and_bad_query(rpc: Rpc) -> None:
    """PUT and a query that is not UTF-8 are 11050 bad_request."""
    status, error = await error_of(await rpc.client.put("/api/v2/public/test"))
    assert (status, error["code"]) == (400, 11050)
    status, error = await error_of(await rpc.client.get("/api/v2/public/test?label=%FF"))
    assert (status, error["code"]) == (400, 11050)


async def test_unknown_instrument(rpc: Rpc) -> None:
    """An instrument that is not listed is 10020 with HTTP 400."""
    response = await rpc.get("public/ticker", instrument_name="BTC-1JAN20-1-C")
    status, error = await error_of(response)
    assert (status, error["code"], error["message"]) == (
        400,
        10020,
        "invalid_or_unsupported_instrument",
    )


@pytest.mark.parametrize(
    ("amount", "code"),
    [
        ("-10", 10021),
        ("0", 10021),
        ("abc", 11029),
        ("", 11029),
        ("nan", 11029),
        ("15", 10021),
        ("5", 10002),
    ],
)
async def test_bad_amounts(rpc: Rpc, amount: str, code: int) -> None:
    """Negative, zero, non-numeric, off-step and too-small amounts get their codes."""
    await rpc.login()
    response = await rpc.get("private/buy", instrument_name=PERP, amount=amount, price="90000")
    status, error = await error_of(response)
    assert (status, error["code"]) == (400, code)
    assert error["data"]["param"] == "amount"


@pytest.mark.parametrize(
    ("method", "params", "param"),
    [
        ("public/ticker", {}, "instrument_name"),
        ("public/get_index_price", {}, "index_name"),
        ("private/buy", {"amount": "10"}, "instrument_name"),
        ("private/buy", {"instrument_name": PERP}, "amount"),
        ("private/buy", {"instrument_name": PERP, "amount": "10"}, "price"),
        ("private/cancel", {}, "order_id"),
        ("private/get_account_summary", {}, "currency"),
        ("private/get_user_trades_by_currency", {}, "currency"),
    ],
)
async def test_missing_required_params(
    rpc: Rpc, method: str, params: dict[str, str], param: str
) -> None:
    """A missing required parameter is -32602 Invalid params with data {reason, param}."""
    await rpc.login()
    status, error = await error_of(await rpc.get(method, **params))
    assert (status, error["code"], error["message"]) == (400, -32602, "Invalid params")
    assert error["data"] == {"reason": "missing required parameter", "param": param}


async def test_enumerations_are_checked(rpc: Rpc) -> None:
    """A currency, kind or index outside Deribit's lists is -32602 naming the parameter."""
    for method, params, param in [
        ("public/get_instruments", {"currency": "DOGE"}, "currency"),
        ("public/get_instruments", {"kind": "swap"}, "kind"),
        ("public/get_index_price", {"index_name": "doge_usd"}, "index_name"),
    ]:
        _, error = await error_of(await rpc.get(method, **params))
        assert (error["code"], error["data"]["param"]) == (-32602, param)


async def test_expected_exception(rpc: Rpc) -> None:
    """public/test with expected_result=exception answers an error, as Deribit's does."""
    status, error = await error_of(await rpc.get("public/test", expected_result="exception"))
    assert (status, error["code"]) == (400, 11094)


async def test_rest_cannot_enable_cancel_on_disconnect(rpc: Rpc) -> None:
    """Cancel-on-disconnect is WebSocket-only: 10030 over HTTP."""
    await rpc.login()
    _, error = await error_of(await rpc.get("private/enable_cancel_on_disconnect"))
    assert error["code"] == 10030


async def test_unexpected_exception_is_never_a_500(
    rpc: Rpc, app: PaperExchangeApp, caplog: pytest.LogCaptureFixture
) -> None:
    """A handler that crashes answers 11094 internal_server_error with HTTP 400, and is logged."""
    app.faults.inject("public/ticker", crash=True)
    response = await rpc.get("public/ticker", instrument_name=PERP)
    status, error = await error_of(response)
    assert (status, error["code"], error["message"]) == (400, 11094, "internal_server_error")
    assert "injected crash" in caplog.text
    assert (await rpc.get("public/ticker", instrument_name=PERP)).status_code == 200


@pytest.mark.parametrize(
    ("code", "status"), [(10028, 429), (10040, 400), (13009, 401), (11051, 400)]
)
async def test_injected_faults_and_their_status(
    rpc: Rpc, app: PaperExchangeApp, code: int, status: int
) -> None:
    """An injected Deribit code is served with the HTTP status the code maps to, then clears."""
    app.faults.inject("public/*", code=code, times=1)
    response = await rpc.get("public/get_time")
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert (await rpc.get("public/get_time")).status_code == 200


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (10000, 401),
        (13004, 401),
        (13009, 401),
        (10028, 429),
        (10009, 400),
        (-32700, 400),
        (11094, 400),
    ],
)
def test_http_status_table(code: int, status: int) -> None:
    """Auth codes are 401, the rate limit 429, everything else 400."""
    assert http_status_for(code) == status


def test_fault_needs_one_effect(app: PaperExchangeApp) -> None:
    """A fault must either answer a code or crash, not both or neither."""
    with pytest.raises(ValueError, match="exactly one"):
        app.faults.inject("*")
    with pytest.raises(ValueError, match="exactly one"):
        app.faults.inject("*", code=10028, crash=True)


def test_app_exposes_the_venue(app: PaperExchangeApp) -> None:
    """The simulator is reachable as app.venue and app.state.venue."""
    assert app.state.venue is app.venue
