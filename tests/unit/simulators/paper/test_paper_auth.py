"""public/auth grants and the Bearer, Basic and deri-hmac-sha256 schemes, through the app."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from paper_support import ALICE_SECRET, Rpc

from bastion.clock import SimClock
from bastion.simulators.paper import create_app
from bastion.simulators.paper.auth import request_signature, signature

PINNED = {"alice": ALICE_SECRET}


@pytest.fixture
async def pinned(clock: SimClock) -> AsyncIterator[Rpc]:
    """An app that accepts only alice's key, with 900 s tokens."""
    app = create_app(clock=clock, allowed_credentials=PINNED, token_ttl_seconds=900)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://paper"
    ) as c:
        yield Rpc(c)


def now_ms(clock: SimClock) -> int:
    return round(clock.time() * 1000)


async def code_of(response: httpx.Response) -> tuple[int, int]:
    return response.status_code, response.json()["error"]["code"]


async def test_client_credentials_grant(pinned: Rpc) -> None:
    """A good pair gets a bearer token with Deribit's result fields."""
    grant = await pinned.login("alice", ALICE_SECRET)
    assert grant["token_type"] == "bearer"
    assert grant["expires_in"] == 900
    assert grant["scope"] == "connection mainaccount"
    assert grant["enabled_features"] == []
    assert grant["access_token"] != grant["refresh_token"]
    summary = await pinned.result("private/get_account_summary", currency="BTC")
    assert summary["balance"] == 10


@pytest.mark.parametrize(("client_id", "secret"), [("alice", "wrong"), ("mallory", ALICE_SECRET)])
async def test_pinned_credentials_refuse_others(pinned: Rpc, client_id: str, secret: str) -> None:
    """With pinned credentials a wrong secret or unknown id is 13004 with HTTP 401."""
    response = await pinned.get(
        "public/auth", grant_type="client_credentials", client_id=client_id, client_secret=secret
    )
    assert await code_of(response) == (401, 13004)


async def test_sandbox_remembers_the_first_secret(rpc: Rpc) -> None:
    """In the sandbox any pair opens an account, but the id is then bound to its secret."""
    await rpc.login("zoe", "first")
    response = await rpc.get(
        "public/auth", grant_type="client_credentials", client_id="zoe", client_secret="second"
    )
    assert await code_of(response) == (401, 13004)
    await rpc.login("zoe", "first")


async def test_refresh_token_is_single_use(pinned: Rpc) -> None:
    """A refresh token buys a new pair once; reusing it is 13009."""
    grant = await pinned.login()
    fresh = await pinned.result(
        "public/auth", grant_type="refresh_token", refresh_token=grant["refresh_token"]
    )
    assert fresh["access_token"] != grant["access_token"]
    again = await pinned.get(
        "public/auth", grant_type="refresh_token", refresh_token=grant["refresh_token"]
    )
    assert await code_of(again) == (401, 13009)


async def test_client_signature_grant(pinned: Rpc, clock: SimClock) -> None:
    """client_signature verifies HMAC(secret, ts\\nnonce\\ndata) and a 60 s timestamp window."""
    ts = now_ms(clock)
    params: dict[str, Any] = {
        "grant_type": "client_signature",
        "client_id": "alice",
        "timestamp": ts,
        "nonce": "n1",
        "data": "",
    }
    good = signature(ALICE_SECRET, ts, "n1", "")
    assert (await pinned.get("public/auth", signature=good, **params)).status_code == 200
    bad = await pinned.get("public/auth", signature=signature("nope", ts, "n1", ""), **params)
    assert await code_of(bad) == (401, 13004)
    stale = params | {"timestamp": ts - 61_000}
    late = await pinned.get(
        "public/auth", signature=signature(ALICE_SECRET, ts - 61_000, "n1", ""), **stale
    )
    assert await code_of(late) == (401, 13009)


async def test_tokens_expire_by_the_clock(pinned: Rpc, clock: SimClock) -> None:
    """A 900 s token works at 899 s and is 13009 (HTTP 401) at 900 s."""
    await pinned.login()
    clock.advance(899)
    assert (await pinned.get("private/get_positions")).status_code == 200
    clock.advance(1)
    assert await code_of(await pinned.get("private/get_positions")) == (401, 13009)


async def test_scope_sets_the_token_lifetime(pinned: Rpc, clock: SimClock) -> None:
    """scope=expires:60 issues a 60-second token."""
    grant = await pinned.result(
        "public/auth",
        grant_type="client_credentials",
        client_id="alice",
        client_secret=ALICE_SECRET,
        scope="expires:60",
    )
    assert grant["expires_in"] == 60
    pinned.headers = {"Authorization": f"Bearer {grant['access_token']}"}
    clock.advance(60)
    assert await code_of(await pinned.get("private/get_positions")) == (401, 13009)


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, 10000),
        ("Bearer not-a-token", 13009),
        ("Token abc", 10000),
        ("Basic !!!", 10000),
        ("deri-hmac-sha256 id=alice", 10000),
    ],
)
async def test_bad_authorization_headers(pinned: Rpc, header: str | None, code: int) -> None:
    """Missing or unusable credentials on a private method are 10000/13009 with HTTP 401."""
    headers = {} if header is None else {"Authorization": header}
    response = await pinned.client.get("/api/v2/private/get_positions", headers=headers)
    assert await code_of(response) == (401, code)


async def test_basic_auth(pinned: Rpc) -> None:
    """Basic base64(id:secret) authenticates; a wrong secret is 13004."""
    good = base64.b64encode(f"alice:{ALICE_SECRET}".encode()).decode()
    response = await pinned.client.get(
        "/api/v2/private/get_positions", headers={"Authorization": f"Basic {good}"}
    )
    assert response.status_code == 200
    bad = base64.b64encode(b"alice:wrong").decode()
    response = await pinned.client.get(
        "/api/v2/private/get_positions", headers={"Authorization": f"Basic {bad}"}
    )
    assert await code_of(response) == (401, 13004)


def hmac_header(
    secret: str,
    request: httpx.Request,
    ts: int,
    *,
    client_id: str = "alice",
    target: str | None = None,
) -> str:
    """Sign like ccxt: over the request target exactly as it goes on the wire."""
    signed = target if target is not None else request.url.raw_path.decode()
    sig = request_signature(
        secret,
        timestamp=ts,
        nonce=str(ts),
        method=request.method,
        target=signed,
        body=request.content.decode(),
    )
    return f"deri-hmac-sha256 id={client_id},ts={ts},sig={sig},nonce={ts}"


async def send_signed(rpc: Rpc, request: httpx.Request, header: str) -> httpx.Response:
    request.headers["Authorization"] = header
    return await rpc.client.send(request)


async def test_hmac_over_the_raw_query(pinned: Rpc, clock: SimClock) -> None:
    """The signature covers path?query byte for byte; the same params encoded otherwise fail."""
    ts = now_ms(clock)
    url = "/api/v2/private/get_open_orders_by_currency?currency=BTC&label=a%20b%2Fc&kind=any"
    request = pinned.client.build_request("GET", url)
    assert request.url.raw_path.decode() == url
    assert (
        await send_signed(pinned, request, hmac_header(ALICE_SECRET, request, ts))
    ).status_code == 200
    re_encoded = url.replace("%20", "+")
    request = pinned.client.build_request("GET", url)
    response = await send_signed(
        pinned, request, hmac_header(ALICE_SECRET, request, ts, target=re_encoded)
    )
    assert await code_of(response) == (401, 13009)


async def test_hmac_signs_a_post_body(pinned: Rpc, clock: SimClock) -> None:
    """For a POST the JSON body is part of the signed string."""
    ts = now_ms(clock)
    body = b'{"jsonrpc":"2.0","id":5,"method":"private/get_positions","params":{"currency":"BTC"}}'
    request = pinned.client.build_request("POST", "/api/v2/private/get_positions", content=body)
    response = await send_signed(pinned, request, hmac_header(ALICE_SECRET, request, ts))
    assert response.status_code == 200
    assert response.json()["id"] == 5


HMAC_CASES = [
    ("wrong", 0, "alice", (401, 13009)),
    (ALICE_SECRET, 61_000, "alice", (401, 13009)),
    (ALICE_SECRET, -61_000, "alice", (401, 13009)),
    (ALICE_SECRET, 0, "mallory", (401, 13004)),
    (ALICE_SECRET, 59_000, "alice", (200, None)),
]


@pytest.mark.parametrize("case", HMAC_CASES)
async def test_hmac_failures(pinned: Rpc, clock: SimClock, case: tuple[Any, ...]) -> None:
    """Wrong secret or a timestamp over 60 s off is 13009; an unknown pinned id is 13004."""
    secret, skew_ms, client_id, expected = case
    request = pinned.client.build_request("GET", "/api/v2/private/get_positions?currency=BTC")
    header = hmac_header(secret, request, now_ms(clock) + skew_ms, client_id=client_id)
    response = await send_signed(pinned, request, header)
    status = response.status_code
    assert (status, response.json()["error"]["code"] if status != 200 else None) == expected


async def test_sandbox_accepts_signatures_it_cannot_check(rpc: Rpc, clock: SimClock) -> None:
    """In the sandbox an id whose secret was never sent is trusted; a known id is verified."""
    request = rpc.client.build_request("GET", "/api/v2/private/get_positions")
    assert (
        await send_signed(
            rpc, request, hmac_header("anything", request, now_ms(clock), client_id="new")
        )
    ).status_code == 200
    await rpc.login("alice", ALICE_SECRET)
    request = rpc.client.build_request("GET", "/api/v2/private/get_positions")
    response = await send_signed(rpc, request, hmac_header("wrong", request, now_ms(clock)))
    assert await code_of(response) == (401, 13009)
