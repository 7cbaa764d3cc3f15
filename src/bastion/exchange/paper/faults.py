"""Fault injection: make the paper exchange answer a method with an error on purpose.

Resilience, halt and chaos tests need a venue that fails on cue (a 10028 rate limit, a 10040
retry, an internal error) without patching Bastion's own code. A :class:`Fault` matches method
names with a glob (``"private/*"``) and fires a number of times (or forever); the app checks
for one before authenticating, so a fault can also stand in for an auth failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

__all__ = ["Fault", "FaultInjector", "InjectedCrash"]


class InjectedCrash(RuntimeError):
    """Raised inside a handler by a ``crash`` fault to exercise the internal-error path."""


@dataclass(slots=True)
class Fault:
    """Answer calls of ``method`` (a glob) with Deribit error ``code``, or crash the handler."""

    method: str = "*"
    code: int | None = None
    message: str | None = None
    crash: bool = False
    remaining: int | None = 1

    def matches(self, method: str) -> bool:
        return fnmatchcase(method, self.method) and self.remaining != 0


class FaultInjector:
    """The faults armed on one app, checked in the order they were injected."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def inject(
        self,
        method: str = "*",
        *,
        code: int | None = None,
        message: str | None = None,
        crash: bool = False,
        times: int | None = 1,
    ) -> Fault:
        """Arm a fault for the next ``times`` matching calls (None: until cleared)."""
        if (code is None) == (not crash):
            raise ValueError("a fault needs exactly one of code= or crash=True")
        fault = Fault(method, code, message, crash, times)
        self._faults.append(fault)
        return fault

    def clear(self) -> None:
        self._faults.clear()

    def take(self, method: str) -> Fault | None:
        """The first armed fault matching ``method``, counting it as used."""
        for fault in self._faults:
            if fault.matches(method):
                if fault.remaining is not None:
                    fault.remaining -= 1
                return fault
        return None
