"""Shared constants and the JSON-RPC helper of the paper exchange tests."""

from __future__ import annotations

from typing import Any

import httpx

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z, a Thursday
PERP = "BTC-PERPETUAL"
CALL = "BTC-2JAN26-90000-C"  # the first Friday expiry, at the money at the start
DAILY_CALL = "BTC-1JAN26-85000-C"  # expires 8 hours after the start, in the money
ALICE_SECRET = "alice-secret"


class Rpc:
    """Speaks Deribit JSON-RPC to an app through httpx, GET by default."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.headers: dict[str, str] = {}

    async def get(
        self, method: str, *, headers: dict[str, str] | None = None, **params: Any
    ) -> httpx.Response:
        query = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items()}
        return await self.client.get(
            f"/api/v2/{method}", params=query, headers=headers or self.headers
        )

    async def post(
        self, method: str, params: dict[str, Any] | None = None, *, rpc_id: Any = 1
    ) -> httpx.Response:
        body = {"jsonrpc": "2.0", "id": rpc_id, "method": method, "params": params or {}}
        return await self.client.post(f"/api/v2/{method}", json=body, headers=self.headers)

    async def result(self, method: str, **params: Any) -> Any:
        """The ``result`` of a GET call that must succeed."""
        response = await self.get(method, **params)
        assert response.status_code == 200, response.text
        return response.json()["result"]

    async def login(self, client_id: str = "alice", secret: str = ALICE_SECRET) -> dict[str, Any]:
        """``public/auth`` with client credentials; later calls carry the bearer token."""
        grant = await self.result(
            "public/auth",
            grant_type="client_credentials",
            client_id=client_id,
            client_secret=secret,
        )
        self.headers = {"Authorization": f"Bearer {grant['access_token']}"}
        return dict(grant)
