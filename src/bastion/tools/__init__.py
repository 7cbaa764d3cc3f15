"""Tools an agent may call through ``ctx.tools``: the allowlisted gate and the tools behind it.

Tools live on the adapters floor, beside ``exchange/`` and ``llm/``, because a tool is one more
way out of the process: every call reaches something outside (the exchange, a feed), so it
goes through the resilience choke point below (``calls``) and speaks the ground floor's
vocabulary (:class:`~bastion.agent.GuardedTools`, :class:`~bastion.messages.Tool`). The guard
floor above decides about orders; a tool never places one, so nothing here needs the guard.

- :mod:`.base`: :class:`AgentTool`, what one tool is (name, schema, ``run``), and the argument
  parsing every tool shares;
- :mod:`.ticker`: :class:`TickerTool`, read-only top of book and greeks from the exchange;
- :mod:`.news`: :class:`NewsTool`, headlines from an HTTP feed, the tool that can fail;
- :mod:`.box`: :class:`Toolbox`, the allowlist and the choke point around them.
"""

from bastion.tools.base import AgentTool, ToolArguments, parse_arguments
from bastion.tools.box import StepTools, Toolbox
from bastion.tools.news import NewsTool
from bastion.tools.ticker import TickerTool

__all__ = [
    "AgentTool",
    "NewsTool",
    "StepTools",
    "TickerTool",
    "ToolArguments",
    "Toolbox",
    "parse_arguments",
]
