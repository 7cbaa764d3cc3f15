"""The Deribit client says in which unit each instrument's amounts are, as Deribit lists them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from bastion.clock import SimClock
from bastion.exchange.deribit import DeribitClient

PERPETUAL_MS = 32_503_708_800_000


def _listed(name: str, kind: str, **fields: Any) -> dict[str, Any]:
    base, _, _ = name.partition("-")
    coin = base.split("_")[0]
    return {
        "instrument_name": name,
        "kind": kind,
        "base_currency": coin,
        "quote_currency": "USD",
        "counter_currency": "USD",
        "settlement_currency": coin,
        "expiration_timestamp": PERPETUAL_MS,
        "tick_size": 0.5,
        "min_trade_amount": 10.0,
        "contract_size": 10.0,
        "settlement_period": "perpetual",
        **fields,
    }


INSTRUMENTS = [
    _listed("BTC-PERPETUAL", "future", instrument_type="reversed"),
    _listed("BTC-27DEC30", "future", settlement_period="month"),  # no instrument_type
    _listed(
        "BTC_USDC-PERPETUAL",
        "future",
        instrument_type="linear",
        quote_currency="USDC",
        counter_currency="USDC",
        settlement_currency="USDC",
    ),
    _listed(
        "ETH_USDC-PERPETUAL",
        "future",
        quote_currency="USDC",
        counter_currency="USDC",
        settlement_currency="USDC",
    ),
    _listed(
        "BTC-27DEC30-60000-C",
        "option",
        strike=60_000.0,
        option_type="call",
        instrument_type="reversed",
        settlement_period="month",
    ),
]


@pytest.fixture
async def client() -> AsyncIterator[DeribitClient]:
    def venue(request: httpx.Request) -> httpx.Response:
        body = orjson.loads(request.content)
        assert body["method"] == "public/get_instruments"
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "result": INSTRUMENTS})

    deribit = DeribitClient(
        base_url="http://venue",
        client_id="id",
        client_secret=SecretStr("secret"),
        clock=SimClock(),
        transport=httpx.MockTransport(venue),
    )
    yield deribit
    await deribit.close()


@pytest.mark.parametrize(
    ("name", "unit"),
    [
        ("BTC-PERPETUAL", "usd"),  # inverse: amounts in USD
        ("BTC-27DEC30", "usd"),  # settled in its own coin: inverse
        ("BTC_USDC-PERPETUAL", "coin"),  # linear: amounts in coin
        ("ETH_USDC-PERPETUAL", "coin"),  # settled in USDC: linear
        ("BTC-27DEC30-60000-C", "coin"),  # options: coin
    ],
)
async def test_each_instrument_carries_its_amount_unit(
    client: DeribitClient, name: str, unit: str
) -> None:
    """Inverse futures and perpetuals are USD; options and linear instruments are coin."""
    listed = {i.name: i for i in await client.get_instruments("any")}
    assert listed[name].amount_unit == unit
