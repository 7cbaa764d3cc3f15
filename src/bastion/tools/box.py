"""The toolbox: only the tools an agent declares and the configuration allows, each call guarded.

Principle 1 of the design (risk lives in code) applied to tools. An agent names the tools it
wants (``Agent.tools``); an operator names the tools a deployment allows
(``BASTION_TOOLS_ALLOWED``); the agent is offered the intersection and nothing else. The model
behind an agent may still ask for any name at all (it read a headline telling it to), so the
check is made again on every call, in code:

* a name outside the offer is refused before anything is reached: a ``forbidden``
  :class:`~bastion.errors.ToolError` saying what may be called and how to allow more, and a
  ``tool_refused`` event through the journal (the trace line and a store row: a security
  event an operator can query across runs);
* arguments are validated against the tool's strict schema first (``bad_request``);
* an allowed call runs through :meth:`~bastion.resilience.Resilience.call` as a ``tool``
  layer call with its own breaker, timeout, deadline and retries, and every failure leaves as
  a ``ToolError`` with one :class:`~bastion.errors.ErrorCode`;
* what the tool answered is sanitised (:func:`~bastion.llm.sanitize.sanitize`, every string it
  holds) and cut before the agent, and so a model, sees it; a ``tool_call`` event records the
  arguments and the text given back (or the error), so a replay can answer from the trace.

Each call is an ``execute_tool <name>`` span (kind INTERNAL, GenAI semantic conventions v1.37.0:
``gen_ai.operation.name``, ``gen_ai.tool.name``, ``gen_ai.tool.type`` ``function``; on a failure
``error.type``, the error's code) on the runtime's tracer, with the tool's ``Resilience.call``
span under it. A refused name is model-written text: its span is named ``execute_tool`` alone,
with the sanitised name as the attribute. Arguments and results stay off the span (content
capture is off); the trace line has them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal

import orjson
from opentelemetry.trace import Span, Status, StatusCode

from bastion.agent import GuardedTools, ToolResult
from bastion.errors import ErrorCode, ToolError
from bastion.events import EventKind, Journal
from bastion.llm.sanitize import sanitize
from bastion.messages import Tool
from bastion.resilience import Resilience
from bastion.tools.base import AgentTool, parse_arguments

__all__ = ["StepTools", "Toolbox"]

RefusalReason = Literal["unknown", "not_declared", "not_allowed"]

_NAME_CHARS = 64
_ARGUMENTS_SHOWN = 300
_LEAF_CHARS = 1000


class Toolbox:
    """The tools of one run: built once, lent to the agent each step as :meth:`for_step`.

    ``tools`` are the tools this deployment built; ``allowed`` the configuration's allowlist;
    ``declared`` what the agent asks for. ``max_chars`` bounds the text one call gives back.
    """

    def __init__(
        self,
        tools: Sequence[AgentTool],
        *,
        allowed: Collection[str],
        declared: Sequence[str],
        agent: str,
        resilience: Resilience,
        journal: Journal,
        timeout: float,
        deadline: float,
        max_chars: int = 4000,
    ) -> None:
        self._tools = {tool.name: tool for tool in tools}
        self._allowed = frozenset(allowed)
        self._declared = tuple(dict.fromkeys(declared))
        self.agent = agent
        self._resilience = resilience
        self._journal = journal
        self._timeout = timeout
        self._deadline = deadline
        self._max_chars = max_chars
        self._offered = tuple(
            self._tools[name]
            for name in self._declared
            if name in self._allowed and name in self._tools
        )
        self._offered_names = frozenset(tool.name for tool in self._offered)
        self._definitions = tuple(tool.definition for tool in self._offered)

    @property
    def offered(self) -> tuple[Tool, ...]:
        """The definitions of the tools the agent may call, in the order it declared them."""
        return self._definitions

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(tool.name for tool in self._offered)

    def for_step(self, step: int) -> GuardedTools:
        """What the agent gets as ``ctx.tools`` at ``step``.

        Lent even when the offer is empty: a model may still ask for a tool, and the refusal
        must be recorded as a security event rather than lost because there was nothing to ask.
        """
        return StepTools(self, step)

    async def aclose(self) -> None:
        for tool in self._tools.values():
            await tool.aclose()

    async def call(
        self, step: int, name: str, arguments: str | Mapping[str, Any] | None
    ) -> ToolResult:
        """One call at ``step`` (see the module docstring); raises :class:`ToolError`."""
        offered = name in self._offered_names
        shown = name if offered else sanitize(name, max_chars=_NAME_CHARS).text or "-"
        with self._resilience.tracer.start_as_current_span(
            f"execute_tool {name}" if offered else "execute_tool",
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": shown,
                "gen_ai.tool.type": "function",
            },
            record_exception=False,  # recorded once, with error.type
            set_status_on_exception=False,
        ) as span:
            try:
                return await self._call(step, name, arguments)
            except ToolError as exc:
                if span.is_recording():
                    _failed(span, exc)
                raise

    async def _call(
        self, step: int, name: str, arguments: str | Mapping[str, Any] | None
    ) -> ToolResult:
        if name not in self._offered_names:
            raise self._refuse(step, name, arguments)
        tool = self._tools[name]
        try:
            parsed = parse_arguments(name, arguments, tool.arguments)
            data = await self._resilience.call(
                f"tool {name}",
                lambda: tool.run(parsed),
                layer="tool",
                timeout=self._timeout,
                deadline=self._deadline,
            )
        except ToolError as exc:
            # The agent gets an answer either way; the trace keeps every answer, failures too.
            raw = arguments if isinstance(arguments, str) else _dumps(arguments or {})
            self._journal.emit(
                EventKind.TOOL_CALL,
                {
                    "step": step,
                    "tool": name,
                    "arguments": sanitize(raw, max_chars=_ARGUMENTS_SHOWN).text,
                    "error": exc.to_dict(),
                },
            )
            raise
        result = self._result(name, data)
        self._journal.emit(
            EventKind.TOOL_CALL,
            {
                "step": step,
                "tool": name,
                "arguments": parsed.model_dump(mode="json"),
                "content": result.content,
                "removed": list(result.removed),
                "truncated": result.truncated,
            },
        )
        return result

    def _refuse(self, step: int, name: str, arguments: str | Mapping[str, Any] | None) -> ToolError:
        """Record the attempt as a security event; the error the agent gets for it.

        ``tool`` is the name sanitised (what a person reads); ``asked`` is the name exactly as
        the model wrote it, escaped to ASCII, so a hidden character shows (``ticker\\u200b``).
        """
        shown = sanitize(name, max_chars=_NAME_CHARS).text or "-"
        reason: RefusalReason = "unknown"
        if name in self._declared and name not in self._allowed:
            reason = "not_allowed"
        elif name in self._allowed and name not in self._declared:
            reason = "not_declared"
        raw = arguments if isinstance(arguments, str) else _dumps(arguments or {})
        self._journal.emit(
            EventKind.TOOL_REFUSED,
            {
                "step": step,
                "agent": self.agent,
                "tool": shown,
                "asked": ascii(name)[1:-1][:_ARGUMENTS_SHOWN],
                "reason": reason,
                "offered": list(self.names),
                "arguments": sanitize(raw, max_chars=_ARGUMENTS_SHOWN).text,
            },
        )
        why = {
            "unknown": "no such tool",
            "not_declared": f"{self.agent} does not declare it",
            "not_allowed": "BASTION_TOOLS_ALLOWED does not list it",
        }[reason]
        offer = ", ".join(self.names) or "none"
        dependency = f"tool {shown}"
        return ToolError(
            f"{dependency}: FORBIDDEN ({why}; refused and recorded) — call only the tools "
            f"offered ({offer}); to allow another, declare it in the agent's tools and list it "
            "in BASTION_TOOLS_ALLOWED",
            code=ErrorCode.FORBIDDEN,
            dependency=dependency,
        )

    def _result(self, name: str, data: Any) -> ToolResult:
        """The tool's data as sanitised JSON text, cut to ``max_chars``."""
        removed: dict[str, None] = {}
        clean = _clean(data, removed)
        text = _dumps(clean)
        truncated = len(text) > self._max_chars
        if truncated:
            cut = sanitize(text, max_chars=self._max_chars)
            removed.update(dict.fromkeys(cut.removed))
            text = cut.text
        return ToolResult(name, text, tuple(removed), truncated)


class StepTools:
    """The toolbox as one step's ``ctx.tools`` (:class:`~bastion.agent.GuardedTools`)."""

    def __init__(self, box: Toolbox, step: int) -> None:
        self._box = box
        self.step = step

    @property
    def offered(self) -> tuple[Tool, ...]:
        return self._box.offered

    async def call(self, name: str, arguments: str | Mapping[str, Any] | None = None) -> ToolResult:
        return await self._box.call(self.step, name, arguments)


def _failed(span: Span, exc: ToolError) -> None:
    span.set_attribute("error.type", exc.code.value)
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, exc.code.value))


def _clean(value: Any, removed: dict[str, None]) -> Any:
    """``value`` with every string in it (keys too) sanitised; what was removed noted."""
    if isinstance(value, str):
        done = sanitize(value, max_chars=_LEAF_CHARS)
        removed.update(dict.fromkeys(done.removed))
        return done.text
    if isinstance(value, Mapping):
        return {_clean(str(k), removed): _clean(v, removed) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(item, removed) for item in value]
    return value


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
