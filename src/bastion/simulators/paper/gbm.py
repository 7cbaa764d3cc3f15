"""Index prices: a seeded geometric Brownian motion that can be read at any time.

Model::

    S(n) = S0 * exp((mu - sigma**2 / 2) * n * dt + sigma * sqrt(dt) * W(n))

on a grid of ``STEP_SECONDS`` steps counted from an origin (the clock time the venue was
created, floored to the grid), where ``W(n)`` is a sum of ``n`` standard normal draws. Between
grid points the price holds (no interpolation). ``mu`` and ``sigma`` are annual; the year has
365 days. The drift defaults to zero, which keeps the index a martingale and consistent with
pricing options at zero interest.

Why two tiers of draws: the price at a grid step must be a pure function of (seed, index name,
step), so how often a client polls or how far a test jumps the clock never changes the path, and a
jump of days must not cost a draw per second. ``W`` is therefore built per block of
``BLOCK_STEPS`` steps: one draw gives the block's total increment (cumulated across blocks and
cached, so reaching block ``b`` costs O(b) cheap draws once), and the path inside a block is a
Brownian bridge over that increment made from the block's own draws, produced only for blocks
actually visited. Both tiers come from ``random.Random`` seeded with a string naming the seed,
the index and the block, which Python hashes with SHA-512: stable across processes and
platforms, unaffected by ``PYTHONHASHSEED``. The construction is exact: the increments on the
grid are i.i.d. ``N(0, 1)``.
"""

from __future__ import annotations

import math
import random
from collections import OrderedDict
from dataclasses import dataclass
from itertools import accumulate

__all__ = ["BLOCK_STEPS", "SECONDS_PER_YEAR", "STEP_SECONDS", "GbmParams", "IndexPath"]

STEP_SECONDS = 1
BLOCK_STEPS = 3600
SECONDS_PER_YEAR = 365 * 86_400
_CACHED_BLOCKS = 4


@dataclass(frozen=True, slots=True)
class GbmParams:
    """Start price, annual volatility and annual drift of one index."""

    spot: float
    vol: float
    drift: float = 0.0


class IndexPath:
    """One index (e.g. ``btc_usd``) as a deterministic GBM path readable at any time."""

    def __init__(self, *, name: str, params: GbmParams, seed: int, origin: float) -> None:
        self.name = name
        self.params = params
        self.origin = math.floor(origin / STEP_SECONDS) * STEP_SECONDS
        self._seed = seed
        self._block_starts: list[float] = [0.0]
        self._bridges: OrderedDict[int, list[float]] = OrderedDict()
        dt = STEP_SECONDS / SECONDS_PER_YEAR
        self._drift_per_step = (params.drift - params.vol**2 / 2) * dt
        self._vol_per_step = params.vol * math.sqrt(dt)
        self._shocks: list[tuple[int, float]] = []  # (from step, factor), in step order

    def shock(self, t: float, factor: float) -> None:
        """Multiply the index by ``factor`` from epoch seconds ``t`` on (a crash, a squeeze).

        The path stays a pure function of the step: every price at or after the shock's step is
        scaled, so quotes, marks, settlement and charts all see the same jump. Drills and tests
        use it to make a loss happen on purpose (``POST /_paper/shock``).
        """
        if not (math.isfinite(factor) and factor > 0):
            raise ValueError(f"a shock factor is a finite positive number, not {factor!r}")
        self._shocks.append((self.step_at(t), factor))
        self._shocks.sort(key=lambda shock: shock[0])

    def step_at(self, t: float) -> int:
        """The grid step in force at epoch seconds ``t`` (0 before the origin)."""
        return max(0, math.floor((t - self.origin) / STEP_SECONDS))

    def price_at(self, t: float) -> float:
        """The index at epoch seconds ``t``, rounded to cents like Deribit's indices."""
        return self.price_at_step(self.step_at(t))

    def price_at_step(self, step: int) -> float:
        """The index at grid step ``step``."""
        log_move = self._drift_per_step * step + self._vol_per_step * self._w(step)
        scale = math.prod(factor for at, factor in self._shocks if at <= step)
        return round(self.params.spot * math.exp(log_move) * scale, 2)

    def _rng(self, tier: str, block: int) -> random.Random:
        return random.Random(f"{self._seed}:{self.name}:{tier}:{block}")  # noqa: S311 -- a simulation, not cryptography

    def _block_increment(self, block: int) -> float:
        return math.sqrt(BLOCK_STEPS) * self._rng("block", block).gauss(0.0, 1.0)

    def _block_start(self, block: int) -> float:
        starts = self._block_starts
        while len(starts) <= block:
            starts.append(starts[-1] + self._block_increment(len(starts) - 1))
        return starts[block]

    def _bridge(self, block: int) -> list[float]:
        """Brownian-bridge offsets inside ``block``: zero at both ends, unit variance per step."""
        bridge = self._bridges.get(block)
        if bridge is None:
            rng = self._rng("fine", block)
            sums = [0.0, *accumulate(rng.gauss(0.0, 1.0) for _ in range(BLOCK_STEPS))]
            total = sums[-1]
            bridge = [s - k / BLOCK_STEPS * total for k, s in enumerate(sums)]
            self._bridges[block] = bridge
            if len(self._bridges) > _CACHED_BLOCKS:
                self._bridges.popitem(last=False)
        else:
            self._bridges.move_to_end(block)
        return bridge

    def _w(self, step: int) -> float:
        block, offset = divmod(step, BLOCK_STEPS)
        start = self._block_start(block)
        if offset == 0:
            return start
        increment = self._block_start(block + 1) - start
        return start + offset / BLOCK_STEPS * increment + self._bridge(block)[offset]
