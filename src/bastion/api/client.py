"""Asking a running console for its status, from another process on the same machine.

The running process records where its console listens in the data directory's ``run.json``
(see :mod:`bastion.runtime.lock`), so ``bastion status`` asks the console that is actually
running, whatever port it was given, and no console at all when no process holds the lock.

This talks to our own loopback process with httpx directly, not through ``resilience.call``:
it is not an external dependency, and a console that does not answer is an answer ("not
reachable"), not a failure to classify.
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["fetch_slo", "fetch_status"]


def console_base_url(host: str, port: int) -> str:
    """``http://127.0.0.1:8787``; IPv6 hosts in brackets."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def fetch_status(
    host: str, port: int, token: str, *, timeout: float = 2.0
) -> dict[str, Any] | None:
    """The console's ``/api/status``, or None when nothing answers there as our console does."""
    url = f"{console_base_url(host, port)}/api/status"
    try:
        response = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout)
        if response.status_code != 200 or not response.headers.get("content-type", "").startswith(
            "application/json"
        ):
            return None
        result = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    return result if isinstance(result, dict) and "run_id" in result else None


def fetch_slo(host: str, port: int, token: str, *, timeout: float = 5.0) -> dict[str, Any] | None:
    """The console's ``/api/slo``, or None when nothing answers there as our console does."""
    url = f"{console_base_url(host, port)}/api/slo"
    try:
        response = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout)
        if response.status_code != 200:
            return None
        result = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    return result if isinstance(result, dict) and "slos" in result else None
