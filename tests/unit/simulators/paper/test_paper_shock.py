"""A price shock on the paper exchange: the index, the marks and settlement all move with it."""

from __future__ import annotations

import httpx
import pytest
from paper_support import PERP, Rpc

from bastion.clock import SimClock
from bastion.simulators.paper import PaperExchangeApp


async def _index(rpc: Rpc) -> float:
    result = await rpc.result("public/get_index_price", index_name="btc_usd")
    return float(result["index_price"])


async def test_a_shock_moves_the_index_and_the_mark_from_the_next_second(
    rpc: Rpc, clock: SimClock
) -> None:
    before = await _index(rpc)
    answer = await rpc.client.post("/_paper/shock", json={"currency": "BTC", "pct": -20})
    assert answer.status_code == 200, answer.text
    assert await _index(rpc) == before, "the grid second already priced keeps its quotes"
    clock.advance(1)
    after = await _index(rpc)
    assert answer.json() == {"currency": "BTC", "index_price": after}
    assert after == pytest.approx(before * 0.8, rel=1e-3)  # one second of GBM beside the shock
    ticker = await rpc.result("public/ticker", instrument_name=PERP)
    assert ticker["mark_price"] == pytest.approx(after, rel=1e-2)
    clock.advance(3600)
    assert await _index(rpc) == pytest.approx(before * 0.8, rel=0.05), "the shock stays"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"currency": "DOGE", "pct": -5}, "currency"),
        ({"currency": "BTC", "pct": -100}, "pct"),
        ({"currency": "BTC", "pct": "a lot"}, "pct"),
        ({"currency": "BTC", "pct": True}, "pct"),
        (["BTC", -5], "JSON object"),
    ],
)
async def test_a_shock_it_cannot_take_is_a_422_naming_the_field(
    rpc: Rpc, body: object, field: str
) -> None:
    before = await _index(rpc)
    answer = await rpc.client.post("/_paper/shock", json=body)
    assert answer.status_code == 422
    assert field in answer.json()["reason"]
    assert await _index(rpc) == before


async def test_a_remote_client_cannot_shock_the_market(app: PaperExchangeApp) -> None:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://paper") as client:
        answer = await client.post("/_paper/shock", json={"currency": "BTC", "pct": -20})
    assert answer.status_code == 403
