"""Bastion: a production runtime for autonomous LLM trading agents.

The public face is small on purpose: build an :class:`Agent`, return :class:`Decision` s made of
:class:`OrderIntent` s, and let a :class:`Runner` run it inside the guard rails.
"""

from bastion.agent import Agent, Context, Decision, Observation, OrderIntent
from bastion.clock import Clock, SimClock, WallClock
from bastion.config import Settings, load_settings
from bastion.errors import BastionError, ConfigError, ErrorCode, HaltedError, UsageError
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
