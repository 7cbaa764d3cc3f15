"""The fake LLM server's faults: what each kind does, which requests it hits, and when it fires.

Faults (:class:`LLMFault`), checked in order, the first that fires wins:

=============  ===========================================================  =============
kind           what the client sees                                         reply used?
=============  ===========================================================  =============
``status``     HTTP ``status`` with an OpenAI error body; ``retry_after``   no
               and ``headers`` (e.g. ``x-ratelimit-*``) add headers
``delay``      the normal answer after ``seconds`` of wall time             yes
``hang``       nothing, until the client gives up or the faults are         no
               cleared or the server shuts down (then the connection drops)
``malformed``  HTTP 200, ``application/json``, a body that is not JSON      yes
``truncated``  the normal answer cut in the middle (honest length)          yes
``drop``       the connection closed without a response                     no
=============  ===========================================================  =============

A ``malformed`` or ``truncated`` answer consumes its scripted reply, as when a completion is
generated and billed but lost on the way back.

Targeting, counting and the control routes follow the rules both simulators share
(:mod:`bastion.simulators.faults`): ``model`` is a glob on the requested model id (default
``*``); ``times`` is the next N matching requests (default 1; null: until cleared; this server
called it ``count`` before, which is now refused with a message naming ``times``);
``probability`` fires at random from the fault's own RNG, seeded from the server seed and the
fault's id. Faults are tried in the order they were armed and the first that fires wins; what
this server's faults put on the wire is :mod:`.fault_responses`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Literal, Self

from pydantic import Field, model_validator

from bastion.simulators.faults.options import OptionTable
from bastion.simulators.faults.spec import BaseFaultSpec
from bastion.simulators.faults.table import ArmedFault, FaultTable
from bastion.simulators.llm.envelope import openai_error

__all__ = ["LLMArmedFault", "LLMFault", "LLMFaultKind", "LLMFaultTable"]

LLMFaultKind = Literal["status", "hang", "delay", "malformed", "truncated", "drop"]

_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
_OPTIONS: OptionTable = {
    "status": (
        frozenset({"status"}),
        frozenset({"status", "message", "error_type", "code", "retry_after", "headers"}),
    ),
    "delay": (frozenset({"seconds"}), frozenset({"seconds"})),
    "hang": (frozenset(), frozenset()),
    "malformed": (frozenset(), frozenset()),
    "truncated": (frozenset(), frozenset()),
    "drop": (frozenset(), frozenset()),
}
_ERROR_TYPES = {401: "invalid_request_error", 403: "permission_error", 429: "requests"}
_ERROR_CODES = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}


class LLMFault(BaseFaultSpec):
    """One fault: what the client sees (``kind`` and its options) and which requests it hits.

    Targeting (``model``, ``times``, ``probability``) is :class:`BaseFaultSpec`'s. Options by
    kind: ``status`` takes ``status`` (400-599) and optionally ``message``, ``error_type`` and
    ``code`` for the OpenAI error body (defaults fit the status: 429 is
    ``requests``/``rate_limit_exceeded``, 5xx is ``server_error``), ``retry_after`` (whole
    seconds, the ``Retry-After`` header) and ``headers`` (extra headers such as
    ``x-ratelimit-remaining-requests``); ``delay`` takes ``seconds``. An option that does not
    apply to the kind is an error, so a typo cannot arm a different fault than the one meant.
    """

    TARGET: ClassVar[str] = "model"
    OPTIONS: ClassVar[OptionTable] = _OPTIONS

    kind: LLMFaultKind
    model: str = Field("*", min_length=1, max_length=200)
    status: int | None = Field(None, ge=400, le=599)
    message: str | None = Field(None, max_length=500)
    error_type: str | None = Field(None, min_length=1, max_length=100)
    code: str | None = Field(None, min_length=1, max_length=100)
    retry_after: int | None = Field(None, ge=0, le=86_400)
    headers: dict[str, str] | None = None
    seconds: float | None = Field(None, gt=0.0, le=3600.0)

    @model_validator(mode="after")
    def _headers_are_headers(self) -> Self:
        for name, value in (self.headers or {}).items():
            if not _HEADER_NAME.fullmatch(name) or not value.isprintable():
                raise ValueError(f"header {name!r} needs a token name and a printable value")
        return self

    def error_body(self, model: str) -> dict[str, Any]:
        """The OpenAI error envelope a ``status`` fault answers for a request of ``model``."""
        status = self.status or 500
        message = self.message or f"fake LLM server: injected HTTP {status} for model {model}"
        error_type = self.error_type or _ERROR_TYPES.get(
            status, "server_error" if status >= 500 else "invalid_request_error"
        )
        return openai_error(
            message, error_type=error_type, code=self.code or _ERROR_CODES.get(status)
        )


class LLMFaultTable(FaultTable[LLMFault]):
    """The faults armed on one fake LLM server: a :class:`FaultTable` of :class:`LLMFault`.

    Targets are requested model ids.
    """

    def __init__(
        self, *, seed: int = 0, faults: Iterable[LLMFault | Mapping[str, Any]] = ()
    ) -> None:
        super().__init__(LLMFault, seed=seed, faults=faults)


LLMArmedFault = ArmedFault[LLMFault]
"""An armed fake LLM fault: its ``id``, ``spec``, ``remaining`` and ``fired``."""
