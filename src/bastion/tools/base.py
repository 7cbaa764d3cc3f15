"""What one tool is, and the argument parsing every tool shares.

A tool's arguments come from a language model, so they are untrusted text: each tool names a
strict pydantic model for them, and :func:`parse_arguments` turns the model's JSON into it or
raises a ``bad_request`` :class:`~bastion.errors.ToolError` that says what was wrong, before
anything outside the process is asked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from bastion.errors import ErrorCode, ToolError, error_message
from bastion.messages import Tool

__all__ = ["AgentTool", "ToolArguments", "parse_arguments"]

_ARGUMENT_CHARS = 2000


class ToolArguments(BaseModel):
    """Base of every tool's arguments: strict, frozen, nothing the schema does not name."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


A = TypeVar("A", bound=ToolArguments)


@runtime_checkable
class AgentTool(Protocol):
    """One tool: its definition for the model and the call it makes.

    ``run`` does the I/O and returns JSON-ready data; it is always called inside the choke
    point by :class:`~bastion.tools.box.Toolbox`, never directly by an agent. ``read_only``
    tools change nothing anywhere; Bastion ships only such tools (a tool never sends an order:
    orders are intents the risk review judges).
    """

    name: ClassVar[str]
    read_only: ClassVar[bool]
    arguments: ClassVar[type[ToolArguments]]
    """The strict model of the arguments; its JSON schema is what the model is shown."""

    @property
    def definition(self) -> Tool: ...

    async def run(self, arguments: Any) -> Any:
        """The call itself, with arguments already validated into :attr:`arguments`."""
        ...

    async def aclose(self) -> None: ...


def parse_arguments(name: str, raw: str | Mapping[str, Any] | None, model: type[A]) -> A:
    """``raw`` (a JSON text, a mapping or None for none) validated into ``model``.

    Raises a ``bad_request`` :class:`ToolError` naming the tool and the problem.
    """
    dependency = f"tool {name}"
    data: Any
    if raw is None or raw == "":
        data = {}
    elif isinstance(raw, str):
        if len(raw) > _ARGUMENT_CHARS:
            raise _bad(dependency, f"(arguments longer than {_ARGUMENT_CHARS} characters)")
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise _bad(dependency, "(arguments are not JSON)") from None
    else:
        data = dict(raw)
    if not isinstance(data, dict):
        raise _bad(dependency, "(arguments must be a JSON object)")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        )
        raise _bad(dependency, f"({problems[:300]})") from None


def _bad(dependency: str, detail: str) -> ToolError:
    return ToolError(
        error_message(dependency, ErrorCode.BAD_REQUEST, detail),
        code=ErrorCode.BAD_REQUEST,
        dependency=dependency,
    )
