"""What the fake LLM reads of a chat-completions request, and the 400 for one it cannot use.

Only the fields the fake acts on are read (``model``, ``messages``, the token limit, ``stream``);
others (``tools``, ``temperature``...) are accepted and ignored. A body that is not JSON, not a
chat request or asks to stream gets a 400 in OpenAI's error envelope, with ``param`` spelled as
OpenAI does (``messages.[0].content``), never a 500.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from bastion.simulators.llm.envelope import json_response, openai_error

__all__ = ["ChatMessage", "ChatRequest", "read_chat"]


class ChatMessage(BaseModel):
    """One message of the conversation; its text is what the prompt tokens count."""

    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        parts = self.content or []
        return "".join(str(part["text"]) for part in parts if isinstance(part.get("text"), str))


class ChatRequest(BaseModel):
    """What the fake reads of a chat-completions request; other fields are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stream: bool | None = None
    tools: list[dict[str, Any]] | None = None
    response_format: dict[str, Any] | None = None

    @property
    def tool_names(self) -> tuple[str, ...]:
        """The names of the functions offered (``tools[].function.name``), in order."""
        names: list[str] = []
        for tool in self.tools or ():
            function = tool.get("function")
            if isinstance(function, dict) and isinstance(function.get("name"), str):
                names.append(function["name"])
        return tuple(names)

    @property
    def token_limit(self) -> int | None:
        """``max_completion_tokens``, which supersedes the deprecated ``max_tokens``."""
        return self.max_completion_tokens or self.max_tokens


async def read_chat(request: Request) -> ChatRequest | Response:
    """The chat request, or the 400 OpenAI answers for a body it cannot use."""
    data = await _read_json(request)
    if isinstance(data, Response):
        return data
    try:
        chat = ChatRequest.model_validate(data)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        param = _param(error["loc"])
        message = f"Invalid request: {param or 'body'}: {error['msg']}"
        return json_response(400, openai_error(message, param=param))
    if chat.stream:
        message = "stream=true is not supported by the fake LLM server: call without streaming"
        return json_response(400, openai_error(message, param="stream"))
    return chat


async def _read_json(request: Request) -> Any:
    """The JSON body, or a 400 answer saying it is not JSON."""
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        message = "We could not parse the JSON body of your request: the body is not valid JSON"
        return json_response(400, openai_error(message))


def _param(loc: tuple[int | str, ...]) -> str | None:
    """OpenAI's spelling of a field path: ``messages.[0].content``."""
    parts = [f"[{part}]" if isinstance(part, int) else part for part in loc]
    return ".".join(parts) or None
