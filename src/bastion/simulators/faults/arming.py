"""When an armed fault fires: for the next ``times`` matching calls, or at random, reproducibly.

Both simulators arm faults by the same rules, so a chaos test reads the same on either: a fault
fires for the next ``times`` matching calls (default 1; None: until cleared), or, given a
``probability``, on each matching call with that chance (until cleared unless ``times`` is
given). A probabilistic fault draws from an RNG of its own, so whether it fires never depends
on what other faults drew; :class:`~bastion.simulators.faults.table.FaultTable` seeds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from random import Random

__all__ = ["Arming"]


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
    def seeded(cls, times: int | None, probability: float | None, seed: str) -> Arming:
        """Arm for ``times`` firings; a ``probability`` draws from an RNG seeded by ``seed``.

        A string seed is hashed by :class:`random.Random` itself (SHA-512), not by ``hash()``,
        so the draws do not change with ``PYTHONHASHSEED``.
        """
        rng = None if probability is None else Random(seed)  # noqa: S311 -- a simulation
        return cls(times, probability, rng)

    @property
    def spent(self) -> bool:
        """Whether the fault has fired ``times`` times and is disarmed."""
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
