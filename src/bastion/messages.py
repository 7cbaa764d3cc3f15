"""The LLM vocabulary every layer speaks: messages in, a priced and attributed completion out.

:class:`GuardedLLM` is what an agent gets as ``ctx.llm``: every call admitted by the budget
first, run through the resilience choke point with its own breaker per model, and answered by a
fallback chain that ends in a human escalation (:class:`Escalated`) rather than an exception.
:mod:`bastion.llm.chain` implements it; one provider adapter is :class:`bastion.llm.base.LLM`.

The provider and the exact model id that answered are part of every :class:`Completion`, so a
silent model upgrade shows in the trace and the ledger.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = [
    "Completion",
    "Escalated",
    "GuardedLLM",
    "JsonSchema",
    "Message",
    "Role",
    "Tier",
    "Tool",
    "ToolCall",
    "Usage",
    "estimate_input_tokens",
    "prompt_digest",
]

Role = Literal["system", "user", "assistant", "tool"]
Tier = Literal["primary", "fallback", "cache"]
"""Which link of the fallback chain answered: the first model, a later one, or the cache."""


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may ask to call; ``parameters`` is its JSON schema."""

    name: str
    description: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The model asks for ``name`` with ``arguments`` (a JSON text, unvalidated)."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message. ``tool_call_id`` links a ``tool`` message to the call it answers.

    An ``assistant`` message that asked for tools carries its ``tool_calls``: providers refuse
    a ``tool`` answer that does not follow the turn which asked for it.
    """

    role: Role
    content: str
    tool_call_id: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class JsonSchema:
    """Ask for a JSON answer that matches ``schema`` (OpenAI structured outputs).

    Providers without native support get the schema in the system prompt; the answer is
    always validated by the caller, never trusted.
    """

    name: str
    schema: Mapping[str, Any]
    strict: bool = True


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens the provider says it billed for one call."""

    input_tokens: int
    output_tokens: int

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class Completion:
    """One answer: text and tool calls, what it cost in tokens, who answered and how fast.

    ``latency`` is seconds of wall time for the request. ``tier`` and ``usd`` are filled in by
    the guarded chain (an adapter leaves the defaults).
    """

    text: str
    usage: Usage
    model: str
    latency: float
    provider: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    tier: Tier = "primary"
    usd: float = 0.0


@dataclass(frozen=True, slots=True)
class Escalated:
    """No model could answer and no cached answer was fresh: a person was asked instead.

    The agent gets this value, not an exception, so it can decide to do nothing this step;
    ``approval_id`` is the approvals-queue entry a person will see.
    """

    approval_id: str
    reason: str
    code: str
    escalated: Literal[True] = field(default=True, init=False)


@runtime_checkable
class GuardedLLM(Protocol):
    """What an agent calls: budget-admitted, breaker-guarded, with fallbacks.

    ``input_class`` names the kind of question ("options_seller.decide"); the last good answer
    for it is the cached fallback. ``phase`` is recorded in the ledger.
    """

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        input_class: str,
        tools: Sequence[Tool] | None = None,
        response_format: JsonSchema | None = None,
        max_tokens: int | None = None,
        phase: str | None = None,
    ) -> Completion | Escalated: ...


def estimate_input_tokens(messages: Sequence[Message], extra: str = "") -> int:
    """A conservative count of input tokens, for admission before the provider counts them.

    Real text runs about four characters a token; counting three errs high, as an admission
    estimate should, and each message is padded for the chat framing. The budget settles on
    the provider's own count afterwards.
    """
    chars = sum(len(m.content) for m in messages) + len(extra)
    return -(-chars // 3) + 8 * len(messages) + 16


def prompt_digest(messages: Sequence[Message]) -> str:
    """A fingerprint of what was asked, so a replay can tell the agent asked something else.

    The trace keeps the answer, not the prompt (a prompt holds the whole market summary); the
    digest is enough to say that a recorded answer was given to a different question.
    """
    body = json.dumps([[m.role, m.content, m.tool_call_id] for m in messages], ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()[:32]
