"""A fake OpenAI-compatible chat-completions server that answers from a script and fails on cue.

Tests, chaos drills and demos need a model endpoint that is free, offline, deterministic and
able to fail the way providers do (a 429 with ``Retry-After``, a 500, a hang, a body cut in
half, a dropped connection, a silent model swap), spoken over real HTTP so the official SDK
and our adapters run unchanged. We write it ourselves because no maintained package on PyPI
fits: the fake OpenAI servers there are unmaintained, stream-only or LLM-backed, and none
injects faults. It mirrors the paper exchange's fault injection
(:mod:`bastion.exchange.paper.faults`) and its loopback-only control surface
(:mod:`bastion.exchange.paper.control`).

API surface (``POST /v1/responses`` and streaming are not served):

- ``POST /v1/chat/completions``: an OpenAI ``chat.completion``. The reply is the next entry of
  the requested model's own script, else of the shared script, else ``default_reply``. Token
  counts are ``ceil(chars / 4)`` (at least 1) of the message contents (prompt) and of the
  reply (completion), so a test can predict them; a reply longer than ``max_completion_tokens``
  (or ``max_tokens``) is cut to that many tokens with ``finish_reason="length"``. A body that
  is not JSON or not a chat request gets a 400 in OpenAI's error envelope, never a 500.
- ``GET /v1/models``: the models configured (``models``, per-model scripts) or seen.
- With ``api_key`` set, both answer a 401 ``invalid_api_key`` unless ``Authorization: Bearer
  <api_key>`` is sent.

Faults (:class:`LLMFault`), checked in order, the first that fires wins:

=============  ===========================================================  =============
kind           what the client sees                                         reply used?
=============  ===========================================================  =============
``status``     HTTP ``status`` with an OpenAI error body; ``retry_after``   no
               and ``headers`` (e.g. ``x-ratelimit-*``) add headers
``delay``      the normal answer after ``seconds`` of wall time             yes
``hang``       nothing, until the client gives up or the faults are         no
               cleared or the server shuts down (then the connection drops)
``malformed``  HTTP 200, ``application/json``, a body that is not JSON      yes
``truncated``  the normal answer cut in the middle (honest length)          yes
``drop``       the connection closed without a response                     no
=============  ===========================================================  =============

A ``malformed`` or ``truncated`` answer consumes its scripted reply, as when a completion is
generated and billed but lost on the way back. ``model`` is a glob on the requested model id.
A fault fires for the next ``count`` matching requests (default 1; None: until cleared), or,
with ``probability``, on each with that chance, drawn from an RNG seeded by the server seed and
the fault's position in the list, so a run is reproducible.

Control routes (loopback clients only; anyone else gets 403), plain JSON:

- ``GET /_fake/faults``; ``POST /_fake/faults`` with a JSON list of faults replaces them (400
  with a ``reason`` naming the field when invalid); ``DELETE /_fake/faults`` clears them and
  releases hanging requests;
- ``GET /_fake/replies``; ``POST /_fake/replies`` with a list of replies, or an object with
  ``replies``, ``replies_by_model`` and ``default_reply``, replaces the script;
- ``GET /_fake/requests`` (count, per-model counts, one record per request);
  ``DELETE /_fake/requests`` starts counting from zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import ipaddress
import itertools
import re
import socket
import threading
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from random import Random
from typing import Any, Literal, NoReturn, Self, TypeAlias

import anyio
import httpx
import orjson
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from bastion.clock import Clock, WallClock
from bastion.errors import ConfigError, ErrorCode, error_message

__all__ = [
    "CONTROL_PREFIX",
    "DEFAULT_REPLY",
    "MALFORMED_BODY",
    "DroppedConnection",
    "FakeLLMServer",
    "LLMFault",
    "LLMFaultKind",
    "ReceivedRequest",
    "Reply",
    "ScriptedReply",
    "ScriptedToolCall",
    "count_tokens",
    "create_app",
    "serve",
]

LLMFaultKind = Literal["status", "hang", "delay", "malformed", "truncated", "drop"]

CONTROL_PREFIX = "/_fake"
DEFAULT_REPLY = "OK"
MALFORMED_BODY = b"<fake LLM server: injected malformed body, not JSON>"
_CHARS_PER_TOKEN = 4
_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
_TARGETING = frozenset({"kind", "model", "count", "probability"})
_OPTIONS: dict[str, tuple[frozenset[str], frozenset[str]]] = {  # kind: (required, allowed)
    "status": (
        frozenset({"status"}),
        frozenset({"status", "message", "error_type", "code", "retry_after", "headers"}),
    ),
    "delay": (frozenset({"seconds"}), frozenset({"seconds"})),
    "hang": (frozenset(), frozenset()),
    "malformed": (frozenset(), frozenset()),
    "truncated": (frozenset(), frozenset()),
    "drop": (frozenset(), frozenset()),
}
_ERROR_TYPES = {401: "invalid_request_error", 403: "permission_error", 429: "requests"}
_ERROR_CODES = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}


class DroppedConnection(httpx.RemoteProtocolError):
    """The fake server closed a connection on purpose (a ``drop`` fault or a released hang)."""


class LLMFault(BaseModel):
    """One fault: what the client sees (``kind`` and its options) and which requests it hits.

    Options by kind: ``status`` takes ``status`` (400-599) and optionally ``message``,
    ``error_type`` and ``code`` for the OpenAI error body (defaults fit the status: 429 is
    ``requests``/``rate_limit_exceeded``, 5xx is ``server_error``), ``retry_after`` (whole
    seconds, the ``Retry-After`` header) and ``headers`` (extra headers such as
    ``x-ratelimit-remaining-requests``); ``delay`` takes ``seconds``. An option that does not
    apply to the kind is an error, so a typo cannot arm a different fault than the one meant.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    kind: LLMFaultKind
    model: str = Field("*", min_length=1, max_length=200)
    count: int | None = Field(1, ge=1)
    probability: float | None = Field(None, gt=0.0, le=1.0)
    status: int | None = Field(None, ge=400, le=599)
    message: str | None = Field(None, max_length=500)
    error_type: str | None = Field(None, min_length=1, max_length=100)
    code: str | None = Field(None, min_length=1, max_length=100)
    retry_after: int | None = Field(None, ge=0, le=86_400)
    headers: dict[str, str] | None = None
    seconds: float | None = Field(None, gt=0.0, le=3600.0)

    @model_validator(mode="before")
    @classmethod
    def _probability_means_until_cleared(cls, data: Any) -> Any:
        if (
            isinstance(data, Mapping)
            and data.get("probability") is not None
            and "count" not in data
        ):
            return {**data, "count": None}
        return data

    @model_validator(mode="after")
    def _options_fit_the_kind(self) -> Self:
        required, allowed = _OPTIONS[self.kind]
        given = {name for name in LLMFault.model_fields if getattr(self, name) is not None}
        given -= _TARGETING
        if missing := sorted(required - given):
            raise ValueError(f"a {self.kind} fault needs {', '.join(missing)}")
        if extra := sorted(given - allowed):
            raise ValueError(f"{', '.join(extra)} does not apply to a {self.kind} fault")
        for name, value in (self.headers or {}).items():
            if not _HEADER_NAME.fullmatch(name) or not value.isprintable():
                raise ValueError(f"header {name!r} needs a token name and a printable value")
        return self

    def error_body(self, model: str) -> dict[str, Any]:
        """The OpenAI error envelope a ``status`` fault answers for a request of ``model``."""
        status = self.status or 500
        message = self.message or f"fake LLM server: injected HTTP {status} for model {model}"
        error_type = self.error_type or _ERROR_TYPES.get(
            status, "server_error" if status >= 500 else "invalid_request_error"
        )
        return _openai_error(
            message, error_type=error_type, code=self.code or _ERROR_CODES.get(status)
        )


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
    requested, which Bastion must notice in its trace and ledger.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    content: str | None = None
    tool_calls: tuple[ScriptedToolCall, ...] = ()
    model: str | None = Field(None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _says_something(self) -> Self:
        if self.content is None and not self.tool_calls:
            raise ValueError("a scripted reply needs content or tool_calls")
        return self


_FAULT_LIST = TypeAdapter(list[LLMFault])

Reply: TypeAlias = str | Mapping[str, Any] | ScriptedReply
"""A scripted reply as given: plain content, a mapping validated into one, or one."""


class _ReplyScript(BaseModel):
    """The body of ``POST /_fake/replies`` in its object form."""

    model_config = ConfigDict(extra="forbid")

    replies: list[str | ScriptedReply] = []
    replies_by_model: dict[str, list[str | ScriptedReply]] = {}
    default_reply: str | None = None


class _ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        parts = self.content or []
        return "".join(str(part["text"]) for part in parts if isinstance(part.get("text"), str))


class _ChatRequest(BaseModel):
    """What the fake reads of a chat-completions request; other fields are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    messages: list[_ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stream: bool | None = None
    tools: list[dict[str, Any]] | None = None
    response_format: dict[str, Any] | None = None

    @property
    def token_limit(self) -> int | None:
        """``max_completion_tokens``, which supersedes the deprecated ``max_tokens``."""
        return self.max_completion_tokens or self.max_tokens


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """One chat request as the server saw it, and the fault that answered it, if any."""

    model: str
    messages: int
    max_tokens: int | None
    time: float
    fault: LLMFaultKind | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "messages": self.messages,
            "max_tokens": self.max_tokens,
            "time": self.time,
            "fault": self.fault,
        }


def count_tokens(text: str) -> int:
    """About four characters a token, at least one: predictable in tests, not a tokenizer."""
    return max(1, -(-len(text) // _CHARS_PER_TOKEN))


def _to_reply(entry: Reply) -> ScriptedReply:
    if isinstance(entry, ScriptedReply):
        return entry
    if isinstance(entry, str):
        return ScriptedReply(content=entry)
    return ScriptedReply.model_validate(entry)


@dataclass(slots=True, eq=False)
class _ArmedFault:
    spec: LLMFault
    remaining: int | None
    rng: Random | None
    fired: int = 0

    def fires_for(self, model: str) -> bool:
        if self.remaining == 0 or not fnmatchcase(model, self.spec.model):
            return False
        return self.rng is None or self.rng.random() < (self.spec.probability or 0.0)

    def to_dict(self) -> dict[str, Any]:
        spec = self.spec.model_dump(exclude_none=True)
        spec.setdefault("count", None)
        return {**spec, "remaining": self.remaining, "fired": self.fired}


class _FaultTable:
    """The armed faults, replaced as a whole; each probabilistic one has its own seeded RNG."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._lock = threading.Lock()
        self._faults: list[_ArmedFault] = []

    def replace(self, specs: Iterable[LLMFault | Mapping[str, Any]]) -> None:
        validated = [s if isinstance(s, LLMFault) else LLMFault.model_validate(s) for s in specs]
        armed = [
            _ArmedFault(spec, spec.count, self._rng(index, spec))
            for index, spec in enumerate(validated)
        ]
        with self._lock:
            self._faults = armed

    def _rng(self, index: int, spec: LLMFault) -> Random | None:
        if spec.probability is None:
            return None
        return Random(f"fake-llm-faults/{self._seed}/{index}")  # noqa: S311 -- a simulation

    def clear(self) -> int:
        with self._lock:
            armed = sum(1 for fault in self._faults if fault.remaining != 0)
            self._faults = []
        return armed

    def take(self, model: str) -> LLMFault | None:
        """The fault that fires for a request of ``model``, if any, counted as fired."""
        with self._lock:
            for fault in self._faults:
                if fault.fires_for(model):
                    fault.fired += 1
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    return fault.spec
        return None

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [fault.to_dict() for fault in self._faults if fault.remaining != 0]


class _Script:
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


class _RequestLog:
    """Every chat request received, in order, with per-model counts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[ReceivedRequest] = []
        self._seen: set[str] = set()

    def record(self, request: ReceivedRequest) -> None:
        with self._lock:
            self._requests.append(request)
            self._seen.add(request.model)

    def all(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._requests)

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(request.model for request in self.all()).items()))

    @property
    def seen(self) -> set[str]:
        """Every model ever requested, including before the last reset."""
        with self._lock:
            return set(self._seen)

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()

    def snapshot(self) -> dict[str, Any]:
        requests = self.all()
        return {
            "count": len(requests),
            "by_model": dict(sorted(Counter(r.model for r in requests).items())),
            "requests": [request.to_dict() for request in requests],
        }


class _Hangs:
    """Requests held by ``hang`` faults, and the switch that lets them go.

    A hang waits on a future of its own event loop (uvicorn's thread or a test's), settled
    thread-safely, so a test thread or the shutdown can release hangs served in another loop.
    After :meth:`close` a new hang drops at once: a server shutting down waits for every open
    request, so none may start waiting forever.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = set()
        self._closed = False

    def __len__(self) -> int:
        with self._lock:
            return len(self._waiting)

    def release(self) -> None:
        with self._lock:
            waiting = list(self._waiting)
        for loop, released in waiting:
            with contextlib.suppress(RuntimeError):  # a closed loop has no one waiting any more
                loop.call_soon_threadsafe(_settle, released)

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self.release()

    async def wait(self, receive: Receive) -> bool:
        """Wait until the client disconnects (True) or the hang is released (False)."""
        loop = asyncio.get_running_loop()
        released: asyncio.Future[None] = loop.create_future()
        entry = (loop, released)
        disconnected = False
        with self._lock:
            if self._closed:
                return False
            self._waiting.add(entry)
        try:
            async with anyio.create_task_group() as group:

                async def watch_disconnect() -> None:
                    nonlocal disconnected
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    disconnected = True
                    group.cancel_scope.cancel()

                group.start_soon(watch_disconnect)
                await released
                group.cancel_scope.cancel()
        finally:
            with self._lock:
                self._waiting.discard(entry)
        return disconnected


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _drop(send: Send, detail: str) -> NoReturn:
    """Close the connection without a response.

    ASGI has no message for it, so a start message no server can write (no status) comes
    first and an exception second: uvicorn then closes the socket without a byte, and under an
    in-process transport the exception itself reaches the client, as an httpx protocol error.
    """
    with contextlib.suppress(Exception):
        await send({"type": "http.response.start", "status": None, "headers": []})
    raise DroppedConnection(f"fake LLM server dropped the connection: {detail}")


class _DroppedResponse(Response):
    def __init__(self, detail: str) -> None:
        super().__init__()
        self.detail = detail

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _drop(send, self.detail)


class _HangingResponse(Response):
    def __init__(self, hangs: _Hangs, detail: str) -> None:
        super().__init__()
        self.hangs = hangs
        self.detail = detail

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if await self.hangs.wait(receive):
            return  # the client is gone: there is no one to answer
        await _drop(send, f"{self.detail} (released)")


class FakeLLMServer:
    """The state of one fake server (script, faults, request log, hangs) and its app, ``.app``.

    Every method is thread-safe, so a test may script and arm faults from its own thread while
    uvicorn serves in another. ``app.state.fake`` points back here.
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
        self._script = _Script()
        self._script.replace(replies, replies_by_model or {}, default_reply)
        self._faults = _FaultTable(seed)
        self._faults.replace(faults)
        self._log = _RequestLog()
        self._hangs = _Hangs()
        self._ids = itertools.count(1)
        self.app = self._build_app()

    def set_faults(self, faults: Iterable[LLMFault | Mapping[str, Any]]) -> None:
        """Replace the armed faults (mappings are validated; a bad one raises and arms none)."""
        self._faults.replace(faults)

    def clear_faults(self) -> int:
        """Disarm every fault and release hanging requests; returns how many were armed."""
        cleared = self._faults.clear()
        self._hangs.release()
        return cleared

    @property
    def faults(self) -> list[dict[str, Any]]:
        """The faults still armed, in the order they are checked, with ``remaining``/``fired``."""
        return self._faults.snapshot()

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
        return len(self._hangs)

    def release_hangs(self) -> None:
        """Drop every hanging request; safe to call from any thread."""
        self._hangs.release()

    def close(self) -> None:
        """Drop hanging requests and any that would hang later, so the server can stop."""
        self._hangs.close()

    def _build_app(self) -> FastAPI:
        app = FastAPI(
            title="Bastion fake LLM server", openapi_url=None, docs_url=None, redoc_url=None
        )
        app.state.fake = self
        app.add_exception_handler(HTTPException, _http_error)
        app.add_api_route("/v1/chat/completions", self._chat, methods=["POST"])
        app.add_api_route("/v1/models", self._list_models, methods=["GET"])
        control: list[tuple[str, str, Callable[[Request], Awaitable[Response]]]] = [
            ("/faults", "GET", self._get_faults),
            ("/faults", "POST", self._post_faults),
            ("/faults", "DELETE", self._delete_faults),
            ("/replies", "GET", self._get_replies),
            ("/replies", "POST", self._post_replies),
            ("/requests", "GET", self._get_requests),
            ("/requests", "DELETE", self._delete_requests),
        ]
        for path, method, handler in control:
            app.add_api_route(CONTROL_PREFIX + path, _loopback_only(handler), methods=[method])
        return app

    async def _chat(self, request: Request) -> Response:
        if (refused := self._refuse_key(request)) is not None:
            return refused
        chat = await _read_chat(request)
        if isinstance(chat, Response):
            return chat
        fault = self._faults.take(chat.model)
        self._log.record(
            ReceivedRequest(
                model=chat.model,
                messages=len(chat.messages),
                max_tokens=chat.token_limit,
                time=self._clock.time(),
                fault=fault.kind if fault is not None else None,
            )
        )
        if fault is not None and (early := await self._fault_answer(fault, chat.model)):
            return early
        if self.latency_seconds:
            await asyncio.sleep(self.latency_seconds)
        reply = self._script.next_for(chat.model)
        body = _completion(chat, reply, number=next(self._ids), created=int(self._clock.time()))
        return _garble(fault, _json(200, body))

    async def _fault_answer(self, fault: LLMFault, model: str) -> Response | None:
        """The answer a fault gives instead of a completion, or None to answer normally."""
        match fault.kind:
            case "status":
                response = _json(fault.status or 500, fault.error_body(model))
                if fault.retry_after is not None:
                    response.headers["retry-after"] = str(fault.retry_after)
                response.headers.update(fault.headers or {})
                return response
            case "delay":
                await asyncio.sleep(fault.seconds or 0.0)
            case "hang":
                return _HangingResponse(self._hangs, f"hang injected for {model}")
            case "drop":
                return _DroppedResponse(f"drop injected for {model}")
        return None

    async def _list_models(self, request: Request) -> Response:
        if (refused := self._refuse_key(request)) is not None:
            return refused
        ids = sorted({*self._models, *self._script.models, *self._log.seen})
        data = [{"id": i, "object": "model", "created": 0, "owned_by": "bastion"} for i in ids]
        return _json(200, {"object": "list", "data": data})

    def _refuse_key(self, request: Request) -> Response | None:
        if self.api_key is None:
            return None
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(token.strip(), self.api_key):
            return None
        message = "Incorrect API key provided: send the api_key the fake server was given"
        return _json(401, _openai_error(message, code="invalid_api_key"))

    async def _get_faults(self, request: Request) -> Response:
        return _json(200, {"faults": self.faults})

    async def _post_faults(self, request: Request) -> Response:
        data = await _read_json(request)
        if isinstance(data, Response):
            return data
        try:
            specs = _FAULT_LIST.validate_python(data)
        except ValidationError as exc:
            return _control_error(400, "invalid fault", _reason(exc))
        self._faults.replace(specs)
        return _json(200, {"faults": self.faults})

    async def _delete_faults(self, request: Request) -> Response:
        return _json(200, {"cleared": self.clear_faults()})

    async def _get_replies(self, request: Request) -> Response:
        return _json(200, self._script.snapshot())

    async def _post_replies(self, request: Request) -> Response:
        data = await _read_json(request)
        if isinstance(data, Response):
            return data
        try:
            script = _ReplyScript.model_validate(
                {"replies": data} if isinstance(data, list) else data
            )
        except ValidationError as exc:
            return _control_error(400, "invalid replies", _reason(exc))
        self._script.replace(script.replies, script.replies_by_model, script.default_reply)
        return _json(200, self._script.snapshot())

    async def _get_requests(self, request: Request) -> Response:
        return _json(200, self._log.snapshot())

    async def _delete_requests(self, request: Request) -> Response:
        self._log.reset()
        return _json(200, self._log.snapshot())


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
    if not allow_remote and not (host == "localhost" or _is_loopback(host)):
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


def _completion(
    chat: _ChatRequest, reply: ScriptedReply, *, number: int, created: int
) -> dict[str, Any]:
    """The ``chat.completion`` object for ``reply``, cut to the request's token limit."""
    content = reply.content
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


def _garble(fault: LLMFault | None, response: Response) -> Response:
    """Apply a fault that acts on the finished answer (``malformed``, ``truncated``)."""
    if fault is None or fault.kind not in ("malformed", "truncated"):
        return response
    if fault.kind == "malformed":
        return Response(MALFORMED_BODY, status_code=200, media_type="application/json")
    body = bytes(response.body)
    return Response(body[: len(body) // 2], status_code=200, media_type="application/json")


async def _read_json(request: Request) -> Any:
    """The JSON body, or a 400 answer saying it is not JSON."""
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        reason = "the body is not valid JSON"
        if request.url.path.startswith(CONTROL_PREFIX):
            return _control_error(400, "bad request", reason)
        return _json(
            400, _openai_error(f"We could not parse the JSON body of your request: {reason}")
        )


async def _read_chat(request: Request) -> _ChatRequest | Response:
    """The chat request, or the 400 OpenAI answers for a body it cannot use."""
    data = await _read_json(request)
    if isinstance(data, Response):
        return data
    try:
        chat = _ChatRequest.model_validate(data)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        param = _param(error["loc"])
        message = f"Invalid request: {param or 'body'}: {error['msg']}"
        return _json(400, _openai_error(message, param=param))
    if chat.stream:
        message = "stream=true is not supported by the fake LLM server: call without streaming"
        return _json(400, _openai_error(message, param="stream"))
    return chat


def _param(loc: tuple[int | str, ...]) -> str | None:
    """OpenAI's spelling of a field path: ``messages.[0].content``."""
    parts = [f"[{part}]" if isinstance(part, int) else part for part in loc]
    return ".".join(parts) or None


def _loopback_only(
    handler: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    @functools.wraps(handler)
    async def guarded(request: Request) -> Response:
        host = request.client.host if request.client is not None else None
        if not _is_loopback(host):
            reason = "the fake LLM server's control routes answer loopback clients only"
            return _control_error(403, "forbidden", reason)
        return await handler(request)

    return guarded


def _is_loopback(host: str | None) -> bool:
    """Whether ``host`` is a loopback IP address (IPv4-mapped IPv6 included)."""
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


async def _http_error(request: Request, exc: Exception) -> Response:
    """Routing errors (404, 405) in OpenAI's envelope, as the real API answers them."""
    if not isinstance(exc, HTTPException):
        raise exc
    message = f"Invalid URL ({request.method} {request.url.path})"
    response = _json(exc.status_code, _openai_error(message))
    response.headers.update(exc.headers or {})
    return response


def _reason(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def _openai_error(
    message: str,
    *,
    error_type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def _control_error(status: int, error: str, reason: str) -> Response:
    return _json(status, {"error": error, "reason": reason})


def _json(status: int, payload: Any) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")
