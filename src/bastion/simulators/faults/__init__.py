"""Fault injection shared by Bastion's simulators: the paper exchange and the fake LLM server.

Both simulators fail on cue by one set of rules, so a chaos test reads the same against either
and a fix to how a fault fires, a hang ends or a drop looks reaches both. What they share lives
here, one concept a module; what is theirs (fault kinds and their options, Deribit or OpenAI
error bodies, the names in messages) stays in :mod:`bastion.simulators.paper` and
:mod:`bastion.simulators.llm`:

- :mod:`.spec`: :class:`BaseFaultSpec`, the targeting vocabulary (``times``, ``probability``,
  a target glob) every fault spec has;
- :mod:`.options`: which options each fault kind takes;
- :mod:`.arming`: when one armed fault fires (its next ``times`` requests, or at random);
- :mod:`.table`: :class:`FaultTable`, the armed faults with their ids, the requests counted
  per target, the first fault that fires, the seeding rule, clearing;
- :mod:`.routes`: the control routes over a table (GET lists, POST appends, PUT replaces,
  DELETE clears all or one), the same under ``/_paper`` and ``/_fake``;
- :mod:`.control`: the loopback-only guard and the plain JSON answers of every control route;
- :mod:`.responses`: what goes on the wire (a dropped connection, a hang, a garbled body);
- :mod:`.hangs`: the requests a hang holds, and their release.
"""

from __future__ import annotations

from bastion.simulators.faults.routes import FaultRoutes
from bastion.simulators.faults.spec import BaseFaultSpec
from bastion.simulators.faults.table import ArmedFault, FaultTable

__all__ = ["ArmedFault", "BaseFaultSpec", "FaultRoutes", "FaultTable"]
