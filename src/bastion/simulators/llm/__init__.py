"""A fake OpenAI-compatible chat-completions server that answers from a script and fails on cue.

Tests, chaos drills and demos need a model endpoint that is free, offline, deterministic and
able to fail the way providers do (a 429 with ``Retry-After``, a 500, a hang, a body cut in
half, a dropped connection, a silent model swap), spoken over real HTTP so the official SDK
and our adapters run unchanged. We write it ourselves because no maintained package on PyPI
fits: the fake OpenAI servers there are unmaintained, stream-only or LLM-backed, and none
injects faults. It is split like the paper exchange (:mod:`bastion.simulators.paper`):

- :mod:`.server`: :class:`FakeLLMServer`, :func:`create_app` and :func:`serve`, the routes;
- :mod:`.script`: the scripted replies, per model or shared, then a default;
- :mod:`.requests` and :mod:`.completion`: the chat request read, the ``chat.completion``
  written (token counts a test can predict, :func:`count_tokens`);
- :mod:`.envelope`: OpenAI's error envelope, shared by every failure;
- :mod:`.faults`: :class:`LLMFault` and its table (the rules are shared with the paper
  exchange: :mod:`bastion.simulators.faults`);
- :mod:`.fault_responses`: what a fault puts on the wire (the hangs, drops and garbled bodies
  themselves are shared with the paper exchange: :mod:`bastion.simulators.faults`);
- :mod:`.log`: the requests received, for tests to assert on;
- :mod:`.control`: the loopback-only ``/_fake/`` routes that re-arm it while it runs.
"""

from __future__ import annotations

from bastion.simulators.faults.responses import DroppedConnection
from bastion.simulators.llm.completion import count_tokens
from bastion.simulators.llm.control import CONTROL_PREFIX
from bastion.simulators.llm.fault_responses import MALFORMED_BODY
from bastion.simulators.llm.faults import LLMFault, LLMFaultKind, LLMFaultTable
from bastion.simulators.llm.log import ReceivedRequest
from bastion.simulators.llm.script import DEFAULT_REPLY, Reply, ScriptedReply, ScriptedToolCall
from bastion.simulators.llm.server import FakeLLMServer, create_app, serve

__all__ = [
    "CONTROL_PREFIX",
    "DEFAULT_REPLY",
    "MALFORMED_BODY",
    "DroppedConnection",
    "FakeLLMServer",
    "LLMFault",
    "LLMFaultKind",
    "LLMFaultTable",
    "ReceivedRequest",
    "Reply",
    "ScriptedReply",
    "ScriptedToolCall",
    "count_tokens",
    "create_app",
    "serve",
]
