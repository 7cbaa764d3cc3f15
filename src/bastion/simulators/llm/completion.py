"""The ``chat.completion`` the fake LLM answers, with usage a test can predict.

Token counts are ``ceil(chars / 4)`` (at least 1) of the message contents (prompt) and of the
reply (completion), not a tokenizer's; a reply longer than the request's token limit
(``max_completion_tokens``, else ``max_tokens``) is cut to that many tokens with
``finish_reason="length"`` and loses its tool calls.
"""

from __future__ import annotations

from typing import Any

from bastion.simulators.llm.requests import ChatRequest
from bastion.simulators.llm.script import ScriptedReply

__all__ = ["completion", "count_tokens"]

_CHARS_PER_TOKEN = 4


def count_tokens(text: str) -> int:
    """About four characters a token, at least one: predictable in tests, not a tokenizer."""
    return max(1, -(-len(text) // _CHARS_PER_TOKEN))


def completion(
    chat: ChatRequest, reply: ScriptedReply, *, number: int, created: int
) -> dict[str, Any]:
    """The ``chat.completion`` object for ``reply``, cut to the request's token limit."""
    content = chat.messages[-1].text if reply.echo else reply.content
    tool_calls = [
        {
            "id": call.id or f"call_fake_{number}_{index}",
            "type": "function",
            "function": {"name": call.name, "arguments": call.arguments_json},
        }
        for index, call in enumerate(reply.tool_calls)
    ]
    said = (content or "") + "".join(c.name + c.arguments_json for c in reply.tool_calls)
    completion_tokens = count_tokens(said)
    finish_reason = "tool_calls" if tool_calls else "stop"
    limit = chat.token_limit
    if limit is not None and completion_tokens > limit:
        content = (content or "")[: limit * _CHARS_PER_TOKEN]
        tool_calls, completion_tokens, finish_reason = [], limit, "length"
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    prompt_tokens = count_tokens("".join(m.text for m in chat.messages))
    return {
        "id": f"chatcmpl-fake-{number:06d}",
        "object": "chat.completion",
        "created": created,
        "model": reply.model or chat.model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "system_fingerprint": "fp_bastion_fake",
    }
