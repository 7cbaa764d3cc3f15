"""What goes on the wire when a paper exchange fault fires, beyond what every simulator shares.

Hangs, dropped connections and garbled bodies are :mod:`bastion.simulators.faults.responses`,
shared with the fake LLM server; here is what is the paper exchange's own: its name in their
messages and bodies, and the ``Retry-After`` header a fault may add to an HTTP answer.
"""

from __future__ import annotations

from starlette.responses import Response

from bastion.simulators.faults.responses import malformed, malformed_body, truncated
from bastion.simulators.paper.faults import Fault

__all__ = ["MALFORMED_BODY", "SERVER", "garble", "with_retry_after"]

SERVER = "paper exchange"
MALFORMED_BODY = malformed_body(SERVER)


def garble(fault: Fault, response: Response) -> Response:
    """Apply a fault that acts on the answer (``malformed``, ``truncated``, ``error``)."""
    if fault.kind == "malformed":
        response = malformed(SERVER)
    elif fault.kind == "truncated":
        response = truncated(response)
    return with_retry_after(fault, response)


def with_retry_after(fault: Fault, response: Response) -> Response:
    """``response`` with the fault's ``Retry-After`` header, if it sets one."""
    if fault.spec.retry_after is not None:
        response.headers["retry-after"] = str(fault.spec.retry_after)
    return response
