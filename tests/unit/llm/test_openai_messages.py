"""What the OpenAI adapter puts on the wire for a tool-calling conversation."""

from __future__ import annotations

from bastion.llm.openai import _message
from bastion.messages import Message, ToolCall


def test_an_assistant_turn_carries_the_tool_calls_its_tool_answers_follow() -> None:
    """OpenAI refuses a tool message whose call is not on the assistant turn before it."""
    call = ToolCall("call_1", "ticker", '{"instrument": "BTC-PERPETUAL"}')
    assert _message(Message("assistant", "", tool_calls=(call,))) == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "ticker", "arguments": '{"instrument": "BTC-PERPETUAL"}'},
            }
        ],
    }
    assert _message(Message("tool", "{}", tool_call_id="call_1")) == {
        "role": "tool",
        "content": "{}",
        "tool_call_id": "call_1",
    }
    assert _message(Message("user", "hi")) == {"role": "user", "content": "hi"}
