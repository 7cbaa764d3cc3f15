"""What a fault says on either simulator: its kind, which requests it targets, and how often.

Every fault spec is a flat pydantic model: the targeting fields below, a ``kind`` and every
kind's options side by side. The targeting vocabulary is one for both simulators, so a chaos
test moves from the exchange to the LLM by changing the target and the kind, nothing else:

- ``times``: fire for the next N matching requests (default 1; ``null``: until cleared). The
  fake LLM server called it ``count`` before; ``count`` is now refused with a message that
  names ``times``, so an old script fails loudly instead of arming a different fault;
- ``probability``: fire on each matching request with this chance (0 < p <= 1), drawn from
  the fault's own seeded RNG (see :mod:`.table`); alone it fires until cleared, with ``times``
  it stops after that many firings;
- the target: a glob (:func:`fnmatch.fnmatchcase`, default ``*``) in a field named after what
  it matches, because a request is named differently on each side: ``method`` (the Deribit
  method, ``private/*``) on the paper exchange, ``model`` (the requested model id,
  ``gpt-4o*``) on the fake LLM server. A subclass names the field in :attr:`TARGET`.

A subclass adds its ``kind`` literal, its target field, its options and the table of which
options each kind needs and allows (:attr:`OPTIONS`, checked by :mod:`.options`), so a typo
cannot arm a different fault than the one meant.
"""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from bastion.simulators.faults.options import OptionTable, check_options

__all__ = ["BaseFaultSpec"]

_RENAMED = {"count": "times"}


class BaseFaultSpec(BaseModel):
    """The fields every fault has; a simulator's spec subclasses it (see the module docstring).

    Immutable and strict (``"3"`` is not 3): a spec is read from settings, a command line or a
    control request, and each must mean exactly what it says.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    TARGET: ClassVar[str]
    """The name of the field that holds the target glob (``method``, ``model``)."""
    OPTIONS: ClassVar[OptionTable]
    """For each kind: the options it needs, and those it allows."""

    kind: str
    times: int | None = Field(1, ge=1)
    probability: float | None = Field(None, gt=0.0, le=1.0)

    @property
    def target(self) -> str:
        """The glob of the requests this fault hits (the value of the :attr:`TARGET` field)."""
        return str(getattr(self, self.TARGET))

    def matches(self, target: str) -> bool:
        """Whether a request for ``target`` (a method, a model) is one this fault hits."""
        return fnmatchcase(target, self.target)

    @model_validator(mode="before")
    @classmethod
    def _targeting(cls, data: Any) -> Any:
        """Refuse renamed fields by their new name; a probability alone means until cleared."""
        if not isinstance(data, Mapping):
            return data
        for old, new in _RENAMED.items():
            if old in data:
                raise PydanticCustomError(
                    "renamed_field",
                    "{old} is now {new} (fire for the next N matching requests): send "
                    '"{new}": {value}',
                    {"old": old, "new": new, "value": _json(data[old])},
                )
        if data.get("probability") is not None and "times" not in data:
            return {**data, "times": None}
        return data

    @model_validator(mode="after")
    def _options_fit_the_kind(self) -> Self:
        targeting = {*BaseFaultSpec.model_fields, self.TARGET}
        check_options(self, self.kind, self.OPTIONS, targeting=targeting)
        return self


def _json(value: Any) -> str:
    """``value`` as the JSON a user would type (``null`` for None), for the rename message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value) if isinstance(value, int | float) else f'"{value}"'
