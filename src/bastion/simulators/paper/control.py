"""The loopback-only control surface of the paper exchange's fault injection, at ``/_paper``.

The routes are the ones both simulators serve (:mod:`bastion.simulators.faults.routes`), plain
JSON and never JSON-RPC (no Deribit method reaches them):

- ``GET /_paper/faults`` lists the armed faults with their counters, the calls per method and
  the hanging requests; ``POST`` appends one fault (a JSON
  :class:`~bastion.simulators.paper.faults.FaultSpec`) or a list; ``PUT`` replaces them all;
  ``DELETE`` clears them (hanging requests are released too);
- ``GET``/``DELETE /_paper/faults/{id}`` read or clear one;
- ``GET /_paper/calls`` → ``{"calls": {method: n}, "total": n}``; ``DELETE`` resets the count;
- ``POST /_paper/shock`` with ``{"currency": "BTC", "pct": -20}`` moves that index by ``pct``
  percent from the next second on (:meth:`~bastion.simulators.paper.market.Market.shock`) and
  answers ``{"currency": ..., "index_price": ...}``: a drill's way to make a loss on purpose.

Only loopback clients (127.0.0.0/8, ::1, or an IPv4-mapped loopback) are served; anyone else,
and a client whose address is unknown (a Unix socket), gets 403.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError
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
from bastion.simulators.faults.routes import FaultRoutes
from bastion.simulators.paper.faults import FaultInjector, FaultSpec

if TYPE_CHECKING:
    from bastion.simulators.paper.market import Market

__all__ = ["CONTROL_PREFIX", "FaultControl", "Shock", "ShockControl"]

CONTROL_PREFIX = "/_paper"
_REMOTE_REFUSED = "the fault control endpoint answers loopback clients only"


class FaultControl(FaultRoutes[FaultSpec]):
    """Serves the control routes for one :class:`FaultInjector`, under ``/_paper``."""

    def __init__(self, faults: FaultInjector) -> None:
        super().__init__(faults, prefix=CONTROL_PREFIX, refused=_REMOTE_REFUSED)
        self.faults = faults


class Shock(BaseModel):
    """A ``POST /_paper/shock`` body: move ``currency``'s index by ``pct`` percent."""

    model_config = ConfigDict(extra="forbid", strict=True)

    currency: str
    pct: float = Field(gt=-100, le=1000, allow_inf_nan=False)
    """Percent: -20 is a 20 % fall; above -100, so the index stays positive."""


class ShockControl:
    """Serves ``POST /_paper/shock`` for one market: a price move a drill asks for."""

    def __init__(self, market: Market) -> None:
        self.market = market

    @property
    def routes(self) -> list[Route]:
        return [control_route(f"{CONTROL_PREFIX}/shock", {"POST": self._shock}, _REMOTE_REFUSED)]

    async def _shock(self, request: Request) -> Response:
        what = 'a JSON object like {"currency": "BTC", "pct": -20}'
        body = await read_json(request, what)
        if isinstance(body, Response):
            return body
        if not isinstance(body, dict):
            return control_error(422, "invalid shock", f"the body is {what}")
        try:
            shock = Shock.model_validate(body)
        except ValidationError as exc:
            return control_error(422, "invalid shock", validation_reason(exc))
        if shock.currency not in self.market.specs:
            known = ", ".join(sorted(self.market.specs))
            return control_error(422, "invalid shock", f"currency: one of {known}")
        index = self.market.shock(shock.currency, shock.pct)
        return control_json(200, {"currency": shock.currency, "index_price": index})
