"""The alert's series from Prometheus' HTTP API, as context for the LLM's analysis.

An alert that Prometheus raised carries its rule's expression in ``generatorURL``
(``/graph?g0.expr=...``); asking ``/api/v1/query`` for that expression now shows the LLM the
figures behind the alert, not just its name. An alert without one is asked about as
``ALERTS{alertname="..."}``. The call goes through :meth:`Resilience.call
<bastion.resilience.call.Resilience.call>` (layer ``peer``); a Prometheus that cannot answer
leaves the analysis without context, never without an analysis.

The answer is untrusted text like any other (label values are whatever the scraped target
wrote): it is cut to a few series and sanitised before it reaches a prompt.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from bastion.errors import BastionError, ErrorCode
from bastion.llm.sanitize import sanitize
from bastion.resilience.call import Resilience

__all__ = ["PrometheusContext", "alert_query"]

_MAX_SERIES = 10
_MAX_CHARS = 2000


def alert_query(alertname: str, generator_url: str | None) -> str:
    """The PromQL to ask: the rule's expression from ``generatorURL``, else its ALERTS series."""
    if generator_url:
        expr = parse_qs(urlsplit(generator_url).query).get("g0.expr")
        if expr and expr[0].strip():
            return expr[0]
    escaped = alertname.replace("\\", "\\\\").replace('"', '\\"')
    return f'ALERTS{{alertname="{escaped}"}}'


class PrometheusContext:
    """Instant queries against one Prometheus, summarised as a few lines of text."""

    def __init__(
        self,
        base_url: str,
        *,
        resilience: Resilience,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=timeout, transport=transport
        )
        self._resilience = resilience
        self._timeout = timeout

    async def series(self, alertname: str, generator_url: str | None) -> str:
        """The alert's series now, one ``name{labels} value`` line each (at most ten)."""
        query = alert_query(alertname, generator_url)
        body = await self._resilience.call(
            "prometheus query",
            lambda: self._query(query),
            layer="peer",
            timeout=self._timeout,
        )
        lines = [f"query: {query}"]
        for item in body[:_MAX_SERIES]:
            lines.append(_line(item))
        if len(body) > _MAX_SERIES:
            lines.append(f"... and {len(body) - _MAX_SERIES} more series")
        if not body:
            lines.append("(no series now)")
        return sanitize("\n".join(lines), max_chars=_MAX_CHARS).text

    async def _query(self, query: str) -> list[Mapping[str, Any]]:
        answer = await self._client.get("/api/v1/query", params={"query": query})
        answer.raise_for_status()
        data = answer.json()
        result = data.get("data", {}).get("result") if isinstance(data, dict) else None
        if data.get("status") != "success" or not isinstance(result, list):
            raise BastionError(
                "prometheus query: the answer is not a success with a result list; check "
                "operator_prometheus_url points at Prometheus itself",
                code=ErrorCode.INVALID_RESPONSE,
                dependency="prometheus query",
            )
        return [item for item in result if isinstance(item, Mapping)]

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()


def _line(item: Mapping[str, Any]) -> str:
    metric = item.get("metric") or {}
    name = str(metric.get("__name__", ""))
    labels = ",".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
    value = item.get("value")
    shown = value[1] if isinstance(value, list) and len(value) == 2 else "?"
    return f"{name}{{{labels}}} {shown}"
