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
method, including those a fault answers (:meth:`FaultInjector.calls`).

A delay sleeps on wall time, not the app's clock: it exists to trip client timeouts, and the
simulated clock (hence every response byte) is left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from random import Random
from typing import Any, Literal, Self

import anyio
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.types import Receive

from bastion.exchange.paper.errors import INTERNAL_SERVER_ERROR
from bastion.exchange.paper.methods import PRIVATE, PUBLIC

__all__ = ["Fault", "FaultInjector", "FaultKind", "FaultSpec", "InjectedCrash"]

FaultKind = Literal["status", "error", "delay", "hang", "malformed", "truncated", "drop", "crash"]

MAX_FAULT_BODY = 16 * 1024
_TARGETING = frozenset({"kind", "method", "times", "probability"})
_OPTIONS: dict[str, tuple[frozenset[str], frozenset[str]]] = {  # kind: (required, allowed)
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
        if (
            isinstance(data, Mapping)
            and data.get("probability") is not None
            and "times" not in data
        ):
            return {**data, "times": None}
        return data

    @model_validator(mode="after")
    def _options_fit_the_kind(self) -> Self:
        required, allowed = _OPTIONS[self.kind]
        given = {name for name in FaultSpec.model_fields if getattr(self, name) is not None}
        given -= _TARGETING
        a_kind = f"{'an' if self.kind[0] in 'aeiou' else 'a'} {self.kind} fault"
        if missing := sorted(required - given):
            raise ValueError(f"{a_kind} needs {', '.join(missing)}")
        if extra := sorted(given - allowed):
            raise ValueError(f"{', '.join(extra)} does not apply to {a_kind}")
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
    remaining: int | None
    fired: int = 0
    _rng: Random | None = field(default=None, repr=False)

    @property
    def method(self) -> str:
        return self.spec.method

    @property
    def kind(self) -> FaultKind:
        return self.spec.kind

    def matches(self, method: str) -> bool:
        return self.remaining != 0 and fnmatchcase(method, self.spec.method)

    def to_dict(self) -> dict[str, Any]:
        """The spec (options left unset omitted) with ``id``, ``remaining`` and ``fired``."""
        spec = self.spec.model_dump(exclude_none=True)
        spec.setdefault("times", None)
        return {"id": self.id, **spec, "remaining": self.remaining, "fired": self.fired}


class FaultInjector:
    """The faults armed on one app, the calls it has served, and the requests hanging in it.

    Thread-safe: a test may arm faults from its own thread while a uvicorn thread serves.
    """

    def __init__(self, *, seed: int = 1, faults: Iterable[FaultSpec] = ()) -> None:
        self._seed = seed
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._next_id = 1
        self._calls: Counter[str] = Counter()
        self._hangs: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = set()
        for spec in faults:
            self.arm(spec)

    def arm(self, spec: FaultSpec | Mapping[str, Any]) -> Fault:
        """Arm ``spec`` (a :class:`FaultSpec` or a mapping validated into one)."""
        if not isinstance(spec, FaultSpec):
            spec = FaultSpec.model_validate(spec)
        with self._lock:
            fault_id, self._next_id = self._next_id, self._next_id + 1
            rng = None
            if spec.probability is not None:
                rng = Random(f"paper-faults/{self._seed}/{fault_id}")  # noqa: S311 -- a simulation
            fault = Fault(fault_id, spec, spec.times, _rng=rng)
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
                if not fault.matches(method):
                    continue
                if fault._rng is not None and fault._rng.random() >= (fault.spec.probability or 0):
                    continue
                fault.fired += 1
                if fault.remaining is not None:
                    fault.remaining -= 1
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
        with self._lock:
            return len(self._hangs)

    def release_hangs(self) -> None:
        """End every hanging request; safe to call from any thread."""
        with self._lock:
            hangs = list(self._hangs)
        for loop, released in hangs:
            with contextlib.suppress(RuntimeError):  # a closed loop has no one waiting any more
                loop.call_soon_threadsafe(_settle, released)

    async def hang(self, receive: Receive) -> bool:
        """Wait until the client disconnects (True) or :meth:`release_hangs` is called (False).

        Cancellation (a client timeout under an in-process transport) propagates. The watch for
        the disconnect runs in a task group, so nothing outlives the request.
        """
        loop = asyncio.get_running_loop()
        released: asyncio.Future[None] = loop.create_future()
        entry = (loop, released)
        disconnected = False
        with self._lock:
            self._hangs.add(entry)
        try:
            async with anyio.create_task_group() as group:

                async def watch_disconnect() -> None:
                    nonlocal disconnected
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    disconnected = True
                    group.cancel_scope.cancel()

                group.start_soon(watch_disconnect)
                await released
                group.cancel_scope.cancel()
        finally:
            with self._lock:
                self._hangs.discard(entry)
        return disconnected

    def snapshot(self) -> dict[str, Any]:
        """Armed faults, call counts and hanging requests, as the control endpoint shows them."""
        return {
            "faults": [fault.to_dict() for fault in self.faults],
            "calls": self.call_counts(),
            "hanging": self.hanging,
        }


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
