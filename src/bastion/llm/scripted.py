"""A deterministic LLM: replies from a list, or the replies a recorded run received.

Tests state a conversation exactly with it; :meth:`ScriptedLLM.from_trace` feeds a run's
``llm_call`` answers back in order, cache answers too (escalations are skipped). The replay
audit does not use it: :class:`bastion.ops.replay.RecordedLLM` answers per step, replays
escalations and checks each answer against the question it was given to.
It satisfies the :class:`~bastion.llm.base.LLM` protocol, so the budget, breakers and fallback
chain around it are the real ones.

A reply may be a text, a :class:`Completion` (its model and usage are kept) or a
:class:`~bastion.errors.BastionError` to raise, which is how a test scripts a failing model.
Usage of a text reply is counted like :func:`~bastion.llm.base.estimate_input_tokens` so
budgets move as they would with a real model.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import orjson

from bastion.errors import BastionError, ErrorCode, LLMError, error_message
from bastion.messages import Completion, JsonSchema, Message, Tool, Usage, estimate_input_tokens

__all__ = ["ScriptedLLM", "ScriptedRequest"]

Reply = str | Completion | BastionError


@dataclass(frozen=True, slots=True)
class ScriptedRequest:
    """What the scripted model was asked, for tests to inspect."""

    model: str
    messages: tuple[Message, ...]
    max_tokens: int
    response_format: JsonSchema | None
    tools: tuple[Tool, ...]


class ScriptedLLM:
    """Answers from ``replies`` in order; then ``default`` forever, or an error when None."""

    def __init__(
        self,
        replies: Iterable[Reply] = (),
        *,
        default: Reply | None = None,
        provider: str = "scripted",
    ) -> None:
        self.provider = provider
        self._replies = list(replies)
        self._default = default
        self.requests: list[ScriptedRequest] = []

    @classmethod
    def from_trace(cls, path: Path) -> ScriptedLLM:
        """The answers a recorded run received, in order (``llm_call`` lines of its trace).

        Answers from the chain's cache are included: what matters to a replay is the text the
        agent got at each step, not who produced it.
        """
        replies: list[Reply] = []
        with path.open("rb") as lines:
            for line in lines:
                data = orjson.loads(line)
                if data.get("kind") != "llm_call":
                    continue
                replies.append(
                    Completion(
                        text=data.get("text", ""),
                        usage=Usage(data.get("tokens_in", 0), data.get("tokens_out", 0)),
                        model=data.get("model", ""),
                        latency=0.0,
                        provider=data.get("provider", "scripted"),
                    )
                )
        return cls(replies, provider="replay")

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        tools: Sequence[Tool] | None = None,
        response_format: JsonSchema | None = None,
        max_tokens: int,
        timeout: float,  # noqa: ASYNC109  part of the protocol; a script answers at once
    ) -> Completion:
        self.requests.append(
            ScriptedRequest(model, tuple(messages), max_tokens, response_format, tuple(tools or ()))
        )
        reply = self._replies.pop(0) if self._replies else self._default
        if reply is None:
            dependency = f"llm {self.provider}/{model}"
            raise LLMError(
                error_message(dependency, ErrorCode.INVALID_RESPONSE, "(script exhausted)"),
                code=ErrorCode.INVALID_RESPONSE,
                dependency=dependency,
            )
        if isinstance(reply, BastionError):
            raise reply
        if isinstance(reply, Completion):
            return replace(reply, provider=reply.provider or self.provider)
        output = min(max_tokens, -(-len(reply) // 4) or 1)
        return Completion(
            text=reply,
            usage=Usage(estimate_input_tokens(messages), output),
            model=model,
            latency=0.0,
            provider=self.provider,
            finish_reason="stop",
        )

    async def aclose(self) -> None:
        return None
