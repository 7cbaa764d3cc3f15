"""The console's HTTP hardening through the real app: body cap, Host allow-list, page headers."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from bastion.api.app import create_app
from bastion.clock import SimClock
from bastion.guard.halt import Halt
from bastion.status import RuntimeStatus
from bastion.telemetry.metrics import Metrics

TOKEN = "test-console-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CAP = 64 * 1024
HUGE = 20 * 1024 * 1024
CHUNK = 16 * 1024


def _app(tmp_path: Path, allowed_hosts: Iterable[str] = ()) -> tuple[FastAPI, Halt]:
    status = RuntimeStatus(run_id="r1", agent="seller 1.0.0", currency="BTC", dry_run=False)
    halt = Halt(flag_path=tmp_path / "kill_switch.flag", clock=SimClock(), metrics=Metrics())
    app = create_app(
        status=status.to_dict,
        halt=halt,
        metrics=Metrics(),
        token=TOKEN,
        allowed_hosts=allowed_hosts,
    )
    return app, halt


def _client(app: FastAPI, base_url: str = "http://127.0.0.1:8787") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


@pytest.fixture
def app_and_halt(tmp_path: Path) -> tuple[FastAPI, Halt]:
    return _app(tmp_path)


@pytest.fixture
async def client(app_and_halt: tuple[FastAPI, Halt]) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(app_and_halt[0]) as c:
        yield c


# -- request bodies ------------------------------------------------------------------------


async def test_an_oversize_body_with_content_length_is_a_413_with_a_reason(
    client: httpx.AsyncClient, app_and_halt: tuple[FastAPI, Halt]
) -> None:
    """A 20 MB body declared by Content-Length is refused at once, with the cap in the reason."""
    pulled = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(HUGE // CHUNK):
            pulled += CHUNK
            yield b" " * CHUNK

    response = await client.post(
        "/api/kill",
        content=body(),
        headers={**AUTH, "Content-Type": "application/json", "Content-Length": str(HUGE)},
    )
    assert response.status_code == 413
    assert f"{CAP} bytes" in response.json()["detail"]
    assert pulled == 0, "a declared oversize body must not be read at all"
    assert not app_and_halt[1].active()


async def test_an_oversize_chunked_body_is_cut_off_at_the_cap(
    client: httpx.AsyncClient, app_and_halt: tuple[FastAPI, Halt]
) -> None:
    """Chunked, with no Content-Length, the body is counted as it arrives and refused past it."""
    pulled = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(HUGE // CHUNK):
            pulled += CHUNK
            yield b" " * CHUNK

    response = await client.post(
        "/api/kill", content=body(), headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert f"{CAP} bytes" in response.json()["detail"]
    assert pulled <= CAP + CHUNK, f"read {pulled} bytes of a body over the {CAP}-byte cap"
    assert not app_and_halt[1].active()


async def test_a_body_at_the_cap_reaches_the_route(client: httpx.AsyncClient) -> None:
    """The cap refuses only what is over it: a body of exactly the cap is the route's to judge."""
    reason = "x" * (CAP - len('{"reason": ""}'))
    body = f'{{"reason": "{reason}"}}'.encode()
    assert len(body) == CAP
    response = await client.post(
        "/api/kill", content=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 422, "the route's own validation answered"
    assert "reason" in response.json()["detail"]


async def test_a_small_body_still_works_chunked(
    client: httpx.AsyncClient, app_and_halt: tuple[FastAPI, Halt]
) -> None:
    """A kill whose JSON arrives in several chunks is put back together and obeyed."""

    async def body() -> AsyncIterator[bytes]:
        yield b'{"reason": '
        yield b'"fat finger"}'

    response = await client.post(
        "/api/kill", content=body(), headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 200
    state = app_and_halt[1].state()
    assert state is not None
    assert state.reason == "fat finger"


async def test_a_malformed_content_length_is_a_400_with_a_reason(
    client: httpx.AsyncClient,
) -> None:
    """A Content-Length that is not a number is refused with why, never a 500."""
    response = await client.post(
        "/api/kill", content=b"{}", headers={**AUTH, "Content-Length": "12abc"}
    )
    assert response.status_code == 400
    assert "Content-Length" in response.json()["detail"]


# -- Host header ---------------------------------------------------------------------------

FOREIGN_HOSTS = [
    "evil.example",
    "evil.example:8787",
    "127.0.0.1.evil.example:8787",
    "localhost.evil.example",
    "[::1].evil.example",
    "",
]


@pytest.mark.parametrize("path", ["/metrics", "/api/status", "/healthz", "/"])
@pytest.mark.parametrize("host", FOREIGN_HOSTS)
async def test_a_foreign_host_is_a_400_and_learns_nothing(
    client: httpx.AsyncClient, path: str, host: str
) -> None:
    """A DNS-rebinding page (any Host but ours) reads neither metrics, status nor the page."""
    response = await client.get(path, headers={**AUTH, "Host": host})
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "BASTION_CONSOLE_ALLOWED_HOSTS" in detail
    assert "bastion_" not in response.text
    assert "run_id" not in response.text
    assert "<html" not in response.text


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:8787", "LOCALHOST.:8787", "127.0.0.1", "[::1]:8787", "[::1]"]
)
async def test_loopback_names_are_served(client: httpx.AsyncClient, host: str) -> None:
    """Every loopback name a browser or probe on this machine uses gets its answer."""
    assert (await client.get("/healthz", headers={"Host": host})).json() == {"status": "ok"}
    metrics = await client.get("/metrics", headers={"Host": host})
    assert "bastion_kill_switch_active" in metrics.text


@pytest.mark.parametrize(
    ("bound", "other"), [("192.168.1.5", "192.168.1.6"), ("[fd00::5]", "[fd00::6]")]
)
async def test_the_bound_address_is_served(tmp_path: Path, bound: str, other: str) -> None:
    """A console bound to a LAN address answers a browser that typed that address."""
    app, _ = _app(tmp_path)
    async with _client(app, f"http://{bound}:8787") as client:
        response = await client.get("/healthz")
        foreign = await client.get("/healthz", headers={"Host": f"{other}:8787"})
    assert response.status_code == 200
    assert foreign.status_code == 400


async def test_configured_hosts_are_served(tmp_path: Path) -> None:
    """Names in console_allowed_hosts (a proxy's name) are served, with or without a port."""
    app, _ = _app(tmp_path, allowed_hosts=["console.example", "[fd00::5]:443", "fd00::9"])
    async with _client(app) as client:
        by_name = await client.get("/api/status", headers={**AUTH, "Host": "Console.Example"})
        by_ip = await client.get("/api/status", headers={**AUTH, "Host": "[fd00::5]"})
        by_bare = await client.get("/api/status", headers={**AUTH, "Host": "[fd00::9]:8787"})
        other = await client.get("/api/status", headers={**AUTH, "Host": "other.example"})
        fd00 = await client.get("/api/status", headers={**AUTH, "Host": "fd00:9"})
    assert by_name.status_code == by_ip.status_code == by_bare.status_code == 200
    assert fd00.status_code == 400, "a bare IPv6 entry must not allow its first group"
    assert by_name.json()["run_id"] == "r1"
    assert other.status_code == 400


# -- response headers ----------------------------------------------------------------------


def _directives(csp: str) -> dict[str, list[str]]:
    parts = (part.split() for part in csp.split(";") if part.strip())
    return {name.lower(): sources for name, *sources in parts}


def _assert_hardened(response: httpx.Response) -> None:
    headers = response.headers
    where = f"{response.request.method} {response.request.url.path} → {response.status_code}"
    assert headers.get("x-frame-options") == "DENY", where
    assert headers.get("referrer-policy") == "no-referrer", where
    assert headers.get("x-content-type-options") == "nosniff", where
    csp = _directives(headers.get("content-security-policy", ""))
    scripts = csp.get("script-src", csp.get("default-src"))
    assert scripts == ["'self'"], (where, csp)
    assert csp.get("frame-ancestors") == ["'none'"], (where, csp)
    assert not any("unsafe" in s for sources in csp.values() for s in sources), (where, csp)


async def test_every_response_carries_the_security_headers(client: httpx.AsyncClient) -> None:
    """The page, its files, the API, probes and refusals all forbid framing and inline script."""
    big = b" " * (CAP + 1)
    responses = [
        await client.get("/"),
        await client.get("/static/console.js"),
        await client.get("/favicon.ico"),
        await client.get("/api/status", headers=AUTH),
        await client.get("/api/status"),
        await client.post("/api/kill", content=b"{bad", headers=AUTH),
        await client.get("/healthz"),
        await client.get("/metrics"),
        await client.get("/no-such-page"),
        await client.get("/healthz", headers={"Host": "evil.example"}),
        await client.post("/api/kill", content=big, headers=AUTH),
    ]
    assert [r.status_code for r in responses] == [
        200, 200, 200, 200, 401, 422, 200, 200, 404, 400, 413,
    ]  # fmt: skip
    for response in responses:
        _assert_hardened(response)


async def test_the_page_has_no_inline_script(client: httpx.AsyncClient) -> None:
    """Every script of the page is a file the CSP allows; no inline code or handler attribute."""
    page = (await client.get("/")).text
    for tag in page.split("<script")[1:]:
        assert tag.lstrip().startswith("src="), tag[:60]
        assert tag.split(">", 1)[1].startswith("</script>")
    assert re.search(r"\son[a-z]+\s*=", page) is None, "an inline event handler"
    assert "javascript:" not in page


async def test_the_favicon_is_served_where_browsers_look(client: httpx.AsyncClient) -> None:
    """/favicon.ico and the page's icon link both answer an SVG, so no tab logs a 404."""
    page = (await client.get("/")).text
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in page
    for path in ("/favicon.ico", "/static/favicon.svg"):
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("image/svg+xml"), path
        assert response.text.lstrip().startswith("<svg"), path


async def test_a_failing_route_is_a_json_500_with_the_security_headers(tmp_path: Path) -> None:
    """A status provider that raises: the answer is still hardened and says where to look."""

    def broken() -> dict[str, object]:
        raise RuntimeError("status provider exploded")

    halt = Halt(flag_path=tmp_path / "kill_switch.flag", clock=SimClock(), metrics=Metrics())
    app = create_app(status=broken, halt=halt, metrics=Metrics(), token=TOKEN)
    async with _client(app) as client:
        response = await client.get("/api/status", headers=AUTH)
    assert response.status_code == 500
    assert response.json() == {
        "detail": "internal error: the console could not answer; the run's log says why"
    }
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert "exploded" not in response.text
