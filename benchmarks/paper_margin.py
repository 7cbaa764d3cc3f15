"""Paper-exchange place+cancel latency with an empty and a loaded book; prints JSON.

Two venues in one process, on a SimClock that does not move (so the market stays on one grid
step and no resting order fills while we measure):

* ``empty``: one account with no resting orders;
* ``loaded``: one account with ``--resting`` limit orders resting over ``--options`` BTC
  options (buys at the bid, sells one tick above the ask, round-robin over the options).

Each measured operation is ``PaperVenue.place`` of a resting limit buy in one of the options
followed by ``PaperVenue.cancel`` of it: the margin check of every order and the book-keeping
of a cancel, without HTTP. Rounds alternate A (empty), B (loaded), A, B, … so drift on the
machine lands on both sides; a round times ``--ops`` pairs and gives one mean latency, and the
figures are the median, min and max of those over ``--rounds`` rounds per side.
``ratio_loaded_vs_empty`` is the loaded round over the empty round that ran beside it, as
median, min and max over the pairs (the goal of issue 10 is a median of at most 2).

Usage: ``.venv/bin/python benchmarks/paper_margin.py [--resting N] [--options N] [--rounds N]``
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import orjson

from _support import interleaved, spread
from bastion.clock import SimClock
from bastion.simulators.paper import OrderRequest, PaperVenue

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
CLIENT = "bench"
BALANCE_BTC = 1_000_000.0  # enough that no resting order is refused for margin


def _venue() -> PaperVenue:
    return PaperVenue(clock=SimClock(START), seed=1, initial_balances={"BTC": BALANCE_BTC})


def _options(venue: PaperVenue, count: int) -> list[str]:
    """``count`` BTC options that have a bid, so a buy at the bid and a sell above the ask rest."""
    names = []
    for data in venue.instruments(currency="BTC", kind="option"):
        ticker = venue.ticker(data["instrument_name"])
        if ticker["best_bid_price"] > 0:
            names.append(data["instrument_name"])
    if len(names) < count:
        raise SystemExit(f"only {len(names)} BTC options with a bid are listed; asked {count}")
    return names[:count]


def _resting(venue: PaperVenue, name: str, direction: str) -> OrderRequest:
    ticker = venue.ticker(name)
    tick = venue.market.instrument(name).tick_size
    price = ticker["best_bid_price"] if direction == "buy" else ticker["best_ask_price"] + tick
    return OrderRequest(name, direction, 0.1, price=round(price, 8))  # type: ignore[arg-type]


def _load(venue: PaperVenue, options: list[str], resting: int) -> None:
    for i in range(resting):
        name = options[i % len(options)]
        placed = venue.place(CLIENT, _resting(venue, name, "buy" if i % 2 == 0 else "sell"))
        if placed["order"]["order_state"] != "open":
            raise SystemExit(f"a loading order did not rest: {placed['order']}")


def _round(venue: PaperVenue, request: OrderRequest, ops: int) -> float:
    """Mean microseconds of one place+cancel over ``ops`` pairs."""
    started = time.perf_counter_ns()
    for _ in range(ops):
        order_id = venue.place(CLIENT, request)["order"]["order_id"]
        venue.cancel(CLIENT, order_id)
    return (time.perf_counter_ns() - started) / ops / 1000


def _microseconds(samples: list[float]) -> dict[str, float]:
    return {f"{name}_us": value for name, value in spread(samples, 2).items()}


def main(*, resting: int, options: int, rounds: int, ops: int) -> dict[str, Any]:
    empty, loaded = _venue(), _venue()
    names = _options(loaded, options)
    _load(loaded, names, resting)
    target = names[len(names) // 2]  # an option that already holds its share of the orders
    sides = {
        "empty": (empty, _resting(empty, target, "buy")),
        "loaded": (loaded, _resting(loaded, target, "buy")),
    }
    for venue, request in sides.values():  # warm-up: quotes cached, accounts opened
        _round(venue, request, max(1, ops // 10))

    async def empty_round() -> float:
        return _round(*sides["empty"], ops)

    async def loaded_round() -> float:
        return _round(*sides["loaded"], ops)

    empty_us, loaded_us = asyncio.run(interleaved(rounds, empty_round, loaded_round))
    resting_now = len(loaded.open_orders(CLIENT, currency="BTC"))
    return {
        "python": sys.version.split()[0],
        "settings": {
            "clock": "SimClock, not advanced (one market grid step for the whole run)",
            "resting_orders": resting_now,
            "options_with_orders": options,
            "orders_in_measured_option": len(loaded.open_orders(CLIENT, instrument_name=target)),
            "order": f"limit buy 0.1 {target} at the bid, then cancel",
            "balance_btc": BALANCE_BTC,
            "rounds_per_side": rounds,
            "pairs_per_round": ops,
            "interleaving": "A (empty), B (loaded), A, B, ...",
        },
        "place_cancel_empty": _microseconds(empty_us),
        "place_cancel_loaded": _microseconds(loaded_us),
        "ratio_loaded_vs_empty": spread(
            [b / a for a, b in zip(empty_us, loaded_us, strict=True)], 2
        ),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resting", type=int, default=3000)
    parser.add_argument("--options", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--ops", type=int, default=200)
    args = parser.parse_args()
    result = main(resting=args.resting, options=args.options, rounds=args.rounds, ops=args.ops)
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
