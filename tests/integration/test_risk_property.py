"""No order outside the caps ever reaches the exchange, whatever the agent decides.

Hypothesis drives an agent that proposes random and adversarial orders (huge, NaN, infinite,
zero and negative amounts; prices off the collar or not numbers at all; unknown, unlisted and
forbidden instruments; unknown directions and order types; bursts) through the real loop, the
real Deribit client and the real paper exchange. A recorder in front of the exchange's ASGI app
captures every ``private/buy`` and ``private/sell`` that arrives, together with the venue's own
state at that moment (listing, index, marks, positions, resting orders), and an oracle written
from the caps' definitions, not from ``guard/risk.py``, judges each one. The oracle also holds
the approval threshold as a hard bound: nobody approves in this test, so an order above it
reaching the exchange would be a leak.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.agent import Context, Decision, Observation, OrderIntent
from bastion.clock import SimClock
from bastion.config import load_settings
from bastion.exchange.deribit import DeribitClient
from bastion.market import Instrument
from bastion.resilience import Resilience
from bastion.runner import Runner
from bastion.simulators.paper import PaperExchangeApp, create_app

CLIENT_ID = "bastion-paper"
MAX_ORDER_COIN = 0.5
MAX_ORDER_USD = 40_000.0
APPROVAL_USD = 30_000.0  # nobody approves here: the effective bound on what may be sent
MAX_POSITION_COIN = 1.0
MAX_TOTAL_USD = 150_000.0
MAX_PER_MINUTE = 5
COLLAR_PCT = 10.0
COLLAR_TICKS = 2
CAPS: dict[str, Any] = {
    "risk_max_order_amount": MAX_ORDER_COIN,
    "risk_max_order_notional_usd": MAX_ORDER_USD,
    "risk_max_position": MAX_POSITION_COIN,
    "risk_max_total_notional_usd": MAX_TOTAL_USD,
    "risk_max_orders_per_minute": MAX_PER_MINUTE,
    "risk_price_collar_pct": COLLAR_PCT,
    "risk_price_collar_min_ticks": COLLAR_TICKS,
    "risk_allowed_instruments": ["BTC-*"],
    "risk_allowed_currencies": ["BTC"],
    "risk_allowed_kinds": ["option", "perpetual"],  # dated futures are forbidden
    "risk_approval_notional_usd": APPROVAL_USD,
}
EPS = 1e-9

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Received:
    """One order as it arrived, with the venue's state just before it was executed."""

    direction: str
    params: dict[str, Any]
    at: float
    index: float
    listed: dict[str, dict[str, Any]]
    mark: float | None
    positions: list[dict[str, Any]]
    resting: list[dict[str, Any]]


@dataclass
class Recorder:
    """ASGI middleware in front of the paper exchange: records every order request."""

    app: PaperExchangeApp
    clock: SimClock
    orders: list[Received] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or not path.endswith(("/private/buy", "/private/sell")):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = bool(message.get("more_body"))
        body = b"".join(chunks)
        self.orders.append(self._snapshot(path.rsplit("/", 1)[1], orjson.loads(body)["params"]))
        replayed = False

        async def replay() -> MutableMapping[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def _snapshot(self, direction: str, params: dict[str, Any]) -> Received:
        venue = self.app.venue
        listed = {i["instrument_name"]: i for i in venue.instruments(currency="BTC")}
        name = str(params.get("instrument_name"))
        mark = venue.ticker(name)["mark_price"] if name in listed else None
        return Received(
            direction=direction,
            params=params,
            at=self.clock.monotonic(),
            index=venue.index_price("BTC")["index_price"],
            listed=listed,
            mark=mark,
            positions=venue.positions(CLIENT_ID, currency="BTC"),
            resting=venue.open_orders(CLIENT_ID, currency="BTC"),
        )


def _usd_quoted(instrument: dict[str, Any]) -> bool:
    return bool(instrument["kind"] == "future")  # Deribit's BTC futures and perpetual: USD


def _coin(order: Received, name: str, amount: float) -> float:
    return amount / order.index if _usd_quoted(order.listed[name]) else amount


def _worst(order: Received, name: str, extra: float) -> float:
    """Largest |position| in coin ``name`` reaches if every resting order of ours fills."""
    held = sum(p["size"] for p in order.positions if p["instrument_name"] == name) + extra

    def resting(direction: str) -> float:
        return sum(
            o["amount"] - o["filled_amount"]
            for o in order.resting
            if o["instrument_name"] == name and o["direction"] == direction
        )

    return _coin(order, name, max(abs(held + resting("buy")), abs(held - resting("sell"))))


def _total(order: Received, name: str, signed: float) -> tuple[float, float]:
    names = {p["instrument_name"] for p in order.positions}
    names |= {o["instrument_name"] for o in order.resting} | {name}
    before = sum(_worst(order, n, 0.0) for n in names) * order.index
    after = sum(_worst(order, n, signed if n == name else 0.0) for n in names) * order.index
    return before, after


def _breaches(order: Received, earlier: Sequence[Received]) -> list[str]:
    """What is wrong with an order that reached the exchange; empty when within every cap."""
    p = order.params
    name = p.get("instrument_name")
    if not isinstance(name, str) or not name.startswith("BTC-") or name not in order.listed:
        return [f"instrument {name!r}"]
    instrument = order.listed[name]
    perpetual = instrument["settlement_period"] == "perpetual"
    if instrument["kind"] == "future" and not perpetual:
        return [f"dated future {name}"]
    amount, kind = p.get("amount"), p.get("type")
    if kind not in ("limit", "market"):
        return [f"order type {kind!r}"]
    if not isinstance(amount, int | float) or not math.isfinite(amount) or amount <= 0:
        return [f"amount {amount!r}"]
    found = []
    coin = _coin(order, name, amount)
    notional = amount if _usd_quoted(instrument) else amount * order.index
    if coin > MAX_ORDER_COIN + EPS:
        found.append(f"amount {coin} coin")
    if notional > APPROVAL_USD + EPS:
        found.append(f"notional ${notional} sent without approval")
    if kind == "limit":
        price = p.get("price")
        if not isinstance(price, int | float) or not math.isfinite(price) or price <= 0:
            return [*found, f"price {price!r}"]
        assert order.mark is not None
        band = max(order.mark * COLLAR_PCT / 100, COLLAR_TICKS * instrument["tick_size"])
        if abs(price - order.mark) > band * (1 + 1e-6):
            found.append(f"price {price} vs mark {order.mark} (band {band})")
    signed = amount if order.direction == "buy" else -amount
    held = sum(q["size"] for q in order.positions if q["instrument_name"] == name)
    shrinks = bool(p.get("reduce_only")) and abs(held + signed) < abs(held)
    if _worst(order, name, signed) > MAX_POSITION_COIN + EPS and not shrinks:
        found.append(f"position {_worst(order, name, signed)} coin")
    before, after = _total(order, name, signed)
    if after > MAX_TOTAL_USD + EPS and after > before + EPS:
        found.append(f"total ${after}")
    recent = [e for e in earlier if order.at - 60.0 < e.at <= order.at]
    if len(recent) + 1 > MAX_PER_MINUTE:
        found.append(f"{len(recent) + 1} orders in 60 s")
    return found


# -- the adversarial agent ----------------------------------------------------------------------
NASTY = [math.nan, math.inf, -math.inf, -1.0, 0.0, 1e-12, 1e300]
amounts = st.one_of(
    st.sampled_from([*NASTY, 0.1, 0.3, 0.5, 0.6, 1.0, 5.0, 1000.0]),
    st.floats(min_value=0.0, max_value=2.0, allow_nan=False),
)
price_factors = st.one_of(
    st.none(),
    st.sampled_from([*NASTY, 0.5, 0.85, 0.89, 0.91, 0.95, 1.0, 1.05, 1.09, 1.11, 1.5, 100.0]),
    st.floats(min_value=0.7, max_value=1.3, allow_nan=False),
)
targets = st.sampled_from(
    ["perp", "perp", "option0", "option1", "option2", "future", "unlisted", "eth", "junk"]
)


@dataclass(frozen=True)
class Wish:
    """One intent the agent will propose, relative to what it observes."""

    target: str
    direction: str
    order_type: str
    amount: float
    price_factor: float | None
    in_usd: bool
    reduce_only: bool


nasty_wishes = st.builds(
    Wish,
    target=targets,
    direction=st.sampled_from(["buy", "sell", "buy", "sell", "short", ""]),
    order_type=st.sampled_from(["limit", "limit", "market", "stop_limit"]),
    amount=amounts,
    price_factor=price_factors,
    in_usd=st.booleans(),
    reduce_only=st.booleans(),
)
# Plausible orders near the caps: these are the ones that reach the exchange, pile up into
# positions and bursts, and so test the exposure, collar and rate caps at their edges.
plausible_wishes = st.builds(
    Wish,
    target=st.sampled_from(["perp", "option0", "option1", "option2"]),
    direction=st.sampled_from(["buy", "sell"]),
    order_type=st.sampled_from(["limit", "limit", "market"]),
    amount=st.floats(min_value=0.05, max_value=0.6),
    price_factor=st.floats(min_value=0.85, max_value=1.15),
    in_usd=st.just(True),  # converted for the perpetual only
    reduce_only=st.booleans(),
)
wishes = st.one_of(plausible_wishes, plausible_wishes, nasty_wishes)
steps = st.lists(
    st.tuples(st.lists(wishes, max_size=12), st.sampled_from([0.0, 1.0, 10.0, 61.0])),
    min_size=1,
    max_size=5,
)


class AdversarialAgent:
    """Proposes the scripted wishes, one list per step, against what it observes."""

    name = "adversary"
    version = "0"
    tools: Sequence[str] = ()

    def __init__(self, plan: Sequence[Sequence[Wish]]) -> None:
        self._plan = list(plan)
        self._options: list[str] = []
        self._future = ""

    def watchlist(
        self, instruments: Sequence[Instrument], index_price: float, now_ms: int
    ) -> list[str]:
        options = [i for i in instruments if i.kind == "option"]
        options.sort(key=lambda i: (i.expiration_ms, abs((i.strike or 0.0) - index_price)))
        self._options = [i.name for i in options[:3]]
        dated = [i for i in instruments if i.kind == "future" and not i.is_perpetual]
        self._future = dated[0].name if dated else "BTC-PERPETUAL"
        return ["BTC-PERPETUAL", *self._options, self._future]

    def _name(self, target: str) -> str:
        if target.startswith("option") and self._options:
            return self._options[int(target[-1]) % len(self._options)]
        return {
            "perp": "BTC-PERPETUAL",
            "future": self._future,
            "unlisted": "BTC-1JAN99-1000-C",
            "eth": "ETH-PERPETUAL",
            "junk": "\x1b[2J; DROP TABLE orders",
        }.get(target, "BTC-PERPETUAL")

    async def decide(self, obs: Observation, ctx: Context) -> Decision:
        wanted = self._plan[ctx.step - 1] if ctx.step <= len(self._plan) else []
        intents = []
        for wish in wanted:
            name = self._name(wish.target)
            ticker = obs.tickers.get(name)
            usd = wish.in_usd and name == "BTC-PERPETUAL"
            amount = wish.amount * obs.index_price if usd else wish.amount
            if usd and math.isfinite(amount):
                amount = max(10.0, round(amount / 10) * 10)
            price = None
            if wish.price_factor is not None:
                mark = ticker.mark_price if ticker is not None else 0.01
                price = mark * wish.price_factor
                instrument = obs.instruments.get(name)
                if instrument is not None and math.isfinite(price):
                    price = round(round(price / instrument.tick_size) * instrument.tick_size, 10)
            intents.append(
                OrderIntent(
                    name,
                    wish.direction,  # type: ignore[arg-type]
                    amount,
                    order_type=wish.order_type,  # type: ignore[arg-type]
                    price=price,
                    reduce_only=wish.reduce_only,
                )
            )
        return Decision(tuple(intents), rationale="adversarial")


async def _run(plan: Sequence[tuple[Sequence[Wish], float]], data_dir: Path) -> list[Received]:
    clock = SimClock(start=1_800_000_000)
    recorder = Recorder(create_app(clock=clock, seed=1), clock)
    configured = load_settings(
        data_dir=data_dir,
        console_port=0,
        health_check_on_startup=False,
        **CAPS,
    )
    client = DeribitClient(
        base_url="http://paper",
        client_id=CLIENT_ID,
        client_secret=configured.exchange_client_secret,
        clock=clock,
        transport=httpx.ASGITransport(app=recorder),
        resilience=Resilience(clock=clock),
    )
    agent = AdversarialAgent([wishes for wishes, _ in plan])
    runner = Runner(configured, clock=clock, agent=agent, exchange=client, console=False)
    try:
        for _, pause in plan:
            await runner.loop.step()
            clock.advance(pause)
    finally:
        await runner.aclose()
    return recorder.orders


@settings(
    max_examples=25,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=steps)
def test_no_order_outside_the_caps_reaches_the_exchange(
    plan: list[tuple[list[Wish], float]],
) -> None:
    """Every order the paper exchange receives is within every cap, judged from its own state."""
    with tempfile.TemporaryDirectory() as tmp:
        received = asyncio.run(_run(plan, Path(tmp) / "data"))
    for k, order in enumerate(received):
        assert _breaches(order, received[:k]) == [], order.params


def test_a_burst_of_sound_orders_reaches_the_exchange_up_to_the_rate_cap() -> None:
    """The recorder sees what is sent: eight small sound buys in one step, exactly five arrive."""
    sound = Wish("perp", "buy", "limit", 0.01, 0.99, True, False)
    with tempfile.TemporaryDirectory() as tmp:
        received = asyncio.run(_run([([sound] * 8, 0.0)], Path(tmp) / "data"))
    assert len(received) == MAX_PER_MINUTE
    for k, order in enumerate(received):
        assert _breaches(order, received[:k]) == []


def test_the_oracle_catches_an_order_outside_the_caps() -> None:
    """The oracle is not vacuous: a big, off-collar, unlisted or throttled order is flagged."""
    listed = {
        "BTC-PERPETUAL": {"kind": "future", "settlement_period": "perpetual", "tick_size": 0.5},
        "BTC-X-C": {"kind": "option", "settlement_period": "week", "tick_size": 0.0001},
    }

    def order(name: str, amount: float, price: float | None, at: float = 0.0) -> Received:
        params = {"instrument_name": name, "amount": amount, "type": "limit", "price": price}
        if price is None:
            params["type"] = "market"
        return Received("buy", params, at, 90_000.0, listed, 0.01, [], [])

    assert _breaches(order("BTC-X-C", 0.1, 0.0101), []) == []
    assert _breaches(order("BTC-X-C", 0.1, 0.02), [])  # off the collar
    assert _breaches(order("BTC-X-C", 0.6, None), [])  # above the amount cap
    assert _breaches(order("BTC-Y-C", 0.1, None), [])  # unlisted
    assert _breaches(order("BTC-X-C", math.nan, None), [])
    burst = [order("BTC-X-C", 0.1, None, at=float(i)) for i in range(MAX_PER_MINUTE)]
    assert _breaches(order("BTC-X-C", 0.1, None, at=10.0), burst)  # the sixth in a minute
