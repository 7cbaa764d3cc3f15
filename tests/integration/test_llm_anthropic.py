"""The Anthropic adapter on the official SDK against a stand-in Messages endpoint on loopback.

Anthropic's API is paid and unreachable here, so a small FastAPI app answers ``POST
/v1/messages`` the way the API documents; the SDK, the HTTP and the adapter are real. It
checks what the adapter sends (system prompt, schema, tool results) and how it reads answers
and failures.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import SecretStr

from bastion.errors import ErrorCode, LLMError
from bastion.llm.anthropic import AnthropicChat
from bastion.messages import JsonSchema, Message, Tool, ToolCall
from loopback_server import serve_on_loopback

MODEL = "claude-haiku-4-5-20251001"


@dataclass
class Endpoint:
    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    answers: list[Response] = field(default_factory=list)


def _message(content: list[dict[str, Any]], stop: str = "end_turn") -> JSONResponse:
    return JSONResponse(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": MODEL,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": 42, "output_tokens": 7},
        }
    )


def _error(status: int, kind: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"type": "error", "error": {"type": kind, "message": kind}}
    return JSONResponse(body, status_code=status, headers=headers)


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    app = FastAPI()
    state = Endpoint(url="")

    @app.post("/v1/messages")
    async def messages(request: Request) -> Response:
        state.received.append(await request.json())
        return state.answers.pop(0)

    with serve_on_loopback(app) as url:
        state.url = url
        yield state


async def _complete(endpoint: Endpoint, messages: list[Message], **kwargs: Any) -> Any:
    adapter = AnthropicChat(api_key=SecretStr("sk-ant-test"), base_url=endpoint.url)
    try:
        return await adapter.complete(messages, model=MODEL, max_tokens=64, timeout=5, **kwargs)
    finally:
        await adapter.aclose()


async def test_text_usage_and_model_are_read_and_the_system_prompt_is_separate(
    endpoint: Endpoint,
) -> None:
    endpoint.answers.append(_message([{"type": "text", "text": '{"action": "hold"}'}]))
    schema = JsonSchema("decision", {"type": "object", "required": ["action"]})
    answer = await _complete(
        endpoint,
        [Message("system", "You trade."), Message("user", "Sell?")],
        response_format=schema,
    )
    assert (answer.text, answer.model, answer.provider) == (
        '{"action": "hold"}',
        MODEL,
        "anthropic",
    )
    assert (answer.usage.input_tokens, answer.usage.output_tokens) == (42, 7)
    assert answer.finish_reason == "end_turn"
    (sent,) = endpoint.received
    assert sent["messages"] == [{"role": "user", "content": "Sell?"}]
    assert sent["system"].startswith("You trade.")
    assert '"required": ["action"]' in sent["system"]  # the schema travels in the system prompt
    assert sent["max_tokens"] == 64


async def test_tool_use_blocks_become_tool_calls_and_tool_results_go_back(
    endpoint: Endpoint,
) -> None:
    endpoint.answers.append(
        _message(
            [{"type": "tool_use", "id": "tu_1", "name": "get_ticker", "input": {"i": "BTC"}}],
            stop="tool_use",
        )
    )
    tool = Tool("get_ticker", "A ticker.", {"type": "object", "properties": {}})
    answer = await _complete(
        endpoint,
        [Message("user", "Price?"), Message("tool", "100000", tool_call_id="tu_0")],
        tools=[tool],
    )
    (call,) = answer.tool_calls
    assert (call.id, call.name, call.arguments) == ("tu_1", "get_ticker", '{"i": "BTC"}')
    sent = endpoint.received[0]
    assert sent["tools"][0]["input_schema"] == {"type": "object", "properties": {}}
    assert sent["messages"][1] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "tu_0", "content": "100000"}],
    }


async def test_an_assistant_turn_that_asked_for_tools_goes_back_as_tool_use_blocks(
    endpoint: Endpoint,
) -> None:
    """The turn that asked is sent before its result, as the Messages API requires."""
    endpoint.answers.append(_message([{"type": "text", "text": "hold"}]))
    call = ToolCall("tu_1", "ticker", '{"instrument": "BTC-PERPETUAL"}')
    await _complete(
        endpoint,
        [
            Message("user", "Price?"),
            Message("assistant", "", tool_calls=(call,)),
            Message("tool", '{"mark_price": 1}', tool_call_id="tu_1"),
        ],
    )
    sent = endpoint.received[0]["messages"]
    assert sent[1] == {
        "role": "assistant",
        "content": [
            {
                "type": "tool_use",
                "id": "tu_1",
                "name": "ticker",
                "input": {"instrument": "BTC-PERPETUAL"},
            }
        ],
    }
    assert sent[2]["content"][0]["tool_use_id"] == "tu_1"


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (_error(429, "rate_limit_error", {"retry-after": "7"}), ErrorCode.RATE_LIMIT),
        (_error(529, "overloaded_error"), ErrorCode.SERVER),
        (_error(401, "authentication_error"), ErrorCode.AUTH),
        (Response(b"<html>bad gateway</html>", media_type="application/json"), None),
    ],
    ids=["429", "overloaded", "401", "not-json"],
)
async def test_failures_are_coded(
    endpoint: Endpoint, answer: Response, code: ErrorCode | None
) -> None:
    endpoint.answers.append(answer)
    with pytest.raises(LLMError) as failed:
        await _complete(endpoint, [Message("user", "Sell?")])
    assert failed.value.code is (code or ErrorCode.INVALID_RESPONSE), failed.value.message
    assert failed.value.dependency == f"llm anthropic/{MODEL}"
    if code is ErrorCode.RATE_LIMIT:
        assert failed.value.retry_after == 7
