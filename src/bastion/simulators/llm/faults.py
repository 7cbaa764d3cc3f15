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
generated and billed but lost on the way back. ``model`` is a glob on the requested model id.
A fault fires for the next ``count`` matching requests (default 1; None: until cleared), or,
with ``probability``, on each with that chance, drawn from an RNG seeded by the server seed and
the fault's position in the list, so a run is reproducible. These rules, the check of options
against the kind and what goes on the wire are shared with the paper exchange
(:mod:`bastion.simulators.faults`); this server's own answers are :mod:`.fault_responses`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bastion.simulators.faults.arming import Arming, until_cleared
from bastion.simulators.faults.options import OptionTable, check_options
from bastion.simulators.llm.envelope import openai_error

__all__ = ["FaultTable", "LLMFault", "LLMFaultKind"]

LLMFaultKind = Literal["status", "hang", "delay", "malformed", "truncated", "drop"]

_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
_TARGETING = frozenset({"kind", "model", "count", "probability"})
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


class LLMFault(BaseModel):
    """One fault: what the client sees (``kind`` and its options) and which requests it hits.

    Options by kind: ``status`` takes ``status`` (400-599) and optionally ``message``,
    ``error_type`` and ``code`` for the OpenAI error body (defaults fit the status: 429 is
    ``requests``/``rate_limit_exceeded``, 5xx is ``server_error``), ``retry_after`` (whole
    seconds, the ``Retry-After`` header) and ``headers`` (extra headers such as
    ``x-ratelimit-remaining-requests``); ``delay`` takes ``seconds``. An option that does not
    apply to the kind is an error, so a typo cannot arm a different fault than the one meant.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    kind: LLMFaultKind
    model: str = Field("*", min_length=1, max_length=200)
    count: int | None = Field(1, ge=1)
    probability: float | None = Field(None, gt=0.0, le=1.0)
    status: int | None = Field(None, ge=400, le=599)
    message: str | None = Field(None, max_length=500)
    error_type: str | None = Field(None, min_length=1, max_length=100)
    code: str | None = Field(None, min_length=1, max_length=100)
    retry_after: int | None = Field(None, ge=0, le=86_400)
    headers: dict[str, str] | None = None
    seconds: float | None = Field(None, gt=0.0, le=3600.0)

    @model_validator(mode="before")
    @classmethod
    def _probability_means_until_cleared(cls, data: Any) -> Any:
        return until_cleared(data, "count")

    @model_validator(mode="after")
    def _options_fit_the_kind(self) -> Self:
        check_options(self, self.kind, _OPTIONS, targeting=_TARGETING)
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


@dataclass(slots=True, eq=False)
class _ArmedFault:
    spec: LLMFault
    arming: Arming

    def fires_for(self, model: str) -> bool:
        """Whether the fault fires for a request of ``model``; if it does, it is counted."""
        return fnmatchcase(model, self.spec.model) and self.arming.fire()


class FaultTable:
    """The armed faults, replaced as a whole; each probabilistic one has its own seeded RNG."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._lock = threading.Lock()
        self._faults: list[_ArmedFault] = []

    def replace(self, specs: Iterable[LLMFault | Mapping[str, Any]]) -> None:
        validated = [s if isinstance(s, LLMFault) else LLMFault.model_validate(s) for s in specs]
        armed = [
            _ArmedFault(spec, Arming.seeded(spec.count, spec.probability, self._seed_of(index)))
            for index, spec in enumerate(validated)
        ]
        with self._lock:
            self._faults = armed

    def _seed_of(self, index: int) -> str:
        return f"fake-llm-faults/{self._seed}/{index}"

    def clear(self) -> int:
        with self._lock:
            armed = sum(1 for fault in self._faults if not fault.arming.spent)
            self._faults = []
        return armed

    def take(self, model: str) -> LLMFault | None:
        """The fault that fires for a request of ``model``, if any, counted as fired."""
        with self._lock:
            for fault in self._faults:
                if fault.fires_for(model):
                    return fault.spec
        return None

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                fault.arming.report(fault.spec, "count")
                for fault in self._faults
                if not fault.arming.spent
            ]
