"""Silencing an alert in Alertmanager (``POST /api/v2/silences``), with a reason.

A silence matches the alert's exact label set, lasts ``minutes`` and carries who asked and why
as its ``createdBy`` and ``comment``, so Alertmanager's own UI shows the audit trail too.
Without an Alertmanager URL (``operator_alertmanager_url``) the silence is recorded only: the
action's result says so and nothing is sent. The call goes through :meth:`Resilience.call
<bastion.resilience.call.Resilience.call>` (layer ``peer``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

import httpx

from bastion.clock import Clock
from bastion.errors import BastionError, ErrorCode
from bastion.resilience.call import Resilience

__all__ = ["Silencer"]


class Silencer:
    """Create silences on one Alertmanager, or only record them when there is none."""

    def __init__(
        self,
        base_url: str | None,
        *,
        resilience: Resilience,
        clock: Clock,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._clock = clock
        self._resilience = resilience
        self._timeout = timeout
        self._client = (
            httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport)
            if base_url
            else None
        )

    async def silence(
        self, labels: Mapping[str, str], *, reason: str, minutes: float, who: str
    ) -> str:
        """Silence the alert with these labels; returns what was done, for the audit trail."""
        if self._client is None:
            return (
                f"silence recorded only (no operator_alertmanager_url): {minutes:g} min, "
                f"reason: {reason}"
            )
        now = self._clock.now()
        body = {
            "matchers": [
                {"name": k, "value": v, "isRegex": False, "isEqual": True}
                for k, v in sorted(labels.items())
            ],
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(minutes=minutes)).isoformat(),
            "createdBy": who[:200],
            "comment": reason[:1000],
        }
        client = self._client
        silence_id = await self._resilience.call(
            "alertmanager silences",
            lambda: _post(client, body),
            layer="peer",
            timeout=self._timeout,
        )
        return f"silenced in Alertmanager for {minutes:g} min (silence {silence_id}): {reason}"

    async def aclose(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            await self._client.aclose()


async def _post(client: httpx.AsyncClient, body: Mapping[str, object]) -> str:
    answer = await client.post("/api/v2/silences", json=body)
    answer.raise_for_status()
    data = answer.json()
    silence_id = data.get("silenceID") if isinstance(data, dict) else None
    if not isinstance(silence_id, str):
        raise BastionError(
            "alertmanager silences: the answer has no silenceID; check "
            "operator_alertmanager_url points at Alertmanager",
            code=ErrorCode.INVALID_RESPONSE,
            dependency="alertmanager silences",
        )
    return silence_id
