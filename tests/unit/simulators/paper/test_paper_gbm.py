"""The index path: deterministic, path-independent, and with the volatility it claims."""

from __future__ import annotations

import itertools
import math
import statistics

import pytest

from bastion.simulators.paper.gbm import BLOCK_STEPS, SECONDS_PER_YEAR, GbmParams, IndexPath

BTC = GbmParams(spot=90_000.0, vol=0.5)


def path(seed: int = 1, name: str = "btc_usd") -> IndexPath:
    return IndexPath(name=name, params=BTC, seed=seed, origin=1_767_225_600.0)


def test_starts_at_spot() -> None:
    """At its origin (and before it) the index is the configured spot."""
    assert path().price_at(1_767_225_600.0) == 90_000.0
    assert path().price_at(1_767_225_000.0) == 90_000.0


def test_same_seed_same_path_other_seed_differs() -> None:
    """Two paths with one seed agree everywhere; another seed or index name gives another path."""
    times = [1_767_225_600.0 + s for s in (1, 59, 3_600, 86_400, 30 * 86_400)]
    first = [path().price_at(t) for t in times]
    assert first == [path().price_at(t) for t in times]
    assert first != [path(seed=2).price_at(t) for t in times]
    assert first != [path(name="eth_usd").price_at(t) for t in times]


def test_path_does_not_depend_on_how_it_is_read() -> None:
    """Reading every second, jumping straight to the end, or reading backwards gives one path."""
    stepped, jumped, backwards = path(), path(), path()
    origin = stepped.origin
    walk = [stepped.price_at(origin + s) for s in range(0, 2 * BLOCK_STEPS + 7)]
    assert jumped.price_at(origin + 2 * BLOCK_STEPS + 6) == walk[-1]
    assert [backwards.price_at(origin + s) for s in reversed(range(len(walk)))] == walk[::-1]


def test_holds_between_grid_steps() -> None:
    """The index moves on the one-second grid and holds in between."""
    p = path()
    assert p.price_at(p.origin + 10.2) == p.price_at(p.origin + 10.9)


def test_one_second_returns_have_the_configured_volatility() -> None:
    """Per-second log returns have mean ~0 and standard deviation sigma*sqrt(dt)."""
    p = path()
    prices = [p.price_at_step(n) for n in range(3 * BLOCK_STEPS)]
    returns = [math.log(b / a) for a, b in itertools.pairwise(prices)]
    expected = BTC.vol * math.sqrt(1 / SECONDS_PER_YEAR)
    assert statistics.stdev(returns) == pytest.approx(expected, rel=0.05)


def test_hourly_returns_have_the_configured_volatility() -> None:
    """Block-level (hourly) log returns carry the same annual volatility."""
    p = path()
    prices = [p.price_at_step(n * BLOCK_STEPS) for n in range(400)]
    returns = [math.log(b / a) for a, b in itertools.pairwise(prices)]
    expected = BTC.vol * math.sqrt(BLOCK_STEPS / SECONDS_PER_YEAR)
    assert statistics.stdev(returns) == pytest.approx(expected, rel=0.12)


def test_a_jump_of_a_year_is_cheap_and_finite() -> None:
    """Reading a year ahead needs one draw per hour, not per second, and gives a sane price."""
    price = path().price_at(1_767_225_600.0 + SECONDS_PER_YEAR)
    assert 5_000 < price < 1_000_000
