"""The faults armed on one simulator: arming, firing, counting, reporting and clearing them.

Both simulators keep their faults in a :class:`FaultTable`, so the rules are one:

- **Arming** gives each fault an id, counting up from 1 for the life of the table and never
  reused (not even after a clear), so an id named to ``DELETE /faults/{id}`` always means the
  fault it was given to. :meth:`~FaultTable.arm` and :meth:`~FaultTable.arm_all` append;
  :meth:`~FaultTable.replace` clears and then arms. A batch is validated whole before any of it
  is armed: a bad spec arms nothing and leaves the table as it was.
- **Firing**: every request is counted under its target (a method, a model) whether or not a
  fault answers it, then the faults are tried in the order they were armed and the first that
  fires wins. A probabilistic fault that draws "no" lets the next one try. A fault that has
  fired its ``times`` is dropped.
- **Seeding**: each probabilistic fault draws from an RNG of its own, seeded with the string
  ``"bastion-faults/{table seed}/{fault id}"``. The same seed and the same faults armed in the
  same order therefore fire on the same requests, on a fresh server or on the other simulator,
  and a fault's draws never depend on what another fault drew.
- **Clearing** all faults, or one by id, also ends the requests their hangs hold (those
  connections drop), so a test can always get its server back.

Thread-safe: a test arms faults from its own thread while a uvicorn thread serves.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter

from bastion.simulators.faults.arming import Arming
from bastion.simulators.faults.hangs import Hangs
from bastion.simulators.faults.spec import BaseFaultSpec

__all__ = ["ArmedFault", "FaultTable", "seed_of"]

S = TypeVar("S", bound=BaseFaultSpec)


def seed_of(table_seed: int, fault_id: int) -> str:
    """The seed of the RNG a probabilistic fault draws from (see the module docstring)."""
    return f"bastion-faults/{table_seed}/{fault_id}"


@dataclass(slots=True, eq=False)
class ArmedFault(Generic[S]):
    """An armed fault: its id, its spec, how many more times it may fire, and how often it has."""

    id: int
    spec: S
    arming: Arming

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def remaining(self) -> int | None:
        """Firings left (None: until cleared)."""
        return self.arming.remaining

    @property
    def fired(self) -> int:
        return self.arming.fired

    def to_dict(self) -> dict[str, Any]:
        """``id``, the spec's options (unset ones left out, ``times`` always), the counters."""
        options = self.spec.model_dump(exclude_none=True)
        options.setdefault("times", None)
        return {"id": self.id, **options, "remaining": self.remaining, "fired": self.fired}


class FaultTable(Generic[S]):
    """The faults armed on one simulator, the requests counted per target, and the hangs.

    ``spec_type`` validates mappings (settings, control requests) into specs; ``seed`` seeds
    the probabilistic faults; ``faults`` are armed at once. ``hangs`` holds the requests a
    ``hang`` fault keeps waiting; the simulator's hanging answers wait on it.
    """

    def __init__(
        self, spec_type: type[S], *, seed: int, faults: Iterable[S | Mapping[str, Any]] = ()
    ) -> None:
        self.spec_type = spec_type
        self.seed = seed
        self.hangs = Hangs()
        self._specs = TypeAdapter(list[spec_type])  # type: ignore[valid-type]
        self._lock = threading.Lock()
        self._faults: list[ArmedFault[S]] = []
        self._next_id = 1
        self._calls: Counter[str] = Counter()
        self.arm_all(faults)

    # -- arming -------------------------------------------------------------------------------
    def validate(self, specs: Iterable[S | Mapping[str, Any]]) -> list[S]:
        """``specs`` as specs: mappings are validated, a ``ValidationError`` names the bad one.

        Errors are located by position (``1.kind``), as a control request's list is.
        """
        validated: list[S] = self._specs.validate_python(list(specs))
        return validated

    def arm(self, spec: S | Mapping[str, Any]) -> ArmedFault[S]:
        """Arm one fault (a spec, or a mapping validated into one), after those armed."""
        if not isinstance(spec, self.spec_type):
            spec = self.spec_type.model_validate(spec)
        (armed,) = self._arm([spec])
        return armed

    def arm_all(self, specs: Iterable[S | Mapping[str, Any]]) -> list[ArmedFault[S]]:
        """Arm several faults after those armed; one bad spec arms none of them."""
        return self._arm(self.validate(specs))

    def replace(self, specs: Iterable[S | Mapping[str, Any]]) -> list[ArmedFault[S]]:
        """Clear the table (releasing hangs) and arm ``specs``; one bad spec changes nothing."""
        validated = self.validate(specs)
        self.clear()
        return self._arm(validated)

    def _arm(self, specs: list[S]) -> list[ArmedFault[S]]:
        with self._lock:
            armed = []
            for spec in specs:
                fault_id, self._next_id = self._next_id, self._next_id + 1
                arming = Arming.seeded(spec.times, spec.probability, seed_of(self.seed, fault_id))
                armed.append(ArmedFault(fault_id, spec, arming))
            self._faults.extend(armed)
        return armed

    # -- reading and clearing -----------------------------------------------------------------
    @property
    def faults(self) -> list[ArmedFault[S]]:
        """The faults still armed, in the order they are tried."""
        with self._lock:
            return [fault for fault in self._faults if not fault.arming.spent]

    def __len__(self) -> int:
        return len(self.faults)

    def get(self, fault_id: int) -> ArmedFault[S] | None:
        """The armed fault with ``fault_id``, or None if there is none (or it is spent)."""
        with self._lock:
            for fault in self._faults:
                if fault.id == fault_id and not fault.arming.spent:
                    return fault
        return None

    def clear(self) -> int:
        """Disarm every fault and release every hanging request; returns how many were armed."""
        with self._lock:
            armed = sum(1 for fault in self._faults if not fault.arming.spent)
            self._faults.clear()
        self.hangs.release()
        return armed

    def disarm(self, fault_id: int) -> bool:
        """Disarm the fault ``fault_id`` and release its hangs; False if none is armed."""
        with self._lock:
            kept = [fault for fault in self._faults if fault.id != fault_id]
            found = any(fault.id == fault_id and not fault.arming.spent for fault in self._faults)
            self._faults = kept
        self.hangs.release(fault_id)
        return found

    # -- firing and counting ------------------------------------------------------------------
    def take(self, target: str) -> ArmedFault[S] | None:
        """Count a request for ``target`` and return the fault that fires for it, if any."""
        with self._lock:
            self._calls[target] += 1
            for fault in self._faults:
                if fault.spec.matches(target) and fault.arming.fire():
                    if fault.arming.spent:
                        self._faults.remove(fault)
                    return fault
        return None

    def calls(self, target: str = "*") -> int:
        """How many requests for targets matching the glob ``target`` arrived, faulted or not."""
        with self._lock:
            return sum(n for name, n in self._calls.items() if fnmatchcase(name, target))

    def call_counts(self) -> dict[str, int]:
        """Requests per target, sorted by target."""
        with self._lock:
            return dict(sorted(self._calls.items()))

    def reset_calls(self) -> None:
        """Start counting requests from zero."""
        with self._lock:
            self._calls.clear()

    # -- hangs --------------------------------------------------------------------------------
    @property
    def hanging(self) -> int:
        """How many requests are hanging right now."""
        return len(self.hangs)

    def release_hangs(self) -> None:
        """End every hanging request (its connection drops); safe to call from any thread."""
        self.hangs.release()

    def close(self) -> None:
        """Release every hang and drop any later one at once: the server is shutting down."""
        self.hangs.close()

    def snapshot(self) -> dict[str, Any]:
        """Armed faults with their counters, requests per target and hanging requests.

        What ``GET /faults`` answers on both simulators.
        """
        return {
            "faults": [fault.to_dict() for fault in self.faults],
            "calls": self.call_counts(),
            "hanging": self.hanging,
        }
