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

Targeting, counting and the control routes follow the rules both simulators share
(:mod:`bastion.simulators.faults`): ``method`` is an exact name (``public/ticker``) or a glob
(``private/*``, ``*``) and must match at least one method of the exchange; ``times`` is the
next N matching calls (default 1; null: until cleared); ``probability`` fires at random from
the fault's own RNG, seeded from the app seed and the fault's id. Faults are tried in the order
they were armed and the first that fires wins; every call of a real method is counted, faulted
or not (:meth:`FaultInjector.calls`).

A delay sleeps on wall time, not the app's clock: it exists to trip client timeouts, and the
simulated clock (hence every response byte) is left alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from typing import Any, ClassVar, Literal, Self

from pydantic import Field, model_validator

from bastion.simulators.faults.options import OptionTable
from bastion.simulators.faults.spec import BaseFaultSpec
from bastion.simulators.faults.table import ArmedFault, FaultTable
from bastion.simulators.paper.errors import INTERNAL_SERVER_ERROR
from bastion.simulators.paper.methods import PRIVATE, PUBLIC

__all__ = ["Fault", "FaultInjector", "FaultKind", "FaultSpec", "InjectedCrash"]

FaultKind = Literal["status", "error", "delay", "hang", "malformed", "truncated", "drop", "crash"]

MAX_FAULT_BODY = 16 * 1024
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


class FaultSpec(BaseFaultSpec):
    """One fault: what the client sees (``kind`` and its options) and which calls it hits.

    Targeting (``method``, ``times``, ``probability``) is :class:`BaseFaultSpec`'s. Options by
    kind: ``status`` takes ``status`` (200-599) and either ``code``/``message`` (a Deribit
    envelope) or ``body``/``content_type`` (raw text, e.g. an HTML 503 or an empty 403);
    ``error`` takes ``code`` and ``message``; ``delay`` takes ``seconds``. ``retry_after``
    (whole seconds) adds a ``Retry-After`` header to an HTTP answer (``status``, ``error``,
    ``malformed``, ``truncated``). An option that does not apply to the kind is an error, so a
    typo cannot arm a different fault than the one meant.
    """

    TARGET: ClassVar[str] = "method"
    OPTIONS: ClassVar[OptionTable] = _OPTIONS

    kind: FaultKind
    method: str = Field("*", min_length=1, max_length=200)
    retry_after: int | None = Field(None, ge=0, le=86_400)
    status: int | None = Field(None, ge=200, le=599)
    code: int | None = None
    message: str | None = Field(None, max_length=500)
    body: str | None = Field(None, max_length=MAX_FAULT_BODY)
    content_type: str | None = Field(None, min_length=1, max_length=200)
    seconds: float | None = Field(None, gt=0.0, le=3600.0)

    @model_validator(mode="after")
    def _fits_the_exchange(self) -> Self:
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


Fault = ArmedFault[FaultSpec]
"""An armed paper exchange fault: its ``id``, ``spec``, ``remaining`` and ``fired``."""


class FaultInjector(FaultTable[FaultSpec]):
    """The faults armed on one paper exchange: a :class:`FaultTable` of :class:`FaultSpec`.

    Targets are Deribit method names. Adds :meth:`inject`, the shorthand for a Deribit error.
    """

    def __init__(
        self, *, seed: int = 1, faults: Iterable[FaultSpec | Mapping[str, Any]] = ()
    ) -> None:
        super().__init__(FaultSpec, seed=seed, faults=faults)

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
