"""Bastion: a production runtime for autonomous LLM trading agents.

The public face is small on purpose: build an :class:`Agent`, return :class:`Decision` s made of
:class:`OrderIntent` s, and let a :class:`Runner` run it inside the guard rails.

The vocabulary is imported with the package; the :class:`Runner` (which pulls in the console's
server and the store) is imported on first use (PEP 562), so ``import bastion`` and the CLI
commands that never run an agent stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from bastion.agent import Agent, Context, Decision, Observation, OrderIntent
from bastion.clock import Clock, SimClock, WallClock
from bastion.config import Settings, load_settings
from bastion.errors import BastionError, ConfigError, ErrorCode, HaltedError, UsageError

if TYPE_CHECKING:
    from bastion.runner import Runner

__all__ = [
    "Agent",
    "BastionError",
    "Clock",
    "ConfigError",
    "Context",
    "Decision",
    "ErrorCode",
    "HaltedError",
    "Observation",
    "OrderIntent",
    "Runner",
    "Settings",
    "SimClock",
    "UsageError",
    "WallClock",
    "load_settings",
]
__version__ = "0.1.0"

_LAZY = {"Runner": "bastion.runner"}
"""Public names whose modules are heavy, and where each lives."""


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bastion' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
