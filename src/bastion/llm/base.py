"""One provider adapter (OpenAI-compatible, Anthropic, scripted) as Bastion sees it.

An :class:`LLM` makes one request and nothing else: no retries (the SDKs' own are switched off),
no budget, no fallback. Its failures are :class:`~bastion.errors.LLMError` s with a code. The
messages and completions it speaks are the ground-floor vocabulary in :mod:`bastion.messages`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from bastion.messages import Completion, JsonSchema, Message, Tool

__all__ = ["LLM"]


@runtime_checkable
class LLM(Protocol):
    """One provider adapter: one request, no retries, failures as coded ``LLMError`` s."""

    provider: str

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        tools: Sequence[Tool] | None = None,
        response_format: JsonSchema | None = None,
        max_tokens: int,
        timeout: float,  # noqa: ASYNC109  the SDK applies it to the request
    ) -> Completion: ...

    async def aclose(self) -> None: ...
