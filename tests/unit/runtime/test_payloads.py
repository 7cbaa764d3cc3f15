"""Observation payloads round-trip through JSON to the Observation the agent saw."""

from __future__ import annotations

from dataclasses import replace

import orjson

from bastion.agent import Observation
from bastion.clock import SimClock
from bastion.exchange.deribit import DeribitClient
from bastion.market import Order
from bastion.runtime.observe import Observer
from bastion.runtime.payloads import (
    ObservationPayloads,
    instruments_from_payload,
    observation_from_payload,
)


async def _observe(client: DeribitClient, clock: SimClock) -> Observation:
    observer = Observer(
        exchange=client,
        clock=clock,
        watchlist=lambda instruments, index, now: [i.name for i in instruments][:12],
    )
    return await observer.observe()


def _through_json(payload: dict[str, object]) -> dict[str, object]:
    return orjson.loads(orjson.dumps(payload))


async def test_an_observation_comes_back_field_for_field(
    client: DeribitClient, clock: SimClock
) -> None:
    """Account, positions, orders, every ticker field and the referenced instruments."""
    obs = await _observe(client, clock)
    order = Order("o-1", "BTC-PERPETUAL", "buy", "limit", "open", 10, 0, 1.0, 0, "l", 1, 2)
    obs = replace(obs, open_orders=(order,))
    data = _through_json(ObservationPayloads()(1, obs))
    back = observation_from_payload(data)
    assert back.account == obs.account
    assert back.open_orders == obs.open_orders
    assert back.positions == obs.positions
    assert back.tickers == obs.tickers
    referenced = [*obs.tickers, "BTC-PERPETUAL"]
    assert back.instruments == {name: obs.instruments[name] for name in referenced}
    assert (back.time_ms, back.index_price, back.currency) == (
        obs.time_ms,
        obs.index_price,
        obs.currency,
    )


async def test_each_instrument_is_recorded_once_per_run_unless_it_changes(
    client: DeribitClient, clock: SimClock
) -> None:
    """The second observation records no instrument; a changed one is recorded again."""
    obs = await _observe(client, clock)
    payloads = ObservationPayloads()
    first = _through_json(payloads(1, obs))
    assert len(instruments_from_payload(first)) == len(obs.tickers)
    assert instruments_from_payload(_through_json(payloads(2, obs))) == {}
    name = next(iter(obs.tickers))
    changed = replace(obs.instruments[name], tick_size=obs.instruments[name].tick_size * 2)
    later = replace(obs, instruments={**obs.instruments, name: changed})
    assert instruments_from_payload(_through_json(payloads(3, later))) == {name: changed}
