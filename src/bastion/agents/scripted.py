"""A scripted agent for tests, demos and users' own test suites.

Its decision is a plain function of the observation, so a test states a scenario exactly
("buy the perpetual every step", "hang on the first call") and drives the real runtime with it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from bastion.agent import Context, Decision, Observation
from bastion.market import Instrument

__all__ = ["ScriptedAgent"]

DecideFn = Callable[[Observation, Context], Decision | Awaitable[Decision]]


class ScriptedAgent:
    """Runs ``decide_fn`` each step and watches a fixed list of instruments."""

    version = "0"
    tools: Sequence[str] = ()

    def __init__(
        self,
        decide_fn: DecideFn,
        *,
        watch: Sequence[str] = ("BTC-PERPETUAL",),
        name: str = "scripted",
    ) -> None:
        self.name = name
        self._decide = decide_fn
        self._watch = list(watch)
        self.calls = 0

    def watchlist(
        self, instruments: Sequence[Instrument], index_price: float, now_ms: int
    ) -> list[str]:
        listed = {i.name for i in instruments}
        return [name for name in self._watch if name in listed]

    async def decide(self, obs: Observation, ctx: Context) -> Decision:
        self.calls += 1
        result = self._decide(obs, ctx)
        if isinstance(result, Decision):
            return result
        return await result
