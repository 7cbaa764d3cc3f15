"""The Observer on the paper exchange: one snapshot, cached instruments, no agent needed."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bastion.clock import SimClock
from bastion.exchange.deribit import DeribitClient
from bastion.market import Instrument, OrderRequest
from bastion.runtime.observe import Observer

Calls = Callable[[str], float]


async def test_without_an_agent_it_ticks_only_what_the_account_holds(
    client: DeribitClient, clock: SimClock
) -> None:
    """No watchlist: a flat account gets no tickers; a held instrument is always ticked."""
    observer = Observer(exchange=client, clock=clock)
    obs = await observer.observe()
    assert (obs.currency, obs.positions, obs.open_orders, dict(obs.tickers)) == ("BTC", (), (), {})
    assert obs.index_price > 0
    assert "BTC-PERPETUAL" in obs.instruments
    await client.place_order(OrderRequest("BTC-PERPETUAL", "buy", 10.0, order_type="market"))
    assert list((await observer.observe()).tickers) == ["BTC-PERPETUAL"]


async def test_a_fixed_watchlist_or_an_agents_method_names_the_tickers(
    client: DeribitClient, clock: SimClock
) -> None:
    """A list of names, or a callable shaped like Agent.watchlist, chooses what is ticked."""
    fixed = await Observer(exchange=client, clock=clock, watchlist=["BTC-PERPETUAL"]).observe()
    assert list(fixed.tickers) == ["BTC-PERPETUAL"]
    seen: list[tuple[int, float]] = []

    def watchlist(instruments: Sequence[Instrument], index_price: float, now_ms: int) -> list[str]:
        seen.append((len(instruments), index_price))
        return [i.name for i in instruments if i.kind == "option"][:2]

    chosen = await Observer(exchange=client, clock=clock, watchlist=watchlist).observe()
    assert len(chosen.tickers) == 2
    assert seen == [(len(chosen.instruments), chosen.index_price)]


async def test_observing_has_no_side_effect(client: DeribitClient, clock: SimClock) -> None:
    """Observing places nothing and leaves a resting order of ours alone."""
    mark = (await client.get_ticker("BTC-PERPETUAL")).mark_price
    await client.place_order(
        OrderRequest("BTC-PERPETUAL", "buy", 10.0, price=float(round(mark * 0.9)))
    )
    before = await client.get_open_orders("BTC")
    obs = await Observer(exchange=client, clock=clock).observe()
    assert obs.open_orders == tuple(before)
    assert await client.get_open_orders("BTC") == before
    assert await client.get_positions("BTC") == []


async def test_instruments_are_cached_until_stale_or_refreshed(
    client: DeribitClient, clock: SimClock, calls: Calls
) -> None:
    """One listing serves every look within instruments_refresh_seconds; then, or on
    refresh(), the list is fetched again."""
    observer = Observer(exchange=client, clock=clock, instruments_refresh_seconds=60.0)
    for _ in range(3):
        await observer.observe()
    assert calls("public/get_instruments") == 1
    clock.advance(61)
    await observer.observe()
    assert calls("public/get_instruments") == 2
    observer.refresh()
    await observer.observe()
    assert calls("public/get_instruments") == 3


async def test_holdings_are_the_account_alone(
    client: DeribitClient, clock: SimClock, calls: Calls
) -> None:
    """A halted step looks at balances, positions and resting orders, not at the market."""
    held = await Observer(exchange=client, clock=clock).holdings()
    assert held.account.currency == "BTC"
    assert (held.positions, held.open_orders) == ((), ())
    assert calls("public/get_instruments") == calls("public/ticker") == 0
