"""What the fake LLM answers: scripted replies, consumed in order, per model or shared.

A reply is the next entry of the requested model's own script, else of the shared script, else
the default reply, forever. A scripted reply may name another ``model`` than the one requested,
standing in for a provider that silently swaps models.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any, Self, TypeAlias

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["DEFAULT_REPLY", "Reply", "Script", "ScriptedReply", "ScriptedToolCall"]

DEFAULT_REPLY = "OK"


class ScriptedToolCall(BaseModel):
    """A function call a scripted reply makes; a mapping of ``arguments`` is sent as JSON."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    arguments: str | dict[str, Any] = "{}"
    id: str | None = Field(None, min_length=1, max_length=200)

    @property
    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return orjson.dumps(self.arguments).decode()


class ScriptedReply(BaseModel):
    """One answer: ``content`` and/or ``tool_calls``, reported as ``model`` when given.

    ``model`` stands in for a provider that silently answers with another model than the one
    requested, which Bastion must notice in its trace and ledger. ``echo`` answers with the
    text of the request's last message instead of ``content``: a model parroting what it was
    fed (a tool's answer, a headline), which is how a prompt injection test makes the model
    repeat the attack back.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    content: str | None = None
    tool_calls: tuple[ScriptedToolCall, ...] = ()
    model: str | None = Field(None, min_length=1, max_length=200)
    echo: bool = False

    @model_validator(mode="after")
    def _says_something(self) -> Self:
        if self.content is None and not self.tool_calls and not self.echo:
            raise ValueError("a scripted reply needs content, tool_calls or echo")
        return self


Reply: TypeAlias = str | Mapping[str, Any] | ScriptedReply
"""A scripted reply as given: plain content, a mapping validated into one, or one."""


def _to_reply(entry: Reply) -> ScriptedReply:
    if isinstance(entry, ScriptedReply):
        return entry
    if isinstance(entry, str):
        return ScriptedReply(content=entry)
    return ScriptedReply.model_validate(entry)


class Script:
    """Replies consumed in order: the model's own queue, then the shared one, then the default."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._shared: deque[ScriptedReply] = deque()
        self._by_model: dict[str, deque[ScriptedReply]] = {}
        self._default = ScriptedReply(content=DEFAULT_REPLY)

    def replace(
        self,
        replies: Iterable[Reply],
        replies_by_model: Mapping[str, Iterable[Reply]],
        default_reply: str | None,
    ) -> None:
        shared = deque(_to_reply(entry) for entry in replies)
        by_model = {
            model: deque(_to_reply(entry) for entry in entries)
            for model, entries in replies_by_model.items()
        }
        with self._lock:
            self._shared, self._by_model = shared, by_model
            if default_reply is not None:
                self._default = ScriptedReply(content=default_reply)

    def next_for(self, model: str) -> ScriptedReply:
        with self._lock:
            for queue in (self._by_model.get(model), self._shared):
                if queue:
                    return queue.popleft()
            return self._default

    @property
    def models(self) -> list[str]:
        with self._lock:
            return list(self._by_model)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "queued": len(self._shared),
                "queued_by_model": {model: len(q) for model, q in self._by_model.items()},
                "default_reply": self._default.content,
            }
