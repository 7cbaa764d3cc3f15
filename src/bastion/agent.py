"""What an agent is, what it sees and what it may propose.

An agent is a policy: it gets an :class:`Observation` and returns a :class:`Decision` made of
:class:`OrderIntent` s. It never talks to the exchange itself. Everything an intent becomes
(reviewed, approved, sent, filled) is the runtime's job, which is what lets Bastion put risk,
halts and traces around any agent, rule-based or LLM-driven.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from bastion.clock import Clock
from bastion.market import AccountSummary, Direction, Instrument, Order, OrderType, Position, Ticker
from bastion.messages import GuardedLLM, Tool

__all__ = [
    "Agent",
    "Context",
    "Decision",
    "GuardedTools",
    "Observation",
    "OrderIntent",
    "StatefulAgent",
    "ToolResult",
]


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """An order the agent would like to send. The risk review decides whether it may."""

    instrument_name: str
    direction: Direction
    amount: float
    order_type: OrderType = "limit"
    price: float | None = None
    reduce_only: bool = False
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    """The agent's answer for one step: zero or more intents and why."""

    intents: tuple[OrderIntent, ...] = ()
    rationale: str = ""


@dataclass(frozen=True, slots=True)
class Observation:
    """One consistent snapshot of the account and the market the agent asked to watch."""

    time_ms: int
    currency: str
    index_price: float
    account: AccountSummary
    positions: tuple[Position, ...]
    open_orders: tuple[Order, ...]
    tickers: Mapping[str, Ticker]
    instruments: Mapping[str, Instrument] = field(default_factory=dict)

    def position_size(self, instrument_name: str) -> float:
        """Signed size held in ``instrument_name`` (0 when flat)."""
        return sum(p.size for p in self.positions if p.instrument_name == instrument_name)


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What one tool call answered, as text fit for a prompt.

    ``content`` is the tool's answer (JSON) already sanitised and cut, because a tool's output is
    written by someone else (an exchange, a news feed) and goes straight into a model's prompt;
    ``removed`` and ``truncated`` say what sanitising took out.
    """

    name: str
    content: str
    removed: tuple[str, ...] = ()
    truncated: bool = False


@runtime_checkable
class GuardedTools(Protocol):
    """What an agent calls as ``ctx.tools``: allowlisted, and guarded like every external call.

    ``offered`` are the definitions of the tools this agent may call, the ones it declares
    (``Agent.tools``) that the configuration also allows: hand them to the model as they are.
    :meth:`call` refuses any other name with a :class:`~bastion.errors.ToolError`
    (``forbidden``) and records the attempt as a security event; an allowed call runs through
    the resilience choke point, and its failures are ``ToolError`` s with their code.
    """

    @property
    def offered(self) -> tuple[Tool, ...]: ...

    async def call(
        self, name: str, arguments: str | Mapping[str, Any] | None = None
    ) -> ToolResult: ...


@dataclass(frozen=True, slots=True)
class Context:
    """What the runtime lends an agent for one step."""

    run_id: str
    step: int
    clock: Clock
    dry_run: bool
    llm: GuardedLLM | None = None
    """The runtime's budget-admitted, breaker-guarded fallback chain; None without an LLM."""
    tools: GuardedTools | None = None
    """The allowlisted tools of this agent (:class:`GuardedTools`), lent even when it may call
    none so that a model's request is refused on record; None outside a runtime."""


@runtime_checkable
class Agent(Protocol):
    """A trading policy run by Bastion.

    ``watchlist`` names the instruments whose tickers the next observation should carry, chosen
    from the exchange's instrument list; instruments the account holds are always added.

    An agent that asks ``ctx.llm`` may set ``uses_llm = True``: the runtime then refuses to
    start a run while the LLM budget is used up (``budget_exhausted``).

    ``decide`` must await rather than block: the step timeout can abandon an ``await`` that
    hangs, but a CPU-bound or blocking call freezes the loop, its halt checks and the console.
    Run blocking work with ``asyncio.to_thread``.
    """

    name: str
    version: str
    tools: Sequence[str]

    def watchlist(
        self, instruments: Sequence[Instrument], index_price: float, now_ms: int
    ) -> list[str]: ...

    async def decide(self, obs: Observation, ctx: Context) -> Decision: ...


@runtime_checkable
class StatefulAgent(Protocol):
    """An agent that keeps working state between steps, and lets the runtime save it.

    The loop saves ``snapshot()`` atomically after every completed step (see
    :mod:`bastion.runtime.checkpoint`) and, after a crash, hands the last one to ``restore()``
    before the first step of the next run, so the agent goes on from what it had decided, not
    from nothing. The snapshot must be JSON (dicts, lists, strings, numbers, booleans, None).
    The shipped agents keep no state of their own (they decide from the observation), so
    they need neither method.
    """

    def snapshot(self) -> dict[str, Any]: ...

    def restore(self, state: Mapping[str, Any]) -> None: ...
