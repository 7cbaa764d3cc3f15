"""The fake LLM server itself: its state, its FastAPI app, and uvicorn to serve it.

API surface (``POST /v1/responses`` and streaming are not served):

- ``POST /v1/chat/completions``: an OpenAI ``chat.completion`` (:mod:`.completion`) whose reply
  is the next one of the script (:mod:`.script`), unless a fault fires first (:mod:`.faults`).
  A body that is not JSON or not a chat request gets a 400 in OpenAI's error envelope
  (:mod:`.requests`), never a 500.
- ``GET /v1/models``: the models configured (``models``, per-model scripts) or seen.
- With ``api_key`` set, both answer a 401 ``invalid_api_key`` unless ``Authorization: Bearer
  <api_key>`` is sent.
- The loopback-only control routes under ``/_fake/`` (:mod:`.control`).

A request is recorded in the log (:mod:`.log`) before its fault, if any, answers, so a test
sees every call the client made, including the ones that never got an answer.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import socket
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import uvicorn
from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from bastion.clock import Clock, WallClock
from bastion.errors import ConfigError, ErrorCode, error_message
from bastion.simulators.faults.control import is_loopback
from bastion.simulators.faults.responses import DroppedResponse, HangingResponse
from bastion.simulators.llm.completion import completion
from bastion.simulators.llm.control import FakeControl
from bastion.simulators.llm.envelope import http_error, json_response, openai_error
from bastion.simulators.llm.fault_responses import SERVER, garble, status_response
from bastion.simulators.llm.faults import LLMArmedFault, LLMFault, LLMFaultTable
from bastion.simulators.llm.log import ReceivedRequest, RequestLog
from bastion.simulators.llm.requests import read_chat
from bastion.simulators.llm.script import DEFAULT_REPLY, Reply, Script

__all__ = ["FakeLLMServer", "create_app", "serve"]


class FakeLLMServer:
    """The state of one fake server (script, faults, request log) and its app, ``.app``.

    Every method is thread-safe, so a test may script and arm faults from its own thread while
    uvicorn serves in another. ``app.state.fake`` points back here. The faults are
    :attr:`faults`, the same kind of table as the paper exchange's ``app.faults``
    (:class:`~bastion.simulators.faults.table.FaultTable`): ``arm`` appends, ``replace``
    replaces, ``clear`` and ``disarm`` clear, ``snapshot`` reports.
    """

    def __init__(
        self,
        *,
        replies: Sequence[Reply] = (),
        replies_by_model: Mapping[str, Sequence[Reply]] | None = None,
        default_reply: str = DEFAULT_REPLY,
        models: Sequence[str] = (),
        faults: Sequence[LLMFault | Mapping[str, Any]] = (),
        seed: int = 0,
        latency_seconds: float = 0.0,
        api_key: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        if latency_seconds < 0:
            raise ValueError(f"latency_seconds must be 0 or more, not {latency_seconds}")
        self.latency_seconds = latency_seconds
        self.api_key = api_key
        self._clock: Clock = clock or WallClock()
        self._models = list(models)
        self._script = Script()
        self._script.replace(replies, replies_by_model or {}, default_reply)
        self.faults = LLMFaultTable(seed=seed, faults=faults)
        self._log = RequestLog()
        self._control = FakeControl(self.faults, self._script, self._log)
        self._ids = itertools.count(1)
        self.app = self._build_app()

    def set_faults(self, faults: Iterable[LLMFault | Mapping[str, Any]]) -> None:
        """Replace the armed faults, as ``PUT /_fake/faults`` does (a bad one arms none)."""
        self.faults.replace(faults)

    def clear_faults(self) -> int:
        """Disarm every fault and release hanging requests; returns how many were armed."""
        return self.faults.clear()

    def set_replies(
        self,
        replies: Iterable[Reply] = (),
        *,
        replies_by_model: Mapping[str, Iterable[Reply]] | None = None,
        default_reply: str | None = None,
    ) -> None:
        """Replace the scripts; ``default_reply`` is kept unless given."""
        self._script.replace(replies, replies_by_model or {}, default_reply)

    @property
    def requests(self) -> list[ReceivedRequest]:
        """The chat requests received since the last reset, in order."""
        return self._log.all()

    def request_counts(self) -> dict[str, int]:
        """Chat requests per requested model since the last reset."""
        return self._log.counts()

    def reset_requests(self) -> None:
        self._log.reset()

    @property
    def hanging(self) -> int:
        """How many requests a ``hang`` fault holds right now."""
        return self.faults.hanging

    def release_hangs(self) -> None:
        """Drop every hanging request; safe to call from any thread."""
        self.faults.release_hangs()

    def close(self) -> None:
        """Drop hanging requests and any that would hang later, so the server can stop."""
        self.faults.close()

    def _build_app(self) -> FastAPI:
        app = FastAPI(
            title="Bastion fake LLM server", openapi_url=None, docs_url=None, redoc_url=None
        )
        app.state.fake = self
        app.add_exception_handler(HTTPException, http_error)
        app.add_api_route("/v1/chat/completions", self._chat, methods=["POST"])
        app.add_api_route("/v1/models", self._list_models, methods=["GET"])
        app.router.routes.extend(self._control.routes)
        return app

    async def _chat(self, request: Request) -> Response:
        if (refused := self._refuse_key(request)) is not None:
            return refused
        chat = await read_chat(request)
        if isinstance(chat, Response):
            return chat
        fault = self.faults.take(chat.model)
        self._log.record(
            ReceivedRequest(
                model=chat.model,
                messages=len(chat.messages),
                max_tokens=chat.token_limit,
                time=self._clock.time(),
                fault=fault.spec.kind if fault is not None else None,
                contents=tuple((m.role, m.text) for m in chat.messages),
                tools=chat.tool_names,
            )
        )
        if fault is not None and (early := await self._fault_answer(fault, chat.model)):
            return early
        if self.latency_seconds:
            await asyncio.sleep(self.latency_seconds)
        reply = self._script.next_for(chat.model)
        body = completion(chat, reply, number=next(self._ids), created=int(self._clock.time()))
        return garble(fault, json_response(200, body))

    async def _fault_answer(self, fault: LLMArmedFault, model: str) -> Response | None:
        """The answer a fault gives instead of a completion, or None to answer normally."""
        spec = fault.spec
        match spec.kind:
            case "status":
                return status_response(spec, model)
            case "delay":
                await asyncio.sleep(spec.seconds or 0.0)
            case "hang":
                detail = f"hang injected for {model}"
                return HangingResponse(self.faults.hangs, SERVER, detail, key=fault.id)
            case "drop":
                return DroppedResponse(SERVER, f"drop injected for {model}")
        return None

    async def _list_models(self, request: Request) -> Response:
        if (refused := self._refuse_key(request)) is not None:
            return refused
        ids = sorted({*self._models, *self._script.models, *self._log.seen})
        data = [{"id": i, "object": "model", "created": 0, "owned_by": "bastion"} for i in ids]
        return json_response(200, {"object": "list", "data": data})

    def _refuse_key(self, request: Request) -> Response | None:
        if self.api_key is None:
            return None
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(token.strip(), self.api_key):
            return None
        message = "Incorrect API key provided: send the api_key the fake server was given"
        return json_response(401, openai_error(message, code="invalid_api_key"))


def create_app(
    *,
    replies: Sequence[Reply] = (),
    replies_by_model: Mapping[str, Sequence[Reply]] | None = None,
    default_reply: str = DEFAULT_REPLY,
    models: Sequence[str] = (),
    faults: Sequence[LLMFault | Mapping[str, Any]] = (),
    seed: int = 0,
    latency_seconds: float = 0.0,
    api_key: str | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    """A fake OpenAI chat-completions app; its :class:`FakeLLMServer` is ``app.state.fake``.

    ``replies`` are used in order by every model, after the model's own ``replies_by_model``
    entries, then ``default_reply`` forever. ``faults`` are armed at start-up (a bad one raises
    a pydantic ``ValidationError`` naming the field). ``latency_seconds`` of wall time are added
    to every normal answer; ``clock`` stamps ``created`` and the request log.
    """
    return FakeLLMServer(
        replies=replies,
        replies_by_model=replies_by_model,
        default_reply=default_reply,
        models=models,
        faults=faults,
        seed=seed,
        latency_seconds=latency_seconds,
        api_key=api_key,
        clock=clock,
    ).app


class _Server(uvicorn.Server):
    """uvicorn, releasing hangs first on shutdown: it waits for open requests before lifespan."""

    def __init__(self, config: uvicorn.Config, fake: FakeLLMServer) -> None:
        super().__init__(config)
        self.fake = fake

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.fake.close()
        await super().shutdown(sockets=sockets)


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    allow_remote: bool = False,
    log_level: str = "info",
    **app_kwargs: Any,
) -> None:
    """Serve a fake LLM (``app_kwargs`` as for :func:`create_app`) with uvicorn until stopped.

    The control routes already refuse remote clients, but the chat endpoint is unauthenticated
    by default, so binding anything but loopback takes ``allow_remote=True``.
    """
    if not allow_remote and not (host == "localhost" or is_loopback(host)):
        detail = (
            f"(host {host!r} is not a loopback address: listen on 127.0.0.1, "
            "or pass allow_remote=True to expose the fake LLM server to the network)"
        )
        raise ConfigError(
            error_message("llm fake-server", ErrorCode.CONFIG, detail), dependency="llm"
        )
    fake = FakeLLMServer(**app_kwargs)
    config = uvicorn.Config(fake.app, host=host, port=port, log_level=log_level)
    _Server(config, fake).run()
