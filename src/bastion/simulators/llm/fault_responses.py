"""What goes on the wire when a fake LLM fault fires, beyond what every simulator shares.

Hangs, dropped connections and garbled bodies are :mod:`bastion.simulators.faults.responses`,
shared with the paper exchange; here is what is this server's own: its name in their messages
and bodies, a ``status`` fault's OpenAI error answer, and which faults garble a finished answer.
"""

from __future__ import annotations

from starlette.responses import Response

from bastion.simulators.faults.responses import malformed, malformed_body, truncated
from bastion.simulators.llm.envelope import json_response
from bastion.simulators.llm.faults import LLMArmedFault, LLMFault

__all__ = ["MALFORMED_BODY", "SERVER", "garble", "status_response"]

SERVER = "fake LLM server"
MALFORMED_BODY = malformed_body(SERVER)


def status_response(fault: LLMFault, model: str) -> Response:
    """A ``status`` fault's answer: its status, OpenAI error body and headers."""
    response = json_response(fault.status or 500, fault.error_body(model))
    if fault.retry_after is not None:
        response.headers["retry-after"] = str(fault.retry_after)
    response.headers.update(fault.headers or {})
    return response


def garble(fault: LLMArmedFault | None, response: Response) -> Response:
    """Apply a fault that acts on the finished answer (``malformed``, ``truncated``)."""
    if fault is None or fault.kind not in ("malformed", "truncated"):
        return response
    if fault.kind == "malformed":
        return malformed(SERVER)
    return truncated(response)
