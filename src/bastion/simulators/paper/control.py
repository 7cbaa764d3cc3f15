"""The loopback-only control surface of the paper exchange's fault injection, at ``/_paper``.

The routes are the ones both simulators serve (:mod:`bastion.simulators.faults.routes`), plain
JSON and never JSON-RPC (no Deribit method reaches them):

- ``GET /_paper/faults`` lists the armed faults with their counters, the calls per method and
  the hanging requests; ``POST`` appends one fault (a JSON
  :class:`~bastion.simulators.paper.faults.FaultSpec`) or a list; ``PUT`` replaces them all;
  ``DELETE`` clears them (hanging requests are released too);
- ``GET``/``DELETE /_paper/faults/{id}`` read or clear one;
- ``GET /_paper/calls`` → ``{"calls": {method: n}, "total": n}``; ``DELETE`` resets the count.

Only loopback clients (127.0.0.0/8, ::1, or an IPv4-mapped loopback) are served; anyone else,
and a client whose address is unknown (a Unix socket), gets 403.
"""

from __future__ import annotations

from bastion.simulators.faults.routes import FaultRoutes
from bastion.simulators.paper.faults import FaultInjector, FaultSpec

__all__ = ["CONTROL_PREFIX", "FaultControl"]

CONTROL_PREFIX = "/_paper"
_REMOTE_REFUSED = "the fault control endpoint answers loopback clients only"


class FaultControl(FaultRoutes[FaultSpec]):
    """Serves the control routes for one :class:`FaultInjector`, under ``/_paper``."""

    def __init__(self, faults: FaultInjector) -> None:
        super().__init__(faults, prefix=CONTROL_PREFIX, refused=_REMOTE_REFUSED)
        self.faults = faults
