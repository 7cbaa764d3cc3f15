"""The fake LLM server's loopback-only control surface: arm faults, script replies, read the log.

Routes (plain JSON, not OpenAI's envelope):

- the fault routes both simulators serve (:mod:`bastion.simulators.faults.routes`), under
  ``/_fake``: ``GET /_fake/faults`` lists the armed faults with their counters, the requests
  per model and the hanging requests; ``POST`` appends one fault (a JSON object) or a list;
  ``PUT`` replaces them all; ``DELETE`` clears them and releases hanging requests;
  ``GET``/``DELETE /_fake/faults/{id}`` read or clear one; ``GET``/``DELETE /_fake/calls``;
- ``GET /_fake/replies``; ``POST /_fake/replies`` with a list of replies, or an object with
  ``replies``, ``replies_by_model`` and ``default_reply``, replaces the script;
- ``GET /_fake/requests`` (count, per-model counts, one record per request);
  ``DELETE /_fake/requests`` starts counting from zero.

Only loopback clients are served (IPv4-mapped loopback included); anyone else gets 403, so a
fake bound to the network still cannot be re-armed from it. A bad body is a 400 (not JSON),
413 (too large) or 422 (not a valid script or fault) whose ``reason`` names the field, the same
shape as the paper exchange's (:mod:`bastion.simulators.faults.control`).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.simulators.faults.control import (
    control_error,
    control_json,
    control_route,
    read_json,
    validation_reason,
)
from bastion.simulators.faults.routes import FaultRoutes
from bastion.simulators.llm.faults import LLMFaultTable
from bastion.simulators.llm.log import RequestLog
from bastion.simulators.llm.script import Script, ScriptedReply

__all__ = ["CONTROL_PREFIX", "FakeControl"]

CONTROL_PREFIX = "/_fake"
_REMOTE_REFUSED = "the fake LLM server's control routes answer loopback clients only"
_MAX_SCRIPT = 4 * 1024 * 1024  # a script may hold many long replies; still not unbounded
_REPLIES = "a JSON list of replies, or an object with replies, replies_by_model, default_reply"


class _ReplyScript(BaseModel):
    """The body of ``POST /_fake/replies`` in its object form."""

    model_config = ConfigDict(extra="forbid")

    replies: list[str | ScriptedReply] = []
    replies_by_model: dict[str, list[str | ScriptedReply]] = {}
    default_reply: str | None = None


class FakeControl:
    """Serves the control routes over one fake server's faults, script and log."""

    def __init__(self, faults: LLMFaultTable, script: Script, log: RequestLog) -> None:
        self._faults = FaultRoutes(faults, prefix=CONTROL_PREFIX, refused=_REMOTE_REFUSED)
        self._script = script
        self._log = log

    @property
    def routes(self) -> list[Route]:
        """Every control route, each refusing remote clients and unserved HTTP methods."""
        replies = {"GET": self._get_replies, "POST": self._post_replies}
        requests = {"GET": self._get_requests, "DELETE": self._delete_requests}
        return [
            *self._faults.routes,
            control_route(f"{CONTROL_PREFIX}/replies", replies, _REMOTE_REFUSED),
            control_route(f"{CONTROL_PREFIX}/requests", requests, _REMOTE_REFUSED),
        ]

    async def _get_replies(self, request: Request) -> Response:
        return control_json(200, self._script.snapshot())

    async def _post_replies(self, request: Request) -> Response:
        data = await read_json(request, _REPLIES, limit=_MAX_SCRIPT)
        if isinstance(data, Response):
            return data
        try:
            script = _ReplyScript.model_validate(
                {"replies": data} if isinstance(data, list) else data
            )
        except ValidationError as exc:
            return control_error(422, "invalid replies", validation_reason(exc))
        self._script.replace(script.replies, script.replies_by_model, script.default_reply)
        return control_json(200, self._script.snapshot())

    async def _get_requests(self, request: Request) -> Response:
        return control_json(200, self._log.snapshot())

    async def _delete_requests(self, request: Request) -> Response:
        self._log.reset()
        return control_json(200, self._log.snapshot())
