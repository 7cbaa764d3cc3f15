"""When an armed fault fires: for the next ``count`` matching calls, or at random, reproducibly.

Both simulators arm faults by the same rules, so a chaos test reads the same on either: a fault
fires for the next ``count`` matching calls (default 1; None: until cleared), or, given a
``probability``, on each matching call with that chance (until cleared unless a count is
given). Each probabilistic fault draws from an RNG of its own, seeded from the simulator's
seed and the fault's place, so a run is reproducible. The count is ``times`` on the paper
exchange and ``count`` on the fake LLM server, hence the ``count`` parameters here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from random import Random
from typing import Any

from pydantic import BaseModel

__all__ = ["Arming", "until_cleared"]


def until_cleared(data: Any, count: str) -> Any:
    """``data`` with its ``count`` field set to None if it gives a probability and no count.

    For a spec's ``mode="before"`` validator: a probability alone fires until cleared, while a
    count given with it (None included) is kept.
    """
    if isinstance(data, Mapping) and data.get("probability") is not None and count not in data:
        return {**data, count: None}
    return data


@dataclass(slots=True, eq=False)
class Arming:
    """How many more times an armed fault may fire (None: until cleared), and how often it has.

    A probabilistic fault carries its ``probability`` and the RNG it draws from.
    """

    remaining: int | None
    probability: float | None = None
    rng: Random | None = field(default=None, repr=False)
    fired: int = 0

    @classmethod
    def seeded(cls, count: int | None, probability: float | None, seed: str) -> Arming:
        """Arm for ``count`` firings; a ``probability`` draws from an RNG seeded by ``seed``."""
        rng = None if probability is None else Random(seed)  # noqa: S311 -- a simulation
        return cls(count, probability, rng)

    @property
    def spent(self) -> bool:
        """Whether the fault has fired its count and is disarmed."""
        return self.remaining == 0

    def fire(self) -> bool:
        """Whether the fault fires for one matching call (drawing if probabilistic); counts it."""
        if self.spent:
            return False
        if self.rng is not None and self.rng.random() >= (self.probability or 0.0):
            return False
        self.fired += 1
        if self.remaining is not None:
            self.remaining -= 1
        return True

    def report(self, spec: BaseModel, count: str) -> dict[str, Any]:
        """``spec`` as armed: its options (unset ones left out, ``count`` always), then counts.

        The counts are ``remaining`` and ``fired``, as a snapshot or a control route shows them.
        """
        options = spec.model_dump(exclude_none=True)
        options.setdefault(count, None)
        return {**options, "remaining": self.remaining, "fired": self.fired}
