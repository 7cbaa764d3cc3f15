"""The fake LLM server's loopback-only control surface: arm faults, script replies, read the log.

Routes (plain JSON, not OpenAI's envelope):

- ``GET /_fake/faults``; ``POST /_fake/faults`` with a JSON list of faults replaces them (400
  with a ``reason`` naming the field when invalid); ``DELETE /_fake/faults`` clears them and
  releases hanging requests;
- ``GET /_fake/replies``; ``POST /_fake/replies`` with a list of replies, or an object with
  ``replies``, ``replies_by_model`` and ``default_reply``, replaces the script;
- ``GET /_fake/requests`` (count, per-model counts, one record per request);
  ``DELETE /_fake/requests`` starts counting from zero.

Only loopback clients are served (IPv4-mapped loopback included); anyone else gets 403, so a
fake bound to the network still cannot be re-armed from it. The guard and the error answers are
shared with the paper exchange (:mod:`bastion.simulators.faults.control`).
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from bastion.simulators.faults.control import (
    Handler,
    control_error,
    loopback_only,
    validation_reason,
)
from bastion.simulators.faults.hangs import Hangs
from bastion.simulators.llm.envelope import json_response
from bastion.simulators.llm.faults import FaultTable, LLMFault
from bastion.simulators.llm.log import RequestLog
from bastion.simulators.llm.script import Script, ScriptedReply

__all__ = ["CONTROL_PREFIX", "FakeControl"]

CONTROL_PREFIX = "/_fake"
_REMOTE_REFUSED = "the fake LLM server's control routes answer loopback clients only"

_FAULT_LIST = TypeAdapter(list[LLMFault])


class _ReplyScript(BaseModel):
    """The body of ``POST /_fake/replies`` in its object form."""

    model_config = ConfigDict(extra="forbid")

    replies: list[str | ScriptedReply] = []
    replies_by_model: dict[str, list[str | ScriptedReply]] = {}
    default_reply: str | None = None


class FakeControl:
    """Serves the control routes over one fake server's faults, script, log and hangs."""

    def __init__(self, faults: FaultTable, script: Script, log: RequestLog, hangs: Hangs) -> None:
        self._faults = faults
        self._script = script
        self._log = log
        self._hangs = hangs

    @property
    def routes(self) -> list[tuple[str, str, Handler]]:
        """``(path, method, handler)`` for each route, every handler refusing remote clients."""
        control: list[tuple[str, str, Handler]] = [
            ("/faults", "GET", self._get_faults),
            ("/faults", "POST", self._post_faults),
            ("/faults", "DELETE", self._delete_faults),
            ("/replies", "GET", self._get_replies),
            ("/replies", "POST", self._post_replies),
            ("/requests", "GET", self._get_requests),
            ("/requests", "DELETE", self._delete_requests),
        ]
        return [
            (CONTROL_PREFIX + path, method, loopback_only(handler, _REMOTE_REFUSED))
            for path, method, handler in control
        ]

    def clear_faults(self) -> int:
        """Disarm every fault and release hanging requests; returns how many were armed."""
        cleared = self._faults.clear()
        self._hangs.release()
        return cleared

    async def _get_faults(self, request: Request) -> Response:
        return json_response(200, {"faults": self._faults.snapshot()})

    async def _post_faults(self, request: Request) -> Response:
        data = await _read_json(request)
        if isinstance(data, Response):
            return data
        try:
            specs = _FAULT_LIST.validate_python(data)
        except ValidationError as exc:
            return control_error(400, "invalid fault", validation_reason(exc))
        self._faults.replace(specs)
        return json_response(200, {"faults": self._faults.snapshot()})

    async def _delete_faults(self, request: Request) -> Response:
        return json_response(200, {"cleared": self.clear_faults()})

    async def _get_replies(self, request: Request) -> Response:
        return json_response(200, self._script.snapshot())

    async def _post_replies(self, request: Request) -> Response:
        data = await _read_json(request)
        if isinstance(data, Response):
            return data
        try:
            script = _ReplyScript.model_validate(
                {"replies": data} if isinstance(data, list) else data
            )
        except ValidationError as exc:
            return control_error(400, "invalid replies", validation_reason(exc))
        self._script.replace(script.replies, script.replies_by_model, script.default_reply)
        return json_response(200, self._script.snapshot())

    async def _get_requests(self, request: Request) -> Response:
        return json_response(200, self._log.snapshot())

    async def _delete_requests(self, request: Request) -> Response:
        self._log.reset()
        return json_response(200, self._log.snapshot())


async def _read_json(request: Request) -> Any:
    """The JSON body, or a 400 answer saying it is not JSON."""
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return control_error(400, "bad request", "the body is not valid JSON")
