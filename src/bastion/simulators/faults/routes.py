"""The fault control routes, the same on both simulators under their own prefix.

Under ``{prefix}`` (``/_paper`` on the paper exchange, ``/_fake`` on the fake LLM server),
loopback clients only (:mod:`.control`), plain JSON:

- ``GET /faults`` → 200 ``{"faults": [...], "calls": {target: n}, "hanging": n}``: the armed
  faults in the order they are tried, each with its ``id``, its options, ``times``,
  ``remaining`` and ``fired``;
- ``POST /faults`` **appends**: one fault (a JSON object) → 201 ``{"fault": {...}}``, or a
  list of them → 201 ``{"faults": [...]}``, each with the id it was given;
- ``PUT /faults`` **replaces** the table with a list (or one object) → 200 ``{"faults": [...]}``;
  the faults it replaces are cleared as by DELETE;
- ``DELETE /faults`` clears every fault and releases every hanging request →
  200 ``{"cleared": n}``;
- ``GET /faults/{id}`` → 200 ``{"fault": {...}}``; ``DELETE /faults/{id}`` disarms that one
  and releases its hangs → 200 ``{"cleared": 1}``; an id not armed (never given, cleared, or
  spent) → 404;
- ``GET /calls`` → 200 ``{"calls": {target: n}, "total": n}``, every request counted under
  its target whether or not a fault answered it; ``DELETE /calls`` counts from zero.

A body that is not JSON → 400, larger than 32 KiB → 413, a fault that fails validation →
422 whose ``reason`` names the field (``1.kind: ...`` for the second of a list); a batch with
one bad fault arms none. Why POST appends: a drill arms one fault per step without reading back
what is armed; PUT is there for a script that states the whole table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.simulators.faults.control import (
    control_error,
    control_json,
    control_route,
    read_json,
    validation_reason,
)
from bastion.simulators.faults.spec import BaseFaultSpec
from bastion.simulators.faults.table import ArmedFault, FaultTable

__all__ = ["FaultRoutes"]

S = TypeVar("S", bound=BaseFaultSpec)

_WHAT = "one fault as a JSON object, or a JSON list of them"
_MAX_ID_DIGITS = 18


class FaultRoutes(Generic[S]):
    """Serves the fault control routes of one :class:`FaultTable` under ``prefix``.

    ``refused`` is the reason a remote client's 403 gives, naming the simulator.
    """

    def __init__(self, table: FaultTable[S], *, prefix: str, refused: str) -> None:
        self.table = table
        self.prefix = prefix
        self.refused = refused

    @property
    def routes(self) -> list[Route]:
        faults = {"GET": self._list, "POST": self._append, "PUT": self._replace}
        one = {"GET": self._get_one, "DELETE": self._delete_one}
        calls = {"GET": self._calls, "DELETE": self._reset_calls}
        return [
            control_route(f"{self.prefix}/faults", {**faults, "DELETE": self._clear}, self.refused),
            control_route(f"{self.prefix}/faults/{{fault_id}}", one, self.refused),
            control_route(f"{self.prefix}/calls", calls, self.refused),
        ]

    async def _list(self, request: Request) -> Response:
        return control_json(200, self.table.snapshot())

    async def _append(self, request: Request) -> Response:
        data = await read_json(request, _WHAT)
        if isinstance(data, Response):
            return data
        if isinstance(data, dict):
            try:
                return control_json(201, {"fault": self.table.arm(data).to_dict()})
            except ValidationError as exc:
                return _invalid(exc)
        armed = self._arm_list(data, self.table.arm_all)
        return armed if isinstance(armed, Response) else control_json(201, {"faults": armed})

    async def _replace(self, request: Request) -> Response:
        data = await read_json(request, _WHAT)
        if isinstance(data, Response):
            return data
        armed = self._arm_list([data] if isinstance(data, dict) else data, self.table.replace)
        return armed if isinstance(armed, Response) else control_json(200, {"faults": armed})

    def _arm_list(
        self, data: Any, arm: Callable[[list[Any]], list[ArmedFault[S]]]
    ) -> list[dict[str, Any]] | Response:
        if not isinstance(data, list):
            return control_error(422, "invalid fault", f"the body must be {_WHAT}")
        try:
            faults = arm(data)
        except ValidationError as exc:
            return _invalid(exc)
        return [fault.to_dict() for fault in faults]

    async def _clear(self, request: Request) -> Response:
        return control_json(200, {"cleared": self.table.clear()})

    async def _get_one(self, request: Request) -> Response:
        fault_id = _fault_id(request)
        fault = None if fault_id is None else self.table.get(fault_id)
        if fault is None:
            return self._not_armed(request)
        return control_json(200, {"fault": fault.to_dict()})

    async def _delete_one(self, request: Request) -> Response:
        fault_id = _fault_id(request)
        if fault_id is None or not self.table.disarm(fault_id):
            return self._not_armed(request)
        return control_json(200, {"cleared": 1})

    def _not_armed(self, request: Request) -> Response:
        given = request.path_params["fault_id"]
        reason = f"no armed fault has id {given!r} (GET {self.prefix}/faults lists them)"
        return control_error(404, "not found", reason)

    async def _calls(self, request: Request) -> Response:
        counts = self.table.call_counts()
        return control_json(200, {"calls": counts, "total": sum(counts.values())})

    async def _reset_calls(self, request: Request) -> Response:
        self.table.reset_calls()
        return control_json(200, {"calls": {}, "total": 0})


def _fault_id(request: Request) -> int | None:
    """The ``{fault_id}`` of the path as an id, or None if it is not a whole number."""
    text = str(request.path_params["fault_id"])
    whole = text.isascii() and text.isdigit() and len(text) <= _MAX_ID_DIGITS
    return int(text) if whole else None


def _invalid(exc: ValidationError) -> Response:
    return control_error(422, "invalid fault", validation_reason(exc))
