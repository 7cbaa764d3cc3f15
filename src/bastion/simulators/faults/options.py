"""Which options each fault kind takes, checked so a typo cannot arm a different fault.

Both simulators describe a fault as one flat pydantic model: targeting fields, a ``kind`` and
every kind's options side by side. A table per simulator names, for each kind, the options it
needs and those it allows; :func:`check_options` holds a spec to it with the same messages on
both ("a delay fault needs seconds", "status does not apply to an error fault").
"""

from __future__ import annotations

from collections.abc import Mapping, Set

from pydantic import BaseModel

__all__ = ["OptionTable", "check_options"]

OptionTable = Mapping[str, tuple[frozenset[str], frozenset[str]]]
"""For each kind: the options it needs, and those it allows."""


def check_options(spec: BaseModel, kind: str, table: OptionTable, *, targeting: Set[str]) -> None:
    """Raise ``ValueError`` unless ``spec`` sets every option ``kind`` needs and no other.

    Fields in ``targeting`` (the kind, the target glob, ``times``, ``probability``) are not
    options.
    """
    required, allowed = table[kind]
    given = {name for name in type(spec).model_fields if getattr(spec, name) is not None}
    given -= targeting
    a_kind = f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} fault"
    if missing := sorted(required - given):
        raise ValueError(f"{a_kind} needs {', '.join(missing)}")
    if extra := sorted(given - allowed):
        raise ValueError(f"{', '.join(extra)} does not apply to {a_kind}")
