"""The OpenAI-compatible adapter, on the official ``openai`` SDK.

One adapter serves OpenAI itself and every server that speaks its chat-completions API (vLLM,
Ollama, llama.cpp's server, ``bastion llm fake-server``): only ``base_url`` and the key differ.
It makes exactly one request per :meth:`OpenAIChat.complete` (the SDK's retries are off, see
:mod:`bastion.llm.sdk`); budgets, breakers, retries and fallbacks are the chain's.

Output length is asked for with ``max_tokens``, which every compatible server understands;
OpenAI's reasoning models want ``max_completion_tokens`` instead (``max_tokens_field``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import openai
from pydantic import SecretStr

from bastion.llm.sdk import SdkErrors, invalid_response, send
from bastion.messages import Completion, JsonSchema, Message, Tool, ToolCall, Usage

__all__ = ["OpenAIChat"]

_ERRORS = SdkErrors(
    base=openai.APIError,
    timeout=openai.APITimeoutError,
    connection=openai.APIConnectionError,
    status=openai.APIStatusError,
    validation=openai.APIResponseValidationError,
)


class OpenAIChat:
    """Chat completions from an OpenAI-compatible server."""

    provider = "openai"

    def __init__(
        self,
        *,
        api_key: SecretStr | None = None,
        base_url: str = "",
        max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens",
    ) -> None:
        """``base_url`` empty means OpenAI; ``api_key`` None suits a self-hosted server."""
        self._max_tokens_field = max_tokens_field
        self._client = openai.AsyncOpenAI(
            # A self-hosted server may need no key; the SDK insists on a non-empty one.
            api_key=api_key.get_secret_value() if api_key is not None else "not-needed",
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
        dependency = f"llm openai/{model}"
        request: dict[str, Any] = {
            "model": model,
            "messages": [_message(m) for m in messages],
            self._max_tokens_field: max_tokens,
        }
        if tools:
            request["tools"] = [_tool(t) for t in tools]
        if response_format is not None:
            request["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": response_format.name,
                    "schema": dict(response_format.schema),
                    "strict": response_format.strict,
                },
            }
        response, latency = await send(
            self._client.chat.completions.create,
            request,
            _ERRORS,
            dependency=dependency,
            timeout=timeout,
        )
        return _completion(response, dependency, latency)

    async def aclose(self) -> None:
        await self._client.close()


def _message(message: Message) -> dict[str, Any]:
    data: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_call_id is not None:
        data["tool_call_id"] = message.tool_call_id
    if message.tool_calls:
        data["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in message.tool_calls
        ]
    return data


def _tool(tool: Tool) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": dict(tool.parameters),
        },
    }


def _completion(response: Any, dependency: str, latency: float) -> Completion:
    """Our :class:`Completion` from the SDK's object, or INVALID_RESPONSE for a partial one."""
    choices = getattr(response, "choices", None)
    if not choices:
        raise invalid_response(dependency, "no choices in the reply")
    usage = getattr(response, "usage", None)
    if usage is None or usage.prompt_tokens is None or usage.completion_tokens is None:
        raise invalid_response(dependency, "no token usage in the reply; it cannot be billed")
    message = choices[0].message
    calls = tuple(
        ToolCall(id=call.id, name=call.function.name, arguments=call.function.arguments)
        for call in (message.tool_calls or ())
        if getattr(call, "function", None) is not None
    )
    return Completion(
        text=message.content or "",
        usage=Usage(usage.prompt_tokens, usage.completion_tokens),
        model=response.model or "",
        latency=latency,
        provider="openai",
        tool_calls=calls,
        finish_reason=choices[0].finish_reason,
    )
