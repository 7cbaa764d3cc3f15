"""The fake LLM server's request log: what a test asserts on after the client has run.

Every chat request is recorded in order with the fault that answered it, if any, so a test can
count calls per model (a retry, a fallback) without trusting the client's own account. A reset
empties the log but the models ever seen stay listed by ``GET /v1/models``.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

from bastion.simulators.llm.faults import LLMFaultKind

__all__ = ["ReceivedRequest", "RequestLog"]


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """One chat request as the server saw it, and the fault that answered it, if any."""

    model: str
    messages: int
    max_tokens: int | None
    time: float
    fault: LLMFaultKind | None
    contents: tuple[tuple[str, str], ...] = ()
    """Each message's role and text, as the model would read them (what a test checks was
    sanitised)."""
    tools: tuple[str, ...] = ()
    """The names of the functions the request offered the model."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "messages": self.messages,
            "max_tokens": self.max_tokens,
            "time": self.time,
            "fault": self.fault,
        }


class RequestLog:
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
