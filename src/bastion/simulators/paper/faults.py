"""Fault injection: make the paper exchange fail on cue, the way real venues and networks do.

Resilience, halt and chaos tests need a venue that fails on purpose (a 429 with Retry-After, a
503 with an HTML page, a hang, a garbled or cut body, a dropped connection) without patching
Bastion's own code. A :class:`FaultSpec` describes one fault; the same model is accepted by
:meth:`FaultInjector.arm`, by ``create_app(faults=...)`` (settings) and by the loopback control
endpoint (:mod:`.control`).

Kinds, and whether the venue handles the call:

=============  ==========================================================  ===============
kind           what the client sees                                        venue handles?
=============  ==========================================================  ===============
``status``     HTTP ``status``; a Deribit error envelope (``code``, or a   no
               code that fits the status), or the raw ``body`` as given
``error``      Deribit error ``code`` with its usual status (401/429/400)  no
``delay``      the normal answer after ``seconds`` of wall time            yes
``hang``       nothing, until the client gives up (or faults are cleared)  no
``malformed``  HTTP 200, ``application/json``, a body that is not JSON     yes
``truncated``  the normal answer cut in the middle (honest length)         yes
``drop``       the connection closed without a response                    no
``crash``      a handler exception, served as 11094 internal_server_error  no
=============  ==========================================================  ===============

A ``malformed`` or ``truncated`` call is handled before its answer is garbled, as when a
response is lost on the way back: an order is placed that the client never hears about.

Targeting: ``method`` is an exact name (``public/ticker``) or a glob (``private/*``, ``*``) and
must match at least one method of the exchange. A fault fires for the next ``times`` matching
calls (default 1; None: until cleared), or, with ``probability``, on each matching call with
that chance (until cleared unless ``times`` is given). Each fault draws from its own RNG seeded
from the app seed and the fault's id, so a run is reproducible. Faults are checked in the
order they were armed and the first that fires wins; the injector also counts every call per
method, including those a fault answers (:meth:`FaultInjector.calls`). These rules, the check
of options against the kind and the hangs are shared with the fake LLM server
(:mod:`bastion.simulators.faults`).

A delay sleeps on wall time, not the app's clock: it exists to trip client timeouts, and the
simulated clock (hence every response byte) is left alone.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bastion.simulators.faults.arming import Arming, until_cleared
from bastion.simulators.faults.hangs import Hangs
from bastion.simulators.faults.options import OptionTable, check_options
from bastion.simulators.paper.errors import INTERNAL_SERVER_ERROR
from bastion.simulators.paper.methods import PRIVATE, PUBLIC

__all__ = ["Fault", "FaultInjector", "FaultKind", "FaultSpec", "InjectedCrash"]

FaultKind = Literal["status", "error", "delay", "hang", "malformed", "truncated", "drop", "crash"]

MAX_FAULT_BODY = 16 * 1024
_TARGETING = frozenset({"kind", "method", "times", "probability"})
_OPTIONS: OptionTable = {
    "status": (
        frozenset({"status"}),
        frozenset({"status", "code", "message", "body", "content_type", "retry_after"}),
    ),
    "error": (frozenset({"code"}), frozenset({"code", "message", "retry_after"})),
    "delay": (frozenset({"seconds"}), frozenset({"seconds"})),
    "hang": (frozenset(), frozenset()),
    "malformed": (frozenset(), frozenset({"retry_after"})),
    "truncated": (frozenset(), frozenset({"retry_after"})),
    "drop": (frozenset(), frozenset()),
    "crash": (frozenset(), frozenset()),
}
_CODE_FOR_STATUS = {401: 13009, 403: 13021, 404: 13020, 429: 10028, 503: 13028}


class InjectedCrash(RuntimeError):
    """Raised inside a handler by a ``crash`` fault to exercise the internal-error path."""


class FaultSpec(BaseModel):
    """One fault: what the client sees (``kind`` and its options) and which calls it hits.

    Options by kind: ``status`` takes ``status`` (200-599) and either ``code``/``message`` (a
    Deribit envelope) or ``body``/``content_type`` (raw text, e.g. an HTML 503 or an empty
    403); ``error`` takes ``code`` and ``message``; ``delay`` takes ``seconds``.
    ``retry_after`` (whole seconds) adds a ``Retry-After`` header to an HTTP answer
    (``status``, ``error``, ``malformed``, ``truncated``). An option that does not apply to the
    kind is an error, so a typo cannot arm a different fault than the one meant.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    kind: FaultKind
    method: str = Field("*", min_length=1, max_length=200)
    times: int | None = Field(1, ge=1)
    probability: float | None = Field(None, gt=0.0, le=1.0)
    retry_after: int | None = Field(None, ge=0, le=86_400)
    status: int | None = Field(None, ge=200, le=599)
    code: int | None = None
    message: str | None = Field(None, max_length=500)
    body: str | None = Field(None, max_length=MAX_FAULT_BODY)
    content_type: str | None = Field(None, min_length=1, max_length=200)
    seconds: float | None = Field(None, gt=0.0, le=3600.0)

    @model_validator(mode="before")
    @classmethod
    def _probability_means_until_cleared(cls, data: Any) -> Any:
        return until_cleared(data, "times")

    @model_validator(mode="after")
    def _options_fit_the_kind(self) -> Self:
        check_options(self, self.kind, _OPTIONS, targeting=_TARGETING)
        if self.body is not None and (self.code is not None or self.message is not None):
            raise ValueError("a status fault answers either a raw body or a Deribit code")
        if self.content_type is not None and self.body is None:
            raise ValueError("content_type needs a body")
        if self.content_type is not None and not self.content_type.isprintable():
            raise ValueError("content_type must be printable text")
        if not any(fnmatchcase(name, self.method) for name in (*PUBLIC, *PRIVATE)):
            raise ValueError(f"method {self.method!r} matches no method of the paper exchange")
        return self

    @property
    def deribit_code(self) -> int:
        """The Deribit code of an envelope answer: ``code``, else one that fits ``status``."""
        if self.code is not None:
            return self.code
        status = self.status or 500
        return _CODE_FOR_STATUS.get(status, 11050 if status < 500 else INTERNAL_SERVER_ERROR)


@dataclass(slots=True, eq=False)
class Fault:
    """An armed fault: its spec, how many more times it may fire, and how often it has."""

    id: int
    spec: FaultSpec
    arming: Arming

    @property
    def method(self) -> str:
        return self.spec.method

    @property
    def kind(self) -> FaultKind:
        return self.spec.kind

    @property
    def remaining(self) -> int | None:
        return self.arming.remaining

    @property
    def fired(self) -> int:
        return self.arming.fired

    def matches(self, method: str) -> bool:
        return not self.arming.spent and fnmatchcase(method, self.spec.method)

    def to_dict(self) -> dict[str, Any]:
        """The spec (options left unset omitted) with ``id``, ``remaining`` and ``fired``."""
        return {"id": self.id, **self.arming.report(self.spec, "times")}


class FaultInjector:
    """The faults armed on one app, the calls it has served, and the requests hanging in it.

    Thread-safe: a test may arm faults from its own thread while a uvicorn thread serves. The
    hanging requests are ``hangs`` (shared with the app's hanging answers).
    """

    def __init__(self, *, seed: int = 1, faults: Iterable[FaultSpec] = ()) -> None:
        self._seed = seed
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._next_id = 1
        self._calls: Counter[str] = Counter()
        self.hangs = Hangs()
        for spec in faults:
            self.arm(spec)

    def arm(self, spec: FaultSpec | Mapping[str, Any]) -> Fault:
        """Arm ``spec`` (a :class:`FaultSpec` or a mapping validated into one)."""
        if not isinstance(spec, FaultSpec):
            spec = FaultSpec.model_validate(spec)
        with self._lock:
            fault_id, self._next_id = self._next_id, self._next_id + 1
            seed = f"paper-faults/{self._seed}/{fault_id}"
            fault = Fault(fault_id, spec, Arming.seeded(spec.times, spec.probability, seed))
            self._faults.append(fault)
        return fault

    def inject(
        self,
        method: str = "*",
        *,
        code: int | None = None,
        message: str | None = None,
        crash: bool = False,
        times: int | None = 1,
    ) -> Fault:
        """Shorthand: answer Deribit error ``code`` (or crash) for the next ``times`` calls."""
        if (code is None) == (not crash):
            raise ValueError("a fault needs exactly one of code= or crash=True")
        if crash:
            return self.arm(FaultSpec(kind="crash", method=method, times=times))
        return self.arm(
            FaultSpec(kind="error", method=method, code=code, message=message, times=times)
        )

    @property
    def faults(self) -> list[Fault]:
        """The faults still armed, in the order they are checked."""
        with self._lock:
            return [fault for fault in self._faults if fault.remaining != 0]

    def clear(self) -> int:
        """Disarm every fault and release hanging requests (their connections drop).

        Returns how many faults were armed.
        """
        with self._lock:
            armed = sum(1 for fault in self._faults if fault.remaining != 0)
            self._faults.clear()
        self.release_hangs()
        return armed

    def take(self, method: str) -> Fault | None:
        """Count a call of ``method`` and return the fault that fires for it, if any."""
        with self._lock:
            self._calls[method] += 1
            for fault in self._faults:
                if fault.matches(method) and fault.arming.fire():
                    self._faults = [f for f in self._faults if f.remaining != 0]
                    return fault
        return None

    def calls(self, method: str = "*") -> int:
        """How many calls of methods matching the glob ``method`` arrived, faulted or not."""
        with self._lock:
            return sum(n for name, n in self._calls.items() if fnmatchcase(name, method))

    def call_counts(self) -> dict[str, int]:
        """Calls per method, sorted by method name."""
        with self._lock:
            return dict(sorted(self._calls.items()))

    def reset_calls(self) -> None:
        """Start counting calls from zero."""
        with self._lock:
            self._calls.clear()

    @property
    def hanging(self) -> int:
        """How many requests are hanging right now."""
        return len(self.hangs)

    def release_hangs(self) -> None:
        """End every hanging request; safe to call from any thread."""
        self.hangs.release()

    def snapshot(self) -> dict[str, Any]:
        """Armed faults, call counts and hanging requests, as the control endpoint shows them."""
        return {
            "faults": [fault.to_dict() for fault in self.faults],
            "calls": self.call_counts(),
            "hanging": self.hanging,
        }
