"""Bastion: a production runtime for autonomous LLM trading agents.

The public face is small on purpose: build an :class:`Agent`, return :class:`Decision` s made of
:class:`OrderIntent` s, and let a :class:`Runner` run it inside the guard rails.

Every public name is imported on first use (PEP 562): ``import bastion`` costs nothing, and a
command such as ``bastion kill`` (which runs ``bastion/__init__`` before anything else) pays only
for the modules it uses, never for the runner, the console's server or the database layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.lazy_names import lazy_names

if TYPE_CHECKING:
    from bastion.agent import (
        Agent,
        Context,
        Decision,
        GuardedTools,
        Observation,
        OrderIntent,
        ToolResult,
    )
    from bastion.clock import Clock, SimClock, WallClock
    from bastion.config import Settings, load_settings
    from bastion.errors import (
        BastionError,
        ConfigError,
        ErrorCode,
        HaltedError,
        ToolError,
        UsageError,
    )
    from bastion.runner import Runner

__all__ = [
    "Agent",
    "BastionError",
    "Clock",
    "ConfigError",
    "Context",
    "Decision",
    "ErrorCode",
    "GuardedTools",
    "HaltedError",
    "Observation",
    "OrderIntent",
    "Runner",
    "Settings",
    "SimClock",
    "ToolError",
    "ToolResult",
    "UsageError",
    "WallClock",
    "load_settings",
]
__version__ = "0.1.0"

_LAZY = {
    **dict.fromkeys(
        ("Agent", "Context", "Decision", "GuardedTools", "Observation", "OrderIntent"),
        "bastion.agent",
    ),
    "ToolResult": "bastion.agent",
    **dict.fromkeys(("Clock", "SimClock", "WallClock"), "bastion.clock"),
    **dict.fromkeys(("Settings", "load_settings"), "bastion.config"),
    **dict.fromkeys(
        ("BastionError", "ConfigError", "ErrorCode", "HaltedError", "ToolError", "UsageError"),
        "bastion.errors",
    ),
    "Runner": "bastion.runner",
}
"""Every public name, and the module it lives in."""


__getattr__, __dir__ = lazy_names("bastion", globals(), _LAZY)
