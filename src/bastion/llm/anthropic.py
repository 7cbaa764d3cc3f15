"""The Anthropic adapter, on the official ``anthropic`` SDK (Messages API).

Same contract as :mod:`bastion.llm.openai`: one request, SDK retries off, failures coded.
The Messages API differs in three ways this module absorbs: system prompts are a separate
field, tool results are ``tool_result`` blocks in a user turn, and a JSON answer is asked for
by putting the schema in the system prompt (the caller validates the answer either way).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import anthropic
from pydantic import SecretStr

from bastion.llm.sdk import SdkErrors, invalid_response, send
from bastion.messages import Completion, JsonSchema, Message, Tool, ToolCall, Usage

__all__ = ["AnthropicChat"]

_ERRORS = SdkErrors(
    base=anthropic.APIError,
    timeout=anthropic.APITimeoutError,
    connection=anthropic.APIConnectionError,
    status=anthropic.APIStatusError,
    validation=anthropic.APIResponseValidationError,
)


class AnthropicChat:
    """Messages from Anthropic's API (or a compatible endpoint at ``base_url``)."""

    provider = "anthropic"

    def __init__(
        self,
        *,
        api_key: SecretStr,
        base_url: str = "",
    ) -> None:
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key.get_secret_value(),
            base_url=base_url or None,
            max_retries=0,
        )

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        tools: Sequence[Tool] | None = None,
        response_format: JsonSchema | None = None,
        max_tokens: int,
        timeout: float,  # noqa: ASYNC109  the SDK applies it to the request
    ) -> Completion:
        dependency = f"llm anthropic/{model}"
        request: dict[str, Any] = {
            "model": model,
            "max_tokens": max_tokens,
            "messages": _turns(messages),
        }
        system = _system(messages, response_format)
        if system:
            request["system"] = system
        if tools:
            request["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": dict(t.parameters)}
                for t in tools
            ]
        response, latency = await send(
            self._client.messages.create, request, _ERRORS, dependency=dependency, timeout=timeout
        )
        return _completion(response, dependency, latency)

    async def aclose(self) -> None:
        await self._client.close()


def _system(messages: Sequence[Message], response_format: JsonSchema | None) -> str:
    parts = [m.content for m in messages if m.role == "system"]
    if response_format is not None:
        schema = json.dumps(dict(response_format.schema), sort_keys=True)
        parts.append(
            f"Answer with one JSON object only, no prose and no code fence, matching this JSON "
            f"schema ({response_format.name}): {schema}"
        )
    return "\n\n".join(parts)


def _turns(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """User and assistant turns; a ``tool`` message becomes a ``tool_result`` block and an
    assistant turn that asked for tools carries its ``tool_use`` blocks."""
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        if message.role == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id or "",
                "content": message.content,
            }
            turns.append({"role": "user", "content": [block]})
        elif message.tool_calls:
            blocks: list[dict[str, Any]] = []
            if message.content:
                blocks.append({"type": "text", "text": message.content})
            blocks.extend(
                {"type": "tool_use", "id": c.id, "name": c.name, "input": _input(c.arguments)}
                for c in message.tool_calls
            )
            turns.append({"role": "assistant", "content": blocks})
        else:
            turns.append({"role": message.role, "content": message.content})
    return turns


def _input(arguments: str) -> dict[str, Any]:
    """A tool call's JSON arguments as the object Anthropic wants back; ``{}`` if not one."""
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _completion(response: Any, dependency: str, latency: float) -> Completion:
    blocks = getattr(response, "content", None)
    usage = getattr(response, "usage", None)
    if blocks is None or usage is None:
        raise invalid_response(dependency, "no content or usage in the reply")
    text = "".join(b.text for b in blocks if getattr(b, "type", None) == "text")
    calls = tuple(
        ToolCall(id=b.id, name=b.name, arguments=json.dumps(b.input, sort_keys=True))
        for b in blocks
        if getattr(b, "type", None) == "tool_use"
    )
    return Completion(
        text=text,
        usage=Usage(usage.input_tokens, usage.output_tokens),
        model=response.model or "",
        latency=latency,
        provider="anthropic",
        tool_calls=calls,
        finish_reason=response.stop_reason,
    )
